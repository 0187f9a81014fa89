/**
 * The message codec: JavaScript values to bytes and back, with msgpackr
 * (MessagePack; chosen over v8.serialize and JSON by bench/codec.ts: see
 * BENCHMARKS.md). References inside a value travel as capabilities: the
 * encoder swaps each Ref for an index into the message's capability list
 * (handles of the sender's table); the decoder swaps each index for a Ref of
 * the receiver's table, built from the capabilities the post office
 * imported.
 *
 * Envelope. A plain message is the MessagePack encoding of the value alone.
 * Request and reply messages start with 0xc1, a byte MessagePack never uses,
 * then a kind byte and a 32-bit request id, then the value:
 *   0xc1 KIND_REQUEST id(u32 LE) value   -- the reply route is the last capability
 *   0xc1 KIND_REPLY   id(u32 LE) value
 *
 * One encoder and one decoder per thread, reused: encoding allocates nothing
 * for small values beyond what msgpackr does, and the bytes it returns are
 * valid only until the next encode on this thread.
 */

// The pure-JS build: msgpackr's native string extractor crashes the process (SIGSEGV) when it
// decodes bytes that live in a SharedArrayBuffer, which is where every message lies.
import { addExtension, Packr } from 'msgpackr/pack';
import type { Table } from '../core/index.ts';
import { DecodeError, EncodeError } from './errors.ts';
import { Ref } from './ref.ts';
import { Request } from './request.ts';

/** First byte of a request or reply envelope: never the first byte of a MessagePack value. */
export const ENVELOPE_MARK = 0xc1;
export const KIND_REQUEST = 1;
export const KIND_REPLY = 2;
/** Mark, kind, id. */
export const ENVELOPE_BYTES = 6;

/** MessagePack extension types (application range 0..127). */
const EXT_REF = 0x50;
const EXT_REQUEST = 0x51;
const EXT_SET = 0x53;

// Encoding and decoding are synchronous, so the capability list of the
// message being worked on can live here for the extension hooks to use.
let encodingTable: Table | null = null;
let encodingCaps: number[] = [];
let decodingTable: Table | null = null;
let decodingCaps: readonly number[] = [];
let decodingUsed: boolean[] = [];
/** The bounds of the message being decoded (reused). */
const bounds = { start: 0, end: 0 };

function capIndexOf(ref: Ref): number {
  const table = Ref.tableOf(ref);
  if (table === undefined || table !== encodingTable) {
    throw new EncodeError('a Ref can only be sent by the process that holds it');
  }
  return encodingCaps.push(Ref.handleOf(ref)) - 1;
}

function refAt(index: unknown): Ref {
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= decodingCaps.length) {
    throw new DecodeError(`capability index ${String(index)} is out of range`);
  }
  if (decodingUsed[index]) throw new DecodeError(`capability ${index} is referenced twice`);
  decodingUsed[index] = true;
  return new Ref(decodingTable as Table, decodingCaps[index] as number);
}

const packr = new Packr({
  useRecords: false,
  moreTypes: true,
  // Decoding may read a message where it lies in the ring, which is reused: binary values must be copies.
  copyBuffers: true,
  writeFunction: () => {
    throw new EncodeError('functions cannot be sent');
  },
});

addExtension({
  Class: Ref,
  type: EXT_REF,
  write: (ref: Ref) => capIndexOf(ref),
  read: (index: unknown) => refAt(index),
});

addExtension({
  Class: Request,
  type: EXT_REQUEST,
  // A request handed on travels whole: its id, its reply route and what it asked.
  write: (request: Request) => [request.id, capIndexOf(request.replyTo), request.value],
  read: (data: unknown) => {
    if (!Array.isArray(data) || data.length !== 3 || typeof data[0] !== 'number') {
      throw new DecodeError('malformed request');
    }
    return new Request(data[0] >>> 0, refAt(data[1]), data[2]);
  },
});

// msgpackr writes a Set as a plain array; this keeps its type. (A Map travels as a plain object:
// msgpackr writes Maps before it looks at extensions.)
addExtension({
  Class: Set,
  type: EXT_SET,
  write: (set: Set<unknown>) => [...set],
  read: (items: unknown) => {
    if (!Array.isArray(items)) throw new DecodeError('malformed Set');
    return new Set(items);
  },
});

export interface Encoded {
  /** The message bytes: valid until the next encode on this thread. */
  readonly bytes: Uint8Array;
  /** Handles of the sender's table named by the value (and envelope), in order; reused like `bytes`. */
  readonly caps: number[];
}

const scratchCaps: number[] = [];
const scratch: { bytes: Uint8Array; caps: number[] } = { bytes: new Uint8Array(0), caps: scratchCaps };
let envelopeBuffer = new Uint8Array(256);

/**
 * Encodes `value` for a message sent from `table`. `kind` 0 is a plain
 * message; otherwise an envelope with `id` is prepended. A request's reply
 * route (`replyHandle`) is appended as the last capability.
 */
export function encode(table: Table, value: unknown, kind = 0, id = 0, replyHandle = 0): Encoded {
  scratchCaps.length = 0;
  scratch.caps = scratchCaps;
  let body: Uint8Array;
  if (encodeSmall(value)) {
    if (kind === 0) return scratch;
    body = scratch.bytes;
  } else {
    encodingTable = table;
    encodingCaps = scratchCaps;
    try {
      body = packr.pack(value);
    } catch (error) {
      if (error instanceof EncodeError) throw error;
      if (error instanceof RangeError) throw new EncodeError('the value is cyclic or nested too deeply');
      throw new EncodeError(`the value cannot be encoded: ${(error as Error).message}`);
    } finally {
      encodingTable = null;
    }
  }
  if (kind === 0) {
    scratch.bytes = body;
    return scratch;
  }
  const total = ENVELOPE_BYTES + body.length;
  if (envelopeBuffer.length < total)
    envelopeBuffer = new Uint8Array(Math.max(total, envelopeBuffer.length * 2));
  envelopeBuffer[0] = ENVELOPE_MARK;
  envelopeBuffer[1] = kind;
  envelopeBuffer[2] = id & 0xff;
  envelopeBuffer[3] = (id >>> 8) & 0xff;
  envelopeBuffer[4] = (id >>> 16) & 0xff;
  envelopeBuffer[5] = (id >>> 24) & 0xff;
  envelopeBuffer.set(body, ENVELOPE_BYTES);
  if (kind === KIND_REQUEST) scratch.caps.push(replyHandle);
  scratch.bytes = envelopeBuffer.subarray(0, total);
  return scratch;
}

const small = new Uint8Array(32);
/** `small`'s first n bytes, for every n: a view per message would cost more than the encoding. */
const smallViews = Array.from({ length: 33 }, (_, n) => small.subarray(0, n));

/**
 * The fast path for the commonest small values, a 32-bit integer or a short
 * ASCII string, written as MessagePack by hand (fixint, int 32 or fixstr:
 * standard MessagePack that msgpackr reads back, at a fraction of its cost).
 * Sets `scratch.bytes`; false for any other value.
 */
function encodeSmall(value: unknown): boolean {
  if (typeof value === 'number') {
    if (Object.is(value, -0)) {
      // msgpackr would write -0 as the integer 0; a float 64 keeps the sign.
      small.fill(0, 0, 9);
      small[0] = 0xcb;
      small[1] = 0x80;
      scratch.bytes = smallViews[9] as Uint8Array;
      return true;
    }
    if ((value | 0) !== value) return false;
    if (value >= 0 && value < 0x80) {
      small[0] = value; // positive fixint
      scratch.bytes = smallViews[1] as Uint8Array;
    } else if (value < 0 && value >= -32) {
      small[0] = value & 0xff; // negative fixint
      scratch.bytes = smallViews[1] as Uint8Array;
    } else {
      small[0] = 0xd2; // int 32, big-endian
      small[1] = value >>> 24;
      small[2] = (value >>> 16) & 0xff;
      small[3] = (value >>> 8) & 0xff;
      small[4] = value & 0xff;
      scratch.bytes = smallViews[5] as Uint8Array;
    }
    return true;
  }
  if (typeof value === 'string' && value.length < 32) {
    for (let i = 0; i < value.length; i++) {
      const c = value.charCodeAt(i);
      if (c >= 0x80) return false;
      small[i + 1] = c;
    }
    small[0] = 0xa0 | value.length; // fixstr
    scratch.bytes = smallViews[value.length + 1] as Uint8Array;
    return true;
  }
  return false;
}

/** The inverse of `encodeSmall` for bytes it could have written; NOT_SMALL otherwise. */
function decodeSmall(bytes: Uint8Array, offset: number, length: number): number | string | typeof NOT_SMALL {
  const first = bytes[offset] as number;
  if (length === 1) {
    if (first < 0x80) return first;
    if (first >= 0xe0) return first - 0x100;
    if (first === 0xa0) return '';
    return NOT_SMALL;
  }
  if (first === 0xd2 && length === 5) {
    return (
      ((bytes[offset + 1] as number) << 24) |
      ((bytes[offset + 2] as number) << 16) |
      ((bytes[offset + 3] as number) << 8) |
      (bytes[offset + 4] as number)
    );
  }
  if ((first & 0xe0) === 0xa0 && length === 1 + (first & 0x1f)) {
    let text = '';
    for (let i = offset + 1; i < offset + length; i++) {
      const c = bytes[i] as number;
      if (c >= 0x80) return NOT_SMALL; // UTF-8: leave it to msgpackr
      text += String.fromCharCode(c);
    }
    return text;
  }
  return NOT_SMALL;
}

const NOT_SMALL: unique symbol = Symbol('not small');

/** The envelope kind of message bytes (0 for a plain message). */
export function envelopeKind(bytes: Uint8Array, offset: number, length: number): number {
  if (length >= ENVELOPE_BYTES && bytes[offset] === ENVELOPE_MARK) return bytes[offset + 1] as number;
  return 0;
}

/** The request id of an envelope. */
export function envelopeId(bytes: Uint8Array, offset: number): number {
  return (
    ((bytes[offset + 2] as number) |
      ((bytes[offset + 3] as number) << 8) |
      ((bytes[offset + 4] as number) << 16) |
      ((bytes[offset + 5] as number) << 24)) >>>
    0
  );
}

/**
 * Decodes the value of a message received into `table` with capabilities
 * `caps` (handles of `table`). `bytes[offset, offset + length)` may be read in
 * place (the ring or the shared heap): the decoder copies what it keeps.
 * Capabilities the value does not name are returned in `unused` for the
 * caller to release. On a DecodeError nothing is added to `unused`: the
 * caller releases every capability of the message (Refs made before the
 * error are dropped with it).
 */
export function decode(
  table: Table,
  bytes: Uint8Array,
  offset: number,
  length: number,
  caps: readonly number[],
  unused: number[],
): unknown {
  if (caps.length === 0 && length > 0) {
    const value = decodeSmall(bytes, offset, length);
    if (value !== NOT_SMALL) return value;
  }
  decodingTable = table;
  decodingCaps = caps;
  decodingUsed = caps.length === 0 ? decodingUsed : new Array<boolean>(caps.length).fill(false);
  try {
    // The whole buffer with bounds, not a subarray: msgpackr caches its DataView on the source
    // object, so decoding in place from the same buffer allocates nothing per message.
    bounds.start = offset;
    bounds.end = offset + length;
    const value = packr.unpack(bytes, bounds);
    for (let i = 0; i < caps.length; i++) if (!decodingUsed[i]) unused.push(caps[i] as number);
    return value;
  } catch (error) {
    if (error instanceof DecodeError) throw error;
    throw new DecodeError(`malformed message: ${(error as Error).message}`);
  } finally {
    decodingTable = null;
    decodingCaps = [];
  }
}

/** Encodes a value that may not contain Refs (exit reasons); returns a copy of its bytes. */
export function encodePlain(value: unknown): Uint8Array {
  encodingTable = null;
  encodingCaps = [];
  try {
    return packr.pack(value).slice();
  } catch (error) {
    if (error instanceof EncodeError) throw error;
    if (error instanceof RangeError) throw new EncodeError('the value is cyclic or nested too deeply');
    throw new EncodeError(`the value cannot be encoded: ${(error as Error).message}`);
  }
}

/** Decodes bytes from `encodePlain`. */
export function decodePlain(bytes: Uint8Array): unknown {
  decodingTable = null;
  decodingCaps = [];
  try {
    return packr.unpack(bytes);
  } catch (error) {
    if (error instanceof DecodeError) throw error;
    throw new DecodeError(`malformed value: ${(error as Error).message}`);
  }
}
