/**
 * The BENCHMARKS.md sections of the codec and runtime scenarios, their lines
 * in the terminal summary, and the splice that lets an `--only runtime
 * --write` (or `--only codec --write`) run replace its own sections of an
 * existing BENCHMARKS.md and keep everything else.
 *
 * Each section sits between two marker comments (BLOCK_BEGIN / BLOCK_END
 * with its name) and carries its own date, command and machine line, since
 * it may come from a different run than the rest of the file.
 */

import { barChart } from './charts.ts';
import {
  CANDIDATES,
  CODEC_REFERENCE,
  CODEC_VALUES,
  CODECS,
  type CodecName,
  type CodecReport,
  RUNTIME_CODEC,
} from './codec.ts';
import type { RunReport } from './report.ts';
import type { RoundResult } from './runtime-common.ts';
import { MESSAGE_CONTENDERS, MESSAGE_MAILBOX } from './runtime-messages.ts';
import { REQUEST_CONTENDERS, REQUEST_IN_FLIGHT } from './runtime-request.ts';
import { RUNTIME_FIELDS, type RuntimeReport, type RuntimeScenario } from './runtime-run.ts';
import { SPAWN_CONTENDERS } from './runtime-spawn.ts';
import { OTHER_SCENARIOS, RUNTIME_SCENARIOS } from './scenarios.ts';
import { formatNs, formatRate, formatRatio } from './stats.ts';

export type BlockName = 'codec' | 'runtime';

const begin = (name: BlockName) => `<!-- bench:${name}:begin -->`;
const end = (name: BlockName) => `<!-- bench:${name}:end -->`;

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

function bytes(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(0)} MiB`;
  if (n >= 10 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n.toFixed(0)} B`;
}

function count(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** "on 2026-11-22 by `cmd`, AMD EPYC (2 cores), Node v20, load 1.2 / 1.0": where a block's figures come from. */
function provenance(report: RunReport, wallMs?: number): string {
  const m = report.machine;
  return (
    `Measured on ${report.date.toISOString().slice(0, 10)} by \`${report.command}\` on ${m.cpu}, ` +
    `${m.cores} logical cores, ${(m.memoryBytes / 2 ** 30).toFixed(1)} GiB, Node ${m.node}; load average ` +
    `${m.loadStart[0]?.toFixed(2)} at the start of the run, ${m.loadEnd[0]?.toFixed(2)} at the end` +
    (wallMs !== undefined ? `; these scenarios took ${(wallMs / 1000).toFixed(0)} s.` : '.')
  );
}

function headingOf(name: string, earlier?: string, load?: number): string[] {
  const info = OTHER_SCENARIOS.find((o) => o.name === name)!;
  const lines = [`### ${name}: ${info.title}`, '', info.description, ''];
  if (earlier !== undefined) lines.push(`*Figures from an earlier run: ${earlier}.*`, '');
  if (load !== undefined) {
    lines.push(
      `Other processes used ${(load * 100).toFixed(0)}% of the machine's CPU time while this scenario ran.`,
      '',
    );
  }
  return lines;
}

/** "2026-11-22, `npm run bench`": the short form of where a scenario's figures come from. */
export function shortProvenance(report: RunReport): string {
  return `${report.date.toISOString().slice(0, 10)}, \`${report.command}\``;
}

// ------------------------------------------------------------------ codec

export function codecBlock(report: RunReport): string[] {
  const codec = report.codec;
  const out = [begin('codec'), '## codec: Message codec: msgpackr vs v8.serialize vs JSON', ''];
  if (!codec) {
    out.push('Not run yet (`npm run bench -- --only codec --write`).', '', end('codec'));
    return out;
  }
  const info = OTHER_SCENARIOS.find((o) => o.name === 'codec')!;
  out.push(info.description, '', provenance(report), '');
  const at = (c: CodecName, v: string) => codec.points.find((p) => p.codec === c && p.value === v);
  // Ratios against msgpackr: above 1, that codec is slower (runtime/codec.ts's is below 1 where its fast path applies).
  const others = CODECS.filter((c) => c !== CODEC_REFERENCE);
  out.push(
    table(
      [
        'value',
        ...CODECS.map((c) => `${c} (ns per round trip)`),
        ...others.map((c) => `${c} ÷ ${CODEC_REFERENCE}`),
        `encoded bytes (${CODECS.join(' / ')})`,
      ],
      [
        ...CODEC_VALUES.map((v) => [
          v.name,
          ...CODECS.map((c) => {
            const p = at(c, v.name);
            return p ? formatNs(p.nsPerRoundTrip) : 'n/a';
          }),
          ...others.map((c) => {
            const p = at(c, v.name);
            const r = at(CODEC_REFERENCE, v.name);
            return p && r ? formatRatio(p.nsPerRoundTrip / r.nsPerRoundTrip) : 'n/a';
          }),
          CODECS.map((c) => String(at(c, v.name)?.bytes ?? '?')).join(' / '),
        ]),
        [
          '**geometric mean**',
          ...CODECS.map((c) => formatNs(codec.geomean[c])),
          ...others.map((c) => formatRatio(codec.geomean[c] / codec.geomean[CODEC_REFERENCE])),
          '',
        ],
      ],
    ),
    '',
    `**Conclusion.** ${codecConclusion(codec)}`,
    '',
    end('codec'),
  );
  return out;
}

function codecConclusion(codec: CodecReport): string {
  const wins = CODEC_VALUES.filter((v) => {
    const mine = codec.points.find((p) => p.codec === CODEC_REFERENCE && p.value === v.name);
    return (
      mine !== undefined &&
      codec.points.every(
        (p) =>
          p.value !== v.name ||
          p.codec === CODEC_REFERENCE ||
          p.codec === RUNTIME_CODEC ||
          p.nsPerRoundTrip > mine.nsPerRoundTrip,
      )
    );
  }).length;
  const ranked = [...CANDIDATES].sort((a, b) => codec.geomean[a] - codec.geomean[b]);
  const best = ranked[0]!;
  const parts: string[] = [];
  if (best === CODEC_REFERENCE) {
    parts.push(
      `${CODEC_REFERENCE} is the fastest of the three on ${wins} of ${CODEC_VALUES.length} values and overall ` +
        `(geometric mean ${formatRatio(codec.geomean[ranked[1]!] / codec.geomean[best])} faster than ${ranked[1]}, ` +
        `${formatRatio(codec.geomean[ranked[2]!] / codec.geomean[best])} faster than ${ranked[2]}), and its ` +
        'encodings are the smallest: runtime/codec.ts keeps it.',
    );
  } else {
    parts.push(
      `${best} is faster overall than ${CODEC_REFERENCE} (geometric mean ` +
        `${formatRatio(codec.geomean[CODEC_REFERENCE] / codec.geomean[best])}); runtime/codec.ts should be reconsidered.`,
    );
  }
  const at = (c: CodecName, v: number) =>
    codec.points.find((p) => p.codec === c && p.value === CODEC_VALUES[v]!.name)?.nsPerRoundTrip;
  const mInt = at(CODEC_REFERENCE, 0);
  const rInt = at(RUNTIME_CODEC, 0);
  const mStr = at(CODEC_REFERENCE, 1);
  const rStr = at(RUNTIME_CODEC, 1);
  if (mInt !== undefined && rInt !== undefined && mStr !== undefined && rStr !== undefined) {
    parts.push(
      `For the smallest values msgpackr’s per-call set-up dominates (${formatNs(mInt)} for a small int), so ` +
        `runtime/codec.ts writes small ints and short ASCII strings itself (standard MessagePack) and hands the ` +
        `rest to msgpackr: its round trip, decoding in place from shared memory, takes ${formatNs(rInt)} for the ` +
        `small int (${formatRatio(mInt / rInt)} less) and ${formatNs(rStr)} for the short string ` +
        `(${formatRatio(mStr / rStr)} less), and the same as msgpackr for objects.`,
    );
  }
  return parts.join(' ');
}

export function codecSummaryRows(codec: CodecReport): string[][] {
  return codec.points.map((p) => [
    'codec',
    `${p.codec}, ${p.value}`.slice(0, 60),
    `${formatNs(p.nsPerRoundTrip)} per round trip, ${p.bytes} B`,
    '',
  ]);
}

// ------------------------------------------------------------------ runtime goals

export interface RuntimeGoal {
  readonly scenario: string;
  readonly what: string;
  readonly postern: string;
  readonly peer: string;
  readonly ratio: string;
  readonly goal: string;
  readonly status: 'met' | 'not met' | 'not measured' | '—';
}

export const SPAWN_GOAL = 200_000;
export const SHARED_GOAL = 1024;
export const MESSAGE_GOAL = 5e6;
export const REQUEST_GOAL = 10;

function okResult(results: readonly RoundResult[] | undefined, name: string): RoundResult | undefined {
  const r = results?.find((x) => x.contender === name);
  return r?.status === 'ok' ? r : undefined;
}

function rateOf(results: readonly RoundResult[] | undefined, name: string): number | undefined {
  return okResult(results, name)?.rate?.median;
}

export function runtimeGoals(runtime: RuntimeReport, report: RunReport): RuntimeGoal[] {
  const goals: RuntimeGoal[] = [];
  const status = (measured: boolean, met: boolean): RuntimeGoal['status'] =>
    measured ? (met ? 'met' : 'not met') : 'not measured';

  const spawn = runtime.spawn?.results;
  const host = rateOf(spawn, SPAWN_CONTENDERS.hostSequential);
  const hostMany = rateOf(spawn, SPAWN_CONTENDERS.hostInFlight);
  for (const [name, peerName, peer] of [
    [SPAWN_CONTENDERS.localQuick, SPAWN_CONTENDERS.hostSequential, host],
    [SPAWN_CONTENDERS.localIdle, SPAWN_CONTENDERS.hostInFlight, hostMany],
  ] as const) {
    const r = rateOf(spawn, name);
    goals.push({
      scenario: 'runtime-spawn',
      what: `spawn rate on one worker, ${name}`,
      postern: r === undefined ? 'n/a' : `${formatRate(r)}`,
      peer: peer === undefined ? 'n/a' : `spawn from the ${peerName}: ${formatRate(peer)}`,
      ratio: r !== undefined && peer !== undefined ? formatRatio(r / peer) : 'n/a',
      goal: `> ${count(SPAWN_GOAL)}/s per worker`,
      status: status(r !== undefined, (r ?? 0) > SPAWN_GOAL),
    });
  }

  const memory = runtime.memory;
  const memOk = memory !== undefined && memory.shared.values.length > 0;
  goals.push({
    scenario: 'runtime-memory',
    what: 'shared memory per idle process',
    postern: memOk ? `${bytes(memory.shared.median)} (mailbox ring of ${memory.mailboxCapacity} B)` : 'n/a',
    peer: '—',
    ratio: '—',
    goal: `< ${bytes(SHARED_GOAL)}`,
    status: status(memOk, memOk && memory.shared.median < SHARED_GOAL),
  });
  goals.push({
    scenario: 'runtime-memory',
    what: 'JS heap per idle process (on its worker)',
    postern: memOk
      ? `${bytes(memory.heap.median)}${memory.gc ? '' : ' (no GC available: includes garbage)'}`
      : 'n/a',
    peer: '—',
    ratio: '—',
    goal: 'none set',
    status: '—',
  });

  const million = runtime.million;
  goals.push({
    scenario: 'runtime-million',
    what: `${count(million?.target ?? 1e6)} live idle processes on ${million?.workers ?? 2} workers`,
    postern:
      million === undefined
        ? 'n/a'
        : million.ok
          ? `works: spawned in ${(million.spawnMs / 1000).toFixed(1)} s (${formatRate((million.target * 1000) / million.spawnMs)}); ` +
            `${bytes((million.sharedPerProcess ?? 0) * million.target)} shared, ` +
            `${bytes(million.heapPerWorker.reduce((a, b) => a + b, 0))} JS heap, RSS ${bytes(million.rss)}`
          : `reached ${count(million.reached)}: ${million.error ?? 'unknown'}`,
    peer: '—',
    ratio: '—',
    goal: 'works on this machine',
    status: status(million !== undefined, million?.ok ?? false),
  });

  for (const part of runtime.messages?.parts ?? []) {
    const p = rateOf(part.results, MESSAGE_CONTENDERS.processes);
    const port = rateOf(part.results, MESSAGE_CONTENDERS.port);
    const core = rateOf(part.results, MESSAGE_CONTENDERS.core);
    goals.push({
      scenario: 'runtime-messages',
      what: `process to process across workers, ${part.value}`,
      postern: p === undefined ? 'n/a' : formatRate(p),
      peer:
        `postMessage ${port === undefined ? 'n/a' : formatRate(port)}; ` +
        `post office alone ${core === undefined ? 'n/a' : formatRate(core)}`,
      ratio:
        `${p !== undefined && port !== undefined ? formatRatio(p / port) : 'n/a'} postMessage; ` +
        `${p !== undefined && core !== undefined ? formatRatio(p / core) : 'n/a'} core`,
      goal: `> ${formatRate(MESSAGE_GOAL)}`,
      status: status(p !== undefined, (p ?? 0) > MESSAGE_GOAL),
    });
  }
  if (runtime.messages === undefined) {
    goals.push({
      scenario: 'runtime-messages',
      what: 'process to process across workers',
      postern: 'n/a',
      peer: '',
      ratio: '',
      goal: `> ${formatRate(MESSAGE_GOAL)}`,
      status: 'not measured',
    });
  }

  const req = runtime.request?.results;
  const pSeq = okResult(req, REQUEST_CONTENDERS.piscinaSequential);
  const pMany = rateOf(req, REQUEST_CONTENDERS.piscinaInFlight);
  for (const name of [REQUEST_CONTENDERS.hostSequential, REQUEST_CONTENDERS.processSequential]) {
    const r = okResult(req, name);
    const ratio = r?.p50 && pSeq?.p50 ? pSeq.p50.median / r.p50.median : undefined;
    goals.push({
      scenario: 'runtime-request',
      what: `${name}: round trip p50`,
      postern: r?.p50 ? `${formatNs(r.p50.median)} (${formatRate(r.rate!.median)})` : 'n/a',
      peer: pSeq?.p50 ? `piscina.run ${formatNs(pSeq.p50.median)} (${formatRate(pSeq.rate!.median)})` : 'n/a',
      ratio: ratio === undefined ? 'n/a' : formatRatio(ratio),
      goal: `> ${REQUEST_GOAL}× piscina`,
      status: status(ratio !== undefined, (ratio ?? 0) > REQUEST_GOAL),
    });
  }
  for (const name of [REQUEST_CONTENDERS.hostInFlight, REQUEST_CONTENDERS.processInFlight]) {
    const r = rateOf(req, name);
    const ratio = r !== undefined && pMany !== undefined ? r / pMany : undefined;
    goals.push({
      scenario: 'runtime-request',
      what: `${name}: requests per second`,
      postern: r === undefined ? 'n/a' : formatRate(r),
      peer: pMany === undefined ? 'n/a' : `piscina.run, ${REQUEST_IN_FLIGHT} in flight: ${formatRate(pMany)}`,
      ratio: ratio === undefined ? 'n/a' : formatRatio(ratio),
      goal: `> ${REQUEST_GOAL}× piscina`,
      status: status(ratio !== undefined, (ratio ?? 0) > REQUEST_GOAL),
    });
  }

  const kill = runtime.killTree;
  const web = report.core?.kill?.find((k) => k.shape === 'web');
  goals.push({
    scenario: 'runtime-kill-tree',
    what: `kill of a linked tree of ${count(kill?.processes ?? 10_000)} processes`,
    postern:
      kill && kill.samples > 0
        ? `down after ${formatNs(kill.downMs.median * 1e6)}, every process gone after ${formatNs(kill.goneMs.median * 1e6)}`
        : 'n/a',
    peer: web ? `core-kill-web, one thread, no processes: ${formatNs(web.median)}` : '—',
    ratio: '—',
    goal: 'none set',
    status: kill && kill.samples > 0 ? '—' : 'not measured',
  });
  return goals;
}

// ------------------------------------------------------------------ runtime block

export function runtimeBlock(report: RunReport, chartDir: string, charts: Map<string, string>): string[] {
  const runtime = report.runtime;
  const out = [begin('runtime'), '## Processes (runtime)', ''];
  if (!runtime) {
    out.push('Not run yet (`npm run bench -- --only runtime --write`).', '', end('runtime'));
    return out;
  }
  out.push(
    'Processes on scheduler workers, measured through the process API (runtime/). ' +
      'Every scenario starts its own runtime with two workers, one per core of this machine, and checks at the ' +
      'end that the post office is back to its counts after start.',
    '',
    provenance(report, runtime.wallMs) +
      (runtime.code !== undefined ? ` Code measured: ${runtime.code}.` : '') +
      (runtime.otherLoad?.all !== undefined
        ? ` Other processes used ${(runtime.otherLoad.all * 100).toFixed(0)}% of the machine's CPU time meanwhile ` +
          '(other work shares this VM): read ratios within a scenario rather than absolute figures.'
        : ''),
    '',
    table(
      ['scenario', 'what', 'postern', 'peer (same run)', 'ratio', 'goal', 'status'],
      runtimeGoals(runtime, report).map((g) => [
        runtime.measured?.[g.scenario as RuntimeScenario] !== undefined ? `${g.scenario} †` : g.scenario,
        g.what,
        g.postern,
        g.peer,
        g.ratio,
        g.goal,
        g.status === 'met' ? '**met**' : g.status,
      ]),
    ),
    '',
    'Ratios are postern ÷ peer for rates, peer ÷ postern for latencies: above 1, postern is ahead.' +
      (runtime.measured !== undefined && Object.keys(runtime.measured).length > 0
        ? ' † figures from an earlier run (a partial run kept them; the scenario says which).'
        : ''),
    '',
  );
  if (runtime.problems.length > 0) {
    out.push('**Problems in this run:**', '', ...runtime.problems.map((p) => `- ${p}`), '');
  }
  out.push(...runtimeNotes(runtime, report));
  out.push(
    ...runtimeDetails(runtime, report, chartDir, charts),
    runtimeData(runtime, report),
    end('runtime'),
  );
  return out;
}

/** The runtime code the notes below were checked against (profiles and patched copies, 2026-11-22). */
const INVESTIGATED = 'commit 22cd96e';

/**
 * Why each goal that is not met is not met: the figures of this run, and
 * what the investigation of 2026-11-22 found (CPU profiles of the workers
 * with `node --cpu-prof`, and patched copies of runtime/ run side by side on
 * the same machine; details and suggested fixes went to the runtime's
 * owners, several of which are in the code measured here).
 */
function runtimeNotes(runtime: RuntimeReport, report: RunReport): string[] {
  const goals = runtimeGoals(runtime, report);
  const missed = (scenario: string) => goals.some((g) => g.scenario === scenario && g.status === 'not met');
  const notes: string[] = [];
  const local = rateOf(runtime.spawn?.results, SPAWN_CONTENDERS.localQuick);
  if (missed('runtime-spawn') && local !== undefined) {
    const load = runtime.otherLoad?.['runtime-spawn'];
    notes.push(
      `**Spawn rate.** A local spawn plus the child's run and exit took ${formatNs(1e9 / local)} per spawn ` +
        `in this run; ${count(SPAWN_GOAL)}/s needs under ${formatNs(1e9 / SPAWN_GOAL)}` +
        (load !== undefined
          ? `, and other processes had ${(load * 100).toFixed(0)}% of the CPU meanwhile`
          : '') +
        `. In a CPU profile of the spawning worker (${INVESTIGATED}) about 28% of its time is the child's end ` +
        '(closing its table and mailbox, of which ~8% is the ring free scanning every thread slot’s hazard word; ' +
        'killing its group ~9%), about 26% its creation (the core Table object alone ~7%, most of it building its ' +
        'four collections and scratch array; then the group, the route and the 576-byte ring), ~6% dropping the ' +
        'parent’s ref and ~8% garbage collection. Spawns from the host are request/reply round trips through the ' +
        'worker’s control route: they pay the wake-ups described under request/reply.',
    );
  }
  const small = runtime.messages?.parts[0];
  if (missed('runtime-messages') && small) {
    const core = rateOf(small.results, MESSAGE_CONTENDERS.core);
    const p = rateOf(small.results, MESSAGE_CONTENDERS.processes);
    const codecInt = report.codec?.points.find(
      (x) => x.codec === RUNTIME_CODEC && x.value === CODEC_VALUES[0]!.name,
    );
    notes.push(
      `**Messages between processes.** The post office alone moved ${core === undefined ? 'n/a' : formatRate(core)} ` +
        'small ints between two workers in this run' +
        (p !== undefined && core !== undefined ? ` and the processes ${formatRatio(p / core)} of that` : '') +
        ': 5 M/s is above what the ring and the post office carry between two threads on this VM (`core-send-16` ' +
        'in the main tables measures the same path with 16-byte records). A process adds, per message, the encode ' +
        (codecInt
          ? `(a small int's round trip through runtime/codec.ts: ${formatNs(codecInt.nsPerRoundTrip)}) `
          : '') +
        'and, on the consumer, an `await ctx.receive()`: a promise, a microtask and some garbage per message ' +
        '(garbage collection was ~11% of the consumer’s worker in a profile), and a doorbell wake-up each time it ' +
        'has drained its mailbox. In that profile the consumer’s worker idled ~30% while the producer’s was busy, ' +
        'about half of it in the post office’s send path (`table.send`, the ring claim, the route check): the ' +
        'producer sets the pace. Sending and receiving in batches (one call for many values) would spread the ' +
        'per-call costs.',
    );
  }
  if (missed('runtime-request')) {
    const pSeq = okResult(runtime.request?.results, REQUEST_CONTENDERS.piscinaSequential);
    const pp = okResult(runtime.request?.results, REQUEST_CONTENDERS.processSequential);
    const many = rateOf(runtime.request?.results, REQUEST_CONTENDERS.processInFlight);
    const pMany = rateOf(runtime.request?.results, REQUEST_CONTENDERS.piscinaInFlight);
    notes.push(
      '**Request/reply, one at a time.** Between two requests both sides have nothing to run. A scheduler ' +
        'worker keeps turning its event loop for 0.5 ms after its last ready bit before it parks with ' +
        '`Atomics.waitAsync`, so a round trip between two processes usually finds its peer awake' +
        (pp?.p50 ? ` (process → process p50 ${formatNs(pp.p50.median)} here)` : '') +
        '; the host waits through the ring’s short spin and parks, so most host requests pay a wake-up through ' +
        'the event loop, where piscina’s worker waits in a synchronous `Atomics.wait`. 10× piscina needs a round ' +
        'trip under ' +
        (pSeq?.p50 ? formatNs(pSeq.p50.median / REQUEST_GOAL) : 'a tenth of piscina’s') +
        ': two encodes, two decodes and two hand-offs between cores, near this VM’s floor (the C cache-line ' +
        'round trip of the main tables is one hand-off there and back). On a quieter machine the same code measured ' +
        'process → process 16–18 µs per request (mean of 5,000 in a row) and host → process p50 6–7 µs.',
      `**Request/reply, ${REQUEST_IN_FLIGHT} in flight.** ` +
        (many !== undefined && pMany !== undefined
          ? `process → process is ${formatRatio(many / pMany)} piscina here. `
          : '') +
        'In a profile (scheduler polling 0.1 ms) both workers were about half idle: the requests and the replies ' +
        'travel in batches between workers that park in between; polling 2 ms, the same process → process rounds ' +
        'ran at about 140 k/s instead of 40–50 k/s. The code measured here polls 0.5 ms.',
    );
  }
  const million = runtime.million;
  if (million && !million.ok) {
    notes.push(
      `**A million processes.** It stopped at ${count(million.reached)} live processes: ${million.error ?? 'unknown'}.`,
    );
  }
  const memory = runtime.memory;
  if (memory && memory.heap.values.length > 0) {
    notes.push(
      `**JS heap per idle process** (no goal set): ${bytes(memory.heap.median)}: the Process, its core Table, ` +
        'Group, Mailbox and Ring objects, the Refs (its own and its spawner’s), the pending receive and the ' +
        'scheduler’s wait. The core Table still builds four collections and the Mailbox one that an idle process ' +
        'never uses (its scratch array is one per thread now); making those lazy, as the Process’s own are, is ' +
        'the next saving.',
    );
  }
  const kill = runtime.killTree;
  if (kill && kill.samples > 0) {
    notes.push(
      `**Killing a tree** (no goal set): the host’s kill call itself took ${formatNs(kill.killCallMs.median * 1e6)} ` +
        'for 10,000 processes, against ~12 ms for the post office killing 10,000 linked groups on one quiet thread ' +
        '(`core-kill-web`): here both workers wake and start tearing their processes down (taking the same locks) ' +
        'while the main thread is still killing, on two cores shared with other work. What follows the call is ' +
        'each worker noticing its processes’ deaths, closing their tables and collecting their garbage.',
    );
  }
  if (notes.length === 0) return [];
  return ['#### Where the goals stand', '', ...notes.flatMap((n) => [`- ${n}`]), ''];
}

function roundTable(results: readonly RoundResult[], latency: boolean): string {
  return table(
    latency
      ? ['contender', 'per second (median)', 'range over rounds', 'p50', 'p99', 'rounds × size']
      : ['contender', 'per second (median)', 'range over rounds', 'rounds × size'],
    results.map((r) => {
      if (r.status !== 'ok' || !r.rate)
        return [r.contender, `error: ${r.reason ?? ''}`, '', ...(latency ? ['', ''] : []), ''];
      return [
        r.contender,
        formatRate(r.rate.median),
        `${formatRate(r.rate.min)} – ${formatRate(r.rate.max)}`,
        ...(latency ? [r.p50 ? formatNs(r.p50.median) : '—', r.p99 ? formatNs(r.p99.median) : '—'] : []),
        `${r.rate.values.length} × ${count(r.n)}`,
      ];
    }),
  );
}

function runtimeDetails(
  runtime: RuntimeReport,
  report: RunReport,
  chartDir: string,
  charts: Map<string, string>,
): string[] {
  const out: string[] = [];
  const heading = (name: RuntimeScenario) => {
    const lines = headingOf(name, runtime.measured?.[name], runtime.otherLoad?.[name]);
    // A chart from an earlier run is not rewritten by this one: only this run's figures get a chart.
    const chart = runtime.measured?.[name] === undefined ? charts.get(name) : undefined;
    if (chart) lines.push(`![${name}](${chartDir}/${chart})`, '');
    return lines;
  };
  if (runtime.spawn) {
    out.push(...heading('runtime-spawn'), roundTable(runtime.spawn.results, false), '');
  }
  const memory = runtime.memory;
  if (memory && memory.shared.values.length > 0) {
    const b = memory.breakdown;
    out.push(
      ...heading('runtime-memory'),
      table(
        ['per idle process', 'bytes'],
        [
          ['table slot', b.table.toFixed(0)],
          ['group slot', b.group.toFixed(0)],
          ['route slots', b.routes.toFixed(0)],
          ['capability entries (its own, and the ref its spawner holds)', b.capabilities.toFixed(0)],
          ['list nodes', b.nodes.toFixed(0)],
          [`heap pages: the mailbox ring (header + ${memory.mailboxCapacity} B)`, b.heap.toFixed(0)],
          ['**shared, total**', `**${b.total.toFixed(0)}**`],
          [
            `JS heap on the worker${memory.gc ? ' (after a full GC)' : ''}`,
            `${memory.heap.median.toFixed(0)} (range ${memory.heap.min.toFixed(0)} – ${memory.heap.max.toFixed(0)})`,
          ],
        ],
      ),
      '',
      `${memory.shared.values.length} sample${memory.shared.values.length === 1 ? '' : 's'} of ${count(memory.processes)} idle processes, median shown; ` +
        `they were spawned at ${formatRate(memory.spawnRate.median)}. The post office is sized at start for every ` +
        `process the runtime may hold (${count(memory.processCapacity)} here): ${bytes(memory.officeBytes)}, ` +
        `${bytes(memory.officeBytes / memory.processCapacity)} per process slot, whether used or not. ` +
        'Each worker also keeps two doorbell bits per process slot.',
      '',
    );
  }
  const million = runtime.million;
  if (million) {
    out.push(...heading('runtime-million'));
    const rows: string[][] = [
      [
        'outcome',
        million.ok
          ? `**works**: ${count(million.reached)} idle processes alive at once`
          : `stopped at ${count(million.reached)}: ${million.error ?? ''}`,
      ],
      [
        'spawning them',
        `${(million.spawnMs / 1000).toFixed(1)} s (${formatRate((million.reached * 1000) / million.spawnMs)} over both workers); ` +
          `each worker's share took ${million.workerSpawnMs.map((ms) => `${(ms / 1000).toFixed(1)} s`).join(' and ')} on its own clock`,
      ],
      [
        'shared memory in use',
        million.sharedPerProcess === undefined
          ? 'n/a'
          : `${bytes(million.sharedPerProcess * million.reached)} (${million.sharedPerProcess.toFixed(0)} B per process, ` +
            `mailbox rings of ${million.mailboxCapacity} B); the post office is ${bytes(million.officeBytes)}`,
      ],
      [
        'JS heap',
        `${million.heapPerWorker.map((h) => bytes(h)).join(' + ')} (workers, after GC)` +
          (million.heapPerProcess !== undefined
            ? `; ${million.heapPerProcess.toFixed(0)} B per process`
            : '') +
          `; limit ${million.heapLimitMb} MiB per worker`,
      ],
      ['RSS of the whole process', bytes(million.rss)],
      [
        'killing them all',
        million.killMs === undefined
          ? 'n/a'
          : `kill calls ${(million.killMs / 1000).toFixed(2)} s; every process gone after ` +
            `${million.goneMs === undefined ? 'n/a' : `${(million.goneMs / 1000).toFixed(2)} s`}`,
      ],
    ];
    out.push(table(['', ''], rows), '');
  }
  if (runtime.messages) {
    out.push(...heading('runtime-messages'));
    for (const part of runtime.messages.parts) {
      out.push(`**${part.value}**: ${part.shows}`, '', roundTable(part.results, false), '');
    }
    out.push(
      `The consumer process's mailbox and the core peer's are ${bytes(MESSAGE_MAILBOX)}; postMessage keeps at most ` +
        'as many messages in flight as that mailbox holds. Every consumer times its round from its first message to its last.',
      '',
    );
  }
  if (runtime.request) {
    out.push(
      ...heading('runtime-request'),
      roundTable(runtime.request.results, true),
      '',
      `piscina runs with ${runtime.request.piscinaThreads} worker thread${runtime.request.piscinaThreads === 1 ? '' : 's'} ` +
        '(the postern echo is one process on one worker); p50 and p99 are per round trip, in sequential rounds only.',
      '',
    );
  }
  const kill = runtime.killTree;
  if (kill && kill.samples > 0) {
    const ms = (s: { median: number; min: number; max: number }) =>
      `${formatNs(s.median * 1e6)} (${formatNs(s.min * 1e6)} – ${formatNs(s.max * 1e6)})`;
    const web = report.core?.kill?.find((k) => k.shape === 'web');
    out.push(
      ...heading('runtime-kill-tree'),
      table(
        ['from the kill call (host clock)', 'median (range)'],
        [
          ['the kill call returns (the post office has killed every group)', ms(kill.killCallMs)],
          ["the root's down reaches the host", ms(kill.downMs)],
          ['stats() show every process gone (both workers tore theirs down)', ms(kill.goneMs)],
        ],
      ),
      '',
      `${kill.samples} sample${kill.samples === 1 ? '' : 's'}, the tree rebuilt for each (${count(kill.processes)} processes, fan-out ${kill.fanout}, ` +
        `built at ${formatRate(kill.buildRate.median)} with spawnLink).` +
        (web
          ? ` For scale: the post office alone kills a web of ${count(web.groups)} linked groups on one thread in ${formatNs(web.median)} (core-kill-web).`
          : ''),
      '',
    );
  }
  return out;
}

export function runtimeSummaryRows(runtime: RuntimeReport, report: RunReport): string[][] {
  const rows = runtimeGoals(runtime, report).map((g) => [
    g.scenario,
    g.what.slice(0, 60),
    g.postern.slice(0, 70),
    g.ratio.slice(0, 30),
  ]);
  for (const p of runtime.problems) rows.push(['runtime', 'PROBLEM', p.slice(0, 70), '']);
  return rows;
}

/** Contender rounds that failed in the runtime scenarios, as "scenario/contender". */
export function runtimeFailures(runtime: RuntimeReport): string[] {
  const failed: string[] = [];
  const check = (scenario: string, results: readonly RoundResult[] | undefined) => {
    for (const r of results ?? []) if (r.status === 'error') failed.push(`${scenario}/${r.contender}`);
  };
  check('runtime-spawn', runtime.spawn?.results);
  for (const part of runtime.messages?.parts ?? []) check(`runtime-messages (${part.value})`, part.results);
  check('runtime-request', runtime.request?.results);
  return failed;
}

// ------------------------------------------------------------------ splicing

/** The text of block `name` in `doc`, markers included, or undefined. */
export function blockOf(doc: string, name: BlockName): string | undefined {
  const a = doc.indexOf(begin(name));
  const b = doc.indexOf(end(name));
  if (a < 0 || b < a) return undefined;
  return doc.slice(a, b + end(name).length);
}

/**
 * `doc` with block `name` replaced by `block`; a doc without that block gets
 * it inserted before `before` (a heading line), or at the end.
 */
export function replaceBlock(
  doc: string,
  name: BlockName,
  block: string,
  before = '## Method and caveats',
): string {
  const old = blockOf(doc, name);
  if (old !== undefined) return doc.replace(old, () => block);
  const at = doc.indexOf(`\n${before}\n`);
  if (at < 0) return `${doc.trimEnd()}\n\n${block}\n`;
  return `${doc.slice(0, at + 1)}${block}\n\n${doc.slice(at + 1)}`;
}

// ------------------------------------------------------------------ charts

/** The runtime's charts (file name without .svg → SVG): messages and request/reply against their peers. */
export function runtimeCharts(runtime: RuntimeReport): Map<string, string> {
  const charts = new Map<string, string>();
  const messages = runtime.messages;
  if (messages && messages.parts.length > 0) {
    const names = [MESSAGE_CONTENDERS.processes, MESSAGE_CONTENDERS.core, MESSAGE_CONTENDERS.port];
    charts.set(
      'runtime-messages',
      barChart({
        title: 'runtime-messages: small values from a process on worker 0 to one on worker 1',
        subtitle: 'messages per second, median of rounds; longer is better',
        series: messages.parts.map((p) => p.value),
        groups: names.map((name) => ({
          label: name,
          highlight: name === MESSAGE_CONTENDERS.processes,
          bars: messages.parts.map((p) => {
            const r = rateOf(p.results, name);
            return r === undefined ? undefined : { value: r, text: formatRate(r) };
          }),
        })),
      }),
    );
  }
  const request = runtime.request;
  if (request) {
    const pairs = [
      ['host → process', REQUEST_CONTENDERS.hostSequential, REQUEST_CONTENDERS.hostInFlight],
      ['process → process', REQUEST_CONTENDERS.processSequential, REQUEST_CONTENDERS.processInFlight],
      ['piscina.run', REQUEST_CONTENDERS.piscinaSequential, REQUEST_CONTENDERS.piscinaInFlight],
    ] as const;
    charts.set(
      'runtime-request',
      barChart({
        title: 'runtime-request: an echo, postern against piscina',
        subtitle: 'round trips per second, median of rounds; longer is better',
        series: ['one at a time', `${REQUEST_IN_FLIGHT} in flight`],
        groups: pairs.map(([label, one, many]) => ({
          label,
          highlight: label !== 'piscina.run',
          bars: [one, many].map((name) => {
            const r = rateOf(request.results, name);
            return r === undefined ? undefined : { value: r, text: formatRate(r) };
          }),
        })),
      }),
    );
  }
  const spawn = runtime.spawn;
  if (spawn) {
    charts.set(
      'runtime-spawn',
      barChart({
        title: 'runtime-spawn: processes spawned per second onto one worker',
        subtitle: 'spawns per second, median of rounds; longer is better',
        series: ['spawns/s'],
        groups: Object.values(SPAWN_CONTENDERS).map((name) => {
          const r = rateOf(spawn.results, name);
          return {
            label: name,
            highlight: true,
            bars: [r === undefined ? undefined : { value: r, text: formatRate(r) }],
          };
        }),
      }),
    );
  }
  return charts;
}

// ------------------------------------------------------------------ partial runs

const DATA_MARK = '<!-- bench:runtime:data ';

/**
 * The runtime figures as JSON inside a comment at the end of the block, every
 * scenario labelled with where it was measured, so a later partial run can
 * take over the scenarios it did not run. `--` cannot occur in a comment and
 * occurs in JSON only inside strings, where `-\u002d` means the same.
 */
function runtimeData(runtime: RuntimeReport, report: RunReport): string {
  const measured: Partial<Record<RuntimeScenario, string>> = {};
  for (const name of RUNTIME_SCENARIOS) {
    if (runtime[RUNTIME_FIELDS[name]] !== undefined)
      measured[name] = runtime.measured?.[name] ?? shortProvenance(report);
  }
  const json = JSON.stringify({ ...runtime, measured }).replace(/--/g, '-\\u002d');
  return `${DATA_MARK}${json} -->`;
}

/** The runtime figures embedded in an earlier BENCHMARKS.md, or undefined. */
export function parseRuntimeData(doc: string): RuntimeReport | undefined {
  const block = blockOf(doc, 'runtime');
  const at = block?.indexOf(DATA_MARK) ?? -1;
  if (block === undefined || at < 0) return undefined;
  const stop = block.indexOf(' -->', at);
  try {
    return JSON.parse(block.slice(at + DATA_MARK.length, stop)) as RuntimeReport;
  } catch {
    return undefined;
  }
}

/**
 * This run's runtime figures, completed with the scenarios it did not run
 * from `old` (an earlier run's embedded figures), each keeping its provenance.
 */
export function mergeRuntime(fresh: RuntimeReport, old: RuntimeReport | undefined): RuntimeReport {
  if (old === undefined) return fresh;
  const merged: Record<string, unknown> = { ...fresh };
  const measured: Partial<Record<RuntimeScenario, string>> = {};
  const otherLoad: Partial<Record<RuntimeScenario | 'all', number>> = { ...fresh.otherLoad };
  const problems = [...fresh.problems];
  for (const name of RUNTIME_SCENARIOS) {
    const field = RUNTIME_FIELDS[name];
    if (fresh[field] !== undefined || old[field] === undefined) continue;
    merged[field] = old[field];
    const from = old.measured?.[name];
    if (from !== undefined) measured[name] = from;
    const load = old.otherLoad?.[name];
    if (load !== undefined) otherLoad[name] = load;
    problems.push(...old.problems.filter((p) => p.startsWith(name)));
  }
  return { ...(merged as unknown as RuntimeReport), problems, measured, otherLoad };
}
