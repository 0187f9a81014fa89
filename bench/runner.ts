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
  /** Ping-pong: the pinger's performance.now() cost, ns (median over rounds). */
  readonly timerNs?: number;
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
    if (this.closing) return;
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** The figure a round is judged by: the consumer's (throughput) or the pinger's (latency) result. */
function keyRole(sc: WorkerScenario): 'consumer' | 'pinger' {
  return sc.spec.kind === 'throughput' ? 'consumer' : 'pinger';
}

/** One contender's workers in one scenario, alive from calibration to the last measured round. */
class PairRun {
  private readonly crew: Crew;
  private readonly tag: string;
  private readonly perProducer: number;
  private readonly keyIndex: number;
  private roundNo = 0;
  private n = 0;
  private readonly rates: number[] = [];
  private readonly p50: number[] = [];
  private readonly p99: number[] = [];
  private readonly mean: number[] = [];
  private readonly timer: number[] = [];
  private error: string | undefined;

  constructor(
    private readonly sc: WorkerScenario,
    private readonly contender: Contender,
    private readonly plans: readonly WorkerPlan[],
    private readonly settings: RunSettings,
  ) {
    this.tag = `${sc.spec.name.padEnd(17)} ${contender.name.padEnd(13)}`;
    this.perProducer = sc.spec.kind === 'throughput' ? sc.spec.producers : 1;
    this.keyIndex = plans.findIndex((p) => p.role === keyRole(sc));
    this.crew = new Crew(contender, sc, plans);
  }

  get failed(): boolean {
    return this.error !== undefined;
  }

  /** Round sizes are multiples of the producer count: producers share a round's records. */
  private sizeFor(n: number): number {
    return Math.max(this.perProducer, Math.round(n / this.perProducer) * this.perProducer);
  }

  private async runRound(n: number): Promise<RoleResult> {
    this.roundNo++;
    // Producers share the round's records; every other role handles all of them.
    const counts = this.plans.map((p) => (p.role === 'producer' ? n / this.perProducer : n));
    const results = await this.crew.round(this.roundNo, counts, this.settings.roundTimeoutMs);
    return results[this.keyIndex]!;
  }

  /** Scales the round size so that a round takes about the round budget. */
  private rescale(r: RoleResult, size: number): number {
    const target = (size * this.settings.roundMs * 1e6) / Math.max(r.elapsedNs, 1);
    // Floor: a first round that lost its core to another process must not shrink the rounds to nothing.
    const floor = firstRoundSize(this.sc) / 4;
    return this.sizeFor(Math.min(MAX_ROUND_SIZE, Math.max(floor, target)));
  }

  async ready(): Promise<void> {
    await this.guard(() => this.crew.ready());
  }

  /** Warm-up rounds, discarded: the first sizes the rounds, the second (full runs) re-sizes them warm. */
  async calibrate(): Promise<void> {
    await this.guard(async () => {
      let n = this.sizeFor(firstRoundSize(this.sc));
      n = this.rescale(await this.runRound(n), n);
      if (this.settings.fullWarmup) n = this.rescale(await this.runRound(n), n);
      this.n = n;
    });
  }

  async measure(k: number): Promise<void> {
    await this.guard(async () => {
      const r = await this.runRound(this.n);
      const of = `${k}/${this.settings.rounds}`;
      if (this.sc.spec.kind === 'throughput') {
        const rate = (this.n * 1e9) / r.elapsedNs;
        this.rates.push(rate);
        this.settings.log(`${this.tag} round ${of}: ${formatRate(rate)} (${this.n} records)`);
      } else {
        const lat = r.latency!;
        this.p50.push(lat.p50);
        this.p99.push(lat.p99);
        this.mean.push(lat.mean);
        this.timer.push(lat.timerNs);
        this.settings.log(
          `${this.tag} round ${of}: p50 ${formatNs(lat.p50)}  p99 ${formatNs(lat.p99)} (${this.n} round trips)`,
        );
      }
    });
  }

  /** Runs `step` unless this pair already failed; a failure stops the pair and keeps the reason. */
  private async guard(step: () => Promise<void>): Promise<void> {
    if (this.error !== undefined) return;
    try {
      await step();
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
      this.settings.log(`${this.tag} ERROR: ${this.error}`);
      await this.crew.close();
    }
  }

  async close(): Promise<void> {
    await this.crew.close();
  }

  result(): PairResult {
    const base = { scenario: this.sc.spec.name, contender: this.contender.name, n: this.n };
    if (this.error !== undefined) return { ...base, status: 'error', reason: this.error };
    if (this.sc.spec.kind === 'throughput')
      return { ...base, status: 'ok', throughput: summarize(this.rates) };
    return {
      ...base,
      status: 'ok',
      latency: { p50: summarize(this.p50), p99: summarize(this.p99), mean: summarize(this.mean) },
      timerNs: median(this.timer),
    };
  }
}

/**
 * Runs one scenario with every contender. All contenders' workers start at
 * once (start-up overlaps), calibrate one pair at a time, then the measured
 * rounds interleave: round 1 of every contender, then round 2, and so on, so
 * a slow spell of a shared machine hits every contender rather than one.
 * Idle pairs wait on their event loops and take no CPU.
 */
export async function runScenario(
  sc: WorkerScenario,
  contenders: readonly Contender[],
  settings: RunSettings,
): Promise<PairResult[]> {
  const entries = contenders.map((contender): PairRun | PairResult => {
    const plan = contender.plan(sc.spec);
    if ('notApplicable' in plan) {
      settings.log(`${sc.spec.name.padEnd(17)} ${contender.name.padEnd(13)} n/a: ${plan.notApplicable}`);
      return {
        scenario: sc.spec.name,
        contender: contender.name,
        status: 'n/a',
        reason: plan.notApplicable,
        n: 0,
      };
    }
    return new PairRun(sc, contender, plan.workers, settings);
  });
  const runs = entries.filter((e): e is PairRun => e instanceof PairRun);
  try {
    await Promise.all(runs.map((r) => r.ready()));
    for (const r of runs) await r.calibrate();
    for (let k = 1; k <= settings.rounds; k++) {
      for (const r of runs) await r.measure(k);
    }
  } finally {
    await Promise.all(runs.map((r) => r.close()));
  }
  return entries.map((e) => (e instanceof PairRun ? e.result() : e));
}
