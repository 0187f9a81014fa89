/**
 * The ring against a sequential model, over random operation sequences and
 * random capacities (fast-check).
 *
 * The model is exact: it knows the record layout (8-byte header, 8-byte
 * alignment), the padding record a claim that does not fit before the end
 * takes, and when the consumer hands consumed space back to producers (after
 * a quarter of the ring, and when it finds nothing to read if the ring's
 * `handsBackWhenDry` says so; see the consumer section of ring.ts). So it predicts every tryWrite/tryClaim answer, every
 * record read (type and bytes), and usedBytes after every step. Several
 * producers hold claims open across other operations, so unpublished
 * records at the head are modelled too.
 */

import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  DestinationTooSmall,
  type Producer,
  ProducerStateError,
  RECORD_HEADER_BYTES,
  RecordTooLarge,
  recordBytes,
} from './index.ts';
import { checkPattern, expectCanariesIntact, expectNoLeak, makeFixture, patterned } from './test/fixtures.ts';
import { runSeed } from './test/records.ts';

interface Entry {
  /** Padding records are consumed silently. */
  padding: boolean;
  bytes: number;
  length: number;
  type: number;
  seq: number;
  published: boolean;
}

class Model {
  tail = 0;
  /** The consumer's position. */
  head = 0;
  /** What the consumer last handed back to producers (HEAD). */
  handedBack = 0;
  readonly queue: Entry[] = [];

  constructor(
    readonly capacity: number,
    readonly maxRecordLength: number,
    readonly handsBackWhenDry: boolean,
  ) {}

  /** Reserves a record; returns its entry, or null when the ring is full. */
  claim(length: number, type: number, seq: number): Entry | null {
    const need = recordBytes(length);
    const toEnd = this.capacity - (this.tail % this.capacity);
    const span = need <= toEnd ? need : toEnd + need;
    if (this.tail - this.handedBack + span > this.capacity) return null;
    if (span !== need) {
      this.queue.push({ padding: true, bytes: toEnd, length: 0, type: 0, seq: -1, published: true });
    }
    const entry = { padding: false, bytes: need, length, type, seq, published: false };
    this.queue.push(entry);
    this.tail += span;
    return entry;
  }

  private consume(bytes: number): void {
    this.head += bytes;
    if (this.head - this.handedBack >= this.capacity / 4) this.handedBack = this.head;
  }

  /** The oldest record if it is published; consumes padding in front of it like the ring does. */
  peek(): Entry | null {
    for (;;) {
      const front = this.queue[0];
      if (front === undefined || !front.published) {
        if (this.handsBackWhenDry) this.handedBack = this.head;
        return null;
      }
      if (!front.padding) return front;
      this.queue.shift();
      this.consume(front.bytes);
    }
  }

  release(): Entry {
    const front = this.queue.shift()!;
    this.consume(front.bytes);
    return front;
  }

  get usedBytes(): number {
    return this.tail - this.handedBack;
  }
}

type Op =
  | { kind: 'write'; producer: number; length: number }
  | { kind: 'claim'; producer: number; length: number }
  | { kind: 'commit'; producer: number }
  | { kind: 'read' }
  | { kind: 'readInto'; room: number }
  | { kind: 'peekRelease' }
  | { kind: 'peekHold' }
  | { kind: 'drain'; limit: number }
  | { kind: 'tooLarge'; producer: number };

const PRODUCERS = 3;

function opArbitrary(): fc.Arbitrary<Op> {
  const producer = fc.integer({ min: 0, max: PRODUCERS - 1 });
  // A fraction of the maximum record length, so one sequence suits every capacity.
  const length = fc.oneof(
    fc.constant(0),
    fc.double({ min: 0, max: 1, noNaN: true }),
    fc.constant(1),
  ) as fc.Arbitrary<number>;
  return fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('write' as const), producer, length }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('claim' as const), producer, length }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('commit' as const), producer }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('read' as const) }) },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('readInto' as const),
        room: fc.double({ min: 0, max: 1.2, noNaN: true }),
      }),
    },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('peekRelease' as const) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('peekHold' as const) }) },
    {
      weight: 2,
      arbitrary: fc.record({ kind: fc.constant('drain' as const), limit: fc.integer({ min: 0, max: 6 }) }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('tooLarge' as const), producer }) },
  );
}

const scenario: fc.Arbitrary<Scenario> = fc.record({
  capacityLog: fc.integer({ min: 6, max: 12 }),
  maxFraction: fc.double({ min: 0, max: 1, noNaN: true }),
  ops: fc.array(opArbitrary(), { minLength: 1, maxLength: 400 }),
});

interface Scenario {
  capacityLog: number;
  maxFraction: number;
  ops: Op[];
}

function run({ capacityLog, maxFraction, ops }: Scenario): void {
  const capacity = 2 ** capacityLog;
  const limit = capacity / 2 - RECORD_HEADER_BYTES;
  const maxRecordLength = Math.floor(maxFraction * limit);
  const f = makeFixture({ capacity, maxRecordLength, maxProducers: PRODUCERS });
  const ring = f.ring;
  // Running dry must hand space back only when a quarter ring held back plus the largest
  // claim (padding to the end and a maximal record) might not fit.
  const handsBackWhenDry = capacity / 4 + 2 * recordBytes(maxRecordLength) > capacity;
  expect(ring.handsBackWhenDry).toBe(handsBackWhenDry);
  const model = new Model(capacity, maxRecordLength, handsBackWhenDry);
  const producers: Producer[] = [];
  for (let i = 0; i < PRODUCERS; i++) producers.push(f.slots.acquire());
  /** Per producer: the model entry and payload offset of its open claim. */
  const open: Array<{ entry: Entry; at: number } | null> = new Array(PRODUCERS).fill(null);
  let seq = 0;
  let held: Entry | null = null;

  const expectRecord = (
    entry: Entry | null,
    type: number,
    bytes: Uint8Array,
    offset: number,
    length: number,
  ) => {
    expect(entry).not.toBeNull();
    expect(type).toBe(entry!.type);
    expect(length).toBe(entry!.length);
    checkPattern(entry!.seq, bytes, offset, length);
  };

  for (const op of ops) {
    switch (op.kind) {
      case 'write':
      case 'claim': {
        const length = Math.min(maxRecordLength, Math.floor(op.length * (maxRecordLength + 1)));
        const p = producers[op.producer]!;
        const type = 1 + (seq % 255);
        if (open[op.producer] !== null) {
          expect(() => ring.tryWrite(p, type, patterned(seq, length))).toThrow(ProducerStateError);
          break;
        }
        if (op.kind === 'write') {
          const accepted = ring.tryWrite(p, type, patterned(seq, length));
          const entry = model.claim(length, type, seq);
          expect(accepted).toBe(entry !== null);
          if (entry !== null) entry.published = true;
        } else {
          const at = ring.tryClaim(p, type, length);
          const entry = model.claim(length, type, seq);
          expect(at >= 0).toBe(entry !== null);
          if (entry !== null) {
            ring.bytes.set(patterned(seq, length), at);
            open[op.producer] = { entry, at };
          }
        }
        seq++;
        break;
      }
      case 'commit': {
        const claim = open[op.producer];
        if (claim === null) {
          expect(() => ring.commit(producers[op.producer]!)).toThrow(ProducerStateError);
        } else {
          ring.commit(producers[op.producer]!);
          claim!.entry.published = true;
          open[op.producer] = null;
        }
        break;
      }
      case 'read': {
        const got = ring.tryRead();
        const entry = model.peek();
        if (entry === null) {
          expect(got).toBeNull();
        } else {
          expectRecord(entry, ring.recordType, got!, 0, got!.length);
          model.release();
          held = null;
        }
        break;
      }
      case 'readInto': {
        const room = Math.floor(op.room * maxRecordLength);
        const dest = new Uint8Array(room);
        const entry = model.peek();
        if (entry !== null && entry.length > room) {
          expect(() => ring.tryReadInto(dest)).toThrow(DestinationTooSmall);
          held = entry; // still the oldest, still peeked
          break;
        }
        const length = ring.tryReadInto(dest);
        if (entry === null) {
          expect(length).toBe(-1);
        } else {
          expectRecord(entry, ring.recordType, dest, 0, length);
          model.release();
          held = null;
        }
        break;
      }
      case 'peekRelease':
      case 'peekHold': {
        const length = ring.peek();
        const entry = model.peek();
        if (entry === null) {
          expect(length).toBe(-1);
          break;
        }
        if (held !== null) expect(entry).toBe(held);
        expectRecord(entry, ring.recordType, ring.bytes, ring.recordOffset, length);
        if (op.kind === 'peekRelease') {
          ring.release();
          model.release();
          held = null;
        } else {
          held = entry;
        }
        break;
      }
      case 'drain': {
        let count = 0;
        const handled = ring.drain((type, bytes, offset, length) => {
          const entry = model.peek();
          expectRecord(entry, type, bytes, offset, length);
          model.release();
          count++;
        }, op.limit);
        expect(handled).toBe(count);
        // The ring stopped either at the limit or because nothing (published) was left.
        if (count < op.limit) expect(model.peek()).toBeNull();
        held = null;
        break;
      }
      case 'tooLarge': {
        const p = producers[op.producer]!;
        if (open[op.producer] === null) {
          expect(() => ring.tryWrite(p, 1, new Uint8Array(maxRecordLength + 1))).toThrow(RecordTooLarge);
        }
        break;
      }
    }
    expect(ring.usedBytes).toBe(model.usedBytes);
  }

  // Wind down: commit what is open, read everything that is left, in order.
  for (let i = 0; i < PRODUCERS; i++) {
    const claim = open[i];
    if (claim !== null && claim !== undefined) {
      ring.commit(producers[i]!);
      claim.entry.published = true;
    }
  }
  ring.drain((type, bytes, offset, length) => {
    expectRecord(model.peek(), type, bytes, offset, length);
    model.release();
  });
  expect(model.peek()).toBeNull();
  for (const p of producers) f.slots.release(p);
  expectNoLeak(ring, f.slots);
  expectCanariesIntact(f);
}

describe('the ring behaves as its sequential model', () => {
  test('random operation sequences, random capacities', () => {
    const seed = runSeed();
    try {
      fc.assert(fc.property(scenario, run), { seed, numRuns: 300 });
    } catch (error) {
      console.error(`ring model property failed: seed ${seed} (replay with TEST_SEED=${seed})`);
      throw error;
    }
  });

  test('long sequences on small rings wrap many times', () => {
    const seed = runSeed();
    const long: fc.Arbitrary<Scenario> = fc.record({
      capacityLog: fc.integer({ min: 6, max: 8 }),
      maxFraction: fc.double({ min: 0.2, max: 1, noNaN: true }),
      ops: fc.array(opArbitrary(), { minLength: 2000, maxLength: 4000 }),
    });
    try {
      fc.assert(fc.property(long, run), { seed, numRuns: 20 });
    } catch (error) {
      console.error(`ring model property (long) failed: seed ${seed} (replay with TEST_SEED=${seed})`);
      throw error;
    }
  });
});
