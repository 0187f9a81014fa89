/**
 * The processes of the request/reply example.
 *
 * Roles:
 *   client  makes `count` requests to the front, `window` of them in flight
 *           at once, checks every answer, and reports to the host;
 *   front   receives every request and hands it, round robin, to a server:
 *           it does not answer, it passes the Request object on (deferred
 *           reply), and the server answers the client directly;
 *   server  does the work and answers through `ctx.reply`.
 *
 * A request's answer never passes through the front, and never through the
 * main thread: the client's private reply route travels inside the Request.
 */

import { threadId } from 'node:worker_threads';
import { isRequest, type ProcessContext, type Ref, type Request } from '../../runtime/index.ts';

/** What a client asks. */
export interface Job {
  readonly x: number;
}

/** What a server answers. */
export interface Answer {
  readonly x: number;
  readonly digest: number;
  readonly server: number;
  readonly thread: number;
}

/** A server's or the front's answer to `{ op: 'stats' }`. */
export interface ProcessStats {
  readonly handled: number;
  readonly thread: number;
}

/** What a client sends the host when it is done. */
export interface ClientReport {
  readonly client: number;
  readonly thread: number;
  readonly answered: number;
  readonly wrong: number;
  /** Requests sent again because the front's mailbox was full. */
  /** Answers per server index. */
  readonly byServer: Record<number, number>;
}

/** The work: an FNV-1a digest of the decimal digits of `x`, stirred `rounds` times. */
export function digest(x: number, rounds: number): number {
  let h = 0x811c9dc5;
  const text = String(x);
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
  }
  return h;
}

function isStatsQuery(value: unknown): boolean {
  return (value as { op?: unknown } | null)?.op === 'stats';
}

/** Answers the jobs the front hands it (`{ job: Request }`), and `{ op: 'stats' }` requests. */
export async function server(ctx: ProcessContext, index: number, rounds: number): Promise<void> {
  let handled = 0;
  for (;;) {
    const m = await ctx.receive();
    if (isRequest(m) && isStatsQuery(m.value)) {
      ctx.reply(m, { handled, thread: threadId } satisfies ProcessStats);
      continue;
    }
    const job = (m as { job?: unknown } | null)?.job;
    if (!isRequest(job)) continue;
    const { x } = job.value as Job;
    handled++;
    ctx.reply(job, { x, digest: digest(x, rounds), server: index, thread: threadId } satisfies Answer);
  }
}

/** Hands every request to the next server, round robin; answers `{ op: 'stats' }` itself. */
export async function front(ctx: ProcessContext, servers: Ref[]): Promise<void> {
  let handled = 0;
  let next = 0;
  for (;;) {
    const m = await ctx.receive();
    if (!isRequest(m)) continue;
    if (isStatsQuery(m.value)) {
      ctx.reply(m, { handled, thread: threadId } satisfies ProcessStats);
      continue;
    }
    const to = servers[next] as Ref;
    next = (next + 1) % servers.length;
    const handOver = { job: m };
    if (!ctx.send(to, handOver)) await ctx.sendWhenRoom(to, handOver); // the server's mailbox is full: wait
    forget(ctx, m);
    handled++;
  }
}

/**
 * A Request that was handed on stays in the forwarder's table (sending
 * copies its reply route); the forwarder will never answer it, so it lets go.
 */
function forget(ctx: ProcessContext, request: Request): void {
  ctx.drop(request);
}

/** Makes `count` requests to `front`, `window` at a time; reports to `report`. */
export async function client(
  ctx: ProcessContext,
  index: number,
  front: Ref,
  count: number,
  window: number,
  rounds: number,
  report: Ref,
): Promise<void> {
  let issued = 0;
  let answered = 0;
  let wrong = 0;
  const byServer: Record<number, number> = {};
  const lane = async (): Promise<void> => {
    while (issued < count) {
      const x = index * 1_000_000 + issued++;
      // A full front mailbox makes the request wait for room, within its timeout.
      const answer = (await ctx.request(front, { x } satisfies Job, { timeout: 10_000 })) as Answer;
      answered++;
      if (answer.x !== x || answer.digest !== digest(x, rounds)) wrong++;
      byServer[answer.server] = (byServer[answer.server] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: window }, lane));
  ctx.send(report, {
    client: index,
    thread: threadId,
    answered,
    wrong,
    byServer,
  } satisfies ClientReport);
}
