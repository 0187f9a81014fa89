/**
 * Reclaiming what a dead thread owned (PostOffice.markThreadDead).
 *
 * A worker can be terminated at any instant. Whatever it owned through JS
 * objects that died with it is found again through ownership words in
 * shared memory, and let go of as its objects would have:
 *
 *   groups     G_TABLE/G_TABLE_GEN name the table that created the group;
 *              G_OBJECT says whether its Group object still holds its
 *              reference. Every live group the dead tables created is killed
 *              (with the given reason: links and monitors fire as for any
 *              kill, trapping partners get exits), and the Group objects'
 *              references are dropped.
 *   mailboxes  R_OWNER_TABLE/R_OWNER_GEN name the table whose Mailbox object
 *              holds the route's owner reference. Each is let go as
 *              Mailbox.finish and letGo would: its outgoing monitors are
 *              removed (found by a scan of the node pool for monitor nodes
 *              that watch through it), its taken and pending downs and exits
 *              discarded (R_LOCAL_DOWNS, R_DOWNS), the ring handed over to be
 *              freed once nobody writes into it (drained from HEAD: records
 *              the dead consumer took but did not hand back hold nothing,
 *              see discardRecord), and the owner reference dropped.
 *   entries    E_OWNER names the table: every capability is released.
 *   tables     T_THREAD/T_THREAD_GEN name the thread: the tables are freed.
 *
 * The scans are over whole pools: this is rare, and it needs no per-thread
 * lists that the hot paths would have to keep. Only the dead thread ever
 * wrote those ownership words while it lived (or freed the slots they are
 * in), so once it is gone the reclaimer may act on them.
 *
 * A thread that died inside a control operation is repaired first
 * (recover.ts): its locks broken, its operation finished or undone. Out of
 * scope: a receive cut short, and a `sendWhenRoom` it was awaiting keeps its
 * pin (README, Limits).
 */

import { SLOT_ANNOUNCE_RING } from '../ring/producer-slots.ts';
import { killGroup, releaseGroup } from './groups.ts';
import {
  E_GEN,
  E_OWNER,
  E_ROUTE,
  G_GEN,
  G_LOCK,
  G_OBJECT,
  G_STATE,
  G_TABLE,
  G_TABLE_GEN,
  GS_ALIVE,
  GS_FREE,
  makeId,
  N_A,
  N_B,
  N_GEN,
  N_KIND,
  NK_MONITOR,
  R_DOWNS,
  R_GEN,
  R_GONE_BIT,
  R_LOCAL_DOWNS,
  R_OWNER_GEN,
  R_OWNER_TABLE,
  R_PIN,
  R_RING,
  R_RING_FREED_BIT,
  REASON_KILLED,
  T_ENTRIES,
  T_GEN,
  T_THREAD,
  T_THREAD_GEN,
} from './layout.ts';
import { lock, unlock } from './lock.ts';
import {
  closeRoute,
  demonitorRoute,
  discardDownList,
  dropHazardOn,
  releaseRoute,
  runDeferred,
  settle,
} from './routes.ts';
import type { Shared } from './shared.ts';

/**
 * Reclaims every table of the dead thread (producer slot `slot`, generation
 * `generation`) and what they owned; live groups die with exit code `code`
 * and detail blob `detail` (the caller holds a reference). Returns how many
 * tables it reclaimed.
 */
export function reclaimThread(
  o: Shared,
  slot: number,
  generation: number,
  code: number,
  detail: number,
): number {
  const i32 = o.i32;
  let reclaimed = 0;
  for (let t = 0; t < o.tables.count; t++) {
    if (!o.tables.bits.isSet(t)) continue;
    const tw = o.tables.word(t);
    if (Atomics.load(i32, tw + T_THREAD) !== slot || Atomics.load(i32, tw + T_THREAD_GEN) !== generation)
      continue;
    reclaimTable(o, t, Atomics.load(i32, tw + T_GEN), code, detail);
    reclaimed++;
  }
  return reclaimed;
}

function reclaimTable(o: Shared, t: number, tableGen: number, code: number, detail: number): void {
  const i32 = o.i32;
  // 1. Its groups: kill the live ones, and take over the Group objects' references.
  const held: number[] = [];
  for (let g = 0; g < o.groups.count; g++) {
    if (!o.groups.bits.isSet(g)) continue;
    const w = o.groups.word(g);
    // Read under the lock: a slot being freed or claimed by another thread is never taken for ours.
    lock(i32, w + G_LOCK, o.lockTag);
    const state = Atomics.load(i32, w + G_STATE);
    const ours =
      state !== GS_FREE &&
      Atomics.load(i32, w + G_TABLE) === t + 1 &&
      Atomics.load(i32, w + G_TABLE_GEN) === tableGen;
    const gen = Atomics.load(i32, w + G_GEN);
    const object = ours && Atomics.load(i32, w + G_OBJECT) === 1;
    if (object) Atomics.store(i32, w + G_OBJECT, 0); // its reference is ours to drop now
    unlock(i32, w + G_LOCK);
    if (!ours) continue;
    if (state === GS_ALIVE) killGroup(o, g, gen, code, detail);
    if (object) held.push(g);
  }
  // 2. Its mailboxes: all closed by now (a mailbox is in a group of its own table). Let them go.
  const mailboxes = new Map<number, number>(); // route -> generation
  for (let r = 0; r < o.routes.count; r++) {
    if (!o.routes.bits.isSet(r)) continue;
    const w = o.routes.word(r);
    if (Atomics.load(i32, w + R_OWNER_TABLE) !== t + 1 || Atomics.load(i32, w + R_OWNER_GEN) !== tableGen)
      continue;
    mailboxes.set(r, Atomics.load(i32, w + R_GEN));
  }
  if (mailboxes.size !== 0) removeMonitorsThrough(o, mailboxes);
  for (const r of mailboxes.keys()) letGoOf(o, r, code, detail);
  // 3. The Group objects' references.
  for (const g of held) releaseGroup(o, g);
  // 4. Its capabilities: only the owning thread ever touches a table's entries; it is gone.
  for (let e = 0; e < o.entries.count; e++) {
    const w = o.entries.word(e);
    if (Atomics.load(i32, w + E_OWNER) !== t + 1) continue;
    const route = Atomics.load(i32, w + E_ROUTE);
    Atomics.store(i32, w + E_OWNER, 0);
    o.entries.free(e, w + E_GEN);
    releaseRoute(o, route);
  }
  // 5. The table.
  const tw = o.tables.word(t);
  Atomics.store(i32, tw + T_ENTRIES, 0);
  Atomics.store(i32, tw + T_THREAD, -1);
  o.tables.free(t, tw + T_GEN);
  runDeferred(o);
}

/** Removes every monitor watching through one of `mailboxes` (route -> generation), as their Mailbox would have. */
function removeMonitorsThrough(o: Shared, mailboxes: Map<number, number>): void {
  const i32 = o.i32;
  for (let n = 0; n < o.nodes.count; n++) {
    if (!o.nodes.bits.isSet(n)) continue;
    const nw = o.nodes.word(n);
    // Generation first: if the node changes hands after this read, demonitor refuses the id.
    const gen = Atomics.load(i32, nw + N_GEN);
    if (Atomics.load(i32, nw + N_KIND) !== NK_MONITOR) continue;
    if (mailboxes.get(Atomics.load(i32, nw + N_A)) !== Atomics.load(i32, nw + N_B)) continue;
    demonitorRoute(o, makeId(n, gen));
  }
}

/** Lets go of dead-owned mailbox route `r` as Mailbox.finish and letGo would. */
function letGoOf(o: Shared, r: number, code: number, detail: number): void {
  const i32 = o.i32;
  const w = o.routes.word(r);
  closeRoute(o, r, REASON_KILLED, code, detail); // a no-op: its group was killed above
  discardDownList(o, Atomics.exchange(i32, w + R_LOCAL_DOWNS, 0));
  discardDownList(o, Atomics.exchange(i32, w + R_DOWNS, 0));
  Atomics.or(i32, w + R_PIN, R_GONE_BIT); // publishes: nobody consumes this ring any more
  dropHazardOn(o, r); // our own hazard (the kill nudged this route) must not hold it
  settle(o, r);
  Atomics.store(i32, w + R_OWNER_TABLE, 0);
  releaseRoute(o, r);
}

/**
 * A dead producer slot is freed by the consumer of the ring it last claimed
 * space in, once it has resolved that claim, or when that ring is freed. If
 * the ring was freed while the thread still lived, nobody ever looks: then
 * the claim is moot, and the slot is freed here. Returns whether it was.
 */
export function freeSlotIfClaimMoot(o: Shared, slot: number): boolean {
  const i32 = o.i32;
  const announced = Atomics.load(i32, o.slots.slotWord(slot) + SLOT_ANNOUNCE_RING) - 1;
  if (announced >= 0) {
    for (let r = 0; r < o.routes.count; r++) {
      if (!o.routes.bits.isSet(r)) continue;
      const w = o.routes.word(r);
      // ...a ring still there: its consumer, or whoever frees it, resolves the claim.
      if (
        Atomics.load(i32, w + R_RING) === announced &&
        (Atomics.load(i32, w + R_PIN) & R_RING_FREED_BIT) === 0
      )
        return false;
    }
  }
  return o.slots.freeDead(slot);
}
