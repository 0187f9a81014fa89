/**
 * The post office: every route, group, capability table and mailbox ring of
 * a set of communicating processes, in one SharedArrayBuffer (layout.ts).
 *
 * `create` sizes and lays out the buffer; every other thread `attach`es to
 * it. Each PostOffice object is one thread's attachment: it holds that
 * thread's producer slot (ring/) and its allocation hints, and everything it
 * creates (tables, groups, mailboxes) belongs to that thread.
 */

import { ProducerSlots } from '../ring/index.ts';
import { Bitmap } from './bitmap.ts';
import { PostOfficeMismatch } from './errors.ts';
import {
  align64,
  C_DETAILS,
  C_DOWNS,
  C_EXITS,
  C_IN_USE,
  C_LINK_ENDS,
  C_LIVE_GROUPS,
  C_MONITORS,
  C_OPEN_ROUTES,
  C_OWNED,
  C_RETIRED,
  HAZARD_ROUTE_MASK,
  HEADER_BYTES,
  ID_INDEX_LIMIT,
  PAGE_BYTES,
  POOL_ENTRIES,
  POOL_GROUPS,
  POOL_HEAP,
  POOL_NODES,
  POOL_ROUTES,
  POOL_TABLES,
  TH_HAZARD,
  THREAD_BYTES,
} from './layout.ts';
import { checkKillReason, type KillReason, releaseDetail, storeReason } from './reasons.ts';
import { freeSlotIfClaimMoot, reclaimThread } from './reclaim.ts';
import { recoverThread } from './recover.ts';
import { dropHazard, settle } from './routes.ts';
import { hazardTag, type LayoutSizes, POOL_SLOT_BYTES, Shared } from './shared.ts';
import { claimOwned, dropOwned, type OwnedCapability, Table } from './table.ts';

export interface PostOfficeOptions {
  /** Threads that may attach at once (producer slots). Default 64. */
  maxThreads?: number;
  /** Route slots. Default 4096. */
  maxRoutes?: number;
  /** Group slots. Default 4096. */
  maxGroups?: number;
  /** Capability tables. Default 1024. */
  maxTables?: number;
  /** Capability-table entries, shared by all tables. Default 65536. */
  maxCapabilities?: number;
  /** List nodes (monitors, pending downs, link ends, owned tokens). Default 65536. */
  maxNodes?: number;
  /** Bytes of shared heap for mailbox rings and out-of-line messages. Default 16 MiB. */
  heapBytes?: number;
  /** Default ring capacity of a mailbox in bytes (a power of two). Default 16 KiB. */
  mailboxCapacity?: number;
  /** Largest message body accepted; larger sends throw MessageTooLarge. Default 1 MiB. */
  maxMessageBytes?: number;
}

/** Counts of what is in use; `capacity` gives the size of each region. May be stale the moment it is read. */
export interface PostOfficeStats {
  /** Route slots in use (open routes, and closed ones something still names). */
  routes: number;
  openRoutes: number;
  /** Group slots in use. */
  groups: number;
  liveGroups: number;
  tables: number;
  /** Capability-table entries in use, across tables. */
  capabilities: number;
  /** Monitors registered and not yet fired or removed. */
  monitors: number;
  /** Down signals not yet delivered. */
  pendingDowns: number;
  /** Exit signals (trapped exits) not yet delivered. */
  pendingExits: number;
  links: number;
  /** Owned capabilities not yet imported or discarded. */
  owned: number;
  /** Nodes in use (monitors, downs, two per link, owned). */
  nodes: number;
  /** Heap bytes in use (rings and out-of-line messages), in whole pages. */
  heapBytes: number;
  /** Attached threads (producer slots in use). */
  threads: number;
  /** Slots retired for good because their generation ran out. */
  retired: number;
  /** Exit-detail blobs in the heap (their pages count in heapBytes). */
  details: number;
  capacity: {
    routes: number;
    groups: number;
    tables: number;
    capabilities: number;
    nodes: number;
    heapBytes: number;
    threads: number;
    maxMessageBytes: number;
  };
}

const DEFAULTS = {
  maxThreads: 64,
  maxRoutes: 4096,
  maxGroups: 4096,
  maxTables: 1024,
  maxCapabilities: 65536,
  maxNodes: 65536,
  heapBytes: 16 << 20,
  mailboxCapacity: 16 << 10,
  maxMessageBytes: 1 << 20,
} satisfies Required<PostOfficeOptions>;

export class PostOffice {
  /** @internal */ readonly o: Shared;
  private detached = false;

  /** Sizes, allocates and lays out a new post office, and attaches this thread to it. */
  static create(options: PostOfficeOptions = {}): PostOffice {
    const sizes = resolveSizes(options);
    const { offsets, total } = planLayout(sizes);
    const buffer = new SharedArrayBuffer(total);
    Shared.init(buffer, sizes, offsets);
    return new PostOffice(buffer);
  }

  /** Attaches this thread to a post office another thread created. Throws PostOfficeMismatch for anything else. */
  static attach(buffer: SharedArrayBuffer): PostOffice {
    return new PostOffice(buffer);
  }

  private constructor(buffer: SharedArrayBuffer) {
    this.o = new Shared(buffer);
  }

  /** The shared buffer: hand it to other threads' `attach`. Never to untrusted code (it can forge anything). */
  get buffer(): SharedArrayBuffer {
    return this.o.buffer;
  }

  /** This thread's producer slot, for the host to declare the thread dead (`ProducerSlots.markDead`) after its exit. */
  get thread(): { slot: number; generation: number } {
    return { slot: this.o.producer.slot, generation: this.o.producer.generation };
  }

  /**
   * Declares a thread that attached this post office dead, once its worker
   * has exited (never while it may still run), and reclaims everything its
   * tables owned (reclaim.ts). Mailbox rings then skip a claim it left
   * half-written; a ring it was writing into when it died is no longer held;
   * every live group its tables created is killed with `reason` (default:
   * code 0, no detail; links and monitors fire as for any kill); its
   * mailboxes are let go (rings freed once nobody writes into them), its
   * Group objects' references dropped, its capabilities released and its
   * tables freed. Before that, a control operation it died inside (kill,
   * link, unlink, monitor, demonitor, route creation, close, a group's
   * free) is repaired: every lock it held is found by its tag, what the lock
   * guards made consistent, the lock broken and its waiters woken, and the
   * operation finished or undone (recover.ts; README, Thread death). Returns false, changing nothing, when (slot,
   * generation) is not a live thread. RangeError for a bad slot or reason.
   */
  markThreadDead(slot: number, generation: number, reason?: KillReason): boolean {
    const o = this.o;
    if (!Number.isInteger(slot) || slot < 0 || slot >= o.threadCount)
      throw new RangeError(`no thread slot ${slot}`);
    if (slot === o.producer.slot) throw new RangeError('a thread cannot declare itself dead');
    checkKillReason(reason);
    // First the ring's view: consumers may now skip its open claim, and a ring
    // freed below releases the slot with it.
    if (!o.slots.markDead(slot, generation)) return false;
    // It may have died inside a send: its hazard would hold that ring for ever.
    const word = o.threadRecord(slot) + TH_HAZARD;
    const hazard = Atomics.load(o.i32, word);
    if (hazard !== 0 && (hazard & ~HAZARD_ROUTE_MASK) === hazardTag(generation)) {
      if (Atomics.compareExchange(o.i32, word, hazard, 0) === hazard)
        settle(o, (hazard & HAZARD_ROUTE_MASK) - 1);
    }
    // It may have died inside a control operation: locks it held are repaired and broken, and
    // the operation finished or undone (recover.ts), before what it owned is reclaimed.
    recoverThread(o, slot, generation);
    const { code, detail } = storeReason(o, reason);
    reclaimThread(o, slot, generation, code, detail);
    releaseDetail(o, detail);
    // ...its last claim may have been in a ring that is gone already.
    freeSlotIfClaimMoot(o, slot);
    return true;
  }

  /** A new capability table owned by the calling thread. */
  createTable(): Table {
    if (this.detached) throw new PostOfficeMismatch('this attachment has been detached');
    return new Table(this, this.o);
  }

  /** Drops an owned capability nobody will import. Returns false if it was used already. */
  discardOwned(owned: OwnedCapability): boolean {
    let node: number;
    try {
      node = claimOwned(this.o, owned);
    } catch (error) {
      if (error instanceof PostOfficeMismatch) throw error;
      return false;
    }
    dropOwned(this.o, node);
    return true;
  }

  stats(): PostOfficeStats {
    const o = this.o;
    const i32 = o.i32;
    const used = (pool: number) => Atomics.load(i32, C_IN_USE + pool);
    return {
      routes: used(POOL_ROUTES),
      openRoutes: Atomics.load(i32, C_OPEN_ROUTES),
      groups: used(POOL_GROUPS),
      liveGroups: Atomics.load(i32, C_LIVE_GROUPS),
      tables: used(POOL_TABLES),
      capabilities: used(POOL_ENTRIES),
      monitors: Atomics.load(i32, C_MONITORS),
      pendingDowns: Atomics.load(i32, C_DOWNS),
      pendingExits: Atomics.load(i32, C_EXITS),
      links: Math.ceil(Atomics.load(i32, C_LINK_ENDS) / 2),
      owned: Atomics.load(i32, C_OWNED),
      nodes: used(POOL_NODES),
      heapBytes: used(POOL_HEAP) * PAGE_BYTES,
      threads: o.slots.inUse(),
      retired: Atomics.load(i32, C_RETIRED),
      details: Atomics.load(i32, C_DETAILS),
      capacity: {
        routes: o.routes.count,
        groups: o.groups.count,
        tables: o.tables.count,
        capabilities: o.entries.count,
        nodes: o.nodes.count,
        heapBytes: o.heap.count * PAGE_BYTES,
        threads: o.threadCount,
        maxMessageBytes: o.maxMessageBytes,
      },
    };
  }

  /**
   * Gives this thread's producer slot back. Tables, groups and mailboxes of
   * this attachment should be closed first; they cannot send afterwards.
   */
  /**
   * @internal This thread is going idle (a scheduler about to park): it drops
   * its hazard, so a mailbox it last wrote into can free its ring meanwhile.
   */
  idle(): void {
    if (!this.detached) dropHazard(this.o);
  }

  detach(): void {
    if (this.detached) return;
    this.detached = true;
    dropHazard(this.o);
    this.o.detach();
  }
}

function resolveSizes(options: PostOfficeOptions): LayoutSizes {
  const pick = (name: keyof PostOfficeOptions, min: number, max: number): number => {
    const value = options[name] ?? DEFAULTS[name];
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new RangeError(`${name} must be an integer in ${min}..${max}, got ${value}`);
    }
    return value;
  };
  const heapBytes = Math.ceil(pick('heapBytes', PAGE_BYTES, 2 ** 30) / PAGE_BYTES) * PAGE_BYTES;
  const mailboxCapacity = pick('mailboxCapacity', 64, 1 << 28);
  if ((mailboxCapacity & (mailboxCapacity - 1)) !== 0) {
    throw new RangeError(`mailboxCapacity must be a power of two, got ${mailboxCapacity}`);
  }
  return {
    threads: pick('maxThreads', 1, 1 << 16),
    routes: pick('maxRoutes', 1, ID_INDEX_LIMIT),
    groups: pick('maxGroups', 1, ID_INDEX_LIMIT),
    tables: pick('maxTables', 1, ID_INDEX_LIMIT),
    capabilities: pick('maxCapabilities', 1, ID_INDEX_LIMIT),
    nodes: pick('maxNodes', 2, ID_INDEX_LIMIT),
    heapBytes,
    mailboxCapacity,
    // The default maximum shrinks with a heap smaller than it; an explicit one must fit the heap.
    maxMessageBytes:
      options.maxMessageBytes === undefined
        ? Math.min(DEFAULTS.maxMessageBytes, heapBytes)
        : pick('maxMessageBytes', 0, heapBytes),
  };
}

/** Byte offsets: producer slots, then (bitmap, slots) per pool in POOL_* order, then the thread records. */
function planLayout(sizes: LayoutSizes): { offsets: number[]; total: number } {
  const counts = [sizes.routes, sizes.groups, sizes.tables, sizes.capabilities, sizes.nodes];
  counts.push(sizes.heapBytes / PAGE_BYTES);
  let at = HEADER_BYTES;
  const offsets = [at];
  at += align64(ProducerSlots.bytesFor(sizes.threads));
  for (let p = 0; p < counts.length; p++) {
    offsets.push(at);
    at += align64(Bitmap.bytesFor(counts[p]!));
    offsets.push(at);
    at += align64(counts[p]! * POOL_SLOT_BYTES[p]!);
  }
  offsets.push(at);
  at += sizes.threads * THREAD_BYTES;
  return { offsets, total: at };
}
