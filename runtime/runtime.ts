/**
 * The Runtime: a post office, a pool of scheduler workers, and a host process
 * on the main thread through which the host spawns, sends and requests.
 *
 * The main thread is not a relay: once started, processes on different
 * workers talk through the post office alone. It keeps to lifecycle work:
 * starting workers, handing each the control routes of the others (by
 * postMessage, once), replacing a worker that crashed after declaring its
 * thread dead (its processes die with a 'worker-crashed' reason, their links
 * and monitors fire), and stopping everything on `shutdown`.
 */

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import {
  type OwnedCapability,
  PostOffice,
  type PostOfficeOptions,
  type PostOfficeStats,
  type Table,
} from '../core/index.ts';
import { doorbellWords, initDoorbell } from '../ring/index.ts';
import type {
  ExitReason,
  ProcessContext,
  Received,
  ReceiveOptions,
  RequestOptions,
  SpawnOptions,
  WorkerCrashReason,
} from './api.ts';
import { RuntimeStopped } from './errors.ts';
import { ThreadHost } from './host.ts';
import { Process } from './process.ts';
import { killReason } from './reasons.ts';
import type { Ref } from './ref.ts';
import { SandboxHost } from './sandbox/index.ts';
import type { FromWorker, SchedulerWorkerData, ToWorker } from './worker.ts';

export interface RuntimeOptions extends PostOfficeOptions {
  /** Scheduler workers. Default: one per core. */
  workers?: number;
  /** Processes one worker can hold at once (each takes up to two doorbell bits). Default 16384. */
  maxProcessesPerWorker?: number;
  /** Default ring capacity of a process's main mailbox, bytes (a power of two). Default 256. */
  processMailboxCapacity?: number;
  /** V8 limits of each scheduler worker. */
  workerResourceLimits?: import('node:worker_threads').ResourceLimits;
}

interface WorkerSlot {
  worker: Worker;
  thread: { slot: number; generation: number } | null;
  /** The last error the worker reported before it exited. */
  error: unknown;
  stopped: boolean;
  doorbellBase: number;
  /** Settles once the worker said ready or failed to start (shutdown waits for a starting one). */
  starting: Promise<void>;
  /**
   * Control routes posted to this worker as owned tokens. One it had not
   * imported when it died would hold its route for good: they are discarded
   * then (discarding one already imported does nothing).
   */
  tokens: OwnedCapability[];
}

const BOOT_URL = new URL('./boot.mjs', import.meta.url);
const WORKER_ENTRY = new URL('./worker.ts', import.meta.url).href;
/** A worker that does not stop within this long after `shutdown` asks is terminated. */
const STOP_GRACE_MS = 2000;

export class Runtime {
  readonly office: PostOffice;
  /** The host process: the main thread's own process (its `self`, `receive`...). */
  readonly host: ProcessContext;
  readonly workerCount: number;
  /** Called after a crashed worker has been replaced (tests and supervisors of the pool listen). */
  onWorkerReplaced: ((index: number, reason: WorkerCrashReason) => void) | undefined;

  private readonly hostProcess: Process;
  private readonly threadHost: ThreadHost;
  private readonly sandboxes: SandboxHost;
  private readonly system: Table;
  private readonly controls: number[];
  private readonly slots: WorkerSlot[] = [];
  private readonly options: Required<
    Pick<RuntimeOptions, 'processMailboxCapacity' | 'maxProcessesPerWorker'>
  > &
    RuntimeOptions;
  private stopping = false;
  private stopped = false;

  /** Starts the post office and the workers; resolves once every worker is ready. */
  static async start(options: RuntimeOptions = {}): Promise<Runtime> {
    const runtime = new Runtime(options);
    await Promise.all(runtime.slots.map((_, i) => runtime.startWorker(i)));
    for (let i = 0; i < runtime.workerCount; i++) runtime.announceControl(i);
    await Promise.all(runtime.slots.map((_, i) => runtime.sync(i)));
    // Every worker has handled its messages, so imported every token posted to it.
    for (const slot of runtime.slots) slot.tokens.length = 0;
    return runtime;
  }

  private constructor(options: RuntimeOptions) {
    const workers = options.workers ?? availableParallelism();
    if (!Number.isInteger(workers) || workers < 1 || workers > 256) {
      throw new RangeError(`workers must be an integer in 1..256, got ${workers}`);
    }
    const perWorker = options.maxProcessesPerWorker ?? 16384;
    if (!Number.isInteger(perWorker) || perWorker < 1 || perWorker > 1 << 24) {
      throw new RangeError(`maxProcessesPerWorker must be an integer in 1..${1 << 24}, got ${perWorker}`);
    }
    this.options = {
      ...options,
      maxProcessesPerWorker: perWorker,
      processMailboxCapacity: options.processMailboxCapacity ?? 256,
    };
    this.workerCount = workers;
    this.office = PostOffice.create(
      sizeOffice(options, workers * perWorker, this.options.processMailboxCapacity),
    );
    this.system = this.office.createTable();
    this.controls = new Array<number>(workers).fill(0);
    const bits = 2 * perWorker + 1;
    const i32 = new Int32Array(this.office.buffer);
    for (let i = 0; i < workers; i++) {
      // The doorbells live in the post office (producers ring them through the ring's own view).
      const bytes = doorbellWords(bits) * 4;
      const offset = this.office.o.allocHeap(bytes);
      initDoorbell(i32, offset >> 2, bits);
      this.slots.push({
        starting: Promise.resolve(),
        tokens: [],
        worker: undefined as unknown as Worker,
        thread: null,
        error: undefined,
        stopped: false,
        doorbellBase: offset >> 2,
      });
    }
    const processMailboxCapacity = this.options.processMailboxCapacity;
    this.sandboxes = new SandboxHost({ office: this.office, processMailboxCapacity });
    const threadHost = new ThreadHost({
      system: this.system,
      controls: this.controls,
      processMailboxCapacity: this.options.processMailboxCapacity,
      spawnSandbox: this.sandboxes.spawn,
    });
    this.threadHost = threadHost;
    this.hostProcess = new Process(threadHost, this.office.createTable(), undefined);
    this.hostProcess.prepareRequests(); // made now, so stats() taken after start already counts it
    this.host = this.hostProcess;
  }

  private startWorker(index: number): Promise<void> {
    const slot = this.slots[index] as WorkerSlot;
    initDoorbell(
      new Int32Array(this.office.buffer),
      slot.doorbellBase,
      2 * this.options.maxProcessesPerWorker + 1,
    );
    const workerData: SchedulerWorkerData & { entry: string } = {
      entry: WORKER_ENTRY,
      buffer: this.office.buffer,
      index,
      doorbellBase: slot.doorbellBase,
      processMailboxCapacity: this.options.processMailboxCapacity,
    };
    const worker = new Worker(BOOT_URL, {
      workerData,
      ...(this.options.workerResourceLimits === undefined
        ? {}
        : { resourceLimits: this.options.workerResourceLimits }),
    });
    slot.worker = worker;
    slot.thread = null;
    slot.error = undefined;
    slot.stopped = false;
    const started = new Promise<void>((resolve, reject) => {
      worker.on('message', (message: FromWorker) => {
        if (message.type === 'ready') {
          slot.thread = message.thread;
          const old = this.controls[index];
          if (old !== undefined && old !== 0) this.system.release(old);
          this.controls[index] = this.system.importOwned(message.control);
          resolve();
        } else if (message.type === 'stopped') {
          slot.stopped = true;
        }
      });
      worker.on('error', (error) => {
        slot.error = error;
      });
      worker.on('exit', (code) => {
        if (slot.thread === null) {
          reject(
            new Error(
              `runtime worker ${index} failed to start: ${String(slot.error ?? `exit code ${code}`)}`,
            ),
          );
          return;
        }
        if (!slot.stopped) this.workerCrashed(index, code);
      });
    });
    slot.starting = started.catch(() => {});
    return started;
  }

  /** Resolves once worker `index` has handled every message sent to it before. */
  private sync(index: number): Promise<void> {
    const worker = (this.slots[index] as WorkerSlot).worker;
    return new Promise<void>((resolve) => {
      const onMessage = (message: FromWorker) => {
        if (message.type !== 'synced') return;
        worker.off('message', onMessage);
        resolve();
      };
      worker.on('message', onMessage);
      worker.postMessage({ type: 'sync' } satisfies ToWorker);
    });
  }

  /** Hands worker `index`'s control route to every worker (each gets its own owned copy). */
  private announceControl(index: number): void {
    const h = this.controls[index] as number;
    for (let i = 0; i < this.workerCount; i++) {
      const slot = this.slots[i] as WorkerSlot;
      if (slot.thread === null) continue;
      this.postControl(slot, index, h);
    }
  }

  /** Posts worker `index`'s control route (a handle of `system`) to `slot`'s worker as an owned token. */
  private postControl(slot: WorkerSlot, index: number, h: number): void {
    const route: OwnedCapability = this.system.toOwned(h);
    slot.tokens.push(route);
    slot.worker.postMessage({ type: 'control', index, route } satisfies ToWorker);
  }

  /** Discards the tokens posted to a worker that died (those it imported are gone already). */
  private discardTokens(slot: WorkerSlot): void {
    for (const token of slot.tokens) this.office.discardOwned(token);
    slot.tokens.length = 0;
  }

  /** A worker exited without being asked: its processes die, and a new worker takes its place. */
  private workerCrashed(index: number, code: number): void {
    const slot = this.slots[index] as WorkerSlot;
    const thread = slot.thread as { slot: number; generation: number };
    const error = slot.error as Error | undefined;
    const reason: WorkerCrashReason = {
      kind: 'worker-crashed',
      detail:
        error === undefined ? `worker ${index} exited with code ${code}` : `${error.name}: ${error.message}`,
    };
    const old = this.controls[index] as number;
    this.controls[index] = 0;
    if (old !== 0) this.system.release(old);
    slot.thread = null;
    this.office.markThreadDead(thread.slot, thread.generation, killReason(reason));
    this.discardTokens(slot);
    if (this.stopping) return;
    void this.startWorker(index).then(
      () => {
        if (this.stopping) return; // shutdown stops the new worker with the others
        // The new worker learns every control route; every worker learns the new one.
        for (let i = 0; i < this.workerCount; i++) {
          if (i === index || this.controls[i] === 0) continue;
          this.postControl(this.slots[index] as WorkerSlot, i, this.controls[i] as number);
        }
        this.announceControl(index);
        this.onWorkerReplaced?.(index, reason);
      },
      () => {},
    );
  }

  // ---------------------------------------------------------------- the host process

  private check(): void {
    if (this.stopped || this.stopping) throw new RuntimeStopped('the runtime has been shut down');
  }

  async spawn(
    moduleUrl: string | URL,
    exportName: string,
    args: readonly unknown[] = [],
    options: SpawnOptions = {},
  ): Promise<Ref> {
    this.check();
    return this.host.spawn(moduleUrl, exportName, args, options);
  }

  async spawnMonitor(
    moduleUrl: string | URL,
    exportName: string,
    args: readonly unknown[] = [],
    options: SpawnOptions = {},
  ): Promise<{ ref: Ref; monitor: number }> {
    this.check();
    return this.host.spawnMonitor(moduleUrl, exportName, args, options);
  }

  send(ref: Ref, value: unknown): boolean {
    this.check();
    return this.host.send(ref, value);
  }

  async request(ref: Ref, value: unknown, options?: RequestOptions): Promise<unknown> {
    this.check();
    try {
      return await this.host.request(ref, value, options);
    } finally {
      this.idle();
    }
  }

  async receive(options?: ReceiveOptions): Promise<Received> {
    this.check();
    try {
      return await this.host.receive(options);
    } finally {
      this.idle();
    }
  }

  /**
   * The main thread has no scheduler loop that goes idle: after a request or
   * a receive it drops its hazard (core/README.md), so the ring of a process
   * it last wrote to can be freed when that process ends, without waiting for
   * the host's next send.
   */
  private idle(): void {
    if (!this.stopped) this.office.idle();
  }

  monitor(ref: Ref): number {
    this.check();
    return this.host.monitor(ref);
  }

  kill(ref: Ref, reason?: ExitReason): void {
    this.check();
    this.host.kill(ref, reason);
  }

  /** What the post office holds right now (see PostOfficeStats). */
  stats(): PostOfficeStats {
    return this.office.stats();
  }

  /** The worker threads (for tests that crash one on purpose). */
  get workers(): readonly Worker[] {
    return this.slots.map((s) => s.worker);
  }

  /**
   * Ends every process (reason 'shutdown'), stops the workers (terminating
   * any that do not stop within 2 s), and frees the post office's runtime
   * state. The Node process can exit afterwards: nothing of the runtime
   * keeps its event loop alive.
   */
  async shutdown(): Promise<void> {
    if (this.stopped || this.stopping) return;
    this.stopping = true;
    // A worker still starting (a crashed one's replacement) is waited for, then stopped like the rest.
    await Promise.all(this.slots.map((slot) => slot.starting));
    await this.sandboxes.stop('shutdown');
    await Promise.all(
      this.slots.map(
        (slot) =>
          new Promise<void>((resolve) => {
            const worker = slot.worker;
            if (slot.thread === null) {
              resolve();
              return;
            }
            const timer = setTimeout(() => void worker.terminate(), STOP_GRACE_MS);
            worker.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            worker.postMessage({ type: 'stop', reason: 'shutdown' } satisfies ToWorker);
          }),
      ),
    );
    // A worker terminated at the deadline is declared dead, so nothing it held stays.
    for (const slot of this.slots) {
      if (!slot.stopped && slot.thread !== null) {
        this.office.markThreadDead(slot.thread.slot, slot.thread.generation, killReason('shutdown'));
        slot.thread = null;
      }
      this.discardTokens(slot);
    }
    this.hostProcess.end('shutdown');
    await this.threadHost.settled(); // the host's parked waits let go of their rings
    this.system.close();
    for (const slot of this.slots) {
      this.office.o.freeHeap(
        slot.doorbellBase << 2,
        doorbellWords(2 * this.options.maxProcessesPerWorker + 1) * 4,
      );
    }
    this.stopped = true;
  }
}

/**
 * Post office sizes for `processes` processes, unless the options say
 * otherwise: each process takes a table, a group, one or two routes and
 * rings, and a few capabilities and nodes.
 */
function sizeOffice(options: RuntimeOptions, processes: number, mailboxCapacity: number): PostOfficeOptions {
  const {
    workers: _w,
    maxProcessesPerWorker: _m,
    processMailboxCapacity: _c,
    workerResourceLimits: _r,
    ...office
  } = options;
  const p = Math.min(processes, 1 << 21);
  return {
    // Every ring free scans one hazard word per thread slot: room for the workers, their
    // replacements, the host and sandboxes, not more.
    maxThreads: office.maxThreads ?? 64,
    maxRoutes: office.maxRoutes ?? Math.min(2 * p + 1024, 1 << 22),
    maxGroups: office.maxGroups ?? Math.min(p + 1024, 1 << 22),
    maxTables: office.maxTables ?? Math.min(p + 1024, 1 << 22),
    maxCapabilities: office.maxCapabilities ?? Math.min(8 * p + 4096, 1 << 22),
    maxNodes: office.maxNodes ?? Math.min(4 * p + 4096, 1 << 22),
    heapBytes: office.heapBytes ?? Math.min(p * (mailboxCapacity + 512) + (32 << 20), 2 ** 31 - (1 << 20)),
    mailboxCapacity: office.mailboxCapacity ?? 16 << 10,
    maxMessageBytes: office.maxMessageBytes ?? 1 << 20,
  };
}
