// Records the post office never writes, forged straight into a mailbox's
// ring (as only a holder of the raw buffer could): each is skipped with a
// typed CorruptRecord, nothing it names is touched, and the mailbox goes on
// delivering what comes after it.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CorruptRecord, Perm, PostOffice, type PostOfficeStats, type Table } from '../index.ts';
import { REC_CAPS, REC_LARGE } from '../layout.ts';

let office: PostOffice;
let table: Table;
let baseline: PostOfficeStats;

beforeEach(() => {
  office = PostOffice.create({ maxRoutes: 64, maxGroups: 64, maxTables: 8, heapBytes: 1 << 20 });
  baseline = office.stats();
  table = office.createTable();
});

afterEach(() => {
  table.close();
  expect(office.stats()).toEqual(baseline);
});

function words(...values: number[]): Uint8Array {
  return new Uint8Array(new Int32Array(values).buffer);
}

describe('forged records', () => {
  it('are skipped with CorruptRecord, and the next message still arrives', () => {
    const box = table.createGroup().createMailbox();
    const h = box.export(Perm.SEND);
    const route = box.route;
    const generation = box.generation;
    const producer = office.o.producer;
    const forged: [number, Uint8Array][] = [
      [77, words(1, 2, 3)], // a type nobody writes
      [REC_CAPS, words(1_000_000)], // more capabilities than the record holds
      [REC_CAPS, words(-1, 0, 0)], // a negative count
      [REC_CAPS, words(1, 9999, 0, Perm.SEND)], // a route slot outside the pool
      [REC_CAPS, words(1, route, generation + 1, Perm.SEND)], // a past or future generation
      [REC_CAPS, words(1, route, generation, 1 << 20)], // unknown permission bits
      [REC_LARGE, words(0, 64, 0)], // a body outside the heap
      [REC_LARGE, words(office.o.heapStart, -5, 0)], // a negative length
      [REC_LARGE, words(office.o.heapStart, 1 << 30, 0)], // above the message limit
      [REC_LARGE, words(1)], // too short to be one
    ];
    for (const [type, payload] of forged) expect(box.ring.tryWrite(producer, type, payload)).toBe(true);
    expect(table.send(h, new Uint8Array([42]))).toBe(true);
    const before = office.stats();
    for (let i = 0; i < forged.length; i++) expect(() => box.tryReceive()).toThrow(CorruptRecord);
    const signal = box.tryReceive();
    expect(signal).toMatchObject({ kind: 'message', caps: [] });
    expect(Array.from((signal as { data: Uint8Array }).data)).toEqual([42]);
    // Nothing a forged record named was taken or freed.
    expect(office.stats()).toEqual(before);
    table.release(h);
    box.close();
  });

  it('do not stop a well-formed message with capabilities behind them', () => {
    const box = table.createGroup().createMailbox();
    const other = table.createGroup().createMailbox();
    const h = box.export(Perm.SEND);
    const cap = other.export(Perm.SEND | Perm.MONITOR);
    box.ring.tryWrite(office.o.producer, REC_CAPS, words(3));
    table.send(h, new Uint8Array([7]), [cap]);
    expect(() => box.tryReceive()).toThrow(CorruptRecord);
    const signal = box.tryReceive() as { kind: string; caps: number[] };
    expect(signal.kind).toBe('message');
    expect(signal.caps).toHaveLength(1);
    expect(table.permissions(signal.caps[0] as number)).toBe(Perm.SEND | Perm.MONITOR);
    for (const x of [h, cap, signal.caps[0] as number]) table.release(x);
    box.close();
    other.close();
  });
});
