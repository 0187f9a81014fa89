/**
 * `runtime-request`: request/reply round trips against piscina doing the same
 * work (an echo), sequential (latency: p50 and p99 of each round trip) and
 * with REQUEST_IN_FLIGHT outstanding at once (throughput).
 *
 * Contenders:
 * - host → process: `runtime.request(echo, i)` from the main thread to an
 *   `echo` process on worker 1 (mailbox 64 KiB, so the requests in flight
 *   fit); its reply comes back on the host's private reply route.
 * - process → process: a `client` process on worker 0 makes the same
 *   requests to the same echo process on worker 1, timed on worker 0.
 * - piscina: `pool.run(i)` from the main thread, a pool of PISCINA_THREADS
 *   worker threads running workers/runtime-piscina-echo.mjs.
 *
 * Every reply is checked against its request.
 */

import { Piscina } from 'piscina';
import {
  BenchRuntime,
  interleave,
  type RoundContender,
  type RoundResult,
  type RuntimeBenchSettings,
} from './runtime-common.ts';
import { requestLoop } from './workers/runtime-procs.ts';

export const REQUEST_IN_FLIGHT = 32;
/** piscina's pool size: one thread, as the postern echo is one process on one worker. */
export const PISCINA_THREADS = 1;
const ECHO_MAILBOX = 1 << 16;
const PISCINA_ECHO = new URL('./workers/runtime-piscina-echo.mjs', import.meta.url).href;

export const REQUEST_CONTENDERS = {
  hostSequential: 'host → process, sequential',
  hostInFlight: `host → process, ${REQUEST_IN_FLIGHT} in flight`,
  processSequential: 'process → process, sequential',
  processInFlight: `process → process, ${REQUEST_IN_FLIGHT} in flight`,
  piscinaSequential: 'piscina.run, sequential',
  piscinaInFlight: `piscina.run, ${REQUEST_IN_FLIGHT} in flight`,
} as const;

export interface RequestReport {
  readonly results: readonly RoundResult[];
  readonly piscinaThreads: number;
  readonly problems: readonly string[];
}

export async function runRequest(settings: RuntimeBenchSettings): Promise<RequestReport> {
  const bench = await BenchRuntime.start({ workers: 2 });
  const { runtime } = bench;
  const pool = new Piscina({
    filename: PISCINA_ECHO,
    minThreads: PISCINA_THREADS,
    maxThreads: PISCINA_THREADS,
  });
  const problems: string[] = [];
  let results: RoundResult[] = [];
  try {
    const echo = await bench.spawn('echo', [], { worker: 1, mailboxCapacity: ECHO_MAILBOX });
    const client = await bench.spawn('client', [echo], { worker: 0 });
    await pool.run(0); // the pool's thread is up before the first timed round
    const host = (inflight: number) => (n: number) =>
      requestLoop(n, inflight, (v) => runtime.request(echo, v));
    const remote = (inflight: number) => (n: number) =>
      bench.ask<{ ns: number; p50?: number; p99?: number }>(client, { op: 'requests', n, inflight });
    const piscina = (inflight: number) => (n: number) => requestLoop(n, inflight, (v) => pool.run(v));
    const contenders: RoundContender[] = [
      { name: REQUEST_CONTENDERS.hostSequential, firstN: 2000, round: host(1) },
      { name: REQUEST_CONTENDERS.hostInFlight, firstN: 5000, round: host(REQUEST_IN_FLIGHT) },
      { name: REQUEST_CONTENDERS.processSequential, firstN: 2000, round: remote(1) },
      { name: REQUEST_CONTENDERS.processInFlight, firstN: 5000, round: remote(REQUEST_IN_FLIGHT) },
      { name: REQUEST_CONTENDERS.piscinaSequential, firstN: 1000, round: piscina(1) },
      { name: REQUEST_CONTENDERS.piscinaInFlight, firstN: 2000, round: piscina(REQUEST_IN_FLIGHT) },
    ];
    results = await interleave('runtime-request', contenders, settings);
  } finally {
    await pool.destroy();
    const problem = await bench.stop('runtime-request');
    if (problem) problems.push(problem);
  }
  return { results, piscinaThreads: PISCINA_THREADS, problems };
}
