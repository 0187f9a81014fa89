/**
 * Bare Atomics contender: the round trip with nothing on top, the reference
 * a ring's ping-pong is measured against. One Int32 word carries a sequence
 * number and no payload.
 *
 * Roles:
 * - pinger: stores the odd number 2i+1, then waits until the word reads 2i+2;
 *   times each round trip.
 * - ponger: waits until the word reads 2i+1, stores 2i+2.
 * Spin mode busy-polls the word. Park mode sleeps in Atomics.wait on it and
 * the writer always calls Atomics.notify (it has no way to know whether the
 * other side sleeps), the textbook wait/notify exchange.
 * No throughput roles: a word without a payload is not a message queue.
 */

import type { WorkerInit } from '../protocol.ts';
import { nowNs, RoundTrips, serve } from './harness.ts';

/** `shared` for this contender. */
export interface AtomicsShared {
  /** At least 4 bytes; word 0 is the exchange word. */
  readonly word: SharedArrayBuffer;
}

const WORD = 0;

serve({
  pinger(init: WorkerInit) {
    const word = new Int32Array((init.shared as AtomicsShared).word);
    const park = init.scenario.kind === 'ping-pong' && init.scenario.wait === 'park';
    let seq = Atomics.load(word, WORD);
    return (n) => {
      const trips = new RoundTrips(n);
      for (let i = 0; i < n; i++) {
        // `| 0`: the word is an Int32, so the sequence wraps the way it does.
        const ping = (seq + 1) | 0;
        const pong = (seq + 2) | 0;
        Atomics.store(word, WORD, ping);
        if (park) {
          Atomics.notify(word, WORD, 1);
          // Sleep while the word still holds our ping; wakes on the ponger's notify.
          while (Atomics.load(word, WORD) !== pong) Atomics.wait(word, WORD, ping);
        } else {
          while (Atomics.load(word, WORD) !== pong) {
            // spin: no pong yet
          }
        }
        seq = pong;
        trips.lap();
      }
      return trips.result();
    };
  },

  ponger(init: WorkerInit) {
    const word = new Int32Array((init.shared as AtomicsShared).word);
    const park = init.scenario.kind === 'ping-pong' && init.scenario.wait === 'park';
    let seq = Atomics.load(word, WORD);
    return (n) => {
      const start = nowNs();
      for (let i = 0; i < n; i++) {
        const ping = (seq + 1) | 0;
        const pong = (ping + 1) | 0;
        if (park) {
          // Sleep while the word still holds our last pong.
          while (Atomics.load(word, WORD) !== ping) Atomics.wait(word, WORD, seq);
          Atomics.store(word, WORD, pong);
          Atomics.notify(word, WORD, 1);
        } else {
          while (Atomics.load(word, WORD) !== ping) {
            // spin: no ping yet
          }
          Atomics.store(word, WORD, pong);
        }
        seq = pong;
      }
      return { elapsedNs: nowNs() - start, count: n };
    };
  },
});
