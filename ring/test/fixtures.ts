/**
 * Single-thread fixtures: a buffer holding a producer-slot region and a ring,
 * each fenced by canary blocks, and the leak check every test ends with.
 *
 *   [canary][slots][canary][ring header + record space][canary]
 *
 * A canary block is 64 bytes of a fixed non-zero pattern; any write outside
 * the regions a component owns shows up as a changed canary.
 */

import { expect } from 'vitest';
import { ProducerSlots, RING_HEADER_BYTES, Ring } from '../index.ts';

const CANARY_BYTES = 64;
const CANARY_WORD = 0x5a5aa5a5 | 0;

export interface Fixture {
  buffer: SharedArrayBuffer;
  ring: Ring;
  slots: ProducerSlots;
  ringOffset: number;
  slotsOffset: number;
  /** Byte offsets of the canary blocks. */
  canaries: number[];
}

export interface FixtureOptions {
  capacity: number;
  maxRecordLength?: number;
  maxProducers?: number;
}

function align64(n: number): number {
  return Math.ceil(n / 64) * 64;
}

export function makeFixture(options: FixtureOptions): Fixture {
  const maxProducers = options.maxProducers ?? 8;
  const slotsOffset = CANARY_BYTES;
  const middle = align64(slotsOffset + ProducerSlots.bytesFor(maxProducers));
  const ringOffset = middle + CANARY_BYTES;
  const last = ringOffset + Ring.bytesFor(options.capacity);
  const buffer = new SharedArrayBuffer(last + CANARY_BYTES);
  const canaries = [0, middle, last];
  const i32 = new Int32Array(buffer);
  for (const at of canaries) i32.fill(CANARY_WORD, at >> 2, (at + CANARY_BYTES) >> 2);
  const slots = ProducerSlots.init(buffer, slotsOffset, maxProducers);
  const ring = Ring.init(buffer, ringOffset, {
    capacity: options.capacity,
    maxRecordLength: options.maxRecordLength,
    producerSlotsOffset: slotsOffset,
  });
  return { buffer, ring, slots, ringOffset, slotsOffset, canaries };
}

/** Asserts every canary block still holds its pattern. */
export function expectCanariesIntact(fixture: Fixture): void {
  const i32 = new Int32Array(fixture.buffer);
  for (const at of fixture.canaries) {
    for (let w = at >> 2; w < (at + CANARY_BYTES) >> 2; w++) {
      if (i32[w] !== CANARY_WORD) {
        throw new Error(`canary at byte ${w * 4} overwritten: 0x${(i32[w]! >>> 0).toString(16)}`);
      }
    }
  }
}

/**
 * The leak check: after a final drain the ring holds nothing (every byte
 * handed back to producers) and the producer slots in use are back to
 * `baseline`.
 */
export function expectNoLeak(ring: Ring, slots: ProducerSlots, baseline = 0): void {
  ring.drain(() => {});
  expect(ring.peek()).toBe(-1);
  ring.flushConsumed(); // the consumer may hold back consumed space while it runs dry
  expect(ring.usedBytes).toBe(0);
  expect(slots.inUse()).toBe(baseline);
}

/** A copy of the whole buffer, to prove an operation that threw changed nothing. */
export function snapshot(buffer: SharedArrayBuffer): Uint8Array {
  return new Uint8Array(buffer).slice();
}

/**
 * A copy of the ring's header and record space: what a refused write must
 * leave alone (a refused claim may still update its producer's slot).
 */
export function ringSnapshot(fixture: Fixture): Uint8Array {
  return new Uint8Array(
    fixture.buffer,
    fixture.ringOffset,
    fixture.ring.capacity + RING_HEADER_BYTES,
  ).slice();
}

/** Payload byte `i` of the record with sequence number `seq`: a pattern that differs between records. */
export function patternByte(seq: number, i: number): number {
  return (seq * 131 + i * 7 + (i >> 8)) & 0xff;
}

export function patterned(seq: number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = patternByte(seq, i);
  return bytes;
}

/** Throws unless `bytes[offset, offset + length)` is record `seq`'s pattern. */
export function checkPattern(seq: number, bytes: Uint8Array, offset: number, length: number): void {
  for (let i = 0; i < length; i++) {
    if (bytes[offset + i] !== patternByte(seq, i)) {
      throw new Error(`record ${seq} (length ${length}) damaged at byte ${i}`);
    }
  }
}
