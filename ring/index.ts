/**
 * ring/: the bounded multi-producer single-consumer record ring every
 * mailbox is made of. It knows nothing of routes or capabilities.
 */

export { DB_SLEEP, DoorbellOwner, doorbellWords, initDoorbell, ringDoorbell } from './doorbell.ts';
export {
  DestinationTooSmall,
  InvalidCapacity,
  InvalidRecordType,
  LayoutMismatch,
  ProducerSlotsExhausted,
  ProducerStateError,
  RecordTooLarge,
  RingCorrupted,
  RingError,
  WriteTimeout,
} from './errors.ts';
export { parkAsync } from './park-async.ts';
export { Producer, ProducerSlots } from './producer-slots.ts';
export {
  type RecordHandler,
  Ring,
  type RingCreateOptions,
  type RingInitOptions,
  type RingWriteOptions,
} from './ring.ts';
export {
  MAX_RECORD_TYPE,
  RECORD_HEADER_BYTES,
  RING_HEADER_BYTES,
  recordBytes,
  wakeConsumerAt,
} from './ring-layout.ts';
export { DEFAULT_WAIT_POLICY, PARK_AT_ONCE, SPIN_HARD, type WaitPolicy } from './wait-policy.ts';
