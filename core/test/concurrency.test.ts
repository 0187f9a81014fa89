/**
 * Multi-worker tests: real worker_threads attached to one post office, with
 * seeded randomness and self-checking payloads. Iteration counts scale with
 * POSTERN_STRESS. Every test ends with the leak check, after every worker
 * has detached.
 */

import { describe, expect, test } from 'vitest';
import { type Mailbox, type OwnedCapability, Perm, type PostOffice } from '../index.ts';
import { harness } from './harness.ts';
import { checkPayload, SCALE } from './stress-shared.ts';
import { finish, startWorker } from './workers.ts';

const SCRIPT = new URL('./stress.worker.ts', import.meta.url).href;
const start = (office: PostOffice, scenario: string, args: unknown) =>
  startWorker(SCRIPT, office, scenario, args);

/** Receives until `count` messages arrived (waiting on the event loop). */
async function collect(mb: Mailbox, count: number, onMessage: (data: Uint8Array, caps: number[]) => void) {
  for (let got = 0; got < count; ) {
    const s = await mb.receive({ timeoutMs: 30_000 });
    if (s === null) throw new Error(`timed out after ${got} of ${count} messages`);
    if (s.kind !== 'message') throw new Error(`unexpected ${s.kind}`);
    onMessage(s.data, s.caps);
    got++;
  }
}

describe('multi-worker', () => {
  test('mpsc: many producers, one mailbox, per-sender FIFO, nothing lost, duplicated or torn', async () => {
    const h = harness({ mailboxCapacity: 1024 });
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox({ capacity: 1024 });
    const extraBox = t.createGroup().createMailbox();
    const producers = 3;
    const count = 3000 * SCALE;
    const running = Array.from({ length: producers }, (_, id) =>
      start(h.office, 'producer', {
        id,
        count,
        target: t.toOwned(mb.export(Perm.SEND)),
        extra: t.toOwned(extraBox.export(Perm.MONITOR)),
      }),
    );
    const next = new Array<number>(producers).fill(0);
    const extra = extraBox.export(Perm.NONE);
    await collect(mb, producers * count, (data, caps) => {
      const parsed = checkPayload(data);
      expect(parsed).not.toBeNull();
      const [sender, seq] = parsed!;
      expect(seq).toBe(next[sender]);
      next[sender]!++;
      expect(caps.length).toBe(seq % 7 === 0 ? 1 : 0);
      for (const c of caps) {
        expect(t.sameRoute(c, extra)).toBe(true);
        expect(t.permissions(c)).toBe(Perm.MONITOR);
        t.release(c);
      }
    });
    expect(next).toEqual(new Array(producers).fill(count));
    await finish(running);
    expect(mb.tryReceive()).toBeNull();
    t.close();
    h.expectNoLeaks();
  });

  test('mpsc with out-of-line messages: bodies in the shared heap arrive intact', async () => {
    const h = harness({ mailboxCapacity: 1024, heapBytes: 4 << 20 });
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox({ capacity: 1024 });
    const extraBox = t.createGroup().createMailbox();
    const producers = 2;
    const count = 500 * SCALE;
    const size = 3000;
    const running = Array.from({ length: producers }, (_, id) =>
      start(h.office, 'producer', {
        id,
        count,
        size,
        target: t.toOwned(mb.export(Perm.SEND)),
        extra: t.toOwned(extraBox.export(Perm.SEND)),
      }),
    );
    const next = new Array<number>(producers).fill(0);
    await collect(mb, producers * count, (data, caps) => {
      const parsed = checkPayload(data, size);
      expect(parsed, `${data.length} bytes: ${data.subarray(0, 16)}`).not.toBeNull();
      const [sender, seq] = parsed!;
      expect(seq).toBe(next[sender]);
      next[sender]!++;
      for (const c of caps) t.release(c);
    });
    await finish(running);
    t.close();
    h.expectNoLeaks();
  });

  test('kills racing from both ends of a chain: when kill returns, the whole chain is closed', async () => {
    const rounds = 4 * SCALE;
    const n = 600;
    const h = harness({
      maxRoutes: rounds * n + 16,
      maxGroups: rounds * n + 16,
      maxCapabilities: rounds * 4 * (n + 1) + 64,
      maxNodes: rounds * 6 * n + 64,
      mailboxCapacity: 64,
      heapBytes: 8 << 20,
    });
    const t = h.office.createTable();
    const control = new SharedArrayBuffer(8); // [round, workers done]
    const c = new Int32Array(control);
    const chains: { groups: ReturnType<typeof t.createGroup>[]; boxes: Mailbox[] }[] = [];
    const plan: { kill: OwnedCapability; watch: OwnedCapability[] }[][] = [[], []];
    for (let r = 0; r < rounds; r++) {
      const groups = Array.from({ length: n }, () => t.createGroup());
      const boxes = groups.map((g) => g.createMailbox());
      for (let i = 0; i + 1 < n; i++) {
        const cap = boxes[i + 1]!.export(Perm.LINK);
        t.link(cap, groups[i]!);
        t.release(cap);
      }
      chains.push({ groups, boxes });
      for (const [side, end] of [0, n - 1].entries()) {
        plan[side]!.push({
          kill: t.toOwned(boxes[end]!.export(Perm.KILL)),
          watch: boxes.map((mb) => t.toOwned(mb.export(Perm.MONITOR))),
        });
      }
    }
    // Each side's capabilities are exported up front; the handles stay in t until the end.
    const running = plan.map((rs) => start(h.office, 'chainKiller', { rounds: rs, control }));
    for (let r = 0; r < rounds; r++) {
      Atomics.store(c, 1, 0);
      Atomics.store(c, 0, r + 1);
      Atomics.notify(c, 0);
      while (Atomics.load(c, 1) < 2) Atomics.wait(c, 1, Atomics.load(c, 1), 100);
      expect(chains[r]!.groups.every((g) => g.dead)).toBe(true);
    }
    const results = await finish(running);
    for (const r of results) expect(r.problems).toEqual([]);
    expect(h.office.stats().links).toBe(0);
    t.close();
    h.expectNoLeaks();
  });

  test('a producer terminated mid-stream: once declared dead, the mailbox delivers everyone else and nothing leaks', async () => {
    const h = harness({ mailboxCapacity: 1024 });
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox({ capacity: 1024 });
    const extraBox = t.createGroup().createMailbox();
    const blaster = start(h.office, 'blaster', {
      target: t.toOwned(mb.export(Perm.SEND)),
      extra: t.toOwned(extraBox.export(Perm.SEND)),
    });
    blaster.result.catch(() => {}); // it never reports: it is terminated
    const { thread } = (await blaster.next()) as { thread: { slot: number; generation: number } };
    const next = [0, 0];
    const check = (data: Uint8Array, caps: number[]) => {
      const parsed = checkPayload(data);
      expect(parsed).not.toBeNull();
      const [sender, seq] = parsed!;
      const k = sender === 9 ? 0 : 1;
      expect(seq).toBe(next[k]);
      next[k]!++;
      for (const c of caps) t.release(c);
    };
    // Keep the ring moving until the blaster is well into its stream, then kill its thread.
    const sending = blaster.next();
    while ((await Promise.race([sending, Promise.resolve(null)])) === null) {
      const s = await mb.receive({ timeoutMs: 5 });
      if (s?.kind === 'message') check(s.data, s.caps);
    }
    await blaster.worker.terminate();
    expect(h.office.markThreadDead(thread.slot, thread.generation)).toBe(true);
    const count = 2000;
    const producer = start(h.office, 'producer', {
      id: 1,
      count,
      target: t.toOwned(mb.export(Perm.SEND)),
      extra: t.toOwned(extraBox.export(Perm.SEND)),
    });
    while (next[1]! < count) {
      const s = await mb.receive({ timeoutMs: 30_000 });
      if (s === null) throw new Error(`stalled after ${next[1]} of ${count} messages`);
      expect(s.kind).toBe('message');
      if (s.kind === 'message') check(s.data, s.caps);
    }
    expect(next[0]).toBeGreaterThanOrEqual(200);
    await finish([producer]);
    t.close();
    h.expectNoLeaks();
  });

  test('sends racing kills: a prefix arrives intact, nothing after the kill is observed', async () => {
    const rounds = 20 * SCALE;
    const h = harness({ mailboxCapacity: 512 });
    const t = h.office.createTable();
    const groups = Array.from({ length: rounds }, () => t.createGroup());
    const boxes = groups.map((g) => g.createMailbox());
    const control = new SharedArrayBuffer(16); // [round, workers done, rounds killed]
    const c = new Int32Array(control);
    const count = 4000;
    const sender = start(h.office, 'racingSender', {
      control,
      count,
      targets: boxes.map((mb) => t.toOwned(mb.export(Perm.SEND))),
    });
    const killer = start(h.office, 'racingKiller', {
      control,
      seed: 7,
      targets: boxes.map((mb) => t.toOwned(mb.export(Perm.KILL))),
    });
    let delivered = 0;
    for (let round = 0; round < rounds; round++) {
      Atomics.store(c, 1, 0);
      Atomics.store(c, 0, round + 1); // starts the round
      Atomics.notify(c, 0);
      const mb = boxes[round]!;
      let expected = 0;
      for (;;) {
        const killObserved = Atomics.load(c, 2) > round;
        const s = mb.receiveSync(30_000);
        if (s === null) throw new Error('receive timed out');
        if (s.kind === 'end') {
          expect(s.reason).toBe('killed');
          break;
        }
        // A message handed out after the killer's kill() returned would break the guarantee.
        expect(killObserved).toBe(false);
        expect(s.kind).toBe('message');
        if (s.kind !== 'message') break;
        expect(checkPayload(s.data)).toEqual([1, expected]);
        expected++;
      }
      delivered += expected;
      while (Atomics.load(c, 1) < 2) Atomics.wait(c, 1, Atomics.load(c, 1), 100);
      expect(groups[round]!.dead).toBe(true);
    }
    expect(delivered).toBeGreaterThanOrEqual(0);
    await finish([sender, killer]);
    t.close();
    h.expectNoLeaks();
  });

  test('route creation racing the kill of its group: no route comes up live in a dead group', async () => {
    const h = harness({ maxRoutes: 2048, heapBytes: 4 << 20 });
    const killer = start(h.office, 'killer', { seed: 11 });
    const { owned } = (await killer.next()) as { owned: OwnedCapability };
    const creator = start(h.office, 'creator', { killer: owned, rounds: 60 * SCALE, maxPerRound: 400 });
    const [created, killed] = await finish([creator, killer]);
    expect(created!.live).toBe(0);
    expect(killed!.kills).toBe(60 * SCALE);
    h.expectNoLeaks();
  });

  test('kill/link/unlink/monitor/demonitor storms on overlapping groups: no deadlock, no lost or extra down', async () => {
    const h = harness({ maxRoutes: 1024, maxGroups: 512, maxNodes: 16384, heapBytes: 4 << 20 });
    const t = h.office.createTable();
    const targets = Array.from({ length: 12 }, () => t.createGroup());
    const boxes = targets.map((g) => g.createMailbox({ capacity: 64 }));
    const workers = 3;
    const startWords = new SharedArrayBuffer(8); // [workers ready, go]
    const running = Array.from({ length: workers }, (_, w) =>
      start(h.office, 'storm', {
        seed: 1000 + w,
        ops: 3000 * SCALE,
        start: startWords,
        targets: boxes.map((mb) => t.toOwned(mb.export(Perm.ALL))),
      }),
    );
    const go = new Int32Array(startWords);
    while (Atomics.load(go, 0) < workers) await new Promise((r) => setTimeout(r, 5));
    Atomics.store(go, 1, 1);
    Atomics.notify(go, 1);
    for (const r of running) expect(await r.next()).toEqual({ phase: 'ops-done' });
    for (const g of targets) g.kill();
    // Every link of the web had a target on one side: killing them all leaves none.
    expect(h.office.stats().links).toBe(0);
    for (const r of running) r.worker.postMessage('drain');
    const results = await finish(running);
    for (const r of results) {
      expect(r.problems).toEqual([]);
      // The run exercised every path: links made and removed, monitors removed, groups lost to kills.
      for (const key of ['monitors', 'linked', 'unlinked', 'demonitored', 'kills', 'replaced']) {
        expect(r[key], key).toBeGreaterThan(0);
      }
    }
    for (const mb of boxes) expect(mb.tryReceive()?.kind).toBe('end');
    t.close();
    h.expectNoLeaks();
  });
});
