/**
 * Moving a spawn's arguments into a sandbox worker and its main route back,
 * as owned capabilities (core's single-use bearer tokens, which survive a
 * structured clone): the same encoding as a spawn on a scheduler worker
 * (spawning.ts), with tokens where the scheduler copies handles between two
 * tables of one thread.
 *
 *   spawner's thread   packSpawn: encode [args, linkTo] in the spawner's
 *                      table, one token per capability the value names
 *   sandbox worker     unpackSpawn: import the tokens into the new table,
 *                      decode there, link if asked; toOwned(self) back
 *   spawner's thread   adoptSelf: import that token as the spawner's Ref
 *
 * A token nobody imports (the worker died first) is discarded by the main
 * thread once the worker has exited.
 */

import type { OwnedCapability, PostOffice, Table } from '../../core/index.ts';
import { decode, encode } from '../codec.ts';
import { ProcessEnded } from '../errors.ts';
import type { Process } from '../process.ts';
import { Ref } from '../ref.ts';

export interface PackedSpawn {
  payload: Uint8Array;
  caps: OwnedCapability[];
}

/** Encodes a spawn's arguments in `parent`'s table. The parent keeps its own Refs. */
export function packSpawn(parent: Process, args: readonly unknown[], link: boolean): PackedSpawn {
  if (!Array.isArray(args)) throw new TypeError('spawn: args must be an array');
  const linkTo = link ? parent.restrict(parent.self, ['link']) : null;
  try {
    const { bytes, caps } = encode(parent.table, [args, linkTo]);
    const payload = bytes.slice();
    return { payload, caps: tokensOf(parent.table, caps) };
  } finally {
    if (linkTo !== null) parent.drop(linkTo); // the token holds its own reference
  }
}

/** One token per handle of `table`, all or nothing. */
function tokensOf(table: Table, handles: readonly number[]): OwnedCapability[] {
  const tokens: OwnedCapability[] = [];
  try {
    for (const h of handles) tokens.push(table.toOwned(h));
  } catch (error) {
    for (const t of tokens) table.postOffice.discardOwned(t);
    throw error;
  }
  return tokens;
}

/**
 * In the sandbox worker: imports the spawn's capabilities into `process`'s
 * table, decodes the arguments there, and links to the spawner when asked.
 * Returns the arguments (host values, Refs of `process`).
 */
export function unpackSpawn(
  process: Process,
  payload: Uint8Array,
  tokens: readonly OwnedCapability[],
): unknown[] {
  const table = process.table;
  const caps: number[] = [];
  try {
    for (const t of tokens) caps.push(table.importOwned(t));
  } catch (error) {
    for (const h of caps) table.release(h);
    throw error;
  }
  const unused: number[] = [];
  const [args, linkTo] = decode(table, payload, 0, payload.length, caps, unused) as [unknown, Ref | null];
  for (const h of unused) table.release(h);
  if (linkTo instanceof Ref) {
    const h = process.handle(linkTo);
    table.link(h, process.group);
    table.release(h);
  }
  return Array.isArray(args) ? args : [];
}

/** The spawner's Ref for a new process's `self` token; the token is spent either way. */
export function adoptSelf(parent: Process, office: PostOffice, self: OwnedCapability): Ref {
  if (parent.ended) {
    office.discardOwned(self);
    throw new ProcessEnded('the spawner has ended');
  }
  try {
    return new Ref(parent.table, parent.table.importOwned(self));
  } catch (error) {
    office.discardOwned(self);
    throw error;
  }
}

/** Discards tokens nobody imported (those imported already are skipped). */
export function discardAll(office: PostOffice, tokens: readonly OwnedCapability[]): void {
  for (const t of tokens) {
    try {
      office.discardOwned(t);
    } catch {
      // ...a token of another office cannot be ours: nothing to drop.
    }
  }
}
