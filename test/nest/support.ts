import type { LoggerService } from '@nestjs/common';

/** One line a Nest `Logger` wrote. */
export interface LogLine {
  readonly level: 'log' | 'error' | 'warn' | 'debug' | 'verbose' | 'fatal';
  readonly message: string;
  readonly context: string | undefined;
}

/**
 * A logger for `Test.createTestingModule().setLogger()`: keeps every line, so tests can assert the
 * module's log output, and prints nothing.
 */
export class CapturingLogger implements LoggerService {
  readonly lines: LogLine[] = [];

  log(message: unknown, ...rest: unknown[]): void {
    this.add('log', message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.add('error', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.add('warn', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.add('debug', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    this.add('verbose', message, rest);
  }
  fatal(message: unknown, ...rest: unknown[]): void {
    this.add('fatal', message, rest);
  }

  /** Lines logged with the `BufIO` context. */
  bufio(level?: LogLine['level']): LogLine[] {
    return this.lines.filter((l) => l.context === 'BufIO' && (!level || l.level === level));
  }

  private add(level: LogLine['level'], message: unknown, rest: unknown[]): void {
    const last = rest[rest.length - 1];
    this.lines.push({
      level,
      message: String(message),
      context: typeof last === 'string' ? last : undefined,
    });
  }
}

/** A worker body that records every batch it is given. */
export function recorder<T>(): { batches: T[][]; work: (records: T[]) => Promise<void> } {
  const batches: T[][] = [];
  return {
    batches,
    work: async (records: T[]) => {
      batches.push([...records]);
    },
  };
}
