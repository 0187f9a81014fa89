/**
 * Process functions of the runtime scenarios (bench/runtime-*.ts). Each is an
 * async function called as `fn(ctx, ...args)` on a scheduler worker and
 * spawned by this module's URL.
 *
 * The drivers talk to them by request from the host: a request names an
 * operation ({ op, ... }), the process does it and replies with what it
 * measured, timed with its own clock on its own worker. The host's clock is
 * used only for what crosses threads (host spawns, host requests, a kill
 * seen from the host).
 */

import v8 from 'node:v8';
import vm from 'node:vm';
import { threadId } from 'node:worker_threads';
import { isRequest, type ProcessContext, type Ref, type Request } from '../../runtime/index.ts';

const SELF = import.meta.url;

/** What a measured batch reports: its time on the worker's clock, ns. */
export interface Timed {
  readonly ns: number;
}

/** The V8 heap of a worker, after a full GC when `gc`. */
export interface HeapReading {
  readonly used: number;
  readonly gc: boolean;
  readonly thread: number;
}

/** The reply to { op: 'hold' }. */
export interface HoldReply {
  readonly ns: number;
  /** Children held after the op (all of them, unless `error`). */
  readonly held: number;
  /** Why spawning stopped early. */
  readonly error?: string;
  readonly before: HeapReading;
  readonly after: HeapReading;
}

/** A request's value, as the drivers send it. */
type Op =
  | { op: 'spawn-quick'; n: number }
  | { op: 'spawn-idle'; n: number }
  | { op: 'hold'; n: number }
  | { op: 'release' }
  | { op: 'heap' }
  | { op: 'expect'; n: number; value: unknown }
  | { op: 'send'; n: number; value: unknown }
  | { op: 'requests'; n: number; inflight: number }
  | { op: 'stop' };

function nowNs(): number {
  return performance.now() * 1e6;
}

/**
 * A full garbage collection, if this thread can have one: `--expose-gc` set
 * at run time makes `gc` visible in contexts created afterwards. Returns
 * false when it cannot (the heap figures then include garbage).
 */
let gcFn: (() => void) | null | undefined;
function collect(): boolean {
  if (gcFn === undefined) {
    try {
      v8.setFlagsFromString('--expose-gc');
      gcFn = vm.runInNewContext('gc') as () => void;
    } catch {
      gcFn = null;
    }
  }
  if (gcFn === null) return false;
  gcFn();
  return true;
}

/** Serves requests with `handle` until a { op: 'stop' } request (answered 'stopped'). */
async function serve(
  ctx: ProcessContext,
  handle: (op: Op, request: Request) => Promise<unknown>,
): Promise<void> {
  for (;;) {
    const m = await ctx.receive();
    if (!isRequest(m)) continue;
    const op = m.value as Op;
    if (op.op === 'stop') {
      ctx.reply(m, 'stopped');
      return;
    }
    ctx.reply(m, await handle(op, m));
  }
}

// ------------------------------------------------------------------ leaves

/** Returns at once. */
export async function quick(): Promise<void> {}

/** Idles until killed: waits in receive, which holds one doorbell wait and nothing else. */
export async function idle(ctx: ProcessContext): Promise<void> {
  for (;;) await ctx.receive();
}

/** Answers every request with its own value. */
export async function echo(ctx: ProcessContext): Promise<void> {
  for (;;) {
    const m = await ctx.receive();
    if (isRequest(m)) ctx.reply(m, m.value);
  }
}

// ------------------------------------------------------------------ spawn and memory

/**
 * Spawns on its own worker (worker: 'local') on request:
 * - spawn-quick n: n children that return at once; each ref is dropped as it
 *   comes back. Timed: the n spawns (the children end meanwhile).
 * - spawn-idle n: n children that wait; timed: the n spawns. Then (untimed)
 *   each is killed and its ref dropped; the reply also says how long that took.
 * - hold n: n idle children kept (refs held) until release; replies with this
 *   worker's V8 heap in use after a full GC, before and after.
 * - release: kills and drops every held child.
 * - heap: the V8 heap in use after a full GC, and this worker's thread id.
 */
export async function spawner(ctx: ProcessContext): Promise<void> {
  const held: Ref[] = [];
  const heap = (): HeapReading => {
    const gc = collect();
    return { used: v8.getHeapStatistics().used_heap_size, gc, thread: threadId };
  };
  await serve(ctx, async (op) => {
    if (op.op === 'spawn-quick') {
      const start = nowNs();
      for (let i = 0; i < op.n; i++) ctx.drop(await ctx.spawn(SELF, 'quick', [], { worker: 'local' }));
      return { ns: nowNs() - start } satisfies Timed;
    }
    if (op.op === 'spawn-idle') {
      const refs: Ref[] = [];
      const start = nowNs();
      for (let i = 0; i < op.n; i++) refs.push(await ctx.spawn(SELF, 'idle', [], { worker: 'local' }));
      const ns = nowNs() - start;
      const killStart = nowNs();
      for (const ref of refs) {
        ctx.kill(ref);
        ctx.drop(ref);
      }
      return { ns, killNs: nowNs() - killStart };
    }
    if (op.op === 'hold') {
      const before = heap();
      const start = nowNs();
      let error: string | undefined;
      try {
        for (let i = 0; i < op.n; i++) held.push(await ctx.spawn(SELF, 'idle', [], { worker: 'local' }));
      } catch (e) {
        // A limit reached (post office capacity, doorbell bits, heap): report how far it got.
        error = `${(e as Error).name}: ${(e as Error).message}`;
      }
      const ns = nowNs() - start;
      // Let every child reach its first receive (its wait is part of an idle process).
      await new Promise((r) => setImmediate(r));
      return { ns, held: held.length, error, before, after: heap() } satisfies HoldReply;
    }
    if (op.op === 'release') {
      const start = nowNs();
      for (const ref of held) {
        ctx.kill(ref);
        ctx.drop(ref);
      }
      const n = held.length;
      held.length = 0;
      return { ns: nowNs() - start, n };
    }
    if (op.op === 'heap') return heap();
    throw new Error(`spawner: unknown op ${JSON.stringify(op)}`);
  });
}

// ------------------------------------------------------------------ messages between processes

/**
 * Receives rounds of plain messages: on { op: 'expect', n, value } it takes
 * the next n messages, checks each equals `value` (a sequence number when
 * `value` is 'seq': message i must be i & 127, so a lost, doubled or
 * reordered message fails the round), and replies with the time from the
 * first message to the last.
 */
export async function consumer(ctx: ProcessContext): Promise<void> {
  let seq = 0;
  await serve(ctx, async (op) => {
    if (op.op !== 'expect') throw new Error(`consumer: unknown op ${JSON.stringify(op)}`);
    const bySeq = op.value === 'seq';
    let first = 0;
    for (let i = 0; i < op.n; i++) {
      const m = await ctx.receive();
      if (i === 0) first = nowNs();
      const want = bySeq ? seq++ & 127 : op.value;
      if (m !== want) {
        throw new Error(
          `consumer: message ${i} of the round is ${JSON.stringify(m)}, expected ${JSON.stringify(want)}`,
        );
      }
    }
    return { ns: nowNs() - first } satisfies Timed;
  });
}

/**
 * Sends rounds of plain messages to `to`: on { op: 'send', n, value } it
 * sends n messages (i & 127 when `value` is 'seq', else `value`), waiting for
 * room whenever `to`'s mailbox is full, and replies with its own time.
 */
export async function producer(ctx: ProcessContext, to: Ref): Promise<void> {
  let seq = 0;
  await serve(ctx, async (op) => {
    if (op.op !== 'send') throw new Error(`producer: unknown op ${JSON.stringify(op)}`);
    const bySeq = op.value === 'seq';
    const value = op.value;
    let waits = 0;
    const start = nowNs();
    for (let i = 0; i < op.n; i++) {
      const v = bySeq ? seq++ & 127 : value;
      // false: the consumer's mailbox is full; wait until it has room.
      if (!ctx.send(to, v)) {
        waits++;
        await ctx.sendWhenRoom(to, v);
      }
    }
    return { ns: nowNs() - start, waits };
  });
}

// ------------------------------------------------------------------ request / reply

/**
 * Makes requests to `server` on request: { op: 'requests', n, inflight }
 * sends n requests (each value its index), at most `inflight` unanswered at
 * once, checks every reply, and replies with the total time and, when
 * `inflight` is 1, the median and p99 of the round trips.
 */
export async function client(ctx: ProcessContext, server: Ref): Promise<void> {
  await serve(ctx, async (op) => {
    if (op.op !== 'requests') throw new Error(`client: unknown op ${JSON.stringify(op)}`);
    return requestLoop(op.n, op.inflight, (v) => ctx.request(server, v));
  });
}

/** Round trips of `call`: n calls, at most `inflight` at once; latencies (ns) when sequential. */
export async function requestLoop(
  n: number,
  inflight: number,
  call: (value: number) => Promise<unknown>,
): Promise<{ ns: number; p50?: number; p99?: number }> {
  const check = (i: number, reply: unknown): void => {
    if (reply !== i) throw new Error(`request ${i} was answered ${JSON.stringify(reply)}`);
  };
  if (inflight <= 1) {
    const lat = new Float64Array(n);
    const start = nowNs();
    let last = start;
    for (let i = 0; i < n; i++) {
      check(i, await call(i));
      const t = nowNs();
      lat[i] = t - last;
      last = t;
    }
    const ns = last - start;
    lat.sort();
    return { ns, p50: lat[n >> 1] ?? 0, p99: lat[Math.min(n - 1, Math.floor(n * 0.99))] ?? 0 };
  }
  let next = 0;
  const start = nowNs();
  const lane = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      check(i, await call(i));
    }
  };
  await Promise.all(Array.from({ length: Math.min(inflight, n) }, lane));
  return { ns: nowNs() - start };
}

// ------------------------------------------------------------------ supervision tree

/**
 * One node of a tree of `total` processes numbered breadth first: node i's
 * children are fanout*i + 1 .. fanout*i + fanout (those below `total`), each
 * spawned with spawnLink on worker (child index mod workers). Once every
 * child has reported its subtree built, the node reports the size of its own
 * subtree to `parent` ({ built }), then idles until the tree is killed.
 */
export async function treeNode(
  ctx: ProcessContext,
  index: number,
  total: number,
  fanout: number,
  workers: number,
  parent: Ref,
): Promise<void> {
  let children = 0;
  for (let c = fanout * index + 1; c <= fanout * index + fanout && c < total; c++) {
    const child = await ctx.spawnLink(SELF, 'treeNode', [c, total, fanout, workers, ctx.self], {
      worker: c % workers,
    });
    ctx.drop(child);
    children++;
  }
  let built = 1;
  for (let k = 0; k < children; k++) {
    const m = (await ctx.receive()) as { built: number };
    built += m.built;
  }
  await ctx.sendWhenRoom(parent, { built });
  for (;;) await ctx.receive();
}
