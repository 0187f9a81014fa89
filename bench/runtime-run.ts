/**
 * The runtime scenarios (`npm run bench -- --only runtime`): processes on
 * scheduler workers, measured through the process API. Each scenario starts
 * its own Runtime (two workers, the machine's cores), kills what it spawned
 * and checks that the post office is back to its counts after start before
 * shutting it down; a leak is a problem that fails the run.
 *
 *   runtime-spawn      runtime-spawn.ts    processes spawned per second per worker
 *   runtime-memory     runtime-memory.ts   shared memory and JS heap per idle process
 *   runtime-million    runtime-memory.ts   one million idle processes at once
 *   runtime-messages   runtime-messages.ts one-way throughput between processes on two workers
 *   runtime-request    runtime-request.ts  request/reply against piscina
 *   runtime-kill-tree  runtime-kill.ts     kill of a linked tree of 10,000 processes
 */

import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startLoadMeter } from './machine-load.ts';
import type { RuntimeBenchSettings } from './runtime-common.ts';
import { type KillTreeReport, runKillTree } from './runtime-kill.ts';
import { type MemoryReport, type MillionReport, runMemory, runMillion } from './runtime-memory.ts';
import { type MessagesReport, runMessages } from './runtime-messages.ts';
import { type RequestReport, runRequest } from './runtime-request.ts';
import { runSpawn, type SpawnReport } from './runtime-spawn.ts';
import { type RUNTIME_SCENARIOS, selected } from './scenarios.ts';

export type { RuntimeBenchSettings } from './runtime-common.ts';

export interface RuntimeReport {
  readonly spawn?: SpawnReport;
  readonly memory?: MemoryReport;
  readonly million?: MillionReport;
  readonly messages?: MessagesReport;
  readonly request?: RequestReport;
  readonly killTree?: KillTreeReport;
  /** Leaks and failures, one line each; empty when none. */
  readonly problems: readonly string[];
  /** Wall time of the runtime scenarios, ms. */
  readonly wallMs: number;
  /**
   * Share (0..1) of all CPU time that other processes used while each
   * scenario ran (machine-load.ts), and over all of them; undefined off Linux.
   */
  readonly otherLoad?: Readonly<Partial<Record<RuntimeScenario | 'all', number>>>;
  /** The code measured: the commit, and whether ring/, core/ or runtime/ had uncommitted changes. */
  readonly code?: string;
  /**
   * Where each scenario's figures come from ("2026-11-22, `command`"), for
   * those taken over from an earlier run by a partial `--write` run
   * (runtime-report.ts, mergeRuntime); absent: this run.
   */
  readonly measured?: Readonly<Partial<Record<RuntimeScenario, string>>>;
}

export type RuntimeScenario = (typeof RUNTIME_SCENARIOS)[number];

/** The RuntimeReport field of each scenario. */
export const RUNTIME_FIELDS = {
  'runtime-spawn': 'spawn',
  'runtime-memory': 'memory',
  'runtime-million': 'million',
  'runtime-messages': 'messages',
  'runtime-request': 'request',
  'runtime-kill-tree': 'killTree',
} as const satisfies Record<RuntimeScenario, keyof RuntimeReport>;

/** "commit 1c4f2fa" (with "+ uncommitted changes in ..." when the measured folders differ from it). */
function codeVersion(): string | undefined {
  const cwd = fileURLToPath(new URL('../', import.meta.url));
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'ring', 'core', 'runtime'], {
      cwd,
      encoding: 'utf8',
    })
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => line.slice(3).split('/')[0]!);
    const folders = [...new Set(dirty)];
    return `commit ${commit}${folders.length > 0 ? ` + uncommitted changes in ${folders.map((f) => `${f}/`).join(', ')}` : ''}`;
  } catch {
    return undefined;
  }
}

export async function runRuntime(
  settings: RuntimeBenchSettings,
  only: readonly string[],
): Promise<RuntimeReport> {
  const started = performance.now();
  // Taken first: the code that is loaded is the code at start (other work may commit meanwhile).
  const code = codeVersion();
  const on = (name: RuntimeScenario) => selected(name, only);
  const report: { -readonly [K in keyof RuntimeReport]: RuntimeReport[K] } = { problems: [], wallMs: 0 };
  const problems: string[] = [];
  const otherLoad: Partial<Record<RuntimeScenario | 'all', number>> = {};
  const stopAll = startLoadMeter();
  const step = async <T extends { problems: readonly string[] }>(
    name: RuntimeScenario,
    run: () => Promise<T>,
  ): Promise<T | undefined> => {
    if (!on(name)) return undefined;
    const t = performance.now();
    const stopLoad = startLoadMeter();
    try {
      const r = await run();
      problems.push(...r.problems);
      return r;
    } catch (err) {
      const message = `${name}: ${(err as Error).stack ?? String(err)}`;
      problems.push(message.split('\n')[0]!);
      settings.log(`${name.padEnd(17)} FAILED: ${message}`);
      return undefined;
    } finally {
      const load = stopLoad();
      if (load !== undefined) otherLoad[name] = load;
      settings.log(
        `${name.padEnd(17)} took ${((performance.now() - t) / 1000).toFixed(1)} s` +
          (load !== undefined
            ? `; other processes used ${(load * 100).toFixed(0)}% of the CPU meanwhile`
            : ''),
      );
    }
  };
  report.spawn = await step('runtime-spawn', () => runSpawn(settings));
  report.memory = await step('runtime-memory', () => runMemory(settings));
  report.million = await step('runtime-million', () => runMillion(settings));
  report.messages = await step('runtime-messages', () => runMessages(settings));
  report.request = await step('runtime-request', () => runRequest(settings));
  report.killTree = await step('runtime-kill-tree', () => runKillTree(settings));
  report.problems = problems;
  report.wallMs = performance.now() - started;
  const all = stopAll();
  if (all !== undefined) otherLoad.all = all;
  report.otherLoad = otherLoad;
  report.code = code;
  return report;
}
