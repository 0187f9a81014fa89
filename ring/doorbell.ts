/**
 * A doorbell: one futex word and a two-level bitmap in shared memory that
 * many rings can ring, so that ONE consumer thread can sleep on behalf of
 * many rings (an M:N scheduler's ready set). Each ring is given a bit; a
 * consumer arms its ring's doorbell instead of parking on the ring
 * (`Ring.armDoorbell`), and the first producer to publish into an armed
 * ring sets the ring's bit and wakes the doorbell's owner if it sleeps.
 *
 * Roles: producers (any thread) ring bits; one owner thread takes them and
 * parks. Spurious bits are allowed (a ring may be rung after its consumer
 * stopped waiting); lost bits are not.
 *
 * Layout (word index from the doorbell's first word; the region starts at a
 * 4-aligned byte offset chosen by whoever allocates it):
 *   0        SLEEP    1 while the owner is parked or about to park (written by
 *                     the owner); a ringer that sees 1 swaps it to 0 and notifies
 *   1        BITS     number of bits, written once by init
 *   2        SUMMARY  first summary word: bit j of summary word s means bitmap
 *                     word 32*s + j may hold set bits (set by ringers after the
 *                     bit itself; taken by the owner with one exchange)
 *   2+S      BITMAP   bitmap words, S = ceil(BITS / 1024) summary words before them;
 *                     bit b of word w is ready bit 32*w + b (set by ringers,
 *                     taken by the owner with one exchange)
 *
 * Order: a ringer sets the bitmap bit, then the summary bit, then reads
 * SLEEP; the owner clears a summary word, then the bitmap words it names,
 * and before parking stores SLEEP = 1 and re-reads every summary word. So a
 * bit set while the owner was taking is either taken now or left with its
 * summary bit set for the next round, and a ringer racing a park either sees
 * SLEEP = 1 (and wakes it) or is seen by the re-read.
 */

export const DB_SLEEP = 0;
export const DB_BITS = 1;
export const DB_SUMMARY = 2;

/** Words a doorbell of `bits` bits takes. */
export function doorbellWords(bits: number): number {
  return DB_SUMMARY + Math.ceil(bits / 1024) + Math.ceil(bits / 32);
}

/** Lays out an empty doorbell of `bits` bits at word `base` of `i32`. */
export function initDoorbell(i32: Int32Array, base: number, bits: number): void {
  if (!Number.isInteger(bits) || bits <= 0 || bits > 1 << 26) {
    throw new RangeError(`a doorbell holds 1..${1 << 26} bits, not ${bits}`);
  }
  i32.fill(0, base, base + doorbellWords(bits));
  Atomics.store(i32, base + DB_BITS, bits); // publishes the size
}

/** Sets `bit` of the doorbell at `base` and wakes its owner if it sleeps. Any thread. */
export function ringDoorbell(i32: Int32Array, base: number, bit: number): void {
  const bits = Atomics.load(i32, base + DB_BITS);
  if (bit >>> 0 >= bits) return; // a ring whose doorbell words were overwritten: nothing to ring
  const summaryWords = Math.ceil(bits / 1024);
  const word = bit >>> 5;
  Atomics.or(i32, base + DB_SUMMARY + summaryWords + word, 1 << (bit & 31)); // the bit first...
  Atomics.or(i32, base + DB_SUMMARY + (word >>> 5), 1 << (word & 31)); // ...then the summary naming it
  const sleepWord = base + DB_SLEEP;
  if (Atomics.load(i32, sleepWord) !== 0 && Atomics.compareExchange(i32, sleepWord, 1, 0) === 1) {
    Atomics.notify(i32, sleepWord, 1);
  }
}

/**
 * The owner's side of a doorbell: takes ready bits, and parks. One object per
 * owner thread; it allocates nothing per bit.
 */
export class DoorbellOwner {
  readonly bits: number;
  private readonly summaryWords: number;
  private readonly bitmapBase: number;

  constructor(
    readonly i32: Int32Array,
    readonly base: number,
  ) {
    this.bits = Atomics.load(i32, base + DB_BITS);
    if (this.bits <= 0) throw new RangeError(`no doorbell at word ${base}`);
    this.summaryWords = Math.ceil(this.bits / 1024);
    this.bitmapBase = base + DB_SUMMARY + this.summaryWords;
  }

  /** Calls `ready(bit)` for every bit rung since the last take, clearing them. Returns how many. */
  take(ready: (bit: number) => void): number {
    const i32 = this.i32;
    let count = 0;
    for (let s = 0; s < this.summaryWords; s++) {
      const summaryWord = this.base + DB_SUMMARY + s;
      // Plain read as a hint: a stale 0 is caught by the next take or by the re-read before parking.
      if (i32[summaryWord] === 0) continue;
      let words = Atomics.exchange(i32, summaryWord, 0);
      while (words !== 0) {
        const j = 31 - Math.clz32(words & -words);
        words &= words - 1;
        const w = s * 32 + j;
        let set = Atomics.exchange(i32, this.bitmapBase + w, 0);
        while (set !== 0) {
          const b = 31 - Math.clz32(set & -set);
          set &= set - 1;
          count++;
          ready(w * 32 + b);
        }
      }
    }
    return count;
  }

  /** Whether any bit is pending (an atomic read of every summary word). */
  pending(): boolean {
    for (let s = 0; s < this.summaryWords; s++) {
      if (Atomics.load(this.i32, this.base + DB_SUMMARY + s) !== 0) return true;
    }
    return false;
  }

  /**
   * Announces a park: stores SLEEP = 1 and re-reads the summaries. Returns
   * false (and withdraws) when a bit is pending; true when the owner may now
   * park on word `base + DB_SLEEP` while it holds 1.
   */
  prepareToPark(): boolean {
    const sleepWord = this.base + DB_SLEEP;
    Atomics.store(this.i32, sleepWord, 1); // announces the park: ringers from now on will notify
    if (this.pending()) {
      Atomics.store(this.i32, sleepWord, 0);
      return false;
    }
    return true;
  }

  /** Ends a park (woken or timed out). */
  awake(): void {
    Atomics.store(this.i32, this.base + DB_SLEEP, 0);
  }

  /** Wakes the owner from any thread (for work that is not a bit, such as shutdown). */
  wake(): void {
    const sleepWord = this.base + DB_SLEEP;
    if (Atomics.compareExchange(this.i32, sleepWord, 1, 0) === 1) Atomics.notify(this.i32, sleepWord, 1);
  }
}
