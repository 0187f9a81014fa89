/**
 * The host side of the membrane, in the sandbox worker: the one function the
 * context may call (`call`), dispatching through one table keyed by
 * operation name to the sandboxed process's own `Process`, and the calls
 * back into the context that complete asynchronous operations and fire
 * timers.
 *
 * Roles and rules:
 * - `call` takes primitives only, checks each with a one-line test, and
 *   returns 'R' + wire text (the answer) or 'E' + JSON [name, message]; it
 *   never throws and never calls into the context (no re-entrancy).
 * - An asynchronous operation (receive, request, sendWhenRoom, spawn) is
 *   started under an id the context chose; `entry.deliver(id, ok, text)`
 *   settles it later from a host promise reaction.
 * - References and requests the sandbox holds are Refs and Requests of the
 *   process's table here, named in the context by ids from this Registry.
 *   `drop` releases one; the rest go when the process's table closes.
 * - Powers are checked here (the in-context checks are only for a clearer
 *   error).
 */

import type { Permission, SpawnOptions, Timer } from '../api.ts';
import { PowerDenied, ProcessEnded, RuntimeError, SendTimeout } from '../errors.ts';
import type { Process } from '../process.ts';
import { encodeReason, errorReason } from '../reasons.ts';
import type { Ref } from '../ref.ts';
import type { Request } from '../request.ts';
import type { SandboxLimits } from './control.ts';
import type { HostCall, RealmEntry } from './realm.ts';
import { fromWire, type Registry, toWire } from './wire.ts';

/** Context timers one sandbox may have pending at once. */
const MAX_TIMERS = 100_000;
/** Longest pause between two tries of a `sendWhenRoom` to a full mailbox, ms. */
const MAX_ROOM_POLL_MS = 20;
/** Longest `ctx.log` line, characters. */
const MAX_LOG_CHARS = 16_384;

/** What the membrane needs from the shim around it. */
export interface MembraneHost {
  /** The process function settled (or an uncaught exception): the process ends with `reason`. */
  end(reason: unknown): void;
  /** `ctx.log` (the log power). */
  log(text: string): void;
  /** Resolves a module URL the sandbox names for spawn (relative to its own module). */
  resolve(url: string): string;
}

class InvalidReference extends RuntimeError {
  override name = 'InvalidHandle';
}

type Op = (m: Membrane, a: unknown, b: unknown, c: unknown, d: unknown) => unknown;

export class Membrane implements Registry {
  entry: RealmEntry | null = null;
  private readonly refs = new Map<number, Ref>();
  private readonly refIds = new Map<Ref, number>();
  private readonly requests = new Map<number, Request>();
  private readonly sendTimers = new Map<number, Timer>();
  private readonly timers = new Map<number, ReturnType<typeof setTimeout>>();
  private nextId = 1;
  private closed = false;

  constructor(
    readonly process: Process,
    readonly limits: SandboxLimits,
    private readonly host: MembraneHost,
  ) {}

  /** The host function handed to the context. */
  readonly call: HostCall = (op, a, b, c, d) => {
    try {
      if (typeof op !== 'string' || !Object.hasOwn(OPS, op)) throw new TypeError('unknown sandbox operation');
      const result = (OPS[op] as Op)(this, a, b, c, d);
      return result === undefined ? 'R' : `R${toWire(result, this)}`;
    } catch (error) {
      return `E${errorText(error)}`;
    }
  };

  /** Stops every timer; nothing is delivered into the context afterwards. */
  close(): void {
    this.closed = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.sendTimers.clear();
  }

  // ---------------------------------------------------------------- Registry

  refId(ref: Ref): number {
    let id = this.refIds.get(ref);
    if (id === undefined) {
      id = this.nextId++;
      this.refIds.set(ref, id);
      this.refs.set(id, ref);
    }
    return id;
  }

  ref(id: unknown): Ref {
    const ref = typeof id === 'number' ? this.refs.get(id) : undefined;
    if (ref === undefined) throw new InvalidReference('this reference was dropped');
    return ref;
  }

  forgetRef(id: number): void {
    const ref = this.refs.get(id);
    if (ref === undefined) return;
    this.refs.delete(id);
    this.refIds.delete(ref);
  }

  requestId(request: Request): number {
    const id = this.nextId++;
    this.requests.set(id, request);
    return id;
  }

  request(id: unknown): Request {
    const request = typeof id === 'number' ? this.requests.get(id) : undefined;
    if (request === undefined) throw new InvalidReference('this request was answered already');
    return request;
  }

  forgetRequest(id: number): void {
    this.requests.delete(id);
  }

  // ---------------------------------------------------------------- into the context

  /** Settles the context's operation `id` with `promise`'s outcome. */
  settle(id: number, promise: Promise<unknown>): void {
    promise.then(
      (value) => {
        let text: string;
        try {
          text = value === undefined ? '' : toWire(value, this);
        } catch (error) {
          this.deliver(id, false, errorText(error));
          return;
        }
        this.deliver(id, true, text);
      },
      (error: unknown) => this.deliver(id, false, errorText(error)),
    );
  }

  private deliver(id: number, ok: boolean, payload: string): void {
    if (this.closed || this.entry === null) return;
    try {
      this.entry.deliver(id, ok, payload);
    } catch {
      // (the entry points catch everything; a stack overflow or termination is all that could get here)
    }
  }

  setTimer(id: number, ms: number): void {
    if (this.timers.size >= MAX_TIMERS && !this.timers.has(id)) throw new RangeError('too many timers');
    const old = this.timers.get(id);
    if (old !== undefined) clearTimeout(old);
    this.timers.set(
      id,
      setTimeout(() => {
        this.timers.delete(id);
        if (this.closed || this.entry === null) return;
        try {
          this.entry.fire(id);
        } catch {}
      }, ms),
    );
  }

  clearTimer(id: number): void {
    const timer = this.timers.get(id);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.timers.delete(id);
  }

  addSendTimer(timer: Timer): number {
    const id = this.nextId++;
    this.sendTimers.set(id, timer);
    return id;
  }

  cancelSendTimer(id: number): boolean {
    const timer = this.sendTimers.get(id);
    if (timer === undefined) return false;
    this.sendTimers.delete(id);
    return timer.cancel();
  }

  /**
   * `ctx.sendWhenRoom` for a full mailbox: tries again after 1, 2, 4... up to
   * 20 ms. Not the post office's own `sendWhenRoom`, which pins the target's
   * ring while it waits: a sandbox worker terminated meanwhile would keep
   * that pin for good (core does not reclaim a dead thread's pins), and the
   * ring would never be freed.
   */
  async sendWhenRoom(target: Ref, value: unknown, timeoutMs: number | undefined): Promise<void> {
    const deadline = timeoutMs === undefined ? Number.POSITIVE_INFINITY : performance.now() + timeoutMs;
    for (let pause = 1; ; pause = Math.min(pause * 2, MAX_ROOM_POLL_MS)) {
      const left = deadline - performance.now();
      if (left <= 0) throw new SendTimeout(timeoutMs as number);
      await new Promise((resolve) => setTimeout(resolve, Math.min(pause, left)));
      if (this.closed) throw new ProcessEnded('the process ended');
      if (this.process.send(target, value)) return;
    }
  }

  /** Ends the process with a reason from the context (checked: an unencodable one becomes an ErrorReason). */
  endWith(text: unknown): void {
    let reason: unknown;
    try {
      reason = fromWire(text, this);
      encodeReason(reason);
    } catch (error) {
      reason = errorReason(error);
    }
    this.host.end(reason);
  }

  log(text: string): void {
    this.host.log(text);
  }

  resolve(url: string): string {
    return this.host.resolve(url);
  }
}

// ---------------------------------------------------------------- the operations, one line of checks each

function id(x: unknown): number {
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0)
    throw new TypeError('malformed sandbox call');
  return x;
}

function text(x: unknown): string {
  if (typeof x !== 'string') throw new TypeError('malformed sandbox call');
  return x;
}

function flag(x: unknown): boolean {
  if (typeof x !== 'boolean') throw new TypeError('malformed sandbox call');
  return x;
}

function ms(x: unknown): number {
  if (typeof x !== 'number' || !(x >= -1)) throw new TypeError('malformed sandbox call');
  return x;
}

/** A timeout from the context: -1 is none. */
function timeout(x: unknown): number | undefined {
  const t = ms(x);
  return t === -1 ? undefined : t;
}

const OPS: Record<string, Op> = {
  send: (m, ref, value) => m.process.send(m.ref(ref), fromWire(value, m)),
  reply: (m, request, value) => {
    const r = m.request(request);
    const answer = fromWire(value, m);
    m.forgetRequest(id(request));
    return m.process.reply(r, answer);
  },
  link: (m, ref) => m.process.link(m.ref(ref)),
  unlink: (m, link) => m.process.unlink(id(link)),
  monitor: (m, ref) => m.process.monitor(m.ref(ref)),
  demonitor: (m, monitor) => m.process.demonitor(id(monitor)),
  kill: (m, ref, reason) => m.process.kill(m.ref(ref), text(reason) === '' ? undefined : fromWire(reason, m)),
  checkReason: (m, reason) => {
    encodeReason(fromWire(reason, m));
  },
  trapExits: (m, on) => m.process.trapExits(flag(on)),
  sendAfter: (m, ref, value, after) =>
    m.addSendTimer(m.process.sendAfter(m.ref(ref), fromWire(value, m), ms(after))),
  cancel: (m, timer) => m.cancelSendTimer(id(timer)),
  restrict: (m, ref, perms) => {
    const list = fromWire(perms, m);
    if (!Array.isArray(list)) throw new TypeError('restrict: perms must be an array');
    return m.process.restrict(m.ref(ref), list as Permission[]);
  },
  permissions: (m, ref) => m.process.permissions(m.ref(ref)),
  same: (m, a, b) => m.process.same(m.ref(a), m.ref(b)),
  drop: (m, ref) => {
    m.process.drop(m.ref(ref));
    m.forgetRef(id(ref));
  },
  log: (m, line) => {
    if (!m.limits.powers.log) throw powerDenied('log');
    const s = text(line);
    m.log(s.length > MAX_LOG_CHARS ? `${s.slice(0, MAX_LOG_CHARS)}…` : s);
  },
  timer: (m, timer, after) => m.setTimer(id(timer), ms(after)),
  untimer: (m, timer) => m.clearTimer(id(timer)),
  end: (m, reason) => m.endWith(reason),
  fail: (m, reason) => m.endWith(reason),

  // Asynchronous: the first argument is the context's operation id.
  receive: (m, op, after) => {
    const t = timeout(after);
    m.settle(id(op), m.process.receive(t === undefined ? {} : { timeout: t }));
  },
  request: (m, op, ref, value, after) => {
    const t = timeout(after);
    m.settle(
      id(op),
      m.process.request(m.ref(ref), fromWire(value, m), t === undefined ? {} : { timeout: t }),
    );
  },
  sendWhenRoom: (m, op, ref, value, after) => {
    const target = m.ref(ref);
    const v = fromWire(value, m);
    if (m.process.send(target, v)) m.settle(id(op), Promise.resolve());
    else m.settle(id(op), m.sendWhenRoom(target, v, timeout(after)));
  },
  spawn: (m, op, spec, link) => {
    if (!m.limits.powers.spawn) throw powerDenied('spawn');
    const s = fromWire(spec, m);
    if (!Array.isArray(s) || s.length !== 4 || typeof s[0] !== 'string' || typeof s[1] !== 'string') {
      throw new TypeError('malformed sandbox call');
    }
    const [url, exportName, args, capacity] = s as [string, string, unknown, unknown];
    if (!Array.isArray(args)) throw new TypeError('spawn: args must be an array');
    // A sandbox's children run in sandboxes with its own limits and powers.
    const options: SpawnOptions = { sandbox: m.limits };
    if (typeof capacity === 'number') options.mailboxCapacity = capacity;
    const resolved = m.resolve(url);
    m.settle(
      id(op),
      flag(link)
        ? m.process.spawnLink(resolved, exportName, args, options)
        : m.process.spawn(resolved, exportName, args, options),
    );
  },
};

function powerDenied(power: string): Error {
  return new PowerDenied(`this sandbox was not given the '${power}' power`);
}

/**
 * JSON [name, message] of a host error, for the context to rebuild as its
 * own. Table handles named in post office messages are left out: the
 * sandbox knows its references by the membrane's ids only.
 */
function errorText(error: unknown): string {
  if (error instanceof Error) {
    return JSON.stringify([
      String(error.name),
      String(error.message).replace(/\bhandle \d+/g, 'the reference'),
    ]);
  }
  return JSON.stringify(['Error', 'the operation failed']);
}
