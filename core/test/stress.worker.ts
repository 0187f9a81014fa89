/**
 * Worker side of the multi-worker tests (concurrency.test.ts). Attaches the
 * post office from workerData, runs one named scenario, reports its result
 * with postMessage, and detaches. Failures are reported, not thrown, so the
 * main thread can show what went wrong.
 */

import { parentPort, workerData } from 'node:worker_threads';
import { type Mailbox, type OwnedCapability, Perm, PostOffice } from '../index.ts';
import { makePayload, rng } from './stress-shared.ts';

const port = parentPort!;
const office = PostOffice.attach(workerData.buffer as SharedArrayBuffer);

/** Messages from the main thread, in order. */
const inbox: unknown[] = [];
let waiter: ((value: unknown) => void) | null = null;
port.on('message', (message) => {
  if (waiter !== null) {
    const w = waiter;
    waiter = null;
    w(message);
  } else inbox.push(message);
});
function fromMain(): Promise<unknown> {
  if (inbox.length > 0) return Promise.resolve(inbox.shift());
  return new Promise((resolve) => {
    waiter = resolve;
  });
}

function spin(iterations: number): void {
  let x = 0;
  for (let i = 0; i < iterations; i++) x += i;
  if (x === -1) console.log(x);
}

/** Many producers to one mailbox: sequenced, checksummed messages, some carrying a capability. */
async function producer(args: {
  target: OwnedCapability;
  extra: OwnedCapability;
  id: number;
  count: number;
  size?: number;
}) {
  const t = office.createTable();
  const to = t.importOwned(args.target);
  const extra = t.importOwned(args.extra);
  for (let seq = 0; seq < args.count; seq++) {
    const data = makePayload(args.id, seq, args.size);
    const caps = seq % 7 === 0 ? [extra] : undefined;
    if (!t.send(to, data, caps)) await t.sendWhenRoom(to, data, caps);
  }
  t.close();
  return { sent: args.count };
}

/** Sends as fast as it can into each round's mailbox while another worker kills it. */
function racingSender(args: { targets: OwnedCapability[]; control: SharedArrayBuffer; count: number }) {
  const control = new Int32Array(args.control);
  const t = office.createTable();
  const targets = args.targets.map((o) => t.importOwned(o));
  for (let round = 0; round < targets.length; round++) {
    Atomics.wait(control, 0, round); // round word: the main thread bumps it to start a round
    const to = targets[round]!;
    for (let seq = 0; seq < args.count; ) {
      if (t.send(to, makePayload(1, seq))) seq++;
    }
    Atomics.add(control, 1, 1); // this worker is done with the round
    Atomics.notify(control, 1);
  }
  t.close();
  return {};
}

function racingKiller(args: { targets: OwnedCapability[]; control: SharedArrayBuffer; seed: number }) {
  const control = new Int32Array(args.control);
  const random = rng(args.seed);
  const t = office.createTable();
  const targets = args.targets.map((o) => t.importOwned(o));
  for (let round = 0; round < targets.length; round++) {
    Atomics.wait(control, 0, round);
    spin(Math.floor(random() * 200_000));
    t.kill(targets[round]!);
    Atomics.store(control, 2, round + 1); // published after kill() returned: "the kill is observed"
    Atomics.add(control, 1, 1);
    Atomics.notify(control, 1);
  }
  t.close();
  return {};
}

/**
 * Creates a group, sends a KILL capability to it to the killer worker, and
 * creates mailboxes in it until it sees the group dead: then every one of
 * them must be closed (none came up live in a dead group).
 */
async function creator(args: { killer: OwnedCapability; rounds: number; maxPerRound: number }) {
  const t = office.createTable();
  const toKiller = t.importOwned(args.killer);
  let live = 0;
  let created = 0;
  for (let round = 0; round < args.rounds; round++) {
    const g = t.createGroup();
    const first = g.createMailbox({ capacity: 64 });
    const kill = first.export(Perm.KILL);
    while (!t.send(toKiller, new Uint8Array(1), [kill]))
      await t.sendWhenRoom(toKiller, new Uint8Array(1), [kill]);
    t.release(kill);
    const boxes: Mailbox[] = [first];
    while (!g.dead) {
      if (boxes.length < args.maxPerRound) {
        boxes.push(g.createMailbox({ capacity: 64 }));
        created++;
      }
    }
    for (const mb of boxes) {
      const closed = mb.closed;
      const end = mb.tryReceive();
      if (!closed || end?.kind !== 'end' || end.reason !== 'killed') {
        live++;
      }
      mb.close();
    }
    g.release();
  }
  t.send(toKiller, new Uint8Array(0)); // stop
  t.close();
  return { live, created };
}

function killer(args: { seed: number }) {
  const random = rng(args.seed);
  const t = office.createTable();
  const g = t.createGroup();
  const inbox = g.createMailbox();
  port.postMessage({ owned: t.toOwned(inbox.export(Perm.SEND)) });
  let kills = 0;
  for (;;) {
    const signal = inbox.receiveSync();
    if (signal?.kind !== 'message') break;
    if (signal.caps.length === 0) break;
    spin(Math.floor(random() * 20_000));
    t.kill(signal.caps[0]!);
    t.release(signal.caps[0]!);
    kills++;
  }
  t.close();
  return { kills };
}

/**
 * Random kill/link/unlink/monitor/demonitor/create/send operations on the
 * shared target groups and this worker's own groups. Afterwards (once the
 * main thread has killed every target) checks that each monitor that was
 * not removed produced exactly one down, and each removed one none.
 */
async function storm(args: {
  targets: OwnedCapability[];
  seed: number;
  ops: number;
  start: SharedArrayBuffer;
}) {
  const random = rng(args.seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const t = office.createTable();
  const targets = args.targets.map((o) => t.importOwned(o));
  const watch = t.createGroup().createMailbox({ capacity: 256 });
  type Own = { group: ReturnType<typeof t.createGroup>; boxes: Mailbox[] };
  const own: Own[] = [];
  const fresh = (): Own => {
    const group = t.createGroup();
    return { group, boxes: [group.createMailbox({ capacity: 64 })] };
  };
  for (let i = 0; i < 4; i++) own.push(fresh());
  const monitors = new Map<number, { removed: boolean; downs: number }>();
  const links: number[] = [];
  const problems: string[] = [];
  const done = { linked: 0, unlinked: 0, demonitored: 0, kills: 0, replaced: 0 };
  const drainWatch = () => {
    for (let s = watch.tryReceive(); s !== null; s = watch.tryReceive()) {
      if (s.kind !== 'down') {
        problems.push(`watch mailbox got ${s.kind}`);
        continue;
      }
      const m = monitors.get(s.monitor);
      if (m === undefined) problems.push(`down for unknown monitor ${s.monitor}`);
      else m.downs++;
      t.release(s.route);
    }
  };
  // Start together, so a late starter does not find every target dead already.
  const start = new Int32Array(args.start);
  Atomics.add(start, 0, 1);
  Atomics.notify(start, 0);
  while (Atomics.load(start, 1) === 0) Atomics.wait(start, 1, 0, 50);
  for (let op = 0; op < args.ops; op++) {
    const roll = random();
    const mine = pick(own);
    if (mine.group.dead) {
      for (const mb of mine.boxes) mb.close();
      mine.group.release();
      own[own.indexOf(mine)] = fresh();
      done.replaced++;
      continue;
    }
    if (roll < 0.25) {
      const id = t.link(pick(targets), mine.group);
      if (id !== 0) {
        links.push(id);
        done.linked++;
      }
    } else if (roll < 0.4) {
      if (links.length > 0 && t.unlink(links.splice(Math.floor(random() * links.length), 1)[0]!)) {
        done.unlinked++;
      }
    } else if (roll < 0.6) {
      monitors.set(t.monitor(pick(targets), watch), { removed: false, downs: 0 });
    } else if (roll < 0.72) {
      const live = [...monitors].filter(([, m]) => !m.removed && m.downs === 0);
      if (live.length > 0) {
        const [id, m] = pick(live);
        if (t.demonitor(id)) {
          m.removed = true;
          done.demonitored++;
        }
      }
    } else if (roll < 0.73) {
      // A few kills per worker, in the second half: the targets live long enough to be linked.
      if (op > args.ops / 2 && done.kills < 2) {
        t.kill(pick(targets));
        done.kills++;
      }
    } else if (roll < 0.86) {
      mine.boxes.push(mine.group.createMailbox({ capacity: 64 }));
      if (mine.boxes.length > 3) mine.boxes.shift()!.close();
    } else {
      t.send(pick(targets), new Uint8Array(8));
    }
    if (op % 64 === 0) drainWatch();
  }
  drainWatch();
  port.postMessage({ phase: 'ops-done' });
  await fromMain(); // the main thread has killed every target: every monitor has fired
  drainWatch();
  for (const [id, m] of monitors) {
    if (m.removed && m.downs !== 0) problems.push(`removed monitor ${id} got ${m.downs} downs`);
    if (!m.removed && m.downs !== 1) problems.push(`monitor ${id} got ${m.downs} downs`);
  }
  const ownDead = own.filter((o) => o.group.dead).length;
  t.close();
  return { problems, monitors: monitors.size, ownDead, ...done };
}

/**
 * Kills one end of a linked chain while another worker kills the other end,
 * then checks at once, black-box, that every route of the chain is closed:
 * monitoring a closed route yields its down immediately, an open one would
 * not.
 */
function chainKiller(args: {
  rounds: { kill: OwnedCapability; watch: OwnedCapability[] }[];
  control: SharedArrayBuffer;
}) {
  const control = new Int32Array(args.control);
  const t = office.createTable();
  const watch = t.createGroup().createMailbox({ capacity: 1 << 14 });
  const problems: string[] = [];
  for (let round = 0; round < args.rounds.length; round++) {
    const { kill, watch: tokens } = args.rounds[round]!;
    const killer = t.importOwned(kill);
    const caps = tokens.map((o) => t.importOwned(o));
    Atomics.wait(control, 0, round);
    t.kill(killer);
    for (const c of caps) t.monitor(c, watch);
    let downs = 0;
    for (let s = watch.tryReceive(); s !== null; s = watch.tryReceive()) {
      if (s.kind === 'down' && s.reason === 'killed') downs++;
      if (s.kind === 'down') t.release(s.route);
    }
    if (downs !== caps.length)
      problems.push(`round ${round}: ${downs} of ${caps.length} routes closed after kill`);
    for (const c of [killer, ...caps]) t.release(c);
    Atomics.add(control, 1, 1);
    Atomics.notify(control, 1);
  }
  t.close();
  return { problems };
}

/**
 * Sends for ever (with a capability now and then) until the main thread
 * terminates this worker, most likely in the middle of a send.
 */
function blaster(args: { target: OwnedCapability; extra: OwnedCapability }) {
  const t = office.createTable();
  const to = t.importOwned(args.target);
  const extra = t.importOwned(args.extra);
  port.postMessage({ thread: office.thread });
  for (let seq = 0; ; ) {
    if (t.send(to, makePayload(9, seq), seq % 5 === 0 ? [extra] : undefined)) {
      seq++;
      if (seq === 200) port.postMessage({ phase: 'sending' });
    }
  }
}

const scenarios: Record<string, (args: never) => unknown> = {
  blaster,
  chainKiller,
  producer,
  racingSender,
  racingKiller,
  creator,
  killer,
  storm,
};

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
