/**
 * `npm start`: a short side-by-side of the postern ring and
 * MessagePort.postMessage between two worker threads: one-way throughput
 * with small and large records, and ping-pong round-trip latency. It runs
 * the same scenarios and worker code as `npm run bench`, with fewer and
 * shorter rounds, and writes nothing. About 15 seconds.
 */

import { postern, postMessage } from './contenders.ts';
import { type PairResult, runScenario } from './runner.ts';
import { WORKER_SCENARIOS } from './scenarios.ts';
import { formatBytesRate, formatNs, formatRate, formatRatio } from './stats.ts';

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
