/**
 * The one message factory every contender uses, so that all of them move the
 * same bytes and the consumer checks them the same way.
 *
 * Record layout (little-endian, at least MIN_RECORD_BYTES long):
 *   0..3  sequence number, per producer, starting at 0 and wrapping at 2^32
 *   4     producer id (0-based) in multi-producer scenarios, else 0
 *   5..   a fixed pattern, so the payload is not all zeros (a ring that zeroes
 *         released space must not get a free ride on zero-filled records)
 *
 * The sequence number lets every consumer verify, cheaply, that nothing was
 * lost, duplicated or reordered per producer: a benchmark of a broken ring
 * stops with an error instead of reporting a fast wrong answer.
 */

export const MIN_RECORD_BYTES = 8;

/** Record type postern records carry (1..255); the bench uses one type. */
export const RECORD_TYPE = 1;

/** Allocates one record of `size` bytes for `producerId`, pattern filled, sequence 0. */
export function makeRecord(size: number, producerId = 0): Uint8Array {
  if (!Number.isInteger(size) || size < MIN_RECORD_BYTES) {
    throw new RangeError(`records are at least ${MIN_RECORD_BYTES} bytes, got ${size}`);
  }
  const record = new Uint8Array(size);
  for (let i = 5; i < size; i++) record[i] = (i * 31 + 7) & 0xff;
  record[4] = producerId;
  return record;
}

/** Writes `seq` into the sequence field of the record at `offset` in `bytes`. */
export function stampSeq(bytes: Uint8Array, offset: number, seq: number): void {
  bytes[offset] = seq;
  bytes[offset + 1] = seq >>> 8;
  bytes[offset + 2] = seq >>> 16;
  bytes[offset + 3] = seq >>> 24;
}

/** Reads the sequence field of the record at `offset` in `bytes`. */
export function readSeq(bytes: Uint8Array, offset: number): number {
  return (
    (bytes[offset]! | (bytes[offset + 1]! << 8) | (bytes[offset + 2]! << 16) | (bytes[offset + 3]! << 24)) >>>
    0
  );
}

/** Reads the producer id of the record at `offset` in `bytes`. */
export function readProducer(bytes: Uint8Array, offset: number): number {
  return bytes[offset + 4]!;
}

/**
 * Consumer-side check of per-producer FIFO order. Allocates once, at
 * construction; `check` allocates nothing unless it throws.
 */
export class SequenceChecker {
  private readonly next: Uint32Array;

  constructor(producers: number) {
    this.next = new Uint32Array(producers);
  }

  /** Verifies the record at `offset` is the next one from its producer. */
  check(bytes: Uint8Array, offset: number): void {
    const producer = bytes[offset + 4]!;
    const seq = readSeq(bytes, offset);
    const expected = this.next[producer];
    if (expected === undefined || seq !== expected) {
      throw new Error(`producer ${producer}: expected sequence ${expected}, got ${seq}`);
    }
    this.next[producer] = seq + 1;
  }
}
