/**
 * A mailbox: the receiving end of one route, owned by one table (and so by
 * one thread), the single consumer of the route's ring.
 *
 * Receive order: pending downs first (they live in the node pool, pushed
 * onto the route's R_DOWNS stack by whoever closed a watched route, so a
 * full ring never loses one), then ring records in order. A REC_NUDGE record
 * only wakes the owner to look at downs and at the close. Once the route is
 * closed, ring records are no longer delivered (a kill discards what is
 * queued); the remaining downs are, then `end`, once.
 *
 * The closed bit is checked after a record is peeked and before it is
 * handed out, so a record is never delivered after the close was published.
 */

import { Ring } from '../ring/index.ts';
import { CorruptRecord, InvalidHandle } from './errors.ts';
import type { Group } from './group.ts';
import { clearTrap } from './groups.ts';
import {
  C_DOWNS,
  C_EXITS,
  idIndex,
  makeId,
  N_A,
  N_B,
  N_C,
  N_D,
  N_E,
  N_KIND,
  N_NEXT,
  NK_EXIT,
  PAGE_BYTES,
  R_CLOSED_BIT,
  R_CODE,
  R_DETAIL,
  R_DOWNS,
  R_GEN,
  R_GONE_BIT,
  R_LOCAL_DOWNS,
  R_OWNER_TABLE,
  R_PIN,
  R_REASON,
  R_RING,
  REASON_CLOSED,
  REC_CAPS,
  REC_LARGE,
  REC_NUDGE,
  REC_PLAIN,
} from './layout.ts';
import { isPermSet, Perm, type Perms } from './perm.ts';
import { readDetail, releaseDetail } from './reasons.ts';
import {
  closeRoute,
  createRoute,
  demonitorRoute,
  discardDownList,
  dropHazard,
  dropHazardOn,
  releaseRoute,
  retainRoute,
  routeGen,
  settle,
} from './routes.ts';
import type { Shared } from './shared.ts';
import {
  type DownSignal,
  type EndSignal,
  type ExitSignal,
  InPlaceSignal,
  type MessageSignal,
  reasonName,
  type Signal,
} from './signals.ts';
import type { Table } from './table.ts';

export interface MailboxOptions {
  /** Bytes of ring space, a power of two (default: the post office's mailboxCapacity). */
  capacity?: number;
  /**
   * Largest record stored in the ring; larger messages go to the shared heap.
   * Default: the larger of capacity / 8 - 8 and min(capacity / 2 - 8, 256).
   */
  maxRecordLength?: number;
}

export interface ReceiveOptions {
  /** Resolve with null after this many milliseconds without a signal. Default: wait for ever. */
  timeoutMs?: number;
}

/** The payload of a nudge record. */
const NO_BYTES = new Uint8Array(0);

export class Mailbox {
  readonly table: Table;
  readonly group: Group;
  /** @internal Route slot index. */
  readonly route: number;
  /** @internal Route generation. */
  readonly generation: number;
  /** @internal Monitor ids whose downs come to this mailbox. */
  readonly monitors = new Set<number>();
  /** @internal Set once its group has trapped exits into it: it clears the trap when it lets go. */
  trapping = false;
  private readonly o: Shared;
  /** @internal The mailbox's ring (the runtime gives it a doorbell). */
  readonly ring: Ring;
  private readonly pinWord: number;
  private readonly downsWord: number;
  private readonly localDownsWord: number;
  /**
   * Downs and exits taken off R_DOWNS, oldest first (node index + 1 through
   * N_NEXT). Mirrored in R_LOCAL_DOWNS, so that they are found if this thread dies.
   */
  private localDowns = 0;
  /** This thread's receives currently parked on the ring (awaiting waitForRecordAsync). */
  private parkedReceives = 0;
  /** Closed while receives were parked: the ring is let go when the last of them leaves. */
  private letGoWhenUnparked = false;
  /** A record delivered in place and not yet released; its out-of-line body, if any. */
  private held = false;
  private heldAt = 0;
  private heldBody = -1;
  private heldBodyLength = 0;
  private end: EndSignal | null = null;
  private readonly view: InPlaceSignal;

  /** @internal */
  constructor(group: Group, options: MailboxOptions) {
    this.group = group;
    this.table = group.table;
    const o = group.table.o;
    this.o = o;
    const capacity = options.capacity ?? o.mailboxCapacity;
    // The ring's own default (capacity / 8 - 8) leaves small rings no room for
    // a record at all; give them up to half the ring, at most 256 bytes.
    const maxRecordLength =
      options.maxRecordLength ?? Math.max(capacity / 8 - 8, Math.min(capacity / 2 - 8, 256));
    this.route = createRoute(
      o,
      group.index,
      group.table.index,
      group.table.generation,
      capacity,
      maxRecordLength,
    );
    this.generation = routeGen(o, this.route);
    this.pinWord = o.routes.word(this.route) + R_PIN;
    this.downsWord = o.routes.word(this.route) + R_DOWNS;
    this.localDownsWord = o.routes.word(this.route) + R_LOCAL_DOWNS;
    this.ring = Ring.attach(o.buffer, Atomics.load(o.i32, o.routes.word(this.route) + R_RING));
    this.view = new InPlaceSignal(o.u8);
  }

  /** Whether the route has closed (killed or closed). May be stale the moment it is read. */
  get closed(): boolean {
    return this.end !== null || (Atomics.load(this.o.i32, this.pinWord) & R_CLOSED_BIT) !== 0;
  }

  /** @internal Whether this mailbox has let go of its route (closed by its owner, or its end reported). */
  get finished(): boolean {
    return this.end !== null;
  }

  /** Largest message kept inline in the ring; larger ones travel through the shared heap. */
  get maxRecordLength(): number {
    return this.ring.maxRecordLength;
  }

  /** A handle, in this mailbox's table, to this mailbox's route, with any permissions. */
  export(perms: Perms = Perm.ALL): number {
    if (this.end !== null) throw new InvalidHandle('this mailbox is closed');
    if (!isPermSet(perms)) throw new RangeError(`${perms} is not a set of permissions`);
    retainRoute(this.o, this.route);
    try {
      return this.table.addEntry(this.route, this.generation, perms);
    } catch (error) {
      releaseRoute(this.o, this.route);
      throw error;
    }
  }

  /**
   * Closes the route (monitors get `down` with reason closed; the group
   * lives on) and lets go of the mailbox: queued messages and pending downs
   * are discarded. Receive reports `end` from now on.
   */
  close(): void {
    if (this.end !== null) return;
    closeRoute(this.o, this.route, REASON_CLOSED);
    this.finish();
  }

  /**
   * @internal Waits until something may be receivable (a record, a down, an
   * exit, the close) or `timeoutMs` passes, without taking it: for callers
   * that poll with `tryReceiveInPlace` themselves. Parks like `receive`
   * (holding no other mailbox's ring meanwhile, and keeping this one's ring
   * if the mailbox is closed under the wait).
   */
  async waitForSignal(timeoutMs = Number.POSITIVE_INFINITY): Promise<void> {
    if (this.end !== null) return;
    dropHazard(this.o); // going idle: hold no other mailbox's ring meanwhile
    this.parkedReceives++;
    try {
      await this.ring.waitForRecordAsync(timeoutMs);
    } finally {
      this.parkedReceives--;
      // ...closed while we were parked: the ring was kept for us; now it can go.
      if (this.parkedReceives === 0 && this.letGoWhenUnparked) {
        this.letGoWhenUnparked = false;
        this.letGo();
      }
    }
  }

  /**
   * @internal The doorbell form of a parked receive (ring/doorbell.ts): after
   * a receive found nothing, arms the ring's doorbell and re-checks pending
   * downs and the close. True when the doorbell will be rung by the next
   * record, down or close; false (withdrawn) when something can be received
   * now. The ring must have been given a doorbell (`ring.setDoorbell`).
   */
  armDoorbell(): boolean {
    if (this.end !== null) return false;
    if (!this.ring.armDoorbell()) return false;
    const i32 = this.o.i32;
    // Downs and the close each write a nudge record too; these reads only spare a wake-up.
    if (
      this.localDowns !== 0 ||
      Atomics.load(i32, this.downsWord) !== 0 ||
      (Atomics.load(i32, this.pinWord) & R_CLOSED_BIT) !== 0
    ) {
      this.ring.disarmDoorbell();
      return false;
    }
    dropHazard(this.o); // going idle: hold no other mailbox's ring meanwhile
    return true;
  }

  // ---------------------------------------------------------------- receive

  /** The next signal, or null when there is none yet. Never blocks. */
  tryReceive(): Signal | null {
    return this.poll(false) as Signal | null;
  }

  /** Waits up to `timeoutMs` (blocking the thread) for the next signal; null on timeout. */
  receiveSync(timeoutMs = Number.POSITIVE_INFINITY): Signal | null {
    return this.pollSync(false, timeoutMs) as Signal | null;
  }

  /** Awaits the next signal (null only after `timeoutMs`). */
  receive(options: ReceiveOptions = {}): Promise<Signal | null> {
    return this.pollAsync(false, options.timeoutMs ?? Number.POSITIVE_INFINITY) as Promise<Signal | null>;
  }

  /**
   * The next signal in place, or null. The returned object is this mailbox's
   * one InPlaceSignal: a message's bytes are read where they lie and stay
   * valid until the next receive of any kind. Allocates nothing for a
   * message without capabilities.
   */
  tryReceiveInPlace(): InPlaceSignal | null {
    return this.poll(true) as InPlaceSignal | null;
  }

  receiveInPlaceSync(timeoutMs = Number.POSITIVE_INFINITY): InPlaceSignal | null {
    return this.pollSync(true, timeoutMs) as InPlaceSignal | null;
  }

  receiveInPlace(options: ReceiveOptions = {}): Promise<InPlaceSignal | null> {
    return this.pollAsync(
      true,
      options.timeoutMs ?? Number.POSITIVE_INFINITY,
    ) as Promise<InPlaceSignal | null>;
  }

  private pollSync(inPlace: boolean, timeoutMs: number): Signal | InPlaceSignal | null {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const signal = this.poll(inPlace);
      if (signal !== null) return signal;
      const left = deadline - performance.now();
      if (left <= 0) return null;
      dropHazard(this.o); // going idle: hold no other mailbox's ring meanwhile
      this.ring.waitForRecord(left);
    }
  }

  private async pollAsync(inPlace: boolean, timeoutMs: number): Promise<Signal | InPlaceSignal | null> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const signal = this.poll(inPlace);
      if (signal !== null) return signal;
      const left = deadline - performance.now();
      if (left <= 0) return null;
      dropHazard(this.o); // going idle: hold no other mailbox's ring meanwhile
      this.parkedReceives++;
      try {
        await this.ring.waitForRecordAsync(left);
      } finally {
        this.parkedReceives--;
        // ...closed while we were parked: the ring was kept for us; now it can go.
        if (this.parkedReceives === 0 && this.letGoWhenUnparked) {
          this.letGoWhenUnparked = false;
          this.letGo();
        }
      }
    }
  }

  private poll(inPlace: boolean): Signal | InPlaceSignal | null {
    if (this.end !== null) return this.endSignal(inPlace);
    this.releaseHeld();
    const i32 = this.o.i32;
    const ring = this.ring;
    for (;;) {
      const down = this.takeDown();
      if (down >= 0) return this.deliverDown(down, inPlace);
      const length = ring.peek();
      // The close is read after the peek: a record is handed out only if the
      // route was still open once the record was seen.
      if ((Atomics.load(i32, this.pinWord) & R_CLOSED_BIT) !== 0) {
        // ...closed: queued records are discarded; downs pushed before the close still go out.
        if (this.takeDown() >= 0) continue;
        this.finish();
        return this.endSignal(inPlace);
      }
      if (length < 0) return null;
      const type = ring.recordType;
      if (type === REC_NUDGE) {
        ring.release();
        continue;
      }
      return this.deliverRecord(type, ring.recordOffset, length, inPlace);
    }
  }

  /** The oldest pending down's node, or -1. */
  private takeDown(): number {
    if (this.localDowns === 0) {
      const i32 = this.o.i32;
      const downsWord = this.downsWord;
      if (Atomics.load(i32, downsWord) === 0) return -1;
      // Take the whole stack (newest first) and reverse it: oldest first.
      let x = Atomics.exchange(i32, downsWord, 0);
      let reversed = 0;
      while (x !== 0) {
        const nextWord = this.o.nodes.word(x - 1) + N_NEXT;
        const next = Atomics.load(i32, nextWord);
        Atomics.store(i32, nextWord, reversed);
        reversed = x;
        x = next;
      }
      this.setLocalDowns(reversed);
    }
    return this.localDowns - 1;
  }

  private deliverDown(node: number, inPlace: boolean): DownSignal | ExitSignal | InPlaceSignal {
    const o = this.o;
    const i32 = o.i32;
    const nw = o.nodes.word(node);
    if (Atomics.load(i32, nw + N_KIND) === NK_EXIT) return this.deliverExit(node, inPlace);
    const watched = Atomics.load(i32, nw + N_A);
    const reason = reasonName(Atomics.load(i32, nw + N_C));
    // The watched route's close reason: constant since its close, kept by the reference the node holds.
    const ww = o.routes.word(watched);
    const code = Atomics.load(i32, ww + R_CODE);
    const monitor = makeId(node, o.nodeGen(node));
    // The node's reference on the watched route passes to the new entry; if the table is full, nothing changes.
    const route = this.table.addEntry(watched, Atomics.load(i32, nw + N_B), 0);
    const detail = readDetail(o, Atomics.load(i32, ww + R_DETAIL));
    this.setLocalDowns(Atomics.load(i32, nw + N_NEXT));
    Atomics.sub(i32, C_DOWNS, 1);
    o.freeNode(node);
    this.monitors.delete(monitor);
    this.table.monitors.delete(monitor);
    if (!inPlace) return { kind: 'down', route, reason, monitor, code, detail };
    const view = this.view;
    view.kind = 'down';
    view.route = route;
    view.reason = reason;
    view.monitor = monitor;
    view.from = 0;
    view.code = code;
    view.detail = detail;
    view.length = 0;
    view.caps.length = 0;
    return view;
  }

  private setLocalDowns(head: number): void {
    this.localDowns = head;
    Atomics.store(this.o.i32, this.localDownsWord, head); // where a reclaimer finds them (only this thread reads it otherwise)
  }

  /** Delivers pending exit node `node` (trapped exits come the way downs do). */
  private deliverExit(node: number, inPlace: boolean): ExitSignal | InPlaceSignal {
    const o = this.o;
    const i32 = o.i32;
    const nw = o.nodes.word(node);
    const fromRoute = Atomics.load(i32, nw + N_A);
    // The node's reference on the identity route passes to the new entry; if the table is full, nothing changes.
    const from = fromRoute < 0 ? 0 : this.table.addEntry(fromRoute, Atomics.load(i32, nw + N_B), 0);
    const reason = reasonName(Atomics.load(i32, nw + N_C));
    const code = Atomics.load(i32, nw + N_D);
    const blob = Atomics.load(i32, nw + N_E);
    const detail = readDetail(o, blob);
    this.setLocalDowns(Atomics.load(i32, nw + N_NEXT));
    Atomics.sub(i32, C_EXITS, 1);
    o.freeNode(node);
    releaseDetail(o, blob);
    if (!inPlace) return { kind: 'exit', from, reason, code, detail };
    const view = this.view;
    view.kind = 'exit';
    view.from = from;
    view.route = from;
    view.monitor = 0;
    view.reason = reason;
    view.code = code;
    view.detail = detail;
    view.length = 0;
    view.caps.length = 0;
    return view;
  }

  private deliverRecord(
    type: number,
    at: number,
    length: number,
    inPlace: boolean,
  ): MessageSignal | InPlaceSignal {
    const o = this.o;
    const i32 = o.i32;
    let dataAt = at;
    let dataLength = length;
    let body = -1;
    const caps: number[] = inPlace ? this.view.caps : [];
    if (caps.length !== 0) caps.length = 0;
    const problem = this.recordProblem(type, at, length);
    if (problem !== null) {
      // Skipped whole: what a forged record claims to hold is not ours to take or free.
      this.ring.release();
      throw new CorruptRecord(`mailbox record skipped: ${problem}`);
    }
    // What a record holds is zeroed in it as it is taken (its capabilities
    // now, its body when freed): a consumed record not yet handed back to the
    // ring then holds nothing, and whoever drains a dead consumer's ring from
    // HEAD releases nothing twice (routes.ts, discardRecord).
    if (type === REC_CAPS) {
      const n = i32[at >> 2]!;
      this.importCaps(at + 4, n, caps);
      if (n !== 0) Atomics.store(i32, at >> 2, 0); // the references are the table's now
      dataAt = at + 4 + 12 * n;
      dataLength = length - 4 - 12 * n;
    } else if (type === REC_LARGE) {
      const n = i32[(at >> 2) + 2]!;
      this.importCaps(at + 12, n, caps);
      if (n !== 0) Atomics.store(i32, (at >> 2) + 2, 0); // the references are the table's now
      body = i32[at >> 2]!;
      dataAt = body;
      dataLength = i32[(at >> 2) + 1]!;
    }
    if (!inPlace) {
      const data = o.u8.slice(dataAt, dataAt + dataLength);
      if (body >= 0) {
        Atomics.store(i32, at >> 2, 0); // the body is taken
        o.freeHeap(body, dataLength);
      }
      this.ring.release();
      return { kind: 'message', data, caps };
    }
    this.held = true;
    this.heldAt = at;
    this.heldBody = body;
    this.heldBodyLength = dataLength;
    const view = this.view;
    view.kind = 'message';
    view.offset = dataAt;
    view.length = dataLength;
    return view;
  }

  /**
   * Why a record cannot have been written by the post office, or null. Checks
   * its type, that its capability triples fit in it and name route slots as
   * they are now (index in the pool, current generation, known permissions),
   * and that an out-of-line body lies inside the heap and the message limit.
   */
  private recordProblem(type: number, at: number, length: number): string | null {
    const o = this.o;
    const i32 = o.i32;
    let triples: number;
    let n: number;
    if (type === REC_PLAIN) return null;
    if (type === REC_CAPS) {
      n = i32[at >> 2]!;
      triples = at + 4;
      if (n < 0 || 4 + 12 * n > length) return `${n} capabilities in a record of ${length} bytes`;
    } else if (type === REC_LARGE) {
      if (length < 12) return `an out-of-line record of ${length} bytes`;
      const body = i32[at >> 2]!;
      const bodyLength = i32[(at >> 2) + 1]!;
      n = i32[(at >> 2) + 2]!;
      triples = at + 12;
      if (n < 0 || 12 + 12 * n > length) return `${n} capabilities in a record of ${length} bytes`;
      const heapEnd = o.heapStart + o.heap.count * PAGE_BYTES;
      if (
        bodyLength < 0 ||
        bodyLength > o.maxMessageBytes ||
        body < o.heapStart ||
        body + bodyLength > heapEnd
      ) {
        return `an out-of-line body of ${bodyLength} bytes at ${body}, outside the heap`;
      }
    } else {
      return `unknown record type ${type}`;
    }
    for (let k = 0; k < n; k++) {
      const w = (triples >> 2) + 3 * k;
      const route = i32[w]!;
      if (route < 0 || route >= o.routes.count) return `capability names route slot ${route}`;
      if (i32[w + 1] !== Atomics.load(i32, o.routes.word(route) + R_GEN)) {
        return `capability names a past generation of route slot ${route}`;
      }
      if (!isPermSet(i32[w + 2])) return `capability with permissions ${i32[w + 2]}`;
    }
    return null;
  }

  /** Imports n capability triples at byte `at` into the table; all or none (then it throws). */
  private importCaps(at: number, n: number, into: number[]): void {
    const i32 = this.o.i32;
    const word = at >> 2;
    try {
      for (let k = 0; k < n; k++) {
        // The record's reference on each route passes to the new entry.
        into.push(this.table.addEntry(i32[word + 3 * k]!, i32[word + 3 * k + 1]!, i32[word + 3 * k + 2]!));
      }
    } catch (error) {
      // Undo: the references go back to the record, which stays in the ring.
      for (const h of into) this.table.removeEntry(idIndex(h));
      into.length = 0;
      throw error;
    }
  }

  private releaseHeld(): void {
    if (!this.held) return;
    this.held = false;
    if (this.heldBody >= 0) {
      Atomics.store(this.o.i32, this.heldAt >> 2, 0); // the body is taken (see deliverRecord)
      this.o.freeHeap(this.heldBody, this.heldBodyLength);
      this.heldBody = -1;
    }
    this.ring.release();
  }

  private endSignal(inPlace: boolean): EndSignal | InPlaceSignal {
    const end = this.end!;
    if (!inPlace) return end;
    const view = this.view;
    view.kind = 'end';
    view.reason = end.reason;
    view.code = end.code;
    view.detail = end.detail === null ? null : end.detail.slice();
    view.length = 0;
    view.caps.length = 0;
    return view;
  }

  /**
   * Lets go of the route: the owner's reference, its monitors and pending
   * downs; the ring is freed once no sender is pinned on it.
   */
  private finish(): void {
    const o = this.o;
    const i32 = o.i32;
    this.releaseHeld();
    // Whoever frees the ring drains it from HEAD: hand back what this consumer has consumed first.
    this.ring.flushConsumed();
    // The close reason is constant once closed, and the owner's reference (still held) keeps it.
    const w = o.routes.word(this.route);
    this.end = Object.freeze({
      kind: 'end',
      reason: reasonName(Atomics.load(i32, w + R_REASON)),
      code: Atomics.load(i32, w + R_CODE),
      detail: readDetail(o, Atomics.load(i32, w + R_DETAIL)),
    });
    // Its group stops trapping into it before the owner's reference goes (G_TRAP names a held route).
    if (this.trapping) clearTrap(o, this.group.index, this.group.generation, this.route);
    for (const id of this.monitors) {
      demonitorRoute(o, id);
      this.table.monitors.delete(id);
    }
    this.monitors.clear();
    discardDownList(o, this.localDowns);
    this.setLocalDowns(0);
    discardDownList(o, Atomics.exchange(i32, o.routes.word(this.route) + R_DOWNS, 0));
    if (this.parkedReceives > 0) {
      // A receive of ours is parked on this ring: once freed, its pages may hold another
      // mailbox's ring, which the waking receive would write into. Wake it with a nudge (the
      // ring is still ours: if it is full, the waiter is being woken anyway) and let the ring
      // go when the last parked receive has left it.
      this.letGoWhenUnparked = true;
      this.ring.tryWrite(o.producer, REC_NUDGE, NO_BYTES);
      return;
    }
    this.letGo();
  }

  /** Hands the ring over to be freed and drops the mailbox's route reference. */
  private letGo(): void {
    const o = this.o;
    Atomics.or(o.i32, this.pinWord, R_GONE_BIT); // publishes: nobody consumes this ring any more
    dropHazardOn(o, this.route); // a hazard of ours (from sending to ourselves) must not hold it
    settle(o, this.route);
    this.table.mailboxes.delete(this);
    Atomics.store(o.i32, o.routes.word(this.route) + R_OWNER_TABLE, 0); // before the reference goes: no reclaimer drops it again
    releaseRoute(o, this.route);
  }
}
