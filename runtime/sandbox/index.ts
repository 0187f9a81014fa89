/**
 * runtime/sandbox/: sandboxed processes. One isolated worker per process,
 * with V8 resource limits and a CPU watchdog; the untrusted module runs in a
 * vm context that sees only the process API, through a membrane. See
 * README.md.
 */

export type { SandboxContext } from './api.ts';
export {
  checkLimits,
  DEFAULT_CPU_MS,
  DEFAULT_MEMORY_MB,
  SandboxHost,
  type SandboxHostOptions,
} from './host.ts';
