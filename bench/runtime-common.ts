/**
 * What the runtime scenarios (runtime-*.ts) share: their settings, the
 * fixture module's URL, a Runtime started and stopped with a leak check,
 * requests to fixture processes, and the round driver that calibrates each
 * contender's round size and interleaves the measured rounds, as the worker
 * scenarios do (runner.ts).
 */

import type { PostOfficeStats } from '../core/index.ts';
import { type Ref, Runtime, type RuntimeOptions } from '../runtime/index.ts';
import { formatNs, formatRate, max, median, min } from './stats.ts';

/** Process functions of the runtime scenarios, spawned by URL. */
export const PROCS = new URL('./workers/runtime-procs.ts', import.meta.url).href;

export interface RuntimeBenchSettings {
  /** Measured rounds per contender. */
  readonly rounds: number;
  /** Time budget of one measured round, ms; round sizes are calibrated to it. */
  readonly roundMs: number;
  /** Run a second, full-size warm-up round after calibration. */
  readonly fullWarmup: boolean;
  /** --quick: smaller fixed sizes (the million-process run, the tree, samples). */
  readonly quick: boolean;
  /** POSTERN_BENCH_SCALE. */
  readonly scale: number;
  readonly log: (line: string) => void;
}

/** Per-round figures of one contender and their summary. */
export interface Series {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly values: readonly number[];
}

export function series(values: readonly number[]): Series {
  return { median: median(values), min: min(values), max: max(values), values: [...values] };
}

/** Every count of stats() but the capacities: what must come back once a scenario's processes are gone. */
export function footprint(s: PostOfficeStats): Record<string, number> {
  const { capacity: _capacity, retired: _retired, ...counts } = s;
  return counts;
}

/** The counts of `now` that differ from `baseline`, as "name a → b". */
export function moved(baseline: Record<string, number>, now: Record<string, number>): string[] {
  return Object.keys(baseline)
    .filter((k) => now[k] !== baseline[k])
    .map((k) => `${k} ${baseline[k]} → ${now[k]}`);
}

/** Resolves after one macrotask turn of the host's event loop. */
export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Polls `done` about every `everyMs` until it holds or `timeoutMs` passes;
 * resolves with the host time (performance.now(), ms) at which it held, or
 * undefined on timeout. Not a busy loop: on two cores, a host polling
 * stats() without pause would take CPU time from the workers it waits for.
 */
export async function until(
  done: () => boolean,
  timeoutMs: number,
  everyMs = 1,
): Promise<number | undefined> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (done()) return performance.now();
    if (performance.now() > deadline) return undefined;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** A runtime for one scenario, with its post office's counts right after start. */
export class BenchRuntime {
  private readonly refs: Ref[] = [];

  private constructor(
    readonly runtime: Runtime,
    readonly baseline: Record<string, number>,
  ) {}

  static async start(options: RuntimeOptions): Promise<BenchRuntime> {
    const runtime = await Runtime.start(options);
    return new BenchRuntime(runtime, footprint(runtime.stats()));
  }

  /** Spawns a fixture process from the host; killed and dropped by `stop`. */
  async spawn(
    exportName: string,
    args: readonly unknown[],
    options: Parameters<Runtime['spawn']>[3],
  ): Promise<Ref> {
    const ref = await this.runtime.spawn(PROCS, exportName, args, options);
    this.refs.push(ref);
    return ref;
  }

  /** A request to a fixture process that fails loudly (no figure) rather than hang past `timeoutMs`. */
  async ask<T>(ref: Ref, value: unknown, timeoutMs = 120_000): Promise<T> {
    return (await this.runtime.request(ref, value, { timeout: timeoutMs })) as T;
  }

  /**
   * Kills every fixture process, waits for the post office to come back to
   * its counts after start, and shuts the runtime down. Returns the problem
   * (a leak) in one line, or undefined.
   */
  async stop(part: string): Promise<string | undefined> {
    const { runtime, baseline } = this;
    let problem: string | undefined;
    try {
      for (const ref of this.refs) {
        runtime.kill(ref);
        runtime.host.drop(ref);
      }
      this.refs.length = 0;
      const back = await until(() => moved(baseline, footprint(runtime.stats())).length === 0, 10_000);
      if (back === undefined) {
        problem = `${part}: post office not back to its counts after start (${moved(baseline, footprint(runtime.stats())).join(', ')})`;
      }
    } finally {
      await runtime.shutdown();
    }
    return problem;
  }
}

/** One contender of a calibrated, interleaved scenario. */
export interface RoundContender {
  readonly name: string;
  /** First (calibration) round size. */
  readonly firstN: number;
  /** Largest round size (what fits in a mailbox, a process limit...). */
  readonly maxN?: number;
  /** Runs one round of n operations; resolves with its duration, ns, and optional latency percentiles. */
  round(n: number): Promise<RoundTiming>;
}

export interface RoundTiming {
  readonly ns: number;
  readonly p50?: number;
  readonly p99?: number;
}

export interface RoundResult {
  readonly contender: string;
  readonly status: 'ok' | 'error';
  readonly reason?: string;
  /** Operations per measured round. */
  readonly n: number;
  /** Operations per second, one value per round. */
  readonly rate?: Series;
  /** Latency percentiles (ns), one value per round, when the contender reports them. */
  readonly p50?: Series;
  readonly p99?: Series;
}

/**
 * Calibrates each contender's round size to the round budget (one warm-up
 * round, two in full runs), then runs the measured rounds interleaved: round
 * 1 of every contender, then round 2, ... A contender that throws stops
 * with its reason; the others go on.
 */
export async function interleave(
  tag: string,
  contenders: readonly RoundContender[],
  settings: RuntimeBenchSettings,
): Promise<RoundResult[]> {
  const state = contenders.map((c) => ({
    c,
    n: c.firstN,
    rates: [] as number[],
    p50: [] as number[],
    p99: [] as number[],
    error: undefined as string | undefined,
  }));
  const label = (name: string) => `${tag.padEnd(17)} ${name.padEnd(30)}`;
  const guard = async (s: (typeof state)[number], step: () => Promise<void>): Promise<void> => {
    if (s.error !== undefined) return;
    try {
      await step();
    } catch (err) {
      s.error = err instanceof Error ? err.message : String(err);
      settings.log(`${label(s.c.name)} ERROR: ${s.error}`);
    }
  };
  const rescale = (s: (typeof state)[number], ns: number): void => {
    const target = (s.n * settings.roundMs * 1e6) / Math.max(ns, 1);
    s.n = Math.max(
      1,
      Math.round(Math.min(s.c.maxN ?? Number.POSITIVE_INFINITY, Math.max(s.c.firstN / 4, target))),
    );
  };
  for (const s of state) {
    await guard(s, async () => {
      rescale(s, (await s.c.round(s.n)).ns);
      if (settings.fullWarmup) rescale(s, (await s.c.round(s.n)).ns);
    });
  }
  for (let k = 1; k <= settings.rounds; k++) {
    for (const s of state) {
      await guard(s, async () => {
        const r = await s.c.round(s.n);
        const rate = (s.n * 1e9) / r.ns;
        s.rates.push(rate);
        if (r.p50 !== undefined) s.p50.push(r.p50);
        if (r.p99 !== undefined) s.p99.push(r.p99);
        const lat = r.p50 !== undefined ? `, p50 ${formatNs(r.p50)}` : '';
        settings.log(`${label(s.c.name)} round ${k}/${settings.rounds}: ${formatRate(rate)} (${s.n})${lat}`);
      });
    }
  }
  return state.map((s) =>
    s.error !== undefined
      ? { contender: s.c.name, status: 'error', reason: s.error, n: s.n }
      : {
          contender: s.c.name,
          status: 'ok',
          n: s.n,
          rate: series(s.rates),
          p50: s.p50.length ? series(s.p50) : undefined,
          p99: s.p99.length ? series(s.p99) : undefined,
        },
  );
}
