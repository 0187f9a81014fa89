/**
 * Main-thread side of each contender: what shared memory or ports a scenario
 * needs, and which worker plays which role. Each worker file under workers/
 * holds the matching role code. A contender that cannot take part in a
 * scenario says why, and the report prints the reason instead of a figure.
 */

import { MessageChannel, type Transferable } from 'node:worker_threads';
import { RingBuffer } from 'ringbuf.js';
import { PostOffice } from '../core/index.ts';
import { ProducerSlots, RECORD_HEADER_BYTES, Ring } from '../ring/index.ts';
import type { Role, ScenarioSpec } from './protocol.ts';
import { CORE_REFERENCE, QUEUE_BYTES, type WorkerScenario } from './scenarios.ts';
import type { AtomicsShared } from './workers/atomics.worker.ts';
import type { CoreShared } from './workers/core.worker.ts';
import { handoffBytes } from './workers/core-handoff.ts';
import type { PortShared } from './workers/port.worker.ts';
import type { PosternShared } from './workers/postern.worker.ts';
import type { RingbufShared } from './workers/ringbuf.worker.ts';

export interface WorkerPlan {
  readonly role: Role;
  readonly producerId: number;
  readonly shared: unknown;
  readonly transfer?: readonly Transferable[];
}

export type Plan = { readonly workers: readonly WorkerPlan[] } | { readonly notApplicable: string };

export interface Contender {
  /** Stable name, used in tables, charts and progress lines. */
  readonly name: string;
  /** One line on what exactly is measured. */
  readonly what: string;
  readonly entry: URL;
  plan(spec: ScenarioSpec): Plan;
}

/** The roles of a scenario, in the order their workers are started. */
function rolesOf(spec: ScenarioSpec): { role: Role; producerId: number }[] {
  if (spec.kind === 'ping-pong') {
    return [
      { role: 'ponger', producerId: 0 },
      { role: 'pinger', producerId: 0 },
    ];
  }
  const roles: { role: Role; producerId: number }[] = [{ role: 'consumer', producerId: 0 }];
  for (let p = 0; p < spec.producers; p++) roles.push({ role: 'producer', producerId: p });
  return roles;
}

const align64 = (n: number): number => (n + 63) & ~63;

function posternContender(name: string, consume: PosternShared['consume'], what: string): Contender {
  return {
    name,
    what,
    entry: new URL('./workers/postern.worker.ts', import.meta.url),
    plan(spec) {
      if (spec.kind === 'throughput') {
        const { buffer, slotsOffset, ringOffset } = Ring.create({
          capacity: QUEUE_BYTES,
          maxProducers: spec.producers,
        });
        const shared: PosternShared = { buffer, slotsOffset, forwardOffset: ringOffset, consume };
        return { workers: rolesOf(spec).map((r) => ({ ...r, shared })) };
      }
      if (consume === 'drain') return { notApplicable: 'one record in flight: nothing to batch' };
      return posternPingPong(spec);
    },
  };
}

/** The headline contender: one record per call on both sides, like every peer. */
export const postern = posternContender(
  'postern',
  'peek',
  'ring/ MPSC ring: tryWrite (copy in), peek + release per record (read in place)',
);

/** The same ring, with the consumer taking records in batches. */
export const posternDrain = posternContender(
  'postern drain',
  'drain',
  'ring/ MPSC ring: tryWrite per record, consumer drains in batches (read in place)',
);

/** Two rings, one each way, and one slot table for the two producing threads, in one buffer. */
function posternPingPong(spec: ScenarioSpec): Plan {
  const slotsOffset = 0;
  const forwardOffset = align64(ProducerSlots.bytesFor(2));
  const backOffset = align64(forwardOffset + Ring.bytesFor(QUEUE_BYTES));
  const buffer = new SharedArrayBuffer(backOffset + Ring.bytesFor(QUEUE_BYTES));
  ProducerSlots.init(buffer, slotsOffset, 2);
  Ring.init(buffer, forwardOffset, { capacity: QUEUE_BYTES, producerSlotsOffset: slotsOffset });
  Ring.init(buffer, backOffset, { capacity: QUEUE_BYTES, producerSlotsOffset: slotsOffset });
  const shared: PosternShared = { buffer, slotsOffset, forwardOffset, backOffset, consume: 'peek' };
  return { workers: rolesOf(spec).map((r) => ({ ...r, shared })) };
}

export const postMessage: Contender = {
  name: 'postMessage',
  what: 'MessagePort.postMessage of a Uint8Array (structured clone), one message per record',
  entry: new URL('./workers/port.worker.ts', import.meta.url),
  plan(spec) {
    if (spec.kind === 'ping-pong') {
      const { port1, port2 } = new MessageChannel();
      const ponger: PortShared = { port: port2, window: 1 };
      const pinger: PortShared = { port: port1, window: 1 };
      return {
        workers: [
          { role: 'ponger', producerId: 0, shared: ponger, transfer: [port2] },
          { role: 'pinger', producerId: 0, shared: pinger, transfer: [port1] },
        ],
      };
    }
    // In flight at most what a ring of the same size would hold, header included.
    const window = Math.floor(QUEUE_BYTES / (spec.size + RECORD_HEADER_BYTES));
    const channels = Array.from({ length: spec.producers }, () => new MessageChannel());
    const receiving = channels.map((c) => c.port2);
    const workers: WorkerPlan[] = [
      {
        role: 'consumer',
        producerId: 0,
        shared: { ports: receiving, window } satisfies PortShared,
        transfer: receiving,
      },
    ];
    channels.forEach((c, p) => {
      workers.push({
        role: 'producer',
        producerId: p,
        shared: { port: c.port1, window } satisfies PortShared,
        transfer: [c.port1],
      });
    });
    return { workers };
  },
};

export const ringbuf: Contender = {
  name: 'ringbuf.js',
  what: 'ringbuf.js 0.4 SPSC byte ring: one push and one pop per record',
  entry: new URL('./workers/ringbuf.worker.ts', import.meta.url),
  plan(spec) {
    if (spec.kind === 'throughput' && spec.producers > 1) {
      return { notApplicable: 'single-producer ring: cannot take two producers without a lock' };
    }
    if (spec.kind === 'ping-pong' && spec.wait === 'park') {
      return { notApplicable: 'no blocking wait: ringbuf.js is built for wait-free polling' };
    }
    const forward = RingBuffer.getStorageForCapacity(QUEUE_BYTES, Uint8Array);
    const shared: RingbufShared =
      spec.kind === 'ping-pong'
        ? { forward, back: RingBuffer.getStorageForCapacity(QUEUE_BYTES, Uint8Array) }
        : { forward };
    return { workers: rolesOf(spec).map((r) => ({ ...r, shared })) };
  },
};

export const bareAtomics: Contender = {
  name: 'Atomics',
  what: 'one Int32 word, no payload: store + spin, or store + notify / Atomics.wait',
  entry: new URL('./workers/atomics.worker.ts', import.meta.url),
  plan(spec) {
    if (spec.kind !== 'ping-pong') return { notApplicable: 'a bare word carries no records' };
    const shared: AtomicsShared = { word: new SharedArrayBuffer(64) };
    return { workers: rolesOf(spec).map((r) => ({ ...r, shared })) };
  },
};

/** Every contender of the ring scenarios, postern first: ratios are taken against it. */
export const CONTENDERS: readonly Contender[] = [postern, posternDrain, postMessage, ringbuf, bareAtomics];

function coreContender(name: string, consume: CoreShared['consume'], what: string): Contender {
  return {
    name,
    what,
    entry: new URL('./workers/core.worker.ts', import.meta.url),
    plan(spec) {
      if (spec.kind !== 'throughput') return { notApplicable: 'the core scenarios are one-way throughput' };
      // One office per pair, sized for one mailbox; the main thread only lays
      // it out and detaches, so its producer slot is free again.
      const office = PostOffice.create({
        maxThreads: spec.producers + 2,
        maxRoutes: 16,
        maxGroups: 16,
        maxTables: 16,
        maxCapabilities: 64,
        maxNodes: 64,
        heapBytes: 4 * QUEUE_BYTES,
        mailboxCapacity: QUEUE_BYTES,
      });
      const buffer = office.buffer;
      office.detach();
      const shared: CoreShared = {
        office: buffer,
        handoff: new SharedArrayBuffer(handoffBytes(spec.producers)),
        capacity: QUEUE_BYTES,
        consume,
      };
      return { workers: rolesOf(spec).map((r) => ({ ...r, shared })) };
    },
  };
}

/** Through the post office, reading in place: the core's fastest path, and the one its goal is about. */
export const posternCore = coreContender(
  CORE_REFERENCE,
  'in-place',
  'core/: table.send on an imported SEND handle; mailbox.tryReceiveInPlace per record (read in place)',
);

/** The same sends; the consumer takes a copy of each message (the default, safe receive). */
export const posternCoreCopy = coreContender(
  'postern core copy',
  'copy',
  'core/: table.send on an imported SEND handle; mailbox.tryReceive per record (a copy and a signal object)',
);

/** The bare ring under the same producers and consumer loops: the floor the core is measured against. */
export const posternRing = posternContender(
  'postern ring',
  'peek',
  'ring/ alone: tryWrite, peek + release per record (read in place); what core/ adds is the difference',
);

/** Contenders of the core scenarios, the reference first. */
export const CORE_CONTENDERS: readonly Contender[] = [posternCore, posternCoreCopy, posternRing];

/** The contenders a worker scenario runs. */
export function contendersFor(scenario: WorkerScenario): readonly Contender[] {
  return scenario.family === 'core' ? CORE_CONTENDERS : CONTENDERS;
}
