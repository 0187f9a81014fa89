/**
 * The host side of processes on a thread that has no scheduler: the main
 * thread of a Runtime (its host process, through which `runtime.spawn`,
 * `runtime.request`... act) and a sandbox worker (one process). Mailboxes
 * wait on their own ring's futex word with Atomics.waitAsync; every spawn
 * goes to a scheduler worker's control route.
 */

import type { Mailbox, Table } from '../core/index.ts';
import type { SpawnOptions } from './api.ts';
import { SpawnError } from './errors.ts';
import type { Process, ProcessHost, Waiter } from './process.ts';
import type { Ref } from './ref.ts';
import { spawnThrough } from './scheduler.ts';
import { pickWorker, spawnPayload } from './spawning.ts';

export interface HostOptions {
  /** A table of this thread holding the control routes (`controls`, by worker index). */
  system: Table;
  /** Handles in `system` of every worker's control route; 0 while a worker is being replaced. */
  controls: number[];
  /** Default ring capacity of a new process's mailbox. */
  processMailboxCapacity: number;
  /** Spawns a sandboxed process (the runtime's sandbox host); undefined where sandboxes cannot start. */
  spawnSandbox?: (
    parent: Process,
    moduleUrl: string,
    exportName: string,
    args: readonly unknown[],
    options: SpawnOptions,
    link: boolean,
  ) => Promise<Ref>;
}

export class ThreadHost implements ProcessHost, Waiter {
  readonly waiter: Waiter = this;
  private nextWorker = -1;
  private readonly parked = new Set<Promise<void>>();

  constructor(private readonly options: HostOptions) {}

  adopt(): void {}

  // The ring's own wait spins a little before it parks; polling the event loop on top of it
  // measured slower (p50 host -> process 7.4 µs against 6.2 µs).
  async wait(mailbox: Mailbox, timeoutMs: number): Promise<void> {
    const parked = mailbox.waitForSignal(timeoutMs);
    this.parked.add(parked);
    try {
      await parked;
    } finally {
      this.parked.delete(parked);
    }
  }

  /**
   * Resolves once every wait parked now has left. A mailbox closed under a
   * parked wait keeps its ring until the wait leaves (the close's nudge wakes
   * it on a later turn of the event loop): whoever ends the processes of this
   * thread and wants nothing left behind awaits this.
   */
  async settled(): Promise<void> {
    while (this.parked.size > 0) await Promise.allSettled([...this.parked]);
  }

  forget(): void {
    // Nothing to do: a wait parked on a mailbox that closes is woken by the close's nudge,
    // and the mailbox keeps its ring until that wait has left.
  }

  ended(): void {}

  async spawn(
    parent: Process,
    moduleUrl: string,
    exportName: string,
    args: readonly unknown[],
    options: SpawnOptions,
    link: boolean,
  ): Promise<Ref> {
    if (!Array.isArray(args)) throw new TypeError('spawn: args must be an array');
    if (options.sandbox !== undefined) {
      if (this.options.spawnSandbox === undefined)
        throw new SpawnError('sandboxes cannot be started from here');
      return this.options.spawnSandbox(parent, moduleUrl, exportName, args, options, link);
    }
    const { controls, system } = this.options;
    let target: number;
    [target, this.nextWorker] = pickWorker(options.worker ?? 'next', -1, controls, this.nextWorker);
    const capacity = options.mailboxCapacity ?? this.options.processMailboxCapacity;
    const { payload, caps, linkTo } = spawnPayload(parent, args, link);
    try {
      return await spawnThrough(
        parent,
        system,
        controls[target] as number,
        [moduleUrl, exportName, capacity, payload],
        caps,
      );
    } finally {
      if (linkTo !== null && !parent.ended) parent.drop(linkTo);
    }
  }
}
