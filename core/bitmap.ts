/**
 * A lock-free bitmap allocator over words of a SharedArrayBuffer: bit i set
 * means slot i is in use. Any thread claims a bit with a compare-and-swap
 * and frees it with an atomic and, so there is no list head and no ABA.
 * Runs of bits (heap pages) are claimed word by word and rolled back if a
 * word was taken meanwhile.
 *
 * The bits past `count` in the last word are set at init so they are never
 * handed out. Each thread keeps its own search hint (a plain field): threads
 * allocating at once mostly look in different words.
 */

const FULL = -1; // all 32 bits set

export class Bitmap {
  private hint = 0;
  readonly words: number;

  constructor(
    private readonly i32: Int32Array,
    /** Word index of the first bitmap word. */
    readonly base: number,
    readonly count: number,
  ) {
    this.words = Math.ceil(count / 32);
  }

  static bytesFor(count: number): number {
    return Math.ceil(count / 32) * 4;
  }

  /** Clears the bitmap and fences off the bits past `count`. Creator only, before publishing. */
  init(): void {
    this.i32.fill(0, this.base, this.base + this.words);
    const tail = this.count & 31;
    if (tail !== 0) this.i32[this.base + this.words - 1] = FULL << tail;
  }

  /** Claims one free bit. Returns its index, or -1 when every bit is set. */
  alloc(): number {
    const i32 = this.i32;
    const words = this.words;
    for (let k = 0; k < words; k++) {
      let w = this.hint + k;
      if (w >= words) w -= words;
      const at = this.base + w;
      let v = Atomics.load(i32, at);
      while (v !== FULL) {
        const free = ~v & (v + 1); // lowest clear bit
        const bit = 31 - Math.clz32(free);
        const seen = Atomics.compareExchange(i32, at, v, v | free);
        if (seen === v) {
          // ...then the bit is ours.
          this.hint = w;
          return w * 32 + bit;
        }
        // ...else another thread changed this word: look at what it left.
        v = seen;
      }
    }
    return -1;
  }

  /** Frees bit `index`. */
  free(index: number): void {
    Atomics.and(this.i32, this.base + (index >> 5), ~(1 << (index & 31))); // publishes: the slot may be claimed again
  }

  /** Whether bit `index` is set. May be stale the moment it is read. */
  isSet(index: number): boolean {
    return (Atomics.load(this.i32, this.base + (index >> 5)) & (1 << (index & 31))) !== 0;
  }

  /**
   * Claims `n` consecutive free bits (first fit from the hint). Returns the
   * first index, or -1 when no run of `n` free bits was found.
   */
  allocRun(n: number): number {
    if (n === 1) return this.alloc();
    const count = this.count;
    if (n > count) return -1;
    // Two passes: from the hint to the end, then from the start.
    const startHint = Math.min(this.hint * 32, count);
    for (let pass = 0; pass < 2; pass++) {
      let i = pass === 0 ? startHint : 0;
      const end = pass === 0 ? count : Math.min(startHint + n, count);
      while (i + n <= end) {
        const used = this.lastSetIn(i, n);
        if (used >= 0) {
          i = used + 1;
          continue;
        }
        if (this.claimRun(i, n)) {
          this.hint = (i + n) >> 5;
          return i;
        }
        // ...else a bit in the run was taken meanwhile: rescan from here.
      }
    }
    return -1;
  }

  /** Frees `n` consecutive bits from `start`. */
  freeRun(start: number, n: number): void {
    let i = start;
    const end = start + n;
    while (i < end) {
      const bit = i & 31;
      const take = Math.min(32 - bit, end - i);
      const mask = take === 32 ? FULL : ((1 << take) - 1) << bit;
      Atomics.and(this.i32, this.base + (i >> 5), ~mask); // publishes: these pages may be claimed again
      i += take;
    }
  }

  /** Index of the last set bit in [start, start + n), or -1 if all are clear. */
  private lastSetIn(start: number, n: number): number {
    let i = start;
    const end = start + n;
    let found = -1;
    while (i < end) {
      const bit = i & 31;
      const take = Math.min(32 - bit, end - i);
      const mask = take === 32 ? FULL : ((1 << take) - 1) << bit;
      const hit = Atomics.load(this.i32, this.base + (i >> 5)) & mask;
      if (hit !== 0) found = (i & ~31) + 31 - Math.clz32(hit);
      i += take;
    }
    return found;
  }

  /** Sets every bit of [start, start + n) or none of them. */
  private claimRun(start: number, n: number): boolean {
    const i32 = this.i32;
    let i = start;
    const end = start + n;
    while (i < end) {
      const bit = i & 31;
      const take = Math.min(32 - bit, end - i);
      const mask = take === 32 ? FULL : ((1 << take) - 1) << bit;
      const at = this.base + (i >> 5);
      let v = Atomics.load(i32, at);
      let ok = false;
      while ((v & mask) === 0) {
        const seen = Atomics.compareExchange(i32, at, v, v | mask);
        if (seen === v) {
          ok = true;
          break;
        }
        v = seen; // other bits of the word changed: retry while ours are still clear
      }
      if (!ok) {
        // ...some bit of ours was taken: give back what this call claimed.
        if (i > start) this.freeRun(start, i - start);
        return false;
      }
      i += take;
    }
    return true;
  }
}
