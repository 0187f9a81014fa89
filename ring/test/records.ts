/**
 * Test records and their verifier, shared by the test files and the worker
 * scripts.
 *
 * A test record's payload is self-describing, so that a consumer can prove
 * every record it was handed is whole and in order without knowing anything
 * the producer did:
 *
 *   [0, 4)   producer id            u32 little-endian
 *   [4, 8)   sequence number        u32, 0, 1, 2, ... per producer
 *   [8, 12)  checksum               FNV-1a of id, sequence, length and filler
 *   [12, n)  filler                 pseudo-random bytes derived from (id, seq)
 *
 * The record type is derived from the producer id, so a type the producer did
 * not choose is caught too. Nothing here allocates per record.
 */

export const TEST_RECORD_MIN = 12;

/** A small, fast, seeded PRNG (mulberry32): the same seed gives the same run. */
export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in [lo, hi], both included. */
  int(lo: number, hi: number): number {
    return lo + (this.next() % (hi - lo + 1));
  }

  /** A float in [0, 1). */
  float(): number {
    return this.next() / 0x1_0000_0000;
  }
}

/** A seed for this run: TEST_SEED from the environment when set (to replay a failure), else random. */
export function runSeed(): number {
  const fromEnv = process.env.TEST_SEED;
  if (fromEnv !== undefined && fromEnv !== '') return Number(fromEnv) >>> 0;
  return (Math.random() * 0x1_0000_0000) >>> 0;
}

/** The record type producer `producerId` uses: never 0 (padding), always in 1..255. */
export function typeOf(producerId: number): number {
  return (producerId % 255) + 1;
}

function fnvStep(hash: number, byte: number): number {
  return Math.imul(hash ^ byte, 0x01000193);
}

function fnvWord(hash: number, word: number): number {
  hash = fnvStep(hash, word & 0xff);
  hash = fnvStep(hash, (word >>> 8) & 0xff);
  hash = fnvStep(hash, (word >>> 16) & 0xff);
  return fnvStep(hash, word >>> 24);
}

function readU32(bytes: Uint8Array, at: number): number {
  return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
}

function writeU32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value & 0xff;
  bytes[at + 1] = (value >>> 8) & 0xff;
  bytes[at + 2] = (value >>> 16) & 0xff;
  bytes[at + 3] = value >>> 24;
}

function checksum(bytes: Uint8Array, offset: number, length: number, id: number, seq: number): number {
  let hash = 0x811c9dc5;
  hash = fnvWord(hash, id);
  hash = fnvWord(hash, seq);
  hash = fnvWord(hash, length);
  for (let i = TEST_RECORD_MIN; i < length; i++) hash = fnvStep(hash, bytes[offset + i]!);
  return hash >>> 0;
}

/** Writes a test record of `length` (>= TEST_RECORD_MIN) bytes at `bytes[offset]`. */
export function encodeRecord(
  bytes: Uint8Array,
  offset: number,
  length: number,
  producerId: number,
  seq: number,
): void {
  writeU32(bytes, offset, producerId);
  writeU32(bytes, offset + 4, seq);
  // Filler from the (id, seq) pair, so two records never carry the same bytes.
  let x = (Math.imul(producerId + 1, 0x9e3779b1) ^ Math.imul(seq + 1, 0x85ebca6b)) | 0;
  for (let i = TEST_RECORD_MIN; i < length; i++) {
    x = (Math.imul(x ^ (x >>> 13), 0x5bd1e995) + i) | 0;
    bytes[offset + i] = x >>> 24;
  }
  writeU32(bytes, offset + 8, checksum(bytes, offset, length, producerId, seq));
}

/**
 * Checks everything a consumer can see of one record and returns its producer
 * id; the sequence number is then in `lastSeq`. Throws with a description on
 * any damage.
 */
export function decodeRecord(type: number, bytes: Uint8Array, offset: number, length: number): number {
  if (length < TEST_RECORD_MIN) throw new Error(`record of ${length} bytes is too short to be a test record`);
  const id = readU32(bytes, offset);
  const seq = readU32(bytes, offset + 4);
  const sum = readU32(bytes, offset + 8);
  const expected = checksum(bytes, offset, length, id, seq);
  if (sum !== expected) {
    throw new Error(
      `damaged record: producer ${id} seq ${seq} length ${length}: checksum ${sum} != ${expected}`,
    );
  }
  if (type !== typeOf(id)) throw new Error(`record of producer ${id} seq ${seq} has type ${type}`);
  lastSeq = seq;
  return id;
}

/** The sequence number of the record `decodeRecord` last accepted. */
export let lastSeq = 0;

/**
 * Proves per-producer FIFO: each producer's records arrive as 0, 1, 2, ...
 * with no gap (loss), repeat (duplicate) or step back (reordering).
 */
export class SequenceVerifier {
  /** Next expected sequence number per producer id. */
  readonly next = new Map<number, number>();
  total = 0;

  /** Verifies one record handed out by a ring (the signature of a drain handler). */
  readonly check = (type: number, bytes: Uint8Array, offset: number, length: number): void => {
    const id = decodeRecord(type, bytes, offset, length);
    const expected = this.next.get(id) ?? 0;
    if (lastSeq !== expected) {
      const what = lastSeq < expected ? 'duplicate or reordered' : 'lost';
      throw new Error(`producer ${id}: got seq ${lastSeq}, expected ${expected} (${what})`);
    }
    this.next.set(id, expected + 1);
    this.total++;
  };

  /** Records received from `producerId`. */
  received(producerId: number): number {
    return this.next.get(producerId) ?? 0;
  }
}
