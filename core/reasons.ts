/**
 * Exit reasons: why a route closed or a group died, beyond closed/killed.
 *
 * A kill may carry a caller-chosen code (a 30-bit natural number) and an
 * opaque detail (at most MAX_DETAIL_BYTES bytes). Every route the kill closes
 * and every group it kills, transitively through links, records the same
 * code and detail, and downs, exits and ends report them.
 *
 * The detail is stored once, in the shared heap, as a reference-counted
 * blob:
 *
 *   word 0   references: every route slot and group slot that records it
 *            (R_DETAIL, G_DETAIL), every pending exit node (N_E), and the
 *            killer while its kill runs; Atomics.add/sub by whoever takes or
 *            drops one; the one that drops the last frees the pages
 *   word 1   length in bytes, written once before the blob is published
 *   bytes    the detail, written once before the blob is published
 *
 * A blob is named by its heap byte offset (0 = no detail). A reference is
 * only ever taken by someone already holding one (the killer, or a reader of
 * a slot that records it, under that slot's lock or reference), so a count
 * never climbs back from 0.
 *
 * Kill never fails for lack of memory: when the heap has no room for the
 * blob, the kill goes ahead without the detail, and the code carries
 * DETAIL_DROPPED so the receiver can tell.
 */

import { CapacityExceeded } from './errors.ts';
import { C_DETAILS } from './layout.ts';
import type { Shared } from './shared.ts';

/** Why a group is killed, as the caller tells it. */
export interface KillReason {
  /** A natural number below 2^30, chosen by the caller. Default 0. */
  code?: number;
  /** Opaque bytes (copied), at most MAX_DETAIL_BYTES. Default: none. */
  detail?: Uint8Array;
}

/** The largest detail a kill may carry, in bytes. */
export const MAX_DETAIL_BYTES = 4096;
/** Codes are natural numbers up to this. */
export const MAX_EXIT_CODE = 2 ** 30 - 1;
/**
 * Set in a reported `code` when the kill carried a detail that could not be
 * stored (the shared heap was full): the detail is reported as null. The
 * caller's code is `code & MAX_EXIT_CODE`.
 */
export const DETAIL_DROPPED = 2 ** 30;

const BLOB_HEADER = 8;
const B_REFS = 0;
const B_LENGTH = 1;

/** Throws RangeError unless `reason` is undefined or a valid KillReason. Touches nothing shared. */
export function checkKillReason(reason: KillReason | undefined): void {
  if (reason === undefined) return;
  if (reason === null || typeof reason !== 'object') throw new RangeError('a kill reason is an object');
  const { code, detail } = reason;
  if (code !== undefined && !(Number.isInteger(code) && code >= 0 && code <= MAX_EXIT_CODE)) {
    throw new RangeError(`an exit code is an integer in 0..${MAX_EXIT_CODE}, got ${code}`);
  }
  if (detail !== undefined) {
    if (!(detail instanceof Uint8Array)) throw new RangeError('an exit detail is a Uint8Array');
    if (detail.length > MAX_DETAIL_BYTES) {
      throw new RangeError(`an exit detail holds at most ${MAX_DETAIL_BYTES} bytes, got ${detail.length}`);
    }
  }
}

/**
 * The code word and the detail blob of a checked reason. The blob starts
 * with one reference, the caller's, to drop with `releaseDetail` once the
 * kill is done. Never throws: with no room in the heap the detail is dropped
 * and the code says so.
 */
export function storeReason(o: Shared, reason: KillReason | undefined): { code: number; detail: number } {
  const code = reason?.code ?? 0;
  const bytes = reason?.detail;
  if (bytes === undefined) return { code, detail: 0 };
  let at: number;
  try {
    at = o.allocHeap(BLOB_HEADER + bytes.length);
  } catch (error) {
    if (!(error instanceof CapacityExceeded)) throw error;
    return { code: code | DETAIL_DROPPED, detail: 0 }; // ...the heap is full: the kill goes ahead without it
  }
  const i32 = o.i32;
  o.u8.set(bytes, at + BLOB_HEADER);
  Atomics.store(i32, (at >> 2) + B_LENGTH, bytes.length);
  Atomics.store(i32, (at >> 2) + B_REFS, 1); // publishes the blob to whoever the creator hands it to
  Atomics.add(i32, C_DETAILS, 1);
  return { code, detail: at };
}

/** Takes one more reference on blob `at` (0: nothing). The caller holds one. */
export function retainDetail(o: Shared, at: number): void {
  if (at !== 0) Atomics.add(o.i32, (at >> 2) + B_REFS, 1);
}

/** Drops one reference on blob `at` (0: nothing); the last one frees it. */
export function releaseDetail(o: Shared, at: number): void {
  if (at === 0) return;
  const i32 = o.i32;
  if (Atomics.sub(i32, (at >> 2) + B_REFS, 1) !== 1) return;
  Atomics.sub(i32, C_DETAILS, 1);
  o.freeHeap(at, BLOB_HEADER + Atomics.load(i32, (at >> 2) + B_LENGTH));
}

/** A copy of blob `at`'s bytes, or null for 0. The caller holds a reference. Allocates. */
export function readDetail(o: Shared, at: number): Uint8Array | null {
  if (at === 0) return null;
  const length = Atomics.load(o.i32, (at >> 2) + B_LENGTH);
  return o.u8.slice(at + BLOB_HEADER, at + BLOB_HEADER + length);
}
