/**
 * postern's public door. Each folder keeps its own `index.ts`; this file
 * alone decides what the package exports.
 */

// The post office: the capability model over one SharedArrayBuffer.
export * from '../core/index.ts';
// The ring mailboxes are made of, for hosts that want a bare record queue.
// (WriteTimeout is exported once, through core.)
export {
  DEFAULT_WAIT_POLICY,
  DestinationTooSmall,
  InvalidCapacity,
  InvalidRecordType,
  LayoutMismatch,
  MAX_RECORD_TYPE,
  PARK_AT_ONCE,
  Producer,
  ProducerSlots,
  ProducerSlotsExhausted,
  ProducerStateError,
  RECORD_HEADER_BYTES,
  type RecordHandler,
  RecordTooLarge,
  RING_HEADER_BYTES,
  Ring,
  RingCorrupted,
  type RingCreateOptions,
  RingError,
  type RingInitOptions,
  type RingWriteOptions,
  recordBytes,
  SPIN_HARD,
  type WaitPolicy,
} from '../ring/index.ts';
