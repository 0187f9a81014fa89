/**
 * One process: its own capability table, route group and main mailbox in the
 * post office (DESIGN.md section 5), and the `ProcessContext` its function
 * is given. The same class serves scheduler workers (waiting through the
 * worker's doorbell), the host side of a Runtime and sandbox workers
 * (waiting on the mailbox's own futex word): see `Waiter`.
 *
 * Roles: everything here runs on the thread that owns the process's table.
 * Other threads reach the process only through its route.
 *
 * Lifecycle: `start` calls the function; when it returns the process ends
 * with 'normal', when it throws with an ErrorReason, `exit(r)` with r. Ending
 * kills the group with the reason (links and monitors fire with it), then
 * closes the table, which lets go of every mailbox and handle. A process
 * whose group was killed from outside notices at its next call into the
 * runtime (or at once if it is waiting in receive/request): the call throws
 * ProcessEnded and the process is torn down; its function's promise is
 * abandoned.
 */

import { type Group, type InPlaceSignal, type Mailbox, Perm, type Perms, type Table } from '../core/index.ts';
import type {
  DownMessage,
  ExitMessage,
  ExitReason,
  Permission,
  ProcessContext,
  Received,
  ReceiveOptions,
  RequestOptions,
  SpawnOptions,
  Timer,
} from './api.ts';
import {
  decode,
  ENVELOPE_BYTES,
  encode,
  envelopeId,
  envelopeKind,
  KIND_REPLY,
  KIND_REQUEST,
} from './codec.ts';
import { ProcessEnded, ReceiveTimeout, RequestTimeout, RuntimeError, SendTimeout } from './errors.ts';
import { markDown, markExit } from './guards.ts';
import { decodeReason, encodeReason, errorReason, killReason } from './reasons.ts';
import { Ref } from './ref.ts';
import { Request } from './request.ts';
import { sendLater } from './spawning.ts';

/** How a process waits for one of its mailboxes. */
export interface Waiter {
  /**
   * Resolves once something may be receivable from `mailbox` (or at once if
   * something already is), or after `timeoutMs`. Never rejects.
   */
  wait(mailbox: Mailbox, timeoutMs: number): Promise<void>;
  /** The mailbox is about to go: forget any wait on it. */
  forget(mailbox: Mailbox): void;
}

/** What a process needs from whoever runs it (a scheduler, the host, a sandbox). */
export interface ProcessHost {
  readonly waiter: Waiter;
  /** Sets up a new mailbox of a process of this host (e.g. gives its ring a doorbell). */
  adopt(mailbox: Mailbox): void;
  spawn(
    parent: Process,
    moduleUrl: string,
    exportName: string,
    args: readonly unknown[],
    options: SpawnOptions,
    link: boolean,
  ): Promise<Ref>;
  /** The process has ended and let go of everything. */
  ended(process: Process, reason: ExitReason): void;
}

/** Thrown by `exit` to unwind the process's function. */
class ProcessExit {
  constructor(readonly reason: ExitReason) {}
}

const PERMISSION_BITS: Record<Permission, number> = {
  send: Perm.SEND,
  monitor: Perm.MONITOR,
  kill: Perm.KILL,
  link: Perm.LINK,
};

const DEFAULT_REQUEST_TIMEOUT_MS = 5000;
/** Ring capacity of a process's reply mailbox. */
const REPLY_MAILBOX_CAPACITY = 4096;

interface PendingRequest {
  resolve(value: unknown): void;
  reject(error: unknown): void;
  /** performance.now() past which it times out (Infinity: never). */
  deadline: number;
  timeoutMs: number;
}

export class Process implements ProcessContext {
  readonly self: Ref;
  readonly table: Table;
  readonly group: Group;
  readonly mailbox: Mailbox;
  args: readonly unknown[] = [];
  /** Why the process ended, once it has. */
  endReason: ExitReason | undefined;

  private readonly host: ProcessHost;
  /** Decoded signals a selective receive passed over, oldest first. */
  // Created on first use: a million idle processes should not carry a million empty collections.
  private saved: Received[] = NO_SIGNALS;
  private receiving = false;
  private replyBox: Mailbox | null = null;
  /** SEND-only handle to the reply mailbox, passed with every request. */
  private replyHandle = 0;
  private nextRequestId = 1;
  private pending: Map<number, PendingRequest> = NO_REQUESTS;
  /**
   * One timer for every pending request's timeout, armed for the earliest
   * deadline: a timer per request would cost more than the round trip.
   */
  private requestTimer: ReturnType<typeof setTimeout> | undefined;
  private requestTimerAt = Number.POSITIVE_INFINITY;
  private pumping = false;
  private timers: Set<ReturnType<typeof setTimeout>> = NO_TIMERS;
  /** Capabilities a decode did not use, to release; only used synchronously, so one per thread. */
  private readonly unusedCaps: number[] = unusedScratch;

  /** Creates the process's table, group and main mailbox. Throws CapacityExceeded, leaving nothing behind. */
  constructor(host: ProcessHost, table: Table, mailboxCapacity: number | undefined) {
    this.host = host;
    this.table = table;
    try {
      this.group = table.createGroup();
      this.mailbox = this.group.createMailbox(
        mailboxCapacity === undefined ? {} : { capacity: mailboxCapacity },
      );
      host.adopt(this.mailbox);
      this.self = new Ref(table, this.mailbox.export(Perm.ALL));
    } catch (error) {
      table.close();
      throw error;
    }
  }

  /** Runs `fn(ctx, ...args)` and ends the process when it settles. */
  start(fn: (ctx: ProcessContext, ...args: unknown[]) => unknown, args: readonly unknown[]): void {
    this.args = Object.freeze([...args]);
    let result: unknown;
    try {
      result = fn(this, ...args);
    } catch (error) {
      this.settle(error, true);
      return;
    }
    Promise.resolve(result).then(
      () => this.settle(undefined, false),
      (error: unknown) => this.settle(error, true),
    );
  }

  private settle(error: unknown, failed: boolean): void {
    if (this.endReason !== undefined) return;
    if (!failed) this.end('normal');
    else if (error instanceof ProcessExit) this.end(error.reason);
    else if (error instanceof ProcessEnded && this.group.dead) this.end('killed');
    else this.end(errorReason(error));
  }

  get ended(): boolean {
    return this.endReason !== undefined;
  }

  /**
   * Ends the process: kills its group with `reason` (unless it is dead
   * already), then lets go of everything. Idempotent.
   */
  end(reason: ExitReason): void {
    if (this.endReason !== undefined) return;
    this.endReason = reason;
    for (const timer of this.timers) clearTimeout(timer);
    if (this.timers !== NO_TIMERS) this.timers.clear();
    if (this.requestTimer !== undefined) clearTimeout(this.requestTimer);
    for (const [, request] of this.pending) request.reject(ProcessEnded.quick('the process ended'));
    if (this.pending !== NO_REQUESTS) this.pending.clear();
    this.host.waiter.forget(this.mailbox);
    if (this.replyBox !== null) this.host.waiter.forget(this.replyBox);
    if (!this.table.isClosed) {
      if (!this.group.dead) this.group.kill(killReason(reason));
      this.table.close();
    }
    this.host.ended(this, reason);
  }

  /** @internal Ends a process whose group was killed while it was not looking (scheduler's sweep). */
  reapIfKilled(): void {
    if (this.endReason === undefined && this.mailbox.closed) this.end('killed');
  }

  /** Throws ProcessEnded when the process has ended or its group was killed (and then ends it). */
  private check(): void {
    if (this.endReason !== undefined) throw new ProcessEnded('this process has ended');
    if (this.mailbox.closed) {
      // Killed from outside. The reason is not read here: monitors and links got it from the
      // post office already, and decoding it for every process of a big kill costs.
      this.end('killed');
      throw ProcessEnded.quick('this process was killed');
    }
  }

  private handleOf(ref: Ref, what: string): number {
    const table = Ref.tableOf(ref);
    if (table === undefined) throw new TypeError(`${what}: expected a Ref, got ${typeof ref}`);
    if (table !== this.table) throw new RuntimeError(`${what}: this Ref belongs to another process`);
    return Ref.handleOf(ref);
  }

  // ---------------------------------------------------------------- receive

  async receive(options: ReceiveOptions = {}): Promise<Received> {
    this.check();
    if (this.receiving) throw new RuntimeError('a receive of this process is already waiting');
    const match = options.match;
    const timeoutMs = options.timeout ?? Number.POSITIVE_INFINITY;
    if (!(timeoutMs >= 0)) throw new RangeError(`timeout must be a non-negative number, got ${timeoutMs}`);
    if (match !== undefined && typeof match !== 'function') throw new TypeError('match must be a function');
    for (let i = 0; i < this.saved.length; i++) {
      const signal = this.saved[i];
      if (match === undefined || this.matchesSaved(match, signal)) {
        this.saved.splice(i, 1);
        return signal;
      }
    }
    this.receiving = true;
    try {
      const deadline = timeoutMs === Number.POSITIVE_INFINITY ? timeoutMs : performance.now() + timeoutMs;
      for (;;) {
        const signal = this.mailbox.tryReceiveInPlace();
        if (signal !== null) {
          const received = this.toReceived(signal);
          if (received === SKIP) continue;
          if (match === undefined || this.matches(match, received)) return received;
          continue;
        }
        const left = deadline === Number.POSITIVE_INFINITY ? deadline : deadline - performance.now();
        if (left <= 0) throw new ReceiveTimeout(timeoutMs);
        await this.host.waiter.wait(this.mailbox, left);
        this.check();
      }
    } finally {
      this.receiving = false;
    }
  }

  /** Whether a fresh signal matches; one that does not (or whose match throws) is saved, never lost. */
  private matches(match: (signal: Received) => boolean, signal: Received): boolean {
    let taken = false;
    try {
      taken = match(signal) === true;
    } finally {
      if (!taken) {
        if (this.saved === NO_SIGNALS) this.saved = [];
        this.saved.push(signal);
      }
    }
    return taken;
  }

  private matchesSaved(match: (signal: Received) => boolean, signal: Received): boolean {
    return match(signal) === true;
  }

  /** Turns a signal of the main mailbox into what `receive` hands out; SKIP for nothing to hand out. */
  private toReceived(signal: InPlaceSignal): Received | typeof SKIP {
    if (signal.kind === 'message') {
      const bytes = signal.bytes;
      const kind = envelopeKind(bytes, signal.offset, signal.length);
      const unused = this.unusedCaps;
      // Every capability of the message, listed before decoding (a request's reply route is
      // taken off the list the decoder sees).
      const all = signal.caps.length === 0 ? NO_HANDLES : [...signal.caps];
      try {
        if (kind === 0) return decode(this.table, bytes, signal.offset, signal.length, signal.caps, unused);
        if (kind === KIND_REQUEST && signal.caps.length > 0) {
          const id = envelopeId(bytes, signal.offset);
          const caps = signal.caps;
          const replyHandle = caps.pop() as number;
          const value = decode(
            this.table,
            bytes,
            signal.offset + ENVELOPE_BYTES,
            signal.length - ENVELOPE_BYTES,
            caps,
            unused,
          );
          return new Request(id, new Ref(this.table, replyHandle), value);
        }
        // A stray reply or an unknown envelope: nothing to hand out.
        for (const h of all) unused.push(h);
        return SKIP;
      } catch {
        // Undecodable bytes (only a forged or corrupted message): dropped, with every capability.
        unused.length = 0;
        for (const h of all) unused.push(h);
        return SKIP;
      } finally {
        this.releaseUnused();
      }
    }
    if (signal.kind === 'down') {
      const down: DownMessage = Object.freeze({
        kind: 'down',
        ref: new Ref(this.table, signal.route),
        monitor: signal.monitor,
        reason: decodeReason(signal.detail, signal.reason),
      });
      return markDown(down);
    }
    if (signal.kind === 'exit') {
      const exit: ExitMessage = Object.freeze({
        kind: 'exit',
        from: signal.route === 0 ? null : new Ref(this.table, signal.route),
        reason: decodeReason(signal.detail, signal.reason),
      });
      return markExit(exit);
    }
    // The end of the main mailbox: the process was killed.
    this.end(decodeReason(signal.detail, signal.reason));
    throw ProcessEnded.quick('this process was killed');
  }

  private releaseUnused(): void {
    const unused = this.unusedCaps;
    while (unused.length > 0) this.table.release(unused.pop() as number);
  }

  // ---------------------------------------------------------------- send

  send(ref: Ref, value: unknown): boolean {
    this.check();
    const h = this.handleOf(ref, 'send');
    const { bytes, caps } = encode(this.table, value);
    return this.table.send(h, bytes, caps);
  }

  async sendWhenRoom(ref: Ref, value: unknown, options: { timeout?: number } = {}): Promise<void> {
    this.check();
    const h = this.handleOf(ref, 'sendWhenRoom');
    const { bytes, caps } = encode(this.table, value);
    if (this.table.send(h, bytes, caps)) return;
    const timeoutMs = options.timeout ?? Number.POSITIVE_INFINITY;
    if (!(await sendLater(this.table, h, bytes, caps, timeoutMs))) {
      this.check();
      throw new SendTimeout(timeoutMs);
    }
  }

  // ---------------------------------------------------------------- request / reply

  /**
   * `extraCaps` (runtime use): handles of this table sent as the message's
   * first capabilities, for a value that names them by index itself (a spawn
   * request's payload).
   */
  request(
    ref: Ref,
    value: unknown,
    options: RequestOptions = {},
    extraCaps?: readonly number[],
  ): Promise<unknown> {
    this.check();
    const h = this.handleOf(ref, 'request');
    const timeoutMs = options.timeout ?? DEFAULT_REQUEST_TIMEOUT_MS;
    if (!(timeoutMs >= 0)) throw new RangeError(`timeout must be a non-negative number, got ${timeoutMs}`);
    this.ensureReplyBox();
    const id = this.nextRequestId;
    this.nextRequestId = (id % 0xffffffff) + 1;
    const { bytes, caps } = encode(this.table, value, KIND_REQUEST, id, this.replyHandle);
    if (extraCaps !== undefined && extraCaps.length > 0) caps.unshift(...extraCaps);
    // ...a full server mailbox: the request waits for room within its own timeout.
    const queued = this.table.send(h, bytes, caps) ? null : sendLater(this.table, h, bytes, caps, timeoutMs);
    return new Promise((resolve, reject) => {
      const deadline = timeoutMs === Number.POSITIVE_INFINITY ? timeoutMs : performance.now() + timeoutMs;
      const pending: PendingRequest = { resolve, reject, deadline, timeoutMs };
      if (this.pending === NO_REQUESTS) this.pending = new Map();
      this.pending.set(id, pending);
      if (deadline < this.requestTimerAt) this.armRequestTimer(deadline);
      if (!this.pumping) void this.pumpReplies();
      void queued?.then((sent) => {
        if (sent || this.pending.get(id) !== pending) return;
        this.pending.delete(id);
        reject(new RequestTimeout(timeoutMs));
      });
    });
  }

  reply(request: Request, value: unknown): boolean {
    this.check();
    if (!(request instanceof Request)) throw new TypeError('reply: expected a Request');
    const h = this.handleOf(request.replyTo, 'reply');
    const { bytes, caps } = encode(this.table, value, KIND_REPLY, request.id);
    // ...the requester's reply ring is full: the reply waits for room rather than being lost.
    if (!this.table.send(h, bytes, caps))
      void sendLater(this.table, h, bytes, caps, DEFAULT_REQUEST_TIMEOUT_MS);
    // A request is answered once: the reply route goes (a queued reply holds its own copy).
    this.table.release(h);
    return true;
  }

  /** Creates the reply mailbox now rather than at the first request. */
  prepareRequests(): void {
    this.ensureReplyBox();
  }

  private ensureReplyBox(): void {
    if (this.replyBox !== null) return;
    const box = this.group.createMailbox({ capacity: REPLY_MAILBOX_CAPACITY });
    this.host.adopt(box);
    this.replyBox = box;
    this.replyHandle = box.export(Perm.SEND);
  }

  private armRequestTimer(deadline: number): void {
    if (this.requestTimer !== undefined) clearTimeout(this.requestTimer);
    this.requestTimerAt = deadline;
    this.requestTimer = setTimeout(() => this.expireRequests(), Math.max(0, deadline - performance.now()));
  }

  /** Times out every request past its deadline (a reply arriving later finds no entry and is dropped). */
  private expireRequests(): void {
    this.requestTimer = undefined;
    this.requestTimerAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    let next = Number.POSITIVE_INFINITY;
    for (const [id, pending] of this.pending) {
      if (pending.deadline <= now) {
        this.pending.delete(id);
        pending.reject(new RequestTimeout(pending.timeoutMs));
      } else if (pending.deadline < next) next = pending.deadline;
    }
    if (next !== Number.POSITIVE_INFINITY) this.armRequestTimer(next);
  }

  /** Delivers replies to their requests while any is pending. */
  private async pumpReplies(): Promise<void> {
    const box = this.replyBox as Mailbox;
    this.pumping = true;
    try {
      while (this.pending.size > 0 && this.endReason === undefined) {
        const signal = box.tryReceiveInPlace();
        if (signal === null) {
          await this.host.waiter.wait(box, Number.POSITIVE_INFINITY);
          continue;
        }
        if (signal.kind !== 'message') {
          if (signal.kind === 'end' && this.endReason === undefined) this.check();
          continue;
        }
        const kind = envelopeKind(signal.bytes, signal.offset, signal.length);
        const id = kind === KIND_REPLY ? envelopeId(signal.bytes, signal.offset) : 0;
        const pending = this.pending.get(id);
        if (pending === undefined) {
          // ...a late reply (its request timed out) or junk: dropped, with its capabilities.
          for (const h of signal.caps) this.table.release(h);
          continue;
        }
        // The request timer stays armed: it fires once at its deadline, finds this one gone and
        // re-arms for the earliest left, so a stream of requests costs one timer per timeout.
        this.pending.delete(id);
        try {
          pending.resolve(
            decode(
              this.table,
              signal.bytes,
              signal.offset + ENVELOPE_BYTES,
              signal.length - ENVELOPE_BYTES,
              signal.caps,
              this.unusedCaps,
            ),
          );
        } catch (error) {
          this.unusedCaps.length = 0;
          for (const h of signal.caps) this.unusedCaps.push(h);
          pending.reject(error);
        } finally {
          this.releaseUnused();
        }
      }
    } catch (error) {
      // The process was killed while requests were pending: end() rejected them.
      if (!(error instanceof ProcessEnded)) throw error;
    } finally {
      this.pumping = false;
    }
  }

  // ---------------------------------------------------------------- spawn

  spawn(
    moduleUrl: string | URL,
    exportName: string,
    args: readonly unknown[] = [],
    options: SpawnOptions = {},
  ): Promise<Ref> {
    this.check();
    return this.host.spawn(this, String(moduleUrl), exportName, args, options, false);
  }

  spawnLink(
    moduleUrl: string | URL,
    exportName: string,
    args: readonly unknown[] = [],
    options: SpawnOptions = {},
  ): Promise<Ref> {
    this.check();
    return this.host.spawn(this, String(moduleUrl), exportName, args, options, true);
  }

  async spawnMonitor(
    moduleUrl: string | URL,
    exportName: string,
    args: readonly unknown[] = [],
    options: SpawnOptions = {},
  ): Promise<{ ref: Ref; monitor: number }> {
    const ref = await this.spawn(moduleUrl, exportName, args, options);
    // No window: monitoring a process that has already ended yields its down at once, with its reason.
    return { ref, monitor: this.monitor(ref) };
  }

  // ---------------------------------------------------------------- links, monitors, kill, exit

  link(ref: Ref): number {
    this.check();
    return this.table.link(this.handleOf(ref, 'link'), this.group);
  }

  unlink(linkId: number): boolean {
    this.check();
    return this.table.unlink(linkId);
  }

  monitor(ref: Ref): number {
    this.check();
    return this.table.monitor(this.handleOf(ref, 'monitor'), this.mailbox);
  }

  demonitor(monitorId: number): boolean {
    this.check();
    return this.table.demonitor(monitorId);
  }

  kill(ref: Ref, reason: ExitReason = 'killed'): void {
    this.check();
    const h = this.handleOf(ref, 'kill');
    this.table.kill(h, killReason(reason));
    // The kill nudged the dead mailboxes awake, which left this thread's hazard on one of
    // them: drop it, so that ring can be freed without waiting for our next send.
    this.table.postOffice.idle();
    // ...that may have been ourselves (a link back to us): then this process is over.
    this.check();
  }

  exit(reason: ExitReason = 'normal'): never {
    encodeReason(reason); // an unencodable reason is the caller's error, thrown here
    throw new ProcessExit(reason);
  }

  trapExits(on: boolean): void {
    this.check();
    this.group.trapExits(on ? this.mailbox : null);
  }

  sendAfter(ref: Ref, value: unknown, ms: number): Timer {
    this.check();
    const h = this.handleOf(ref, 'sendAfter');
    if (!(ms >= 0)) throw new RangeError(`ms must be a non-negative number, got ${ms}`);
    // Encoded now: an unencodable value fails here, and later changes to it do not travel.
    const { bytes, caps } = encode(this.table, value);
    const data = bytes.slice();
    // The capabilities are held by copies so the caller may drop its Refs meanwhile.
    const held = caps.map((c) => this.table.demote(c, this.table.permissions(c)));
    const target = this.table.demote(h, Perm.SEND);
    let done = false;
    const letGo = () => {
      done = true;
      this.timers.delete(timer);
      if (this.table.isClosed) return;
      for (const c of held) this.table.release(c);
      this.table.release(target);
    };
    const timer = setTimeout(() => {
      if (this.endReason === undefined && !this.mailbox.closed) {
        if (!this.table.send(target, data, held))
          void sendLater(this.table, target, data, held, Number.POSITIVE_INFINITY);
      }
      letGo();
    }, ms);
    if (this.timers === NO_TIMERS) this.timers = new Set();
    this.timers.add(timer);
    return Object.freeze({
      cancel: (): boolean => {
        if (done) return false;
        clearTimeout(timer);
        letGo();
        return true;
      },
    });
  }

  // ---------------------------------------------------------------- references

  restrict(ref: Ref, perms: readonly Permission[]): Ref {
    this.check();
    const h = this.handleOf(ref, 'restrict');
    let bits: Perms = 0;
    for (const p of perms) {
      const bit = PERMISSION_BITS[p];
      if (bit === undefined) throw new TypeError(`unknown permission '${String(p)}'`);
      bits |= bit;
    }
    return new Ref(this.table, this.table.demote(h, bits));
  }

  permissions(ref: Ref): Permission[] {
    this.check();
    const bits = this.table.permissions(this.handleOf(ref, 'permissions'));
    return (Object.keys(PERMISSION_BITS) as Permission[]).filter((p) => (bits & PERMISSION_BITS[p]) !== 0);
  }

  same(a: Ref, b: Ref): boolean {
    this.check();
    return this.table.sameRoute(this.handleOf(a, 'same'), this.handleOf(b, 'same'));
  }

  drop(ref: Ref | Request): void {
    this.check();
    // A Request holds its reply route: a forwarder that handed it on lets go of its own copy.
    const target = ref instanceof Request ? ref.replyTo : ref;
    this.table.release(this.handleOf(target, 'drop'));
  }

  /** @internal A handle of this process's table for `ref` (host-level code only). */
  handle(ref: Ref): number {
    return this.handleOf(ref, 'handle');
  }
}

const SKIP: unique symbol = Symbol('skip');
// The shared empty collections lazily replaced per process (never written to).
const NO_SIGNALS: Received[] = [];
const NO_REQUESTS = new Map<number, PendingRequest>();
const NO_TIMERS = new Set<ReturnType<typeof setTimeout>>();
const unusedScratch: number[] = [];
const NO_HANDLES: readonly number[] = [];
