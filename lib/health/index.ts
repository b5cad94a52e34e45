export { BufIOHealthIndicator } from './bufio-health.indicator.js';
export { BufferHealthChecker, type BufferHealth } from './buffer-health.js';
export type { BufIOHealthOptions } from './health-options.js';
