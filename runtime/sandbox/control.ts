/**
 * What the main thread and one sandbox worker share: a small control block
 * (its own SharedArrayBuffer, never the post office's, never visible to the
 * sandboxed code) and the few lifecycle messages they exchange by
 * postMessage. Messages between processes never pass through here.
 *
 * Control block, Int32 words (allocated by the main thread in
 * `createControlBlock`, attached by the worker through workerData):
 *
 *   CB_BEAT   heartbeat: the worker's trusted shim adds 1 from a setInterval
 *             every `beatMs`; the main thread's watchdog reads it. It only
 *             moves while the worker's event loop turns, so a synchronous
 *             loop or an endless microtask chain in the sandbox stops it.
 *             0 until the shim runs (the watchdog is not armed before).
 *   CB_SLOT   the worker's post office producer slot + 1 (0: not attached
 *             yet), written once by the worker right after it attaches.
 *   CB_GEN    that slot's generation, written before CB_SLOT (so a reader
 *             that sees CB_SLOT != 0 reads the right generation).
 *
 *   CB_INSIDE 1 while the worker runs a post office operation (a membrane
 *             call, the end of a spawn, ending its process, detaching),
 *             else 0. Written by the worker only.
 *   CB_KILL   0, then 1 once the watchdog has decided to kill the worker.
 *             Written by the main thread only.
 *
 * The main thread reads CB_SLOT/CB_GEN after the worker has exited to
 * declare its thread dead (`office.markThreadDead`): unlike a message, the
 * words cannot be lost to a worker killed right after attaching.
 *
 * CB_INSIDE and CB_KILL keep the watchdog from terminating a worker inside
 * a post office operation that holds a lock (kill, link, monitor...): core
 * cannot give back a lock its dead holder took. Dekker's handshake: the
 * worker stores INSIDE = 1 then loads KILL, and does nothing in the post
 * office if it is set; the watchdog stores KILL = 1 then loads INSIDE, and
 * terminates only when it is 0 (else it looks again at its next tick). All
 * four accesses are sequentially consistent Atomics, so at least one side
 * sees the other's store.
 */

import type { OwnedCapability } from '../../core/index.ts';

export const CB_BEAT = 0;
export const CB_SLOT = 1;
export const CB_GEN = 2;
export const CB_INSIDE = 3;
export const CB_KILL = 4;
const CB_WORDS = 8;

export function createControlBlock(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(CB_WORDS * 4));
}

/** The sandbox options after defaults and checks. */
export interface SandboxLimits {
  memoryMb: number;
  cpuMsPerSlice: number;
  powers: { spawn: boolean; log: boolean };
}

/** What a sandbox worker is started with. */
export interface SandboxWorkerData {
  /** The post office (for the trusted shim only). */
  buffer: SharedArrayBuffer;
  /** The control block's buffer. */
  control: SharedArrayBuffer;
  /** Heartbeat period, ms. */
  beatMs: number;
  moduleUrl: string;
  exportName: string;
  mailboxCapacity: number;
  /** Encoding of [args, linkTo] by the spawner's table; capability i is `caps[i]`. */
  payload: Uint8Array;
  caps: OwnedCapability[];
  limits: SandboxLimits;
  /**
   * The spawner is itself sandboxed: load and compile errors are reported
   * without details (they could quote files the spawner may not read).
   */
  quiet: boolean;
  /** The module's code transformed already (realm.ts `transformModule`), from the main thread's cache. */
  code: string | undefined;
}

/** Sandbox worker to main thread. */
export type FromSandbox =
  /** The process exists (its spawn capabilities are imported); `self` is its main route. */
  | { type: 'ready'; self: OwnedCapability }
  /** The module's transformed code (only when the worker transformed it), for the main thread's cache. */
  | { type: 'compiled'; code: string }
  /** The process could not start; the worker exits. */
  | { type: 'failed'; message: string }
  /** `ctx.spawn` with the spawn power: start a child sandbox with the same limits. */
  | {
      type: 'spawn';
      id: number;
      moduleUrl: string;
      exportName: string;
      mailboxCapacity: number;
      payload: Uint8Array;
      caps: OwnedCapability[];
    }
  /** The worker imported the `self` of spawn `id` (the main thread forgets the token). */
  | { type: 'took'; id: number }
  /** `ctx.log` with the log power. */
  | { type: 'log'; text: string };

/** Main thread to sandbox worker. */
export type ToSandbox =
  | { type: 'spawned'; id: number; self: OwnedCapability }
  | { type: 'spawn-failed'; id: number; message: string };
