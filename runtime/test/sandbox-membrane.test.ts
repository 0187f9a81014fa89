// The membrane without workers: a realm (realm.ts + bootstrap.cjs) driven by
// a fake host function, to pin down the wire format round trip, what a
// failing host call becomes inside, and what the realm's global holds. The
// post office is not involved (nothing to leak: no office is created).

import { describe, expect, it } from 'vitest';
import { Ref } from '../ref.ts';
import type { Request } from '../request.ts';
import { createRealm, type HostCall, type RealmEntry } from '../sandbox/realm.ts';
import { fromWire, type Registry, toWire } from '../sandbox/wire.ts';

/** A registry of fake Refs and Requests (their table is never touched). */
function registry(): Registry & { refs: Map<number, Ref> } {
  const refs = new Map<number, Ref>();
  const ids = new Map<Ref, number>();
  const requests = new Map<number, Request>();
  let next = 1;
  return {
    refs,
    refId(ref) {
      let id = ids.get(ref);
      if (id === undefined) {
        id = next++;
        ids.set(ref, id);
        refs.set(id, ref);
      }
      return id;
    },
    ref(id) {
      const ref = refs.get(id as number);
      if (ref === undefined) throw new Error('no such ref');
      return ref;
    },
    requestId(request) {
      const id = next++;
      requests.set(id, request);
      return id;
    },
    request(id) {
      const request = requests.get(id as number);
      if (request === undefined) throw new Error('no such request');
      return request;
    },
  };
}

interface Harness {
  entry: RealmEntry;
  /** Wire texts the process sent (op 'send'), in order. */
  sent: string[];
  /** The op id of the receive the process is waiting in, if any. */
  receiving(): number | undefined;
  ended: unknown[];
  handlers: Record<string, (...args: unknown[]) => string>;
}

/** Starts `main` of CommonJS `source` in a fresh realm with a fake host. */
function harness(source: string, handlers: Record<string, (...args: unknown[]) => string> = {}): Harness {
  const sent: string[] = [];
  const ended: unknown[] = [];
  const reg = registry();
  let receiveOp: number | undefined;
  const all: Record<string, (...args: unknown[]) => string> = {
    send: (_ref, value) => {
      sent.push(value as string);
      return 'Rtrue';
    },
    receive: (op) => {
      receiveOp = op as number;
      return 'R';
    },
    end: (reason) => {
      ended.push(fromWire(reason, reg));
      return 'R';
    },
    fail: (reason) => {
      ended.push(fromWire(reason, reg));
      return 'R';
    },
    ...handlers,
  };
  const call: HostCall = (op, a, b, c, d) => {
    const f = all[op as string];
    return f === undefined ? 'R' : f(a, b, c, d);
  };
  const realm = createRealm(call, { spawn: false, log: false });
  const fn = realm.compile(source, 'file:///membrane-test.js');
  expect(realm.entry.load(fn, 'main')).toBe('');
  realm.entry.start('["r",1]', '["a"]');
  return { entry: realm.entry, sent, receiving: () => receiveOp, ended, handlers: all };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('the wire format', () => {
  it('carries values into the realm and back unchanged', async () => {
    const reg = registry();
    const ref = new Ref(null as never, 7);
    const values: unknown[] = [
      'text',
      0,
      -0,
      1.5,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      2n ** 70n,
      -3n,
      true,
      null,
      undefined,
      [1, [2, [3, undefined]], 'x'],
      { a: 1, nested: { b: [true, null] }, '': 'empty key' },
      new Map<unknown, unknown>([
        [1, 'one'],
        ['two', { n: 2 }],
      ]),
      new Set([1, 'a', 3n]),
      new Date(1234567),
      /a+b/gi,
      ref,
      { refs: [ref, ref] },
    ];
    const h = harness(`exports.main = async (ctx) => { for (;;) ctx.send(ctx.self, await ctx.receive()); };`);
    for (const value of values) {
      await tick();
      const op = h.receiving();
      expect(op).toBeDefined();
      h.entry.deliver(op as number, true, toWire(value, reg));
      await tick();
      const back = fromWire(h.sent.at(-1), reg);
      if (value instanceof RegExp) expect(String(back)).toBe(String(value));
      else expect(back).toEqual(value);
      if (typeof value === 'number') expect(Object.is(back, value)).toBe(true);
    }
    expect(h.sent.length).toBe(values.length);
  });

  it('keeps "__proto__" an own property on both sides', async () => {
    const reg = registry();
    const h = harness(
      `exports.main = async (ctx) => { const v = await ctx.receive(); ctx.send(ctx.self, [Object.getPrototypeOf(v) === Object.prototype, ({}).polluted === undefined, v]); };`,
    );
    await tick();
    h.entry.deliver(h.receiving() as number, true, '["o","__proto__",["o","polluted","yes"]]');
    await tick();
    const [protoKept, clean, v] = fromWire(h.sent[0], reg) as [boolean, boolean, Record<string, unknown>];
    expect(protoKept).toBe(true);
    expect(clean).toBe(true);
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(Object.hasOwn(v, '__proto__')).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses malformed text from the realm', () => {
    const reg = registry();
    for (const bad of ['', '{', '["?"]', '["o","k"]', '["r",99]', '["b","1.5"]', '[1]', '{"a":1}', 42]) {
      expect(() => fromWire(bad, reg)).toThrow();
    }
  });
});

describe('the realm', () => {
  it('turns a host call that throws, even a stack overflow inside it, into an error of its own', async () => {
    const h = harness(
      `exports.main = async (ctx) => {
        const out = [];
        try { ctx.permissions(ctx.self); } catch (e) { out.push(e instanceof Error, e.name); }
        let depth = 0;
        const deep = () => { depth++; try { deep(); } catch { try { ctx.permissions(ctx.self); } catch (e) { out.push(e instanceof Error); } } };
        deep();
        ctx.send(ctx.self, out.slice(0, 3));
      };`,
      {
        permissions: () => {
          throw new Error('host failure');
        },
      },
    );
    await tick();
    expect(fromWire(h.sent[0], registry())).toEqual([true, 'RuntimeError', true]);
  });

  it('rebuilds host errors from name and message, as the realm’s own classes', async () => {
    const h = harness(
      `exports.main = async (ctx) => {
        const out = [];
        for (const name of ['TypeError', 'RangeError', 'PermissionDenied']) {
          try { ctx.permissions(ctx.self); } catch (e) { out.push([e.name, e.message, e instanceof Error, e instanceof TypeError]); }
        }
        ctx.send(ctx.self, out);
      };`,
      {
        permissions: (() => {
          const names = ['TypeError', 'RangeError', 'PermissionDenied'];
          return () => `E${JSON.stringify([names.shift(), 'why'])}`;
        })(),
      },
    );
    await tick();
    expect(fromWire(h.sent[0], registry())).toEqual([
      ['TypeError', 'why', true, true],
      ['RangeError', 'why', true, false],
      ['PermissionDenied', 'why', true, false],
    ]);
  });

  it('has no host globals, locks prepareStackTrace, and freezes ctx', async () => {
    const h = harness(
      `exports.main = async (ctx) => {
        'use strict';
        const names = Object.getOwnPropertyNames(globalThis).sort();
        let locked = 0;
        try { Error.prepareStackTrace = () => 'x'; } catch { locked++; }
        try { globalThis.Error = { prepareStackTrace: () => 'x' }; } catch { locked++; }
        const E = Error;
        try { delete globalThis.Error; } catch {}
        locked = locked === 2 && globalThis.Error === E && E.prepareStackTrace === undefined;
        ctx.send(ctx.self, { names, locked, frozen: Object.isFrozen(ctx), proto: Object.getPrototypeOf(ctx) === null });
      };`,
    );
    await tick();
    const out = fromWire(h.sent[0], registry()) as {
      names: string[];
      locked: boolean;
      frozen: boolean;
      proto: boolean;
    };
    expect(out.locked).toBe(true);
    expect(out.frozen).toBe(true);
    expect(out.proto).toBe(true);
    for (const name of [
      'process',
      'require',
      'Buffer',
      'SharedArrayBuffer',
      'Atomics',
      'WebAssembly',
      'ArrayBuffer',
      'Uint8Array',
      'Intl',
      'console',
    ]) {
      expect(out.names).not.toContain(name);
    }
    expect(out.names).toContain('setTimeout');
    expect(out.names).toContain('Promise');
  });

  it('ends the process with the function’s outcome, an exit reason, or an uncaught timer error', async () => {
    const returns = harness(`exports.main = async () => 1;`);
    const throws = harness(`exports.main = async () => { throw new TypeError('no'); };`);
    const exits = harness(`exports.main = async (ctx) => ctx.exit({ why: [1] });`);
    const timer = harness(
      `exports.main = (ctx) => { setTimeout(() => { throw new RangeError('late'); }, 1); return new Promise(() => {}); };`,
      {
        timer: () => 'R',
      },
    );
    await tick();
    expect(returns.ended).toEqual(['normal']);
    expect(throws.ended[0]).toMatchObject({ kind: 'error', name: 'TypeError', message: 'no' });
    expect(exits.ended).toEqual([{ why: [1] }]);
    expect(timer.ended).toEqual([]);
    timer.entry.fire(1);
    expect(timer.ended[0]).toMatchObject({ kind: 'error', name: 'RangeError', message: 'late' });
  });

  it('gives a module no require, and compiles nothing from strings', () => {
    const calls: unknown[] = [];
    const realm = createRealm(
      (op) => {
        calls.push(op);
        return 'R';
      },
      { spawn: false, log: false },
    );
    const fn = realm.compile(`const fs = require('node:fs'); exports.main = () => fs;`, 'file:///x.js');
    expect(realm.entry.load(fn, 'main')).toMatch(/cannot import 'node:fs'/);
    const evil = realm.compile(`exports.main = () => 1; Function('return 1')();`, 'file:///y.js');
    expect(realm.entry.load(evil, 'main')).toMatch(/EvalError/);
    // The compiled module function belongs to the realm, not to this one.
    expect(fn instanceof Function).toBe(false);
    expect(calls).toEqual([]);
  });
});
