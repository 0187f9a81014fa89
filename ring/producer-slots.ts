/**
 * Producer slots: one slot per producing thread, shared by every ring laid in
 * the same SharedArrayBuffer.
 *
 * Why they exist: a producer claims ring space with one compare-and-swap on
 * the tail and publishes the record afterwards. A thread terminated between
 * the two leaves a claimed, never-published record that would stall the
 * consumer for ever. Before each claim a producer *announces* it in its own
 * slot (which record header, how many bytes). Once the host knows the thread
 * is gone (its `exit` event fired) it calls `markDead`; the consumer of the
 * stalled ring then finds the announcement and turns the dead claim into
 * padding. A slot is only ever declared dead by `markDead`; a slow producer
 * is never mistaken for a dead one.
 *
 * Roles: each LIVE slot's announcement words are written only by the thread
 * that acquired it. `markDead` is called by whoever observed that thread's
 * exit. A ring consumer reclaims DEAD slots whose claim it has resolved.
 *
 * Layout (byte offsets from the region start; the region starts 64-aligned):
 *
 *   0   MAGIC            'PSLT', written once by init
 *   4   VERSION          layout version, written once by init
 *   8   COUNT            number of slots, written once by init
 *   12  DEAD_COUNT       slots in state DEAD: markDead adds, reclaimers subtract;
 *                        consumers read it to decide whether recovery is worth a scan
 *   16  ACQUIRE_HINT     where the next acquire starts looking; any thread, a hint only
 *   64  slot 0, 64 bytes each (a cache line, so producers do not share lines):
 *     +0   STATE           (generation << 2) | FREE/LIVE/DEAD/RECLAIMING; see below.
 *                          acquire/release by the owner, markDead by the watcher,
 *                          reclaim by a ring consumer
 *     +4   ANNOUNCE_RING   byte offset + 1 of the ring of the latest claim; 0 = this
 *                          acquisition never claimed. Written by the owner.
 *     +8   ANNOUNCE_POS    ring position (TAIL value) the latest claim starts at
 *     +12  ANNOUNCE_BYTES  bytes that claim spans (padding + header + payload);
 *                          0 once the claim is published (withdrawn), and after an
 *                          attempt that found the ring full
 *     +32..+60  WAITING_RINGS  eight entries, each the byte offset + 1 of a ring whose
 *                          ROOM_WAITERS this thread has added 1 to while any of its
 *                          writes wait for room there (0 = unused). One thread can
 *                          have many awaitable writes parked at once (many processes
 *                          share a worker): it counts them locally and holds one
 *                          registration per ring. An entry is set after the add and
 *                          cleared before the subtract, so a death in between can
 *                          only leave a count too high (a spurious notify), never too
 *                          low (a lost wake-up); markDead takes a dead thread's
 *                          registrations back.
 *   The owner writes the three announcement words with plain stores, BYTES and
 *   RING before POS, all before its claiming CAS on the ring's TAIL. Anyone who
 *   later reads TAIL and sees the claim (an atomic load that reads from that
 *   CAS) is thereby guaranteed to see the announcement that preceded it. After
 *   publishing, the owner withdraws it (BYTES = 0), so a LIVE announcement that
 *   covers a position always means a claim in flight there.
 *
 * STATE packs a generation with the state bits so that `markDead(slot, gen)`
 * arriving late (after the thread released the slot and another acquired it)
 * cannot kill the new owner: the CAS expects the old generation.
 */

import { LayoutMismatch, ProducerSlotsExhausted, ProducerStateError } from './errors.ts';
import { W_ROOM_WAITERS, wakeConsumerAt } from './ring-layout.ts';
import { type SharedViews, viewsOf } from './shared-views.ts';

const MAGIC = 0x544c5350; // 'PSLT' little-endian
const VERSION = 1;

const HEADER_BYTES = 64;
const SLOT_BYTES = 64;
const SLOT_WORDS = SLOT_BYTES / 4;

// Header words (index from the region's first word).
const H_MAGIC = 0;
const H_VERSION = 1;
const H_COUNT = 2;
const H_DEAD_COUNT = 3;
const H_ACQUIRE_HINT = 4;

/** Word indices inside one slot. */
export const SLOT_STATE = 0;
export const SLOT_ANNOUNCE_RING = 1;
export const SLOT_ANNOUNCE_POS = 2;
export const SLOT_ANNOUNCE_BYTES = 3;
/** First of the slot's room-wait entries (see the layout above). */
export const SLOT_WAITING_RINGS = 8;
/** How many rings one producer can be registered as waiting for room on at once. */
export const WAITING_RING_ENTRIES = 8;

/** State bits of SLOT_STATE (low two bits). */
export const FREE = 0;
export const LIVE = 1;
export const DEAD = 2;
/** A reclaimer owns the slot while clearing it; it becomes FREE next. */
export const RECLAIMING = 3;
const STATE_MASK = 3;
const GEN_SHIFT = 2;
const MAX_SLOTS = 1 << 16;

/**
 * One thread's right to produce into the rings of a buffer. The fields below
 * the slot identity are thread-local bookkeeping of the claim in flight;
 * they are never shared.
 */
export class Producer {
  /** Ring header word index of the open claim, or -1 when no claim is open. */
  claimRingBase = -1;
  /** Word index of the open claim's record header (its publish word). */
  claimHeaderWord = 0;
  /** Payload length of the open claim. */
  claimLength = 0;
  /** Value last written into ANNOUNCE_RING, so repeat claims on one ring skip that store. */
  announcedRing = 0;
  /** This thread's writes waiting for room, by ring byte offset: how many, and which slot entry holds the registration. */
  readonly roomWaits = new Map<number, { count: number; entry: number }>();
  released = false;
  /** Word index of this slot's first word. */
  readonly slotWord: number;
  /**
   * This producer's mark in the TYPE word of every record it claims, above the
   * type's low byte: (slot + 1) << 8. Written first thing after the claiming
   * CAS, it tells a consumer recovering a dead claim which dead producer owns
   * it (see Ring's recovery).
   */
  readonly claimMark: number;

  constructor(
    readonly slots: ProducerSlots,
    /** Slot index, to hand to `markDead` by whoever watches this thread. */
    readonly slot: number,
    /** Generation of this acquisition, to hand to `markDead` with `slot`. */
    readonly generation: number,
  ) {
    this.slotWord = slots.slotWord(slot);
    this.claimMark = (slot + 1) << 8;
  }
}

export class ProducerSlots {
  readonly views: SharedViews;
  /** Word index of the region's first word. */
  readonly base: number;
  readonly count: number;

  /** Bytes a region of `count` slots occupies. */
  static bytesFor(count: number): number {
    checkCount(count);
    return HEADER_BYTES + count * SLOT_BYTES;
  }

  /** Lays out a fresh region (all slots FREE) and attaches to it. */
  static init(buffer: SharedArrayBuffer, byteOffset: number, count: number): ProducerSlots {
    checkCount(count);
    checkPlacement(buffer, byteOffset, HEADER_BYTES + count * SLOT_BYTES);
    const { i32 } = viewsOf(buffer);
    const base = byteOffset >> 2;
    i32.fill(0, base, base + (HEADER_BYTES + count * SLOT_BYTES) / 4);
    Atomics.store(i32, base + H_COUNT, count);
    Atomics.store(i32, base + H_VERSION, VERSION);
    Atomics.store(i32, base + H_MAGIC, MAGIC); // publishes the region: attach checks this last-written word
    return remember(new ProducerSlots(buffer, byteOffset));
  }

  /**
   * Opens a region another thread laid out with `init`. One object per
   * region and thread: every ring attached to the buffer shares it, so a
   * producer's table is recognised by identity.
   */
  static attach(buffer: SharedArrayBuffer, byteOffset: number): ProducerSlots {
    return attachedRegions.get(buffer)?.get(byteOffset) ?? remember(new ProducerSlots(buffer, byteOffset));
  }

  private constructor(buffer: SharedArrayBuffer, byteOffset: number) {
    checkPlacement(buffer, byteOffset, HEADER_BYTES);
    this.views = viewsOf(buffer);
    const i32 = this.views.i32;
    this.base = byteOffset >> 2;
    if (Atomics.load(i32, this.base + H_MAGIC) !== MAGIC) {
      throw new LayoutMismatch(`no producer-slot region at byte offset ${byteOffset}`);
    }
    if (Atomics.load(i32, this.base + H_VERSION) !== VERSION) {
      throw new LayoutMismatch(
        `producer-slot region at ${byteOffset} has layout version ${i32[this.base + H_VERSION]}`,
      );
    }
    this.count = Atomics.load(i32, this.base + H_COUNT);
    checkPlacement(buffer, byteOffset, HEADER_BYTES + this.count * SLOT_BYTES);
  }

  /** Byte offset of the region, to pass to `attach` in another thread. */
  get byteOffset(): number {
    return this.base << 2;
  }

  /** Word index of slot `slot`'s first word. */
  slotWord(slot: number): number {
    return this.base + (HEADER_BYTES >> 2) + slot * SLOT_WORDS;
  }

  /** Number of DEAD slots whose claims are not yet resolved. May be stale the moment it is read. */
  get deadCount(): number {
    return Atomics.load(this.views.i32, this.base + H_DEAD_COUNT);
  }

  /** Word index of DEAD_COUNT, for consumers that poll it on their slow path. */
  get deadCountWord(): number {
    return this.base + H_DEAD_COUNT;
  }

  /** Slots not FREE (LIVE, DEAD or being reclaimed). May be stale the moment it is read. */
  inUse(): number {
    let n = 0;
    for (let s = 0; s < this.count; s++) {
      if ((Atomics.load(this.views.i32, this.slotWord(s) + SLOT_STATE) & STATE_MASK) !== FREE) n++;
    }
    return n;
  }

  /** Takes a free slot for the calling thread. Throws ProducerSlotsExhausted when none is free. */
  acquire(): Producer {
    const i32 = this.views.i32;
    const start = Atomics.load(i32, this.base + H_ACQUIRE_HINT) % this.count;
    for (let k = 0; k < this.count; k++) {
      const slot = (start + k) % this.count;
      const stateWord = this.slotWord(slot) + SLOT_STATE;
      const state = Atomics.load(i32, stateWord);
      if ((state & STATE_MASK) !== FREE) continue;
      const generation = ((state >>> GEN_SHIFT) + 1) & 0x3fffffff;
      if (Atomics.compareExchange(i32, stateWord, state, (generation << GEN_SHIFT) | LIVE) === state) {
        // A fresh acquisition has claimed nothing yet (its predecessor released or was reclaimed).
        i32[stateWord + SLOT_ANNOUNCE_RING] = 0;
        i32[stateWord + SLOT_ANNOUNCE_BYTES] = 0;
        i32.fill(0, stateWord + SLOT_WAITING_RINGS, stateWord + SLOT_WAITING_RINGS + WAITING_RING_ENTRIES);
        Atomics.store(i32, this.base + H_ACQUIRE_HINT, (slot + 1) % this.count);
        return new Producer(this, slot, generation);
      }
      // Lost the slot to another acquirer: keep scanning.
    }
    throw new ProducerSlotsExhausted(`all ${this.count} producer slots are in use`);
  }

  /** Gives the slot back. The producer must have no claim open. */
  release(producer: Producer): void {
    if (producer.slots !== this) throw new ProducerStateError('producer belongs to another slot table');
    if (producer.released) return;
    if (producer.claimRingBase !== -1)
      throw new ProducerStateError('cannot release a producer with an open claim');
    const i32 = this.views.i32;
    const stateWord = this.slotWord(producer.slot) + SLOT_STATE;
    const live = (producer.generation << GEN_SHIFT) | LIVE;
    producer.released = true;
    // Fails only if someone declared this live thread dead: then the slot is theirs to reclaim.
    Atomics.compareExchange(i32, stateWord, live, (producer.generation << GEN_SHIFT) | FREE);
  }

  /**
   * Declares the thread holding (slot, generation) dead. Call it only once the
   * thread can no longer run (after its worker's `exit` event): a thread
   * declared dead while still running could write into space the consumer
   * has already turned into padding. Returns false when that acquisition is
   * no longer live (released, or already declared dead).
   */
  markDead(slot: number, generation: number): boolean {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.count) {
      throw new ProducerStateError(`no producer slot ${slot}`);
    }
    const i32 = this.views.i32;
    const word = this.slotWord(slot);
    const live = (generation << GEN_SHIFT) | LIVE;
    const dead = (generation << GEN_SHIFT) | DEAD;
    if (Atomics.compareExchange(i32, word + SLOT_STATE, live, dead) !== live) return false;
    for (let e = 0; e < WAITING_RING_ENTRIES; e++) {
      const waitingRing = i32[word + SLOT_WAITING_RINGS + e]!;
      if (waitingRing === 0) continue;
      // It died parked for room: it no longer waits, so take its registration back.
      i32[word + SLOT_WAITING_RINGS + e] = 0;
      Atomics.sub(i32, ((waitingRing - 1) >> 2) + W_ROOM_WAITERS, 1);
    }
    const ring = i32[word + SLOT_ANNOUNCE_RING]!; // the dead thread wrote it, and wrote nothing since
    // ANNOUNCE_BYTES is set before every claim's CAS and cleared only after its publish: 0 means no
    // claim of its is in flight (it died between writes, or never claimed anything).
    if (ring === 0 || i32[word + SLOT_ANNOUNCE_BYTES] === 0) {
      // Nothing to recover: the slot is free at once, rather than when the consumer of the ring it
      // last wrote into next runs dry (which may be never, for a mailbox nobody reads).
      i32[word + SLOT_ANNOUNCE_RING] = 0;
      Atomics.store(i32, word + SLOT_STATE, (generation << GEN_SHIFT) | FREE); // publishes: the slot can be acquired again
      return true;
    }
    Atomics.add(i32, this.base + H_DEAD_COUNT, 1); // publishes: consumers now look for its claim
    // The consumer of the ring it last claimed on may be parked behind an unpublished claim.
    wakeConsumerAt(i32, (ring - 1) >> 2);
    return true;
  }

  /**
   * Frees a DEAD slot once a ring consumer has proven its last claim harmless
   * (consumed, recovered, or never made). Returns whether it freed it.
   */
  freeDead(slot: number): boolean {
    const i32 = this.views.i32;
    const word = this.slotWord(slot);
    const state = Atomics.load(i32, word + SLOT_STATE);
    if ((state & STATE_MASK) !== DEAD) return false;
    const reclaiming = (state & ~STATE_MASK) | RECLAIMING;
    if (Atomics.compareExchange(i32, word + SLOT_STATE, state, reclaiming) !== state) return false;
    i32[word + SLOT_ANNOUNCE_RING] = 0;
    i32[word + SLOT_ANNOUNCE_BYTES] = 0;
    Atomics.store(i32, word + SLOT_STATE, (state & ~STATE_MASK) | FREE); // publishes: the slot can be acquired again
    Atomics.sub(i32, this.base + H_DEAD_COUNT, 1);
    return true;
  }
}

/** This thread's ProducerSlots objects, by buffer and byte offset. */
const attachedRegions = new WeakMap<SharedArrayBuffer, Map<number, ProducerSlots>>();

function remember(slots: ProducerSlots): ProducerSlots {
  let perBuffer = attachedRegions.get(slots.views.buffer);
  if (perBuffer === undefined) {
    perBuffer = new Map();
    attachedRegions.set(slots.views.buffer, perBuffer);
  }
  perBuffer.set(slots.byteOffset, slots);
  return slots;
}

/** Decodes the state bits of a SLOT_STATE word. */
export function slotState(stateWord: number): number {
  return stateWord & STATE_MASK;
}

function checkCount(count: number): void {
  if (!Number.isInteger(count) || count < 1 || count > MAX_SLOTS) {
    throw new LayoutMismatch(`producer slot count must be an integer in 1..${MAX_SLOTS}, got ${count}`);
  }
}

function checkPlacement(buffer: SharedArrayBuffer, byteOffset: number, bytes: number): void {
  if (!(buffer instanceof SharedArrayBuffer))
    throw new LayoutMismatch('producer slots need a SharedArrayBuffer');
  if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset % 64 !== 0) {
    throw new LayoutMismatch(
      `producer-slot region offset must be a non-negative multiple of 64, got ${byteOffset}`,
    );
  }
  if (byteOffset + bytes > buffer.byteLength) {
    throw new LayoutMismatch(
      `producer-slot region at ${byteOffset} (+${bytes} bytes) overruns the buffer (${buffer.byteLength} bytes)`,
    );
  }
}
