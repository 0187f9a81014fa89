/**
 * `runtime-kill-tree`: the time to kill a supervision tree of TREE_SIZE
 * processes.
 *
 * The tree: `treeNode` processes (workers/runtime-procs.ts) numbered breadth
 * first, each spawning its TREE_FANOUT children with spawnLink on worker
 * (child index mod 2), so links cross workers at every level. Each node
 * reports once its subtree is built; the root reports to the host, which
 * monitors the root. Then, timed from the host:
 * - the `runtime.kill(root)` call itself (the post office kills the whole
 *   linked web synchronously: every group dead, every route closed);
 * - until the root's down reaches the host's mailbox;
 * - until the post office shows every process gone: no live group and no
 *   table left of the tree, i.e. both workers have noticed each death and
 *   torn the process down.
 * The tree is rebuilt for every sample (its build rate is reported too).
 */

import { isDown } from '../runtime/index.ts';
import {
  BenchRuntime,
  PROCS,
  type RuntimeBenchSettings,
  type Series,
  series,
  until,
} from './runtime-common.ts';
import { formatNs } from './stats.ts';

export const TREE_SIZE = 10_000;
export const TREE_FANOUT = 10;

export interface KillTreeReport {
  readonly processes: number;
  readonly fanout: number;
  readonly samples: number;
  /** ms per sample. */
  readonly killCallMs: Series;
  readonly downMs: Series;
  readonly goneMs: Series;
  /** Tree build: processes per second (spawnLink, half of them across workers). */
  readonly buildRate: Series;
  readonly problems: readonly string[];
}

export async function runKillTree(settings: RuntimeBenchSettings): Promise<KillTreeReport> {
  const samples = settings.quick ? 2 : 5;
  const workers = 2;
  const bench = await BenchRuntime.start({ workers, maxProcessesPerWorker: 4 * TREE_SIZE });
  const { runtime } = bench;
  const problems: string[] = [];
  const killCall: number[] = [];
  const down: number[] = [];
  const gone: number[] = [];
  const build: number[] = [];
  try {
    for (let s = 1; s <= samples; s++) {
      const base = runtime.stats();
      const buildStart = performance.now();
      const root = await runtime.spawn(
        PROCS,
        'treeNode',
        [0, TREE_SIZE, TREE_FANOUT, workers, runtime.host.self],
        {
          worker: 0,
        },
      );
      const monitor = runtime.monitor(root);
      let built: { built: number };
      try {
        built = (await runtime.receive({
          timeout: 60_000,
          match: (m) => m !== null && typeof m === 'object' && 'built' in m,
        })) as { built: number };
      } catch (err) {
        const now = runtime.stats();
        throw new Error(
          `the tree did not report built within 60 s (${(err as Error).name}); ` +
            `${now.liveGroups - base.liveGroups} of ${TREE_SIZE} processes alive, ${now.tables - base.tables} tables`,
        );
      }
      const buildMs = performance.now() - buildStart;
      const live = runtime.stats().liveGroups - base.liveGroups;
      if (built.built !== TREE_SIZE || live !== TREE_SIZE) {
        throw new Error(
          `the tree reports ${built.built} processes and ${live} are alive, expected ${TREE_SIZE}`,
        );
      }
      build.push((TREE_SIZE * 1000) / buildMs);

      const t0 = performance.now();
      runtime.kill(root);
      const t1 = performance.now();
      const d = await runtime.receive({ timeout: 60_000, match: (m) => isDown(m) && m.monitor === monitor });
      const t2 = performance.now();
      const t3 = await until(() => {
        const now = runtime.stats();
        return now.liveGroups === base.liveGroups && now.tables === base.tables;
      }, 60_000);
      if (t3 === undefined) throw new Error('the tree was not gone 60 s after the kill');
      runtime.host.drop(root);
      if (isDown(d)) runtime.host.drop(d.ref);
      killCall.push(t1 - t0);
      down.push(t2 - t0);
      gone.push(t3 - t0);
      settings.log(
        `runtime-kill-tree sample ${s}/${samples}: built ${TREE_SIZE} in ${formatNs(buildMs * 1e6)}; ` +
          `kill call ${formatNs((t1 - t0) * 1e6)}, down at ${formatNs((t2 - t0) * 1e6)}, all gone at ${formatNs((t3 - t0) * 1e6)}`,
      );
    }
  } catch (err) {
    problems.push(`runtime-kill-tree: ${(err as Error).message}`);
    settings.log(`runtime-kill-tree ERROR: ${(err as Error).message}`);
  } finally {
    const problem = await bench.stop('runtime-kill-tree');
    if (problem) problems.push(problem);
  }
  return {
    processes: TREE_SIZE,
    fanout: TREE_FANOUT,
    samples: killCall.length,
    killCallMs: series(killCall),
    downMs: series(down),
    goneMs: series(gone),
    buildRate: series(build),
    problems,
  };
}
