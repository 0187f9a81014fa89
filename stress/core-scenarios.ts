/**
 * Post-office stress scenarios: real worker threads attached to one post
 * office, each with its own table, groups and mailboxes.
 *
 * - core-mixed: 1..W workers do seeded random operations at once (see
 *   core-mixed.worker.ts for the operations and the checks each worker makes
 *   as it goes), capabilities travelling between them in messages. Then the
 *   main thread stops them, waits until all are quiet, and checks what needs
 *   every worker's view: each message accepted for a route still open at the
 *   end was delivered exactly once (and never more than accepted anywhere);
 *   each monitor of a route that closed, watched from a mailbox still open
 *   and not demonitored, got exactly one down, with the reason the route's
 *   owner saw at its end, and no route open at the end caused a down; the
 *   two groups of every link still standing are both alive or both dead.
 *   Finally every worker releases everything and detaches, and stats() must
 *   equal the baseline taken at the start of the round, and a scan of the
 *   shared memory must find every pool as it was, no lock held, no hazard
 *   posted, every freed slot clean.
 */

import { Worker } from 'node:worker_threads';
import { PostOffice, type PostOfficeStats } from '../core/index.ts';
import {
  C_DOWNS,
  C_IN_USE,
  C_LINK_ENDS,
  C_LIVE_GROUPS,
  C_MONITORS,
  C_OPEN_ROUTES,
  C_OWNED,
  E_OWNER,
  ENTRY_BYTES,
  G_LINKS,
  G_LOCK,
  G_MEMBERS,
  G_REFS,
  G_STATE,
  GROUP_BYTES,
  GS_FREE,
  H_POOLS,
  H_THREADS,
  H_THREADS_OFFSET,
  N_KIND,
  NK_FREE,
  NODE_BYTES,
  PIN_COUNT_MASK,
  POOL_COUNT,
  POOL_ENTRIES,
  POOL_GROUPS,
  POOL_NODES,
  POOL_ROUTES,
  POOL_TABLES,
  R_DOWNS,
  R_LOCK,
  R_MONITORS,
  R_PIN,
  R_REFS,
  R_SLOT_FREED_BIT,
  ROUTE_BYTES,
  T_THREAD,
  TABLE_BYTES,
  TH_HAZARD,
  THREAD_BYTES,
} from '../core/layout.ts';
import { Prng } from '../ring/test/records.ts';
import { exited, sleep } from '../ring/test/workers.ts';
import {
  CTRL_ABORT,
  CTRL_STOP,
  controlBytes,
  type Fate,
  showKey,
  type ToMain,
  type WorkerInit,
  type WorkerReport,
} from './core-mixed-shared.ts';
import type { RoundContext, RoundResult, Scenario } from './scenario.ts';

/** Generous: a phase that takes this long has hung (a lost wake-up, a deadlock). */
const PHASE_TIMEOUT_MS = 30_000;

/** The worker threads of one round, and what each has posted. */
class Crew {
  readonly threads: Worker[] = [];
  private readonly posted: ToMain[][] = [];
  private failure: string | null = null;
  private readonly closed = new Set<number>();

  constructor(inits: WorkerInit[]) {
    const entry = new URL('./core-mixed.worker.ts', import.meta.url).href;
    // Workers under Node 20 cannot load TypeScript by themselves: the ring tests' shim registers tsx.
    const shim = new URL('../ring/test/ts-worker.mjs', import.meta.url);
    for (const init of inits) {
      const i = init.worker;
      const thread = new Worker(shim, { workerData: { ...init, entry } });
      this.posted.push([]);
      thread.on('message', (m: ToMain) => {
        if (m.kind === 'violation') this.failure ??= m.message;
        else {
          if (m.kind === 'closed') this.closed.add(i);
          this.posted[i]!.push(m);
        }
      });
      thread.on('error', (error) => {
        this.failure ??= `worker ${i} crashed: ${error.stack ?? error.message}`;
      });
      thread.on('exit', (code) => {
        if (!this.closed.has(i)) this.failure ??= `worker ${i} exited (code ${code}) before it was done`;
      });
      this.threads.push(thread);
    }
  }

  /** Waits until every worker has posted a message of `kind`, and returns them in worker order. */
  async all<K extends ToMain['kind']>(kind: K, ctx: RoundContext): Promise<Extract<ToMain, { kind: K }>[]> {
    const deadline = performance.now() + PHASE_TIMEOUT_MS;
    for (;;) {
      if (this.failure !== null) throw new Error(this.failure);
      if (this.posted.every((q) => q.some((m) => m.kind === kind))) {
        return this.posted.map(
          (q) =>
            q.splice(
              q.findIndex((m) => m.kind === kind),
              1,
            )[0]!,
        ) as Extract<ToMain, { kind: K }>[];
      }
      if (performance.now() > deadline) {
        const late = this.posted.flatMap((q, i) => (q.some((m) => m.kind === kind) ? [] : [i]));
        throw new Error(
          `hang: workers ${late.join(', ')} did not report ${kind} within ${PHASE_TIMEOUT_MS} ms`,
        );
      }
      ctx.check();
      await sleep(2);
    }
  }

  send(i: number, message: unknown): void {
    this.threads[i]!.postMessage(message);
  }
}

/**
 * Post offices kept from round to round, one per message limit. A round
 * leaves its office exactly as it found it (that is what it checks), so the
 * next round starts clean, on slots freed and reused many times with their
 * generations advancing; and memory stays flat over a long soak, where
 * fresh buffers would pile up faster than the collector frees them. An
 * office whose round failed is dropped: it may hold locks of terminated
 * workers.
 */
const offices = new Map<number, PostOffice>();

const MESSAGE_LIMITS = [16 << 10, 32 << 10, 64 << 10];

/** The kept office for `maxMessageBytes`; the first call makes all three, so memory is flat from the first round on. */
function officeFor(maxMessageBytes: number, workers: number): PostOffice {
  for (const limit of MESSAGE_LIMITS)
    if (limit !== maxMessageBytes && !offices.has(limit)) makeOffice(limit, workers);
  const kept = offices.get(maxMessageBytes);
  if (kept !== undefined && kept.stats().capacity.threads >= workers + 1) return kept;
  kept?.detach();
  return makeOffice(maxMessageBytes, workers);
}

function makeOffice(maxMessageBytes: number, workers: number): PostOffice {
  const office = PostOffice.create({
    maxThreads: Math.max(16, workers + 1),
    maxRoutes: 4096,
    maxGroups: 2048,
    maxTables: 64,
    maxCapabilities: 1 << 16,
    maxNodes: 1 << 16,
    heapBytes: 16 << 20,
    mailboxCapacity: 4096,
    maxMessageBytes,
  });
  offices.set(maxMessageBytes, office);
  return office;
}

export const coreMixed: Scenario = {
  name: 'core-mixed',
  async round(ctx: RoundContext): Promise<RoundResult> {
    const prng = new Prng(ctx.seed);
    const workers = ctx.workers <= 1 ? 1 : prng.int(2, ctx.workers);
    const maxMessageBytes = MESSAGE_LIMITS[prng.int(0, 2)]!;
    const office = officeFor(maxMessageBytes, workers);
    // Taken now, not at create: a kept office must be back to what this round found.
    const baseline = office.stats();
    const bitmaps = snapshotBitmaps(office.buffer);
    const control = new SharedArrayBuffer(controlBytes(workers));
    const ctrl = new Int32Array(control);
    const opsMs = Math.round(prng.int(1200, 2200) * ctx.scale);
    const crew = new Crew(
      Array.from({ length: workers }, (_, worker) => ({
        buffer: office.buffer,
        control,
        worker,
        workers,
        seed: prng.next(),
      })),
    );
    const counts: Record<string, number> = {};
    let faults = 0;
    let clean = false;
    try {
      // Bootstrap: worker i's token for worker j goes to worker j.
      const hellos = await crew.all('hello', ctx);
      for (let j = 0; j < workers; j++) {
        crew.send(j, { kind: 'peers', tokens: hellos.map((h) => h.tokens[j] ?? null) });
      }
      const until = performance.now() + opsMs;
      while (performance.now() < until) {
        ctx.check();
        await sleep(20);
      }
      Atomics.store(ctrl, CTRL_STOP, 1);
      const reports = (await crew.all('report', ctx)).map((m) => m.report);
      for (const r of reports) {
        faults += r.faults;
        for (const [kind, n] of Object.entries(r.counts)) counts[kind] = (counts[kind] ?? 0) + n;
      }
      crossCheck(reports);
      for (let j = 0; j < workers; j++) crew.send(j, { kind: 'teardown' });
      await crew.all('closed', ctx);
      await Promise.all(crew.threads.map((w) => exited(w)));
      const leaks = compareStats(office.stats(), baseline);
      if (leaks !== undefined)
        throw new Error(`leak: stats() after teardown differs from the baseline: ${leaks}`);
      const scan = scanOffice(office.buffer, bitmaps);
      if (scan.length > 0) throw new Error(`scan: ${scan.slice(0, 5).join('; ')}`);
      clean = true;
    } finally {
      Atomics.store(ctrl, CTRL_ABORT, 1);
      Atomics.store(ctrl, CTRL_STOP, 1);
      await Promise.all(crew.threads.map((w) => w.terminate()));
      if (!clean) {
        offices.delete(maxMessageBytes);
        office.detach();
      }
    }
    return {
      counts,
      faults,
      note: `${workers} workers, ${opsMs} ms of operations, maxMessageBytes ${maxMessageBytes}`,
    };
  },
};

/** The checks that need every worker's report. Throws on the first violation, naming the invariant. */
function crossCheck(reports: WorkerReport[]): void {
  const fates = new Map<number, Fate>();
  for (const r of reports) for (const [mailbox, fate] of r.fates) fates.set(mailbox, fate);
  const accepted = new Map<string, number>();
  for (const r of reports) for (const [mailbox, n] of r.sent) accepted.set(`${mailbox}:${r.worker}`, n);
  const delivered = new Map<string, number>();
  for (const r of reports) {
    for (const [mailbox, sender, n] of r.received) {
      delivered.set(`${mailbox}:${sender}`, n);
      const sent = accepted.get(`${mailbox}:${sender}`) ?? 0;
      if (n > sent) {
        throw new Error(
          `exactly-once: mailbox ${showKey(mailbox)} delivered ${n} messages of worker ${sender}, which had ${sent} accepted`,
        );
      }
    }
  }
  for (const [k, n] of accepted) {
    const [mailbox, sender] = k.split(':').map(Number) as [number, number];
    const fate = fates.get(mailbox);
    if (fate === undefined)
      throw new Error(`exactly-once: worker ${sender} sent to unknown mailbox ${showKey(mailbox)}`);
    const got = delivered.get(k) ?? 0;
    if (fate === 'open' && got !== n) {
      throw new Error(
        `exactly-once: mailbox ${showKey(mailbox)} open to the end delivered ${got} of the ${n} messages worker ${sender} had accepted`,
      );
    }
  }
  for (const r of reports) {
    for (const m of r.monitors) {
      const fate = fates.get(m.watched);
      const what = `monitor of worker ${r.worker} on ${showKey(m.watched)}`;
      if (fate === undefined) throw new Error(`monitor: ${what}: unknown route`);
      if (m.downs > 1) throw new Error(`monitor: ${what} got ${m.downs} downs`);
      if (m.demonitored && m.downs > 0) throw new Error(`monitor: ${what} got a down after demonitor`);
      if (m.downs === 1 && fate === 'open')
        throw new Error(`down-reason: ${what} got a down, the route is open`);
      if (m.downs === 1 && m.reason !== fate) {
        throw new Error(`down-reason: ${what} got reason ${m.reason}, its owner saw ${fate}`);
      }
      if (m.downs === 0 && !m.demonitored && m.watcherOpen && fate !== 'open') {
        throw new Error(`monitor: ${what} got no down, the route ended ${fate}, the watcher is open`);
      }
    }
  }
  const dead = new Map<number, boolean>();
  for (const r of reports) for (const [group, d] of r.groups) dead.set(group, d);
  for (const r of reports) {
    for (const [own, partner] of r.links) {
      const a = dead.get(own);
      const b = dead.get(partner);
      if (a === undefined || b === undefined) {
        throw new Error(`closure: link ${showKey(own)} - ${showKey(partner)} names an unknown group`);
      }
      if (a !== b) {
        throw new Error(
          `closure: linked groups ${showKey(own)} (${a ? 'dead' : 'alive'}) and ${showKey(partner)} (${b ? 'dead' : 'alive'})`,
        );
      }
    }
  }
}

export function compareStats(now: PostOfficeStats, base: PostOfficeStats): string | undefined {
  const { capacity: _n, ...a } = now;
  const { capacity: _b, ...b } = base;
  const diffs = Object.keys(b)
    .filter((k) => a[k as keyof typeof a] !== b[k as keyof typeof b])
    .map((k) => `${k} ${b[k as keyof typeof b]} -> ${a[k as keyof typeof a]}`);
  return diffs.length === 0 ? undefined : diffs.join(', ');
}

const POOL_NAMES = ['routes', 'groups', 'tables', 'entries', 'nodes', 'heap'];

function poolOf(i32: Int32Array, p: number) {
  return {
    bitmap: i32[H_POOLS + 3 * p]! >> 2,
    slots: i32[H_POOLS + 3 * p + 1]! >> 2,
    count: i32[H_POOLS + 3 * p + 2]!,
  };
}

export function snapshotBitmaps(buffer: SharedArrayBuffer): Int32Array[] {
  const i32 = new Int32Array(buffer);
  const out: Int32Array[] = [];
  for (let p = 0; p < POOL_COUNT; p++) {
    const { bitmap, count } = poolOf(i32, p);
    out.push(i32.slice(bitmap, bitmap + Math.ceil(count / 32)));
  }
  return out;
}

function popcount(v: number): number {
  v -= (v >>> 1) & 0x55555555;
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

/**
 * Reads the whole post office once everyone has let go: every pool's bitmap
 * as it was at the start and agreeing with its in-use counter, every free
 * slot clean (no lock held, no reference, list or owner left), no hazard
 * posted, every global counter at zero. Returns what it found wrong.
 */
export function scanOffice(buffer: SharedArrayBuffer, baseline: Int32Array[]): string[] {
  const i32 = new Int32Array(buffer);
  const problems: string[] = [];
  for (let p = 0; p < POOL_COUNT; p++) {
    const { bitmap, count } = poolOf(i32, p);
    const base = baseline[p]!;
    let used = 0;
    for (let k = 0; k < base.length; k++) {
      const v = Atomics.load(i32, bitmap + k);
      // The bits past `count` in the last word are set for good; they are no slot.
      const real = k === base.length - 1 && (count & 31) !== 0 ? v & ((1 << (count & 31)) - 1) : v;
      used += popcount(real);
      if (v !== base[k]) problems.push(`${POOL_NAMES[p]} bitmap word ${k}: ${v} != ${base[k]}`);
    }
    const counter = Atomics.load(i32, C_IN_USE + p);
    if (counter !== used)
      problems.push(`${POOL_NAMES[p]}: ${used} slots marked in use, counter says ${counter}`);
  }
  const freeSlots = (p: number, bytes: number, check: (w: number, index: number) => void) => {
    const { bitmap, slots, count } = poolOf(i32, p);
    for (let s = 0; s < count; s++) {
      if ((Atomics.load(i32, bitmap + (s >> 5)) & (1 << (s & 31))) !== 0) continue;
      check(slots + s * (bytes >> 2), s);
    }
  };
  const expectWord = (what: string, actual: number, ok: boolean) => {
    if (!ok) problems.push(`${what} is ${actual}`);
  };
  freeSlots(POOL_ROUTES, ROUTE_BYTES, (w, r) => {
    const pin = Atomics.load(i32, w + R_PIN);
    expectWord(
      `free route ${r} lifecycle`,
      pin,
      pin === 0 || ((pin & R_SLOT_FREED_BIT) !== 0 && (pin & PIN_COUNT_MASK) === 0),
    );
    for (const [name, word] of [
      ['lock', R_LOCK],
      ['refs', R_REFS],
      ['monitors', R_MONITORS],
      ['downs', R_DOWNS],
    ] as const) {
      const v = Atomics.load(i32, w + word);
      expectWord(`free route ${r} ${name}`, v, v === 0);
    }
  });
  freeSlots(POOL_GROUPS, GROUP_BYTES, (w, g) => {
    for (const [name, word, want] of [
      ['lock', G_LOCK, 0],
      ['state', G_STATE, GS_FREE],
      ['refs', G_REFS, 0],
      ['members', G_MEMBERS, 0],
      ['links', G_LINKS, 0],
    ] as const) {
      const v = Atomics.load(i32, w + word);
      expectWord(`free group ${g} ${name}`, v, v === want);
    }
  });
  freeSlots(POOL_TABLES, TABLE_BYTES, (w, t) => {
    const v = Atomics.load(i32, w + T_THREAD);
    expectWord(`free table ${t} owner thread`, v, v === -1 || v === 0);
  });
  freeSlots(POOL_ENTRIES, ENTRY_BYTES, (w, e) => {
    const v = Atomics.load(i32, w + E_OWNER);
    expectWord(`free entry ${e} owner`, v, v === 0);
  });
  freeSlots(POOL_NODES, NODE_BYTES, (w, n) => {
    const v = Atomics.load(i32, w + N_KIND);
    expectWord(`free node ${n} kind`, v, v === NK_FREE);
  });
  const threadBase = i32[H_THREADS_OFFSET]! >> 2;
  for (let t = 0; t < i32[H_THREADS]!; t++) {
    const v = Atomics.load(i32, threadBase + t * (THREAD_BYTES >> 2) + TH_HAZARD);
    expectWord(`thread ${t} hazard`, v, v === 0);
  }
  for (const [name, word] of [
    ['open routes', C_OPEN_ROUTES],
    ['live groups', C_LIVE_GROUPS],
    ['monitors', C_MONITORS],
    ['pending downs', C_DOWNS],
    ['link ends', C_LINK_ENDS],
    ['owned', C_OWNED],
  ] as const) {
    const v = Atomics.load(i32, word);
    expectWord(`counter ${name}`, v, v === 0);
  }
  return problems;
}
