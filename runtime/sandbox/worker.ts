/**
 * Entry point of a sandbox worker (loaded through runtime/boot.mjs): the
 * trusted shim around ONE sandboxed process. It alone holds the post office
 * buffer and the control block; the untrusted module runs in a vm context
 * (realm.ts) that sees only the membrane (membrane.ts, bootstrap.cjs).
 *
 * Sequence:
 *   1. attach the post office; publish the thread's producer slot in the
 *      control block (before anything can go wrong)
 *   2. read and transform the module, unless the main thread had it cached
 *      (trusted work: the watchdog is not armed yet)
 *   3. start the heartbeat (arms the main thread's CPU watchdog)
 *   4. create the process (table, group, mailbox), the realm, the membrane;
 *      compile the module and run its top level; find the export
 *   5. import the spawn's capabilities, decode the arguments, link to the
 *      spawner if asked; post `ready` with a token of the process's route
 *   6. call the process function through the membrane
 * A failure in 2, 4 or 5 posts `failed` and exits. When the process ends
 * (it returned, threw, exited, or was killed from outside, which the
 * heartbeat notices within one beat) the shim stops its timers, detaches
 * from the post office and exits the worker with code 0. A worker killed by
 * the watchdog or by running out of memory never gets that far: the main
 * thread declares its thread dead.
 */

import { parentPort, workerData } from 'node:worker_threads';
import { type OwnedCapability, PostOffice } from '../../core/index.ts';
import type { SpawnOptions } from '../api.ts';
import { SpawnError } from '../errors.ts';
import { ThreadHost } from '../host.ts';
import { Process } from '../process.ts';
import type { Ref } from '../ref.ts';
import {
  CB_BEAT,
  CB_GEN,
  CB_INSIDE,
  CB_KILL,
  CB_SLOT,
  type FromSandbox,
  type SandboxWorkerData,
  type ToSandbox,
} from './control.ts';
import { Membrane } from './membrane.ts';
import { createRealm, type HostCall, LoadError, transformModule } from './realm.ts';
import { adoptSelf, packSpawn, unpackSpawn } from './spawn.ts';
import { toWire } from './wire.ts';

const port = parentPort;
if (port === null) throw new Error('runtime/sandbox/worker.ts runs in a worker thread');
const data = workerData as SandboxWorkerData;
const post = (message: FromSandbox) => port.postMessage(message);

// 1. Attach, and say which producer slot is ours.
const office = PostOffice.attach(data.buffer);
const control = new Int32Array(data.control);
Atomics.store(control, CB_GEN, office.thread.generation);
Atomics.store(control, CB_SLOT, office.thread.slot + 1);

/** Nesting of `inside` calls (a membrane call that ends the process, which detaches...). */
let depth = 0;
const nothing = () => {};

/**
 * Runs `f`, a post office operation, unless the watchdog has decided to kill
 * this worker (then `refused()`): see control.ts, CB_INSIDE.
 */
function inside<T>(f: () => T, refused: () => T): T {
  if (depth > 0) return f(); // (nested: the outer call raised the flag and checked the verdict)
  Atomics.store(control, CB_INSIDE, 1);
  depth++;
  try {
    return Atomics.load(control, CB_KILL) === 0 ? f() : refused();
  } finally {
    depth--;
    Atomics.store(control, CB_INSIDE, 0);
  }
}

const OVER_LIMIT = `E${JSON.stringify(['ProcessEnded', 'this process is over its limits'])}`;

let proc: Process | null = null;
let membrane: Membrane | null = null;
let heartbeat: ReturnType<typeof setInterval> | undefined;
let finished = false;

/** Lets go of everything and exits the worker. Idempotent. */
function finish(): void {
  if (finished) return;
  finished = true;
  if (heartbeat !== undefined) clearInterval(heartbeat);
  membrane?.close();
  // (Refused when the watchdog has condemned the worker: the main thread then declares it dead.)
  inside(() => {
    if (proc !== null && !proc.ended) proc.end('killed');
    office.detach();
  }, nothing);
  // Out of whatever stack we are on (possibly one that came from the context).
  setImmediate(() => process.exit(0));
}

/**
 * Reports a failed start. A sandboxed spawner (`quiet`) learns nothing about
 * the module: not whether it exists, compiles or exports the name (it may
 * name any file on the host).
 */
function fail(error: unknown): void {
  let message: string;
  if (data.quiet) message = 'the module cannot be loaded in a sandbox';
  else if (error instanceof LoadError)
    message = error.detail === '' ? error.message : `${error.message}: ${error.detail}`;
  else message = `${(error as Error)?.name}: ${(error as Error)?.message}`;
  post({ type: 'failed', message });
  finish();
}

/** A name and message for a thrown value of either realm, read without trusting it. */
function describeThrown(x: unknown): { name: string; message: string } {
  try {
    if (x !== null && typeof x === 'object') {
      const { name, message } = x as { name?: unknown; message?: unknown };
      return {
        name: typeof name === 'string' ? name : 'Error',
        message: typeof message === 'string' ? message : '',
      };
    }
    return { name: 'NonError', message: typeof x === 'string' ? x : typeof x };
  } catch {
    return { name: 'NonError', message: 'a value that cannot be printed' };
  }
}

// A rejection nobody handled or an exception nobody caught ends the process, as it would end a Node process.
// These listeners must never throw: Node would then print the value with util.inspect, which calls
// a `Symbol.for('nodejs.util.inspect.custom')` method of a sandbox object with host arguments.
process.on('unhandledRejection', (reason) => {
  try {
    const { name, message } = describeThrown(reason);
    endProcess({ kind: 'error', name: 'UnhandledRejection', message: `${name}: ${message}` });
  } catch {
    process.exit(1);
  }
});
process.on('uncaughtException', (error) => {
  try {
    const { name, message } = describeThrown(error);
    endProcess({ kind: 'error', name, message });
  } catch {
    process.exit(1);
  }
});

function endProcess(reason: unknown): void {
  inside(() => {
    if (proc !== null && !proc.ended) proc.end(reason);
    else finish();
  }, nothing);
}

// ---------------------------------------------------------------- spawning from inside (the spawn power)

const spawns = new Map<number, { resolve(self: OwnedCapability): void; reject(error: Error): void }>();
let nextSpawn = 1;

port.on('message', (message: ToSandbox) => {
  const pending = spawns.get(message.id);
  if (pending === undefined) return;
  spawns.delete(message.id);
  if (message.type === 'spawned') pending.resolve(message.self);
  else pending.reject(new SpawnError(message.message));
});

async function spawnSandbox(
  parent: Process,
  moduleUrl: string,
  exportName: string,
  args: readonly unknown[],
  options: SpawnOptions,
  link: boolean,
): Promise<Ref> {
  const { payload, caps } = packSpawn(parent, args, link);
  const id = nextSpawn++;
  const self = await new Promise<OwnedCapability>((resolve, reject) => {
    spawns.set(id, { resolve, reject });
    const mailboxCapacity = options.mailboxCapacity ?? data.mailboxCapacity;
    post({ type: 'spawn', id, moduleUrl, exportName, mailboxCapacity, payload, caps });
  });
  const ref = inside(
    () => adoptSelf(parent, office, self),
    () => {
      throw new SpawnError('this process is over its limits');
    },
  );
  post({ type: 'took', id });
  return ref;
}

class SandboxThreadHost extends ThreadHost {
  override ended(): void {
    finish();
  }
}

// ---------------------------------------------------------------- start

function start(): void {
  // 2. Trusted work first.
  let code = data.code;
  if (code === undefined) {
    code = transformModule(data.moduleUrl);
    post({ type: 'compiled', code });
  }

  // 3. From here on the sandbox's own code may run: the watchdog watches.
  Atomics.add(control, CB_BEAT, 1);
  heartbeat = setInterval(() => {
    Atomics.add(control, CB_BEAT, 1);
    // A process killed from outside learns it at its next call; one that makes none learns it here.
    if (proc !== null && !proc.ended && proc.mailbox.closed) {
      inside(() => {
        try {
          proc?.same(proc.self, proc.self);
        } catch {
          // ...ProcessEnded: the process has ended with its death reason.
        }
      }, nothing);
    }
  }, data.beatMs);

  // 4. The process, the realm, the module.
  const table = office.createTable();
  const host = new SandboxThreadHost({
    system: table,
    controls: [],
    processMailboxCapacity: data.mailboxCapacity,
    spawnSandbox,
  });
  proc = new Process(host, table, data.mailboxCapacity);
  const m = new Membrane(proc, data.limits, {
    end: endProcess,
    log: (text) => post({ type: 'log', text }),
    resolve: (url) => new URL(url, data.moduleUrl).href,
  });
  membrane = m;
  const call: HostCall = (op, a, b, c, d) =>
    inside(
      () => m.call(op, a, b, c, d),
      () => OVER_LIMIT,
    );
  const realm = createRealm(call, data.limits.powers);
  m.entry = realm.entry;
  const moduleFn = realm.compile(code, data.moduleUrl);
  const loaded = realm.entry.load(moduleFn, data.exportName);
  if (typeof loaded !== 'string') throw new LoadError('the module could not be loaded', '');
  if (loaded !== '') throw new LoadError(loaded, '');
  if (proc.ended) return; // its top level ended it (an uncaught exception in a microtask...)

  // 5. Arguments, link, and the route back to the spawner.
  const args = unpackSpawn(proc, data.payload, data.caps);
  const self = proc.table.toOwned(proc.handle(proc.self));
  post({ type: 'ready', self });

  // 6. Run.
  realm.entry.start(toWire(proc.self, m), toWire(args, m));
}

try {
  start();
} catch (error) {
  fail(error);
}
