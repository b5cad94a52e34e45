import { Injectable } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { asError, InvalidOptionsError } from '../core/errors.js';
import type { FlushTimers } from '../core/options.js';
import { schedulerName } from './bufio.constants.js';

/** The part of `@nestjs/schedule`'s `SchedulerRegistry` BufIO uses; typed here, as it is optional. */
interface SchedulerRegistryLike {
  doesExist(type: 'cron' | 'timeout' | 'interval', name: string): boolean;
  addTimeout(name: string, timeout: unknown): void;
  getTimeout(name: string): unknown;
  deleteTimeout(name: string): void;
  addCronJob(name: string, job: CronJobLike): void;
  deleteCronJob(name: string): void;
}

interface CronJobLike {
  start(): void;
  stop(): unknown;
}

interface CronLibrary {
  CronJob: { from(params: { cronTime: string; onTick: () => void; start: boolean }): CronJobLike };
}

/**
 * Bridges buffers to `@nestjs/schedule` when the application uses it: each armed flush timer is
 * listed in `SchedulerRegistry` as the timeout `bufio:<name>`, and `flushCron` becomes the cron
 * job `bufio:<name>`. `@nestjs/schedule` is an optional peer: it is looked up at boot, and an
 * application without it is unaffected unless it asks for `flushCron`.
 */
@Injectable()
export class BufIOScheduler {
  private registry: SchedulerRegistryLike | undefined;
  private cron: CronLibrary | undefined;
  private loading: Promise<void> | undefined;
  private readonly jobs = new Map<string, CronJobLike>();

  constructor(private readonly moduleRef: ModuleRef) {}

  /** Finds `SchedulerRegistry`, when `ScheduleModule.forRoot()` is imported. Idempotent. */
  load(): Promise<void> {
    this.loading ??= this.find();
    return this.loading;
  }

  /** Whether the flush timers and cron jobs go through `SchedulerRegistry`. */
  get available(): boolean {
    return this.registry !== undefined;
  }

  /**
   * Flush timers for buffer `name`. The registry is consulted when a timer is set, not now:
   * buffers are created before the application's modules are initialized.
   */
  timersFor(name: string): FlushTimers {
    const key = schedulerName(name);
    return {
      set: (callback, delay) => {
        const handle = setTimeout(() => {
          this.forget(key, handle);
          callback();
        }, delay);
        handle.unref();
        const registry = this.registry;
        if (registry) {
          // A timer a shutdown hook removed without our knowing is gone: replace its entry.
          if (registry.doesExist('timeout', key)) registry.deleteTimeout(key);
          registry.addTimeout(key, handle);
        }
        return handle;
      },
      clear: (handle) => {
        clearTimeout(handle as NodeJS.Timeout);
        this.forget(key, handle);
      },
    };
  }

  /**
   * Checks that `expression` can be scheduled: `@nestjs/schedule` imported and the expression
   * valid. Called at boot, so that a mistake fails there rather than at the first tick.
   *
   * @throws InvalidOptionsError naming the buffer, `flushCron` and the expression.
   */
  checkCron(buffer: string, expression: string): void {
    const context = `buffer "${buffer}"`;
    if (!this.registry) {
      throw new InvalidOptionsError(
        'flushCron',
        expression,
        'to be used with @nestjs/schedule: install it and import ScheduleModule.forRoot() in the application',
        context,
      );
    }
    if (!this.cron) {
      throw new InvalidOptionsError(
        'flushCron',
        expression,
        'the "cron" package (a dependency of @nestjs/schedule) to be importable',
        context,
      );
    }
    try {
      this.cron.CronJob.from({ cronTime: expression, onTick: () => undefined, start: false });
    } catch (error) {
      const reason = asError(error).message;
      throw new InvalidOptionsError(
        'flushCron',
        expression,
        `a valid cron expression (${reason})`,
        context,
      );
    }
  }

  /** Starts the cron job `bufio:<buffer>`, registered in `SchedulerRegistry`. */
  addCron(buffer: string, expression: string, onTick: () => void): void {
    this.checkCron(buffer, expression);
    const registry = this.registry as SchedulerRegistryLike;
    const cron = this.cron as CronLibrary;
    const key = schedulerName(buffer);
    const job = cron.CronJob.from({ cronTime: expression, onTick, start: false });
    registry.addCronJob(key, job);
    this.jobs.set(key, job);
    job.start();
  }

  /** Stops every cron job started by `addCron`, and removes it from the registry. */
  removeCrons(): void {
    for (const [key, job] of this.jobs) {
      job.stop();
      // ScheduleModule's own shutdown hook may have removed it already.
      if (this.registry?.doesExist('cron', key)) this.registry.deleteCronJob(key);
    }
    this.jobs.clear();
  }

  private forget(key: string, handle: unknown): void {
    const registry = this.registry;
    if (registry?.doesExist('timeout', key) && registry.getTimeout(key) === handle) {
      registry.deleteTimeout(key);
    }
  }

  private async find(): Promise<void> {
    let schedule: { SchedulerRegistry: abstract new (...args: never[]) => unknown };
    try {
      schedule = await import('@nestjs/schedule');
    } catch {
      return; // not installed
    }
    try {
      this.registry = this.moduleRef.get<SchedulerRegistryLike>(schedule.SchedulerRegistry, {
        strict: false,
      });
    } catch {
      return; // installed, but ScheduleModule.forRoot() is not imported
    }
    try {
      this.cron = (await import('cron')) as CronLibrary;
    } catch {
      this.cron = undefined; // checkCron explains that flushCron cannot be used
    }
  }
}
