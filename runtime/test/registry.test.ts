// The name registry with real scheduler workers: registration and lookup
// across workers, names that go with their process, refusals, and the
// registry as a capability (no ambient authority). Every test ends with the
// leak check: stats() back to the baseline taken right after start, once
// every process the test started is gone.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PostOfficeStats } from '../../core/index.ts';
import { isDown, type Ref, Runtime } from '../index.ts';
import { Registry, RegistryError, startRegistry } from '../registry.ts';
import { comparable, expectBaseline as expectBackToBaseline } from './harness.ts';

const PROCS = new URL('./fixtures/registry-procs.ts', import.meta.url).href;

let runtime: Runtime;
let baseline: PostOfficeStats;

beforeEach(async () => {
  runtime = await Runtime.start({ workers: 2 });
  baseline = runtime.stats();
});

afterEach(async () => {
  await runtime.shutdown();
});

/** The leak check: the host's mailbox emptied, then the post office back to what it held after start. */
async function expectBaseline(): Promise<void> {
  await expectBackToBaseline(runtime, baseline);
}

/** The post office's stats once two readings 50 ms apart agree. */
async function settledStats(): Promise<ReturnType<typeof comparable>> {
  let last = JSON.stringify(comparable(runtime.stats()));
  for (;;) {
    await new Promise((r) => setTimeout(r, 50));
    const now = JSON.stringify(comparable(runtime.stats()));
    if (now === last) return JSON.parse(now);
    last = now;
  }
}

function next(timeout = 5000): Promise<unknown> {
  return runtime.receive({ timeout, match: (m) => !isDown(m) });
}

/** Waits for the down of `monitor`, drops its Ref, returns its reason. */
async function downOf(monitor: number): Promise<unknown> {
  const m = await runtime.receive({ timeout: 5000, match: (s) => isDown(s) && s.monitor === monitor });
  if (!isDown(m)) throw new Error('expected a down');
  runtime.host.drop(m.ref);
  return m.reason;
}

/** Kills a process, waits until it is gone, and drops the host's Ref to it. */
async function killAndWait(ref: Ref): Promise<void> {
  const monitor = runtime.monitor(ref);
  runtime.kill(ref);
  await downOf(monitor);
  runtime.host.drop(ref);
}

describe('the registry', () => {
  it('registers from one worker and looks up from the other, with send-only Refs to the registry', async () => {
    const host = runtime.host;
    const reg = await startRegistry(runtime, { worker: 0 });
    const sendOnly = host.restrict(reg, ['send']);
    const observer = host.restrict(host.self, ['send']);
    const a = await runtime.spawnMonitor(PROCS, 'registrant', [sendOnly, 'alpha', observer, ['send']], {
      worker: 0,
    });
    const registered = (await next()) as { registered: string; thread: number; registryPerms: string[] };
    expect(registered).toMatchObject({ registered: 'alpha', registryPerms: ['send'] });
    const l = await runtime.spawnMonitor(PROCS, 'looker', [sendOnly, 'alpha', observer], { worker: 1 });
    const looked = (await next()) as { thread: number };
    // Published ['send']: the looker can talk to alpha, not kill it.
    expect(looked).toMatchObject({
      found: true,
      answer: 'hello from alpha',
      perms: ['send'],
      kill: 'PermissionDenied',
    });
    expect(looked.thread).not.toBe(registered.thread);
    expect(await downOf(l.monitor)).toBe('normal');

    const names = new Registry(host, sendOnly);
    expect(await names.names()).toEqual(['alpha']);
    const found = (await names.lookup('alpha')) as Ref;
    expect(host.same(found, a.ref)).toBe(true);
    expect(host.permissions(found)).toEqual(['send']);
    expect(await names.lookup('beta')).toBeNull();

    host.drop(found);
    runtime.send(a.ref, 'die');
    expect(await downOf(a.monitor)).toBe('normal');
    await killAndWait(reg);
    for (const r of [sendOnly, observer, a.ref, l.ref]) host.drop(r);
    await expectBaseline();
  });

  it('drops a name when its process dies, and lets it be taken again', async () => {
    const host = runtime.host;
    const reg = await startRegistry(runtime);
    const names = new Registry(host, reg);
    const observer = host.restrict(host.self, ['send']);
    const first = await runtime.spawnMonitor(PROCS, 'registrant', [reg, 'svc', observer, ['send']], {
      worker: 0,
    });
    expect(await next()).toMatchObject({ registered: 'svc' });
    // A second process asking for the same name while the first lives is refused.
    const second = await runtime.spawn(PROCS, 'registrant', [reg, 'svc', observer, ['send']], { worker: 1 });
    expect(await next()).toEqual({ refused: 'NameTaken' });
    await expect(names.register('svc', second)).rejects.toMatchObject({
      name: 'RegistryError',
      code: 'NameTaken',
    });

    runtime.kill(first.ref, 'gone');
    expect(await downOf(first.monitor)).toBe('gone');
    // The host has seen the down: the registry, which got its own first, has dropped the name.
    expect(await names.lookup('svc')).toBeNull();
    expect(await names.names()).toEqual([]);
    await names.register('svc', second);
    const found = (await names.lookup('svc')) as Ref;
    expect(host.same(found, second)).toBe(true);
    host.drop(found);

    await killAndWait(second);
    expect(await names.lookup('svc')).toBeNull();
    await killAndWait(reg);
    for (const r of [observer, first.ref]) host.drop(r);
    await expectBaseline();
  });

  it('publishes what the registrant chose, and unregisters', async () => {
    const host = runtime.host;
    const reg = await startRegistry(runtime);
    const names = new Registry(host, reg);
    const observer = host.restrict(host.self, ['send']);
    const p = await runtime.spawn(PROCS, 'registrant', [reg, 'unused', observer, []]);
    expect(await next()).toMatchObject({ registered: 'unused' });

    await names.register('full', p);
    await names.register('watch', p, { publish: ['send', 'monitor'] });
    const full = (await names.lookup('full')) as Ref;
    const watch = (await names.lookup('watch')) as Ref;
    const empty = (await names.lookup('unused')) as Ref;
    expect(host.permissions(full)).toEqual(['send', 'monitor', 'kill', 'link']);
    expect(host.permissions(watch)).toEqual(['send', 'monitor']);
    expect(host.permissions(empty)).toEqual([]);
    expect(await names.names()).toEqual(['full', 'unused', 'watch']);
    expect(await names.unregister('full')).toBe(true);
    expect(await names.unregister('full')).toBe(false);
    expect(await names.lookup('full')).toBeNull();
    expect(await names.names()).toEqual(['unused', 'watch']);

    // The registry cannot keep a name for a Ref it cannot watch, nor publish more than it was given.
    const sendOnly = host.restrict(p, ['send']);
    await expect(names.register('blind', sendOnly)).rejects.toMatchObject({ code: 'NotMonitorable' });
    await expect(names.register('more', watch, { publish: ['kill'] })).rejects.toMatchObject({
      code: 'BadRequest',
    });
    await expect(names.register('', p)).rejects.toThrow(RegistryError);
    await expect(names.register('x'.repeat(256), p)).rejects.toMatchObject({ code: 'BadRequest' });

    for (const r of [full, watch, empty, sendOnly, observer]) host.drop(r);
    await killAndWait(p);
    expect(await names.names()).toEqual([]);
    await killAndWait(reg);
    await expectBaseline();
  });

  it('drops the Refs of requests it refuses and of stray messages, and keeps serving', async () => {
    const host = runtime.host;
    const reg = await startRegistry(runtime);
    const names = new Registry(host, reg);
    expect(await names.names()).toEqual([]);
    // The registry lets go of a request's reply route just after the reply lands: wait for that.
    const before = await settledStats();
    const junk = host.restrict(host.self, ['send']);
    await expect(runtime.request(reg, { op: 'nope', ref: junk })).resolves.toMatchObject({
      error: { code: 'BadRequest' },
    });
    await expect(runtime.request(reg, 'not even an object')).resolves.toMatchObject({
      error: { code: 'BadRequest' },
    });
    await expect(runtime.request(reg, { op: 'register', name: 7, ref: junk })).resolves.toMatchObject({
      error: { code: 'BadRequest' },
    });
    await expect(
      runtime.request(reg, { op: 'register', name: 'n', ref: 'not a ref' }),
    ).resolves.toMatchObject({
      error: { code: 'BadRequest' },
    });
    runtime.send(reg, { stray: [junk, new Map([['k', junk]])] });
    runtime.send(reg, 'hello');
    expect(await names.names()).toEqual([]);
    host.drop(junk);
    await expect.poll(() => comparable(runtime.stats()), { timeout: 5000, interval: 20 }).toEqual(before);
    await killAndWait(reg);
    await expectBaseline();
  });
});

describe('the registry as a capability', () => {
  it('cannot be reached by a process that was not handed a Ref to it', async () => {
    const host = runtime.host;
    const reg = await startRegistry(runtime);
    await new Registry(host, reg).register('secret', reg);
    const observer = host.restrict(host.self, ['send']);
    const p = await runtime.spawnMonitor(PROCS, 'outsider', [observer], { worker: 1 });
    // Its only Ref is the observer; anything else it tries to use as a registry is refused at once.
    expect(await next()).toEqual({ refsInArgs: 1, attempts: ['TypeError', 'TypeError', 'TypeError'] });
    expect(await downOf(p.monitor)).toBe('normal');
    await killAndWait(reg);
    for (const r of [observer, p.ref]) host.drop(r);
    await expectBaseline();
  });
});
