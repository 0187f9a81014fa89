/**
 * npm run stress -- [--profile ci|soak] [--seconds N] [--seed S] [--workers W] [--scenario NAME] [--rounds N] [--strict]
 *
 * Runs seeded rounds of every scenario (or one) across real worker threads
 * until the time budget is spent (every chosen scenario runs at least one
 * round), printing progress on stderr, then a report: the seed, operations
 * per second by kind (over the time each scenario ran), faults injected,
 * invariant violations (0 is the only good number), known defects
 * reproduced (bugs already filed against another component; with --strict
 * they count as violations), and memory at start and end. A failing round
 * prints the one-line command that replays it. Exit code 1 on any
 * violation.
 */

import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Prng } from '../ring/test/records.ts';
import { coreFaults } from './core-faults.ts';
import { coreMixed } from './core-scenarios.ts';
import { ringDeath, ringMpsc, ringWakeup } from './ring-scenarios.ts';
import { runtimeMixed } from './runtime-mixed.ts';
import { sandboxEscape } from './sandbox-escape.ts';
import type { RoundContext, Scenario } from './scenario.ts';

const SCENARIOS: readonly Scenario[] = [
  ringMpsc,
  ringDeath,
  ringWakeup,
  coreMixed,
  coreFaults,
  runtimeMixed,
  sandboxEscape,
];

const PROFILES = {
  ci: { seconds: 45, scale: 1 },
  soak: { seconds: 600, scale: 4 },
} as const;

class TimeUp extends Error {}

function usage(): never {
  process.stderr.write(
    `usage: npm run stress -- [--profile ci|soak] [--seconds N] [--seed S] [--workers W] [--scenario ${SCENARIOS.map((s) => s.name).join('|')}] [--rounds N] [--strict]\n`,
  );
  process.exit(2);
}

const { values } = parseArgs({
  options: {
    profile: { type: 'string', default: 'ci' },
    seconds: { type: 'string' },
    seed: { type: 'string' },
    workers: { type: 'string', default: '4' },
    scenario: { type: 'string' },
    rounds: { type: 'string' },
    strict: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) usage();
const profile = PROFILES[values.profile as keyof typeof PROFILES];
if (profile === undefined) usage();
const seconds = values.seconds === undefined ? profile.seconds : Number(values.seconds);
const workers = Number(values.workers);
const maxRounds = values.rounds === undefined ? Number.POSITIVE_INFINITY : Number(values.rounds);
const seed = values.seed === undefined ? (Math.random() * 0x1_0000_0000) >>> 0 : Number(values.seed) >>> 0;
const chosen =
  values.scenario === undefined ? SCENARIOS : SCENARIOS.filter((s) => s.name === values.scenario);
if (!(seconds > 0) || !(workers >= 1) || chosen.length === 0) usage();

// Memory is measured after a full collection, so start and end compare what is retained, not
// garbage the collector has not got to yet (old rounds' buffers are large and collected lazily).
setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;

const MiB = 2 ** 20;
const memory = () => {
  collect();
  collect();
  const m = process.memoryUsage();
  return { heapMb: m.heapUsed / MiB, rssMb: m.rss / MiB, sharedMb: m.arrayBuffers / MiB };
};
const showMemory = (m: ReturnType<typeof memory>) =>
  `heap ${m.heapMb.toFixed(1)} MiB, rss ${m.rssMb.toFixed(1)} MiB, array buffers (shared memory included) ${m.sharedMb.toFixed(1)} MiB`;

interface PerScenario {
  rounds: number;
  seconds: number;
  faults: number;
  counts: Map<string, number>;
}

/**
 * An error nobody caught (a rejected promise inside the runtime, a throw in an
 * event handler) would end the run with no report: it fails the round it
 * happened in instead, with its stack.
 */
let stray: string | null = null;
const onStray = (error: unknown) => {
  const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.stderr.write(`uncaught during the round: ${text}\n`);
  stray ??= `uncaught: ${text.split('\n').slice(0, 6).join(' | ')}`;
};
process.on('uncaughtException', onStray);
process.on('unhandledRejection', onStray);

async function main(): Promise<number> {
  const startMemory = memory();
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const per = new Map<string, PerScenario>(
    chosen.map((s) => [s.name, { rounds: 0, seconds: 0, faults: 0, counts: new Map() }]),
  );
  const defects = new Map<string, number>();
  const failures: string[] = [];
  let rounds = 0;
  let faults = 0;
  let firstPass: ReturnType<typeof memory> | null = null;
  let peak: ReturnType<typeof memory> | null = null;
  const passes: ReturnType<typeof memory>[] = [];
  const prng = new Prng(seed);
  process.stderr.write(
    `stress: profile ${values.profile}, ${seconds} s, seed ${seed}, up to ${workers} workers, scenarios ${chosen.map((s) => s.name).join(', ')}${values.strict ? ', strict' : ''}\n`,
  );
  // Every chosen scenario runs at least once, however short the budget.
  while ((performance.now() < deadline || rounds < chosen.length) && rounds < maxRounds) {
    const scenario = chosen[rounds % chosen.length]!;
    const roundSeed = prng.next();
    const roundDeadline = Math.max(deadline, performance.now());
    const ctx: RoundContext = {
      seed: roundSeed,
      workers,
      scale: profile.scale,
      strict: values.strict,
      check() {
        // A round may overrun the budget by at most a grace period, then it is cut off.
        if (performance.now() > roundDeadline + 60_000) throw new TimeUp('time budget exceeded');
      },
    };
    const roundStart = performance.now();
    const mine = per.get(scenario.name)!;
    stray = null;
    try {
      const result = await scenario.round(ctx);
      if (stray !== null) throw new Error(stray);
      for (const [kind, n] of Object.entries(result.counts)) {
        mine.counts.set(kind, (mine.counts.get(kind) ?? 0) + n);
      }
      for (const [name, n] of Object.entries(result.defects ?? {})) {
        defects.set(name, (defects.get(name) ?? 0) + n);
      }
      faults += result.faults ?? 0;
      mine.faults += result.faults ?? 0;
      const elapsed = ((performance.now() - started) / 1000).toFixed(1);
      const seen = Object.entries(result.defects ?? {});
      process.stderr.write(
        `[${elapsed}s] ${scenario.name} round ${rounds} ok in ${((performance.now() - roundStart) / 1000).toFixed(1)} s: ${Object.entries(
          result.counts,
        )
          .map(([k, v]) => `${v} ${k}`)
          .join(
            ', ',
          )}${result.note ? ` (${result.note})` : ''}${seen.length > 0 ? ` [known defects: ${seen.map(([k, v]) => `${k} x${v}`).join(', ')}]` : ''}\n`,
      );
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      failures.push(`${scenario.name} seed ${roundSeed}: ${message}`);
      process.stderr.write(
        `FAIL ${scenario.name} round ${rounds}: ${message}\n  replay: npm run stress -- --scenario ${scenario.name} --workers ${workers} --rounds 1 --seed ${roundSeed} --profile ${values.profile}${values.strict ? ' --strict' : ''}\n`,
      );
      if (error instanceof TimeUp) break;
    }
    mine.rounds++;
    mine.seconds += (performance.now() - roundStart) / 1000;
    rounds++;
    // Once every scenario has run once, everything a scenario keeps for good (its post offices,
    // the journal) exists: from there on memory must stay flat.
    if (rounds % chosen.length === 0) {
      const m = memory();
      passes.push(m);
      process.stderr.write(`[pass ${passes.length} done] memory: ${showMemory(m)}\n`);
      if (rounds === chosen.length) firstPass = m;
      else {
        const prev = peak as ReturnType<typeof memory> | null;
        peak = {
          heapMb: Math.max(prev?.heapMb ?? 0, m.heapMb),
          rssMb: Math.max(prev?.rssMb ?? 0, m.rssMb),
          sharedMb: Math.max(prev?.sharedMb ?? 0, m.sharedMb),
        };
      }
    }
  }
  const wall = (performance.now() - started) / 1000;
  const endMemory = memory();
  const lines = [
    '',
    `stress report — seed ${seed}, profile ${values.profile}, ${rounds} rounds in ${wall.toFixed(1)} s, ${workers} workers max${values.strict ? ', strict' : ''}`,
  ];
  let operations = 0;
  for (const [name, p] of per) {
    if (p.rounds === 0) continue;
    lines.push(
      `  ${name}: ${p.rounds} rounds in ${p.seconds.toFixed(1)} s, ${p.faults} faults injected   (count, per second of the scenario)`,
    );
    for (const [k, v] of p.counts) {
      operations += v;
      lines.push(
        `    ${k.padEnd(26)} ${String(v).padStart(12)} ${(v / p.seconds).toFixed(0).padStart(10)}/s`,
      );
    }
  }
  lines.push(
    `  operations (every count above)  ${String(operations).padStart(12)}`,
    `  faults injected                 ${String(faults).padStart(12)}`,
    `  invariant violations            ${String(failures.length).padStart(12)}`,
    `  known defects reproduced        ${String([...defects.values()].reduce((a, b) => a + b, 0)).padStart(12)}${
      defects.size > 0
        ? `   (${[...defects].map(([k, v]) => `${k} x${v}`).join(', ')}; filed in /tmp/runtime-bugs.txt, /tmp/core-bugs.txt; --strict counts them as violations)`
        : ''
    }`,
    `  memory (after a full collection) at the start:             ${showMemory(startMemory)}`,
    ...(firstPass === null
      ? []
      : [`  memory after the first pass of every scenario:              ${showMemory(firstPass)}`]),
    ...(peak === null
      ? []
      : [`  memory, highest at the end of a later pass:                 ${showMemory(peak)}`]),
    `  memory at the end:                                          ${showMemory(endMemory)}`,
    ...(passes.length > 1
      ? [
          `  memory at the end of each pass (heap / rss / array buffers, MiB): ${passes.map((m) => `${m.heapMb.toFixed(1)}/${m.rssMb.toFixed(0)}/${m.sharedMb.toFixed(1)}`).join('  ')}`,
        ]
      : []),
    ...failures.map((f) => `  FAIL ${f}`),
    `${failures.length === 0 ? rounds : rounds - failures.length} passed, ${failures.length} failed`,
  );
  process.stdout.write(`${lines.join('\n')}\n`);
  return failures.length === 0 && rounds > 0 ? 0 : 1;
}

process.exitCode = await main();
