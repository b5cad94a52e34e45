export {
  BufIOTracing,
  instrumentTracing,
  SPAN_ATTRIBUTES,
  TRACER_NAME,
  type WorkOutcome,
} from './bufio-tracing.js';
export type { BufIOTracingOptions } from './tracing-options.js';
