import { Inject } from '@nestjs/common';
import { getBufferToken } from '../bufio.tokens.js';

/**
 * Injects the `BufIO` buffer registered as `name` by `BufIOModule.forFeature()`.
 *
 * @example
 * constructor(@InjectBuffer('events') private readonly events: BufIO<EventDto>) {}
 */
export function InjectBuffer(name: string): PropertyDecorator & ParameterDecorator {
  return Inject(getBufferToken(name));
}
