/**
 * The fixed scenario names, in run order. Names are stable: BENCHMARKS.md,
 * the chart files and `--only` all use them. `--only x` selects every
 * scenario whose name is x or starts with `x-`.
 */

import type { ScenarioSpec } from './protocol.ts';

export interface WorkerScenario {
  readonly spec: ScenarioSpec;
  readonly title: string;
  readonly description: string;
}

const RING_BYTES = 1 << 20;

/** Record space every queue gets: the postern ring, the ringbuf.js ring, the postMessage in-flight window. */
export const QUEUE_BYTES = RING_BYTES;

export const WORKER_SCENARIOS: readonly WorkerScenario[] = [
  {
    spec: { kind: 'throughput', name: 'one-way-16', size: 16, producers: 1 },
    title: 'One-way throughput, 16-byte records',
    description: 'One producer worker sends records to one consumer worker as fast as the queue takes them.',
  },
  {
    spec: { kind: 'throughput', name: 'one-way-256', size: 256, producers: 1 },
    title: 'One-way throughput, 256-byte records',
    description: 'As one-way-16, with 256-byte records.',
  },
  {
    spec: { kind: 'throughput', name: 'one-way-4096', size: 4096, producers: 1 },
    title: 'One-way throughput, 4 KiB records',
    description: 'As one-way-16, with 4096-byte records.',
  },
  {
    spec: { kind: 'throughput', name: 'two-producers-16', size: 16, producers: 2 },
    title: 'Two producers into one consumer, 16-byte records',
    description:
      'Two producer workers send into one consumer worker at once (three busy threads on this machine). ' +
      'The consumer checks per-producer order.',
  },
  {
    spec: { kind: 'ping-pong', name: 'ping-pong-spin', size: 16, wait: 'spin' },
    title: 'Ping-pong round trip, spinning consumers',
    description:
      'A pinger sends a 16-byte record, the ponger echoes it, the pinger waits for the echo; both sides ' +
      'busy-poll. Latency per round trip.',
  },
  {
    spec: { kind: 'ping-pong', name: 'ping-pong-park', size: 16, wait: 'park' },
    title: 'Ping-pong round trip, parking consumers',
    description:
      'As ping-pong-spin, but each side sleeps until the other wakes it (Atomics.wait / notify, or the ' +
      'event loop for postMessage).',
  },
];

/** Scenarios that do not run worker pairs. */
export const OTHER_SCENARIOS = [
  {
    name: 'single-thread',
    title: 'Single-thread cost of one send and one receive',
    description:
      'tinybench, one thread: write one 16-byte record and read it back, so the figure is the CPU cost ' +
      'of the two calls with no cache line moving between cores.',
  },
  {
    name: 'ceiling',
    title: 'Hardware ceiling (C, pthreads, C11 atomics)',
    description:
      'bench/native/ceiling.c: a cache line bounced between two threads, the same exchange with futex ' +
      'sleeps, and a C SPSC ring of 16-byte records.',
  },
] as const;

export const ALL_SCENARIO_NAMES: readonly string[] = [
  ...WORKER_SCENARIOS.map((s) => s.spec.name),
  ...OTHER_SCENARIOS.map((s) => s.name),
];

/** Whether `name` is selected by the `--only` filters (none: everything is). */
export function selected(name: string, only: readonly string[]): boolean {
  return only.length === 0 || only.some((o) => name === o || name.startsWith(`${o}-`));
}
