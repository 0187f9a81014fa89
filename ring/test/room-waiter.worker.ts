/**
 * A producer thread whose processes all wait for room: it starts
 * `workerData.writers` awaitable writes on a ring the test has filled, all
 * sharing this thread's one producer slot (as the processes of one worker
 * do), and then waits to be terminated.
 */

import { parentPort, workerData } from 'node:worker_threads';
import { Ring } from '../index.ts';

const { buffer, ringOffset, writers } = workerData as {
  buffer: SharedArrayBuffer;
  ringOffset: number;
  writers: number;
};
const ring = Ring.attach(buffer, ringOffset);
const producer = ring.slots.acquire();
parentPort!.postMessage({ kind: 'ready', slot: producer.slot, generation: producer.generation });
for (let i = 0; i < writers; i++) {
  ring.write(producer, 1, new Uint8Array(8)).catch((error: unknown) => {
    parentPort!.postMessage({ kind: 'error', message: String(error) });
  });
}
