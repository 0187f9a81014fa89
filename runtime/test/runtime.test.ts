// The runtime with real scheduler workers: spawn, messages, references,
// request/reply, exits through links, traps and monitors, timers, crashes.
// Every test ends with the leak check: stats() back to the baseline taken
// right after start, once every process the test started is gone.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PostOfficeStats } from '../../core/index.ts';
import {
  EncodeError,
  isDown,
  type Ref,
  RequestTimeout,
  Runtime,
  SpawnError,
  type WorkerCrashReason,
} from '../index.ts';
import { downOf as downOfMonitor, expectBaseline as expectBackToBaseline } from './harness.ts';

const BASIC = new URL('./fixtures/basic.ts', import.meta.url).href;

let runtime: Runtime;
let baseline: PostOfficeStats;

beforeEach(async () => {
  runtime = await Runtime.start({ workers: 2 });
  baseline = runtime.stats();
});

afterEach(async () => {
  await runtime.shutdown();
});

async function expectBaseline(): Promise<void> {
  await expectBackToBaseline(runtime, baseline);
}

/** The next message the host receives, skipping nothing. */
function next(timeout = 5000): Promise<unknown> {
  return runtime.receive({ timeout });
}

function downOf(monitor: number): Promise<unknown> {
  return downOfMonitor(runtime, monitor);
}

describe('start and shutdown', () => {
  it('starts one scheduler per requested worker and shuts down without leaving any', async () => {
    expect(runtime.workerCount).toBe(2);
    const exited = runtime.workers.map((w) => new Promise<number>((r) => w.once('exit', r)));
    const ref = await runtime.spawn(BASIC, 'sleeper');
    expect(runtime.stats().liveGroups).toBeGreaterThan(baseline.liveGroups);
    const monitor = runtime.monitor(ref);
    await runtime.shutdown();
    expect(await Promise.all(exited)).toEqual([0, 0]);
    expect(monitor).toBeGreaterThan(0);
    await expect(runtime.spawn(BASIC, 'quick')).rejects.toThrow(/shut down/);
    // Shutdown closed every process and the host: only the empty office is left.
    const after = runtime.stats();
    expect(after.liveGroups).toBe(0);
    expect(after.tables).toBe(0);
    expect(after.heapBytes).toBe(0);
  });
});

describe('spawn, send, request', () => {
  it('spawns on both workers and answers requests from the host', async () => {
    const a = await runtime.spawn(BASIC, 'echo', [], { worker: 0 });
    const b = await runtime.spawn(BASIC, 'echo', [], { worker: 1 });
    const ra = (await runtime.request(a, 1)) as { echo: number; thread: number };
    const rb = (await runtime.request(b, { deep: [1, 'two', { three: 3n }] })) as {
      echo: unknown;
      thread: number;
    };
    expect(ra.echo).toBe(1);
    expect(rb.echo).toEqual({ deep: [1, 'two', { three: 3n }] });
    expect(ra.thread).not.toBe(rb.thread);
    expect(await runtime.request(a, { stop: true })).toBe('bye');
    expect(await runtime.request(b, { stop: true })).toBe('bye');
    runtime.host.drop(a);
    runtime.host.drop(b);
    await expectBaseline();
  });

  it('carries references inside values as capabilities, across workers', async () => {
    const a = await runtime.spawn(BASIC, 'echo', [], { worker: 0 });
    const b = await runtime.spawn(BASIC, 'echo', [], { worker: 1 });
    // a forwards to b a message that holds a ref to the host; b's reply goes to that ref.
    runtime.send(a, { to: b, value: { to: runtime.host.self, value: 'round trip' } });
    expect(await next()).toBe('round trip');
    await runtime.request(a, { stop: true });
    await runtime.request(b, { stop: true });
    runtime.host.drop(a);
    runtime.host.drop(b);
    await expectBaseline();
  });

  it('hands references over at spawn, and the spawned process uses them', async () => {
    const ref = await runtime.spawn(BASIC, 'announcer', [runtime.host.self]);
    const m = (await next()) as { hello: Ref };
    expect(runtime.host.same(m.hello, ref)).toBe(true);
    runtime.kill(ref);
    runtime.host.drop(m.hello);
    runtime.host.drop(ref);
    await expectBaseline();
  });

  it('refuses a value that cannot be encoded at the sender, and sends nothing', async () => {
    const a = await runtime.spawn(BASIC, 'echo');
    expect(() => runtime.send(a, { f: () => 1 })).toThrow(EncodeError);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => runtime.send(a, cyclic)).toThrow(EncodeError);
    expect(() => runtime.send(a, Symbol('s'))).toThrow(EncodeError);
    expect(await runtime.request(a, 'still fine')).toMatchObject({ echo: 'still fine' });
    await runtime.request(a, { stop: true });
    runtime.host.drop(a);
    await expectBaseline();
  });

  it('reports a missing module or export as a SpawnError and leaks nothing', async () => {
    await expect(runtime.spawn(BASIC, 'noSuchExport')).rejects.toThrow(SpawnError);
    await expect(runtime.spawn(new URL('./fixtures/missing.ts', import.meta.url).href, 'x')).rejects.toThrow(
      SpawnError,
    );
    await expectBaseline();
  });

  it('runs a thousand processes spread over the workers (M:N)', async () => {
    const spawners = await Promise.all(
      [0, 1].map((w) => runtime.spawn(BASIC, 'spawnMany', [BASIC, 500, runtime.host.self], { worker: w })),
    );
    const sums = [(await next(20_000)) as { sum: number }, (await next(20_000)) as { sum: number }];
    expect(sums.map((s) => s.sum)).toEqual([124750, 124750]);
    for (const s of spawners) runtime.host.drop(s);
    await expectBaseline();
  });
});

describe('selective receive, timers, request/reply', () => {
  it('takes a matching message first and keeps the others in order', async () => {
    const p = await runtime.spawn(BASIC, 'selective', [runtime.host.self]);
    runtime.send(p, { tag: 'a' });
    runtime.send(p, { tag: 'c' });
    runtime.send(p, { tag: 'b' });
    expect(await next()).toEqual([{ tag: 'b' }, { tag: 'a' }, { tag: 'c' }]);
    runtime.host.drop(p);
    await expectBaseline();
  });

  it('sends after a delay and cancels', async () => {
    const p = await runtime.spawn(BASIC, 'timers', [runtime.host.self]);
    expect(await next()).toEqual({ cancelled: true, again: false });
    expect(await next()).toBe('first');
    await expect(runtime.receive({ timeout: 100 })).rejects.toThrow(/nothing received/);
    runtime.host.drop(p);
    await expectBaseline();
  });

  it('times a request out, and drops the late reply instead of mailing it', async () => {
    const server = await runtime.spawn(BASIC, 'slowServer', [60]);
    const p = await runtime.spawn(BASIC, 'impatient', [server, runtime.host.self]);
    expect(await next()).toEqual({ outcome: 'RequestTimeout', stray: 'none' });
    await expect(runtime.request(server, 'x', { timeout: 10 })).rejects.toThrow(RequestTimeout);
    // The host's late reply is dropped too: the next ordinary message is the next one sent.
    await new Promise((r) => setTimeout(r, 100));
    runtime.send(runtime.host.self, 'ordinary');
    expect(await next()).toBe('ordinary');
    runtime.kill(server);
    runtime.host.drop(server);
    runtime.host.drop(p);
    await expectBaseline();
  });

  it('lets a server hand a request to another process that replies later', async () => {
    const back = await runtime.spawn(BASIC, 'backOffice', [], { worker: 1 });
    const front = await runtime.spawn(BASIC, 'frontDesk', [back], { worker: 0 });
    expect(await runtime.request(front, 42)).toEqual({ doneBy: 'back', value: 42 });
    runtime.kill(front);
    runtime.kill(back);
    runtime.host.drop(front);
    runtime.host.drop(back);
    await expectBaseline();
  });
});

describe('exits', () => {
  it('gives monitors the reason: normal, error, exit value, killed', async () => {
    const normal = await runtime.spawnMonitor(BASIC, 'quick');
    expect(await downOf(normal.monitor)).toBe('normal');
    const thrown = await runtime.spawnMonitor(BASIC, 'thrower', ['bad input']);
    expect(await downOf(thrown.monitor)).toMatchObject({
      kind: 'error',
      name: 'TypeError',
      message: 'bad input',
    });
    const exited = await runtime.spawnMonitor(BASIC, 'exiter', [{ custom: [1, 2] }]);
    expect(await downOf(exited.monitor)).toEqual({ custom: [1, 2] });
    const killed = await runtime.spawnMonitor(BASIC, 'sleeper');
    runtime.kill(killed.ref, { because: 'test' });
    expect(await downOf(killed.monitor)).toEqual({ because: 'test' });
    for (const p of [normal, thrown, exited, killed]) runtime.host.drop(p.ref);
    await expectBaseline();
  });

  it("kills a linked parent with its child, with the child's reason", async () => {
    const parent = await runtime.spawnMonitor(BASIC, 'linkParent', [
      runtime.host.self,
      false,
      BASIC,
      'thrower',
      ['child failed'],
    ]);
    const { spawned } = (await next()) as { spawned: Ref };
    expect(await downOf(parent.monitor)).toMatchObject({ kind: 'error', message: 'child failed' });
    runtime.host.drop(spawned);
    runtime.host.drop(parent.ref);
    await expectBaseline();
  });

  it('delivers an exit message instead to a parent that traps exits', async () => {
    const parent = await runtime.spawn(BASIC, 'linkParent', [
      runtime.host.self,
      true,
      BASIC,
      'exiter',
      ['done'],
    ]);
    const { spawned } = (await next()) as { spawned: Ref };
    expect(await next()).toEqual({ exit: 'done', fromChild: true });
    runtime.kill(parent);
    runtime.host.drop(spawned);
    runtime.host.drop(parent);
    await expectBaseline();
  });

  it('kills the child when the parent of a spawnLink dies', async () => {
    const parent = await runtime.spawn(BASIC, 'linkParent', [runtime.host.self, false, BASIC, 'sleeper', []]);
    const { spawned } = (await next()) as { spawned: Ref };
    const monitor = runtime.monitor(spawned);
    runtime.kill(parent, 'stop the family');
    expect(await downOf(monitor)).toBe('stop the family');
    runtime.host.drop(spawned);
    runtime.host.drop(parent);
    await expectBaseline();
  });
});

describe('references with fewer permissions', () => {
  it('lets a send-only reference send, and nothing more', async () => {
    const target = await runtime.spawn(BASIC, 'sleeper');
    const sendOnly = runtime.host.restrict(target, ['send']);
    expect(runtime.host.permissions(sendOnly)).toEqual(['send']);
    const p = await runtime.spawn(BASIC, 'overreach', [sendOnly, runtime.host.self]);
    expect(await next()).toEqual({
      results: ['PermissionDenied', 'PermissionDenied', 'PermissionDenied'],
      perms: ['send'],
    });
    runtime.kill(target);
    for (const r of [target, sendOnly, p]) runtime.host.drop(r);
    await expectBaseline();
  });
});

describe('a crashed scheduler worker', () => {
  it('kills its processes with a reason, fires their monitors, and is replaced', async () => {
    const victim = await runtime.spawnMonitor(BASIC, 'sleeper', [], { worker: 1 });
    const survivor = await runtime.spawn(BASIC, 'echo', [], { worker: 0 });
    const replaced = new Promise<[number, WorkerCrashReason]>((resolve) => {
      runtime.onWorkerReplaced = (index, reason) => resolve([index, reason]);
    });
    const crasher = await runtime.spawn(BASIC, 'crashWorker', [], { worker: 1 });
    expect(await downOf(victim.monitor)).toMatchObject({ kind: 'worker-crashed' });
    const [index, reason] = await replaced;
    expect(index).toBe(1);
    expect(reason.detail).toMatch(/exit(ed)? .*code 3|code 3/);
    // The other worker went on; the new worker takes spawns.
    expect(await runtime.request(survivor, 'alive')).toMatchObject({ echo: 'alive' });
    const fresh = await runtime.spawn(BASIC, 'echo', [], { worker: 1 });
    expect(await runtime.request(fresh, 'new')).toMatchObject({ echo: 'new' });
    for (const r of [survivor, fresh]) await runtime.request(r, { stop: true });
    for (const r of [victim.ref, survivor, crasher, fresh]) runtime.host.drop(r);
    await expectBaseline();
  });

  it('recovers the same way from an uncaught error in user code', async () => {
    const victim = await runtime.spawnMonitor(BASIC, 'sleeper', [], { worker: 0 });
    const replaced = new Promise<WorkerCrashReason>((resolve) => {
      runtime.onWorkerReplaced = (_index, reason) => resolve(reason);
    });
    const crasher = await runtime.spawn(BASIC, 'crashWorkerUncaught', [], { worker: 0 });
    expect(await downOf(victim.monitor)).toMatchObject({
      kind: 'worker-crashed',
      detail: expect.stringMatching(/RangeError: uncaught in a timer/),
    });
    await replaced;
    const fresh = await runtime.spawn(BASIC, 'echo', [], { worker: 0 });
    expect(await runtime.request(fresh, 'again')).toMatchObject({ echo: 'again' });
    await runtime.request(fresh, { stop: true });
    for (const r of [victim.ref, crasher, fresh]) runtime.host.drop(r);
    await expectBaseline();
  });
});

describe('a scheduler worker out of memory', () => {
  it('dies with a reason that says so, and is replaced', async () => {
    const small = await Runtime.start({ workers: 1, workerResourceLimits: { maxOldGenerationSizeMb: 48 } });
    try {
      const start = small.stats();
      const replaced = new Promise<void>((resolve) => {
        small.onWorkerReplaced = () => resolve();
      });
      const victim = await small.spawnMonitor(BASIC, 'exhaustMemory');
      const m = await small.receive({ timeout: 30_000, match: (s) => isDown(s) });
      if (!isDown(m)) throw new Error('expected a down');
      expect(m.reason).toMatchObject({ kind: 'worker-crashed', detail: expect.stringMatching(/memory/i) });
      small.host.drop(m.ref);
      small.host.drop(victim.ref);
      await replaced;
      const echo = await small.spawn(BASIC, 'echo');
      expect(await small.request(echo, 'after oom', { timeout: 10_000 })).toMatchObject({
        echo: 'after oom',
      });
      await small.request(echo, { stop: true });
      small.host.drop(echo);
      await expectBackToBaseline(small, start);
    } finally {
      await small.shutdown();
    }
  });
});
