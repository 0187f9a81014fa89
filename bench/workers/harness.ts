/**
 * Worker side of the bench protocol, shared by every contender's worker file.
 * A worker file names its roles and hands `serve` one factory per role; the
 * factory runs once at startup (attach to buffers, acquire producer slots,
 * allocate scratch records) and returns the per-round function.
 *
 * Each round: wait at the barrier until every worker of the run has the
 * command, then run the role for `n` records and report.
 */

import { parentPort, workerData } from 'node:worker_threads';
import {
  CTRL_ARRIVED,
  CTRL_RELEASED,
  CTRL_SLEEP,
  type FromWorker,
  type LatencyStats,
  type Role,
  type RoleResult,
  type ToWorker,
  type WorkerInit,
} from '../protocol.ts';

export type RoleRound = (n: number) => RoleResult | Promise<RoleResult>;
export type RoleFactory = (init: WorkerInit) => RoleRound;

export function serve(roles: Partial<Record<Role, RoleFactory>>): void {
  const port = parentPort;
  if (!port) throw new Error('bench worker files run only as worker threads');
  const init = workerData as WorkerInit;
  const post = (msg: FromWorker): void => port.postMessage(msg);
  const fail = (err: unknown): void => {
    const e = err instanceof Error ? err : new Error(String(err));
    post({ type: 'error', message: `${init.contender}/${init.role}: ${e.message}`, stack: e.stack });
  };
  let round: RoleRound;
  try {
    const factory = roles[init.role];
    if (!factory) throw new Error(`no role ${init.role} in this worker`);
    round = factory(init);
  } catch (err) {
    fail(err);
    return;
  }
  const ctrl = new Int32Array(init.ctrl);
  port.on('message', (msg: ToWorker) => {
    if (msg.type !== 'round') return;
    try {
      barrier(ctrl, init.parties, msg.round);
      Promise.resolve(round(msg.n)).then((result) => post({ type: 'done', round: msg.round, result }), fail);
    } catch (err) {
      fail(err);
    }
  });
  post({ type: 'ready' });
}

/**
 * Two-phase barrier for round `round` (1-based). Phase 1 parks, because the
 * round command reaches each worker at a different moment and spinning
 * workers would steal the CPU from the ones still receiving it on a 2-core
 * machine. Phase 2 spins: everyone is awake by then, and a futex wake-up
 * alone would let one side start tens of microseconds before the other.
 */
function barrier(ctrl: Int32Array, parties: number, round: number): void {
  const target = parties * round;
  if (Atomics.add(ctrl, CTRL_ARRIVED, 1) + 1 === target) {
    Atomics.notify(ctrl, CTRL_ARRIVED);
  } else {
    for (;;) {
      const seen = Atomics.load(ctrl, CTRL_ARRIVED);
      if (seen >= target) break;
      Atomics.wait(ctrl, CTRL_ARRIVED, seen, 50);
    }
  }
  Atomics.add(ctrl, CTRL_RELEASED, 1);
  while (Atomics.load(ctrl, CTRL_RELEASED) < target) {
    // spin: every party is awake and about to arrive
  }
}

/** Spins that a stalled loop makes before it starts sleeping between retries. */
const SPINS_BEFORE_SLEEP = 4096;
/** Sleep per retry after that, in milliseconds. */
const SLEEP_MS = 0.02;

/**
 * Retry pacing for "ring full" / "ring empty" loops in throughput runs. Pure
 * spinning while the other side is merely behind, then short sleeps, so that
 * when there are more spinning threads than cores (two producers and a
 * consumer on two cores) a stalled thread gives its core to the one that can
 * make progress. Every contender's loops use the same pacing.
 */
export class Backoff {
  private spins = 0;
  private readonly sleepWord: Int32Array;

  constructor(ctrl: SharedArrayBuffer) {
    this.sleepWord = new Int32Array(ctrl);
  }

  /** Call after an attempt that made progress. */
  reset(): void {
    this.spins = 0;
  }

  /** Call after an attempt that made none. */
  pause(): void {
    if (++this.spins > SPINS_BEFORE_SLEEP) Atomics.wait(this.sleepWord, CTRL_SLEEP, 0, SLEEP_MS);
  }
}

/** Monotonic clock in nanoseconds (double). Allocates nothing, unlike hrtime.bigint(). */
export function nowNs(): number {
  return performance.now() * 1e6;
}

/**
 * Latency recorder for ping-pong. One clock reading per round trip: sample i
 * is the time between the end of round trip i-1 and the end of round trip i,
 * so each sample includes the cost of one `performance.now()` (reported
 * separately as the timer cost). Allocates its sample array once per round.
 */
export class RoundTrips {
  private readonly samples: Float64Array;
  private index = 0;
  private last = 0;
  readonly startNs: number;

  constructor(n: number) {
    this.samples = new Float64Array(n);
    this.startNs = nowNs();
    this.last = this.startNs;
  }

  /** Marks the end of one round trip. */
  lap(): void {
    const t = performance.now() * 1e6;
    this.samples[this.index++] = t - this.last;
    this.last = t;
  }

  result(): RoleResult {
    const n = this.index;
    const sorted = this.samples.subarray(0, n).sort();
    const latency: LatencyStats = {
      p50: sorted[Math.floor(n * 0.5)] ?? 0,
      p99: sorted[Math.min(n - 1, Math.floor(n * 0.99))] ?? 0,
      mean: n > 0 ? (this.last - this.startNs) / n : 0,
      samples: n,
      timerNs: timerCostNs(),
    };
    return { elapsedNs: this.last - this.startNs, count: n, latency };
  }
}

/** Cost of one performance.now() call in this thread, ns: median of five timed loops. */
export function timerCostNs(): number {
  const calls = 50_000;
  const runs: number[] = [];
  let sink = 0;
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) sink += performance.now();
    runs.push(((performance.now() - t0) * 1e6) / calls);
  }
  // Uses the sum so the loop cannot be optimized away.
  if (sink === -1) runs.push(0);
  runs.sort((a, b) => a - b);
  return runs[2]!;
}
