/**
 * The journal of the runtime-mixed scenario: one SharedArrayBuffer, apart
 * from the post office under test, where every process of a round writes
 * what it did, so the main thread can check the invariants across processes
 * that have died (their own memory died with them) and across scheduler
 * workers that crashed.
 *
 * It reaches the scheduler workers as worker environment data
 * (`setEnvironmentData`), which every worker started afterwards gets a
 * clone of; a SharedArrayBuffer clones as the same memory. So a worker the
 * runtime starts to replace a crashed one sees it too, and nothing of the
 * runtime carries it.
 *
 * Writers: every process (any thread), each writing only its own words
 * (its state, its side of a pair) or appending with one atomic add. The
 * main thread reads it; it alone writes the control words.
 *
 * Layout (Int32 word indexes):
 *   [0, 48)      control words (W_*)
 *   [48, 64)     known-defect counters, one per DEFECTS entry
 *   [64, 192)    operation counters, one per KINDS entry (Atomics.add)
 *   STATE        one word per process id: S_* (written by the process)
 *   WORKER       one word per process id: scheduler worker index + 1
 *   PAIRS        open-addressing table, PAIR_SLOTS x 3 words:
 *                key (sender * 2^16 + receiver + 1, 0 = free; claimed by CAS),
 *                accepted (written by the sender), delivered (by the receiver)
 *   LOG          LOG_EVENTS x 5 words: type, actor, a, b, c (slot by Atomics.add on W_LOG)
 *   TEXT         the first violation's text, UTF-16 code units, TEXT_UNITS long
 */

/** The worker environment-data key the journal travels under. */
export const JOURNAL_KEY = 'postern-stress-runtime-journal';

/** Control words. */
export const W_STOP = 0; // main: 1 = stop the random operations (quiesce)
export const W_END = 1; // main: 1 = every process returns
export const W_NEXT_ID = 2; // next process id (ids start at 1; 0 is the host)
export const W_NEXT_TOKEN = 3; // next reason token (tokens start at 1)
export const W_LOG = 4; // next log slot
export const W_POPULATION = 5; // main: processes registered and not known dead
export const W_VIOLATIONS = 6; // violations found by processes
export const W_TEXT = 7; // 0 free, 1 taken: the first violation's text
export const W_LOST = 8; // journal entries that did not fit (log or pair table full)
export const W_CAP = 9; // main: population cap
export const W_NO_CRASH = 10; // main: 1 = crash faults must not fire any more
export const W_TEXT_LENGTH = 11;
export const W_STRICT = 12; // main: 1 = a known (filed) defect counts as a violation

/**
 * Known defects: bugs the harness found in components owned by others,
 * written down (with the seed, the replay command and a suggested fix) in
 * /tmp/runtime-bugs.txt or /tmp/core-bugs.txt, each with a regression test
 * (test/stress-*.test.ts). Until fixed, a reproduction is counted here and
 * shown in the report, not counted as a violation (unless --strict).
 */
// Every runtime defect found so far is fixed (runtime-bugs.txt S1-S8: their regression tests are
// plain tests now, and a reappearance is a violation). This is where the next open one goes.
export const DEFECTS: readonly string[] = [];
export type Defect = string;

export const KINDS = [
  'send',
  'sendRefs',
  'sendLarge',
  'full',
  'sendWhenRoom',
  'sendTimeout',
  'delivered',
  'refsReceived',
  'receive',
  'selective',
  'request',
  'replied',
  'deferred',
  'requestTimeout',
  'restrict',
  'restrictRefused',
  'drop',
  'monitor',
  'demonitor',
  'demonitorLate',
  'down',
  'link',
  'linkRefused',
  'unlink',
  'unlinkGone',
  'kill',
  'exit',
  'throw',
  'return',
  'trap',
  'exitReceived',
  'spawn',
  'spawnLink',
  'spawnMonitor',
  'spawnFailed',
  'crashExit',
  'crashThrow',
  'crashOom',
  'faults',
  'ops',
] as const;
export type Kind = (typeof KINDS)[number];

const COUNTERS = 64;
const DEFECT_COUNTERS = 48;
export const MAX_IDS = 1 << 14;
const STATE = COUNTERS + 128;
const WORKER = STATE + MAX_IDS;
export const PAIR_SLOTS = 1 << 17;
const PAIRS = WORKER + MAX_IDS;
export const LOG_EVENTS = 1 << 18;
const EVENT_WORDS = 5;
const LOG = PAIRS + 3 * PAIR_SLOTS;
const TEXT_UNITS = 2048;
const TEXT = LOG + EVENT_WORDS * LOG_EVENTS;
const WORDS = TEXT + TEXT_UNITS / 2;

/** Process states. */
export const S_NONE = 0;
export const S_RUNNING = 1;
/** Stopped its random operations: from now on it only receives and answers. */
export const S_QUIET = 2;

/** Log event types: [type, actor, a, b, c]. */
export const EV_SPAWN = 1; // actor spawned child a; b = flags (SPAWN_LINK | SPAWN_MONITOR), c = monitor serial
export const EV_LINK = 2; // actor linked to a (actor < a)
export const EV_UNLINK = 3; // actor unlinked from a (unlink returned true)
export const EV_MONITOR = 4; // actor monitors a; b = the actor's monitor serial
export const EV_DEMONITOR = 5; // actor's monitor b removed (demonitor returned true)
export const EV_DOWN = 6; // actor got the down of monitor b; c = reason token
export const EV_KILL = 7; // actor kills a with reason token c
export const EV_EXIT = 8; // actor ends itself with reason token c (b: 1 exit, 2 throw, 3 return)
export const EV_CRASH = 9; // actor crashes its worker a; c = the token of the reason the worker's processes get
export const EV_TRAP = 10; // actor traps exits (a = 1) or stops (a = 0)
export const EV_EXIT_RECEIVED = 11; // actor got an exit with reason token c; a = sender id if known, else 0
export const EV_DEATH = 12; // main: the host's monitor saw actor die with reason token c

export const SPAWN_LINK = 1;
export const SPAWN_MONITOR = 2;

/**
 * Reason tokens. Every reason a process ends or kills with names a token,
 * so a down, an exit message and a death can be matched to what caused
 * them. Positive: issued from W_NEXT_TOKEN. Negative: the runtime's own.
 */
export const TOKEN_NORMAL = -1;
export const TOKEN_KILLED = -2;
export const TOKEN_CLOSED = -3;
export const TOKEN_SHUTDOWN = -4;
export const TOKEN_UNKNOWN = -9;
/** A worker's process.exit(code): -(CRASH_EXIT_BASE + 256 * worker index + code). */
const CRASH_EXIT_BASE = 1000;
/** A worker that ran out of memory: -(CRASH_OOM_BASE + worker index), -1 when the index is not known. */
const CRASH_OOM_BASE = 900_000;

export function crashExitToken(workerIndex: number, code: number): number {
  return -(CRASH_EXIT_BASE + 256 * workerIndex + code);
}

export function crashOomToken(workerIndex: number): number {
  return -(CRASH_OOM_BASE + workerIndex);
}

/** The token an exit reason names (see the reasons the fixture processes use). */
export function reasonToken(reason: unknown): number {
  if (reason === 'normal') return TOKEN_NORMAL;
  if (reason === 'killed') return TOKEN_KILLED;
  if (reason === 'closed') return TOKEN_CLOSED;
  if (reason === 'shutdown') return TOKEN_SHUTDOWN;
  if (reason === null || typeof reason !== 'object') return TOKEN_UNKNOWN;
  const r = reason as { stress?: unknown; kind?: unknown; message?: unknown; detail?: unknown };
  if (typeof r.stress === 'number') return r.stress;
  if (r.kind === 'error' && typeof r.message === 'string') {
    const m = /^stress:(\d+)$/.exec(r.message);
    return m === null ? TOKEN_UNKNOWN : Number(m[1]);
  }
  if (r.kind === 'worker-crashed' && typeof r.detail === 'string') {
    const thrown = /stress:(\d+)/.exec(r.detail);
    if (thrown !== null) return Number(thrown[1]);
    const exited = /worker (\d+) exited with code (\d+)/.exec(r.detail);
    if (exited !== null) return crashExitToken(Number(exited[1]), Number(exited[2]));
    if (/memory/i.test(r.detail)) return crashOomToken(-1);
  }
  return TOKEN_UNKNOWN;
}

export function showToken(token: number): string {
  if (token > 0) return `token ${token}`;
  if (token === TOKEN_NORMAL) return "'normal'";
  if (token === TOKEN_KILLED) return "'killed'";
  if (token === TOKEN_CLOSED) return "'closed'";
  if (token === TOKEN_SHUTDOWN) return "'shutdown'";
  if (token === TOKEN_UNKNOWN) return 'an unrecognised reason';
  if (token <= -CRASH_OOM_BASE) return `out of memory on worker ${-token - CRASH_OOM_BASE}`;
  const c = -token - CRASH_EXIT_BASE;
  return `exit code ${c & 255} of worker ${c >> 8}`;
}

export interface LogEvent {
  type: number;
  actor: number;
  a: number;
  b: number;
  c: number;
}

export class Journal {
  readonly i32: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.i32 = new Int32Array(buffer);
  }

  static bytes(): number {
    return WORDS * 4;
  }

  /** Zeroes everything (main thread, between rounds, while no process runs). */
  reset(strict: boolean): void {
    this.i32.fill(0);
    this.i32[W_STRICT] = strict ? 1 : 0;
    this.i32[W_NEXT_ID] = 1;
    this.i32[W_NEXT_TOKEN] = 1;
  }

  word(w: number): number {
    return Atomics.load(this.i32, w);
  }

  set(w: number, v: number): void {
    Atomics.store(this.i32, w, v);
  }

  /** A fresh process id, or 0 when the round has used them all. */
  newId(): number {
    const id = Atomics.add(this.i32, W_NEXT_ID, 1);
    return id < MAX_IDS ? id : 0;
  }

  newToken(): number {
    return Atomics.add(this.i32, W_NEXT_TOKEN, 1);
  }

  count(kind: Kind, n = 1): void {
    Atomics.add(this.i32, COUNTERS + KINDS.indexOf(kind), n);
  }

  /** A known defect reproduced: a violation under --strict, else counted. */
  defect(name: Defect, text: string): void {
    if (Atomics.load(this.i32, W_STRICT) !== 0) this.violation(`known defect ${name}: ${text}`);
    else Atomics.add(this.i32, DEFECT_COUNTERS + DEFECTS.indexOf(name), 1);
  }

  defects(): Record<string, number> {
    const out: Record<string, number> = {};
    DEFECTS.forEach((d, i) => {
      const v = Atomics.load(this.i32, DEFECT_COUNTERS + i);
      if (v !== 0) out[d] = v;
    });
    return out;
  }

  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    KINDS.forEach((k, i) => {
      const v = Atomics.load(this.i32, COUNTERS + i);
      if (v !== 0) out[k] = v;
    });
    return out;
  }

  state(id: number): number {
    return Atomics.load(this.i32, STATE + id);
  }

  setState(id: number, s: number): void {
    Atomics.store(this.i32, STATE + id, s);
  }

  /** The scheduler worker index the process ran on, or -1. */
  workerOf(id: number): number {
    return Atomics.load(this.i32, WORKER + id) - 1;
  }

  setWorker(id: number, index: number): void {
    Atomics.store(this.i32, WORKER + id, index + 1);
  }

  /** Whether the log is close enough to full that processes should stop logged operations. */
  get nearlyFull(): boolean {
    return Atomics.load(this.i32, W_LOG) > LOG_EVENTS - 4096;
  }

  log(type: number, actor: number, a = 0, b = 0, c = 0): void {
    const slot = Atomics.add(this.i32, W_LOG, 1);
    if (slot >= LOG_EVENTS) {
      Atomics.add(this.i32, W_LOST, 1);
      return;
    }
    const w = LOG + EVENT_WORDS * slot;
    this.i32[w + 1] = actor;
    this.i32[w + 2] = a;
    this.i32[w + 3] = b;
    this.i32[w + 4] = c;
    Atomics.store(this.i32, w, type); // publishes the event: readers skip a slot whose type is still 0
  }

  /** Every published event, in slot order (which is program order per actor). */
  events(): LogEvent[] {
    const n = Math.min(Atomics.load(this.i32, W_LOG), LOG_EVENTS);
    const out: LogEvent[] = [];
    for (let slot = 0; slot < n; slot++) {
      const w = LOG + EVENT_WORDS * slot;
      const type = Atomics.load(this.i32, w);
      if (type === 0) continue;
      out.push({
        type,
        actor: this.i32[w + 1]!,
        a: this.i32[w + 2]!,
        b: this.i32[w + 3]!,
        c: this.i32[w + 4]!,
      });
    }
    return out;
  }

  /** Word index of pair (sender, receiver)'s slot, claiming it if new; -1 when the table is full. */
  private pair(sender: number, receiver: number): number {
    const key = sender * 0x10000 + receiver + 1;
    let slot = (Math.imul(key, 0x9e3779b1) >>> 0) % PAIR_SLOTS;
    for (let probe = 0; probe < 64; probe++) {
      const w = PAIRS + 3 * slot;
      const k = Atomics.load(this.i32, w);
      if (k === key) return w;
      if (k === 0) {
        const was = Atomics.compareExchange(this.i32, w, 0, key);
        if (was === 0 || was === key) return w;
      }
      slot = (slot + 1) % PAIR_SLOTS;
    }
    Atomics.add(this.i32, W_LOST, 1);
    return -1;
  }

  /** The sender's count of messages to `receiver` that were accepted (send returned true). */
  setAccepted(sender: number, receiver: number, n: number): void {
    const w = this.pair(sender, receiver);
    if (w >= 0) Atomics.store(this.i32, w + 1, n);
  }

  /** The receiver's count of messages from `sender` delivered to it. */
  setDelivered(sender: number, receiver: number, n: number): void {
    const w = this.pair(sender, receiver);
    if (w >= 0) Atomics.store(this.i32, w + 2, n);
  }

  /** Every pair: [sender, receiver, accepted, delivered]. */
  pairs(): [number, number, number, number][] {
    const out: [number, number, number, number][] = [];
    for (let slot = 0; slot < PAIR_SLOTS; slot++) {
      const w = PAIRS + 3 * slot;
      const k = Atomics.load(this.i32, w);
      if (k === 0) continue;
      out.push([
        Math.floor((k - 1) / 0x10000),
        (k - 1) % 0x10000,
        Atomics.load(this.i32, w + 1),
        Atomics.load(this.i32, w + 2),
      ]);
    }
    return out;
  }

  /** Records a violation found by a process; the first one's text is kept. */
  violation(text: string): void {
    if (Atomics.compareExchange(this.i32, W_TEXT, 0, 1) === 0) {
      const units = Math.min(text.length, TEXT_UNITS);
      const u16 = new Uint16Array(this.buffer, TEXT * 4, TEXT_UNITS);
      for (let k = 0; k < units; k++) u16[k] = text.charCodeAt(k);
      Atomics.store(this.i32, W_TEXT_LENGTH, units + 1); // publishes the text
    }
    Atomics.add(this.i32, W_VIOLATIONS, 1);
  }

  violations(): { count: number; first: string | null } {
    const count = Atomics.load(this.i32, W_VIOLATIONS);
    const units = Atomics.load(this.i32, W_TEXT_LENGTH) - 1;
    if (units < 0) return { count, first: count > 0 ? '(text not yet written)' : null };
    const u16 = new Uint16Array(this.buffer, TEXT * 4, units);
    return { count, first: String.fromCharCode(...u16) };
  }
}
