/**
 * A short mutex in one shared word that names its holder (a futex mutex in
 * the manner of Drepper's "mutex 3", with an owner field): 0 = free, else
 * the holder's lock tag (see `lockTag`: its producer slot + 1 and the low
 * bits of that slot's generation), plus LOCK_CONTENDED when someone may be
 * parked on it. Lockers spin briefly, then set the contended bit and park
 * with Atomics.wait; the unlocker notifies only when the bit is set.
 *
 * The holder tag is what makes thread death recoverable: a worker
 * terminated while it holds a lock leaves its tag in the word, and
 * `PostOffice.markThreadDead` (recover.ts) finds every lock word carrying
 * the dead thread's tag, repairs what the lock guards, and breaks the lock
 * with `breakLock`, which wakes every waiter. A parked locker also wakes
 * every LOCK_RECHECK_MS to look again, so a lost wake-up costs latency,
 * never liveness.
 *
 * Used only on control paths (kill, link, unlink, monitor, demonitor, route
 * creation and freeing), never on send or receive. Lock order (documented
 * in README.md): group locks before route locks; two group locks in
 * ascending slot index; never two route locks; nothing is locked while a
 * route lock is held.
 */

const SPINS = 100;
/** Set in a held lock word when a locker may be parked on it: the unlocker must notify. */
export const LOCK_CONTENDED = 1 << 30;
/** The holder's tag in a lock word. */
export const LOCK_HOLDER_MASK = LOCK_CONTENDED - 1;
/** A parked locker looks again this often even if nobody notifies it. */
export const LOCK_RECHECK_MS = 50;
const SLOT_BITS = 17; // slot + 1 <= 2^16 (maxThreads) fits 17 bits
const GEN_MASK = (1 << (30 - SLOT_BITS)) - 1;

/**
 * The tag a thread of producer slot `slot`, generation `generation` writes
 * into a lock it holds: never 0, below LOCK_CONTENDED. The generation bits
 * keep a later holder of the same slot from being taken for the dead one.
 */
export function lockTag(slot: number, generation: number): number {
  return ((generation & GEN_MASK) << SLOT_BITS) | (slot + 1);
}

export function lock(i32: Int32Array, word: number, tag: number): void {
  if (Atomics.compareExchange(i32, word, 0, tag) === 0) return;
  for (let i = 0; i < SPINS; i++) {
    if (Atomics.load(i32, word) === 0 && Atomics.compareExchange(i32, word, 0, tag) === 0) return;
  }
  for (;;) {
    const v = Atomics.load(i32, word);
    if (v === 0) {
      // Taken marked contended: others may still be parked behind us.
      if (Atomics.compareExchange(i32, word, 0, tag | LOCK_CONTENDED) === 0) return;
      continue; // ...someone else took it first
    }
    // Mark the lock contended; whoever holds it will notify on unlock.
    if ((v & LOCK_CONTENDED) === 0 && Atomics.compareExchange(i32, word, v, v | LOCK_CONTENDED) !== v)
      continue;
    Atomics.wait(i32, word, v | LOCK_CONTENDED, LOCK_RECHECK_MS);
  }
}

export function unlock(i32: Int32Array, word: number): void {
  // publishes everything written under the lock
  if ((Atomics.exchange(i32, word, 0) & LOCK_CONTENDED) !== 0) Atomics.notify(i32, word, 1);
}

/** The tag of the lock's holder, 0 when free. May be stale the moment it is read. */
export function lockHolder(i32: Int32Array, word: number): number {
  return Atomics.load(i32, word) & LOCK_HOLDER_MASK;
}

/**
 * Frees a lock held by the (dead) thread of tag `tag` and wakes every
 * waiter. Returns false if that thread does not hold it.
 */
export function breakLock(i32: Int32Array, word: number, tag: number): boolean {
  for (;;) {
    const v = Atomics.load(i32, word);
    if ((v & LOCK_HOLDER_MASK) !== tag) return false;
    // ...only the contended bit can change under us (a waiter setting it): retry then.
    if (Atomics.compareExchange(i32, word, v, 0) === v) {
      Atomics.notify(i32, word); // every waiter: the lock's holder is gone, not handing over
      return true;
    }
  }
}
