/**
 * The main thread's side of sandboxes: one worker per sandboxed process,
 * started with V8 resource limits, watched by a CPU watchdog, and cleaned up
 * in the post office when it ends, however it ends.
 *
 * Roles: only the main thread starts and stops sandbox workers (a sandbox
 * with the spawn power asks it by postMessage). A worker owns its process;
 * the main thread never touches that process's table. What the main thread
 * knows of a worker: its control block (heartbeat, producer slot), the
 * owned tokens it handed it, and its exit.
 *
 * Watchdog: every `beatMs` (a quarter of the slice, 5..250 ms) the main
 * thread reads the worker's heartbeat; when it has not moved for
 * `cpuMsPerSlice` ms the worker is terminated and its process dies with
 * `{ kind: 'limit', limit: 'cpu' }`. A main thread that was itself busy
 * cannot cause a false kill: it measures from the last change it saw, and a
 * live worker's beat has moved by the time it looks again.
 *
 * Exit: whatever the cause, once the worker has exited the main thread
 * declares its thread dead with the reason (`office.markThreadDead`), which
 * kills the process's group (links and monitors fire with the reason) and
 * reclaims what the thread held; then it discards the tokens the worker
 * never imported. A worker whose process ended by itself has already ended
 * it and detached: declaring it dead is then a no-op.
 */

import { statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { OwnedCapability, PostOffice } from '../../core/index.ts';
import type { ExitReason, LimitReason, SandboxOptions, SpawnOptions, WorkerCrashReason } from '../api.ts';
import { SpawnError } from '../errors.ts';
import type { Process } from '../process.ts';
import { killReason } from '../reasons.ts';
import type { Ref } from '../ref.ts';
import {
  CB_BEAT,
  CB_GEN,
  CB_INSIDE,
  CB_KILL,
  CB_SLOT,
  createControlBlock,
  type FromSandbox,
  type SandboxLimits,
  type SandboxWorkerData,
  type ToSandbox,
} from './control.ts';
import { adoptSelf, discardAll, packSpawn } from './spawn.ts';

const BOOT_URL = new URL('../boot.mjs', import.meta.url);
const WORKER_ENTRY = new URL('./worker.ts', import.meta.url).href;

export const DEFAULT_MEMORY_MB = 64;
export const DEFAULT_CPU_MS = 1000;
/** Below this a worker cannot even load its shim. */
export const MIN_MEMORY_MB = 16;
export const MIN_CPU_MS = 20;
/** A worker that has not said `ready` or `failed` by then is terminated. */
const START_TIMEOUT_MS = 30_000;
/** V8 young generation of a sandbox worker, MiB (the old generation is `memoryMb`). */
const YOUNG_GENERATION_MB = 4;
/** How long past its slice the watchdog waits for a worker to leave a post office operation, ms. */
const INSIDE_GRACE_MS = 1000;
/** Transformed modules kept by the main thread (the oldest goes first). */
const MAX_CACHED_MODULES = 256;

export interface SandboxHostOptions {
  office: PostOffice;
  /** Default ring capacity of a sandboxed process's main mailbox. */
  processMailboxCapacity: number;
  /** Sandbox workers alive at once, across every spawner. Default 64. */
  maxSandboxes?: number;
  /** Where `ctx.log` lines go. Default: console.log, prefixed with the module and export. */
  log?: (line: string, source: { moduleUrl: string; exportName: string }) => void;
}

interface StartRequest {
  moduleUrl: string;
  exportName: string;
  mailboxCapacity: number;
  payload: Uint8Array;
  caps: OwnedCapability[];
  limits: SandboxLimits;
  quiet: boolean;
}

/** A module's transformed code, valid while the file keeps its size, modification time and inode. */
interface CachedModule {
  stamp: string;
  code: string;
}

/** Transformed modules by URL, shared by every SandboxHost of this thread (oldest first). */
const modules = new Map<string, CachedModule>();

interface Sandbox {
  readonly worker: Worker;
  readonly request: StartRequest;
  /** The module file's size and mtime when the worker was started (undefined: not a readable file). */
  readonly stamp: string | undefined;
  readonly control: Int32Array;
  /** Tokens handed to the worker and not yet known to be imported. */
  readonly handed: Set<OwnedCapability>;
  /** Spawn requests of this sandbox: tokens forwarded, by request id, until the worker says it took them. */
  readonly forwarded: Map<number, OwnedCapability>;
  /** Settles the spawn that started this sandbox, until `ready` or `failed`. */
  startup: { resolve(self: OwnedCapability): void; reject(error: Error): void } | null;
  /** Set when the main thread terminated it: the reason its process dies with. */
  verdict: ExitReason | null;
  error: unknown;
  lastBeat: number;
  lastChange: number;
  /** The watchdog's verdict while it waits for the worker to leave a post office operation. */
  condemned: { reason: ExitReason; at: number } | null;
  watchdog: ReturnType<typeof setInterval> | undefined;
  startTimer: ReturnType<typeof setTimeout> | undefined;
  exited: Promise<void>;
}

export class SandboxHost {
  private readonly office: PostOffice;
  private readonly sandboxes = new Set<Sandbox>();
  private readonly maxSandboxes: number;
  private stopping = false;

  constructor(private readonly options: SandboxHostOptions) {
    this.office = options.office;
    this.maxSandboxes = options.maxSandboxes ?? 64;
  }

  /** Sandbox workers running now. */
  get size(): number {
    return this.sandboxes.size;
  }

  /**
   * Spawns a sandboxed process for `parent` (a process of this thread): the
   * `spawnSandbox` hook of the main thread's ThreadHost.
   */
  readonly spawn = async (
    parent: Process,
    moduleUrl: string,
    exportName: string,
    args: readonly unknown[],
    options: SpawnOptions,
    link: boolean,
  ): Promise<Ref> => {
    const limits = checkLimits(options.sandbox);
    const mailboxCapacity = options.mailboxCapacity ?? this.options.processMailboxCapacity;
    const { payload, caps } = packSpawn(parent, args, link);
    const self = await this.start({
      moduleUrl,
      exportName,
      mailboxCapacity,
      payload,
      caps,
      limits,
      quiet: false,
    });
    return adoptSelf(parent, this.office, self);
  };

  /**
   * Starts a sandbox worker; resolves with a token of its process's main
   * route once the process exists. Takes ownership of `request.caps`, even
   * when it rejects (SpawnError).
   */
  start(request: StartRequest): Promise<OwnedCapability> {
    if (this.stopping) {
      discardAll(this.office, request.caps);
      return Promise.reject(new SpawnError('the runtime is shutting down'));
    }
    if (this.sandboxes.size >= this.maxSandboxes) {
      discardAll(this.office, request.caps);
      return Promise.reject(new SpawnError(`too many sandboxes (at most ${this.maxSandboxes} run at once)`));
    }
    const stamp = stampOf(request.moduleUrl);
    const cached = modules.get(request.moduleUrl);
    const code =
      cached !== undefined && stamp !== undefined && cached.stamp === stamp ? cached.code : undefined;
    const control = createControlBlock();
    const cpu = request.limits.cpuMsPerSlice;
    const beatMs = Math.max(5, Math.min(250, Math.floor(cpu / 4)));
    const workerData: SandboxWorkerData & { entry: string } = {
      entry: WORKER_ENTRY,
      buffer: this.office.buffer,
      control: control.buffer as SharedArrayBuffer,
      beatMs,
      moduleUrl: request.moduleUrl,
      exportName: request.exportName,
      mailboxCapacity: request.mailboxCapacity,
      payload: request.payload,
      caps: request.caps,
      limits: request.limits,
      quiet: request.quiet,
      code,
    };
    let worker: Worker;
    try {
      worker = new Worker(BOOT_URL, {
        workerData,
        resourceLimits: {
          maxOldGenerationSizeMb: request.limits.memoryMb,
          maxYoungGenerationSizeMb: YOUNG_GENERATION_MB,
        },
      });
    } catch (error) {
      discardAll(this.office, request.caps);
      return Promise.reject(new SpawnError(`cannot start a sandbox worker: ${(error as Error).message}`));
    }
    return new Promise<OwnedCapability>((resolve, reject) => {
      const sandbox: Sandbox = {
        worker,
        request,
        stamp,
        control,
        handed: new Set(request.caps),
        forwarded: new Map(),
        startup: { resolve, reject },
        verdict: null,
        error: undefined,
        lastBeat: 0,
        lastChange: 0,
        condemned: null,
        watchdog: undefined,
        startTimer: undefined,
        exited: new Promise<void>((done) => worker.once('exit', () => done())),
      };
      this.sandboxes.add(sandbox);
      sandbox.watchdog = setInterval(() => this.watch(sandbox), beatMs);
      sandbox.watchdog.unref();
      sandbox.startTimer = setTimeout(() => {
        if (sandbox.startup !== null) this.condemn(sandbox, 'killed');
      }, START_TIMEOUT_MS);
      sandbox.startTimer.unref();
      worker.on('message', (message: FromSandbox) => this.onMessage(sandbox, message));
      worker.on('error', (error) => {
        sandbox.error = error;
      });
      worker.once('exit', (code) => this.onExit(sandbox, code));
    });
  }

  /**
   * Ends every sandbox: terminates its worker and declares its thread dead
   * with `reason`, so its process dies with it. Later spawns fail.
   */
  async stop(reason: ExitReason = 'shutdown'): Promise<void> {
    this.stopping = true;
    const all = [...this.sandboxes];
    for (const sandbox of all) this.condemn(sandbox, reason);
    await Promise.all(all.map((s) => s.exited));
  }

  // ---------------------------------------------------------------- watchdog

  private watch(sandbox: Sandbox): void {
    if (sandbox.verdict !== null) return; // already being stopped
    const now = performance.now();
    if (sandbox.condemned !== null) {
      // Condemned, waiting for it to leave a post office operation (or for the grace to run out).
      if (Atomics.load(sandbox.control, CB_INSIDE) === 0 || now - sandbox.condemned.at >= INSIDE_GRACE_MS) {
        this.terminate(sandbox, sandbox.condemned.reason);
      }
      return;
    }
    const beat = Atomics.load(sandbox.control, CB_BEAT);
    if (beat === 0) return; // not armed yet
    if (beat !== sandbox.lastBeat) {
      sandbox.lastBeat = beat;
      sandbox.lastChange = now;
      return;
    }
    const stalled = now - sandbox.lastChange;
    const slice = sandbox.request.limits.cpuMsPerSlice;
    if (stalled < slice) return;
    const reason: LimitReason = {
      kind: 'limit',
      limit: 'cpu',
      detail: `ran ${Math.round(stalled)} ms without yielding (the limit is ${slice} ms)`,
    };
    this.condemn(sandbox, reason);
  }

  /**
   * Terminates a worker, but never inside a post office operation, which may
   * hold a lock (control.ts): from now on the worker starts none, and the one
   * it may be in ends soon (the watchdog's next ticks look). Past a grace
   * period (a core bug, a lock held by another dead thread...) the worker
   * goes all the same.
   */
  private condemn(sandbox: Sandbox, reason: ExitReason): void {
    if (sandbox.verdict !== null || sandbox.condemned !== null) return;
    sandbox.condemned = { reason, at: performance.now() };
    Atomics.store(sandbox.control, CB_KILL, 1);
    if (Atomics.load(sandbox.control, CB_INSIDE) === 0) this.terminate(sandbox, reason);
  }

  private terminate(sandbox: Sandbox, verdict: ExitReason): void {
    if (sandbox.verdict !== null) return;
    sandbox.verdict = verdict;
    void sandbox.worker.terminate();
  }

  // ---------------------------------------------------------------- messages from a sandbox worker

  private onMessage(sandbox: Sandbox, message: FromSandbox): void {
    switch (message.type) {
      case 'ready': {
        // Its start capabilities are imported (or were dropped with a failed import).
        sandbox.handed.clear();
        const startup = sandbox.startup;
        sandbox.startup = null;
        if (sandbox.startTimer !== undefined) clearTimeout(sandbox.startTimer);
        if (startup !== null) startup.resolve(message.self);
        else this.office.discardOwned(message.self);
        return;
      }
      case 'compiled':
        this.remember(sandbox, message.code);
        return;
      case 'failed': {
        const startup = sandbox.startup;
        sandbox.startup = null;
        startup?.reject(
          new SpawnError(`cannot start ${describe(sandbox.request)} in a sandbox: ${message.message}`),
        );
        return;
      }
      case 'spawn':
        this.spawnFor(sandbox, message);
        return;
      case 'took':
        sandbox.forwarded.delete(message.id);
        return;
      case 'log':
        this.log(sandbox, message.text);
        return;
    }
  }

  /** A sandbox with the spawn power asks for a child: same limits and powers, quiet errors. */
  private spawnFor(sandbox: Sandbox, message: Extract<FromSandbox, { type: 'spawn' }>): void {
    const answer = (reply: ToSandbox) => {
      if (this.sandboxes.has(sandbox) && sandbox.verdict === null) sandbox.worker.postMessage(reply);
      else if (reply.type === 'spawned') this.office.discardOwned(reply.self);
    };
    if (!sandbox.request.limits.powers.spawn) {
      discardAll(this.office, message.caps);
      answer({
        type: 'spawn-failed',
        id: message.id,
        message: "this sandbox was not given the 'spawn' power",
      });
      return;
    }
    const request: StartRequest = {
      moduleUrl: message.moduleUrl,
      exportName: message.exportName,
      mailboxCapacity: message.mailboxCapacity,
      payload: message.payload,
      caps: message.caps,
      limits: sandbox.request.limits,
      quiet: true,
    };
    this.start(request).then(
      (self) => {
        if (this.sandboxes.has(sandbox) && sandbox.verdict === null) sandbox.forwarded.set(message.id, self);
        answer({ type: 'spawned', id: message.id, self });
      },
      (error: Error) => answer({ type: 'spawn-failed', id: message.id, message: quietMessage(error) }),
    );
  }

  /** Caches a module's transformed code under the file stamp taken before the worker read it. */
  private remember(sandbox: Sandbox, code: string): void {
    if (sandbox.stamp === undefined) return;
    const url = sandbox.request.moduleUrl;
    modules.delete(url);
    modules.set(url, { stamp: sandbox.stamp, code });
    if (modules.size > MAX_CACHED_MODULES) modules.delete(modules.keys().next().value as string);
  }

  private log(sandbox: Sandbox, text: string): void {
    const { moduleUrl, exportName } = sandbox.request;
    if (this.options.log !== undefined) this.options.log(text, { moduleUrl, exportName });
    else console.log(`[sandbox ${describe(sandbox.request)}] ${text}`);
  }

  // ---------------------------------------------------------------- exit

  private onExit(sandbox: Sandbox, code: number): void {
    this.sandboxes.delete(sandbox);
    if (sandbox.watchdog !== undefined) clearInterval(sandbox.watchdog);
    if (sandbox.startTimer !== undefined) clearTimeout(sandbox.startTimer);
    const reason = exitReasonOf(sandbox, code);
    const slot = Atomics.load(sandbox.control, CB_SLOT);
    if (slot !== 0) {
      // A worker that ended its process and detached has nothing left: this is then a no-op.
      this.office.markThreadDead(slot - 1, Atomics.load(sandbox.control, CB_GEN), killReason(reason));
    }
    discardAll(this.office, [...sandbox.handed, ...sandbox.forwarded.values()]);
    sandbox.handed.clear();
    sandbox.forwarded.clear();
    const startup = sandbox.startup;
    sandbox.startup = null;
    startup?.reject(
      new SpawnError(
        `the sandbox of ${describe(sandbox.request)} ended before its process started: ${describeReason(reason)}`,
      ),
    );
  }
}

/** The reason a sandbox worker's process dies with, from how the worker ended. */
function exitReasonOf(sandbox: Sandbox, code: number): ExitReason {
  if (sandbox.verdict !== null) return sandbox.verdict;
  if (sandbox.condemned !== null) return sandbox.condemned.reason;
  const error = sandbox.error as (Error & { code?: string }) | undefined;
  if (error?.code === 'ERR_WORKER_OUT_OF_MEMORY') {
    const reason: LimitReason = {
      kind: 'limit',
      limit: 'memory',
      detail: `went over its heap of ${sandbox.request.limits.memoryMb} MiB`,
    };
    return reason;
  }
  if (code === 0 && error === undefined) return 'normal'; // the process ended itself first
  const crash: WorkerCrashReason = {
    kind: 'worker-crashed',
    detail:
      error === undefined ? `the sandbox worker exited with code ${code}` : `${error.name}: ${error.message}`,
  };
  return crash;
}

/**
 * The size and modification time of a file: URL's file, or undefined. Taken
 * before the worker reads the file, so a change after it makes the next
 * stamp differ from the cached one.
 */
function stampOf(url: string): string | undefined {
  try {
    const stat = statSync(fileURLToPath(url), { bigint: true });
    return `${stat.size}:${stat.mtimeNs}:${stat.ino}`;
  } catch {
    return undefined;
  }
}

function describe(request: StartRequest): string {
  return `${request.moduleUrl}#${request.exportName}`;
}

function describeReason(reason: ExitReason): string {
  if (typeof reason === 'string') return reason;
  const r = reason as { kind?: string; limit?: string; detail?: string; message?: string };
  if (r.kind === 'limit') return `over its ${r.limit} limit (${r.detail})`;
  return String(r.detail ?? r.message ?? r.kind);
}

/** What a sandbox learns of a failed spawn: the limit it hit, or nothing about the module itself. */
function quietMessage(error: Error): string {
  return error instanceof SpawnError
    ? error.message.replace(/^cannot start \S+ in a sandbox: /, '')
    : 'the spawn failed';
}

/** The sandbox options after defaults; throws RangeError or TypeError for bad ones. */
export function checkLimits(options: SandboxOptions | undefined): SandboxLimits {
  if (options === null || typeof options !== 'object')
    throw new TypeError('sandbox: expected an options object');
  const memoryMb = options.memoryMb ?? DEFAULT_MEMORY_MB;
  if (!Number.isInteger(memoryMb) || memoryMb < MIN_MEMORY_MB || memoryMb > 1 << 16) {
    throw new RangeError(
      `sandbox.memoryMb must be an integer in ${MIN_MEMORY_MB}..${1 << 16}, got ${memoryMb}`,
    );
  }
  const cpuMsPerSlice = options.cpuMsPerSlice ?? DEFAULT_CPU_MS;
  if (!Number.isFinite(cpuMsPerSlice) || cpuMsPerSlice < MIN_CPU_MS) {
    throw new RangeError(
      `sandbox.cpuMsPerSlice must be a number of at least ${MIN_CPU_MS}, got ${cpuMsPerSlice}`,
    );
  }
  const powers = options.powers ?? {};
  if (powers === null || typeof powers !== 'object')
    throw new TypeError('sandbox.powers: expected an object');
  return { memoryMb, cpuMsPerSlice, powers: { spawn: powers.spawn === true, log: powers.log === true } };
}
