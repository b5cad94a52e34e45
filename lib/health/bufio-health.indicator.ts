import { Injectable } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import type { BufIO } from '../core/bufio.js';
import { BufIOService } from '../nest/bufio.service.js';
import { BufferHealthChecker } from './buffer-health.js';
import { type BufIOHealthOptions, resolveHealthOptions } from './health-options.js';

/**
 * A `@nestjs/terminus` health indicator (v11+ API, `HealthIndicatorService`) for the
 * application's buffers. A buffer is down when:
 *
 * - its storage does not answer `size()` within `storageTimeout` (Redis or PostgreSQL down);
 * - it has stayed at or above `maxFillRatio` of `maxBufferedRecords` for `fillDuration`, as seen
 *   by the checks (the worker cannot keep up, or its target is down);
 * - records were dead-lettered since the previous check (unless `deadLetters: false`);
 * - it is not running (stopping at shutdown).
 *
 * The result lists every checked buffer under `buffers`, with its numbers and reasons, and a
 * one-line `message` when down. Checks with different keys keep separate memories (of when a
 * buffer became full, of its dead letters), so a liveness and a readiness check do not interfere.
 * List it in the providers of a module that imports `TerminusModule`.
 *
 * @example
 * @Get('health')
 * @HealthCheck()
 * check() {
 *   return this.health.check([() => this.bufio.isHealthy('bufio', { maxFillRatio: 0.8 })]);
 * }
 */
@Injectable()
export class BufIOHealthIndicator {
  private readonly checkers = new Map<string, BufferHealthChecker>();

  constructor(
    private readonly indicators: HealthIndicatorService,
    private readonly bufio: BufIOService,
  ) {}

  /**
   * Checks the buffers and returns terminus' result under `key`.
   *
   * @throws InvalidOptionsError for an option of the wrong type or out of range.
   * @throws UnknownBufferError when `options.buffers` names a buffer that is not registered.
   */
  async isHealthy<const Key extends string = 'bufio'>(
    key?: Key,
    options?: BufIOHealthOptions,
  ): Promise<HealthIndicatorResult<Key>> {
    const name = (key ?? 'bufio') as Key;
    const resolved = resolveHealthOptions(options);
    const buffers: BufIO<unknown, unknown>[] = (resolved.buffers ?? this.bufio.names()).map((n) =>
      this.bufio.get(n),
    );
    let checker = this.checkers.get(name);
    if (!checker) {
      checker = new BufferHealthChecker();
      this.checkers.set(name, checker);
    }
    const report = await checker.check(buffers, resolved);
    const session = this.indicators.check(name);
    const down = Object.entries(report).filter(([, health]) => health.status === 'down');
    if (down.length === 0) return session.up({ buffers: report });
    const message = down
      .map(([buffer, health]) => `buffer "${buffer}": ${health.reasons.join('; ')}`)
      .join('; ');
    return session.down({ message, buffers: report });
  }
}
