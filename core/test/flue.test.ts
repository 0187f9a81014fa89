/**
 * Counterparts of Flue's own test scenarios, one test each, against the
 * post office. Every test ends with the leak check.
 */

import { describe, expect, test } from 'vitest';
import { InvalidHandle, Perm, PermissionDenied } from '../index.ts';
import { bytes, decode, expectMessage, harness, text } from './harness.ts';

describe('Flue scenarios', () => {
  test('send: a message arrives with its bytes', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const to = mb.export(Perm.SEND);
    expect(t.send(to, text('hello'))).toBe(true);
    expect(decode(expectMessage(mb.tryReceive()).data)).toBe('hello');
    expect(mb.tryReceive()).toBeNull();
    t.close();
    h.expectNoLeaks();
  });

  test('send a capability to oneself: it arrives as a new handle to the same route', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const self = mb.export(Perm.SEND | Perm.MONITOR);
    expect(t.send(self, bytes(1), [self])).toBe(true);
    const { caps } = expectMessage(mb.tryReceive());
    expect(caps).toHaveLength(1);
    expect(caps[0]).not.toBe(self);
    expect(t.sameRoute(caps[0]!, self)).toBe(true);
    expect(t.permissions(caps[0]!)).toBe(Perm.SEND | Perm.MONITOR);
    // The received handle works: send through it.
    expect(t.send(caps[0]!, bytes(2))).toBe(true);
    expect(expectMessage(mb.tryReceive()).data).toEqual(bytes(2));
    t.close();
    h.expectNoLeaks();
  });

  test('try-receive: null while empty, then messages in order', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const to = mb.export(Perm.SEND);
    expect(mb.tryReceive()).toBeNull();
    for (let i = 0; i < 10; i++) t.send(to, bytes(i));
    for (let i = 0; i < 10; i++) expect(expectMessage(mb.tryReceive()).data).toEqual(bytes(i));
    expect(mb.tryReceive()).toBeNull();
    t.close();
    h.expectNoLeaks();
  });

  test('deny send: a handle without SEND cannot send, and nothing arrives', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const noSend = mb.export(Perm.ALL & ~Perm.SEND);
    expect(() => t.send(noSend, bytes(1))).toThrow(PermissionDenied);
    expect(mb.tryReceive()).toBeNull();
    t.close();
    h.expectNoLeaks();
  });

  test('deny kill: a handle without KILL cannot kill', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const mb = g.createMailbox();
    const noKill = mb.export(Perm.ALL & ~Perm.KILL);
    expect(() => t.kill(noKill)).toThrow(PermissionDenied);
    expect(g.dead).toBe(false);
    expect(mb.closed).toBe(false);
    t.close();
    h.expectNoLeaks();
  });

  test('deny monitor: a handle without MONITOR cannot monitor', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const watcher = t.createGroup().createMailbox();
    const noMonitor = mb.export(Perm.ALL & ~Perm.MONITOR);
    expect(() => t.monitor(noMonitor, watcher)).toThrow(PermissionDenied);
    expect(h.office.stats().monitors).toBe(0);
    t.close();
    h.expectNoLeaks();
  });

  test('deny demote escalation: demote can only narrow', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const send = mb.export(Perm.SEND);
    const before = t.size;
    expect(() => t.demote(send, Perm.SEND | Perm.KILL)).toThrow(PermissionDenied);
    expect(() => t.demote(send, Perm.LINK)).toThrow(PermissionDenied);
    expect(() => t.demote(send, 1 << 7)).toThrow(PermissionDenied);
    expect(t.size).toBe(before);
    const none = t.demote(send, Perm.NONE);
    expect(t.permissions(none)).toBe(0);
    expect(() => t.demote(none, Perm.SEND)).toThrow(PermissionDenied);
    t.close();
    h.expectNoLeaks();
  });

  test('kill: the group dies, its mailbox ends with reason killed, queued messages are discarded', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const mb = g.createMailbox();
    const to = mb.export(Perm.SEND | Perm.KILL);
    t.send(to, bytes(1));
    t.send(to, bytes(2));
    t.kill(to);
    expect(g.dead).toBe(true);
    expect(mb.closed).toBe(true);
    expect(mb.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    // Sending to a killed route succeeds and the message is dropped.
    expect(t.send(to, bytes(3))).toBe(true);
    expect(mb.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    t.close();
    h.expectNoLeaks();
  });

  test('double kill: the second kill is a no-op', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const mb = g.createMailbox();
    const k = mb.export(Perm.KILL);
    t.kill(k);
    t.kill(k);
    g.kill();
    expect(g.dead).toBe(true);
    expect(mb.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    t.close();
    h.expectNoLeaks();
  });

  test('freed handles: a released handle is invalid, even after its entry is reused', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const first = mb.export(Perm.SEND);
    t.release(first);
    expect(() => t.send(first, bytes(1))).toThrow(InvalidHandle);
    expect(() => t.release(first)).toThrow(InvalidHandle);
    // Churn entries: the slot of `first` is reused, under a new generation.
    const seen = new Set<number>();
    for (let i = 0; i < 50; i++) {
      const again = mb.export(Perm.ALL);
      expect(again).not.toBe(first);
      expect(seen.has(again)).toBe(false);
      seen.add(again);
      expect(() => t.permissions(first)).toThrow(InvalidHandle);
      t.release(again);
    }
    for (const stale of seen) expect(() => t.kill(stale)).toThrow(InvalidHandle);
    t.close();
    h.expectNoLeaks();
  });

  test('kill all mailboxes of a group: every route of the group closes', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const other = t.createGroup();
    const boxes = Array.from({ length: 5 }, () => g.createMailbox());
    const bystander = other.createMailbox();
    const k = boxes[2]!.export(Perm.KILL);
    t.kill(k);
    for (const mb of boxes)
      expect(mb.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    expect(bystander.closed).toBe(false);
    expect(other.dead).toBe(false);
    expect(h.office.stats().openRoutes).toBe(1);
    t.close();
    h.expectNoLeaks();
  });

  test('export into another table: a capability handed over arrives in the other table', () => {
    const h = harness();
    const a = h.office.createTable();
    const b = h.office.createTable();
    const inboxB = b.createGroup().createMailbox();
    const toB = b.toOwned(inboxB.export(Perm.SEND));
    const handleInA = a.importOwned(toB);
    const mbA = a.createGroup().createMailbox();
    const replyTo = mbA.export(Perm.SEND | Perm.MONITOR);
    expect(a.send(handleInA, text('ping'), [replyTo])).toBe(true);
    const msg = expectMessage(inboxB.tryReceive());
    expect(decode(msg.data)).toBe('ping');
    const reply = msg.caps[0]!;
    // The imported handle belongs to b, with the same permissions; a's handle stays a's.
    expect(b.permissions(reply)).toBe(Perm.SEND | Perm.MONITOR);
    expect(a.permissions(replyTo)).toBe(Perm.SEND | Perm.MONITOR);
    expect(b.send(reply, text('pong'))).toBe(true);
    expect(decode(expectMessage(mbA.tryReceive()).data)).toBe('pong');
    a.close();
    b.close();
    h.expectNoLeaks();
  });

  test('down on kill: a monitor sees reason killed', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const watched = g.createMailbox();
    const watcher = t.createGroup().createMailbox();
    const cap = watched.export(Perm.MONITOR | Perm.KILL);
    const id = t.monitor(cap, watcher);
    expect(watcher.tryReceive()).toBeNull();
    t.kill(cap);
    const down = watcher.tryReceive();
    expect(down).toMatchObject({ kind: 'down', reason: 'killed', monitor: id });
    if (down?.kind !== 'down') throw new Error('unreachable');
    expect(t.sameRoute(down.route, cap)).toBe(true);
    expect(t.permissions(down.route)).toBe(0);
    expect(watcher.tryReceive()).toBeNull();
    t.close();
    h.expectNoLeaks();
  });

  test('down on close: a monitor sees reason closed and the group lives on', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const watched = g.createMailbox();
    const sibling = g.createMailbox();
    const watcher = t.createGroup().createMailbox();
    const id = t.monitor(watched.export(Perm.MONITOR), watcher);
    watched.close();
    expect(watcher.tryReceive()).toMatchObject({ kind: 'down', reason: 'closed', monitor: id });
    expect(watched.tryReceive()).toEqual({ kind: 'end', reason: 'closed', code: 0, detail: null });
    expect(g.dead).toBe(false);
    expect(sibling.closed).toBe(false);
    t.close();
    h.expectNoLeaks();
  });

  test('down on an already dead route: reason killed, at once', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const watched = g.createMailbox();
    const cap = watched.export(Perm.MONITOR);
    g.kill();
    // Even after the owner has seen the end and let go, the capability still knows why.
    expect(watched.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    const watcher = t.createGroup().createMailbox();
    const id = t.monitor(cap, watcher);
    expect(watcher.tryReceive()).toMatchObject({ kind: 'down', reason: 'killed', monitor: id });
    t.close();
    h.expectNoLeaks();
  });

  test('down on an already closed route: reason closed, at once', () => {
    const h = harness();
    const t = h.office.createTable();
    const watched = t.createGroup().createMailbox();
    const cap = watched.export(Perm.MONITOR);
    watched.close();
    const watcher = t.createGroup().createMailbox();
    const id = t.monitor(cap, watcher);
    expect(watcher.tryReceive()).toMatchObject({ kind: 'down', reason: 'closed', monitor: id });
    t.close();
    h.expectNoLeaks();
  });

  test('link: killing either side kills the other', () => {
    const h = harness();
    const t = h.office.createTable();
    for (const killFirst of [true, false]) {
      const a = t.createGroup();
      const b = t.createGroup();
      const mbB = b.createMailbox();
      const mbA = a.createMailbox();
      const id = t.link(mbB.export(Perm.LINK), a);
      expect(id).not.toBe(0);
      expect(h.office.stats().links).toBe(1);
      if (killFirst) a.kill();
      else b.kill();
      expect(a.dead).toBe(true);
      expect(b.dead).toBe(true);
      expect(mbA.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
      expect(mbB.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
      expect(h.office.stats().links).toBe(0);
    }
    t.close();
    h.expectNoLeaks();
  });

  test('unlink: after unlink, killing one side leaves the other alive', () => {
    const h = harness();
    const t = h.office.createTable();
    const a = t.createGroup();
    const b = t.createGroup();
    const mbB = b.createMailbox();
    const id = t.link(mbB.export(Perm.LINK), a);
    expect(t.unlink(id)).toBe(true);
    expect(t.unlink(id)).toBe(false);
    expect(h.office.stats().links).toBe(0);
    b.kill();
    expect(a.dead).toBe(false);
    t.close();
    h.expectNoLeaks();
  });

  test('chains of linked groups: killing the middle kills the whole chain', () => {
    const h = harness();
    const t = h.office.createTable();
    const groups = Array.from({ length: 20 }, () => t.createGroup());
    const boxes = groups.map((g) => g.createMailbox());
    for (let i = 0; i + 1 < groups.length; i++) t.link(boxes[i + 1]!.export(Perm.LINK), groups[i]!);
    const outsider = t.createGroup();
    groups[10]!.kill();
    for (const g of groups) expect(g.dead).toBe(true);
    expect(outsider.dead).toBe(false);
    for (const mb of boxes)
      expect(mb.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    expect(h.office.stats().links).toBe(0);
    t.close();
    h.expectNoLeaks();
  });
});
