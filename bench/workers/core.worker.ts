/**
 * postern core contender: the same records as the ring contender, sent
 * through the post office (core/) instead of straight into a ring, so the
 * difference between the two is the cost of the capability check, the
 * routing and the close/pin bookkeeping around each ring operation.
 *
 * Roles:
 * - consumer: attaches the post office, creates the one mailbox (the thread
 *   that creates a mailbox is its only reader), exports a SEND capability
 *   and hands one owned token per producer through the handoff words. Each
 *   record is read in place (`tryReceiveInPlace`: checked where it lies in
 *   the ring, released by the next receive) or copied (`tryReceive`: a fresh
 *   Uint8Array and signal object per record).
 * - producer: attaches, waits for its token, imports it into its own table
 *   (`importOwned`) and calls `table.send(handle, record)` per record; false
 *   means the ring is full, so it backs off and retries.
 *
 * After each round the consumer compares `stats()` with the figures taken
 * once everything was set up: a round that leaked a capability, a node or
 * heap bytes fails the pair instead of reporting a figure.
 */

import { type OwnedCapability, Perm, PostOffice, type PostOfficeStats } from '../../core/index.ts';
import { makeRecord, SequenceChecker, stampSeq } from '../messages.ts';
import type { WorkerInit } from '../protocol.ts';
import { HANDOFF_READY, HANDOFF_TOKENS, TOKEN_WORDS } from './core-handoff.ts';
import { Backoff, nowNs, serve } from './harness.ts';

/** `shared` for this contender. */
export interface CoreShared {
  /** The post office, created (and detached from) on the main thread. */
  readonly office: SharedArrayBuffer;
  /** The consumer publishes the producers' owned tokens here (core-handoff.ts). */
  readonly handoff: SharedArrayBuffer;
  /** Mailbox ring capacity in bytes. */
  readonly capacity: number;
  /** Consumer: read each record in place, or take a copy. */
  readonly consume: 'in-place' | 'copy';
}

/** How long a producer waits at start-up for the consumer's token before it gives up. */
const HANDOFF_TIMEOUT_MS = 30_000;

/** The counts that must not move across rounds (everything but the transient pins). */
function footprint(s: PostOfficeStats): string {
  return `routes ${s.routes}, capabilities ${s.capabilities}, nodes ${s.nodes}, heap ${s.heapBytes} B, downs ${s.pendingDowns}, owned ${s.owned}`;
}

serve({
  consumer(init: WorkerInit) {
    if (init.scenario.kind !== 'throughput') throw new Error('the core contender runs throughput scenarios');
    const { office: buffer, handoff, capacity, consume } = init.shared as CoreShared;
    const office = PostOffice.attach(buffer);
    const table = office.createTable();
    const mailbox = table.createGroup().createMailbox({ capacity });
    const send = mailbox.export(Perm.SEND);
    const f64 = new Float64Array(handoff);
    for (let p = 0; p < init.scenario.producers; p++) {
      const owned = table.toOwned(send);
      const at = HANDOFF_TOKENS + TOKEN_WORDS * p;
      f64[at] = owned.office;
      f64[at + 1] = owned.token;
      f64[at + 2] = owned.perms;
    }
    // The consumer keeps no sending handle of its own: each producer holds one, nothing else.
    table.release(send);
    const flag = new Int32Array(handoff, 0, 1);
    Atomics.store(flag, HANDOFF_READY, 1); // publishes the tokens written above
    Atomics.notify(flag, HANDOFF_READY);

    const checker = new SequenceChecker(init.scenario.producers);
    const backoff = new Backoff(init.ctrl);
    // Taken at the first round, once every producer has imported its token.
    let baseline: string | undefined;
    const checkSteady = (): void => {
      const now = footprint(office.stats());
      if (baseline === undefined) baseline = now;
      else if (now !== baseline) throw new Error(`post office moved across rounds: ${baseline} → ${now}`);
    };

    if (consume === 'copy') {
      return (n) => {
        checkSteady();
        const start = nowNs();
        for (let i = 0; i < n; i++) {
          let signal = mailbox.tryReceive();
          // null: nothing published yet.
          while (signal === null) {
            backoff.pause();
            signal = mailbox.tryReceive();
          }
          backoff.reset();
          if (signal.kind !== 'message') throw new Error(`unexpected ${signal.kind} signal`);
          checker.check(signal.data, 0);
        }
        const elapsedNs = nowNs() - start;
        checkSteady();
        return { elapsedNs, count: n };
      };
    }
    return (n) => {
      checkSteady();
      const start = nowNs();
      for (let i = 0; i < n; i++) {
        let signal = mailbox.tryReceiveInPlace();
        // null: nothing published yet.
        while (signal === null) {
          backoff.pause();
          signal = mailbox.tryReceiveInPlace();
        }
        backoff.reset();
        if (signal.kind !== 'message') throw new Error(`unexpected ${signal.kind} signal`);
        checker.check(signal.bytes, signal.offset);
      }
      const elapsedNs = nowNs() - start;
      checkSteady();
      return { elapsedNs, count: n };
    };
  },

  producer(init: WorkerInit) {
    const { office: buffer, handoff } = init.shared as CoreShared;
    const office = PostOffice.attach(buffer);
    const table = office.createTable();
    const flag = new Int32Array(handoff, 0, 1);
    // The consumer creates the mailbox in its own start-up; wait for its tokens.
    if (Atomics.wait(flag, HANDOFF_READY, 0, HANDOFF_TIMEOUT_MS) === 'timed-out') {
      throw new Error('the consumer never published the capability');
    }
    const f64 = new Float64Array(handoff);
    const at = HANDOFF_TOKENS + TOKEN_WORDS * init.producerId;
    const owned: OwnedCapability = { office: f64[at]!, token: f64[at + 1]!, perms: f64[at + 2]! };
    const h = table.importOwned(owned);
    const record = makeRecord(init.scenario.size, init.producerId);
    const backoff = new Backoff(init.ctrl);
    let seq = 0;
    return (n) => {
      const start = nowNs();
      for (let i = 0; i < n; i++) {
        stampSeq(record, 0, seq++);
        // false: the ring is full, the consumer is behind.
        while (!table.send(h, record)) backoff.pause();
        backoff.reset();
      }
      return { elapsedNs: nowNs() - start, count: n };
    };
  },
});
