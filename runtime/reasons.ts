/**
 * Exit reasons on the wire. A process ends by killing its group with a
 * KillReason whose `detail` is the reason encoded by the codec (no Refs), and
 * code REASON_CODE; links, traps and monitors carry it to everyone concerned,
 * where it is decoded again. A detail longer than the post office carries is
 * shortened (an error loses its stack first).
 */

import type { KillReason } from '../core/index.ts';
import type { ErrorReason, ExitReason } from './api.ts';
import { decodePlain, encodePlain } from './codec.ts';

/** Core kill code meaning "the detail is a runtime-encoded reason". */
export const REASON_CODE = 1;
/** The post office's limit on a kill's detail. */
export const MAX_REASON_BYTES = 4096;

/** The ErrorReason of a thrown value. */
export function errorReason(error: unknown): ErrorReason {
  if (error instanceof Error) {
    return { kind: 'error', name: error.name, message: error.message, stack: error.stack };
  }
  let message: string;
  try {
    message = String(error);
  } catch {
    message = 'a value that cannot be printed';
  }
  return { kind: 'error', name: 'NonError', message };
}

/** Encodes a reason, shortening it to fit. Throws EncodeError for a reason that cannot be encoded. */
export function encodeReason(reason: ExitReason): Uint8Array {
  let bytes = encodePlain(reason);
  if (bytes.length <= MAX_REASON_BYTES) return bytes;
  const r = reason as Partial<ErrorReason>;
  if (r !== null && typeof r === 'object' && r.kind === 'error') {
    bytes = encodePlain({ kind: 'error', name: String(r.name), message: String(r.message).slice(0, 2048) });
    if (bytes.length <= MAX_REASON_BYTES) return bytes;
  }
  return encodePlain({
    kind: 'error',
    name: 'ReasonTooLarge',
    message: `an exit reason of ${bytes.length} bytes`,
  });
}

/** Encoded string reasons ('normal', 'shutdown'...): every process that ends needs one. */
const stringReasons = new Map<string, KillReason>();

export function killReason(reason: ExitReason): KillReason {
  if (reason === 'killed') return {};
  if (typeof reason === 'string' && reason.length <= 64) {
    let known = stringReasons.get(reason);
    if (known === undefined) {
      known = Object.freeze({ code: REASON_CODE, detail: encodeReason(reason) });
      if (stringReasons.size < 256) stringReasons.set(reason, known);
    }
    return known;
  }
  return { code: REASON_CODE, detail: encodeReason(reason) };
}

/** The reason a signal carries: its decoded detail, else the post office's own 'closed' or 'killed'. */
export function decodeReason(
  detail: Uint8Array | null | undefined,
  fallback: 'closed' | 'killed',
): ExitReason {
  if (detail === null || detail === undefined) return fallback;
  try {
    return decodePlain(detail);
  } catch {
    return fallback;
  }
}
