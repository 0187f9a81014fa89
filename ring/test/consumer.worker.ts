/**
 * A consumer thread for the multi-worker tests: receives `total` records,
 * verifying each (whole, typed, in order per producer), parking between them
 * either in Atomics.wait (`park`, spins 0) or on the event loop (`async`).
 * Then it checks the ring is empty and reports. A deadline turns a lost
 * wake-up into a reported failure instead of a hang.
 */

import { parentPort, workerData } from 'node:worker_threads';
import { PARK_AT_ONCE, Ring } from '../index.ts';
import { SequenceVerifier } from './records.ts';
import type { ConsumerInit, ConsumerMessage } from './workers.ts';

const init = workerData as ConsumerInit;
const port = parentPort!;
const post = (message: ConsumerMessage) => port.postMessage(message);

const ring = Ring.attach(init.buffer, init.ringOffset);
const verifier = new SequenceVerifier();
const deadline = performance.now() + init.deadlineMs;

function received(): Record<number, number> {
  return Object.fromEntries(verifier.next);
}

async function run(): Promise<number> {
  let parks = 0;
  while (verifier.total < init.total) {
    const remaining = deadline - performance.now();
    if (remaining <= 0) throw new Error(`deadline passed with ${verifier.total}/${init.total} records`);
    const available =
      init.mode === 'park'
        ? ring.waitForRecord(remaining, PARK_AT_ONCE)
        : await ring.waitForRecordAsync(remaining, PARK_AT_ONCE);
    parks++;
    if (available) ring.drain(verifier.check);
  }
  // Nothing beyond what the producers wrote, and every byte handed back.
  if (ring.drain(verifier.check) !== 0) throw new Error('records beyond the expected total');
  ring.flushConsumed(); // a consumer running dry may hold back consumed space
  if (ring.usedBytes !== 0) throw new Error(`ring not empty after the last record: ${ring.usedBytes} bytes`);
  return parks;
}

run().then(
  (parks) => post({ kind: 'result', ok: true, received: received(), parks }),
  (error: unknown) =>
    post({
      kind: 'result',
      ok: false,
      error: error instanceof Error ? error.message : String(error),
      received: received(),
    }),
);
