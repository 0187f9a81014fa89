/**
 * How a consumer waits for a record: spin on the ring for a while (cheap
 * when records arrive within microseconds, burns a core), then park on the
 * consumer's futex word (costs a wake-up syscall on the producer side and a
 * few microseconds of latency, frees the core).
 */
export interface WaitPolicy {
  /** Polls of the ring before parking. 0 parks at once. */
  readonly spins: number;
}

/** A short spin, enough to catch a reply already in flight, then park. */
export const DEFAULT_WAIT_POLICY: WaitPolicy = Object.freeze({ spins: 200 });

/** Park at once: lowest CPU use, a wake-up per record under light load. */
export const PARK_AT_ONCE: WaitPolicy = Object.freeze({ spins: 0 });

/** Spin for a long time (milliseconds) before parking: for latency-critical consumers with a core to spare. */
export const SPIN_HARD: WaitPolicy = Object.freeze({ spins: 1_000_000 });
