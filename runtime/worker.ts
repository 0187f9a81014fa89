/**
 * Entry point of a scheduler worker (loaded through boot.mjs). It attaches
 * the post office, runs a Scheduler, and talks to the main thread by
 * postMessage only about its own lifecycle: ready (with its thread identity
 * and its control route), the control routes of the other workers, stop.
 * Messages between processes never pass through here.
 */

import { parentPort, workerData } from 'node:worker_threads';
import { type OwnedCapability, Perm, PostOffice } from '../core/index.ts';
import type { ExitReason } from './api.ts';
import { Scheduler } from './scheduler.ts';

export interface SchedulerWorkerData {
  buffer: SharedArrayBuffer;
  index: number;
  doorbellBase: number;
  processMailboxCapacity: number;
}

/** Main thread to worker. */
export type ToWorker =
  | { type: 'control'; index: number; route: OwnedCapability }
  | { type: 'stop'; reason: ExitReason }
  | { type: 'sync' };

/** Worker to main thread. */
export type FromWorker =
  | { type: 'ready'; thread: { slot: number; generation: number }; control: OwnedCapability }
  | { type: 'stopped' }
  | { type: 'synced' };

const port = parentPort;
if (port === null) throw new Error('runtime/worker.ts runs in a worker thread');
const data = workerData as SchedulerWorkerData;
const office = PostOffice.attach(data.buffer);
const scheduler = new Scheduler({
  office,
  index: data.index,
  doorbellBase: data.doorbellBase,
  processMailboxCapacity: data.processMailboxCapacity,
});

port.on('message', (message: ToWorker) => {
  if (message.type === 'control') {
    scheduler.setControl(message.index, scheduler.system.importOwned(message.route));
  } else if (message.type === 'stop') {
    scheduler.stop(message.reason);
  } else if (message.type === 'sync') {
    // Messages are handled in order: everything sent before the sync is done.
    port.postMessage({ type: 'synced' } satisfies FromWorker);
  }
});

const own = scheduler.control.export(Perm.SEND);
const control = scheduler.system.toOwned(own);
scheduler.system.release(own);
port.postMessage({ type: 'ready', thread: office.thread, control } satisfies FromWorker);

await scheduler.run();
office.detach();
port.postMessage({ type: 'stopped' } satisfies FromWorker);
port.close();
