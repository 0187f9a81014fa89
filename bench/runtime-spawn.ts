/**
 * `runtime-spawn`: processes spawned per second on one worker.
 *
 * Contenders, every one spawning onto worker 0, so each figure is per worker:
 * - local, child returns at once: a `spawner` process on worker 0 awaits
 *   `ctx.spawn(url, 'quick', [], { worker: 'local' })` n times and drops each
 *   ref; the children run and end meanwhile (so the figure is spawn + run +
 *   exit). Timed on the worker.
 * - local, child waits: the same with children that stay alive (waiting in
 *   receive); they are killed after the timed part.
 * - host, one at a time: `runtime.spawn(url, 'quick', [], { worker: 0 })`
 *   awaited n times from the main thread: a request to worker 0's control
 *   route and its reply per spawn. Timed on the host.
 * - host, 32 in flight: the same with 32 spawns outstanding at once.
 *
 * After each round the host waits (untimed) until every child is gone, so
 * rounds do not pile up processes.
 */

import type { Ref } from '../runtime/index.ts';
import {
  BenchRuntime,
  interleave,
  PROCS,
  type RoundContender,
  type RoundResult,
  type RuntimeBenchSettings,
  until,
} from './runtime-common.ts';
import type { Timed } from './workers/runtime-procs.ts';

export const SPAWN_IN_FLIGHT = 32;
/** Live children a waiting-children round may hold at once. */
const MAX_IDLE_ROUND = 30_000;

export const SPAWN_CONTENDERS = {
  localQuick: 'local, child returns at once',
  localIdle: 'local, child waits',
  hostSequential: 'host, one at a time',
  hostInFlight: `host, ${SPAWN_IN_FLIGHT} in flight`,
} as const;

export interface SpawnReport {
  readonly results: readonly RoundResult[];
  readonly problems: readonly string[];
}

export async function runSpawn(settings: RuntimeBenchSettings): Promise<SpawnReport> {
  const bench = await BenchRuntime.start({ workers: 2, maxProcessesPerWorker: 65_536 });
  const { runtime } = bench;
  const problems: string[] = [];
  let results: RoundResult[] = [];
  try {
    const spawner = await bench.spawn('spawner', [], { worker: 0 });
    const live = runtime.stats().liveGroups;
    // Untimed: the round's children are all gone before the next round starts.
    const settle = async (): Promise<void> => {
      if ((await until(() => runtime.stats().liveGroups <= live, 30_000)) === undefined) {
        throw new Error(`${runtime.stats().liveGroups - live} children still alive 30 s after the round`);
      }
    };
    const hostSpawns = async (n: number, inflight: number): Promise<{ ns: number }> => {
      let next = 0;
      const start = performance.now();
      const lane = async (): Promise<void> => {
        while (next < n) {
          next++;
          const ref: Ref = await runtime.spawn(PROCS, 'quick', [], { worker: 0 });
          runtime.host.drop(ref);
        }
      };
      await Promise.all(Array.from({ length: Math.min(inflight, n) }, lane));
      const ns = (performance.now() - start) * 1e6;
      await settle();
      return { ns };
    };
    const contenders: RoundContender[] = [
      {
        name: SPAWN_CONTENDERS.localQuick,
        firstN: 2000,
        round: async (n) => {
          const r = await bench.ask<Timed>(spawner, { op: 'spawn-quick', n });
          await settle();
          return r;
        },
      },
      {
        name: SPAWN_CONTENDERS.localIdle,
        firstN: 2000,
        maxN: MAX_IDLE_ROUND,
        round: async (n) => {
          const r = await bench.ask<Timed>(spawner, { op: 'spawn-idle', n });
          await settle();
          return r;
        },
      },
      { name: SPAWN_CONTENDERS.hostSequential, firstN: 500, round: (n) => hostSpawns(n, 1) },
      { name: SPAWN_CONTENDERS.hostInFlight, firstN: 1000, round: (n) => hostSpawns(n, SPAWN_IN_FLIGHT) },
    ];
    results = await interleave('runtime-spawn', contenders, settings);
  } finally {
    const problem = await bench.stop('runtime-spawn');
    if (problem) problems.push(problem);
  }
  return { results, problems };
}
