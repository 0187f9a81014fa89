/**
 * Typed errors of the ring. Every one is thrown before anything in shared
 * memory is touched, so a caller that catches it has lost nothing.
 */

export class RingError extends Error {
  override name = 'RingError';
}

/** A capacity that is not a power of two, or outside the supported range. */
export class InvalidCapacity extends RingError {
  override name = 'InvalidCapacity';
}

/** A record longer than the ring's maximum record length. */
export class RecordTooLarge extends RingError {
  override name = 'RecordTooLarge';
  constructor(
    readonly length: number,
    readonly maxRecordLength: number,
  ) {
    super(`record of ${length} bytes exceeds this ring's maximum of ${maxRecordLength} bytes`);
  }
}

/** A type tag outside 1..255 (0 is the ring's own padding record). */
export class InvalidRecordType extends RingError {
  override name = 'InvalidRecordType';
}

/**
 * The buffer and offset given to `attach`/`init` do not hold (or cannot hold)
 * a ring or a producer-slot table: wrong buffer, misaligned or out-of-range
 * offset, bad magic or layout version.
 */
export class LayoutMismatch extends RingError {
  override name = 'LayoutMismatch';
}

/** Every producer slot is taken. */
export class ProducerSlotsExhausted extends RingError {
  override name = 'ProducerSlotsExhausted';
}

/** A producer used out of protocol: commit without claim, claim while a claim is open, a released producer. */
export class ProducerStateError extends RingError {
  override name = 'ProducerStateError';
}

/** A record does not fit the destination buffer handed to a copying read; the record stays in the ring. */
export class DestinationTooSmall extends RingError {
  override name = 'DestinationTooSmall';
  constructor(
    readonly needed: number,
    readonly available: number,
  ) {
    super(`record of ${needed} bytes does not fit a destination of ${available} bytes`);
  }
}

/**
 * A record header that no producer could have written (it runs past the end
 * of record space, or exceeds the maximum length): the ring's memory was
 * overwritten from outside. The consumer stops rather than act on it.
 */
export class RingCorrupted extends RingError {
  override name = 'RingCorrupted';
}

/** An awaitable or blocking write that gave up waiting for room. */
export class WriteTimeout extends RingError {
  override name = 'WriteTimeout';
}
