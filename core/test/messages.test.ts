/**
 * Message transport: ordering, backpressure, out-of-line bodies, in-place
 * receive, and the waiting forms of send and receive.
 */

import { describe, expect, test } from 'vitest';
import { CapacityExceeded, MessageTooLarge, Perm, WriteTimeout } from '../index.ts';
import { bytes, expectMessage, harness } from './harness.ts';

function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed) & 255;
  return out;
}

describe('backpressure', () => {
  test('a full ring refuses with false and never overwrites', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox({ capacity: 256 });
    const to = mb.export(Perm.SEND);
    let sent = 0;
    while (t.send(to, pattern(20, sent))) sent++;
    expect(sent).toBeGreaterThan(3);
    expect(t.send(to, pattern(20, 99))).toBe(false);
    for (let i = 0; i < sent; i++) expect(expectMessage(mb.tryReceive()).data).toEqual(pattern(20, i));
    expect(mb.tryReceive()).toBeNull();
    expect(t.send(to, pattern(20, 7))).toBe(true);
    t.close();
    h.expectNoLeaks();
  });

  test('sendWhenRoom waits for the consumer, then delivers in order', async () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox({ capacity: 256 });
    const to = mb.export(Perm.SEND);
    const self = mb.export(Perm.MONITOR);
    let sent = 0;
    while (t.send(to, pattern(20, sent))) sent++;
    let resolved = false;
    const waiting = t.sendWhenRoom(to, pattern(20, sent), [self]).then(() => {
      resolved = true;
    });
    await new Promise((r) => setTimeout(r, 30));
    expect(resolved).toBe(false);
    for (let i = 0; i < sent; i++) expect(expectMessage(mb.tryReceive()).data).toEqual(pattern(20, i));
    await waiting;
    const last = expectMessage(mb.tryReceive());
    expect(last.data).toEqual(pattern(20, sent));
    expect(t.sameRoute(last.caps[0]!, self)).toBe(true);
    t.close();
    h.expectNoLeaks();
  });

  test('sendWhenRoom gives up on abort and on timeout, holding nothing', async () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox({ capacity: 256 });
    const to = mb.export(Perm.SEND);
    const cap = mb.export(Perm.SEND);
    while (t.send(to, pattern(20, 0)));
    const controller = new AbortController();
    const aborted = t.sendWhenRoom(to, pattern(20, 1), [cap], { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('stop')), 10);
    await expect(aborted).rejects.toThrow('stop');
    await expect(t.sendWhenRoom(to, pattern(2000, 1), [cap], { timeoutMs: 30 })).rejects.toThrow(
      WriteTimeout,
    );
    t.close();
    h.expectNoLeaks();
  });

  test('sendWhenRoom to a route that closes while waiting resolves (message dropped)', async () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const mb = g.createMailbox({ capacity: 256 });
    const to = mb.export(Perm.SEND);
    while (t.send(to, pattern(20, 0)));
    const waiting = t.sendWhenRoom(to, pattern(20, 1));
    setTimeout(() => g.kill(), 10);
    await waiting;
    expect(mb.tryReceive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    t.close();
    h.expectNoLeaks();
  });
});

describe('out-of-line messages', () => {
  test('messages above the ring record limit travel through the heap', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox({ capacity: 1024 });
    const to = mb.export(Perm.SEND);
    const heapBefore = h.office.stats().heapBytes;
    const sizes = [mb.maxRecordLength, mb.maxRecordLength + 1, 5000, 64 << 10];
    for (const [i, size] of sizes.entries()) expect(t.send(to, pattern(size, i), [to])).toBe(true);
    expect(h.office.stats().heapBytes).toBeGreaterThan(heapBefore);
    for (const [i, size] of sizes.entries()) {
      const msg = expectMessage(mb.tryReceive());
      expect(msg.data).toEqual(pattern(size, i));
      expect(t.sameRoute(msg.caps[0]!, to)).toBe(true);
      t.release(msg.caps[0]!);
    }
    expect(h.office.stats().heapBytes).toBe(heapBefore);
    t.close();
    h.expectNoLeaks();
  });

  test('above the configured maximum: MessageTooLarge, nothing sent', () => {
    const h = harness({ maxMessageBytes: 10_000 });
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const to = mb.export(Perm.SEND);
    expect(() => t.send(to, new Uint8Array(10_001))).toThrow(MessageTooLarge);
    expect(t.send(to, new Uint8Array(10_000))).toBe(true);
    expect(expectMessage(mb.tryReceive()).data.length).toBe(10_000);
    expect(mb.tryReceive()).toBeNull();
    t.close();
    h.expectNoLeaks();
  });

  test('a full heap is a capacity error naming the heap', () => {
    const h = harness({ heapBytes: 16 << 10, maxMessageBytes: 16 << 10 });
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox({ capacity: 1024 });
    const to = mb.export(Perm.SEND);
    const heap = h.office.stats().heapBytes;
    let caught: unknown;
    try {
      t.send(to, new Uint8Array(15 << 10));
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(CapacityExceeded);
    expect((caught as CapacityExceeded).region).toBe('heap');
    expect(h.office.stats().heapBytes).toBe(heap);
    t.close();
    h.expectNoLeaks();
  });

  test('queued out-of-line messages of a killed mailbox are reclaimed', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const mb = g.createMailbox();
    const to = mb.export(Perm.SEND);
    const keep = t.createGroup().createMailbox();
    const capToKeep = keep.export(Perm.SEND);
    for (let i = 0; i < 5; i++) t.send(to, pattern(3000, i), [capToKeep]);
    for (let i = 0; i < 5; i++) t.send(to, pattern(30, i), [capToKeep]);
    // Consume a couple first: the rest is drained by whoever frees the ring.
    for (let i = 0; i < 2; i++) t.release(expectMessage(mb.tryReceive()).caps[0]!);
    g.kill();
    expect(mb.tryReceive()?.kind).toBe('end');
    t.close();
    h.expectNoLeaks();
  });
});

describe('in-place receive', () => {
  test('the view reads the ring in place and is valid until the next receive', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox({ capacity: 256 });
    const to = mb.export(Perm.SEND);
    t.send(to, bytes(1, 2, 3));
    t.send(to, pattern(3000, 4));
    const first = mb.tryReceiveInPlace();
    expect(first?.kind).toBe('message');
    expect(first!.bytes.buffer).toBe(h.office.buffer);
    expect(first!.data).toEqual(bytes(1, 2, 3));
    const second = mb.tryReceiveInPlace();
    expect(second).toBe(first); // one reused object
    expect(second!.data).toEqual(pattern(3000, 4));
    expect(mb.tryReceiveInPlace()).toBeNull();
    t.close();
    h.expectNoLeaks();
  });

  test('a held record keeps its space until the next receive', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox({ capacity: 256 });
    const to = mb.export(Perm.SEND);
    let sent = 0;
    while (t.send(to, pattern(20, sent))) sent++;
    const view = mb.tryReceiveInPlace()!;
    expect(view.data).toEqual(pattern(20, 0));
    // The record is still in the ring: no room yet, and the view's bytes are intact.
    expect(t.send(to, pattern(20, 100))).toBe(false);
    expect(view.copy()).toEqual(pattern(20, 0));
    expect(mb.tryReceiveInPlace()!.data).toEqual(pattern(20, 1));
    for (let i = 2; i < sent; i++) expect(mb.tryReceiveInPlace()!.data).toEqual(pattern(20, i));
    expect(mb.tryReceiveInPlace()).toBeNull();
    expect(t.send(to, pattern(20, 100))).toBe(true);
    t.close();
    h.expectNoLeaks();
  });

  test('in-place downs and end', () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const mb = g.createMailbox();
    const watched = t.createGroup().createMailbox();
    const id = t.monitor(watched.export(Perm.MONITOR), mb);
    watched.close();
    const down = mb.tryReceiveInPlace()!;
    expect([down.kind, down.monitor, down.reason]).toEqual(['down', id, 'closed']);
    g.kill();
    const end = mb.tryReceiveInPlace()!;
    expect([end.kind, end.reason]).toEqual(['end', 'killed']);
    t.close();
    h.expectNoLeaks();
  });
});

describe('waiting receive', () => {
  test('receiveSync times out with null', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    expect(mb.receiveSync(5)).toBeNull();
    t.close();
    h.expectNoLeaks();
  });

  test('receive wakes for a message, a down and a kill', async () => {
    const h = harness();
    const t = h.office.createTable();
    const g = t.createGroup();
    const mb = g.createMailbox();
    const to = mb.export(Perm.SEND);
    const watched = t.createGroup().createMailbox();
    t.monitor(watched.export(Perm.MONITOR), mb);
    setTimeout(() => t.send(to, bytes(42)), 5);
    expect(expectMessage(await mb.receive()).data).toEqual(bytes(42));
    setTimeout(() => watched.close(), 5);
    expect((await mb.receive())?.kind).toBe('down');
    setTimeout(() => g.kill(), 5);
    expect(await mb.receive()).toEqual({ kind: 'end', reason: 'killed', code: 0, detail: null });
    expect(await mb.receive({ timeoutMs: 1 })).toEqual({
      kind: 'end',
      reason: 'killed',
      code: 0,
      detail: null,
    });
    t.close();
    h.expectNoLeaks();
  });

  test('receive with a timeout resolves null', async () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    expect(await mb.receive({ timeoutMs: 5 })).toBeNull();
    expect(await mb.receiveInPlace({ timeoutMs: 5 })).toBeNull();
    t.close();
    h.expectNoLeaks();
  });
});
