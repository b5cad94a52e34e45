import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { BufIOHealthIndicator } from '@risemaxi/bufio/health';
import { BufIOMetricsModule } from '@risemaxi/bufio/nest';
import { HealthController } from './health.controller.js';
import { MetricsController } from './metrics.controller.js';

/** What operators need: Prometheus metrics of every buffer, and a health check over them. */
@Module({
  imports: [TerminusModule.forRoot(), BufIOMetricsModule.forRoot()],
  controllers: [MetricsController, HealthController],
  providers: [BufIOHealthIndicator],
})
export class OpsModule {}
