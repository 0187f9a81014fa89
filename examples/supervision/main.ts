/**
 * A supervision tree that survives injected crashes, then gives up on purpose.
 *
 *   root (one-for-one, at most 10 restarts a second)
 *   ├── shard-a
 *   ├── shard-b
 *   └── inner (a supervisor: one-for-one, at most 10 restarts a second)
 *       ├── shard-c
 *       └── shard-d
 *
 * 1. Chaos: the host keeps asking every shard for squares while the shards
 *    crash at random (they throw); each supervisor restarts its own children
 *    one for one; a request lost to a crash is asked again of the new
 *    incarnation, found through the supervisors. Every request gets its
 *    answer; the restarts are printed.
 * 2. The inner supervisor is killed outright: its shards die with it (they
 *    are linked), root starts it again, and it starts them again.
 * 3. Crash storms: shard-c is crashed faster than inner's intensity allows,
 *    and inner gives up; then shard-a, faster than root's, and root gives up,
 *    taking the tree down. A monitor in the host sees each reason.
 *
 * Run: npx tsx examples/supervision/main.ts
 * Knobs (environment): CHAOS_MS (default 3000), CRASH_PERCENT per request (1).
 */

import { isDown, type Ref, RequestTimeout, Runtime } from '../../runtime/index.ts';
import {
  type ChildSpec,
  Supervisor,
  type SupervisorSpec,
  startSupervisor,
  supervisorChild,
} from '../../runtime/supervisor.ts';
import { envInt, runExample, showReason, sleep } from '../common.ts';
import type { ShardAnswer, Started } from './processes.ts';

const PROCESSES = new URL('./processes.ts', import.meta.url).href;
const CHAOS_MS = envInt('CHAOS_MS', 3000);
const CRASH_RATE = envInt('CRASH_PERCENT', 1) / 100;
/** A shard answers in well under a millisecond; no answer by then means it crashed (or the machine is very busy). */
const REQUEST_TIMEOUT_MS = 250;
/** Pause between two requests of one client lane. */
const PACE_MS = 5;
/**
 * Restart intensities: far above what the chaos phase causes (a few restarts
 * a second, at random), far below what a crash storm does (one restart every
 * few milliseconds).
 */
const ROOT_INTENSITY = { maxRestarts: 10, periodMs: 1000 };
const INNER_INTENSITY = { maxRestarts: 10, periodMs: 1000 };
const SUPERVISOR_TIMEOUT_MS = 2000;

/** Where each shard sits in the tree: the child ids from root down. */
const SHARDS: Record<string, readonly string[]> = {
  'shard-a': ['shard-a'],
  'shard-b': ['shard-b'],
  'shard-c': ['inner', 'shard-c'],
  'shard-d': ['inner', 'shard-d'],
};

function isStarted(m: unknown): m is Started {
  return m !== null && typeof m === 'object' && 'started' in m;
}

await runExample('supervision', async (checks) => {
  const runtime = await Runtime.start({ workers: 2 });
  const host = runtime.host;
  try {
    const baseline = runtime.stats();
    const workerOf = new Map(runtime.workers.map((w, i) => [w.threadId, i]));
    // A send-only Ref to the host: every shard says hello through it when it starts.
    const observer = host.restrict(host.self, ['send']);
    const shardSpec = (id: string): ChildSpec => ({
      id,
      module: PROCESSES,
      export: 'shard',
      args: [id, CRASH_RATE, observer],
      worker: 'next',
    });
    const innerSpec: SupervisorSpec = {
      strategy: 'one-for-one',
      intensity: INNER_INTENSITY,
      children: [shardSpec('shard-c'), shardSpec('shard-d')],
    };
    const rootSpec: SupervisorSpec = {
      strategy: 'one-for-one',
      intensity: ROOT_INTENSITY,
      children: [shardSpec('shard-a'), shardSpec('shard-b'), supervisorChild('inner', innerSpec)],
    };
    const root = await startSupervisor(runtime, rootSpec, { timeout: SUPERVISOR_TIMEOUT_MS });
    const starts = new Map<string, number>();
    await collectStarts(4);
    console.log(`tree started: root, inner and ${[...starts.keys()].sort().join(', ')}`);

    /** Takes `n` more `started` messages (waiting for them), counting them by shard. */
    async function collectStarts(n: number, only?: string): Promise<string[]> {
      const ids: string[] = [];
      while (ids.length < n) {
        const m = await runtime.receive({
          timeout: 5000,
          match: (s) => isStarted(s) && (only === undefined || s.started === only),
        });
        const id = (m as Started).started;
        starts.set(id, (starts.get(id) ?? 0) + 1);
        ids.push(id);
      }
      return ids;
    }

    /** Counts the `started` messages already in the host's mailbox. */
    async function drainStarts(): Promise<void> {
      for (;;) {
        try {
          await collectStartsNow();
        } catch {
          return;
        }
      }
    }
    async function collectStartsNow(): Promise<void> {
      const m = await runtime.receive({ timeout: 0, match: isStarted });
      const id = (m as Started).started;
      starts.set(id, (starts.get(id) ?? 0) + 1);
    }

    /**
     * The running incarnation of the child at `path`, asked of the supervisors
     * from root down; null while it is being restarted or its supervisor is
     * gone. The host owns the Ref returned; every other Ref it got is dropped.
     */
    async function lookup(path: readonly string[]): Promise<Ref | null> {
      let sup = root;
      let held: Ref | null = null; // a Ref to an intermediate supervisor, dropped once used
      try {
        for (const [depth, id] of path.entries()) {
          const children = await sup.whichChildren();
          let found: Ref | null = null;
          for (const c of children) {
            if (c.id === id) found = c.ref;
            else if (c.ref !== null) host.drop(c.ref);
          }
          if (held !== null) host.drop(held);
          held = null;
          if (found === null || depth === path.length - 1) return found;
          held = found;
          sup = new Supervisor(host, found, { timeout: SUPERVISOR_TIMEOUT_MS });
        }
        return null;
      } catch (error) {
        // ...a supervisor on the way ended while we asked: nothing running there now.
        if (held !== null) host.drop(held);
        if (error instanceof RequestTimeout) return null;
        throw error;
      }
    }

    /** `lookup`, waiting while the child is being restarted. */
    async function lookupRunning(path: readonly string[]): Promise<Ref> {
      for (let i = 0; i < 100; i++) {
        const ref = await lookup(path);
        if (ref !== null) return ref;
        await sleep(20);
      }
      throw new Error(`${path.join('/')} is not running`);
    }

    /** Restarts counted by root and inner, and per child. */
    async function restartReport(): Promise<{ lines: string[]; total: number }> {
      const lines: string[] = [];
      const rootChildren = await root.whichChildren();
      let total = await root.restartCount();
      lines.push(`root: ${total} restart(s)`);
      for (const c of rootChildren) {
        if (c.id !== 'inner') {
          lines.push(`  ${c.id}: restarted ${c.restarts} time(s)`);
          if (c.ref !== null) host.drop(c.ref);
          continue;
        }
        if (c.ref === null) {
          lines.push(`  inner: restarted ${c.restarts} time(s), not running`);
          continue;
        }
        const inner = new Supervisor(host, c.ref, { timeout: SUPERVISOR_TIMEOUT_MS });
        const innerRestarts = await inner.restartCount();
        total += innerRestarts;
        lines.push(
          `  inner: restarted ${c.restarts} time(s); this incarnation made ${innerRestarts} restart(s)`,
        );
        for (const g of await inner.whichChildren()) {
          lines.push(`    ${g.id}: restarted ${g.restarts} time(s)`);
          if (g.ref !== null) host.drop(g.ref);
        }
        host.drop(c.ref);
      }
      return { lines, total };
    }

    /** Asks every shard once; how many answered right, with where they run. */
    async function healthCheck(label: string): Promise<number> {
      let ok = 0;
      const parts: string[] = [];
      for (const [id, path] of Object.entries(SHARDS)) {
        const ref = await lookupRunning(path);
        try {
          const a = (await runtime.request(ref, { n: 12 }, { timeout: 1000 })) as ShardAnswer;
          if (a.square === 144 && a.id === id) ok++;
          parts.push(`${id}@worker ${workerOf.get(a.thread) ?? '?'}`);
        } catch (error) {
          parts.push(`${id}: ${(error as Error).name}`);
        } finally {
          host.drop(ref);
        }
      }
      console.log(`  health check ${label}: ${ok}/4 shards answer (${parts.join(', ')})`);
      return ok;
    }

    // ------------------------------------------------------------ 1. chaos
    console.log(
      `\n1. chaos: ${CHAOS_MS} ms of requests to every shard; each request crashes its shard with probability ${CRASH_RATE}`,
    );
    const lanes = await Promise.all(
      Object.entries(SHARDS).map(async ([id, path]) => {
        let ref = await lookupRunning(path);
        let n = 0;
        let answered = 0;
        let wrong = 0;
        let lost = 0;
        let slow = 0;
        const until = performance.now() + CHAOS_MS;
        while (performance.now() < until) {
          n++;
          for (;;) {
            try {
              const a = (await runtime.request(ref, { n }, { timeout: REQUEST_TIMEOUT_MS })) as ShardAnswer;
              answered++;
              if (a.id !== id || a.square !== n * n) wrong++;
              break;
            } catch (error) {
              if (!(error instanceof RequestTimeout)) throw error;
              const fresh = await lookupRunning(path);
              if (host.same(fresh, ref)) {
                slow++; // ...the same incarnation: it was only slow; ask again
              } else {
                lost++;
                console.log(`  ${id}: request ${n} lost to a crash; asking the new incarnation again`);
              }
              host.drop(ref);
              ref = fresh;
            }
          }
          await sleep(PACE_MS);
        }
        host.drop(ref);
        return { id, requests: n, answered, wrong, lost, slow };
      }),
    );
    await drainStarts();
    const chaos = await restartReport();
    for (const line of chaos.lines) console.log(`  ${line}`);
    const requests = lanes.reduce((s, l) => s + l.requests, 0);
    const answered = lanes.reduce((s, l) => s + l.answered, 0);
    const lost = lanes.reduce((s, l) => s + l.lost, 0);
    const slow = lanes.reduce((s, l) => s + l.slow, 0);
    console.log(
      `  ${answered}/${requests} requests answered; ${lost} lost to crashes and asked again, ${slow} merely slow`,
    );
    checks.check('every request got its answer despite the crashes', answered === requests);
    checks.check(
      'every answer right',
      lanes.every((l) => l.wrong === 0),
    );
    checks.check('the shards crashed and were restarted', chaos.total > 0, `${chaos.total} restarts`);
    const restartsSeen = [...starts.values()].reduce((s, n) => s + n, 0) - 4;
    checks.check(
      'every restart was seen starting by the host',
      restartsSeen === chaos.total,
      `${restartsSeen} hellos from new incarnations`,
    );
    checks.check('the service answers after the chaos', (await healthCheck('after chaos')) === 4);

    // ------------------------------------------------------------ 2. kill the inner supervisor
    console.log('\n2. kill the inner supervisor outright');
    const rootBefore = await root.restartCount();
    const innerRef = await lookupRunning(['inner']);
    const innerMonitor = host.monitor(innerRef);
    runtime.kill(innerRef);
    const innerDown = await runtime.receive({
      timeout: 5000,
      match: (s) => isDown(s) && s.monitor === innerMonitor,
    });
    if (isDown(innerDown)) {
      console.log(`  monitor: inner went down with reason ${showReason(innerDown.reason)}`);
      host.drop(innerDown.ref);
    }
    host.drop(innerRef);
    const restarted = await collectStarts(2);
    console.log(`  root started inner again, and inner started ${restarted.sort().join(' and ')} again`);
    checks.check(
      'root restarted the inner subtree',
      (await root.restartCount()) === rootBefore + 1 && restarted.join() === 'shard-c,shard-d',
    );
    checks.check('the service answers after losing a subtree', (await healthCheck('after the kill')) === 4);

    // ------------------------------------------------------------ 3. exceed the intensities
    console.log(
      `\n3a. crash shard-c faster than inner allows (more than ${INNER_INTENSITY.maxRestarts} restarts in ${INNER_INTENSITY.periodMs} ms)`,
    );
    const innerGaveUp = await storm(['inner'], ['inner', 'shard-c']);
    console.log(
      `  monitor: inner went down at crash ${innerGaveUp.crashes} of the storm: ${showReason(innerGaveUp.reason)}`,
    );
    checks.check('inner gave up with SupervisorIntensity', isIntensity(innerGaveUp.reason));
    await collectStarts(2); // root starts inner again, and it starts its shards
    checks.check(
      'root replaced inner, and the service answers',
      (await healthCheck('after inner gave up')) === 4,
    );

    console.log(
      `\n3b. crash shard-a faster than root allows (more than ${ROOT_INTENSITY.maxRestarts} restarts in ${ROOT_INTENSITY.periodMs} ms)`,
    );
    const rootGaveUp = await storm(null, ['shard-a']);
    console.log(
      `  monitor: root went down at crash ${rootGaveUp.crashes} of the storm: ${showReason(rootGaveUp.reason)}`,
    );
    console.log("  (root's window also counts its restarts of inner in the last second)");
    checks.check('root gave up with SupervisorIntensity', isIntensity(rootGaveUp.reason));

    /**
     * Crashes the child at `path` again and again, each time as soon as its new
     * incarnation says hello, until the supervisor at `supPath` (null: root)
     * goes down; returns the reason its monitor saw.
     */
    async function storm(
      supPath: readonly string[] | null,
      path: readonly string[],
    ): Promise<{ reason: unknown; crashes: number }> {
      const id = path[path.length - 1] as string;
      const supRef = supPath === null ? host.restrict(root.ref, ['monitor']) : await lookupRunning(supPath);
      const monitor = host.monitor(supRef);
      host.drop(supRef);
      await drainStarts();
      for (let crashes = 0; ; ) {
        const target = await lookup(path);
        if (target !== null) {
          host.send(target, 'crash');
          host.drop(target);
          crashes++;
        }
        const m = await runtime.receive({
          timeout: 5000,
          match: (s) => (isStarted(s) && s.started === id) || (isDown(s) && s.monitor === monitor),
        });
        if (isDown(m)) {
          host.drop(m.ref);
          return { reason: m.reason, crashes };
        }
      }
    }

    // ------------------------------------------------------------ the end
    await sleep(50);
    await drainStarts();
    host.drop(root.ref);
    host.drop(observer);
    await drainDowns();
    const clean = await backToBaseline();
    checks.check('the whole tree is gone and the post office is back to its baseline', clean);

    async function drainDowns(): Promise<void> {
      for (;;) {
        let m: unknown;
        try {
          m = await runtime.receive({ timeout: 0 });
        } catch {
          return;
        }
        if (isDown(m)) host.drop(m.ref);
      }
    }

    async function backToBaseline(): Promise<boolean> {
      const strip = (s: typeof baseline) => {
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

    return [
      `chaos: ${answered}/${requests} requests answered while ${chaos.total} random crashes were restarted one for one (${lost} requests asked again)`,
      'killing the nested supervisor: root restarted it and it restarted its shards',
      `inner gave up at crash ${innerGaveUp.crashes} of a storm: ${showReason(innerGaveUp.reason)}`,
      `root gave up at crash ${rootGaveUp.crashes} of a storm: ${showReason(rootGaveUp.reason)}`,
    ];
  } finally {
    await runtime.shutdown();
  }
});

function isIntensity(reason: unknown): boolean {
  return (reason as { kind?: unknown; name?: unknown } | null)?.name === 'SupervisorIntensity';
}
