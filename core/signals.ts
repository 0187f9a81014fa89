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

/**
 * Sent, instead of death, to the trap mailbox of a group that traps exits
 * (Group.trapExits) when a group linked to it dies; the link is gone.
 */
export interface ExitSignal extends ExitInfo {
  readonly kind: 'exit';
  /**
   * A permission-less handle to the dead group's identity route (the first
   * mailbox created in it), or 0 when it has none (compare it with `sameRoute`).
   */
  readonly from: number;
  /** 'killed'; or 'closed' when the link was made through a route its owner had closed. */
  readonly reason: Reason;
}

export interface EndSignal extends ExitInfo {
  readonly kind: 'end';
  readonly reason: Reason;
}

export type Signal = MessageSignal | DownSignal | ExitSignal | EndSignal;

/**
 * The in-place form of a signal: one object per mailbox, overwritten by
 * every in-place receive. A message's bytes are read where they lie
 * (`bytes[offset, offset + length)`, in the ring or the shared heap) and stay
 * valid until the mailbox's next receive of any kind, or its close.
 */
export class InPlaceSignal {
  kind: 'message' | 'down' | 'exit' | 'end' = 'end';
  /** The post office's whole buffer. */
  bytes: Uint8Array;
  offset = 0;
  length = 0;
  /** Capabilities of a message (reused array). */
  readonly caps: number[] = [];
  /** Down: the route handle and monitor id. Exit: `route` is `from`. */
  route = 0;
  monitor = 0;
  /** Exit: the dead group's identity route handle, or 0. */
  from = 0;
  /** Down, exit and end: the reason. */
  reason: Reason = 'closed';
  /** Down, exit and end: the code (see ExitInfo). */
  code = 0;
  /** Down, exit and end: a copy of the detail (see ExitInfo), or null. */
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
