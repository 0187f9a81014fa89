/**
 * runtime/: lightweight processes on worker threads over the post office
 * (DESIGN.md section 5): the Runtime, the process API, the codec.
 */

export type {
  DownMessage,
  ErrorReason,
  ExitMessage,
  ExitReason,
  LimitReason,
  Permission,
  ProcessContext,
  Received,
  ReceiveOptions,
  RequestOptions,
  SandboxOptions,
  SandboxPowers,
  SpawnOptions,
  Timer,
  WorkerCrashReason,
} from './api.ts';
export {
  DecodeError,
  EncodeError,
  PowerDenied,
  ProcessEnded,
  ReceiveTimeout,
  RequestTimeout,
  RuntimeError,
  RuntimeStopped,
  SendTimeout,
  SpawnError,
} from './errors.ts';
export { isDown, isExit, isRequest } from './guards.ts';
export { Ref } from './ref.ts';
export { Request } from './request.ts';
export { Runtime, type RuntimeOptions } from './runtime.ts';
