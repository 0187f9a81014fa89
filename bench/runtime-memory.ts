/**
 * `runtime-memory`: what an idle process costs, and `runtime-million`: one
 * million of them at once.
 *
 * Shared memory is read from the post office's own counts: the change in
 * slots in use per pool (tables, groups, routes, capability entries, list
 * nodes) times each pool's slot size (core/layout.ts), plus the change in
 * heap bytes in use (mailbox rings, in whole pages), divided by the number of
 * processes added. The JS heap is the worker's V8 heap in use after a full
 * GC (a `spawner` process reads it on its own worker), before and after.
 *
 * An idle process here is what `idle` in workers/runtime-procs.ts is: a
 * process waiting in `receive`, whose ref its spawner holds (a process nobody
 * references cannot be reached; that one reference is counted too).
 */

import { availableParallelism } from 'node:os';
import type { PostOfficeStats } from '../core/index.ts';
import { ENTRY_BYTES, GROUP_BYTES, NODE_BYTES, ROUTE_BYTES, TABLE_BYTES } from '../core/layout.ts';
import type { Ref } from '../runtime/index.ts';
import { BenchRuntime, type RuntimeBenchSettings, type Series, series, until } from './runtime-common.ts';
import { formatNs } from './stats.ts';
import type { HoldReply } from './workers/runtime-procs.ts';

/** Shared bytes per process, by what holds them. */
export interface SharedBreakdown {
  readonly table: number;
  readonly group: number;
  readonly routes: number;
  readonly capabilities: number;
  readonly nodes: number;
  /** Heap pages: the mailbox ring (ring header + capacity). */
  readonly heap: number;
  readonly total: number;
}

export interface MemoryReport {
  readonly processes: number;
  readonly mailboxCapacity: number;
  /** Shared bytes per idle process, one value per sample. */
  readonly shared: Series;
  /** Breakdown of the median sample. */
  readonly breakdown: SharedBreakdown;
  /** V8 heap bytes per idle process on its worker, one value per sample. */
  readonly heap: Series;
  /** Whether the heap figures were taken after a full GC. */
  readonly gc: boolean;
  /** Spawns of the held processes, per second on one worker (one value per sample). */
  readonly spawnRate: Series;
  /** Size of the whole post office (sized at start for every process the runtime may hold). */
  readonly officeBytes: number;
  readonly processCapacity: number;
  readonly problems: readonly string[];
}

export interface MillionReport {
  readonly target: number;
  readonly workers: number;
  /** Processes alive at the peak (from stats: live groups added). */
  readonly reached: number;
  readonly ok: boolean;
  /** Why it stopped short, when it did. */
  readonly error?: string;
  readonly mailboxCapacity: number;
  /** Time to spawn them all: the slower worker's own time for its share, ms. */
  readonly spawnMs: number;
  /** Each worker's own time for its share, ms. */
  readonly workerSpawnMs: readonly number[];
  readonly sharedPerProcess?: number;
  readonly breakdown?: SharedBreakdown;
  /** V8 heap in use per worker after GC, bytes, and per process. */
  readonly heapPerWorker: readonly number[];
  readonly heapPerProcess?: number;
  readonly officeBytes: number;
  /** RSS of the whole Node process with every process alive, bytes. */
  readonly rss: number;
  /** Killing every process: the kill calls (ms, slowest worker), then until stats are back at baseline. */
  readonly killMs?: number;
  readonly goneMs?: number;
  readonly heapLimitMb: number;
  readonly problems: readonly string[];
}

function breakdownOf(before: PostOfficeStats, after: PostOfficeStats, n: number): SharedBreakdown {
  const per = (delta: number, bytes: number) => (delta * bytes) / n;
  const table = per(after.tables - before.tables, TABLE_BYTES);
  const group = per(after.groups - before.groups, GROUP_BYTES);
  const routes = per(after.routes - before.routes, ROUTE_BYTES);
  const capabilities = per(after.capabilities - before.capabilities, ENTRY_BYTES);
  const nodes = per(after.nodes - before.nodes, NODE_BYTES);
  const heap = per(after.heapBytes - before.heapBytes, 1);
  return {
    table,
    group,
    routes,
    capabilities,
    nodes,
    heap,
    total: table + group + routes + capabilities + nodes + heap,
  };
}

// ------------------------------------------------------------------ runtime-memory

const MEMORY_WORKER_CAPACITY = 65_536;

export async function runMemory(settings: RuntimeBenchSettings): Promise<MemoryReport> {
  const n = settings.quick ? 5_000 : 20_000;
  const samples = settings.quick ? 1 : 3;
  const bench = await BenchRuntime.start({ workers: 2, maxProcessesPerWorker: MEMORY_WORKER_CAPACITY });
  const { runtime } = bench;
  const problems: string[] = [];
  const shared: number[] = [];
  const heap: number[] = [];
  const rates: number[] = [];
  const breakdowns: SharedBreakdown[] = [];
  let gc = true;
  try {
    const spawner = await bench.spawn('spawner', [], { worker: 0 });
    await bench.ask(spawner, { op: 'heap' }); // loads the module's idle function and warms the path
    for (let s = 1; s <= samples; s++) {
      const before = runtime.stats();
      const r = await bench.ask<HoldReply>(spawner, { op: 'hold', n });
      if (r.error !== undefined)
        throw new Error(`spawning ${n} idle processes stopped at ${r.held}: ${r.error}`);
      const after = runtime.stats();
      const b = breakdownOf(before, after, n);
      breakdowns.push(b);
      shared.push(b.total);
      heap.push((r.after.used - r.before.used) / n);
      rates.push((n * 1e9) / r.ns);
      gc &&= r.after.gc;
      settings.log(
        `runtime-memory    sample ${s}/${samples}: ${n} idle processes, ${b.total.toFixed(0)} B shared and ` +
          `${((r.after.used - r.before.used) / n).toFixed(0)} B of JS heap each; spawned in ${formatNs(r.ns)}`,
      );
      await bench.ask(spawner, { op: 'release' });
      // Every held process gone (the full leak check is at the end, in stop).
      const gone = () =>
        runtime.stats().liveGroups === before.liveGroups && runtime.stats().tables === before.tables;
      if ((await until(gone, 30_000)) === undefined) {
        throw new Error('the held processes were not gone 30 s after release');
      }
    }
  } catch (err) {
    problems.push(`runtime-memory: ${(err as Error).message}`);
    settings.log(`runtime-memory    ERROR: ${(err as Error).message}`);
  } finally {
    const problem = await bench.stop('runtime-memory');
    if (problem) problems.push(problem);
  }
  const order = shared.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]);
  const mid = order[order.length >> 1]?.[1] ?? 0;
  return {
    processes: n,
    mailboxCapacity: 256,
    shared: series(shared),
    breakdown: breakdowns[mid] ?? {
      table: 0,
      group: 0,
      routes: 0,
      capabilities: 0,
      nodes: 0,
      heap: 0,
      total: 0,
    },
    heap: series(heap),
    gc,
    spawnRate: series(rates),
    officeBytes: runtime.office.buffer.byteLength,
    processCapacity: 2 * MEMORY_WORKER_CAPACITY,
    problems,
  };
}

// ------------------------------------------------------------------ runtime-million

/** Old-generation limit of each scheduler worker in the million run, MiB. */
const MILLION_HEAP_MB = 6144;
const MILLION_MAILBOX = 64;

export async function runMillion(settings: RuntimeBenchSettings): Promise<MillionReport> {
  const workers = 2;
  const target = settings.quick ? 100_000 : 1_000_000;
  const perWorker = target / workers;
  const problems: string[] = [];
  settings.log(
    `runtime-million   starting ${workers} workers for ${target.toLocaleString('en-US')} processes ` +
      `(${availableParallelism()} cores), mailboxes of ${MILLION_MAILBOX} B, ${MILLION_HEAP_MB} MiB heap limit per worker`,
  );
  const bench = await BenchRuntime.start({
    workers,
    maxProcessesPerWorker: perWorker + 64,
    processMailboxCapacity: MILLION_MAILBOX,
    workerResourceLimits: { maxOldGenerationSizeMb: MILLION_HEAP_MB },
  });
  const { runtime } = bench;
  const officeBytes = runtime.office.buffer.byteLength;
  let crash: string | undefined;
  runtime.onWorkerReplaced = (index, reason) => {
    crash = `worker ${index} died: ${reason.detail}`;
  };
  const report: {
    -readonly [K in keyof MillionReport]?: MillionReport[K];
  } = { target, workers, mailboxCapacity: MILLION_MAILBOX, officeBytes, heapLimitMb: MILLION_HEAP_MB };
  try {
    const spawners: Ref[] = [];
    for (let w = 0; w < workers; w++) {
      const s = await bench.spawn('spawner', [], { worker: w });
      await bench.ask(s, { op: 'heap' });
      spawners.push(s);
    }
    const before = runtime.stats();
    const baseGroups = before.liveGroups;
    // The peak, polled while the spawners work: what was reached even if a worker dies on the way.
    let peak = 0;
    let polling = true;
    const poller = (async () => {
      while (polling) {
        peak = Math.max(peak, runtime.stats().liveGroups - baseGroups);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const start = performance.now();
    const progress = setInterval(() => {
      settings.log(
        `runtime-million   ${(runtime.stats().liveGroups - baseGroups).toLocaleString('en-US')} alive after ` +
          `${((performance.now() - start) / 1000).toFixed(1)} s`,
      );
    }, 2000);
    let replies: HoldReply[] = [];
    try {
      replies = await Promise.race([
        Promise.all(spawners.map((s) => bench.ask<HoldReply>(s, { op: 'hold', n: perWorker }, 600_000))),
        new Promise<never>((_, reject) => {
          const check = setInterval(() => {
            if (crash !== undefined) {
              clearInterval(check);
              reject(new Error(crash));
            }
          }, 100);
          void poller.then(() => clearInterval(check));
        }),
      ]);
    } finally {
      clearInterval(progress);
    }
    // The workers' own clocks: the replies also carry a heap reading after a full GC of a large heap,
    // which the host's clock would count.
    report.spawnMs = Math.max(...replies.map((r) => r.ns / 1e6));
    polling = false;
    await poller;
    const after = runtime.stats();
    const alive = after.liveGroups - baseGroups;
    report.reached = Math.max(peak, alive);
    report.workerSpawnMs = replies.map((r) => r.ns / 1e6);
    const errors = replies.filter((r) => r.error !== undefined).map((r) => r.error!);
    report.rss = process.memoryUsage().rss;
    report.heapPerWorker = replies.map((r) => r.after.used);
    if (alive > 0) {
      report.breakdown = breakdownOf(before, after, alive);
      report.sharedPerProcess = report.breakdown.total;
      report.heapPerProcess = replies.reduce((a, r) => a + (r.after.used - r.before.used), 0) / alive;
    }
    report.ok = errors.length === 0 && alive === target;
    if (errors.length > 0) report.error = errors.join('; ');
    settings.log(
      `runtime-million   ${alive.toLocaleString('en-US')} idle processes alive after ${(report.spawnMs / 1000).toFixed(1)} s; ` +
        `${(((report.sharedPerProcess ?? 0) * alive) / 2 ** 20).toFixed(0)} MiB shared in use, ` +
        `JS heap ${report.heapPerWorker.map((h) => `${(h / 2 ** 20).toFixed(0)} MiB`).join(' + ')}, ` +
        `RSS ${(report.rss / 2 ** 20).toFixed(0)} MiB${report.error ? `; stopped: ${report.error}` : ''}`,
    );
    const killStart = performance.now();
    const released = await Promise.all(
      spawners.map((s) => bench.ask<{ ns: number }>(s, { op: 'release' }, 600_000)),
    );
    report.killMs = Math.max(...released.map((r) => r.ns / 1e6));
    const gone = await until(
      () => runtime.stats().liveGroups === baseGroups && runtime.stats().tables === before.tables,
      120_000,
    );
    if (gone !== undefined) report.goneMs = gone - killStart;
    settings.log(
      `runtime-million   killed in ${report.killMs.toFixed(0)} ms (kill calls), all gone after ` +
        `${report.goneMs === undefined ? 'more than 120 s' : `${report.goneMs.toFixed(0)} ms`}`,
    );
  } catch (err) {
    report.ok = false;
    report.error = (err as Error).message;
    report.reached ??= runtime.stats().liveGroups;
    settings.log(`runtime-million   ERROR: ${report.error}`);
  } finally {
    runtime.onWorkerReplaced = undefined;
    // A crashed worker's processes died with it: the leak check would only report that.
    if (crash === undefined) {
      const problem = await bench.stop('runtime-million');
      if (problem) problems.push(problem);
    } else await runtime.shutdown();
  }
  return {
    target,
    workers,
    reached: report.reached ?? 0,
    ok: report.ok ?? false,
    error: report.error,
    mailboxCapacity: MILLION_MAILBOX,
    spawnMs: report.spawnMs ?? Number.NaN,
    workerSpawnMs: report.workerSpawnMs ?? [],
    sharedPerProcess: report.sharedPerProcess,
    breakdown: report.breakdown,
    heapPerWorker: report.heapPerWorker ?? [],
    heapPerProcess: report.heapPerProcess,
    officeBytes,
    rss: report.rss ?? process.memoryUsage().rss,
    killMs: report.killMs,
    goneMs: report.goneMs,
    heapLimitMb: MILLION_HEAP_MB,
    problems,
  };
}
