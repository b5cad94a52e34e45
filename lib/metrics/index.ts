export {
  BufIOMetrics,
  instrumentMetrics,
  METRIC_NAMES,
  type MetricsAttachment,
} from './bufio-metrics.js';
export type { BufIOMetricsOptions } from './metrics-options.js';
