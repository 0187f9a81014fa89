/**
 * The M:N scheduler of one worker thread: many processes, one thread, one
 * doorbell (ring/doorbell.ts) in the post office.
 *
 * Every mailbox of a process on this worker gets a bit of the worker's
 * doorbell. A process that finds its mailbox empty arms the mailbox's ring
 * and waits; the first producer to publish into it (from any thread) sets
 * the bit and wakes this thread only if it sleeps. The loop takes the rung
 * bits, resolves the waits they belong to, lets the woken processes run (a
 * macrotask turn drains their microtasks), and parks on the doorbell with
 * Atomics.waitAsync when nothing is ready, so timers keep firing meanwhile.
 * No main-thread relay anywhere: senders on other workers ring the bit
 * themselves.
 *
 * Bit 0 is the worker's control mailbox, where spawn requests from other
 * threads arrive (spawning.ts).
 */

import { setImmediate as nextTurn } from 'node:timers/promises';
import { type Mailbox, Perm, type PostOffice, type Table } from '../core/index.ts';
import { DB_SLEEP, DoorbellOwner, parkAsync } from '../ring/index.ts';
import type { ExitReason, SpawnOptions } from './api.ts';
import {
  decode,
  ENVELOPE_BYTES,
  encode,
  envelopeId,
  envelopeKind,
  KIND_REPLY,
  KIND_REQUEST,
} from './codec.ts';
import { RuntimeError, SpawnError } from './errors.ts';
import { Process, type ProcessHost, type Waiter } from './process.ts';
import { Ref } from './ref.ts';
import {
  copyHandle,
  copyHandles,
  EMPTY_PAYLOAD,
  exportInto,
  type ProcessFunction,
  pickWorker,
  processFunction,
  type SpawnReply,
  type SpawnRequest,
  sendLater,
  spawnPayload,
} from './spawning.ts';

/** The doorbell bit of the control mailbox. */
export const CONTROL_BIT = 0;
/** Microtask ticks the loop yields after waking processes, before it looks for more bits. */
const MICRO_YIELDS = 8;
/** Rounds of bits taken between macrotask turns (so timers and I/O are never starved). */
const MICRO_STEPS = 32;
/** How long the loop keeps turning after the last ready bit before it parks (ms). */
const SPIN_MS = 0.5;
/** Processes `sweep` looks at after each park that timed out. */
const SWEEP_BUDGET = 1024;
/** Longest park of an idle worker (ms). */
const IDLE_PARK_MS = 100;
/** While some thread is dead, parked waits are re-polled this often (ms): a dead claim rings nobody. */
const DEAD_PRODUCER_REPOLL_MS = 20;
/** A spawn request waits this long for the target worker's reply. */
export const SPAWN_TIMEOUT_MS = 10_000;

interface PendingWait {
  resolve: () => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  mailbox: Mailbox;
}

const RESOLVED = Promise.resolve();

export interface SchedulerOptions {
  office: PostOffice;
  /** This worker's index in the pool. */
  index: number;
  /** Word index of this worker's doorbell in the post office. */
  doorbellBase: number;
  /** Default ring capacity of a process's main mailbox. */
  processMailboxCapacity: number;
}

export class Scheduler implements ProcessHost, Waiter {
  readonly office: PostOffice;
  readonly index: number;
  readonly waiter: Waiter = this;
  /** The worker's own table: its control mailbox and the control routes of every worker. */
  readonly system: Table;
  readonly control: Mailbox;
  readonly processes = new Set<Process>();
  private readonly doorbell: DoorbellOwner;
  private readonly bitOf = new Map<Mailbox, number>();
  private readonly waits: (PendingWait | undefined)[] = [];
  private readonly freeBits: number[] = [];
  /** Handles (in `system`) of every worker's control route, by worker index; 0 while unknown. */
  private readonly controls: number[] = [];
  private nextWorker = 0;
  private readonly processMailboxCapacity: number;
  private stopping = false;
  /** Where `sweep` goes on from (a live iterator: Set iteration tolerates deletions). */
  private sweeper: Iterator<Process> | null = null;
  private readonly ringBit = (bit: number) => this.rung(bit);

  constructor(options: SchedulerOptions) {
    this.office = options.office;
    this.index = options.index;
    this.processMailboxCapacity = options.processMailboxCapacity;
    this.doorbell = new DoorbellOwner(new Int32Array(this.office.buffer), options.doorbellBase);
    for (let bit = this.doorbell.bits - 1; bit > CONTROL_BIT; bit--) this.freeBits.push(bit);
    this.system = this.office.createTable();
    this.control = this.system.createGroup().createMailbox();
    this.control.ring.setDoorbell(options.doorbellBase, CONTROL_BIT);
  }

  // ---------------------------------------------------------------- control routes

  /** Installs the handle (in `system`) of worker `index`'s control route, replacing an old one. */
  setControl(index: number, handle: number): void {
    const old = this.controls[index];
    if (old !== undefined && old !== 0) this.system.release(old);
    this.controls[index] = handle;
  }

  get workerCount(): number {
    return this.controls.length;
  }

  // ---------------------------------------------------------------- Waiter

  adopt(mailbox: Mailbox): void {
    const bit = this.freeBits.pop();
    if (bit === undefined)
      throw new RuntimeError(`worker ${this.index} has no doorbell bit left for another mailbox`);
    mailbox.ring.setDoorbell(this.doorbell.base, bit);
    this.bitOf.set(mailbox, bit);
  }

  wait(mailbox: Mailbox, timeoutMs: number): Promise<void> {
    const bit = this.bitOf.get(mailbox);
    if (bit === undefined) throw new RuntimeError('this mailbox does not belong to this worker');
    if (!mailbox.armDoorbell()) return RESOLVED;
    return new Promise<void>((resolve) => {
      const wait: PendingWait = { resolve, timer: undefined, mailbox };
      if (timeoutMs !== Number.POSITIVE_INFINITY) {
        wait.timer = setTimeout(() => {
          if (this.waits[bit] !== wait) return;
          this.waits[bit] = undefined;
          mailbox.ring.disarmDoorbell();
          resolve();
        }, timeoutMs);
      }
      this.waits[bit] = wait;
    });
  }

  forget(mailbox: Mailbox): void {
    const bit = this.bitOf.get(mailbox);
    if (bit === undefined) return;
    this.bitOf.delete(mailbox);
    const wait = this.waits[bit];
    if (wait !== undefined) {
      this.waits[bit] = undefined;
      if (wait.timer !== undefined) clearTimeout(wait.timer);
      wait.resolve();
    }
    if (!mailbox.closed || !mailbox.finished) mailbox.ring.disarmDoorbell();
    // A producer that armed-read before the disarm may still ring this bit: a spurious wake of
    // the bit's next owner, which re-polls.
    this.freeBits.push(bit);
  }

  private rung(bit: number): void {
    if (bit === CONTROL_BIT) {
      this.serveControl();
      return;
    }
    const wait = this.waits[bit];
    if (wait === undefined) return; // spurious: the waiter timed out or went
    this.waits[bit] = undefined;
    if (wait.timer !== undefined) clearTimeout(wait.timer);
    wait.resolve();
  }

  /** Wakes every parked wait (they re-poll): the safety net while a dead producer's claim may stall a ring. */
  private repollAll(): void {
    for (let bit = 0; bit < this.waits.length; bit++) if (this.waits[bit] !== undefined) this.rung(bit);
  }

  // ---------------------------------------------------------------- the loop

  /** Runs until `stop`. */
  async run(): Promise<void> {
    const doorbell = this.doorbell;
    const i32 = doorbell.i32;
    let steps = 0;
    let idleSince = -1;
    this.serveControl();
    while (!this.stopping) {
      if (doorbell.take(this.ringBit) > 0) {
        idleSince = -1;
        if (++steps < MICRO_STEPS) {
          // The woken processes run in microtasks: a few ticks usually take each of them to its
          // next wait. Looking again before a macrotask turn saves the turn (several µs).
          for (let i = 0; i < MICRO_YIELDS; i++) await undefined;
          continue;
        }
        steps = 0;
        await nextTurn(); // timers, I/O and the main thread's messages get their turn
        continue;
      }
      if (steps > 0 && steps < MICRO_STEPS) {
        // Nothing rung yet, but processes woken just now may still be on their way to their next
        // wait (or about to send to a local one): a few more ticks before a macrotask turn.
        steps++;
        for (let i = 0; i < MICRO_YIELDS; i++) await undefined;
        continue;
      }
      steps = 0;
      // Nothing rung: keep turning the event loop for a little while (a reply is often on its
      // way), then park.
      const now = performance.now();
      if (idleSince < 0) idleSince = now;
      if (now - idleSince < SPIN_MS) {
        await nextTurn();
        continue;
      }
      idleSince = -1;
      this.office.idle(); // hold no mailbox's ring while parked
      if (!doorbell.prepareToPark()) continue;
      const deadProducers = this.control.ring.deadProducers;
      // Parked, the thread still runs timers and module loads that may send; waking now and
      // then drops the hazard such work left (see office.idle), so no dead mailbox's ring is
      // kept for long by an idle worker.
      const parked = parkAsync(
        i32,
        doorbell.base + DB_SLEEP,
        1,
        deadProducers ? DEAD_PRODUCER_REPOLL_MS : IDLE_PARK_MS,
      );
      // Woken by nothing for a whole park: idle, so the time to look for processes killed while
      // they were not waiting (not on every park: a busy worker parks between requests).
      if (parked !== undefined && (await parked) === 'timed-out') this.sweep(SWEEP_BUDGET);
      doorbell.awake();
      if (deadProducers) this.repollAll();
    }
  }

  /**
   * Tears down processes killed while they were not waiting on their mailbox
   * (busy, or awaiting something else: a kill's nudge rings only an armed
   * mailbox). Runs when a park times out (the worker is idle); looks at up to
   * `budget` processes per call, resuming where the last call stopped, so a
   * worker with many processes spreads the cost over its idle periods.
   */
  private sweep(budget: number): void {
    for (let i = 0; i < budget; i++) {
      if (this.sweeper === null) this.sweeper = this.processes.values();
      const next = this.sweeper.next();
      if (next.done === true) {
        this.sweeper = null;
        return;
      }
      next.value.reapIfKilled();
    }
  }

  /** Ends every process with `reason`, closes the worker's table and lets the loop finish. */
  stop(reason: ExitReason): void {
    for (const process of [...this.processes]) process.end(reason);
    this.stopping = true;
    this.doorbell.wake();
    for (const h of this.controls) if (h !== 0 && !this.system.isClosed) this.system.release(h);
    this.controls.length = 0;
    this.system.close();
  }

  // ---------------------------------------------------------------- ProcessHost

  ended(process: Process): void {
    this.processes.delete(process);
  }

  /**
   * Creates a process on this worker running `fn`; its arguments are
   * `payload` (encoded by `source`'s table, naming `sourceCaps` by index),
   * decoded in the new table once the capabilities are copied there. The
   * link target, if any, is linked before the function runs.
   */
  createProcess(
    fn: ProcessFunction,
    mailboxCapacity: number,
    payload: Uint8Array,
    source: Table,
    sourceCaps: readonly number[],
  ): { process: Process; route: number } {
    const process = new Process(this, this.office.createTable(), mailboxCapacity);
    let route = 0;
    try {
      // The spawner's handle to the new process is made before the process first runs: a
      // child that ends during that first synchronous run still has a route to name.
      route = exportInto(process.mailbox, source, Perm.ALL);
      let args: unknown[] = [];
      let linkTo: Ref | null = null;
      if (payload !== EMPTY_PAYLOAD) {
        const caps = copyHandles(source, sourceCaps, process.table);
        const unused: number[] = [];
        [args, linkTo] = decode(process.table, payload, 0, payload.length, caps, unused) as [
          unknown[],
          Ref | null,
        ];
        for (const h of unused) process.table.release(h);
      }
      if (linkTo !== null) {
        const h = process.handle(linkTo);
        process.table.link(h, process.group);
        process.table.release(h);
      }
      this.processes.add(process);
      process.start(fn, Array.isArray(args) ? args : []);
      return { process, route };
    } catch (error) {
      if (route !== 0 && !source.isClosed) source.release(route);
      process.end('killed');
      throw error;
    }
  }

  async spawn(
    parent: Process,
    moduleUrl: string,
    exportName: string,
    args: readonly unknown[],
    options: SpawnOptions,
    link: boolean,
  ): Promise<Ref> {
    if (options.sandbox !== undefined)
      throw new SpawnError('sandboxed processes are spawned by the runtime host');
    let target: number;
    [target, this.nextWorker] = pickWorker(
      options.worker ?? 'local',
      this.index,
      this.controls,
      this.nextWorker,
    );
    const capacity = options.mailboxCapacity ?? this.processMailboxCapacity;
    const { payload, caps, linkTo } = spawnPayload(parent, args, link);
    try {
      if (target === this.index) {
        const loaded = processFunction(moduleUrl, exportName);
        const fn = loaded instanceof Promise ? await loaded : loaded;
        return new Ref(parent.table, this.createProcess(fn, capacity, payload, parent.table, caps).route);
      }
      return await spawnThrough(
        parent,
        this.system,
        this.controlOf(target),
        [moduleUrl, exportName, capacity, payload],
        caps,
      );
    } finally {
      if (linkTo !== null && !parent.ended) parent.drop(linkTo);
    }
  }

  private controlOf(index: number): number {
    const h = this.controls[index];
    if (h === undefined || h === 0) throw new SpawnError(`worker ${index} is not running`);
    return h;
  }

  // ---------------------------------------------------------------- control mailbox

  /** Serves every queued spawn request, then re-arms the control mailbox. */
  private serveControl(): void {
    for (;;) {
      while (this.serveOne()) {}
      if (this.stopping || this.control.armDoorbell()) return;
    }
  }

  private serveOne(): boolean {
    const signal = this.control.tryReceiveInPlace();
    if (signal === null || signal.kind !== 'message') return signal !== null && signal.kind !== 'end';
    const caps = [...signal.caps];
    const system = this.system;
    if (envelopeKind(signal.bytes, signal.offset, signal.length) !== KIND_REQUEST || caps.length === 0) {
      for (const h of caps) system.release(h);
      return true;
    }
    const id = envelopeId(signal.bytes, signal.offset);
    const replyTo = caps.pop() as number;
    let request: SpawnRequest;
    try {
      request = decode(
        system,
        signal.bytes,
        signal.offset + ENVELOPE_BYTES,
        signal.length - ENVELOPE_BYTES,
        [],
        [],
      ) as SpawnRequest;
      if (!Array.isArray(request) || request.length !== 4 || !(request[3] instanceof Uint8Array)) {
        throw new SpawnError('malformed spawn request');
      }
    } catch (error) {
      this.replySpawn(system, replyTo, id, { error: (error as Error).message });
      for (const h of caps) system.release(h);
      return true;
    }
    const [moduleUrl, exportName, capacity, payload] = request;
    const finish = (fn: ProcessFunction) => {
      try {
        if (this.stopping) throw new SpawnError('the worker is stopping');
        // The reply carries the child's route; it goes from the worker's table, which outlives
        // a child that ends at once.
        const childRoute = this.createProcess(fn, capacity, payload, system, caps).route;
        this.replySpawn(system, replyTo, id, { ref: new Ref(system, childRoute) });
        system.release(childRoute);
      } catch (error) {
        this.replySpawn(system, replyTo, id, { error: (error as Error).message });
      } finally {
        for (const h of caps) if (!system.isClosed) system.release(h);
      }
    };
    try {
      const loaded = processFunction(moduleUrl, exportName);
      if (loaded instanceof Promise) {
        loaded.then(finish, (error: unknown) => {
          this.replySpawn(system, replyTo, id, { error: (error as Error).message });
          for (const h of caps) if (!system.isClosed) system.release(h);
        });
      } else finish(loaded);
    } catch (error) {
      this.replySpawn(system, replyTo, id, { error: (error as Error).message });
      for (const h of caps) system.release(h);
    }
    return true;
  }

  private replySpawn(table: Table, replyTo: number, id: number, reply: SpawnReply): void {
    if (table.isClosed) return;
    try {
      const { bytes, caps } = encode(table, reply, KIND_REPLY, id);
      if (!table.send(replyTo, bytes, caps)) void sendLater(table, replyTo, bytes, caps, SPAWN_TIMEOUT_MS);
    } finally {
      if (!table.isClosed) table.release(replyTo);
    }
  }
}

/**
 * Spawns on another worker: a request to its control route (`control`, a
 * handle of `system`, copied into the parent's table for the send).
 */
export async function spawnThrough(
  parent: Process,
  system: Table,
  control: number,
  request: SpawnRequest,
  payloadCaps: readonly number[],
): Promise<Ref> {
  const controlRef = new Ref(parent.table, copyHandle(system, control, parent.table));
  let pending: Promise<unknown>;
  try {
    pending = parent.request(controlRef, request, { timeout: SPAWN_TIMEOUT_MS }, payloadCaps);
  } finally {
    parent.drop(controlRef); // the message holds its own copy
  }
  let reply: unknown;
  try {
    reply = await pending;
  } catch (error) {
    if ((error as Error).name === 'RequestTimeout') {
      throw new SpawnError(`the target worker did not answer within ${SPAWN_TIMEOUT_MS} ms`);
    }
    throw error;
  }
  const answer = reply as { ref?: unknown; error?: unknown };
  if (answer !== null && typeof answer === 'object' && answer.ref instanceof Ref) return answer.ref;
  throw new SpawnError(typeof answer?.error === 'string' ? answer.error : 'malformed spawn reply');
}
