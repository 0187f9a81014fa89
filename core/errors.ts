/**
 * Typed errors of the post office. Every one is thrown before shared memory
 * is changed (or after what was changed has been rolled back), so a caller
 * that catches one has lost nothing.
 */

export class PostOfficeError extends Error {
  override name = 'PostOfficeError';
}

/** A handle (or monitor/link id, or owned token) that names nothing live in this table. */
export class InvalidHandle extends PostOfficeError {
  override name = 'InvalidHandle';
}

/** The capability lacks the permission the operation needs, or a demote asked for more. */
export class PermissionDenied extends PostOfficeError {
  override name = 'PermissionDenied';
}

/** An object (group, mailbox, owned capability, buffer) from another post office. */
export class PostOfficeMismatch extends PostOfficeError {
  override name = 'PostOfficeMismatch';
}

/** A handle, group or mailbox that belongs to another table of the same post office. */
export class TableMismatch extends PostOfficeError {
  override name = 'TableMismatch';
}

/** A message above the post office's configured maximum (or with more capabilities than a record holds). */
export class MessageTooLarge extends PostOfficeError {
  override name = 'MessageTooLarge';
  constructor(
    readonly length: number,
    readonly maximum: number,
  ) {
    super(`message of ${length} bytes exceeds the maximum of ${maximum} bytes`);
  }
}

/** The regions a post office can run out of. */
export type Region = 'routes' | 'groups' | 'tables' | 'capabilities' | 'nodes' | 'heap';

/** A region of the post office is full. */
export class CapacityExceeded extends PostOfficeError {
  override name = 'CapacityExceeded';
  constructor(readonly region: Region) {
    super(`post office region '${region}' is full`);
  }
}

/**
 * A ring record the post office never wrote (an unknown type, a capability
 * count or out-of-line body that does not fit): only something that wrote
 * into the shared buffer from outside can cause it. The record is skipped and
 * the mailbox keeps working; what the record claimed to hold is not touched.
 */
export class CorruptRecord extends PostOfficeError {
  override name = 'CorruptRecord';
}
