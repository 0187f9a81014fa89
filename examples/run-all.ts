/**
 * Runs every example in turn, each as a child process (`npx tsx
 * examples/<name>/main.ts`) with its output shown as it comes, and reports
 * which passed. Exits 1 if any failed or ran past its time limit.
 *
 * Run: npx tsx examples/run-all.ts [name...]
 */

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const EXAMPLES = ['request-reply', 'supervision', 'sandboxed-plugin'] as const;
/** Each example should finish within ~20 s; on a busy machine it gets more before it is stopped. */
const LIMIT_MS = 90_000;
const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Outcome {
  readonly name: string;
  readonly ok: boolean;
  readonly seconds: number;
  readonly why: string;
}

/** Set by Ctrl-C: the example running is stopped, and no other starts. */
let interrupted = false;

function run(name: string): Promise<Outcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    // Its own process group, so that a hung example is stopped with everything it started.
    const child = spawn('npx', ['tsx', `examples/${name}/main.ts`], {
      cwd: ROOT,
      stdio: 'inherit',
      detached: true,
    });
    // Ctrl-C reaches only this process (the child has a group of its own): pass it on.
    const onInterrupt = () => {
      interrupted = true;
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGINT');
    };
    process.once('SIGINT', onInterrupt);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    }, LIMIT_MS);
    const done = (ok: boolean, why: string) => {
      clearTimeout(timer);
      process.off('SIGINT', onInterrupt);
      resolve({ name, ok, seconds: (performance.now() - started) / 1000, why });
    };
    child.on('error', (error) => done(false, `could not start: ${error.message}`));
    child.on('exit', (code, signal) => {
      if (timedOut) done(false, `stopped after ${LIMIT_MS / 1000} s`);
      else if (code === 0) done(true, 'exit code 0');
      else done(false, signal !== null ? `killed by ${signal}` : `exit code ${code}`);
    });
  });
}

const wanted = process.argv.slice(2);
const unknown = wanted.filter((n) => !(EXAMPLES as readonly string[]).includes(n));
if (unknown.length > 0) {
  console.error(`unknown example(s): ${unknown.join(', ')}; known: ${EXAMPLES.join(', ')}`);
  process.exit(2);
}
const outcomes: Outcome[] = [];
for (const name of wanted.length > 0 ? wanted : EXAMPLES) {
  console.log(`\n######## ${name}\n`);
  outcomes.push(await run(name));
  if (interrupted) break;
}
console.log('\n######## results\n');
for (const o of outcomes) {
  console.log(
    `  ${o.ok ? 'PASS' : 'FAIL'}  ${o.name.padEnd(18)} ${o.seconds.toFixed(1).padStart(5)} s  (${o.why})`,
  );
}
const failed = outcomes.filter((o) => !o.ok).length;
console.log(`\n${outcomes.length - failed}/${outcomes.length} examples passed`);
process.exitCode = failed === 0 ? 0 : 1;
