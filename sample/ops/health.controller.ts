import { Controller, Get } from '@nestjs/common';
import { HealthCheck, type HealthCheckResult, HealthCheckService } from '@nestjs/terminus';
import { BufIOHealthIndicator } from '@risemaxi/bufio/health';

/**
 * `GET /health`: `200` while every buffer is up, `503` with the reasons when one is down (its
 * storage unreachable, full for too long, records dead-lettered since the previous check, or
 * stopping at shutdown).
 */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly bufio: BufIOHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check(): Promise<HealthCheckResult> {
    return this.health.check([
      () => this.bufio.isHealthy('bufio', { maxFillRatio: 0.9, fillDuration: 10_000 }),
    ]);
  }
}
