/**
 * What sandboxed code sees: the process API (runtime/api.ts), built inside
 * the sandbox's own realm, plus the helpers a sandbox cannot import. A
 * sandboxed module may import types (they are erased) but nothing else.
 *
 * Differences from a process on a scheduler worker, all forced by the
 * membrane: a Ref or Request is an opaque frozen handle of the sandbox's
 * realm (not an instance of runtime's classes: test them with `isRequest`,
 * compare Refs with `same`); errors are the realm's own Error objects that
 * carry the host error's `name` and `message` only (test `error.name`);
 * binary values arrive as arrays of numbers.
 */

import type { ProcessContext } from '../api.ts';
import type { Request } from '../request.ts';

export interface SandboxContext extends ProcessContext {
  /** Whether `value` is a request `receive` handed out (answer it with `reply`). */
  isRequest(value: unknown): value is Request;
  /** Whether `value` is a `down` signal from a monitor. */
  isDown(value: unknown): value is import('../api.ts').DownMessage;
  /** Whether `value` is an exit signal (with `trapExits(true)`). */
  isExit(value: unknown): value is import('../api.ts').ExitMessage;
  /** Writes a line to the host's console. Needs the `log` power (else throws PowerDenied). */
  log(...parts: unknown[]): void;
}
