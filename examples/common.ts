/**
 * What the three examples share: a banner, a list of named checks that
 * decides the exit code, and a deadline so that a hung example fails instead
 * of hanging. The runtime itself is started and shut down by each example's
 * main.ts, in plain sight.
 */

/** A check that failed makes the example exit 1. */
export class Checks {
  private readonly results: { label: string; ok: boolean; detail: string }[] = [];

  /** Records `ok` under `label`; prints a line at once. */
  check(label: string, ok: boolean, detail = ''): boolean {
    this.results.push({ label, ok, detail });
    console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${label}${detail === '' ? '' : ` (${detail})`}`);
    return ok;
  }

  get failed(): number {
    return this.results.filter((r) => !r.ok).length;
  }

  get count(): number {
    return this.results.length;
  }
}

/**
 * Runs `body` under a deadline, prints `summary()` at the end and sets the
 * exit code: 0 when every check passed and nothing threw, 1 otherwise. Past
 * `deadlineMs` the process exits 1 whatever is still running (the timer does
 * not keep the event loop alive).
 */
export async function runExample(
  title: string,
  body: (checks: Checks) => Promise<string[]>,
  deadlineMs = 30_000,
): Promise<void> {
  const started = performance.now();
  const deadline = setTimeout(() => {
    console.error(`\n${title}: FAILED, still running after ${deadlineMs} ms`);
    process.exit(1);
  }, deadlineMs);
  deadline.unref();
  console.log(`== ${title} ==`);
  const checks = new Checks();
  let summary: string[] = [];
  let thrown: unknown;
  try {
    summary = await body(checks);
  } catch (error) {
    thrown = error;
  }
  clearTimeout(deadline);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log('\nSummary');
  for (const line of summary) console.log(`  ${line}`);
  if (thrown !== undefined) {
    console.log(`  FAILED: ${thrown instanceof Error ? (thrown.stack ?? thrown.message) : String(thrown)}`);
  } else {
    console.log(`  checks: ${checks.count - checks.failed}/${checks.count} passed in ${seconds} s`);
  }
  const ok = thrown === undefined && checks.failed === 0;
  console.log(ok ? `${title}: PASSED` : `${title}: FAILED`);
  process.exitCode = ok ? 0 : 1;
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A positive integer from the environment variable `name`, or `fallback`. */
export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`${name} must be a positive integer, got '${raw}'`);
  return n;
}

/** An exit reason in one line. */
export function showReason(reason: unknown): string {
  if (reason !== null && typeof reason === 'object') {
    const r = reason as {
      kind?: unknown;
      name?: unknown;
      message?: unknown;
      limit?: unknown;
      detail?: unknown;
    };
    if (r.kind === 'error') return `error ${String(r.name)}: ${String(r.message)}`;
    if (r.kind === 'limit') return `limit '${String(r.limit)}': ${String(r.detail)}`;
    if (r.kind === 'worker-crashed') return `worker crashed: ${String(r.detail)}`;
  }
  try {
    return JSON.stringify(reason) ?? String(reason);
  } catch {
    return String(reason);
  }
}
