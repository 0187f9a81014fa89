// Sandboxed processes with real workers: the membrane's API, escape
// attempts, the CPU and memory limits, powers, and clean-up. Every test ends
// with the leak check: stats() back to the baseline taken right after start,
// once every process the test started is gone. One runtime serves the file
// (a sandbox worker is the expensive part; the scheduler is not under test
// here), so the check also proves each test left nothing for the next.

import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { PostOfficeStats } from '../../core/index.ts';
import { isDown, type LimitReason, type Ref, Runtime, SpawnError } from '../index.ts';
import { downOf as downOfMonitor, expectBaseline as expectBackToBaseline } from './harness.ts';

const BASIC = new URL('./fixtures/sandbox-basic.ts', import.meta.url).href;
const ESCAPE = new URL('./fixtures/sandbox-escape.ts', import.meta.url).href;
const PEER = new URL('./fixtures/sandbox-peer.ts', import.meta.url).href;
const IMPORTS = new URL('./fixtures/sandbox-imports.ts', import.meta.url).href;

let runtime: Runtime;
let baseline: PostOfficeStats;

beforeAll(async () => {
  runtime = await Runtime.start({ workers: 1 });
  baseline = runtime.stats();
});

afterAll(async () => {
  await runtime.shutdown();
});

afterEach(async (context) => {
  if (context.task.result?.state === 'fail') {
    // A failed test may leave processes behind: the next test gets a fresh runtime, not its failure.
    await runtime.shutdown();
    runtime = await Runtime.start({ workers: 1 });
    baseline = runtime.stats();
    return;
  }
  // Nothing a test left in the host's mailbox reaches the next one.
  while ((await runtime.receive({ timeout: 1 }).catch(() => null)) !== null) {}
});

/**
 * The leak check. A dead sandbox's producer slot is freed by the consumer of
 * the ring it last wrote into, when that ring runs dry (core's rule): often
 * the host's, which the harness reads dry first.
 */
async function expectBaseline(): Promise<void> {
  await expectBackToBaseline(runtime, baseline);
}

/** The next message that is not a down (downs stay queued). */
function nextMessage(timeout = 10_000): Promise<unknown> {
  return runtime.receive({ timeout, match: (m) => !isDown(m) });
}

function downOf(monitor: number, timeout = 10_000): Promise<unknown> {
  return downOfMonitor(runtime, monitor, timeout);
}

const sandbox = { memoryMb: 64, cpuMsPerSlice: 1000 };

describe('the process API through the membrane', () => {
  it('answers requests from the host and from a process on a scheduler worker', async () => {
    const echo = await runtime.spawn(BASIC, 'echo', [], { sandbox });
    expect(await runtime.request(echo, { deep: [1, 'two', { three: 3n }] })).toEqual({
      echo: { deep: [1, 'two', { three: 3n }] },
    });
    const peer = await runtime.spawn(PEER, 'requester', [echo, runtime.host.self, 'from a peer']);
    expect(await nextMessage()).toEqual({ reply: { echo: 'from a peer' } });
    // A ref handed to the sandbox in a message comes back usable.
    runtime.send(echo, { to: runtime.host.self, value: 'forwarded' });
    expect(await nextMessage()).toBe('forwarded');
    const monitor = runtime.monitor(echo);
    expect(await runtime.request(echo, { stop: true })).toBe('bye');
    expect(await downOf(monitor)).toBe('normal');
    runtime.host.drop(echo);
    runtime.host.drop(peer);
    await expectBaseline();
  });

  it('covers timers, references, permissions, selective receive, values, monitors and kill', async () => {
    const echo = await runtime.spawn(BASIC, 'echo', [], { sandbox });
    const victim = await runtime.spawn(BASIC, 'sleeper', [], { sandbox });
    const tour = await runtime.spawn(BASIC, 'tour', [runtime.host.self, echo], { sandbox });
    runtime.send(tour, { ref: victim }); // (the tour takes it by selective receive, when it gets there)
    const out = (await nextMessage(20_000)) as Record<string, unknown>;
    expect(out).toEqual({
      timer: true,
      permissions: ['send'],
      same: true,
      monitorWeak: 'PermissionDenied',
      afterDrop: 'InvalidHandle',
      cancel: true,
      later: { later: 1 },
      timeout: 'ReceiveTimeout',
      reply: {
        echo: { values: [1n, Number.NaN, Number.POSITIVE_INFINITY, new Date(5), new Set([2]), undefined] },
      },
      encode: 'EncodeError',
      gotRef: 'Ref',
      down: { reason: 'from the tour', monitor: true },
    });
    const monitors = [runtime.monitor(tour), runtime.monitor(echo)];
    await runtime.request(echo, { stop: true });
    expect(await downOf(monitors[0] as number)).toBe('normal');
    expect(await downOf(monitors[1] as number)).toBe('normal');
    for (const r of [echo, tour, victim]) runtime.host.drop(r);
    await expectBaseline();
  });

  it('ends with the reason the function gives: return, throw, exit', async () => {
    const quick = await runtime.spawnMonitor(BASIC, 'quick', [], { sandbox });
    const thrower = await runtime.spawnMonitor(BASIC, 'thrower', ['boom'], { sandbox });
    const exiter = await runtime.spawnMonitor(BASIC, 'exiter', [{ custom: [1, 2] }], { sandbox });
    expect(await downOf(quick.monitor)).toBe('normal');
    expect(await downOf(thrower.monitor)).toMatchObject({
      kind: 'error',
      name: 'TypeError',
      message: 'boom',
    });
    expect(await downOf(exiter.monitor)).toEqual({ custom: [1, 2] });
    for (const r of [quick, thrower, exiter]) runtime.host.drop(r.ref);
    await expectBaseline();
  });

  it('dies when killed from outside, and its worker goes', async () => {
    const ref = await runtime.spawn(BASIC, 'sleeper', [runtime.host.self], { sandbox });
    expect(await nextMessage()).toBe('sleeping');
    const monitor = runtime.monitor(ref);
    runtime.kill(ref, { why: 'test' });
    expect(await downOf(monitor)).toEqual({ why: 'test' });
    runtime.host.drop(ref);
    await expectBaseline();
  });

  it('refuses modules that import, and missing exports, with SpawnError', async () => {
    await expect(runtime.spawn(IMPORTS, 'main', [], { sandbox })).rejects.toThrow(/cannot import 'node:fs'/);
    await expect(runtime.spawn(BASIC, 'nothing', [], { sandbox })).rejects.toThrow(SpawnError);
    await expect(runtime.spawn(IMPORTS, 'main', [], { sandbox: { memoryMb: 1 } })).rejects.toThrow(
      RangeError,
    );
    await expectBaseline();
  });
});

describe('escape attempts', () => {
  it('all fail, and pollution inside stays inside', { timeout: 30_000 }, async () => {
    const ref = await runtime.spawn(ESCAPE, 'attempts', [runtime.host.self], { sandbox });
    const report = (await runtime.receive({
      timeout: 20_000,
      match: (m) => m !== null && typeof m === 'object' && 'results' in m,
    })) as {
      results: Record<string, { escaped: boolean; how: string }>;
      count: number;
      pollutedHere: unknown;
    };
    expect(await nextMessage()).toBe('still works'); // (sent by the attempt to mutate ctx)
    const escaped = Object.entries(report.results).filter(([, r]) => r.escaped);
    expect(escaped).toEqual([]);
    expect(report.count).toBeGreaterThanOrEqual(30);
    // The sandbox polluted its own Object.prototype and Array.prototype (it can: its realm is its own)...
    expect(report.pollutedHere).toBe('by a sandbox');
    // ...and none of it is visible here...
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(([] as unknown as Record<string, unknown>).polluted).toBeUndefined();
    // ...nor on a scheduler worker...
    const probe = await runtime.spawn(PEER, 'pollutionProbe', [runtime.host.self]);
    expect(await nextMessage()).toEqual({ object: null, array: null });
    // ...nor in another sandbox.
    const clean = await runtime.spawn(ESCAPE, 'pollutionProbe', [runtime.host.self], { sandbox });
    expect(await nextMessage()).toEqual({ object: null, array: null, fn: null });
    runtime.kill(ref);
    for (const r of [ref, probe, clean]) runtime.host.drop(r);
    while ((await runtime.receive({ timeout: 100 }).catch(() => null)) !== null) {}
    await expectBaseline();
  });

  it('a "__proto__" key sent by a sandbox stays an own property', async () => {
    const ref = await runtime.spawn(ESCAPE, 'protoMessage', [runtime.host.self], { sandbox });
    const m = (await nextMessage()) as Record<string, unknown>;
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(m)).toBe(Object.prototype);
    runtime.host.drop(ref);
    await expectBaseline();
  });
});

describe('limits', () => {
  it('kills an endless loop with a cpu limit reason; the mailbox it flooded keeps working', async () => {
    const sink = await runtime.spawn(PEER, 'sink');
    const ref = await runtime.spawn(BASIC, 'flood', [sink, runtime.host.self], {
      sandbox: { cpuMsPerSlice: 300 },
    });
    expect(await nextMessage()).toBe('flooding');
    const monitor = runtime.monitor(ref);
    const reason = (await downOf(monitor)) as LimitReason;
    expect(reason).toMatchObject({ kind: 'limit', limit: 'cpu' });
    expect(reason.detail).toMatch(/without yielding/);
    // Other senders still get through to the mailbox the sandbox was writing into when it died.
    const before = (await runtime.request(sink, 'count')) as number;
    for (let i = 0; i < 10; i++) expect(runtime.send(sink, i)).toBe(true);
    await expect.poll(() => runtime.request(sink, 'count'), { timeout: 5000 }).toBe(before + 10);
    runtime.kill(sink);
    runtime.host.drop(sink);
    runtime.host.drop(ref);
    await expectBaseline();
  });

  it('a sandbox killed while waiting for room in a mailbox leaves it to its owner, whole', async () => {
    const holder = await runtime.spawn(PEER, 'gated', [runtime.host.self]);
    const gate = await runtime.receive({ timeout: 10_000 });
    const ref = await runtime.spawn(BASIC, 'stuck', [holder, runtime.host.self], {
      sandbox: { cpuMsPerSlice: 300 },
    });
    const { stuck } = (await nextMessage()) as { stuck: number };
    expect(stuck).toBeGreaterThan(0);
    const monitor = runtime.monitor(ref);
    expect(await downOf(monitor)).toMatchObject({ kind: 'limit', limit: 'cpu' });
    // The holder drains what the sandbox sent before it died, then what others send; nothing of the dead waiter.
    runtime.host.reply(gate as Parameters<typeof runtime.host.reply>[0], 'go');
    await runtime.host.sendWhenRoom(holder, 'after', { timeout: 5000 });
    await runtime.host.sendWhenRoom(holder, 'last', { timeout: 5000 });
    const { drained } = (await nextMessage()) as { drained: unknown[] };
    expect(drained).toEqual([...Array.from({ length: stuck }, (_, i) => ({ fill: i })), 'after']);
    runtime.host.drop(holder);
    runtime.host.drop(ref);
    await expectBaseline();
  });

  it('a sandbox killed in a loop of links and monitors leaves no lock behind', async () => {
    for (let round = 0; round < 3; round++) {
      // The target traps exits: the sandbox may die linked to it.
      const target = await runtime.spawn(PEER, 'sink', [true]);
      const ref = await runtime.spawn(BASIC, 'churn', [target, runtime.host.self], {
        sandbox: { cpuMsPerSlice: 100 + 50 * round },
      });
      expect(await nextMessage()).toBe('churning');
      const monitor = runtime.monitor(ref);
      expect(await downOf(monitor)).toMatchObject({ kind: 'limit', limit: 'cpu' });
      // Every operation on the target still goes through: monitor takes its route's lock, kill its group's.
      const targetMonitor = runtime.monitor(target);
      expect(await runtime.request(target, 'count')).toBe(0);
      runtime.kill(target);
      expect(await downOf(targetMonitor)).toBe('killed');
      runtime.host.drop(target);
      runtime.host.drop(ref);
    }
    await expectBaseline();
  });

  it('kills an endless microtask chain with a cpu limit reason', async () => {
    const ref = await runtime.spawn(BASIC, 'microtasks', [runtime.host.self], {
      sandbox: { cpuMsPerSlice: 300 },
    });
    expect(await nextMessage()).toBe('chaining');
    const monitor = runtime.monitor(ref);
    expect(await downOf(monitor)).toMatchObject({ kind: 'limit', limit: 'cpu' });
    runtime.host.drop(ref);
    await expectBaseline();
  });

  it('kills an allocation bomb with a memory limit reason', { timeout: 30_000 }, async () => {
    const ref = await runtime.spawn(BASIC, 'allocate', [runtime.host.self], {
      sandbox: { memoryMb: 32, cpuMsPerSlice: 20_000 },
    });
    expect(await nextMessage()).toBe('allocating');
    const monitor = runtime.monitor(ref);
    expect(await downOf(monitor, 20_000)).toMatchObject({ kind: 'limit', limit: 'memory' });
    runtime.host.drop(ref);
    await expectBaseline();
  });

  it('a link carries the limit reason to the spawner, across sandboxes', async () => {
    const parent = await runtime.spawn(
      BASIC,
      'parent',
      [runtime.host.self, 'spin', [runtime.host.self], true],
      {
        sandbox: { cpuMsPerSlice: 300, powers: { spawn: true } },
      },
    );
    const monitor = runtime.monitor(parent);
    // The child says 'spinning' and the parent reports the spawn, in either order.
    const two = [await nextMessage(), await nextMessage()];
    const spawned = two.find((m) => m !== 'spinning') as { spawned: Ref };
    expect(two).toContain('spinning');
    expect(spawned.spawned).toBeDefined();
    expect(await downOf(monitor)).toMatchObject({ kind: 'limit', limit: 'cpu' });
    runtime.host.drop(spawned.spawned);
    runtime.host.drop(parent);
    await expectBaseline();
  });
});

describe('powers', () => {
  it('without powers, log and spawn throw PowerDenied', async () => {
    const ref = await runtime.spawn(BASIC, 'powers', [runtime.host.self], { sandbox });
    expect(await nextMessage()).toEqual({ log: 'PowerDenied', spawn: 'PowerDenied' });
    runtime.host.drop(ref);
    await expectBaseline();
  });

  it('with them, ctx.log writes to the host console and ctx.spawn starts a sandboxed child', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      const ref = await runtime.spawn(BASIC, 'powers', [runtime.host.self], {
        sandbox: { powers: { log: true, spawn: true } },
      });
      expect(await nextMessage()).toEqual({ log: 'ok', spawn: 'ok' });
      expect(log.mock.calls.some((c) => String(c[0]).includes('hello from a sandbox 42'))).toBe(true);
      runtime.host.drop(ref);
    } finally {
      log.mockRestore();
    }
    await expectBaseline();
  });

  it('a sandboxed child answers requests', async () => {
    const parent = await runtime.spawn(BASIC, 'parent', [runtime.host.self, 'echo', [], false], {
      sandbox: { powers: { spawn: true } },
    });
    const { spawned } = (await nextMessage()) as { spawned: Ref };
    expect(await runtime.request(spawned, 'hi')).toEqual({ echo: 'hi' });
    expect(await runtime.request(spawned, { stop: true })).toBe('bye');
    runtime.kill(parent);
    runtime.host.drop(spawned);
    runtime.host.drop(parent);
    await expectBaseline();
  });
});

describe('spawning from a sandbox', () => {
  it('a failed spawn tells the sandbox nothing about the module it named', async () => {
    const parent = await runtime.spawn(BASIC, 'parent', [runtime.host.self, 'nothing', [], false], {
      sandbox: { powers: { spawn: true } },
    });
    expect(await nextMessage()).toEqual({
      error: 'SpawnError',
      message: 'the module cannot be loaded in a sandbox',
    });
    runtime.kill(parent);
    runtime.host.drop(parent);
    await expectBaseline();
  });
});

describe('shutdown', () => {
  it('ends running sandboxes, even one in an endless loop', async () => {
    const own = await Runtime.start({ workers: 1 });
    const sleeping = await own.spawn(BASIC, 'sleeper', [own.host.self], { sandbox });
    const spinning = await own.spawn(BASIC, 'spin', [own.host.self], { sandbox: { cpuMsPerSlice: 60_000 } });
    const said = [await own.receive({ timeout: 10_000 }), await own.receive({ timeout: 10_000 })];
    expect(said.sort()).toEqual(['sleeping', 'spinning']);
    own.host.drop(sleeping);
    own.host.drop(spinning);
    await own.shutdown();
    const after = own.stats();
    expect(after.liveGroups).toBe(0);
    expect(after.tables).toBe(0);
    expect(after.heapBytes).toBe(0);
    expect(after.threads).toBe(1); // the main thread's own attachment
  });
});
