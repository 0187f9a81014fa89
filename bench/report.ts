/**
 * Turns one run's results into BENCHMARKS.md, the SVG charts, a JSON dump
 * and the plain-text summary printed at the end of a run. Ratios are always
 * "how many times better postern is": throughput postern ÷ peer, latency
 * peer ÷ postern; above 1 means postern wins.
 */

import { writeFileSync } from 'node:fs';
import { barChart, type ChartGroup } from './charts.ts';
import type { CodecReport } from './codec.ts';
import type { CoreMicroReport } from './core-micro.ts';
import type { MicroResult } from './micro.ts';
import type { CeilingResult } from './native.ts';
import type { PairResult } from './runner.ts';
import {
  codecBlock,
  codecSummaryRows,
  runtimeBlock,
  runtimeCharts,
  runtimeSummaryRows,
} from './runtime-report.ts';
import type { RuntimeReport } from './runtime-run.ts';
import { CORE_REFERENCE, OTHER_SCENARIOS, referenceOf, type WorkerScenario } from './scenarios.ts';
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
  /** The single-thread core scenarios (core-micro.ts). */
  readonly core?: CoreMicroReport;
  readonly ceiling?: CeilingResult;
  /** The codec scenario (codec.ts). */
  readonly codec?: CodecReport;
  /** The runtime scenarios (runtime-run.ts). */
  readonly runtime?: RuntimeReport;
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

/**
 * How many times better the reference contender (postern, or postern core in
 * the core scenarios) is than `r` (throughput: ratio of rates; latency: ratio of p50s).
 */
export function advantage(results: readonly PairResult[], r: PairResult, reference = POSTERN): number {
  const p = ok(results, reference);
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
  list.push(coreGoal(report));
  return list;
}

/** The core's overhead allowance over the bare ring: core cost per record ≤ this × the ring's. */
export const CORE_OVERHEAD_LIMIT = 1.5;

/** core-send-16: the post office's throughput against the bare ring's, under the same workers. */
function coreGoal(report: RunReport): Goal {
  const goal = 'core-send-16: postern core throughput vs the bare ring (capability check and routing)';
  const target = `≥ ${formatRatio(1 / CORE_OVERHEAD_LIMIT)} (≤ ${Math.round((CORE_OVERHEAD_LIMIT - 1) * 100)}% over the ring)`;
  const results = resultsOf(report, 'core-send-16');
  const core = ok(results, CORE_REFERENCE);
  const ring = ok(results, CORE_RING);
  const refs: string[] = [];
  const send = report.core?.send;
  const sc = send?.find((x) => x.contender === CORE_REFERENCE);
  const sr = send?.find((x) => x.contender === CORE_RING);
  if (sc && sr) {
    refs.push(
      `single-thread ${formatNs(sc.nsPerRecord)} vs ${formatNs(sr.nsPerRecord)} per send + receive ` +
        `(${overhead(sc.nsPerRecord / sr.nsPerRecord)} over the ring)`,
    );
  }
  const copy = ok(results, 'postern core copy');
  if (copy?.throughput) refs.push(`receiving copies: ${formatRate(copy.throughput.median)}`);
  const reference = refs.join('; ');
  if (!core?.throughput || !ring?.throughput) {
    return { goal, target, measured: 'n/a', status: 'not measured', reference };
  }
  const r = core.throughput.median / ring.throughput.median;
  return {
    goal,
    target,
    measured:
      `${formatRatio(r)} (${formatRate(core.throughput.median)} vs ${formatRate(ring.throughput.median)}; ` +
      `${overhead(1 / r)} over the ring)`,
    status: r * CORE_OVERHEAD_LIMIT >= 1 ? 'met' : 'not met',
    reference,
  };
}

/** The bare-ring contender of the core scenarios. */
const CORE_RING = 'postern ring';

/** "+23%" for a cost ratio of 1.23 (and "−5%" when below 1). */
function overhead(costRatio: number): string {
  if (!Number.isFinite(costRatio)) return 'n/a';
  const pct = Math.round((costRatio - 1) * 100);
  return pct >= 0 ? `+${pct}%` : `−${-pct}%`;
}

// ------------------------------------------------------------------ charts

export function chartFor(report: RunReport, scenario: WorkerScenario): string {
  const results = resultsOf(report, scenario.spec.name) ?? [];
  const measured = results.filter((r) => r.status === 'ok');
  const reference = referenceOf(scenario);
  if (scenario.spec.kind === 'throughput') {
    const size = scenario.spec.size;
    const groups: ChartGroup[] = measured.map((r) => ({
      label: r.contender,
      highlight: r.contender === reference,
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

/** The charts of the single-thread core scenarios that ran: scenario name → SVG. */
export function coreCharts(core: CoreMicroReport): Map<string, string> {
  const charts = new Map<string, string>();
  if (core.send) {
    charts.set(
      'core-single-thread',
      barChart({
        title: 'core-single-thread: send + receive of a 16-byte record, core vs ring',
        subtitle: 'nanoseconds per record, tinybench median; shorter is better',
        series: ['ns/record'],
        groups: core.send.map((x) => ({
          label: x.contender,
          highlight: x.contender === CORE_REFERENCE,
          bars: [{ value: x.nsPerRecord, text: formatNs(x.nsPerRecord) }],
        })),
      }),
    );
  }
  if (core.caps) {
    charts.set(
      'core-caps',
      barChart({
        title: `core-caps: one message carrying k capabilities (${formatNs(core.caps.nsPerCap)} per capability)`,
        subtitle:
          'nanoseconds per message: send, receive, release of the imported handles; shorter is better',
        series: ['ns/message'],
        groups: core.caps.points.map((p) => ({
          label: `${p.caps} capabilities`,
          highlight: true,
          bars: [{ value: p.nsPerMessage, text: formatNs(p.nsPerMessage) }],
        })),
      }),
    );
  }
  if (core.fanOut) {
    const sizes = [...new Set(core.fanOut.map((p) => p.monitors))];
    const bar = (n: number, w: string) => {
      const p = core.fanOut!.find((x) => x.monitors === n && x.watchers === w);
      return p ? { value: p.ns, text: `${formatNs(p.ns)} (${formatNs(p.ns / n)} per down)` } : undefined;
    };
    charts.set(
      'core-fan-out',
      barChart({
        title: 'core-fan-out: close a route watched by N monitors, receive the N downs',
        subtitle: 'time from the close call to the last down, tinybench median; shorter is better',
        series: ['a mailbox per monitor', 'all into one mailbox'],
        groups: sizes.map((n) => ({
          label: `${n.toLocaleString('en-US')} monitors`,
          highlight: true,
          bars: [bar(n, 'mailbox each'), bar(n, 'one mailbox')],
        })),
      }),
    );
  }
  if (core.kill) {
    charts.set(
      'core-kill-web',
      barChart({
        title: `core-kill-web: one kill of ${core.kill[0]?.groups.toLocaleString('en-US')} linked groups`,
        subtitle: 'time of the synchronous kill call, tinybench median; shorter is better',
        series: ['kill'],
        groups: core.kill.map((k) => ({
          label: `${k.shape} (${k.links.toLocaleString('en-US')} links)`,
          highlight: true,
          bars: [
            { value: k.median, text: `${formatNs(k.median)} (${formatNs(k.median / k.groups)} per group)` },
          ],
        })),
      }),
    );
  }
  return charts;
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
  if (report.core) {
    for (const [name, svg] of coreCharts(report.core)) {
      writeFileSync(`${dir}/${name}.svg`, svg);
      files.set(name, `${name}.svg`);
    }
  }
  if (report.runtime) {
    for (const [name, svg] of runtimeCharts(report.runtime)) {
      writeFileSync(`${dir}/${name}.svg`, svg);
      files.set(name, `${name}.svg`);
    }
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
  const reference = referenceOf(scenario);
  const column = reference === POSTERN ? 'postern ×' : 'core ×';
  if (spec.kind === 'throughput') {
    const rows = results.map((r) => {
      if (r.status !== 'ok') return [r.contender, r.status, '', '', '', r.reason ?? ''];
      const t = r.throughput!;
      return [
        r.contender === reference ? `**${r.contender}**` : r.contender,
        formatRate(t.median),
        formatBytesRate(t.median * spec.size),
        `${formatRate(t.min)} – ${formatRate(t.max)}`,
        r.contender === reference ? '—' : formatRatio(advantage(results, r, reference)),
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
      ['contender', 'records/s (median)', 'payload bytes/s', 'range over rounds', column, 'notes'],
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
    '### Where the goals stand',
    '',
    '- **Atomics cost.** In Node 20 (V8 11.3) every `Atomics` call is an out-of-line builtin, ' +
      'about 15 ns on this machine, against under 1 ns for a plain typed-array access. ' +
      'A claim on a many-producer ring needs three per record on the producer side ' +
      '(the claiming CAS, the publishing store, the check for a parked consumer) and one on the consumer side. ' +
      'That floor, plus the cache line each record moves between cores, is what stands between the 16-byte ' +
      'figures and the 2× `ringbuf.js` and 40× `postMessage` goals. ' +
      'With larger records the copy dominates instead, and there postern is well past 2× `ringbuf.js`.',
    '- **Spinning round trip.** A round trip is two cache-line transfers at best; this VM moves between ' +
      "about 130 ns and 440 ns per transfer (the C probe rows), and the same run's bare `Atomics` word " +
      'round trip, which does no more than one store and one load per leg, is the JavaScript floor ' +
      'postern is compared against.',
    "- **Parking round trip.** Dominated by the host's futex wake-up, which is bimodal on this VM " +
      '(see the C futex ceiling). postern parks and wakes exactly as the reference does (a flag, a ' +
      're-check, one notify per wake-up); the rest is the few atomics of the ring itself.',
    '',
    'The runtime’s goals (spawn rate, memory per process, messages between processes, request/reply ' +
      'against piscina) have their own table in [Processes (runtime)](#processes-runtime).',
    '',
    '"postern ×" in the tables below is how many times better postern is than that row: ' +
      'throughput postern ÷ row, latency row ÷ postern (p50). Above 1, postern wins; below 1, it loses. ' +
      'In the core-* tables, "core ×" is the same against postern core (the post office, reading in place): ' +
      'against the bare ring it is below 1, and the goal above says by how much it may be.',
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
  if (report.core) out.push(...coreSections(report.core, chartDir, charts));
  out.push(...codecBlock(report), '', ...runtimeBlock(report, chartDir, charts), '');
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

/** Heading, description and chart of one of the OTHER_SCENARIOS. */
function otherHeading(name: string, chartDir: string, charts: Map<string, string>): string[] {
  const info = OTHER_SCENARIOS.find((o) => o.name === name)!;
  const lines = [`## ${name}: ${info.title}`, '', info.description, ''];
  const chart = charts.get(name);
  if (chart) lines.push(`![${name}](${chartDir}/${chart})`, '');
  return lines;
}

/** The markdown of the single-thread core scenarios that ran. */
function coreSections(core: CoreMicroReport, chartDir: string, charts: Map<string, string>): string[] {
  const out: string[] = [];
  if (core.send) {
    out.push(...otherHeading('core-single-thread', chartDir, charts));
    const c = core.send.find((x) => x.contender === CORE_REFERENCE);
    const ring = core.send.find((x) => x.contender === CORE_RING);
    out.push(
      table(
        ['contender', 'ns per record (median)', 'core ×', 'what one record costs'],
        core.send.map((x) => [
          x.contender === CORE_REFERENCE ? `**${x.contender}**` : x.contender,
          formatNs(x.nsPerRecord),
          x.contender === CORE_REFERENCE || !c ? '—' : formatRatio(x.nsPerRecord / c.nsPerRecord),
          x.what,
        ]),
      ),
      '',
    );
    if (c && ring) {
      out.push(
        `Through the post office a record costs ${formatNs(c.nsPerRecord - ring.nsPerRecord)} more than on ` +
          `the bare ring (${overhead(c.nsPerRecord / ring.nsPerRecord)}): the handle check, the permission ` +
          'check, the route pin and unpin around the write, and the close check on receive.',
        '',
      );
    }
  }
  if (core.caps) {
    out.push(...otherHeading('core-caps', chartDir, charts));
    const base = core.caps.points.find((p) => p.caps === 0);
    out.push(
      table(
        ['capabilities per message', 'ns per message (median)', 'above no capability', 'per capability'],
        core.caps.points.map((p) => [
          String(p.caps),
          formatNs(p.nsPerMessage),
          base && p.caps > 0 ? formatNs(p.nsPerMessage - base.nsPerMessage) : '—',
          base && p.caps > 0 ? formatNs((p.nsPerMessage - base.nsPerMessage) / p.caps) : '—',
        ]),
      ),
      '',
      `**Cost per transferred capability: ${formatNs(core.caps.nsPerCap)}** (least-squares slope over ` +
        `the four points; intercept ${formatNs(core.caps.nsBase)}). It covers checking the handle in the ` +
        'sending table, the reference the record takes on the route, the import into the receiving table, ' +
        'and the release of the imported handle.',
      '',
    );
  }
  if (core.fanOut) {
    out.push(...otherHeading('core-fan-out', chartDir, charts));
    out.push(
      table(
        ['monitors', 'downs go to', 'close → last down (median)', 'per down', 'samples'],
        core.fanOut.map((p) => [
          p.monitors.toLocaleString('en-US'),
          p.watchers === 'mailbox each' ? 'a mailbox per monitor' : 'one mailbox',
          formatNs(p.ns),
          formatNs(p.ns / p.monitors),
          String(p.samples),
        ]),
      ),
      '',
    );
  }
  if (core.kill) {
    out.push(...otherHeading('core-kill-web', chartDir, charts));
    out.push(
      table(
        ['shape', 'groups', 'links', 'kill (median)', 'range over samples', 'per group', 'samples'],
        core.kill.map((k) => [
          k.shape === 'chain' ? 'chain, killed from one end' : 'random web, killed at a random group',
          k.groups.toLocaleString('en-US'),
          k.links.toLocaleString('en-US'),
          formatNs(k.median),
          `${formatNs(k.min)} – ${formatNs(k.max)}`,
          formatNs(k.median / k.groups),
          String(k.samples),
        ]),
      ),
      '',
    );
  }
  if (core.problems.length > 0) {
    out.push('**Leak check failed:**', '', ...core.problems.map((p) => `- ${p}`), '');
  } else {
    out.push(
      'Every single-thread core scenario ran on its own post office, and each one came back to the ' +
        '`stats()` it had right after `create` (routes, groups, tables, capabilities, monitors, downs, ' +
        'links, owned tokens, nodes, heap bytes, threads).',
      '',
    );
  }
  return out;
}

/** Summary lines of the single-thread core scenarios. */
function coreSummaryRows(core: CoreMicroReport): string[][] {
  const rows: string[][] = [];
  for (const x of core.send ?? [])
    rows.push(['core-single-thread', x.contender, `${formatNs(x.nsPerRecord)} per record`, '']);
  if (core.caps) {
    for (const p of core.caps.points)
      rows.push(['core-caps', `${p.caps} capabilities`, `${formatNs(p.nsPerMessage)} per message`, '']);
    rows.push(['core-caps', 'slope', `${formatNs(core.caps.nsPerCap)} per capability`, '']);
  }
  for (const p of core.fanOut ?? []) {
    rows.push([
      'core-fan-out',
      `${p.monitors} monitors, ${p.watchers}`,
      `${formatNs(p.ns)} (${formatNs(p.ns / p.monitors)} per down)`,
      '',
    ]);
  }
  for (const k of core.kill ?? []) {
    rows.push([
      'core-kill-web',
      `${k.shape}, ${k.links} links`,
      `kill ${formatNs(k.median)} (${formatNs(k.median / k.groups)} per group)`,
      '',
    ]);
  }
  for (const p of core.problems) rows.push(['core', 'LEAK', p.slice(0, 70), '']);
  return rows;
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
      const reference = referenceOf(scenario);
      const adv =
        r.status === 'ok' && r.contender !== reference ? formatRatio(advantage(results, r, reference)) : '';
      rows.push([scenario.spec.name, r.contender, figure.slice(0, 70), adv]);
    }
  }
  for (const x of report.micro ?? [])
    rows.push(['single-thread', x.contender, `${formatNs(x.nsPerRecord)} per record`, '']);
  if (report.core) rows.push(...coreSummaryRows(report.core));
  if (report.codec) rows.push(...codecSummaryRows(report.codec));
  if (report.runtime) rows.push(...runtimeSummaryRows(report.runtime, report));
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
