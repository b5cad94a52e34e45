import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Cluster, type ClusterOptions } from 'ioredis';
import { freePort } from './free-port.js';
import { OwnRedisServer } from './own-redis-server.js';

const run = promisify(execFile);

/**
 * A real Redis Cluster of the test's own: three masters (no replicas) on spare loopback ports,
 * each with its cluster bus on another spare port, in a temporary directory; slots spread by
 * `redis-cli --cluster create`. Never the shared Redis on 6379.
 */
export class OwnRedisCluster {
  private readonly clients: Cluster[] = [];

  private constructor(
    private readonly dir: string,
    private readonly servers: readonly OwnRedisServer[],
  ) {}

  /** `host:port` of each master. */
  get nodes(): string[] {
    return this.servers.map((server) => `127.0.0.1:${server.port}`);
  }

  /** Starts the servers, creates the cluster, and resolves once every node says it is ok. */
  static async start(masters = 3): Promise<OwnRedisCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'bufio-redis-cluster-'));
    const servers: OwnRedisServer[] = [];
    for (let i = 0; i < masters; i++) {
      const [port, bus] = [await freePort(), await freePort()];
      servers.push(
        new OwnRedisServer(port, dir, [
          '--appendonly',
          'no',
          '--appendfilename',
          `appendonly-${port}.aof`,
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          `nodes-${port}.conf`,
          '--cluster-port',
          String(bus),
          '--cluster-node-timeout',
          '5000',
        ]),
      );
    }
    const cluster = new OwnRedisCluster(dir, servers);
    try {
      await Promise.all(servers.map((server) => server.start()));
      await run('redis-cli', [
        '--cluster',
        'create',
        ...cluster.nodes,
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ]);
      await cluster.waitUntilOk();
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** An ioredis Cluster client of the test's own, disconnected by `stop()`. */
  client(options: ClusterOptions = {}): Cluster {
    const client = new Cluster(
      this.servers.map((server) => ({ host: '127.0.0.1', port: server.port })),
      { ...options, redisOptions: { maxRetriesPerRequest: 0, ...options.redisOptions } },
    );
    client.on('error', () => undefined);
    this.clients.push(client);
    return client;
  }

  /** Kills the servers and removes their files. */
  async stop(): Promise<void> {
    for (const client of this.clients.splice(0)) client.disconnect();
    await Promise.all(this.servers.map((server) => server.stop('SIGKILL')));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async waitUntilOk(): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const states = await Promise.all(
        this.servers.map(async (server) => {
          const { stdout } = await run('redis-cli', ['-p', String(server.port), 'cluster', 'info']);
          return /cluster_state:ok/.test(stdout);
        }),
      );
      if (states.every(Boolean)) return;
      if (Date.now() > deadline) throw new Error('the Redis cluster did not reach state ok');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
