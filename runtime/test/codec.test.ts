// The codec on its own: values round-trip (the hand-written fast path agrees
// with msgpackr byte for byte), references become capabilities and back,
// what cannot be encoded fails at the sender, and random bytes never decode
// into anything but a value or a DecodeError.

import fc from 'fast-check';
import { Packr } from 'msgpackr/pack';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Perm, PostOffice, type PostOfficeStats, type Table } from '../../core/index.ts';
import { decode, encode, KIND_REQUEST } from '../codec.ts';
import { DecodeError, EncodeError } from '../errors.ts';
import { Ref } from '../ref.ts';
import { Request } from '../request.ts';

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

function roundTrip(value: unknown): unknown {
  const { bytes, caps } = encode(table, value);
  expect(caps).toEqual([]);
  const copy = bytes.slice();
  const unused: number[] = [];
  return decode(table, copy, 0, copy.length, [], unused);
}

describe('values', () => {
  const reference = new Packr({ useRecords: false, moreTypes: true });

  it('writes standard MessagePack on the fast path: msgpackr reads it, and so do we', () => {
    const values = [
      0,
      1,
      127,
      128,
      -1,
      -32,
      -33,
      255,
      65535,
      -(2 ** 31),
      2 ** 31 - 1,
      '',
      'a',
      'x'.repeat(31),
    ];
    for (const v of values) {
      expect(reference.unpack(encode(table, v).bytes.slice())).toBe(v);
      expect(roundTrip(v)).toBe(v);
    }
  });

  it('round-trips everything else through msgpackr', () => {
    const values = [
      2 ** 31,
      1.5,
      Number.NaN,
      'x'.repeat(32),
      'héllo ✓',
      null,
      true,
      10n,
      [1, [2, [3]]],
      { a: { b: ['c'] } },
      new Set(['s', new Set([2])]),
      new Date(86_400_000),
      new Uint8Array([1, 2, 3]),
    ];
    for (const v of values) expect(roundTrip(v)).toEqual(v);
    // A Map arrives as a plain object with string keys (documented in runtime/README.md).
    expect(roundTrip(new Map([[1, 'one']]))).toEqual({ 1: 'one' });
  });

  it('round-trips arbitrary JSON-like values', () => {
    fc.assert(
      // msgpackr renames a `__proto__` key on decode (no prototype pollution through a message).
      // A -0 inside a value arrives as 0 (msgpackr writes it as an integer): generated without.
      fc.property(
        fc
          .jsonValue()
          .filter((v) => !JSON.stringify(v).includes('__proto__'))
          .map((v) => JSON.parse(JSON.stringify(v)) as unknown),
        (v) => {
          expect(roundTrip(v)).toEqual(v);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses what cannot be encoded, with EncodeError', () => {
    const cyclic: { self?: unknown } = {};
    cyclic.self = cyclic;
    for (const v of [() => 1, { f() {} }, Symbol('s'), [Symbol('s')], cyclic]) {
      expect(() => encode(table, v)).toThrow(EncodeError);
    }
  });
});

describe('references', () => {
  it('travel as capability indices and come back as Refs of the receiving table', () => {
    const box = table.createGroup().createMailbox();
    const h = box.export(Perm.SEND);
    const value = { to: new Ref(table, h), list: [new Ref(table, h)] };
    const { bytes, caps } = encode(table, value);
    expect(caps).toEqual([h, h]);
    const copy = bytes.slice();
    const [a, b] = [table.demote(h, Perm.SEND), table.demote(h, Perm.SEND)];
    const out = decode(table, copy, 0, copy.length, [a, b], []) as { to: Ref; list: Ref[] };
    expect(Ref.handleOf(out.to)).toBe(a);
    expect(Ref.handleOf(out.list[0] as Ref)).toBe(b);
    for (const x of [a, b, h]) table.release(x);
    box.close();
  });

  it('refuses a Ref of another table at the sender', () => {
    const other = office.createTable();
    const box = other.createGroup().createMailbox();
    const foreign = new Ref(other, box.export());
    expect(() => encode(table, { foreign })).toThrow(EncodeError);
    other.close();
  });

  it('returns capabilities the value does not name, and refuses one named twice', () => {
    const box = table.createGroup().createMailbox();
    const h = box.export(Perm.SEND);
    const plain = encode(table, 'no refs').bytes.slice();
    const unused: number[] = [];
    decode(table, plain, 0, plain.length, [h], unused);
    expect(unused).toEqual([h]);
    // A forged message naming capability 0 twice.
    const twice = encode(table, [new Ref(table, h), new Ref(table, h)]).bytes.slice();
    twice[twice.indexOf(1, 3)] = 0; // the second index 1 -> 0
    expect(() => decode(table, twice, 0, twice.length, [h, h], [])).toThrow(DecodeError);
    table.release(h);
    box.close();
  });

  it('carries a Request whole: id, reply route and value', () => {
    const box = table.createGroup().createMailbox();
    const h = box.export(Perm.SEND);
    const request = new Request(7, new Ref(table, h), { ask: 1 });
    const { bytes, caps } = encode(table, { job: request });
    const copy = bytes.slice();
    const c = table.demote(caps[0] as number, Perm.SEND);
    const out = decode(table, copy, 0, copy.length, [c], []) as { job: Request };
    expect(out.job).toBeInstanceOf(Request);
    expect(out.job.id).toBe(7);
    expect(out.job.value).toEqual({ ask: 1 });
    table.release(c);
    table.release(h);
    box.close();
  });

  it('prepends a request envelope that no plain value can start with', () => {
    const box = table.createGroup().createMailbox();
    const h = box.export(Perm.SEND);
    const { bytes, caps } = encode(table, 'q', KIND_REQUEST, 0xdeadbeef, h);
    expect(Array.from(bytes.subarray(0, 6))).toEqual([0xc1, KIND_REQUEST, 0xef, 0xbe, 0xad, 0xde]);
    expect(caps).toEqual([h]);
    table.release(h);
    box.close();
  });
});

describe('prototype pollution', () => {
  it('cannot come through a message', () => {
    // { "__proto__": { "polluted": 1 } } written by hand.
    const key = [...new TextEncoder().encode('__proto__')];
    const bytes = new Uint8Array([
      0x81,
      0xa0 | key.length,
      ...key,
      0x81,
      0xa8,
      ...new TextEncoder().encode('polluted'),
      1,
    ]);
    const out = decode(table, bytes, 0, bytes.length, [], []) as object;
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(({} as { polluted?: number }).polluted).toBeUndefined();
  });
});

describe('random bytes', () => {
  it('decode to a value or a DecodeError, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), (bytes) => {
        try {
          decode(table, bytes, 0, bytes.length, [], []);
        } catch (error) {
          expect(error).toBeInstanceOf(DecodeError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
