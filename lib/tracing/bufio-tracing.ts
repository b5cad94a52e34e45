import {
  context,
  isSpanContextValid,
  SpanKind,
  SpanStatusCode,
  trace,
  type Tracer,
} from '@opentelemetry/api';
import type { BufIO } from '../core/bufio.js';
import { asError } from '../core/errors.js';
import type { Instrumentation, WorkCall, WorkReport } from '../core/instrumentation.js';
import type { RecordId } from '../core/storage.js';
import { PushLinks } from './push-links.js';
import { type BufIOTracingOptions, resolveTracingOptions } from './tracing-options.js';

/** The name of the tracer the spans come from. */
export const TRACER_NAME = '@risemaxi/bufio';

/** The attributes of a worker span. */
export const SPAN_ATTRIBUTES = {
  buffer: 'bufio.buffer',
  batchSize: 'bufio.batch.size',
  attempt: 'bufio.attempt',
  outcome: 'bufio.outcome',
  failed: 'bufio.failed',
  linksDropped: 'bufio.links.dropped',
} as const;

/** `bufio.outcome` of a worker span. */
export type WorkOutcome = 'processed' | 'partial' | 'failed';

/**
 * OpenTelemetry tracing of one buffer (see `instrumentTracing`): a span per worker call, linked
 * to the spans that pushed its records.
 */
export class BufIOTracing<T> implements Instrumentation<T> {
  private readonly tracer: Tracer;
  private readonly links: PushLinks;
  private readonly maxLinksPerSpan: number;
  private readonly root: boolean;
  private dispose: (() => void) | undefined;

  constructor(bufferName: string, options?: BufIOTracingOptions) {
    const resolved = resolveTracingOptions(options, bufferName);
    this.tracer = (resolved.tracerProvider ?? trace.getTracerProvider()).getTracer(TRACER_NAME);
    this.links = new PushLinks(resolved.maxPendingLinks);
    this.maxLinksPerSpan = resolved.maxLinksPerSpan;
    this.root = resolved.root;
  }

  /** Records whose pushing span waits for their worker call. */
  get pendingLinks(): number {
    return this.links.size;
  }

  /** Starts tracing `buffer` (see `instrumentTracing`). */
  attach<U>(buffer: BufIO<T, U>): this {
    this.dispose?.();
    this.dispose = buffer.use(this);
    return this;
  }

  /** Stops tracing the buffer and forgets the pending links. */
  detach(): void {
    this.dispose?.();
    this.dispose = undefined;
    this.links.clear();
  }

  /** Part of `Instrumentation`: remembers the span active at the push, if any. */
  onPush(ids: readonly RecordId[]): void {
    const pushing = trace.getSpanContext(context.active());
    if (pushing !== undefined && isSpanContextValid(pushing)) this.links.remember(ids, pushing);
  }

  /** Part of `Instrumentation`: runs the worker call inside its span. */
  async aroundWork(call: WorkCall<T>, run: () => Promise<WorkReport>): Promise<WorkReport> {
    const { links, dropped } = this.links.take(call.ids, this.maxLinksPerSpan);
    const span = this.tracer.startSpan(
      `bufio.work ${call.buffer}`,
      {
        kind: SpanKind.INTERNAL,
        root: this.root,
        links,
        attributes: {
          [SPAN_ATTRIBUTES.buffer]: call.buffer,
          [SPAN_ATTRIBUTES.batchSize]: call.records.length,
          [SPAN_ATTRIBUTES.attempt]: call.attempt,
          ...(dropped > 0 ? { [SPAN_ATTRIBUTES.linksDropped]: dropped } : {}),
        },
      },
      context.active(),
    );
    try {
      // The worker runs in the span's context: the spans of what it calls are its children.
      const report = await context.with(trace.setSpan(context.active(), span), run);
      const outcome: WorkOutcome =
        report.failed === 0
          ? 'processed'
          : report.failed < call.records.length && !report.error
            ? 'partial'
            : 'failed';
      span.setAttributes({
        [SPAN_ATTRIBUTES.outcome]: outcome,
        [SPAN_ATTRIBUTES.failed]: report.failed,
      });
      if (report.error) {
        span.recordException(report.error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: report.error.message });
      } else if (report.failed > 0) {
        span.setStatus({
          code: SpanStatusCode.ERROR,
          message: `${report.failed} of ${call.records.length} record(s) failed`,
        });
      }
      return report;
    } catch (error) {
      const err = asError(error);
      span.recordException(err);
      span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
      throw error;
    } finally {
      span.end();
    }
  }
}

/**
 * Traces `buffer` with OpenTelemetry (`@opentelemetry/api`; bring your SDK):
 *
 * - a span per worker call, `bufio.work <buffer>`, with the attributes `bufio.buffer`,
 *   `bufio.batch.size`, `bufio.attempt`, `bufio.outcome` (`processed`, `partial`, `failed`) and
 *   `bufio.failed`; status ERROR when records failed, with the exception recorded when the whole
 *   call threw;
 * - linked to the spans that were active where its records were pushed (one link per pushing
 *   span, with `bufio.records`: how many of the batch it pushed);
 * - the worker runs inside the span's context, so its own spans (database calls) are children.
 *
 * Call it before `start()` so that every worker call is traced. Returns the instrumentation, whose
 * `detach()` stops tracing.
 *
 * @throws InvalidOptionsError for an option of the wrong type or out of range.
 */
export function instrumentTracing<T, U>(
  buffer: BufIO<T, U>,
  options?: BufIOTracingOptions,
): BufIOTracing<T> {
  return new BufIOTracing<T>(buffer.name, options).attach(buffer);
}
