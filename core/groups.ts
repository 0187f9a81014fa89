/**
 * Route groups: members, death, links.
 *
 * Kill is synchronous and transitive, and iterative (a worklist, never
 * recursion), in two phases:
 *   1. Breadth-first over the linked closure: lock each group alone; if it
 *      is alive, close every member route, then mark it DEAD (all while
 *      holding the group lock, so a route being created in it either is on
 *      the member list and gets closed, or sees DEAD and is born closed; and
 *      a reader of DEAD finds every member closed); in
 *      every case, dead or not, queue its link partners. Walking the links of
 *      groups that someone else killed is what makes "when kill returns, the
 *      whole closure is dead" hold even when two kills race: a link is only
 *      detached (phase 2) after its detacher's phase 1 has finished.
 *   Then the monitors of every route closed in phase 1 fire, so watchers
 *   inside the closure (closed already) get no down from it, whatever the
 *   order the closure was walked in.
 *   2. Detach each visited group's link list and free both ends of every
 *      link.
 * Only one group lock is held at a time in both phases; link and unlink hold
 * two, in ascending slot index. Lock order: see lock.ts.
 *
 * Trapping exits. A group reached through a link (not the one killed
 * directly) that is alive and traps exits (G_TRAP names an open mailbox of
 * it) is not killed and not walked past: under its lock the link's end in its
 * list is taken off and turned into an exit node, pushed onto the trap
 * mailbox's pending stack before the lock is let go. Whoever takes that end
 * off the list makes the exit, so racing kills make it once, and it is queued
 * before any kill that saw the link returns. The other end, in the dead
 * group's list, goes in phase 2 as usual (its twin is no longer on the
 * survivor's list). The exit names the dead group by its identity route:
 * while walking a dead group's links, the kill takes a reference on that
 * route (and on the death's detail) under the dead group's lock, and each
 * exit takes its own from it.
 *
 * Links are two nodes, one in each group's G_LINKS list, each naming the
 * other (its twin). A node is freed by whoever takes it off its list, always
 * under that list's group lock, so each node is freed exactly once.
 */

import {
  C_EXITS,
  C_LINK_ENDS,
  C_LIVE_GROUPS,
  C_OPEN_ROUTES,
  G_CODE,
  G_DEFER_NEXT,
  G_DETAIL,
  G_GEN,
  G_IDENTITY,
  G_IDENTITY_GEN,
  G_LINKS,
  G_LOCK,
  G_MEMBERS,
  G_OBJECT,
  G_REFS,
  G_STATE,
  G_TABLE,
  G_TABLE_GEN,
  G_TRAP,
  G_TRAP_GEN,
  GS_ALIVE,
  GS_DEAD,
  GS_FREE,
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
  NK_EXIT,
  NK_LINK,
  OP_KILL,
  OP_LINK,
  R_CLOSED_BIT,
  R_CODE,
  R_DETAIL,
  R_FLAGS,
  R_GEN,
  R_MONITORS,
  R_NEXT_MEMBER,
  R_PIN,
  R_PREV_MEMBER,
  R_REASON,
  REASON_KILLED,
  RF_MEMBER,
  TH_DEFER_GROUPS,
  TH_DROP,
  TH_DROP_GEN,
  TH_DROP_NEXT,
  TH_E,
  TH_F,
  TH_FREE_DETAIL,
  TH_FREE_GEN,
  TH_FREE_GROUP,
  TH_FREE_STEP,
  TH_LINK_GEN1,
  TH_LINK_GEN2,
  TH_STEP,
} from './layout.ts';
import { lock, unlock } from './lock.ts';
import { type KillReason, releaseDetail, retainDetail, storeReason } from './reasons.ts';
import {
  detachOnClose,
  fireMonitors,
  pushPending,
  releaseRoute,
  removeFromList,
  retainRoute,
  runDeferred,
  tryRetainRoute,
} from './routes.ts';
import type { Shared } from './shared.ts';

/** A new live group, created by table slot `table` of generation `tableGen`, with one reference (its Group object's). */
export function createGroup(o: Shared, table: number, tableGen: number): number {
  const i32 = o.i32;
  const g = o.groups.alloc();
  const w = o.groups.word(g);
  Atomics.store(i32, w + G_TABLE_GEN, tableGen);
  Atomics.store(i32, w + G_TABLE, table + 1);
  Atomics.store(i32, w + G_OBJECT, 1);
  // G_LOCK is left alone: only lock/unlock change a lock word (a killer holding a stale id may hold it now).
  Atomics.store(i32, w + G_MEMBERS, 0);
  Atomics.store(i32, w + G_LINKS, 0);
  Atomics.store(i32, w + G_CODE, 0);
  Atomics.store(i32, w + G_DETAIL, 0);
  Atomics.store(i32, w + G_TRAP, 0);
  Atomics.store(i32, w + G_IDENTITY, 0);
  Atomics.store(i32, w + G_REFS, 1);
  Atomics.store(i32, w + G_STATE, GS_ALIVE); // the slot is unreachable until its id is handed out
  Atomics.add(i32, C_LIVE_GROUPS, 1);
  return g;
}

export function groupGen(o: Shared, g: number): number {
  return Atomics.load(o.i32, o.groups.word(g) + G_GEN);
}

export function isDead(o: Shared, g: number): boolean {
  return Atomics.load(o.i32, o.groups.word(g) + G_STATE) === GS_DEAD;
}

export function retainGroup(o: Shared, g: number): void {
  Atomics.add(o.i32, o.groups.word(g) + G_REFS, 1);
}

/** The Group object lets go of its reference. */
export function releaseGroupObject(o: Shared, g: number): void {
  Atomics.store(o.i32, o.groups.word(g) + G_OBJECT, 0); // before the reference goes: the reclaimer must not drop it again
  releaseGroup(o, g);
}

export function releaseGroup(o: Shared, g: number): void {
  const i32 = o.i32;
  const w = o.groups.word(g);
  if (Atomics.sub(i32, w + G_REFS, 1) !== 1) return;
  // In the same straight run: the group joins this thread's deferred frees (a recoverer finds it there).
  Atomics.store(i32, w + G_DEFER_NEXT, Atomics.load(i32, o.intentWord + TH_DEFER_GROUPS));
  Atomics.store(i32, o.intentWord + TH_DEFER_GROUPS, g + 1);
  runDeferred(o);
}

/**
 * Puts route `r` on group `g`'s member list if `g` is alive, else closes it
 * (killed) before anyone can name it. Returns whether `g` was alive.
 */
export function addMember(o: Shared, g: number, r: number): boolean {
  const i32 = o.i32;
  const w = o.groups.word(g);
  const rw = o.routes.word(r);
  lock(i32, w + G_LOCK, o.lockTag);
  const alive = Atomics.load(i32, w + G_STATE) === GS_ALIVE;
  if (alive) {
    const head = Atomics.load(i32, w + G_MEMBERS);
    Atomics.store(i32, rw + R_NEXT_MEMBER, head);
    Atomics.store(i32, rw + R_PREV_MEMBER, 0);
    if (head !== 0) Atomics.store(i32, o.routes.word(head - 1) + R_PREV_MEMBER, r + 1);
    Atomics.store(i32, rw + R_FLAGS, RF_MEMBER);
    Atomics.store(i32, w + G_MEMBERS, r + 1); // publishes the route as a member (under the lock): a kill closes it
    o.at('join:published');
    if (Atomics.load(i32, w + G_IDENTITY) === 0) {
      // The group's first route: exits from it will name the group by this route.
      Atomics.store(i32, w + G_IDENTITY_GEN, Atomics.load(i32, rw + R_GEN));
      Atomics.store(i32, w + G_IDENTITY, r + 1);
    }
  } else {
    // Born closed of the group's death: its reason is the group's.
    Atomics.store(i32, rw + R_REASON, REASON_KILLED);
    Atomics.store(i32, rw + R_CODE, Atomics.load(i32, w + G_CODE));
    const detail = Atomics.load(i32, w + G_DETAIL);
    retainDetail(o, detail); // the route slot's reference (the group slot holds one: we hold its lock)
    // No call from here to the count: a thread terminated here leaves all of it or none (recover.ts).
    Atomics.store(i32, rw + R_DETAIL, detail);
    Atomics.or(i32, rw + R_PIN, R_CLOSED_BIT); // publishes the route as born closed, before anyone can name it
    Atomics.sub(i32, C_OPEN_ROUTES, 1); // counted open by createRoute
  }
  unlock(i32, w + G_LOCK);
  return alive;
}

/** Takes route `r` off group `g`'s member list (if it is on it). */
export function removeMember(o: Shared, g: number, r: number): void {
  const i32 = o.i32;
  const w = o.groups.word(g);
  const rw = o.routes.word(r);
  lock(i32, w + G_LOCK, o.lockTag);
  if ((Atomics.load(i32, rw + R_FLAGS) & RF_MEMBER) !== 0) {
    const next = Atomics.load(i32, rw + R_NEXT_MEMBER);
    const prev = Atomics.load(i32, rw + R_PREV_MEMBER);
    if (prev === 0) Atomics.store(i32, w + G_MEMBERS, next);
    else Atomics.store(i32, o.routes.word(prev - 1) + R_NEXT_MEMBER, next);
    if (next !== 0) Atomics.store(i32, o.routes.word(next - 1) + R_PREV_MEMBER, prev);
    Atomics.store(i32, rw + R_FLAGS, 0);
  }
  // The slot is on its way out: exits made from now on name no route.
  if (Atomics.load(i32, w + G_IDENTITY) === r + 1) Atomics.store(i32, w + G_IDENTITY, 0);
  unlock(i32, w + G_LOCK);
}

/**
 * Makes mailbox route `r` (generation `rGen`, a member of group (g, gen),
 * held by its owner) trap exits for the group, or stops trapping (`r` = -1).
 * Does nothing to a group that is dead. Returns whether it was alive.
 */
export function setTrap(o: Shared, g: number, gen: number, r: number, rGen: number): boolean {
  const i32 = o.i32;
  const w = o.groups.word(g);
  lock(i32, w + G_LOCK, o.lockTag);
  const alive = Atomics.load(i32, w + G_GEN) === gen && Atomics.load(i32, w + G_STATE) === GS_ALIVE;
  if (alive) {
    Atomics.store(i32, w + G_TRAP_GEN, rGen);
    Atomics.store(i32, w + G_TRAP, r + 1); // publishes the trap (under the lock): links reaching the group now trap
  }
  unlock(i32, w + G_LOCK);
  return alive;
}

/** Stops group (g, gen) trapping into route `r` if it still does; its mailbox calls this before it lets go. */
export function clearTrap(o: Shared, g: number, gen: number, r: number): void {
  const i32 = o.i32;
  const w = o.groups.word(g);
  lock(i32, w + G_LOCK, o.lockTag);
  if (Atomics.load(i32, w + G_GEN) === gen && Atomics.load(i32, w + G_TRAP) === r + 1) {
    Atomics.store(i32, w + G_TRAP, 0);
  }
  unlock(i32, w + G_LOCK);
}

/**
 * The route a group traps exits into, or -1 if it does not trap: no trap
 * set, or its trap mailbox is closed (a closed mailbox traps nothing, so the
 * group dies as one that does not trap). Caller holds the group lock.
 */
function trapOf(o: Shared, w: number): number {
  const t = Atomics.load(o.i32, w + G_TRAP) - 1;
  if (t < 0 || (Atomics.load(o.i32, o.routes.word(t) + R_PIN) & R_CLOSED_BIT) !== 0) return -1;
  return t;
}

/**
 * Turns `node` into an exit from identity route (from, fromGen) (-1: none),
 * whose reference the caller hands over, carrying reason, code and detail
 * (on which it takes its own reference). Push it with pushPending.
 */
function makeExit(
  o: Shared,
  node: number,
  from: number,
  fromGen: number,
  reason: number,
  code: number,
  detail: number,
): void {
  const i32 = o.i32;
  const nw = o.nodes.word(node);
  Atomics.store(i32, nw + N_KIND, NK_EXIT);
  Atomics.store(i32, nw + N_A, from);
  Atomics.store(i32, nw + N_B, fromGen);
  Atomics.store(i32, nw + N_C, reason);
  Atomics.store(i32, nw + N_D, code);
  retainDetail(o, detail);
  Atomics.store(i32, nw + N_E, detail);
  Atomics.add(i32, C_EXITS, 1);
}

/** A reference on the identity route of the group whose lock the caller holds: [route, generation], or [-1, 0]. */
function takeIdentity(o: Shared, w: number): [number, number] {
  const r = Atomics.load(o.i32, w + G_IDENTITY) - 1;
  // The slot cannot go while G_IDENTITY names it; its count may have reached 0, and then it is on its way out.
  if (r < 0 || !tryRetainRoute(o, r)) return [-1, 0];
  return [r, Atomics.load(o.i32, w + G_IDENTITY_GEN)];
}

/**
 * The last reference to group `g` went. No route is left in it; if it is
 * still alive nobody can reach it any more, so its links are dropped
 * without killing anyone.
 */
export function freeGroup(o: Shared, g: number): void {
  const i32 = o.i32;
  const w = o.groups.word(g);
  const iw = o.intentWord;
  Atomics.store(i32, iw + TH_FREE_STEP, 0);
  Atomics.store(i32, iw + TH_FREE_GEN, -1); // -1: the slot is not freed yet (the lock may be held)
  Atomics.store(i32, iw + TH_FREE_GROUP, g + 1);
  lock(i32, w + G_LOCK, o.lockTag);
  const links = Atomics.exchange(i32, w + G_LINKS, 0);
  const detail = Atomics.exchange(i32, w + G_DETAIL, 0);
  // No route is left: its trap mailbox and identity route are gone (they cleared these already).
  Atomics.store(i32, w + G_TRAP, 0);
  Atomics.store(i32, w + G_IDENTITY, 0);
  Atomics.store(i32, w + G_TABLE, 0); // owned by no table: a reclaimer finds nothing here
  Atomics.store(i32, w + G_OBJECT, 0);
  if (Atomics.load(i32, w + G_STATE) === GS_ALIVE) Atomics.sub(i32, C_LIVE_GROUPS, 1);
  Atomics.store(i32, w + G_STATE, GS_FREE);
  // Bumped under the lock: whoever locks this slot later with the old generation sees it gone.
  const gen = Atomics.add(i32, w + G_GEN, 1) + 1;
  // With no call in between: the recoverer of a dead thread knows the list and the detail are in hand.
  Atomics.store(i32, iw + TH_FREE_DETAIL, detail);
  Atomics.store(i32, iw + TH_DROP_NEXT, links);
  Atomics.store(i32, iw + TH_DROP, 0);
  Atomics.store(i32, iw + TH_FREE_GEN, gen);
  o.at('free-group:detached');
  unlock(i32, w + G_LOCK);
  finishFreeGroup(o, g, gen, detail, links, 0);
  Atomics.store(i32, iw + TH_FREE_GROUP, 0);
}

/** The rest of freeGroup from step `step` (TH_FREE_STEP): drop the link list, release the detail, free the slot. */
export function finishFreeGroup(
  o: Shared,
  g: number,
  gen: number,
  detail: number,
  links: number,
  step: number,
): void {
  const iw = o.intentWord;
  if (step < 1) {
    dropLinkList(o, links);
    Atomics.store(o.i32, iw + TH_FREE_STEP, 1);
  }
  if (step < 2) {
    releaseDetail(o, detail);
    Atomics.store(o.i32, iw + TH_FREE_STEP, 2);
  }
  o.groups.freeBumped(g, gen);
}

/**
 * Frees every node of a detached link list, taking each twin off its
 * partner's list. The walk is kept in this thread's intent record (TH_DROP),
 * so a recoverer can resume it: see recover.ts.
 */
export function dropLinkList(o: Shared, head: number): void {
  const i32 = o.i32;
  const iw = o.intentWord;
  let x = head;
  while (x !== 0) {
    const node = x - 1;
    const nw = o.nodes.slotBase + node * o.nodes.slotWords;
    // No call from here to TH_DROP_NEXT: the node in hand and the rest of the list are recorded together.
    Atomics.store(i32, iw + TH_DROP_GEN, Atomics.load(i32, nw + N_GEN));
    Atomics.store(i32, iw + TH_DROP, x);
    x = Atomics.load(i32, nw + N_NEXT);
    Atomics.store(i32, iw + TH_DROP_NEXT, x);
    o.at('drop:node');
    const partner = Atomics.load(i32, nw + N_A);
    const partnerGen = Atomics.load(i32, nw + N_B);
    const twin = Atomics.load(i32, nw + N_C);
    const twinGen = Atomics.load(i32, nw + N_D);
    const pw = o.groups.word(partner);
    lock(i32, pw + G_LOCK, o.lockTag);
    if (Atomics.load(i32, pw + G_GEN) === partnerGen && o.nodeGen(twin) === twinGen) {
      if (removeFromList(o, pw + G_LINKS, twin)) freeLinkEnd(o, twin);
    }
    // ...else the partner detached its list itself (it is dying or gone): it frees the twin.
    unlock(i32, pw + G_LOCK);
    freeLinkEnd(o, node);
  }
  Atomics.store(i32, iw + TH_DROP, 0);
}

function freeLinkEnd(o: Shared, node: number): void {
  Atomics.sub(o.i32, C_LINK_ENDS, 1);
  o.freeNode(node);
}

/**
 * Kills group (g, gen) and, transitively, every group linked to it that does
 * not trap exits (those get an exit instead). Returns when all of them are
 * dead and every exit is queued. Every route it closes and every group it
 * kills records exit code `code` and detail blob `detail` (reasons.ts; 0:
 * none), on which the caller holds a reference for the call.
 */
export function killGroup(o: Shared, g: number, gen: number, code = 0, detail = 0, ownsDetail = 0): void {
  const i32 = o.i32;
  // A kill is restartable: a dead thread's recoverer runs it again from the start (recover.ts).
  o.intend(OP_KILL, g, gen, code, detail, ownsDetail);
  Atomics.store(i32, o.intentWord + TH_DROP, 0);
  Atomics.store(i32, o.intentWord + TH_DROP_NEXT, 0);
  // Work items, five numbers each: group, generation, and how it was reached:
  // the death it was reached from (an index into `deaths`, -1 for the group
  // killed directly), then the link end in its own list that names that dead
  // group, and that end's generation.
  const work = [g, gen, -1, 0, 0];
  const seen = new Set<number>();
  const visited: number[] = [];
  // Per dead group whose links are walked, what an exit from it carries, four
  // numbers: identity route (-1: none), its generation, code, detail. This
  // kill holds a reference on the route and on the detail until it ends.
  const deaths: number[] = [];
  o.deferDepth++;
  try {
    // Phase 1: mark the closure dead.
    while (work.length !== 0) {
      const twinGen = work.pop()!;
      const twin = work.pop()!;
      const death = work.pop()!;
      const ggen = work.pop()!;
      const gi = work.pop()!;
      if (seen.has(gi)) continue;
      const w = o.groups.word(gi);
      lock(i32, w + G_LOCK, o.lockTag);
      const state = Atomics.load(i32, w + G_STATE);
      if (Atomics.load(i32, w + G_GEN) !== ggen || state === GS_FREE) {
        unlock(i32, w + G_LOCK); // ...the group was freed meanwhile: nothing of it is left to kill
        continue;
      }
      const trap = death >= 0 && state === GS_ALIVE ? trapOf(o, w) : -1;
      if (trap >= 0) {
        // ...reached through a link, and it traps exits: it lives on, and the
        // walk stops here. The link goes; its end here becomes the exit.
        if (o.nodeGen(twin) === twinGen && removeFromList(o, w + G_LINKS, twin)) {
          Atomics.sub(i32, C_LINK_ENDS, 1);
          const from = deaths[death]!;
          if (from >= 0) retainRoute(o, from); // the exit's own (this kill holds one)
          makeExit(o, twin, from, deaths[death + 1]!, REASON_KILLED, deaths[death + 2]!, deaths[death + 3]!);
          pushPending(o, trap, twin); // under the lock: queued before any kill that saw the link returns
        }
        // ...else someone took the link away first (a racing kill made the exit, or an unlink).
        unlock(i32, w + G_LOCK);
        continue; // not `seen`: another dead partner may reach it too, with its own exit
      }
      seen.add(gi);
      if (state === GS_ALIVE) {
        // Members close first, then the death is published: whoever reads
        // `dead` without the lock finds every route of the group closed. No
        // route can join in between: joining takes this lock.
        for (let m = Atomics.load(i32, w + G_MEMBERS); m !== 0; ) {
          const r = m - 1;
          m = Atomics.load(i32, o.routes.word(r) + R_NEXT_MEMBER);
          detachOnClose(o, r, REASON_KILLED, code, detail);
          o.at('kill:closing');
        }
        retainDetail(o, detail); // the group slot's reference, dropped when the slot is freed
        // No call from here to the count: a thread terminated here did all of it or none (recover.ts).
        Atomics.store(i32, w + G_CODE, code);
        Atomics.store(i32, w + G_DETAIL, detail);
        Atomics.store(i32, w + G_TRAP, 0); // a dead group traps nothing (its trap mailbox just closed)
        Atomics.store(i32, w + G_STATE, GS_DEAD); // publishes the death (and its reason): no route joins after this
        Atomics.sub(i32, C_LIVE_GROUPS, 1);
        o.at('kill:dead');
      }
      const links = Atomics.load(i32, w + G_LINKS);
      if (links !== 0) {
        // What an exit from this group carries, should a partner trap (its death may be another kill's).
        const at = deaths.length;
        const [from, fromGen] = takeIdentity(o, w);
        const deathDetail = Atomics.load(i32, w + G_DETAIL);
        retainDetail(o, deathDetail); // this kill's (the slot holds one: we hold its lock)
        deaths.push(from, fromGen, Atomics.load(i32, w + G_CODE), deathDetail);
        for (let x = links; x !== 0; ) {
          const nw = o.nodes.word(x - 1);
          const partner = Atomics.load(i32, nw + N_A);
          const partnerGen = Atomics.load(i32, nw + N_B);
          work.push(partner, partnerGen, at, Atomics.load(i32, nw + N_C), Atomics.load(i32, nw + N_D));
          x = Atomics.load(i32, nw + N_NEXT);
        }
      }
      visited.push(gi, ggen);
      unlock(i32, w + G_LOCK);
    }
    // Exits are made in phase 1 only: the references they were made from go now (deferred), so a
    // killer that dies in what follows holds none (README, Limits: phase 1 still does).
    for (let k = 0; k < deaths.length; k += 4) {
      releaseDetail(o, deaths[k + 3]!);
      if (deaths[k]! >= 0) releaseRoute(o, deaths[k]!);
    }
    deaths.length = 0;
    // Every route of the closure is closed: now its monitors fire. Watchers
    // inside the closure are closed already and get nothing.
    // Group by group, under its lock (a member's slot cannot go while it is locked): the
    // monitors left on its closed members fire, whoever closed them (a racing kill of the same
    // closure, or a killer that died and whose kill this is, restarted).
    for (let k = 0; k < visited.length; k += 2) {
      const w = o.groups.word(visited[k]!);
      lock(i32, w + G_LOCK, o.lockTag);
      if (Atomics.load(i32, w + G_GEN) === visited[k + 1]) {
        for (let m = Atomics.load(i32, w + G_MEMBERS); m !== 0; ) {
          const r = m - 1;
          const rw = o.routes.word(r);
          m = Atomics.load(i32, rw + R_NEXT_MEMBER);
          if (
            (Atomics.load(i32, rw + R_PIN) & R_CLOSED_BIT) !== 0 &&
            Atomics.load(i32, rw + R_MONITORS) !== 0
          )
            fireMonitors(o, r);
        }
      }
      unlock(i32, w + G_LOCK);
    }
    o.at('kill:fired');
    // Phase 2: every group of the closure is dead; their links are void.
    for (let k = 0; k < visited.length; k += 2) {
      const w = o.groups.word(visited[k]!);
      lock(i32, w + G_LOCK, o.lockTag);
      let links = 0;
      if (Atomics.load(i32, w + G_GEN) === visited[k + 1]) links = Atomics.exchange(i32, w + G_LINKS, 0);
      // With no call in between: the detached list is in the intent record (a recoverer resumes it).
      Atomics.store(i32, o.intentWord + TH_DROP_NEXT, links);
      Atomics.store(i32, o.intentWord + TH_DROP, 0);
      unlock(i32, w + G_LOCK);
      dropLinkList(o, links);
    }
  } finally {
    o.deferDepth--;
  }
  o.done();
  runDeferred(o);
}

/**
 * Group (y, yGen) learns that its link partner is gone: group (x, xGen) is
 * dead, or a route of it that the link was made through is closed. If y is
 * alive and traps exits, an exit naming x's identity route and carrying
 * (reason, code, detail) is queued on y's trap mailbox (it needs a node: with
 * the pool empty this throws CapacityExceeded and changes nothing); if y is
 * alive and does not trap, it is killed with code and detail. The caller
 * holds references on both groups and on `detail`, and no lock.
 */
export function partnerGone(
  o: Shared,
  y: number,
  yGen: number,
  x: number,
  xGen: number,
  reason: number,
  code: number,
  detail: number,
): void {
  const i32 = o.i32;
  const yw = o.groups.word(y);
  const xw = o.groups.word(x);
  const first = y <= x ? yw : xw;
  const second = y <= x ? xw : yw;
  let node = -1;
  let alive = false;
  let trapped = false;
  o.deferDepth++;
  try {
    for (;;) {
      lock(i32, first + G_LOCK, o.lockTag);
      if (x !== y) lock(i32, second + G_LOCK, o.lockTag);
      alive = Atomics.load(i32, yw + G_GEN) === yGen && Atomics.load(i32, yw + G_STATE) === GS_ALIVE;
      const trap = alive ? trapOf(o, yw) : -1;
      if (trap >= 0 && node < 0) {
        // ...an exit is needed: take its node without holding the locks, then look again.
        if (x !== y) unlock(i32, second + G_LOCK);
        unlock(i32, first + G_LOCK);
        node = o.allocNode(NK_EXIT);
        continue;
      }
      if (trap >= 0) {
        const [from, fromGen] = Atomics.load(i32, xw + G_GEN) === xGen ? takeIdentity(o, xw) : [-1, 0];
        makeExit(o, node, from, fromGen, reason, code, detail);
        pushPending(o, trap, node); // under the locks, as a kill does
        node = -1; // the node is the exit's now
        trapped = true;
      }
      if (x !== y) unlock(i32, second + G_LOCK);
      unlock(i32, first + G_LOCK);
      break;
    }
  } finally {
    o.deferDepth--;
    if (node >= 0) o.freeNode(node); // ...taken, but no exit was needed after all
  }
  if (alive && !trapped) killGroup(o, y, yGen, code, detail);
  runDeferred(o);
}

/** Kills group (g, gen) as `killGroup` does, for a checked reason (reasons.ts). Never fails for lack of memory. */
export function killGroupFor(o: Shared, g: number, gen: number, reason: KillReason | undefined): void {
  const { code, detail } = storeReason(o, reason);
  killGroup(o, g, gen, code, detail, 1);
  releaseDetail(o, detail);
}

/**
 * Links group (a, aGen) (the caller's) with (b, bGen). Returns the link id
 * (the id of a's end), the existing link's id if they are linked already, or
 * 0 when no link was made: the groups are the same, or one side was dead,
 * in which case the other has been killed.
 */
export function linkGroups(o: Shared, a: number, aGen: number, b: number, bGen: number): number {
  if (a === b) return 0;
  const i32 = o.i32;
  const aw = o.groups.word(a);
  const bw = o.groups.word(b);
  const first = a < b ? aw : bw;
  const second = a < b ? bw : aw;
  // The two link nodes are taken only once a new link proves necessary: linking
  // twice, or linking with a dead side, needs none and must work with the node
  // pool full. Allocation happens outside the locks, then the check is redone.
  let n1 = -1;
  let n2 = -1;
  const iw = o.intentWord;
  o.intend(OP_LINK, a, aGen, b, bGen);
  try {
    for (;;) {
      lock(i32, first + G_LOCK, o.lockTag);
      lock(i32, second + G_LOCK, o.lockTag);
      o.at('link:locked');
      const aAlive = Atomics.load(i32, aw + G_GEN) === aGen && Atomics.load(i32, aw + G_STATE) === GS_ALIVE;
      const bAlive = Atomics.load(i32, bw + G_GEN) === bGen && Atomics.load(i32, bw + G_STATE) === GS_ALIVE;
      let existing = -1;
      if (aAlive && bAlive) {
        for (let x = Atomics.load(i32, aw + G_LINKS); x !== 0; ) {
          const nw = o.nodes.word(x - 1);
          if (Atomics.load(i32, nw + N_A) === b && Atomics.load(i32, nw + N_B) === bGen) {
            existing = x - 1;
            break;
          }
          x = Atomics.load(i32, nw + N_NEXT);
        }
      }
      if (aAlive && bAlive && existing < 0) {
        if (n1 < 0) {
          // ...a new link is needed: take its nodes without holding the locks, then look again.
          unlock(i32, second + G_LOCK);
          unlock(i32, first + G_LOCK);
          // Each recorded at once with its generation: a recoverer frees a node that was never published.
          n1 = o.allocNode(NK_LINK);
          Atomics.store(i32, iw + TH_LINK_GEN1, o.nodeGen(n1));
          Atomics.store(i32, iw + TH_E, n1 + 1);
          n2 = o.allocNode(NK_LINK);
          Atomics.store(i32, iw + TH_LINK_GEN2, o.nodeGen(n2));
          Atomics.store(i32, iw + TH_F, n2 + 1);
          continue;
        }
        const w1 = o.nodes.word(n1);
        const w2 = o.nodes.word(n2);
        Atomics.store(i32, w1 + N_A, b);
        Atomics.store(i32, w1 + N_B, bGen);
        Atomics.store(i32, w1 + N_C, n2);
        Atomics.store(i32, w1 + N_D, Atomics.load(i32, w2 + N_GEN));
        Atomics.store(i32, w1 + N_E, a);
        Atomics.store(i32, w2 + N_A, a);
        Atomics.store(i32, w2 + N_B, aGen);
        Atomics.store(i32, w2 + N_C, n1);
        Atomics.store(i32, w2 + N_D, Atomics.load(i32, w1 + N_GEN));
        Atomics.store(i32, w2 + N_E, b);
        o.at('link:filled');
        // From here to the count nothing is called: a thread terminated in
        // between did all of it or none (a recoverer frees unpublished nodes).
        Atomics.store(i32, w1 + N_NEXT, Atomics.load(i32, aw + G_LINKS));
        Atomics.store(i32, aw + G_LINKS, n1 + 1); // publishes a's end (under both locks)
        Atomics.store(i32, w2 + N_NEXT, Atomics.load(i32, bw + G_LINKS));
        Atomics.store(i32, bw + G_LINKS, n2 + 1); // publishes b's end
        Atomics.add(i32, C_LINK_ENDS, 2);
        Atomics.store(i32, iw + TH_STEP, 1); // in the same straight run: a recoverer knows both ends are published
        o.at('link:published');
        unlock(i32, second + G_LOCK);
        unlock(i32, first + G_LOCK);
        const id = makeId(n1, o.nodeGen(n1));
        n1 = -1; // the nodes now belong to the link
        n2 = -1;
        o.done();
        return id;
      }
      // One side is dead: the link fires at once, and the other side traps it
      // or dies of the dead side's death.
      let code = 0;
      let detail = 0;
      const deadWord = aAlive ? bw : aw;
      if (aAlive !== bAlive && Atomics.load(i32, deadWord + G_GEN) === (aAlive ? bGen : aGen)) {
        code = Atomics.load(i32, deadWord + G_CODE);
        detail = Atomics.load(i32, deadWord + G_DETAIL);
        retainDetail(o, detail); // ours for what follows (the dead slot holds one: we hold its lock)
      }
      unlock(i32, second + G_LOCK);
      unlock(i32, first + G_LOCK);
      // Nodes taken on an earlier turn and not needed: freed before anything else (a kill below replaces the intent).
      if (n1 >= 0) o.freeNode(n1);
      n1 = -1;
      if (n2 >= 0) o.freeNode(n2);
      n2 = -1;
      o.done();
      if (existing >= 0) return makeId(existing, o.nodeGen(existing));
      try {
        if (aAlive) partnerGone(o, a, aGen, b, bGen, REASON_KILLED, code, detail);
        else if (bAlive) partnerGone(o, b, bGen, a, aGen, REASON_KILLED, code, detail);
      } finally {
        releaseDetail(o, detail);
      }
      return 0;
    }
  } finally {
    // Nodes taken for a link that turned out not to be needed (or half taken when the pool ran out).
    if (n1 >= 0) o.freeNode(n1);
    if (n2 >= 0) o.freeNode(n2);
    o.done();
  }
}

/** Removes the link whose a-side node has id `id`. Returns whether it removed it. */
export function unlinkGroups(o: Shared, id: number): boolean {
  const i32 = o.i32;
  const gen = idGeneration(id);
  const node = idIndex(id);
  if (gen < 0 || node >= o.nodes.count) return false;
  const nw = o.nodes.word(node);
  if (Atomics.load(i32, nw + N_GEN) !== gen || Atomics.load(i32, nw + N_KIND) !== NK_LINK) return false;
  const a = Atomics.load(i32, nw + N_E);
  const b = Atomics.load(i32, nw + N_A);
  if (a >= o.groups.count || b >= o.groups.count) return false;
  const aw = o.groups.word(a);
  const bw = o.groups.word(b);
  const first = a < b ? aw : bw;
  const second = a < b ? bw : aw;
  lock(i32, first + G_LOCK, o.lockTag);
  lock(i32, second + G_LOCK, o.lockTag);
  let removedNode = false;
  let removedTwin = -1;
  // Re-checked under the locks: the link may have been dropped (and the node reused) meanwhile.
  if (
    Atomics.load(i32, nw + N_GEN) === gen &&
    Atomics.load(i32, nw + N_KIND) === NK_LINK &&
    Atomics.load(i32, nw + N_E) === a &&
    Atomics.load(i32, nw + N_A) === b
  ) {
    removedNode = removeFromList(o, aw + G_LINKS, node);
    if (removedNode) {
      const twin = Atomics.load(i32, nw + N_C);
      if (o.nodeGen(twin) === Atomics.load(i32, nw + N_D) && removeFromList(o, bw + G_LINKS, twin)) {
        removedTwin = twin;
      }
    }
  }
  unlock(i32, second + G_LOCK);
  unlock(i32, first + G_LOCK);
  if (removedNode) freeLinkEnd(o, node);
  if (removedTwin >= 0) freeLinkEnd(o, removedTwin);
  return removedNode;
}
