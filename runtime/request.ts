/**
 * A request received through `receive`: the value asked, and what it takes
 * to answer. It may be answered later and from another process: a Request is
 * itself a value that can be sent (it travels with its reply route), and
 * `ctx.reply(request, value)` works in whichever process holds it.
 */

import type { Ref } from './ref.ts';

export class Request {
  /** @internal */
  constructor(
    /** @internal The requester's id for this request. */
    readonly id: number,
    /** @internal The requester's private reply route (send-only). */
    readonly replyTo: Ref,
    /** What was asked. */
    readonly value: unknown,
  ) {
    Object.freeze(this);
  }
}
Object.freeze(Request.prototype);
