/**
 * sandbox-escape: sandboxed processes trying to get out, repeated under
 * load. Each round starts a Runtime and keeps its scheduler workers busy
 * (processes streaming to each other), and runs a round of core-mixed at
 * the same time on other threads (the post office under mixed load), while
 * it spawns, again and again:
 *
 * - runtime/test/fixtures/sandbox-escape.ts's `attempts` (some forty ways
 *   out: process, require, import, Function constructors of the host's
 *   realm, stack-trace hooks, host errors and promises, the membrane's
 *   values, prototype pollution...): any attempt that reports success is a
 *   violation; its pollution of its own realm must show neither on the main
 *   thread nor in a fresh sandbox (`pollutionProbe`);
 * - fixtures/sandbox-abuse.ts: values shaped like the membrane's wire tags,
 *   Refs and Requests sent to a process outside, which must receive no
 *   capability from them (a forged one is an escape); an endless loop, an
 *   allocation bomb and a send flood, which the CPU and memory limits must
 *   end with a `limit` reason.
 *
 * At the end every process is gone, stats() is back to the baseline taken
 * after start, and after shutdown every worker (schedulers and sandboxes)
 * has exited.
 */

import type { Worker } from 'node:worker_threads';
import type { PostOfficeStats } from '../core/index.ts';
import { Prng } from '../ring/test/records.ts';
import { sleep } from '../ring/test/workers.ts';
import { isDown, ReceiveTimeout, type Ref, Runtime } from '../runtime/index.ts';
import { coreMixed } from './core-scenarios.ts';
import type { RoundContext, RoundResult, Scenario } from './scenario.ts';

const ESCAPE = new URL('../runtime/test/fixtures/sandbox-escape.ts', import.meta.url).href;
const ABUSE = new URL('./fixtures/sandbox-abuse.ts', import.meta.url).href;
const LOAD = new URL('./fixtures/sandbox-load.procs.ts', import.meta.url).href;

class Failure extends Error {}

function fail(invariant: string, detail: string): never {
  throw new Failure(`${invariant}: ${detail}`);
}

export const sandboxEscape: Scenario = {
  name: 'sandbox-escape',
  async round(ctx: RoundContext): Promise<RoundResult> {
    const prng = new Prng(ctx.seed);
    const counts: Record<string, number> = {};
    const count = (k: string, n = 1) => {
      counts[k] = (counts[k] ?? 0) + n;
    };
    let faults = 0;
    // Load elsewhere: core-mixed rounds on their own threads, back to back until the sandboxes are done.
    let loading = true;
    const load = (async (): Promise<string | null> => {
      while (loading) {
        const loadCtx: RoundContext = {
          ...ctx,
          seed: prng.next(),
          workers: Math.max(2, ctx.workers - 1),
          scale: 0.5,
        };
        try {
          const r = await coreMixed.round(loadCtx);
          count('loadOps', r.counts.ops ?? 0);
        } catch (error) {
          return `the core-mixed load round (seed ${loadCtx.seed}) failed: ${(error as Error).message}`;
        }
      }
      return null;
    })();
    const runtime = await Runtime.start({ workers: 2 });
    const workers = new Map<Worker, Promise<unknown>>();
    const track = () => {
      for (const w of runtime.workers)
        if (!workers.has(w)) workers.set(w, new Promise((r) => w.once('exit', r)));
    };
    track();
    let shut = false;
    try {
      const baseline = runtime.stats();
      const host = runtime.host;
      // Take the next host message that `accept` takes (others stay queued for their own takers).
      const next = async (
        accept: (m: unknown) => boolean,
        what: string,
        timeout = 30_000,
      ): Promise<unknown> => {
        try {
          return await runtime.receive({ timeout, match: accept });
        } catch (error) {
          if (error instanceof ReceiveTimeout) fail('hang', `no ${what} within ${timeout} ms`);
          throw error;
        }
      };
      const downOf = async (monitor: number, what: string): Promise<unknown> => {
        const d = await next((m) => isDown(m) && m.monitor === monitor, `down of ${what}`);
        if (!isDown(d)) fail('hang', what);
        host.drop(d.ref);
        return d.reason;
      };
      // Load here: busy processes streaming to each other on both workers.
      const busy: Ref[] = [];
      for (let i = 0; i < 4; i++) busy.push(await runtime.spawn(LOAD, 'busy', [], { worker: i % 2 }));
      for (let i = 0; i < busy.length; i++) {
        const peer = host.restrict(busy[(i + 1) % busy.length]!, ['send']);
        runtime.send(busy[i]!, { peer });
        host.drop(peer);
      }
      const inspector = await runtime.spawn(LOAD, 'inspector', [], { worker: 0, mailboxCapacity: 1 << 16 });
      const sink = await runtime.spawn(LOAD, 'sink', [], { worker: 1 });
      const rounds = Math.max(1, Math.round(ctx.scale));
      for (let r = 0; r < rounds; r++) {
        ctx.check();
        const order = ['attempts', 'forgeWire', 'spin', 'allocate', 'flood'];
        for (let i = order.length - 1; i > 0; i--) {
          const k = prng.int(0, i);
          [order[i], order[k]] = [order[k]!, order[i]!];
        }
        for (const what of order) {
          switch (what) {
            case 'attempts': {
              const { ref, monitor } = await runtime.spawnMonitor(ESCAPE, 'attempts', [host.self], {
                sandbox: {},
              });
              const report = (await next(
                (m) => m !== null && typeof m === 'object' && 'results' in m,
                'escape report',
              )) as { results: Record<string, { escaped: boolean; how: string }>; count: number };
              await next((m) => m === 'still works', "the sandbox's 'still works'");
              const escaped = Object.entries(report.results).filter(([, x]) => x.escaped);
              if (escaped.length > 0) {
                fail('escape', escaped.map(([name, x]) => `'${name}' succeeded (${x.how})`).join('; '));
              }
              if (report.count < 30) fail('escape', `only ${report.count} attempts reported`);
              count('escapeAttempts', report.count);
              faults += report.count;
              if (
                ({} as Record<string, unknown>).polluted !== undefined ||
                ([] as unknown as Record<string, unknown>).polluted !== undefined
              ) {
                fail('escape', "the sandbox's prototype pollution reached the main thread");
              }
              const probe = await runtime.spawnMonitor(ESCAPE, 'pollutionProbe', [host.self], {
                sandbox: {},
              });
              const clean = await next(
                (m) => m !== null && typeof m === 'object' && 'object' in m,
                'pollution probe',
              );
              if (JSON.stringify(clean) !== JSON.stringify({ object: null, array: null, fn: null })) {
                fail('escape', `a fresh sandbox sees another's pollution: ${JSON.stringify(clean)}`);
              }
              await downOf(probe.monitor, 'the pollution probe');
              runtime.kill(ref);
              await downOf(monitor, 'the escape attempts');
              for (const x of [ref, probe.ref]) host.drop(x);
              break;
            }
            case 'forgeWire': {
              const to = host.restrict(inspector, ['send']);
              const { ref, monitor } = await runtime.spawnMonitor(ABUSE, 'forgeWire', [to, host.self], {
                sandbox: {},
              });
              host.drop(to);
              const got = (await next(
                (m) => m !== null && typeof m === 'object' && 'inspected' in m,
                'inspector report',
              )) as { inspected: number; forged: number; sent: number };
              if (got.forged > 0)
                fail('escape', `${got.forged} capabilities arrived from values a sandbox forged`);
              count('forgedValues', got.inspected);
              faults += got.inspected;
              runtime.kill(ref);
              await downOf(monitor, 'the forger');
              host.drop(ref);
              break;
            }
            default: {
              // An allocation bomb under load can also run past a short CPU slice: give it a long one.
              const sandbox =
                what === 'allocate'
                  ? { memoryMb: 32, cpuMsPerSlice: 10_000 }
                  : { cpuMsPerSlice: prng.int(50, 300) };
              const args = what === 'flood' ? [host.restrict(sink, ['send']), host.self] : [host.self];
              let spawned: { ref: Ref; monitor: number };
              try {
                spawned = await runtime.spawnMonitor(ABUSE, what, args, { sandbox });
              } catch (error) {
                // On a loaded machine a short CPU slice can run out while the sandbox loads the
                // module: the limit ends it before it starts, which is the limit doing its job.
                if (!/over its (cpu|memory) limit/.test((error as Error).message)) throw error;
                if (what === 'flood') host.drop(args[0] as Ref);
                count('limitBeforeStart');
                faults++;
                break;
              }
              const { ref, monitor } = spawned;
              if (what === 'flood') host.drop(args[0] as Ref);
              const reason = (await downOf(monitor, `the ${what} sandbox`)) as {
                kind?: string;
                limit?: string;
              };
              const want = what === 'allocate' ? 'memory' : 'cpu';
              // A bomb on a loaded machine may still be caught by the CPU watchdog first: a limit either way.
              const ok = reason?.kind === 'limit' && (reason.limit === want || what === 'allocate');
              if (!ok)
                fail(
                  'limits',
                  `the ${what} sandbox ended with ${JSON.stringify(reason)}, not a ${want} limit`,
                );
              count(`${reason.limit}Limit`);
              faults++;
              host.drop(ref);
              // Its greeting ('spinning', ...) is not needed: take it out of the way.
              await runtime.receive({ timeout: 1, match: (m) => typeof m === 'string' }).catch(() => null);
            }
          }
        }
        // The sink still takes messages after a flood died writing into it.
        const before = (await runtime.request(sink, 'count', { timeout: 10_000 })) as number;
        runtime.send(sink, 'after');
        const deadline = performance.now() + 10_000;
        while (((await runtime.request(sink, 'count', { timeout: 10_000 })) as number) < before + 1) {
          if (performance.now() > deadline)
            fail('limits', 'the mailbox a sandbox flooded stopped taking messages');
          await sleep(5);
        }
        count('sandboxRounds');
      }
      // Killed, not asked: a busy process's mailbox is often full, and a lost stop would leave it running.
      for (const x of [...busy, inspector, sink]) runtime.kill(x);
      for (const x of [...busy, inspector, sink]) host.drop(x);
      const drain = async (timeout: number) => {
        for (;;) {
          const m = await runtime.receive({ timeout }).catch(() => null);
          if (m === null) return;
          if (isDown(m)) host.drop(m.ref);
        }
      };
      await drain(50);
      const strip = (s: PostOfficeStats) => {
        const { capacity: _c, retired: _r, ...rest } = s;
        return JSON.stringify(rest);
      };
      const until = performance.now() + 10_000;
      while (strip(runtime.stats()) !== strip(baseline)) {
        if (performance.now() > until) {
          fail(
            'leak',
            `stats() with every process gone: ${strip(runtime.stats())}, baseline ${strip(baseline)}`,
          );
        }
        await sleep(20);
        await drain(0);
      }
      track();
      await runtime.shutdown();
      shut = true;
      const exited = await Promise.race([
        Promise.all(workers.values()).then(() => true),
        sleep(10_000).then(() => false),
      ]);
      if (!exited) fail('shutdown', 'scheduler workers still run after shutdown');
    } finally {
      if (!shut) await Promise.race([runtime.shutdown(), sleep(10_000)]);
      loading = false;
      const loadFailure = await load;
      if (loadFailure !== null && shut) fail('load', loadFailure);
    }
    return { counts, faults, note: `${Math.max(1, Math.round(ctx.scale))} rounds of escapes under load` };
  },
};
