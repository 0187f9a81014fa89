/**
 * What the main thread and the bench workers say to each other, off the hot
 * path: setup data in `workerData`, then one `round` command and one `done`
 * answer per measured round over `parentPort`. Every figure is measured
 * inside the workers; the main thread only starts rounds and collects.
 */

/** A scenario, as the workers need to know it. */
export type ScenarioSpec =
  | {
      readonly kind: 'throughput';
      readonly name: string;
      /** Record size in bytes. */
      readonly size: number;
      /** Number of producing threads, all into one consumer. */
      readonly producers: number;
    }
  | {
      readonly kind: 'ping-pong';
      readonly name: string;
      readonly size: number;
      /** How each side waits for the other's record: busy-poll, or sleep in Atomics.wait. */
      readonly wait: 'spin' | 'park';
    };

/**
 * Roles never change for the life of a worker:
 * - producer: sends `n` records per round (its share, in multi-producer runs);
 * - consumer: receives every producer's records and times the round;
 * - pinger: sends one record, waits for the echo, `n` times; times each round trip;
 * - ponger: echoes what the pinger sends.
 */
export type Role = 'producer' | 'consumer' | 'pinger' | 'ponger';

/** `workerData` of every bench worker. */
export interface WorkerInit {
  /** URL of the worker's TypeScript file; bench/workers/boot.mjs loads it. */
  readonly entry: string;
  readonly contender: string;
  readonly role: Role;
  readonly scenario: ScenarioSpec;
  /** Producer id (0-based) for producers; 0 for other roles. */
  readonly producerId: number;
  /** Number of workers taking part: the round barrier waits for all of them. */
  readonly parties: number;
  /** Control words shared by the workers of one contender run; see CTRL_* below. */
  readonly ctrl: SharedArrayBuffer;
  /** Whatever the contender's worker needs: buffers, ports, offsets. */
  readonly shared: unknown;
}

// Control words (Int32 indices into WorkerInit.ctrl).
/** Round barrier, phase 1: workers add 1 on arrival and park until all have arrived. */
export const CTRL_ARRIVED = 0;
/** Round barrier, phase 2: a short spin so that everyone leaves within microseconds. */
export const CTRL_RELEASED = 1;
/** Scratch word nobody ever writes: timed Atomics.wait on it is a sleep. */
export const CTRL_SLEEP = 2;
/** First of one word per producer: records the consumer has taken from that producer (postMessage flow control). */
export const CTRL_CONSUMED = 16;
export const CTRL_WORDS = 32;

export interface LatencyStats {
  /** Nanoseconds. */
  readonly p50: number;
  readonly p99: number;
  readonly mean: number;
  readonly samples: number;
  /** Cost of the one performance.now() call each sample includes, measured in the same thread. */
  readonly timerNs: number;
}

/** What a role reports for one round. */
export interface RoleResult {
  /** Time from leaving the round barrier to the role's last record. */
  readonly elapsedNs: number;
  /** Records this role sent (producer, pinger) or received (consumer, ponger). */
  readonly count: number;
  /** Round-trip latency; pinger only. */
  readonly latency?: LatencyStats;
}

export type ToWorker = { readonly type: 'round'; readonly round: number; readonly n: number };

export type FromWorker =
  | { readonly type: 'ready' }
  | { readonly type: 'done'; readonly round: number; readonly result: RoleResult }
  | { readonly type: 'error'; readonly message: string; readonly stack?: string };
