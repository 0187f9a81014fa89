/**
 * Death of a thread inside a send, made deterministic: a second attachment
 * in this thread stands in for the other thread, and stops where a
 * terminated worker could (hazard posted, ring claim open). Then the host
 * declares it dead.
 */

import { describe, expect, test } from 'vitest';
import { Perm, PostOffice } from '../index.ts';
import { enter } from '../routes.ts';
import type { Shared } from '../shared.ts';
import { bytes, expectMessage, harness } from './harness.ts';

const sharedOf = (office: PostOffice) => (office as unknown as { o: Shared }).o;

describe('thread death', () => {
  test('a hazard left by a dead sender holds the ring until the thread is declared dead', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const other = PostOffice.attach(h.office.buffer);
    const ot = other.createTable();
    const cap = ot.importOwned(t.toOwned(mb.export(Perm.SEND)));
    expect(ot.send(cap, bytes(1))).toBe(true);
    // The other thread dies inside its next send, after posting its hazard.
    enter(sharedOf(other), mb.route);
    const heapBefore = h.office.stats().heapBytes;
    mb.close();
    // The owner let go, but the ring stays: someone may still be writing into it.
    expect(h.office.stats().heapBytes).toBe(heapBefore);
    const { slot, generation } = other.thread;
    expect(h.office.markThreadDead(slot, generation)).toBe(true);
    // Its hazard is gone and its table reclaimed: ring, route and table are freed.
    expect(h.office.stats().tables).toBe(1);
    t.close();
    h.expectNoLeaks();
  });

  test('a claim left open by a dead sender is skipped; later messages still arrive', () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const to = mb.export(Perm.SEND);
    const other = PostOffice.attach(h.office.buffer);
    const o = sharedOf(other);
    // The other thread dies between claiming ring space and publishing it.
    expect(o.ringOf(mb.route).tryClaim(o.producer, 1, 16)).toBeGreaterThan(0);
    expect(t.send(to, bytes(7))).toBe(true);
    expect(mb.tryReceive()).toBeNull(); // stuck behind the open claim of a live thread
    const { slot, generation } = other.thread;
    expect(h.office.markThreadDead(slot, generation)).toBe(true);
    expect(expectMessage(mb.tryReceive()).data).toEqual(bytes(7));
    expect(mb.tryReceive()).toBeNull();
    t.close();
    h.expectNoLeaks();
  });

  test('declaring a thread dead with a stale generation changes nothing', () => {
    const h = harness();
    const other = PostOffice.attach(h.office.buffer);
    const ot = other.createTable();
    const { slot, generation } = other.thread;
    expect(h.office.markThreadDead(slot, generation + 1)).toBe(false);
    expect(h.office.stats().tables).toBe(1);
    ot.close();
    other.detach();
    h.expectNoLeaks();
  });
});
