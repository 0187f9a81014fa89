/**
 * What `receive` returns. Handles in signals are handles of the receiving
 * table.
 */

import { REASON_KILLED } from './layout.ts';

export type Reason = 'closed' | 'killed';

export interface MessageSignal {
  readonly kind: 'message';
  /** A copy of the message bytes, owned by the receiver. */
  readonly data: Uint8Array;
  /** Capabilities that came with the message, imported into the receiver's table. */
  readonly caps: number[];
}

/**
 * Why a route closed or a group died, beyond `reason`: the code and detail of
 * the kill that did it (reasons.ts), code 0 and detail null for a mailbox
 * closed by its owner or a kill that gave none.
 */
export interface ExitInfo {
  /**
   * The kill's code (a natural number below 2^30), with DETAIL_DROPPED set
   * when its detail could not be stored (the shared heap was full).
   */
  readonly code: number;
  /** A copy of the kill's detail, owned by the receiver; null when it had none. */
  readonly detail: Uint8Array | null;
}

export interface DownSignal extends ExitInfo {
  readonly kind: 'down';
  /** A permission-less handle to the route that closed (compare it with `sameRoute`). */
  readonly route: number;
  readonly reason: Reason;
  /** The id `monitor` returned. */
  readonly monitor: number;
}

export interface EndSignal extends ExitInfo {
  readonly kind: 'end';
  readonly reason: Reason;
}

export type Signal = MessageSignal | DownSignal | EndSignal;

/**
 * The in-place form of a signal: one object per mailbox, overwritten by
 * every in-place receive. A message's bytes are read where they lie
 * (`bytes[offset, offset + length)`, in the ring or the shared heap) and stay
 * valid until the mailbox's next receive of any kind, or its close.
 */
export class InPlaceSignal {
  kind: 'message' | 'down' | 'end' = 'end';
  /** The post office's whole buffer. */
  bytes: Uint8Array;
  offset = 0;
  length = 0;
  /** Capabilities of a message (reused array). */
  readonly caps: number[] = [];
  /** Down: the route handle and monitor id. */
  route = 0;
  monitor = 0;
  /** Down and end: the reason. */
  reason: Reason = 'closed';
  /** Down and end: the code (see ExitInfo). */
  code = 0;
  /** Down and end: a copy of the detail (see ExitInfo), or null. */
  detail: Uint8Array | null = null;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }

  /** A view of the message bytes (allocates the view object; valid as long as the bytes are). */
  get data(): Uint8Array {
    return this.bytes.subarray(this.offset, this.offset + this.length);
  }

  /** A copy of the message bytes. */
  copy(): Uint8Array {
    return this.bytes.slice(this.offset, this.offset + this.length);
  }
}

export function reasonName(code: number): Reason {
  return code === REASON_KILLED ? 'killed' : 'closed';
}
