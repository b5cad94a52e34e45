import { afterEach } from '@jest/globals';
import type { INestApplication, LoggerService, ModuleMetadata } from '@nestjs/common';
import { Test, type TestingModule, TestingModuleBuilder } from '@nestjs/testing';

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

/** Boots Nest applications for a spec file; see `useNestApps`. */
export interface NestApps {
  /**
   * Compiles a testing module (from metadata, or a builder the test has set up) with `logger`
   * (default: a `CapturingLogger`, so nothing is printed), and inits its application.
   */
  boot(
    module: ModuleMetadata | TestingModuleBuilder,
    logger?: LoggerService,
  ): Promise<INestApplication>;
  /**
   * Boots an application that must fail (see `boot`), and resolves with what it failed with, at
   * `compile()` or at `init()`; rejects if it booted.
   */
  bootError(module: ModuleMetadata | TestingModuleBuilder): Promise<Error>;
  /**
   * Compiles a testing module as `boot` does, without initing it: for tests that act before the
   * boot (then `start` it) or need no application.
   */
  compile(
    module: ModuleMetadata | TestingModuleBuilder,
    logger?: LoggerService,
  ): Promise<TestingModule>;
  /** Inits the application of a module the test compiled itself (to act before the boot). */
  start(moduleRef: TestingModule): Promise<INestApplication>;
  /** Closes an application now, rather than after the test. */
  close(app: INestApplication): Promise<void>;
}

/**
 * The one harness the Nest specs boot applications with. Call it once at the top of a spec file:
 * every application it booted and that the test left open is closed after each test (which
 * drains its buffers), so no test leaks timers or storages into the next.
 */
export function useNestApps(): NestApps {
  const open = new Set<INestApplication>();
  afterEach(async () => {
    const apps = [...open];
    open.clear();
    for (const app of apps) await app.close();
  });

  const start = async (moduleRef: TestingModule): Promise<INestApplication> => {
    const app = moduleRef.createNestApplication();
    try {
      await app.init();
    } catch (error) {
      // A boot that fails (what some tests check) still closes what it opened.
      await app.close().catch(() => undefined);
      throw error;
    }
    open.add(app);
    return app;
  };
  const compile = (
    module: ModuleMetadata | TestingModuleBuilder,
    logger: LoggerService = new CapturingLogger(),
  ): Promise<TestingModule> => {
    const builder =
      module instanceof TestingModuleBuilder ? module : Test.createTestingModule(module);
    return builder.setLogger(logger).compile();
  };
  const boot = async (
    module: ModuleMetadata | TestingModuleBuilder,
    logger?: LoggerService,
  ): Promise<INestApplication> => start(await compile(module, logger));
  const close = async (app: INestApplication): Promise<void> => {
    open.delete(app);
    await app.close();
  };
  return {
    boot,
    async bootError(module) {
      let app: INestApplication;
      try {
        app = await boot(module);
      } catch (error) {
        return error as Error;
      }
      await close(app);
      throw new Error('the application booted, but it should have failed');
    },
    compile,
    start,
    close,
  };
}
