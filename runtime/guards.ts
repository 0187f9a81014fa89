/** Type guards for what `receive` hands out. */

import type { DownMessage, ExitMessage } from './api.ts';
import { Request } from './request.ts';

/** A `down` from a monitor (built by the runtime: a plain object sent by a process cannot pass for one). */
export function isDown(value: unknown): value is DownMessage {
  return downs.has(value as object);
}

/** An exit signal (built by the runtime). */
export function isExit(value: unknown): value is ExitMessage {
  return exits.has(value as object);
}

export function isRequest(value: unknown): value is Request {
  return value instanceof Request;
}

// Signals the runtime built, so that a message that merely looks like one is told apart.
const downs = new WeakSet<object>();
const exits = new WeakSet<object>();

/** @internal */
export function markDown(down: DownMessage): DownMessage {
  downs.add(down);
  return down;
}

/** @internal */
export function markExit(exit: ExitMessage): ExitMessage {
  exits.add(exit);
  return exit;
}
