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

import { setTimeout as sleep } from 'node:timers/promises';
import type { Mailbox, Perms, Table } from '../core/index.ts';
// Internal to the post office: exporting a mailbox straight into another table of the same thread.
import { releaseRoute, retainRoute } from '../core/routes.ts';
import type { ProcessContext } from './api.ts';
import { encode } from './codec.ts';
import { SpawnError } from './errors.ts';
import type { Process } from './process.ts';
import type { Ref } from './ref.ts';

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

const MIN_ROOM_POLL_MS = 0.25;
const MAX_ROOM_POLL_MS = 16;

/** A spawn's encoded arguments and link target, and the link Ref for the caller to drop when done. */
export interface SpawnPayload {
  payload: Uint8Array;
  /** Handles of the parent's table the payload names by index. */
  caps: number[];
  linkTo: Ref | null;
}

const NO_CAPS: number[] = [];

/** Encodes [args, linkTo] in the parent's table (EMPTY_PAYLOAD for no arguments and no link). */
export function spawnPayload(parent: Process, args: readonly unknown[], link: boolean): SpawnPayload {
  if (!Array.isArray(args)) throw new TypeError('spawn: args must be an array');
  const linkTo = link ? parent.restrict(parent.self, ['link']) : null;
  if (args.length === 0 && linkTo === null) return { payload: EMPTY_PAYLOAD, caps: NO_CAPS, linkTo };
  try {
    const { bytes, caps } = encode(parent.table, [args, linkTo]);
    return { payload: bytes.slice(), caps: caps.slice(), linkTo };
  } catch (error) {
    if (linkTo !== null) parent.drop(linkTo);
    throw error;
  }
}

/**
 * The worker a spawn goes to: `choice` if it names a running worker, or the
 * next running one in round robin for 'next' (and for 'local' where there is
 * no local worker, `self` < 0). `controls[i]` is 0 while worker i is being
 * replaced. Returns [worker, new round-robin cursor].
 */
export function pickWorker(
  choice: 'local' | 'next' | number,
  self: number,
  controls: readonly number[],
  cursor: number,
): [number, number] {
  const n = controls.length;
  if (choice === 'local' && self >= 0) return [self, cursor];
  if (choice === 'local' || choice === 'next') {
    // Round robin over the running workers (one being replaced after a crash is skipped).
    for (let tries = 0; tries < n; tries++) {
      cursor = (cursor + 1) % n;
      if (controls[cursor] !== 0) return [cursor, cursor];
    }
    throw new SpawnError('no worker is running (a crashed one is being replaced)');
  }
  if (!Number.isInteger(choice) || choice < 0 || choice >= n) {
    throw new SpawnError(`there is no worker ${String(choice)} (the runtime has ${n})`);
  }
  if (controls[choice] === 0 && choice !== self) throw new SpawnError(`worker ${choice} is not running`);
  return [choice, cursor];
}

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
    // Polled, with a growing pause, rather than the post office's sendWhenRoom: that one pins the
    // target's ring while it waits, and a thread terminated meanwhile (a sandbox over its limit)
    // would keep the pin, and the ring, for good.
    const deadline = performance.now() + timeoutMs;
    for (let pause = MIN_ROOM_POLL_MS; ; pause = Math.min(pause * 2, MAX_ROOM_POLL_MS)) {
      if (table.isClosed) return false;
      if (table.send(target, data, held)) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await sleep(Math.min(pause, left));
    }
  } catch {
    return false;
  } finally {
    if (!table.isClosed) {
      for (const c of held) table.release(c);
      if (target !== 0) table.release(target);
    }
  }
}
