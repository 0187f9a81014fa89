/**
 * A reference to a process: one capability in the holding process's table,
 * wrapped so that process code never handles the raw table handle. A Ref is
 * meaningful only to the process whose table holds it; handed to another
 * process inside a message it travels as a capability and arrives as that
 * process's own Ref (codec.ts). A Ref used by the wrong process fails with
 * the post office's `TableMismatch`.
 */

import type { Table } from '../core/index.ts';

export class Ref {
  readonly #table: Table;
  readonly #handle: number;

  /** @internal Process code gets Refs from the runtime, never builds them. */
  constructor(table: Table, handle: number) {
    this.#table = table;
    this.#handle = handle;
    Object.freeze(this);
  }

  /** @internal The table behind a Ref, or undefined for anything that is not a Ref. */
  static tableOf(value: unknown): Table | undefined {
    return value instanceof Ref ? value.#table : undefined;
  }

  /** @internal The handle behind a Ref (check `tableOf` first). */
  static handleOf(ref: Ref): number {
    return ref.#handle;
  }

  toString(): string {
    return 'Ref';
  }
}
Object.freeze(Ref.prototype);
Object.freeze(Ref);
