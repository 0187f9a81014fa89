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
export { dropRefs } from './drop-refs.ts';
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
export {
  MAX_NAME_LENGTH,
  type RegisterOptions,
  Registry,
  RegistryError,
  type RegistryErrorCode,
  registry,
  startRegistry,
} from './registry.ts';
export { Request } from './request.ts';
export { Runtime, type RuntimeOptions } from './runtime.ts';
export {
  type ChildInfo,
  type ChildSpec,
  type ChildType,
  type Intensity,
  type IntensityReason,
  type RestartPolicy,
  type StartSupervisorOptions,
  type Strategy,
  Supervisor,
  SupervisorError,
  type SupervisorErrorCode,
  type SupervisorSpec,
  startSupervisor,
  supervisor,
  supervisorChild,
} from './supervisor.ts';
