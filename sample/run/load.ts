import { Agent, request } from 'node:http';

/** What the load script sends, and where. */
export interface LoadOptions {
  /** Base URL of the app (`http://127.0.0.1:1234`). */
  readonly url: string;
  /** Events to send. */
  readonly count: number;
  /** Requests in flight at once. */
  readonly concurrency: number;
  /** Events per request. */
  readonly perRequest: number;
  /** Called every `progressEvery` ms with the events sent so far. */
  readonly onProgress?: (sent: number) => void;
  readonly progressEvery?: number;
}

/** How the load went, from the client's side. */
export interface LoadResult {
  /** Events the app accepted (2xx). */
  readonly accepted: number;
  /** Events the app refused (any other status), by status. */
  readonly refused: Readonly<Record<number, number>>;
  /** Events whose request failed without an answer. */
  readonly unanswered: number;
  readonly requests: number;
  readonly durationMs: number;
}

const TYPES = ['page_view', 'click', 'scroll', 'signup', 'purchase'] as const;

/** Event `i` of the load: deterministic, so runs are comparable. */
function event(i: number): object {
  return {
    type: TYPES[i % TYPES.length],
    payload: { user: `u${i % 997}`, path: `/products/${i % 113}`, seq: i },
    at: Date.now(),
  };
}

/**
 * Sends `count` events to `POST /events` over keep-alive connections, `concurrency` requests at a
 * time, and counts what the app accepted.
 */
export async function sendLoad(options: LoadOptions): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.concurrency });
  const target = new URL('/events', options.url);
  const started = performance.now();
  let next = 0;
  let sent = 0;
  let accepted = 0;
  let unanswered = 0;
  let requests = 0;
  const refused: Record<number, number> = {};
  const timer = options.onProgress
    ? setInterval(() => options.onProgress?.(sent), options.progressEvery ?? 100)
    : undefined;

  const lane = async (): Promise<void> => {
    while (next < options.count) {
      const from = next;
      const size = Math.min(options.perRequest, options.count - from);
      next += size;
      const batch = Array.from({ length: size }, (_, k) => event(from + k));
      const body = JSON.stringify(size === 1 ? batch[0] : batch);
      requests++;
      try {
        const status = await post(agent, target, body);
        if (status >= 200 && status < 300) accepted += size;
        else refused[status] = (refused[status] ?? 0) + size;
      } catch {
        unanswered += size;
      }
      sent += size;
    }
  };
  try {
    await Promise.all(Array.from({ length: options.concurrency }, lane));
  } finally {
    if (timer) clearInterval(timer);
    agent.destroy();
  }
  options.onProgress?.(sent);
  return { accepted, refused, unanswered, requests, durationMs: performance.now() - started };
}

/** POSTs a JSON body; resolves with the status once the answer has been read. */
export function post(agent: Agent | undefined, url: URL, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
