/**
 * The single-thread scenario: the CPU cost of one send plus one receive of a
 * 16-byte record, with the producer and the consumer on the same thread, so
 * no cache line moves between cores. Measured with tinybench; each task call
 * moves BATCH records so the timer's own cost (tens of ns) disappears in the
 * division.
 */

import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import { RingBuffer } from 'ringbuf.js';
import { Bench } from 'tinybench';
import { Ring } from '../ring/index.ts';
import { makeRecord, RECORD_TYPE, SequenceChecker, stampSeq } from './messages.ts';
import { QUEUE_BYTES } from './scenarios.ts';
import { formatNs } from './stats.ts';

const BATCH = 1000;
const SIZE = 16;

export interface MicroResult {
  readonly contender: string;
  readonly what: string;
  /** Median ns per send + receive. */
  readonly nsPerRecord: number;
  readonly samples: number;
}

export interface MicroSettings {
  /** tinybench time budget per task, ms. */
  readonly timeMs: number;
  readonly log: (line: string) => void;
}

export async function runMicro(settings: MicroSettings): Promise<MicroResult[]> {
  // Every task has its own queue, record and sequence: tinybench calls each
  // task function once when it is added, and tasks must not see each other's records.
  const record = makeRecord(SIZE);
  let seq = 0;
  const { ring, slots } = Ring.create({ capacity: QUEUE_BYTES, maxProducers: 1 });
  const producer = slots.acquire();
  const posternChecker = new SequenceChecker(1);

  const drainRecord = makeRecord(SIZE);
  let drainSeq = 0;
  const drainRing = Ring.create({ capacity: QUEUE_BYTES, maxProducers: 1 });
  const drainProducer = drainRing.slots.acquire();
  const drainChecker = new SequenceChecker(1);
  const onRecord = (_t: number, data: Uint8Array, offset: number): void => drainChecker.check(data, offset);

  const rbRecord = makeRecord(SIZE);
  const rb = new RingBuffer(RingBuffer.getStorageForCapacity(QUEUE_BYTES, Uint8Array), Uint8Array);
  const rbOut = new Uint8Array(SIZE);
  const rbChecker = new SequenceChecker(1);
  let rbSeq = 0;

  const portRecord = makeRecord(SIZE);
  const { port1, port2 } = new MessageChannel();
  const portChecker = new SequenceChecker(1);
  let portSeq = 0;

  const word = new Int32Array(new SharedArrayBuffer(64));

  const tasks: { contender: string; what: string; fn: () => void }[] = [
    {
      contender: 'postern',
      what: 'tryWrite, then peek + release',
      fn: () => {
        for (let i = 0; i < BATCH; i++) {
          stampSeq(record, 0, seq++);
          ring.tryWrite(producer, RECORD_TYPE, record);
          ring.peek();
          posternChecker.check(ring.bytes, ring.recordOffset);
          ring.release();
        }
      },
    },
    {
      contender: 'postern drain',
      what: `${BATCH} × tryWrite, then one drain`,
      fn: () => {
        for (let i = 0; i < BATCH; i++) {
          stampSeq(drainRecord, 0, drainSeq++);
          drainRing.ring.tryWrite(drainProducer, RECORD_TYPE, drainRecord);
        }
        drainRing.ring.drain(onRecord);
      },
    },
    {
      contender: 'postMessage',
      what: 'port.postMessage, then receiveMessageOnPort',
      fn: () => {
        for (let i = 0; i < BATCH; i++) {
          stampSeq(portRecord, 0, portSeq++);
          port1.postMessage(portRecord);
          portChecker.check(receiveMessageOnPort(port2)!.message as Uint8Array, 0);
        }
      },
    },
    {
      contender: 'ringbuf.js',
      what: 'push, then pop (with the availableWrite/availableRead checks)',
      fn: () => {
        for (let i = 0; i < BATCH; i++) {
          stampSeq(rbRecord, 0, rbSeq++);
          if (rb.availableWrite() >= SIZE) rb.push(rbRecord, SIZE);
          if (rb.availableRead() >= SIZE) rb.pop(rbOut, SIZE);
          rbChecker.check(rbOut, 0);
        }
      },
    },
    {
      contender: 'Atomics',
      what: 'one Atomics.store and one Atomics.load (no payload)',
      fn: () => {
        for (let i = 0; i < BATCH; i++) {
          Atomics.store(word, 0, i);
          Atomics.load(word, 0);
        }
      },
    },
  ];

  const bench = new Bench({
    time: settings.timeMs,
    warmupTime: Math.min(200, settings.timeMs / 2),
    throws: true,
  });
  for (const t of tasks) bench.add(t.contender, t.fn);
  bench.addEventListener('cycle', (e) => {
    const task = e.task;
    const r = task?.result;
    if (task && r && 'latency' in r) {
      settings.log(
        `single-thread     ${task.name.padEnd(12)} ${formatNs((r.latency.p50 * 1e6) / BATCH)} per record`,
      );
    }
  });
  await bench.run();
  port1.close();
  return tasks.map((t) => {
    const r = bench.getTask(t.contender)!.result;
    if (!('latency' in r)) throw new Error(`tinybench task ${t.contender} did not complete (${r.state})`);
    return {
      contender: t.contender,
      what: t.what,
      nsPerRecord: (r.latency.p50 * 1e6) / BATCH,
      samples: r.latency.samplesCount,
    };
  });
}
