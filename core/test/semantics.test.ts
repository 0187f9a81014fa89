/**
 * DESIGN.md section 1, beyond Flue's scenarios: links, monitors, handles,
 * tables and closed-route behaviour.
 */

import { describe, expect, test } from 'vitest';
import { Ring } from '../../ring/index.ts';
import {
  CapacityExceeded,
  InvalidHandle,
  Perm,
  PermissionDenied,
  PostOffice,
  PostOfficeMismatch,
  TableMismatch,
} from '../index.ts';
import { bytes, expectMessage, harness } from './harness.ts';

describe('links', () => {
  test('a link survives the close of the route it was made through', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const b = t.createGroup();
    const through = b.createMailbox();
    const other = b.createMailbox();
    t.link(through.export(Perm.LINK), a);
    through.close();
    expect(h.office.stats().links).toBe(1);
    const k = other.export(Perm.KILL);
    t.kill(k);
    expect(a.dead).toBe(true);
    t.close();
    h.expectNoLeaks();
  });

  test('linking to a dead group kills the caller at once', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const mbA = a.createMailbox();
    const b = t.createGroup();
    const mbB = b.createMailbox();
    const cap = mbB.export(Perm.LINK);
    b.kill();
    expect(t.link(cap, a)).toBe(0);
    expect(a.dead).toBe(true);
    expect(mbA.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    t.close();
    h.expectNoLeaks();
  });

  test('linking through a closed route kills the caller (the partner is gone)', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const b = t.createGroup();
    const mbB = b.createMailbox();
    const cap = mbB.export(Perm.LINK);
    mbB.close();
    expect(t.link(cap, a)).toBe(0);
    expect(a.dead).toBe(true);
    expect(b.dead).toBe(false);
    t.close();
    h.expectNoLeaks();
  });

  test('linking twice is idempotent', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const b = t.createGroup();
    const cap = b.createMailbox().export(Perm.LINK);
    const first = t.link(cap, a);
    expect(t.link(cap, a)).toBe(first);
    expect(h.office.stats().links).toBe(1);
    // Linking from the other side finds the same link.
    const capA = a.createMailbox().export(Perm.LINK);
    expect(t.link(capA, b)).not.toBe(0);
    expect(h.office.stats().links).toBe(1);
    expect(t.unlink(first)).toBe(true);
    expect(h.office.stats().links).toBe(0);
    t.close();
    h.expectNoLeaks();
  });

  test('LINK is its own bit: SEND|MONITOR cannot link', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const b = t.createGroup();
    const cap = b.createMailbox().export(Perm.SEND | Perm.MONITOR);
    expect(() => t.link(cap, a)).toThrow(PermissionDenied);
    expect(h.office.stats().links).toBe(0);
    expect(Perm.LINK & (Perm.SEND | Perm.MONITOR)).toBe(0);
    t.close();
    h.expectNoLeaks();
  });

  test('kill propagation is synchronous across a chain of 10,000 groups', () => {
    const n = 10_000;
    const h = harness({
      maxRoutes: n + 8,
      maxGroups: n + 8,
      maxCapabilities: n + 64,
      maxNodes: 2 * n + 64,
      mailboxCapacity: 64,
      heapBytes: (n + 8) * Ring.bytesFor(64),
    });
    const t = h.office.createTable();
    const groups = Array.from({ length: n }, () => t.createGroup());
    const boxes = groups.map((g) => g.createMailbox());
    for (let i = 0; i + 1 < n; i++) {
      const cap = boxes[i + 1]!.export(Perm.LINK);
      t.link(cap, groups[i]!);
      t.release(cap);
    }
    expect(h.office.stats().links).toBe(n - 1);
    groups[0]!.kill();
    expect(h.office.stats().liveGroups).toBe(0);
    expect(h.office.stats().openRoutes).toBe(0);
    expect(groups.every((g) => g.dead)).toBe(true);
    expect(h.office.stats().links).toBe(0);
    t.close();
    h.expectNoLeaks();
  });

  test('a released group with no routes is freed, its links dropped without killing', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const b = t.createGroup();
    const mbB = b.createMailbox();
    t.link(mbB.export(Perm.LINK), a);
    a.release();
    expect(h.office.stats().links).toBe(0);
    expect(() => a.kill()).toThrow(InvalidHandle);
    expect(b.dead).toBe(false);
    t.close();
    h.expectNoLeaks();
  });
});

describe('monitors', () => {
  test('several monitors each get their own down', () => {
    const h = harness();
    const t = h.office.createTable();
    const watched = t.createGroup().createMailbox();
    const cap = watched.export(Perm.MONITOR);
    const w1 = t.createGroup().createMailbox();
    const w2 = t.createGroup().createMailbox();
    const ids = [t.monitor(cap, w1), t.monitor(cap, w1), t.monitor(cap, w2)];
    expect(new Set(ids).size).toBe(3);
    expect(h.office.stats().monitors).toBe(3);
    watched.close();
    const got1 = [w1.tryReceive(), w1.tryReceive()].map((s) => (s?.kind === 'down' ? s.monitor : -1));
    expect(got1.sort()).toEqual([ids[0], ids[1]].sort());
    expect(w1.tryReceive()).toBeNull();
    expect(w2.tryReceive()).toMatchObject({ kind: 'down', monitor: ids[2], reason: 'closed' });
    t.close();
    h.expectNoLeaks();
  });

  test('down is delivered even when the monitoring mailbox ring is full', () => {
    const h = harness();
    const t = h.office.createTable();
    const watched = t.createGroup().createMailbox();
    const watcher = t.createGroup().createMailbox({ capacity: 256 });
    const toWatcher = watcher.export(Perm.SEND);
    let sent = 0;
    while (t.send(toWatcher, bytes(sent & 255))) sent++;
    expect(sent).toBeGreaterThan(0);
    const id = t.monitor(watched.export(Perm.MONITOR), watcher);
    watched.close();
    // Downs come first, ahead of the queued messages; none of those is lost either.
    expect(watcher.tryReceive()).toMatchObject({ kind: 'down', monitor: id, reason: 'closed' });
    for (let i = 0; i < sent; i++) expect(expectMessage(watcher.tryReceive()).data).toEqual(bytes(i & 255));
    expect(watcher.tryReceive()).toBeNull();
    t.close();
    h.expectNoLeaks();
  });

  test('demonitor: no down after it; a second demonitor returns false', () => {
    const h = harness();
    const t = h.office.createTable();
    const watched = t.createGroup().createMailbox();
    const watcher = t.createGroup().createMailbox();
    const id = t.monitor(watched.export(Perm.MONITOR), watcher);
    expect(t.demonitor(id)).toBe(true);
    expect(t.demonitor(id)).toBe(false);
    expect(h.office.stats().monitors).toBe(0);
    watched.close();
    expect(watcher.tryReceive()).toBeNull();
    t.close();
    h.expectNoLeaks();
  });

  test('demonitor after the monitor fired returns false; the down still arrives', () => {
    const h = harness();
    const t = h.office.createTable();
    const watched = t.createGroup().createMailbox();
    const watcher = t.createGroup().createMailbox();
    const id = t.monitor(watched.export(Perm.MONITOR), watcher);
    watched.close();
    expect(t.demonitor(id)).toBe(false);
    expect(watcher.tryReceive()).toMatchObject({ kind: 'down', monitor: id });
    t.close();
    h.expectNoLeaks();
  });

  test('a monitor id of another table cannot be used to demonitor', () => {
    const h = harness();
    const t = h.office.createTable();
    const u = h.office.createTable();
    const watched = t.createGroup().createMailbox();
    const watcher = t.createGroup().createMailbox();
    const id = t.monitor(watched.export(Perm.MONITOR), watcher);
    expect(u.demonitor(id)).toBe(false);
    expect(h.office.stats().monitors).toBe(1);
    watched.close();
    expect(watcher.tryReceive()?.kind).toBe('down');
    t.close();
    u.close();
    h.expectNoLeaks();
  });

  test('pending downs are delivered before the end of a killed watcher', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const watcher = g.createMailbox();
    const watched = t.createGroup().createMailbox();
    const id = t.monitor(watched.export(Perm.MONITOR), watcher);
    watched.close();
    g.kill();
    expect(watcher.tryReceive()).toMatchObject({ kind: 'down', monitor: id });
    expect(watcher.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    t.close();
    h.expectNoLeaks();
  });

  test('a closing watcher takes its monitors with it (no pile-up on the watched route)', () => {
    const h = harness();
    const t = h.office.createTable();
    const watched = t.createGroup().createMailbox();
    const cap = watched.export(Perm.MONITOR);
    for (let i = 0; i < 20; i++) {
      const watcher = t.createGroup().createMailbox();
      t.monitor(cap, watcher);
      t.monitor(cap, watcher);
      watcher.close();
    }
    expect(h.office.stats().monitors).toBe(0);
    expect(h.office.stats().nodes).toBe(0);
    t.close();
    h.expectNoLeaks();
  });
});

describe('closed routes', () => {
  test('send succeeds and drops; kill is a no-op; monitor yields down at once', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const mb = g.createMailbox();
    const sibling = g.createMailbox();
    const cap = mb.export(Perm.ALL);
    mb.close();
    expect(t.send(cap, bytes(1), [cap])).toBe(true);
    t.kill(cap);
    expect(g.dead).toBe(false);
    expect(sibling.closed).toBe(false);
    const watcher = t.createGroup().createMailbox();
    t.monitor(cap, watcher);
    expect(watcher.tryReceive()).toMatchObject({ kind: 'down', reason: 'closed' });
    t.close();
    h.expectNoLeaks();
  });

  test('a route created in a dead group is born closed', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    g.kill();
    const mb = g.createMailbox();
    expect(mb.closed).toBe(true);
    const cap = mb.export(Perm.SEND);
    expect(t.send(cap, bytes(1))).toBe(true);
    expect(mb.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    expect(h.office.stats().openRoutes).toBe(0);
    t.close();
    h.expectNoLeaks();
  });
});

describe('handles and tables', () => {
  test('a handle from another table is refused', () => {
    const h = harness();
    const t = h.office.createTable();
    const u = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const cap = mb.export(Perm.ALL);
    expect(() => u.send(cap, bytes(1))).toThrow(TableMismatch);
    expect(() => u.kill(cap)).toThrow(TableMismatch);
    expect(() => u.release(cap)).toThrow(TableMismatch);
    expect(() => u.link(cap, u.createGroup())).toThrow(TableMismatch);
    expect(() => u.monitor(cap, u.createGroup().createMailbox())).toThrow(TableMismatch);
    expect(() => t.monitor(cap, u.createGroup().createMailbox())).toThrow(TableMismatch);
    expect(() => t.link(cap, u.createGroup())).toThrow(TableMismatch);
    expect(mb.tryReceive()).toBeNull();
    t.close();
    u.close();
    h.expectNoLeaks();
  });

  test('garbage handles are InvalidHandle', () => {
    const h = harness();
    const t = h.office.createTable();
    for (const bad of [0, -1, 1.5, Number.NaN, 2 ** 60, 12345, Number.MAX_SAFE_INTEGER]) {
      expect(() => t.send(bad, bytes(1))).toThrow(InvalidHandle);
    }
    t.close();
    h.expectNoLeaks();
  });

  test('objects of another post office are refused', () => {
    const h = harness();
    const other = harness();
    const t = h.office.createTable();
    const u = other.office.createTable();
    const cap = t.createGroup().createMailbox().export(Perm.ALL);
    expect(() => t.link(cap, u.createGroup())).toThrow(PostOfficeMismatch);
    const owned = u.toOwned(u.createGroup().createMailbox().export(Perm.SEND));
    expect(() => t.importOwned(owned)).toThrow(PostOfficeMismatch);
    expect(u.importOwned(owned)).toBeGreaterThan(0);
    expect(() => PostOffice.attach(new SharedArrayBuffer(1024))).toThrow(PostOfficeMismatch);
    t.close();
    u.close();
    h.expectNoLeaks();
    other.expectNoLeaks();
  });

  test('owned capabilities are single-use and can be discarded', () => {
    const h = harness();
    const t = h.office.createTable();
    const u = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const cap = mb.export(Perm.SEND | Perm.MONITOR);
    const owned = t.toOwned(cap);
    expect(owned.perms).toBe(Perm.SEND | Perm.MONITOR);
    const inU = u.importOwned(structuredClone(owned));
    expect(() => u.importOwned(owned)).toThrow(InvalidHandle);
    expect(u.permissions(inU)).toBe(Perm.SEND | Perm.MONITOR);
    const spare = t.toOwned(cap);
    expect(h.office.stats().owned).toBe(1);
    expect(h.office.discardOwned(spare)).toBe(true);
    expect(h.office.discardOwned(spare)).toBe(false);
    t.close();
    u.close();
    h.expectNoLeaks();
  });

  test('capabilities keep their permissions through a message, several at once', () => {
    const h = harness();
    const t = h.office.createTable();
    const u = h.office.createTable();
    const inbox = u.createGroup().createMailbox();
    const toInbox = t.importOwned(u.toOwned(inbox.export(Perm.SEND)));
    const target = t.createGroup().createMailbox();
    const perms = [Perm.SEND, Perm.MONITOR, Perm.KILL, Perm.LINK, Perm.ALL, Perm.NONE];
    const caps = perms.map((p) => target.export(p));
    t.send(toInbox, bytes(9), caps);
    const msg = expectMessage(inbox.tryReceive());
    expect(msg.caps.map((c) => u.permissions(c))).toEqual(perms);
    for (let i = 1; i < msg.caps.length; i++) expect(u.sameRoute(msg.caps[0]!, msg.caps[i]!)).toBe(true);
    // The sender keeps its own.
    expect(caps.map((c) => t.permissions(c))).toEqual(perms);
    t.close();
    u.close();
    h.expectNoLeaks();
  });

  test('a closed table refuses everything', () => {
    const h = harness();
    const t = h.office.createTable();
    const cap = t.createGroup().createMailbox().export(Perm.ALL);
    t.close();
    expect(() => t.send(cap, bytes(1))).toThrow(InvalidHandle);
    expect(() => t.createGroup()).toThrow(InvalidHandle);
    h.expectNoLeaks();
  });

  test('running out of route slots is a capacity error that changes nothing', () => {
    const h = harness({ maxRoutes: 3 });
    const t = h.office.createTable();
    const g = t.createGroup();
    const boxes = [g.createMailbox(), g.createMailbox(), g.createMailbox()];
    const before = h.office.stats();
    expect(() => g.createMailbox()).toThrow(CapacityExceeded);
    try {
      g.createMailbox();
    } catch (error) {
      expect((error as CapacityExceeded).region).toBe('routes');
    }
    expect(h.office.stats()).toEqual(before);
    boxes[0]!.close();
    expect(g.createMailbox().closed).toBe(false);
    t.close();
    h.expectNoLeaks();
  });

  test('running out of capability entries on receive leaves the message queued', () => {
    const h = harness({ maxCapabilities: 4 });
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const self = mb.export(Perm.SEND);
    const extra = [mb.export(Perm.SEND), mb.export(Perm.SEND)];
    t.send(self, bytes(5), [self, ...extra]);
    // Three entries in use, three caps incoming, one free entry: refused, all or nothing.
    expect(() => mb.tryReceive()).toThrow(CapacityExceeded);
    expect(t.size).toBe(3);
    for (const x of extra) t.release(x);
    const msg = expectMessage(mb.tryReceive());
    expect(msg.data).toEqual(bytes(5));
    expect(msg.caps).toHaveLength(3);
    t.close();
    h.expectNoLeaks();
  });
});
