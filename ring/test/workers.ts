/**
 * Spawning the test worker scripts, and the messages they exchange with the
 * test thread. Workers under Node 20 cannot load TypeScript by themselves, so
 * every worker starts in ts-worker.mjs, which registers tsx and imports the
 * real script named in `workerData.entry`.
 */

import { Worker } from 'node:worker_threads';

/** What a producer worker is told to do. */
export interface ProducerInit {
  buffer: SharedArrayBuffer;
  ringOffset: number;
  producerId: number;
  /** Records to write; -1 writes until the stop word is set (or the worker is terminated). */
  count: number;
  minLength: number;
  maxLength: number;
  seed: number;
  /** How the producer copes with a full ring. */
  mode: 'writeSync' | 'write' | 'tryWrite';
  /** When set, write in bursts of 1..maxBurst records separated by pauses of 0..maxPauseMs. */
  bursts?: { maxBurst: number; maxPauseMs: number };
  /**
   * tryWrite mode only: passes of busy work over the payload between claim and
   * commit, to widen the window in which a terminated producer leaves a dead claim.
   */
  claimDwell?: number;
  /** Word 0: set to 1 to make `count: -1` producers finish. */
  control: SharedArrayBuffer;
}

export type ProducerMessage =
  | { kind: 'ready'; slot: number; generation: number }
  | { kind: 'done'; written: number }
  | { kind: 'error'; message: string };

/** What a consumer worker is told to do. */
export interface ConsumerInit {
  buffer: SharedArrayBuffer;
  ringOffset: number;
  /** Records to receive in all; then the consumer checks the ring is empty and reports. */
  total: number;
  mode: 'park' | 'async';
  /** Give up (and report) after this long: a lost wake-up fails the test instead of hanging it. */
  deadlineMs: number;
}

export type ConsumerMessage =
  | { kind: 'result'; ok: true; received: Record<number, number>; parks: number }
  | { kind: 'result'; ok: false; error: string; received: Record<number, number> };

/** Starts `script` (relative to this folder) in a worker thread. */
export function spawn(script: string, data: object): Worker {
  const entry = new URL(script, import.meta.url).href;
  return new Worker(new URL('./ts-worker.mjs', import.meta.url), { workerData: { ...data, entry } });
}

/** Resolves with the first message of `worker` that `accept` takes; rejects on error or early exit. */
export function nextMessage<T>(worker: Worker, accept: (message: T) => boolean = () => true): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: T) => {
      if (!accept(message)) return;
      cleanup();
      resolve(message);
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    const onExit = (code: number) => {
      cleanup();
      reject(new Error(`worker exited (code ${code}) before the expected message`));
    };
    const cleanup = () => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    worker.on('message', onMessage);
    worker.once('error', onError);
    worker.once('exit', onExit);
  });
}

/** Resolves once `worker` has exited. */
export function exited(worker: Worker): Promise<number> {
  return new Promise((resolve) => {
    if (worker.threadId === -1) resolve(0);
    else worker.once('exit', resolve);
  });
}

/** Races `promise` against a generous deadline, so a hang fails the test with `what` instead of stalling it. */
export async function within<T>(ms: number, what: () => string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what()}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A promise that resolves after `ms` (pacing only; nothing is asserted on time). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
