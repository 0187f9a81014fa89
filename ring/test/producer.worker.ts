/**
 * A producer thread for the multi-worker and producer-death tests. It
 * acquires a producer slot, reports (slot, generation) to the parent before
 * writing anything (so the parent can declare it dead after terminating it),
 * then writes test records 0, 1, 2, ... with random lengths.
 */

import { parentPort, workerData } from 'node:worker_threads';
import { Ring } from '../index.ts';
import { encodeRecord, Prng, typeOf } from './records.ts';
import type { ProducerInit, ProducerMessage } from './workers.ts';

const init = workerData as ProducerInit;
const port = parentPort!;
const post = (message: ProducerMessage) => port.postMessage(message);

const ring = Ring.attach(init.buffer, init.ringOffset);
const producer = ring.slots.acquire();
post({ kind: 'ready', slot: producer.slot, generation: producer.generation });

const control = new Int32Array(init.control);
const forever = init.count < 0;
const type = typeOf(init.producerId);

/** Result of the busy work, kept so that the work cannot be optimised away. */
let sink = 0;

/** Reads the claimed payload back: busy work inside the claim window. */
function dwell(bytes: Uint8Array, at: number, length: number, seed: number): number {
  let h = seed;
  for (let i = 0; i < length; i++) h = Math.imul(h ^ bytes[at + i]!, 0x01000193);
  return h;
}

/** Writes record `seq`; false when told to stop before it could. */
async function writeOne(record: Uint8Array, seq: number): Promise<boolean> {
  if (init.mode === 'writeSync') {
    // A bounded wait, so a producer told to stop notices it even when the ring stays full.
    while (!ring.writeSync(producer, type, record, 50)) {
      if (forever && Atomics.load(control, 0) !== 0) return false;
    }
    return true;
  }
  if (init.mode === 'write') {
    await ring.write(producer, type, record);
    return true;
  }
  // Claim, write in place, commit: the window a death between claim and publish interrupts.
  for (;;) {
    const at = ring.tryClaim(producer, type, record.length);
    if (at >= 0) {
      encodeRecord(ring.bytes, at, record.length, init.producerId, seq);
      for (let pass = init.claimDwell ?? 0; pass > 0; pass--)
        sink = dwell(ring.bytes, at, record.length, sink);
      ring.commit(producer);
      return true;
    }
    if (forever && Atomics.load(control, 0) !== 0) return false;
  }
}

async function run(): Promise<void> {
  const prng = new Prng(init.seed);
  const scratch = new Uint8Array(init.maxLength);
  // A word nobody notifies: Atomics.wait on it is a sleep that does not need the event loop.
  const pause = new Int32Array(new SharedArrayBuffer(4));
  let burstLeft = 0;
  let seq = 0;
  while (forever ? Atomics.load(control, 0) === 0 : seq < init.count) {
    if (init.bursts !== undefined) {
      if (burstLeft === 0) {
        const ms = prng.int(0, init.bursts.maxPauseMs);
        if (ms > 0) Atomics.wait(pause, 0, 0, ms);
        burstLeft = prng.int(1, init.bursts.maxBurst);
      }
      burstLeft--;
    }
    const length = prng.int(init.minLength, init.maxLength);
    const record = scratch.subarray(0, length);
    encodeRecord(record, 0, length, init.producerId, seq);
    if (!(await writeOne(record, seq))) break;
    seq++;
  }
  ring.slots.release(producer);
  post({ kind: 'done', written: seq });
}

run().catch((error: unknown) => {
  post({ kind: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
});
