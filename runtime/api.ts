/**
 * The process API: what a process function sees. A process is an async
 * function exported from a module, called as `fn(ctx, ...args)`, where `ctx`
 * is its `ProcessContext`. Everything a process can reach comes through
 * `ctx` and the references it was handed (DESIGN.md section 1, axiom 1).
 *
 * The same interface backs three places: processes on scheduler workers,
 * the host (main thread) side of a Runtime, and sandboxed processes (through
 * a membrane that hands the sandbox only this surface).
 */

import type { Ref } from './ref.ts';
import type { Request } from './request.ts';

/** Why a process ended. Runtime-defined reasons are the strings and `ErrorReason`/`LimitReason`; `exit(x)` may use any encodable value. */
export type ExitReason =
  | 'normal'
  | 'killed'
  | 'closed'
  | ErrorReason
  | LimitReason
  | WorkerCrashReason
  | unknown;

/** A process that threw. */
export interface ErrorReason {
  readonly kind: 'error';
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
}

/** A sandboxed process that went over one of its limits. */
export interface LimitReason {
  readonly kind: 'limit';
  readonly limit: 'memory' | 'cpu';
  readonly detail: string;
}

/** The scheduler worker a process ran on died under it. */
export interface WorkerCrashReason {
  readonly kind: 'worker-crashed';
  readonly detail: string;
}

export interface ReceiveOptions {
  /** Milliseconds to wait; past it `receive` throws `ReceiveTimeout`. Default: for ever. */
  timeout?: number;
  /**
   * Selective receive: only signals for which `match` returns true are taken;
   * the others stay queued, in order, for later receives.
   */
  match?: (signal: Received) => boolean;
}

export interface RequestOptions {
  /** Milliseconds to wait for the reply; past it `request` throws `RequestTimeout` and a late reply is dropped. Default 5000. */
  timeout?: number;
}

export interface SpawnOptions {
  /**
   * Where the process runs: 'local' (the spawner's worker; the default inside
   * a process), 'next' (round robin over the workers; the default on the
   * host), or a worker index.
   */
  worker?: 'local' | 'next' | number;
  /** Ring capacity of the process's mailbox in bytes (a power of two). Default: the runtime's `processMailboxCapacity`. */
  mailboxCapacity?: number;
  /** Run in an isolated worker with limits and only the powers listed (see sandbox/). */
  sandbox?: SandboxOptions;
}

export interface SandboxOptions {
  /** V8 heap limit of the sandbox worker (old generation), MiB. Default 64. */
  memoryMb?: number;
  /** Longest a sandboxed process may run without yielding (awaiting), ms. Default 1000. */
  cpuMsPerSlice?: number;
  /** Host powers beyond the process API. Default: none. */
  powers?: SandboxPowers;
}

export interface SandboxPowers {
  /** May spawn processes (they run with the same sandbox options). */
  spawn?: boolean;
  /** May write to the host's console through `ctx.log`. */
  log?: boolean;
}

/** A pending `sendAfter`. */
export interface Timer {
  /** Cancels the send; true if it had not happened yet. */
  cancel(): boolean;
}

/** A `down` signal: a monitored process ended. */
export interface DownMessage {
  readonly kind: 'down';
  /** The process that ended (a reference with no permissions; compare with `ctx.same`). */
  readonly ref: Ref;
  /** The id `monitor` returned. */
  readonly monitor: number;
  readonly reason: ExitReason;
}

/** An exit signal, received instead of dying by a process that traps exits. */
export interface ExitMessage {
  readonly kind: 'exit';
  /** The linked process that ended, or null when the dead group had no identity route. */
  readonly from: Ref | null;
  readonly reason: ExitReason;
}

/** What `receive` hands out: an ordinary value, a request to answer, or a system signal. */
export type Received = unknown;

/** Permission names for `restrict`. */
export type Permission = 'send' | 'monitor' | 'kill' | 'link';

export interface ProcessContext {
  /** This process's own main route, with every permission. */
  readonly self: Ref;
  /** The arguments the process was spawned with (also passed after `ctx`). */
  readonly args: readonly unknown[];

  /**
   * The next signal: a message value, a `Request` (answer with `reply`), a
   * `DownMessage` or an `ExitMessage` (see `isDown`, `isExit`, `isRequest`).
   * Throws `ReceiveTimeout` past `timeout`.
   */
  receive(options?: ReceiveOptions): Promise<Received>;
  /** Sends a value; false when the target's mailbox is full (nothing sent). A closed target drops it silently. */
  send(ref: Ref, value: unknown): boolean;
  /** Sends a value, waiting for room while the target's mailbox is full. */
  sendWhenRoom(ref: Ref, value: unknown, options?: { timeout?: number }): Promise<void>;
  /** Sends a request carrying a private reply route and waits for the reply (never through the mailbox). */
  request(ref: Ref, value: unknown, options?: RequestOptions): Promise<unknown>;
  /**
   * Answers a request, now or later, from this or any process the request was
   * handed to; a request is answered once (its reply route is let go). The
   * requester being gone is not an error: the reply is dropped.
   */
  reply(request: Request, value: unknown): boolean;

  spawn(
    moduleUrl: string | URL,
    exportName: string,
    args?: readonly unknown[],
    options?: SpawnOptions,
  ): Promise<Ref>;
  /** Spawns and links, atomically: the link exists before the new process runs. */
  spawnLink(
    moduleUrl: string | URL,
    exportName: string,
    args?: readonly unknown[],
    options?: SpawnOptions,
  ): Promise<Ref>;
  /** Spawns and monitors, atomically. */
  spawnMonitor(
    moduleUrl: string | URL,
    exportName: string,
    args?: readonly unknown[],
    options?: SpawnOptions,
  ): Promise<{ ref: Ref; monitor: number }>;

  /** Links this process to `ref`'s process (needs 'link'). Returns a link id for `unlink`. */
  link(ref: Ref): number;
  unlink(linkId: number): boolean;
  /** Monitors `ref`'s process (needs 'monitor'). Returns the id carried by the `down`. */
  monitor(ref: Ref): number;
  demonitor(monitorId: number): boolean;
  /** Kills `ref`'s process and everything linked to it (needs 'kill'). */
  kill(ref: Ref, reason?: ExitReason): void;
  /** Ends this process with `reason`; never returns. */
  exit(reason?: ExitReason): never;
  /** Linked deaths arrive as `ExitMessage`s instead of killing this process. */
  trapExits(on: boolean): void;

  /** Sends `value` to `ref` after `ms`; cancelled by `cancel()` or when this process ends. */
  sendAfter(ref: Ref, value: unknown, ms: number): Timer;
  /** A reference to the same process with only `perms` (a subset of what `ref` has). */
  restrict(ref: Ref, perms: readonly Permission[]): Ref;
  /** The permissions `ref` carries. */
  permissions(ref: Ref): Permission[];
  /** Whether two references name the same process. */
  same(a: Ref, b: Ref): boolean;
  /**
   * Lets go of a reference (it becomes invalid), or of a Request's reply
   * route without answering it (a process that handed a Request on to another
   * process still holds its own copy until it replies or drops it).
   */
  drop(ref: Ref | Request): void;
}
