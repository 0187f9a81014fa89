/**
 * `npm run bench`: every scenario with every contender, in one process run,
 * then a summary on stdout and the report.
 *
 *   npm run bench                      full run; writes BENCHMARKS.md and bench/charts/*.svg
 *   npm run bench -- --quick           short rounds (smoke test); report goes to bench/out/
 *   npm run bench -- --only ping-pong  only the named scenarios (a name or a prefix: ping-pong, one-way)
 *   npm run bench -- --only core       the post office against the bare ring (every core-* scenario)
 *   npm run bench -- --only runtime    processes: spawn, memory, messages, request/reply, kill (every runtime-*)
 *   npm run bench -- --only codec      the message codec candidates
 *   npm run bench -- --write           write BENCHMARKS.md even for a --quick or --only run
 *   POSTERN_BENCH_SCALE=0.5 npm run bench   scales round budgets and iteration counts
 *
 * Progress goes to stderr. Exits 1 if any contender failed (an error, a
 * timeout, a sequence check), so a smoke test can rely on the exit code.
 */

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { type CodecReport, runCodec } from './codec.ts';
import { contendersFor } from './contenders.ts';
import { type CoreMicroReport, runCoreMicro } from './core-micro.ts';
import { startLoadMeter } from './machine-load.ts';
import { type MicroResult, runMicro } from './micro.ts';
import { buildCeiling, type CeilingResult, probeCacheLine, runCeiling } from './native.ts';
import { type RunReport, renderMarkdown, type ScenarioReport, summaryText, writeCharts } from './report.ts';
import { type RunSettings, runScenario } from './runner.ts';
import { blockOf, mergeRuntime, parseRuntimeData, replaceBlock, runtimeFailures } from './runtime-report.ts';
import { type RuntimeReport, runRuntime } from './runtime-run.ts';
import {
  ALL_SCENARIO_NAMES,
  CORE_MICRO_SCENARIOS,
  RUNTIME_SCENARIOS,
  selected,
  WORKER_SCENARIOS,
} from './scenarios.ts';
import { median } from './stats.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const OUT = fileURLToPath(new URL('./out/', import.meta.url));

/** A bad command line: reported without a stack trace. */
class UsageError extends Error {}

interface Args {
  quick: boolean;
  write: boolean;
  only: string[];
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { quick: false, write: false, only: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') args.quick = true;
    else if (a === '--write') args.write = true;
    else if (a === '--only' || a.startsWith('--only=')) {
      const value = a === '--only' ? argv[++i] : a.slice('--only='.length);
      if (!value) throw new UsageError('--only needs a scenario name');
      args.only.push(...value.split(',').filter(Boolean));
    } else if (a === '--help' || a === '-h') {
      process.stdout.write(
        `usage: npm run bench -- [--quick] [--only <scenario>[,...]] [--write]\nscenarios: ${ALL_SCENARIO_NAMES.join(', ')}\n`,
      );
      process.exit(0);
    } else {
      throw new UsageError(`unknown argument ${a} (try --help)`);
    }
  }
  for (const o of args.only) {
    if (!ALL_SCENARIO_NAMES.some((n) => selected(n, [o]))) {
      throw new UsageError(`--only ${o} matches no scenario; scenarios: ${ALL_SCENARIO_NAMES.join(', ')}`);
    }
  }
  return args;
}

function scaleFromEnv(): number {
  const raw = process.env.POSTERN_BENCH_SCALE;
  if (raw === undefined || raw === '') return 1;
  const scale = Number(raw);
  if (!(scale > 0)) throw new UsageError(`POSTERN_BENCH_SCALE must be a positive number, got ${raw}`);
  return scale;
}

function machine(loadStart: readonly number[]): RunReport['machine'] {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryBytes: os.totalmem(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    v8: process.versions.v8,
    loadStart,
    loadEnd: os.loadavg(),
  };
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const scale = scaleFromEnv();
  const log = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  const settings: RunSettings = args.quick
    ? { rounds: 2, roundMs: 30 * scale, fullWarmup: false, roundTimeoutMs: 60_000, log }
    : { rounds: 7, roundMs: 400 * scale, fullWarmup: true, roundTimeoutMs: 120_000, log };
  const started = performance.now();
  const loadStart = os.loadavg();
  log(
    `postern bench: ${args.quick ? 'quick' : 'full'} run, scale ${scale}` +
      (args.only.length ? `, only ${args.only.join(', ')}` : ''),
  );

  const build = await buildCeiling(log);
  const probe = async (): Promise<number | undefined> => {
    const p50 = build.ok ? await probeCacheLine(log) : undefined;
    if (p50 !== undefined) log(`probe             C cache-line round trip p50 ${p50} ns`);
    return p50;
  };
  const scenarios: ScenarioReport[] = [];
  const stopLoadMeter = startLoadMeter();
  let probeBefore = await probe();
  for (const scenario of WORKER_SCENARIOS) {
    if (!selected(scenario.spec.name, args.only)) continue;
    const results = await runScenario(scenario, contendersFor(scenario), settings);
    const probeAfter = await probe();
    scenarios.push({ scenario, results, probeBefore, probeAfter });
    probeBefore = probeAfter;
  }
  const otherLoad = scenarios.length > 0 ? stopLoadMeter() : undefined;
  if (otherLoad !== undefined) {
    log(
      `other processes used ${(otherLoad * 100).toFixed(0)}% of the machine's CPU time during the worker scenarios`,
    );
  }

  let micro: MicroResult[] | undefined;
  if (selected('single-thread', args.only)) {
    micro = await runMicro({ timeMs: (args.quick ? 50 : 500) * scale, log });
  }

  let core: CoreMicroReport | undefined;
  if (CORE_MICRO_SCENARIOS.some((name) => selected(name, args.only))) {
    core = await runCoreMicro({
      timeMs: (args.quick ? 50 : 500) * scale,
      samplesScale: (args.quick ? 0.1 : 1) * scale,
      only: args.only,
      log,
    });
  }

  let codec: CodecReport | undefined;
  if (selected('codec', args.only)) {
    codec = await runCodec({ timeMs: (args.quick ? 50 : 500) * scale, log });
  }

  let runtime: RuntimeReport | undefined;
  if (RUNTIME_SCENARIOS.some((name) => selected(name, args.only))) {
    runtime = await runRuntime(
      {
        rounds: settings.rounds,
        roundMs: settings.roundMs,
        fullWarmup: settings.fullWarmup,
        quick: args.quick,
        scale,
        log,
      },
      args.only,
    );
  }

  let ceiling: CeilingResult | undefined;
  if (selected('ceiling', args.only)) {
    ceiling = await runCeiling((args.quick ? 0.05 : 1) * scale, log);
    if (ceiling.status !== 'ok') log(`ceiling           skipped: ${ceiling.reason}`);
  }

  const timers = scenarios.flatMap((s) =>
    s.results.flatMap((r) => (r.timerNs !== undefined ? [r.timerNs] : [])),
  );
  const report: RunReport = {
    date: new Date(),
    machine: machine(loadStart),
    otherLoad,
    command: ['npm run bench', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(
      ' ',
    ),
    settings: {
      quick: args.quick,
      scale,
      rounds: settings.rounds,
      roundMs: settings.roundMs,
      only: args.only,
    },
    wallMs: performance.now() - started,
    scenarios,
    micro,
    core,
    ceiling,
    codec,
    runtime,
    timerNs: timers.length ? median(timers) : undefined,
  };

  process.stdout.write(`\n${summaryText(report)}`);

  // A partial or quick run must not overwrite the committed report.
  const official = args.write || (!args.quick && args.only.length === 0);
  const reportDir = official ? ROOT : OUT;
  const chartDir = official ? fileURLToPath(new URL('./charts/', import.meta.url)) : `${OUT}charts/`;
  mkdirSync(chartDir, { recursive: true });
  mkdirSync(OUT, { recursive: true });
  const charts = writeCharts(report, chartDir);
  const reportPath = `${reportDir}BENCHMARKS.md`;
  // A partial run written over the committed report keeps what it did not measure.
  const previous =
    official && args.only.length > 0 && existsSync(reportPath) ? readFileSync(reportPath, 'utf8') : undefined;
  const written: RunReport =
    previous !== undefined && runtime !== undefined
      ? { ...report, runtime: mergeRuntime(runtime, parseRuntimeData(previous)) }
      : report;
  let markdown = renderMarkdown(written, official ? 'bench/charts' : 'charts', charts);
  if (previous !== undefined) markdown = keepUnmeasured(previous, markdown, written);
  writeFileSync(reportPath, markdown);
  writeFileSync(`${OUT}results.json`, `${JSON.stringify(report, null, 2)}\n`);
  log(`\nwrote ${reportDir}BENCHMARKS.md, ${charts.size} charts in ${chartDir}, ${OUT}results.json`);
  log(`total ${((performance.now() - started) / 1000).toFixed(1)} s`);

  const failed = scenarios.flatMap((s) => s.results).filter((r) => r.status === 'error');
  if (failed.length > 0) {
    log(
      `${failed.length} contender run(s) failed: ${failed.map((r) => `${r.scenario}/${r.contender}`).join(', ')}`,
    );
    return 1;
  }
  const runtimeFailed = runtime ? runtimeFailures(runtime) : [];
  if (runtimeFailed.length > 0) {
    log(`${runtimeFailed.length} runtime contender run(s) failed: ${runtimeFailed.join(', ')}`);
    return 1;
  }
  if (runtime && runtime.problems.length > 0) {
    log(`${runtime.problems.length} runtime problem(s): ${runtime.problems.join('; ')}`);
    return 1;
  }
  if (core && core.problems.length > 0) {
    log(`${core.problems.length} post office(s) did not come back to baseline: ${core.problems.join('; ')}`);
    return 1;
  }
  return 0;
}

/**
 * BENCHMARKS.md for a partial run written over `previous`. When only the
 * codec or runtime scenarios ran, `previous` is kept whole and only their
 * sections are replaced; otherwise the new report is taken, with the codec
 * and runtime sections of `previous` for those that did not run.
 */
function keepUnmeasured(previous: string, fresh: string, report: RunReport): string {
  const ranOthers =
    report.scenarios.length > 0 ||
    report.micro !== undefined ||
    report.core !== undefined ||
    report.ceiling !== undefined;
  const blocks = [
    ['codec', report.codec !== undefined],
    ['runtime', report.runtime !== undefined],
  ] as const;
  if (!ranOthers) {
    let doc = previous;
    for (const [name, ran] of blocks) if (ran) doc = replaceBlock(doc, name, blockOf(fresh, name)!);
    return doc;
  }
  let doc = fresh;
  for (const [name, ran] of blocks) {
    const old = blockOf(previous, name);
    if (!ran && old !== undefined) doc = replaceBlock(doc, name, old);
  }
  return doc;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const text =
      err instanceof UsageError
        ? err.message
        : err instanceof Error
          ? (err.stack ?? err.message)
          : String(err);
    process.stderr.write(`bench failed: ${text}\n`);
    process.exitCode = 2;
  },
);
