/**
 * MessagePort.postMessage contender: structured clone of a Uint8Array per
 * record, the way Node workers talk without shared memory.
 *
 * Roles:
 * - producer: owns one end of a MessageChannel and posts `n` records, cloning
 *   each; it never lets more than `window` records be in flight (the number
 *   that would fit in the ring the other contenders get), so the queue stays
 *   bounded like theirs. The consumer's running count comes back through a
 *   shared control word, not through a reply message.
 * - consumer: holds the other end of every producer's channel and receives on
 *   its event loop, checking each record's sequence number.
 * - pinger / ponger: one channel. Spin mode polls with receiveMessageOnPort
 *   (the closest postMessage gets to a spinning consumer); park mode lets the
 *   event loop sleep until the message event, which is how a port waits.
 */

import { type MessagePort, receiveMessageOnPort } from 'node:worker_threads';
import { makeRecord, SequenceChecker, stampSeq } from '../messages.ts';
import { CTRL_CONSUMED, type WorkerInit } from '../protocol.ts';
import { Backoff, nowNs, RoundTrips, serve } from './harness.ts';

/** `shared` for this contender. */
export interface PortShared {
  /** Producer: its sending end. Pinger/ponger: its end of the one channel. */
  readonly port?: MessagePort;
  /** Consumer: the receiving end of each producer's channel. */
  readonly ports?: readonly MessagePort[];
  /** Records a producer may have in flight. */
  readonly window: number;
}

serve({
  producer(init: WorkerInit) {
    const { port, window } = init.shared as PortShared;
    if (!port) throw new Error('producer needs a port');
    const ctrl = new Int32Array(init.ctrl);
    const consumedWord = CTRL_CONSUMED + init.producerId;
    const record = makeRecord(init.scenario.size, init.producerId);
    const backoff = new Backoff(init.ctrl);
    let seq = 0;
    return (n) => {
      const start = nowNs();
      for (let i = 0; i < n; i++) {
        // The queue is full when `window` records are in flight: wait for the consumer.
        while (seq - Atomics.load(ctrl, consumedWord) >= window) backoff.pause();
        backoff.reset();
        stampSeq(record, 0, seq++);
        port.postMessage(record);
      }
      return { elapsedNs: nowNs() - start, count: n };
    };
  },

  consumer(init: WorkerInit) {
    const { ports } = init.shared as PortShared;
    if (!ports) throw new Error('consumer needs ports');
    const ctrl = new Int32Array(init.ctrl);
    const producers = ports.length;
    const checker = new SequenceChecker(producers);
    const taken = new Int32Array(producers);
    let received = 0;
    let target = 0;
    let start = 0;
    let finish: ((elapsed: number) => void) | undefined;
    let failed: ((err: unknown) => void) | undefined;
    ports.forEach((p, producer) => {
      p.on('message', (record: Uint8Array) => {
        try {
          checker.check(record, 0);
        } catch (err) {
          failed?.(err);
          return;
        }
        // Publishes: the producer may refill the window by one.
        Atomics.store(ctrl, CTRL_CONSUMED + producer, ++taken[producer]!);
        if (++received === target) finish?.(nowNs() - start);
      });
    });
    return (n) => {
      received = 0;
      target = n;
      start = nowNs();
      return new Promise((resolve, reject) => {
        finish = (elapsedNs) => resolve({ elapsedNs, count: n });
        failed = reject;
      });
    };
  },

  pinger(init: WorkerInit) {
    const { port } = init.shared as PortShared;
    if (!port) throw new Error('pinger needs a port');
    const record = makeRecord(init.scenario.size);
    const checker = new SequenceChecker(1);
    let seq = 0;
    if (init.scenario.kind === 'ping-pong' && init.scenario.wait === 'spin') {
      return (n) => {
        const trips = new RoundTrips(n);
        for (let i = 0; i < n; i++) {
          stampSeq(record, 0, seq++);
          port.postMessage(record);
          let reply: { message: Uint8Array } | undefined;
          do reply = receiveMessageOnPort(port);
          while (reply === undefined);
          checker.check(reply.message, 0);
          trips.lap();
        }
        return trips.result();
      };
    }
    return (n) =>
      new Promise((resolve, reject) => {
        const trips = new RoundTrips(n);
        let left = n;
        const onReply = (reply: Uint8Array): void => {
          try {
            checker.check(reply, 0);
          } catch (err) {
            port.off('message', onReply);
            reject(err);
            return;
          }
          trips.lap();
          if (--left === 0) {
            port.off('message', onReply);
            resolve(trips.result());
            return;
          }
          stampSeq(record, 0, seq++);
          port.postMessage(record);
        };
        port.on('message', onReply);
        stampSeq(record, 0, seq++);
        port.postMessage(record);
      });
  },

  ponger(init: WorkerInit) {
    const { port } = init.shared as PortShared;
    if (!port) throw new Error('ponger needs a port');
    if (init.scenario.kind === 'ping-pong' && init.scenario.wait === 'spin') {
      return (n) => {
        const start = nowNs();
        for (let i = 0; i < n; i++) {
          let ping: { message: Uint8Array } | undefined;
          do ping = receiveMessageOnPort(port);
          while (ping === undefined);
          port.postMessage(ping.message);
        }
        return { elapsedNs: nowNs() - start, count: n };
      };
    }
    return (n) =>
      new Promise((resolve) => {
        const start = nowNs();
        let left = n;
        const onPing = (ping: Uint8Array): void => {
          port.postMessage(ping);
          if (--left === 0) {
            port.off('message', onPing);
            resolve({ elapsedNs: nowNs() - start, count: n });
          }
        };
        port.on('message', onPing);
      });
  },
});
