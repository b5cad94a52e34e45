import { type ArgumentsHost, Catch, type ExceptionFilter, HttpStatus } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import {
  BufferFullError,
  BufIOClosedError,
  type BufIOError,
  InvalidRecordError,
} from '@risemaxi/bufio';

/**
 * Turns the buffer's refusals into HTTP answers. A buffer that is stopping (shutdown has begun)
 * or full refuses a record with an error rather than losing it: the client gets `503` with
 * `Retry-After` and knows the event was not taken. Adapter-neutral (Express or Fastify).
 */
@Catch(BufIOClosedError, BufferFullError, InvalidRecordError)
export class BufIOExceptionFilter implements ExceptionFilter<BufIOError> {
  constructor(private readonly adapterHost: HttpAdapterHost) {}

  catch(error: BufIOError, host: ArgumentsHost): void {
    const { httpAdapter } = this.adapterHost;
    const response: unknown = host.switchToHttp().getResponse();
    const status =
      error instanceof InvalidRecordError ? HttpStatus.BAD_REQUEST : HttpStatus.SERVICE_UNAVAILABLE;
    if (status === HttpStatus.SERVICE_UNAVAILABLE)
      httpAdapter.setHeader(response, 'Retry-After', '1');
    httpAdapter.reply(
      response,
      { statusCode: status, code: error.code, message: error.message },
      status,
    );
  }
}
