/**
 * Exit reasons (a kill's code and detail reach every down, exit and end it
 * causes), trapped exits, and the reclaiming of what a dead thread owned.
 * Every test ends with the leak check.
 */

import { describe, expect, test } from 'vitest';
import {
  CapacityExceeded,
  DETAIL_DROPPED,
  MAX_DETAIL_BYTES,
  MAX_EXIT_CODE,
  Perm,
  type Signal,
} from '../index.ts';
import { bytes, harness, text } from './harness.ts';

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
