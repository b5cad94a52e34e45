import { InvalidOptionsError } from '../core/errors.js';
import {
  type BufIOOptions,
  MAX_TIMER_DELAY,
  OptionChecker,
  resolveOptions,
} from '../core/options.js';
import type { Storage } from '../core/storage.js';
import { DEFAULT_SHUTDOWN_TIMEOUT } from './bufio.constants.js';
import type {
  BufIOModuleOptions,
  StorageFactory,
} from './interfaces/bufio-module-options.interface.js';

/** The module's own options, on top of the engine's; `resolveOptions` is told to accept them. */
const LIFECYCLE_KEYS: ReadonlySet<string> = new Set(['shutdownTimeout', 'flushCron']);
const NUMERIC_KEYS = [
  'batchSize',
  'flushInterval',
  'maxBatchBytes',
  'concurrency',
  'workTimeout',
  'maxBufferedRecords',
  'shutdownTimeout',
] as const;
const NUMERIC_RETRY_KEYS = ['maxAttempts', 'initialDelay', 'maxDelay', 'factor'] as const;
const NUMERIC_TEXT = /^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?\s*$/i;
const ROOT_CONTEXT = 'BufIOModule.forRoot()';
const FEATURE_CONTEXT = 'BufIOModule.forFeature()';

type OptionBag = Record<string, unknown>;

/** What the module itself does with a buffer, beside what the engine does. */
export interface BufferSettings {
  readonly shutdownTimeout: number;
  readonly flushCron: string | undefined;
}

/** One buffer's options, merged over the defaults and checked, ready for `new BufIO()`. */
export interface ResolvedBufferOptions<T, U> {
  readonly name: string;
  /** The engine's options, without `storage`, which is created only once everything checks out. */
  readonly engine: Omit<BufIOOptions<T, U>, 'storage'>;
  readonly storage: Storage<T> | StorageFactory<T> | undefined;
  readonly settings: BufferSettings;
}

/**
 * Checks the `forRoot` defaults and returns them normalized: numeric strings turned into numbers,
 * unset (`undefined`) values dropped so that they fall back to the engine's defaults.
 *
 * @throws InvalidOptionsError naming the option and the value.
 */
export function resolveModuleOptions(raw: unknown): BufIOModuleOptions {
  if (raw === undefined || raw === null) return {};
  const options = normalize(asBag(raw, 'options', ROOT_CONTEXT), ROOT_CONTEXT);
  const check = new OptionChecker(ROOT_CONTEXT);
  if ('name' in options) {
    check.fail(
      'name',
      options.name,
      'no "name" in the defaults, which every buffer shares: name buffers in forFeature()',
    );
  }
  if ('worker' in options) {
    check.fail(
      'worker',
      options.worker,
      'no "worker" in the defaults: give each buffer its own, with @BufferWorker(name) or forFeature({ name, worker })',
    );
  }
  const { storage, ...rest } = options;
  if (storage !== undefined && typeof storage !== 'function') {
    check.fail(
      'storage',
      storage,
      'a function (bufferName) => Storage, as one storage instance cannot serve several buffers (give an instance to forFeature())',
    );
  }
  lifecycleSettings(rest, ROOT_CONTEXT);
  try {
    resolveOptions({ ...rest, name: 'defaults' }, LIFECYCLE_KEYS);
  } catch (error) {
    throw inContext(error, ROOT_CONTEXT);
  }
  return options as BufIOModuleOptions;
}

/**
 * Merges one buffer's options over the defaults (its own win; `retry` is merged key by key) and
 * checks the result, so that a wrong value fails at boot with the buffer's name in the message.
 *
 * @throws InvalidOptionsError naming the buffer, the option and the value.
 */
export function resolveBufferOptions<T, U>(
  defaults: BufIOModuleOptions,
  raw: unknown,
): ResolvedBufferOptions<T, U> {
  const bag = asBag(raw, 'options', FEATURE_CONTEXT);
  const name = bag.name;
  if (typeof name !== 'string' || name.length === 0) {
    throw new InvalidOptionsError('name', name, 'a non-empty string', FEATURE_CONTEXT);
  }
  const context = `buffer "${name}"`;
  const own = normalize(bag, context);
  const merged: OptionBag = { ...(defaults as OptionBag), ...own };
  if (defaults.retry !== undefined || own.retry !== undefined) {
    merged.retry = { ...defaults.retry, ...(own.retry as OptionBag | undefined) };
  }
  const { storage, shutdownTimeout: _timeout, flushCron: _cron, ...engine } = merged;
  const settings = lifecycleSettings(merged, context);
  if (storage !== undefined && typeof storage !== 'function' && typeof storage !== 'object') {
    new OptionChecker(context).fail('storage', storage, 'a Storage or a function that returns one');
  }
  // Checked before the storage exists, so that a wrong option does not leave a storage open.
  resolveOptions(engine, LIFECYCLE_KEYS);
  return {
    name,
    engine: engine as Omit<BufIOOptions<T, U>, 'storage'>,
    storage: storage as Storage<T> | StorageFactory<T> | undefined,
    settings,
  };
}

function lifecycleSettings(options: OptionBag, context: string): BufferSettings {
  const check = new OptionChecker(context);
  const shutdownTimeout = check.number(
    'shutdownTimeout',
    options.shutdownTimeout,
    DEFAULT_SHUTDOWN_TIMEOUT,
    0,
    MAX_TIMER_DELAY,
  );
  const flushCron = options.flushCron;
  if (flushCron !== undefined && (typeof flushCron !== 'string' || flushCron.trim() === '')) {
    check.fail('flushCron', flushCron, 'a cron expression such as "0 * * * * *"');
  }
  return { shutdownTimeout, flushCron: flushCron as string | undefined };
}

function asBag(value: unknown, option: string, context: string): OptionBag {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidOptionsError(option, value, 'an object', context);
  }
  return value as OptionBag;
}

/**
 * Copies options without their `undefined` values (an unset configuration key means "use the
 * default") and with numeric strings turned into numbers: configuration read from environment
 * variables gives `"50"` where the engine wants `50`. Other strings are refused here, by name.
 */
function normalize(options: OptionBag, context: string): OptionBag {
  const out = withoutUndefined(options);
  for (const key of NUMERIC_KEYS) {
    if (key in out) out[key] = toNumber(key, out[key], context);
  }
  if (out.retry !== undefined) {
    const retry = withoutUndefined(asBag(out.retry, 'retry', context));
    for (const key of NUMERIC_RETRY_KEYS) {
      if (key in retry) retry[key] = toNumber(`retry.${key}`, retry[key], context);
    }
    out.retry = retry;
  }
  return out;
}

function withoutUndefined(options: OptionBag): OptionBag {
  const out: OptionBag = {};
  for (const [key, value] of Object.entries(options)) if (value !== undefined) out[key] = value;
  return out;
}

function toNumber(option: string, value: unknown, context: string): unknown {
  if (typeof value !== 'string') return value; // anything else is the engine's to check
  if (!NUMERIC_TEXT.test(value)) {
    throw new InvalidOptionsError(
      option,
      value,
      'a number, or a string holding one ("50")',
      context,
    );
  }
  return Number(value);
}

/** The engine names its context after a buffer; the defaults belong to no buffer. */
function inContext(error: unknown, context: string): unknown {
  if (!(error instanceof InvalidOptionsError)) return error;
  const marker = ', expected ';
  const at = error.message.lastIndexOf(marker);
  const expected = at >= 0 ? error.message.slice(at + marker.length) : error.message;
  return new InvalidOptionsError(error.option, error.value, expected, context);
}
