/**
 * Producer death. First, deterministic single-thread scenarios of the
 * recovery (a producer "terminated" at a chosen instruction, see
 * test/interrupt.ts); then real worker threads terminated at random points
 * in tight write loops while a consumer checks every record it receives.
 */

import type { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { afterEach, describe, expect, test } from 'vitest';
import {
  PARK_AT_ONCE,
  type Producer,
  ProducerSlotsExhausted,
  RECORD_HEADER_BYTES,
  RING_HEADER_BYTES,
  Ring,
} from './index.ts';
import { ProducerSlots, SLOT_ANNOUNCE_BYTES, SLOT_ANNOUNCE_POS } from './producer-slots.ts';
import { W_ROOM_WAITERS, W_TAIL } from './ring-layout.ts';
import {
  checkPattern,
  expectCanariesIntact,
  expectNoLeak,
  type Fixture,
  makeFixture,
  patterned,
} from './test/fixtures.ts';
import { interleaveAfterLoad, terminateAt } from './test/interrupt.ts';
import { Prng, runSeed, SequenceVerifier, TEST_RECORD_MIN } from './test/records.ts';
import {
  exited,
  nextMessage,
  type ProducerInit,
  type ProducerMessage,
  sleep,
  spawn,
} from './test/workers.ts';

function tailIndex(f: Fixture): number {
  return (Atomics.load(f.ring.i32, f.ring.base + W_TAIL) >>> 0) % f.ring.capacity;
}

/** Walks the (empty) ring's tail to `index` with zero-length records the consumer takes at once. */
function moveTailTo(f: Fixture, p: Producer, index: number): void {
  while (tailIndex(f) !== index) {
    expect(f.ring.tryWrite(p, 1, new Uint8Array(0))).toBe(true);
    expect(f.ring.tryRead()).toEqual(new Uint8Array(0));
  }
  expect(f.ring.tryRead()).toBeNull();
}

/** Everything the consumer can get now, as [type, bytes] pairs. */
function receiveAll(ring: Ring): Array<[number, number[]]> {
  const out: Array<[number, number[]]> = [];
  ring.drain((type, bytes, offset, length) => out.push([type, [...bytes.subarray(offset, offset + length)]]));
  return out;
}

/** Parks the consumer for no time: the path on which it frees dead slots once the ring is empty. */
function parkBriefly(ring: Ring): void {
  expect(ring.waitForRecord(0)).toBe(false);
}

afterEach(() => {
  // A failed interruption must never leave Atomics patched for the next test.
  expect(Atomics.compareExchange.name).toBe('compareExchange');
  expect(Atomics.store.name).toBe('store');
});

describe('recovery of a dead claim (one thread, deterministic)', () => {
  test('a claim left unpublished by a dead producer is skipped, later records delivered', () => {
    const f = makeFixture({ capacity: 256, maxRecordLength: 120 });
    const a = f.slots.acquire();
    const b = f.slots.acquire();
    const at = f.ring.tryClaim(a, 3, 20);
    f.ring.bytes.set(patterned(0, 10), at); // half written when it died
    expect(f.ring.tryWrite(b, 4, patterned(1, 12))).toBe(true);
    // A is merely silent so far: nothing may be skipped.
    expect(f.ring.peek()).toBe(-1);
    expect(f.ring.waitForRecord(0)).toBe(false);
    expect(f.slots.markDead(a.slot, a.generation)).toBe(true);
    expect(receiveAll(f.ring)).toEqual([[4, [...patterned(1, 12)]]]);
    // B's slot stays, A's is freed once the ring has drained.
    expectNoLeak(f.ring, f.slots, 1);
    expect(f.slots.deadCount).toBe(0);
    expect(f.ring.tryWrite(b, 5, patterned(2, 30))).toBe(true);
    expect(receiveAll(f.ring)).toEqual([[5, [...patterned(2, 30)]]]);
    f.slots.release(b);
    expectNoLeak(f.ring, f.slots);
    expectCanariesIntact(f);
  });

  test('markDead wakes a consumer parked behind the dead claim', async () => {
    const f = makeFixture({ capacity: 256, maxRecordLength: 120 });
    const a = f.slots.acquire();
    const b = f.slots.acquire();
    f.ring.tryClaim(a, 3, 20);
    expect(f.ring.tryWrite(b, 4, patterned(1, 12))).toBe(true);
    const woke = f.ring.waitForRecordAsync(); // no timeout: only a wake-up ends it
    await new Promise((resolve) => setImmediate(resolve));
    expect(f.slots.markDead(a.slot, a.generation)).toBe(true);
    expect(await woke).toBe(true);
    expect(receiveAll(f.ring)).toEqual([[4, [...patterned(1, 12)]]]);
    f.slots.release(b);
    parkBriefly(f.ring);
    expectNoLeak(f.ring, f.slots);
  });

  test.each([
    ['after the claim, before the padding was published', 'store', 1, false],
    ['after the padding was published', 'store', 1, true],
  ] as const)('a dead claim that wraps (padding + record) is skipped: death %s', (_name, op, nth, after) => {
    const f = makeFixture({ capacity: 256, maxRecordLength: 120 });
    const a = f.slots.acquire();
    const b = f.slots.acquire();
    moveTailTo(f, b, 200);
    // 128 bytes do not fit the 56 before the end: padding to the end, then the record at 0.
    terminateAt(op, nth, () => f.ring.tryClaim(a, 3, 120), { after });
    expect(tailIndex(f)).toBe(128);
    expect(f.ring.tryWrite(b, 4, patterned(1, 40))).toBe(true);
    expect(f.ring.tryRead()).toBeNull();
    expect(f.slots.markDead(a.slot, a.generation)).toBe(true);
    expect(receiveAll(f.ring)).toEqual([[4, [...patterned(1, 40)]]]);
    expectNoLeak(f.ring, f.slots, 1);
    f.slots.release(b);
    expectNoLeak(f.ring, f.slots);
    expectCanariesIntact(f);
  });

  test('a dead claim that wraps and was fully written but not published is skipped', () => {
    const f = makeFixture({ capacity: 256, maxRecordLength: 120 });
    const a = f.slots.acquire();
    const b = f.slots.acquire();
    moveTailTo(f, b, 200);
    const at = f.ring.tryClaim(a, 3, 120);
    f.ring.bytes.set(patterned(9, 120), at);
    expect(f.ring.tryWrite(b, 4, patterned(1, 40))).toBe(true);
    expect(f.ring.tryRead()).toBeNull();
    expect(f.slots.markDead(a.slot, a.generation)).toBe(true);
    expect(receiveAll(f.ring)).toEqual([[4, [...patterned(1, 40)]]]);
    f.slots.release(b);
    parkBriefly(f.ring);
    expectNoLeak(f.ring, f.slots);
    expectCanariesIntact(f);
  });

  test('a slow but live producer is never skipped, even while another producer is dead', () => {
    const f = makeFixture({ capacity: 256, maxRecordLength: 120 });
    const a = f.slots.acquire();
    const b = f.slots.acquire();
    const dead = f.slots.acquire();
    expect(f.ring.tryWrite(dead, 2, patterned(7, 8))).toBe(true);
    const at = f.ring.tryClaim(a, 3, 20);
    expect(f.ring.tryWrite(b, 4, patterned(1, 12))).toBe(true);
    // Another producer dies: the consumer now looks for dead claims on its slow path.
    expect(f.slots.markDead(dead.slot, dead.generation)).toBe(true);
    expect(receiveAll(f.ring)).toEqual([[2, [...patterned(7, 8)]]]);
    for (let i = 0; i < 20; i++) {
      expect(f.ring.peek()).toBe(-1);
      expect(f.ring.waitForRecord(0)).toBe(false);
    }
    f.ring.bytes.set(patterned(0, 20), at);
    f.ring.commit(a);
    expect(receiveAll(f.ring)).toEqual([
      [3, [...patterned(0, 20)]],
      [4, [...patterned(1, 12)]],
    ]);
    f.slots.release(a);
    f.slots.release(b);
    parkBriefly(f.ring);
    expectNoLeak(f.ring, f.slots);
  });

  test('a slow producer is not skipped when a dead producer announced the same position and died before its CAS', () => {
    const f = makeFixture({ capacity: 256, maxRecordLength: 120 });
    const a = f.slots.acquire();
    const x = f.slots.acquire();
    const b = f.slots.acquire();
    let at = -1;
    // X announces a claim at the tail and dies before its CAS; A takes that position.
    terminateAt('compareExchange', 1, () => f.ring.tryClaim(x, 2, 100), {
      before: () => {
        at = f.ring.tryClaim(a, 3, 20);
      },
    });
    expect(at).toBeGreaterThan(0);
    expect(f.ring.tryWrite(b, 4, patterned(1, 12))).toBe(true);
    expect(f.slots.markDead(x.slot, x.generation)).toBe(true);
    for (let i = 0; i < 10; i++) expect(f.ring.waitForRecord(0)).toBe(false);
    f.ring.bytes.set(patterned(0, 20), at);
    f.ring.commit(a);
    expect(receiveAll(f.ring)).toEqual([
      [3, [...patterned(0, 20)]],
      [4, [...patterned(1, 12)]],
    ]);
    f.slots.release(a);
    f.slots.release(b);
    parkBriefly(f.ring);
    expectNoLeak(f.ring, f.slots);
  });

  test('a producer that died before its CAS is freed, and claimed nothing', () => {
    const f = makeFixture({ capacity: 256, maxRecordLength: 120 });
    const x = f.slots.acquire();
    const b = f.slots.acquire();
    terminateAt('compareExchange', 1, () => f.ring.tryClaim(x, 2, 40));
    expect(f.ring.usedBytes).toBe(0);
    expect(f.slots.markDead(x.slot, x.generation)).toBe(true);
    expect(f.ring.tryWrite(b, 4, patterned(1, 12))).toBe(true);
    expect(receiveAll(f.ring)).toEqual([[4, [...patterned(1, 12)]]]);
    parkBriefly(f.ring);
    expectNoLeak(f.ring, f.slots, 1);
    f.slots.release(b);
    expectNoLeak(f.ring, f.slots);
  });

  test('two dead announcements over one position: only records someone committed are delivered', () => {
    const f = makeFixture({ capacity: 256, maxRecordLength: 120 });
    const x = f.slots.acquire();
    const y = f.slots.acquire();
    const z = f.slots.acquire();
    // X announces an 8-byte claim at the tail and dies before its CAS. Y claims that same
    // position for 48 bytes, writes its payload and dies before publishing it. Y's payload
    // happens to begin with bytes that read as a record header: length 4, type 7.
    terminateAt('compareExchange', 1, () => f.ring.tryClaim(x, 2, 0), {
      before: () => {
        const at = f.ring.tryClaim(y, 3, 40);
        const payload = patterned(5, 40);
        payload.set([5, 0, 0, 0, 7, 0, 0, 0]);
        f.ring.bytes.set(payload, at);
      },
    });
    expect(f.ring.tryWrite(z, 4, patterned(1, 12))).toBe(true);
    expect(f.slots.markDead(x.slot, x.generation)).toBe(true);
    expect(f.slots.markDead(y.slot, y.generation)).toBe(true);
    // Only Z ever committed a record.
    expect(receiveAll(f.ring)).toEqual([[4, [...patterned(1, 12)]]]);
    f.slots.release(z);
    parkBriefly(f.ring);
    expectNoLeak(f.ring, f.slots);
    expectCanariesIntact(f);
  });

  test('two dead announcements over one position: the memory after the ring survives', () => {
    const f = makeFixture({ capacity: 256, maxRecordLength: 120 });
    const x = f.slots.acquire();
    const y = f.slots.acquire();
    const z = f.slots.acquire();
    // As above with a 16-byte announcement, and Y's payload bytes 8..15 reading as a header of a
    // 16 MiB record of type 9.
    terminateAt('compareExchange', 1, () => f.ring.tryClaim(x, 2, 8), {
      before: () => {
        const at = f.ring.tryClaim(y, 3, 120);
        const payload = patterned(77, 120);
        payload.set([1, 1, 1, 1, 9, 0, 0, 0], 8);
        f.ring.bytes.set(payload, at);
      },
    });
    expect(f.ring.tryWrite(z, 4, patterned(1, 12))).toBe(true);
    expect(f.slots.markDead(x.slot, x.generation)).toBe(true);
    expect(f.slots.markDead(y.slot, y.generation)).toBe(true);
    let received: Array<[number, number[]]> = [];
    try {
      received = receiveAll(f.ring);
    } finally {
      expectCanariesIntact(f);
    }
    expect(received).toEqual([[4, [...patterned(1, 12)]]]);
    f.slots.release(z);
    parkBriefly(f.ring);
    expectNoLeak(f.ring, f.slots);
  });

  test('a producer that died before its CAS, over a smaller claim that was committed, is freed once the ring drains', () => {
    const f = makeFixture({ capacity: 256, maxRecordLength: 120 });
    const x = f.slots.acquire();
    const y = f.slots.acquire();
    // X announces 64 bytes at the tail and dies before its CAS; Y takes the position with 16.
    terminateAt('compareExchange', 1, () => f.ring.tryClaim(x, 2, 56), {
      before: () => {
        expect(f.ring.tryWrite(y, 3, patterned(2, 8))).toBe(true);
      },
    });
    expect(f.slots.markDead(x.slot, x.generation)).toBe(true);
    expect(receiveAll(f.ring)).toEqual([[3, [...patterned(2, 8)]]]);
    parkBriefly(f.ring);
    // Nothing of X's is in the ring: its slot must not stay DEAD for as long as the ring is quiet.
    expect(f.slots.deadCount).toBe(0);
    expectNoLeak(f.ring, f.slots, 1);
    f.slots.release(y);
    expectNoLeak(f.ring, f.slots);
  });

  test('a polling consumer (no parking) frees the slot of a dead producer once the ring drains', () => {
    const f = makeFixture({ capacity: 256, maxRecordLength: 120 });
    const d = f.slots.acquire();
    for (let i = 0; i < 3; i++) expect(f.ring.tryWrite(d, 2, patterned(i, 8))).toBe(true);
    expect(f.slots.markDead(d.slot, d.generation)).toBe(true);
    for (let i = 0; i < 3; i++) expect(f.ring.tryRead()).toEqual(patterned(i, 8));
    for (let i = 0; i < 3; i++) expect(f.ring.tryRead()).toBeNull();
    expectNoLeak(f.ring, f.slots);
  });

  test('the owner died right after its CAS (nothing written), a smaller dead announcement at the same position', () => {
    const f = makeFixture({ capacity: 256, maxRecordLength: 120 });
    const x = f.slots.acquire();
    const y = f.slots.acquire();
    const z = f.slots.acquire();
    // X announces 16 bytes and dies before its CAS; Y claims 128 bytes there and dies at once.
    terminateAt('compareExchange', 1, () => f.ring.tryClaim(x, 2, 8), {
      before: () => terminateAt('compareExchange', 1, () => f.ring.tryClaim(y, 3, 120), { after: true }),
    });
    expect(f.ring.usedBytes).toBe(128);
    expect(f.ring.tryWrite(z, 4, patterned(1, 12))).toBe(true);
    expect(f.slots.markDead(x.slot, x.generation)).toBe(true);
    expect(f.slots.markDead(y.slot, y.generation)).toBe(true);
    expect(receiveAll(f.ring)).toEqual([[4, [...patterned(1, 12)]]]);
    f.slots.release(z);
    parkBriefly(f.ring);
    expectNoLeak(f.ring, f.slots);
    expectCanariesIntact(f);
  });

  test('a wrapping owner died before publishing its padding, a smaller dead announcement at the same position', () => {
    const f = makeFixture({ capacity: 256, maxRecordLength: 120 });
    const x = f.slots.acquire();
    const y = f.slots.acquire();
    const z = f.slots.acquire();
    moveTailTo(f, z, 216);
    // At 216, X's 16 bytes fit before the end; Y's 128 do not: Y pads to the end and claims 0.
    terminateAt('compareExchange', 1, () => f.ring.tryClaim(x, 2, 8), {
      before: () => terminateAt('store', 1, () => f.ring.tryClaim(y, 3, 120)),
    });
    expect(f.ring.usedBytes).toBe(40 + 128);
    expect(f.ring.tryWrite(z, 4, patterned(1, 12))).toBe(true);
    expect(f.slots.markDead(x.slot, x.generation)).toBe(true);
    expect(f.slots.markDead(y.slot, y.generation)).toBe(true);
    expect(receiveAll(f.ring)).toEqual([[4, [...patterned(1, 12)]]]);
    f.slots.release(z);
    parkBriefly(f.ring);
    expectNoLeak(f.ring, f.slots);
    expectCanariesIntact(f);
  });

  test('two rings share a slot table: a death on one leaves the other alone, each consumer recovers its own', () => {
    const slotsOffset = 0;
    const ringA = 64 * 8;
    const ringB = ringA + Ring.bytesFor(256);
    const buffer = new SharedArrayBuffer(ringB + Ring.bytesFor(256));
    const slots = ProducerSlots.init(buffer, slotsOffset, 7);
    const a = Ring.init(buffer, ringA, {
      capacity: 256,
      maxRecordLength: 64,
      producerSlotsOffset: slotsOffset,
    });
    const b = Ring.init(buffer, ringB, {
      capacity: 256,
      maxRecordLength: 64,
      producerSlotsOffset: slotsOffset,
    });
    const p = slots.acquire();
    const q = slots.acquire();
    const r = slots.acquire();
    // P writes to A, then claims on B and dies. Q has an open claim on A (slow, alive).
    expect(a.tryWrite(p, 1, patterned(0, 10))).toBe(true);
    b.tryClaim(p, 2, 20);
    const at = a.tryClaim(q, 3, 30);
    expect(a.tryWrite(r, 4, patterned(2, 8))).toBe(true);
    expect(b.tryWrite(r, 5, patterned(3, 8))).toBe(true);
    expect(slots.markDead(p.slot, p.generation)).toBe(true);
    expect(receiveAll(a)).toEqual([[1, [...patterned(0, 10)]]]);
    expect(receiveAll(b)).toEqual([[5, [...patterned(3, 8)]]]);
    expect(a.waitForRecord(0)).toBe(false); // Q is slow, not dead: A waits for it
    a.bytes.set(patterned(1, 30), at);
    a.commit(q);
    expect(receiveAll(a)).toEqual([
      [3, [...patterned(1, 30)]],
      [4, [...patterned(2, 8)]],
    ]);
    for (const x of [q, r]) slots.release(x);
    expect(b.waitForRecord(0)).toBe(false);
    expect(a.waitForRecord(0)).toBe(false);
    expectNoLeak(a, slots);
    expectNoLeak(b, slots);
  });

  test('a producer declared dead while a polling consumer frees other dead slots is freed too', () => {
    const f = makeFixture({ capacity: 256, maxProducers: 3 });
    const a = f.slots.acquire();
    const b = f.slots.acquire();
    // A dies with a claim in flight (DEAD until the consumer recovers it); B after a finished write.
    expect(f.ring.tryClaim(a, 1, 8)).toBeGreaterThan(0);
    expect(f.ring.tryWrite(b, 2, patterned(1, 8))).toBe(true);
    expect(f.slots.markDead(a.slot, a.generation)).toBe(true);
    expect(f.slots.deadCount).toBe(1);
    // B's thread is declared dead just as the consumer, recovering A's claim, looks at B's slot.
    interleaveAfterLoad(
      f.slots.slotWord(b.slot),
      () => expect(f.slots.markDead(b.slot, b.generation)).toBe(true),
      () => expect(f.ring.tryRead()).toEqual(patterned(1, 8)),
    );
    for (let i = 0; i < 5; i++) expect(f.ring.tryRead()).toBeNull();
    expect(f.slots.deadCount).toBe(0);
    expectNoLeak(f.ring, f.slots);
  });

  test('a producer declared dead with no claim in flight is freed at once', () => {
    const f = makeFixture({ capacity: 256, maxProducers: 2 });
    const a = f.slots.acquire();
    expect(f.ring.tryWrite(a, 1, patterned(0, 8))).toBe(true);
    expect(f.slots.markDead(a.slot, a.generation)).toBe(true);
    // Freed without waiting for the consumer: nobody may ever read this ring dry again.
    expect(f.slots.deadCount).toBe(0);
    expect(f.slots.inUse()).toBe(0);
    expect(f.ring.tryRead()).toEqual(patterned(0, 8));
    expectNoLeak(f.ring, f.slots);
  });

  test('many deaths in a row: dead slots are reclaimed and the slot table never runs out', () => {
    const f = makeFixture({ capacity: 512, maxRecordLength: 120, maxProducers: 3 });
    const live = f.slots.acquire();
    for (let round = 0; round < 200; round++) {
      const doomed = f.slots.acquire();
      const length = (round * 13) % 60;
      // Alternate the instant of death: right after its claim, or half way through its payload.
      const at = f.ring.tryClaim(doomed, 9, length);
      expect(at).toBeGreaterThan(0);
      if (round % 2 === 1) f.ring.bytes.set(patterned(round, length).subarray(0, length >> 1), at);
      expect(f.ring.tryWrite(live, 1, patterned(round, 12))).toBe(true);
      expect(f.slots.markDead(doomed.slot, doomed.generation)).toBe(true);
      expect(receiveAll(f.ring)).toEqual([[1, [...patterned(round, 12)]]]);
      parkBriefly(f.ring);
      expect(f.slots.inUse(), `round ${round}`).toBe(1);
    }
    f.slots.release(live);
    expectNoLeak(f.ring, f.slots);
    expectCanariesIntact(f);
  });
});

/** Scales iteration counts: STRESS_SCALE=10 for a soak run. */
const SCALE = Number(process.env.STRESS_SCALE ?? '1');

describe('random sequences with deaths (fast-check)', () => {
  /**
   * The sequential model here is a queue of claims in position order, each
   * open, committed or dead; the consumer must deliver exactly the committed
   * ones, in order, intact, skipping dead ones and stopping at open ones.
   * Deaths are simulated at every instant the ring cares about: before the
   * CAS (alone, or while another producer takes the position), right after
   * the CAS, half way through the payload, and with the payload written.
   */
  type DeathOp =
    | { kind: 'write'; who: number; length: number }
    | { kind: 'claim'; who: number; length: number }
    | { kind: 'commit'; who: number }
    | { kind: 'read' }
    | { kind: 'drain'; limit: number }
    | { kind: 'die'; who: number; when: 'open' | 'beforeCas' | 'afterCas' | 'racing'; length: number };

  interface Claim {
    seq: number;
    length: number;
    state: 'open' | 'committed' | 'dead';
  }

  const LIVE_PRODUCERS = 3;
  const who = fc.integer({ min: 0, max: LIVE_PRODUCERS - 1 });
  const length = fc.double({ min: 0, max: 1, noNaN: true });
  const op: fc.Arbitrary<DeathOp> = fc.oneof(
    { weight: 5, arbitrary: fc.record({ kind: fc.constant('write' as const), who, length }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('claim' as const), who, length }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('commit' as const), who }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('read' as const) }) },
    {
      weight: 2,
      arbitrary: fc.record({ kind: fc.constant('drain' as const), limit: fc.integer({ min: 1, max: 8 }) }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('die' as const),
        who,
        when: fc.constantFrom('open' as const, 'beforeCas' as const, 'afterCas' as const, 'racing' as const),
        length,
      }),
    },
  );
  const scenario = fc.record({
    capacityLog: fc.integer({ min: 6, max: 10 }),
    ops: fc.array(op, { minLength: 1, maxLength: 200 }),
  });

  function run({ capacityLog, ops }: { capacityLog: number; ops: DeathOp[] }): void {
    const capacity = 2 ** capacityLog;
    const max = capacity / 2 - RECORD_HEADER_BYTES;
    const f = makeFixture({ capacity, maxRecordLength: max, maxProducers: 12 });
    const ring = f.ring;
    const queue: Claim[] = [];
    const producers: Producer[] = [];
    const open: Array<{ claim: Claim; at: number } | null> = [];
    let seq = 0;

    const lengthOf = (fraction: number) => Math.min(max, Math.floor(fraction * (max + 1)));
    /** What the consumer must deliver next: skip dead claims at the front, stop at an open one. */
    const expectedNext = (): Claim | null => {
      while (queue[0]?.state === 'dead') queue.shift();
      const front = queue[0];
      return front === undefined || front.state === 'open' ? null : front;
    };
    const check = (type: number, bytes: Uint8Array, offset: number, len: number) => {
      const claim = expectedNext();
      expect(claim, 'a record was delivered that the model does not expect').not.toBeNull();
      expect(type).toBe(1 + (claim!.seq % 255));
      expect(len).toBe(claim!.length);
      checkPattern(claim!.seq, bytes, offset, len);
      queue.shift();
    };
    const acquire = (): Producer => {
      try {
        return f.slots.acquire();
      } catch (error) {
        if (!(error instanceof ProducerSlotsExhausted)) throw error;
        // Every slot is taken by the dead: once the ring drains, the consumer must free them.
        for (let k = 0; k < producers.length; k++) commit(k);
        ring.drain(check);
        parkBriefly(ring);
        return f.slots.acquire();
      }
    };
    const commit = (k: number) => {
      const o = open[k];
      if (o === null || o === undefined) return;
      ring.commit(producers[k]!);
      o.claim.state = 'committed';
      open[k] = null;
    };
    /** Claims for producer k; the claim's payload is written in full. Returns false when full. */
    const claim = (k: number, len: number): boolean => {
      const at = ring.tryClaim(producers[k]!, 1 + (seq % 255), len);
      if (at < 0) return false;
      const c: Claim = { seq, length: len, state: 'open' };
      ring.bytes.set(patterned(seq, len), at);
      queue.push(c);
      open[k] = { claim: c, at };
      seq++;
      return true;
    };

    for (let k = 0; k < LIVE_PRODUCERS; k++) {
      producers.push(acquire());
      open.push(null);
    }

    for (const o of ops) {
      switch (o.kind) {
        case 'write': {
          if (open[o.who] !== null) break;
          const len = lengthOf(o.length);
          if (ring.tryWrite(producers[o.who]!, 1 + (seq % 255), patterned(seq, len))) {
            queue.push({ seq, length: len, state: 'committed' });
            seq++;
          }
          break;
        }
        case 'claim':
          if (open[o.who] === null) claim(o.who, lengthOf(o.length));
          break;
        case 'commit':
          commit(o.who);
          break;
        case 'read': {
          const got = ring.tryRead();
          if (got === null) expect(expectedNext()).toBeNull();
          else check(ring.recordType, got, 0, got.length);
          break;
        }
        case 'drain': {
          const n = ring.drain(check, o.limit);
          if (n < o.limit) expect(expectedNext()).toBeNull();
          break;
        }
        case 'die': {
          const p = producers[o.who]!;
          const len = lengthOf(o.length);
          if (open[o.who] !== null) {
            // Dies with its claim open (payload written): the claim must be skipped.
            open[o.who]!.claim.state = 'dead';
          } else if (o.when === 'beforeCas' || o.when === 'open') {
            terminateAt('compareExchange', 1, () => ring.tryClaim(p, 1, len), { optional: true });
          } else if (o.when === 'afterCas') {
            // When the CAS is reached it succeeds (one thread): a dead claim with nothing written in it.
            const claimed = terminateAt('compareExchange', 1, () => ring.tryClaim(p, 1, len), {
              after: true,
              optional: true,
            });
            if (claimed) queue.push({ seq: -1, length: len, state: 'dead' });
          } else {
            // Racing: it announces at the tail and dies there, while the next live producer claims it.
            const other = (o.who + 1) % LIVE_PRODUCERS;
            terminateAt('compareExchange', 1, () => ring.tryClaim(p, 1, len), {
              optional: true,
              before: () => {
                if (open[other] === null) claim(other, lengthOf(1 - o.length));
              },
            });
          }
          expect(f.slots.markDead(p.slot, p.generation)).toBe(true);
          open[o.who] = null;
          producers[o.who] = acquire();
          break;
        }
      }
      expect(ring.usedBytes).toBeLessThanOrEqual(capacity);
    }

    for (let k = 0; k < LIVE_PRODUCERS; k++) commit(k);
    ring.drain(check);
    expect(expectedNext()).toBeNull();
    for (const p of producers) f.slots.release(p);
    parkBriefly(ring);
    expectNoLeak(ring, f.slots);
    expect(f.slots.deadCount).toBe(0);
    expectCanariesIntact(f);
  }

  test('only committed records come out, in order and whole, whatever dies when', () => {
    const seed = runSeed();
    try {
      fc.assert(fc.property(scenario, run), { seed, numRuns: Math.round(300 * SCALE) });
    } catch (error) {
      console.error(`death property failed: seed ${seed} (replay with TEST_SEED=${seed})`);
      throw error;
    }
  });
});

describe('positions wrap at 2^32', () => {
  test('an idle live producer whose last claim was 4 GiB ago does not block recovery of a dead claim', () => {
    const capacity = 1 << 21;
    const f = makeFixture({ capacity, maxRecordLength: capacity / 2 - RECORD_HEADER_BYTES });
    const idle = f.slots.acquire();
    const busy = f.slots.acquire();
    const doomed = f.slots.acquire();
    const big = (1 << 19) - RECORD_HEADER_BYTES; // a 512 KiB span: 8192 of them make 2^32 bytes
    // The idle producer writes once at position 0, then stays alive and silent.
    expect(f.ring.tryClaim(idle, 1, big)).toBeGreaterThan(0);
    f.ring.commit(idle);
    expect(f.ring.peek()).toBe(big);
    f.ring.release();
    for (let i = 1; i < 8192; i++) {
      expect(f.ring.tryClaim(busy, 2, big)).toBeGreaterThan(0);
      f.ring.commit(busy);
      expect(f.ring.peek()).toBe(big);
      f.ring.release();
    }
    expect(f.ring.peek()).toBe(-1);
    expect(Atomics.load(f.ring.i32, f.ring.base + W_TAIL)).toBe(0); // 2^32 bytes later
    // A producer claims at position 2^32 and dies; the busy one writes after it.
    f.ring.tryClaim(doomed, 3, 16);
    expect(f.ring.tryWrite(busy, 4, patterned(1, 12))).toBe(true);
    expect(f.slots.markDead(doomed.slot, doomed.generation)).toBe(true);
    expect(receiveAll(f.ring)).toEqual([[4, [...patterned(1, 12)]]]);
    f.slots.release(idle);
    f.slots.release(busy);
    parkBriefly(f.ring);
    expectNoLeak(f.ring, f.slots);
  });
});

describe('producers terminated at random points (real worker threads)', () => {
  const workers: Worker[] = [];
  let seedForReport = 0;

  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') {
      console.error(`${context.task.name}: seed ${seedForReport} (replay with TEST_SEED=${seedForReport})`);
    }
    await Promise.all(workers.splice(0).map((w) => w.terminate()));
  });

  interface Running {
    id: number;
    worker: Worker;
    slot: number;
    generation: number;
    finished: Promise<ProducerMessage>;
  }

  /**
   * Fills a ring, starts `start`'s worker (whose writes must then wait for room), kills it
   * while it waits, declares it dead, and checks no waiter registration is left behind:
   * otherwise every hand-back of space pays for a notify of a waiter that is gone, for ever.
   */
  async function killWhileWaitingForRoom(start: (f: Fixture) => ReturnType<typeof spawn>): Promise<void> {
    const f = makeFixture({ capacity: 256, maxRecordLength: 64 });
    const filler = f.slots.acquire();
    while (f.ring.tryWrite(filler, 1, patterned(0, 56))) {
      // fill the ring: the worker's writes find no room
    }
    const worker = start(f);
    workers.push(worker);
    const ready = await nextMessage<ProducerMessage>(worker, (m) => m.kind === 'ready');
    if (ready.kind !== 'ready') throw new Error('unreachable');
    const waiters = () => Atomics.load(f.ring.i32, f.ring.base + W_ROOM_WAITERS);
    // A thread holds one registration per ring however many of its writes wait there.
    for (let i = 0; i < 5000 && waiters() === 0; i++) await sleep(1);
    expect(waiters()).toBe(1);
    const exit = exited(worker);
    await worker.terminate();
    await exit;
    expect(f.slots.markDead(ready.slot, ready.generation)).toBe(true);
    f.ring.drain(() => {});
    parkBriefly(f.ring);
    expect(waiters()).toBe(0);
    f.slots.release(filler);
    expectNoLeak(f.ring, f.slots);
  }

  test('a producer terminated while parked waiting for room leaves no waiter behind', () =>
    killWhileWaitingForRoom((f) =>
      spawn('./producer.worker.ts', {
        buffer: f.buffer,
        ringOffset: f.ringOffset,
        producerId: 1,
        count: -1,
        minLength: TEST_RECORD_MIN,
        maxLength: 64,
        seed: 1,
        mode: 'writeSync',
        control: new SharedArrayBuffer(4),
      } satisfies ProducerInit),
    ));

  test('a worker killed while several of its awaitable writes wait for room leaves no waiter behind', () =>
    killWhileWaitingForRoom((f) =>
      spawn('./room-waiter.worker.ts', { buffer: f.buffer, ringOffset: f.ringOffset, writers: 2 }),
    ));

  test('the consumer keeps receiving whole, ordered records from the survivors; dead slots are reclaimed', async () => {
    const seed = runSeed();
    seedForReport = seed;
    const prng = new Prng(seed);
    const deaths = Math.round(10 * SCALE);
    const f = makeFixture({ capacity: 16384, maxRecordLength: 200, maxProducers: 6 });
    const control = new SharedArrayBuffer(4);
    const verifier = new SequenceVerifier();
    // tryWrite producers write their payload inside the claim and linger there (claimDwell),
    // so a termination often lands between claim and publish. Everyone writes in bursts, so
    // the ring is not always full and producers are not always just waiting for room.
    const modes: ProducerInit['mode'][] = ['tryWrite', 'writeSync', 'tryWrite', 'write'];
    const bursts = { maxBurst: 20, maxPauseMs: 1 };
    let nextId = 0;

    // The consumer: parks on the event loop between batches, checks every record.
    let consuming = true;
    let consumerError: unknown;
    const consumer = (async () => {
      while (consuming) {
        if (await f.ring.waitForRecordAsync(20, PARK_AT_ONCE)) f.ring.drain(verifier.check);
      }
    })().catch((error: unknown) => {
      consumerError = error;
    });

    /** Waits (yielding to the consumer) until `condition` holds; fails on a consumer error or after 10 s. */
    const until = async (condition: () => boolean, what: () => string) => {
      const deadline = performance.now() + 10_000;
      while (!condition()) {
        if (consumerError !== undefined) throw consumerError;
        if (performance.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
        await sleep(2);
      }
      if (consumerError !== undefined) throw consumerError;
    };

    const start = async (): Promise<Running> => {
      const id = nextId++;
      const worker = spawn('./producer.worker.ts', {
        buffer: f.buffer,
        ringOffset: f.ringOffset,
        producerId: id,
        count: -1,
        minLength: TEST_RECORD_MIN,
        maxLength: 200,
        seed: prng.next(),
        mode: modes[id % modes.length]!,
        claimDwell: 3000,
        bursts,
        control,
      } satisfies ProducerInit);
      workers.push(worker);
      const finished = nextMessage<ProducerMessage>(worker, (m) => m.kind !== 'ready');
      finished.catch(() => {}); // a terminated producer never finishes; only survivors are awaited
      const ready = await nextMessage<ProducerMessage>(worker, (m) => m.kind === 'ready');
      if (ready.kind !== 'ready') throw new Error('unreachable');
      return { id, worker, slot: ready.slot, generation: ready.generation, finished };
    };

    /** Whether the producer in `slot` has made a claim that is not yet published. */
    const claimOpen = (slot: number): boolean => {
      const i32 = f.ring.i32;
      const word = f.slots.slotWord(slot);
      const pos = i32[word + SLOT_ANNOUNCE_POS]!;
      const span = i32[word + SLOT_ANNOUNCE_BYTES]!;
      const tail = Atomics.load(i32, f.ring.base + W_TAIL);
      if (span === 0 || ((tail - pos) | 0) <= 0 || ((tail - pos) | 0) > f.ring.capacity) return false;
      const capacity = f.ring.capacity;
      const index = pos & (capacity - 1);
      const recordIndex = span > capacity - index ? 0 : index;
      const dataWord = (f.ringOffset + RING_HEADER_BYTES + recordIndex) >> 2;
      return Atomics.load(i32, dataWord) === 0;
    };

    const running: Running[] = [await start(), await start(), await start(), await start()];
    const dead: number[] = [];
    let deadClaims = 0;
    for (let round = 0; round < deaths; round++) {
      // Let everyone get going, then kill one in the middle of its loop.
      await until(
        () => running.every((r) => verifier.received(r.id) > 0),
        () => `records from every producer (round ${round})`,
      );
      await sleep(prng.int(0, 20));
      let pick = prng.int(0, running.length - 1);
      const aimed = running.findIndex((r) => r.id % 2 === 0);
      if (round % 2 === 0 && aimed >= 0) {
        // Aimed: a tryWrite producer, terminated the moment it is seen inside a claim.
        pick = aimed;
        const slot = running[pick]!.slot;
        for (let spins = 0; spins < 1_000_000 && !claimOpen(slot); spins++) {
          // spin: watch its slot
        }
      }
      const victim = running.splice(pick, 1)[0]!;
      const exit = exited(victim.worker);
      await victim.worker.terminate();
      await exit;
      if (claimOpen(victim.slot)) deadClaims++;
      expect(f.slots.markDead(victim.slot, victim.generation)).toBe(true);
      dead.push(victim.id);
      // The survivors' records keep coming past the dead claim.
      const before = running.map((r) => verifier.received(r.id));
      await until(
        () => running.every((r, k) => verifier.received(r.id) > before[k]! + 10),
        () => `survivors to progress after producer ${victim.id} died (round ${round})`,
      );
      running.push(await start());
    }

    // Survivors stop cleanly and report how much they wrote; every one of those records must arrive.
    Atomics.store(new Int32Array(control), 0, 1);
    const written = await Promise.all(running.map((r) => r.finished));
    await until(
      () => running.every((r, k) => verifier.received(r.id) === (written[k] as { written: number }).written),
      () => `all survivors' records: ${JSON.stringify(Object.fromEntries(verifier.next))}`,
    );
    // Dead slots are reclaimed once the ring drains: only the (released) survivors' slots were live.
    await until(
      () => f.slots.inUse() === 0,
      () => `slots in use to drop to 0 (now ${f.slots.inUse()}, dead ${f.slots.deadCount})`,
    );
    consuming = false;
    await consumer;
    if (consumerError !== undefined) throw consumerError;
    // The aimed terminations did leave claims unpublished: the recovery path was exercised.
    expect(deadClaims).toBeGreaterThan(0);
    for (const id of dead) expect(verifier.received(id)).toBeGreaterThan(0);
    expectNoLeak(f.ring, f.slots);
    expect(f.slots.deadCount).toBe(0);
    expectCanariesIntact(f);
  });
});
