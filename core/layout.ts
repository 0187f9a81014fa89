/**
 * Layout of a post office: one SharedArrayBuffer, regions in this order, each
 * starting 64-aligned.
 *
 *   header          256 bytes, words below (H_*)
 *   producer slots  ring/'s ProducerSlots: one per attached thread
 *   route pool      bitmap, then ROUTE_BYTES per route slot (R_*)
 *   group pool      bitmap, then GROUP_BYTES per group slot (G_*)
 *   table pool      bitmap, then TABLE_BYTES per table slot (T_*)
 *   entry pool      bitmap, then ENTRY_BYTES per capability-table entry (E_*)
 *   node pool       bitmap, then NODE_BYTES per list node (N_*)
 *   heap            bitmap of PAGE_BYTES pages, then the pages: mailbox rings
 *                   and out-of-line messages
 *   thread records  THREAD_BYTES per producer slot (TH_*): the hazard word
 *
 * Every pool is a bitmap allocator (bitmap.ts): a set bit is a slot in use.
 * Claiming a bit is one compare-and-swap and freeing one is one atomic and;
 * a bitmap has no head pointer, so there is no ABA to guard against.
 *
 * Ids. Route, group, entry and node slots each carry a generation word that
 * is bumped when the slot is freed. Anything that names a slot from outside
 * (a table handle, a monitor id, a link id, an owned token) is an *id*:
 *   id = (generation + 1) * 2^22 + slot index
 * a safe integer (generation < MAX_GENERATION keeps it below 2^53). A slot
 * whose generation reaches MAX_GENERATION is retired rather than reused, so
 * an id, once dead, never names anything again. Capability records inside
 * shared memory name routes by (index, generation) word pairs instead.
 */

export const MAGIC = 0x54534f50; // 'POST' little-endian
export const LAYOUT_VERSION = 3;

export const HEADER_BYTES = 256;
export const PAGE_BYTES = 64;

/** Slots per pool are limited by the index bits of an id. */
export const ID_INDEX_BITS = 22;
export const ID_INDEX_LIMIT = 1 << ID_INDEX_BITS;
export const ID_INDEX_MASK = ID_INDEX_LIMIT - 1;
/** Generations stop here (a slot at this generation is retired): (2^30 + 1) * 2^22 < 2^53. */
export const MAX_GENERATION = 1 << 30;

/** Encodes (slot index, generation) as an id. */
export function makeId(index: number, generation: number): number {
  return (generation + 1) * ID_INDEX_LIMIT + index;
}

/** Slot index of an id. Ids are integers below 2^53, so the low bits survive ToInt32. */
export function idIndex(id: number): number {
  return id & ID_INDEX_MASK;
}

/** Generation of an id, or -1 when `id` is not a well-formed id. */
export function idGeneration(id: number): number {
  if (!(id >= ID_INDEX_LIMIT && id <= Number.MAX_SAFE_INTEGER) || !Number.isInteger(id)) return -1;
  return (id - (id & ID_INDEX_MASK)) / ID_INDEX_LIMIT - 1;
}

// ------------------------------------------------------------------ header
// Words written once by create before MAGIC, read-only afterwards:
export const H_MAGIC = 0; // written last by create: publishes the layout
export const H_VERSION = 1;
/** Random tag of this post office, carried by owned capabilities to detect a foreign one. */
export const H_OFFICE_ID = 2;
export const H_TOTAL_BYTES = 3;
export const H_SLOTS_OFFSET = 4; // byte offset of the producer-slot region
export const H_THREADS = 5; // producer slots
export const H_MAX_MESSAGE = 6; // largest message body accepted, bytes
export const H_MAILBOX_CAPACITY = 7; // default ring capacity of a mailbox, bytes
/** Pools: byte offset of the bitmap, byte offset of slot 0, slot count; at H_POOLS + 3 * pool. */
export const H_POOLS = 8;
export const POOL_ROUTES = 0;
export const POOL_GROUPS = 1;
export const POOL_TABLES = 2;
export const POOL_ENTRIES = 3;
export const POOL_NODES = 4;
export const POOL_HEAP = 5;
export const POOL_COUNT = 6;
/** Byte offset of the thread records (one per producer slot). */
export const H_THREADS_OFFSET = 26;
// Global counters (words 32..63), changed with Atomics.add/sub by whichever
// thread changes what they count; read by stats() and may be stale:
export const C_IN_USE = 32; // slots in use per pool, at C_IN_USE + pool (heap: pages)
export const C_OPEN_ROUTES = 40; // routes not yet closed
export const C_LIVE_GROUPS = 41; // groups not yet dead
export const C_MONITORS = 42; // monitor registrations not yet fired or removed
export const C_DOWNS = 43; // down signals created and not yet delivered or discarded
export const C_LINK_ENDS = 44; // link nodes (two per link)
export const C_OWNED = 45; // owned capabilities not yet imported or discarded
export const C_RETIRED = 46; // slots retired because their generation ran out
export const C_DETAILS = 47; // exit-detail blobs in the heap (reasons.ts)
export const C_EXITS = 48; // exit signals created and not yet delivered or discarded

// ------------------------------------------------------------------ threads
/** A thread record, two cache lines per producer slot (the hazard word alone in the first one's hot use), written by the thread holding that slot. */
export const THREAD_BYTES = 128;
/**
 * Hazard: while this thread uses a route's ring in a synchronous call (send,
 * nudge, down push), (generation tag << HAZARD_TAG_SHIFT) | (route index + 1);
 * else 0. The tag is the low bits of the thread's producer-slot generation,
 * so whoever declares the thread dead clears its hazard, never a later
 * holder's. Stored before the thread reads the route's close state; a ring
 * is freed only when no hazard names its route (routes.ts, settle).
 */
export const TH_HAZARD = 0;
/**
 * The intent record: what control operation the thread is inside, written
 * by the thread (Atomics.store) before the operation changes anything that
 * another thread could depend on and cleared (TH_OP = OP_NONE) when it is
 * done, so that whoever declares the thread dead can finish or undo it
 * (recover.ts). TH_OP is one of OP_*; TH_A..TH_F are the operation's
 * arguments and the nodes it allocated, TH_STEP how far it got (each
 * operation documents its own use, in recover.ts). Only the owning thread
 * writes it; the recoverer reads it once the thread is dead.
 */
export const TH_OP = 1;
export const TH_A = 2;
export const TH_B = 3;
export const TH_C = 4;
export const TH_D = 5;
export const TH_E = 6;
export const TH_F = 7;
export const TH_STEP = 8;
/**
 * A link list being dropped (groups.ts, dropLinkList), inside OP_KILL or
 * OP_FREE_GROUP: the node in hand (index + 1, 0 = none), its generation,
 * and the rest of the detached list (index + 1), written before the node in
 * hand is freed, so the walk can be resumed for a dead thread.
 */
export const TH_DROP = 9;
export const TH_DROP_GEN = 10;
export const TH_DROP_NEXT = 11;
/**
 * A group slot being freed (groups.ts, freeGroup), which runs from the
 * deferred frees inside any other operation, so it has words of its own:
 * group index + 1 (0 = none), its new generation, the death detail to
 * release, and how far it got (1 = links dropped, 2 = detail released).
 * Its link list is dropped through TH_DROP* (a kill never runs deferred
 * frees, so the two never share them).
 */
export const TH_FREE_GROUP = 12;
export const TH_FREE_GEN = 13;
export const TH_FREE_DETAIL = 14;
export const TH_FREE_STEP = 15;
/** linkGroups: the generations of its two nodes (TH_E, TH_F), so a recoverer never frees a node reused since. */
export const TH_LINK_GEN1 = 16;
export const TH_LINK_GEN2 = 17;
/**
 * The thread's deferred frees (routes.ts, runDeferred), kept in shared
 * memory so that a recoverer finishes them for a dead thread: the heads of
 * its stacks of route slots and group slots whose last reference went (index
 * + 1, chained through R_DEFER_NEXT and G_DEFER_NEXT), and the route it is
 * letting go of (index + 1, 0 = none; unrefRoute). A slot joins its stack
 * in the same straight run as the reference drop that freed it.
 */
export const TH_DEFER_ROUTES = 18;
export const TH_DEFER_GROUPS = 19;
export const TH_UNREF_ROUTE = 20;
/** A watcher reference in hand (route index + 1): a monitor fired, its down pushed, the reference not yet dropped (routes.ts, fireMonitors). */
export const TH_FIRE_WATCHER = 21;

export const OP_NONE = 0;
/** killGroup: A, B = group (index, gen); C = code; D = detail; E = 1 if the dead frame held a reference on D for the call. */
export const OP_KILL = 1;
/** linkGroups: A, B = group a; C, D = group b; E, F = the two link nodes (index + 1, 0 = none yet). */
export const OP_LINK = 2;
/** monitorRoute: A = node; B = watched route; C = watcher route; D = the node's generation; STEP = 1 once the node holds its watcher reference. */
export const OP_MONITOR = 3;
/** demonitorRoute: A = node; B = its generation; C = watched route. */
export const OP_DEMONITOR = 4;
/** closeRoute: A = route (index), closed by the thread; its pending monitors may still have to fire. */
export const OP_CLOSE = 5;
/** createRoute: A = route joining group B. */
export const OP_JOIN = 6;

export const HAZARD_TAG_SHIFT = 23;
export const HAZARD_ROUTE_MASK = (1 << HAZARD_TAG_SHIFT) - 1;

// ------------------------------------------------------------------ routes
/**
 * A route slot: one route and its mailbox. Two cache lines: the words every
 * send touches (R_PIN, R_REFS, R_RING) are in the first.
 */
export const ROUTE_BYTES = 128;
/** Generation, bumped (by the slot's freer) when the slot is freed. */
export const R_GEN = 0;
/**
 * Lifecycle word: flag bits (R_*_BIT) over a pin count (PIN_COUNT_MASK).
 * Awaiting senders add 1 around their use of the ring (synchronous users
 * post a hazard in their thread record instead); the flags
 * record the route's close and the release of its ring and slot, so that
 * exactly one thread frees each (see routes.ts, settle).
 */
export const R_PIN = 1;
/** References: the mailbox owner (1), table entries, capabilities in queued records, down nodes, owned tokens, monitor nodes watching through this mailbox. */
export const R_REFS = 2;
export const R_GROUP = 3; // group slot index, written at creation
export const R_GROUP_GEN = 4; // group generation, written at creation
export const R_RING = 5; // byte offset of the mailbox ring, written at creation
export const R_RING_PAGES = 6; // heap pages of the ring
export const R_LOCK = 7; // route lock (lock.ts: 0 or the holder's tag): guards R_MONITORS and the close transition
/**
 * Head of the monitor list (node index + 1, 0 = empty); pushed and removed
 * under R_LOCK while the route is open. After the close the list is frozen
 * (no monitor joins or leaves it) and its monitors fire one at a time: each
 * firer pops the head with a compare-and-swap (routes.ts, fireMonitors), so
 * a kill restarted after its killer died fires what is left.
 */
export const R_MONITORS = 8;
/** Head of the pending stack of downs and exits (node index + 1): pushed lock-free by anyone, taken whole by the owner. */
export const R_DOWNS = 9;
/**
 * Why the route closed, three words written under R_LOCK before the CLOSED
 * bit (or, for a route born closed in a dead group, before anyone can name
 * it) and constant afterwards: the REASON_* kind, the exit code (reasons.ts:
 * the caller's 30-bit code, DETAIL_DROPPED when a detail was asked for and
 * could not be stored), and the detail blob (heap byte offset, 0 for none),
 * on which the slot holds a reference until it is freed.
 */
export const R_REASON = 10;
export const R_NEXT_MEMBER = 11; // group member list (route index + 1); under the group's lock
export const R_PREV_MEMBER = 12;
export const R_FLAGS = 13; // RF_MEMBER while on its group's member list; under the group's lock
/**
 * The mailbox's owning table (table slot index + 1) while the Mailbox object
 * holds its owner reference, 0 once it let go; R_OWNER_GEN is that table
 * slot's generation. Written by the owner at creation and when it lets go
 * (before the reference goes), or by whoever reclaims a dead owner's thread
 * (markThreadDead): it finds the dead thread's mailboxes by these words.
 */
export const R_OWNER_TABLE = 14;
export const R_CODE = 15; // see R_REASON
export const R_DETAIL = 16; // see R_REASON
export const R_OWNER_GEN = 17; // see R_OWNER_TABLE
/**
 * The owner's taken downs and exits, oldest first (node index + 1 through
 * N_NEXT), not yet received: what it took off R_DOWNS in one exchange. Only
 * the owner writes it (or the reclaimer of a dead owner), so a thread that
 * dies between receives leaves them where they can be discarded.
 */
export const R_LOCAL_DOWNS = 18;
/** Next route on the deferred-free stack of the thread that dropped its last reference (TH_DEFER_ROUTES). */
export const R_DEFER_NEXT = 19;

export const PIN_COUNT_MASK = (1 << 26) - 1;
/** Closed: senders drop, the owner stops delivering ring records. */
export const R_CLOSED_BIT = 1 << 30;
/** The owner let the mailbox go: nobody consumes the ring any more. */
export const R_GONE_BIT = 1 << 29;
/** R_REFS reached 0 and the slot has left its group. */
export const R_UNREF_BIT = 1 << 28;
/** The ring has been drained and its pages freed. */
export const R_RING_FREED_BIT = 1 << 27;
/** The slot has been freed. */
export const R_SLOT_FREED_BIT = 1 << 26;

export const RF_MEMBER = 1;

export const REASON_CLOSED = 1;
export const REASON_KILLED = 2;

// ------------------------------------------------------------------ groups
export const GROUP_BYTES = 64;
export const G_GEN = 0; // bumped under G_LOCK when the slot is freed
export const G_STATE = 1; // GS_*; under G_LOCK
export const G_LOCK = 2; // group lock (lock.ts: 0 or the holder's tag)
/** References: Group objects and route slots of the group. */
export const G_REFS = 3;
export const G_MEMBERS = 4; // head of the member list (route index + 1); under G_LOCK
export const G_LINKS = 5; // head of the link list (node index + 1); under G_LOCK
/**
 * How the group died: exit code and detail blob, as R_CODE and R_DETAIL.
 * Written by the killer under G_LOCK before GS_DEAD, constant afterwards;
 * the slot holds a reference on the blob until it is freed.
 */
export const G_CODE = 6;
export const G_DETAIL = 7;
/**
 * The mailbox that traps exits for this group (route index + 1, 0 = the
 * group does not trap) and its route's generation. Set and cleared under
 * G_LOCK by the owning table's thread (Group.trapExits, and its mailbox when
 * it lets go, before it drops its reference: so while this word names a
 * route, the route slot is held); cleared by the killer when the group dies.
 * The route is always a member of this group.
 */
export const G_TRAP = 8;
export const G_TRAP_GEN = 9;
/**
 * The identity route (route index + 1, 0 = none), the first mailbox created
 * in the group while alive, and its generation: exits name the group by it.
 * Set under G_LOCK when that route joins; cleared under G_LOCK when it leaves
 * the group (its slot is about to be freed), so while this word names a
 * route, the route slot exists (its references may have reached 0).
 */
export const G_IDENTITY = 10;
export const G_IDENTITY_GEN = 11;
/**
 * The table that created the group (table slot index + 1; 0 while the slot
 * is free) and that table slot's generation. Written at creation, cleared
 * when the slot is freed (under G_LOCK, before the slot can be claimed again).
 * markThreadDead kills the live groups a dead thread's tables created.
 */
export const G_TABLE = 12;
export const G_TABLE_GEN = 13;
/**
 * 1 while the creating table's Group object holds its reference (G_REFS),
 * 0 once it let go. Written by that table's thread (creation, release), or
 * by the reclaimer of a dead one, which drops the reference in its stead.
 */
export const G_OBJECT = 14;
/** Next group on the deferred-free stack of the thread that dropped its last reference (TH_DEFER_GROUPS). */
export const G_DEFER_NEXT = 15;

export const GS_FREE = 0;
export const GS_ALIVE = 1;
export const GS_DEAD = 2;

// ------------------------------------------------------------------ tables
/** A table slot: identity of one capability table; its entries are in the entry pool. */
export const TABLE_BYTES = 16;
export const T_GEN = 0;
export const T_ENTRIES = 1; // live entries, for information
/** Producer slot of the owning thread, or -1 while the slot is free; written by the owner at creation and close. */
export const T_THREAD = 2;
export const T_THREAD_GEN = 3; // that slot's generation: which thread, for markThreadDead

/** A capability-table entry. Written only by the owning table's thread. */
export const ENTRY_BYTES = 32;
export const E_GEN = 0; // bumped when released
export const E_OWNER = 1; // owning table slot + 1; 0 while free
export const E_ROUTE = 2;
export const E_ROUTE_GEN = 3;
export const E_PERMS = 4;
export const E_PREV = 5; // the owning table's entry list (entry index + 1), for close()
export const E_NEXT = 6;

// ------------------------------------------------------------------ nodes
/** A list node: monitor, pending down or exit, link end or owned token. */
export const NODE_BYTES = 32;
export const N_GEN = 0; // bumped when freed
export const N_KIND = 1; // NK_*
export const N_NEXT = 2; // next node index + 1
export const N_A = 3;
export const N_B = 4;
export const N_C = 5;
export const N_D = 6;
export const N_E = 7;

export const NK_FREE = 0;
/** In a watched route's R_MONITORS: A, B = watcher route (index, gen); C, D = watched route (index, gen). */
export const NK_MONITOR = 1;
/** A monitor node taken off its list by demonitor, not yet freed (recover.ts finishes it for a dead thread). */
export const NK_REMOVED = 7;
/** In a watcher's R_DOWNS: A, B = watched route; C = reason; holds a ref on the watched route. */
export const NK_DOWN = 2;
/** In a group's G_LINKS: A, B = partner group; C, D = twin node (index, gen) in the partner's list; E = own group. */
export const NK_LINK = 3;
/** An owned capability: A, B = route; C = permissions; holds a ref on the route. */
export const NK_OWNED = 4;
/** An owned token being imported or discarded: claimed by one thread's compare-and-swap from NK_OWNED. */
export const NK_OWNED_CLAIMED = 5;
/**
 * In a trapping mailbox's R_DOWNS, like a down: an exit. A, B = the dead
 * group's identity route (index, gen), A = -1 for none; C = reason (REASON_*);
 * D = exit code; E = detail blob (0: none). Holds a reference on the route
 * (if any) and on the blob. Made from the link end that fired, or from a
 * fresh node when a link is made to a partner already gone.
 */
export const NK_EXIT = 6;

// ------------------------------------------------------------------ records
/** Ring record types of mailbox records. */
export const REC_PLAIN = 1; // payload = message bytes
export const REC_CAPS = 2; // payload = [count][count x (route, gen, perms)][bytes]
export const REC_LARGE = 3; // payload = [heap offset][length][count][count x (route, gen, perms)]
/** Wakes the consumer to look at its close state and pending downs; carries nothing. */
export const REC_NUDGE = 4;

export function align64(n: number): number {
  return Math.ceil(n / 64) * 64;
}
