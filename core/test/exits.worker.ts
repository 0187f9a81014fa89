/**
 * Worker side of the multi-worker tests of exits.test.ts: trapped exits
 * under racing kills, a trapping receiver parked in its thread, and a thread
 * that dies holding groups and mailboxes. Attaches the post office from
 * workerData, runs one named scenario, reports its result with postMessage.
 */

import { parentPort, workerData } from 'node:worker_threads';
import {
  CapacityExceeded,
  type Group,
  type Mailbox,
  type OwnedCapability,
  Perm,
  PostOffice,
} from '../index.ts';
import { makePayload, rng } from './stress-shared.ts';

const port = parentPort!;
const office = PostOffice.attach(workerData.buffer as SharedArrayBuffer);

/**
 * Per round, links a group of its own to the given spoke of that round's
 * chain (every spoke linked to a trapping hub), then, racing another killer,
 * kills its group. Group.kill always walks (a kill through a route a racing
 * kill already closed would be a no-op), so right after it returns every
 * exit of the round must be queued: the hub receives only once both killers
 * are done.
 */
function spokeKiller(args: {
  rounds: { spoke: OwnedCapability; spokes: number }[];
  control: SharedArrayBuffer;
  id: number;
}) {
  const control = new Int32Array(args.control);
  const t = office.createTable();
  const mine = args.rounds.map(({ spoke, spokes }) => {
    const g = t.createGroup();
    const h = t.importOwned(spoke);
    t.link(h, g);
    t.release(h);
    return { g, spokes };
  });
  const problems: string[] = [];
  for (let round = 0; round < mine.length; round++) {
    Atomics.wait(control, 0, round); // round word: the main thread bumps it to start a round
    const { g, spokes } = mine[round]!;
    g.kill({ code: args.id, detail: Uint8Array.of(args.id, round) });
    const pending = office.stats().pendingExits;
    if (pending !== spokes) problems.push(`round ${round}: ${pending} exits queued when kill returned`);
    Atomics.add(control, 1, 1); // this worker is done with the round
    Atomics.notify(control, 1);
  }
  t.close();
  return { problems };
}

/** Traps exits into a mailbox, hands out a LINK capability to it, and parks in receiveSync until an exit comes. */
function trapWaiter() {
  const t = office.createTable();
  const g = t.createGroup();
  const mb = g.createMailbox();
  g.trapExits(mb);
  port.postMessage({ link: t.toOwned(mb.export(Perm.LINK)) });
  const s = mb.receiveSync(30_000);
  const result = {
    kind: s?.kind ?? 'timeout',
    code: s?.kind === 'exit' ? s.code : -1,
    detail: s?.kind === 'exit' && s.detail !== null ? [...s.detail] : null,
    from: s?.kind === 'exit' ? s.from !== 0 : false,
    alive: !g.dead,
  };
  t.close();
  return result;
}

/**
 * A thread that dies owning things. It links a group of its own (w) to
 * main's group, lets main monitor w's first mailbox, then builds up state
 * worth reclaiming: groups (one trapping, one released), internal links, a
 * monitor of a main route, downs taken and not received, records queued
 * with capabilities and out of line, a record held in place. Then it loops:
 *   instant: only operations a thread may die in the middle of (plain sends,
 *            plain receives, copied or in place), until main terminates it
 *            at a random instant;
 *   between: random full operations (groups, mailboxes, kills, links,
 *            monitors, sends with capabilities and out of line, receives),
 *            parking for good between two of them once main asks, until
 *            main terminates it.
 * It never reports a result: it is terminated.
 */
function doomed(args: {
  mainLink: OwnedCapability;
  mainSend: OwnedCapability;
  mainMonitor: OwnedCapability;
  seed: number;
  mode: 'instant' | 'between';
  control: SharedArrayBuffer;
}) {
  const random = rng(args.seed);
  const below = (n: number) => Math.floor(random() * n);
  const pick = <T>(xs: T[]): T => xs[below(xs.length)]!;
  const control = new Int32Array(args.control); // [stop asked, parked, never set]
  const t = office.createTable();
  const w = t.createGroup();
  const wBox = w.createMailbox();
  const wSecond = w.createMailbox();
  t.link(t.importOwned(args.mainLink), w);
  t.monitor(t.importOwned(args.mainMonitor), wSecond);
  const mainSend = t.importOwned(args.mainSend);
  port.postMessage({ monitor: t.toOwned(wBox.export(Perm.MONITOR)), thread: office.thread });

  // A trapping group linked to w: kills of its other partners stop there.
  const trapper = t.createGroup();
  const trapBox = trapper.createMailbox();
  trapper.trapExits(trapBox);
  t.link(trapBox.export(Perm.LINK), w);
  const pool: Group[] = [];
  const boxes: Mailbox[] = [trapBox];
  const sendTo = new Map<Mailbox, number>([[trapBox, trapBox.export(Perm.SEND)]]);
  const newBox = (g: Group) => {
    const mb = g.createMailbox({ capacity: 512 });
    if (mb.closed) return; // ...born closed in a dead group
    boxes.push(mb);
    sendTo.set(mb, mb.export(Perm.SEND));
  };
  for (let i = 0; i < 4; i++) {
    const g = t.createGroup();
    pool.push(g);
    newBox(g);
  }
  t.link(boxes[1]!.export(Perm.LINK), trapper);
  t.link(boxes[2]!.export(Perm.LINK), pool[2]!);
  const released = t.createGroup();
  newBox(released);
  released.release();
  // Downs: one received, one taken but not received, from a group killed with a detail.
  const doomedToo = t.createGroup();
  const watched = doomedToo.createMailbox();
  t.monitor(watched.export(Perm.MONITOR), wSecond);
  t.monitor(doomedToo.createMailbox().export(Perm.MONITOR), wSecond);
  doomedToo.kill({ detail: Uint8Array.of(1, 2, 3) });
  wSecond.tryReceive();
  // Records with capabilities and out of line, never received; one held in place.
  const parked = t.createGroup().createMailbox({ capacity: 1024 });
  const toParked = parked.export(Perm.SEND);
  t.send(toParked, makePayload(1, 0), [wBox.export(Perm.SEND), toParked]);
  t.send(toParked, makePayload(1, 1, 4000), [mainSend]);
  t.send(toParked, makePayload(1, 2), [mainSend]);
  parked.tryReceiveInPlace();

  const stopIfAsked = () => {
    if (Atomics.load(control, 0) === 0) return;
    Atomics.store(control, 1, 1);
    Atomics.notify(control, 1);
    Atomics.wait(control, 2, 0); // for good: main terminates us here, between two operations
  };

  if (args.mode === 'instant') {
    // Plain traffic only, on mailboxes nothing else writes into.
    const loop = [
      t.createGroup().createMailbox({ capacity: 512 }),
      t.createGroup().createMailbox({ capacity: 512 }),
    ];
    const loopTo = loop.map((mb) => mb.export(Perm.SEND));
    for (let i = 0; ; i++) {
      if (i === 2000) port.postMessage({ phase: 'looping' });
      const k = below(2);
      const r = random();
      if (r < 0.4) t.send(loopTo[k]!, makePayload(2, i));
      else if (r < 0.5) t.send(mainSend, makePayload(2, i));
      else if (r < 0.75) loop[k]!.tryReceive();
      else loop[k]!.tryReceiveInPlace();
    }
  }

  const links: number[] = [];
  const monitors: number[] = [];
  const live = () => boxes.filter((mb) => !mb.finished);
  for (let i = 0; ; i++) {
    if (i === 200) port.postMessage({ phase: 'looping' });
    stopIfAsked();
    try {
      const r = below(14);
      const open = live();
      if (r === 0 && pool.length < 8) {
        const g = t.createGroup();
        pool.push(g);
        newBox(g);
      } else if (r === 1 && pool.length > 0 && boxes.length < 30) {
        newBox(pick(pool));
      } else if (r === 2 && pool.length > 0) {
        pick(pool).kill({ code: below(100), detail: random() < 0.5 ? Uint8Array.of(below(256)) : undefined });
      } else if (r === 3 && pool.length > 2) {
        pool.splice(below(pool.length), 1)[0]!.release();
      } else if (r === 4 && open.length > 1) {
        const mb = pick(open.slice(1)); // never the trap mailbox
        mb.close();
      } else if (r === 5 && pool.length > 0 && open.length > 0 && links.length < 20) {
        const cap = pick(open).export(Perm.LINK);
        const id = t.link(cap, pick(pool));
        if (id !== 0) links.push(id);
        t.release(cap);
      } else if (r === 6 && links.length > 0) {
        t.unlink(links.splice(below(links.length), 1)[0]!);
      } else if (r === 7 && open.length > 0 && monitors.length < 30) {
        const cap = pick(open).export(Perm.MONITOR);
        monitors.push(t.monitor(cap, pick(open)));
        t.release(cap);
      } else if (r === 8 && monitors.length > 0) {
        t.demonitor(monitors.splice(below(monitors.length), 1)[0]!);
      } else if (r <= 11 && boxes.length > 0) {
        const to = sendTo.get(pick(boxes))!;
        const size = random() < 0.1 ? 2000 : 48;
        t.send(to, makePayload(3, i, size), random() < 0.3 ? [pick([...sendTo.values()])] : undefined);
      } else if (open.length > 0) {
        const mb = pick(open);
        const s = random() < 0.5 ? mb.tryReceive() : mb.tryReceiveInPlace();
        if (s !== null && s.kind === 'message') for (const c of s.caps) t.release(c);
        if (s !== null && (s.kind === 'down' || s.kind === 'exit')) {
          const h = s.kind === 'down' ? s.route : s.from;
          if (h !== 0) t.release(h);
        }
      }
    } catch (error) {
      if (!(error instanceof CapacityExceeded)) throw error;
    }
  }
}

const scenarios: Record<string, (args: never) => unknown> = { doomed, spokeKiller, trapWaiter };

try {
  const run = scenarios[workerData.scenario as string];
  if (run === undefined) throw new Error(`no scenario ${workerData.scenario}`);
  const result = await run(workerData.args as never);
  office.detach();
  port.postMessage({ result });
} catch (error) {
  port.postMessage({
    error: error instanceof Error ? `${error.name}: ${error.message}\n${error.stack}` : String(error),
  });
}
// The message listener keeps this thread alive; closing the port lets it exit (posted messages still arrive).
port.close();
