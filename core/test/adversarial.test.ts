/**
 * Adversarial tests of the post office (independent of its author's tests):
 * edge cases of section 1 of DESIGN.md, the security axioms, bad input,
 * capacity exhaustion of every region, and the owned bearer form. Every
 * test ends with the leak check.
 */

import { describe, expect, test } from 'vitest';
import {
  CapacityExceeded,
  InvalidHandle,
  MessageTooLarge,
  Perm,
  PermissionDenied,
  PostOffice,
  PostOfficeError,
  PostOfficeMismatch,
  type Signal,
  TableMismatch,
} from '../index.ts';
import { bytes, expectMessage, harness } from './harness.ts';

/** Everything stats() reports except capacity, for "nothing changed" checks. */
function counts(office: PostOffice) {
  const { capacity: _c, ...rest } = office.stats();
  return rest;
}

/** A second, small post office (the harness's SMALL sizes need a large enough heap). */
function smallOffice(): PostOffice {
  return PostOffice.create({
    maxThreads: 4,
    maxRoutes: 8,
    maxGroups: 8,
    heapBytes: 1 << 16,
    mailboxCapacity: 256,
    maxMessageBytes: 1024,
  });
}

function expectDown(signal: Signal | null) {
  expect(signal?.kind).toBe('down');
  if (signal?.kind !== 'down') throw new Error('unreachable');
  return signal;
}

describe('bad handles', () => {
  const garbage = [
    Number.NaN,
    -1,
    -4194304,
    0,
    0.5,
    1.5,
    4194304.5,
    2 ** 53,
    2 ** 60,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    Number.MAX_SAFE_INTEGER,
    Number.MIN_SAFE_INTEGER,
  ];

  test('every handle-taking method refuses garbage numbers with InvalidHandle and changes nothing', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const mb = g.createMailbox();
    const good = mb.export(Perm.ALL);
    const before = counts(h.office);
    for (const bad of garbage) {
      expect(() => t.send(bad, bytes(1))).toThrow(InvalidHandle);
      expect(() => t.kill(bad)).toThrow(InvalidHandle);
      expect(() => t.monitor(bad, mb)).toThrow(InvalidHandle);
      expect(() => t.link(bad, g)).toThrow(InvalidHandle);
      expect(() => t.demote(bad, 0)).toThrow(InvalidHandle);
      expect(() => t.release(bad)).toThrow(InvalidHandle);
      expect(() => t.permissions(bad)).toThrow(InvalidHandle);
      expect(() => t.sameRoute(bad, good)).toThrow(InvalidHandle);
      expect(() => t.sameRoute(good, bad)).toThrow(InvalidHandle);
      expect(() => t.toOwned(bad)).toThrow(InvalidHandle);
      expect(() => t.send(good, bytes(1), [bad])).toThrow(InvalidHandle);
      expect(t.demonitor(bad)).toBe(false);
      expect(t.unlink(bad)).toBe(false);
    }
    expect(counts(h.office)).toEqual(before);
    expect(mb.tryReceive()).toBeNull();
    expect(g.dead).toBe(false);
    t.close();
    h.expectNoLeaks();
  });

  test('a handle off by one generation or one index is refused', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const good = mb.export(Perm.ALL);
    for (const bad of [good + 1, good - 1, good + 4194304, good - 4194304]) {
      expect(() => t.send(bad, bytes(1))).toThrow(PostOfficeError);
    }
    expect(mb.tryReceive()).toBeNull();
    t.close();
    h.expectNoLeaks();
  });

  test('a released handle stays dead after its slot is reused, also by another table', () => {
    const h = harness();
    const t1 = h.office.createTable();
    const t2 = h.office.createTable();
    const mb1 = t1.createGroup().createMailbox();
    const mb2 = t2.createGroup().createMailbox();
    const old = mb1.export(Perm.ALL);
    t1.release(old);
    // Reuse as many entry slots as we can in both tables.
    const fresh: number[] = [];
    for (let i = 0; i < 50; i++) fresh.push(mb2.export(Perm.ALL), mb1.export(Perm.SEND));
    expect(fresh).not.toContain(old);
    expect(() => t1.send(old, bytes(1))).toThrow(InvalidHandle);
    expect(() => t2.send(old, bytes(1))).toThrow(InvalidHandle);
    expect(() => t1.release(old)).toThrow(InvalidHandle);
    expect(mb1.tryReceive()).toBeNull();
    expect(mb2.tryReceive()).toBeNull();
    t1.close();
    t2.close();
    h.expectNoLeaks();
  });

  test('a handle of a table of another post office is refused (no aliasing across offices)', () => {
    const h = harness();
    const other = smallOffice();
    const tOther = other.createTable();
    const mbOther = tOther.createGroup().createMailbox({ capacity: 256 });
    const foreign = mbOther.export(Perm.ALL);

    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const mine = mb.export(Perm.ALL);
    // Both offices are fresh, so the numbers may well coincide; a foreign
    // handle must still not name anything in this table.
    expect(typeof mine).toBe('number');
    expect(() => t.send(foreign, bytes(9))).toThrow(PostOfficeError);
    expect(mb.tryReceive()).toBeNull();
    expect(() => t.kill(foreign)).toThrow(PostOfficeError);
    expect(mb.closed).toBe(false);
    t.close();
    tOther.close();
    other.detach();
    h.expectNoLeaks();
  });

  test('handles of another table: TableMismatch for every method, nothing changes', () => {
    const h = harness();
    const t1 = h.office.createTable();
    const t2 = h.office.createTable();
    const g1 = t1.createGroup();
    const mb1 = g1.createMailbox();
    const theirs = t2.createGroup().createMailbox().export(Perm.ALL);
    const mine = mb1.export(Perm.ALL);
    const before = counts(h.office);
    expect(() => t1.send(theirs, bytes(1))).toThrow(TableMismatch);
    expect(() => t1.send(mine, bytes(1), [theirs])).toThrow(TableMismatch);
    expect(() => t1.kill(theirs)).toThrow(TableMismatch);
    expect(() => t1.monitor(theirs, mb1)).toThrow(TableMismatch);
    expect(() => t1.link(theirs, g1)).toThrow(TableMismatch);
    expect(() => t1.demote(theirs, 0)).toThrow(TableMismatch);
    expect(() => t1.release(theirs)).toThrow(TableMismatch);
    expect(() => t1.permissions(theirs)).toThrow(TableMismatch);
    expect(() => t1.sameRoute(mine, theirs)).toThrow(TableMismatch);
    expect(() => t1.toOwned(theirs)).toThrow(TableMismatch);
    expect(counts(h.office)).toEqual(before);
    expect(mb1.tryReceive()).toBeNull();
    t1.close();
    t2.close();
    h.expectNoLeaks();
  });
});

describe('sends with capabilities', () => {
  test('one bad cap among good ones: nothing is sent, no reference or entry changes', () => {
    const h = harness();
    const t = h.office.createTable();
    const t2 = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const to = mb.export(Perm.SEND);
    const a = mb.export(Perm.MONITOR);
    const b = mb.export(Perm.KILL);
    const released = mb.export(Perm.LINK);
    t.release(released);
    const foreign = t2.createGroup().createMailbox().export(Perm.ALL);
    const before = counts(h.office);
    expect(() => t.send(to, bytes(1, 2, 3), [a, b, released])).toThrow(InvalidHandle);
    expect(() => t.send(to, bytes(1, 2, 3), [released, a, b])).toThrow(InvalidHandle);
    expect(() => t.send(to, bytes(1, 2, 3), [a, foreign])).toThrow(TableMismatch);
    expect(() => t.send(to, bytes(1, 2, 3), [a, Number.NaN])).toThrow(InvalidHandle);
    expect(() => t.send(to, new Uint8Array(300), [a, b, -1])).toThrow(InvalidHandle); // out of line
    expect(counts(h.office)).toEqual(before);
    expect(mb.tryReceive()).toBeNull();
    // The good caps still work and still count once each.
    expect(t.send(to, bytes(4), [a, b])).toBe(true);
    const m = expectMessage(mb.tryReceive());
    expect(m.caps.map((c) => t.permissions(c))).toEqual([Perm.MONITOR, Perm.KILL]);
    t.close();
    t2.close();
    h.expectNoLeaks();
  });

  test('duplicate caps arrive as distinct handles, each released on its own', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const to = mb.export(Perm.SEND | Perm.KILL);
    expect(t.send(to, bytes(1), [to, to, to])).toBe(true);
    const m = expectMessage(mb.tryReceive());
    expect(m.caps.length).toBe(3);
    expect(new Set(m.caps).size).toBe(3);
    for (const c of m.caps) {
      expect(t.sameRoute(c, to)).toBe(true);
      expect(t.permissions(c)).toBe(Perm.SEND | Perm.KILL);
    }
    t.release(m.caps[0]!);
    expect(() => t.permissions(m.caps[0]!)).toThrow(InvalidHandle);
    expect(t.permissions(m.caps[1]!)).toBe(Perm.SEND | Perm.KILL);
    t.close();
    h.expectNoLeaks();
  });

  test('caps queued in a closed mailbox are reclaimed (inline and out of line)', () => {
    const h = harness();
    const t = h.office.createTable();
    const t2 = h.office.createTable();
    const mb = t2.createGroup().createMailbox({ capacity: 1024 });
    const keep = t.createGroup().createMailbox();
    const cap = keep.export(Perm.ALL);
    const to = t2.toOwned(mb.export(Perm.SEND));
    const toH = t.importOwned(to);
    expect(t.send(toH, bytes(1), [cap, cap])).toBe(true);
    expect(t.send(toH, new Uint8Array(2000), [cap])).toBe(true);
    t.release(cap);
    mb.close();
    t.close();
    t2.close();
    h.expectNoLeaks();
  });

  test('a message to a closed route with caps takes no references', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const to = mb.export(Perm.SEND);
    const other = t.createGroup().createMailbox().export(Perm.ALL);
    mb.close();
    const before = counts(h.office);
    expect(t.send(to, bytes(1), [other, other])).toBe(true);
    expect(t.send(to, new Uint8Array(5000), [other])).toBe(true);
    expect(counts(h.office)).toEqual(before);
    t.close();
    h.expectNoLeaks();
  });
});

describe('permissions', () => {
  test('perms out of range: demote refuses, export refuses, nothing widens', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const send = mb.export(Perm.SEND);
    const before = counts(h.office);
    for (const bad of [16, 31, -1, 0.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => t.demote(send, bad)).toThrow(PermissionDenied);
    }
    for (const more of [Perm.MONITOR, Perm.KILL, Perm.LINK, Perm.ALL, Perm.SEND | Perm.LINK]) {
      expect(() => t.demote(send, more)).toThrow(PermissionDenied);
    }
    for (const bad of [16, -1, 0.5, Number.NaN]) {
      expect(() => mb.export(bad)).toThrow();
    }
    expect(counts(h.office)).toEqual(before);
    expect(t.permissions(t.demote(send, Perm.NONE))).toBe(0);
    t.close();
    h.expectNoLeaks();
  });

  test('perms beyond 32 bits are refused, not truncated to their low bits', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const send = mb.export(Perm.SEND);
    const before = counts(h.office);
    for (const bad of [2 ** 32 + 1, 2 ** 40 + 1, 2 ** 32]) {
      expect(() => t.demote(send, bad)).toThrow(PermissionDenied);
      expect(() => mb.export(bad)).toThrow();
    }
    expect(counts(h.office)).toEqual(before);
    t.close();
    h.expectNoLeaks();
  });

  test('a down handle has no permissions and cannot be demoted into any', () => {
    const h = harness();
    const t = h.office.createTable();
    const watcher = t.createGroup().createMailbox();
    const watched = t.createGroup().createMailbox();
    t.monitor(watched.export(Perm.MONITOR), watcher);
    watched.close();
    const down = expectDown(watcher.tryReceive());
    expect(t.permissions(down.route)).toBe(0);
    expect(() => t.send(down.route, bytes(1))).toThrow(PermissionDenied);
    expect(() => t.kill(down.route)).toThrow(PermissionDenied);
    expect(() => t.monitor(down.route, watcher)).toThrow(PermissionDenied);
    expect(() => t.link(down.route, watcher.group)).toThrow(PermissionDenied);
    expect(() => t.demote(down.route, Perm.SEND)).toThrow(PermissionDenied);
    t.close();
    h.expectNoLeaks();
  });

  test('KILL without LINK cannot link; LINK without KILL cannot kill directly', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const b = t.createGroup();
    const mbB = b.createMailbox();
    const noLink = mbB.export(Perm.SEND | Perm.MONITOR | Perm.KILL);
    const linkOnly = mbB.export(Perm.LINK);
    expect(() => t.link(noLink, a)).toThrow(PermissionDenied);
    expect(() => t.kill(linkOnly)).toThrow(PermissionDenied);
    expect(b.dead).toBe(false);
    expect(h.office.stats().links).toBe(0);
    t.close();
    h.expectNoLeaks();
  });

  test('an owned capability whose perms field was tampered with imports the original perms', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const owned = t.toOwned(mb.export(Perm.SEND));
    const forged = { ...owned, perms: Perm.ALL };
    const t2 = h.office.createTable();
    const imported = t2.importOwned(forged);
    expect(t2.permissions(imported)).toBe(Perm.SEND);
    expect(() => t2.kill(imported)).toThrow(PermissionDenied);
    t.close();
    t2.close();
    h.expectNoLeaks();
  });
});

describe('links', () => {
  test('linking a group to itself through its own open route does nothing', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const mb = g.createMailbox();
    const self = mb.export(Perm.LINK);
    expect(t.link(self, g)).toBe(0);
    expect(t.link(self, g)).toBe(0);
    expect(g.dead).toBe(false);
    expect(h.office.stats().links).toBe(0);
    expect(h.office.stats().nodes).toBe(h.baseline.nodes);
    t.close();
    h.expectNoLeaks();
  });

  test('a group in another table cannot be linked; a group of another office neither', () => {
    const h = harness();
    const t1 = h.office.createTable();
    const t2 = h.office.createTable();
    const g2 = t2.createGroup();
    const cap = t1.createGroup().createMailbox().export(Perm.LINK);
    expect(() => t1.link(cap, g2)).toThrow(TableMismatch);
    const other = smallOffice();
    const tOther = other.createTable();
    const gOther = tOther.createGroup();
    expect(() => t1.link(cap, gOther)).toThrow(PostOfficeMismatch);
    expect(h.office.stats().links).toBe(0);
    expect(g2.dead).toBe(false);
    t1.close();
    t2.close();
    tOther.close();
    other.detach();
    h.expectNoLeaks();
  });

  test('a released group cannot be linked', () => {
    const h = harness();
    const t = h.office.createTable();
    const cap = t.createGroup().createMailbox().export(Perm.LINK);
    const g = t.createGroup();
    g.release();
    expect(() => t.link(cap, g)).toThrow(InvalidHandle);
    expect(h.office.stats().links).toBe(0);
    t.close();
    h.expectNoLeaks();
  });

  test('double unlink, unlink after death, unlink of a stale id after relink', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const b = t.createGroup();
    const mbA = a.createMailbox();
    const mbB = b.createMailbox();
    const capB = mbB.export(Perm.LINK | Perm.KILL);
    const id = t.link(capB, a);
    expect(id).not.toBe(0);
    expect(t.unlink(id)).toBe(true);
    expect(t.unlink(id)).toBe(false);
    expect(h.office.stats().links).toBe(0);
    const id2 = t.link(capB, a);
    expect(id2).not.toBe(0);
    expect(t.unlink(id)).toBe(false); // the old id does not name the new link
    expect(h.office.stats().links).toBe(1);
    t.kill(capB);
    expect(a.dead).toBe(true);
    expect(mbA.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    expect(mbB.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    expect(t.unlink(id2)).toBe(false);
    expect(h.office.stats().links).toBe(0);
    t.close();
    h.expectNoLeaks();
  });

  test('after unlink, killing either side leaves the other alive', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const b = t.createGroup();
    const mbA = a.createMailbox();
    const capB = b.createMailbox().export(Perm.LINK);
    const id = t.link(capB, a);
    expect(t.unlink(id)).toBe(true);
    b.kill();
    expect(a.dead).toBe(false);
    expect(mbA.tryReceive()).toBeNull();
    t.close();
    h.expectNoLeaks();
  });

  test('a link made from the other side is the same link; either id removes it once', () => {
    const h = harness();
    const t1 = h.office.createTable();
    const t2 = h.office.createTable();
    const a = t1.createGroup();
    const b = t2.createGroup();
    const mbA = a.createMailbox();
    const mbB = b.createMailbox();
    const capB = t1.importOwned(t2.toOwned(mbB.export(Perm.LINK)));
    const capA = t2.importOwned(t1.toOwned(mbA.export(Perm.LINK)));
    const id1 = t1.link(capB, a);
    const id2 = t2.link(capA, b);
    expect(id1).not.toBe(0);
    expect(id2).not.toBe(0);
    expect(h.office.stats().links).toBe(1);
    // t1 cannot use t2's id and vice versa (unless they are equal).
    if (id1 !== id2) expect(t1.unlink(id2)).toBe(false);
    expect(t2.unlink(id2)).toBe(true);
    expect(t1.unlink(id1)).toBe(false);
    expect(h.office.stats().links).toBe(0);
    b.kill();
    expect(a.dead).toBe(false);
    t1.close();
    t2.close();
    h.expectNoLeaks();
  });

  test('link survives the release of the handle it was made through', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const b = t.createGroup();
    const mbA = a.createMailbox();
    const mbB = b.createMailbox();
    const cap = mbB.export(Perm.LINK);
    expect(t.link(cap, a)).not.toBe(0);
    t.release(cap);
    b.kill();
    expect(a.dead).toBe(true);
    expect(mbA.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    expect(mbB.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    t.close();
    h.expectNoLeaks();
  });

  test('a cycle of links dies whole from any member, once', () => {
    const h = harness();
    const t = h.office.createTable();
    const groups = Array.from({ length: 6 }, () => t.createGroup());
    const boxes = groups.map((g) => g.createMailbox());
    const caps = boxes.map((mb) => mb.export(Perm.LINK));
    for (let i = 0; i < groups.length; i++) {
      expect(t.link(caps[(i + 1) % groups.length]!, groups[i]!)).not.toBe(0);
      expect(t.link(caps[(i + 3) % groups.length]!, groups[i]!)).not.toBe(0);
    }
    const watcher = t.createGroup().createMailbox();
    for (const c of boxes.map((mb) => mb.export(Perm.MONITOR))) t.monitor(c, watcher);
    groups[4]!.kill();
    for (const g of groups) expect(g.dead).toBe(true);
    expect(h.office.stats().links).toBe(0);
    const downs: Signal[] = [];
    for (let s = watcher.tryReceive(); s !== null; s = watcher.tryReceive()) downs.push(s);
    expect(downs.length).toBe(groups.length);
    for (const d of downs) expect(expectDown(d).reason).toBe('killed');
    t.close();
    h.expectNoLeaks();
  });

  test('a dead caller group linking to a live route kills the partner (symmetric), no link left', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const b = t.createGroup();
    const mbB = b.createMailbox();
    const cap = mbB.export(Perm.LINK);
    a.kill();
    expect(t.link(cap, a)).toBe(0);
    expect(b.dead).toBe(true);
    expect(h.office.stats().links).toBe(0);
    t.close();
    h.expectNoLeaks();
  });

  test('linking twice is idempotent even when the node pool is full', () => {
    const h = harness({ maxNodes: 16 });
    const t = h.office.createTable();
    const a = t.createGroup();
    const b = t.createGroup();
    const mbB = b.createMailbox();
    const cap = mbB.export(Perm.LINK | Perm.MONITOR);
    const id = t.link(cap, a);
    expect(id).not.toBe(0);
    const watcher = a.createMailbox();
    const fill: number[] = [];
    for (;;) {
      try {
        fill.push(t.monitor(cap, watcher));
      } catch (error) {
        expect(error).toBeInstanceOf(CapacityExceeded);
        expect((error as CapacityExceeded).region).toBe('nodes');
        break;
      }
    }
    expect(t.link(cap, a)).toBe(id);
    for (const m of fill) expect(t.demonitor(m)).toBe(true);
    t.close();
    h.expectNoLeaks();
  });

  test('a link whose one side is already dead kills the other even when the node pool is full', () => {
    const h = harness({ maxNodes: 16 });
    const t = h.office.createTable();
    const a = t.createGroup();
    const b = t.createGroup();
    const mbB = b.createMailbox();
    const cap = mbB.export(Perm.LINK | Perm.MONITOR);
    a.kill();
    const watcher = t.createGroup().createMailbox();
    const fill: number[] = [];
    for (;;) {
      try {
        fill.push(t.monitor(cap, watcher));
      } catch {
        break;
      }
    }
    let threw: unknown = null;
    try {
      t.link(cap, a);
    } catch (error) {
      threw = error;
    }
    // Either it works (partner killed), or it fails and changes nothing; not a mix.
    if (threw === null) expect(b.dead).toBe(true);
    else expect(b.dead).toBe(false);
    expect(threw).toBeNull();
    for (const m of fill) t.demonitor(m);
    t.close();
    h.expectNoLeaks();
  });
});

describe('monitors', () => {
  test('monitoring its own route: demonitor works; close and kill give no down to itself', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const mb = g.createMailbox();
    const self = mb.export(Perm.MONITOR);
    const m1 = t.monitor(self, mb);
    expect(t.demonitor(m1)).toBe(true);
    expect(t.demonitor(m1)).toBe(false);
    t.monitor(self, mb);
    t.monitor(self, mb);
    g.kill();
    expect(mb.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    expect(h.office.stats().monitors).toBe(0);
    expect(h.office.stats().pendingDowns).toBe(0);
    const mb2 = t.createGroup().createMailbox();
    const self2 = mb2.export(Perm.MONITOR);
    t.monitor(self2, mb2);
    mb2.close();
    expect(mb2.tryReceive()).toEqual({ kind: 'end', reason: 'closed', code: 0, detail: null });
    t.close();
    h.expectNoLeaks();
  });

  test('demonitor of a pending down returns false and the down still arrives once', () => {
    const h = harness();
    const t = h.office.createTable();
    const watcher = t.createGroup().createMailbox();
    const watched = t.createGroup().createMailbox();
    const cap = watched.export(Perm.MONITOR);
    const id = t.monitor(cap, watcher);
    watched.close();
    expect(t.demonitor(id)).toBe(false);
    const d = expectDown(watcher.tryReceive());
    expect(d.monitor).toBe(id);
    expect(d.reason).toBe('closed');
    expect(watcher.tryReceive()).toBeNull();
    expect(t.demonitor(id)).toBe(false);
    t.close();
    h.expectNoLeaks();
  });

  test('monitor of an already closed route: immediate down; demonitor returns false', () => {
    const h = harness();
    const t = h.office.createTable();
    const watcher = t.createGroup().createMailbox();
    const g = t.createGroup();
    const watched = g.createMailbox();
    const cap = watched.export(Perm.MONITOR | Perm.KILL);
    g.kill();
    const id = t.monitor(cap, watcher);
    expect(t.demonitor(id)).toBe(false);
    const d = expectDown(watcher.tryReceive());
    expect(d.reason).toBe('killed');
    expect(d.monitor).toBe(id);
    expect(t.sameRoute(d.route, cap)).toBe(true);
    t.close();
    h.expectNoLeaks();
  });

  test('release of the handle a monitor was made through: the monitor still fires', () => {
    const h = harness();
    const t = h.office.createTable();
    const t2 = h.office.createTable();
    const watcher = t.createGroup().createMailbox();
    const watched = t2.createGroup().createMailbox();
    const cap = t.importOwned(t2.toOwned(watched.export(Perm.MONITOR)));
    const id = t.monitor(cap, watcher);
    t.release(cap);
    watched.close();
    const d = expectDown(watcher.tryReceive());
    expect(d.monitor).toBe(id);
    expect(d.reason).toBe('closed');
    t.close();
    t2.close();
    h.expectNoLeaks();
  });

  test('the owner lets the watched route go: the down still names it and carries its reason', () => {
    const h = harness();
    const t = h.office.createTable();
    const t2 = h.office.createTable();
    const watcher = t.createGroup().createMailbox();
    const g2 = t2.createGroup();
    const watched = g2.createMailbox();
    const cap = t.importOwned(t2.toOwned(watched.export(Perm.MONITOR)));
    t.monitor(cap, watcher);
    t.release(cap);
    g2.kill();
    t2.close(); // the watched route's owner and every other holder are gone
    const d = expectDown(watcher.tryReceive());
    expect(d.reason).toBe('killed');
    expect(t.permissions(d.route)).toBe(0);
    t.close();
    h.expectNoLeaks();
  });

  test('closing a mailbox with pending downs discards them and removes its monitors', () => {
    const h = harness();
    const t = h.office.createTable();
    const watcher = t.createGroup().createMailbox();
    const watched = Array.from({ length: 4 }, () => t.createGroup().createMailbox());
    for (const w of watched) t.monitor(w.export(Perm.MONITOR), watcher);
    watched[0]!.close();
    watched[1]!.group.kill();
    expect(h.office.stats().pendingDowns).toBe(2);
    expect(h.office.stats().monitors).toBe(2);
    watcher.close();
    expect(h.office.stats().pendingDowns).toBe(0);
    expect(h.office.stats().monitors).toBe(0);
    expect(watcher.tryReceive()).toEqual({ kind: 'end', reason: 'closed', code: 0, detail: null });
    watched[2]!.close();
    expect(h.office.stats().pendingDowns).toBe(0);
    t.close();
    h.expectNoLeaks();
  });

  test('monitor from a killed (unreceived) watcher: the down is dropped, no leak', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const watcher = g.createMailbox();
    const watched = t.createGroup().createMailbox();
    const cap = watched.export(Perm.MONITOR);
    g.kill();
    // The watcher is closed but has not reported its end yet.
    const id = t.monitor(cap, watcher);
    expect(typeof id).toBe('number');
    watched.close();
    expect(watcher.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    expect(h.office.stats().monitors).toBe(0);
    expect(h.office.stats().pendingDowns).toBe(0);
    t.close();
    h.expectNoLeaks();
  });

  test('monitor with a mailbox of another table or office is refused', () => {
    const h = harness();
    const t1 = h.office.createTable();
    const t2 = h.office.createTable();
    const cap = t1.createGroup().createMailbox().export(Perm.MONITOR);
    const theirs = t2.createGroup().createMailbox();
    expect(() => t1.monitor(cap, theirs)).toThrow(TableMismatch);
    const other = smallOffice();
    const tOther = other.createTable();
    const mbOther = tOther.createGroup().createMailbox({ capacity: 256 });
    expect(() => t1.monitor(cap, mbOther)).toThrow(PostOfficeMismatch);
    expect(h.office.stats().monitors).toBe(0);
    expect(h.office.stats().nodes).toBe(h.baseline.nodes);
    t1.close();
    t2.close();
    tOther.close();
    other.detach();
    h.expectNoLeaks();
  });

  test('down reason: closed first then group killed stays closed; born closed is killed', () => {
    const h = harness();
    const t = h.office.createTable();
    const watcher = t.createGroup().createMailbox();
    const g = t.createGroup();
    const first = g.createMailbox();
    const cap1 = first.export(Perm.MONITOR);
    first.close();
    g.kill();
    const born = g.createMailbox();
    const cap2 = born.export(Perm.MONITOR);
    t.monitor(cap1, watcher);
    t.monitor(cap2, watcher);
    const reasons = [expectDown(watcher.tryReceive()), expectDown(watcher.tryReceive())].map((d) =>
      t.sameRoute(d.route, cap1) ? `1:${d.reason}` : `2:${d.reason}`,
    );
    expect(reasons.sort()).toEqual(['1:closed', '2:killed']);
    expect(born.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    t.close();
    h.expectNoLeaks();
  });
});

describe('kill and delivery', () => {
  test('no message is delivered after a kill is observed, in place or copied', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const mb = g.createMailbox();
    const to = mb.export(Perm.SEND);
    for (let i = 0; i < 5; i++) expect(t.send(to, bytes(i), i === 3 ? [to] : [])).toBe(true);
    expect(t.send(to, new Uint8Array(3000))).toBe(true);
    const first = mb.tryReceiveInPlace();
    expect(first?.kind).toBe('message');
    expect(first?.copy()).toEqual(bytes(0));
    g.kill();
    expect(g.dead).toBe(true);
    expect(mb.closed).toBe(true);
    expect(mb.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    expect(mb.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    expect(t.send(to, bytes(9))).toBe(true);
    expect(mb.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    t.close();
    h.expectNoLeaks();
  });

  test('kill while an out-of-line message is held in place: the view stays valid until the next receive', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const mb = g.createMailbox();
    const to = mb.export(Perm.SEND);
    const body = Uint8Array.from({ length: 4000 }, (_, i) => (i * 7) & 255);
    expect(t.send(to, body, [to])).toBe(true);
    const view = mb.tryReceiveInPlace();
    expect(view?.kind).toBe('message');
    const caps = [...view!.caps];
    g.kill();
    expect(view!.copy()).toEqual(body);
    const end = mb.tryReceiveInPlace();
    expect(end?.kind).toBe('end');
    expect(end?.reason).toBe('killed');
    for (const c of caps) t.release(c);
    t.close();
    h.expectNoLeaks();
  });

  test('close while a message is held in place, then table close', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const to = mb.export(Perm.SEND);
    expect(t.send(to, new Uint8Array(4000))).toBe(true);
    expect(t.send(to, bytes(1), [to])).toBe(true);
    expect(mb.tryReceiveInPlace()?.kind).toBe('message');
    mb.close();
    t.close();
    h.expectNoLeaks();
  });

  test('kill through a capability of a route closed by its owner is a no-op (group lives)', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const closed = g.createMailbox();
    const alive = g.createMailbox();
    const cap = closed.export(Perm.KILL);
    closed.close();
    t.kill(cap);
    expect(g.dead).toBe(false);
    expect(alive.closed).toBe(false);
    t.close();
    h.expectNoLeaks();
  });

  test('double kill and kill after release of the group object', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const mb = g.createMailbox();
    const cap = mb.export(Perm.KILL);
    g.kill();
    g.kill();
    t.kill(cap);
    expect(g.dead).toBe(true);
    g.release();
    expect(() => g.kill()).toThrow(InvalidHandle);
    expect(() => g.dead).toThrow(InvalidHandle);
    expect(() => g.createMailbox()).toThrow(InvalidHandle);
    t.kill(cap);
    expect(mb.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    t.close();
    h.expectNoLeaks();
  });

  test('every route of a killed group ends, including mailboxes created after the kill', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const boxes = Array.from({ length: 5 }, () => g.createMailbox());
    const to = boxes.map((b) => b.export(Perm.SEND));
    for (const h2 of to) t.send(h2, bytes(1));
    g.kill();
    boxes.push(g.createMailbox());
    for (const b of boxes)
      expect(b.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    expect(h.office.stats().openRoutes).toBe(h.baseline.openRoutes);
    t.close();
    h.expectNoLeaks();
  });

  test('a watcher outside the closure gets exactly one down per watched route, killed', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const b = t.createGroup();
    const watcher = t.createGroup().createMailbox();
    const mbA = a.createMailbox();
    const mbB1 = b.createMailbox();
    const mbB2 = b.createMailbox();
    t.link(mbB1.export(Perm.LINK), a);
    const ids = [mbA, mbB1, mbB2, mbB1].map((m) => t.monitor(m.export(Perm.MONITOR), watcher));
    a.kill();
    const got = new Set<number>();
    for (let s = watcher.tryReceive(); s !== null; s = watcher.tryReceive()) {
      const d = expectDown(s);
      expect(d.reason).toBe('killed');
      expect(got.has(d.monitor)).toBe(false);
      got.add(d.monitor);
    }
    expect([...got].sort()).toEqual([...ids].sort());
    t.close();
    h.expectNoLeaks();
  });
});

describe('owned capabilities', () => {
  test('double import, import after discard, discard after import', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const cap = mb.export(Perm.SEND);
    const owned = t.toOwned(cap);
    const clone = structuredClone(owned);
    const t2 = h.office.createTable();
    const imported = t2.importOwned(clone);
    expect(() => t2.importOwned(owned)).toThrow(InvalidHandle);
    expect(() => t.importOwned(owned)).toThrow(InvalidHandle);
    expect(h.office.discardOwned(owned)).toBe(false);
    const owned2 = t.toOwned(cap);
    expect(h.office.discardOwned(owned2)).toBe(true);
    expect(h.office.discardOwned(owned2)).toBe(false);
    expect(() => t2.importOwned(owned2)).toThrow(InvalidHandle);
    expect(t2.send(imported, bytes(5))).toBe(true);
    expect(expectMessage(mb.tryReceive()).data).toEqual(bytes(5));
    t.close();
    t2.close();
    h.expectNoLeaks();
  });

  test('import in the wrong post office is refused and the token stays usable', () => {
    const h = harness();
    const other = smallOffice();
    const tOther = other.createTable();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const owned = t.toOwned(mb.export(Perm.SEND));
    const before = counts(other);
    expect(() => tOther.importOwned(owned)).toThrow(PostOfficeMismatch);
    expect(() => other.discardOwned(owned)).toThrow(PostOfficeMismatch);
    expect(counts(other)).toEqual(before);
    expect(h.office.stats().owned).toBe(1);
    const h2 = t.importOwned(owned);
    expect(t.permissions(h2)).toBe(Perm.SEND);
    tOther.close();
    other.detach();
    t.close();
    h.expectNoLeaks();
  });

  test('garbage owned tokens are refused without touching anything', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const cap = mb.export(Perm.SEND | Perm.MONITOR);
    const real = t.toOwned(cap);
    // A monitor id and a link id are ids of the same encoding: not tokens.
    const watcher = t.createGroup().createMailbox();
    const monitorId = t.monitor(cap, watcher);
    const before = counts(h.office);
    const bad: unknown[] = [
      null,
      undefined,
      42,
      {},
      { office: real.office },
      { office: real.office, token: Number.NaN },
      { office: real.office, token: -1 },
      { office: real.office, token: 0.5 },
      { office: real.office, token: real.token + 1 },
      { office: real.office, token: real.token + 4194304 },
      { office: real.office, token: monitorId },
    ];
    for (const b of bad) {
      expect(() => t.importOwned(b as never)).toThrow(PostOfficeError);
      expect(h.office.discardOwned(b as never)).toBe(false);
    }
    expect(counts(h.office)).toEqual(before);
    expect(t.demonitor(monitorId)).toBe(true);
    expect(h.office.discardOwned(real)).toBe(true);
    t.close();
    h.expectNoLeaks();
  });

  test('an owned capability outlives the close of its table and of its route', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const mb = g.createMailbox();
    const owned = t.toOwned(mb.export(Perm.ALL));
    g.kill();
    t.close();
    const t2 = h.office.createTable();
    const cap = t2.importOwned(owned);
    expect(t2.send(cap, bytes(1))).toBe(true);
    const watcher = t2.createGroup().createMailbox();
    t2.monitor(cap, watcher);
    expect(expectDown(watcher.tryReceive()).reason).toBe('killed');
    const linked = t2.createGroup();
    expect(t2.link(cap, linked)).toBe(0);
    expect(linked.dead).toBe(true);
    t2.close();
    h.expectNoLeaks();
  });

  test('import into a full table gives the token back', () => {
    const h = harness({ maxCapabilities: 8 });
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const cap = mb.export(Perm.SEND);
    const owned = t.toOwned(cap);
    const fill: number[] = [];
    for (;;) {
      try {
        fill.push(mb.export(Perm.SEND));
      } catch (error) {
        expect(error).toBeInstanceOf(CapacityExceeded);
        expect((error as CapacityExceeded).region).toBe('capabilities');
        break;
      }
    }
    expect(() => t.importOwned(owned)).toThrow(CapacityExceeded);
    t.release(fill.pop()!);
    const imported = t.importOwned(owned);
    expect(t.sameRoute(imported, cap)).toBe(true);
    t.close();
    h.expectNoLeaks();
  });
});

describe('capacity exhaustion', () => {
  function fillUntil<T>(make: () => T, region: string): T[] {
    const made: T[] = [];
    for (let i = 0; i < 100_000; i++) {
      try {
        made.push(make());
      } catch (error) {
        expect(error).toBeInstanceOf(CapacityExceeded);
        expect((error as CapacityExceeded).region).toBe(region);
        return made;
      }
    }
    throw new Error(`${region} never ran out`);
  }

  test('routes: CapacityExceeded(routes), everything else keeps working', () => {
    const h = harness({ maxRoutes: 8 });
    const t = h.office.createTable();
    const g = t.createGroup();
    const boxes = fillUntil(() => g.createMailbox({ capacity: 64 }), 'routes');
    expect(boxes.length).toBe(8);
    const before = counts(h.office);
    expect(() => g.createMailbox()).toThrow(CapacityExceeded);
    expect(counts(h.office)).toEqual(before);
    const to = boxes[0]!.export(Perm.ALL);
    expect(t.send(to, bytes(1), [to])).toBe(true);
    const m = expectMessage(boxes[0]!.tryReceive());
    t.monitor(m.caps[0]!, boxes[1]!);
    boxes[0]!.close();
    const d = expectDown(boxes[1]!.tryReceive());
    expect(d.reason).toBe('closed');
    expect(() => g.createMailbox({ capacity: 64 })).toThrow(CapacityExceeded); // still named by 3 handles
    for (const c of [to, m.caps[0]!, d.route]) t.release(c);
    expect(g.createMailbox({ capacity: 64 }).closed).toBe(false); // unnamed: the slot is free again
    t.close();
    h.expectNoLeaks();
  });

  test('heap: rings run out with CapacityExceeded(heap), the route slot is not lost', () => {
    const h = harness({ heapBytes: 8192, maxMessageBytes: 4096 });
    const t = h.office.createTable();
    const g = t.createGroup();
    const boxes = fillUntil(() => g.createMailbox({ capacity: 1024 }), 'heap');
    expect(boxes.length).toBeGreaterThan(0);
    const before = counts(h.office);
    expect(() => g.createMailbox({ capacity: 1024 })).toThrow(CapacityExceeded);
    expect(counts(h.office)).toEqual(before);
    const to = boxes[0]!.export(Perm.SEND);
    // Out-of-line bodies need heap too.
    expect(() => t.send(to, new Uint8Array(2000))).toThrow(CapacityExceeded);
    expect(counts(h.office)).toEqual({ ...before, capabilities: before.capabilities + 1 });
    expect(t.send(to, bytes(1, 2))).toBe(true);
    expect(expectMessage(boxes[0]!.tryReceive()).data).toEqual(bytes(1, 2));
    boxes[1]!.close();
    expect(g.createMailbox({ capacity: 1024 })).toBeDefined();
    t.close();
    h.expectNoLeaks();
  });

  test('groups: CapacityExceeded(groups)', () => {
    const h = harness({ maxGroups: 4 });
    const t = h.office.createTable();
    const groups = fillUntil(() => t.createGroup(), 'groups');
    expect(groups.length).toBe(4);
    const before = counts(h.office);
    expect(() => t.createGroup()).toThrow(CapacityExceeded);
    expect(counts(h.office)).toEqual(before);
    groups[0]!.release();
    expect(t.createGroup().dead).toBe(false);
    t.close();
    h.expectNoLeaks();
  });

  test('tables: CapacityExceeded(tables)', () => {
    const h = harness({ maxTables: 3 });
    const tables = fillUntil(() => h.office.createTable(), 'tables');
    expect(tables.length).toBe(3);
    const before = counts(h.office);
    expect(() => h.office.createTable()).toThrow(CapacityExceeded);
    expect(counts(h.office)).toEqual(before);
    tables[1]!.close();
    const again = h.office.createTable();
    const mb = again.createGroup().createMailbox();
    expect(again.send(mb.export(Perm.SEND), bytes(1))).toBe(true);
    for (const t of tables) t.close();
    again.close();
    h.expectNoLeaks();
  });

  test('capabilities: export, demote, and receive of caps and downs all wait for room', () => {
    const h = harness({ maxCapabilities: 16 });
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const watched = t.createGroup().createMailbox();
    const to = mb.export(Perm.ALL);
    const w = watched.export(Perm.MONITOR);
    t.monitor(w, mb);
    expect(t.send(to, bytes(7), [to, w])).toBe(true);
    watched.close();
    const fill = fillUntil(() => t.demote(to, Perm.SEND), 'capabilities');
    const before = counts(h.office);
    expect(() => mb.export()).toThrow(CapacityExceeded);
    expect(() => t.demote(to, 0)).toThrow(CapacityExceeded);
    expect(() => mb.tryReceive()).toThrow(CapacityExceeded); // the down needs an entry
    expect(counts(h.office)).toEqual(before);
    t.release(fill.pop()!);
    expect(expectDown(mb.tryReceive()).reason).toBe('closed');
    expect(() => mb.tryReceive()).toThrow(CapacityExceeded); // two caps, one entry free
    expect(counts(h.office)).toEqual({
      ...before,
      pendingDowns: before.pendingDowns - 1,
      nodes: before.nodes - 1,
    });
    t.release(fill.pop()!);
    t.release(fill.pop()!);
    const m = expectMessage(mb.tryReceive());
    expect(m.data).toEqual(bytes(7));
    expect(m.caps.length).toBe(2);
    t.close();
    h.expectNoLeaks();
  });

  test('nodes: monitor, link and toOwned run out; kill and downs still work', () => {
    const h = harness({ maxNodes: 8 });
    const t = h.office.createTable();
    const a = t.createGroup();
    const b = t.createGroup();
    const watcher = t.createGroup().createMailbox();
    const mbA = a.createMailbox();
    const mbB = b.createMailbox();
    const capA = mbA.export(Perm.ALL);
    const capB = mbB.export(Perm.ALL);
    expect(t.link(capB, a)).not.toBe(0); // 2 nodes
    const monitors = fillUntil(() => t.monitor(capA, watcher), 'nodes');
    expect(monitors.length).toBe(6);
    const before = counts(h.office);
    expect(() => t.monitor(capB, watcher)).toThrow(CapacityExceeded);
    expect(() => t.toOwned(capB)).toThrow(CapacityExceeded);
    const c = t.createGroup();
    expect(() => t.link(capB, c)).toThrow(CapacityExceeded);
    expect(counts(h.office)).toEqual({
      ...before,
      groups: before.groups + 1,
      liveGroups: before.liveGroups + 1,
    });
    t.kill(capB);
    expect(a.dead).toBe(true);
    for (let i = 0; i < monitors.length; i++) expect(expectDown(watcher.tryReceive()).reason).toBe('killed');
    expect(watcher.tryReceive()).toBeNull();
    t.close();
    h.expectNoLeaks();
  });

  test('threads: attaching past maxThreads fails and the office keeps working', () => {
    const h = harness({ maxThreads: 2 });
    const second = PostOffice.attach(h.office.buffer);
    let error: unknown = null;
    try {
      PostOffice.attach(h.office.buffer);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(Error);
    second.detach();
    const third = PostOffice.attach(h.office.buffer);
    third.detach();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    expect(t.send(mb.export(Perm.SEND), bytes(1))).toBe(true);
    t.close();
    h.expectNoLeaks();
  });
});

describe('mailbox options and misc bad input', () => {
  test('bad mailbox options throw and leave nothing allocated', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const before = counts(h.office);
    for (const options of [
      { capacity: 100 },
      { capacity: 0 },
      { capacity: -64 },
      { capacity: Number.NaN },
      { capacity: 1024, maxRecordLength: -1 },
      { capacity: 1024, maxRecordLength: 0.5 },
      { capacity: 1024, maxRecordLength: 1024 },
    ]) {
      expect(() => g.createMailbox(options)).toThrow();
      expect(counts(h.office)).toEqual(before);
    }
    expect(g.dead).toBe(false);
    t.close();
    h.expectNoLeaks();
  });

  test('a closed table and its objects refuse everything with typed errors', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const mb = g.createMailbox();
    const cap = mb.export(Perm.ALL);
    t.close();
    t.close();
    expect(() => t.createGroup()).toThrow(InvalidHandle);
    expect(() => t.send(cap, bytes(1))).toThrow(InvalidHandle);
    expect(() => t.toOwned(cap)).toThrow(InvalidHandle);
    expect(() => t.importOwned({ office: 1, token: 1, perms: 0 })).toThrow(InvalidHandle);
    expect(() => g.createMailbox()).toThrow(InvalidHandle);
    expect(() => mb.export()).toThrow(InvalidHandle);
    expect(mb.tryReceive()).toEqual({ kind: 'end', reason: 'closed', code: 0, detail: null });
    expect(() => t.demonitor(1)).toThrow(InvalidHandle);
    expect(() => t.unlink(1)).toThrow(InvalidHandle);
    h.expectNoLeaks();
  });

  test('MessageTooLarge at exactly one past the maximum; exactly the maximum goes through', () => {
    const h = harness({ maxMessageBytes: 4096 });
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const to = mb.export(Perm.SEND);
    const before = counts(h.office);
    expect(() => t.send(to, new Uint8Array(4097))).toThrow(MessageTooLarge);
    expect(() => t.send(to, new Uint8Array(4097), [to])).toThrow(MessageTooLarge);
    expect(counts(h.office)).toEqual(before);
    expect(t.send(to, new Uint8Array(4096).fill(3), [to])).toBe(true);
    const m = expectMessage(mb.tryReceive());
    expect(m.data.length).toBe(4096);
    expect(m.data.every((x) => x === 3)).toBe(true);
    t.close();
    h.expectNoLeaks();
  });

  test('too many caps for the receiving ring: MessageTooLarge, nothing sent', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox({ capacity: 128 });
    const to = mb.export(Perm.SEND);
    const caps = Array.from({ length: 20 }, () => to);
    const before = counts(h.office);
    expect(() => t.send(to, bytes(1), caps)).toThrow(MessageTooLarge);
    expect(() => t.send(to, new Uint8Array(1000), caps)).toThrow(MessageTooLarge);
    expect(counts(h.office)).toEqual(before);
    expect(mb.tryReceive()).toBeNull();
    t.close();
    h.expectNoLeaks();
  });

  test('empty messages are delivered as messages (not swallowed like nudges)', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const to = mb.export(Perm.SEND);
    expect(t.send(to, new Uint8Array(0))).toBe(true);
    expect(t.send(to, new Uint8Array(0), [to])).toBe(true);
    const m1 = expectMessage(mb.tryReceive());
    expect(m1.data.length).toBe(0);
    const m2 = expectMessage(mb.tryReceive());
    expect(m2.data.length).toBe(0);
    expect(m2.caps.length).toBe(1);
    expect(mb.tryReceive()).toBeNull();
    t.close();
    h.expectNoLeaks();
  });
});

describe('office options', () => {
  test('a small heap with the default message maximum is accepted (the default fits the heap)', () => {
    let office: PostOffice | null = null;
    expect(() => {
      office = PostOffice.create({ heapBytes: 1 << 16 });
    }).not.toThrow();
    (office as PostOffice | null)?.detach();
  });
});

describe('attachments', () => {
  test('a second attachment in the same thread: cross-attachment caps, close in any order', () => {
    const h = harness();
    const b = PostOffice.attach(h.office.buffer);
    const tA = h.office.createTable();
    const tB = b.createTable();
    const mbA = tA.createGroup().createMailbox();
    const gB = tB.createGroup();
    const mbB = gB.createMailbox();
    const toB = tA.importOwned(tB.toOwned(mbB.export(Perm.SEND | Perm.MONITOR)));
    expect(tA.send(toB, bytes(1))).toBe(true);
    tA.monitor(toB, mbA);
    expect(expectMessage(mbB.tryReceive()).data).toEqual(bytes(1));
    gB.kill();
    expect(expectDown(mbA.tryReceive()).reason).toBe('killed');
    tB.close();
    b.detach();
    tA.close();
    h.expectNoLeaks();
  });

  test('a table used after its attachment detached fails with a typed error and leaks nothing', () => {
    const h = harness();
    const tA = h.office.createTable();
    const mbA = tA.createGroup().createMailbox();
    const b = PostOffice.attach(h.office.buffer);
    const tB = b.createTable();
    const mbB = tB.createGroup().createMailbox();
    const toA = tB.importOwned(tA.toOwned(mbA.export(Perm.SEND)));
    tA.monitor(tA.importOwned(tB.toOwned(mbB.export(Perm.MONITOR))), mbA);
    b.detach();
    expect(() => tB.send(toA, bytes(1))).toThrow(PostOfficeError);
    expect(mbA.tryReceive()).toBeNull();
    tB.close(); // closes mbB: the monitor in tA must fire
    expect(expectDown(mbA.tryReceive()).reason).toBe('closed');
    tA.close();
    h.expectNoLeaks();
  });
});

describe('churn: every region is reclaimed by its own release path', () => {
  test('monitor/demonitor, link/unlink, toOwned/import/discard, export/release in a tiny office', () => {
    const h = harness({ maxNodes: 4, maxCapabilities: 3 });
    const t = h.office.createTable();
    const a = t.createGroup();
    const b = t.createGroup();
    const watcher = a.createMailbox();
    const mbB = b.createMailbox();
    const cap = mbB.export(Perm.ALL);
    for (let i = 0; i < 3000; i++) {
      const m = t.monitor(cap, watcher);
      expect(t.demonitor(m)).toBe(true);
      const l = t.link(cap, a);
      expect(l).not.toBe(0);
      expect(t.unlink(l)).toBe(true);
      const owned = t.toOwned(cap);
      if (i % 2 === 0) t.release(t.importOwned(owned));
      else expect(h.office.discardOwned(owned)).toBe(true);
      t.release(t.demote(cap, Perm.SEND));
    }
    expect(a.dead).toBe(false);
    expect(b.dead).toBe(false);
    t.close();
    h.expectNoLeaks();
  });

  test('routes, groups and rings: create/kill/close cycles in a tiny office', () => {
    const h = harness({ maxRoutes: 3, maxGroups: 3, heapBytes: 4096, maxMessageBytes: 2048 });
    const t = h.office.createTable();
    for (let i = 0; i < 1000; i++) {
      const g = t.createGroup();
      const mb = g.createMailbox({ capacity: 256 });
      const to = mb.export(Perm.SEND | Perm.KILL);
      expect(t.send(to, bytes(i & 255), [to])).toBe(true);
      expect(t.send(to, new Uint8Array(600))).toBe(true);
      if (i % 3 === 0) t.kill(to);
      else if (i % 3 === 1) mb.close();
      else {
        const m = expectMessage(mb.tryReceive());
        for (const c of m.caps) t.release(c);
        g.kill();
      }
      expect(mb.tryReceive()?.kind).toBe('end');
      t.release(to);
      g.release();
    }
    t.close();
    h.expectNoLeaks();
  });

  test('tables: create/close cycles with live caps in a tiny office', () => {
    const h = harness({ maxTables: 2 });
    const keep = h.office.createTable();
    const mb = keep.createGroup().createMailbox();
    const cap = mb.export(Perm.SEND);
    for (let i = 0; i < 500; i++) {
      const t = h.office.createTable();
      const c = t.importOwned(keep.toOwned(cap));
      expect(t.send(c, bytes(i & 255), [c])).toBe(true);
      t.close();
      const m = expectMessage(mb.tryReceive());
      expect(m.data).toEqual(bytes(i & 255));
      keep.release(m.caps[0]!);
    }
    keep.close();
    h.expectNoLeaks();
  });
});

describe('slot reuse', () => {
  test('a freed group slot reused by a new group inherits none of the old links', () => {
    const h = harness({ maxGroups: 3 });
    const t = h.office.createTable();
    const b = t.createGroup();
    const mbB = b.createMailbox();
    const capB = mbB.export(Perm.LINK | Perm.KILL);
    const a = t.createGroup();
    const mbA = a.createMailbox();
    expect(t.link(capB, a)).not.toBe(0);
    // a is let go alive: its only route closes, its object is released.
    mbA.close();
    a.release();
    expect(h.office.stats().links).toBe(0);
    // The only free slots are a's old one and one more; take both.
    const c = t.createGroup();
    const d = t.createGroup();
    const mbC = c.createMailbox();
    const mbD = d.createMailbox();
    t.kill(capB);
    expect(c.dead).toBe(false);
    expect(d.dead).toBe(false);
    expect(mbC.tryReceive()).toBeNull();
    expect(mbD.tryReceive()).toBeNull();
    t.close();
    h.expectNoLeaks();
  });

  test('a route slot reused after its handles are gone is not reachable through old monitor ids', () => {
    const h = harness({ maxRoutes: 2 });
    const t = h.office.createTable();
    const watcher = t.createGroup().createMailbox();
    const g = t.createGroup();
    const mb = g.createMailbox();
    const cap = mb.export(Perm.MONITOR);
    const id = t.monitor(cap, watcher);
    expect(t.demonitor(id)).toBe(true);
    t.release(cap);
    mb.close();
    const again = g.createMailbox(); // reuses the slot
    const cap2 = again.export(Perm.MONITOR);
    const id2 = t.monitor(cap2, watcher);
    expect(id2).not.toBe(id);
    expect(t.demonitor(id)).toBe(false);
    again.close();
    const d = expectDown(watcher.tryReceive());
    expect(d.monitor).toBe(id2);
    expect(t.sameRoute(d.route, cap2)).toBe(true);
    t.close();
    h.expectNoLeaks();
  });
});

describe('more link and monitor edges', () => {
  test('linking through a closed route kills the caller, even when the route was in its own group (DESIGN s.1)', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const closed = g.createMailbox();
    const alive = g.createMailbox();
    const self = closed.export(Perm.LINK);
    closed.close();
    // A closed route tells its holder nothing more, not even whose it was: the partner is gone.
    expect(t.link(self, g)).toBe(0);
    expect(g.dead).toBe(true);
    expect(alive.tryReceive()).toMatchObject({ kind: 'end', reason: 'killed', code: 0, detail: null });
    t.close();
    h.expectNoLeaks();
  });

  test('linking a group to itself through one of its own open routes does nothing', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const mailbox = g.createMailbox();
    expect(t.link(mailbox.export(Perm.LINK), g)).toBe(0);
    expect(g.dead).toBe(false);
    expect(mailbox.tryReceive()).toBeNull();
    t.close();
    h.expectNoLeaks();
  });

  test('demonitor after the watcher closed returns false and changes nothing', () => {
    const h = harness();
    const t = h.office.createTable();
    const watcher = t.createGroup().createMailbox();
    const watched = t.createGroup().createMailbox();
    const id = t.monitor(watched.export(Perm.MONITOR), watcher);
    watcher.close();
    expect(h.office.stats().monitors).toBe(0);
    expect(t.demonitor(id)).toBe(false);
    watched.close();
    expect(h.office.stats().pendingDowns).toBe(0);
    t.close();
    h.expectNoLeaks();
  });

  test('a monitor on a route of a group killed through a link says killed', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const b = t.createGroup();
    const watcher = t.createGroup().createMailbox();
    const mbB = b.createMailbox();
    t.link(mbB.export(Perm.LINK), a);
    const id = t.monitor(mbB.export(Perm.MONITOR), watcher);
    a.kill();
    const d = expectDown(watcher.tryReceive());
    expect(d.monitor).toBe(id);
    expect(d.reason).toBe('killed');
    t.close();
    h.expectNoLeaks();
  });

  test('a watcher inside the kill closure gets no down from it, only its end', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const b = t.createGroup();
    const watcherInA = a.createMailbox();
    const mbB = b.createMailbox();
    t.link(mbB.export(Perm.LINK), a);
    t.monitor(mbB.export(Perm.MONITOR), watcherInA);
    b.kill();
    expect(watcherInA.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    t.close();
    h.expectNoLeaks();
  });

  test('downs queued before a kill of the watcher are delivered before its end, in order', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const watcher = g.createMailbox();
    const watched = Array.from({ length: 3 }, () => t.createGroup().createMailbox());
    const ids = watched.map((w) => t.monitor(w.export(Perm.MONITOR), watcher));
    watched[2]!.close();
    watched[0]!.close();
    g.kill();
    watched[1]!.close(); // after the watcher closed: dropped
    expect(expectDown(watcher.tryReceive()).monitor).toBe(ids[2]);
    expect(expectDown(watcher.tryReceive()).monitor).toBe(ids[0]);
    expect(watcher.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    expect(watcher.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    t.close();
    h.expectNoLeaks();
  });
});

describe('inline and out-of-line boundaries', () => {
  test('messages around the record limit, with and without caps, arrive intact', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox({ capacity: 1024, maxRecordLength: 100 });
    const to = mb.export(Perm.SEND);
    const limit = mb.maxRecordLength;
    expect(limit).toBe(100);
    const cases: [number, number][] = [];
    for (const n of [0, 1, 2, 7]) {
      const inline = limit - 4 - 12 * n;
      for (const len of [0, inline - 1, inline, inline + 1, limit, limit + 1, 3 * limit]) {
        if (len >= 0) cases.push([len, n]);
      }
    }
    for (const [len, n] of cases) {
      const data = Uint8Array.from({ length: len }, (_, i) => (i * 13 + len + n) & 255);
      const caps = Array.from({ length: n }, () => to);
      expect(t.send(to, data, caps)).toBe(true);
      const inPlace = (len + n) % 2 === 0;
      if (inPlace) {
        const v = mb.tryReceiveInPlace();
        expect(v?.kind).toBe('message');
        expect(v!.copy()).toEqual(data);
        expect(v!.caps.length).toBe(n);
        for (const c of [...v!.caps]) {
          expect(t.sameRoute(c, to)).toBe(true);
          t.release(c);
        }
      } else {
        const m = expectMessage(mb.tryReceive());
        expect(m.data).toEqual(data);
        expect(m.caps.length).toBe(n);
        for (const c of m.caps) t.release(c);
      }
    }
    expect(mb.tryReceive()).toBeNull();
    t.close();
    h.expectNoLeaks();
  });

  test('forwarding an in-place view to the same mailbox and to another copies it correctly', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const other = t.createGroup().createMailbox();
    const to = mb.export(Perm.SEND);
    const toOther = other.export(Perm.SEND);
    const big = Uint8Array.from({ length: 3000 }, (_, i) => i & 255);
    expect(t.send(to, big)).toBe(true);
    expect(t.send(to, bytes(1, 2, 3))).toBe(true);
    let v = mb.tryReceiveInPlace()!;
    expect(t.send(to, v.data)).toBe(true);
    expect(t.send(toOther, v.data)).toBe(true);
    v = mb.tryReceiveInPlace()!;
    expect(v.copy()).toEqual(bytes(1, 2, 3));
    expect(t.send(to, v.data)).toBe(true);
    expect(expectMessage(mb.tryReceive()).data).toEqual(big);
    expect(expectMessage(mb.tryReceive()).data).toEqual(bytes(1, 2, 3));
    expect(expectMessage(other.tryReceive()).data).toEqual(big);
    t.close();
    h.expectNoLeaks();
  });
});

describe('attach and thread death', () => {
  test('attach refuses what is not a post office with PostOfficeMismatch', () => {
    const h = harness();
    for (const b of [
      new SharedArrayBuffer(16),
      new SharedArrayBuffer(4096),
      new ArrayBuffer(4096) as unknown as SharedArrayBuffer,
      null as unknown as SharedArrayBuffer,
    ]) {
      expect(() => PostOffice.attach(b)).toThrow(PostOfficeMismatch);
    }
    h.expectNoLeaks();
  });

  test('markThreadDead releases the caps of the dead thread, and only once', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const other = PostOffice.attach(h.office.buffer);
    const ot = other.createTable();
    const cap = ot.importOwned(t.toOwned(mb.export(Perm.ALL)));
    ot.demote(cap, Perm.SEND);
    expect(ot.send(cap, bytes(1), [cap])).toBe(true);
    mb.close(); // the queued cap is reclaimed with the ring
    const { slot, generation } = other.thread;
    expect(() => h.office.markThreadDead(h.office.thread.slot, h.office.thread.generation)).toThrow(
      RangeError,
    );
    expect(() => h.office.markThreadDead(-1, 0)).toThrow(RangeError);
    expect(() => h.office.markThreadDead(1e9, 0)).toThrow(RangeError);
    expect(() => h.office.markThreadDead(Number.NaN, 0)).toThrow(RangeError);
    expect(h.office.markThreadDead(slot, generation)).toBe(true);
    expect(h.office.markThreadDead(slot, generation)).toBe(false);
    t.close();
    h.expectNoLeaks();
  });
});

describe('ids past 2^32 (generations above 1023)', () => {
  test('a handle, a monitor id and an owned token stay dead when the same slot comes back 2^32 higher', () => {
    const h = harness({ maxCapabilities: 2, maxNodes: 2 });
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const keep = mb.export(Perm.ALL);
    const first = mb.export(Perm.SEND);
    t.release(first);
    const firstMonitor = t.monitor(keep, mb);
    expect(t.demonitor(firstMonitor)).toBe(true);
    const firstOwned = t.toOwned(keep);
    expect(h.office.discardOwned(firstOwned)).toBe(true);
    let last = 0;
    let lastMonitor = 0;
    for (let i = 0; i < 1100; i++) {
      last = mb.export(Perm.SEND);
      if (last === first + 2 ** 32 || last % 2 ** 32 === first % 2 ** 32) break;
      t.release(last);
    }
    expect(last % 2 ** 32).toBe(first % 2 ** 32); // the same low 32 bits: only the high bits differ
    expect(last).not.toBe(first);
    expect(() => t.send(first, bytes(1))).toThrow(InvalidHandle);
    expect(() => t.permissions(first)).toThrow(InvalidHandle);
    expect(t.send(last, bytes(2))).toBe(true);
    expect(expectMessage(mb.tryReceive()).data).toEqual(bytes(2));
    t.release(last);
    for (let i = 0; i < 1100; i++) {
      lastMonitor = t.monitor(keep, mb);
      if (lastMonitor % 2 ** 32 === firstMonitor % 2 ** 32 && lastMonitor !== firstMonitor) break;
      expect(t.demonitor(lastMonitor)).toBe(true);
    }
    expect(lastMonitor % 2 ** 32).toBe(firstMonitor % 2 ** 32);
    expect(t.demonitor(firstMonitor)).toBe(false);
    expect(() => t.importOwned(firstOwned)).toThrow(InvalidHandle);
    expect(h.office.discardOwned(firstOwned)).toBe(false);
    expect(t.demonitor(lastMonitor)).toBe(true);
    t.close();
    h.expectNoLeaks();
  });
});

describe('a receive awaiting while the owner lets the mailbox go', () => {
  /** Resolves to 'hung' if `p` has not settled within `ms` (a liveness bound, far above the expected ~0 ms). */
  const within = <T>(p: Promise<T>, ms: number) =>
    Promise.race([p, new Promise<'hung'>((r) => setTimeout(() => r('hung'), ms))]);

  test('close during an awaited receive: it resolves with end (ring not reused)', async () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const p = mb.receive({ timeoutMs: 4000 });
    await new Promise((r) => setTimeout(r, 10));
    mb.close();
    expect(await within(p, 1500)).toEqual({ kind: 'end', reason: 'closed', code: 0, detail: null });
    await p;
    t.close();
    h.expectNoLeaks();
  });

  test('close during an awaited receive, ring pages reused at once: it still resolves with end', async () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const mb = g.createMailbox();
    const p = mb.receive({ timeoutMs: 4000 });
    await new Promise((r) => setTimeout(r, 10));
    mb.close();
    const next = g.createMailbox(); // takes the freed ring's pages
    expect(await within(p, 1500)).toEqual({ kind: 'end', reason: 'closed', code: 0, detail: null });
    await p;
    next.close();
    t.close();
    h.expectNoLeaks();
  });

  test('table close during an awaited in-place receive, pages reused by another table: it resolves with end', async () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const p = mb.receiveInPlace({ timeoutMs: 4000 }).then((v) => v && { kind: v.kind, reason: v.reason });
    await new Promise((r) => setTimeout(r, 10));
    t.close();
    const t2 = h.office.createTable();
    const other = t2.createGroup().createMailbox();
    const to = other.export(Perm.SEND);
    expect(await within(p, 1500)).toEqual({ kind: 'end', reason: 'closed' });
    await p;
    // The new mailbox on the reused pages is unharmed.
    expect(t2.send(to, bytes(5))).toBe(true);
    expect(expectMessage(await other.receive({ timeoutMs: 1000 })).data).toEqual(bytes(5));
    t2.close();
    h.expectNoLeaks();
  });
});
