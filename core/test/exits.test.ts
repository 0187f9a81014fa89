/**
 * Exit reasons (a kill's code and detail reach every down, exit and end it
 * causes), trapped exits, and the reclaiming of what a dead thread owned.
 * Every test ends with the leak check.
 */

import { describe, expect, test } from 'vitest';
import {
  CapacityExceeded,
  DETAIL_DROPPED,
  InvalidHandle,
  MAX_DETAIL_BYTES,
  MAX_EXIT_CODE,
  type OwnedCapability,
  Perm,
  PostOffice,
  type Signal,
  TableMismatch,
} from '../index.ts';
import { bytes, harness, text } from './harness.ts';
import { rng, SCALE } from './stress-shared.ts';
import { finish, startWorker } from './workers.ts';

const SCRIPT = new URL('./exits.worker.ts', import.meta.url).href;

function expectDown(s: Signal | null) {
  expect(s?.kind).toBe('down');
  if (s?.kind !== 'down') throw new Error('unreachable');
  return s;
}

function expectEnd(s: Signal | null) {
  expect(s?.kind).toBe('end');
  if (s?.kind !== 'end') throw new Error('unreachable');
  return s;
}

describe('exit reasons', () => {
  test('a kill with a code and a detail: the monitor down and the end carry both', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const mb = g.createMailbox();
    const watcher = t.createGroup().createMailbox();
    const id = t.monitor(mb.export(Perm.MONITOR), watcher);
    const detail = text('out of patience');
    g.kill({ code: 42, detail });
    detail.fill(0); // the kill took a copy
    const down = expectDown(watcher.tryReceive());
    expect(down).toMatchObject({ reason: 'killed', code: 42, monitor: id });
    expect(down.detail).toEqual(text('out of patience'));
    expect(mb.tryReceive()).toEqual({
      kind: 'end',
      reason: 'killed',
      code: 42,
      detail: text('out of patience'),
    });
    t.close();
    h.expectNoLeaks();
  });

  test('the reason travels through links to every group of the closure, and to in-place receivers', () => {
    const h = harness();
    const t = h.office.createTable();
    const groups = Array.from({ length: 5 }, () => t.createGroup());
    const boxes = groups.map((g) => g.createMailbox());
    for (let i = 0; i + 1 < groups.length; i++) t.link(boxes[i + 1]!.export(Perm.LINK), groups[i]!);
    const watcher = t.createGroup().createMailbox();
    for (const mb of boxes) t.monitor(mb.export(Perm.MONITOR), watcher);
    const killer = boxes[2]!.export(Perm.KILL);
    t.kill(killer, { code: 7, detail: bytes(1, 2, 3) });
    for (let i = 0; i < boxes.length; i++) {
      const s = watcher.tryReceiveInPlace();
      expect(s?.kind).toBe('down');
      expect(s?.code).toBe(7);
      expect(s?.detail).toEqual(bytes(1, 2, 3));
    }
    for (const mb of boxes) {
      const end = mb.tryReceiveInPlace();
      expect(end?.kind).toBe('end');
      expect(end?.reason).toBe('killed');
      expect(end?.code).toBe(7);
      expect(end?.detail).toEqual(bytes(1, 2, 3));
    }
    t.close();
    h.expectNoLeaks();
  });

  test('closing a mailbox gives closed, code 0, no detail; a kill without a reason gives code 0, no detail', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup().createMailbox();
    const g = t.createGroup();
    const b = g.createMailbox();
    const watcher = t.createGroup().createMailbox();
    t.monitor(a.export(Perm.MONITOR), watcher);
    t.monitor(b.export(Perm.MONITOR), watcher);
    a.close();
    g.kill();
    expect(watcher.tryReceive()).toMatchObject({ kind: 'down', reason: 'closed', code: 0, detail: null });
    expect(watcher.tryReceive()).toMatchObject({ kind: 'down', reason: 'killed', code: 0, detail: null });
    expect(a.tryReceive()).toEqual({ kind: 'end', reason: 'closed', code: 0, detail: null });
    expect(b.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    t.close();
    h.expectNoLeaks();
  });

  test('an empty detail arrives as an empty array; the largest code and detail arrive whole', () => {
    const h = harness();
    const t = h.office.createTable();
    const g1 = t.createGroup();
    const mb1 = g1.createMailbox();
    g1.kill({ detail: new Uint8Array(0) });
    expect(mb1.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: new Uint8Array(0) });
    const g2 = t.createGroup();
    const mb2 = g2.createMailbox();
    const big = Uint8Array.from({ length: MAX_DETAIL_BYTES }, (_, i) => i * 7);
    g2.kill({ code: MAX_EXIT_CODE, detail: big });
    expect(mb2.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: MAX_EXIT_CODE, detail: big });
    t.close();
    h.expectNoLeaks();
  });

  test('a bad code or a too-long detail throws RangeError before anything changes', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const mb = g.createMailbox();
    const k = mb.export(Perm.KILL);
    const before = h.office.stats();
    const bad: unknown[] = [
      { code: -1 },
      { code: 1.5 },
      { code: MAX_EXIT_CODE + 1 },
      { code: Number.NaN },
      { code: '1' },
      { detail: new Uint8Array(MAX_DETAIL_BYTES + 1) },
      { detail: [1, 2] },
      { detail: new Uint16Array(2) },
      null,
      7,
    ];
    for (const reason of bad) {
      expect(() => g.kill(reason as never)).toThrow(RangeError);
      expect(() => t.kill(k, reason as never)).toThrow(RangeError);
    }
    expect(g.dead).toBe(false);
    expect(h.office.stats()).toEqual(before);
    t.close();
    h.expectNoLeaks();
  });

  test('the detail is stored once and freed with the last route slot that records it', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const boxes = [g.createMailbox(), g.createMailbox()];
    const keep = boxes.map((mb) => mb.export(Perm.MONITOR));
    g.kill({ code: 3, detail: text('x'.repeat(500)) });
    for (const mb of boxes) expectEnd(mb.tryReceive());
    g.release();
    expect(h.office.stats().details).toBe(1);
    // A monitor long after the kill still gets the detail, from the route slot.
    const watcher = t.createGroup().createMailbox();
    t.monitor(keep[0]!, watcher);
    expect(expectDown(watcher.tryReceive()).detail).toEqual(text('x'.repeat(500)));
    t.release(keep[0]!);
    expect(h.office.stats().details).toBe(1); // ...the down's handle and the other route still hold it
    t.close();
    h.expectNoLeaks();
  });

  test('a route born in a dead group carries the group death reason', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    g.kill({ code: 9, detail: bytes(9) });
    const born = g.createMailbox();
    expect(born.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 9, detail: bytes(9) });
    t.close();
    h.expectNoLeaks();
  });

  test('linking to a dead group, or through a killed route, dies of the same reason', () => {
    const h = harness();
    const t = h.office.createTable();
    const dead = t.createGroup();
    const deadBox = dead.createMailbox();
    const link = deadBox.export(Perm.LINK);
    dead.kill({ code: 5, detail: bytes(5, 5) });
    // Through the killed route.
    const a = t.createGroup();
    const aBox = a.createMailbox();
    expect(t.link(link, a)).toBe(0);
    expect(aBox.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 5, detail: bytes(5, 5) });
    // Through an open route of a dead group: a route born closed is closed too; use a second group linked
    // while alive whose partner dies later instead.
    const b = t.createGroup();
    const bBox = b.createMailbox();
    const c = t.createGroup();
    const cBox = c.createMailbox();
    t.link(cBox.export(Perm.LINK), b);
    c.kill({ code: 6 });
    expect(bBox.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 6, detail: null });
    // Through a route closed by its owner: killed, code 0.
    const d = t.createGroup();
    const dBox = d.createMailbox();
    const closed = t.createGroup().createMailbox();
    const closedLink = closed.export(Perm.LINK);
    closed.close();
    t.link(closedLink, d);
    expect(dBox.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    t.close();
    h.expectNoLeaks();
  });

  test('with the heap full the kill still happens, without the detail, and says it dropped one', () => {
    const h = harness({ heapBytes: 64 << 10, mailboxCapacity: 1024 });
    const t = h.office.createTable();
    const g = t.createGroup();
    const mb = g.createMailbox();
    const watcher = t.createGroup().createMailbox();
    t.monitor(mb.export(Perm.MONITOR), watcher);
    const filler: ReturnType<typeof t.createGroup>[] = [];
    for (;;) {
      try {
        const f = t.createGroup();
        filler.push(f);
        f.createMailbox({ capacity: 64 });
      } catch (error) {
        expect(error).toBeInstanceOf(CapacityExceeded);
        break;
      }
    }
    // The last pages go to details of dead groups, until one finds no room.
    for (;;) {
      const f = t.createGroup();
      filler.push(f);
      const before = h.office.stats().details;
      f.kill({ detail: bytes(0) });
      if (h.office.stats().details === before) break;
    }
    g.kill({ code: 11, detail: bytes(1) });
    expect(g.dead).toBe(true);
    const down = expectDown(watcher.tryReceive());
    expect(down.code).toBe(11 | DETAIL_DROPPED);
    expect(down.code & MAX_EXIT_CODE).toBe(11);
    expect(down.detail).toBeNull();
    expect(mb.tryReceive()).toEqual({
      kind: 'end',
      reason: 'killed',
      code: 11 | DETAIL_DROPPED,
      detail: null,
    });
    t.close();
    h.expectNoLeaks();
  });
});

function expectExit(s: Signal | null) {
  expect(s?.kind).toBe('exit');
  if (s?.kind !== 'exit') throw new Error('unreachable');
  return s;
}

describe('trapping exits', () => {
  test('a linked group dies: the trapping group lives, gets an exit with the reason, and the link is gone', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const aBox = a.createMailbox();
    a.trapExits(aBox);
    const b = t.createGroup();
    const bBox = b.createMailbox();
    const bOther = b.createMailbox();
    const bId = bBox.export(Perm.NONE);
    const bOtherId = bOther.export(Perm.NONE);
    t.link(bBox.export(Perm.LINK), a);
    expect(h.office.stats().links).toBe(1);
    b.kill({ code: 17, detail: text('crashed') });
    expect(b.dead).toBe(true);
    expect(a.dead).toBe(false);
    expect(h.office.stats().links).toBe(0);
    expect(h.office.stats().pendingExits).toBe(1);
    const exit = expectExit(aBox.tryReceive());
    expect(exit).toMatchObject({ reason: 'killed', code: 17, detail: text('crashed') });
    // The dead group is named by its identity route: the first mailbox created in it.
    expect(t.sameRoute(exit.from, bId)).toBe(true);
    expect(t.sameRoute(exit.from, bOtherId)).toBe(false);
    expect(t.permissions(exit.from)).toBe(Perm.NONE);
    expect(aBox.tryReceive()).toBeNull();
    expect(h.office.stats().pendingExits).toBe(0);
    // Still alive and still trapping: messages flow.
    const to = aBox.export(Perm.SEND);
    expect(t.send(to, bytes(1))).toBe(true);
    expect(aBox.tryReceive()?.kind).toBe('message');
    t.close();
    h.expectNoLeaks();
  });

  test('propagation stops at a trapping group: its other partners live on', () => {
    const h = harness();
    const t = h.office.createTable();
    const [x, trapper, y, z] = Array.from({ length: 4 }, () => t.createGroup());
    const boxes = [x, trapper, y, z].map((g) => g!.createMailbox());
    trapper!.trapExits(boxes[1]!);
    // x - trapper - y - z, and x - y too (so y dies through x, not through the trapper).
    t.link(boxes[1]!.export(Perm.LINK), x!);
    t.link(boxes[2]!.export(Perm.LINK), trapper!);
    t.link(boxes[3]!.export(Perm.LINK), y!);
    x!.kill({ code: 1 });
    expect([x, trapper, y, z].map((g) => g!.dead)).toEqual([true, false, false, false]);
    expectExit(boxes[1]!.tryReceive());
    expect(boxes[1]!.tryReceive()).toBeNull();
    expect(h.office.stats().links).toBe(2); // trapper - y, y - z
    t.link(boxes[2]!.export(Perm.LINK), x!); // y linked to the dead x: y dies, z too, the trapper traps y
    expect([y, z].map((g) => g!.dead)).toEqual([true, true]);
    expect(expectExit(boxes[1]!.tryReceive()).code).toBe(1);
    expect(trapper!.dead).toBe(false);
    t.close();
    h.expectNoLeaks();
  });

  test('a trapping group reached by two dead partners in one kill gets two exits', () => {
    const h = harness();
    const t = h.office.createTable();
    const hub = t.createGroup();
    const hubBox = hub.createMailbox();
    hub.trapExits(hubBox);
    const spokes = Array.from({ length: 3 }, () => t.createGroup());
    const ids = spokes.map((g) => g.createMailbox().export(Perm.ALL));
    for (const id of ids) t.link(id, hub);
    for (let i = 0; i + 1 < ids.length; i++) t.link(ids[i + 1]!, spokes[i]!);
    t.kill(ids[0]!, { code: 4 });
    const froms = [0, 1, 2].map(() => expectExit(hubBox.tryReceive()).from);
    expect(hubBox.tryReceive()).toBeNull();
    for (const id of ids) expect(froms.filter((f) => t.sameRoute(f, id)).length).toBe(1);
    expect(h.office.stats().links).toBe(0);
    t.close();
    h.expectNoLeaks();
  });

  test('a kill of the trapping group itself still kills it, through the group or through a route', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const aBox = a.createMailbox();
    a.trapExits(aBox);
    const partner = t.createGroup();
    const pBox = partner.createMailbox();
    t.link(pBox.export(Perm.LINK), a);
    a.kill({ code: 2 });
    expect(a.dead).toBe(true);
    expect(partner.dead).toBe(true); // a non-trapping partner dies as ever
    expect(pBox.tryReceive()).toMatchObject({ kind: 'end', code: 2 });
    const b = t.createGroup();
    const bBox = b.createMailbox();
    b.trapExits(bBox);
    t.kill(bBox.export(Perm.KILL), { code: 3 });
    expect(b.dead).toBe(true);
    expect(bBox.tryReceive()).toMatchObject({ kind: 'end', code: 3 });
    t.close();
    h.expectNoLeaks();
  });

  test('linking a trapping group to a dead group, or through a closed route, gives an exit instead of death', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const aBox = a.createMailbox();
    a.trapExits(aBox);
    const dead = t.createGroup();
    const deadBox = dead.createMailbox();
    const deadId = deadBox.export(Perm.NONE);
    const deadOther = dead.createMailbox().export(Perm.LINK);
    dead.kill({ code: 8, detail: bytes(8) });
    // Through a route of the dead group (closed by the kill).
    expect(t.link(deadOther, a)).toBe(0);
    const e1 = expectExit(aBox.tryReceive());
    expect(e1).toMatchObject({ reason: 'killed', code: 8, detail: bytes(8) });
    expect(t.sameRoute(e1.from, deadId)).toBe(true);
    // Through a route its owner closed, in a live group: reason closed, code 0.
    const live = t.createGroup();
    const liveFirst = live.createMailbox();
    const closing = live.createMailbox();
    const closingLink = closing.export(Perm.LINK);
    closing.close();
    expect(t.link(closingLink, a)).toBe(0);
    const e2 = expectExit(aBox.tryReceive());
    expect(e2).toMatchObject({ reason: 'closed', code: 0, detail: null });
    expect(t.sameRoute(e2.from, liveFirst.export(Perm.NONE))).toBe(true);
    expect(a.dead).toBe(false);
    expect(live.dead).toBe(false);
    // Linking from a dead group to a live trapping group: the live side gets the exit (symmetric).
    const other = t.createGroup();
    other.createMailbox();
    other.kill({ code: 9 });
    const trapper2 = t.createGroup();
    const t2Box = trapper2.createMailbox();
    trapper2.trapExits(t2Box);
    expect(t.link(t2Box.export(Perm.LINK), other)).toBe(0);
    expect(expectExit(t2Box.tryReceive()).code).toBe(9);
    t.close();
    h.expectNoLeaks();
  });

  test('an exit to a full ring is not lost, comes before queued messages, and wakes an awaiting receive', async () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const aBox = a.createMailbox({ capacity: 256 });
    a.trapExits(aBox);
    const to = aBox.export(Perm.SEND);
    let sent = 0;
    while (t.send(to, bytes(sent & 0xff))) sent++;
    const b = t.createGroup();
    t.link(b.createMailbox().export(Perm.LINK), a);
    b.kill({ code: 5 });
    expect(expectExit(aBox.tryReceive()).code).toBe(5);
    for (let i = 0; i < sent; i++) expect(aBox.tryReceive()?.kind).toBe('message');
    expect(aBox.tryReceive()).toBeNull();
    // Parked on the event loop: the exit's nudge wakes it.
    const c = t.createGroup();
    t.link(c.createMailbox().export(Perm.LINK), a);
    const waiting = aBox.receive({ timeoutMs: 5000 });
    setTimeout(() => c.kill({ code: 6 }), 10);
    expect(expectExit(await waiting).code).toBe(6);
    t.close();
    h.expectNoLeaks();
  });

  test('the in-place form of an exit', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const aBox = a.createMailbox();
    a.trapExits(aBox);
    const b = t.createGroup();
    const bId = b.createMailbox().export(Perm.LINK);
    t.link(bId, a);
    b.kill({ code: 12, detail: bytes(1, 2) });
    const s = aBox.tryReceiveInPlace();
    expect(s?.kind).toBe('exit');
    expect(t.sameRoute(s!.from, bId)).toBe(true);
    expect(s!.route).toBe(s!.from);
    expect([s!.reason, s!.code, s!.detail]).toEqual(['killed', 12, bytes(1, 2)]);
    t.close();
    h.expectNoLeaks();
  });

  test('from is 0 for a group with no mailbox, or whose identity route is gone', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const aBox = a.createMailbox();
    a.trapExits(aBox);
    // b has no mailbox: link from b's side through a's route.
    const b = t.createGroup();
    t.link(aBox.export(Perm.LINK), b);
    b.kill();
    expect(expectExit(aBox.tryReceive())).toMatchObject({ from: 0, code: 0, detail: null });
    // c's first mailbox is closed and forgotten; its second one does not become the identity.
    const c = t.createGroup();
    const first = c.createMailbox();
    const second = c.createMailbox();
    t.link(second.export(Perm.LINK), a);
    first.close();
    c.kill();
    expect(expectExit(aBox.tryReceive()).from).toBe(0);
    t.close();
    h.expectNoLeaks();
  });

  test('the from handle outlives everything else of the dead group', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const aBox = a.createMailbox();
    a.trapExits(aBox);
    const t2 = h.office.createTable();
    const b = t2.createGroup();
    const bBox = b.createMailbox();
    t.link(t.importOwned(t2.toOwned(bBox.export(Perm.LINK))), a);
    const watcher = t.createGroup().createMailbox();
    const bMonitor = t.importOwned(t2.toOwned(bBox.export(Perm.MONITOR)));
    b.kill({ code: 1, detail: bytes(1) });
    t2.close(); // the dead group's own table lets everything go
    const exit = expectExit(aBox.tryReceive());
    // The exit's handle still names the route, with its close reason.
    t.monitor(bMonitor, watcher);
    expect(t.sameRoute(exit.from, bMonitor)).toBe(true);
    expect(expectDown(watcher.tryReceive())).toMatchObject({ code: 1, detail: bytes(1) });
    t.close();
    h.expectNoLeaks();
  });

  test('trapExits(null), or closing the trap mailbox, stops trapping', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const aBox = a.createMailbox();
    a.trapExits(aBox);
    a.trapExits(null);
    const b = t.createGroup();
    t.link(b.createMailbox().export(Perm.LINK), a);
    b.kill();
    expect(a.dead).toBe(true);
    const c = t.createGroup();
    const cBox = c.createMailbox();
    const cOther = c.createMailbox();
    c.trapExits(cBox);
    cBox.close();
    const d = t.createGroup();
    t.link(d.createMailbox().export(Perm.LINK), c);
    d.kill({ code: 3 });
    expect(c.dead).toBe(true);
    expect(cOther.tryReceive()).toMatchObject({ kind: 'end', code: 3 });
    t.close();
    h.expectNoLeaks();
  });

  test('pending exits are delivered before the end, and discarded with a closed mailbox', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const aBox = a.createMailbox();
    a.trapExits(aBox);
    for (let i = 0; i < 3; i++) {
      const g = t.createGroup();
      t.link(g.createMailbox().export(Perm.LINK), a);
      g.kill({ code: i });
    }
    a.kill({ code: 99 });
    expect([0, 1, 2].map(() => expectExit(aBox.tryReceive()).code).sort()).toEqual([0, 1, 2]);
    expect(expectEnd(aBox.tryReceive()).code).toBe(99);
    const b = t.createGroup();
    const bBox = b.createMailbox();
    b.trapExits(bBox);
    const g = t.createGroup();
    t.link(g.createMailbox().export(Perm.LINK), b);
    g.kill({ detail: bytes(1) });
    expect(h.office.stats().pendingExits).toBe(1);
    bBox.close();
    expect(h.office.stats().pendingExits).toBe(0);
    t.close();
    h.expectNoLeaks();
  });

  test('bad trap mailboxes are refused before anything changes', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const b = t.createGroup();
    const bBox = b.createMailbox();
    expect(() => a.trapExits(bBox)).toThrow(RangeError);
    const t2 = h.office.createTable();
    const foreign = t2.createGroup().createMailbox();
    expect(() => a.trapExits(foreign)).toThrow(TableMismatch);
    const closed = a.createMailbox();
    closed.close();
    expect(() => a.trapExits(closed)).toThrow(InvalidHandle);
    a.release();
    expect(() => a.trapExits(null)).toThrow(InvalidHandle);
    t2.close();
    t.close();
    h.expectNoLeaks();
  });

  test('a trapping link made with the node pool full throws CapacityExceeded and changes nothing', () => {
    const h = harness({ maxNodes: 64 });
    const t = h.office.createTable();
    const a = t.createGroup();
    const aBox = a.createMailbox();
    a.trapExits(aBox);
    const dead = t.createGroup();
    const link = dead.createMailbox().export(Perm.LINK);
    dead.kill();
    const fill: OwnedCapability[] = [];
    for (;;) {
      try {
        fill.push(t.toOwned(link));
      } catch (error) {
        expect(error).toBeInstanceOf(CapacityExceeded);
        break;
      }
    }
    const before = h.office.stats();
    expect(() => t.link(link, a)).toThrow(CapacityExceeded);
    expect(h.office.stats()).toEqual(before);
    expect(a.dead).toBe(false);
    t.close();
    for (const owned of fill) h.office.discardOwned(owned); // the tokens hold route references
    h.expectNoLeaks();
  });
});

describe('trapping exits across threads', () => {
  test('kills racing from two threads: each link gives exactly one exit, queued before either kill returns', async () => {
    const rounds = 10 * SCALE;
    const n = 40;
    const h = harness({
      maxRoutes: rounds * (n + 1) + 16,
      maxGroups: rounds * (n + 3) + 16,
      maxNodes: rounds * (4 * n + 8) + 64,
      maxCapabilities: rounds * (n + 4) + 64,
      heapBytes: 16 << 20,
      mailboxCapacity: 256,
    });
    const t = h.office.createTable();
    const control = new SharedArrayBuffer(8); // [round, workers done]
    const c = new Int32Array(control);
    const built = Array.from({ length: rounds }, () => {
      const hub = t.createGroup();
      const hubBox = hub.createMailbox({ capacity: 256 }); // smaller than n exits' nudges: they must not need room
      hub.trapExits(hubBox);
      const spokes = Array.from({ length: n }, () => t.createGroup());
      const boxes = spokes.map((g) => g.createMailbox({ capacity: 64 }));
      const ids = boxes.map((mb) => mb.export(Perm.ALL));
      for (let i = 0; i < n; i++) {
        t.link(ids[i]!, hub);
        if (i > 0) t.link(ids[i]!, spokes[i - 1]!);
      }
      return { hub, hubBox, spokes, boxes, ids };
    });
    const random = rng(100);
    const plan = [1, 2].map((id) =>
      startWorker(SCRIPT, h.office, 'spokeKiller', {
        id,
        control,
        rounds: built.map((r) => ({ spoke: t.toOwned(r.ids[Math.floor(random() * n)]!), spokes: n })),
      }),
    );
    // Each killer links a group of its own to the chain first: it dies with the chain.
    while (h.office.stats().links < rounds * (2 * n + 1)) await new Promise((r) => setTimeout(r, 5));
    for (let round = 0; round < rounds; round++) {
      Atomics.store(c, 1, 0);
      Atomics.store(c, 0, round + 1);
      Atomics.notify(c, 0);
      while (Atomics.load(c, 1) < 2) Atomics.wait(c, 1, Atomics.load(c, 1), 100);
      const { hub, hubBox, spokes, boxes, ids } = built[round]!;
      expect(hub.dead).toBe(false);
      expect(spokes.every((g) => g.dead)).toBe(true);
      const byId = new Map<number, number>();
      for (let k = 0; k < n; k++) {
        const exit = expectExit(hubBox.tryReceive());
        const i = ids.findIndex((id) => t.sameRoute(id, exit.from));
        expect(i).toBeGreaterThanOrEqual(0);
        expect(byId.has(i)).toBe(false);
        byId.set(i, exit.code);
        expect([1, 2]).toContain(exit.code);
        expect(exit.detail).toEqual(bytes(exit.code, round));
        t.release(exit.from);
      }
      expect(hubBox.tryReceive()).toBeNull();
      // Each exit carries the reason its spoke died of, whichever killer reached it first.
      for (let i = 0; i < n; i++) expect(expectEnd(boxes[i]!.tryReceive()).code).toBe(byId.get(i));
      expect(h.office.stats().pendingExits).toBe(0);
      hubBox.close();
    }
    const results = await finish(plan);
    for (const r of results) expect(r.problems).toEqual([]);
    expect(h.office.stats().links).toBe(0);
    t.close();
    h.expectNoLeaks();
  });

  test('an exit wakes a trapping receiver parked in its thread', async () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const mb = g.createMailbox();
    const waiter = startWorker(SCRIPT, h.office, 'trapWaiter', {});
    const { link } = (await waiter.next()) as { link: OwnedCapability };
    expect(t.link(t.importOwned(link), g)).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 50)); // let it park
    g.kill({ code: 77, detail: bytes(7, 7) });
    const [result] = await finish([waiter]);
    expect(result).toEqual({ kind: 'exit', code: 77, detail: [7, 7], from: true, alive: true });
    expect(mb.tryReceive()).toMatchObject({ kind: 'end', code: 77 });
    t.close();
    h.expectNoLeaks();
  });
});

describe('a dead thread is reclaimed whole', () => {
  test('its groups die with the reason (links and monitors fire), its mailboxes, groups and tables are let go', () => {
    const h = harness();
    const t = h.office.createTable();
    const mg = t.createGroup();
    const mbox = mg.createMailbox();
    const watcher = t.createGroup().createMailbox();
    const mainWatched = t.createGroup().createMailbox();
    // The other thread: an attachment we stop using, as a terminated worker would.
    const other = PostOffice.attach(h.office.buffer);
    const ot = other.createTable();
    const og = ot.createGroup();
    const oBox = og.createMailbox();
    const oSecond = og.createMailbox();
    ot.link(ot.importOwned(t.toOwned(mbox.export(Perm.LINK))), og);
    const released = ot.createGroup();
    const releasedBox = released.createMailbox();
    released.release(); // its Group object let go; the group lives on through its mailbox
    const trapper = ot.createGroup();
    const trapBox = trapper.createMailbox();
    trapper.trapExits(trapBox);
    ot.link(oSecond.export(Perm.LINK), trapper);
    const deadAlready = ot.createGroup();
    deadAlready.createMailbox();
    deadAlready.kill({ detail: bytes(1) });
    // Main watches the other thread's routes; the other thread watches one of main's.
    t.monitor(t.importOwned(ot.toOwned(oBox.export(Perm.MONITOR))), watcher);
    t.monitor(t.importOwned(ot.toOwned(releasedBox.export(Perm.MONITOR))), watcher);
    ot.monitor(ot.importOwned(t.toOwned(mainWatched.export(Perm.MONITOR))), oSecond);
    // Things in flight in its rings and lists: messages (with a capability, out of line), downs
    // taken but not received, a record held in place, a record consumed but not handed back.
    const toO = t.importOwned(ot.toOwned(oBox.export(Perm.SEND)));
    const toSecond = t.importOwned(ot.toOwned(oSecond.export(Perm.SEND)));
    // Two routes of main travel as capabilities: main keeps one handle to each.
    const carriedA = t.createGroup().createMailbox();
    const carriedB = t.createGroup().createMailbox();
    const keepA = carriedA.export(Perm.SEND);
    const keepB = carriedB.export(Perm.SEND);
    expect(t.send(toO, bytes(1), [keepA])).toBe(true);
    expect(t.send(toO, new Uint8Array(3000))).toBe(true); // out of line
    expect(t.send(toO, bytes(2), [keepB])).toBe(true);
    expect(t.send(toO, new Uint8Array(2000))).toBe(true);
    expect(t.send(toO, bytes(3), [watcher.export(Perm.NONE)])).toBe(true);
    expect(oBox.tryReceive()?.kind).toBe('message'); // taken: caps imported, record not handed back
    expect(oBox.tryReceive()?.kind).toBe('message'); // taken: body freed
    expect(oBox.tryReceiveInPlace()?.kind).toBe('message'); // held in place, caps imported
    const watchedA = ot.createGroup();
    const watchedB = ot.createGroup();
    ot.monitor(watchedA.createMailbox().export(Perm.MONITOR), oSecond);
    ot.monitor(watchedB.createMailbox().export(Perm.MONITOR), oSecond);
    watchedA.kill();
    watchedB.kill();
    expect(oSecond.tryReceive()?.kind).toBe('down'); // the other down is now in its taken list
    expect(t.send(toSecond, bytes(4))).toBe(true);
    // In place, a large one held: its body is in the heap.
    const oThird = og.createMailbox();
    expect(t.send(t.importOwned(ot.toOwned(oThird.export(Perm.SEND))), new Uint8Array(5000))).toBe(true);
    expect(oThird.tryReceiveInPlace()?.length).toBe(5000);

    const { slot, generation } = other.thread;
    expect(h.office.markThreadDead(slot, generation, { code: 3, detail: text('worker lost') })).toBe(true);
    // Linked main group: killed with the reason.
    expect(mg.dead).toBe(true);
    expect(mbox.tryReceive()).toEqual({
      kind: 'end',
      reason: 'killed',
      code: 3,
      detail: text('worker lost'),
    });
    // Main's monitors of its routes: downs with the reason.
    for (let i = 0; i < 2; i++) {
      expect(expectDown(watcher.tryReceive())).toMatchObject({
        reason: 'killed',
        code: 3,
        detail: text('worker lost'),
      });
    }
    // Its monitor of main's route is gone.
    expect(h.office.stats().monitors).toBe(0);
    expect(h.office.stats().tables).toBe(1);
    expect(h.office.stats().liveGroups).toBe(4); // main's watcher, mainWatched, carriedA and carriedB
    // The capabilities the dead thread took were released once, not twice: main's handles still hold the routes.
    const routes = h.office.stats().routes;
    carriedA.close();
    carriedB.close();
    expect(h.office.stats().routes).toBe(routes);
    t.release(keepA);
    t.release(keepB);
    expect(h.office.stats().routes).toBe(routes - 2);
    t.close();
    h.expectNoLeaks();
  });

  test('a bad reason is refused before anything changes', () => {
    const h = harness();
    const other = PostOffice.attach(h.office.buffer);
    const ot = other.createTable();
    ot.createGroup().createMailbox();
    const before = h.office.stats();
    const { slot, generation } = other.thread;
    expect(() => h.office.markThreadDead(slot, generation, { code: -1 })).toThrow(RangeError);
    expect(() => h.office.markThreadDead(slot, generation, { detail: new Uint8Array(5000) })).toThrow(
      RangeError,
    );
    expect(h.office.stats()).toEqual(before);
    expect(h.office.markThreadDead(slot, generation)).toBe(true);
    h.expectNoLeaks();
  });

  test('a trapping group of a live thread gets an exit when its dead partner is reclaimed', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const box = g.createMailbox();
    g.trapExits(box);
    const other = PostOffice.attach(h.office.buffer);
    const ot = other.createTable();
    const og = ot.createGroup();
    const oBox = og.createMailbox();
    const identity = t.importOwned(ot.toOwned(oBox.export(Perm.NONE)));
    ot.link(ot.importOwned(t.toOwned(box.export(Perm.LINK))), og);
    const { slot, generation } = other.thread;
    h.office.markThreadDead(slot, generation, { code: 8 });
    const exit = expectExit(box.tryReceive());
    expect(exit).toMatchObject({ reason: 'killed', code: 8, detail: null });
    expect(t.sameRoute(exit.from, identity)).toBe(true);
    expect(g.dead).toBe(false);
    t.close();
    h.expectNoLeaks();
  });

  test('a thread whose last write went into a ring freed before it died: its slot is freed too', () => {
    const h = harness();
    const other = PostOffice.attach(h.office.buffer);
    const ot = other.createTable();
    const mb = ot.createGroup().createMailbox();
    expect(ot.send(mb.export(Perm.SEND), bytes(1))).toBe(true);
    mb.close(); // nudges its own ring, then the ring is freed: the thread's last claim is in freed memory
    const { slot, generation } = other.thread;
    expect(h.office.markThreadDead(slot, generation)).toBe(true);
    h.expectNoLeaks(); // threads included
  });
});

describe('a worker terminated while it owns groups and mailboxes', () => {
  for (const mode of ['instant', 'between'] as const) {
    const what =
      mode === 'instant'
        ? 'at a random instant of a loop of sends and receives'
        : 'between two random operations of every kind';
    test(`terminated ${what}: its link kills main's group, the monitor's down carries the reason, nothing leaks`, async () => {
      for (let round = 0; round < 3 * SCALE; round++) {
        const random = rng(round * 7919 + (mode === 'instant' ? 1 : 2));
        const h = harness({ maxNodes: 8192, heapBytes: 8 << 20 });
        const t = h.office.createTable();
        const mg = t.createGroup();
        const mb = mg.createMailbox();
        const watcher = t.createGroup().createMailbox();
        const mainWatched = t.createGroup().createMailbox();
        const control = new SharedArrayBuffer(12);
        const c = new Int32Array(control);
        const doomed = startWorker(SCRIPT, h.office, 'doomed', {
          mainLink: t.toOwned(mb.export(Perm.LINK)),
          mainSend: t.toOwned(mb.export(Perm.SEND)),
          mainMonitor: t.toOwned(mainWatched.export(Perm.MONITOR)),
          seed: round + 1,
          mode,
          control,
        });
        doomed.result.catch(() => {}); // it never reports: it is terminated
        const { monitor, thread } = (await doomed.next()) as {
          monitor: OwnedCapability;
          thread: { slot: number; generation: number };
        };
        const id = t.monitor(t.importOwned(monitor), watcher);
        expect(await doomed.next()).toEqual({ phase: 'looping' });
        await new Promise((r) => setTimeout(r, Math.floor(random() * 30)));
        if (mode === 'between') {
          Atomics.store(c, 0, 1);
          while (Atomics.load(c, 1) === 0) await new Promise((r) => setTimeout(r, 1));
        }
        await doomed.worker.terminate();
        expect(mg.dead).toBe(false);
        const reason = { code: 21 + round, detail: text(`worker lost in round ${round}`) };
        expect(h.office.markThreadDead(thread.slot, thread.generation, reason)).toBe(true);
        expect(mg.dead).toBe(true);
        for (let s = mb.tryReceive(); ; s = mb.tryReceive()) {
          if (s?.kind === 'message') continue;
          expect(s).toEqual({ kind: 'end', reason: 'killed', ...reason });
          break;
        }
        expect(expectDown(watcher.tryReceive())).toMatchObject({
          kind: 'down',
          monitor: id,
          reason: 'killed',
          ...reason,
        });
        expect(watcher.tryReceive()).toBeNull();
        expect(h.office.stats().tables).toBe(1);
        expect(h.office.stats().monitors).toBe(0); // its monitor of main's route went with it
        t.close();
        h.expectNoLeaks();
      }
    });
  }
});
