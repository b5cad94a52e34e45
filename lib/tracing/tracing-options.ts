import type { TracerProvider } from '@opentelemetry/api';
import { OptionChecker } from '../core/options.js';

/** Options of `instrumentTracing()`. */
export interface BufIOTracingOptions {
  /** Where the tracer comes from. Default: the global provider (`trace.getTracer`). */
  tracerProvider?: TracerProvider;
  /**
   * How many of the last records pushed under a span keep their link until their worker call;
   * older ones are forgotten (their worker span lacks that link). Bounds memory when records are
   * processed elsewhere (a shared storage), never (dropped), or long after. 0 turns links off.
   * Default 10000.
   */
  maxPendingLinks?: number;
  /** Links on one worker span, at most (one per distinct pushing span). Default 128. */
  maxLinksPerSpan?: number;
  /**
   * Whether a worker span starts a trace of its own (true) or is a child of the context active
   * where the batch was dispatched (false). Default true: a batch is dispatched from whichever
   * push or timer came last, which is not its parent; the links say where its records came from.
   */
  root?: boolean;
}

/** `BufIOTracingOptions` with defaults applied. */
export interface ResolvedTracingOptions {
  readonly tracerProvider: TracerProvider | undefined;
  readonly maxPendingLinks: number;
  readonly maxLinksPerSpan: number;
  readonly root: boolean;
}

const KNOWN = new Set(['tracerProvider', 'maxPendingLinks', 'maxLinksPerSpan', 'root']);

/**
 * Applies defaults and checks every option.
 *
 * @throws InvalidOptionsError naming the option, the value and what is allowed.
 */
export function resolveTracingOptions(options: unknown, buffer: string): ResolvedTracingOptions {
  const check = new OptionChecker(`tracing of buffer "${buffer}"`);
  if (options === undefined) options = {};
  const bag = check.known(options, KNOWN);
  const provider = bag.tracerProvider;
  if (
    provider !== undefined &&
    (provider === null ||
      typeof provider !== 'object' ||
      typeof (provider as { getTracer?: unknown }).getTracer !== 'function')
  ) {
    check.fail('tracerProvider', provider, 'a TracerProvider (an object with getTracer())');
  }
  return {
    tracerProvider: provider as TracerProvider | undefined,
    maxPendingLinks: check.integer('maxPendingLinks', bag.maxPendingLinks, 10_000, 0),
    maxLinksPerSpan: check.integer('maxLinksPerSpan', bag.maxLinksPerSpan, 128, 0),
    root: check.boolean('root', bag.root, true),
  };
}
