/**
 * The host side of the membrane's wire format: host values to JSON text and
 * back. The format is written down in bootstrap.cjs, whose in-context half
 * does the same for the context's values. Text is the only thing that
 * crosses: a string is a primitive and belongs to no realm.
 *
 * References (Refs) and requests travel as numbers, ids the `Registry` hands
 * out: the sandbox never learns a table handle. Decoding builds plain host
 * objects with defineProperty, so a key like "__proto__" from the sandbox is
 * an own property and never reaches a prototype.
 *
 * Binary data has no place in the context (its typed arrays are removed: see
 * README.md); a typed array or ArrayBuffer arriving for a sandbox becomes an
 * array of its elements.
 */

import type { ExitMessage } from '../api.ts';
import { DecodeError, EncodeError } from '../errors.ts';
import { isDown, isExit } from '../guards.ts';
import { Ref } from '../ref.ts';
import { Request } from '../request.ts';

/** Deeper values are refused (the context refuses them too). */
const MAX_DEPTH = 512;

/** Who owns the ids of the references and requests a sandbox holds. */
export interface Registry {
  /** The id of `ref` (the same id for the same Ref object). */
  refId(ref: Ref): number;
  /** The Ref of id `id`; throws when there is none. */
  ref(id: unknown): Ref;
  requestId(request: Request): number;
  request(id: unknown): Request;
}

type Tree = string | number | boolean | null | Tree[];

/** JSON text of a host value for the context. */
export function toWire(value: unknown, registry: Registry): string {
  return JSON.stringify(tree(value, registry, 0));
}

function tree(v: unknown, registry: Registry, depth: number): Tree {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      if (Number.isNaN(v)) return ['n', 'NaN'];
      if (v === Number.POSITIVE_INFINITY) return ['n', 'Infinity'];
      if (v === Number.NEGATIVE_INFINITY) return ['n', '-Infinity'];
      if (Object.is(v, -0)) return ['n', '-0'];
      return v;
    case 'undefined':
      return ['u'];
    case 'bigint':
      return ['b', v.toString()];
    case 'symbol':
    case 'function':
      return ['u']; // (the codec never produces either)
  }
  if (v === null) return null;
  if (depth > MAX_DEPTH) throw new EncodeError('the value is nested too deeply for a sandbox');
  const d = depth + 1;
  if (v instanceof Ref) return ['r', registry.refId(v)];
  if (v instanceof Request) return ['q', registry.requestId(v), tree(v.value, registry, d)];
  if (isDown(v)) return ['D', ['r', registry.refId(v.ref)], v.monitor, tree(v.reason, registry, d)];
  if (isExit(v)) {
    const exit = v as ExitMessage;
    return [
      'X',
      exit.from === null ? null : ['r', registry.refId(exit.from)],
      tree(exit.reason, registry, d),
    ];
  }
  if (Array.isArray(v)) {
    const out: Tree[] = ['a'];
    for (const item of v) out.push(tree(item, registry, d));
    return out;
  }
  if (v instanceof Map) {
    const out: Tree[] = ['m'];
    for (const [key, value] of v) out.push(tree(key, registry, d), tree(value, registry, d));
    return out;
  }
  if (v instanceof Set) {
    const out: Tree[] = ['s'];
    for (const item of v) out.push(tree(item, registry, d));
    return out;
  }
  if (v instanceof Date) return ['d', tree(v.getTime(), registry, d)];
  if (v instanceof RegExp) return ['g', v.source, v.flags];
  if (v instanceof Error) return ['e', String(v.name), String(v.message)];
  if (ArrayBuffer.isView(v)) {
    const out: Tree[] = ['a'];
    const items = v instanceof DataView ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : v;
    for (const item of items as unknown as Iterable<number | bigint>) out.push(tree(item, registry, d));
    return out;
  }
  if (v instanceof ArrayBuffer || v instanceof SharedArrayBuffer)
    return tree(new Uint8Array(v), registry, depth);
  const out: Tree[] = ['o'];
  for (const key of Object.keys(v as object))
    out.push(key, tree((v as Record<string, unknown>)[key], registry, d));
  return out;
}

/** The host value of JSON text from the context. Throws DecodeError for anything malformed. */
export function fromWire(text: unknown, registry: Registry): unknown {
  if (typeof text !== 'string') throw new DecodeError('malformed value from the sandbox');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new DecodeError('malformed value from the sandbox');
  }
  return value(parsed, registry, 0);
}

function value(n: unknown, registry: Registry, depth: number): unknown {
  if (n === null || typeof n === 'string' || typeof n === 'boolean') return n;
  if (typeof n === 'number') return n;
  if (!Array.isArray(n) || depth > MAX_DEPTH) throw new DecodeError('malformed value from the sandbox');
  const d = depth + 1;
  const tag: unknown = n[0];
  switch (tag) {
    case 'u':
      return undefined;
    case 'n':
      switch (n[1]) {
        case 'NaN':
          return Number.NaN;
        case 'Infinity':
          return Number.POSITIVE_INFINITY;
        case '-Infinity':
          return Number.NEGATIVE_INFINITY;
        case '-0':
          return -0;
      }
      break;
    case 'b':
      if (typeof n[1] === 'string' && /^-?\d+$/.test(n[1])) return BigInt(n[1]);
      break;
    case 'a': {
      const out: unknown[] = [];
      for (let i = 1; i < n.length; i++) out.push(value(n[i], registry, d));
      return out;
    }
    case 'o': {
      if (n.length % 2 !== 1) break;
      const out: Record<string, unknown> = {};
      for (let i = 1; i < n.length; i += 2) {
        const key: unknown = n[i];
        if (typeof key !== 'string') throw new DecodeError('malformed value from the sandbox');
        Object.defineProperty(out, key, {
          value: value(n[i + 1], registry, d),
          writable: true,
          enumerable: true,
          configurable: true,
        });
      }
      return out;
    }
    case 'm': {
      if (n.length % 2 !== 1) break;
      const out = new Map<unknown, unknown>();
      for (let i = 1; i < n.length; i += 2) out.set(value(n[i], registry, d), value(n[i + 1], registry, d));
      return out;
    }
    case 's': {
      const out = new Set<unknown>();
      for (let i = 1; i < n.length; i++) out.add(value(n[i], registry, d));
      return out;
    }
    case 'd': {
      const time = value(n[1], registry, d);
      if (typeof time === 'number') return new Date(time);
      break;
    }
    case 'g':
      if (typeof n[1] === 'string' && typeof n[2] === 'string') {
        try {
          return new RegExp(n[1], n[2]);
        } catch {
          break;
        }
      }
      break;
    case 'e':
      if (typeof n[1] === 'string' && typeof n[2] === 'string') {
        const error = new Error(n[2]);
        error.name = n[1];
        return error;
      }
      break;
    case 'r':
      return registry.ref(n[1]);
    case 'q':
      return registry.request(n[1]);
  }
  throw new DecodeError('malformed value from the sandbox');
}
