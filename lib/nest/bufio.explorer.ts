import { Inject, Injectable, Logger, type OnModuleInit, Optional } from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import { BufIO } from '../core/bufio.js';
import { asError, InvalidOptionsError } from '../core/errors.js';
import type { Worker } from '../core/worker.js';
import { BufIOMetadataAccessor } from './bufio-metadata.accessor.js';
import { BUFIO_LOGGER_CONTEXT, DEFAULT_SHUTDOWN_TIMEOUT } from './bufio.constants.js';
import { InvalidWorkerError, MissingWorkerError } from './bufio.errors.js';
import { logBufferEvents } from './bufio.logging.js';
import { BufIORegistry } from './bufio.registry.js';
import { BufIOScheduler } from './bufio.scheduler.js';
import { BUFIO_MODULE_OPTIONS, bufferNameOfToken } from './bufio.tokens.js';
import type { BufIOModuleOptions } from './interfaces/bufio-module-options.interface.js';

/** A provider or controller as `DiscoveryService` describes it (its type is not a public export). */
type InstanceWrapper = ReturnType<DiscoveryService['getProviders']>[number];

/** A class or controller found at boot, and what the explorer needs to know about it. */
interface Discovered {
  readonly wrapper: InstanceWrapper;
  /** The class carrying the decorators' metadata. */
  readonly target: abstract new (...args: never[]) => unknown;
  /** The instance to call; for a request-scoped provider, only a stand-in. */
  readonly instance: object;
  /** `EventsWorker (in EventsModule)`, for messages. */
  readonly label: string;
}

/**
 * Finds, at `onModuleInit`, the `@BufferWorker` classes and the `@OnBufferEvent` methods among all
 * providers and controllers, attaches each worker to its buffer and subscribes each method. Fails
 * the boot, with a typed error, on wiring that cannot work: a worker for an unknown buffer, two
 * workers for one buffer, a worker without `work`, a request-scoped worker, a buffer without
 * a worker, a `flushCron` that cannot be scheduled.
 */
@Injectable()
export class BufIOExplorer implements OnModuleInit {
  private readonly logger = new Logger(BUFIO_LOGGER_CONTEXT);

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly accessor: BufIOMetadataAccessor,
    private readonly registry: BufIORegistry,
    private readonly scheduler: BufIOScheduler,
    @Optional()
    @Inject(BUFIO_MODULE_OPTIONS)
    private readonly defaults?: BufIOModuleOptions,
  ) {}

  async onModuleInit(): Promise<void> {
    await this.scheduler.load();
    const providers = this.discovery.getProviders();
    this.warnOnRepeatedRoot(providers);
    const standIns = this.adoptReplacedBuffers(providers);
    const seen = new Set<object>();
    for (const wrapper of [...providers, ...this.discovery.getControllers()]) {
      const found = this.describe(wrapper);
      // One instance may stand behind several tokens (useValue twice, aliases): explore it once.
      if (!found || seen.has(found.instance)) continue;
      seen.add(found.instance);
      const worker = this.accessor.getWorker(found.target);
      if (worker && !standIns.has(worker.buffer)) this.attachWorker(found, worker.buffer);
      this.subscribeHandlers(found, standIns);
    }
    for (const entry of this.registry.all()) {
      if (entry.workerSource === undefined && !entry.replaced) {
        throw new MissingWorkerError(entry.name);
      }
      if (entry.settings.flushCron !== undefined) {
        this.scheduler.checkCron(entry.name, entry.settings.flushCron);
      }
    }
  }

  /**
   * A buffer provider replaced in a test (`overrideProvider(getBufferToken(name))`) never ran the
   * factory that registers its buffer. A `BufIO` put in its place is registered as that buffer:
   * the buffer's `@BufferWorker` and `@OnBufferEvent` methods are attached to it, and it is
   * logged, started and stopped like any. Anything else (a mock with a `push` method) is a
   * stand-in: the workers and event handlers of that buffer are left out. Returns the names of
   * the stand-ins.
   *
   * @throws InvalidOptionsError when the replacing buffer is named otherwise than the one it
   * replaces.
   */
  private adoptReplacedBuffers(providers: readonly InstanceWrapper[]): Set<string> {
    const standIns = new Set<string>();
    for (const wrapper of providers) {
      const name = bufferNameOfToken(wrapper.token);
      if (name === undefined || wrapper.isAlias || this.registry.has(name)) continue;
      const value: unknown = wrapper.instance;
      if (!(value instanceof BufIO)) {
        standIns.add(name);
        continue;
      }
      if (value.name !== name) {
        throw new InvalidOptionsError(
          'name',
          value.name,
          `"${name}": a buffer put in place of getBufferToken('${name}') must have the name of the buffer it replaces`,
          `the provider of getBufferToken('${name}')`,
        );
      }
      this.registry.add({
        name,
        buffer: value as BufIO<unknown, unknown>,
        settings: {
          shutdownTimeout: Number(this.defaults?.shutdownTimeout ?? DEFAULT_SHUTDOWN_TIMEOUT),
          flushCron: undefined,
        },
        workerSource: undefined,
        replaced: true,
      });
      logBufferEvents(value as BufIO<unknown, unknown>, this.logger);
    }
    return standIns;
  }

  private describe(wrapper: InstanceWrapper): Discovered | undefined {
    if (wrapper.isAlias) return undefined; // useExisting: the original is explored
    const value: unknown = wrapper.instance;
    let target: unknown;
    let instance: object | undefined;
    if (value !== null && typeof value === 'object') {
      const prototype: unknown = Object.getPrototypeOf(value);
      if (prototype === null) return undefined; // Object.create(null): no class, no metadata
      // useValue and useFactory providers: the class is the instance's, not the provider's.
      target = (prototype as { constructor?: unknown }).constructor;
      instance = value;
    } else if (!wrapper.inject && typeof wrapper.metatype === 'function') {
      // A request-scoped class not built yet: its class still tells what it is.
      target = wrapper.metatype;
      instance = Object.create(wrapper.metatype.prototype as object) as object;
    }
    if (typeof target !== 'function' || instance === undefined) return undefined;
    const className = (target as { name?: string }).name || 'an anonymous class';
    const label = wrapper.host ? `${className} (in ${wrapper.host.name})` : className;
    return {
      wrapper,
      target: target as Discovered['target'],
      instance,
      label,
    };
  }

  private attachWorker({ wrapper, instance, label }: Discovered, buffer: string): void {
    const where = `@BufferWorker('${buffer}') on ${label}`;
    if (wrapper.isTransient) {
      throw new InvalidWorkerError(
        buffer,
        `${where}: the provider is transient-scoped, but a buffer calls its worker in the ` +
          'background, for every batch, outside any consumer: a worker must be a singleton ' +
          '(the default scope)',
      );
    }
    if (!wrapper.isDependencyTreeStatic()) {
      throw new InvalidWorkerError(
        buffer,
        `${where}: the provider is request-scoped (by its own scope or through a dependency), ` +
          'but a buffer calls its worker in the background, outside any request, so there is no ' +
          'request to build it for: a worker must be a singleton (the default scope) and depend ' +
          'on singletons only',
      );
    }
    if (typeof (instance as { work?: unknown }).work !== 'function') {
      throw new InvalidWorkerError(
        buffer,
        `${where}: the class has no work(records) method; implement BufferWorkerHandler`,
      );
    }
    this.registry.attachWorker(buffer, instance as Worker<unknown, unknown>, label);
  }

  private subscribeHandlers(
    { wrapper, instance, label }: Discovered,
    standIns: ReadonlySet<string>,
  ): void {
    const prototype = Object.getPrototypeOf(instance) as object | null;
    for (const method of this.scanner.getAllMethodNames(prototype)) {
      const handler: unknown = (instance as Record<string, unknown>)[method];
      if (typeof handler !== 'function') continue;
      const subscriptions = this.accessor.getEvents(handler);
      if (subscriptions.length === 0) continue;
      if (wrapper.isTransient || !wrapper.isDependencyTreeStatic()) {
        this.logger.warn(
          `@OnBufferEvent on ${label}.${method} is ignored: the provider is not a singleton ` +
            '(request- or transient-scoped), and buffer events happen outside any request',
        );
        continue;
      }
      for (const { buffer, event } of subscriptions) {
        if (standIns.has(buffer)) continue;
        const where = `@OnBufferEvent('${buffer}', '${event}') on ${label}.${method}`;
        const entry = this.registry.get(buffer, where);
        entry.buffer.on(event, (payload: unknown) => this.call(instance, handler, payload, where));
      }
    }
  }

  /** Runs a handler; what it throws or rejects with is logged, and never reaches the buffer. */
  private call(instance: object, handler: unknown, payload: unknown, where: string): void {
    const fail = (error: unknown): void => {
      const err = asError(error);
      this.logger.error(`${where} failed: ${err.message}`, err.stack);
    };
    try {
      const result: unknown = Reflect.apply(handler as (p: unknown) => unknown, instance, [
        payload,
      ]);
      if (result instanceof Promise) result.catch(fail);
    } catch (error) {
      fail(error);
    }
  }

  private warnOnRepeatedRoot(providers: readonly InstanceWrapper[]): void {
    const roots = providers.filter((w) => w.token === BUFIO_MODULE_OPTIONS && !w.isAlias).length;
    if (roots > 1) {
      this.logger.warn(
        `BufIOModule.forRoot() is imported ${roots} times; import it once, in the root module ` +
          '(its defaults are global): every buffer takes the defaults of only one of them',
      );
    }
  }
}
