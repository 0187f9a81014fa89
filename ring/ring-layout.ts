/**
 * Layout of one ring in a SharedArrayBuffer. The ring starts at a 64-aligned
 * byte offset: a 320-byte header of five cache lines, then `capacity` bytes of
 * records. Each line holds the words one side writes and the other side reads
 * at a different rhythm, so that no hot read drags in a line the other side
 * is busy writing (the producers' CAS line is never read by the consumer on
 * its fast path, and the word producers check after every publish is not on
 * the line the consumer writes HEAD to).
 *
 * Header words (word index from the ring's first word, byte offset in brackets):
 *
 *  line 0: constants, written once by init before MAGIC; read by everyone
 *   0 [0]    MAGIC           'RING', written last by init: publishes the ring
 *   1 [4]    VERSION         layout version
 *   2 [8]    CAPACITY        bytes of record space, a power of two
 *   3 [12]   MAX_RECORD      largest payload accepted, in bytes
 *   4 [16]   SLOTS_OFFSET    byte offset of the producer-slot region this ring's
 *                            producers announce their claims in
 *  line 1: written by producers on every claim
 *  16 [64]   TAIL            position where the next claim starts; producers
 *                            advance it with one CAS per claim
 *  17 [68]   HEAD_CACHE      a producer's last reading of HEAD, so producers read
 *                            the consumer's line only when the ring looks full;
 *                            may lag HEAD, never leads it
 *  line 2: written by the consumer when it hands space back
 *  32 [128]  HEAD            position up to which space is handed back; only the
 *                            consumer writes it, after zeroing what it consumed
 *  33 [132]  ROOM_SEQ        futex word room waiters park on; the consumer bumps
 *                            it after handing space back while ROOM_WAITERS > 0
 *  line 3: written by the consumer when it parks; read by producers after every publish
 *  48 [192]  CONSUMER_SLEEP  1 while the consumer is parked (or about to park),
 *                            set by the consumer; a producer that sees 1 after
 *                            publishing swaps it to 0 and notifies. 2 while the
 *                            consumer waits through a doorbell (doorbell.ts):
 *                            a producer that sees 2 swaps it to 0 and rings
 *  49 [196]  DOORBELL_BASE   word index of the doorbell this ring's consumer
 *                            waits through, written by the consumer before it
 *                            first stores 2 in CONSUMER_SLEEP
 *  50 [200]  DOORBELL_BIT    this ring's bit in that doorbell; same writer
 *  line 4: written by producers when they wait for room; read by the consumer
 *          each time it hands space back
 *  64 [256]  ROOM_WAITERS    producers parked waiting for room; each adds 1
 *                            before parking and subtracts 1 after
 *
 * Positions (TAIL, HEAD) are byte counters that wrap at 2^32 and are compared
 * by 32-bit difference, so capacity is at most 2^30. A position maps to byte
 * `position & (capacity - 1)` of the record space.
 *
 * Records are 8-byte aligned: an 8-byte header, then the payload, then zero
 * fill to the next multiple of 8.
 *   word 0  PUBLISH  payload length + 1; 0 until the producer publishes, so the
 *                    store of this word is the record's publication point
 *   word 1  TYPE     low byte: 1..255 from the layers above, 0 marks padding;
 *                    above it: the claiming producer's slot + 1 (its claim mark),
 *                    written first thing after the claim
 * Record space is all zeros except for records between HEAD and TAIL: the
 * consumer zeroes every record it consumes before moving HEAD past it. So a
 * non-zero PUBLISH word can only have been written by the claim that owns
 * that position, and no payload can ever pose as a later record's header.
 */

import { ringDoorbell } from './doorbell.ts';

export const RING_MAGIC = 0x474e4952; // 'RING' little-endian
export const RING_VERSION = 2;

export const RING_HEADER_BYTES = 320;
export const RECORD_HEADER_BYTES = 8;
export const RECORD_ALIGNMENT = 8;
export const MIN_CAPACITY = 64;
export const MAX_CAPACITY = 1 << 30;
/** Reserved record type of padding records (wrap-around and recovered dead claims). */
export const PADDING_TYPE = 0;
export const MAX_RECORD_TYPE = 255;
/** The TYPE word's low byte is the type; the bits above it are the claiming producer's mark. */
export const TYPE_MASK = 0xff;

export const W_MAGIC = 0;
export const W_VERSION = 1;
export const W_CAPACITY = 2;
export const W_MAX_RECORD = 3;
export const W_SLOTS_OFFSET = 4;
export const W_TAIL = 16;
export const W_HEAD_CACHE = 17;
export const W_HEAD = 32;
export const W_ROOM_SEQ = 33;
export const W_CONSUMER_SLEEP = 48;
export const W_DOORBELL_BASE = 49;
export const W_DOORBELL_BIT = 50;
/** CONSUMER_SLEEP values. */
export const CONSUMER_AWAKE = 0;
export const CONSUMER_PARKED = 1;
export const CONSUMER_DOORBELL = 2;
export const W_ROOM_WAITERS = 64;

/** Bytes a record with `payloadLength` bytes of payload takes in the ring. */
export function recordBytes(payloadLength: number): number {
  return (RECORD_HEADER_BYTES + payloadLength + RECORD_ALIGNMENT - 1) & ~(RECORD_ALIGNMENT - 1);
}

/**
 * Wakes the consumer of the ring whose first word is `ringBase`, if it is
 * parked. Used by producers after publishing and by `markDead`.
 */
export function wakeConsumerAt(i32: Int32Array, ringBase: number): void {
  const sleepWord = ringBase + W_CONSUMER_SLEEP;
  const state = Atomics.load(i32, sleepWord);
  if (state === CONSUMER_AWAKE) return;
  // Only the producer that flips the word back to 0 wakes: the others see 0 and skip the work.
  if (state === CONSUMER_PARKED) {
    if (Atomics.compareExchange(i32, sleepWord, CONSUMER_PARKED, CONSUMER_AWAKE) === CONSUMER_PARKED) {
      Atomics.notify(i32, sleepWord, 1);
    }
  } else if (
    Atomics.compareExchange(i32, sleepWord, CONSUMER_DOORBELL, CONSUMER_AWAKE) === CONSUMER_DOORBELL
  ) {
    // Read after the swap: the consumer wrote both before it stored CONSUMER_DOORBELL.
    ringDoorbell(
      i32,
      Atomics.load(i32, ringBase + W_DOORBELL_BASE),
      Atomics.load(i32, ringBase + W_DOORBELL_BIT),
    );
  }
}
