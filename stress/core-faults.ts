/**
 * core-faults: the faults core-mixed does not inject, one probe each, in a
 * seeded random order per round:
 *
 * - exhaustion: every region (routes, groups, tables, capabilities, nodes,
 *   heap by rings, heap by out-of-line bodies) driven to exhaustion and
 *   back, twice: the call that finds it full throws CapacityExceeded with
 *   that region and changes nothing; the office keeps working while full
 *   (a message between two mailboxes made before still goes through, and a
 *   receive that cannot import its capabilities leaves the message for
 *   later); once everything is let go stats() equals the baseline and a
 *   scan of the shared memory finds every pool as it was, no lock held;
 * - handles: garbage numbers, released, forged (other generations and
 *   slots of real handles), other-table and other-office handles and used
 *   or forged owned tokens, through every operation: each throws its typed
 *   error and changes nothing; a message exactly at the size limit is
 *   delivered whole, one byte more is MessageTooLarge;
 * - records: random record types and payloads written into a mailbox's ring
 *   with the ring API (what only a holder of the raw buffer can do), then
 *   received: the post office must refuse or skip each with a typed error
 *   and keep working;
 * - ring headers: a record whose header gets a random length: the ring must
 *   raise RingCorrupted, or hand out a record that lies inside its space,
 *   never read out of bounds;
 * - codec: the runtime codec's decode fed random and mutated bytes with
 *   random capability lists: a value or DecodeError, and every capability
 *   accounted for; then the same junk sent to a runtime process (the host):
 *   skipped, nothing leaked, receive keeps working;
 * - thread death: workers doing kills, links, monitors and creations are
 *   terminated at random instants and declared dead; the survivors must
 *   keep going. A survivor stuck behind a lock is reported precisely: which
 *   group or route lock, and whether its holder tag names the dead thread.
 *
 * What the post office does not do yet, and is written down in
 * /tmp/core-bugs.txt (or runtime-bugs.txt), is counted as a known defect
 * (DEFECTS below) rather than a violation, unless the run is --strict.
 */

import { Worker } from 'node:worker_threads';
import {
  CapacityExceeded,
  type Group,
  type Mailbox,
  MessageTooLarge,
  type OwnedCapability,
  Perm,
  PostOffice,
  PostOfficeError,
  type PostOfficeOptions,
  type Region,
  type Table,
} from '../core/index.ts';
import {
  G_LOCK,
  GROUP_BYTES,
  H_POOLS,
  POOL_GROUPS,
  POOL_ROUTES,
  R_LOCK,
  ROUTE_BYTES,
} from '../core/layout.ts';
import { RingError } from '../ring/errors.ts';
import { Ring } from '../ring/index.ts';
import { RECORD_HEADER_BYTES, RING_HEADER_BYTES } from '../ring/ring-layout.ts';
import { Prng } from '../ring/test/records.ts';
import { sleep } from '../ring/test/workers.ts';
import { decode, decodePlain, encode } from '../runtime/codec.ts';
import { DecodeError, isDown, ReceiveTimeout, Ref, Runtime } from '../runtime/index.ts';
import { describeNewSlots } from './census.ts';
import {
  CTRL_PAUSE,
  CTRL_STOP,
  CTRL_WORKER,
  type DeathFromMain,
  type DeathToMain,
  OPS,
  W_BEAT,
  W_OP,
} from './core-faults.worker.ts';
import { compareStats, scanOffice, snapshotBitmaps } from './core-scenarios.ts';
import type { RoundContext, RoundResult, Scenario } from './scenario.ts';

const EATER = new URL('./fixtures/junk-eater.procs.ts', import.meta.url).href;

class Failure extends Error {}

function fail(invariant: string, detail: string): never {
  throw new Failure(`${invariant}: ${detail}`);
}

/** Known defects of core/ and runtime/ this scenario reproduces (see the header). */
export const CORE_DEFECTS = {
  'dead-thread-lock':
    'core-bugs.txt [S2]: a thread terminated inside a control operation leaves a lock held for good',
  'dead-thread-op-leak':
    'core-bugs.txt [S2]: a thread terminated inside an operation (kill, create, receive, ...) leaves slots, nodes or heap behind',
} as const;
type CoreDefect = keyof typeof CORE_DEFECTS;

interface Tally {
  counts: Record<string, number>;
  faults: number;
  defects: Record<string, number>;
  notes: string[];
}

class Probe {
  readonly tally: Tally = { counts: {}, faults: 0, defects: {}, notes: [] };

  constructor(
    readonly ctx: RoundContext,
    readonly prng: Prng,
  ) {}

  count(kind: string, n = 1): void {
    this.tally.counts[kind] = (this.tally.counts[kind] ?? 0) + n;
  }

  fault(kind: string): void {
    this.count(kind);
    this.tally.faults++;
  }

  /** A known defect reproduced: a violation under --strict, else counted (with its first detail noted). */
  defect(name: CoreDefect, detail: string): void {
    if (this.ctx.strict) fail(`known defect ${name}`, `${CORE_DEFECTS[name]}: ${detail}`);
    if (this.tally.defects[name] === undefined) this.tally.notes.push(`${name}: ${detail}`);
    this.tally.defects[name] = (this.tally.defects[name] ?? 0) + 1;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.prng.int(0, items.length - 1)]!;
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.prng.next() & 255;
    return out;
  }
}

export const coreFaults: Scenario = {
  name: 'core-faults',
  async round(ctx: RoundContext): Promise<RoundResult> {
    const probe = new Probe(ctx, new Prng(ctx.seed));
    const probes: [string, (p: Probe) => Promise<void> | void][] = [
      ['exhaustion', exhaustion],
      ['handles', handles],
      ['records', records],
      ['ring-headers', ringHeaders],
      ['codec', codec],
      ['thread-death', threadDeath],
    ];
    for (let i = probes.length - 1; i > 0; i--) {
      const k = probe.prng.int(0, i);
      [probes[i], probes[k]] = [probes[k]!, probes[i]!];
    }
    for (const [name, run] of probes) {
      ctx.check();
      if (process.env.STRESS_PROBE !== undefined && process.env.STRESS_PROBE !== name) continue;
      try {
        await run(probe);
      } catch (error) {
        if (error instanceof Failure) throw new Failure(`${name}: ${error.message}`);
        throw new Error(
          `${name}: unexpected ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
        );
      }
    }
    return {
      counts: probe.tally.counts,
      faults: probe.tally.faults,
      defects: probe.tally.defects,
      note:
        probe.tally.notes.length > 0
          ? `first of each known defect: ${probe.tally.notes.join(' | ')}`
          : undefined,
    };
  },
};

// ---------------------------------------------------------------- exhaustion

const SMALL: Required<Omit<PostOfficeOptions, 'maxThreads'>> & { maxThreads: number } = {
  maxThreads: 8,
  maxRoutes: 256,
  maxGroups: 256,
  maxTables: 64,
  maxCapabilities: 2048,
  maxNodes: 2048,
  heapBytes: 1 << 20,
  mailboxCapacity: 1024,
  maxMessageBytes: 64 << 10,
};

/** Sizes that make `region` the one to run out first. */
function sizesFor(region: string): PostOfficeOptions {
  switch (region) {
    case 'routes':
      return { ...SMALL, maxRoutes: 48 };
    case 'groups':
      return { ...SMALL, maxGroups: 40 };
    case 'tables':
      return { ...SMALL, maxTables: 12 };
    case 'capabilities':
      return { ...SMALL, maxCapabilities: 96 };
    case 'nodes':
      return { ...SMALL, maxNodes: 80 };
    default:
      return { ...SMALL, heapBytes: 256 << 10 };
  }
}

/** Runs `f`, which must throw CapacityExceeded(region) and change nothing; returns the error. */
function expectFull(office: PostOffice, region: Region, what: string, f: () => unknown): void {
  const before = office.stats();
  try {
    f();
  } catch (error) {
    if (!(error instanceof CapacityExceeded)) {
      fail(
        'capacity',
        `${what}: threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`,
      );
    }
    if (error.region !== region)
      fail('capacity', `${what}: CapacityExceeded names '${error.region}', not '${region}'`);
    const diff = compareStats(office.stats(), before);
    if (diff !== undefined) fail('capacity', `${what}: the refused call changed the office: ${diff}`);
    return;
  }
  fail('capacity', `${what}: did not throw`);
}

/** Fills until CapacityExceeded: returns how many `make` calls succeeded. */
function fillUntilFull(
  office: PostOffice,
  region: Region,
  what: string,
  make: () => unknown,
  max = 1 << 16,
): number {
  for (let n = 0; n < max; n++) {
    const before = office.stats();
    try {
      make();
    } catch (error) {
      if (!(error instanceof CapacityExceeded)) throw error;
      if (error.region !== region) {
        fail(
          'capacity',
          `${what}: CapacityExceeded names '${error.region}' after ${n}, expected '${region}'`,
        );
      }
      const diff = compareStats(office.stats(), before);
      if (diff !== undefined) fail('capacity', `${what}: the refused call changed the office: ${diff}`);
      return n;
    }
  }
  fail('capacity', `${what}: ${max} made without running out`);
}

function checkWorks(t: Table, h: number, mb: Mailbox, what: string): void {
  const body = new Uint8Array([7, 7, 7]);
  if (!t.send(h, body)) fail('capacity', `${what}: a small message no longer fits an empty ring`);
  const s = mb.tryReceive();
  if (s?.kind !== 'message' || s.data.length !== 3 || s.data[0] !== 7) {
    fail('capacity', `${what}: a message sent while full came back as ${s?.kind ?? 'nothing'}`);
  }
}

async function exhaustion(p: Probe): Promise<void> {
  const regions = ['routes', 'groups', 'tables', 'capabilities', 'nodes', 'heap-rings', 'heap-bodies'];
  for (const region of regions) {
    try {
      await exhaust(p, region);
    } catch (error) {
      if (error instanceof Failure) throw error;
      fail(
        'capacity',
        `${region}: unexpected ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
      );
    }
  }
}

async function exhaust(p: Probe, region: string): Promise<void> {
  {
    const office = PostOffice.create(sizesFor(region));
    const baseline = office.stats();
    const bitmaps = snapshotBitmaps(office.buffer);
    const t = office.createTable();
    for (let cycle = 0; cycle < 2; cycle++) {
      // A pair made before the fill: it must keep working while the region is full.
      const pairGroup = t.createGroup();
      const pair = pairGroup.createMailbox({ capacity: 256 });
      const pairHandle = pair.export(Perm.SEND);
      const undo: (() => void)[] = [];
      const what = `${region} (cycle ${cycle})`;
      switch (region) {
        case 'routes': {
          const g = t.createGroup();
          const boxes: Mailbox[] = [];
          undo.push(() => {
            for (const m of boxes) m.close();
            g.release();
          });
          const n = fillUntilFull(office, 'routes', what, () =>
            boxes.push(g.createMailbox({ capacity: 256 })),
          );
          if (office.stats().routes !== office.stats().capacity.routes) {
            fail(
              'capacity',
              `${what}: full after ${n}, with ${office.stats().routes} of ${office.stats().capacity.routes} routes used`,
            );
          }
          p.count('routesFilled', n);
          break;
        }
        case 'groups': {
          const made: Group[] = [];
          const n = fillUntilFull(office, 'groups', what, () => made.push(t.createGroup()));
          if (office.stats().groups !== office.stats().capacity.groups)
            fail('capacity', `${what}: full before every slot was used`);
          expectFull(office, 'groups', `${what}: one more`, () => t.createGroup());
          undo.push(() => {
            for (const g of made) g.release();
          });
          p.count('groupsFilled', n);
          break;
        }
        case 'tables': {
          const made: Table[] = [];
          const n = fillUntilFull(office, 'tables', what, () => made.push(office.createTable()));
          if (office.stats().tables !== office.stats().capacity.tables)
            fail('capacity', `${what}: full before every slot was used`);
          undo.push(() => {
            for (const x of made) x.close();
          });
          p.count('tablesFilled', n);
          break;
        }
        case 'capabilities': {
          // A message with two capabilities waits in a mailbox of `t`, sent from another table.
          const other = office.createTable();
          const inbox = pairGroup.createMailbox({ capacity: 1024 });
          const toInbox = other.importOwned(t.toOwned(inbox.export(Perm.SEND)));
          const gifts = [other.createGroup().createMailbox().export(Perm.SEND), pairHandle];
          const giftA = gifts[0]!;
          other.send(toInbox, new Uint8Array([1]), [giftA, giftA]);
          const made: number[] = [];
          const n = fillUntilFull(office, 'capabilities', what, () => made.push(pair.export(Perm.SEND)));
          if (office.stats().capabilities !== office.stats().capacity.capabilities)
            fail('capacity', `${what}: full before every entry was used`);
          // The receive cannot import: it throws, and the message stays for later.
          expectFull(office, 'capabilities', `${what}: receive of a message with capabilities`, () =>
            inbox.tryReceive(),
          );
          t.release(made.pop()!);
          t.release(made.pop()!);
          const s = inbox.tryReceive();
          if (s?.kind !== 'message' || s.caps.length !== 2) {
            fail(
              'capacity',
              `${what}: the message refused while full came back as ${s?.kind ?? 'nothing'} (${s?.kind === 'message' ? s.caps.length : '-'} capabilities)`,
            );
          }
          for (const h of s.caps) t.release(h);
          undo.push(() => {
            for (const h of made) t.release(h);
            other.close();
            inbox.close();
          });
          p.count('capabilitiesFilled', n);
          break;
        }
        case 'nodes': {
          const watched = t.createGroup();
          const watchedBox = watched.createMailbox({ capacity: 256 });
          const target = watchedBox.export(Perm.MONITOR | Perm.LINK);
          const made: number[] = [];
          const n = fillUntilFull(office, 'nodes', what, () => made.push(t.monitor(target, pair)));
          // One node free: a link needs two, and must roll back.
          if (!t.demonitor(made.pop()!))
            fail('capacity', `${what}: demonitor of a live monitor returned false`);
          const third = t.createGroup();
          expectFull(office, 'nodes', `${what}: a link with one node left`, () => t.link(target, third));
          undo.push(() => {
            for (const id of made) t.demonitor(id);
            t.release(target);
            third.release();
            watchedBox.close();
            watched.release();
          });
          p.count('nodesFilled', n);
          break;
        }
        case 'heap-rings': {
          const g = t.createGroup();
          const boxes: Mailbox[] = [];
          const n = fillUntilFull(office, 'heap', what, () =>
            boxes.push(g.createMailbox({ capacity: 16384 })),
          );
          undo.push(() => {
            for (const m of boxes) m.close();
            g.release();
          });
          p.count('ringsFilled', n);
          break;
        }
        default: {
          // Out-of-line bodies wait in the heap until received: a receiver that does not read fills it.
          const bigGroup = t.createGroup();
          const big = bigGroup.createMailbox({ capacity: 4096 });
          const h = big.export(Perm.SEND);
          const bodies: Uint8Array[] = [];
          const n = fillUntilFull(office, 'heap', what, () => {
            const body = p.bytes(p.prng.int(8 << 10, 32 << 10));
            if (!t.send(h, body)) fail('capacity', `${what}: the ring filled before the heap`);
            bodies.push(body);
          });
          // Nothing corrupted: every body comes back whole, in order.
          for (const [k, body] of bodies.entries()) {
            const s = big.tryReceive();
            if (
              s?.kind !== 'message' ||
              s.data.length !== body.length ||
              s.data.some((b, i) => b !== body[i])
            ) {
              fail(
                'capacity',
                `${what}: body ${k} of ${bodies.length} came back ${s?.kind === 'message' ? 'altered' : (s?.kind ?? 'missing')}`,
              );
            }
          }
          undo.push(() => {
            t.release(h);
            big.close();
            bigGroup.release();
          });
          p.count('bodiesFilled', n);
        }
      }
      checkWorks(t, pairHandle, pair, `${what}: while full`);
      for (const u of undo.reverse()) u();
      t.release(pairHandle);
      pair.close();
      pairGroup.release();
      // Back: as empty as before, and the region can be filled again (next cycle).
      p.fault('exhausted');
    }
    t.close();
    office.idle();
    const diff = compareStats(office.stats(), baseline);
    if (diff !== undefined) fail('leak', `${region}: stats() after letting everything go differs: ${diff}`);
    const scan = scanOffice(office.buffer, bitmaps);
    if (scan.length > 0) fail('scan', `${region}: ${scan.slice(0, 5).join('; ')}`);
    office.detach();
  }
}

// ---------------------------------------------------------------- handles

function handles(p: Probe): void {
  const office = PostOffice.create(SMALL);
  const elsewhere = PostOffice.create(SMALL);
  const baseline = office.stats();
  const t = office.createTable();
  const t2 = office.createTable();
  const t3 = elsewhere.createTable();
  const g = t.createGroup();
  const mb = g.createMailbox({ capacity: 1024 });
  const live = mb.export(Perm.ALL);
  const liveSet = new Set<number>([live]);
  const released: number[] = [];
  for (let k = 0; k < 4; k++) {
    const h = mb.export(Perm.SEND);
    t.release(h);
    released.push(h);
  }
  const otherTable = t2.createGroup().createMailbox().export(Perm.ALL);
  const otherOffice = t3.createGroup().createMailbox().export(Perm.ALL);
  const STEP = 2 ** 22;
  const bad: [string, number][] = [
    ['NaN', Number.NaN],
    ['-1', -1],
    ['0', 0],
    ['1.5', 1.5],
    ['2^60', 2 ** 60],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['-Infinity', Number.NEGATIVE_INFINITY],
    ['-0', -0],
    ['a random integer', p.prng.int(1, 2 ** 31)],
    ['a random double', p.prng.float() * 2 ** 40],
    ['released', p.pick(released)],
    ['a released handle, another generation', p.pick(released) + STEP * p.prng.int(1, 5)],
    ['a live handle, a later generation', live + STEP * p.prng.int(1, 5)],
    ['a live handle, an earlier generation', live - STEP],
    ['a live handle, the next slot', live + 1],
    ['a live handle, the slot before', live - 1],
    ['a forged id', STEP * p.prng.int(1, 1000) + p.prng.int(0, 2047)],
    ['another table', otherTable],
    ['another office', otherOffice],
  ];
  const ops: [string, (h: number) => unknown][] = [
    ['send', (h) => t.send(h, new Uint8Array(4))],
    ['send carrying it', (h) => t.send(live, new Uint8Array(4), [h])],
    ['kill', (h) => t.kill(h)],
    ['monitor', (h) => t.monitor(h, mb)],
    ['link', (h) => t.link(h, g)],
    ['demote', (h) => t.demote(h, Perm.SEND)],
    ['release', (h) => t.release(h)],
    ['permissions', (h) => t.permissions(h)],
    ['toOwned', (h) => t.toOwned(h)],
    ['sameRoute', (h) => t.sameRoute(h, live)],
  ];
  for (const [name, h] of bad) {
    if (liveSet.has(h)) continue;
    for (const [op, f] of ops) {
      const before = office.stats();
      const size = t.size;
      let threw: unknown = null;
      try {
        f(h);
      } catch (error) {
        threw = error;
      }
      if (!(threw instanceof PostOfficeError)) {
        // ...a forged number that happens to name a live entry of this table is a handle, not a forgery.
        if (threw === null && name.startsWith('a ') && !name.includes('another')) {
          p.count('forgedHit');
          continue;
        }
        fail(
          'handles',
          `${op} on ${name} (${h}) ${threw === null ? 'succeeded' : `threw ${(threw as Error).name}: ${(threw as Error).message}`}`,
        );
      }
      // Drain what a successful monitor of our own mailbox could have queued (none expected).
      const diff = compareStats(office.stats(), before);
      if (diff !== undefined || t.size !== size)
        fail('handles', `${op} on ${name}: refused but changed the office: ${diff}`);
      p.fault('badHandle');
    }
  }
  // Unknown monitor and link ids: false, nothing happens.
  if (t.demonitor(12345) || t.unlink(STEP + 7) || t.demonitor(Number.NaN))
    fail('handles', 'an unknown id was accepted');
  // Owned tokens: used, forged, of another office.
  const token = t.toOwned(live);
  const used: OwnedCapability = token;
  t2.release(t2.importOwned(token));
  const forgedTokens: [string, unknown][] = [
    ['a used token', used],
    ['a forged token', { ...(used as object), token: (used as { token: number }).token + STEP }],
    ['a token of garbage', { token: Number.NaN }],
    ['null', null],
    ['another office’s token', t3.toOwned(otherOffice)],
  ];
  for (const [name, tok] of forgedTokens) {
    const before = office.stats();
    try {
      t.importOwned(tok as OwnedCapability);
      fail('handles', `importOwned of ${name} succeeded`);
    } catch (error) {
      if (error instanceof Failure) throw error;
      if (!(error instanceof PostOfficeError))
        fail('handles', `importOwned of ${name} threw ${(error as Error).name}`);
    }
    if (compareStats(office.stats(), before) !== undefined)
      fail('handles', `importOwned of ${name} changed the office`);
    p.fault('badToken');
  }
  // Sizes: exactly the maximum is delivered whole; one byte more is MessageTooLarge.
  const max = office.stats().capacity.maxMessageBytes;
  const big = t.createGroup().createMailbox({ capacity: 4096 });
  const toBig = big.export(Perm.SEND);
  const body = p.bytes(max);
  if (!t.send(toBig, body)) fail('size', 'a message of exactly the maximum did not fit an empty mailbox');
  const s = big.tryReceive();
  if (s?.kind !== 'message' || s.data.length !== max || s.data.some((b, i) => b !== body[i])) {
    fail('size', 'a message of exactly the maximum came back altered');
  }
  const before = office.stats();
  try {
    t.send(toBig, new Uint8Array(max + 1));
    fail('size', 'a message one byte over the maximum was accepted');
  } catch (error) {
    if (error instanceof Failure) throw error;
    if (!(error instanceof MessageTooLarge)) fail('size', `oversize threw ${(error as Error).name}`);
  }
  if (compareStats(office.stats(), before) !== undefined)
    fail('size', 'a refused oversize send changed the office');
  p.fault('oversize');
  t.close();
  t2.close();
  t3.close();
  office.idle();
  const diff = compareStats(office.stats(), baseline);
  if (diff !== undefined) fail('leak', `handles: stats() differs after closing every table: ${diff}`);
  office.detach();
  elsewhere.detach();
}

// ---------------------------------------------------------------- forged mailbox records

const REC_PLAIN = 1;
const REC_CAPS = 2;
const REC_LARGE = 3;
const REC_NUDGE = 4;

function records(p: Probe): void {
  const trials = Math.round(40 * p.ctx.scale);
  for (let trial = 0; trial < trials; trial++) {
    // A fresh small office each time: a forged record the post office accepts may corrupt it.
    const office = PostOffice.create({ ...SMALL, heapBytes: 256 << 10, maxMessageBytes: 16 << 10 });
    const t = office.createTable();
    const mb = t.createGroup().createMailbox({ capacity: 2048 });
    const self = mb.export(Perm.SEND);
    const r = p.prng.int(0, 9);
    const type =
      r < 2 ? REC_PLAIN : r < 5 ? REC_CAPS : r < 7 ? REC_LARGE : r < 8 ? REC_NUDGE : p.prng.int(5, 255);
    const payload = p.bytes(p.prng.int(0, 160));
    const view = new DataView(payload.buffer);
    let wellFormed = type === REC_PLAIN || type === REC_NUDGE;
    if (type === REC_CAPS && payload.length >= 4) {
      // The count: 0 (well formed), small, or garbage; the triples: garbage, or a real route with a wrong generation.
      const count = p.pick([0, 0, 1, 2, -1, 1 << 20, p.prng.next() | 0]);
      view.setInt32(0, count, true);
      if (count === 0) wellFormed = true;
      if (count > 0 && payload.length >= 16 && p.prng.int(0, 1) === 0)
        view.setInt32(4, p.prng.int(0, 4), true);
    }
    if (type === REC_LARGE && payload.length >= 12) {
      const ways = [p.prng.next() | 0, -64, office.buffer.byteLength - 8, 1 << 30];
      view.setInt32(0, p.pick(ways), true);
      view.setInt32(4, p.pick([0, 8, 1 << 20, -1, p.prng.next() | 0]), true);
      view.setInt32(8, p.pick([0, 1, -1, 1 << 24]), true);
    }
    const ring = mb.ring;
    if (!ring.tryWrite(office.o.producer, type, payload))
      fail('records', 'a forged record did not fit an empty ring');
    const label =
      type > REC_NUDGE ? `type ${type}` : ['', 'plain', 'capabilities', 'out-of-line', 'nudge'][type]!;
    let outcome: 'delivered' | 'skipped' | 'typed' | 'untyped' = 'skipped';
    let detail = '';
    try {
      const s = p.prng.int(0, 1) === 0 ? mb.tryReceive() : mb.tryReceiveInPlace();
      if (s !== null) {
        outcome = 'delivered';
        detail = s.kind;
        if (s.kind === 'message') for (const h of [...s.caps]) detail += ` cap ${h}`;
      }
    } catch (error) {
      outcome = error instanceof PostOfficeError || error instanceof RingError ? 'typed' : 'untyped';
      detail = `${(error as Error).name}: ${(error as Error).message}`;
    }
    // Keeps working: a real message sent now arrives (after at most the forged one again).
    let works = false;
    let after = '';
    try {
      t.send(self, new Uint8Array([9, 9]));
      for (let k = 0; k < 3 && !works; k++) {
        try {
          const s = mb.tryReceive();
          works = s?.kind === 'message' && s.data.length === 2 && s.data[0] === 9;
        } catch (error) {
          after = `${(error as Error).name}: ${(error as Error).message}`;
        }
      }
    } catch (error) {
      after = `${(error as Error).name}: ${(error as Error).message}`;
    }
    const what = `a forged ${label} record (${payload.length} bytes)`;
    // Fixed in core (a3883dc): such records are skipped with CorruptRecord; anything else is a violation.
    if (outcome === 'untyped') fail('records', `${what}: receive threw ${detail}`);
    if (outcome === 'delivered' && type > REC_NUDGE) fail('records', `${what} was delivered as a ${detail}`);
    if (outcome === 'delivered' && !wellFormed) fail('records', `${what} was delivered (${detail})`);
    if (outcome === 'delivered' && type === REC_NUDGE)
      fail('records', `${what} was delivered as a ${detail}`);
    if (!works) {
      fail(
        'records',
        `${what}: ${detail || 'skipped'}; then a real message did not come (${after || 'nothing'})`,
      );
    } else p.count(outcome === 'delivered' ? 'recordsDelivered' : 'recordsRefused');
    p.fault('forgedRecord');
    // The office is thrown away: what a forged record did to it is not carried on.
    try {
      office.detach();
    } catch {
      // ...a corrupted office may not even detach cleanly; it is garbage either way.
    }
  }
}

// ---------------------------------------------------------------- ring headers

function ringHeaders(p: Probe): void {
  const trials = Math.round(60 * p.ctx.scale);
  for (let trial = 0; trial < trials; trial++) {
    const capacity = 1 << p.prng.int(7, 12);
    const maxRecordLength = p.prng.int(8, capacity / 4);
    const { ring, slots } = Ring.create({ capacity, maxRecordLength, maxProducers: 2 });
    const producer = slots.acquire();
    // Records before, so the corrupted one sits anywhere, wrapped or not.
    for (let k = p.prng.int(0, 20); k > 0; k--) {
      if (!ring.tryWrite(producer, 1, p.bytes(p.prng.int(0, maxRecordLength)))) break;
      if (p.prng.int(0, 1) === 0) {
        while (ring.peek() >= 0) ring.release();
      }
    }
    while (ring.peek() >= 0) ring.release();
    const at = ring.tryClaim(producer, 1, p.prng.int(0, maxRecordLength));
    if (at < 0) continue;
    ring.commit(producer);
    const headerWord = (at - RECORD_HEADER_BYTES) >> 2;
    const index = at - RECORD_HEADER_BYTES - (ring.byteOffset + RING_HEADER_BYTES);
    const toEnd = capacity - index;
    const length = p.pick([
      p.prng.next() & 0x7fffffff,
      maxRecordLength + p.prng.int(1, 64),
      toEnd - RECORD_HEADER_BYTES + p.prng.int(1, 64),
      p.prng.int(0, maxRecordLength),
      0x7ffffffe,
    ]);
    Atomics.store(ring.i32, headerWord, length + 1);
    const spaceEnd = ring.byteOffset + RING_HEADER_BYTES + capacity;
    try {
      const n = ring.peek();
      if (n >= 0 && ring.recordOffset + n > spaceEnd) {
        fail(
          'ring',
          `a record of ${n} bytes at ${ring.recordOffset} runs past the end of the ring (${spaceEnd})`,
        );
      }
      if (n > maxRecordLength)
        fail('ring', `a record of ${n} bytes over the maximum ${maxRecordLength} was handed out`);
      p.count('headersInBounds');
    } catch (error) {
      if (error instanceof Failure) throw error;
      if ((error as Error).name !== 'RingCorrupted') {
        fail(
          'ring',
          `a header of length ${length} threw ${(error as Error).name}: ${(error as Error).message}`,
        );
      }
      p.count('ringCorrupted');
    }
    p.fault('corruptHeader');
  }
}

// ---------------------------------------------------------------- the codec

interface Walked {
  refs: Ref[];
}

function walk(value: unknown, out: Walked, seen = new Set<unknown>(), depth = 0): void {
  if (value === null || typeof value !== 'object' || seen.has(value) || depth > 64) return;
  seen.add(value);
  if (value instanceof Ref) {
    out.refs.push(value);
    return;
  }
  if (value instanceof Map) {
    for (const [k, v] of value) {
      walk(k, out, seen, depth + 1);
      walk(v, out, seen, depth + 1);
    }
    return;
  }
  if (value instanceof Set) {
    for (const v of value) walk(v, out, seen, depth + 1);
    return;
  }
  if (ArrayBuffer.isView(value)) return;
  for (const v of Object.values(value as object)) walk(v, out, seen, depth + 1);
  const request = value as { replyTo?: unknown };
  if (request.replyTo instanceof Ref) walk(request.replyTo, out, seen, depth + 1);
}

function randomValue(p: Probe, refs: Ref[], depth = 0): unknown {
  switch (p.prng.int(0, depth > 3 ? 5 : 9)) {
    case 0:
      return p.prng.int(-1000, 1000);
    case 1:
      return p.prng.float() * 1e6;
    case 2:
      return 'x'.repeat(p.prng.int(0, 40));
    case 3:
      return p.prng.int(0, 1) === 0;
    case 4:
      return refs.length > 0 ? p.pick(refs) : null;
    case 5:
      return BigInt(p.prng.next());
    case 6:
      return Array.from({ length: p.prng.int(0, 4) }, () => randomValue(p, refs, depth + 1));
    case 7:
      return Object.fromEntries(
        Array.from({ length: p.prng.int(0, 4) }, (_, k) => [`k${k}`, randomValue(p, refs, depth + 1)]),
      );
    case 8:
      return new Set([p.prng.int(0, 9)]);
    default:
      return p.bytes(p.prng.int(0, 16));
  }
}

/** Random bytes, or an encoding of a random value (with Refs) with a few bytes flipped, cut or inserted. */
function junk(p: Probe, t: Table, refs: Ref[]): Uint8Array {
  if (p.prng.int(0, 2) === 0) return p.bytes(p.prng.int(0, 64));
  const { bytes } = encode(t, randomValue(p, refs));
  const out = Array.from(bytes);
  for (let k = p.prng.int(1, 4); k > 0; k--) {
    const at = p.prng.int(0, Math.max(0, out.length - 1));
    const how = p.prng.int(0, 2);
    if (how === 0) out[at] = p.prng.next() & 255;
    else if (how === 1) out.splice(at, 1);
    else out.splice(at, 0, p.prng.next() & 255);
  }
  return new Uint8Array(out);
}

async function codec(p: Probe): Promise<void> {
  // Direct: decode's contract. A value or DecodeError; a value names each capability once, or leaves it unused.
  const office = PostOffice.create(SMALL);
  const baseline = office.stats();
  const t = office.createTable();
  const mb = t.createGroup().createMailbox();
  const trials = Math.round(300 * p.ctx.scale);
  for (let trial = 0; trial < trials; trial++) {
    const caps = Array.from({ length: p.prng.int(0, 4) }, () => mb.export(Perm.SEND));
    const encodeRefs = caps.map((h) => new Ref(t, h));
    const bytes = junk(p, t, encodeRefs);
    const pad = p.prng.int(0, 8);
    const framed = new Uint8Array(bytes.length + pad + p.prng.int(0, 8));
    framed.set(bytes, pad);
    const unused: number[] = [];
    let value: unknown;
    let threw: unknown = null;
    try {
      value = decode(t, framed, pad, bytes.length, caps, unused);
    } catch (error) {
      threw = error;
    }
    if (threw !== null && !(threw instanceof DecodeError)) {
      fail('codec', `decode threw ${(threw as Error).name}: ${(threw as Error).message} (not DecodeError)`);
    }
    if (threw === null) {
      const out: Walked = { refs: [] };
      walk(value, out);
      const named = out.refs.map((r) => Ref.handleOf(r));
      const all = [...named, ...unused].sort((a, b) => a - b);
      const want = [...caps].sort((a, b) => a - b);
      if (all.length !== want.length || all.some((h, i) => h !== want[i])) {
        fail(
          'codec',
          `a decoded value names ${named.length} capabilities and leaves ${unused.length} unused, of ${caps.length}`,
        );
      }
      p.count('decoded');
    } else p.count('decodeErrors');
    for (const h of caps) t.release(h);
    // decodePlain: same, without capabilities.
    try {
      decodePlain(p.bytes(p.prng.int(0, 32)));
    } catch (error) {
      if (!(error instanceof DecodeError)) fail('codec', `decodePlain threw ${(error as Error).name}`);
    }
    p.fault('junkDecoded');
  }
  t.close();
  office.idle();
  const diff = compareStats(office.stats(), baseline);
  if (diff !== undefined) fail('leak', `codec: stats() differs: ${diff}`);
  office.detach();
  // Through a process: junk (with capabilities) forged into the mailbox of a process on a scheduler
  // worker, each followed by a marker: the junk is skipped, every receive keeps working. (Not the
  // host process: what goes wrong there would stay with this thread, see runtime-bugs.txt S4.)
  const runtime = await Runtime.start({ workers: 1 });
  try {
    const baselineRuntime = runtime.stats();
    const host = runtime.host;
    const { ref: eater, monitor } = await runtime.spawnMonitor(EATER, 'eater', [host.self], {
      worker: 0,
      mailboxCapacity: 1 << 14,
    });
    const table = Ref.tableOf(eater)!;
    const h = Ref.handleOf(eater);
    const sends = Math.round(60 * p.ctx.scale);
    for (let k = 0; k < sends; k++) {
      const caps = Array.from({ length: p.prng.int(0, 3) }, () => table.demote(h, Perm.SEND));
      const bytes = junk(
        p,
        table,
        caps.map((c) => new Ref(table, c)),
      );
      await table.sendWhenRoom(h, bytes, caps, { timeoutMs: 5000 });
      for (const c of caps) table.release(c);
      // The marker: its report says what the junk did. A marker can be lost to the defect below;
      // then another is sent (a lost ordinary message is part of what is reported).
      const errors: string[] = [];
      let delivered = 0;
      let answered = false;
      for (let attempt = 0; attempt < 5 && !answered; attempt++) {
        runtime.send(eater, { mark: k * 8 + attempt });
        const until = performance.now() + 500;
        while (!answered && performance.now() < until) {
          let got: { mark?: number; errors: string[]; delivered: number };
          try {
            got = (await runtime.receive({ timeout: Math.max(1, until - performance.now()) })) as typeof got;
          } catch (error) {
            if (error instanceof ReceiveTimeout) break;
            throw error;
          }
          if (isDown(got) && got.monitor === monitor) {
            fail(
              'codec',
              `the process fed junk died of ${JSON.stringify(got.reason)} (after ${k} junk messages)`,
            );
          }
          errors.push(...got.errors);
          delivered += got.delivered;
          answered = got.mark === k * 8 + attempt;
        }
        if (!answered) errors.push('an ordinary message (the marker) was lost');
      }
      if (!answered) fail('hang', `the junk eater did not answer five markers after junk message ${k}`);
      if (errors.length === 0) {
        p.count(delivered > 0 ? 'junkDelivered' : 'junkSkipped');
        continue;
      }
      fail(
        'codec',
        `receive of ${bytes.length} junk bytes with ${caps.length} capabilities: ${errors.join('; ')}`,
      );
    }
    runtime.kill(eater);
    host.drop(eater);
    for (;;) {
      const m = await runtime.receive({ timeout: 20 }).catch(() => null);
      if (m === null) break;
      if (isDown(m)) host.drop(m.ref);
    }
    const strip = (s: ReturnType<typeof runtime.stats>) => {
      const { capacity: _c, retired: _r, ...rest } = s;
      return JSON.stringify(rest);
    };
    const until = performance.now() + 5000;
    while (strip(runtime.stats()) !== strip(baselineRuntime)) {
      if (performance.now() > until)
        fail('leak', `after the junk: stats() ${strip(runtime.stats())}, baseline ${strip(baselineRuntime)}`);
      await sleep(20);
    }
  } finally {
    await runtime.shutdown();
  }
}

// ---------------------------------------------------------------- thread death

const STALL_MS = 3000;

function lockScan(buffer: SharedArrayBuffer): { what: string; holder: number; raw: number }[] {
  const i32 = new Int32Array(buffer);
  const out: { what: string; holder: number; raw: number }[] = [];
  for (const [p, bytes, word, name] of [
    [POOL_GROUPS, GROUP_BYTES, G_LOCK, 'group'],
    [POOL_ROUTES, ROUTE_BYTES, R_LOCK, 'route'],
  ] as const) {
    const bitmap = i32[H_POOLS + 3 * p]! >> 2;
    const slots = i32[H_POOLS + 3 * p + 1]! >> 2;
    const count = i32[H_POOLS + 3 * p + 2]!;
    for (let s = 0; s < count; s++) {
      if ((Atomics.load(i32, bitmap + (s >> 5)) & (1 << (s & 31))) === 0) continue;
      const v = Atomics.load(i32, slots + s * (bytes >> 2) + word);
      // With holder tags (lock.ts): the low 17 bits are the holder's producer slot + 1.
      if (v !== 0) out.push({ what: `${name} ${s}`, holder: (v & 0x1ffff) - 1, raw: v });
    }
  }
  return out;
}

async function threadDeath(p: Probe): Promise<void> {
  for (let k = Math.max(1, Math.round(2 * p.ctx.scale)); k > 0; k--) await oneThreadDeath(p);
}

async function oneThreadDeath(p: Probe): Promise<void> {
  const workers = Math.max(3, Math.min(p.ctx.workers, 4));
  const office = PostOffice.create({
    ...SMALL,
    maxThreads: 16,
    maxRoutes: 1024,
    maxGroups: 512,
    maxNodes: 8192,
    maxCapabilities: 8192,
  });
  const baseline = office.stats();
  const control = new SharedArrayBuffer((CTRL_WORKER + 4 * 8) * 4);
  const ctrl = new Int32Array(control);
  const entry = new URL('./core-faults.worker.ts', import.meta.url).href;
  const shim = new URL('../ring/test/ts-worker.mjs', import.meta.url);
  const threads: Worker[] = [];
  const inboxes: DeathToMain[][] = [];
  const errors: string[] = [];
  for (let i = 0; i < workers; i++) {
    const w = new Worker(shim, {
      workerData: { buffer: office.buffer, control, index: i, workers, seed: p.prng.next(), entry },
    });
    inboxes.push([]);
    w.on('message', (m: DeathToMain) => {
      if (m.kind === 'error') errors.push(`worker ${i}: ${m.message}`);
      else inboxes[i]!.push(m);
    });
    w.on('error', (e) => errors.push(`worker ${i} crashed: ${e.message}`));
    threads.push(w);
  }
  const awaitMessage = async (i: number, kind: DeathToMain['kind']) => {
    const deadline = performance.now() + 20_000;
    for (;;) {
      if (errors.length > 0) fail('thread-death', errors[0]!);
      const k = inboxes[i]!.findIndex((m) => m.kind === kind);
      if (k >= 0) return inboxes[i]!.splice(k, 1)[0]!;
      if (performance.now() > deadline) fail('hang', `worker ${i} did not report ${kind}`);
      await sleep(2);
    }
  };
  let clean = false;
  try {
    const ready = [];
    for (let i = 0; i < workers; i++)
      ready.push((await awaitMessage(i, 'ready')) as Extract<DeathToMain, { kind: 'ready' }>);
    for (let i = 0; i < workers; i++) {
      const tokens = ready.flatMap((r) => r.tokens[i]!);
      threads[i]!.postMessage({ kind: 'peers', tokens } satisfies DeathFromMain);
    }
    for (let i = 0; i < workers; i++) await awaitMessage(i, 'imported');
    await sleep(p.prng.int(20, 200));
    const victim = p.prng.int(0, workers - 1);
    const beats = (i: number) => Atomics.load(ctrl, CTRL_WORKER + 4 * i + W_BEAT);
    await threads[victim]!.terminate();
    const op = OPS[Atomics.load(ctrl, CTRL_WORKER + 4 * victim + W_OP)] ?? '?';
    p.fault('threadKilled');
    p.count(`killedIn_${op}`);
    const { slot, generation } = ready[victim]!.thread;
    // Locks the dead thread holds now, before recovery looks at them.
    const heldAtDeath = lockScan(office.buffer).filter(
      (l) => l.holder === slot || l.raw === 1 || l.raw === 2,
    );
    office.markThreadDead(slot, generation, { code: 99 });
    // The survivors must keep going.
    const survivors = threads.map((_, i) => i).filter((i) => i !== victim);
    const start = survivors.map(beats);
    const deadline = performance.now() + STALL_MS;
    let stuck: number[] = survivors;
    while (performance.now() < deadline) {
      stuck = survivors.filter((i, k) => beats(i) - start[k]! < 50);
      if (stuck.length === 0) break;
      await sleep(20);
    }
    if (errors.length > 0) fail('thread-death', errors[0]!);
    if (stuck.length > 0) {
      const held = lockScan(office.buffer);
      const describe = (l: { what: string; holder: number; raw: number }) =>
        `${l.what} (word ${l.raw}${l.raw > 2 ? `, holder thread slot ${l.holder}${l.holder === slot ? ' = the dead thread' : ''}` : ''})`;
      const stuckIn = stuck.map(
        (i) => `worker ${i} in ${OPS[Atomics.load(ctrl, CTRL_WORKER + 4 * i + W_OP)] ?? '?'}`,
      );
      const text = `thread slot ${slot} terminated in ${op}; ${STALL_MS} ms later ${stuckIn.join(', ')} made no progress; locks held: ${held.map(describe).join(', ') || 'none'}; held by it at death: ${heldAtDeath.map(describe).join(', ') || 'none seen'}`;
      if (held.length > 0) {
        p.defect('dead-thread-lock', text);
        return; // the office is abandoned (finally)
      }
      fail('hang', text);
    }
    // Stop: every survivor lets go of everything; the office must be as it was.
    Atomics.store(ctrl, CTRL_STOP, 1);
    Atomics.store(ctrl, CTRL_PAUSE, 0);
    for (const i of survivors) threads[i]!.postMessage({ kind: 'finish' } satisfies DeathFromMain);
    for (const i of survivors) p.count('threadOps', ((await awaitMessage(i, 'done')) as { ops: number }).ops);
    await sleep(5);
    office.idle();
    const until = performance.now() + 2000;
    for (;;) {
      const diff = compareStats(office.stats(), baseline);
      if (diff === undefined) break;
      if (performance.now() > until) {
        const census = describeNewSlots(office.buffer, { routes: new Set(), groups: new Set() }, 6);
        const text = `thread slot ${slot} terminated in ${op}: once the others let go, stats() differs: ${diff}; ${census.join('; ')}`;
        // Death between operations or in a plain send is recovered (core/README); elsewhere not yet.
        if (op === 'idle' || op === 'send') fail('leak', text);
        p.defect('dead-thread-op-leak', text);
        return; // the office is abandoned (finally)
      }
      await sleep(20);
    }
    const locks = lockScan(office.buffer);
    if (locks.length > 0)
      fail('lock', `after the round: ${locks.map((l) => l.what).join(', ')} still locked`);
    clean = true;
  } finally {
    Atomics.store(ctrl, CTRL_STOP, 1);
    Atomics.store(ctrl, CTRL_PAUSE, 0);
    await Promise.all(threads.map((w) => w.terminate()));
    if (clean) office.detach();
  }
}
