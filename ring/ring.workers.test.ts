/**
 * The ring across real worker threads: 1, 2 and 4 producers into one
 * consumer, every record verified (whole, right type, per-producer sequence
 * with no loss, duplicate or reordering). Small rings, so producers hit a
 * full ring all the time and wait for room (writeSync, awaitable write, or a
 * tryClaim retry loop). Consumers park at once (spins 0) in Atomics.wait or
 * on the event loop; the wake-up stress sends bursts with random pauses so
 * the consumer is asleep whenever a burst starts. A lost wake-up shows up as
 * a deadline failure, never as a hang.
 */

import type { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, test } from 'vitest';
import { PARK_AT_ONCE, type Ring } from './index.ts';
import { expectCanariesIntact, expectNoLeak, makeFixture } from './test/fixtures.ts';
import { encodeRecord, Prng, runSeed, SequenceVerifier, TEST_RECORD_MIN, typeOf } from './test/records.ts';
import {
  type ConsumerMessage,
  exited,
  nextMessage,
  type ProducerInit,
  type ProducerMessage,
  spawn,
  within,
} from './test/workers.ts';

/** Scales record counts: STRESS_SCALE=10 for a soak run. */
const SCALE = Number(process.env.STRESS_SCALE ?? '1');
const DEADLINE_MS = 25_000;

interface ProducerPlan {
  mode: ProducerInit['mode'];
  count: number;
  maxLength: number;
  bursts?: ProducerInit['bursts'];
}

interface Scenario {
  capacity: number;
  producers: ProducerPlan[];
  consumer: 'park-worker' | 'async-worker' | 'async-main';
}

const live: Worker[] = [];
let seedForReport = 0;

afterEach(async (context) => {
  if (context.task.result?.state === 'fail') {
    console.error(`${context.task.name}: seed ${seedForReport} (replay with TEST_SEED=${seedForReport})`);
  }
  await Promise.all(live.splice(0).map((w) => w.terminate()));
});

/** The consumer on this thread's event loop. */
async function consumeOnMainThread(ring: Ring, total: number, verifier: SequenceVerifier): Promise<void> {
  const deadline = performance.now() + DEADLINE_MS;
  while (verifier.total < total) {
    const remaining = deadline - performance.now();
    if (remaining <= 0) throw new Error(`deadline passed with ${verifier.total}/${total} records`);
    if (await ring.waitForRecordAsync(remaining, PARK_AT_ONCE)) ring.drain(verifier.check);
  }
}

async function runScenario(scenario: Scenario): Promise<void> {
  const seed = runSeed();
  seedForReport = seed;
  const prng = new Prng(seed);
  const maxLength = Math.max(...scenario.producers.map((p) => p.maxLength));
  const f = makeFixture({ capacity: scenario.capacity, maxRecordLength: maxLength, maxProducers: 8 });
  const control = new SharedArrayBuffer(4);
  const total = scenario.producers.reduce((sum, p) => sum + p.count, 0);
  const verifier = new SequenceVerifier();

  let consumerResult: Promise<ConsumerMessage> | undefined;
  if (scenario.consumer !== 'async-main') {
    const consumer = spawn('./consumer.worker.ts', {
      buffer: f.buffer,
      ringOffset: f.ringOffset,
      total,
      mode: scenario.consumer === 'park-worker' ? 'park' : 'async',
      deadlineMs: DEADLINE_MS,
    });
    live.push(consumer);
    consumerResult = nextMessage<ConsumerMessage>(consumer);
  }

  const producers = scenario.producers.map((plan, id) => {
    const worker = spawn('./producer.worker.ts', {
      buffer: f.buffer,
      ringOffset: f.ringOffset,
      producerId: id,
      count: plan.count,
      minLength: TEST_RECORD_MIN,
      maxLength: plan.maxLength,
      seed: prng.next(),
      mode: plan.mode,
      bursts: plan.bursts,
      control,
    } satisfies ProducerInit);
    live.push(worker);
    return nextMessage<ProducerMessage>(worker, (m) => m.kind !== 'ready').then((m) => {
      if (m.kind === 'error') throw new Error(`producer ${id}: ${m.message}`);
      return m;
    });
  });

  const progress = () =>
    `received ${verifier.total}/${total}, usedBytes ${f.ring.usedBytes}, slots in use ${f.slots.inUse()}`;
  const done = await within(
    DEADLINE_MS + 5_000,
    progress,
    (async () => {
      // Producers and the consumer run together; a failing producer fails the test at once.
      const consuming = consumerResult ?? consumeOnMainThread(f.ring, total, verifier).then(() => undefined);
      const [consumed, ...results] = await Promise.all([consuming, ...producers]);
      return { results, consumed };
    })(),
  );

  done.results.forEach((r, id) => {
    expect(r).toEqual({ kind: 'done', written: scenario.producers[id]!.count });
  });
  let received: Record<number, number>;
  if (done.consumed === undefined) {
    received = Object.fromEntries(verifier.next);
  } else {
    if (!done.consumed.ok) throw new Error(`consumer: ${done.consumed.error}`);
    received = done.consumed.received;
  }
  expect(received).toEqual(Object.fromEntries(scenario.producers.map((p, id) => [id, p.count])));
  await Promise.all(live.splice(0).map((w) => (w.threadId === -1 ? 0 : exited(w))));
  if (done.consumed === undefined) expectNoLeak(f.ring, f.slots);
  else {
    // The consumer worker drained the ring; this thread only looks.
    expect(f.ring.usedBytes).toBe(0);
    expect(f.slots.inUse()).toBe(0);
  }
  expectCanariesIntact(f);
}

const N = Math.round(10_000 * SCALE);

describe('the verifier', () => {
  // The multi-worker tests are only as good as this: prove it rejects what it must.
  const record = (id: number, seq: number, length = 40) => {
    const bytes = new Uint8Array(length);
    encodeRecord(bytes, 0, length, id, seq);
    return bytes;
  };
  const feed = (v: SequenceVerifier, bytes: Uint8Array, type = typeOf(bytes[0]!)) =>
    v.check(type, bytes, 0, bytes.length);

  test('accepts each producer in order, interleaved', () => {
    const v = new SequenceVerifier();
    for (let seq = 0; seq < 5; seq++) for (const id of [0, 1, 2]) feed(v, record(id, seq, 12 + seq));
    expect(v.total).toBe(15);
    expect(v.received(1)).toBe(5);
  });

  test('rejects loss, duplication, reordering, damage, truncation and a wrong type', () => {
    const lost = new SequenceVerifier();
    feed(lost, record(0, 0));
    expect(() => feed(lost, record(0, 2))).toThrow('lost');
    const dup = new SequenceVerifier();
    feed(dup, record(0, 0));
    expect(() => feed(dup, record(0, 0))).toThrow('duplicate');
    const damaged = record(3, 0);
    damaged[20]! ^= 1;
    expect(() => feed(new SequenceVerifier(), damaged)).toThrow('damaged');
    expect(() => feed(new SequenceVerifier(), record(3, 0).subarray(0, 39))).toThrow('damaged');
    expect(() => feed(new SequenceVerifier(), record(3, 0), 9)).toThrow('type');
    expect(() => feed(new SequenceVerifier(), new Uint8Array(4), 1)).toThrow('too short');
  });
});

describe('producers to one consumer', () => {
  test('1 producer (writeSync) to a consumer parking in Atomics.wait', async () => {
    await runScenario({
      capacity: 1024,
      producers: [{ mode: 'writeSync', count: 2 * N, maxLength: 100 }],
      consumer: 'park-worker',
    });
  });

  test('1 producer (awaitable write) to an async consumer on the main thread', async () => {
    await runScenario({
      capacity: 512,
      producers: [{ mode: 'write', count: N, maxLength: 120 }],
      consumer: 'async-main',
    });
  });

  test('2 producers (writeSync, write) to a consumer parking in Atomics.wait', async () => {
    await runScenario({
      capacity: 1024,
      producers: [
        { mode: 'writeSync', count: N, maxLength: 60 },
        { mode: 'write', count: N, maxLength: 200 },
      ],
      consumer: 'park-worker',
    });
  });

  test('2 producers (write) to an async consumer on the main thread', async () => {
    await runScenario({
      capacity: 2048,
      producers: [
        { mode: 'write', count: N, maxLength: 64 },
        { mode: 'write', count: N, maxLength: 64 },
      ],
      consumer: 'async-main',
    });
  });

  test('4 producers (writeSync, write, tryClaim loops) to a consumer parking in Atomics.wait', async () => {
    await runScenario({
      capacity: 1024,
      producers: [
        { mode: 'writeSync', count: N, maxLength: 40 },
        { mode: 'write', count: N, maxLength: 100 },
        { mode: 'tryWrite', count: N, maxLength: 16 },
        { mode: 'writeSync', count: N, maxLength: 120 },
      ],
      consumer: 'park-worker',
    });
  });

  test('4 producers to an async consumer in a worker (waitForRecordAsync)', async () => {
    await runScenario({
      capacity: 4096,
      producers: [
        { mode: 'write', count: N, maxLength: 300 },
        { mode: 'writeSync', count: N, maxLength: 30 },
        { mode: 'write', count: N, maxLength: 12 },
        { mode: 'tryWrite', count: N, maxLength: 500 },
      ],
      consumer: 'async-worker',
    });
  });
});

describe('wake-up stress', () => {
  const bursts = { maxBurst: 6, maxPauseMs: 2 };
  const M = Math.round(3_000 * SCALE);

  test('bursts with random pauses to a consumer that parks at once (Atomics.wait)', async () => {
    await runScenario({
      capacity: 65536,
      producers: [
        { mode: 'writeSync', count: M, maxLength: 64, bursts },
        { mode: 'tryWrite', count: M, maxLength: 64, bursts },
      ],
      consumer: 'park-worker',
    });
  });

  test('bursts with random pauses to a consumer that parks at once (waitAsync)', async () => {
    await runScenario({
      capacity: 65536,
      producers: [
        { mode: 'write', count: M, maxLength: 64, bursts },
        { mode: 'writeSync', count: M, maxLength: 64, bursts },
      ],
      consumer: 'async-worker',
    });
  });

  test('single records with pauses to a parked consumer on the main thread', async () => {
    await runScenario({
      capacity: 1024,
      producers: [{ mode: 'writeSync', count: M, maxLength: 32, bursts: { maxBurst: 1, maxPauseMs: 1 } }],
      consumer: 'async-main',
    });
  });
});
