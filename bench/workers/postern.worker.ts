/**
 * postern ring contender: the MPSC record ring of ring/, attached from a
 * SharedArrayBuffer laid out on the main thread.
 *
 * Roles:
 * - producer: acquires its own producer slot and copies each record into the
 *   ring with `tryWrite`; a false return means the ring is full, so it backs
 *   off and retries (it never overwrites).
 * - consumer: the ring's single consumer. Reads each record in place with
 *   `peek` (no copy: it checks the sequence number straight out of the
 *   shared bytes), then `release`s it; or, in the drain variant, takes
 *   whatever is published in one `drain` pass, handing space back per pass.
 * - pinger / ponger: two rings in one buffer, one each way. Spin mode polls
 *   `peek`; park mode blocks in `waitForRecord` with no spinning at all
 *   (PARK_AT_ONCE), so every record costs the reader a futex sleep and the
 *   writer a wake-up, the same deal as the bare Atomics.wait/notify reference.
 */

import { PARK_AT_ONCE, ProducerSlots, Ring } from '../../ring/index.ts';
import { makeRecord, RECORD_TYPE, SequenceChecker, stampSeq } from '../messages.ts';
import type { WorkerInit } from '../protocol.ts';
import { Backoff, nowNs, RoundTrips, serve } from './harness.ts';

/** `shared` for this contender: one buffer holding the producer slots and the rings. */
export interface PosternShared {
  readonly buffer: SharedArrayBuffer;
  readonly slotsOffset: number;
  /** Throughput: the one ring. Ping-pong: pinger to ponger. */
  readonly forwardOffset: number;
  /** Ping-pong only: ponger to pinger. */
  readonly backOffset?: number;
  /** Consumer: one record per peek/release, or batches with drain (space handed back once per batch). */
  readonly consume: 'peek' | 'drain';
}

serve({
  producer(init: WorkerInit) {
    const { buffer, slotsOffset, forwardOffset } = init.shared as PosternShared;
    const ring = Ring.attach(buffer, forwardOffset);
    const producer = ProducerSlots.attach(buffer, slotsOffset).acquire();
    const record = makeRecord(init.scenario.size, init.producerId);
    const backoff = new Backoff(init.ctrl);
    let seq = 0;
    return (n) => {
      const start = nowNs();
      for (let i = 0; i < n; i++) {
        stampSeq(record, 0, seq++);
        // false: the ring is full, the consumer is behind.
        while (!ring.tryWrite(producer, RECORD_TYPE, record)) backoff.pause();
        backoff.reset();
      }
      return { elapsedNs: nowNs() - start, count: n };
    };
  },

  consumer(init: WorkerInit) {
    const { buffer, forwardOffset, consume } = init.shared as PosternShared;
    const ring = Ring.attach(buffer, forwardOffset);
    const bytes = ring.bytes;
    const checker = new SequenceChecker(init.scenario.kind === 'throughput' ? init.scenario.producers : 1);
    const backoff = new Backoff(init.ctrl);
    if (consume === 'drain') {
      // Allocated once: drain calls it for every record, in place.
      const onRecord = (_type: number, data: Uint8Array, offset: number): void => checker.check(data, offset);
      return (n) => {
        const start = nowNs();
        let left = n;
        while (left > 0) {
          const got = ring.drain(onRecord, left);
          if (got === 0) {
            // ...nothing published yet.
            backoff.pause();
          } else {
            backoff.reset();
            left -= got;
          }
        }
        return { elapsedNs: nowNs() - start, count: n };
      };
    }
    return (n) => {
      const start = nowNs();
      for (let i = 0; i < n; i++) {
        // -1: nothing published yet.
        while (ring.peek() < 0) backoff.pause();
        backoff.reset();
        checker.check(bytes, ring.recordOffset);
        ring.release();
      }
      return { elapsedNs: nowNs() - start, count: n };
    };
  },

  pinger(init: WorkerInit) {
    const { buffer, slotsOffset, forwardOffset, backOffset } = init.shared as PosternShared;
    if (backOffset === undefined) throw new Error('ping-pong needs two rings');
    const out = Ring.attach(buffer, forwardOffset);
    const inbox = Ring.attach(buffer, backOffset);
    const producer = ProducerSlots.attach(buffer, slotsOffset).acquire();
    const bytes = inbox.bytes;
    const park = init.scenario.kind === 'ping-pong' && init.scenario.wait === 'park';
    const record = makeRecord(init.scenario.size);
    const checker = new SequenceChecker(1);
    let seq = 0;
    return (n) => {
      const trips = new RoundTrips(n);
      for (let i = 0; i < n; i++) {
        stampSeq(record, 0, seq++);
        if (!out.tryWrite(producer, RECORD_TYPE, record)) throw new Error('ping ring full');
        if (park) {
          // No timeout, like the bare Atomics reference: the harness's round timeout catches a lost wake-up.
          inbox.waitForRecord(Number.POSITIVE_INFINITY, PARK_AT_ONCE);
        } else {
          while (inbox.peek() < 0) {
            // spin: the echo is not back yet
          }
        }
        checker.check(bytes, inbox.recordOffset);
        inbox.release();
        trips.lap();
      }
      return trips.result();
    };
  },

  ponger(init: WorkerInit) {
    const { buffer, slotsOffset, forwardOffset, backOffset } = init.shared as PosternShared;
    if (backOffset === undefined) throw new Error('ping-pong needs two rings');
    const inbox = Ring.attach(buffer, forwardOffset);
    const out = Ring.attach(buffer, backOffset);
    const producer = ProducerSlots.attach(buffer, slotsOffset).acquire();
    const bytes = inbox.bytes;
    const park = init.scenario.kind === 'ping-pong' && init.scenario.wait === 'park';
    return (n) => {
      const start = nowNs();
      for (let i = 0; i < n; i++) {
        if (park) {
          inbox.waitForRecord(Number.POSITIVE_INFINITY, PARK_AT_ONCE);
        } else {
          while (inbox.peek() < 0) {
            // spin: no ping yet
          }
        }
        // Echo the ping straight out of the inbox into the reply ring: one copy, no scratch buffer.
        const length = inbox.peek();
        if (!out.tryWrite(producer, RECORD_TYPE, bytes, inbox.recordOffset, length)) {
          throw new Error('pong ring full');
        }
        inbox.release();
      }
      return { elapsedNs: nowNs() - start, count: n };
    };
  },
});
