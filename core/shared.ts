/**
 * One thread's view of a post office's shared memory: typed-array views,
 * the pool allocators, this thread's producer slot and ring cache. The
 * operations on routes and groups (routes.ts, groups.ts) take it as their
 * first argument. Everything here is per thread; everything it points at is
 * shared.
 */

import { type Producer, ProducerSlots, Ring } from '../ring/index.ts';
import { Bitmap } from './bitmap.ts';
import { CapacityExceeded, PostOfficeMismatch, type Region } from './errors.ts';
import {
  C_IN_USE,
  C_RETIRED,
  ENTRY_BYTES,
  GROUP_BYTES,
  H_MAGIC,
  H_MAILBOX_CAPACITY,
  H_MAX_MESSAGE,
  H_OFFICE_ID,
  H_POOLS,
  H_SLOTS_OFFSET,
  H_THREADS,
  H_THREADS_OFFSET,
  H_TOTAL_BYTES,
  H_VERSION,
  HAZARD_ROUTE_MASK,
  HAZARD_TAG_SHIFT,
  LAYOUT_VERSION,
  MAGIC,
  MAX_GENERATION,
  N_GEN,
  N_KIND,
  N_NEXT,
  NK_FREE,
  NODE_BYTES,
  OP_NONE,
  PAGE_BYTES,
  POOL_COUNT,
  POOL_ENTRIES,
  POOL_GROUPS,
  POOL_HEAP,
  POOL_NODES,
  POOL_ROUTES,
  POOL_TABLES,
  R_GEN,
  R_RING,
  ROUTE_BYTES,
  TABLE_BYTES,
  TH_A,
  TH_B,
  TH_C,
  TH_D,
  TH_E,
  TH_F,
  TH_HAZARD,
  TH_OP,
  TH_STEP,
  THREAD_BYTES,
} from './layout.ts';
import { lockTag } from './lock.ts';

/** Slot size in bytes of each pool (heap: a page). */
export const POOL_SLOT_BYTES = [ROUTE_BYTES, GROUP_BYTES, TABLE_BYTES, ENTRY_BYTES, NODE_BYTES, PAGE_BYTES];
const POOL_REGION: Region[] = ['routes', 'groups', 'tables', 'capabilities', 'nodes', 'heap'];

/** A pool: its bitmap and where its slots start. */
export class Pool {
  readonly bits: Bitmap;
  /** Word index of slot 0. */
  readonly slotBase: number;
  /** Words per slot. */
  readonly slotWords: number;

  constructor(
    private readonly office: Shared,
    readonly pool: number,
    bitmapOffset: number,
    slotsOffset: number,
    readonly count: number,
  ) {
    this.bits = new Bitmap(office.i32, bitmapOffset >> 2, count);
    this.slotBase = slotsOffset >> 2;
    this.slotWords = POOL_SLOT_BYTES[pool]! >> 2;
  }

  /** Word index of slot `index`'s first word. */
  word(index: number): number {
    return this.slotBase + index * this.slotWords;
  }

  /** Claims a slot or throws CapacityExceeded naming the region. */
  alloc(): number {
    const index = this.bits.alloc();
    if (index < 0) throw new CapacityExceeded(POOL_REGION[this.pool]!);
    Atomics.add(this.office.i32, C_IN_USE + this.pool, 1);
    return index;
  }

  /**
   * Frees slot `index` whose generation word is `genWord`: bumps the
   * generation (so every id naming it dies) and gives the bit back, unless
   * the generation is exhausted, in which case the slot is retired for good.
   */
  free(index: number, genWord: number): void {
    this.freeBumped(index, Atomics.add(this.office.i32, genWord, 1) + 1);
  }

  /** Like `free`, for a slot whose generation the caller has already bumped to `gen`. */
  freeBumped(index: number, gen: number): void {
    const i32 = this.office.i32;
    Atomics.sub(i32, C_IN_USE + this.pool, 1);
    if (gen >= MAX_GENERATION) {
      Atomics.add(i32, C_RETIRED, 1);
      return;
    }
    this.bits.free(index); // publishes: the slot may be claimed again
  }
}

export interface LayoutSizes {
  threads: number;
  routes: number;
  groups: number;
  tables: number;
  capabilities: number;
  nodes: number;
  heapBytes: number;
  mailboxCapacity: number;
  maxMessageBytes: number;
}

/** The tag a thread of producer-slot generation `generation` puts in its hazard word. */
export function hazardTag(generation: number): number {
  return (generation & 0xff) << HAZARD_TAG_SHIFT;
}

export class Shared {
  readonly buffer: SharedArrayBuffer;
  readonly i32: Int32Array;
  readonly u8: Uint8Array;
  readonly officeId: number;
  /**
   * Mixed into the generation bits of every table handle (30 random bits of
   * the office id), so that a handle of another post office, a mere number,
   * does not name a live entry here (DESIGN: a handle means nothing in any
   * other table). Within one office handles stay exact.
   */
  readonly handleSalt: number;
  readonly slots: ProducerSlots;
  readonly producer: Producer;
  readonly routes: Pool;
  readonly groups: Pool;
  readonly tables: Pool;
  readonly entries: Pool;
  readonly nodes: Pool;
  readonly heap: Pool;
  /** Byte offset of heap page 0. */
  readonly heapStart: number;
  readonly maxMessageBytes: number;
  readonly mailboxCapacity: number;
  /** Word index of thread record 0. */
  readonly threadBase: number;
  /** Word index of this thread's hazard word. */
  readonly hazardWord: number;
  /** This thread's tag in its hazard word (see TH_HAZARD). */
  readonly hazardTag: number;
  /** This thread's tag in the lock words it holds (lock.ts). */
  readonly lockTag: number;
  /** Word index of this thread's intent record (layout.ts, TH_OP). */
  readonly intentWord: number;
  /**
   * @internal Test hook: called at named points inside control operations
   * (see `at`), so a test can park a worker there and terminate it. Null in
   * production: one property check per point, on control paths only.
   */
  hook: ((point: string) => void) | null = null;
  /** What this thread last stored in its hazard word (routes.ts, enter). */
  hazardCurrent = 0;

  /** Producer-side Ring objects by route slot, valid while ringKeys[slot] is the route's generation + 1. */
  private readonly rings: (Ring | undefined)[];
  private readonly ringKeys: Int32Array;

  /** Whether this thread is running its deferred frees (their worklists are in its thread record: TH_DEFER_*). */
  unrefRunning = false;
  /** Locks this thread holds on a path that may drop references; freeing waits until it is 0. */
  deferDepth = 0;

  /** Lays out an empty post office in `buffer`. Creator only, before anyone attaches. */
  /** `offsets`: producer slots, then (bitmap, slots) per pool, then the thread records. */
  static init(buffer: SharedArrayBuffer, sizes: LayoutSizes, offsets: number[]): void {
    const i32 = new Int32Array(buffer);
    i32[H_VERSION] = LAYOUT_VERSION;
    i32[H_OFFICE_ID] = (Math.random() * 0x7fffffff) | 1;
    i32[H_TOTAL_BYTES] = buffer.byteLength;
    i32[H_THREADS] = sizes.threads;
    i32[H_MAX_MESSAGE] = sizes.maxMessageBytes;
    i32[H_MAILBOX_CAPACITY] = sizes.mailboxCapacity;
    const counts = [sizes.routes, sizes.groups, sizes.tables, sizes.capabilities, sizes.nodes];
    counts.push(sizes.heapBytes / PAGE_BYTES);
    i32[H_SLOTS_OFFSET] = offsets[0]!;
    for (let p = 0; p < POOL_COUNT; p++) {
      i32[H_POOLS + 3 * p] = offsets[1 + 2 * p]!;
      i32[H_POOLS + 3 * p + 1] = offsets[2 + 2 * p]!;
      i32[H_POOLS + 3 * p + 2] = counts[p]!;
      new Bitmap(i32, offsets[1 + 2 * p]! >> 2, counts[p]!).init();
    }
    i32[H_THREADS_OFFSET] = offsets[1 + 2 * POOL_COUNT]!;
    ProducerSlots.init(buffer, offsets[0]!, sizes.threads);
    Atomics.store(i32, H_MAGIC, MAGIC); // publishes the layout: attach checks this word
  }

  constructor(buffer: SharedArrayBuffer) {
    if (!(buffer instanceof SharedArrayBuffer))
      throw new PostOfficeMismatch('a post office is a SharedArrayBuffer');
    if (buffer.byteLength < 256) throw new PostOfficeMismatch('buffer too small to hold a post office');
    this.buffer = buffer;
    this.i32 = new Int32Array(buffer);
    this.u8 = new Uint8Array(buffer);
    const i32 = this.i32;
    if (Atomics.load(i32, H_MAGIC) !== MAGIC) throw new PostOfficeMismatch('no post office in this buffer');
    if (i32[H_VERSION] !== LAYOUT_VERSION) {
      throw new PostOfficeMismatch(
        `post office layout version ${i32[H_VERSION]}, expected ${LAYOUT_VERSION}`,
      );
    }
    if (i32[H_TOTAL_BYTES] !== buffer.byteLength)
      throw new PostOfficeMismatch('buffer length does not match');
    this.officeId = i32[H_OFFICE_ID]!;
    this.handleSalt = this.officeId & 0x3fffffff;
    this.maxMessageBytes = i32[H_MAX_MESSAGE]!;
    this.mailboxCapacity = i32[H_MAILBOX_CAPACITY]!;
    const pool = (p: number) =>
      new Pool(this, p, i32[H_POOLS + 3 * p]!, i32[H_POOLS + 3 * p + 1]!, i32[H_POOLS + 3 * p + 2]!);
    this.routes = pool(POOL_ROUTES);
    this.groups = pool(POOL_GROUPS);
    this.tables = pool(POOL_TABLES);
    this.entries = pool(POOL_ENTRIES);
    this.nodes = pool(POOL_NODES);
    this.heap = pool(POOL_HEAP);
    this.heapStart = this.heap.slotBase << 2;
    this.slots = ProducerSlots.attach(buffer, i32[H_SLOTS_OFFSET]!);
    this.producer = this.slots.acquire();
    this.threadBase = i32[H_THREADS_OFFSET]! >> 2;
    this.hazardWord = this.threadRecord(this.producer.slot) + TH_HAZARD;
    this.hazardTag = hazardTag(this.producer.generation);
    Atomics.store(i32, this.hazardWord, 0);
    this.lockTag = lockTag(this.producer.slot, this.producer.generation);
    this.intentWord = this.threadRecord(this.producer.slot);
    // The intent record and deferred-free stacks start empty (a dead predecessor's were cleared by its recoverer).
    for (let k = TH_OP; k < THREAD_BYTES >> 2; k++) Atomics.store(i32, this.intentWord + k, 0);
    void OP_NONE;
    this.rings = new Array(this.routes.count);
    this.ringKeys = new Int32Array(this.routes.count);
  }

  /** Records that this thread is entering control operation `op` (layout.ts, TH_OP) with its arguments. */
  intend(op: number, a: number, b: number, c = 0, d = 0, e = 0, f = 0): void {
    const i32 = this.i32;
    const w = this.intentWord;
    Atomics.store(i32, w + TH_A, a);
    Atomics.store(i32, w + TH_B, b);
    Atomics.store(i32, w + TH_C, c);
    Atomics.store(i32, w + TH_D, d);
    Atomics.store(i32, w + TH_E, e);
    Atomics.store(i32, w + TH_F, f);
    Atomics.store(i32, w + TH_STEP, 0);
    Atomics.store(i32, w + TH_OP, op); // publishes the intent (to a recoverer, once this thread is dead)
  }

  /** The control operation is over: nothing is left for a recoverer to finish. */
  done(): void {
    Atomics.store(this.i32, this.intentWord + TH_OP, OP_NONE);
  }

  /** Test hook point (see `hook`). */
  at(point: string): void {
    if (this.hook !== null) this.hook(point);
  }

  get threadCount(): number {
    return this.i32[H_THREADS]!;
  }

  /** Word index of the thread record of producer slot `slot`. */
  threadRecord(slot: number): number {
    return this.threadBase + slot * (THREAD_BYTES >> 2);
  }

  /** Whether some thread's hazard names route `r` (its ring is in use). May be stale the moment it is read. */
  hazarded(r: number): boolean {
    const i32 = this.i32;
    const mark = r + 1;
    const stride = THREAD_BYTES >> 2;
    for (let t = 0, w = this.threadBase + TH_HAZARD; t < this.threadCount; t++, w += stride) {
      if ((Atomics.load(i32, w) & HAZARD_ROUTE_MASK) === mark) return true;
    }
    return false;
  }

  // ---------------------------------------------------------------- nodes

  /** Claims a node and sets its kind. Throws CapacityExceeded('nodes'). */
  allocNode(kind: number): number {
    const n = this.nodes.alloc();
    const w = this.nodes.word(n);
    Atomics.store(this.i32, w + N_NEXT, 0);
    Atomics.store(this.i32, w + N_KIND, kind);
    return n;
  }

  freeNode(n: number): void {
    const w = this.nodes.word(n);
    Atomics.store(this.i32, w + N_KIND, NK_FREE);
    Atomics.store(this.i32, w + N_NEXT, 0);
    this.nodes.free(n, w + N_GEN);
  }

  nodeGen(n: number): number {
    return Atomics.load(this.i32, this.nodes.word(n) + N_GEN);
  }

  // ---------------------------------------------------------------- heap

  /** Claims heap pages for `bytes` bytes; returns the absolute byte offset. Throws CapacityExceeded('heap'). */
  allocHeap(bytes: number): number {
    const pages = Math.ceil(bytes / PAGE_BYTES);
    const first = this.heap.bits.allocRun(pages);
    if (first < 0) throw new CapacityExceeded('heap');
    Atomics.add(this.i32, C_IN_USE + POOL_HEAP, pages);
    return this.heapStart + first * PAGE_BYTES;
  }

  freeHeap(offset: number, bytes: number): void {
    const pages = Math.ceil(bytes / PAGE_BYTES);
    this.heap.bits.freeRun((offset - this.heapStart) / PAGE_BYTES, pages);
    Atomics.sub(this.i32, C_IN_USE + POOL_HEAP, pages);
  }

  // ---------------------------------------------------------------- rings

  /**
   * This thread's Ring object for route `r`'s mailbox. Call only while the
   * ring is known to exist (the route pinned and not gone). Allocates the
   * Ring object the first time per (thread, route).
   */
  ringOf(r: number): Ring {
    // A plain read: the caller holds a reference, so the generation cannot change under it.
    const key = this.i32[this.routes.word(r) + R_GEN]! + 1;
    let ring = this.rings[r];
    if (ring === undefined || this.ringKeys[r] !== key) {
      ring = Ring.attach(this.buffer, Atomics.load(this.i32, this.routes.word(r) + R_RING));
      this.rings[r] = ring;
      this.ringKeys[r] = key;
    }
    return ring;
  }

  /** Gives this thread's producer slot back. */
  /** Set by PostOffice.detach: only closing tables still works. */
  detached = false;
  /** Tables of this attachment not yet closed; the producer slot outlives the detach until they are. */
  openTables = 0;

  detach(): void {
    this.detached = true;
    this.releaseProducerIfDone();
  }

  /**
   * Gives the producer slot back once the attachment is detached and its last
   * table closed: closing a table still closes routes, fires monitors and
   * nudges their consumers, which writes records with this producer.
   */
  releaseProducerIfDone(): void {
    if (this.detached && this.openTables === 0 && !this.producer.released) this.slots.release(this.producer);
  }
}
