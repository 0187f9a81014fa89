/**
 * Letting go of everything inside a value: a server that receives a message
 * it will not keep (a refused request, a stray message) drops the Refs in it
 * and refuses the Requests in it, so the message leaves nothing in its table.
 */

import type { ProcessContext } from './api.ts';
import { isRequest } from './guards.ts';
import { Ref } from './ref.ts';

/** Values nested deeper than this are left alone (the codec's own limit is far below). */
const MAX_DEPTH = 100;

/** Drops every Ref inside `value` except `keep`, and answers every Request in it with a BadRequest refusal. */
export function dropRefs(ctx: ProcessContext, value: unknown, keep?: unknown, depth = 0): void {
  if (value === null || typeof value !== 'object' || value === keep || depth > MAX_DEPTH) return;
  if (value instanceof Ref) ctx.drop(value);
  else if (isRequest(value)) {
    ctx.reply(value, { error: { code: 'BadRequest', message: 'a request inside a message is not served' } });
    dropRefs(ctx, value.value, keep, depth + 1);
  } else if (Array.isArray(value) || value instanceof Set) {
    for (const v of value) dropRefs(ctx, v, keep, depth + 1);
  } else if (value instanceof Map) {
    for (const [k, v] of value) {
      dropRefs(ctx, k, keep, depth + 1);
      dropRefs(ctx, v, keep, depth + 1);
    }
  } else if (!ArrayBuffer.isView(value)) {
    for (const v of Object.values(value)) dropRefs(ctx, v, keep, depth + 1);
  }
}
