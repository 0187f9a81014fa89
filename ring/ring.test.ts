/**
 * Unit tests of the ring in one thread: edges, bad input, wrap-around,
 * in-place reads, drain, the claim/commit protocol and producer slots.
 * Every test ends with the leak check (ring empty, slots back to baseline)
 * and, where the ring was used, the canary check.
 */

import { afterEach, describe, expect, test } from 'vitest';
import {
  DestinationTooSmall,
  InvalidCapacity,
  InvalidRecordType,
  LayoutMismatch,
  ProducerSlots,
  ProducerSlotsExhausted,
  ProducerStateError,
  RECORD_HEADER_BYTES,
  RecordTooLarge,
  RING_HEADER_BYTES,
  Ring,
  RingError,
  recordBytes,
  WriteTimeout,
} from './index.ts';
import { W_CONSUMER_SLEEP, W_TAIL } from './ring-layout.ts';
import {
  checkPattern,
  expectCanariesIntact,
  expectNoLeak,
  makeFixture,
  patterned,
  ringSnapshot,
  snapshot,
} from './test/fixtures.ts';
import { afterCompareExchange } from './test/interrupt.ts';
import { Prng, runSeed } from './test/records.ts';

/** Records of `rb` bytes that fit a ring of `capacity` whose tail is at `tail` and head at `head`. */
function expectedFit(capacity: number, tail: number, head: number, rb: number): number {
  let n = 0;
  for (;;) {
    const toEnd = capacity - (tail % capacity);
    const span = rb <= toEnd ? rb : toEnd + rb;
    if (tail - head + span > capacity) return n;
    tail += span;
    n++;
  }
}

let seedForReport = 0;
afterEach((context) => {
  if (context.task.result?.state === 'fail' && seedForReport !== 0) {
    console.error(`${context.task.name}: seed ${seedForReport} (replay with TEST_SEED=${seedForReport})`);
  }
  seedForReport = 0;
});

describe('capacity and record-length validation', () => {
  test.each([0, 32, 63, 65, 100, 1000, -64, 1.5, Number.NaN, 2 ** 31, 2 ** 30 * 2])(
    'capacity %s is refused with InvalidCapacity',
    (capacity) => {
      expect(() => Ring.bytesFor(capacity)).toThrow(InvalidCapacity);
      expect(() => Ring.create({ capacity })).toThrow(InvalidCapacity);
    },
  );

  test('the smallest and largest capacities are accepted by bytesFor', () => {
    expect(Ring.bytesFor(64)).toBe(RING_HEADER_BYTES + 64);
    expect(Ring.bytesFor(2 ** 30)).toBe(RING_HEADER_BYTES + 2 ** 30);
  });

  test.each([-1, 1.5, 1024 / 2 - RECORD_HEADER_BYTES + 1, 1024])(
    'maxRecordLength %s for capacity 1024 is refused',
    (maxRecordLength) => {
      expect(() => Ring.create({ capacity: 1024, maxRecordLength })).toThrow(InvalidCapacity);
    },
  );

  test('init refuses a bad capacity without touching the buffer', () => {
    const f = makeFixture({ capacity: 256 });
    const before = snapshot(f.buffer);
    expect(() =>
      Ring.init(f.buffer, f.ringOffset, { capacity: 96, producerSlotsOffset: f.slotsOffset }),
    ).toThrow(InvalidCapacity);
    expect(snapshot(f.buffer)).toEqual(before);
    expectNoLeak(f.ring, f.slots);
  });
});

describe('empty and full', () => {
  test('an empty ring has nothing to read', () => {
    const f = makeFixture({ capacity: 256 });
    expect(f.ring.peek()).toBe(-1);
    expect(f.ring.peekView()).toBeNull();
    expect(f.ring.tryRead()).toBeNull();
    expect(f.ring.tryReadInto(new Uint8Array(16))).toBe(-1);
    expect(f.ring.drain(() => expect.unreachable())).toBe(0);
    expect(f.ring.usedBytes).toBe(0);
    expect(() => f.ring.release()).toThrow(RingError);
    expectNoLeak(f.ring, f.slots);
    expectCanariesIntact(f);
  });

  test.each([
    { capacity: 64, length: 0 },
    { capacity: 64, length: 8 },
    { capacity: 256, length: 1 },
    { capacity: 256, length: 24 },
    { capacity: 256, length: 29 },
    { capacity: 1024, length: 100 },
    { capacity: 1024, length: 504 },
  ])(
    'capacity $capacity fills with exactly capacity/recordBytes records of $length bytes',
    ({ capacity, length }) => {
      const f = makeFixture({ capacity, maxRecordLength: capacity / 2 - RECORD_HEADER_BYTES });
      const p = f.slots.acquire();
      const rb = recordBytes(length);
      const fit = Math.floor(capacity / rb);
      for (let round = 0; round < 3; round++) {
        // Round 0 starts at position 0; later rounds start wherever the last one left the tail.
        const tailBefore = (Atomics.load(f.ring.i32, f.ring.base + W_TAIL) >>> 0) % capacity;
        const expected = round === 0 ? fit : expectedFit(capacity, tailBefore, tailBefore, rb);
        let n = 0;
        while (f.ring.tryWrite(p, 1 + (n % 255), patterned(n, length))) n++;
        expect(n).toBe(expected);
        // A refused write changes nothing, however often it is retried.
        const full = ringSnapshot(f);
        for (let i = 0; i < 5; i++) expect(f.ring.tryWrite(p, 1, patterned(0, length))).toBe(false);
        expect(ringSnapshot(f)).toEqual(full);
        for (let i = 0; i < n; i++) {
          const got = f.ring.tryRead();
          expect(got).not.toBeNull();
          expect(f.ring.recordType).toBe(1 + (i % 255));
          checkPattern(i, got!, 0, length);
        }
        expect(f.ring.tryRead()).toBeNull();
        expect(f.ring.usedBytes).toBe(0);
      }
      f.slots.release(p);
      expectNoLeak(f.ring, f.slots);
      expectCanariesIntact(f);
    },
  );

  test('a full ring takes a record again as soon as the consumer has drained it', () => {
    const f = makeFixture({ capacity: 128 });
    const p = f.slots.acquire();
    let n = 0;
    while (f.ring.tryWrite(p, 1, patterned(n, 8))) n++;
    expect(n).toBe(128 / 16);
    expect(f.ring.drain(() => {})).toBe(n);
    expect(f.ring.tryWrite(p, 1, patterned(0, 8))).toBe(true);
    f.slots.release(p);
    expectNoLeak(f.ring, f.slots);
    expectCanariesIntact(f);
  });

  test('zero-length records carry their type and nothing else', () => {
    const f = makeFixture({ capacity: 64, maxRecordLength: 0 });
    const p = f.slots.acquire();
    let n = 0;
    while (f.ring.tryWrite(p, 7 + n, new Uint8Array(0))) n++;
    expect(n).toBe(64 / RECORD_HEADER_BYTES);
    for (let i = 0; i < n; i++) {
      const got = f.ring.tryRead();
      expect(got).toEqual(new Uint8Array(0));
      expect(f.ring.recordType).toBe(7 + i);
    }
    f.slots.release(p);
    expectNoLeak(f.ring, f.slots);
    expectCanariesIntact(f);
  });

  test.each([64, 256, 1024])(
    'a maximum-length record fits an empty ring at every wrap position (capacity %s)',
    (capacity) => {
      const max = capacity / 2 - RECORD_HEADER_BYTES;
      const f = makeFixture({ capacity, maxRecordLength: max });
      const p = f.slots.acquire();
      expect(f.ring.maxRecordLength).toBe(max);
      const tailIndex = () => (Atomics.load(f.ring.i32, f.ring.base + W_TAIL) >>> 0) % capacity;
      for (let target = 0; target < capacity; target += 8) {
        // Zero-length records take 8 bytes and never pad: they walk the tail to the target position.
        while (tailIndex() !== target) {
          expect(f.ring.tryWrite(p, 1, new Uint8Array(0))).toBe(true);
          expect(f.ring.tryRead()).toEqual(new Uint8Array(0));
        }
        expect(f.ring.tryWrite(p, 3, patterned(target, max))).toBe(true);
        checkPattern(target, f.ring.tryRead()!, 0, max);
        expect(f.ring.recordType).toBe(3);
        expect(f.ring.tryRead()).toBeNull();
      }
      f.slots.release(p);
      expectNoLeak(f.ring, f.slots);
      expectCanariesIntact(f);
    },
  );

  test('the default maximum record length is capacity / 8 - 8', () => {
    const { ring } = Ring.create({ capacity: 1024 });
    expect(ring.maxRecordLength).toBe(1024 / 8 - 8);
  });
});

describe('bad input changes nothing', () => {
  test('maxRecordLength + 1 throws RecordTooLarge and leaves the ring as it was', () => {
    const f = makeFixture({ capacity: 256, maxRecordLength: 40 });
    const p = f.slots.acquire();
    expect(f.ring.tryWrite(p, 1, patterned(0, 40))).toBe(true);
    const before = snapshot(f.buffer);
    const error = (() => {
      try {
        f.ring.tryWrite(p, 1, patterned(1, 41));
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(RecordTooLarge);
    expect(error).toMatchObject({ length: 41, maxRecordLength: 40 });
    expect(() => f.ring.tryClaim(p, 1, 41)).toThrow(RecordTooLarge);
    expect(snapshot(f.buffer)).toEqual(before);
    // The producer is still usable and the earlier record is intact.
    expect(f.ring.tryWrite(p, 2, patterned(2, 40))).toBe(true);
    checkPattern(0, f.ring.tryRead()!, 0, 40);
    checkPattern(2, f.ring.tryRead()!, 0, 40);
    f.slots.release(p);
    expectNoLeak(f.ring, f.slots);
    expectCanariesIntact(f);
  });

  test.each([0, 256, -1, 1.5, Number.NaN, 1000])(
    'record type %s throws InvalidRecordType, nothing changed',
    (type) => {
      const f = makeFixture({ capacity: 256 });
      const p = f.slots.acquire();
      const before = snapshot(f.buffer);
      expect(() => f.ring.tryWrite(p, type, patterned(0, 4))).toThrow(InvalidRecordType);
      expect(() => f.ring.tryClaim(p, type, 4)).toThrow(InvalidRecordType);
      expect(() => f.ring.writeSync(p, type, patterned(0, 4), 0)).toThrow(InvalidRecordType);
      expect(snapshot(f.buffer)).toEqual(before);
      expect(f.ring.tryWrite(p, 255, patterned(0, 4))).toBe(true);
      expect(f.ring.tryRead()).toEqual(patterned(0, 4));
      expect(f.ring.recordType).toBe(255);
      f.slots.release(p);
      expectNoLeak(f.ring, f.slots);
    },
  );

  test('an awaitable write of a bad record rejects at once with the typed error', async () => {
    const f = makeFixture({ capacity: 256, maxRecordLength: 16 });
    const p = f.slots.acquire();
    await expect(f.ring.write(p, 0, new Uint8Array(1))).rejects.toThrow(InvalidRecordType);
    await expect(f.ring.write(p, 1, new Uint8Array(17))).rejects.toThrow(RecordTooLarge);
    f.slots.release(p);
    expectNoLeak(f.ring, f.slots);
  });

  test('a source range outside the source array is refused', () => {
    const f = makeFixture({ capacity: 256 });
    const p = f.slots.acquire();
    const before = snapshot(f.buffer);
    expect(() => f.ring.tryWrite(p, 1, new Uint8Array(8), 4, 8)).toThrow(RangeError);
    expect(() => f.ring.tryWrite(p, 1, new Uint8Array(8), -1, 2)).toThrow(RangeError);
    expect(() => f.ring.tryClaim(p, 1, -1)).toThrow(RangeError);
    expect(snapshot(f.buffer)).toEqual(before);
    expect(f.ring.tryWrite(p, 1, patterned(5, 16), 4, 6)).toBe(true);
    expect(f.ring.tryRead()).toEqual(patterned(5, 16).subarray(4, 10));
    f.slots.release(p);
    expectNoLeak(f.ring, f.slots);
  });
});

describe('attaching to the wrong place', () => {
  test('misaligned, out of range and non-ring offsets throw LayoutMismatch', () => {
    const f = makeFixture({ capacity: 256 });
    const before = snapshot(f.buffer);
    for (const offset of [f.ringOffset + 4, f.ringOffset + 32, -64, 1.5]) {
      expect(() => Ring.attach(f.buffer, offset)).toThrow(LayoutMismatch);
    }
    expect(() => Ring.attach(f.buffer, f.buffer.byteLength)).toThrow(LayoutMismatch);
    expect(() => Ring.attach(f.buffer, f.buffer.byteLength + 64)).toThrow(LayoutMismatch);
    // Aligned and in range, but no ring there: the canary block, the slot region, the record space.
    expect(() => Ring.attach(f.buffer, 0)).toThrow(LayoutMismatch);
    expect(() => Ring.attach(f.buffer, f.slotsOffset)).toThrow(LayoutMismatch);
    expect(() => Ring.attach(f.buffer, f.ringOffset + RING_HEADER_BYTES)).toThrow(LayoutMismatch);
    expect(snapshot(f.buffer)).toEqual(before);
    expectNoLeak(f.ring, f.slots);
  });

  test('another buffer, a plain ArrayBuffer and a truncated copy throw LayoutMismatch', () => {
    const f = makeFixture({ capacity: 1024 });
    expect(() => Ring.attach(new SharedArrayBuffer(f.buffer.byteLength), f.ringOffset)).toThrow(
      LayoutMismatch,
    );
    expect(() =>
      Ring.attach(new ArrayBuffer(f.buffer.byteLength) as unknown as SharedArrayBuffer, f.ringOffset),
    ).toThrow(LayoutMismatch);
    // The header says 1024 bytes of record space; this buffer cannot hold them.
    const truncated = new SharedArrayBuffer(f.ringOffset + RING_HEADER_BYTES + 512);
    new Uint8Array(truncated).set(new Uint8Array(f.buffer, 0, truncated.byteLength));
    expect(() => Ring.attach(truncated, f.ringOffset)).toThrow(LayoutMismatch);
    expectNoLeak(f.ring, f.slots);
  });

  test('a ring with a different layout version is refused', () => {
    const f = makeFixture({ capacity: 256 });
    const copy = new SharedArrayBuffer(f.buffer.byteLength);
    new Uint8Array(copy).set(new Uint8Array(f.buffer));
    new Int32Array(copy)[(f.ringOffset >> 2) + 1] = 99;
    expect(() => Ring.attach(copy, f.ringOffset)).toThrow(LayoutMismatch);
    expectNoLeak(f.ring, f.slots);
  });

  test('init refuses a misaligned offset, a region past the end and a missing slot region', () => {
    const f = makeFixture({ capacity: 256 });
    const before = snapshot(f.buffer);
    const options = { capacity: 256, producerSlotsOffset: f.slotsOffset };
    expect(() => Ring.init(f.buffer, f.ringOffset + 8, options)).toThrow(LayoutMismatch);
    expect(() => Ring.init(f.buffer, f.buffer.byteLength - 64, options)).toThrow(LayoutMismatch);
    expect(() =>
      Ring.init(f.buffer, f.ringOffset, { capacity: 256, producerSlotsOffset: f.ringOffset + 256 }),
    ).toThrow(LayoutMismatch);
    expect(() => Ring.init(f.buffer, f.ringOffset, { capacity: 256, producerSlotsOffset: 0 })).toThrow(
      LayoutMismatch,
    );
    expect(snapshot(f.buffer)).toEqual(before);
    expectNoLeak(f.ring, f.slots);
  });

  test('init refuses a ring region that overlaps its own producer-slot region', () => {
    const f = makeFixture({ capacity: 256, maxProducers: 8 });
    const p = f.slots.acquire();
    const before = snapshot(f.buffer);
    // Laid over the slot table itself, or starting inside it: either would wipe live slots.
    for (const at of [f.slotsOffset, f.slotsOffset + 64]) {
      expect(() => Ring.init(f.buffer, at, { capacity: 64, producerSlotsOffset: f.slotsOffset })).toThrow(
        LayoutMismatch,
      );
    }
    expect(snapshot(f.buffer)).toEqual(before);
    expect(f.slots.inUse()).toBe(1);
    f.slots.release(p);
    expectNoLeak(f.ring, f.slots);
    expectCanariesIntact(f);
  });

  test('producer slots: wrong offsets and counts throw LayoutMismatch', () => {
    const f = makeFixture({ capacity: 256 });
    expect(() => ProducerSlots.attach(f.buffer, f.slotsOffset + 4)).toThrow(LayoutMismatch);
    expect(() => ProducerSlots.attach(f.buffer, f.ringOffset)).toThrow(LayoutMismatch);
    expect(() => ProducerSlots.attach(f.buffer, f.buffer.byteLength)).toThrow(LayoutMismatch);
    expect(() => ProducerSlots.bytesFor(0)).toThrow(LayoutMismatch);
    expect(() => ProducerSlots.init(new SharedArrayBuffer(128), 0, 2)).toThrow(LayoutMismatch);
    expect(ProducerSlots.attach(f.buffer, f.slotsOffset).count).toBe(f.slots.count);
    expectNoLeak(f.ring, f.slots);
  });
});

describe('copying and in-place reads', () => {
  test('DestinationTooSmall leaves the record in place', () => {
    const f = makeFixture({ capacity: 256 });
    const p = f.slots.acquire();
    expect(f.ring.tryWrite(p, 9, patterned(1, 20))).toBe(true);
    expect(f.ring.tryWrite(p, 10, patterned(2, 3))).toBe(true);
    const used = f.ring.usedBytes;
    let error: unknown;
    try {
      f.ring.tryReadInto(new Uint8Array(19));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DestinationTooSmall);
    expect(error).toMatchObject({ needed: 20, available: 19 });
    expect(() => f.ring.tryReadInto(new Uint8Array(32), 13)).toThrow(DestinationTooSmall);
    expect(f.ring.usedBytes).toBe(used);
    const dest = new Uint8Array(32).fill(0xee);
    expect(f.ring.tryReadInto(dest, 12)).toBe(20);
    expect(f.ring.recordType).toBe(9);
    expect(dest.subarray(0, 12)).toEqual(new Uint8Array(12).fill(0xee));
    checkPattern(1, dest, 12, 20);
    expect(f.ring.tryReadInto(dest)).toBe(3);
    expect(f.ring.recordType).toBe(10);
    checkPattern(2, dest, 0, 3);
    f.slots.release(p);
    expectNoLeak(f.ring, f.slots);
    expectCanariesIntact(f);
  });

  test('a peeked view stays valid, and peek keeps returning it, until release', () => {
    const f = makeFixture({ capacity: 256, maxRecordLength: 64 });
    const p = f.slots.acquire();
    expect(f.ring.tryWrite(p, 4, patterned(0, 64))).toBe(true);
    const view = f.ring.peekView()!;
    checkPattern(0, view, 0, 64);
    expect(f.ring.peek()).toBe(64);
    expect(f.ring.recordType).toBe(4);
    // Producers keep writing until the ring is full: none of it may land on the peeked record.
    let n = 1;
    while (f.ring.tryWrite(p, 5, patterned(n, 40))) n++;
    expect(n).toBeGreaterThan(1);
    checkPattern(0, view, 0, 64);
    expect(f.ring.peekView()).toEqual(view);
    checkPattern(0, f.ring.bytes, f.ring.recordOffset, 64);
    f.ring.release();
    expect(() => f.ring.release()).toThrow(RingError);
    for (let i = 1; i < n; i++) checkPattern(i, f.ring.tryRead()!, 0, 40);
    f.slots.release(p);
    expectNoLeak(f.ring, f.slots);
    expectCanariesIntact(f);
  });

  test('drain hands records in order and stops at the limit', () => {
    const f = makeFixture({ capacity: 1024 });
    const p = f.slots.acquire();
    for (let i = 0; i < 10; i++) expect(f.ring.tryWrite(p, 1 + i, patterned(i, i * 3))).toBe(true);
    const seen: number[] = [];
    const handler = (type: number, bytes: Uint8Array, offset: number, length: number) => {
      const i = type - 1;
      expect(length).toBe(i * 3);
      checkPattern(i, bytes, offset, length);
      seen.push(i);
    };
    expect(f.ring.drain(handler, 3)).toBe(3);
    expect(seen).toEqual([0, 1, 2]);
    expect(f.ring.drain(handler, 0)).toBe(0);
    expect(f.ring.drain(handler)).toBe(7);
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(f.ring.drain(handler)).toBe(0);
    f.slots.release(p);
    expectNoLeak(f.ring, f.slots);
  });

  test('a throwing drain handler consumes its record and the next drain goes on', () => {
    const f = makeFixture({ capacity: 1024 });
    const p = f.slots.acquire();
    for (let i = 0; i < 5; i++) expect(f.ring.tryWrite(p, 1 + i, patterned(i, 12))).toBe(true);
    const seen: number[] = [];
    expect(() =>
      f.ring.drain((type) => {
        seen.push(type);
        if (type === 2) throw new Error('handler failed');
      }),
    ).toThrow('handler failed');
    expect(seen).toEqual([1, 2]);
    expect(
      f.ring.drain((type, bytes, offset, length) => {
        checkPattern(type - 1, bytes, offset, length);
        seen.push(type);
      }),
    ).toBe(3);
    expect(seen).toEqual([1, 2, 3, 4, 5]);
    f.slots.release(p);
    expectNoLeak(f.ring, f.slots);
  });
});

describe('copies of every small size and source offset', () => {
  test('each length 0..64 from each source offset 0..7 arrives intact, neighbours untouched', () => {
    const f = makeFixture({ capacity: 1024, maxRecordLength: 120 });
    const a = f.slots.acquire();
    const b = f.slots.acquire();
    const source = patterned(99, 80);
    let n = 0;
    for (let length = 0; length <= 64; length++) {
      for (let offset = 0; offset < 8; offset++) {
        // A's write claims first; B's record right after it is committed before A copies its
        // payload, so a copy that ran past A's record would show in B's record.
        afterCompareExchange(
          1,
          () => expect(f.ring.tryWrite(b, 2, patterned(n, 3))).toBe(true),
          () => expect(f.ring.tryWrite(a, 1, source, offset, length)).toBe(true),
        );
        const dest = new Uint8Array(80).fill(0xcc);
        expect(f.ring.tryReadInto(dest, 8 - offset)).toBe(length);
        expect(f.ring.recordType).toBe(1);
        expect(dest.subarray(8 - offset, 8 - offset + length)).toEqual(
          source.subarray(offset, offset + length),
        );
        // tryReadInto writes nothing outside the record's bytes in the destination.
        expect(dest.subarray(0, 8 - offset).every((x) => x === 0xcc)).toBe(true);
        expect(dest.subarray(8 - offset + length).every((x) => x === 0xcc)).toBe(true);
        expect(f.ring.tryRead()).toEqual(patterned(n, 3));
        expect(f.ring.recordType).toBe(2);
        n++;
      }
    }
    f.slots.release(a);
    f.slots.release(b);
    expectNoLeak(f.ring, f.slots);
    expectCanariesIntact(f);
  });
});

describe('random sizes wrap the ring about a hundred times', () => {
  test.each([64, 128, 512, 4096, 65536])('capacity %s', (capacity) => {
    const seed = runSeed();
    seedForReport = seed;
    const prng = new Prng(seed);
    const max = prng.int(0, capacity / 2 - RECORD_HEADER_BYTES);
    const f = makeFixture({ capacity, maxRecordLength: max });
    const p = f.slots.acquire();
    const headerBefore = new Int32Array(f.buffer, f.ringOffset, 5).slice();
    const slotHeaderBefore = new Int32Array(f.buffer, f.slotsOffset, 3).slice();
    let written = 0;
    let read = 0;
    let bytes = 0;
    const pending: number[] = []; // lengths of records written and not yet read
    const dest = new Uint8Array(max);
    while (bytes < capacity * 100) {
      // Bias towards writing so the ring is often full; read in random bursts.
      if (prng.float() < 0.6) {
        const length = prng.int(0, max);
        let accepted = f.ring.tryWrite(p, 1 + (written % 255), patterned(written, length));
        if (!accepted && pending.length === 0) {
          // Nothing unread, yet refused: the consumer still holds back what it consumed. Only
          // rings whose largest claim may not fit beside that hold-back allow it, and there the
          // consumer's next look at the empty ring hands the space back.
          expect(f.ring.handsBackWhenDry).toBe(true);
          expect(f.ring.peek()).toBe(-1);
          accepted = f.ring.tryWrite(p, 1 + (written % 255), patterned(written, length));
          expect(accepted).toBe(true);
        }
        if (accepted) {
          pending.push(length);
          written++;
          bytes += recordBytes(length);
        }
      } else {
        for (let k = prng.int(1, 4); k > 0; k--) {
          const how = prng.int(0, 2);
          let length: number;
          if (how === 0) {
            length = f.ring.tryReadInto(dest);
            if (length >= 0) checkPattern(read, dest, 0, length);
          } else if (how === 1) {
            length = f.ring.peek();
            if (length >= 0) {
              checkPattern(read, f.ring.bytes, f.ring.recordOffset, length);
              f.ring.release();
            }
          } else {
            length = -1;
            f.ring.drain((_type, b, offset, l) => {
              checkPattern(read, b, offset, l);
              length = l;
            }, 1);
          }
          if (length < 0) {
            expect(pending.length).toBe(0);
            break;
          }
          expect(f.ring.recordType).toBe(1 + (read % 255));
          expect(length).toBe(pending.shift());
          read++;
        }
      }
    }
    while (pending.length > 0) {
      const got = f.ring.tryRead()!;
      expect(got.length).toBe(pending.shift());
      checkPattern(read++, got, 0, got.length);
    }
    expect(read).toBe(written);
    expect(new Int32Array(f.buffer, f.ringOffset, 5)).toEqual(headerBefore);
    expect(new Int32Array(f.buffer, f.slotsOffset, 3)).toEqual(slotHeaderBefore);
    f.slots.release(p);
    expectNoLeak(f.ring, f.slots);
    expectCanariesIntact(f);
  });
});

describe('claim and commit protocol', () => {
  test('a claimed record is invisible until committed, then delivered in place', () => {
    const f = makeFixture({ capacity: 256 });
    const p = f.slots.acquire();
    const at = f.ring.tryClaim(p, 6, 10);
    expect(at).toBeGreaterThanOrEqual(f.ringOffset + RING_HEADER_BYTES);
    f.ring.bytes.set(patterned(3, 10), at);
    expect(f.ring.peek()).toBe(-1);
    f.ring.commit(p);
    expect(f.ring.peek()).toBe(10);
    expect(f.ring.recordType).toBe(6);
    checkPattern(3, f.ring.bytes, f.ring.recordOffset, 10);
    f.ring.release();
    f.slots.release(p);
    expectNoLeak(f.ring, f.slots);
  });

  test('commit without a claim, a second claim and a released producer are protocol errors', () => {
    const f = makeFixture({ capacity: 256 });
    const p = f.slots.acquire();
    expect(() => f.ring.commit(p)).toThrow(ProducerStateError);
    expect(f.ring.tryClaim(p, 1, 4)).toBeGreaterThan(0);
    const before = snapshot(f.buffer);
    expect(() => f.ring.tryClaim(p, 1, 4)).toThrow(ProducerStateError);
    expect(() => f.ring.tryWrite(p, 1, new Uint8Array(4))).toThrow(ProducerStateError);
    expect(() => f.slots.release(p)).toThrow(ProducerStateError);
    expect(snapshot(f.buffer)).toEqual(before);
    f.ring.commit(p);
    expect(() => f.ring.commit(p)).toThrow(ProducerStateError);
    f.slots.release(p);
    f.slots.release(p); // idempotent
    expect(() => f.ring.tryClaim(p, 1, 4)).toThrow(ProducerStateError);
    expect(() => f.ring.tryWrite(p, 1, new Uint8Array(4))).toThrow(ProducerStateError);
    expect(f.ring.drain(() => {})).toBe(1);
    expectNoLeak(f.ring, f.slots);
  });

  test('a claim on one ring cannot be committed on another', () => {
    const slotsOffset = 0;
    const ringA = 64 * 8;
    const ringB = ringA + Ring.bytesFor(256);
    const buffer = new SharedArrayBuffer(ringB + Ring.bytesFor(256));
    const slots = ProducerSlots.init(buffer, slotsOffset, 4);
    const a = Ring.init(buffer, ringA, { capacity: 256, producerSlotsOffset: slotsOffset });
    const b = Ring.init(buffer, ringB, { capacity: 256, producerSlotsOffset: slotsOffset });
    const p = slots.acquire();
    expect(a.tryClaim(p, 1, 4)).toBeGreaterThan(0);
    expect(() => b.commit(p)).toThrow(ProducerStateError);
    expect(() => b.tryClaim(p, 1, 4)).toThrow(ProducerStateError);
    a.commit(p);
    expect(b.tryWrite(p, 2, new Uint8Array([1, 2]))).toBe(true);
    expect(a.tryRead()).toEqual(new Uint8Array(4));
    expect(b.tryRead()).toEqual(new Uint8Array([1, 2]));
    slots.release(p);
    expectNoLeak(a, slots);
    expectNoLeak(b, slots);
  });

  test("a producer of another buffer's slot table is refused", () => {
    const f = makeFixture({ capacity: 256 });
    const other = makeFixture({ capacity: 256 });
    const stranger = other.slots.acquire();
    const before = snapshot(f.buffer);
    expect(() => f.ring.tryWrite(stranger, 1, new Uint8Array(4))).toThrow(ProducerStateError);
    expect(() => f.slots.release(stranger)).toThrow(ProducerStateError);
    expect(snapshot(f.buffer)).toEqual(before);
    other.slots.release(stranger);
    expectNoLeak(f.ring, f.slots);
    expectNoLeak(other.ring, other.slots);
  });
});

describe('producer slots', () => {
  test('acquire throws ProducerSlotsExhausted when every slot is taken, and works again after a release', () => {
    const f = makeFixture({ capacity: 256, maxProducers: 3 });
    const ps = [f.slots.acquire(), f.slots.acquire(), f.slots.acquire()];
    expect(new Set(ps.map((p) => p.slot)).size).toBe(3);
    expect(f.slots.inUse()).toBe(3);
    expect(() => f.slots.acquire()).toThrow(ProducerSlotsExhausted);
    f.slots.release(ps[1]!);
    expect(f.slots.inUse()).toBe(2);
    const again = f.slots.acquire();
    expect(again.slot).toBe(ps[1]!.slot);
    expect(again.generation).not.toBe(ps[1]!.generation);
    expect(() => f.slots.acquire()).toThrow(ProducerSlotsExhausted);
    for (const p of [ps[0]!, again, ps[2]!]) f.slots.release(p);
    expectNoLeak(f.ring, f.slots);
  });

  test('markDead of a stale generation returns false and leaves the new owner alone', () => {
    const f = makeFixture({ capacity: 256, maxProducers: 1 });
    const first = f.slots.acquire();
    expect(f.ring.tryWrite(first, 1, new Uint8Array([1]))).toBe(true);
    f.slots.release(first);
    const second = f.slots.acquire();
    expect(second.slot).toBe(first.slot);
    expect(f.slots.markDead(first.slot, first.generation)).toBe(false);
    expect(f.slots.deadCount).toBe(0);
    expect(f.slots.inUse()).toBe(1);
    expect(f.ring.tryWrite(second, 2, new Uint8Array([2]))).toBe(true);
    expect(f.ring.tryRead()).toEqual(new Uint8Array([1]));
    expect(f.ring.tryRead()).toEqual(new Uint8Array([2]));
    // The current generation can be declared dead, once.
    expect(f.slots.markDead(second.slot, second.generation)).toBe(true);
    expect(f.slots.markDead(second.slot, second.generation)).toBe(false);
    expect(() => f.slots.markDead(1, 0)).toThrow(ProducerStateError);
    expect(() => f.slots.markDead(-1, 0)).toThrow(ProducerStateError);
    // Its records were all published: once the ring drains and the consumer parks, the slot is free.
    expect(f.ring.waitForRecord(0)).toBe(false);
    expectNoLeak(f.ring, f.slots);
  });

  test('markDead of a producer that never claimed frees its slot at once', () => {
    const f = makeFixture({ capacity: 256, maxProducers: 2 });
    const p = f.slots.acquire();
    expect(f.slots.markDead(p.slot, p.generation)).toBe(true);
    expect(f.slots.deadCount).toBe(0);
    expectNoLeak(f.ring, f.slots);
  });
});

describe('waiting for room and for records (one thread)', () => {
  test('writeSync and write give up on a full ring without writing', async () => {
    const f = makeFixture({ capacity: 64, maxRecordLength: 24 });
    const p = f.slots.acquire();
    expect(f.ring.tryWrite(p, 1, patterned(0, 24))).toBe(true);
    expect(f.ring.tryWrite(p, 1, patterned(1, 24))).toBe(true);
    const full = ringSnapshot(f);
    expect(f.ring.writeSync(p, 1, patterned(2, 8), 1)).toBe(false);
    await expect(f.ring.write(p, 1, patterned(2, 8), { timeoutMs: 1 })).rejects.toThrow(WriteTimeout);
    const aborted = new AbortController();
    aborted.abort(new Error('stop'));
    await expect(f.ring.write(p, 1, patterned(2, 8), { signal: aborted.signal })).rejects.toThrow('stop');
    const later = new AbortController();
    const pending = f.ring.write(p, 1, patterned(2, 8), { signal: later.signal });
    later.abort(new Error('stop later'));
    await expect(pending).rejects.toThrow('stop later');
    expect(ringSnapshot(f)).toEqual(full);
    checkPattern(0, f.ring.tryRead()!, 0, 24);
    checkPattern(1, f.ring.tryRead()!, 0, 24);
    f.slots.release(p);
    expectNoLeak(f.ring, f.slots);
    expectCanariesIntact(f);
  });

  test('an awaitable write on a full ring completes once the consumer drains', async () => {
    const f = makeFixture({ capacity: 64, maxRecordLength: 24 });
    const p = f.slots.acquire();
    expect(f.ring.tryWrite(p, 1, patterned(0, 24))).toBe(true);
    expect(f.ring.tryWrite(p, 1, patterned(1, 24))).toBe(true);
    let done = false;
    const pending = f.ring.write(p, 2, patterned(2, 24)).then(() => {
      done = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(done).toBe(false);
    expect(f.ring.drain(() => {})).toBe(2);
    await pending;
    expect(f.ring.tryRead()).toEqual(patterned(2, 24));
    expect(f.ring.recordType).toBe(2);
    f.slots.release(p);
    expectNoLeak(f.ring, f.slots);
  });

  test('producers notify only when the consumer is asleep, once per sleep', async () => {
    const f = makeFixture({ capacity: 1024 });
    const p = f.slots.acquire();
    const realNotify = Atomics.notify;
    let notifies = 0;
    Atomics.notify = ((array: Int32Array, index: number, count?: number) => {
      notifies++;
      return realNotify(array, index, count);
    }) as typeof Atomics.notify;
    try {
      // The consumer is awake (not waiting): no notify, however many records.
      for (let i = 0; i < 20; i++) expect(f.ring.tryWrite(p, 1, patterned(i, 4))).toBe(true);
      expect(notifies).toBe(0);
      expect(f.ring.drain(() => {})).toBe(20);
      // The consumer parks on the event loop: the first record wakes it, the next ones do not notify.
      const woke = f.ring.waitForRecordAsync();
      await new Promise((resolve) => setImmediate(resolve));
      expect(f.ring.tryWrite(p, 1, patterned(20, 4))).toBe(true);
      expect(notifies).toBe(1);
      expect(f.ring.tryWrite(p, 1, patterned(21, 4))).toBe(true);
      expect(f.ring.tryWrite(p, 1, patterned(22, 4))).toBe(true);
      expect(notifies).toBe(1);
      expect(await woke).toBe(true);
      expect(f.ring.drain(() => {})).toBe(3);
    } finally {
      Atomics.notify = realNotify;
    }
    f.slots.release(p);
    expectNoLeak(f.ring, f.slots);
  });

  test('waitForRecord and waitForRecordAsync return at once when a record is there, false on timeout', async () => {
    const f = makeFixture({ capacity: 256 });
    const p = f.slots.acquire();
    expect(f.ring.waitForRecord(0)).toBe(false);
    expect(await f.ring.waitForRecordAsync(1)).toBe(false);
    expect(f.ring.tryWrite(p, 1, patterned(0, 5))).toBe(true);
    expect(f.ring.waitForRecord(0)).toBe(true);
    expect(await f.ring.waitForRecordAsync()).toBe(true);
    expect(f.ring.tryRead()).toEqual(patterned(0, 5));
    // The consumer's sleep flag is down again after every wait.
    expect(Atomics.load(f.ring.i32, f.ring.base + W_CONSUMER_SLEEP)).toBe(0);
    f.slots.release(p);
    expectNoLeak(f.ring, f.slots);
  });
});
