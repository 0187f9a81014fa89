/**
 * A sandboxed plugin that misbehaves.
 *
 * Each plugin is spawned with `{ sandbox: { memoryMb, cpuMsPerSlice, powers } }`:
 * it runs in a worker of its own with that heap limit, watched by a CPU
 * watchdog, in a realm that sees only the process API. The host:
 *
 * 1. spawns the text plugin (power: log), uses it, then asks it to try to get
 *    out (Node's globals, shared memory, Function constructors, the host's
 *    Ref beyond its permissions...) and prints how each attempt failed; the
 *    plugin still answers afterwards;
 * 2. spawns a plugin that loops for ever: killed with a 'cpu' limit reason;
 * 3. and, at the same time, one that allocates without bound: killed with a
 *    'memory' limit reason;
 * 4. tries to spawn one that imports `node:fs`: refused as it loads.
 *
 * A monitor in the host sees each plugin's end and prints its reason.
 *
 * Run: npx tsx examples/sandboxed-plugin/main.ts
 */

import { isDown, type Ref, Runtime, SpawnError } from '../../runtime/index.ts';
import { runExample, showReason, sleep } from '../common.ts';
import type { Attempt, PluginRequest } from './plugin.ts';

const PLUGIN = new URL('./plugin.ts', import.meta.url).href;
const IMPORTER = new URL('./importer.ts', import.meta.url).href;
/** The text plugin's limits: a small heap, and 200 ms at most between two awaits. */
const TEXT_LIMITS = { memoryMb: 32, cpuMsPerSlice: 200, powers: { log: true } };
const SPINNER_LIMITS = { memoryMb: 32, cpuMsPerSlice: 200 };
/** The hog's slice is long on purpose: its heap, not its CPU time, must be what stops it. */
const HOG_LIMITS = { memoryMb: 24, cpuMsPerSlice: 5000 };

await runExample('sandboxed-plugin', async (checks) => {
  const runtime = await Runtime.start({ workers: 2 });
  const host = runtime.host;
  try {
    const baseline = runtime.stats();
    // The only Ref the plugins get: the host, send-only.
    const observer = host.restrict(host.self, ['send']);

    /** The reason the monitor `monitor` reports, waiting for it. */
    async function downOf(monitor: number, timeout = 10_000): Promise<unknown> {
      const m = await runtime.receive({ timeout, match: (s) => isDown(s) && s.monitor === monitor });
      if (!isDown(m)) throw new Error('expected a down');
      host.drop(m.ref);
      return m.reason;
    }
    const ask = (ref: Ref, request: PluginRequest): Promise<unknown> =>
      runtime.request(ref, request, { timeout: 5000 });

    // ------------------------------------------------------------ 1. the text plugin
    console.log(`1. the text plugin, sandbox ${JSON.stringify(TEXT_LIMITS)}`);
    const text = await runtime.spawnMonitor(PLUGIN, 'textPlugin', [observer], { sandbox: TEXT_LIMITS });
    const words = await ask(text.ref, { op: 'words', text: 'the quick brown fox jumps' });
    const shout = await ask(text.ref, { op: 'shout', text: 'hello, host' });
    console.log(
      `  words('the quick brown fox jumps') = ${String(words)}; shout('hello, host') = ${String(shout)}`,
    );
    checks.check('the plugin answers normal requests', words === 5 && shout === 'HELLO, HOST');

    console.log('  now the plugin tries to get out:');
    const attempts = (await ask(text.ref, { op: 'escape' })) as Attempt[];
    for (const a of attempts)
      console.log(`    ${a.outcome.padEnd(9)} ${a.attempt}\n              ${a.detail}`);
    const escaped = attempts.filter((a) => a.outcome === 'ESCAPED');
    const blocked = attempts.filter((a) => a.outcome === 'blocked').length;
    checks.check(
      'every escape attempt failed',
      escaped.length === 0,
      escaped.length === 0 ? `${attempts.length} attempts` : escaped.map((a) => a.attempt).join('; '),
    );
    const hostPolluted = ({} as Record<string, unknown>).polluted !== undefined;
    checks.check("the plugin's prototype pollution did not reach the host", !hostPolluted);
    const again = await ask(text.ref, { op: 'words', text: 'still here' });
    checks.check('the plugin still answers after its attempts', again === 2);
    checks.check('it stops when asked', (await ask(text.ref, { op: 'stop' })) === 'bye');
    const textReason = await downOf(text.monitor);
    console.log(`  monitor: text plugin ended: ${showReason(textReason)}`);
    host.drop(text.ref);

    // ------------------------------------------------------------ 2 and 3. the spinner and the hog, side by side
    console.log(`\n2. a plugin that never yields, sandbox ${JSON.stringify(SPINNER_LIMITS)}`);
    console.log(`3. a plugin that allocates without bound, sandbox ${JSON.stringify(HOG_LIMITS)}`);
    console.log('   (started together: each has a worker of its own)');
    const [spinner, hog] = await Promise.all([
      runtime.spawnMonitor(PLUGIN, 'spinner', [observer], { sandbox: SPINNER_LIMITS }),
      runtime.spawnMonitor(PLUGIN, 'hog', [observer], { sandbox: HOG_LIMITS }),
    ]);
    const spinReason = await downOf(spinner.monitor);
    console.log(`  monitor: spinner ended: ${showReason(spinReason)}`);
    checks.check("the spinner was killed with a 'cpu' limit reason", isLimit(spinReason, 'cpu'));
    const hogReason = await downOf(hog.monitor);
    console.log(`  monitor: hog ended: ${showReason(hogReason)}`);
    checks.check("the hog was killed with a 'memory' limit reason", isLimit(hogReason, 'memory'));
    host.drop(spinner.ref);
    host.drop(hog.ref);

    // ------------------------------------------------------------ 4. the importer
    console.log("\n4. a plugin module that imports 'node:fs'");
    let refused = '';
    try {
      const ref = await runtime.spawn(IMPORTER, 'plugin', [], { sandbox: {} });
      host.drop(ref);
    } catch (error) {
      if (!(error instanceof SpawnError)) throw error;
      refused = error.message;
    }
    console.log(`  spawn: ${refused === '' ? 'it started!' : `refused: SpawnError: ${refused}`}`);
    checks.check('a plugin module that imports Node is refused at load', refused !== '');

    // ------------------------------------------------------------ the end
    host.drop(observer);
    await drainHost(runtime);
    checks.check('the post office is back to its baseline', await backToBaseline(runtime, baseline));

    return [
      `text plugin: answered normally; ${blocked} escape attempts blocked, ${attempts.length - blocked - escaped.length} contained, ${escaped.length} escaped`,
      `spinner: ${showReason(spinReason)}`,
      `hog: ${showReason(hogReason)}`,
      `importer: ${refused === '' ? 'started (it should not have)' : 'refused at load'}`,
    ];
  } finally {
    await runtime.shutdown();
  }
});

function isLimit(reason: unknown, limit: 'cpu' | 'memory'): boolean {
  const r = reason as { kind?: unknown; limit?: unknown } | null;
  return r?.kind === 'limit' && r.limit === limit;
}

/** Takes whatever the host still holds (the plugins' hellos), dropping the Refs of downs. */
async function drainHost(runtime: Runtime): Promise<void> {
  for (;;) {
    let m: unknown;
    try {
      m = await runtime.receive({ timeout: 0 });
    } catch {
      return;
    }
    if (isDown(m)) runtime.host.drop(m.ref);
  }
}

/** Polls `stats()` until it matches `baseline` (capacities aside), for up to 5 s. */
async function backToBaseline(runtime: Runtime, baseline: ReturnType<Runtime['stats']>): Promise<boolean> {
  const strip = (s: ReturnType<Runtime['stats']>) => {
    const { capacity: _c, retired: _r, ...rest } = s;
    return JSON.stringify(rest);
  };
  for (let i = 0; i < 250; i++) {
    if (strip(runtime.stats()) === strip(baseline)) return true;
    await sleep(20);
  }
  console.log(`  baseline ${strip(baseline)}\n  now      ${strip(runtime.stats())}`);
  return false;
}
