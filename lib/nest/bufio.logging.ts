import type { LoggerService } from '@nestjs/common';
import type { BufIO } from '../core/bufio.js';

/**
 * Logs what an operator must see, and nothing else: one warning per failed batch and per refused
 * push, one error per dead-lettered batch and per storage or handler failure, one line per drain
 * summary.
 */
export function logBufferEvents(buffer: BufIO<unknown, unknown>, logger: LoggerService): void {
  const name = buffer.name;
  buffer.on('failed', ({ records, error, attempt }) => {
    logger.warn(
      `buffer "${name}": a batch of ${records.length} record(s) failed on attempt ${attempt}: ${error.message}`,
    );
  });
  buffer.on('deadLettered', ({ records, error }) => {
    logger.error(`buffer "${name}": ${records.length} record(s) dead-lettered: ${error.message}`);
  });
  // Pushes are often fire-and-forget (a queue consumer's handler): a refusal must show here.
  buffer.on('refused', ({ records, error }) => {
    logger.warn(
      `buffer "${name}": refused a push of ${records.length} record(s): ${error.message}`,
    );
  });
  buffer.on('error', (error) => {
    logger.error(`buffer "${name}": ${error.message}`, error.stack);
  });
  buffer.on('drained', (summary) => {
    // Records another holder leases are not lost, and not "nothing left" either: say so.
    const line =
      `buffer "${name}" drained in ${summary.durationMs} ms: ${summary.processed} processed, ` +
      `${summary.deadLettered} dead-lettered, ${summary.remaining} left in storage, ` +
      `${summary.leasedElsewhere} still leased by other holders, ${summary.inFlight} in flight`;
    if (summary.timedOut) logger.warn(`${line} (shutdownTimeout reached)`);
    else logger.log(line);
  });
}
