import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';

/**
 * A `redis-server` of the test's own on a spare loopback port, with an append-only file fsynced
 * on every write: what it acknowledged survives a SIGKILL, as on a production Redis configured
 * for durability. Never the shared Redis on 6379.
 */
export class OwnRedisServer {
  private child: ChildProcess | undefined;

  /** `extraArgs` are more `redis-server` settings (`--cluster-enabled yes` …), given last. */
  constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly extraArgs: readonly string[] = [],
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts it (again, over the same data) and resolves once it answers PING. */
  async start(): Promise<void> {
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--dir',
        this.dir,
        '--daemonize',
        'no',
        ...this.extraArgs,
      ],
      { stdio: 'ignore' },
    );
    this.child = child;
    const exited = new Promise<never>((_, reject) =>
      child.once('exit', (code) => reject(new Error(`redis-server exited with code ${code}`))),
    );
    exited.catch(() => undefined);
    const deadline = Date.now() + 10_000;
    while (!(await Promise.race([ping(this.port), exited]))) {
      if (Date.now() > deadline) throw new Error(`redis-server on port ${this.port} did not start`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /** Kills it with `signal` and resolves once the process is gone. */
  async stop(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await gone;
  }
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}
