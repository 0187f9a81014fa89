/**
 * `npm start`: a short side-by-side of the postern ring and
 * MessagePort.postMessage between two worker threads: one-way throughput
 * with small and large records, and ping-pong round-trip latency. It runs
 * the same scenarios and worker code as `npm run bench`, with fewer and
 * shorter rounds, and writes nothing. Then processes on the runtime: spawn
 * a few thousand, stream messages between two workers, request/reply, and
 * kill a linked tree. About 20 seconds.
 */

import { isDown, Runtime } from '../runtime/index.ts';
import { postern, postMessage } from './contenders.ts';
import { type PairResult, runScenario } from './runner.ts';
import { WORKER_SCENARIOS } from './scenarios.ts';
import { formatBytesRate, formatNs, formatRate, formatRatio } from './stats.ts';

const PROCS = new URL('./workers/demo-procs.ts', import.meta.url).href;

/** The runtime part: one run of each, printed as it goes. */
async function processes(): Promise<void> {
  process.stdout.write('processes: lightweight processes on 2 scheduler workers (runtime/)\n');
  const runtime = await Runtime.start({ workers: 2 });
  try {
    const host = runtime.host;
    const CHILDREN = 5000;
    const nurseries = await Promise.all(
      [0, 1].map((worker) => runtime.spawnMonitor(PROCS, 'nursery', [CHILDREN, host.self], { worker })),
    );
    const spawnMs = [(await runtime.receive()) as number, (await runtime.receive()) as number];
    const rate = (CHILDREN / Math.max(...spawnMs)) * 1000;
    process.stdout.write(`  spawned 2 x ${CHILDREN} linked processes: ${formatRate(rate)} per worker\n`);
    const live = runtime.stats().liveGroups;

    const COUNT = 200_000;
    const consumer = await runtime.spawn(PROCS, 'consumer', [COUNT, host.self], {
      worker: 1,
      mailboxCapacity: 1 << 16,
    });
    const producer = await runtime.spawn(PROCS, 'producer', [consumer, COUNT, host.self], { worker: 0 });
    const streamed = await runtime.receive({ match: (m) => typeof m === 'number' });
    await runtime.receive({ match: (m) => m === 'sent' });
    process.stdout.write(
      `  stream of small values, worker 0 -> worker 1: ${formatRate((COUNT / (streamed as number)) * 1000)}\n`,
    );

    const echo = await runtime.spawn(PROCS, 'echo', [], { worker: 0 });
    const ROUND_TRIPS = 2000;
    const t0 = performance.now();
    for (let i = 0; i < ROUND_TRIPS; i++) await runtime.request(echo, i);
    process.stdout.write(
      `  request/reply, main thread -> process: ${formatNs(((performance.now() - t0) * 1e6) / ROUND_TRIPS)} per round trip\n`,
    );

    const t1 = performance.now();
    for (const n of nurseries) runtime.kill(n.ref, 'demo over');
    for (let downs = 0; downs < 2; ) if (isDown(await runtime.receive())) downs++;
    process.stdout.write(
      `  killed 2 linked trees of ${CHILDREN + 1} processes (${live} groups alive): ${(performance.now() - t1).toFixed(1)} ms until both downs\n\n`,
    );
    for (const r of [consumer, producer, echo, ...nurseries.map((n) => n.ref)]) host.drop(r);
  } finally {
    await runtime.shutdown();
  }
}

const SCENARIOS = ['one-way-16', 'one-way-4096', 'ping-pong-spin'];

async function main(): Promise<number> {
  const started = performance.now();
  const log = (line: string): void => {
    process.stdout.write(`  ${line}\n`);
  };
  process.stdout.write(
    'postern demo: the ring vs MessagePort.postMessage, worker thread to worker thread\n' +
      '(each line is one measured round; the full comparison is `npm run bench`)\n\n',
  );
  const rows: string[][] = [['scenario', 'postern', 'postMessage', 'postern ×']];
  let failed = false;
  for (const name of SCENARIOS) {
    const scenario = WORKER_SCENARIOS.find((s) => s.spec.name === name)!;
    process.stdout.write(`${scenario.spec.name}: ${scenario.title}\n`);
    const [ring, port] = (await runScenario(scenario, [postern, postMessage], {
      rounds: 5,
      roundMs: 300,
      fullWarmup: false,
      roundTimeoutMs: 30_000,
      log,
    })) as [PairResult, PairResult];
    const figure = (r: PairResult): string => {
      if (r.status !== 'ok') {
        failed = true;
        return `${r.status}: ${r.reason}`;
      }
      if (r.throughput) {
        return `${formatRate(r.throughput.median)} (${formatBytesRate(r.throughput.median * scenario.spec.size)})`;
      }
      return `p50 ${formatNs(r.latency!.p50.median)}, p99 ${formatNs(r.latency!.p99.median)}`;
    };
    let ratio = Number.NaN;
    if (ring.throughput && port.throughput) ratio = ring.throughput.median / port.throughput.median;
    if (ring.latency && port.latency) ratio = port.latency.p50.median / ring.latency.p50.median;
    rows.push([name, figure(ring), figure(port), formatRatio(ratio)]);
    process.stdout.write('\n');
  }
  await processes();
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  process.stdout.write(`${lines.join('\n')}\n\n`);
  process.stdout.write(
    'postern × = how many times better the ring is (throughput ratio; for latency, postMessage p50 ÷ ring p50).\n' +
      `Done in ${((performance.now() - started) / 1000).toFixed(1)} s.\n`,
  );
  return failed ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 2;
  },
);
