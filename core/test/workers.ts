/**
 * Real worker threads for the multi-worker tests: a worker runs one named
 * scenario of a worker module (loaded as TypeScript through ts-worker.mjs),
 * posts messages along the way and its result at the end.
 */

import { Worker } from 'node:worker_threads';
import type { PostOffice } from '../index.ts';

const SHIM = new URL('./ts-worker.mjs', import.meta.url);

export interface Running {
  worker: Worker;
  /** Messages the worker posted before its result. */
  messages: unknown[];
  next(): Promise<unknown>;
  result: Promise<Record<string, unknown>>;
  exited: Promise<number>;
}

/** Starts worker module `script` (a file URL) on scenario `scenario`, attached to `office`. */
export function startWorker(script: string, office: PostOffice, scenario: string, args: unknown): Running {
  const worker = new Worker(SHIM, {
    workerData: { __script: script, buffer: office.buffer, scenario, args },
  });
  const messages: unknown[] = [];
  const waiters: ((m: unknown) => void)[] = [];
  let settle!: { resolve: (r: Record<string, unknown>) => void; reject: (e: unknown) => void };
  const result = new Promise<Record<string, unknown>>((resolve, reject) => {
    settle = { resolve, reject };
  });
  worker.on('message', (m: { result?: Record<string, unknown>; error?: string }) => {
    if (m.error !== undefined) settle.reject(new Error(m.error));
    else if (m.result !== undefined) settle.resolve(m.result);
    else if (waiters.length > 0) waiters.shift()!(m);
    else messages.push(m);
  });
  worker.on('error', (e) => settle.reject(e));
  const exited = new Promise<number>((resolve) =>
    worker.on('exit', (code) => {
      settle.reject(new Error(`worker exited with ${code} before its result`));
      resolve(code);
    }),
  );
  return {
    worker,
    messages,
    result,
    exited,
    next: () =>
      messages.length > 0
        ? Promise.resolve(messages.shift())
        : new Promise((resolve) => waiters.push(resolve)),
  };
}

/** Awaits every worker's result, then its exit. */
export async function finish(running: Running[]): Promise<Record<string, unknown>[]> {
  const results = await Promise.all(running.map((r) => r.result));
  await Promise.all(running.map((r) => r.exited));
  return results;
}
