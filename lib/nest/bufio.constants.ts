/** Metadata key of `@BufferWorker(name)`, on the class. */
export const BUFIO_WORKER_METADATA = 'bufio:worker';

/** Metadata key of `@OnBufferEvent(name, event)`, on the method. */
export const BUFIO_ON_EVENT_METADATA = 'bufio:on-event';

/** Context of every line the module logs. */
export const BUFIO_LOGGER_CONTEXT = 'BufIO';

/** How long `beforeApplicationShutdown` lets each buffer drain, in ms, unless `shutdownTimeout` says otherwise. */
export const DEFAULT_SHUTDOWN_TIMEOUT = 10_000;

/** Name of a buffer's flush timer and flush cron job in `SchedulerRegistry`. */
export function schedulerName(buffer: string): string {
  return `bufio:${buffer}`;
}
