/**
 * A capability table: one process's store of capabilities, addressed by
 * handles. Entries live in the post office's entry pool (layout.ts, E_*)
 * and are written only by the thread that owns the table.
 *
 * A handle is an id (layout.ts): (entry generation + 1) * 2^22 + entry
 * index. Entry indices are global to the post office and each entry records
 * its owning table, so a handle of another table is refused with
 * TableMismatch rather than aliasing one of ours, and a released handle
 * (generation bumped) is refused with InvalidHandle for ever.
 *
 * Every entry holds one reference on its route (routes.ts), so the route
 * slot, its group and its close reason outlive the route for as long as a
 * capability names it.
 */

import { type Ring, WriteTimeout } from '../ring/index.ts';
import {
  InvalidHandle,
  MessageTooLarge,
  PermissionDenied,
  PostOfficeMismatch,
  TableMismatch,
} from './errors.ts';
import { Group } from './group.ts';
import { killGroupFor, linkGroups, partnerGone, unlinkGroups } from './groups.ts';
import {
  C_OWNED,
  E_GEN,
  E_NEXT,
  E_OWNER,
  E_PERMS,
  E_PREV,
  E_ROUTE,
  E_ROUTE_GEN,
  ID_INDEX_MASK,
  idGeneration,
  idIndex,
  makeId,
  N_A,
  N_B,
  N_C,
  N_GEN,
  N_KIND,
  NK_OWNED,
  NK_OWNED_CLAIMED,
  R_CLOSED_BIT,
  R_CODE,
  R_DETAIL,
  R_GROUP,
  R_GROUP_GEN,
  R_PIN,
  R_REASON,
  REC_CAPS,
  REC_LARGE,
  REC_PLAIN,
  T_ENTRIES,
  T_GEN,
  T_THREAD,
  T_THREAD_GEN,
} from './layout.ts';
import type { Mailbox } from './mailbox.ts';
import { isPermSet, Perm, type Perms } from './perm.ts';
import type { PostOffice } from './post-office.ts';
import { checkKillReason, type KillReason } from './reasons.ts';
import {
  demonitorRoute,
  dropHazard,
  enter,
  freeRouteNode,
  monitorRoute,
  pin,
  releaseRoute,
  retainRoute,
  unpin,
} from './routes.ts';
import type { Shared } from './shared.ts';

/**
 * A capability in bearer form, to hand the first capabilities to another
 * thread (through workerData or postMessage). Whoever presents it to
 * `importOwned` first gets the capability; it is single-use. Host-level
 * only: a token is a guessable number, so it must never reach sandboxed code.
 */
export interface OwnedCapability {
  readonly office: number;
  readonly token: number;
  readonly perms: Perms;
}

export interface SendWhenRoomOptions {
  signal?: AbortSignal;
  /** Give up with WriteTimeout after this many milliseconds. Default: wait for ever. */
  timeoutMs?: number;
}

/** How long an awaiting sender parks for room before it looks again at whether the route closed. */
const ROOM_POLL_MS = 20;

/**
 * Scratch for the capabilities of one send: (route, generation, perms)
 * triples. One per thread, not per table (a table per process makes that a
 * million typed arrays): it is filled and used within one synchronous call.
 */
let capScratch = new Int32Array(48);

export class Table {
  /** @internal */ readonly o: Shared;
  /** Slot index of this table in the post office's table pool. */
  readonly index: number;
  /** @internal The table slot's generation: with `index`, names this table in ownership words. */
  readonly generation: number;
  /** Head of this table's entry list (entry index + 1). Owner-thread state. */
  private head = 0;
  private closed = false;
  /** @internal */ readonly groups = new Set<Group>();
  /** @internal */ readonly mailboxes = new Set<Mailbox>();
  /** @internal Monitor ids issued by this table, to the mailbox that watches. */
  readonly monitors = new Map<number, Mailbox>();
  /** Link ids issued by this table: unlink accepts no other. */
  private readonly links = new Set<number>();
  /** The thread's capability scratch (see `capScratch` above). */
  private get capScratch(): Int32Array {
    return capScratch;
  }

  /** @internal */
  constructor(
    readonly postOffice: PostOffice,
    o: Shared,
  ) {
    this.o = o;
    this.index = o.tables.alloc();
    o.openTables++;
    const w = o.tables.word(this.index);
    this.generation = Atomics.load(o.i32, w + T_GEN);
    Atomics.store(o.i32, w + T_ENTRIES, 0);
    Atomics.store(o.i32, w + T_THREAD_GEN, o.producer.generation);
    Atomics.store(o.i32, w + T_THREAD, o.producer.slot); // markThreadDead may find this table from here on
  }

  /** Number of live handles in this table. */
  get size(): number {
    return Atomics.load(this.o.i32, this.o.tables.word(this.index) + T_ENTRIES);
  }

  createGroup(): Group {
    this.checkOpen();
    const group = new Group(this);
    this.groups.add(group);
    return group;
  }

  // ---------------------------------------------------------------- entries

  /**
   * Adds an entry for (route, generation, perms). The caller hands over one
   * reference on the route. Throws CapacityExceeded('capabilities'), in
   * which case the reference stays with the caller.
   */
  /** @internal */
  addEntry(route: number, generation: number, perms: Perms): number {
    const o = this.o;
    const i32 = o.i32;
    const e = o.entries.alloc();
    const w = o.entries.word(e);
    Atomics.store(i32, w + E_ROUTE, route);
    Atomics.store(i32, w + E_ROUTE_GEN, generation);
    Atomics.store(i32, w + E_PERMS, perms);
    Atomics.store(i32, w + E_PREV, 0);
    Atomics.store(i32, w + E_NEXT, this.head);
    if (this.head !== 0) Atomics.store(i32, o.entries.word(this.head - 1) + E_PREV, e + 1);
    this.head = e + 1;
    Atomics.store(i32, w + E_OWNER, this.index + 1); // the entry is ours from here on
    Atomics.add(i32, o.tables.word(this.index) + T_ENTRIES, 1);
    return makeId(e, Atomics.load(i32, w + E_GEN) ^ this.o.handleSalt);
  }

  /** Removes entry `e` and returns its route; the route reference goes to the caller. @internal */
  removeEntry(e: number): number {
    const o = this.o;
    const i32 = o.i32;
    const w = o.entries.word(e);
    const prev = Atomics.load(i32, w + E_PREV);
    const next = Atomics.load(i32, w + E_NEXT);
    if (prev === 0) this.head = next;
    else Atomics.store(i32, o.entries.word(prev - 1) + E_NEXT, next);
    if (next !== 0) Atomics.store(i32, o.entries.word(next - 1) + E_PREV, prev);
    const route = Atomics.load(i32, w + E_ROUTE);
    Atomics.store(i32, w + E_OWNER, 0);
    Atomics.sub(i32, o.tables.word(this.index) + T_ENTRIES, 1);
    o.entries.free(e, w + E_GEN); // the handle dies here, for ever
    return route;
  }

  /** Word index of handle `h`'s entry; throws InvalidHandle or TableMismatch. */
  private entry(h: number): number {
    const o = this.o;
    const e = h & ID_INDEX_MASK; // any number: ToInt32 keeps the low bits of a safe integer, NaN gives 0
    if (e >= o.entries.count) throw new InvalidHandle(`${h} is not a handle`);
    const w = o.entries.word(e);
    // Plain reads: only the owning thread writes an entry, and for an entry of
    // another table a stale reading can only turn into a refusal.
    const i32 = o.i32;
    const owner = i32[w + E_OWNER];
    // Rebuilding the id from the entry's generation also rejects non-integers and out-of-range numbers.
    // The office's salt in the generation bits makes a handle of another post office fail here.
    if (makeId(e, i32[w + E_GEN]! ^ o.handleSalt) !== h || owner === 0) {
      throw new InvalidHandle(`handle ${h} is not live in this table`);
    }
    if (owner !== this.index + 1) throw new TableMismatch(`handle ${h} belongs to another table`);
    return w;
  }

  private entryWith(h: number, perm: number, what: string): number {
    this.checkOpen();
    const w = this.entry(h);
    if ((this.o.i32[w + E_PERMS]! & perm) === 0) {
      throw new PermissionDenied(`handle ${h} does not carry the permission to ${what}`);
    }
    return w;
  }

  private checkOpen(): void {
    if (this.closed) throw new InvalidHandle('this table is closed');
    // Checked before anything touches shared memory; close() alone still works after a detach.
    if (this.o.detached)
      throw new PostOfficeMismatch("this table's attachment has been detached: only close() works");
  }

  /** @internal */
  checkGroup(group: Group): void {
    if (!(group instanceof Group) || group.table.o.buffer !== this.o.buffer) {
      throw new PostOfficeMismatch('group of another post office');
    }
    if (group.table !== this) throw new TableMismatch('group of another table');
  }

  /** @internal */
  checkMailbox(mailbox: Mailbox): void {
    if (mailbox.table.o.buffer !== this.o.buffer)
      throw new PostOfficeMismatch('mailbox of another post office');
    if (mailbox.table !== this) throw new TableMismatch('mailbox of another table');
  }

  // ---------------------------------------------------------------- capabilities

  permissions(h: number): Perms {
    this.checkOpen();
    return Atomics.load(this.o.i32, this.entry(h) + E_PERMS);
  }

  /** Whether two handles of this table name the same route. */
  sameRoute(a: number, b: number): boolean {
    this.checkOpen();
    const i32 = this.o.i32;
    const wa = this.entry(a);
    const wb = this.entry(b);
    return (
      Atomics.load(i32, wa + E_ROUTE) === Atomics.load(i32, wb + E_ROUTE) &&
      Atomics.load(i32, wa + E_ROUTE_GEN) === Atomics.load(i32, wb + E_ROUTE_GEN)
    );
  }

  /** A new handle to the same route with `perms`, which must be a subset of h's. */
  demote(h: number, perms: Perms): number {
    this.checkOpen();
    const w = this.entry(h);
    const i32 = this.o.i32;
    const have = Atomics.load(i32, w + E_PERMS);
    if (!isPermSet(perms) || (perms & ~have) !== 0) {
      throw new PermissionDenied(`demote of handle ${h} asks for permissions it does not carry`);
    }
    const route = Atomics.load(i32, w + E_ROUTE);
    retainRoute(this.o, route);
    try {
      return this.addEntry(route, Atomics.load(i32, w + E_ROUTE_GEN), perms);
    } catch (error) {
      releaseRoute(this.o, route);
      throw error;
    }
  }

  /** Releases handle `h`: it is invalid from now on, even after its slot is reused. */
  release(h: number): void {
    this.checkOpen();
    this.entry(h);
    releaseRoute(this.o, this.removeEntry(idIndex(h)));
  }

  // ---------------------------------------------------------------- signals

  /**
   * Sends `data` (copied) and the capabilities named by `caps` (the receiver
   * gets its own copies, with the same permissions) to the route of `h`.
   * Returns false only when the mailbox's ring is full; a closed route
   * swallows the message and returns true.
   */
  send(h: number, data: Uint8Array, caps?: readonly number[]): boolean {
    const w = this.entryWith(h, Perm.SEND, 'send');
    const o = this.o;
    const length = data.length;
    if (length > o.maxMessageBytes) throw new MessageTooLarge(length, o.maxMessageBytes);
    const n = caps === undefined ? 0 : this.gatherCaps(caps);
    const r = o.i32[w + E_ROUTE]!;
    // Under our hazard the ring cannot be freed during the write.
    const state = enter(o, r);
    // ...closed: the message is dropped, and a SEND holder learns nothing.
    if ((state & R_CLOSED_BIT) !== 0) return true;
    const ring = o.ringOf(r);
    if (n === 0 && length <= ring.maxRecordLength) return ring.tryWrite(o.producer, REC_PLAIN, data);
    return this.sendSlow(ring, n, data);
  }

  /** Capabilities or an out-of-line body: the rest of `send`, with the route pinned and open. */
  private sendSlow(ring: Ring, n: number, data: Uint8Array): boolean {
    const o = this.o;
    const length = data.length;
    const inline = 4 + 12 * n + length;
    if (inline <= ring.maxRecordLength) {
      const at = ring.tryClaim(o.producer, REC_CAPS, inline);
      if (at < 0) return false; // ...full
      this.writeCaps(at, n);
      o.u8.set(data, at + 4 + 12 * n);
      ring.commit(o.producer); // publishes the record and the references it carries
      return true;
    }
    // Out of line: the body goes to the shared heap, the record names it.
    const record = 12 + 12 * n;
    if (record > ring.maxRecordLength) throw new MessageTooLarge(record, ring.maxRecordLength);
    const body = o.allocHeap(length);
    const at = ring.tryClaim(o.producer, REC_LARGE, record);
    if (at < 0) {
      o.freeHeap(body, length); // ...full: nothing was sent
      return false;
    }
    o.u8.set(data, body);
    o.i32[at >> 2] = body;
    o.i32[(at >> 2) + 1] = length;
    this.writeCaps(at + 8, n);
    ring.commit(o.producer); // publishes the record, its out-of-line body and its references
    return true;
  }

  /**
   * Like `send`, but waits for room when the ring is full. Resolves once the
   * message is in the ring (or dropped by a closed route). Rejects with the
   * signal's reason on abort, with WriteTimeout after `timeoutMs`.
   */
  async sendWhenRoom(
    h: number,
    data: Uint8Array,
    caps?: readonly number[],
    options: SendWhenRoomOptions = {},
  ): Promise<void> {
    const { signal, timeoutMs = Number.POSITIVE_INFINITY } = options;
    const deadline = performance.now() + timeoutMs;
    const o = this.o;
    for (;;) {
      signal?.throwIfAborted();
      if (this.send(h, data, caps)) return;
      const left = deadline - performance.now();
      if (left <= 0)
        throw new WriteTimeout(`no room for a ${data.length}-byte message within ${timeoutMs} ms`);
      const n = caps === undefined ? 0 : this.gatherCaps(caps);
      const r = Atomics.load(o.i32, this.entry(h) + E_ROUTE);
      const state = pin(o, r);
      dropHazard(o); // the pin holds the ring while we wait; our hazard need not hold anything meanwhile
      try {
        if ((state & R_CLOSED_BIT) !== 0) return;
        const ring = o.ringOf(r);
        // The full record is built up front (this slow path may allocate) and
        // handed to the ring's awaitable write, which parks until the consumer
        // frees space. The wait is cut short now and then to notice a close.
        let type = REC_PLAIN;
        let record = data;
        let body = -1;
        let words: Int32Array | null = null;
        if (n !== 0 || data.length > ring.maxRecordLength) {
          const inline = 4 + 12 * n + data.length <= ring.maxRecordLength;
          const size = inline ? 4 + 12 * n + data.length : 12 + 12 * n;
          words = new Int32Array(Math.ceil(size / 4));
          record = new Uint8Array(words.buffer, 0, size);
          const capsAt = inline ? 0 : 2;
          words[capsAt] = n;
          words.set(this.capScratch.subarray(0, 3 * n), capsAt + 1);
          if (inline) {
            type = REC_CAPS;
            record.set(data, 4 + 12 * n);
          } else {
            type = REC_LARGE;
            body = o.allocHeap(data.length);
            o.u8.set(data, body);
            words[0] = body;
            words[1] = data.length;
          }
          for (let k = 0; k < n; k++) retainRoute(o, this.capScratch[3 * k]!);
        }
        try {
          await ring.write(o.producer, type, record, { signal, timeoutMs: Math.min(left, ROOM_POLL_MS) });
          return;
        } catch (error) {
          const capsAt = body < 0 ? 1 : 3;
          for (let k = 0; k < n; k++) releaseRoute(o, words![capsAt + 3 * k]!);
          if (body >= 0) o.freeHeap(body, data.length);
          if (!(error instanceof WriteTimeout)) throw error;
          // ...no room yet: look again at the route and the deadline.
        }
      } finally {
        unpin(o, r);
      }
    }
  }

  /** Validates `caps` (any permissions) into the scratch triples. Changes nothing shared. */
  private gatherCaps(caps: readonly number[]): number {
    const n = caps.length;
    if (capScratch.length < 3 * n) capScratch = new Int32Array(3 * n);
    const i32 = this.o.i32;
    const scratch = this.capScratch;
    for (let k = 0; k < n; k++) {
      const w = this.entry(caps[k]!);
      scratch[3 * k] = Atomics.load(i32, w + E_ROUTE);
      scratch[3 * k + 1] = Atomics.load(i32, w + E_ROUTE_GEN);
      scratch[3 * k + 2] = Atomics.load(i32, w + E_PERMS);
    }
    return n;
  }

  /** Writes [n][triples] at byte `at` and takes the record's reference on each route. */
  private writeCaps(at: number, n: number): void {
    const i32 = this.o.i32;
    const word = at >> 2;
    i32[word] = n;
    for (let k = 0; k < 3 * n; k++) i32[word + 1 + k] = this.capScratch[k]!;
    for (let k = 0; k < n; k++) retainRoute(this.o, this.capScratch[3 * k]!);
  }

  // ---------------------------------------------------------------- control

  /**
   * Kills the group of h's route (and everything linked to it), with
   * `reason`'s code and detail (RangeError, before anything changes, for a
   * bad one). A no-op on a closed route.
   */
  kill(h: number, reason?: KillReason): void {
    const w = this.entryWith(h, Perm.KILL, 'kill');
    checkKillReason(reason);
    const o = this.o;
    const r = Atomics.load(o.i32, w + E_ROUTE);
    const rw = o.routes.word(r);
    if ((Atomics.load(o.i32, rw + R_PIN) & R_CLOSED_BIT) !== 0) return;
    killGroupFor(o, Atomics.load(o.i32, rw + R_GROUP), Atomics.load(o.i32, rw + R_GROUP_GEN), reason);
  }

  /**
   * `mailbox` (of this table) gets a `down` when h's route closes, at once
   * if it is closed already. Returns the monitor id for `demonitor`.
   */
  monitor(h: number, mailbox: Mailbox): number {
    const w = this.entryWith(h, Perm.MONITOR, 'monitor');
    this.checkMailbox(mailbox);
    if (mailbox.finished) throw new InvalidHandle('the monitoring mailbox is closed');
    const id = monitorRoute(this.o, Atomics.load(this.o.i32, w + E_ROUTE), mailbox.route);
    this.monitors.set(id, mailbox);
    mailbox.monitors.add(id);
    return id;
  }

  /**
   * Removes a monitor. Returns false when `id` is not a pending monitor of
   * this table: unknown, removed already, or fired (its down is on its way).
   */
  demonitor(id: number): boolean {
    this.checkOpen();
    const mailbox = this.monitors.get(id);
    if (mailbox === undefined) return false;
    if (!demonitorRoute(this.o, id)) return false;
    this.monitors.delete(id);
    mailbox.monitors.delete(id);
    return true;
  }

  /**
   * Links `group` (of this table) with the group of h's route: when either
   * dies the other is killed (or, if it traps exits, gets an exit). Returns
   * the link id (the same id for a link that exists already), or 0 when no
   * link was made: h's route is in `group` itself, or one side was already
   * dead, and then the other has been killed (or has its exit queued) before
   * this returns. A closed route counts as a dead partner. A trapping side
   * needs a node for that exit: CapacityExceeded, with nothing changed, when
   * the node pool is empty.
   */
  link(h: number, group: Group): number {
    const w = this.entryWith(h, Perm.LINK, 'link');
    this.checkGroup(group);
    group.checkLive();
    const o = this.o;
    const r = Atomics.load(o.i32, w + E_ROUTE);
    const rw = o.routes.word(r);
    // DESIGN section 1: link through a closed route kills the caller's group (the partner is
    // gone), whichever group the route was in: a closed route tells its holder nothing more.
    // A trapping group gets an exit instead. Either way the route's close reason is what
    // travels (its slot holds the detail; our entry holds the route).
    if ((Atomics.load(o.i32, rw + R_PIN) & R_CLOSED_BIT) !== 0) {
      partnerGone(
        o,
        group.index,
        group.generation,
        Atomics.load(o.i32, rw + R_GROUP),
        Atomics.load(o.i32, rw + R_GROUP_GEN),
        Atomics.load(o.i32, rw + R_REASON),
        Atomics.load(o.i32, rw + R_CODE),
        Atomics.load(o.i32, rw + R_DETAIL),
      );
      return 0;
    }
    const id = linkGroups(
      o,
      group.index,
      group.generation,
      Atomics.load(o.i32, rw + R_GROUP),
      Atomics.load(o.i32, rw + R_GROUP_GEN),
    );
    if (id !== 0) this.links.add(id);
    return id;
  }

  /** Removes a link made by this table. Returns false when it is gone already (a side died, or unlinked). */
  unlink(id: number): boolean {
    this.checkOpen();
    if (!this.links.delete(id)) return false;
    return unlinkGroups(this.o, id);
  }

  // ---------------------------------------------------------------- bearer form

  /** A single-use bearer form of h (the table keeps h). See OwnedCapability. */
  toOwned(h: number): OwnedCapability {
    this.checkOpen();
    const w = this.entry(h);
    const o = this.o;
    const i32 = o.i32;
    const node = o.allocNode(NK_OWNED);
    const nw = o.nodes.word(node);
    const route = Atomics.load(i32, w + E_ROUTE);
    const perms = Atomics.load(i32, w + E_PERMS);
    Atomics.store(i32, nw + N_A, route);
    Atomics.store(i32, nw + N_B, Atomics.load(i32, w + E_ROUTE_GEN));
    Atomics.store(i32, nw + N_C, perms);
    retainRoute(o, route);
    Atomics.add(i32, C_OWNED, 1);
    return Object.freeze({ office: o.officeId, token: makeId(node, Atomics.load(i32, nw + N_GEN)), perms });
  }

  /** Imports an owned capability into this table and returns its handle. */
  importOwned(owned: OwnedCapability): number {
    this.checkOpen();
    const o = this.o;
    const node = claimOwned(o, owned);
    const nw = o.nodes.word(node);
    const i32 = o.i32;
    let h: number;
    try {
      h = this.addEntry(
        Atomics.load(i32, nw + N_A),
        Atomics.load(i32, nw + N_B),
        Atomics.load(i32, nw + N_C),
      );
    } catch (error) {
      Atomics.store(i32, nw + N_KIND, NK_OWNED); // give the token back
      throw error;
    }
    Atomics.sub(i32, C_OWNED, 1);
    o.freeNode(node);
    return h;
  }

  // ---------------------------------------------------------------- teardown

  /**
   * Closes every mailbox of this table, releases every handle and group, and
   * frees the table. Links of its groups stay until a side dies or the group
   * is freed.
   */
  close(): void {
    if (this.closed) return;
    for (const mailbox of [...this.mailboxes]) mailbox.close();
    const o = this.o;
    dropHazard(o);
    while (this.head !== 0) releaseRoute(o, this.removeEntry(this.head - 1));
    for (const group of [...this.groups]) group.release();
    this.closed = true;
    this.monitors.clear();
    this.links.clear();
    Atomics.store(o.i32, o.tables.word(this.index) + T_THREAD, -1);
    o.tables.free(this.index, o.tables.word(this.index) + T_GEN);
    o.openTables--;
    o.releaseProducerIfDone();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

/** Takes the node of an owned token for the caller, or throws. */
export function claimOwned(o: Shared, owned: OwnedCapability): number {
  if (owned === null || typeof owned !== 'object' || typeof owned.token !== 'number') {
    throw new InvalidHandle('not an owned capability');
  }
  if (owned.office !== o.officeId) throw new PostOfficeMismatch('owned capability of another post office');
  const gen = idGeneration(owned.token);
  const node = idIndex(owned.token);
  if (gen < 0 || node >= o.nodes.count) throw new InvalidHandle('not an owned capability');
  const i32 = o.i32;
  const nw = o.nodes.word(node);
  if (Atomics.load(i32, nw + N_GEN) !== gen) throw new InvalidHandle('owned capability already used');
  // Claim by kind, then confirm the generation: a node freed and reused as
  // another token between the two would fail the second check.
  // Claims the token: only one importer (or discarder) wins.
  if (Atomics.compareExchange(i32, nw + N_KIND, NK_OWNED, NK_OWNED_CLAIMED) !== NK_OWNED) {
    throw new InvalidHandle('owned capability already used');
  }
  if (Atomics.load(i32, nw + N_GEN) !== gen) {
    Atomics.store(i32, nw + N_KIND, NK_OWNED);
    throw new InvalidHandle('owned capability already used');
  }
  return node;
}

/** Discards a claimed owned node: drops its route reference. */
export function dropOwned(o: Shared, node: number): void {
  freeRouteNode(o, node, C_OWNED);
}
