/**
 * Recovering from a thread that died inside a control operation
 * (PostOffice.markThreadDead, before reclaim.ts takes what it owned).
 *
 * A worker can be terminated at any instant. V8 takes a termination at a
 * call (a function's entry) or a loop back-edge, never between two Atomics
 * operations with neither in between; the control paths are written so that
 * each publish and the counts and records that go with it form such a
 * straight run. So the dead thread stopped at a call or a loop of a control
 * operation, and left behind:
 *
 *   locks   lock words holding its tag (lock.ts). Every group and route
 *           lock word is scanned (rare: the pools, not a per-lock record the
 *           control paths would have to keep); what each guards is repaired,
 *           then the lock is broken and every waiter woken.
 *   intent  its intent record (layout.ts, TH_OP...): the operation it was
 *           in, its arguments, the nodes it allocated, how far it got. The
 *           operation is finished or undone:
 *             kill       restarted from the start (idempotent: a dead group
 *                        stays dead, its links are walked again, and the
 *                        monitors left on routes it closed fire); a link list
 *                        it was dropping is dropped on from where it stopped
 *             link       nodes allocated and not published are freed (the
 *                        publish of both ends is one straight run)
 *             monitor    a node never published is freed, with its watcher
 *                        reference if taken
 *             demonitor  a node taken off its list (NK_REMOVED) is freed
 *             close      the monitors left on the route fire
 *             join       member list repaired with the group lock (below)
 *           and a group slot it was freeing (TH_FREE_*) is freed on from
 *           where it stopped.
 *
 * Repairs under a dead thread's lock: a group's member list is doubly
 * linked and its inserts and removals are several stores, so the list is
 * rebuilt from its forward links (prev links, RF_MEMBER flags of members and
 * of routes of the group that are no longer on it). Link and monitor lists
 * are singly linked and change by one store, so any prefix of an operation
 * leaves them well formed. A close publishes its reason, references and
 * closed bit in one straight run (nothing to repair either way).
 */

import { dropLinkList, finishFreeGroup, freeGroup, killGroup } from './groups.ts';
import {
  G_DEFER_NEXT,
  G_LOCK,
  G_MEMBERS,
  N_KIND,
  NK_LINK,
  NK_REMOVED,
  OP_CLOSE,
  OP_DEMONITOR,
  OP_KILL,
  OP_LINK,
  OP_MONITOR,
  OP_NONE,
  R_CLOSED_BIT,
  R_DEFER_NEXT,
  R_FLAGS,
  R_GONE_BIT,
  R_GROUP,
  R_LOCK,
  R_MONITORS,
  R_NEXT_MEMBER,
  R_PIN,
  R_PREV_MEMBER,
  R_UNREF_BIT,
  RF_MEMBER,
  TH_A,
  TH_B,
  TH_C,
  TH_D,
  TH_DEFER_GROUPS,
  TH_DEFER_ROUTES,
  TH_DROP,
  TH_DROP_GEN,
  TH_DROP_NEXT,
  TH_E,
  TH_F,
  TH_FIRE_WATCHER,
  TH_FREE_DETAIL,
  TH_FREE_GEN,
  TH_FREE_GROUP,
  TH_FREE_STEP,
  TH_LINK_GEN1,
  TH_LINK_GEN2,
  TH_OP,
  TH_STEP,
  TH_UNREF_ROUTE,
} from './layout.ts';
import { breakLock, lockHolder, lockTag } from './lock.ts';
import { releaseDetail } from './reasons.ts';
import {
  finishRemovedMonitor,
  fireMonitors,
  releaseRoute,
  runDeferred,
  settle,
  tryRetainRoute,
  unrefRoute,
} from './routes.ts';
import type { Shared } from './shared.ts';

/** What recovery found and did, for markThreadDead's callers and tests. */
export interface Recovery {
  /** Locks the dead thread held, repaired and broken. */
  locks: number;
  /** The operation it died in (OP_*), 0 for none. */
  op: number;
}

/** Repairs and breaks every lock the dead thread (slot, generation) held, then finishes or undoes its operation. */
export function recoverThread(o: Shared, slot: number, generation: number): Recovery {
  const i32 = o.i32;
  const tag = lockTag(slot, generation);
  const tw = o.threadRecord(slot);
  let locks = 0;
  for (let g = 0; g < o.groups.count; g++) {
    const w = o.groups.word(g);
    if (lockHolder(i32, w + G_LOCK) !== tag) continue;
    repairMembers(o, g);
    // Link lists change by one store: any prefix is a well-formed list.
    if (breakLock(i32, w + G_LOCK, tag)) locks++;
  }
  for (let r = 0; r < o.routes.count; r++) {
    const w = o.routes.word(r);
    if (lockHolder(i32, w + R_LOCK) !== tag) continue;
    // The monitor list changes by one store, the close in one straight run: nothing to repair.
    if (breakLock(i32, w + R_LOCK, tag)) locks++;
  }
  const op = Atomics.load(i32, tw + TH_OP);
  const a = Atomics.load(i32, tw + TH_A);
  const b = Atomics.load(i32, tw + TH_B);
  const c = Atomics.load(i32, tw + TH_C);
  const d = Atomics.load(i32, tw + TH_D);
  const e = Atomics.load(i32, tw + TH_E);
  const f = Atomics.load(i32, tw + TH_F);
  o.deferDepth++;
  try {
    switch (op) {
      case OP_KILL:
        resumeDrop(o, tw);
        killGroup(o, a, b, c, d, 0);
        if (e === 1) releaseDetail(o, d); // the dead frame's reference for the call
        break;
      case OP_LINK:
        // ...step 1: both ends were published in one straight run, and belong to the link.
        if (Atomics.load(i32, tw + TH_STEP) === 0) {
          freeUnpublished(o, e - 1, Atomics.load(i32, tw + TH_LINK_GEN1));
          freeUnpublished(o, f - 1, Atomics.load(i32, tw + TH_LINK_GEN2));
        }
        break;
      case OP_MONITOR: {
        // Step 2: published (or turned into a down); else the node is still the dead thread's.
        const step = Atomics.load(i32, tw + TH_STEP);
        if (step < 2 && o.nodeGen(a) === d) {
          o.freeNode(a);
          if (step === 1) releaseRoute(o, c); // the watcher reference it took
        }
        break;
      }
      case OP_DEMONITOR:
        if (o.nodeGen(a) === b && Atomics.load(i32, o.nodes.word(a) + N_KIND) === NK_REMOVED)
          finishRemovedMonitor(o, a);
        break;
      case OP_CLOSE:
        fireLeft(o, a);
        break;
      // OP_JOIN: the member list was repaired with the group lock; the route is the dead
      // thread's mailbox, which the reclaimer closes and lets go.
    }
    const freeing = Atomics.load(i32, tw + TH_FREE_GROUP) - 1;
    if (freeing >= 0) {
      const gen = Atomics.load(i32, tw + TH_FREE_GEN);
      if (gen < 0) {
        freeGroup(o, freeing); // ...it died before detaching anything: free it whole
      } else {
        const step = Atomics.load(i32, tw + TH_FREE_STEP);
        if (step < 1) resumeDrop(o, tw);
        finishFreeGroup(o, freeing, gen, Atomics.load(i32, tw + TH_FREE_DETAIL), 0, Math.max(step, 1));
      }
    }
    // Its deferred frees: the route it was letting go of (unrefRoute runs again: each of its
    // steps is idempotent up to the straight run that ends it), then both stacks.
    // A watcher reference it held while firing a monitor.
    const watcher = Atomics.load(i32, tw + TH_FIRE_WATCHER);
    Atomics.store(i32, tw + TH_FIRE_WATCHER, 0);
    if (watcher !== 0) releaseRoute(o, watcher - 1);
    const unref = Atomics.load(i32, tw + TH_UNREF_ROUTE);
    const routes: number[] = [];
    if (unref !== 0) routes.push(unref - 1);
    for (let x = Atomics.load(i32, tw + TH_DEFER_ROUTES); x !== 0; ) {
      routes.push(x - 1);
      x = Atomics.load(i32, o.routes.word(x - 1) + R_DEFER_NEXT);
    }
    const groups: number[] = [];
    for (let y = Atomics.load(i32, tw + TH_DEFER_GROUPS); y !== 0; ) {
      groups.push(y - 1);
      y = Atomics.load(i32, o.groups.word(y - 1) + G_DEFER_NEXT);
    }
    Atomics.store(i32, tw + TH_UNREF_ROUTE, 0);
    Atomics.store(i32, tw + TH_DEFER_ROUTES, 0);
    Atomics.store(i32, tw + TH_DEFER_GROUPS, 0);
    for (const r of routes) unrefRoute(o, r);
    for (const g of groups) freeGroup(o, g);
  } finally {
    o.deferDepth--;
  }
  // A slot it let go of may be waiting for the settle it never ran (settle is idempotent).
  for (let r = 0; r < o.routes.count; r++) {
    if (!o.routes.bits.isSet(r)) continue;
    if ((Atomics.load(i32, o.routes.word(r) + R_PIN) & (R_UNREF_BIT | R_GONE_BIT)) !== 0) settle(o, r);
  }
  Atomics.store(i32, tw + TH_OP, OP_NONE);
  Atomics.store(i32, tw + TH_FREE_GROUP, 0);
  Atomics.store(i32, tw + TH_DROP, 0);
  Atomics.store(i32, tw + TH_DROP_NEXT, 0);
  runDeferred(o);
  return { locks, op };
}

/**
 * Rebuilds group g's member list from its forward links (its holder died
 * mid-insert or mid-removal): prev links and RF_MEMBER flags of the routes
 * on it, and RF_MEMBER cleared on routes of g that are not. The caller has
 * the dead thread's lock on g.
 */
function repairMembers(o: Shared, g: number): void {
  const i32 = o.i32;
  const on = new Set<number>();
  let prev = 0;
  for (let m = Atomics.load(i32, o.groups.word(g) + G_MEMBERS); m !== 0 && !on.has(m - 1); ) {
    const rw = o.routes.word(m - 1);
    on.add(m - 1);
    Atomics.store(i32, rw + R_PREV_MEMBER, prev);
    Atomics.store(i32, rw + R_FLAGS, RF_MEMBER);
    prev = m;
    m = Atomics.load(i32, rw + R_NEXT_MEMBER);
  }
  for (let r = 0; r < o.routes.count; r++) {
    if (on.has(r) || !o.routes.bits.isSet(r)) continue;
    const rw = o.routes.word(r);
    if (Atomics.load(i32, rw + R_GROUP) === g && (Atomics.load(i32, rw + R_FLAGS) & RF_MEMBER) !== 0)
      Atomics.store(i32, rw + R_FLAGS, 0);
  }
}

/** Resumes a link-list drop the dead thread's record (TH_DROP*) shows in progress. */
function resumeDrop(o: Shared, tw: number): void {
  const i32 = o.i32;
  const x = Atomics.load(i32, tw + TH_DROP);
  const next = Atomics.load(i32, tw + TH_DROP_NEXT);
  // ...the node in hand is still there (not yet freed): the walk goes on from it, else from the rest.
  if (x !== 0 && o.nodeGen(x - 1) === Atomics.load(i32, tw + TH_DROP_GEN)) dropLinkList(o, x);
  else dropLinkList(o, next);
}

/** Frees link node `n` (generation `gen`) of a link that was never published (TH_STEP 0). */
function freeUnpublished(o: Shared, n: number, gen: number): void {
  if (n >= 0 && o.nodeGen(n) === gen && Atomics.load(o.i32, o.nodes.word(n) + N_KIND) === NK_LINK)
    o.freeNode(n);
}

/** Fires the monitors left on closed route `r` (the dead thread closed it and stopped before firing them all). */
function fireLeft(o: Shared, r: number): void {
  const w = o.routes.word(r);
  if ((Atomics.load(o.i32, w + R_PIN) & R_CLOSED_BIT) === 0 || Atomics.load(o.i32, w + R_MONITORS) === 0)
    return;
  if (!tryRetainRoute(o, r)) return;
  fireMonitors(o, r);
  releaseRoute(o, r);
}
