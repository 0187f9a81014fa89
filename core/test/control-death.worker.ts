/**
 * Worker side of control-death.test.ts: a tight loop of random control
 * operations (kill, link, unlink, monitor, demonitor, createMailbox, close,
 * group release) on groups of its own and on groups shared with the main
 * thread and other workers. The doomed worker may park for good at a named
 * point inside a control operation (the Shared test hook), where the main
 * thread terminates it; a peer runs until told to stop, then must finish a
 * last round of operations on the shared groups.
 */

import { parentPort, workerData } from 'node:worker_threads';
import { type Group, type Mailbox, type OwnedCapability, Perm, PostOffice } from '../index.ts';
import type { Shared } from '../shared.ts';
import { rng } from './stress-shared.ts';

const port = parentPort!;
const office = PostOffice.attach(workerData.buffer as SharedArrayBuffer);
const shared = (office as unknown as { o: Shared }).o;

interface Args {
  /** LINK|MONITOR|KILL|SEND capabilities to a mailbox in each shared group. */
  shared: OwnedCapability[];
  seed: number;
  /** Park for good at the `hits`-th time this point is reached (null: never). */
  park: string | null;
  hits: number;
  /** [stop asked] */
  control: SharedArrayBuffer;
  /** Kill shared groups now and then (they are linked to ours anyway). */
  killShared: boolean;
}

function chaos(args: Args) {
  const random = rng(args.seed);
  const below = (n: number) => Math.floor(random() * n);
  const pick = <T>(xs: T[]): T => xs[below(xs.length)]!;
  const control = new Int32Array(args.control);
  const t = office.createTable();
  const sharedCaps = args.shared.map((c) => t.importOwned(c));
  if (args.park !== null) {
    let hits = 0;
    shared.hook = (point) => {
      if (point !== args.park || ++hits !== args.hits) return;
      port.postMessage({ parked: point, thread: office.thread });
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); // for good: terminated here
    };
  }
  const pool: Group[] = [];
  const boxes: Mailbox[] = [];
  const newGroup = () => {
    const g = t.createGroup();
    pool.push(g);
    const mb = g.createMailbox({ capacity: 256 });
    if (!mb.closed) boxes.push(mb);
  };
  for (let i = 0; i < 4; i++) newGroup();
  const links: number[] = [];
  const monitors: number[] = [];
  const live = () => boxes.filter((mb) => !mb.finished);
  port.postMessage({ phase: 'looping', thread: office.thread });
  let ops = 0;
  for (let i = 0; Atomics.load(control, 0) === 0; i++) {
    const r = below(13);
    const open = live();
    // A capability to a route of ours or of a shared group.
    const target = () =>
      random() < 0.5 || open.length === 0
        ? { h: pick(sharedCaps), own: false }
        : { h: pick(open).export(Perm.ALL), own: true };
    const drop = (x: { h: number; own: boolean }) => {
      if (x.own) t.release(x.h);
    };
    if (r === 0 && pool.length < 8) newGroup();
    else if (r === 1 && pool.length > 0 && boxes.length < 24) {
      const mb = pick(pool).createMailbox({ capacity: 256 });
      if (!mb.closed) boxes.push(mb);
    } else if (r === 2 && pool.length > 0) pick(pool).kill({ code: 1 + below(50) });
    else if (r === 3 && args.killShared && random() < 0.2) t.kill(pick(sharedCaps), { code: 77 });
    else if (r === 4 && pool.length > 2) pool.splice(below(pool.length), 1)[0]!.release();
    else if (r === 5 && open.length > 0) pick(open).close();
    else if ((r === 6 || r === 7) && pool.length > 0 && links.length < 16) {
      const x = target();
      const id = t.link(x.h, pick(pool));
      if (id !== 0) links.push(id);
      drop(x);
    } else if (r === 8 && links.length > 0) t.unlink(links.splice(below(links.length), 1)[0]!);
    else if ((r === 9 || r === 10) && open.length > 0 && monitors.length < 24) {
      const x = target();
      monitors.push(t.monitor(x.h, pick(open)));
      drop(x);
    } else if (r === 11 && monitors.length > 0) t.demonitor(monitors.splice(below(monitors.length), 1)[0]!);
    else if (open.length > 0) {
      const mb = pick(open);
      for (let s = mb.tryReceive(); s !== null && s.kind !== 'end'; s = mb.tryReceive()) {
        if (s.kind === 'down') t.release(s.route);
        if (s.kind === 'message') for (const c of s.caps) t.release(c);
      }
    }
    ops++;
    if (i % 64 === 0 && pool.length === 0) newGroup();
  }
  // A last round on the shared groups: none of it may wedge.
  const g = t.createGroup();
  const mb = g.createMailbox();
  for (const h of sharedCaps) {
    t.link(h, g);
    t.monitor(h, mb);
  }
  t.close();
  return { ops };
}

try {
  const result = chaos(workerData.args as Args);
  office.detach();
  port.postMessage({ result });
} catch (error) {
  port.postMessage({
    error: error instanceof Error ? `${error.name}: ${error.message}\n${error.stack}` : String(error),
  });
}
port.close();
