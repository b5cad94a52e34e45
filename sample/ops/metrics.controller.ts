import { Controller, Get, Header } from '@nestjs/common';
import { register } from 'prom-client';

/**
 * `GET /metrics`: prom-client's default registry in the Prometheus text format, where
 * `BufIOMetricsModule` registers `bufio_records_total`, `bufio_buffered_records`,
 * `bufio_batch_size`, `bufio_work_duration_seconds`, ...
 */
@Controller('metrics')
export class MetricsController {
  @Get()
  @Header('Content-Type', register.contentType)
  metrics(): Promise<string> {
    return register.metrics();
  }
}
