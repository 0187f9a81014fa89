/**
 * The hardware ceiling: compiles bench/native/ceiling.c with the system C
 * compiler into bench/out/ and parses its "key value" output. No compiler,
 * or a failed build or run, is not an error: the report says the ceiling was
 * skipped and why.
 */

import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { median } from './stats.ts';

const run = promisify(execFile);

const SOURCE = fileURLToPath(new URL('./native/ceiling.c', import.meta.url));
const OUT_DIR = fileURLToPath(new URL('./out/', import.meta.url));
const BINARY = `${OUT_DIR}ceiling`;

export interface CeilingResult {
  readonly status: 'ok' | 'skipped';
  /** Why it was skipped. */
  readonly reason?: string;
  readonly compiler?: string;
  readonly spin?: { readonly p50: number; readonly p99: number; readonly mean: number };
  readonly futex?: { readonly p50: number; readonly p99: number; readonly mean: number };
  /** 16-byte records per second, one value per run. */
  readonly spsc16?: readonly number[];
  readonly spsc16Median?: number;
}

/** Parses ceiling's "key value" lines; repeated keys collect every value. */
export function parseCeiling(text: string): Map<string, number[]> {
  const values = new Map<string, number[]>();
  for (const line of text.split('\n')) {
    const m = /^([\w.-]+)\s+(-?[\d.]+)$/.exec(line.trim());
    if (!m) continue;
    const list = values.get(m[1]!) ?? [];
    list.push(Number(m[2]));
    values.set(m[1]!, list);
  }
  return values;
}

async function findCompiler(): Promise<string | undefined> {
  for (const cc of [process.env.CC, 'cc', 'gcc', 'clang']) {
    if (!cc) continue;
    try {
      const { stdout } = await run(cc, ['--version'], { timeout: 10_000 });
      return `${cc} (${stdout.split('\n')[0]?.trim()})`;
    } catch {
      // not this one: try the next
    }
  }
  return undefined;
}

export type CeilingBuild =
  | { readonly ok: true; readonly compiler: string }
  | { readonly ok: false; readonly compiler?: string; readonly reason: string };

let built: Promise<CeilingBuild> | undefined;

/** Compiles ceiling.c once per process run; later calls share the result. */
export function buildCeiling(log: (line: string) => void): Promise<CeilingBuild> {
  built ??= (async (): Promise<CeilingBuild> => {
    const compiler = await findCompiler();
    if (!compiler) return { ok: false, reason: 'no C compiler found (tried $CC, cc, gcc, clang)' };
    const cc = compiler.split(' ')[0]!;
    mkdirSync(OUT_DIR, { recursive: true });
    try {
      await run(cc, ['-O2', '-pthread', '-o', BINARY, SOURCE], { timeout: 120_000 });
    } catch (err) {
      return { ok: false, compiler, reason: `compiling ceiling.c failed: ${(err as Error).message}` };
    }
    log(`ceiling           built with ${compiler}`);
    return { ok: true, compiler };
  })();
  return built;
}

/**
 * A short C cache-line ping-pong: the p50 round trip in ns, or undefined
 * without a compiler. Tells which way the virtual machine's two vCPUs sit on
 * the host right now (sharing a cache or not), which moves every figure.
 */
export async function probeCacheLine(log: (line: string) => void): Promise<number | undefined> {
  const b = await buildCeiling(log);
  if (!b.ok) return undefined;
  try {
    const { stdout } = await run(BINARY, ['1', 'probe'], { timeout: 60_000 });
    return parseCeiling(stdout).get('pingpong-spin.p50_ns')?.[0];
  } catch {
    return undefined;
  }
}

export async function runCeiling(scale: number, log: (line: string) => void): Promise<CeilingResult> {
  const b = await buildCeiling(log);
  if (!b.ok) return { status: 'skipped', compiler: b.compiler, reason: b.reason };
  const compiler = b.compiler;
  let stdout: string;
  try {
    ({ stdout } = await run(BINARY, [String(scale)], { timeout: 300_000 }));
  } catch (err) {
    return { status: 'skipped', compiler, reason: `running ceiling failed: ${(err as Error).message}` };
  }
  const v = parseCeiling(stdout);
  const first = (key: string): number => v.get(key)?.[0] ?? Number.NaN;
  const latency = (name: string) =>
    v.has(`${name}.p50_ns`)
      ? { p50: first(`${name}.p50_ns`), p99: first(`${name}.p99_ns`), mean: first(`${name}.mean_ns`) }
      : undefined;
  if ((v.get('spsc-16.ok') ?? []).some((ok) => ok !== 1)) {
    return { status: 'skipped', compiler, reason: 'the C SPSC ring lost or reordered records' };
  }
  const spsc16 = v.get('spsc-16.msgs_per_sec') ?? [];
  const result: CeilingResult = {
    status: 'ok',
    compiler,
    spin: latency('pingpong-spin'),
    futex: latency('pingpong-futex'),
    spsc16,
    spsc16Median: median(spsc16),
  };
  log(
    `ceiling           spin p50 ${result.spin?.p50} ns, futex p50 ${result.futex?.p50} ns, ` +
      `spsc-16 median ${(median(spsc16) / 1e6).toFixed(1)} M/s`,
  );
  return result;
}
