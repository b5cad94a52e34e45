import { Admission, type BlockedPush } from './admission.js';
import { Backlog } from './backlog.js';
import { BatchRunner } from './batch-runner.js';
import { Bisector } from './bisect.js';
import type { BufIOState } from './bufio.js';
import { Coalescer } from './coalescer.js';
import { Dispatcher } from './dispatcher.js';
import { unsupportedOption } from './errors.js';
import type { EventSink } from './events.js';
import type { ResolvedOptions } from './options.js';
import type { Queue } from './queue.js';
import type { Counters } from './stats.js';
import type { RecordId, Storage } from './storage.js';
import type { Waiters } from './waiters.js';

/**
 * What every unit of the engine shares, made once by `BufIO`: the settings, and where outcomes go
 * (counters, `pushAndWait` callers, events). Never a reference to `BufIO` itself: a unit gets what
 * else it needs as a collaborator or a closure, named in its own `*Deps`.
 */
export interface EngineContext<T, U> {
  readonly name: string;
  readonly storage: Storage<T>;
  readonly options: ResolvedOptions<T, U>;
  readonly counters: Counters;
  readonly waiters: Waiters<U>;
  readonly events: EventSink<T, U>;
}

/** What the units need from `BufIO` itself. */
export interface EngineHost<T, U> {
  /** Pushes blocked for room: `BufIO.push` reads its length, the `Admission` fills it. */
  readonly blocked: Queue<BlockedPush<T, U>>;
  /** Where the buffer is in its life. */
  readonly state: () => BufIOState;
  /** Records went into the storage through the admission: count them, run the push hooks. */
  readonly stored: (ids: readonly RecordId[], records: readonly T[]) => void;
}

/** The units behind a `BufIO`, wired together. */
export interface EngineUnits<T, U> {
  readonly backlog: Backlog;
  readonly coalescer: Coalescer<T, U> | undefined;
  readonly runner: BatchRunner<T, U>;
  readonly dispatcher: Dispatcher<T, U>;
  readonly admission: Admission<T, U>;
}

/**
 * Makes the engine's units and wires them: each gets the shared context, its collaborators, and
 * closures for what flows back (the backlog's timers wake the dispatcher, a freed slot lets
 * blocked pushes in, a full buffer's `'drop-oldest'` asks the dispatcher to evict). Made once;
 * never replaced, so that the shapes the push fast path reads stay stable.
 *
 * @throws UnsupportedError when `coalesce` or `priority` is asked of a storage without it.
 */
export function wireEngine<T, U>(
  context: EngineContext<T, U>,
  host: EngineHost<T, U>,
): EngineUnits<T, U> {
  const { options, storage } = context;
  if (options.priority && !storage.features?.priority) {
    throw unsupportedOption(context.name, 'priority', storage);
  }
  const coalescer = options.coalesce ? new Coalescer(context) : undefined;
  const backlog = new Backlog(options.flushInterval, options.timers, {
    intervalDue: () => dispatcher.noteIntervalDue(),
    retriesDue: () => dispatcher.pump(),
  });
  const runner = new BatchRunner<T, U>(
    {
      ...context,
      givesUp: () => host.state() === 'stopped' && !storage.durable,
      retryScheduled: (at, count) => backlog.scheduleRetry(at, count),
    },
    options.bisectOnError ? new Bisector() : undefined,
  );
  const dispatcher: Dispatcher<T, U> = new Dispatcher<T, U>({
    ...context,
    backlog,
    runner,
    coalescer,
    state: host.state,
    roomFreed: () => admission.admitBlocked(),
  });
  const admission: Admission<T, U> = new Admission<T, U>({
    ...context,
    backlog,
    coalescer,
    stored: host.stored,
    blocked: host.blocked,
    evict: (count) => dispatcher.evict(count),
  });
  return { backlog, coalescer, runner, dispatcher, admission };
}
