/**
 * What spawning shares between the places that create processes: loading a
 * process function, moving capabilities between two tables of one thread,
 * and the spawn request a process sends to another worker's control route.
 *
 * A spawn request is a request (codec.ts envelope) to a worker's control
 * route whose value is [moduleUrl, exportName, mailboxCapacity, payload]:
 * `payload` is the encoding of [args, linkTo] made by the spawner's table,
 * whose capability indices name the message's first capabilities. The
 * control side creates the process first, moves those capabilities into the
 * new table, and only then decodes the payload there, so every Ref in the
 * arguments arrives as the new process's own. The reply is { ref } or
 * { error }.
 */

import type { Mailbox, Perms, Table } from '../core/index.ts';
// Internal to the post office: exporting a mailbox straight into another table of the same thread.
import { releaseRoute, retainRoute } from '../core/routes.ts';
import type { ProcessContext } from './api.ts';
import { SpawnError } from './errors.ts';

export type ProcessFunction = (ctx: ProcessContext, ...args: unknown[]) => unknown;

export type SpawnRequest = [
  moduleUrl: string,
  exportName: string,
  mailboxCapacity: number,
  payload: Uint8Array,
];

export type SpawnReply = { ref: unknown } | { error: string };

/** The spawn payload of no arguments and no link, encoded once: most spawns carry it. */
export const EMPTY_PAYLOAD: Uint8Array = new Uint8Array([0x92, 0x90, 0xc0]); // [[], null]

/** Loaded process functions of this thread, by `url#export`. */
const functions = new Map<string, ProcessFunction>();

/**
 * The process function `exportName` of module `moduleUrl`: synchronous once
 * loaded on this thread. Throws (or rejects with) SpawnError.
 */
export function processFunction(
  moduleUrl: string,
  exportName: string,
): ProcessFunction | Promise<ProcessFunction> {
  const key = `${moduleUrl}#${exportName}`;
  const known = functions.get(key);
  if (known !== undefined) return known;
  if (typeof moduleUrl !== 'string' || moduleUrl.length === 0)
    throw new SpawnError('a module URL is required');
  if (typeof exportName !== 'string' || exportName.length === 0)
    throw new SpawnError('an export name is required');
  return import(moduleUrl).then(
    (module: Record<string, unknown>) => {
      const fn = module[exportName];
      if (typeof fn !== 'function') {
        throw new SpawnError(`module ${moduleUrl} has no exported function '${exportName}'`);
      }
      functions.set(key, fn as ProcessFunction);
      return fn as ProcessFunction;
    },
    (error: unknown) => {
      throw new SpawnError(`cannot load ${moduleUrl}: ${(error as Error).message ?? String(error)}`);
    },
  );
}

/** A handle in `to` for the capability `h` of `from` (both tables of this thread); `from` keeps h. */
export function copyHandle(from: Table, h: number, to: Table): number {
  const owned = from.toOwned(h);
  try {
    return to.importOwned(owned);
  } catch (error) {
    from.postOffice.discardOwned(owned);
    throw error;
  }
}

/**
 * A handle in `table` for `mailbox`'s route with `perms`, where `table` is
 * another table of the mailbox's own thread: what `mailbox.export` does for
 * the mailbox's table, without the owned-token round trip of `copyHandle`.
 */
export function exportInto(mailbox: Mailbox, table: Table, perms: Perms): number {
  const o = table.o;
  if (mailbox.table.o !== o || mailbox.closed) return copyHandle(mailbox.table, mailbox.export(perms), table);
  retainRoute(o, mailbox.route);
  try {
    return table.addEntry(mailbox.route, mailbox.generation, perms);
  } catch (error) {
    releaseRoute(o, mailbox.route);
    throw error;
  }
}

/** Copies every handle of `handles` from `from` into `to`, all or nothing. */
export function copyHandles(from: Table, handles: readonly number[], to: Table): number[] {
  const copied: number[] = [];
  try {
    for (const h of handles) copied.push(copyHandle(from, h, to));
  } catch (error) {
    for (const h of copied) to.release(h);
    throw error;
  }
  return copied;
}

/**
 * Sends once the target's ring has room, for a caller that does not wait:
 * the bytes are copied (the codec reuses its buffers) and the target and
 * every capability are held by copies of their own, released when the send
 * is done, so the caller may drop its handles at once. Resolves to whether
 * it was sent (false: timed out, or the table closed meanwhile).
 */
export async function sendLater(
  table: Table,
  h: number,
  bytes: Uint8Array,
  caps: readonly number[],
  timeoutMs: number,
): Promise<boolean> {
  const data = bytes.slice();
  const held: number[] = [];
  let target = 0;
  try {
    target = table.demote(h, table.permissions(h));
    for (const c of caps) held.push(table.demote(c, table.permissions(c)));
    await table.sendWhenRoom(target, data, held, { timeoutMs });
    return true;
  } catch {
    return false;
  } finally {
    if (!table.isClosed) {
      for (const c of held) table.release(c);
      if (target !== 0) table.release(target);
    }
  }
}
