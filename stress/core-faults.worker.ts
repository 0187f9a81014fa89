/**
 * One worker of core-faults' thread-death probe (core-faults.ts): it attaches
 * the post office and runs control operations in a tight loop (kill, link,
 * unlink, monitor, demonitor, group and mailbox creation, close, trapExits,
 * and plain sends), on its own groups and on routes of the other workers,
 * so that a termination at a random instant lands inside one of them, most
 * likely holding a group or route lock. Before each operation it writes
 * the operation's code to its word of the control block and bumps its
 * heartbeat, so the main thread can tell which operation a dead worker was
 * in and whether a survivor is stuck.
 *
 * Control block (Int32Array): [0] stop, [1] pause, then per worker
 * (CTRL_WORKER + 4 * index): heartbeat, current operation, paused flag.
 */

import { parentPort, workerData } from 'node:worker_threads';
import {
  CapacityExceeded,
  type Group,
  InvalidHandle,
  type Mailbox,
  type OwnedCapability,
  Perm,
  PostOffice,
  type Table,
} from '../core/index.ts';
import { Prng } from '../ring/test/records.ts';

export const CTRL_STOP = 0;
export const CTRL_PAUSE = 1;
export const CTRL_WORKER = 4;
export const W_BEAT = 0;
export const W_OP = 1;
export const W_PAUSED = 2;

export const OPS = [
  'idle',
  'kill',
  'link',
  'unlink',
  'monitor',
  'demonitor',
  'create',
  'close',
  'trap',
  'send',
  'receive',
  'killPeer',
  'tidy',
] as const;

export interface DeathWorkerInit {
  buffer: SharedArrayBuffer;
  control: SharedArrayBuffer;
  index: number;
  workers: number;
  seed: number;
}

export type DeathToMain =
  | { kind: 'ready'; thread: { slot: number; generation: number }; tokens: OwnedCapability[][] }
  | { kind: 'imported' }
  | { kind: 'done'; ops: number }
  | { kind: 'error'; message: string };

export type DeathFromMain = { kind: 'peers'; tokens: OwnedCapability[] } | { kind: 'finish' };

if (parentPort !== null && (workerData as { entry?: string })?.entry?.endsWith('core-faults.worker.ts')) {
  await run();
}

async function run(): Promise<void> {
  const init = workerData as DeathWorkerInit;
  const port = parentPort!;
  const ctrl = new Int32Array(init.control);
  const me = CTRL_WORKER + 4 * init.index;
  const prng = new Prng(init.seed);
  const office = PostOffice.attach(init.buffer);
  const t: Table = office.createTable();
  const groups: { group: Group; boxes: Mailbox[] }[] = [];
  const peers: number[] = [];
  const monitors: number[] = [];
  const links: number[] = [];
  const own: number[] = [];
  const inbox: DeathFromMain[] = [];
  let wake: (() => void) | null = null;
  port.on('message', (m: DeathFromMain) => {
    inbox.push(m);
    wake?.();
  });
  const next = async (): Promise<DeathFromMain> => {
    while (inbox.length === 0) await new Promise<void>((r) => (wake = r));
    wake = null;
    return inbox.shift()!;
  };
  const newGroup = () => {
    const group = t.createGroup();
    const box = group.createMailbox({ capacity: 256 });
    groups.push({ group, boxes: [box] });
    own.push(box.export(Perm.ALL));
    return group;
  };
  try {
    for (let k = 0; k < 3; k++) newGroup();
    // Tokens for each peer (single-use): every permission on two of our mailboxes.
    const tokens = Array.from({ length: init.workers }, (_, j) =>
      j === init.index ? [] : groups.slice(0, 2).map((g) => t.toOwned(g.boxes[0]!.export(Perm.ALL))),
    );
    port.postMessage({ kind: 'ready', thread: office.thread, tokens } satisfies DeathToMain);
    const peersMessage = await next();
    if (peersMessage.kind !== 'peers') throw new Error('expected peers');
    for (const token of peersMessage.tokens) peers.push(t.importOwned(token));
    // The main thread holds the tokens it routed until this: a token nobody imports would leak.
    port.postMessage({ kind: 'imported' } satisfies DeathToMain);
    let ops = 0;
    const setOp = (op: (typeof OPS)[number]) => {
      Atomics.store(ctrl, me + W_OP, OPS.indexOf(op));
      Atomics.add(ctrl, me + W_BEAT, 1);
    };
    const pickOwn = () => own[prng.int(0, own.length - 1)]!;
    const pickAny = () =>
      prng.int(0, 2) === 0 && peers.length > 0 ? peers[prng.int(0, peers.length - 1)]! : pickOwn();
    const live = () => groups.filter((g) => !g.group.dead);
    while (Atomics.load(ctrl, CTRL_STOP) === 0) {
      if (Atomics.load(ctrl, CTRL_PAUSE) !== 0) {
        setOp('idle');
        Atomics.store(ctrl, me + W_PAUSED, 1);
        while (Atomics.load(ctrl, CTRL_PAUSE) !== 0 && Atomics.load(ctrl, CTRL_STOP) === 0) {
          Atomics.wait(ctrl, CTRL_PAUSE, 1, 20);
        }
        Atomics.store(ctrl, me + W_PAUSED, 0);
        continue;
      }
      ops++;
      try {
        if (live().length < 3) {
          setOp('create');
          newGroup();
        }
        const g = live()[prng.int(0, live().length - 1)];
        switch (prng.int(0, 11)) {
          case 0:
            setOp('kill');
            groups[prng.int(0, groups.length - 1)]!.group.kill({ code: prng.int(1, 1000) });
            break;
          case 1:
            setOp('killPeer');
            if (prng.int(0, 3) === 0) t.kill(pickAny());
            break;
          case 2:
          case 3:
            setOp('link');
            if (g !== undefined) {
              const id = t.link(pickAny(), g.group);
              if (id !== 0) links.push(id);
            }
            break;
          case 4:
            setOp('unlink');
            if (links.length > 0) t.unlink(links.splice(prng.int(0, links.length - 1), 1)[0]!);
            break;
          case 5:
          case 6:
            setOp('monitor');
            if (g !== undefined && !g.boxes[0]!.closed) monitors.push(t.monitor(pickAny(), g.boxes[0]!));
            break;
          case 7:
            setOp('demonitor');
            if (monitors.length > 0) t.demonitor(monitors.splice(prng.int(0, monitors.length - 1), 1)[0]!);
            break;
          case 8:
            setOp('create');
            if (g !== undefined && g.boxes.length < 3) {
              const box = g.group.createMailbox({ capacity: 256 });
              g.boxes.push(box);
              own.push(box.export(Perm.ALL));
            }
            break;
          case 9:
            setOp(prng.int(0, 1) === 0 ? 'close' : 'trap');
            if (g !== undefined) {
              const box = g.boxes[prng.int(0, g.boxes.length - 1)]!;
              if (prng.int(0, 1) === 0) g.group.trapExits(box.closed ? null : box);
              else if (g.boxes.length > 1) box.close();
            }
            break;
          case 10:
            setOp('send');
            t.send(pickAny(), new Uint8Array(prng.int(0, 64)));
            break;
          default:
            setOp('receive');
            for (const x of groups) for (const box of x.boxes) while (box.tryReceive()?.kind === 'message');
        }
      } catch (error) {
        // A full pool is an answer, not a failure; so is a handle released by a tidy below.
        if (!(error instanceof CapacityExceeded) && !(error instanceof InvalidHandle)) throw error;
      }
      setOp('idle');
      // Tidy: let go of dead groups (their downs and ends drained), and of surplus handles.
      if (groups.length > 12 || own.length > 40 || monitors.length > 60) {
        setOp('tidy');
        for (const x of [...groups]) {
          if (!x.group.dead) continue;
          for (const box of x.boxes) while (box.tryReceive() !== null && !box.finished);
          x.group.release();
          groups.splice(groups.indexOf(x), 1);
        }
        while (own.length > 20) t.release(own.shift()!);
        while (monitors.length > 30) t.demonitor(monitors.shift()!);
        setOp('idle');
      }
    }
    setOp('idle');
    // The end: let go of everything, leave the office as found.
    const finish = await next();
    if (finish.kind !== 'finish') throw new Error('expected finish');
    t.close(); // lets go of every mailbox, handle and group
    office.detach();
    port.postMessage({ kind: 'done', ops } satisfies DeathToMain);
  } catch (error) {
    port.postMessage({
      kind: 'error',
      message: error instanceof Error ? (error.stack ?? error.message) : String(error),
    } satisfies DeathToMain);
  }
}
