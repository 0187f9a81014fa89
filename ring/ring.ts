/**
 * A bounded multi-producer, single-consumer ring of variable-length records
 * in a SharedArrayBuffer, after the design of Agrona's ManyToOneRingBuffer:
 *
 * - Producers (any number of threads) claim space with one compare-and-swap
 *   on TAIL, write the record, then publish it with one store of its header's
 *   PUBLISH word. No locks; a producer that loses the CAS retries at the new
 *   tail.
 * - The consumer (exactly one thread at a time) reads records in position
 *   order, zeroes each one it consumes and moves HEAD past it. Records that
 *   would straddle the end of the record space are preceded by a padding
 *   record that runs to the end, and start again at 0.
 * - A full ring refuses a claim (the producer learns it); nothing is ever
 *   overwritten. Awaitable and blocking writes wait for room.
 * - Producers announce each claim in their producer slot before making it, so
 *   a claim left unpublished by a thread that died is found and turned into
 *   padding once the host has declared that thread dead (see
 *   producer-slots.ts and `recoverStalledClaim`).
 * - Waiting: the consumer spins, then parks on CONSUMER_SLEEP with
 *   Atomics.wait (or waitAsync on an event loop). A producer notifies only
 *   when it sees the consumer parked. Both sides store their own word then
 *   load the other's (sequentially consistent), so at least one of them sees
 *   the other: a publish is never missed by a parking consumer.
 *
 * Layout: ring-layout.ts. Nothing on the send or receive path allocates on the
 * JS heap (the convenience `tryRead` and `peekView` do, and say so).
 */

import {
  DestinationTooSmall,
  InvalidCapacity,
  InvalidRecordType,
  LayoutMismatch,
  ProducerStateError,
  RecordTooLarge,
  RingCorrupted,
  RingError,
  WriteTimeout,
} from './errors.ts';
import { parkAsync } from './park-async.ts';
import {
  DEAD,
  FREE,
  LIVE,
  type Producer,
  ProducerSlots,
  SLOT_ANNOUNCE_BYTES,
  SLOT_ANNOUNCE_POS,
  SLOT_ANNOUNCE_RING,
  SLOT_STATE,
  SLOT_WAITING_RINGS,
  slotState,
  WAITING_RING_ENTRIES,
} from './producer-slots.ts';
import {
  CONSUMER_AWAKE,
  CONSUMER_DOORBELL,
  MAX_CAPACITY,
  MAX_RECORD_TYPE,
  MIN_CAPACITY,
  PADDING_TYPE,
  RECORD_HEADER_BYTES,
  RING_HEADER_BYTES,
  RING_MAGIC,
  RING_VERSION,
  recordBytes,
  TYPE_MASK,
  W_CAPACITY,
  W_CONSUMER_SLEEP,
  W_DOORBELL_BASE,
  W_DOORBELL_BIT,
  W_HEAD,
  W_HEAD_CACHE,
  W_MAGIC,
  W_MAX_RECORD,
  W_ROOM_SEQ,
  W_ROOM_WAITERS,
  W_SLOTS_OFFSET,
  W_TAIL,
  W_VERSION,
  wakeConsumerAt,
} from './ring-layout.ts';
import { type SharedViews, viewsOf } from './shared-views.ts';
import { DEFAULT_WAIT_POLICY, type WaitPolicy } from './wait-policy.ts';

export interface RingInitOptions {
  /** Bytes of record space: a power of two from 64 to 2^30. */
  capacity: number;
  /**
   * Largest payload accepted, in bytes. Default: capacity / 8 - 8. At most
   * capacity / 2 - 8, which guarantees that an empty ring can always take a
   * record of the maximum length whatever the wrap position.
   */
  maxRecordLength?: number;
  /** Byte offset of the ProducerSlots region the ring's producers use. */
  producerSlotsOffset: number;
}

export interface RingCreateOptions {
  capacity: number;
  maxRecordLength?: number;
  /** Producer slots to lay out beside the ring (threads that may produce). Default 64. */
  maxProducers?: number;
}

export interface RingWriteOptions {
  signal?: AbortSignal;
  /** Give up with WriteTimeout after this many milliseconds. Default: wait for ever. */
  timeoutMs?: number;
}

/** Handler of `drain`: `bytes` is the whole buffer; the payload is `bytes[offset, offset + length)`. */
export type RecordHandler = (type: number, bytes: Uint8Array, offset: number, length: number) => void;

/** A parked wait that has a dead producer to deal with re-checks at least this often (ms). */
const DEAD_CLAIM_RECHECK_MS = 2;
/** A write that could not register as a room waiter (see enterRoomWait) re-checks this often (ms). */
const UNREGISTERED_RECHECK_MS = 1;
/** With an abort signal, awaitable writes re-check it at least this often (ms). */
const ABORT_RECHECK_MS = 250;
/**
 * Payloads up to this many bytes are copied into the ring as assembled 32-bit
 * words: byte stores into shared memory cost ~3 ns each in Node 20 and
 * `set` ~35 ns per call, while a word store is ~1 ns (measured: 18 ns for 16
 * bytes, against 41 ns with `set` and 44 ns byte by byte).
 */
const SMALL_COPY = 48;
/** Records up to this many words are zeroed word by word (cheaper than fill). */
const SMALL_ZERO_WORDS = 16;

export class Ring {
  readonly views: SharedViews;
  readonly i32: Int32Array;
  /** The whole buffer as bytes: payloads are read and written in place through it. */
  readonly bytes: Uint8Array;
  /** Word index of the ring's first header word. */
  readonly base: number;
  readonly byteOffset: number;
  readonly capacity: number;
  readonly maxRecordLength: number;
  /** The producer slots this ring's producers announce claims in. */
  readonly slots: ProducerSlots;
  private readonly mask: number;
  /** Absolute byte offset where record space starts. */
  private readonly dataStart: number;
  /** Word index of the start of record space. */
  private readonly dataWord: number;

  // Consumer-local state (meaningful only in the consumer's thread).
  /** Type of the record `peek` returned; valid until `release`. */
  recordType = 0;
  /** Absolute byte offset in `bytes` of that record's payload. */
  recordOffset = 0;
  /** Payload length of the peeked record, or -1 when nothing is peeked. */
  private peekedLength = -1;
  private peekedBytes = 0;
  /** Dead producers' claims this consumer has turned into padding (consumer-local count). */
  recoveredClaims = 0;
  /** Set once this consumer padded a dead claim: reclaim the slot once the ring drains. */
  private reclaimPending = false;
  /** DEAD_COUNT when this consumer last reclaimed on an empty ring. */
  private deadCountSeenEmpty = 0;
  /** The consumer's position; HEAD lags it by what is consumed but not yet handed back. */
  private consumerHead: number;
  /** The last value this consumer stored in HEAD. */
  private publishedHead: number;
  /** Consumed bytes after which the consumer hands space back without waiting to run dry. */
  private readonly releaseEvery: number;
  /**
   * Whether the consumer hands space back each time it runs dry: needed only
   * when the largest claim might not fit beside a quarter ring held back (see
   * the consumer section). Fixed per ring.
   */
  readonly handsBackWhenDry: boolean;

  /** Bytes a ring of `capacity` bytes of record space occupies, header included. */
  static bytesFor(capacity: number): number {
    checkCapacity(capacity);
    return RING_HEADER_BYTES + capacity;
  }

  /** Lays out an empty ring at `byteOffset` (64-aligned) and attaches to it. */
  static init(buffer: SharedArrayBuffer, byteOffset: number, options: RingInitOptions): Ring {
    const { capacity, producerSlotsOffset } = options;
    checkCapacity(capacity);
    const limit = capacity / 2 - RECORD_HEADER_BYTES;
    const maxRecordLength = options.maxRecordLength ?? capacity / 8 - RECORD_HEADER_BYTES;
    if (!Number.isInteger(maxRecordLength) || maxRecordLength < 0 || maxRecordLength > limit) {
      throw new InvalidCapacity(
        `maxRecordLength must be an integer in 0..${limit} for capacity ${capacity}, got ${maxRecordLength}`,
      );
    }
    checkPlacement(buffer, byteOffset, RING_HEADER_BYTES + capacity);
    const slots = ProducerSlots.attach(buffer, producerSlotsOffset); // throws LayoutMismatch if no slot region is there
    const slotsEnd = producerSlotsOffset + ProducerSlots.bytesFor(slots.count);
    if (byteOffset < slotsEnd && producerSlotsOffset < byteOffset + RING_HEADER_BYTES + capacity) {
      throw new LayoutMismatch(
        `ring [${byteOffset}, ${byteOffset + RING_HEADER_BYTES + capacity}) overlaps its producer slots [${producerSlotsOffset}, ${slotsEnd})`,
      );
    }
    const { i32 } = viewsOf(buffer);
    const base = byteOffset >> 2;
    i32.fill(0, base, base + (RING_HEADER_BYTES + capacity) / 4);
    i32[base + W_CAPACITY] = capacity;
    i32[base + W_MAX_RECORD] = maxRecordLength;
    i32[base + W_SLOTS_OFFSET] = producerSlotsOffset;
    i32[base + W_VERSION] = RING_VERSION;
    Atomics.store(i32, base + W_MAGIC, RING_MAGIC); // publishes the ring: attach checks it
    return new Ring(buffer, byteOffset);
  }

  /** Opens a ring another thread laid out with `init`. */
  static attach(buffer: SharedArrayBuffer, byteOffset: number): Ring {
    return new Ring(buffer, byteOffset);
  }

  /**
   * Allocates a SharedArrayBuffer holding a producer-slot table and one ring,
   * and lays both out. Pass `buffer`, `ringOffset` and `slotsOffset` to other
   * threads; they `attach`.
   */
  static create(options: RingCreateOptions): {
    buffer: SharedArrayBuffer;
    ring: Ring;
    slots: ProducerSlots;
    ringOffset: number;
    slotsOffset: number;
  } {
    const maxProducers = options.maxProducers ?? 64;
    const slotsOffset = 0;
    const ringOffset = align64(ProducerSlots.bytesFor(maxProducers));
    const buffer = new SharedArrayBuffer(ringOffset + Ring.bytesFor(options.capacity));
    const slots = ProducerSlots.init(buffer, slotsOffset, maxProducers);
    const ring = Ring.init(buffer, ringOffset, {
      capacity: options.capacity,
      maxRecordLength: options.maxRecordLength,
      producerSlotsOffset: slotsOffset,
    });
    return { buffer, ring, slots, ringOffset, slotsOffset };
  }

  private constructor(buffer: SharedArrayBuffer, byteOffset: number) {
    checkPlacement(buffer, byteOffset, RING_HEADER_BYTES);
    this.views = viewsOf(buffer);
    this.i32 = this.views.i32;
    this.bytes = this.views.u8;
    this.byteOffset = byteOffset;
    this.base = byteOffset >> 2;
    const i32 = this.i32;
    if (Atomics.load(i32, this.base + W_MAGIC) !== RING_MAGIC) {
      throw new LayoutMismatch(`no ring at byte offset ${byteOffset}`);
    }
    if (i32[this.base + W_VERSION] !== RING_VERSION) {
      throw new LayoutMismatch(`ring at ${byteOffset} has layout version ${i32[this.base + W_VERSION]}`);
    }
    this.capacity = i32[this.base + W_CAPACITY]!;
    checkCapacity(this.capacity);
    checkPlacement(buffer, byteOffset, RING_HEADER_BYTES + this.capacity);
    this.maxRecordLength = i32[this.base + W_MAX_RECORD]!;
    this.slots = ProducerSlots.attach(buffer, i32[this.base + W_SLOTS_OFFSET]!);
    this.mask = this.capacity - 1;
    this.dataStart = byteOffset + RING_HEADER_BYTES;
    this.dataWord = this.dataStart >> 2;
    this.consumerHead = Atomics.load(i32, this.base + W_HEAD);
    this.publishedHead = this.consumerHead;
    this.releaseEvery = this.capacity >>> 2;
    this.handsBackWhenDry = this.releaseEvery + 2 * recordBytes(this.maxRecordLength) > this.capacity;
  }

  // ---------------------------------------------------------------- producers

  /**
   * Reserves room for a record of `length` payload bytes and type `type`.
   * Returns the absolute offset in `bytes` where the payload goes, or -1 when
   * the ring is full (nothing reserved). The caller writes the payload and
   * then calls `commit(producer)`; until then the consumer waits at this
   * record, so keep the window short.
   */
  tryClaim(producer: Producer, type: number, length: number): number {
    this.checkClaim(producer, type, length);
    const i32 = this.i32;
    const base = this.base;
    const capacity = this.capacity;
    const need = recordBytes(length);
    const slotWord = producer.slotWord;
    // Why plain accesses below: in Node 20 every Atomics call is an out-of-line
    // builtin (~15 ns here) and a plain access is under 1 ns. Plain accesses are
    // used only where an atomic operation next to them carries the ordering,
    // and each says which. Aligned Int32Array accesses never tear.
    if (producer.announcedRing !== this.byteOffset + 1) {
      i32[slotWord + SLOT_ANNOUNCE_RING] = this.byteOffset + 1; // ordered before the claim by the CAS below
      producer.announcedRing = this.byteOffset + 1;
    }
    // A hint: any value HEAD_CACHE ever held is at or behind HEAD, so it can only make the ring look fuller.
    let head = i32[base + W_HEAD_CACHE]!;
    // Any value is safe here: the CAS checks it, and returns the real tail when it was wrong.
    let tail = i32[base + W_TAIL]!;
    for (;;) {
      const index = tail & this.mask;
      const toEnd = capacity - index;
      // A record that does not fit before the end takes a padding record to the end and starts at 0.
      const span = need <= toEnd ? need : toEnd + need;
      // Unsigned difference: a cached head from long ago reads as "very full", never as "empty".
      if (((tail - head) >>> 0) + span > capacity) {
        head = Atomics.load(i32, base + W_HEAD);
        if (((tail - head) >>> 0) + span > capacity) {
          // ...then the ring is full. Withdraw the announcement of an earlier, lost attempt at
          // this claim, so a consumer stalled there does not wait on this producer.
          i32[slotWord + SLOT_ANNOUNCE_BYTES] = 0;
          return -1;
        }
        i32[base + W_HEAD_CACHE] = head; // a hint for other producers; any reader treats it as one
      }
      // Announce (position, span) before claiming; the CAS orders these stores before the claim.
      i32[slotWord + SLOT_ANNOUNCE_BYTES] = span;
      i32[slotWord + SLOT_ANNOUNCE_POS] = tail;
      const witnessed = Atomics.compareExchange(i32, base + W_TAIL, tail, (tail + span) | 0);
      if (witnessed === tail) {
        // ...then [tail, tail + span) is ours.
        const recordIndex = span === need ? index : 0;
        const headerWord = this.dataWord + (recordIndex >> 2);
        // The first write into the claim, and it must stay first: it marks the claim as this
        // producer's. A dead claim without the mark is therefore still all zeros (recovery relies on it).
        i32[headerWord + 1] = type | producer.claimMark;
        if (span !== need) {
          // Publishes the padding to the end; its TYPE word is 0 (consumed space is zeroed).
          Atomics.store(i32, this.dataWord + (index >> 2), toEnd - RECORD_HEADER_BYTES + 1);
        }
        producer.claimRingBase = base;
        producer.claimHeaderWord = headerWord;
        producer.claimLength = length;
        return this.dataStart + recordIndex + RECORD_HEADER_BYTES;
      }
      // ...else another producer claimed at this tail first: try again at the tail it left.
      tail = witnessed;
    }
  }

  /** Publishes the record reserved by the last `tryClaim` of `producer` on this ring. */
  commit(producer: Producer): void {
    if (producer.claimRingBase !== this.base) {
      throw new ProducerStateError('commit without an open claim on this ring');
    }
    const i32 = this.i32;
    Atomics.store(i32, producer.claimHeaderWord, producer.claimLength + 1); // publishes the record
    // Withdraws the announcement: a live announcement covering a position now always means a
    // claim in flight there. Plain: a reader that still sees the old value merely waits a little.
    i32[producer.slotWord + SLOT_ANNOUNCE_BYTES] = 0;
    producer.claimRingBase = -1;
    wakeConsumerAt(i32, this.base);
  }

  /**
   * Copies `src[srcOffset, srcOffset + length)` into the ring as one record.
   * Returns false when the ring is full (nothing written).
   */
  tryWrite(
    producer: Producer,
    type: number,
    src: Uint8Array,
    srcOffset = 0,
    length = src.length - srcOffset,
  ): boolean {
    if (srcOffset < 0 || length < 0 || srcOffset + length > src.length) {
      throw new RangeError(
        `source range [${srcOffset}, ${srcOffset + length}) is outside a ${src.length}-byte array`,
      );
    }
    const at = this.tryClaim(producer, type, length);
    if (at < 0) return false;
    if (length <= SMALL_COPY) {
      // `at` is 8-aligned; the last word may carry zero bytes past the payload, inside the record.
      const i32 = this.i32;
      const word = at >> 2;
      let k = 0;
      for (; k + 4 <= length; k += 4) {
        const o = srcOffset + k;
        i32[word + (k >> 2)] = src[o]! | (src[o + 1]! << 8) | (src[o + 2]! << 16) | (src[o + 3]! << 24);
      }
      if (k < length) {
        let last = 0;
        for (let j = 0; k + j < length; j++) last |= src[srcOffset + k + j]! << (8 * j);
        i32[word + (k >> 2)] = last;
      }
    } else if (srcOffset === 0 && length === src.length) {
      this.bytes.set(src, at);
    } else {
      this.bytes.set(src.subarray(srcOffset, srcOffset + length), at);
    }
    this.commit(producer);
    return true;
  }

  /**
   * Writes one record, waiting (on the event loop) for room when the ring is
   * full. Rejects with the signal's reason when aborted, with WriteTimeout
   * after `timeoutMs`; in both cases nothing was written.
   */
  async write(
    producer: Producer,
    type: number,
    src: Uint8Array,
    options: RingWriteOptions = {},
  ): Promise<void> {
    const { signal, timeoutMs = Number.POSITIVE_INFINITY } = options;
    signal?.throwIfAborted();
    if (this.tryWrite(producer, type, src)) return;
    const deadline = performance.now() + timeoutMs;
    const i32 = this.i32;
    const seqWord = this.base + W_ROOM_SEQ;
    for (;;) {
      // Registered before re-checking: the consumer's next hand-back will then bump ROOM_SEQ.
      const registered = this.enterRoomWait(producer);
      try {
        const seq = Atomics.load(i32, seqWord);
        if (this.tryWrite(producer, type, src)) return;
        let wait = deadline - performance.now();
        if (wait <= 0)
          throw new WriteTimeout(`no room for a ${src.length}-byte record within ${timeoutMs} ms`);
        if (signal !== undefined) wait = Math.min(wait, ABORT_RECHECK_MS);
        if (!registered) wait = Math.min(wait, UNREGISTERED_RECHECK_MS);
        const parked = parkAsync(i32, seqWord, seq, wait);
        if (parked !== undefined) await (signal === undefined ? parked : raceAbort(parked, signal));
      } finally {
        if (registered) this.leaveRoomWait(producer);
      }
      signal?.throwIfAborted();
    }
  }

  /**
   * Writes one record, blocking the thread (Atomics.wait) while the ring is
   * full, for at most `timeoutMs`. Returns false on timeout (nothing written).
   */
  writeSync(
    producer: Producer,
    type: number,
    src: Uint8Array,
    timeoutMs = Number.POSITIVE_INFINITY,
  ): boolean {
    if (this.tryWrite(producer, type, src)) return true;
    const deadline = performance.now() + timeoutMs;
    const i32 = this.i32;
    const seqWord = this.base + W_ROOM_SEQ;
    for (;;) {
      const registered = this.enterRoomWait(producer); // before re-checking, as in write()
      try {
        const seq = Atomics.load(i32, seqWord);
        if (this.tryWrite(producer, type, src)) return true;
        const wait = deadline - performance.now();
        if (wait <= 0) return false;
        Atomics.wait(i32, seqWord, seq, registered ? wait : Math.min(wait, UNREGISTERED_RECHECK_MS));
      } finally {
        if (registered) this.leaveRoomWait(producer);
      }
    }
  }

  /**
   * Registers one more of `producer`'s writes as waiting for room here. The
   * thread holds at most one registration per ring in ROOM_WAITERS however
   * many of its writes wait, recorded in its slot so markDead can take it
   * back. Returns false when all its slot entries are taken by other rings:
   * that write then re-checks on a short timer instead of being woken.
   */
  private enterRoomWait(producer: Producer): boolean {
    const local = producer.roomWaits.get(this.byteOffset);
    if (local !== undefined) {
      local.count++;
      return true;
    }
    const i32 = this.i32;
    const entries = producer.slotWord + SLOT_WAITING_RINGS;
    for (let e = 0; e < WAITING_RING_ENTRIES; e++) {
      if (i32[entries + e] !== 0) continue;
      Atomics.add(i32, this.base + W_ROOM_WAITERS, 1); // publishes the waiter before its re-check of HEAD
      i32[entries + e] = this.byteOffset + 1; // after the add: see producer-slots.ts
      producer.roomWaits.set(this.byteOffset, { count: 1, entry: e });
      return true;
    }
    return false;
  }

  private leaveRoomWait(producer: Producer): void {
    const local = producer.roomWaits.get(this.byteOffset);
    if (local === undefined || --local.count > 0) return;
    producer.roomWaits.delete(this.byteOffset);
    this.i32[producer.slotWord + SLOT_WAITING_RINGS + local.entry] = 0; // before the subtract: see producer-slots.ts
    Atomics.sub(this.i32, this.base + W_ROOM_WAITERS, 1);
  }

  private checkClaim(producer: Producer, type: number, length: number): void {
    if (producer.claimRingBase !== -1)
      throw new ProducerStateError('this producer already has an open claim');
    if (producer.released) throw new ProducerStateError('this producer was released');
    if (producer.slots !== this.slots) {
      throw new ProducerStateError("the producer's slot table is not the one this ring uses");
    }
    if (!Number.isInteger(type) || type < 1 || type > MAX_RECORD_TYPE) {
      throw new InvalidRecordType(`record type must be an integer in 1..${MAX_RECORD_TYPE}, got ${type}`);
    }
    if (!Number.isInteger(length) || length < 0)
      throw new RangeError(`record length must be a natural number`);
    if (length > this.maxRecordLength) throw new RecordTooLarge(length, this.maxRecordLength);
  }

  // ---------------------------------------------------------------- consumer
  //
  // The consumer keeps its position in `consumerHead` and publishes it to HEAD
  // lazily: once a quarter of the ring has been consumed since the last
  // publication, before parking, and, only when it is needed, on running dry.
  // Each consumed record is zeroed at once; only the hand-over of its space to
  // producers is batched (as Agrona's reader does per read call), saving two
  // atomic operations per record.
  //
  // Why running dry need not hand space back (`handsBackWhenDry` false): the
  // consumer then holds back less than a quarter ring, X. A claim spans at
  // most twice the largest record (padding to the end plus the record), S. If
  // X + S <= capacity, a producer facing a drained ring always finds room, and
  // one that found the ring full (and parked) saw at least a quarter ring
  // unconsumed, so the consumer will cross a quarter mark and hand back (and
  // notify) again. Rings whose largest record is too big for that keep handing
  // back on running dry. A consumer that parks hands back first in both cases.

  /**
   * Looks at the oldest record without consuming it. Returns its payload
   * length (then `recordType` and `recordOffset` describe it and the payload
   * can be read in place in `bytes`), or -1 when there is none yet. The
   * record stays put, and peek keeps returning it, until `release`.
   */
  peek(): number {
    if (this.peekedLength >= 0) return this.peekedLength;
    const i32 = this.i32;
    for (;;) {
      const head = this.consumerHead;
      const index = head & this.mask;
      const headerWord = this.dataWord + (index >> 2);
      const published = Atomics.load(i32, headerWord);
      if (published === 0) {
        // ...then either the ring is empty or the record at head is claimed but unpublished.
        if (this.handsBackWhenDry && head !== this.publishedHead) this.publishHead();
        // Plain: a hint polled on every empty look. markDead wakes a parked consumer, and
        // prepareToPark re-reads it atomically, so a stale 0 delays recovery by one poll at most.
        if (i32[this.slots.deadCountWord] !== 0 && this.recoverStalledClaim(head)) continue;
        return -1;
      }
      const length = published - 1;
      const bytes = recordBytes(length);
      // Published with the PUBLISH word loaded above; the bits above the low byte are the claim mark.
      const type = i32[headerWord + 1]! & TYPE_MASK;
      // Records never straddle the end of record space, and never exceed the maximum: anything
      // else means the region was overwritten from outside. Refuse rather than zero past the ring.
      if (bytes > this.capacity - index || (type !== PADDING_TYPE && length > this.maxRecordLength)) {
        throw new RingCorrupted(
          `record header at ring position ${head} claims ${length} bytes of type ${type}`,
        );
      }
      if (type === PADDING_TYPE) {
        this.consume(bytes);
        continue;
      }
      this.recordType = type;
      this.recordOffset = this.dataStart + index + RECORD_HEADER_BYTES;
      this.peekedLength = length;
      this.peekedBytes = bytes;
      return length;
    }
  }

  /** A view of the peeked payload, valid until `release`. Allocates the view object. */
  peekView(): Uint8Array | null {
    const length = this.peek();
    if (length < 0) return null;
    return this.bytes.subarray(this.recordOffset, this.recordOffset + length);
  }

  /** Consumes the peeked record: its space goes back to the producers. */
  release(): void {
    if (this.peekedLength < 0) throw new RingError('release without a peeked record');
    this.peekedLength = -1;
    this.consume(this.peekedBytes);
  }

  /**
   * Copies the oldest record into `dest` at `destOffset` and consumes it.
   * Returns its length (its type is in `recordType`), or -1 when there is
   * none. Throws DestinationTooSmall, leaving the record in the ring, when it
   * does not fit.
   */
  tryReadInto(dest: Uint8Array, destOffset = 0): number {
    const length = this.peek();
    if (length < 0) return -1;
    if (destOffset + length > dest.length) throw new DestinationTooSmall(length, dest.length - destOffset);
    const at = this.recordOffset;
    const bytes = this.bytes;
    if (length <= SMALL_COPY) {
      for (let i = 0; i < length; i++) dest[destOffset + i] = bytes[at + i]!;
    } else {
      dest.set(bytes.subarray(at, at + length), destOffset);
    }
    this.release();
    return length;
  }

  /** Copies the oldest record into a new array and consumes it; null when there is none. Allocates. */
  tryRead(): Uint8Array | null {
    const length = this.peek();
    if (length < 0) return null;
    const copy = this.bytes.slice(this.recordOffset, this.recordOffset + length);
    this.release();
    return copy;
  }

  /**
   * Hands up to `limit` records, oldest first, to `handler` in one pass and
   * consumes them. The payload view is valid only during the call. A record
   * whose handler throws counts as consumed. Returns the count.
   */
  drain(handler: RecordHandler, limit = Number.POSITIVE_INFINITY): number {
    let count = 0;
    while (count < limit) {
      const length = this.peek();
      if (length < 0) break;
      count++;
      try {
        handler(this.recordType, this.bytes, this.recordOffset, length);
      } finally {
        this.release();
      }
    }
    return count;
  }

  /**
   * Hands every consumed byte back to producers now. The consumer does this by
   * itself when it runs dry or parks; call it before passing the consumer
   * role to another thread, which then attaches and starts from HEAD.
   */
  flushConsumed(): void {
    if (this.consumerHead !== this.publishedHead) this.publishHead();
  }

  /**
   * Bytes claimed and not yet handed back to producers (consumed space the
   * consumer still holds counts; `flushConsumed` first for what is unread).
   * May be stale the moment it is read.
   */
  get usedBytes(): number {
    return (Atomics.load(this.i32, this.base + W_TAIL) - Atomics.load(this.i32, this.base + W_HEAD)) >>> 0;
  }

  /**
   * Blocks the consumer thread until a record is available or `timeoutMs`
   * passes: spins `policy.spins` times, then parks with Atomics.wait. Returns
   * whether a record is available (then `peek` returns it).
   */
  waitForRecord(timeoutMs = Number.POSITIVE_INFINITY, policy: WaitPolicy = DEFAULT_WAIT_POLICY): boolean {
    if (this.peek() >= 0) return true;
    for (let i = policy.spins; i > 0; i--) if (this.peek() >= 0) return true;
    const deadline = deadlineAfter(timeoutMs);
    const i32 = this.i32;
    const sleepWord = this.base + W_CONSUMER_SLEEP;
    for (;;) {
      const wait = this.prepareToPark(deadline);
      if (wait === 0) return this.peekedLength >= 0;
      Atomics.wait(i32, sleepWord, 1, wait);
      Atomics.store(i32, sleepWord, 0);
      if (this.peek() >= 0) return true;
    }
  }

  /**
   * Like `waitForRecord`, but parks with Atomics.waitAsync so the event loop
   * goes on. Resolves to whether a record is available.
   */
  async waitForRecordAsync(
    timeoutMs = Number.POSITIVE_INFINITY,
    policy: WaitPolicy = DEFAULT_WAIT_POLICY,
  ): Promise<boolean> {
    if (this.peek() >= 0) return true;
    for (let i = policy.spins; i > 0; i--) if (this.peek() >= 0) return true;
    const deadline = deadlineAfter(timeoutMs);
    const i32 = this.i32;
    const sleepWord = this.base + W_CONSUMER_SLEEP;
    for (;;) {
      const wait = this.prepareToPark(deadline);
      if (wait === 0) return this.peekedLength >= 0;
      const parked = parkAsync(i32, sleepWord, 1, wait);
      if (parked !== undefined) await parked;
      Atomics.store(i32, sleepWord, 0);
      if (this.peek() >= 0) return true;
    }
  }

  /**
   * Makes this ring wake its consumer through bit `bit` of the doorbell at
   * word `doorbellBase` (doorbell.ts) instead of its own futex word, from the
   * next `armDoorbell` on. Consumer only.
   */
  setDoorbell(doorbellBase: number, bit: number): void {
    Atomics.store(this.i32, this.base + W_DOORBELL_BASE, doorbellBase);
    Atomics.store(this.i32, this.base + W_DOORBELL_BIT, bit); // both read by producers only after they see CONSUMER_DOORBELL
  }

  /**
   * The doorbell form of parking: announces that the consumer waits through
   * its doorbell, then re-checks. Returns false (withdrawn) when a record is
   * available now (then `peek` returns it); true when the first producer to
   * publish from now on will ring the doorbell. Consumer only; `setDoorbell`
   * first.
   */
  armDoorbell(): boolean {
    const i32 = this.i32;
    const sleepWord = this.base + W_CONSUMER_SLEEP;
    this.flushConsumed();
    // A dead claim may also wait on a live producer moving on, which rings nobody: a
    // consumer that sees `deadProducers` re-polls now and then (see that getter).
    if (Atomics.load(i32, this.slots.deadCountWord) !== 0) this.reclaimDeadProducers();
    Atomics.store(i32, sleepWord, CONSUMER_DOORBELL); // announces the wait: producers publishing from now on will ring
    if (this.peek() >= 0) {
      Atomics.store(i32, sleepWord, CONSUMER_AWAKE);
      return false;
    }
    return true;
  }

  /** Whether some producer slot is dead (a waiting consumer should re-poll now and then). May be stale. */
  get deadProducers(): boolean {
    return Atomics.load(this.i32, this.slots.deadCountWord) !== 0;
  }

  /** Withdraws an armed doorbell (a rung bit may still arrive: doorbell bits may be spurious). */
  disarmDoorbell(): void {
    Atomics.store(this.i32, this.base + W_CONSUMER_SLEEP, CONSUMER_AWAKE);
  }

  /**
   * Sets CONSUMER_SLEEP and re-checks. Returns 0 when the consumer must not
   * park (a record arrived: then it is peeked; or the deadline passed), else
   * how long to park for.
   */
  private prepareToPark(deadline: number): number {
    const i32 = this.i32;
    const sleepWord = this.base + W_CONSUMER_SLEEP;
    this.flushConsumed();
    const deadProducers = Atomics.load(i32, this.slots.deadCountWord) !== 0;
    if (deadProducers) this.reclaimDeadProducers();
    Atomics.store(i32, sleepWord, 1); // announces the park: producers publishing from now on will notify
    if (this.peek() >= 0) {
      Atomics.store(i32, sleepWord, 0);
      return 0;
    }
    // No clock read when waiting for ever: it costs a few hundred ns per park.
    const remaining = deadline === Number.POSITIVE_INFINITY ? deadline : deadline - performance.now();
    if (remaining <= 0) {
      Atomics.store(i32, sleepWord, 0);
      return 0;
    }
    // A dead claim may wait on a live producer moving on, which wakes nobody: look again soon.
    return deadProducers ? Math.min(remaining, DEAD_CLAIM_RECHECK_MS) : remaining;
  }

  /** Moves the consumer past a record; its space is zeroed and handed back in bulk later. */
  private consume(bytes: number): void {
    this.consumerHead = (this.consumerHead + bytes) | 0;
    if ((this.consumerHead - this.publishedHead) >>> 0 >= this.releaseEvery) this.publishHead();
  }

  /**
   * Zeroes everything consumed since the last hand-back, then hands it back.
   * Zeroed so no stale byte can pose as a future record's PUBLISH word; the
   * atomic store of HEAD orders the zeroing before any producer reuses the
   * space. Zeroing here rather than record by record keeps the consumer from
   * writing into the cache line a producer is filling with the next record.
   */
  private publishHead(): void {
    const i32 = this.i32;
    const from = this.publishedHead & this.mask;
    const bytes = (this.consumerHead - this.publishedHead) >>> 0;
    const first = Math.min(bytes, this.capacity - from);
    zeroWords(i32, this.dataWord + (from >> 2), first >> 2);
    if (first < bytes) zeroWords(i32, this.dataWord, (bytes - first) >> 2);
    this.publishedHead = this.consumerHead;
    Atomics.store(i32, this.base + W_HEAD, this.consumerHead); // publishes the zeroed space to producers
    // A producer adds itself to ROOM_WAITERS before re-checking HEAD, so one of us sees the other.
    if (Atomics.load(i32, this.base + W_ROOM_WAITERS) !== 0) {
      Atomics.add(i32, this.base + W_ROOM_SEQ, 1);
      Atomics.notify(i32, this.base + W_ROOM_SEQ);
    }
  }

  // ---------------------------------------------------------------- recovery

  /**
   * Called by the consumer when the record at `head` is unpublished and some
   * producer slot is DEAD. Turns the dead owner's claim into padding, or
   * returns false when it cannot prove the owner dead yet.
   *
   * The owner of the claim covering `head` announced it before its CAS and
   * keeps the announcement until it publishes, so it is among the slots whose
   * announcement covers `head`. If a LIVE one does, that producer may be the
   * owner, merely slow: wait. Otherwise the owner is DEAD, and it may share
   * the cover with dead producers that announced the same position and lost
   * the CAS (or died before it). The owner's first write after its CAS is its
   * claim mark in its record's TYPE word, so:
   * - a dead candidate whose mark sits where its record would start is the
   *   owner (no one else writes that mark there): pad to the end of its claim;
   * - if none has its mark there, the owner died before writing anything, so
   *   its whole claim is still zeros. Padding to the smallest candidate end
   *   stays inside it (every candidate starts at or before the claim), and if
   *   that falls short, the consumer lands on zeros again and the next call
   *   pads further.
   */
  private recoverStalledClaim(head: number): boolean {
    const i32 = this.i32;
    if (Atomics.load(i32, this.base + W_TAIL) === head) {
      // ...then the ring is simply empty: every dead claim on it has been resolved.
      this.reclaimWhenEmpty();
      return false;
    }
    // The atomic TAIL load above read from the claim at head (or a later one), so every
    // announcement made before those claims is visible to the plain loads below.
    const slots = this.slots;
    const ringTag = this.byteOffset + 1;
    const mask = this.mask;
    let ownerEnd = 0;
    let ownerFound = false;
    let smallestEnd = 0;
    let candidates = 0;
    for (let s = 0; s < slots.count; s++) {
      const word = slots.slotWord(s);
      const state = slotState(Atomics.load(i32, word + SLOT_STATE));
      if (state === FREE || i32[word + SLOT_ANNOUNCE_RING] !== ringTag) continue;
      const start = i32[word + SLOT_ANNOUNCE_POS]!;
      const span = i32[word + SLOT_ANNOUNCE_BYTES]!;
      if ((head - start) >>> 0 >= span) continue; // does not cover head
      // ...a live producer whose claim covers head may own it: it is slow, not dead.
      if (state === LIVE) return false;
      if (state !== DEAD) continue;
      const end = (start + span) | 0;
      const startIndex = start & mask;
      // A claim that runs past the end of record space put its record at 0, after padding.
      const recordIndex = span > this.capacity - startIndex ? 0 : startIndex;
      if (i32[this.dataWord + (recordIndex >> 2) + 1]! >>> 8 === s + 1) {
        ownerFound = true;
        ownerEnd = end;
      }
      if (candidates === 0 || (end - head) >>> 0 < (smallestEnd - head) >>> 0) smallestEnd = end;
      candidates++;
    }
    if (candidates === 0) return false;
    this.writePadding(head, ((ownerFound ? ownerEnd : smallestEnd) - head) >>> 0);
    this.recoveredClaims++;
    this.reclaimPending = true;
    return true;
  }

  /** Publishes padding over [position, position + size), split at the end of record space. */
  private writePadding(position: number, size: number): void {
    const i32 = this.i32;
    let index = position & this.mask;
    let remaining = size;
    while (remaining > 0) {
      const chunk = Math.min(remaining, this.capacity - index);
      const headerWord = this.dataWord + (index >> 2);
      i32[headerWord + 1] = PADDING_TYPE; // the dead producer may have written its type already
      Atomics.store(i32, headerWord, chunk - RECORD_HEADER_BYTES + 1); // publishes the padding
      remaining -= chunk;
      index = 0;
    }
  }

  /**
   * Frees DEAD producer slots whose last claim was on this ring and is now
   * harmless: wholly behind the consumer, never made (at or past TAIL: a dead
   * thread will not try again), or anything at all once the ring is empty
   * (every claim ever made on it was then published or padded, and consumed).
   * Consumer only; it runs by itself when the ring runs dry or the consumer
   * parks with dead slots about. Returns how many slots it freed.
   */
  reclaimDeadProducers(): number {
    const i32 = this.i32;
    const slots = this.slots;
    if (Atomics.load(i32, slots.deadCountWord) === 0) return 0;
    const head = this.consumerHead;
    const tail = Atomics.load(i32, this.base + W_TAIL);
    const empty = tail === head;
    const ringTag = this.byteOffset + 1;
    let freed = 0;
    for (let s = 0; s < slots.count; s++) {
      const word = slots.slotWord(s);
      if (slotState(Atomics.load(i32, word + SLOT_STATE)) !== DEAD) continue;
      if (i32[word + SLOT_ANNOUNCE_RING] !== ringTag) continue;
      const start = i32[word + SLOT_ANNOUNCE_POS]!;
      const end = (start + i32[word + SLOT_ANNOUNCE_BYTES]!) | 0;
      const consumed = ((end - head) | 0) <= 0 && ((head - start) | 0) >= 0;
      const neverMade = ((start - tail) | 0) >= 0;
      if ((empty || consumed || neverMade) && slots.freeDead(s)) freed++;
    }
    return freed;
  }

  /**
   * On finding the ring empty: reclaim dead slots if this consumer recovered a
   * claim, or if the dead count moved since the last look (a scan per change,
   * not per empty poll, while dead slots of other rings linger).
   */
  private reclaimWhenEmpty(): void {
    const deadCount = Atomics.load(this.i32, this.slots.deadCountWord);
    if (!this.reclaimPending && deadCount === this.deadCountSeenEmpty) return;
    this.reclaimPending = false;
    // The count from before the scan: a death declared during the scan changes it again, so the
    // next empty poll looks once more instead of missing that slot.
    this.deadCountSeenEmpty = deadCount - this.reclaimDeadProducers();
  }
}

function zeroWords(i32: Int32Array, from: number, words: number): void {
  if (words <= SMALL_ZERO_WORDS) {
    for (let i = 0; i < words; i++) i32[from + i] = 0;
  } else {
    i32.fill(0, from, from + words);
  }
}

function deadlineAfter(timeoutMs: number): number {
  return timeoutMs === Number.POSITIVE_INFINITY ? timeoutMs : performance.now() + timeoutMs;
}

function raceAbort(parked: Promise<unknown>, signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    parked.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

function checkCapacity(capacity: number): void {
  if (
    !Number.isInteger(capacity) ||
    capacity < MIN_CAPACITY ||
    capacity > MAX_CAPACITY ||
    (capacity & (capacity - 1)) !== 0
  ) {
    throw new InvalidCapacity(
      `ring capacity must be a power of two from ${MIN_CAPACITY} to ${MAX_CAPACITY} bytes, got ${capacity}`,
    );
  }
}

function checkPlacement(buffer: SharedArrayBuffer, byteOffset: number, bytes: number): void {
  if (!(buffer instanceof SharedArrayBuffer)) throw new LayoutMismatch('a ring needs a SharedArrayBuffer');
  if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset % 64 !== 0) {
    throw new LayoutMismatch(`ring offset must be a non-negative multiple of 64, got ${byteOffset}`);
  }
  if (byteOffset + bytes > buffer.byteLength) {
    throw new LayoutMismatch(
      `ring at ${byteOffset} (+${bytes} bytes) overruns the buffer (${buffer.byteLength} bytes)`,
    );
  }
}

function align64(n: number): number {
  return (n + 63) & ~63;
}
