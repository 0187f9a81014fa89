/**
 * npm run stress -- [--profile ci|soak] [--seconds N] [--seed S] [--workers W] [--scenario NAME]
 *
 * Runs seeded rounds of every scenario (or one) across real worker threads
 * until the time budget is spent, printing progress on stderr, then a report:
 * the seed, operations per second by kind, faults injected, invariant
 * violations (0 is the only good number), and memory at start and end. A
 * failing round prints the one-line command that replays it. Exit code 1 on
 * any violation.
 */

import { parseArgs } from 'node:util';
import { Prng } from '../ring/test/records.ts';
import { coreMixed } from './core-scenarios.ts';
import { ringDeath, ringMpsc, ringWakeup } from './ring-scenarios.ts';
import type { RoundContext, Scenario } from './scenario.ts';

const SCENARIOS: readonly Scenario[] = [ringMpsc, ringDeath, ringWakeup, coreMixed];

const PROFILES = {
  ci: { seconds: 45, scale: 1 },
  soak: { seconds: 600, scale: 4 },
} as const;

class TimeUp extends Error {}

function usage(): never {
  process.stderr.write(
    `usage: npm run stress -- [--profile ci|soak] [--seconds N] [--seed S] [--workers W] [--scenario ${SCENARIOS.map((s) => s.name).join('|')}] [--rounds N]\n`,
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

const memory = () => {
  const m = process.memoryUsage();
  return { heapMb: m.heapUsed / 2 ** 20, rssMb: m.rss / 2 ** 20, sharedMb: m.arrayBuffers / 2 ** 20 };
};

async function main(): Promise<number> {
  const startMemory = memory();
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const totals = new Map<string, number>();
  const failures: string[] = [];
  let rounds = 0;
  let faults = 0;
  const prng = new Prng(seed);
  process.stderr.write(
    `stress: profile ${values.profile}, ${seconds} s, seed ${seed}, up to ${workers} workers, scenarios ${chosen.map((s) => s.name).join(', ')}\n`,
  );
  while (performance.now() < deadline && rounds < maxRounds) {
    const scenario = chosen[rounds % chosen.length]!;
    const roundSeed = prng.next();
    const ctx: RoundContext = {
      seed: roundSeed,
      workers,
      scale: profile.scale,
      check() {
        // A round may overrun the budget by at most a grace period, then it is cut off.
        if (performance.now() > deadline + 60_000) throw new TimeUp('time budget exceeded');
      },
    };
    const roundStart = performance.now();
    try {
      const result = await scenario.round(ctx);
      for (const [kind, n] of Object.entries(result.counts)) {
        const key = `${scenario.name}.${kind}`;
        totals.set(key, (totals.get(key) ?? 0) + n);
      }
      faults += result.faults ?? 0;
      const elapsed = ((performance.now() - started) / 1000).toFixed(1);
      process.stderr.write(
        `[${elapsed}s] ${scenario.name} round ${rounds} ok in ${((performance.now() - roundStart) / 1000).toFixed(1)} s: ${Object.entries(
          result.counts,
        )
          .map(([k, v]) => `${v} ${k}`)
          .join(', ')}${result.note ? ` (${result.note})` : ''}\n`,
      );
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      failures.push(`${scenario.name} seed ${roundSeed}: ${message}`);
      process.stderr.write(
        `FAIL ${scenario.name} round ${rounds}: ${message}\n  replay: npm run stress -- --scenario ${scenario.name} --workers ${workers} --rounds 1 --seed ${roundSeed} --profile ${values.profile}\n`,
      );
      if (error instanceof TimeUp) break;
    }
    rounds++;
  }
  const wall = (performance.now() - started) / 1000;
  const endMemory = memory();
  const lines = [
    '',
    `stress report — seed ${seed}, profile ${values.profile}, ${rounds} rounds in ${wall.toFixed(1)} s, ${workers} workers max`,
    ...[...totals].map(
      ([k, v]) => `  ${k.padEnd(28)} ${String(v).padStart(12)}   ${(v / wall).toFixed(0).padStart(10)}/s`,
    ),
    `  faults injected              ${String(faults).padStart(12)}`,
    `  invariant violations         ${String(failures.length).padStart(12)}`,
    `  memory start: heap ${startMemory.heapMb.toFixed(1)} MiB, rss ${startMemory.rssMb.toFixed(1)} MiB, array buffers ${startMemory.sharedMb.toFixed(1)} MiB`,
    `  memory end:   heap ${endMemory.heapMb.toFixed(1)} MiB, rss ${endMemory.rssMb.toFixed(1)} MiB, array buffers ${endMemory.sharedMb.toFixed(1)} MiB`,
    ...failures.map((f) => `  FAIL ${f}`),
    `${failures.length === 0 ? rounds : 0} passed, ${failures.length} failed`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return failures.length === 0 && rounds > 0 ? 0 : 1;
}

process.exitCode = await main();
