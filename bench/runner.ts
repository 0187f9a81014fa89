/**
 * Main-thread driver of worker scenarios: starts the workers of one
 * (scenario, contender) pair, calibrates the round size to a time budget,
 * runs the measured rounds and summarizes them with medians.
 *
 * Figures come from inside the workers: the consumer's time from the round
 * barrier to its last record (throughput), the pinger's per-round-trip
 * clock (latency). The main thread sits idle on its event loop meanwhile, so
 * the workers have the machine's cores to themselves.
 */

import { Worker } from 'node:worker_threads';
import type { Contender, WorkerPlan } from './contenders.ts';
import { CTRL_WORDS, type FromWorker, type RoleResult, type ToWorker, type WorkerInit } from './protocol.ts';
import type { WorkerScenario } from './scenarios.ts';
import { formatNs, formatRate, max, median, min } from './stats.ts';

const BOOT = new URL('./workers/boot.mjs', import.meta.url);

export interface RunSettings {
  /** Measured rounds per pair. */
  readonly rounds: number;
  /** Time budget of one measured round, in milliseconds; the round size is calibrated to it. */
  readonly roundMs: number;
  /** Run a second, full-size warm-up round after calibration. */
  readonly fullWarmup: boolean;
  /** A round that takes longer than this fails the pair (a lost wake-up, a deadlock). */
  readonly roundTimeoutMs: number;
  /** Progress lines (stderr in run.ts). */
  readonly log: (line: string) => void;
}

export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly values: readonly number[];
}

export interface PairResult {
  readonly scenario: string;
  readonly contender: string;
  readonly status: 'ok' | 'n/a' | 'error';
  /** Why not applicable, or the error. */
  readonly reason?: string;
  /** Records (throughput) or round trips (ping-pong) per measured round. */
  readonly n: number;
  /** Records per second, one value per round. */
  readonly throughput?: Summary;
  /** Round-trip latency in ns: per-round p50, p99 and mean. */
  readonly latency?: { readonly p50: Summary; readonly p99: Summary; readonly mean: Summary };
  /** Wall time the pair took, start-up included. */
  readonly wallMs: number;
}

function summarize(values: readonly number[]): Summary {
  return { median: median(values), min: min(values), max: max(values), values };
}

/** First-round sizes, before calibration: small enough for the slowest contender to finish quickly. */
function firstRoundSize(sc: WorkerScenario): number {
  const spec = sc.spec;
  if (spec.kind === 'ping-pong') return spec.wait === 'spin' ? 5_000 : 500;
  return spec.size >= 4096 ? 5_000 : 20_000;
}

const MAX_ROUND_SIZE = 50_000_000;

/** A started set of workers for one pair. */
class Crew {
  private readonly workers: Worker[] = [];
  private readonly inboxes: FromWorker[][] = [];
  private readonly waiters: (((msg: FromWorker) => void) | undefined)[] = [];
  private failure: Error | undefined;
  private onFailure: ((err: Error) => void) | undefined;
  private closing = false;

  constructor(contender: Contender, sc: WorkerScenario, plans: readonly WorkerPlan[]) {
    const ctrl = new SharedArrayBuffer(CTRL_WORDS * 4);
    plans.forEach((plan, i) => {
      const init: WorkerInit = {
        entry: contender.entry.href,
        contender: contender.name,
        role: plan.role,
        scenario: sc.spec,
        producerId: plan.producerId,
        parties: plans.length,
        ctrl,
        shared: plan.shared,
      };
      const worker = new Worker(BOOT, { workerData: init, transferList: [...(plan.transfer ?? [])] });
      this.workers.push(worker);
      this.inboxes.push([]);
      this.waiters.push(undefined);
      worker.on('message', (msg: FromWorker) => {
        if (msg.type === 'error') {
          const err = new Error(msg.message);
          if (msg.stack) err.stack = msg.stack;
          this.fail(err);
          return;
        }
        const waiter = this.waiters[i];
        if (waiter) {
          this.waiters[i] = undefined;
          waiter(msg);
        } else {
          this.inboxes[i]!.push(msg);
        }
      });
      worker.on('error', (err) => this.fail(err));
      worker.on('exit', (code) => {
        if (!this.closing)
          this.fail(new Error(`${contender.name} ${plan.role} worker exited (code ${code})`));
      });
    });
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.onFailure?.(err);
  }

  private next(i: number): Promise<FromWorker> {
    const queued = this.inboxes[i]!.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve) => {
      this.waiters[i] = resolve;
    });
  }

  /** Resolves with one message from every worker, or rejects on failure or timeout. */
  private collect(timeoutMs: number, what: string): Promise<FromWorker[]> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${what} took longer than ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.onFailure = (err) => {
        clearTimeout(timer);
        reject(err);
      };
      Promise.all(this.workers.map((_, i) => this.next(i))).then((msgs) => {
        clearTimeout(timer);
        this.onFailure = undefined;
        resolve(msgs);
      });
    });
  }

  async ready(): Promise<void> {
    await this.collect(60_000, 'worker start-up');
  }

  /** Runs round `round`; worker i handles `counts[i]` records. */
  async round(round: number, counts: readonly number[], timeoutMs: number): Promise<RoleResult[]> {
    this.workers.forEach((w, i) => {
      const msg: ToWorker = { type: 'round', round, n: counts[i]! };
      w.postMessage(msg);
    });
    const answers = await this.collect(timeoutMs, `round ${round}`);
    return answers.map((a) => {
      if (a.type !== 'done' || a.round !== round) throw new Error(`unexpected answer ${JSON.stringify(a)}`);
      return a.result;
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** The figure a round is judged by: the consumer's (throughput) or the pinger's (latency) result. */
function keyResult(
  sc: WorkerScenario,
  plans: readonly WorkerPlan[],
  results: readonly RoleResult[],
): RoleResult {
  const role = sc.spec.kind === 'throughput' ? 'consumer' : 'pinger';
  const i = plans.findIndex((p) => p.role === role);
  return results[i]!;
}

export async function runPair(
  sc: WorkerScenario,
  contender: Contender,
  settings: RunSettings,
): Promise<PairResult> {
  const started = performance.now();
  const name = sc.spec.name;
  const tag = `${name.padEnd(17)} ${contender.name.padEnd(12)}`;
  const plan = contender.plan(sc.spec);
  if ('notApplicable' in plan) {
    settings.log(`${tag} n/a: ${plan.notApplicable}`);
    return {
      scenario: name,
      contender: contender.name,
      status: 'n/a',
      reason: plan.notApplicable,
      n: 0,
      wallMs: 0,
    };
  }
  const plans = plan.workers;
  const perProducer = sc.spec.kind === 'throughput' ? sc.spec.producers : 1;
  // Each role gets its own count: producers share the round's records, everyone else handles all of them.
  const sizeFor = (n: number): number => Math.max(perProducer, Math.round(n / perProducer) * perProducer);
  const crew = new Crew(contender, sc, plans);
  let roundNo = 0;
  const runRound = async (n: number): Promise<RoleResult> => {
    roundNo++;
    const counts = plans.map((p) => (p.role === 'producer' ? n / perProducer : n));
    const results = await crew.round(roundNo, counts, settings.roundTimeoutMs);
    return keyResult(sc, plans, results);
  };
  try {
    await crew.ready();
    // Calibrate: time a small round, scale the round size to the budget.
    let n = sizeFor(firstRoundSize(sc));
    let r = await runRound(n);
    const rescale = (res: RoleResult, size: number): number =>
      sizeFor(
        Math.min(MAX_ROUND_SIZE, Math.max(100, (size * settings.roundMs * 1e6) / Math.max(res.elapsedNs, 1))),
      );
    n = rescale(r, n);
    if (settings.fullWarmup) {
      r = await runRound(n);
      n = rescale(r, n);
    }
    const rates: number[] = [];
    const p50: number[] = [];
    const p99: number[] = [];
    const mean: number[] = [];
    for (let k = 1; k <= settings.rounds; k++) {
      r = await runRound(n);
      if (sc.spec.kind === 'throughput') {
        const rate = (n * 1e9) / r.elapsedNs;
        rates.push(rate);
        settings.log(`${tag} round ${k}/${settings.rounds}: ${formatRate(rate)} (${n} records)`);
      } else {
        const lat = r.latency!;
        p50.push(lat.p50);
        p99.push(lat.p99);
        mean.push(lat.mean);
        settings.log(
          `${tag} round ${k}/${settings.rounds}: p50 ${formatNs(lat.p50)}  p99 ${formatNs(lat.p99)} (${n} round trips)`,
        );
      }
    }
    const wallMs = performance.now() - started;
    if (sc.spec.kind === 'throughput') {
      return {
        scenario: name,
        contender: contender.name,
        status: 'ok',
        n,
        throughput: summarize(rates),
        wallMs,
      };
    }
    return {
      scenario: name,
      contender: contender.name,
      status: 'ok',
      n,
      latency: { p50: summarize(p50), p99: summarize(p99), mean: summarize(mean) },
      wallMs,
    };
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    settings.log(`${tag} ERROR: ${reason}`);
    return {
      scenario: name,
      contender: contender.name,
      status: 'error',
      reason,
      n: 0,
      wallMs: performance.now() - started,
    };
  } finally {
    await crew.close();
  }
}
