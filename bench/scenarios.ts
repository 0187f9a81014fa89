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
  /**
   * Which contenders run it: the ring and its peers (default), or the post
   * office against the bare ring (contenders.ts, contendersFor).
   */
  readonly family?: 'ring' | 'core';
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
  {
    spec: { kind: 'throughput', name: 'core-send-16', size: 16, producers: 1 },
    family: 'core',
    title: 'Through the post office vs the bare ring, 16-byte records',
    description:
      'As one-way-16, but the producer sends through core/ (table.send on a SEND capability it imported ' +
      'from an owned token) to a mailbox the consumer created, against the bare ring under the same loops. ' +
      'The difference is what the capability check, the routing and the route pin cost per record.',
  },
  {
    spec: { kind: 'throughput', name: 'core-send-256', size: 256, producers: 1 },
    family: 'core',
    title: 'Through the post office vs the bare ring, 256-byte records',
    description: 'As core-send-16, with 256-byte records.',
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
    name: 'core-single-thread',
    title: 'Single-thread cost of one send and one receive through the post office',
    description:
      'tinybench, one thread: table.send of a 16-byte record on an imported SEND handle, then one receive ' +
      'from the mailbox, against the same write and read on the bare ring.',
  },
  {
    name: 'core-caps',
    title: 'Cost of each transferred capability',
    description:
      'tinybench, one thread: a 16-byte message carrying 0, 1, 4 or 16 capabilities (to distinct routes) ' +
      'is sent, received in place (each capability imported into the receiving table) and the imported ' +
      'handles released. The cost per capability is the slope of a least-squares line through the four points.',
  },
  {
    name: 'core-fan-out',
    title: 'Monitor fan-out',
    description:
      'One route watched by N monitors (N = 1, 100, 1000); the timed part is closing the route and ' +
      'receiving all N down signals. Each monitor reports to its own mailbox, or all report to one ' +
      'mailbox. Watchers are rebuilt between samples, outside the timed part.',
  },
  {
    name: 'core-kill-web',
    title: 'Kill of a web of 10,000 linked groups',
    description:
      'Ten thousand groups, one mailbox each, linked in a chain or in a random connected web; the timed ' +
      'part is the one synchronous kill call, which returns only once every group is dead. The groups ' +
      'are rebuilt between samples, outside the timed part, and each sample checks that all of them died.',
  },
  {
    name: 'codec',
    title: 'Message codec: msgpackr vs v8.serialize vs JSON',
    description:
      'tinybench, one thread: encode then decode a small int, a short string, a small object and a ' +
      '~1 KiB object with msgpackr (configured as runtime/codec.ts), v8.serialize/deserialize, and ' +
      'JSON.stringify + TextEncoder / TextDecoder + JSON.parse. The measurement the runtime’s codec was chosen by.',
  },
  {
    name: 'runtime-spawn',
    title: 'Process spawn rate',
    description:
      'Processes spawned per second onto one worker: from a process on that worker (worker: ' +
      "'local'), children that return at once or that wait; and from the host (the main thread), " +
      'each spawn a request to the worker’s control route, one at a time or 32 in flight.',
  },
  {
    name: 'runtime-memory',
    title: 'Memory per idle process',
    description:
      'Shared memory (post office slots and heap pages in use, from stats()) and V8 heap (on the ' +
      'worker, after a full GC) per idle process, from a few samples of 20,000 idle processes held by one spawner.',
  },
  {
    name: 'runtime-million',
    title: 'One million idle processes',
    description:
      'Two workers, 500,000 idle processes each (50,000 with --quick), spawned locally by one process per ' +
      'worker, all alive at once; then all killed. Reports whether it works, how long it takes and what it costs.',
  },
  {
    name: 'runtime-messages',
    title: 'Messages between processes on two workers',
    description:
      'A producer process on worker 0 sends small values to a consumer process on worker 1 (64 KiB ' +
      'mailbox), against the post office alone (core) and postMessage between two plain workers, same run.',
  },
  {
    name: 'runtime-request',
    title: 'Request/reply against piscina',
    description:
      'An echo: postern request from the host to a process and from a process to a process on the other ' +
      'worker, against piscina.run from the main thread; one at a time (latency) and 32 in flight (throughput).',
  },
  {
    name: 'runtime-kill-tree',
    title: 'Kill of a supervision tree of 10,000 processes',
    description:
      'A tree built with spawnLink (fan-out 10, children alternating between the two workers); the host ' +
      'monitors the root, kills it, and times the kill call, the down, and the moment stats() shows every process gone.',
  },
  {
    name: 'ceiling',
    title: 'Hardware ceiling (C, pthreads, C11 atomics)',
    description:
      'bench/native/ceiling.c: a cache line bounced between two threads, the same exchange with futex ' +
      'sleeps, and a C SPSC ring of 16-byte records.',
  },
] as const;

/** The single-thread core scenarios (core-micro.ts), in run order. */
export const CORE_MICRO_SCENARIOS = [
  'core-single-thread',
  'core-caps',
  'core-fan-out',
  'core-kill-web',
] as const;

/** The runtime scenarios (runtime-run.ts), in run order; `--only runtime` selects them all. */
export const RUNTIME_SCENARIOS = [
  'runtime-spawn',
  'runtime-memory',
  'runtime-million',
  'runtime-messages',
  'runtime-request',
  'runtime-kill-tree',
] as const;

export const ALL_SCENARIO_NAMES: readonly string[] = [
  ...WORKER_SCENARIOS.map((s) => s.spec.name),
  ...OTHER_SCENARIOS.map((s) => s.name),
];

/** The contender the ring scenarios' ratios are taken against. */
export const RING_REFERENCE = 'postern';
/** The contender the core scenarios' ratios are taken against. */
export const CORE_REFERENCE = 'postern core';

/** The contender a worker scenario's ratios ("× columns") are taken against. */
export function referenceOf(scenario: WorkerScenario): string {
  return scenario.family === 'core' ? CORE_REFERENCE : RING_REFERENCE;
}

/** Whether `name` is selected by the `--only` filters (none: everything is). */
export function selected(name: string, only: readonly string[]): boolean {
  return only.length === 0 || only.some((o) => name === o || name.startsWith(`${o}-`));
}
