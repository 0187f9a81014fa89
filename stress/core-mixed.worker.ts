/**
 * One worker of the core-mixed stress scenario (core-scenarios.ts). It
 * attaches the post office, owns one table (plus an auxiliary one whose
 * handles serve as other-table faults), a home group with a home mailbox
 * and a probe mailbox, and a changing set of other groups and mailboxes.
 * Until the main thread raises the stop word it performs seeded random
 * operations: send (with and without capabilities), receive, export,
 * demote, release, monitor, demonitor, link, unlink, kill, close, and
 * creation and death of groups and mailboxes, with faults mixed in.
 *
 * The home mailbox is the one stable address: peers get SEND on it at the
 * start, nobody ever gets KILL or LINK on it, and the home group is never
 * linked, so it stays open to the end and every message accepted for it
 * must arrive. Every other capability reaches peers in messages, so routes
 * owned here are sent to, monitored, linked and killed by other workers.
 *
 * What is checked here, as it happens (a violation throws, naming the
 * invariant): message bodies whole and addressed to the mailbox they
 * arrived in; per-sender sequence numbers gap-free (FIFO, no loss while
 * open, no duplicate); nothing delivered after the receiver saw its route
 * closed or after a kill that returned before the send started;
 * received capabilities carry exactly the permissions described, demote
 * never widens, downs carry none; a monitor gets at most one down, never
 * after a successful demonitor; after a group's kill() returns, every group
 * of the linked closure known here is dead, and after a kill through a
 * capability its route is closed; a group read dead has every route closed
 * and takes no live new one; a link refused for a dead partner killed the
 * caller; every injected fault throws its typed error and
 * changes nothing; the table holds exactly the handles this worker thinks
 * it holds. What needs every worker's view (exactly once per open route,
 * exactly one down, down reasons, links at the end) is reported to the
 * main thread once all workers have stopped.
 */

import { parentPort, workerData } from 'node:worker_threads';
import {
  CapacityExceeded,
  type Group,
  InvalidHandle,
  type Mailbox,
  MessageTooLarge,
  type OwnedCapability,
  Perm,
  PermissionDenied,
  PostOffice,
  type PostOfficeError,
  type Reason,
  type Signal,
  type Table,
  TableMismatch,
  WriteTimeout,
} from '../core/index.ts';
import { Prng } from '../ring/test/records.ts';
import {
  CTRL_ABORT,
  CTRL_DONE,
  CTRL_STOP,
  type Fate,
  type FromMain,
  flagIndex,
  key,
  keyOwner,
  keySerial,
  MAILBOX_SERIAL_LIMIT,
  showKey,
  type ToMain,
  type WorkerInit,
  type WorkerReport,
} from './core-mixed-shared.ts';

class Violation extends Error {}

function violation(invariant: string, detail: string): never {
  throw new Violation(`${invariant}: ${detail}`);
}

const init = workerData as WorkerInit;
const port = parentPort!;
const me = init.worker;
const prng = new Prng(init.seed);
const control = new Int32Array(init.control);

const inbox: FromMain[] = [];
let waiter: ((m: FromMain) => void) | null = null;
port.on('message', (m: FromMain) => {
  if (waiter !== null) {
    const w = waiter;
    waiter = null;
    w(m);
  } else inbox.push(m);
});
function fromMain(): Promise<FromMain> {
  if (inbox.length > 0) return Promise.resolve(inbox.shift()!);
  return new Promise((resolve) => {
    waiter = resolve;
  });
}
function post(m: ToMain): void {
  port.postMessage(m);
}

// ---------------------------------------------------------------- message bodies
//
// A message body, u32 little-endian words:
//   0 MAGIC   1 sender worker   2 destination owner   3 destination mailbox serial
//   4 sequence number (per sender and destination)    5 flags (FLAG_*)
//   6 capability count n        7 body length         8 checksum (FNV-1a of every other byte)
//   9-10 a handle number of the sender's table, float64 (another table's handle, for the receiver's faults)
//   then n descriptors of 4 words (owner, group serial, mailbox serial, permissions),
//   then filler bytes derived from (sender, sequence).

const MAGIC = 0x4d495844; // 'MIXD'
const HEADER_WORDS = 11;
const DESCRIPTOR_WORDS = 4;
/** Sent after the sender read the destination group's killed flag: must never be delivered. */
const FLAG_AFTER_KILL = 1;
/** A send expected to throw: must never be delivered. */
const FLAG_FAULT = 2;

interface Ident {
  owner: number;
  group: number;
  mailbox: number;
}

function fnv(bytes: Uint8Array, offset: number, length: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < length; i++) {
    if (i >= 32 && i < 36) continue; // the checksum word itself
    hash = Math.imul(hash ^ bytes[offset + i]!, 0x01000193);
  }
  return hash >>> 0;
}

function encode(
  dest: Ident,
  seq: number,
  flags: number,
  caps: { id: Ident; perms: number }[],
  length: number,
  handleHint: number,
): Uint8Array {
  const body = new Uint8Array(length);
  const view = new DataView(body.buffer);
  const words = [MAGIC, me, dest.owner, dest.mailbox, seq, flags, caps.length, length, 0];
  for (let k = 0; k < words.length; k++) view.setUint32(4 * k, words[k]!, true);
  view.setFloat64(36, handleHint, true);
  let at = 4 * HEADER_WORDS;
  for (const c of caps) {
    view.setUint32(at, c.id.owner, true);
    view.setUint32(at + 4, c.id.group, true);
    view.setUint32(at + 8, c.id.mailbox, true);
    view.setUint32(at + 12, c.perms, true);
    at += 4 * DESCRIPTOR_WORDS;
  }
  let x = (Math.imul(me + 1, 0x9e3779b1) ^ Math.imul(seq + 1, 0x85ebca6b)) | 0;
  for (; at < length; at++) {
    x = (Math.imul(x ^ (x >>> 13), 0x5bd1e995) + at) | 0;
    body[at] = x >>> 24;
  }
  view.setUint32(32, fnv(body, 0, length), true);
  return body;
}

function minLength(caps: number): number {
  return 4 * (HEADER_WORDS + DESCRIPTOR_WORDS * caps);
}

interface Decoded {
  sender: number;
  destOwner: number;
  destMailbox: number;
  seq: number;
  flags: number;
  caps: { id: Ident; perms: number }[];
  handleHint: number;
}

function decode(bytes: Uint8Array, offset: number, length: number, where: string): Decoded {
  if (length < minLength(0)) violation('whole', `${where}: body of ${length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, length);
  const word = (k: number) => view.getUint32(4 * k, true);
  if (word(0) !== MAGIC) violation('whole', `${where}: bad magic ${word(0)}`);
  if (word(7) !== length) violation('whole', `${where}: length ${length}, body says ${word(7)}`);
  const n = word(6);
  if (length < minLength(n)) violation('whole', `${where}: ${n} descriptors in ${length} bytes`);
  const sum = fnv(bytes, offset, length);
  if (sum !== word(8)) {
    violation('whole', `${where}: checksum ${sum} != ${word(8)} (sender ${word(1)} seq ${word(4)})`);
  }
  const caps: { id: Ident; perms: number }[] = [];
  for (let k = 0; k < n; k++) {
    const at = HEADER_WORDS + DESCRIPTOR_WORDS * k;
    caps.push({ id: { owner: word(at), group: word(at + 1), mailbox: word(at + 2) }, perms: word(at + 3) });
  }
  return {
    sender: word(1),
    destOwner: word(2),
    destMailbox: word(3),
    seq: word(4),
    flags: word(5),
    caps,
    handleHint: view.getFloat64(36, true),
  };
}

// ---------------------------------------------------------------- state

interface HandleInfo {
  id: Ident;
  perms: number;
  /** Peers' home SEND handles: kept to the end, they are the only sure way to reach a peer. */
  pinned: boolean;
  /** Position in handleList. */
  at: number;
}

interface OwnGroup {
  serial: number;
  group: Group;
  mailboxes: OwnMailbox[];
  home: boolean;
  /** This worker read `dead` true (or killed it and checked). */
  dead: boolean;
  released: boolean;
}

interface OwnMailbox {
  serial: number;
  group: OwnGroup;
  mb: Mailbox;
  /** The route was seen closed (mailbox.closed, or the group dead): no message may follow. */
  closedSeen: boolean;
  /** Set once the end is known (received, or after close()). */
  fate: Reason | null;
  /** This worker called close() on it. */
  closedByMe: boolean;
  /** Next expected sequence number per sender. */
  next: Map<number, number>;
}

interface MonitorInfo {
  watched: Ident;
  watcher: OwnMailbox;
  downs: number;
  reason: Reason | null;
  demonitored: boolean;
}

const office = PostOffice.attach(init.buffer);
const maxMessageBytes = office.stats().capacity.maxMessageBytes;
const t: Table = office.createTable();
const aux: Table = office.createTable();
const auxMailbox = aux.createGroup().createMailbox({ capacity: 256 });
const auxHandle = auxMailbox.export(Perm.ALL);

const counts: Record<string, number> = {};
let faults = 0;
const count = (kind: string, n = 1) => {
  counts[kind] = (counts[kind] ?? 0) + n;
};

const handles = new Map<number, HandleInfo>();
/** The keys of `handles`, for picking one at random without a scan. */
const handleList: number[] = [];
const released: number[] = [];
const foreignHandles: number[] = [];
const groups: OwnGroup[] = [];
const allGroups: OwnGroup[] = [];
const allMailboxes: OwnMailbox[] = [];
const monitors = new Map<number, MonitorInfo>();
/** The keys of `monitors`, for picking one at random without a scan. */
const monitorList: number[] = [];
let lastDemonitored = 0;
/** Probe monitors whose down may still come (demonitor lost the race with the close). */
const lateProbes = new Set<number>();
/**
 * Links made here and not unlinked: id -> (own group, partner group key).
 *
 * A link is a relation between two groups, not owned by whoever made it:
 * linking a linked pair again returns the id of the existing link (either
 * end), and that id unlinks it. So that "gone" can only mean "a side died",
 * a pair of two workers' groups is linked only by the higher-numbered
 * worker, and unlinking a pair of our own groups forgets every id of it.
 */
const links = new Map<number, { own: OwnGroup; partner: number }>();
/** Destination mailbox key -> next sequence number (= messages accepted so far). */
const sent = new Map<number, number>();
let groupSerial = 0;
let mailboxSerial = 0;
let lastReleasedGroup: Group | null = null;
const usedTokens: OwnedCapability[] = [];
/** One body too large for any send: the oversize fault. */
const oversize = new Uint8Array(maxMessageBytes + 1);

const MAX_GROUPS = 6;
const MAX_MAILBOXES_PER_GROUP = 3;
const MAX_HANDLES = 160;
const CAPACITIES = [512, 1024, 4096, 16384];

const mailboxKey = (id: Ident) => key(id.owner, id.mailbox);
const groupKey = (id: Ident) => key(id.owner, id.group);
const ownIdent = (m: OwnMailbox): Ident => ({ owner: me, group: m.group.serial, mailbox: m.serial });

function pick<T>(items: readonly T[]): T | undefined {
  return items.length === 0 ? undefined : items[prng.int(0, items.length - 1)];
}

function newGroup(home: boolean): OwnGroup {
  const g: OwnGroup = {
    serial: groupSerial++,
    group: t.createGroup(),
    mailboxes: [],
    home,
    dead: false,
    released: false,
  };
  groups.push(g);
  allGroups.push(g);
  return g;
}

function newMailbox(g: OwnGroup, capacity: number): OwnMailbox {
  const m: OwnMailbox = {
    serial: mailboxSerial++,
    group: g,
    mb: g.group.createMailbox({ capacity }),
    closedSeen: false,
    fate: null,
    closedByMe: false,
    next: new Map(),
  };
  g.mailboxes.push(m);
  allMailboxes.push(m);
  return m;
}

const home = newGroup(true);
const homeBox = newMailbox(home, 16384);
/** Receives the downs of closure probes only. */
const probeBox = newMailbox(home, 4096);

/**
 * Permissions for a capability to the home mailbox: never KILL or LINK (it
 * must stay open to the end), and MONITOR seldom, since monitors of a route
 * that never closes never fire.
 */
function homePerms(): number {
  return prng.int(0, 7) === 0 ? Perm.SEND | Perm.MONITOR : Perm.SEND;
}

function addHandle(h: number, id: Ident, perms: number, pinned = false): void {
  if (handles.has(h)) violation('accounting', `handle ${h} handed out twice`);
  handles.set(h, { id, perms, pinned, at: handleList.length });
  handleList.push(h);
}

function dropHandle(h: number): void {
  t.release(h);
  const { at } = handles.get(h)!;
  const last = handleList.pop()!;
  if (last !== h) {
    handleList[at] = last;
    handles.get(last)!.at = at;
  }
  handles.delete(h);
  released.push(h);
  if (released.length > 32) released.shift();
}

/**
 * A random handle carrying `perm`, or undefined. With `preferOpen`, one whose
 * route is not known to be closed is preferred (most kills, links and
 * monitors of dead routes teach nothing new).
 */
function pickHandle(
  perm: number,
  preferOpen: boolean,
  accept?: (info: HandleInfo) => boolean,
  onlyOpen = false,
): number | undefined {
  let fallback: number | undefined;
  for (let tries = 0; tries < 16 && handleList.length > 0; tries++) {
    const h = handleList[prng.int(0, handleList.length - 1)]!;
    const info = handles.get(h)!;
    if ((info.perms & perm) !== perm || (accept !== undefined && !accept(info))) continue;
    if (!preferOpen || Atomics.load(control, flagIndex(info.id.owner, info.id.mailbox)) === 0) return h;
    fallback ??= h;
  }
  return onlyOpen ? undefined : fallback;
}

function checkAccounting(): void {
  if (t.size !== handles.size) {
    violation('accounting', `table holds ${t.size} handles, this worker knows of ${handles.size}`);
  }
}

/** Reads a group's death; once dead, every route of it must read closed. */
function observeDead(g: OwnGroup): boolean {
  if (g.released) return true;
  if (!g.group.dead) return false;
  g.dead = true;
  for (const m of g.mailboxes) {
    if (!m.mb.closed) violation('closure', `group ${me}.${g.serial} dead but mailbox ${m.serial} open`);
    markClosed(m);
  }
  return true;
}

/** Our route is closed (and seen to be): no message may be delivered from now on, nor sent after this. */
function markClosed(m: OwnMailbox): void {
  m.closedSeen = true;
  Atomics.store(control, flagIndex(me, m.serial), 1);
}

function openMailboxes(): OwnMailbox[] {
  const out: OwnMailbox[] = [];
  for (const g of groups) for (const m of g.mailboxes) if (m.fate === null && m !== probeBox) out.push(m);
  return out;
}

// ---------------------------------------------------------------- receiving

function receiveFrom(m: OwnMailbox, max: number): number {
  let n = 0;
  while (n < max && m.fate === null) {
    if (prng.int(0, 4) === 0 && m.mb.closed) markClosed(m);
    const inPlace = prng.int(0, 2) === 0;
    if (inPlace) {
      const s = m.mb.tryReceiveInPlace();
      if (s === null) break;
      if (s.kind === 'message') onMessage(m, s.bytes, s.offset, s.length, [...s.caps]);
      else if (s.kind === 'down') onDown(m, s.route, s.reason, s.monitor);
      else onEnd(m, s.reason);
    } else {
      const s = m.mb.tryReceive();
      if (s === null) break;
      onSignal(m, s);
    }
    n++;
  }
  return n;
}

function onSignal(m: OwnMailbox, s: Signal): void {
  if (s.kind === 'message') onMessage(m, s.data, 0, s.data.length, s.caps);
  else if (s.kind === 'down') onDown(m, s.route, s.reason, s.monitor);
  else onEnd(m, s.reason);
}

function onMessage(m: OwnMailbox, bytes: Uint8Array, offset: number, length: number, caps: number[]): void {
  const where = `mailbox ${me}.${m.serial}`;
  const d = decode(bytes, offset, length, where);
  // The caps are in our table now, whatever else is wrong: account for them first.
  if (caps.length !== d.caps.length) {
    violation('whole', `${where}: ${caps.length} capabilities arrived, the body describes ${d.caps.length}`);
  }
  for (let k = 0; k < caps.length; k++) {
    const h = caps[k]!;
    const desc = d.caps[k]!;
    addHandle(h, desc.id, desc.perms);
    const perms = t.permissions(h);
    if (perms !== desc.perms) {
      violation('permissions', `${where}: capability sent with ${desc.perms} arrived with ${perms}`);
    }
    checkSameRoute(h, desc.id);
  }
  count('delivered');
  if (caps.length > 0) count('capsReceived', caps.length);
  if (d.destOwner !== me || d.destMailbox !== m.serial) {
    violation('whole', `${where}: got a message for ${d.destOwner}.${d.destMailbox} from ${d.sender}`);
  }
  if ((d.flags & FLAG_FAULT) !== 0) {
    violation('fault', `${where}: a send that threw was delivered (sender ${d.sender} seq ${d.seq})`);
  }
  if ((d.flags & FLAG_AFTER_KILL) !== 0) {
    violation(
      'after-kill',
      `${where}: delivered a message sent after kill() of group ${me}.${m.group.serial} returned (sender ${d.sender} seq ${d.seq})`,
    );
  }
  if (m.closedSeen) {
    violation('after-close', `${where}: delivered a message after the route was seen closed`);
  }
  const expected = m.next.get(d.sender) ?? 0;
  if (d.seq !== expected) {
    const what = d.seq < expected ? 'duplicate or reordered' : 'lost';
    violation('fifo', `${where}: sender ${d.sender} seq ${d.seq}, expected ${expected} (${what})`);
  }
  m.next.set(d.sender, expected + 1);
  if (foreignHandles.length < 16 && d.sender !== me) foreignHandles.push(d.handleHint);
  else if (d.sender !== me) foreignHandles[prng.int(0, 15)] = d.handleHint;
}

/** If another handle of ours names the same identity, sameRoute must say so; one of another identity must not. */
function checkSameRoute(h: number, id: Ident): void {
  if (prng.int(0, 3) !== 0) return;
  for (const [other, info] of handles) {
    if (other === h) continue;
    const same = info.id.owner === id.owner && info.id.mailbox === id.mailbox;
    if (t.sameRoute(h, other) !== same) {
      violation(
        'permissions',
        `sameRoute(${showKey(mailboxKey(id))}, ${showKey(mailboxKey(info.id))}) is ${!same}`,
      );
    }
    if (prng.int(0, 1) === 0) return;
  }
}

function onDown(m: OwnMailbox, route: number, reason: Reason, id: number): void {
  const perms = t.permissions(route);
  if (perms !== Perm.NONE) violation('permissions', `a down's route handle carries permissions ${perms}`);
  t.release(route);
  if (m === probeBox) {
    if (!lateProbes.delete(id)) violation('monitor', `probe mailbox got a down for unknown monitor ${id}`);
    return;
  }
  const info = monitors.get(id);
  if (info === undefined)
    violation('monitor', `mailbox ${me}.${m.serial} got a down for unknown monitor ${id}`);
  if (info.watcher !== m) {
    violation('monitor', `down of monitor ${id} came to mailbox ${m.serial}, not ${info.watcher.serial}`);
  }
  if (info.demonitored) violation('monitor', `down for monitor ${id} after demonitor returned true`);
  info.downs++;
  if (info.downs > 1)
    violation('monitor', `monitor ${id} of ${showKey(mailboxKey(info.watched))} got 2 downs`);
  info.reason = reason;
  count('downs');
}

function onEnd(m: OwnMailbox, reason: Reason): void {
  if (!m.closedByMe && reason !== 'killed') {
    violation('closure', `mailbox ${me}.${m.serial} nobody closed ended with reason ${reason}`);
  }
  m.fate = reason;
  markClosed(m);
  if (reason === 'killed') awaitDeath(m.group);
  count('ends');
  // The end is reported for ever, and nothing else.
  const again = m.mb.tryReceive();
  if (again?.kind !== 'end' || again.reason !== reason) {
    violation('after-close', `mailbox ${me}.${m.serial} after its end returned ${again?.kind ?? 'null'}`);
  }
}

// ---------------------------------------------------------------- probes and closures

/**
 * A route closed with reason killed belongs to a group some kill is taking
 * down: that kill closes the members first and publishes the death right
 * after, under the group's lock, so the death must show within moments.
 */
function awaitDeath(g: OwnGroup): void {
  const deadline = performance.now() + 2000;
  while (!observeDead(g)) {
    if (performance.now() > deadline) {
      violation('closure', `a route of group ${me}.${g.serial} was killed but the group never died`);
    }
  }
}

/** Whether h's route is closed: monitoring a closed route yields its down at once. */
function probeClosed(h: number): boolean {
  const id = t.monitor(h, probeBox.mb);
  count('probes');
  lateProbes.add(id);
  let found = false;
  for (let s = probeBox.mb.tryReceive(); s !== null; s = probeBox.mb.tryReceive()) {
    if (s.kind !== 'down') violation('monitor', `probe mailbox got ${s.kind}`);
    if (s.monitor === id) found = true;
    onDown(probeBox, s.route, s.reason, s.monitor);
  }
  if (!found && t.demonitor(id)) {
    lateProbes.delete(id);
    return false;
  }
  // ...closed (if demonitor lost, it closed between the two: its down is on its way).
  const { owner, mailbox } = handles.get(h)!.id;
  Atomics.store(control, flagIndex(owner, mailbox), 1);
  return true;
}

/**
 * After kill() of group `start` returned: every group linked to it through
 * the links made here, transitively, must be dead. Links made elsewhere are
 * not known here, so this checks a subset of the closure; each link is
 * either still there or was dropped because a side died (and took the other
 * with it): groups are released only once dead, so none is freed alive.
 */
function checkClosure(start: number): void {
  const seen = new Set<number>([start]);
  const work = [start];
  while (work.length > 0) {
    const g = work.pop()!;
    for (const { own, partner } of links.values()) {
      const ownKey = key(me, own.serial);
      const other = ownKey === g ? partner : partner === g ? ownKey : -1;
      if (other >= 0 && !seen.has(other)) {
        seen.add(other);
        work.push(other);
      }
    }
  }
  for (const gk of seen) {
    if (keyOwner(gk) === me) {
      const g = allGroups[keySerial(gk)]!;
      if (!observeDead(g))
        violation('closure', `after kill of ${showKey(start)}, linked group ${showKey(gk)} alive`);
      continue;
    }
    let probed = 0;
    for (const [h, info] of handles) {
      if (groupKey(info.id) !== gk || (info.perms & Perm.MONITOR) === 0) continue;
      if (!probeClosed(h)) {
        violation(
          'closure',
          `after kill of ${showKey(start)}, route ${showKey(mailboxKey(info.id))} of linked group ${showKey(gk)} open`,
        );
      }
      if (++probed === 2) break;
    }
  }
  count('closureChecks');
}

// ---------------------------------------------------------------- operations

async function opSend(withCaps: boolean): Promise<void> {
  const h = pickHandle(Perm.SEND, prng.int(0, 1) === 0);
  if (h === undefined) return;
  const info = handles.get(h)!;
  const dest = mailboxKey(info.id);
  const seq = sent.get(dest) ?? 0;
  // Read before the send starts: set means the route was closed (a kill of it returned) before.
  const afterKill = Atomics.load(control, flagIndex(info.id.owner, info.id.mailbox)) !== 0;
  const caps: number[] = [];
  const descs: { id: Ident; perms: number }[] = [];
  const temps: number[] = [];
  if (withCaps) {
    const n = prng.int(1, 3);
    for (let k = 0; k < n; k++) {
      const own = pick(openMailboxes());
      if (own !== undefined && prng.int(0, 1) === 0) {
        // Nobody else gets KILL or LINK on the home mailbox: it must stay open to the end.
        const perms = own.group.home ? homePerms() : prng.int(0, 15);
        const c = own.mb.export(perms);
        addHandle(c, ownIdent(own), perms);
        temps.push(c);
        caps.push(c);
        descs.push({ id: ownIdent(own), perms });
      } else {
        const c = pickHandle(Perm.NONE, false);
        if (c === undefined) continue;
        caps.push(c);
        descs.push({ id: handles.get(c)!.id, perms: handles.get(c)!.perms });
      }
    }
  }
  const large = prng.int(0, 49) === 0;
  const base = minLength(descs.length);
  const length = large ? prng.int(base, Math.min(maxMessageBytes, 20000)) : prng.int(base, base + 160);
  const body = encode(info.id, seq, afterKill ? FLAG_AFTER_KILL : 0, descs, length, h);
  let accepted = false;
  try {
    if (prng.int(0, 19) === 0) {
      try {
        await t.sendWhenRoom(h, body, caps, { timeoutMs: prng.int(1, 5) });
        accepted = true;
        count('sendWhenRoom');
      } catch (error) {
        if (!(error instanceof WriteTimeout)) throw error;
        count('sendTimeouts');
      }
    } else {
      accepted = t.send(h, body, caps);
    }
  } catch (error) {
    // Out-of-line bodies wait in the heap until received: a slow receiver can fill it.
    if (!(error instanceof CapacityExceeded)) throw error;
    count(`${error.region}Full`);
  }
  if (accepted) {
    sent.set(dest, seq + 1);
    count(caps.length > 0 ? 'sendCaps' : 'send');
    if (afterKill) count('sendAfterKill');
    if (large) count('sendLarge');
  } else count('full');
  for (const c of temps) dropHandle(c);
}

function opReceive(): void {
  // The home mailbox gets most of the traffic: drain it most often.
  const m = prng.int(0, 2) === 0 ? homeBox : pick(openMailboxes());
  if (m === undefined) return;
  if (receiveFrom(m, 32) > 0) count('receive');
}

function opExport(): void {
  const m = pick(openMailboxes());
  if (m === undefined || handles.size >= MAX_HANDLES) return;
  const perms = m.group.home ? homePerms() : prng.int(0, 15);
  const h = m.mb.export(perms);
  addHandle(h, ownIdent(m), perms);
  if (t.permissions(h) !== perms) violation('permissions', `export with ${perms} gave ${t.permissions(h)}`);
  count('export');
}

function opDemote(): void {
  const h = pickHandle(Perm.NONE, false);
  if (h === undefined || handles.size >= MAX_HANDLES) return;
  const info = handles.get(h)!;
  // Mostly a subset (a new handle), sometimes anything (mostly refused).
  const perms = prng.int(0, 3) === 0 ? prng.int(0, 15) : info.perms & prng.int(0, 15);
  if ((perms & ~info.perms) !== 0) {
    const size = t.size;
    try {
      t.demote(h, perms);
    } catch (error) {
      if (!(error instanceof PermissionDenied)) throw error;
      if (t.size !== size) violation('permissions', 'a refused demote changed the table');
      count('demoteRefused');
      return;
    }
    violation('permissions', `demote of ${info.perms} to ${perms} was allowed`);
  }
  const d = t.demote(h, perms);
  addHandle(d, info.id, perms);
  if (t.permissions(d) !== perms) violation('permissions', `demote to ${perms} gave ${t.permissions(d)}`);
  if (!t.sameRoute(h, d)) violation('permissions', 'demote changed the route');
  count('demote');
}

function opRelease(): void {
  const h = pickHandle(Perm.NONE, false, (info) => !info.pinned);
  if (h === undefined) return;
  dropHandle(h);
  count('release');
}

function opMonitor(): void {
  const h = pickHandle(Perm.MONITOR, true);
  if (h === undefined) return;
  const watcher = prng.int(0, 1) === 0 ? homeBox : pick(openMailboxes());
  if (watcher === undefined || watcher.fate !== null) return;
  const id = t.monitor(h, watcher.mb);
  if (monitors.has(id)) violation('monitor', `monitor id ${id} issued twice`);
  monitors.set(id, { watched: handles.get(h)!.id, watcher, downs: 0, reason: null, demonitored: false });
  monitorList.push(id);
  count('monitor');
}

function opDemonitor(): void {
  // Recent monitors mostly (most old ones have fired or been removed), any now and then.
  const from = prng.int(0, 3) === 0 ? 0 : Math.max(0, monitorList.length - 64);
  const id = monitorList.length === 0 ? undefined : monitorList[prng.int(from, monitorList.length - 1)];
  if (id === undefined) return;
  const info = monitors.get(id)!;
  const removed = t.demonitor(id);
  if (removed && (info.downs > 0 || info.demonitored)) {
    violation(
      'monitor',
      `demonitor returned true for a monitor that ${info.downs > 0 ? 'fired' : 'was removed'}`,
    );
  }
  if (removed) {
    info.demonitored = true;
    lastDemonitored = id;
    count('demonitor');
  } else count('demonitorLate');
}

function ownGroups(): OwnGroup[] {
  return groups.filter((g) => !g.home && !g.released);
}

function opLink(): void {
  // Mostly to routes not known closed: a refused link kills our group, and too many
  // refusals would leave groups no time to be linked at all.
  const h = pickHandle(Perm.LINK, true, (info) => info.id.owner <= me, prng.int(0, 4) !== 0);
  // Now and then from a group seen dead: the link must kill the partner instead.
  const g = pick(prng.int(0, 4) === 0 ? ownGroups() : ownGroups().filter((x) => !observeDead(x)));
  if (h === undefined || g === undefined) return;
  const partner = groupKey(handles.get(h)!.id);
  const ownKey = key(me, g.serial);
  const id = t.link(h, g.group);
  if (partner === ownKey) {
    if (id !== 0) violation('closure', 'linking a group with itself made a link');
    return;
  }
  if (id !== 0) {
    const known = links.get(id);
    if (known !== undefined && (known.own !== g || known.partner !== partner)) {
      violation('closure', `link id ${id} returned for two different pairs`);
    }
    links.set(id, { own: g, partner });
    count('link');
    return;
  }
  // No link: a side was dead (or the route closed), and then the caller's group is killed.
  if (!observeDead(g))
    violation('closure', `link to ${showKey(partner)} refused but group ${me}.${g.serial} alive`);
  count('linkRefused');
}

function opUnlink(): void {
  const id = pick([...links.keys()]);
  if (id === undefined) return;
  const { own } = links.get(id)!;
  const { partner } = links.get(id)!;
  for (const [other, link] of links) {
    const same = link.own === own && link.partner === partner;
    const reverse =
      keyOwner(partner) === me &&
      key(me, link.own.serial) === partner &&
      link.partner === key(me, own.serial);
    if (same || reverse) links.delete(other);
  }
  if (t.unlink(id)) {
    count('unlink');
    return;
  }
  // Nobody else can unlink it: it went because a side died, which killed the other.
  if (!own.released && !observeDead(own)) {
    violation('closure', `unlink of ${id} found no link but group ${me}.${own.serial} is alive`);
  }
  count('unlinkGone');
}

function opKill(): void {
  if (prng.int(0, 2) === 0) {
    const g = pick(ownGroups());
    if (g === undefined) return;
    g.group.kill();
    checkClosure(key(me, g.serial));
    count('killOwn');
    return;
  }
  const h = pickHandle(Perm.KILL, true);
  if (h === undefined) return;
  const id = handles.get(h)!.id;
  t.kill(h);
  // The route is closed now: by this kill, or before it (then the kill did nothing, and
  // the group may live on, if the route was closed by its owner, or be dying in another kill).
  Atomics.store(control, flagIndex(id.owner, id.mailbox), 1);
  for (const [other, info] of handles) {
    if (mailboxKey(info.id) !== mailboxKey(id) || (info.perms & Perm.MONITOR) === 0) continue;
    if (!probeClosed(other))
      violation('closure', `route ${showKey(mailboxKey(id))} open after kill() returned`);
    break;
  }
  count('kill');
}

function opClose(): void {
  const m = pick(openMailboxes().filter((x) => !x.group.home));
  if (m === undefined) return;
  m.closedByMe = true;
  m.mb.close();
  const s = m.mb.tryReceive();
  if (s?.kind !== 'end') violation('after-close', `close() then receive gave ${s?.kind ?? 'null'}`);
  onEnd(m, s.reason);
  count('close');
}

function opCreate(): void {
  if (mailboxSerial >= MAILBOX_SERIAL_LIMIT) return;
  if (prng.int(0, 1) === 0) {
    if (ownGroups().length >= MAX_GROUPS) return;
    const g = newGroup(false);
    newMailbox(g, pick(CAPACITIES)!);
    count('createGroup');
    return;
  }
  const g = pick(ownGroups());
  if (g === undefined || g.mailboxes.filter((m) => m.fate === null).length >= MAX_MAILBOXES_PER_GROUP) return;
  const wasDead = observeDead(g);
  const m = newMailbox(g, pick(CAPACITIES)!);
  // A route never comes up live in a group already seen dead.
  if (wasDead && !m.mb.closed) violation('closure', `mailbox created open in dead group ${me}.${g.serial}`);
  count('createMailbox');
}

/** Lets go of dead groups whose mailboxes have all ended, and of surplus handles. */
function opTidy(): void {
  for (const g of ownGroups()) {
    if (!observeDead(g)) continue;
    for (const m of g.mailboxes) if (m.fate === null) receiveFrom(m, 64);
    if (g.mailboxes.some((m) => m.fate === null)) continue;
    g.released = true;
    g.group.release();
    lastReleasedGroup = g.group;
    groups.splice(groups.indexOf(g), 1);
    count('releaseGroup');
  }
  if (ownGroups().length >= MAX_GROUPS) {
    const g = pick(ownGroups())!;
    g.group.kill();
    checkClosure(key(me, g.serial));
    count('killOwn');
  }
  while (handles.size > MAX_HANDLES) opRelease();
}

// ---------------------------------------------------------------- faults

/** Runs `f`, which must throw `type` and change nothing in the table. */
function expectThrow(
  what: string,
  types: (new (...args: never[]) => PostOfficeError)[],
  f: () => unknown,
): void {
  const size = t.size;
  try {
    f();
  } catch (error) {
    if (!types.some((type) => error instanceof type)) {
      violation(
        'fault',
        `${what} threw ${error instanceof Error ? `${error.name}: ${error.message}` : error}`,
      );
    }
    if (t.size !== size) violation('fault', `${what} threw but changed the table (${size} -> ${t.size})`);
    faults++;
    count('faults');
    return;
  }
  violation('fault', `${what} did not throw ${types.map((x) => x.name).join(' or ')}`);
}

function faultBody(dest: Ident): Uint8Array {
  return encode(dest, 0, FLAG_FAULT, [], minLength(0), 0);
}

function opFault(): void {
  const someHandle = pickHandle(Perm.NONE, false);
  const someInfo = someHandle === undefined ? undefined : handles.get(someHandle);
  const dest = someInfo?.id ?? { owner: me, group: 0, mailbox: 0 };
  const garbage = [Number.NaN, -1, 0, 1.5, prng.int(1, (1 << 22) - 1), 2 ** 60, Number.POSITIVE_INFINITY];
  switch (prng.int(0, 11)) {
    case 0: {
      const h = pick(released);
      if (h === undefined) return;
      expectThrow('send on a released handle', [InvalidHandle], () => t.send(h, faultBody(dest)));
      return;
    }
    case 1: {
      const h = pick(garbage)!;
      const op = prng.int(0, 4);
      expectThrow(`operation ${op} on garbage handle ${h}`, [InvalidHandle], () => {
        if (op === 0) t.send(h, faultBody(dest));
        else if (op === 1) t.kill(h);
        else if (op === 2) t.monitor(h, homeBox.mb);
        else if (op === 3) t.demote(h, 0);
        else t.release(h);
      });
      return;
    }
    case 2:
      expectThrow('send on another table’s handle', [TableMismatch], () =>
        t.send(auxHandle, faultBody(dest)),
      );
      return;
    case 3: {
      const h = pick(foreignHandles);
      if (h === undefined) return;
      expectThrow(`kill on another worker’s handle ${h}`, [InvalidHandle, TableMismatch], () => t.kill(h));
      return;
    }
    case 4: {
      const h = pickHandle(Perm.NONE, false, (i) => i.perms !== Perm.ALL);
      if (h === undefined) return;
      const info = handles.get(h)!;
      const missing = [Perm.SEND, Perm.MONITOR, Perm.KILL, Perm.LINK].filter((p) => (info.perms & p) === 0);
      const p = pick(missing)!;
      const g = pick(ownGroups()) ?? home;
      expectThrow(`operation needing ${p} without it`, [PermissionDenied], () => {
        if (p === Perm.SEND) t.send(h, faultBody(info.id));
        else if (p === Perm.MONITOR) t.monitor(h, homeBox.mb);
        else if (p === Perm.KILL) t.kill(h);
        else t.link(h, g.group);
      });
      return;
    }
    case 5: {
      const h = pickHandle(Perm.SEND, false);
      if (h === undefined) return;
      expectThrow('oversize send', [MessageTooLarge], () => t.send(h, oversize));
      return;
    }
    case 6: {
      const h = pickHandle(Perm.SEND, false);
      const bad = pick(released);
      if (h === undefined || bad === undefined) return;
      const caps = handleList.slice(0, 2);
      caps.splice(prng.int(0, caps.length), 0, bad);
      expectThrow('send with a released capability', [InvalidHandle], () =>
        t.send(h, faultBody(handles.get(h)!.id), caps),
      );
      return;
    }
    case 7: {
      const token = pick(usedTokens);
      if (token === undefined) return;
      expectThrow('import of a used owned capability', [InvalidHandle], () => t.importOwned(token));
      return;
    }
    case 8: {
      const g = lastReleasedGroup;
      if (g === null) return;
      expectThrow('mailbox in a released group', [InvalidHandle], () => g.createMailbox());
      return;
    }
    case 9: {
      const h = pickHandle(Perm.MONITOR, false);
      if (h === undefined) return;
      expectThrow('monitor into another table’s mailbox', [TableMismatch], () => t.monitor(h, auxMailbox));
      return;
    }
    case 10: {
      // Sending more capabilities than the smallest ring's record holds: refused whole.
      const h = pickHandle(Perm.SEND, false);
      const own = pick(openMailboxes().filter((m) => m.mb.maxRecordLength < 300 && !m.group.home));
      if (h === undefined || own === undefined) return;
      const target = own.mb.export(Perm.SEND);
      addHandle(target, ownIdent(own), Perm.SEND);
      const caps = Array.from({ length: Math.ceil(own.mb.maxRecordLength / 12) }, () => h);
      const size = t.size;
      try {
        // A route closed meanwhile swallows the send before looking at the record: no error then.
        if (t.send(target, faultBody(ownIdent(own)), caps) && !own.mb.closed) {
          violation('fault', 'a send with more capabilities than a record holds was accepted');
        }
      } catch (error) {
        if (!(error instanceof MessageTooLarge)) throw error;
        if (t.size !== size) violation('fault', 'a refused send changed the table');
        faults++;
        count('faults');
      }
      dropHandle(target);
      return;
    }
    default: {
      // Ids this table does not know: nothing happens.
      if (t.demonitor(lastDemonitored === 0 ? 12345.5 : lastDemonitored))
        violation('fault', 'demonitor of an unknown id returned true');
      if (t.unlink(prng.int(1, 1 << 30))) violation('fault', 'unlink of an unknown id returned true');
      faults++;
      count('faults');
    }
  }
}

// ---------------------------------------------------------------- the run

const OPS: [weight: number, op: () => void | Promise<void>][] = [
  [30, () => opSend(false)],
  [10, () => opSend(true)],
  [28, opReceive],
  [4, opExport],
  [4, opDemote],
  [4, opRelease],
  [5, opMonitor],
  [2, opDemonitor],
  [4, opLink],
  [1.5, opUnlink],
  [0.8, opKill],
  [1, opClose],
  [3, opCreate],
  [1, opTidy],
  [3, opFault],
];
const TOTAL_WEIGHT = OPS.reduce((s, [w]) => s + w, 0);

function chooseOp(): () => void | Promise<void> {
  let r = prng.float() * TOTAL_WEIGHT;
  for (const [w, op] of OPS) {
    r -= w;
    if (r < 0) return op;
  }
  return OPS[0]![1];
}

function finalDrain(): void {
  for (const g of groups) {
    observeDead(g);
    for (const m of g.mailboxes) while (m.fate === null && receiveFrom(m, 1 << 20) > 0);
  }
}

function report(): WorkerReport {
  const received: [number, number, number][] = [];
  const fates: [number, Fate][] = [];
  for (const m of allMailboxes) {
    if (m === probeBox) continue;
    for (const [sender, n] of m.next) received.push([key(me, m.serial), sender, n]);
    // Open at the end: the drain saw no end (it would have, had the route closed).
    fates.push([key(me, m.serial), m.fate ?? 'open']);
  }
  return {
    worker: me,
    counts,
    faults,
    sent: [...sent],
    received,
    fates,
    monitors: [...monitors.values()].map((m) => ({
      watched: mailboxKey(m.watched),
      downs: m.downs,
      reason: m.reason,
      demonitored: m.demonitored,
      watcherOpen: m.watcher.fate === null,
    })),
    groups: allGroups.map((g) => [key(me, g.serial), g.released || observeDead(g)]),
    links: [...links.values()].map(({ own, partner }) => [key(me, own.serial), partner]),
  };
}

function teardown(): void {
  for (const g of groups) for (const m of g.mailboxes) m.mb.close();
  for (const h of [...handles.keys()]) dropHandle(h);
  if (t.size !== 0) violation('accounting', `${t.size} handles left after releasing every known one`);
  for (const g of allGroups) if (!g.released) g.group.release();
  t.close();
  aux.close();
  office.detach();
}

async function main(): Promise<void> {
  // Bootstrap: a SEND token to the home mailbox for every peer, through the main thread.
  const tokens: (OwnedCapability | null)[] = [];
  for (let w = 0; w < init.workers; w++) {
    if (w === me) tokens.push(null);
    else {
      const h = homeBox.mb.export(Perm.SEND);
      tokens.push(t.toOwned(h));
      t.release(h);
    }
  }
  post({ kind: 'hello', tokens });
  const peers = await fromMain();
  if (peers.kind !== 'peers') throw new Error(`expected peers, got ${peers.kind}`);
  for (let w = 0; w < init.workers; w++) {
    const token = peers.tokens[w];
    if (w === me || token == null) continue;
    addHandle(t.importOwned(token), { owner: w, group: 0, mailbox: 0 }, Perm.SEND, true);
    usedTokens.push(token);
  }
  // A handle to our own home mailbox, to send to ourselves.
  addHandle(homeBox.mb.export(Perm.SEND), ownIdent(homeBox), Perm.SEND, true);

  let ops = 0;
  while (Atomics.load(control, CTRL_STOP) === 0) {
    await chooseOp()();
    if (++ops % 64 === 0) {
      checkAccounting();
      receiveFrom(homeBox, 256);
      if (Atomics.load(control, CTRL_ABORT) !== 0) return;
    }
  }
  count('ops', ops);
  // Quiescence: once every worker is past this point nobody sends, kills or links.
  Atomics.add(control, CTRL_DONE, 1);
  while (Atomics.load(control, CTRL_DONE) < init.workers) {
    if (Atomics.load(control, CTRL_ABORT) !== 0) return;
    Atomics.wait(control, CTRL_DONE, Atomics.load(control, CTRL_DONE), 50);
  }
  finalDrain();
  checkAccounting();
  post({ kind: 'report', report: report() });
  const next = await fromMain();
  if (next.kind !== 'teardown') throw new Error(`expected teardown, got ${next.kind}`);
  teardown();
  post({ kind: 'closed' });
}

try {
  await main();
} catch (error) {
  const message =
    error instanceof Violation
      ? `worker ${me}: ${error.message}`
      : `worker ${me}: unexpected ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`;
  post({ kind: 'violation', message });
}
port.close();
