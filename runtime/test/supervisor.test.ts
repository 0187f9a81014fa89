// Supervisors with real scheduler workers: each strategy restarts the right
// children, restart policies, restart intensity, a parent's exit, a
// two-level tree, and the whole tree going when its top is killed. Children
// tell the host (the observer) each time they start. Every test ends with
// the leak check: stats() back to the baseline taken right after start, once
// every process the test started is gone.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PostOfficeStats } from '../../core/index.ts';
import { isDown, type Ref, Runtime } from '../index.ts';
import {
  type ChildInfo,
  type ChildSpec,
  type RestartPolicy,
  type Strategy,
  Supervisor,
  SupervisorError,
  type SupervisorSpec,
  startSupervisor,
  supervisorChild,
} from '../supervisor.ts';
import { expectBaseline as expectBackToBaseline } from './harness.ts';

const CHILDREN = new URL('./fixtures/sup-children.ts', import.meta.url).href;

let runtime: Runtime;
let baseline: PostOfficeStats;
/** A send-only Ref to the host, handed to children so they can say they started. */
let observer: Ref;

beforeEach(async () => {
  runtime = await Runtime.start({ workers: 2 });
  baseline = runtime.stats();
  observer = runtime.host.restrict(runtime.host.self, ['send']);
});

afterEach(async () => {
  await runtime.shutdown();
});

/** The leak check: the host's Refs dropped and its mailbox emptied, then the post office back to what it held after start. */
async function expectBaseline(): Promise<void> {
  runtime.host.drop(observer);
  await expectBackToBaseline(runtime, baseline);
}

function isStarted(m: unknown): m is { started: string } {
  return m !== null && typeof m === 'object' && 'started' in m;
}

/** The ids of the next `n` children that say they started, in the order they said it. */
async function started(n: number): Promise<string[]> {
  const ids: string[] = [];
  while (ids.length < n)
    ids.push(((await runtime.receive({ timeout: 10_000, match: isStarted })) as { started: string }).started);
  return ids;
}

/** Nothing more starts within `ms`. */
async function expectNoMoreStarts(ms = 200): Promise<void> {
  await expect(runtime.receive({ timeout: ms, match: isStarted })).rejects.toThrow(/nothing received/);
}

async function downOf(monitor: number, timeout = 10_000): Promise<unknown> {
  const m = await runtime.receive({ timeout, match: (s) => isDown(s) && s.monitor === monitor });
  if (!isDown(m)) throw new Error('expected a down');
  runtime.host.drop(m.ref);
  return m.reason;
}

function childSpec(id: string, restart: RestartPolicy = 'permanent', exportName = 'child'): ChildSpec {
  return { id, module: CHILDREN, export: exportName, args: [id, observer], restart, worker: 'next' };
}

function spec(strategy: Strategy, ids: string[], maxRestarts = 10): SupervisorSpec {
  return { strategy, intensity: { maxRestarts, periodMs: 10_000 }, children: ids.map((id) => childSpec(id)) };
}

/** Children by id (the caller drops the Refs, see dropAll). */
async function childrenOf(sup: Supervisor): Promise<Map<string, ChildInfo>> {
  return new Map((await sup.whichChildren()).map((c) => [c.id, c]));
}

function dropAll(...maps: Map<string, ChildInfo>[]): void {
  for (const map of maps) for (const c of map.values()) if (c.ref !== null) runtime.host.drop(c.ref);
}

/** Which children of `before` have the same incarnation in `after`. */
function kept(before: Map<string, ChildInfo>, after: Map<string, ChildInfo>): Record<string, boolean> {
  const result: Record<string, boolean> = {};
  for (const [id, c] of before) {
    const now = after.get(id)?.ref ?? null;
    result[id] = c.ref !== null && now !== null && runtime.host.same(c.ref, now);
  }
  return result;
}

/** Stops a supervisor through its client and waits for it to be gone. */
async function stopAndWait(sup: Supervisor): Promise<void> {
  const monitor = runtime.monitor(sup.ref);
  await sup.stop();
  expect(await downOf(monitor)).toBe('normal');
  runtime.host.drop(sup.ref);
}

describe('strategies', () => {
  const cases: [Strategy, string[], Record<string, boolean>][] = [
    ['one-for-one', ['b'], { a: true, b: false, c: true }],
    ['one-for-all', ['a', 'b', 'c'], { a: false, b: false, c: false }],
    ['rest-for-one', ['b', 'c'], { a: true, b: false, c: false }],
  ];
  for (const [strategy, restarted, same] of cases) {
    it(`${strategy}: a crash of b restarts ${restarted.join(', ')}`, async () => {
      const sup = await startSupervisor(runtime, spec(strategy, ['a', 'b', 'c']));
      expect(await started(3)).toEqual(['a', 'b', 'c']);
      const before = await childrenOf(sup);
      runtime.send(before.get('b')?.ref as Ref, 'crash');
      expect(await started(restarted.length)).toEqual(restarted);
      await expectNoMoreStarts();
      const after = await childrenOf(sup);
      expect(kept(before, after)).toEqual(same);
      expect([...after.values()].map((c) => c.restarts)).toEqual(
        ['a', 'b', 'c'].map((id) => (restarted.includes(id) ? 1 : 0)),
      );
      expect(await sup.restartCount()).toBe(1);
      // Every child answers, old or new.
      for (const c of after.values())
        expect(await runtime.request(c.ref as Ref, 'who')).toEqual({ id: c.id });
      dropAll(before, after);
      await stopAndWait(sup);
      await expectBaseline();
    });
  }
});

describe('restart policies', () => {
  it('restarts permanent always, transient only after an abnormal exit, temporary never', async () => {
    const sup = await startSupervisor(runtime, {
      strategy: 'one-for-one',
      intensity: { maxRestarts: 10, periodMs: 10_000 },
      children: [
        childSpec('perm', 'permanent'),
        childSpec('trans', 'transient'),
        childSpec('temp', 'temporary'),
      ],
    });
    expect(await started(3)).toEqual(['perm', 'trans', 'temp']);
    let now = await childrenOf(sup);
    // A normal exit: the permanent child comes back, the transient one does not.
    runtime.send(now.get('perm')?.ref as Ref, 'stop');
    expect(await started(1)).toEqual(['perm']);
    runtime.send(now.get('trans')?.ref as Ref, 'stop');
    await expectNoMoreStarts();
    dropAll(now);
    now = await childrenOf(sup);
    expect(now.get('trans')?.ref).toBeNull();
    // A stopped transient child can be restarted by request; then an abnormal exit restarts it.
    runtime.host.drop(await sup.restartChild('trans'));
    expect(await started(1)).toEqual(['trans']);
    dropAll(now);
    now = await childrenOf(sup);
    runtime.send(now.get('trans')?.ref as Ref, { exit: 'something odd' });
    expect(await started(1)).toEqual(['trans']);
    // 'shutdown' counts as normal for a transient child.
    dropAll(now);
    now = await childrenOf(sup);
    runtime.send(now.get('trans')?.ref as Ref, { exit: 'shutdown' });
    // A temporary child is never restarted, and is forgotten.
    runtime.send(now.get('temp')?.ref as Ref, 'crash');
    await expectNoMoreStarts();
    dropAll(now);
    now = await childrenOf(sup);
    expect([...now.keys()]).toEqual(['perm', 'trans']);
    expect(now.get('trans')?.ref).toBeNull();
    expect(await sup.restartCount()).toBe(2);
    dropAll(now);
    await stopAndWait(sup);
    await expectBaseline();
  });

  it('terminates, restarts, adds and deletes children on request', async () => {
    const sup = await startSupervisor(runtime, spec('one-for-one', ['a']));
    expect(await started(1)).toEqual(['a']);
    let now = await childrenOf(sup);
    const monitor = runtime.monitor(now.get('a')?.ref as Ref);
    expect(await sup.terminateChild('a')).toBe(true);
    expect(await downOf(monitor)).toBe('shutdown');
    expect(await sup.terminateChild('a')).toBe(false);
    await expectNoMoreStarts();
    await expect(sup.terminateChild('zz')).rejects.toBeInstanceOf(SupervisorError);
    await expect(sup.terminateChild('zz')).rejects.toMatchObject({ code: 'NotFound' });

    const b = await sup.startChild(childSpec('b'));
    expect(await started(1)).toEqual(['b']);
    expect(await runtime.request(b, 'who')).toEqual({ id: 'b' });
    await expect(sup.startChild(childSpec('b'))).rejects.toMatchObject({ code: 'DuplicateId' });
    // (On the supervisor's own worker: see /tmp/runtime-bugs.txt, sticky hazards of a parked worker.)
    await expect(
      sup.startChild({ ...childSpec('c'), export: 'noSuchExport', worker: 'local' }),
    ).rejects.toMatchObject({
      code: 'StartFailed',
    });
    await expect(sup.restartChild('b')).rejects.toMatchObject({ code: 'Running' });
    await expect(sup.deleteChild('b')).rejects.toMatchObject({ code: 'Running' });
    await sup.deleteChild('a');
    dropAll(now);
    now = await childrenOf(sup);
    expect([...now.keys()]).toEqual(['b']);
    expect(await sup.restartCount()).toBe(0);
    await expect(runtime.request(sup.ref, { op: 'whatever' })).resolves.toMatchObject({
      error: { code: 'BadRequest' },
    });
    // An exit reason cannot carry a Ref: refused, and nothing stopped.
    await expect(sup.stop({ holding: observer })).rejects.toMatchObject({ code: 'BadRequest' });
    expect(await runtime.request(b, 'who')).toEqual({ id: 'b' });
    dropAll(now);
    runtime.host.drop(b);
    await stopAndWait(sup);
    await expectBaseline();
  });
});

describe('restart intensity', () => {
  it('kills the children and exits with SupervisorIntensity after more than maxRestarts in the period', async () => {
    const sup = await startSupervisor(runtime, spec('one-for-one', ['a', 'b'], 2));
    expect(await started(2)).toEqual(['a', 'b']);
    const supMonitor = runtime.monitor(sup.ref);
    const monitors: number[] = [];
    for (let crash = 1; crash <= 3; crash++) {
      const now = await childrenOf(sup);
      monitors.push(runtime.monitor(now.get('a')?.ref as Ref));
      if (crash === 3) monitors.push(runtime.monitor(now.get('b')?.ref as Ref));
      runtime.send(now.get('a')?.ref as Ref, 'crash');
      if (crash < 3) expect(await started(1)).toEqual(['a']);
      dropAll(now);
    }
    expect(await downOf(supMonitor)).toMatchObject({
      kind: 'error',
      name: 'SupervisorIntensity',
      message: expect.stringMatching(/more than 2 restart\(s\) within 10000 ms.*child 'a'.*a crashed/),
    });
    // Every incarnation of a, and b, is gone.
    for (const m of monitors) expect(await downOf(m)).toBeDefined();
    await expectNoMoreStarts();
    runtime.host.drop(sup.ref);
    await expectBaseline();
  });

  it('gives up on a child that fails at once, through the intensity', async () => {
    const sup = await startSupervisor(runtime, {
      strategy: 'one-for-one',
      intensity: { maxRestarts: 3, periodMs: 10_000 },
      children: [childSpec('steady'), childSpec('flaky', 'permanent', 'crashAtOnce')],
    });
    const monitor = runtime.monitor(sup.ref);
    expect(await downOf(monitor)).toMatchObject({ name: 'SupervisorIntensity' });
    // The first start and three restarts.
    expect(await started(5)).toEqual(['steady', 'flaky', 'flaky', 'flaky', 'flaky']);
    runtime.host.drop(sup.ref);
    await expectBaseline();
  });
});

describe('starting and parents', () => {
  it('reports a child that cannot start, and leaves nothing running', async () => {
    const bad: SupervisorSpec = {
      strategy: 'one-for-one',
      children: [childSpec('a'), { ...childSpec('b'), export: 'noSuchExport', worker: 'local' }],
    };
    await expect(startSupervisor(runtime, bad)).rejects.toMatchObject({
      name: 'SupervisorError',
      code: 'StartFailed',
      message: expect.stringMatching(/child 'b' did not start/),
    });
    expect(await started(1)).toEqual(['a']);
    await expect(
      startSupervisor(runtime, { strategy: 'one-for-none' as Strategy, children: [] }),
    ).rejects.toThrow(TypeError);
    await expect(
      startSupervisor(runtime, { strategy: 'one-for-one', children: [childSpec('x'), childSpec('x')] }),
    ).rejects.toThrow(/used twice/);
    await expectBaseline();
  });

  it("ends with its parent's reason when the parent that linked it dies", async () => {
    const parent = await runtime.spawn(CHILDREN, 'supParent', [spec('one-for-all', ['a', 'b']), observer]);
    const { supervisor } = (await runtime.receive({
      timeout: 10_000,
      match: (m) => m !== null && typeof m === 'object' && 'supervisor' in m,
    })) as { supervisor: Ref };
    expect(await started(2)).toEqual(['a', 'b']);
    const sup = new Supervisor(runtime.host, supervisor);
    const children = await childrenOf(sup);
    const monitors = [supervisor, ...[...children.values()].map((c) => c.ref as Ref)].map((r) =>
      runtime.monitor(r),
    );
    runtime.kill(parent, 'parent gone');
    expect(await downOf(monitors[0] as number)).toBe('parent gone');
    for (const m of monitors.slice(1)) expect(await downOf(m)).toBe('shutdown');
    await expectNoMoreStarts();
    dropAll(children);
    for (const r of [parent, supervisor]) runtime.host.drop(r);
    await expectBaseline();
  });
});

describe('a supervision tree', () => {
  /** top (one-for-one): A (one-for-all: a1, a2), B (one-for-one: b1, b2), w. */
  async function startTree(): Promise<{
    top: Supervisor;
    subs: Map<string, ChildInfo>;
    a: Supervisor;
    b: Supervisor;
    leaves: Map<string, ChildInfo>[];
  }> {
    const top = await startSupervisor(runtime, {
      strategy: 'one-for-one',
      intensity: { maxRestarts: 5, periodMs: 10_000 },
      children: [
        supervisorChild('A', spec('one-for-all', ['a1', 'a2'])),
        { ...supervisorChild('B', spec('one-for-one', ['b1', 'b2'])), worker: 'next' },
        childSpec('w'),
      ],
    });
    expect(await started(5)).toEqual(['a1', 'a2', 'b1', 'b2', 'w']);
    const subs = await childrenOf(top);
    const a = new Supervisor(runtime.host, subs.get('A')?.ref as Ref);
    const b = new Supervisor(runtime.host, subs.get('B')?.ref as Ref);
    return { top, subs, a, b, leaves: [await childrenOf(a), await childrenOf(b)] };
  }

  it('restarts only the subtree of a killed leaf', async () => {
    const { top, subs, a, b, leaves } = await startTree();
    const [aKids, bKids] = leaves as [Map<string, ChildInfo>, Map<string, ChildInfo>];
    runtime.kill(aKids.get('a1')?.ref as Ref, 'boom');
    expect(await started(2)).toEqual(['a1', 'a2']);
    await expectNoMoreStarts();
    const subsAfter = await childrenOf(top);
    const aAfter = await childrenOf(a);
    const bAfter = await childrenOf(b);
    expect(kept(subs, subsAfter)).toEqual({ A: true, B: true, w: true });
    expect(kept(aKids, aAfter)).toEqual({ a1: false, a2: false });
    expect(kept(bKids, bAfter)).toEqual({ b1: true, b2: true });
    expect(await a.restartCount()).toBe(1);
    expect(await b.restartCount()).toBe(0);
    expect(await top.restartCount()).toBe(0);

    // A leaf of B: only it restarts.
    runtime.send(bAfter.get('b2')?.ref as Ref, 'crash');
    expect(await started(1)).toEqual(['b2']);
    await expectNoMoreStarts();
    expect(await top.restartCount()).toBe(0);

    // A whole subtree killed: the top restarts it, with fresh leaves.
    runtime.kill(subsAfter.get('B')?.ref as Ref, 'subtree down');
    expect((await started(2)).sort()).toEqual(['b1', 'b2']);
    await expectNoMoreStarts();
    expect(await top.restartCount()).toBe(1);
    const subsLast = await childrenOf(top);
    expect(kept(subsAfter, subsLast)).toEqual({ A: true, B: false, w: true });

    dropAll(subs, subsAfter, subsLast, aKids, bKids, aAfter, bAfter);
    await stopAndWait(top);
    await expectBaseline();
  });

  it('takes the whole tree down when the top supervisor is killed', async () => {
    const { top, subs, leaves } = await startTree();
    const everyone = [top.ref, ...[subs, ...leaves].flatMap((m) => [...m.values()].map((c) => c.ref as Ref))];
    expect(everyone).toHaveLength(8);
    const monitors = everyone.map((r) => runtime.monitor(r));
    runtime.kill(top.ref, 'the end');
    const reasons: unknown[] = [];
    for (const m of monitors) reasons.push(await downOf(m));
    // top, A, B, w: the top's reason (w through its link; A and B pass it on); the leaves: shut down by A and B.
    expect(reasons).toEqual([...Array(4).fill('the end'), ...Array(4).fill('shutdown')]);
    await expectNoMoreStarts();
    dropAll(subs, ...leaves);
    runtime.host.drop(top.ref);
    await expectBaseline();
  });
});

describe('the client', () => {
  it('refuses a request to a supervisor that never answers, by timeout', async () => {
    const sup = await startSupervisor(runtime, spec('one-for-one', []), { timeout: 200 });
    const monitor = runtime.monitor(sup.ref);
    runtime.kill(sup.ref);
    expect(await downOf(monitor)).toBe('killed');
    await expect(sup.restartCount()).rejects.toThrow(/no reply within 200 ms/);
    runtime.host.drop(sup.ref);
    await expectBaseline();
  });
});
