import { performance } from 'node:perf_hooks';

/** What `LoopStalls` saw. */
export interface LoopStallReport {
  /** The longest a tick came late, in ms: the loop held, or the process not scheduled. */
  readonly maxLateMs: number;
  /** The longest a tick came late while this process was running, in ms (see `LoopStalls`). */
  readonly maxBusyMs: number;
  readonly ticks: number;
}

/**
 * Measures how long this process holds its event loop, apart from how long a loaded machine keeps
 * it waiting. A timer ticks every `intervalMs`; when a tick comes late, the lateness counts as a
 * stall of the process only as far as the process used CPU meanwhile (`process.cpuUsage()`, all
 * its threads): synchronous work that holds the loop burns CPU all along, while a process that the
 * OS did not schedule uses none. On an idle machine both numbers agree; CPU used by other threads
 * (GC helpers, libuv's pool) can only make `maxBusyMs` larger, never hide a stall.
 */
export class LoopStalls {
  private timer: NodeJS.Timeout | undefined;
  private lastAt = 0;
  private lastCpu = 0;
  private maxLateMs = 0;
  private maxBusyMs = 0;
  private ticks = 0;

  constructor(private readonly intervalMs = 10) {}

  start(): void {
    this.lastAt = performance.now();
    this.lastCpu = cpuMs();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
  }

  stop(): LoopStallReport {
    clearInterval(this.timer);
    this.tick();
    return { maxLateMs: this.maxLateMs, maxBusyMs: this.maxBusyMs, ticks: this.ticks };
  }

  private tick(): void {
    const at = performance.now();
    const cpu = cpuMs();
    const late = Math.max(0, at - this.lastAt - this.intervalMs);
    const busy = Math.min(late, cpu - this.lastCpu);
    this.maxLateMs = Math.max(this.maxLateMs, late);
    this.maxBusyMs = Math.max(this.maxBusyMs, busy);
    this.lastAt = at;
    this.lastCpu = cpu;
    this.ticks++;
  }
}

function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}
