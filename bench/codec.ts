/**
 * `codec`: "measure before choosing" the runtime's message codec. One
 * thread, tinybench, a round trip (encode, then decode) of the same four
 * values with each candidate:
 *
 * - msgpackr, imported and configured as runtime/codec.ts does it (the
 *   pure-JS build, 'msgpackr/pack': the native string extractor crashes on
 *   bytes in a SharedArrayBuffer; useRecords false, moreTypes true,
 *   copyBuffers true): `pack` returns a view of the Packr's reused buffer,
 *   `unpack` reads it;
 * - v8.serialize / v8.deserialize (the structured-clone wire format, what
 *   postMessage uses): `serialize` allocates a fresh Buffer per call;
 * - JSON.stringify + TextEncoder.encode, then TextDecoder.decode +
 *   JSON.parse (one fresh Uint8Array per encode);
 * - and, for reference, what the runtime runs: runtime/codec.ts's encode and
 *   decode (a hand-written fast path for small ints and short ASCII strings,
 *   else msgpackr), decoding in place from a SharedArrayBuffer the bytes are
 *   copied into first, as they would be in a mailbox ring.
 *
 * The values: a small int, a short string, a small object
 * ({ id, name, tags: [...] }) and an object of about 1 KiB. Each round trip
 * is checked against the original once before timing (a codec that loses
 * data must fail rather than win). Figures are ns per round trip: the
 * tinybench median of batches of BATCH round trips, in each of ROUNDS runs
 * of every task, and the median over the runs.
 */

import { deepStrictEqual } from 'node:assert';
import v8 from 'node:v8';
import { Packr } from 'msgpackr/pack';
import { Bench } from 'tinybench';
import { PostOffice, type Table } from '../core/index.ts';
import { decode, encode } from '../runtime/codec.ts';
import { formatNs, median } from './stats.ts';

/** Round trips per task call, so the timer's own cost disappears in the division. */
const BATCH = 100;

/** The candidates the choice was between. */
export const CANDIDATES = ['msgpackr', 'v8.serialize', 'JSON + TextEncoder'] as const;
/** What the runtime runs: runtime/codec.ts's encode and decode (its small-value fast path, else msgpackr). */
export const RUNTIME_CODEC = 'runtime/codec.ts';
export const CODECS = [...CANDIDATES, RUNTIME_CODEC] as const;
export type CodecName = (typeof CODECS)[number];

/** The codec runtime/codec.ts uses: the figure the others are compared with. */
export const CODEC_REFERENCE: CodecName = 'msgpackr';

export interface CodecValue {
  readonly name: string;
  readonly value: unknown;
}

export interface CodecPoint {
  readonly codec: CodecName;
  readonly value: string;
  /** Median ns per encode + decode. */
  readonly nsPerRoundTrip: number;
  /** Encoded size in bytes. */
  readonly bytes: number;
  readonly samples: number;
}

export interface CodecReport {
  readonly points: readonly CodecPoint[];
  /** Per codec: geometric mean of its ns per round trip over the four values. */
  readonly geomean: Readonly<Record<CodecName, number>>;
}

export interface CodecSettings {
  /** tinybench time budget per task, ms. */
  readonly timeMs: number;
  readonly log: (line: string) => void;
}

/** About 1 KiB as MessagePack: a record with a nested list, the size of a typical "larger" message. */
function kibObject(): unknown {
  const items = [];
  for (let i = 0; i < 18; i++) {
    items.push({ sku: `item-${1000 + i}`, qty: i + 1, price: 9.5 + i, tags: ['a', 'bb'] });
  }
  return {
    id: 123456,
    kind: 'order',
    customer: { name: 'Ada Lovelace', email: 'ada@example.org', vip: true },
    items,
    note: 'leave at the door, ring twice',
  };
}

export const CODEC_VALUES: readonly CodecValue[] = [
  { name: 'small int (42)', value: 42 },
  { name: "short string ('hello, world')", value: 'hello, world' },
  { name: 'small object { id, name, tags }', value: { id: 7, name: 'alice', tags: ['admin', 'ops'] } },
  { name: '~1 KiB object', value: kibObject() },
];

interface Codec {
  readonly name: CodecName;
  encode(value: unknown): Uint8Array;
  decode(bytes: Uint8Array): unknown;
}

function codecs(table: Table): Codec[] {
  // The options of runtime/codec.ts (its Ref and Request extensions do not
  // touch these values; msgpackr registers extensions globally, so a value
  // without Refs costs the same with or without them).
  const packr = new Packr({ useRecords: false, moreTypes: true, copyBuffers: true });
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  return [
    { name: 'msgpackr', encode: (v) => packr.pack(v), decode: (b) => packr.unpack(b) },
    { name: 'v8.serialize', encode: (v) => v8.serialize(v), decode: (b) => v8.deserialize(b) },
    {
      name: 'JSON + TextEncoder',
      encode: (v) => encoder.encode(JSON.stringify(v)),
      decode: (b) => JSON.parse(decoder.decode(b)),
    },
    {
      name: RUNTIME_CODEC,
      encode: (v) => encode(table, v).bytes,
      decode: (b) => {
        // Sending copies the bytes into the receiver's ring; the receiver decodes them there.
        ring.set(b, RING_AT);
        return decode(table, ring, RING_AT, b.length, [], unused);
      },
    },
  ];
}

/** Where runtime/codec.ts's contender decodes: a SharedArrayBuffer, like a mailbox ring. */
const ring = new Uint8Array(new SharedArrayBuffer(1 << 16));
const RING_AT = 64;
const unused: number[] = [];

function geometricMean(values: readonly number[]): number {
  return Math.exp(values.reduce((a, v) => a + Math.log(v), 0) / values.length);
}

/** tinybench runs, each every task once: a task's figure is the median of its per-run medians. */
const ROUNDS = 5;

export async function runCodec(settings: CodecSettings): Promise<CodecReport> {
  // The runtime's codec takes a table (for Refs, which these values have none of).
  const office = PostOffice.create({ maxThreads: 2, heapBytes: 1 << 20 });
  const table = office.createTable();
  const tasks: { codec: CodecName; value: string; bytes: number; name: string; fn: () => void }[] = [];
  // A sink the results flow into, so no decode can be dropped as dead code.
  let sink = 0;
  for (const { name: valueName, value } of CODEC_VALUES) {
    for (const codec of codecs(table)) {
      const encoded = codec.encode(value);
      deepStrictEqual(codec.decode(encoded), value, `${codec.name} does not round-trip ${valueName}`);
      tasks.push({
        codec: codec.name,
        value: valueName,
        bytes: encoded.length,
        name: `${codec.name} / ${valueName}`,
        fn: () => {
          for (let i = 0; i < BATCH; i++) {
            const decoded = codec.decode(codec.encode(value));
            if (decoded !== null && decoded !== undefined) sink++;
          }
        },
      });
    }
  }
  // Rounds, each a tinybench run of every task (each value's codecs one after the other), so a
  // slow spell of this shared machine lands on every codec rather than on one.
  const perRound = new Map<string, number[]>(tasks.map((t) => [t.name, []]));
  const samples = new Map<string, number>(tasks.map((t) => [t.name, 0]));
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const bench = new Bench({
        time: settings.timeMs / ROUNDS,
        warmupTime: Math.min(50, settings.timeMs / ROUNDS / 2),
        throws: true,
      });
      for (const t of tasks) bench.add(t.name, t.fn);
      await bench.run();
      for (const t of tasks) {
        const r = bench.getTask(t.name)?.result;
        if (!r || !('latency' in r))
          throw new Error(`tinybench task ${t.name} did not complete (${r?.state})`);
        perRound.get(t.name)!.push((r.latency.p50 * 1e6) / BATCH);
        samples.set(t.name, samples.get(t.name)! + r.latency.samplesCount);
      }
    }
  } finally {
    table.close();
    office.detach();
  }
  if (sink === 0) throw new Error('codec: nothing decoded');
  const points: CodecPoint[] = tasks.map((t) => {
    const ns = median(perRound.get(t.name)!);
    settings.log(`codec             ${t.name.padEnd(52)} ${formatNs(ns).padStart(8)} (${t.bytes} B)`);
    return {
      codec: t.codec,
      value: t.value,
      nsPerRoundTrip: ns,
      bytes: t.bytes,
      samples: samples.get(t.name)!,
    };
  });
  const geomean = Object.fromEntries(
    CODECS.map((c) => [c, geometricMean(points.filter((p) => p.codec === c).map((p) => p.nsPerRoundTrip))]),
  ) as Record<CodecName, number>;
  return { points, geomean };
}
