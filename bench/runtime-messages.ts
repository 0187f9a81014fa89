/**
 * `runtime-messages`: one-way message throughput between two processes on
 * different workers, small values, against what the runtime is built on and
 * what Node offers without it, all in the same run with interleaved rounds.
 *
 * Contenders, for each value (a small int, a short string):
 * - postern processes: a `producer` process on worker 0 sends n values with
 *   `ctx.send` (and `ctx.sendWhenRoom` when the mailbox is full) to a
 *   `consumer` process on worker 1 (mailbox 64 KiB), which takes each with
 *   `await ctx.receive()` and checks it. Encoding, the post office, the
 *   doorbell and the scheduler are all in the figure.
 * - postern core: two plain worker threads, `table.send` of the value's
 *   MessagePack bytes into a mailbox of the same size, read in place.
 * - postMessage: two plain worker threads, MessagePort.postMessage of the
 *   value, at most as many in flight as the mailbox holds.
 *
 * Every consumer times its round from its first message to its last; the
 * small int is a sequence number (& 127) that each consumer checks.
 */

import { MessageChannel, Worker } from 'node:worker_threads';
import { Packr } from 'msgpackr/pack';
import { PostOffice } from '../core/index.ts';
import { CTRL_WORDS, type FromWorker, type Role, type ToWorker, type WorkerInit } from './protocol.ts';
import {
  BenchRuntime,
  interleave,
  type RoundContender,
  type RoundResult,
  type RuntimeBenchSettings,
} from './runtime-common.ts';
import { handoffBytes } from './workers/core-handoff.ts';
import type { PeerShared } from './workers/runtime-peer.ts';
import type { Timed } from './workers/runtime-procs.ts';

/** Ring capacity of the consumer's mailbox (and of the core peer's). */
export const MESSAGE_MAILBOX = 1 << 16;

export const MESSAGE_VALUES = [
  { name: 'small int', value: 'seq', shows: 'i & 127 (1 byte)' },
  { name: 'short string', value: 'hello, world', shows: "'hello, world' (13 bytes)" },
] as const;

export const MESSAGE_CONTENDERS = {
  processes: 'postern processes',
  core: 'postern core',
  port: 'postMessage',
} as const;

export interface MessagesPart {
  readonly value: string;
  readonly shows: string;
  readonly results: readonly RoundResult[];
}

export interface MessagesReport {
  readonly parts: readonly MessagesPart[];
  /** Leaks found after a part (the post office not back to its counts after start). */
  readonly problems: readonly string[];
}

const BOOT = new URL('./workers/boot.mjs', import.meta.url);
const PEER = new URL('./workers/runtime-peer.ts', import.meta.url).href;
/** Bytes a one-byte MessagePack message takes in a ring: an 8-byte record header, padded to 8. */
const RECORD_BYTES = 16;

/** Two plain workers (producer, consumer) running one peer contender, driven by the bench protocol. */
class PeerPair {
  private readonly workers: Worker[] = [];
  private readonly inbox: FromWorker[][] = [[], []];
  private readonly waiting: (((m: FromWorker) => void) | undefined)[] = [undefined, undefined];
  private failure: Error | undefined;
  private closing = false;
  private roundNo = 0;

  constructor(contender: string, shared: [PeerShared, PeerShared], transfer: [unknown[], unknown[]]) {
    const ctrl = new SharedArrayBuffer(CTRL_WORDS * 4);
    const roles: Role[] = ['producer', 'consumer'];
    roles.forEach((role, i) => {
      const init: WorkerInit = {
        entry: PEER,
        contender,
        role,
        scenario: { kind: 'throughput', name: 'runtime-messages', size: RECORD_BYTES, producers: 1 },
        producerId: 0,
        parties: 2,
        ctrl,
        shared: shared[i],
      };
      const worker = new Worker(BOOT, { workerData: init, transferList: transfer[i] as never[] });
      worker.on('message', (m: FromWorker) => {
        if (m.type === 'error') {
          this.failure ??= new Error(m.message);
          for (const w of this.waiting) w?.(m);
          return;
        }
        const w = this.waiting[i];
        if (w) {
          this.waiting[i] = undefined;
          w(m);
        } else this.inbox[i]!.push(m);
      });
      worker.on('error', (e) => {
        this.failure ??= e;
        for (const w of this.waiting) w?.({ type: 'error', message: e.message });
      });
      worker.on('exit', (code) => {
        if (this.closing) return;
        this.failure ??= new Error(`${contender} ${role} worker exited (code ${code})`);
        for (const w of this.waiting) w?.({ type: 'error', message: this.failure.message });
      });
      this.workers.push(worker);
    });
  }

  private next(i: number): Promise<FromWorker> {
    const queued = this.inbox[i]!.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve) => {
      this.waiting[i] = resolve;
    });
  }

  private async both(): Promise<FromWorker[]> {
    if (this.failure) throw this.failure;
    const answers = await Promise.all([this.next(0), this.next(1)]);
    if (this.failure) throw this.failure;
    return answers;
  }

  async ready(): Promise<void> {
    await this.both();
  }

  /** One round of n messages; the consumer's time from its first message to its last. */
  async round(n: number): Promise<{ ns: number }> {
    const round = ++this.roundNo;
    for (const w of this.workers) w.postMessage({ type: 'round', round, n } satisfies ToWorker);
    const [, consumer] = await this.both();
    if (consumer?.type !== 'done') throw new Error(`unexpected answer ${JSON.stringify(consumer)}`);
    return { ns: consumer.result.elapsedNs };
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

function corePair(value: unknown, bytes: Uint8Array): PeerPair {
  const office = PostOffice.create({
    maxThreads: 4,
    maxRoutes: 16,
    maxGroups: 16,
    maxTables: 16,
    maxCapabilities: 64,
    maxNodes: 64,
    heapBytes: 4 * MESSAGE_MAILBOX,
    mailboxCapacity: MESSAGE_MAILBOX,
  });
  const buffer = office.buffer;
  office.detach();
  const shared: PeerShared = {
    value,
    bytes,
    office: buffer,
    handoff: new SharedArrayBuffer(handoffBytes(1)),
    capacity: MESSAGE_MAILBOX,
  };
  return new PeerPair(MESSAGE_CONTENDERS.core, [shared, shared], [[], []]);
}

function portPair(value: unknown): PeerPair {
  const { port1, port2 } = new MessageChannel();
  const window = MESSAGE_MAILBOX / RECORD_BYTES;
  return new PeerPair(
    MESSAGE_CONTENDERS.port,
    [
      { value, port: port1, window },
      { value, port: port2, window },
    ],
    [[port1], [port2]],
  );
}

export async function runMessages(settings: RuntimeBenchSettings): Promise<MessagesReport> {
  const problems: string[] = [];
  const parts: MessagesPart[] = [];
  const packr = new Packr({ useRecords: false, moreTypes: true, copyBuffers: true });
  for (const { name, value, shows } of MESSAGE_VALUES) {
    const bench = await BenchRuntime.start({ workers: 2 });
    const peers: PeerPair[] = [];
    try {
      const consumer = await bench.spawn('consumer', [], { worker: 1, mailboxCapacity: MESSAGE_MAILBOX });
      const producer = await bench.spawn('producer', [consumer], { worker: 0 });
      const bytes = packr.pack(value === 'seq' ? 0 : value).slice();
      const core = corePair(value, bytes);
      const port = portPair(value);
      peers.push(core, port);
      await Promise.all(peers.map((p) => p.ready()));
      const contenders: RoundContender[] = [
        {
          name: MESSAGE_CONTENDERS.processes,
          firstN: 20_000,
          round: async (n) => {
            const got = bench.ask<Timed>(consumer, { op: 'expect', n, value });
            const sent = bench.ask<Timed>(producer, { op: 'send', n, value });
            const [r] = await Promise.all([got, sent]);
            return r;
          },
        },
        { name: MESSAGE_CONTENDERS.core, firstN: 50_000, round: (n) => core.round(n) },
        { name: MESSAGE_CONTENDERS.port, firstN: 20_000, round: (n) => port.round(n) },
      ];
      const results = await interleave(`runtime-messages ${name}`, contenders, settings);
      parts.push({ value: name, shows, results });
    } finally {
      await Promise.all(peers.map((p) => p.close()));
      const problem = await bench.stop(`runtime-messages (${name})`);
      if (problem) problems.push(problem);
    }
  }
  return { parts, problems };
}
