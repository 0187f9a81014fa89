// Doorbells: one consumer thread waiting for many rings through one futex
// word and a shared ready bitmap. Unit checks of the bitmap, the arm/ring
// protocol on a ring, and real producer workers ringing while the consumer
// parks, with every record verified (a lost ring would hang the consumer and
// fail the deadline).

import { describe, expect, it } from 'vitest';
import {
  DB_SLEEP,
  DoorbellOwner,
  doorbellWords,
  initDoorbell,
  ProducerSlots,
  parkAsync,
  Ring,
  ringDoorbell,
} from './index.ts';
import { SequenceVerifier } from './test/records.ts';
import { exited, nextMessage, type ProducerMessage, spawn, within } from './test/workers.ts';

const align64 = (n: number) => (n + 63) & ~63;

interface Layout {
  buffer: SharedArrayBuffer;
  i32: Int32Array;
  slots: ProducerSlots;
  rings: Ring[];
  ringOffsets: number[];
  doorbellBase: number;
}

/** A producer-slot table, `count` rings and one doorbell of `bits` bits in one buffer. */
function layout(count: number, capacity: number, bits: number): Layout {
  const slotsBytes = align64(ProducerSlots.bytesFor(16));
  const ringBytes = Ring.bytesFor(capacity);
  const doorbellOffset = slotsBytes + count * ringBytes;
  const buffer = new SharedArrayBuffer(doorbellOffset + doorbellWords(bits) * 4);
  const slots = ProducerSlots.init(buffer, 0, 16);
  const rings: Ring[] = [];
  const ringOffsets: number[] = [];
  for (let i = 0; i < count; i++) {
    const offset = slotsBytes + i * ringBytes;
    ringOffsets.push(offset);
    rings.push(Ring.init(buffer, offset, { capacity, producerSlotsOffset: 0 }));
  }
  const i32 = new Int32Array(buffer);
  initDoorbell(i32, doorbellOffset >> 2, bits);
  return { buffer, i32, slots, rings, ringOffsets, doorbellBase: doorbellOffset >> 2 };
}

function taken(owner: DoorbellOwner): number[] {
  const bits: number[] = [];
  owner.take((bit) => bits.push(bit));
  return bits.sort((a, b) => a - b);
}

describe('doorbell bitmap', () => {
  it('hands out every rung bit once, across both levels', () => {
    const { i32, doorbellBase } = layout(0, 64, 5000);
    const owner = new DoorbellOwner(i32, doorbellBase);
    expect(owner.bits).toBe(5000);
    const rung = [0, 1, 31, 32, 1023, 1024, 4095, 4999];
    for (const bit of rung) ringDoorbell(i32, doorbellBase, bit);
    ringDoorbell(i32, doorbellBase, 31); // twice before a take: still once
    expect(owner.pending()).toBe(true);
    expect(taken(owner)).toEqual(rung);
    expect(owner.pending()).toBe(false);
    expect(taken(owner)).toEqual([]);
  });

  it('ignores a bit beyond its size instead of writing past itself', () => {
    const { i32, doorbellBase } = layout(0, 64, 40);
    const before = i32.slice();
    ringDoorbell(i32, doorbellBase, 40);
    ringDoorbell(i32, doorbellBase, -1);
    expect(i32).toEqual(before);
  });

  it('refuses to park while a bit is pending, and wakes a parked owner', () => {
    const { i32, doorbellBase } = layout(0, 64, 64);
    const owner = new DoorbellOwner(i32, doorbellBase);
    ringDoorbell(i32, doorbellBase, 3);
    expect(owner.prepareToPark()).toBe(false);
    expect(Atomics.load(i32, doorbellBase + DB_SLEEP)).toBe(0);
    expect(taken(owner)).toEqual([3]);
    expect(owner.prepareToPark()).toBe(true);
    expect(Atomics.load(i32, doorbellBase + DB_SLEEP)).toBe(1);
    ringDoorbell(i32, doorbellBase, 9); // a ringer that sees the park swaps the word back
    expect(Atomics.load(i32, doorbellBase + DB_SLEEP)).toBe(0);
    expect(taken(owner)).toEqual([9]);
  });

  it('rejects a size it cannot hold', () => {
    const i32 = new Int32Array(new SharedArrayBuffer(64));
    expect(() => initDoorbell(i32, 0, 0)).toThrow(RangeError);
    expect(() => initDoorbell(i32, 0, 1.5)).toThrow(RangeError);
  });
});

describe('rings with a doorbell', () => {
  it('rings the bit once for the first record after an arm, never while disarmed', () => {
    const { i32, slots, rings, doorbellBase } = layout(2, 256, 64);
    const owner = new DoorbellOwner(i32, doorbellBase);
    const [a, b] = rings as [Ring, Ring];
    a.setDoorbell(doorbellBase, 10);
    b.setDoorbell(doorbellBase, 11);
    const producer = slots.acquire();
    const record = new Uint8Array(16);
    a.tryWrite(producer, 1, record); // not armed: no bit
    expect(taken(owner)).toEqual([]);
    expect(a.armDoorbell()).toBe(false); // a record is waiting: the arm withdraws
    a.drain(() => {});
    expect(a.armDoorbell()).toBe(true);
    expect(b.armDoorbell()).toBe(true);
    a.tryWrite(producer, 1, record);
    a.tryWrite(producer, 1, record); // the arm was used up by the first
    expect(taken(owner)).toEqual([10]);
    b.disarmDoorbell();
    b.tryWrite(producer, 1, record);
    expect(taken(owner)).toEqual([]);
    expect(a.drain(() => {})).toBe(2);
    expect(b.drain(() => {})).toBe(1);
    slots.release(producer);
  });

  it('loses no wake-up: four producer workers, eight rings, one parking consumer', async () => {
    const RINGS = 8;
    const PER_RING = 3000;
    const { buffer, i32, rings, ringOffsets, doorbellBase } = layout(RINGS, 512, RINGS);
    const owner = new DoorbellOwner(i32, doorbellBase);
    for (const [i, ring] of rings.entries()) ring.setDoorbell(doorbellBase, i);
    const control = new SharedArrayBuffer(4);
    // Producers come and go in bursts so the consumer keeps running dry and parking.
    const workers = ringOffsets.map((ringOffset, id) =>
      spawn('./producer.worker.ts', {
        buffer,
        ringOffset,
        producerId: id,
        count: PER_RING,
        minLength: 12,
        maxLength: 48,
        seed: 1000 + id,
        mode: 'writeSync',
        bursts: { maxBurst: 40, maxPauseMs: 2 },
        control,
      }),
    );
    await Promise.all(workers.map((w) => nextMessage<ProducerMessage>(w, (m) => m.kind === 'ready')));
    const verifiers = rings.map(() => new SequenceVerifier());
    let parks = 0;
    let received = 0;
    const consume = async () => {
      // A ring whose arm is withdrawn holds a record nobody will ring for: drain it first.
      rings.forEach((ring, bit) => {
        while (!ring.armDoorbell()) received += ring.drain((verifiers[bit] as SequenceVerifier).check);
      });
      while (received < RINGS * PER_RING) {
        owner.take((bit) => {
          const ring = rings[bit] as Ring;
          received += ring.drain((verifiers[bit] as SequenceVerifier).check);
          // Re-arm; a record that slipped in meanwhile withdraws the arm: drain again.
          while (!ring.armDoorbell()) received += ring.drain((verifiers[bit] as SequenceVerifier).check);
        });
        if (received === RINGS * PER_RING) break;
        if (!owner.prepareToPark()) continue;
        parks++;
        const parked = parkAsync(i32, doorbellBase + DB_SLEEP, 1, Number.POSITIVE_INFINITY);
        if (parked !== undefined) await parked;
        owner.awake();
      }
    };
    await within(30_000, () => `received ${received} of ${RINGS * PER_RING}`, consume());
    expect(verifiers.map((v) => v.total)).toEqual(new Array(RINGS).fill(PER_RING));
    expect(parks).toBeGreaterThan(0);
    await Promise.all(workers.map((w) => exited(w)));
    for (const ring of rings) {
      ring.flushConsumed();
      expect(ring.usedBytes).toBe(0);
    }
  });
});
