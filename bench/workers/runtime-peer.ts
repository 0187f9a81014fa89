/**
 * The peers of `runtime-messages`, on plain worker threads (no runtime): the
 * same small values moved one way between two threads, so the runtime's
 * process-to-process figure can be read against what it is built on and
 * against what Node offers without it.
 *
 * Contenders (WorkerInit.contender):
 * - 'postern core': the post office alone. The consumer creates a mailbox
 *   (a mailbox is read by the thread that made it) and hands the producer an
 *   owned SEND token (core-handoff.ts); the producer sends the value's
 *   MessagePack bytes, precomputed, with `table.send` (false: full, back off);
 *   the consumer reads each in place (`tryReceiveInPlace`). No codec, no
 *   process, no scheduler: the floor the runtime adds to.
 * - 'postMessage': MessagePort.postMessage of the JavaScript value itself
 *   (structured clone); at most `window` messages in flight, the room a
 *   runtime mailbox of the same capacity has, counted through a shared word.
 *
 * Values: 'seq', a small int (sequence number & 127, so every consumer checks
 * order: one MessagePack byte), or any other value, checked for equality
 * (core: by its first byte).
 *
 * Roles: producer, consumer. The consumer times each round from its first
 * message to its last, as the runtime's consumer process does.
 */

import type { MessagePort } from 'node:worker_threads';
import { type OwnedCapability, Perm, PostOffice } from '../../core/index.ts';
import { CTRL_CONSUMED, type WorkerInit } from '../protocol.ts';
import { HANDOFF_READY, HANDOFF_TOKENS } from './core-handoff.ts';
import { Backoff, nowNs, serve } from './harness.ts';

/** `shared` of both roles. */
export interface PeerShared {
  /** 'seq' or a constant value. */
  readonly value: unknown;
  /** Core: the value's MessagePack encoding (for 'seq', one placeholder byte the producer overwrites). */
  readonly bytes?: Uint8Array;
  /** Core: the post office (created and detached on the main thread) and the token handoff words. */
  readonly office?: SharedArrayBuffer;
  readonly handoff?: SharedArrayBuffer;
  /** Core: mailbox ring capacity, bytes. */
  readonly capacity?: number;
  /** postMessage: this role's end of the channel, and the in-flight window. */
  readonly port?: MessagePort;
  readonly window?: number;
}

const HANDOFF_TIMEOUT_MS = 30_000;

function coreConsumer(init: WorkerInit) {
  const { office: buffer, handoff, capacity, value, bytes } = init.shared as PeerShared;
  const office = PostOffice.attach(buffer!);
  const table = office.createTable();
  const mailbox = table.createGroup().createMailbox({ capacity: capacity! });
  const send = mailbox.export(Perm.SEND);
  const owned = table.toOwned(send);
  table.release(send);
  const f64 = new Float64Array(handoff!);
  f64[HANDOFF_TOKENS] = owned.office;
  f64[HANDOFF_TOKENS + 1] = owned.token;
  f64[HANDOFF_TOKENS + 2] = owned.perms;
  const flag = new Int32Array(handoff!, 0, 1);
  Atomics.store(flag, HANDOFF_READY, 1);
  Atomics.notify(flag, HANDOFF_READY);
  const bySeq = value === 'seq';
  const firstByte = bytes![0]!;
  const backoff = new Backoff(init.ctrl);
  let seq = 0;
  return (n: number) => {
    let first = 0;
    for (let i = 0; i < n; i++) {
      let signal = mailbox.tryReceiveInPlace();
      // null: nothing published yet.
      while (signal === null) {
        backoff.pause();
        signal = mailbox.tryReceiveInPlace();
      }
      backoff.reset();
      if (i === 0) first = nowNs();
      if (signal.kind !== 'message') throw new Error(`unexpected ${signal.kind} signal`);
      const want = bySeq ? seq++ & 127 : firstByte;
      if (signal.bytes[signal.offset] !== want) {
        throw new Error(`message ${i}: first byte ${signal.bytes[signal.offset]}, expected ${want}`);
      }
    }
    return { elapsedNs: nowNs() - first, count: n };
  };
}

function coreProducer(init: WorkerInit) {
  const { office: buffer, handoff, value, bytes } = init.shared as PeerShared;
  const office = PostOffice.attach(buffer!);
  const table = office.createTable();
  const flag = new Int32Array(handoff!, 0, 1);
  if (Atomics.wait(flag, HANDOFF_READY, 0, HANDOFF_TIMEOUT_MS) === 'timed-out') {
    throw new Error('the consumer never published the capability');
  }
  const f64 = new Float64Array(handoff!);
  const owned: OwnedCapability = {
    office: f64[HANDOFF_TOKENS]!,
    token: f64[HANDOFF_TOKENS + 1]!,
    perms: f64[HANDOFF_TOKENS + 2]!,
  };
  const h = table.importOwned(owned);
  const record = bytes!.slice();
  const bySeq = value === 'seq';
  const backoff = new Backoff(init.ctrl);
  let seq = 0;
  return (n: number) => {
    const start = nowNs();
    for (let i = 0; i < n; i++) {
      if (bySeq) record[0] = seq++ & 127;
      // false: the ring is full, the consumer is behind.
      while (!table.send(h, record)) backoff.pause();
      backoff.reset();
    }
    return { elapsedNs: nowNs() - start, count: n };
  };
}

function portProducer(init: WorkerInit) {
  const { port, window, value } = init.shared as PeerShared;
  const ctrl = new Int32Array(init.ctrl);
  const bySeq = value === 'seq';
  const backoff = new Backoff(init.ctrl);
  let seq = 0;
  return (n: number) => {
    const start = nowNs();
    for (let i = 0; i < n; i++) {
      // The mailbox is full when `window` messages are in flight: wait for the consumer.
      while (seq - Atomics.load(ctrl, CTRL_CONSUMED) >= window!) backoff.pause();
      backoff.reset();
      port!.postMessage(bySeq ? seq & 127 : value);
      seq++;
    }
    return { elapsedNs: nowNs() - start, count: n };
  };
}

function portConsumer(init: WorkerInit) {
  const { port, value } = init.shared as PeerShared;
  const ctrl = new Int32Array(init.ctrl);
  const bySeq = value === 'seq';
  let taken = 0;
  let received = 0;
  let target = 0;
  let first = 0;
  let finish: ((elapsedNs: number) => void) | undefined;
  let failed: ((err: unknown) => void) | undefined;
  port!.on('message', (m: unknown) => {
    if (received === 0) first = nowNs();
    const want = bySeq ? taken & 127 : value;
    if (m !== want) {
      failed?.(new Error(`message ${received}: ${JSON.stringify(m)}, expected ${JSON.stringify(want)}`));
      return;
    }
    // Publishes: the producer may send one more.
    Atomics.store(ctrl, CTRL_CONSUMED, ++taken);
    if (++received === target) finish?.(nowNs() - first);
  });
  return (n: number) =>
    new Promise<{ elapsedNs: number; count: number }>((resolve, reject) => {
      received = 0;
      target = n;
      finish = (elapsedNs) => resolve({ elapsedNs, count: n });
      failed = reject;
    });
}

serve({
  producer: (init) => (init.contender === 'postMessage' ? portProducer(init) : coreProducer(init)),
  consumer: (init) => (init.contender === 'postMessage' ? portConsumer(init) : coreConsumer(init)),
});
