/**
 * core/: the post office. Routes, groups, capability tables and mailboxes
 * over one SharedArrayBuffer; the Flue model with its defects fixed.
 */

export { WriteTimeout } from '../ring/index.ts';
export {
  CapacityExceeded,
  CorruptRecord,
  InvalidHandle,
  MessageTooLarge,
  PermissionDenied,
  PostOfficeError,
  PostOfficeMismatch,
  type Region,
  TableMismatch,
} from './errors.ts';
export { Group } from './group.ts';
export { Mailbox, type MailboxOptions, type ReceiveOptions } from './mailbox.ts';
export { Perm, type Perms } from './perm.ts';
export { PostOffice, type PostOfficeOptions, type PostOfficeStats } from './post-office.ts';
export { DETAIL_DROPPED, type KillReason, MAX_DETAIL_BYTES, MAX_EXIT_CODE } from './reasons.ts';
export {
  type DownSignal,
  type EndSignal,
  type ExitInfo,
  type ExitSignal,
  InPlaceSignal,
  type MessageSignal,
  type Reason,
  type Signal,
} from './signals.ts';
export { type OwnedCapability, type SendWhenRoomOptions, Table } from './table.ts';
