/**
 * Ring stress scenarios: real producer threads against one consumer (this
 * thread), every record self-describing (producer, sequence, checksum), so
 * the verifier proves no loss, no duplicate, no reordering per producer and
 * that every record handed out is whole.
 *
 * - ring-mpsc: 1..W producers, random capacity (so the ring wraps hundreds of
 *   times), random record sizes, random full-ring strategy per producer, and a
 *   random consumer style per round (drain, peek/release, copying read,
 *   awaitable park). Canary words around the ring must survive.
 * - ring-death: producers in endless claim/write/commit loops are terminated
 *   at random instants, declared dead and replaced; the consumer must keep
 *   delivering every survivor's records whole and in order, and every dead
 *   producer's slot must come back.
 * - ring-wakeup: bursty producers with random pauses and a consumer that
 *   parks at once: a lost wake-up shows as a round that never completes.
 */

import type { Worker } from 'node:worker_threads';
import { PARK_AT_ONCE, ProducerSlots, Ring } from '../ring/index.ts';
import { Prng, SequenceVerifier as RecordVerifier, TEST_RECORD_MIN } from '../ring/test/records.ts';
import { exited, nextMessage, type ProducerInit, type ProducerMessage, spawn } from '../ring/test/workers.ts';
import type { RoundContext, RoundResult, Scenario } from './scenario.ts';

/** The tests' verifier, also counting payload bytes (to report how often the ring wrapped). */
class SequenceVerifier {
  private readonly records = new RecordVerifier();
  bytes = 0;
  readonly check = (type: number, bytes: Uint8Array, offset: number, length: number): void => {
    this.records.check(type, bytes, offset, length);
    this.bytes += length + 8;
  };
  get total(): number {
    return this.records.total;
  }
  received(producerId: number): number {
    return this.records.received(producerId);
  }
}

const CANARY = 0x5a5aa5a5 | 0;
const CANARY_WORDS = 16;

/** A buffer with canaries, a slot table, canaries, a ring, canaries. */
function layOut(capacity: number, maxRecordLength: number, maxProducers: number) {
  const slotsOffset = 64;
  const slotsEnd = slotsOffset + ProducerSlots.bytesFor(maxProducers);
  const ringOffset = ((slotsEnd + 63) & ~63) + 64;
  const ringEnd = ringOffset + Ring.bytesFor(capacity);
  const buffer = new SharedArrayBuffer(ringEnd + 64);
  const i32 = new Int32Array(buffer);
  const guards = [
    [0, CANARY_WORDS],
    [(ringOffset - 64) >> 2, CANARY_WORDS],
    [ringEnd >> 2, CANARY_WORDS],
  ] as const;
  for (const [at, n] of guards) i32.fill(CANARY, at, at + n);
  const slots = ProducerSlots.init(buffer, slotsOffset, maxProducers);
  const ring = Ring.init(buffer, ringOffset, { capacity, maxRecordLength, producerSlotsOffset: slotsOffset });
  const checkCanaries = (): string | undefined => {
    for (const [at, n] of guards) {
      for (let k = 0; k < n; k++) if (i32[at + k] !== CANARY) return `canary word ${at + k} overwritten`;
    }
    return undefined;
  };
  return { buffer, slots, ring, ringOffset, checkCanaries };
}

interface Running {
  readonly worker: Worker;
  readonly producerId: number;
  readonly ready: Promise<{ slot: number; generation: number }>;
  readonly done: Promise<ProducerMessage>;
}

function startProducer(init: Omit<ProducerInit, 'control'>, control: SharedArrayBuffer): Running {
  const worker = spawn('./producer.worker.ts', { ...init, control });
  const ready = nextMessage<ProducerMessage>(worker, (m) => m.kind === 'ready') as Promise<{
    kind: 'ready';
    slot: number;
    generation: number;
  }>;
  const done = nextMessage<ProducerMessage>(worker, (m) => m.kind === 'done' || m.kind === 'error');
  // A killed producer rejects `done`: that is expected in ring-death, observed there.
  done.catch(() => {});
  ready.catch(() => {});
  return { worker, producerId: init.producerId, ready, done };
}

/** Starts producers 0..n-1, each writing `count` records of random length, with seeds from `prng`. */
function startCounted(
  n: number,
  prng: Prng,
  control: SharedArrayBuffer,
  common: {
    buffer: SharedArrayBuffer;
    ringOffset: number;
    count: number;
    maxLength: number;
    mode: () => ProducerInit['mode'];
    bursts?: ProducerInit['bursts'];
  },
): Running[] {
  const running: Running[] = [];
  for (let id = 0; id < n; id++) {
    const { mode, ...rest } = common;
    running.push(
      startProducer(
        { ...rest, producerId: id, minLength: TEST_RECORD_MIN, seed: prng.next(), mode: mode() },
        control,
      ),
    );
  }
  return running;
}

/** Consumes until `until()` is true, in the style chosen for this round. */
async function consume(
  ring: Ring,
  verifier: SequenceVerifier,
  style: number,
  until: () => boolean,
  ctx: RoundContext,
  lostWakeupAfterMs?: number,
): Promise<void> {
  const scratch = new Uint8Array(ring.maxRecordLength);
  while (!until()) {
    ctx.check();
    switch (style) {
      case 0: // batch drain
        if (ring.drain(verifier.check) === 0) await ring.waitForRecordAsync(20);
        break;
      case 1: {
        // in place, one at a time
        const length = ring.peek();
        if (length < 0) {
          await ring.waitForRecordAsync(20);
          break;
        }
        verifier.check(ring.recordType, ring.bytes, ring.recordOffset, length);
        ring.release();
        break;
      }
      case 2: {
        // copying read
        const length = ring.tryReadInto(scratch);
        if (length < 0) await ring.waitForRecordAsync(20, PARK_AT_ONCE);
        else verifier.check(ring.recordType, scratch, 0, length);
        break;
      }
      default: {
        // park at once before every record
        const got = await ring.waitForRecordAsync(lostWakeupAfterMs ?? 20, PARK_AT_ONCE);
        if (got) {
          const length = ring.peek();
          verifier.check(ring.recordType, ring.bytes, ring.recordOffset, length);
          ring.release();
        } else if (lostWakeupAfterMs !== undefined) {
          // Producers pause at most a few ms between bursts: a park this long missed a wake-up.
          throw new Error(
            `parked ${lostWakeupAfterMs} ms without a wake-up (records pending: ${ring.peek() >= 0})`,
          );
        }
      }
    }
  }
}

const MODES: ProducerInit['mode'][] = ['writeSync', 'write', 'tryWrite'];

export const ringMpsc: Scenario = {
  name: 'ring-mpsc',
  async round(ctx: RoundContext): Promise<RoundResult> {
    const prng = new Prng(ctx.seed);
    const capacity = 1 << prng.int(10, 16);
    const maxRecordLength = Math.max(TEST_RECORD_MIN, prng.int(capacity / 16, capacity / 4) - 8);
    const producers = prng.int(1, ctx.workers);
    const { buffer, slots, ring, ringOffset, checkCanaries } = layOut(capacity, maxRecordLength, 8);
    const control = new SharedArrayBuffer(4);
    // Enough records that the ring wraps about 100 times.
    const meanRecord = 8 + (TEST_RECORD_MIN + maxRecordLength) / 2;
    const perProducer = Math.max(200, Math.ceil((capacity * 100 * ctx.scale) / meanRecord / producers));
    const running = startCounted(producers, prng, control, {
      buffer,
      ringOffset,
      count: perProducer,
      maxLength: maxRecordLength,
      mode: () => MODES[prng.int(0, MODES.length - 1)]!,
    });
    const verifier = new SequenceVerifier();
    const style = prng.int(0, 3);
    try {
      await consume(ring, verifier, style, () => verifier.total === producers * perProducer, ctx);
      for (const p of running) {
        const done = await p.done;
        if (done.kind !== 'done') throw new Error(`producer ${p.producerId}: ${JSON.stringify(done)}`);
      }
      await Promise.all(running.map((p) => exited(p.worker)));
      ring.flushConsumed();
      if (ring.peek() >= 0) throw new Error('a record appeared after every producer finished');
      if (ring.usedBytes !== 0) throw new Error(`ring not empty at the end: ${ring.usedBytes} bytes`);
      if (slots.inUse() !== 0) throw new Error(`${slots.inUse()} producer slots still held`);
      const canary = checkCanaries();
      if (canary !== undefined) throw new Error(canary);
    } finally {
      await Promise.all(running.map((p) => p.worker.terminate()));
    }
    return {
      counts: { records: verifier.total, laps: Math.floor(verifier.bytes / capacity) },
      note: `cap ${capacity} producers ${producers} style ${style}`,
    };
  },
};

export const ringDeath: Scenario = {
  name: 'ring-death',
  async round(ctx: RoundContext): Promise<RoundResult> {
    const prng = new Prng(ctx.seed);
    const capacity = 1 << prng.int(12, 16);
    const maxRecordLength = Math.max(TEST_RECORD_MIN, prng.int(64, capacity / 8) - 8);
    const maxProducers = 16;
    const { buffer, slots, ring, ringOffset, checkCanaries } = layOut(
      capacity,
      maxRecordLength,
      maxProducers,
    );
    const control = new SharedArrayBuffer(4);
    const live = new Map<number, Running>();
    const killedIds = new Set<number>();
    let nextId = 0;
    const launch = async () => {
      const id = nextId++;
      const p = startProducer(
        {
          buffer,
          ringOffset,
          producerId: id,
          count: -1,
          minLength: TEST_RECORD_MIN,
          maxLength: maxRecordLength,
          seed: prng.next(),
          // Claim, write in place, commit: the longest window a kill can land in.
          mode: 'tryWrite',
        },
        control,
      );
      live.set(id, p);
      await p.ready;
    };
    const producers = Math.max(2, ctx.workers);
    for (let i = 0; i < producers; i++) await launch();
    const verifier = new SequenceVerifier();
    let kills = 0;
    const killsWanted = Math.max(2, Math.round(6 * ctx.scale));
    let consuming = true;
    const consumer = consume(ring, verifier, prng.int(0, 3), () => !consuming, ctx);
    try {
      while (kills < killsWanted) {
        await sleepMs(prng.int(5, 60));
        ctx.check();
        const ids = [...live.keys()];
        const victimId = ids[prng.int(0, ids.length - 1)]!;
        const victim = live.get(victimId)!;
        live.delete(victimId);
        const { slot, generation } = await victim.ready;
        await victim.worker.terminate();
        killedIds.add(victimId);
        slots.markDead(slot, generation);
        kills++;
        await launch();
      }
      Atomics.store(new Int32Array(control), 0, 1); // tells the survivors to finish
      for (const p of live.values()) {
        const done = await p.done;
        if (done.kind !== 'done') throw new Error(`producer ${p.producerId}: ${JSON.stringify(done)}`);
        await exited(p.worker);
      }
      // Every survivor's records must all arrive; the killed ones' records up to their death.
      const written = new Map<number, number>();
      for (const p of live.values()) {
        const done = await p.done;
        written.set(p.producerId, done.kind === 'done' ? done.written : -1);
      }
      const deadline = performance.now() + 10_000;
      while (![...written].every(([id, n]) => verifier.received(id) === n)) {
        if (performance.now() > deadline) throw new Error("survivors' records did not all arrive");
        await sleepMs(1);
      }
      consuming = false;
      await consumer;
      // Drain what is left (records of killed producers published before they died).
      ring.drain(verifier.check);
      ring.flushConsumed();
      ring.reclaimDeadProducers();
      if (ring.usedBytes !== 0) throw new Error(`ring not empty at the end: ${ring.usedBytes} bytes`);
      if (slots.inUse() !== 0) throw new Error(`${slots.inUse()} producer slots still held after reclaim`);
      const canary = checkCanaries();
      if (canary !== undefined) throw new Error(canary);
    } finally {
      consuming = false;
      await consumer.catch(() => {});
      await Promise.all([...live.values()].map((p) => p.worker.terminate()));
    }
    return {
      counts: { records: verifier.total, kills, recoveredClaims: ring.recoveredClaims },
      faults: kills,
      note: `cap ${capacity}`,
    };
  },
};

export const ringWakeup: Scenario = {
  name: 'ring-wakeup',
  async round(ctx: RoundContext): Promise<RoundResult> {
    const prng = new Prng(ctx.seed);
    const capacity = 1 << prng.int(10, 14);
    const maxRecordLength = 64;
    const { buffer, slots, ring, ringOffset } = layOut(capacity, maxRecordLength, 8);
    const control = new SharedArrayBuffer(4);
    const producers = prng.int(1, ctx.workers);
    const perProducer = Math.max(100, Math.round(1500 * ctx.scale));
    const running = startCounted(producers, prng, control, {
      buffer,
      ringOffset,
      count: perProducer,
      maxLength: maxRecordLength,
      mode: () => 'writeSync',
      bursts: { maxBurst: 8, maxPauseMs: 2 },
    });
    const verifier = new SequenceVerifier();
    try {
      // Style 3 parks before every record: each burst start needs a wake-up.
      await consume(ring, verifier, 3, () => verifier.total === producers * perProducer, ctx, 5000);
      await Promise.all(running.map((p) => exited(p.worker)));
      ring.flushConsumed();
      if (slots.inUse() !== 0) throw new Error(`${slots.inUse()} producer slots still held`);
    } finally {
      await Promise.all(running.map((p) => p.worker.terminate()));
    }
    return { counts: { records: verifier.total }, note: `producers ${producers}` };
  },
};

function sleepMs(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
