/**
 * Routes: creation, references, close, the pin protocol that keeps a ring
 * alive while someone writes into it, monitors and pending downs.
 *
 * Lifecycle of a route slot (all in the R_PIN word, so that exactly one
 * thread performs each release, whatever the interleaving):
 *
 *   open --close--> CLOSED --owner lets go--> +GONE --pins drain--> +RING_FREED
 *        --last reference dropped, slot left its group--> +UNREF --> +SLOT_FREED
 *
 * - Senders and down-pushers post a hazard (their thread record names the
 *   route; see `enter`) before touching the ring; an awaiting sender pins
 *   instead (adds 1 to the count). A ring with a hazard or a pin on it
 *   is never freed. Both only happen while holding a reference, so neither
 *   lands on a freed slot. A dead thread's hazard is cleared by whoever
 *   declares it dead.
 * - After any change, `settle` frees what has become free: the ring once the
 *   owner is GONE and no hazard or pin is held; the slot once UNREF and the
 *   ring freed.
 *   Each step is claimed by a compare-and-swap setting its bit.
 * - References (R_REFS) keep the slot (generation, close reason, group) alive
 *   for as long as anything can name the route, so kill, monitor and link on
 *   a closed route always know its group and its reason.
 */

import { Ring } from '../ring/index.ts';
import { addMember, freeGroup, removeMember, retainGroup } from './groups.ts';
import {
  C_DOWNS,
  C_EXITS,
  C_MONITORS,
  C_OPEN_ROUTES,
  G_DEFER_NEXT,
  G_GEN,
  G_REFS,
  HAZARD_ROUTE_MASK,
  idGeneration,
  idIndex,
  makeId,
  N_A,
  N_B,
  N_C,
  N_D,
  N_E,
  N_GEN,
  N_KIND,
  N_NEXT,
  NK_DOWN,
  NK_EXIT,
  NK_MONITOR,
  NK_REMOVED,
  OP_CLOSE,
  OP_DEMONITOR,
  OP_JOIN,
  OP_MONITOR,
  PAGE_BYTES,
  PIN_COUNT_MASK,
  R_CLOSED_BIT,
  R_CODE,
  R_DEFER_NEXT,
  R_DETAIL,
  R_DOWNS,
  R_FLAGS,
  R_GEN,
  R_GONE_BIT,
  R_GROUP,
  R_GROUP_GEN,
  R_LOCAL_DOWNS,
  R_LOCK,
  R_MONITORS,
  R_OWNER_GEN,
  R_OWNER_TABLE,
  R_PIN,
  R_REASON,
  R_REFS,
  R_RING,
  R_RING_FREED_BIT,
  R_RING_PAGES,
  R_SLOT_FREED_BIT,
  R_UNREF_BIT,
  REC_CAPS,
  REC_LARGE,
  REC_NUDGE,
  TH_DEFER_GROUPS,
  TH_DEFER_ROUTES,
  TH_FIRE_WATCHER,
  TH_FREE_GEN,
  TH_FREE_GROUP,
  TH_FREE_STEP,
  TH_STEP,
  TH_UNREF_ROUTE,
} from './layout.ts';
import { lock, unlock } from './lock.ts';
import { releaseDetail, retainDetail } from './reasons.ts';
import type { Shared } from './shared.ts';

const EMPTY = new Uint8Array(0);

/**
 * Lays out a new route with its mailbox ring in group `g` and returns its
 * slot index. The caller holds a reference on `g`; the route starts with one
 * reference, the owner's. In a group that is already dead the route is born
 * closed (reason killed): a route never comes up live in a dead group.
 */
export function createRoute(
  o: Shared,
  g: number,
  ownerTable: number,
  ownerTableGen: number,
  capacity: number,
  maxRecordLength: number | undefined,
): number {
  const i32 = o.i32;
  const ringBytes = Ring.bytesFor(capacity);
  const r = o.routes.alloc();
  const w = o.routes.word(r);
  let ringOffset: number;
  try {
    ringOffset = o.allocHeap(ringBytes);
  } catch (error) {
    o.routes.free(r, w + R_GEN);
    throw error;
  }
  try {
    Ring.init(o.buffer, ringOffset, { capacity, maxRecordLength, producerSlotsOffset: o.slots.byteOffset });
  } catch (error) {
    o.freeHeap(ringOffset, ringBytes);
    o.routes.free(r, w + R_GEN);
    throw error;
  }
  Atomics.store(i32, w + R_PIN, 0);
  Atomics.store(i32, w + R_REFS, 1);
  Atomics.store(i32, w + R_GROUP, g);
  Atomics.store(i32, w + R_GROUP_GEN, Atomics.load(i32, o.groups.word(g) + G_GEN));
  Atomics.store(i32, w + R_RING, ringOffset);
  Atomics.store(i32, w + R_RING_PAGES, Math.ceil(ringBytes / PAGE_BYTES));
  // R_LOCK is left alone: only lock/unlock change a lock word (a thread validating a stale id may hold it now).
  Atomics.store(i32, w + R_MONITORS, 0);
  Atomics.store(i32, w + R_DOWNS, 0);
  Atomics.store(i32, w + R_REASON, 0);
  Atomics.store(i32, w + R_CODE, 0);
  Atomics.store(i32, w + R_DETAIL, 0);
  Atomics.store(i32, w + R_FLAGS, 0);
  Atomics.store(i32, w + R_LOCAL_DOWNS, 0);
  Atomics.store(i32, w + R_OWNER_GEN, ownerTableGen);
  retainGroup(o, g);
  // Counted open from here on (a route born closed is counted out with its close), and owned:
  // if this thread dies from here on, the reclaimer finds the route and lets it go.
  Atomics.add(i32, C_OPEN_ROUTES, 1);
  Atomics.store(i32, w + R_OWNER_TABLE, ownerTable + 1);
  o.intend(OP_JOIN, r, g);
  addMember(o, g, r);
  o.done();
  return r;
}

export function routeGen(o: Shared, r: number): number {
  return Atomics.load(o.i32, o.routes.word(r) + R_GEN);
}

export function retainRoute(o: Shared, r: number): void {
  Atomics.add(o.i32, o.routes.word(r) + R_REFS, 1);
}

/** Drops one reference; the last one frees the slot (deferred while this thread holds a lock). */
export function releaseRoute(o: Shared, r: number): void {
  const i32 = o.i32;
  const w = o.routes.word(r);
  if (Atomics.sub(i32, w + R_REFS, 1) !== 1) return;
  // In the same straight run: the route joins this thread's deferred frees (a recoverer finds it there).
  Atomics.store(i32, w + R_DEFER_NEXT, Atomics.load(i32, o.intentWord + TH_DEFER_ROUTES));
  Atomics.store(i32, o.intentWord + TH_DEFER_ROUTES, r + 1);
  runDeferred(o);
}

/**
 * Frees routes and groups whose last reference went. Runs only at lock
 * depth 0 and never re-enters: freeing a route takes its group's lock, and
 * may drop further references (capabilities in discarded records, watched
 * routes of pending downs) that join the worklist instead of recursing.
 */
export function runDeferred(o: Shared): void {
  if (o.deferDepth !== 0 || o.unrefRunning) return;
  o.unrefRunning = true;
  const i32 = o.i32;
  const iw = o.intentWord;
  try {
    for (;;) {
      const x = Atomics.load(i32, iw + TH_DEFER_ROUTES);
      if (x !== 0) {
        // Taken off the stack and recorded as in hand in one straight run.
        Atomics.store(i32, iw + TH_UNREF_ROUTE, x);
        Atomics.store(
          i32,
          iw + TH_DEFER_ROUTES,
          Atomics.load(i32, o.routes.slotBase + (x - 1) * o.routes.slotWords + R_DEFER_NEXT),
        );
        unrefRoute(o, x - 1);
        continue;
      }
      const y = Atomics.load(i32, iw + TH_DEFER_GROUPS);
      if (y !== 0) {
        // Taken off the stack and recorded as being freed in one straight run (groups.ts, freeGroup).
        Atomics.store(i32, iw + TH_FREE_STEP, 0);
        Atomics.store(i32, iw + TH_FREE_GEN, -1);
        Atomics.store(i32, iw + TH_FREE_GROUP, y);
        Atomics.store(
          i32,
          iw + TH_DEFER_GROUPS,
          Atomics.load(i32, o.groups.slotBase + (y - 1) * o.groups.slotWords + G_DEFER_NEXT),
        );
        freeGroup(o, y - 1);
        continue;
      }
      break;
    }
  } finally {
    o.unrefRunning = false;
  }
}

/**
 * Makes this thread's hazard name route `r` and returns r's R_PIN word (test
 * the flag bits). While the hazard names r, a ring found open stays
 * allocated: the freer reads hazards after publishing GONE, this reads GONE
 * after publishing the hazard, and with sequentially consistent atomics one
 * of the two sees the other.
 *
 * The hazard is sticky: it keeps naming r after the call, so a stream of
 * sends to one route publishes it once. It moves when the thread enters
 * another route (then the route it leaves is settled, in case a freer left
 * its ring to us), and is dropped by `dropHazard` when the thread goes idle,
 * closes a table, lets its own mailbox go or detaches. So a busy thread can
 * keep one gone ring allocated a little longer, never for good.
 */
export function enter(o: Shared, r: number): number {
  const mark = o.hazardTag | (r + 1);
  const previous = o.hazardCurrent;
  if (previous !== mark) {
    Atomics.store(o.i32, o.hazardWord, mark); // publishes the hazard before the state is read
    o.hazardCurrent = mark;
    if (previous !== 0) afterHazard(o, (previous & HAZARD_ROUTE_MASK) - 1);
  }
  const state = Atomics.load(o.i32, o.routes.word(r) + R_PIN);
  // ...a closed route's ring is of no more use to us: let it go now.
  if ((state & R_GONE_BIT) !== 0) dropHazard(o);
  return state;
}

/** Drops this thread's hazard, so that the ring it named can be freed. */
export function dropHazard(o: Shared): void {
  const previous = o.hazardCurrent;
  if (previous === 0) return;
  Atomics.store(o.i32, o.hazardWord, 0);
  o.hazardCurrent = 0;
  afterHazard(o, (previous & HAZARD_ROUTE_MASK) - 1);
}

/** Drops this thread's hazard if it names route `r`. */
export function dropHazardOn(o: Shared, r: number): void {
  if ((o.hazardCurrent & HAZARD_ROUTE_MASK) === r + 1) dropHazard(o);
}

/** Our hazard no longer names route `q`: a freer that saw it may have left q's ring to us. */
function afterHazard(o: Shared, q: number): void {
  if ((Atomics.load(o.i32, o.routes.word(q) + R_PIN) & R_GONE_BIT) !== 0) settle(o, q);
}

/** Pins route `r` (a count, for users that hold the ring across an await) and returns the R_PIN value it found. */
export function pin(o: Shared, r: number): number {
  return Atomics.add(o.i32, o.routes.word(r) + R_PIN, 1);
}

export function unpin(o: Shared, r: number): void {
  const v = Atomics.sub(o.i32, o.routes.word(r) + R_PIN, 1) - 1;
  // ...then this may have been the last pin holding a gone mailbox's ring.
  if ((v & PIN_COUNT_MASK) === 0 && (v & R_GONE_BIT) !== 0) settle(o, r);
}

/** Frees whatever the route's lifecycle word says has become free; see the file comment. */
export function settle(o: Shared, r: number): void {
  const i32 = o.i32;
  const word = o.routes.word(r) + R_PIN;
  for (;;) {
    const v = Atomics.load(i32, word);
    if ((v & PIN_COUNT_MASK) !== 0) return; // ...a pin holder will settle when it unpins
    if ((v & R_GONE_BIT) !== 0 && (v & R_RING_FREED_BIT) === 0) {
      if (o.hazarded(r)) return; // ...a thread in the ring will settle when it leaves
      // Claims the ring's release: exactly one thread frees it.
      if (Atomics.compareExchange(i32, word, v, v | R_RING_FREED_BIT) === v) freeRing(o, r);
      continue;
    }
    if ((v & R_UNREF_BIT) !== 0 && (v & R_RING_FREED_BIT) !== 0 && (v & R_SLOT_FREED_BIT) === 0) {
      // Claims the slot's release: exactly one thread frees it.
      if (Atomics.compareExchange(i32, word, v, v | R_SLOT_FREED_BIT) === v) {
        // The close reason's detail goes with the slot.
        releaseDetail(o, Atomics.exchange(i32, o.routes.word(r) + R_DETAIL, 0));
        o.routes.free(r, o.routes.word(r) + R_GEN);
        return;
      }
      continue;
    }
    return;
  }
}

/** Discards the records still queued in a gone mailbox's ring and frees the ring. */
function freeRing(o: Shared, r: number): void {
  const w = o.routes.word(r);
  const offset = Atomics.load(o.i32, w + R_RING);
  const ring = Ring.attach(o.buffer, offset);
  ring.drain((type, _bytes, at, _length) => discardRecord(o, type, at));
  // Dead producers whose last claim was on this ring are released with it.
  ring.reclaimDeadProducers();
  o.freeHeap(offset, Atomics.load(o.i32, w + R_RING_PAGES) * PAGE_BYTES);
}

/**
 * Releases what a message record holds: the references of its capabilities,
 * its out-of-line body. A consumer that takes them zeroes the count (and the
 * body word) in the record first, so a record it consumed but did not yet
 * hand back holds nothing: a dead consumer's ring can be drained from HEAD.
 */
export function discardRecord(o: Shared, type: number, at: number): void {
  const i32 = o.i32;
  const word = at >> 2;
  if (type === REC_CAPS) {
    const n = i32[word]!;
    for (let k = 0; k < n; k++) releaseRoute(o, i32[word + 1 + 3 * k]!);
  } else if (type === REC_LARGE) {
    // A body word of 0: the consumer took the body already (mailbox.ts).
    if (i32[word] !== 0) o.freeHeap(i32[word]!, i32[word + 1]!);
    const n = i32[word + 2]!;
    for (let k = 0; k < n; k++) releaseRoute(o, i32[word + 3 + 3 * k]!);
  }
}

/** The last reference went: leave the group, drop pending downs, and let settle free the slot. */
export function unrefRoute(o: Shared, r: number): void {
  const i32 = o.i32;
  const w = o.routes.word(r);
  const g = Atomics.load(i32, w + R_GROUP);
  const gw = o.groups.word(g);
  removeMember(o, g, r);
  // One at a time: a recoverer that runs this again for a dead thread finds the rest still here.
  for (let x = Atomics.load(i32, w + R_DOWNS); x !== 0; x = Atomics.load(i32, w + R_DOWNS)) {
    Atomics.store(
      i32,
      w + R_DOWNS,
      Atomics.load(i32, o.nodes.slotBase + (x - 1) * o.nodes.slotWords + N_NEXT),
    );
    discardDown(o, x - 1);
  }
  // One straight run: the slot is let go, its group reference dropped (the group joins the
  // deferred frees if that was its last), and the route is no longer in hand.
  Atomics.or(i32, w + R_PIN, R_UNREF_BIT); // publishes: nothing names this slot any more
  if (Atomics.sub(i32, gw + G_REFS, 1) === 1) {
    Atomics.store(i32, gw + G_DEFER_NEXT, Atomics.load(i32, o.intentWord + TH_DEFER_GROUPS));
    Atomics.store(i32, o.intentWord + TH_DEFER_GROUPS, g + 1);
  }
  Atomics.store(i32, o.intentWord + TH_UNREF_ROUTE, 0);
  settle(o, r);
}

/** Frees a list of pending down and exit nodes (node index + 1 chained through N_NEXT). */
export function discardDownList(o: Shared, head: number): void {
  let x = head;
  while (x !== 0) {
    const n = x - 1;
    x = Atomics.load(o.i32, o.nodes.word(n) + N_NEXT);
    discardDown(o, n);
  }
}

/** Frees a pending down or exit node nobody will receive, with what it holds. */
export function discardDown(o: Shared, n: number): void {
  const i32 = o.i32;
  const nw = o.nodes.word(n);
  if (Atomics.load(i32, nw + N_KIND) !== NK_EXIT) {
    freeRouteNode(o, n, C_DOWNS);
    return;
  }
  const from = Atomics.load(i32, nw + N_A);
  const detail = Atomics.load(i32, nw + N_E);
  Atomics.sub(i32, C_EXITS, 1);
  o.freeNode(n);
  releaseDetail(o, detail);
  if (from >= 0) releaseRoute(o, from);
}

/**
 * Takes one more reference on route `r` unless its count has reached 0 (its
 * slot is on its way out). The caller must know the slot cannot be freed
 * meanwhile: it holds the lock of a group whose G_IDENTITY names `r`.
 */
export function tryRetainRoute(o: Shared, r: number): boolean {
  const word = o.routes.word(r) + R_REFS;
  for (let v = Atomics.load(o.i32, word); v !== 0; ) {
    const seen = Atomics.compareExchange(o.i32, word, v, v + 1);
    if (seen === v) return true;
    v = seen; // ...another reference came or went: look again
  }
  return false;
}

/**
 * Frees list node `n` whose N_A names a route it holds a reference to (a
 * pending down, an owned token): counts it out of `counterWord`, frees the
 * node, then drops the reference.
 */
export function freeRouteNode(o: Shared, n: number, counterWord: number): void {
  const route = Atomics.load(o.i32, o.nodes.word(n) + N_A);
  Atomics.sub(o.i32, counterWord, 1);
  o.freeNode(n);
  releaseRoute(o, route);
}

/**
 * Closes route `r` with `reason` (REASON_*), exit code `code` and detail
 * blob `detail` (0: none; the caller holds a reference) unless it is closed
 * already. Monitors fire: each monitor node becomes a down node pushed onto
 * its watcher's pending list. The owner's consumer is nudged awake. Returns
 * whether this call closed it.
 */
export function closeRoute(o: Shared, r: number, reason: number, code = 0, detail = 0): boolean {
  o.intend(OP_CLOSE, r, 0);
  const monitors = detachOnClose(o, r, reason, code, detail);
  if (monitors > 0) fireMonitors(o, r);
  o.done();
  return monitors >= 0;
}

/**
 * The first half of closeRoute: publishes the close (the monitor list stays
 * on the route, frozen) and returns how many monitors are to fire, or -1 if
 * the route was closed already. The caller then calls `fireMonitors`. Kill
 * closes a whole linked closure this way before firing any monitor, so no
 * watcher inside the closure gets a down from a route dying in the same
 * kill, whatever the order the routes are visited in.
 */
export function detachOnClose(o: Shared, r: number, reason: number, code: number, detail: number): number {
  const i32 = o.i32;
  const w = o.routes.word(r);
  lock(i32, w + R_LOCK, o.lockTag);
  if ((Atomics.load(i32, w + R_PIN) & R_CLOSED_BIT) !== 0) {
    unlock(i32, w + R_LOCK);
    return -1;
  }
  let n = 0;
  for (
    let x = Atomics.load(i32, w + R_MONITORS);
    x !== 0;
    x = Atomics.load(i32, o.nodes.word(x - 1) + N_NEXT)
  )
    n++;
  o.at('close:locked');
  retainDetail(o, detail); // the slot's reference, dropped when the slot is freed
  // From here to the close bit no call intervenes, so a thread terminated in
  // between (V8 takes a termination at a call or a loop back-edge) leaves
  // either none of it or all of it; recover.ts drops a detail retained
  // above for a route still open.
  Atomics.store(i32, w + R_DETAIL, detail);
  Atomics.store(i32, w + R_REASON, reason);
  Atomics.store(i32, w + R_CODE, code);
  // Each down carries a reference to this route. Taken before the close is
  // published, while the owner's reference is certainly still held.
  Atomics.add(i32, w + R_REFS, n);
  Atomics.or(i32, w + R_PIN, R_CLOSED_BIT); // publishes the close: senders drop, the owner stops delivering
  Atomics.sub(i32, C_OPEN_ROUTES, 1);
  o.at('close:closed');
  unlock(i32, w + R_LOCK);
  nudge(o, r);
  return n;
}

/**
 * The second half of closeRoute: turns each monitor of closed route `r`
 * into a down for its watcher, one at a time. Each monitor is popped off the
 * frozen list with a compare-and-swap, so any number of firers may run (a
 * kill restarted for a dead killer, racing kills): each monitor fires once.
 * The caller keeps r's slot alive (a reference, or the lock of its group
 * while r is a member); each fired down holds a reference on r taken at the
 * close.
 */
export function fireMonitors(o: Shared, r: number): void {
  const i32 = o.i32;
  const w = o.routes.word(r);
  const gen = Atomics.load(i32, w + R_GEN);
  const reason = Atomics.load(i32, w + R_REASON);
  for (;;) {
    const x = Atomics.load(i32, w + R_MONITORS);
    if (x === 0) return;
    const node = x - 1;
    const nw = o.nodes.slotBase + node * o.nodes.slotWords;
    // The list is frozen: a node is only ever popped, so the head cannot come back (no ABA).
    if (Atomics.compareExchange(i32, w + R_MONITORS, x, Atomics.load(i32, nw + N_NEXT)) !== x) continue;
    // From the pop to the push nothing is called: a thread terminated in
    // between is terminated at a loop back-edge of the push, rarely (only
    // when the push is contended); see README, Limits.
    const watcher = Atomics.load(i32, nw + N_A);
    const ww = o.routes.slotBase + watcher * o.routes.slotWords;
    Atomics.store(i32, nw + N_A, r);
    Atomics.store(i32, nw + N_B, gen);
    Atomics.store(i32, nw + N_C, reason);
    Atomics.store(i32, nw + N_KIND, NK_DOWN);
    Atomics.sub(i32, C_MONITORS, 1);
    Atomics.add(i32, C_DOWNS, 1);
    if ((Atomics.load(i32, ww + R_PIN) & R_CLOSED_BIT) !== 0) {
      // ...a closed watcher gets nothing (as in pushPending): its owner reports, or has reported, the end.
      discardDown(o, node);
      releaseRoute(o, watcher);
      continue;
    }
    let head = Atomics.load(i32, ww + R_DOWNS);
    for (;;) {
      Atomics.store(i32, nw + N_NEXT, head);
      const seen = Atomics.compareExchange(i32, ww + R_DOWNS, head, node + 1); // publishes the down to the watcher
      if (seen === head) break;
      head = seen; // ...another one was pushed first: chain behind it
    }
    // In the same straight run: the monitor node's reference on its watcher is in this thread's hands.
    Atomics.store(i32, o.intentWord + TH_FIRE_WATCHER, watcher + 1);
    o.at('fire:pushed');
    // The first of a batch wakes the owner (unless it let go: then whoever frees its slot discards the down).
    if (head === 0) nudge(o, watcher);
    // The monitor node's reference on its watcher goes, and leaves our hands, in one straight run.
    if (Atomics.sub(i32, ww + R_REFS, 1) === 1) {
      Atomics.store(i32, ww + R_DEFER_NEXT, Atomics.load(i32, o.intentWord + TH_DEFER_ROUTES));
      Atomics.store(i32, o.intentWord + TH_DEFER_ROUTES, watcher + 1);
    }
    Atomics.store(i32, o.intentWord + TH_FIRE_WATCHER, 0);
    runDeferred(o);
  }
}

/**
 * Pushes down node `node` onto `watcher`'s pending list (lock-free) and
 * drops the watcher reference the node held.
 */
function deliverDown(o: Shared, watcher: number, node: number): void {
  pushPending(o, watcher, node);
  releaseRoute(o, watcher);
}

/**
 * Pushes a down or exit node onto `watcher`'s pending stack (lock-free) and
 * nudges its owner. The caller keeps the watcher slot alive (a reference, or
 * the lock of a group whose G_TRAP names it). A closed watcher gets nothing:
 * its owner has reported, or is about to report, the end; the node is
 * discarded. Takes no lock (it may run under a group lock), and may drop
 * references (deferred under a lock).
 */
export function pushPending(o: Shared, watcher: number, node: number): void {
  const i32 = o.i32;
  const w = o.routes.word(watcher);
  const v = enter(o, watcher);
  if ((v & R_CLOSED_BIT) !== 0) {
    discardDown(o, node);
    return;
  }
  const nw = o.nodes.word(node);
  let head = Atomics.load(i32, w + R_DOWNS);
  for (;;) {
    Atomics.store(i32, nw + N_NEXT, head);
    const seen = Atomics.compareExchange(i32, w + R_DOWNS, head, node + 1); // publishes the down or exit to the owner
    if (seen === head) break;
    head = seen; // ...another one was pushed first: chain behind it
  }
  // The first of a batch wakes the owner; later ones find it awake or about to take the batch.
  if (head === 0) o.ringOf(watcher).tryWrite(o.producer, REC_NUDGE, EMPTY);
}

/** Wakes route `r`'s consumer (if its mailbox is still held) with an empty record. */
export function nudge(o: Shared, r: number): void {
  const v = enter(o, r);
  if ((v & R_GONE_BIT) === 0) o.ringOf(r).tryWrite(o.producer, REC_NUDGE, EMPTY);
}

/**
 * Registers `watcher` (a mailbox route of the caller) as a monitor of
 * `watched` (named by a capability the caller holds). Returns the monitor
 * id. A closed `watched` yields the down at once.
 */
export function monitorRoute(o: Shared, watched: number, watcher: number): number {
  const i32 = o.i32;
  const iw = o.intentWord;
  const node = o.allocNode(NK_MONITOR);
  o.intend(OP_MONITOR, node, watched, watcher, o.nodeGen(node));
  const nw = o.nodes.word(node);
  const id = makeId(node, Atomics.load(i32, nw + N_GEN));
  // The node's reference on its watcher, dropped when it is delivered or removed; the step says it is taken.
  Atomics.add(i32, o.routes.word(watcher) + R_REFS, 1);
  Atomics.store(i32, iw + TH_STEP, 1);
  const w = o.routes.word(watched);
  lock(i32, w + R_LOCK, o.lockTag);
  o.at('monitor:locked');
  if ((Atomics.load(i32, w + R_PIN) & R_CLOSED_BIT) !== 0) {
    const reason = Atomics.load(i32, w + R_REASON);
    unlock(i32, w + R_LOCK);
    retainRoute(o, watched); // safe: the caller's capability holds a reference
    Atomics.store(i32, nw + N_A, watched);
    Atomics.store(i32, nw + N_B, routeGen(o, watched));
    Atomics.store(i32, nw + N_C, reason);
    Atomics.store(i32, nw + N_KIND, NK_DOWN);
    Atomics.add(i32, C_DOWNS, 1);
    Atomics.store(i32, iw + TH_STEP, 2); // the node is a down now, no longer the recoverer's to free
    o.done(); // (a thread dying in the delivery below may lose this down: README, Limits)
    deliverDown(o, watcher, node);
    return id;
  }
  Atomics.store(i32, nw + N_A, watcher);
  Atomics.store(i32, nw + N_B, routeGen(o, watcher));
  Atomics.store(i32, nw + N_C, watched);
  Atomics.store(i32, nw + N_D, routeGen(o, watched));
  Atomics.store(i32, nw + N_NEXT, Atomics.load(i32, w + R_MONITORS));
  Atomics.store(i32, w + R_MONITORS, node + 1); // publishes the monitor (under the route lock)
  Atomics.add(i32, C_MONITORS, 1);
  Atomics.store(i32, iw + TH_STEP, 2); // in the same straight run: a recoverer knows it is published
  o.at('monitor:published');
  unlock(i32, w + R_LOCK);
  o.done();
  return id;
}

/** Removes a monitor that has not fired. Returns whether it removed one. */
export function demonitorRoute(o: Shared, id: number): boolean {
  const i32 = o.i32;
  const gen = idGeneration(id);
  const node = idIndex(id);
  if (gen < 0 || node >= o.nodes.count) return false;
  const nw = o.nodes.word(node);
  if (Atomics.load(i32, nw + N_GEN) !== gen || Atomics.load(i32, nw + N_KIND) !== NK_MONITOR) return false;
  // May be stale: the node can fire or be freed now. The search under the lock decides.
  const watched = Atomics.load(i32, nw + N_C);
  if (watched < 0 || watched >= o.routes.count) return false;
  const w = o.routes.word(watched);
  o.intend(OP_DEMONITOR, node, gen, watched);
  lock(i32, w + R_LOCK, o.lockTag);
  let found = false;
  // A closed route's monitors are firing (or fired): too late to remove one.
  if (
    Atomics.load(i32, nw + N_GEN) === gen &&
    Atomics.load(i32, nw + N_KIND) === NK_MONITOR &&
    (Atomics.load(i32, w + R_PIN) & R_CLOSED_BIT) === 0
  ) {
    found = removeFromList(o, w + R_MONITORS, node);
    // Marked taken off, with nothing called in between: a recoverer finishes a node so marked.
    if (found) Atomics.store(i32, nw + N_KIND, NK_REMOVED);
  }
  o.at('demonitor:removed');
  unlock(i32, w + R_LOCK);
  if (found) finishRemovedMonitor(o, node);
  o.done();
  return found;
}

/** Frees monitor node `node`, taken off its list by demonitor (NK_REMOVED), and drops its watcher reference. */
export function finishRemovedMonitor(o: Shared, node: number): void {
  const watcher = Atomics.load(o.i32, o.nodes.word(node) + N_A);
  Atomics.sub(o.i32, C_MONITORS, 1);
  o.freeNode(node);
  releaseRoute(o, watcher);
}

/** Unlinks `node` from the singly linked node list whose head is word `headWord`. Caller holds the list's lock. */
export function removeFromList(o: Shared, headWord: number, node: number): boolean {
  const i32 = o.i32;
  let prevWord = headWord;
  let x = Atomics.load(i32, headWord);
  while (x !== 0) {
    const nextWord = o.nodes.word(x - 1) + N_NEXT;
    if (x - 1 === node) {
      Atomics.store(i32, prevWord, Atomics.load(i32, nextWord));
      return true;
    }
    prevWord = nextWord;
    x = Atomics.load(i32, nextWord);
  }
  return false;
}
