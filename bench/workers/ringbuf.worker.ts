/**
 * ringbuf.js contender: padenot's wait-free SPSC ring of bytes on a
 * SharedArrayBuffer, used one record at a time (one push per record, one pop
 * per record), as a message queue would use it. It is a byte stream, so the
 * bench gives it fixed-size records and no framing header: less work per
 * record than a ring of variable-length records has to do.
 *
 * Roles:
 * - producer: the ring's one writer; pushes a record when `availableWrite()`
 *   says it fits whole (push would otherwise write a partial record).
 * - consumer: the ring's one reader; pops a whole record into a private copy
 *   and checks its sequence number.
 * - pinger / ponger: two rings, one each way, both sides busy-polling.
 *   ringbuf.js has no blocking wait, so it takes no part in park mode or in
 *   multi-producer runs (the runner reports it as not applicable).
 */

import { RingBuffer } from 'ringbuf.js';
import { makeRecord, SequenceChecker, stampSeq } from '../messages.ts';
import type { WorkerInit } from '../protocol.ts';
import { Backoff, nowNs, RoundTrips, serve } from './harness.ts';

/** `shared` for this contender. */
export interface RingbufShared {
  /** Throughput: the one ring. Ping-pong: pinger to ponger. */
  readonly forward: SharedArrayBuffer;
  /** Ping-pong only: ponger to pinger. */
  readonly back?: SharedArrayBuffer;
}

serve({
  producer(init: WorkerInit) {
    const { forward } = init.shared as RingbufShared;
    const ring = new RingBuffer(forward, Uint8Array);
    const size = init.scenario.size;
    const record = makeRecord(size, init.producerId);
    const backoff = new Backoff(init.ctrl);
    let seq = 0;
    return (n) => {
      const start = nowNs();
      for (let i = 0; i < n; i++) {
        stampSeq(record, 0, seq++);
        // Not enough room for the whole record: the consumer is behind.
        while (ring.availableWrite() < size) backoff.pause();
        backoff.reset();
        ring.push(record, size);
      }
      return { elapsedNs: nowNs() - start, count: n };
    };
  },

  consumer(init: WorkerInit) {
    const { forward } = init.shared as RingbufShared;
    const ring = new RingBuffer(forward, Uint8Array);
    const size = init.scenario.size;
    const into = new Uint8Array(size);
    const checker = new SequenceChecker(1);
    const backoff = new Backoff(init.ctrl);
    return (n) => {
      const start = nowNs();
      for (let i = 0; i < n; i++) {
        // Less than a whole record: the producer has not written it yet.
        while (ring.availableRead() < size) backoff.pause();
        backoff.reset();
        ring.pop(into, size);
        checker.check(into, 0);
      }
      return { elapsedNs: nowNs() - start, count: n };
    };
  },

  pinger(init: WorkerInit) {
    const { forward, back } = init.shared as RingbufShared;
    if (!back) throw new Error('ping-pong needs two rings');
    const out = new RingBuffer(forward, Uint8Array);
    const inbox = new RingBuffer(back, Uint8Array);
    const size = init.scenario.size;
    const record = makeRecord(size);
    const reply = new Uint8Array(size);
    const checker = new SequenceChecker(1);
    let seq = 0;
    return (n) => {
      const trips = new RoundTrips(n);
      for (let i = 0; i < n; i++) {
        stampSeq(record, 0, seq++);
        out.push(record, size);
        while (inbox.availableRead() < size) {
          // spin: the echo is not back yet
        }
        inbox.pop(reply, size);
        checker.check(reply, 0);
        trips.lap();
      }
      return trips.result();
    };
  },

  ponger(init: WorkerInit) {
    const { forward, back } = init.shared as RingbufShared;
    if (!back) throw new Error('ping-pong needs two rings');
    const inbox = new RingBuffer(forward, Uint8Array);
    const out = new RingBuffer(back, Uint8Array);
    const size = init.scenario.size;
    const ping = new Uint8Array(size);
    return (n) => {
      const start = nowNs();
      for (let i = 0; i < n; i++) {
        while (inbox.availableRead() < size) {
          // spin: no ping yet
        }
        inbox.pop(ping, size);
        out.push(ping, size);
      }
      return { elapsedNs: nowNs() - start, count: n };
    };
  },
});
