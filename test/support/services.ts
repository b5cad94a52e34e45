import { describe } from '@jest/globals';
import net from 'node:net';

/** Where the tests find the project's services (the CI machine runs both on loopback). */
export const POSTGRES_URL =
  process.env.BUFIO_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.BUFIO_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

type Service = 'postgres' | 'redis';

const PROBES: Record<Service, { port: number; hello?: string; expect?: string }> = {
  postgres: { port: 5432 },
  redis: { port: 6379, hello: 'PING\r\n', expect: '+PONG' },
};

function probe(service: Service): Promise<boolean> {
  const { port, hello, expect } = PROBES[service];
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => {
      if (!hello) return done(true);
      socket.write(hello);
    });
    socket.on('data', (data) => done(expect === undefined || data.toString().startsWith(expect)));
  });
}

/**
 * Whether a service the tests need answers. Under `CI=true` a missing service fails the run (CI
 * starts them, so absence is a broken machine); elsewhere its tests are skipped with a loud notice.
 */
export async function serviceAvailable(service: Service): Promise<boolean> {
  if (await probe(service)) return true;
  const message = `${service} is not reachable on 127.0.0.1:${PROBES[service].port}`;
  if (process.env.CI === 'true')
    throw new Error(`${message}; CI=true, so the tests that need it fail`);
  process.stderr.write(
    `\n${'!'.repeat(78)}\n!! SKIPPING the ${service} tests: ${message}.\n!! Start it (see DEVELOPERS.md) to run them.\n${'!'.repeat(78)}\n\n`,
  );
  return false;
}

/** `describe` when the service answers, `describe.skip` (after a loud notice) when it does not. */
export async function describeWith(
  service: Service,
): Promise<typeof describe | typeof describe.skip> {
  return (await serviceAvailable(service)) ? describe : describe.skip;
}
