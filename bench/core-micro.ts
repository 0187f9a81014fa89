/**
 * Single-thread microbenchmarks of the post office (core/), with tinybench:
 *
 * - core-single-thread: send + receive of a 16-byte record through core,
 *   against the same write and read on the bare ring;
 * - core-caps: a message carrying 0, 1, 4 or 16 capabilities; the cost per
 *   transferred capability is the slope through the four points;
 * - core-fan-out: close a route watched by N monitors and receive the N downs;
 * - core-kill-web: the one synchronous kill of 10,000 linked groups.
 *
 * One thread plays every part, so no cache line moves between cores: the
 * figures are CPU cost. Every part runs on its own PostOffice and compares
 * `stats()` with the figures taken right after `create` once it has torn
 * down; a difference is reported as a problem (and fails the run) rather than
 * hidden. One-shot operations (close, kill) rebuild what they destroy in
 * tinybench's beforeEach hook, outside the timed part, and tear it down in
 * afterEach.
 */

import { Bench } from 'tinybench';
import { type Mailbox, Perm, PostOffice, type PostOfficeStats, type Table } from '../core/index.ts';
import { Ring } from '../ring/index.ts';
import { makeRecord, RECORD_TYPE, SequenceChecker, stampSeq } from './messages.ts';
import { QUEUE_BYTES, selected } from './scenarios.ts';
import { formatNs } from './stats.ts';

/** Records per task call in the per-message tasks, so the timer's own cost disappears in the division. */
const BATCH = 1000;
const SIZE = 16;

export interface CoreSendResult {
  readonly contender: string;
  readonly what: string;
  /** Median ns per send + receive. */
  readonly nsPerRecord: number;
  readonly samples: number;
}

export interface CoreCapsPoint {
  readonly caps: number;
  /** Median ns per message: send, receive in place, release of every imported handle. */
  readonly nsPerMessage: number;
  readonly samples: number;
}

export interface CoreCapsResult {
  readonly points: readonly CoreCapsPoint[];
  /** Least-squares slope: ns per transferred capability. */
  readonly nsPerCap: number;
  /** Least-squares intercept: ns per message with no capability. */
  readonly nsBase: number;
}

export interface CoreFanOutPoint {
  readonly monitors: number;
  /** Where the downs go: a mailbox per monitor, or all into one mailbox. */
  readonly watchers: 'mailbox each' | 'one mailbox';
  /** Median ns from the close call to the last down received. */
  readonly ns: number;
  readonly samples: number;
}

export interface CoreKillResult {
  readonly shape: 'chain' | 'web';
  readonly groups: number;
  /** Links in the web when it was killed (from stats()). */
  readonly links: number;
  /** ns of the kill call: median, fastest and slowest sample. */
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly samples: number;
}

export interface CoreMicroReport {
  readonly send?: readonly CoreSendResult[];
  readonly caps?: CoreCapsResult;
  readonly fanOut?: readonly CoreFanOutPoint[];
  readonly kill?: readonly CoreKillResult[];
  /** Post offices that did not come back to their baseline, one line each; empty when none leaked. */
  readonly problems: readonly string[];
}

export interface CoreMicroSettings {
  /** tinybench time budget per per-message task, ms. */
  readonly timeMs: number;
  /** Scales the sample counts of the rebuild-per-sample tasks (fan-out, kill). */
  readonly samplesScale: number;
  /** `--only` filters: which of the four parts run. */
  readonly only: readonly string[];
  readonly log: (line: string) => void;
}

export const KILL_GROUPS = 10_000;
export const FAN_OUT_SIZES = [1, 100, 1000] as const;
export const CAP_COUNTS = [0, 1, 4, 16] as const;

export async function runCoreMicro(settings: CoreMicroSettings): Promise<CoreMicroReport> {
  const problems: string[] = [];
  const on = (name: string) => selected(name, settings.only);
  const send = on('core-single-thread') ? await sendCost(settings, problems) : undefined;
  const caps = on('core-caps') ? await capsCost(settings, problems) : undefined;
  const fanOut = on('core-fan-out') ? await fanOutCost(settings, problems) : undefined;
  const kill = on('core-kill-web') ? await killCost(settings, problems) : undefined;
  for (const p of problems) settings.log(`core              LEAK: ${p}`);
  return { send, caps, fanOut, kill, problems };
}

// ------------------------------------------------------------------ helpers

/** Every count of stats() except the capacities: what must be back where it started. */
function footprint(s: PostOfficeStats): Record<string, number> {
  const { capacity: _capacity, retired: _retired, ...counts } = s;
  return counts;
}

/** Records a problem for every count of `office` that differs from `baseline`. */
function checkBaseline(
  part: string,
  office: PostOffice,
  baseline: Record<string, number>,
  problems: string[],
): void {
  const now = footprint(office.stats());
  const moved = Object.keys(baseline)
    .filter((k) => now[k] !== baseline[k])
    .map((k) => `${k} ${baseline[k]} → ${now[k]}`);
  if (moved.length > 0) problems.push(`${part}: post office not back to baseline (${moved.join(', ')})`);
}

/** Median of a finished tinybench task, in ns, with its sample count. */
function taskNs(bench: Bench, name: string): { median: number; min: number; max: number; samples: number } {
  const r = bench.getTask(name)?.result;
  if (!r || !('latency' in r)) throw new Error(`tinybench task ${name} did not complete (${r?.state})`);
  return {
    median: r.latency.p50 * 1e6,
    min: r.latency.min * 1e6,
    max: r.latency.max * 1e6,
    samples: r.latency.samplesCount,
  };
}

/** Hands `h` (a handle of `from`) to `to` the way a host hands a first capability to a thread. */
function handOver(from: Table, h: number, to: Table): number {
  return to.importOwned(from.toOwned(h));
}

/** Seeded PRNG (mulberry32): the same web every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Least-squares line through (x, y): [slope, intercept]. */
export function fitLine(xs: readonly number[], ys: readonly number[]): [number, number] {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
  }
  const slope = sxx === 0 ? Number.NaN : sxy / sxx;
  return [slope, my - slope * mx];
}

function perMessageBench(settings: CoreMicroSettings): Bench {
  return new Bench({
    time: settings.timeMs,
    warmupTime: Math.min(200, settings.timeMs / 2),
    throws: true,
  });
}

/** A bench for tasks that rebuild what they destroy: a fixed sample count, the hooks' time not counted. */
function rebuildBench(samples: number): Bench {
  return new Bench({
    time: 0,
    iterations: samples,
    warmupTime: 0,
    warmupIterations: Math.max(1, Math.round(samples / 10)),
    throws: true,
  });
}

// ------------------------------------------------------------------ send + receive

async function sendCost(settings: CoreMicroSettings, problems: string[]): Promise<CoreSendResult[]> {
  const office = PostOffice.create({ heapBytes: 4 * QUEUE_BYTES, mailboxCapacity: QUEUE_BYTES });
  const baseline = footprint(office.stats());
  const receiver = office.createTable();
  const sender = office.createTable();
  const group = receiver.createGroup();

  // Each task has its own queue, record and sequence: tinybench calls each
  // task function once when it is added, and tasks must not see each other's records.
  const route = (): { mailbox: Mailbox; h: number } => {
    const mailbox = group.createMailbox();
    const own = mailbox.export(Perm.SEND);
    const h = handOver(receiver, own, sender);
    receiver.release(own);
    return { mailbox, h };
  };
  const inPlace = route();
  const inPlaceRecord = makeRecord(SIZE);
  const inPlaceChecker = new SequenceChecker(1);
  let inPlaceSeq = 0;

  const copy = route();
  const copyRecord = makeRecord(SIZE);
  const copyChecker = new SequenceChecker(1);
  let copySeq = 0;

  const bare = Ring.create({ capacity: QUEUE_BYTES, maxProducers: 1 });
  const bareProducer = bare.slots.acquire();
  const bareRecord = makeRecord(SIZE);
  const bareChecker = new SequenceChecker(1);
  let bareSeq = 0;

  const tasks: { contender: string; what: string; fn: () => void }[] = [
    {
      contender: 'postern core',
      what: 'table.send, then mailbox.tryReceiveInPlace (read in place)',
      fn: () => {
        for (let i = 0; i < BATCH; i++) {
          stampSeq(inPlaceRecord, 0, inPlaceSeq++);
          if (!sender.send(inPlace.h, inPlaceRecord)) throw new Error('core ring full');
          const signal = inPlace.mailbox.tryReceiveInPlace();
          if (signal?.kind !== 'message') throw new Error('core: no message');
          inPlaceChecker.check(signal.bytes, signal.offset);
        }
      },
    },
    {
      contender: 'postern core copy',
      what: 'table.send, then mailbox.tryReceive (a copy and a signal object)',
      fn: () => {
        for (let i = 0; i < BATCH; i++) {
          stampSeq(copyRecord, 0, copySeq++);
          if (!sender.send(copy.h, copyRecord)) throw new Error('core ring full');
          const signal = copy.mailbox.tryReceive();
          if (signal?.kind !== 'message') throw new Error('core: no message');
          copyChecker.check(signal.data, 0);
        }
      },
    },
    {
      contender: 'postern ring',
      what: 'ring/ alone: tryWrite, then peek + release',
      fn: () => {
        for (let i = 0; i < BATCH; i++) {
          stampSeq(bareRecord, 0, bareSeq++);
          if (!bare.ring.tryWrite(bareProducer, RECORD_TYPE, bareRecord)) throw new Error('ring full');
          bare.ring.peek();
          bareChecker.check(bare.ring.bytes, bare.ring.recordOffset);
          bare.ring.release();
        }
      },
    },
  ];

  const bench = perMessageBench(settings);
  for (const t of tasks) bench.add(t.contender, t.fn);
  await bench.run();
  const results = tasks.map((t) => {
    const r = taskNs(bench, t.contender);
    settings.log(`core-single-thread ${t.contender.padEnd(17)} ${formatNs(r.median / BATCH)} per record`);
    return { contender: t.contender, what: t.what, nsPerRecord: r.median / BATCH, samples: r.samples };
  });
  sender.close();
  receiver.close();
  checkBaseline('core-single-thread', office, baseline, problems);
  office.detach();
  return results;
}

// ------------------------------------------------------------------ capabilities

/** Messages per task call: fewer than BATCH, a 16-capability message costs microseconds. */
const CAPS_BATCH = 200;

async function capsCost(settings: CoreMicroSettings, problems: string[]): Promise<CoreCapsResult> {
  const office = PostOffice.create({
    heapBytes: (CAP_COUNTS.length + 1) * QUEUE_BYTES + (1 << 20),
    mailboxCapacity: QUEUE_BYTES,
  });
  const baseline = footprint(office.stats());
  const receiver = office.createTable();
  const sender = office.createTable();
  const others = office.createTable();
  const maxCaps = Math.max(...CAP_COUNTS);
  // The capabilities travel to distinct routes, as they would in a real
  // message (each transfer takes a reference on its own route slot).
  const othersGroup = others.createGroup();
  const carried: number[] = [];
  for (let k = 0; k < maxCaps; k++) {
    const mailbox = othersGroup.createMailbox({ capacity: 256 });
    const own = mailbox.export(Perm.SEND | Perm.MONITOR);
    carried.push(handOver(others, own, sender));
    others.release(own);
  }
  const group = receiver.createGroup();

  const tasks = CAP_COUNTS.map((k) => {
    const mailbox = group.createMailbox();
    const own = mailbox.export(Perm.SEND);
    const h = handOver(receiver, own, sender);
    receiver.release(own);
    const caps = carried.slice(0, k);
    const record = makeRecord(SIZE);
    const checker = new SequenceChecker(1);
    let seq = 0;
    return {
      caps: k,
      name: `${k} capabilities`,
      fn: () => {
        for (let i = 0; i < CAPS_BATCH; i++) {
          stampSeq(record, 0, seq++);
          if (!sender.send(h, record, caps)) throw new Error('core ring full');
          const signal = mailbox.tryReceiveInPlace();
          if (signal?.kind !== 'message') throw new Error('core: no message');
          checker.check(signal.bytes, signal.offset);
          const got = signal.caps;
          if (got.length !== k) throw new Error(`expected ${k} capabilities, got ${got.length}`);
          // The receiver lets each imported capability go, as a process that
          // only looked at it would: the cost of a transfer is its whole life.
          for (let c = 0; c < k; c++) receiver.release(got[c]!);
        }
      },
    };
  });

  const bench = perMessageBench(settings);
  for (const t of tasks) bench.add(t.name, t.fn);
  await bench.run();
  const points = tasks.map((t) => {
    const r = taskNs(bench, t.name);
    settings.log(`core-caps         ${t.name.padEnd(17)} ${formatNs(r.median / CAPS_BATCH)} per message`);
    return { caps: t.caps, nsPerMessage: r.median / CAPS_BATCH, samples: r.samples };
  });
  const [nsPerCap, nsBase] = fitLine(
    points.map((p) => p.caps),
    points.map((p) => p.nsPerMessage),
  );
  settings.log(`core-caps         slope             ${formatNs(nsPerCap)} per capability`);
  sender.close();
  receiver.close();
  others.close();
  checkBaseline('core-caps', office, baseline, problems);
  office.detach();
  return { points, nsPerCap, nsBase };
}

// ------------------------------------------------------------------ monitor fan-out

async function fanOutCost(settings: CoreMicroSettings, problems: string[]): Promise<CoreFanOutPoint[]> {
  const most = Math.max(...FAN_OUT_SIZES);
  const office = PostOffice.create({
    maxRoutes: most + 16,
    maxNodes: 4 * most + 64,
    heapBytes: 16 << 20,
    mailboxCapacity: 256,
  });
  const baseline = footprint(office.stats());
  const owner = office.createTable();
  // Rebuilt before each sample: the watched route (closed by the sample) and
  // a fresh watcher table holding the MONITOR handle, the mailboxes and the monitors.
  let watched: Mailbox | undefined;
  let watchedGroup: ReturnType<Table['createGroup']> | undefined;
  let watchers: Table | undefined;
  let inboxes: Mailbox[] = [];
  let expected = 0;

  const build = (monitors: number, each: boolean): void => {
    watchedGroup = owner.createGroup();
    watched = watchedGroup.createMailbox();
    const own = watched.export(Perm.MONITOR);
    watchers = office.createTable();
    const h = handOver(owner, own, watchers);
    owner.release(own);
    const group = watchers.createGroup();
    inboxes = [];
    for (let i = 0; i < (each ? monitors : 1); i++) inboxes.push(group.createMailbox());
    for (let i = 0; i < monitors; i++) watchers.monitor(h, inboxes[each ? i : 0]!);
    expected = monitors;
  };
  const teardown = (name: string): void => {
    const s = office.stats();
    // Every monitor fired and every down was taken: nothing is left pending.
    if (s.monitors !== baseline.monitors || s.pendingDowns !== baseline.pendingDowns) {
      throw new Error(`${name}: ${s.monitors} monitors and ${s.pendingDowns} downs left after the sample`);
    }
    watchers!.close();
    watchedGroup!.release();
  };

  const bench = rebuildBench(Math.max(5, Math.round(100 * settings.samplesScale)));
  const points: { name: string; monitors: number; watchers: CoreFanOutPoint['watchers'] }[] = [];
  for (const each of [true, false]) {
    for (const monitors of FAN_OUT_SIZES) {
      if (!each && monitors === 1) continue; // the same as one mailbox each
      const label = each ? 'mailbox each' : 'one mailbox';
      const name = `${monitors} monitors, ${label}`;
      points.push({ name, monitors, watchers: label });
      bench.add(
        name,
        () => {
          watched!.close();
          let got = 0;
          for (const inbox of inboxes) {
            for (
              let signal = inbox.tryReceiveInPlace();
              signal !== null;
              signal = inbox.tryReceiveInPlace()
            ) {
              if (signal.kind !== 'down') throw new Error(`expected a down, got ${signal.kind}`);
              got++;
            }
          }
          if (got !== expected) throw new Error(`${got} downs of ${expected}`);
        },
        { beforeEach: () => build(monitors, each), afterEach: () => teardown(name) },
      );
    }
  }
  await bench.run();
  const results = points.map((p) => {
    const r = taskNs(bench, p.name);
    settings.log(
      `core-fan-out      ${p.name.padEnd(27)} ${formatNs(r.median)} (${formatNs(r.median / p.monitors)} per down)`,
    );
    return { monitors: p.monitors, watchers: p.watchers, ns: r.median, samples: r.samples };
  });
  owner.close();
  checkBaseline('core-fan-out', office, baseline, problems);
  office.detach();
  return results;
}

// ------------------------------------------------------------------ kill of a linked web

/** Extra random links per group in the web, on top of the random tree that keeps it connected. */
const WEB_EXTRA_LINKS = 2;

async function killCost(settings: CoreMicroSettings, problems: string[]): Promise<CoreKillResult[]> {
  const n = KILL_GROUPS;
  const office = PostOffice.create({
    maxRoutes: n + 16,
    maxGroups: n + 16,
    maxCapabilities: n + 64,
    // Two nodes per link: the web has about (1 + WEB_EXTRA_LINKS) links per group.
    maxNodes: 2 * (2 + WEB_EXTRA_LINKS) * n,
    heapBytes: 16 << 20,
    mailboxCapacity: 64,
  });
  const baseline = footprint(office.stats());
  const random = prng(0x5eed);
  let table: Table | undefined;
  let handles: number[] = [];
  let target = 0;
  const links: Record<string, number> = {};

  // One group per process, one mailbox per group (a link names its partner
  // through a route), one LINK|KILL handle per mailbox.
  const build = (shape: CoreKillResult['shape']): void => {
    const t = office.createTable();
    const groups = [];
    handles = [];
    for (let i = 0; i < n; i++) {
      const group = t.createGroup();
      groups.push(group);
      handles.push(group.createMailbox().export(Perm.LINK | Perm.KILL));
    }
    if (shape === 'chain') {
      for (let i = 1; i < n; i++) t.link(handles[i - 1]!, groups[i]!);
      // From one end: the longest propagation.
      target = handles[0]!;
    } else {
      // A random tree (each group to an earlier one) keeps the web connected;
      // the extra links add cycles and several paths to most groups.
      for (let i = 1; i < n; i++) t.link(handles[Math.floor(random() * i)]!, groups[i]!);
      for (let i = 0; i < n; i++) {
        for (let e = 0; e < WEB_EXTRA_LINKS; e++) t.link(handles[Math.floor(random() * n)]!, groups[i]!);
      }
      target = handles[Math.floor(random() * n)]!;
    }
    links[shape] = office.stats().links - baseline.links!;
    table = t;
  };
  const teardown = (shape: string): void => {
    const s = office.stats();
    // kill is synchronous: by now every group of the web must be dead and every link gone.
    if (
      s.liveGroups !== baseline.liveGroups ||
      s.openRoutes !== baseline.openRoutes ||
      s.links !== baseline.links
    ) {
      throw new Error(
        `${shape}: ${s.liveGroups} groups, ${s.openRoutes} routes and ${s.links} links still live after kill returned`,
      );
    }
    table!.close();
  };

  const bench = rebuildBench(Math.max(3, Math.round(20 * settings.samplesScale)));
  const shapes: CoreKillResult['shape'][] = ['chain', 'web'];
  for (const shape of shapes) {
    bench.add(shape, () => table!.kill(target), {
      beforeEach: () => build(shape),
      afterEach: () => teardown(shape),
    });
  }
  await bench.run();
  const results = shapes.map((shape) => {
    const r = taskNs(bench, shape);
    settings.log(
      `core-kill-web     ${shape.padEnd(6)} ${n} groups, ${links[shape]} links: kill ${formatNs(r.median)} ` +
        `(${formatNs(r.median / n)} per group)`,
    );
    return { shape, groups: n, links: links[shape] ?? 0, ...r };
  });
  checkBaseline('core-kill-web', office, baseline, problems);
  office.detach();
  return results;
}
