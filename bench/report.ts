/**
 * Turns one run's results into BENCHMARKS.md, the SVG charts, a JSON dump
 * and the plain-text summary printed at the end of a run. Ratios are always
 * "how many times better postern is": throughput postern ÷ peer, latency
 * peer ÷ postern; above 1 means postern wins.
 */

import { writeFileSync } from 'node:fs';
import { barChart, type ChartGroup } from './charts.ts';
import type { MicroResult } from './micro.ts';
import type { CeilingResult } from './native.ts';
import type { PairResult } from './runner.ts';
import { OTHER_SCENARIOS, type WorkerScenario } from './scenarios.ts';
import { formatBytesRate, formatNs, formatRate, formatRatio } from './stats.ts';

export interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly memoryBytes: number;
  readonly os: string;
  readonly node: string;
  readonly v8: string;
  /** os.loadavg() (1, 5, 15 min) when the run started and when it ended: other work on the machine. */
  readonly loadStart: readonly number[];
  readonly loadEnd: readonly number[];
}

export interface ScenarioReport {
  readonly scenario: WorkerScenario;
  readonly results: readonly PairResult[];
  /** C cache-line round trip p50 (ns) measured right before and right after the scenario. */
  readonly probeBefore?: number;
  readonly probeAfter?: number;
}

export interface RunReport {
  readonly date: Date;
  readonly machine: Machine;
  readonly command: string;
  readonly settings: {
    readonly quick: boolean;
    readonly scale: number;
    readonly rounds: number;
    readonly roundMs: number;
    readonly only: readonly string[];
  };
  readonly wallMs: number;
  /** Share (0..1) of all CPU time other processes used during the worker scenarios; undefined off Linux. */
  readonly otherLoad?: number;
  readonly scenarios: readonly ScenarioReport[];
  readonly micro?: readonly MicroResult[];
  readonly ceiling?: CeilingResult;
  /** Worker-side performance.now() cost, ns, from the ping-pong pingers. */
  readonly timerNs?: number;
}

export interface Goal {
  readonly goal: string;
  readonly target: string;
  readonly measured: string;
  readonly status: 'met' | 'not met' | 'not measured';
  /** The floor or the cost that puts the figure in context, from the same run. */
  readonly reference: string;
}

const POSTERN = 'postern';
/** "No worse than" allows this much above the reference, the run-to-run noise of this kind of machine. */
const NO_WORSE_MARGIN = 1.1;

function resultsOf(report: RunReport, scenario: string): readonly PairResult[] | undefined {
  return report.scenarios.find((s) => s.scenario.spec.name === scenario)?.results;
}

function ok(results: readonly PairResult[] | undefined, contender: string): PairResult | undefined {
  const r = results?.find((x) => x.contender === contender);
  return r?.status === 'ok' ? r : undefined;
}

/** How many times better postern is than `r` (throughput: ratio of rates; latency: ratio of p50s). */
export function advantage(results: readonly PairResult[], r: PairResult): number {
  const p = ok(results, POSTERN);
  if (!p || r.status !== 'ok') return Number.NaN;
  if (r.throughput && p.throughput) return p.throughput.median / r.throughput.median;
  if (r.latency && p.latency) return r.latency.p50.median / p.latency.p50.median;
  return Number.NaN;
}

export function goals(report: RunReport): Goal[] {
  const list: Goal[] = [];
  const oneWay = resultsOf(report, 'one-way-16');
  const throughputGoal = (peer: string, factor: number): Goal => {
    const goal = `one-way-16: postern throughput vs ${peer}`;
    const p = ok(oneWay, POSTERN);
    const q = ok(oneWay, peer);
    const refs: string[] = [];
    const micro = report.micro;
    const mp = micro?.find((x) => x.contender === POSTERN);
    const mq = micro?.find((x) => x.contender === peer);
    if (mp && mq)
      refs.push(`single-thread cost ${formatNs(mp.nsPerRecord)} vs ${formatNs(mq.nsPerRecord)} per record`);
    const c = report.ceiling;
    if (c?.status === 'ok' && c.spsc16Median !== undefined)
      refs.push(`C SPSC ring ${formatRate(c.spsc16Median)}`);
    const reference = refs.join('; ');
    if (!p?.throughput || !q?.throughput)
      return { goal, target: `≥ ${factor}×`, measured: 'n/a', status: 'not measured', reference };
    const r = p.throughput.median / q.throughput.median;
    return {
      goal,
      target: `≥ ${factor}×`,
      measured: `${formatRatio(r)} (${formatRate(p.throughput.median)} vs ${formatRate(q.throughput.median)})`,
      status: r >= factor ? 'met' : 'not met',
      reference,
    };
  };
  list.push(throughputGoal('postMessage', 40), throughputGoal('ringbuf.js', 2));

  const spinResults = resultsOf(report, 'ping-pong-spin');
  const spin = ok(spinResults, POSTERN);
  const spinRefs: string[] = [];
  const bareSpin = ok(spinResults, 'Atomics');
  if (bareSpin?.latency)
    spinRefs.push(`bare Atomics word p50 ${formatNs(bareSpin.latency.p50.median)}, same clock read`);
  if (report.ceiling?.spin) spinRefs.push(`C cache line p50 ${formatNs(report.ceiling.spin.p50)}`);
  if (spin?.latency) {
    const p50 = spin.latency.p50.median;
    const timer = report.timerNs;
    list.push({
      goal: 'ping-pong-spin: postern round trip p50',
      target: '< 0.5 µs',
      measured:
        `${formatNs(p50)}` +
        (timer !== undefined ? ` (each sample includes one ${formatNs(timer)} clock read)` : ''),
      status: p50 < 500 ? 'met' : 'not met',
      reference: spinRefs.join('; '),
    });
  } else {
    list.push({
      goal: 'ping-pong-spin: postern round trip p50',
      target: '< 0.5 µs',
      measured: 'n/a',
      status: 'not measured',
      reference: spinRefs.join('; '),
    });
  }

  const parkResults = resultsOf(report, 'ping-pong-park');
  const park = ok(parkResults, POSTERN);
  const bare = ok(parkResults, 'Atomics');
  const parkGoal = 'ping-pong-park: postern vs bare Atomics.wait/notify';
  const parkTarget = `p50 ≤ bare p50 (within ${Math.round((NO_WORSE_MARGIN - 1) * 100)}% noise)`;
  const parkRef = report.ceiling?.futex ? `C futex wait/wake p50 ${formatNs(report.ceiling.futex.p50)}` : '';
  if (park?.latency && bare?.latency) {
    const r50 = park.latency.p50.median / bare.latency.p50.median;
    const r99 = park.latency.p99.median / bare.latency.p99.median;
    list.push({
      goal: parkGoal,
      target: parkTarget,
      measured:
        `p50 ${formatNs(park.latency.p50.median)} vs ${formatNs(bare.latency.p50.median)} (${formatRatio(r50)} of bare); ` +
        `p99 ${formatNs(park.latency.p99.median)} vs ${formatNs(bare.latency.p99.median)} (${formatRatio(r99)})`,
      status: r50 <= NO_WORSE_MARGIN ? 'met' : 'not met',
      reference: parkRef,
    });
  } else {
    list.push({
      goal: parkGoal,
      target: parkTarget,
      measured: 'n/a',
      status: 'not measured',
      reference: parkRef,
    });
  }
  return list;
}

// ------------------------------------------------------------------ charts

export function chartFor(report: RunReport, scenario: WorkerScenario): string {
  const results = resultsOf(report, scenario.spec.name) ?? [];
  const measured = results.filter((r) => r.status === 'ok');
  if (scenario.spec.kind === 'throughput') {
    const size = scenario.spec.size;
    const groups: ChartGroup[] = measured.map((r) => ({
      label: r.contender,
      highlight: r.contender === POSTERN,
      bars: [
        {
          value: r.throughput!.median,
          text: `${formatRate(r.throughput!.median)} · ${formatBytesRate(r.throughput!.median * size)}`,
        },
      ],
    }));
    return barChart({
      title: `${scenario.spec.name}: ${scenario.title}`,
      subtitle: 'records per second, median of rounds; longer is better',
      series: ['records/s'],
      groups,
    });
  }
  const groups: ChartGroup[] = measured.map((r) => ({
    label: r.contender,
    highlight: r.contender === POSTERN,
    bars: [
      { value: r.latency!.p50.median, text: `p50 ${formatNs(r.latency!.p50.median)}` },
      { value: r.latency!.p99.median, text: `p99 ${formatNs(r.latency!.p99.median)}` },
    ],
  }));
  return barChart({
    title: `${scenario.spec.name}: ${scenario.title}`,
    subtitle: 'round-trip time, median over rounds of each round’s percentile; shorter is better',
    series: ['p50', 'p99'],
    groups,
  });
}

export function microChart(micro: readonly MicroResult[]): string {
  return barChart({
    title: 'single-thread: one send + one receive of a 16-byte record',
    subtitle: 'nanoseconds per record, tinybench median; shorter is better',
    series: ['ns/record'],
    groups: micro.map((m) => ({
      label: m.contender,
      highlight: m.contender === POSTERN,
      bars: [{ value: m.nsPerRecord, text: formatNs(m.nsPerRecord) }],
    })),
  });
}

/** Writes every chart into `dir` (which must exist); returns scenario name → file name. */
export function writeCharts(report: RunReport, dir: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const { scenario } of report.scenarios) {
    const file = `${scenario.spec.name}.svg`;
    writeFileSync(`${dir}/${file}`, chartFor(report, scenario));
    files.set(scenario.spec.name, file);
  }
  if (report.micro) {
    writeFileSync(`${dir}/single-thread.svg`, microChart(report.micro));
    files.set('single-thread', 'single-thread.svg');
  }
  return files;
}

// ---------------------------------------------------------------- markdown

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

function scenarioTable(
  scenario: WorkerScenario,
  results: readonly PairResult[],
  ceiling?: CeilingResult,
): string {
  const spec = scenario.spec;
  if (spec.kind === 'throughput') {
    const rows = results.map((r) => {
      if (r.status !== 'ok') return [r.contender, r.status, '', '', '', r.reason ?? ''];
      const t = r.throughput!;
      return [
        r.contender === POSTERN ? `**${r.contender}**` : r.contender,
        formatRate(t.median),
        formatBytesRate(t.median * spec.size),
        `${formatRate(t.min)} – ${formatRate(t.max)}`,
        r.contender === POSTERN ? '—' : formatRatio(advantage(results, r)),
        `${t.values.length} rounds of ${r.n.toLocaleString('en-US')} records`,
      ];
    });
    if (spec.name === 'one-way-16' && ceiling?.status === 'ok' && ceiling.spsc16Median !== undefined) {
      const p = ok(results, POSTERN);
      rows.push([
        '*C SPSC ring (ceiling)*',
        formatRate(ceiling.spsc16Median),
        formatBytesRate(ceiling.spsc16Median * 16),
        `${formatRate(Math.min(...ceiling.spsc16!))} – ${formatRate(Math.max(...ceiling.spsc16!))}`,
        p?.throughput ? formatRatio(p.throughput.median / ceiling.spsc16Median) : 'n/a',
        'hardware reference, not a contender',
      ]);
    }
    return table(
      ['contender', 'records/s (median)', 'payload bytes/s', 'range over rounds', 'postern ×', 'notes'],
      rows,
    );
  }
  const rows = results.map((r) => {
    if (r.status !== 'ok') return [r.contender, r.status, '', '', '', '', r.reason ?? ''];
    const l = r.latency!;
    return [
      r.contender === POSTERN ? `**${r.contender}**` : r.contender,
      formatNs(l.p50.median),
      formatNs(l.p99.median),
      formatNs(l.mean.median),
      `${formatNs(l.p50.min)} – ${formatNs(l.p50.max)}`,
      r.contender === POSTERN ? '—' : formatRatio(advantage(results, r)),
      `${l.p50.values.length} rounds of ${r.n.toLocaleString('en-US')} round trips`,
    ];
  });
  const ref = spec.wait === 'spin' ? ceiling?.spin : ceiling?.futex;
  if (ceiling?.status === 'ok' && ref) {
    const p = ok(results, POSTERN);
    rows.push([
      spec.wait === 'spin' ? '*C, one cache line (ceiling)*' : '*C, futex wait/wake (ceiling)*',
      formatNs(ref.p50),
      formatNs(ref.p99),
      formatNs(ref.mean),
      '',
      p?.latency ? formatRatio(ref.p50 / p.latency.p50.median) : 'n/a',
      'hardware reference, not a contender',
    ]);
  }
  return table(['contender', 'p50', 'p99', 'mean', 'p50 range over rounds', 'postern ×', 'notes'], rows);
}

export function renderMarkdown(report: RunReport, chartDir: string, charts: Map<string, string>): string {
  const m = report.machine;
  const s = report.settings;
  const out: string[] = [];
  out.push(
    '# postern benchmarks',
    '',
    `Written by \`${report.command}\` (bench/run.ts) on ${report.date.toISOString().slice(0, 10)}; ` +
      'every figure below comes from that one run. Do not edit by hand: rerun. ' +
      'Scenarios, contenders and method: [bench/README.md](bench/README.md).',
    '',
    '## Machine',
    '',
    table(
      ['', ''],
      [
        ['CPU', `${m.cpu}, ${m.cores} logical cores`],
        ['Memory', gib(m.memoryBytes)],
        ['OS', m.os],
        ['Node', `${m.node} (V8 ${m.v8})`],
        ['C compiler', report.ceiling?.compiler ?? 'none'],
        [
          'Load average',
          `${m.loadStart.map((l) => l.toFixed(2)).join(' / ')} at the start, ` +
            `${m.loadEnd.map((l) => l.toFixed(2)).join(' / ')} at the end (1 / 5 / 15 min)`,
        ],
        [
          'Other processes',
          report.otherLoad === undefined
            ? 'not measured'
            : `used ${(report.otherLoad * 100).toFixed(0)}% of all CPU time while the worker scenarios ran`,
        ],
        [
          'Run',
          `${s.rounds} measured rounds of ~${Math.round(s.roundMs)} ms per contender and scenario` +
            `${s.quick ? ' (--quick)' : ''}, POSTERN_BENCH_SCALE=${s.scale}, ` +
            `whole run ${(report.wallMs / 1000).toFixed(0)} s`,
        ],
      ],
    ),
    '',
    '## Goals',
    '',
    table(
      ['goal', 'target', 'measured', 'status', 'for reference (same run)'],
      goals(report).map((g) => [
        g.goal,
        g.target,
        g.measured,
        g.status === 'met' ? '**met**' : g.status,
        g.reference,
      ]),
    ),
    '',
    '"postern ×" in the tables below is how many times better postern is than that row: ' +
      'throughput postern ÷ row, latency row ÷ postern (p50). Above 1, postern wins; below 1, it loses.',
    '',
  );
  for (const { scenario, results, probeBefore, probeAfter } of report.scenarios) {
    out.push(`## ${scenario.spec.name}: ${scenario.title}`, '', scenario.description, '');
    if (probeBefore !== undefined && probeAfter !== undefined) {
      out.push(
        `Machine state: C cache-line round trip p50 ${formatNs(probeBefore)} just before this scenario, ` +
          `${formatNs(probeAfter)} just after.`,
        '',
      );
    }
    const chart = charts.get(scenario.spec.name);
    if (chart) out.push(`![${scenario.spec.name}](${chartDir}/${chart})`, '');
    out.push(scenarioTable(scenario, results, report.ceiling), '');
  }
  if (report.micro) {
    const single = OTHER_SCENARIOS.find((o) => o.name === 'single-thread')!;
    out.push(`## single-thread: ${single.title}`, '', single.description, '');
    const chart = charts.get('single-thread');
    if (chart) out.push(`![single-thread](${chartDir}/${chart})`, '');
    const p = report.micro.find((x) => x.contender === POSTERN);
    out.push(
      table(
        ['contender', 'ns per record (median)', 'postern ×', 'what one record costs'],
        report.micro.map((x) => [
          x.contender === POSTERN ? `**${x.contender}**` : x.contender,
          formatNs(x.nsPerRecord),
          x.contender === POSTERN || !p ? '—' : formatRatio(x.nsPerRecord / p.nsPerRecord),
          x.what,
        ]),
      ),
      '',
    );
  }
  const ceilingInfo = OTHER_SCENARIOS.find((o) => o.name === 'ceiling')!;
  out.push(`## ceiling: ${ceilingInfo.title}`, '', ceilingInfo.description, '');
  const c = report.ceiling;
  if (!c) {
    out.push('Not run in this invocation (`--only`).', '');
  } else if (c.status !== 'ok') {
    out.push(`Skipped: ${c.reason}`, '');
  } else {
    const rows: string[][] = [];
    if (c.spin)
      rows.push([
        'cache-line ping-pong, spinning',
        `p50 ${formatNs(c.spin.p50)}, p99 ${formatNs(c.spin.p99)}, mean ${formatNs(c.spin.mean)}`,
      ]);
    if (c.futex)
      rows.push([
        'futex ping-pong, parking',
        `p50 ${formatNs(c.futex.p50)}, p99 ${formatNs(c.futex.p99)}, mean ${formatNs(c.futex.mean)}`,
      ]);
    if (c.spsc16 && c.spsc16Median !== undefined) {
      rows.push([
        'SPSC ring, 16-byte records',
        `median ${formatRate(c.spsc16Median)} over ${c.spsc16.length} runs (${c.spsc16.map((v) => formatRate(v)).join(', ')})`,
      ]);
    }
    out.push(table(['measurement', 'result'], rows), '');
  }
  out.push(
    '## Method and caveats',
    '',
    '- Every contender runs in the same process run, in its own worker threads. Within a scenario the ' +
      'measured rounds interleave (round 1 of every contender, then round 2, …), so a slow spell of the ' +
      'machine lands on all of them. The main thread only starts rounds and collects results; it idles on ' +
      'its event loop while workers run, and idle pairs wait on theirs.',
    '- A round starts at a barrier all workers of the pair wait at (park, then a short spin so they leave ' +
      'together). Throughput is the consumer’s record count over its own time from the barrier to its last ' +
      'record. The round size is calibrated so a round takes about the round budget; one (or, in full runs, ' +
      'two) warm-up rounds are discarded. Tables give the median over rounds and the range.',
    '- Every consumer checks every record’s per-producer sequence number, so no contender can lose, duplicate ' +
      'or reorder records and still report a figure. Consumers read that header and nothing else of the ' +
      'payload: postern reads it in place in the ring, ringbuf.js’s pop copies the record into a private ' +
      'buffer, postMessage delivers a structured clone.',
    '- Queues are the same size: 1 MiB rings for postern and ringbuf.js; postMessage producers keep at most ' +
      'as many records in flight as a 1 MiB postern ring holds (flow control through a shared counter, no ' +
      'reply messages), so its queue is bounded too.',
    '- Ping-pong samples are one clock read per round trip: each sample includes one `performance.now()` ' +
      (report.timerNs !== undefined ? `(about ${formatNs(report.timerNs)} in the workers of this run)` : '') +
      '. The C ceiling includes one `clock_gettime` per sample the same way.',
    '- two-producers-16 puts three busy threads on this machine’s cores; a thread that finds the queue full ' +
      'or empty spins a few thousand times, then sleeps 20 µs between retries (the same for every contender).',
    `- The machine is a ${m.cores}-core virtual machine shared with other work: expect run-to-run ` +
      'differences of tens of percent, and read ratios rather than absolute figures.',
    ...probeNote(report),
    '',
  );
  return `${out.join('\n')}\n`;
}

/** One caveat line on how far the C cache-line probe moved during the run, if it ran. */
function probeNote(report: RunReport): string[] {
  const probes = report.scenarios.flatMap((s) =>
    [s.probeBefore, s.probeAfter].filter((p): p is number => p !== undefined),
  );
  if (probes.length === 0) return [];
  return [
    '- Before and after every scenario the run times a short C cache-line ping-pong ("Machine state" lines). ' +
      `In this run it ranged from ${formatNs(Math.min(...probes))} to ${formatNs(Math.max(...probes))}. ` +
      'On a virtual machine the two vCPUs can sit on host cores that share a cache or on cores that do not, ' +
      'and can move between the two; every cross-thread figure moves with it, so compare contenders within ' +
      'a scenario (their rounds interleave) rather than across scenarios or runs.',
  ];
}

/** Plain-text summary for the terminal. */
export function summaryText(report: RunReport): string {
  const rows: string[][] = [['scenario', 'contender', 'result', 'postern ×']];
  for (const { scenario, results } of report.scenarios) {
    for (const r of results) {
      let figure: string;
      if (r.status !== 'ok') figure = `${r.status}: ${r.reason ?? ''}`;
      else if (r.throughput)
        figure = `${formatRate(r.throughput.median)}  ${formatBytesRate(r.throughput.median * scenario.spec.size)}`;
      else figure = `p50 ${formatNs(r.latency!.p50.median)}  p99 ${formatNs(r.latency!.p99.median)}`;
      const adv = r.status === 'ok' && r.contender !== POSTERN ? formatRatio(advantage(results, r)) : '';
      rows.push([scenario.spec.name, r.contender, figure.slice(0, 70), adv]);
    }
  }
  for (const x of report.micro ?? [])
    rows.push(['single-thread', x.contender, `${formatNs(x.nsPerRecord)} per record`, '']);
  const c = report.ceiling;
  if (c?.status === 'ok') {
    if (c.spin)
      rows.push(['ceiling', 'C spin', `p50 ${formatNs(c.spin.p50)}  p99 ${formatNs(c.spin.p99)}`, '']);
    if (c.futex)
      rows.push(['ceiling', 'C futex', `p50 ${formatNs(c.futex.p50)}  p99 ${formatNs(c.futex.p99)}`, '']);
    if (c.spsc16Median !== undefined) rows.push(['ceiling', 'C SPSC 16 B', formatRate(c.spsc16Median), '']);
  } else if (c) {
    rows.push(['ceiling', 'C', `skipped: ${c.reason}`.slice(0, 70), '']);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) =>
    r
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  const goalLines = goals(report).map((g) => `  [${g.status}] ${g.goal} ${g.target}: ${g.measured}`);
  return `${lines.join('\n')}\n\nGoals:\n${goalLines.join('\n')}\n`;
}
