/**
 * Supervisors (DESIGN.md section 5): a process that starts child processes,
 * watches them through links, and restarts them by a strategy, with Erlang/OTP
 * semantics; and `Supervisor`, the client that manages one.
 *
 * Roles. The supervisor traps exits and starts its children in spec order
 * with `spawnLink`, so every child's death reaches it as an ExitMessage and
 * its own death reaches every child. It is the only process that starts,
 * kills and restarts its children; clients ask it by request.
 *
 * Starting. A start is synchronous in OTP's sense: `startSupervisor`
 * resolves once every child has started, and a child of type 'supervisor'
 * (`supervisorChild`) is started the same way, so a supervisor goes on to
 * its next child only once the subtree before it is up. The handshake: the
 * starter passes `{ handshake: true }` as the supervisor's second argument
 * and sends it a `started` request, which the supervisor answers once its
 * children run (or with the failure, just before it exits with it).
 *
 * Restarts. When a child exits, its restart policy decides: 'permanent'
 * always restarts, 'transient' only after an abnormal exit (anything but
 * 'normal' and 'shutdown'), 'temporary' never (and its spec is forgotten).
 * The strategy decides what restarts with it:
 *   one-for-one   the child alone;
 *   one-for-all   every child: the others are killed (in reverse start
 *                 order, reason 'shutdown'), then all start again in order;
 *   rest-for-one  the child and those started after it, likewise.
 * A sibling killed by a group restart is started again only if it was
 * running (a child stopped by `terminateChild`, or a transient child that
 * ended normally, stays stopped) and is not temporary (a temporary sibling
 * is forgotten, as in OTP). One failed child is one restart for the
 * intensity count, however many siblings go with it.
 *
 * Intensity. More than `maxRestarts` restarts within `periodMs` (default
 * OTP's: 1 in 5000 ms), and the supervisor kills its remaining children
 * (reverse order, 'shutdown') and exits with
 * `{ kind: 'error', name: 'SupervisorIntensity', message }`, so that its own
 * supervisor (or whoever is linked or monitoring) sees it. A child that fails
 * to spawn again (SpawnError) counts as one more restart, and is retried
 * until the intensity runs out.
 *
 * Parent. An ExitMessage from any linked process that is not one of its
 * children (the spawner that linked it, a parent supervisor) makes it kill
 * its children and exit with the same reason, whatever the reason, 'normal'
 * included (OTP: a parent's exit always ends a supervisor). A supervisor
 * killed outright (`kill`) cannot act, but its children are linked to it:
 * non-trapping children die with it at once, child supervisors receive the
 * exit and take their own subtrees down. Children that trap exits must do
 * the same with an exit from their supervisor.
 *
 * Shutdown is brutal: children are killed, not asked to stop (there is no
 * graceful shutdown timeout yet).
 *
 * Exits of killed children. A child the supervisor kills is linked to it, so
 * its exit comes back later as an ExitMessage; the old incarnation is kept
 * in `dying` until then, so that exit is recognised and ignored rather than
 * mistaken for a parent's.
 *
 * What clients get. Child Refs handed out (`whichChildren`, `startChild`,
 * `restartChild`) carry `childPermissions` (default send, monitor, kill: no
 * 'link', since a foreign link would turn a child's death into the linker's
 * problem). Whoever holds a Ref to the supervisor, even send-only, may manage
 * it through the requests below; hand it out accordingly.
 *
 * Protocol. Requests are `{ op, ...operands }`, dispatched through one table
 * keyed by `op`, served one at a time between exits; replies are
 * `{ ok: value }` or `{ error: { code, message } }`, which the client turns
 * into a SupervisorError. Refs that arrive in anything the supervisor does
 * not keep are dropped at once.
 */

import type { ExitReason, Permission, ProcessContext, SpawnOptions } from './api.ts';
import { dropRefs } from './drop-refs.ts';
import { ProcessEnded, ReceiveTimeout, RuntimeError } from './errors.ts';
import { isDown, isExit, isRequest } from './guards.ts';
import { Ref } from './ref.ts';
import type { Request } from './request.ts';

/** The module URL of this file: where workers load the `supervisor` process function from. */
export const SUPERVISOR_MODULE: string = import.meta.url;

export type Strategy = 'one-for-one' | 'one-for-all' | 'rest-for-one';
export type RestartPolicy = 'permanent' | 'transient' | 'temporary';
export type ChildType = 'worker' | 'supervisor';

export interface ChildSpec {
  /** Unique among the supervisor's children. */
  readonly id: string;
  /** URL of the module that exports the child's process function. */
  readonly module: string;
  /** The export name of the process function. */
  readonly export: string;
  /** Spawn arguments (Refs allowed: the supervisor keeps its own copies and passes them at every start). */
  readonly args?: readonly unknown[];
  /** Default 'permanent'. */
  readonly restart?: RestartPolicy;
  /**
   * 'supervisor' for a child that is itself a supervisor (see `supervisorChild`):
   * it is started with the start handshake, so this supervisor goes on to
   * the next child only once that subtree is up (OTP's synchronous start),
   * and a subtree that fails to start counts as a failed start. Default 'worker'.
   */
  readonly type?: ChildType;
  /** Where the child runs. Default 'local' (the supervisor's worker). */
  readonly worker?: 'local' | 'next' | number;
  readonly mailboxCapacity?: number;
}

export interface Intensity {
  readonly maxRestarts: number;
  readonly periodMs: number;
}

export interface SupervisorSpec {
  readonly strategy: Strategy;
  /** Default { maxRestarts: 1, periodMs: 5000 } (OTP's). */
  readonly intensity?: Intensity;
  readonly children: readonly ChildSpec[];
  /** The permissions of child Refs handed to clients. Default ['send', 'monitor', 'kill']. */
  readonly childPermissions?: readonly Permission[];
}

export interface ChildInfo {
  readonly id: string;
  /** The running incarnation (the caller owns this Ref), or null when the child is stopped. */
  readonly ref: Ref | null;
  readonly restart: RestartPolicy;
  readonly type: ChildType;
  /** Times this child was started again after its first start. */
  readonly restarts: number;
}

/** The reason a supervisor exits with when its restart intensity runs out. */
export interface IntensityReason {
  readonly kind: 'error';
  readonly name: 'SupervisorIntensity';
  readonly message: string;
}

export type SupervisorErrorCode = 'BadRequest' | 'NotFound' | 'Running' | 'DuplicateId' | 'StartFailed';

/** A supervisor refused a request, or did not start. */
export class SupervisorError extends RuntimeError {
  override name = 'SupervisorError';
  constructor(
    readonly code: SupervisorErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const DEFAULT_INTENSITY: Intensity = { maxRestarts: 1, periodMs: 5000 };
const DEFAULT_CHILD_PERMISSIONS: readonly Permission[] = ['send', 'monitor', 'kill'];
const PERMISSIONS: readonly Permission[] = ['send', 'monitor', 'kill', 'link'];
const STRATEGIES: readonly Strategy[] = ['one-for-one', 'one-for-all', 'rest-for-one'];
const POLICIES: readonly RestartPolicy[] = ['permanent', 'transient', 'temporary'];
const TYPES: readonly ChildType[] = ['worker', 'supervisor'];
/** The reason children are killed with when the supervisor takes them down. */
const SHUTDOWN = 'shutdown';
/** How long a supervisor that failed to start waits for its starter's `started` request. */
const HANDSHAKE_MS = 15_000;
/** Ring capacity of a supervisor's mailbox unless told otherwise (requests from clients; exits do not take ring space). */
export const SUPERVISOR_MAILBOX_CAPACITY = 4096;
/** Default timeout of the client's requests (a start spawns every child, possibly on other workers). */
const DEFAULT_TIMEOUT_MS = 15_000;

// ---------------------------------------------------------------- checking a spec

/** What is wrong with a child spec, or null. */
function childProblem(child: unknown): string | null {
  if (child === null || typeof child !== 'object') return 'a child spec must be an object';
  const c = child as Record<string, unknown>;
  if (typeof c.id !== 'string' || c.id.length === 0) return 'a child id must be a non-empty string';
  const at = `child '${c.id}'`;
  if (typeof c.module !== 'string' || c.module.length === 0) return `${at}: module must be a URL string`;
  if (typeof c.export !== 'string' || c.export.length === 0)
    return `${at}: export must be a non-empty string`;
  if (c.args !== undefined && !Array.isArray(c.args)) return `${at}: args must be an array`;
  if (c.restart !== undefined && !POLICIES.includes(c.restart as RestartPolicy)) {
    return `${at}: restart must be one of ${POLICIES.join(', ')}`;
  }
  if (c.type !== undefined && !TYPES.includes(c.type as ChildType))
    return `${at}: type must be one of ${TYPES.join(', ')}`;
  const w = c.worker;
  if (w !== undefined && w !== 'local' && w !== 'next' && !(Number.isInteger(w) && (w as number) >= 0)) {
    return `${at}: worker must be 'local', 'next' or a worker index`;
  }
  return null;
}

/** What is wrong with a supervisor spec, or null. */
export function specProblem(spec: unknown): string | null {
  if (spec === null || typeof spec !== 'object') return 'a supervisor spec must be an object';
  const s = spec as Record<string, unknown>;
  if (!STRATEGIES.includes(s.strategy as Strategy)) return `strategy must be one of ${STRATEGIES.join(', ')}`;
  if (s.intensity !== undefined) {
    const i = s.intensity as Record<string, unknown> | null;
    if (
      i === null ||
      typeof i !== 'object' ||
      !Number.isInteger(i.maxRestarts) ||
      (i.maxRestarts as number) < 0 ||
      typeof i.periodMs !== 'number' ||
      !(i.periodMs > 0)
    ) {
      return 'intensity must be { maxRestarts: an integer >= 0, periodMs: a number > 0 }';
    }
  }
  if (s.childPermissions !== undefined) {
    const p = s.childPermissions;
    if (!Array.isArray(p) || !p.every((x) => PERMISSIONS.includes(x))) {
      return `childPermissions must be a list of ${PERMISSIONS.join(', ')}`;
    }
  }
  if (!Array.isArray(s.children)) return 'children must be an array';
  const ids = new Set<string>();
  for (const child of s.children) {
    const problem = childProblem(child);
    if (problem !== null) return problem;
    const id = (child as ChildSpec).id;
    if (ids.has(id)) return `child id '${id}' is used twice`;
    ids.add(id);
  }
  return null;
}

// ---------------------------------------------------------------- the supervisor process

interface Child {
  readonly spec: ChildSpec;
  /** The running incarnation, with every permission; null while stopped. */
  ref: Ref | null;
  /** How many times it has been started. */
  starts: number;
}

type Reply = { ok: unknown } | { error: { code: SupervisorErrorCode; message: string } };

/** A refusal thrown inside a handler, answered as `{ error }`. */
class Refusal {
  constructor(
    readonly code: SupervisorErrorCode,
    readonly message: string,
  ) {}
}

function isNormal(reason: ExitReason): boolean {
  return reason === 'normal' || reason === SHUTDOWN;
}

function showReason(reason: ExitReason): string {
  const r = reason as { kind?: unknown; name?: unknown; message?: unknown };
  if (r !== null && typeof r === 'object' && r.kind === 'error')
    return `${String(r.name)}: ${String(r.message)}`;
  try {
    return JSON.stringify(reason)?.slice(0, 200) ?? String(reason);
  } catch {
    return String(reason);
  }
}

/** One supervisor's state: its children in start order, and the restarts it has made. */
class Supervision {
  readonly children: Child[];
  /** Killed incarnations whose ExitMessage has not come back yet. */
  readonly dying: Ref[] = [];
  /** When the restarts within the current period happened (performance.now()). */
  private readonly recent: number[] = [];
  restarts = 0;
  private readonly intensity: Intensity;
  private readonly childPermissions: readonly Permission[];

  constructor(
    readonly ctx: ProcessContext,
    readonly spec: SupervisorSpec,
  ) {
    this.intensity = spec.intensity ?? DEFAULT_INTENSITY;
    this.childPermissions = spec.childPermissions ?? DEFAULT_CHILD_PERMISSIONS;
    this.children = spec.children.map((s) => ({ spec: s, ref: null, starts: 0 }));
  }

  /** Starts every child in order. On a failure, kills those started and returns the reason to exit with. */
  async startAll(): Promise<ExitReason | null> {
    for (const child of this.children) {
      try {
        await this.start(child);
      } catch (error) {
        if (error instanceof ProcessEnded) throw error;
        this.killAll();
        return {
          kind: 'error',
          name: 'SupervisorStart',
          message: `child '${child.spec.id}' did not start: ${(error as Error).message ?? String(error)}`,
        };
      }
    }
    return null;
  }

  /**
   * Spawns `child`, linked; a child supervisor through the start handshake.
   * Throws what spawnLink throws (SpawnError...), or a SupervisorError
   * 'StartFailed' for a subtree that did not start (killed, and its exit
   * expected).
   */
  async start(child: Child): Promise<Ref> {
    const s = child.spec;
    const ctx = this.ctx;
    const options: SpawnOptions = {};
    if (s.worker !== undefined) options.worker = s.worker;
    if (s.mailboxCapacity !== undefined) options.mailboxCapacity = s.mailboxCapacity;
    const handshake = s.type === 'supervisor';
    const args = s.args ?? [];
    const ref = await ctx.spawnLink(
      s.module,
      s.export,
      handshake ? [...args, { handshake: true } satisfies SupervisorOptions] : args,
      options,
    );
    if (handshake) {
      let reply: Reply;
      try {
        reply = (await ctx.request(ref, { op: 'started' }, { timeout: HANDSHAKE_MS })) as Reply;
      } catch (error) {
        if (error instanceof ProcessEnded) throw error;
        reply = { error: { code: 'StartFailed', message: (error as Error).message } };
      }
      if ('error' in reply) {
        ctx.kill(ref, SHUTDOWN); // ...it exits by itself; this only makes sure of it
        this.dying.push(ref);
        throw new SupervisorError('StartFailed', reply.error.message);
      }
    }
    child.ref = ref;
    child.starts++;
    return ref;
  }

  find(id: unknown): Child {
    const child = typeof id === 'string' ? this.children.find((c) => c.spec.id === id) : undefined;
    if (child === undefined) throw new Refusal('NotFound', `no child '${String(id)}'`);
    return child;
  }

  /** A Ref to `ref`'s process with the permissions clients get (the caller drops it once sent). */
  outward(ref: Ref | null): Ref | null {
    return ref === null ? null : this.ctx.restrict(ref, this.childPermissions);
  }

  /** Kills a running child (reason 'shutdown'); a temporary one is forgotten. */
  terminate(child: Child): void {
    const ref = child.ref;
    if (ref !== null) {
      this.ctx.kill(ref, SHUTDOWN);
      this.dying.push(ref);
      child.ref = null;
    }
    if (child.spec.restart === 'temporary') this.forget(child);
  }

  /** Removes a stopped child's spec, dropping the Refs in its arguments. */
  forget(child: Child): void {
    const i = this.children.indexOf(child);
    if (i >= 0) this.children.splice(i, 1);
    dropRefs(this.ctx, child.spec.args);
  }

  /** Kills every running child, last started first. */
  killAll(): void {
    for (const child of [...this.children].reverse()) {
      if (child.ref !== null) {
        this.ctx.kill(child.ref, SHUTDOWN);
        this.dying.push(child.ref);
        child.ref = null;
      }
    }
  }

  /** Kills every child and ends the supervisor with `reason`. */
  shutdown(reason: ExitReason): never {
    this.killAll();
    return this.ctx.exit(reason);
  }

  // ------------------------------------------------------------ exits

  async onExit(from: Ref | null, reason: ExitReason): Promise<void> {
    const ctx = this.ctx;
    if (from !== null) {
      const d = this.dying.findIndex((r) => ctx.same(r, from));
      if (d >= 0) {
        // ...the exit of an incarnation we killed: expected, nothing to do.
        ctx.drop(this.dying[d] as Ref);
        this.dying.splice(d, 1);
        ctx.drop(from);
        return;
      }
      const child = this.children.find((c) => c.ref !== null && ctx.same(c.ref, from));
      ctx.drop(from);
      if (child !== undefined) {
        await this.childExited(child, reason);
        return;
      }
    }
    // ...not a child: the parent (or another process linked to us) ended.
    this.shutdown(reason);
  }

  private async childExited(child: Child, reason: ExitReason): Promise<void> {
    this.ctx.drop(child.ref as Ref);
    child.ref = null;
    const policy = child.spec.restart ?? 'permanent';
    if (policy === 'temporary') {
      this.forget(child);
      return;
    }
    if (policy === 'transient' && isNormal(reason)) return;
    this.countRestart(child, reason);
    const i = this.children.indexOf(child);
    const strategy = this.spec.strategy;
    const affected =
      strategy === 'one-for-all'
        ? [...this.children]
        : strategy === 'rest-for-one'
          ? this.children.slice(i)
          : [child];
    const again = affected.filter((c) => c === child || (c.ref !== null && c.spec.restart !== 'temporary'));
    for (const c of [...affected].reverse()) if (c !== child && c.ref !== null) this.terminate(c);
    await this.restartEach(again);
  }

  /** Counts one restart; past the intensity, shuts the supervisor down (never returns then). */
  private countRestart(child: Child, reason: ExitReason): void {
    const now = performance.now();
    const { maxRestarts, periodMs } = this.intensity;
    this.recent.push(now);
    while (this.recent.length > 0 && (this.recent[0] as number) <= now - periodMs) this.recent.shift();
    this.restarts++;
    if (this.recent.length > maxRestarts) {
      const why: IntensityReason = {
        kind: 'error',
        name: 'SupervisorIntensity',
        message:
          `more than ${maxRestarts} restart(s) within ${periodMs} ms; ` +
          `the last: child '${child.spec.id}' exited with ${showReason(reason)}`,
      };
      this.shutdown(why);
    }
  }

  /** Starts the stopped children of `list` in order; a failed start counts as a restart and is retried. */
  private async restartEach(list: readonly Child[]): Promise<void> {
    for (;;) {
      const stopped = list.filter((c) => c.ref === null && this.children.includes(c));
      let failed: { child: Child; error: unknown } | null = null;
      for (const child of stopped) {
        try {
          await this.start(child);
        } catch (error) {
          if (error instanceof ProcessEnded) throw error;
          failed = { child, error };
          break;
        }
      }
      if (failed === null) return;
      this.countRestart(failed.child, {
        kind: 'error',
        name: (failed.error as Error).name ?? 'Error',
        message: (failed.error as Error).message ?? String(failed.error),
      });
    }
  }

  // ------------------------------------------------------------ requests

  async onRequest(request: Request): Promise<void> {
    const ctx = this.ctx;
    const value = request.value as Record<string, unknown> | null;
    const op = value !== null && typeof value === 'object' ? value.op : undefined;
    const handler = typeof op === 'string' && Object.hasOwn(HANDLERS, op) ? HANDLERS[op] : undefined;
    let reply: Reply;
    let kept: unknown;
    if (handler === undefined) {
      reply = {
        error: {
          code: 'BadRequest',
          message: `unknown request ${typeof op === 'string' ? `'${op}'` : typeof op}`,
        },
      };
    } else {
      try {
        reply = { ok: await handler(this, value as Record<string, unknown>, request) };
        if (op === 'startChild') kept = (value as Record<string, unknown>).child;
      } catch (error) {
        if (error instanceof Refusal) reply = { error: { code: error.code, message: error.message } };
        else if (error instanceof Error && !(error instanceof ProcessEnded)) {
          reply = { error: { code: 'BadRequest', message: `${error.name}: ${error.message}` } };
        } else throw error; // ...the supervisor ended (ProcessEnded, or its own exit)
      }
    }
    dropRefs(ctx, request.value, kept);
    ctx.reply(request, reply);
    // The reply carries its own copies of the child Refs in it.
    dropRefs(ctx, 'ok' in reply ? reply.ok : undefined);
  }
}

type Handler = (sup: Supervision, operands: Record<string, unknown>, request: Request) => unknown;

/** Request handlers, by `op`. Each checks its operands first and throws a Refusal for a bad one. */
const HANDLERS: Record<string, Handler> = {
  /** A ping (the starter's own `started` is answered before the loop). */
  started: () => true,

  whichChildren: (sup) =>
    sup.children.map(
      (c): ChildInfo => ({
        id: c.spec.id,
        ref: sup.outward(c.ref),
        restart: c.spec.restart ?? 'permanent',
        type: c.spec.type ?? 'worker',
        restarts: Math.max(0, c.starts - 1),
      }),
    ),

  restartCount: (sup) => sup.restarts,

  terminateChild(sup, { id }) {
    const child = sup.find(id);
    const running = child.ref !== null;
    sup.terminate(child);
    return running;
  },

  async restartChild(sup, { id }) {
    const child = sup.find(id);
    if (child.ref !== null) throw new Refusal('Running', `child '${child.spec.id}' is running`);
    return sup.outward(await startOrRefuse(sup, child));
  },

  deleteChild(sup, { id }) {
    const child = sup.find(id);
    if (child.ref !== null) throw new Refusal('Running', `child '${child.spec.id}' is running`);
    sup.forget(child);
    return true;
  },

  async startChild(sup, { child: spec }) {
    const problem = childProblem(spec);
    if (problem !== null) throw new Refusal('BadRequest', problem);
    const s = spec as ChildSpec;
    if (sup.children.some((c) => c.spec.id === s.id))
      throw new Refusal('DuplicateId', `child '${s.id}' exists`);
    const child: Child = { spec: s, ref: null, starts: 0 };
    sup.children.push(child);
    try {
      return sup.outward(await startOrRefuse(sup, child));
    } catch (error) {
      sup.children.splice(sup.children.indexOf(child), 1);
      throw error; // the request's Refs (the spec's args) are dropped with it
    }
  },

  /** Replies before it ends the supervisor (it never returns). */
  stop(sup, { reason }, request) {
    if (containsRef(reason)) throw new Refusal('BadRequest', 'an exit reason cannot hold a Ref');
    sup.killAll();
    sup.ctx.reply(request, { ok: true });
    return sup.ctx.exit(reason === undefined ? 'normal' : reason);
  },
};

async function startOrRefuse(sup: Supervision, child: Child): Promise<Ref> {
  try {
    return await sup.start(child);
  } catch (error) {
    if (error instanceof ProcessEnded) throw error;
    throw new Refusal('StartFailed', `child '${child.spec.id}' did not start: ${(error as Error).message}`);
  }
}

/** Options a starter passes as the supervisor's second argument. */
interface SupervisorOptions {
  /** The starter sends a `started` request and waits for it: answer it even when the start fails. */
  handshake?: boolean;
}

/**
 * The supervisor process: `ctx.spawnLink(SUPERVISOR_MODULE, 'supervisor', [spec])`,
 * a child spec made by `supervisorChild`, or `startSupervisor`. Runs until
 * its intensity runs out, its parent ends, it is asked to stop, or killed.
 */
export async function supervisor(
  ctx: ProcessContext,
  spec: SupervisorSpec,
  options: SupervisorOptions = {},
): Promise<void> {
  ctx.trapExits(true);
  const problem = specProblem(spec);
  if (problem !== null) {
    dropRefs(ctx, spec);
    return failStart(ctx, options, { kind: 'error', name: 'SupervisorSpec', message: problem });
  }
  const sup = new Supervision(ctx, spec);
  const failure = await sup.startAll();
  if (failure !== null) return failStart(ctx, options, failure);
  // Answered here rather than in the loop: exits (handed out before messages) could end us first.
  if (options.handshake === true) await answerStarter(ctx, { ok: true });
  for (;;) {
    const received = await ctx.receive();
    if (isExit(received)) await sup.onExit(received.from, received.reason);
    else if (isRequest(received)) await sup.onRequest(received);
    else if (isDown(received)) ctx.drop(received.ref);
    else dropRefs(ctx, received);
  }
}

/** Answers the starter's handshake with the failure, then exits with it. */
async function failStart(
  ctx: ProcessContext,
  options: SupervisorOptions,
  reason: ExitReason,
): Promise<never> {
  if (options.handshake === true) {
    await answerStarter(ctx, { error: { code: 'StartFailed', message: showReason(reason) } });
  }
  return ctx.exit(reason);
}

/** Waits for the starter's `started` request (sent as soon as its spawn returned) and answers it. */
async function answerStarter(ctx: ProcessContext, reply: Reply): Promise<void> {
  try {
    const request = await ctx.receive({
      timeout: HANDSHAKE_MS,
      match: (m) => isRequest(m) && (m.value as { op?: unknown } | null)?.op === 'started',
    });
    ctx.reply(request as Request, reply);
  } catch (error) {
    // ...the starter is gone: go on without it.
    if (!(error instanceof ReceiveTimeout)) throw error;
  }
}

/** Whether `value` holds a Ref anywhere (an exit reason cannot). */
function containsRef(value: unknown, depth = 0): boolean {
  if (value === null || typeof value !== 'object' || depth > 100) return false;
  if (value instanceof Ref || isRequest(value)) return true;
  if (value instanceof Map) {
    for (const [k, v] of value) if (containsRef(k, depth + 1) || containsRef(v, depth + 1)) return true;
    return false;
  }
  const values = Array.isArray(value) || value instanceof Set ? value : Object.values(value);
  for (const v of values) if (containsRef(v, depth + 1)) return true;
  return false;
}

// ---------------------------------------------------------------- starting one

/** A child spec that runs a supervisor with `spec` (a subtree). */
export function supervisorChild(
  id: string,
  spec: SupervisorSpec,
  restart: RestartPolicy = 'permanent',
): ChildSpec {
  return {
    id,
    module: SUPERVISOR_MODULE,
    export: 'supervisor',
    args: [normalize(spec)],
    restart,
    type: 'supervisor',
    mailboxCapacity: SUPERVISOR_MAILBOX_CAPACITY,
  };
}

/** A spec whose module URLs are strings (a URL object does not travel). */
function normalize(spec: SupervisorSpec): SupervisorSpec {
  if (spec === null || typeof spec !== 'object' || !Array.isArray(spec.children)) return spec;
  return { ...spec, children: spec.children.map((c) => ({ ...c, module: String(c.module) })) };
}

/** The host side of a Runtime: what `startSupervisor` needs of it. */
export interface RuntimeLike {
  readonly host: ProcessContext;
  spawn(
    moduleUrl: string | URL,
    exportName: string,
    args?: readonly unknown[],
    options?: SpawnOptions,
  ): Promise<Ref>;
}

export interface StartSupervisorOptions {
  /**
   * Link the supervisor to the calling process (OTP's start_link): default
   * true from a process; not allowed from a Runtime (the host process must
   * not die with a supervisor).
   */
  link?: boolean;
  /** Where the supervisor runs (see SpawnOptions.worker). */
  worker?: 'local' | 'next' | number;
  /** Ring capacity of the supervisor's mailbox. Default SUPERVISOR_MAILBOX_CAPACITY. */
  mailboxCapacity?: number;
  /** Milliseconds to wait for the children to start, and for each later request. Default 15000. */
  timeout?: number;
}

/**
 * Starts a supervisor and waits until every child has started. Throws
 * TypeError for a bad spec (nothing started), SupervisorError 'StartFailed'
 * when a child did not start (the supervisor has killed those that did and
 * exited with reason `{ kind: 'error', name: 'SupervisorStart' }`; a linked
 * caller that does not trap exits dies of it), and RequestTimeout past
 * `timeout`.
 */
export async function startSupervisor(
  from: ProcessContext | RuntimeLike,
  spec: SupervisorSpec,
  options: StartSupervisorOptions = {},
): Promise<Supervisor> {
  const problem = specProblem(spec);
  if (problem !== null) throw new TypeError(problem);
  // A process context has `self`; a Runtime has not (a Process's own `host` field is no Runtime's).
  const onHost = !('self' in from);
  if (onHost && options.link === true) throw new TypeError('the host process cannot link to a supervisor');
  const ctx = onHost ? (from as RuntimeLike).host : (from as ProcessContext);
  const link = !onHost && options.link !== false;
  const args = [normalize(spec), { handshake: true } satisfies SupervisorOptions];
  const spawnOptions: SpawnOptions = {
    mailboxCapacity: options.mailboxCapacity ?? SUPERVISOR_MAILBOX_CAPACITY,
  };
  if (options.worker !== undefined) spawnOptions.worker = options.worker;
  const ref = link
    ? await ctx.spawnLink(SUPERVISOR_MODULE, 'supervisor', args, spawnOptions)
    : await from.spawn(SUPERVISOR_MODULE, 'supervisor', args, spawnOptions);
  const client = new Supervisor(ctx, ref, options.timeout === undefined ? {} : { timeout: options.timeout });
  try {
    await client.call({ op: 'started' });
  } catch (error) {
    ctx.drop(ref);
    throw error;
  }
  return client;
}

// ---------------------------------------------------------------- the client

/**
 * The client side: requests to the supervisor at `ref` from the process whose
 * context is `ctx` (`runtime.host` on the main thread). Each method is one
 * request; it throws SupervisorError for a refusal and RequestTimeout when
 * the supervisor does not answer (a supervisor that has ended never does).
 */
export class Supervisor {
  constructor(
    readonly ctx: ProcessContext,
    /** The supervisor process (as handed to the constructor; `startSupervisor` gives every permission). */
    readonly ref: Ref,
    readonly options: { timeout?: number } = {},
  ) {}

  /** Every child in start order, with a Ref to its running incarnation (the caller owns those Refs). */
  async whichChildren(): Promise<ChildInfo[]> {
    return (await this.call({ op: 'whichChildren' })) as ChildInfo[];
  }

  /** Restarts made so far (one per failed child, whatever the strategy restarted with it). */
  async restartCount(): Promise<number> {
    return (await this.call({ op: 'restartCount' })) as number;
  }

  /** Kills a child (reason 'shutdown') without restarting it; false if it was not running. A temporary child is forgotten. */
  async terminateChild(id: string): Promise<boolean> {
    return (await this.call({ op: 'terminateChild', id })) as boolean;
  }

  /** Starts a stopped child again; SupervisorError 'Running' if it runs. */
  async restartChild(id: string): Promise<Ref> {
    return (await this.call({ op: 'restartChild', id })) as Ref;
  }

  /** Forgets a stopped child's spec; SupervisorError 'Running' if it runs. */
  async deleteChild(id: string): Promise<void> {
    await this.call({ op: 'deleteChild', id });
  }

  /** Adds a child after the others and starts it; SupervisorError 'DuplicateId' or 'StartFailed'. */
  async startChild(spec: ChildSpec): Promise<Ref> {
    const problem = childProblem(spec);
    if (problem !== null) throw new TypeError(problem);
    return (await this.call({ op: 'startChild', child: { ...spec, module: String(spec.module) } })) as Ref;
  }

  /** Kills every child and ends the supervisor with `reason` (default 'normal'). */
  async stop(reason?: ExitReason): Promise<void> {
    await this.call(reason === undefined ? { op: 'stop' } : { op: 'stop', reason });
  }

  /** @internal One request; unwraps the reply. */
  async call(value: Record<string, unknown>): Promise<unknown> {
    const timeout = this.options.timeout ?? DEFAULT_TIMEOUT_MS;
    const reply = (await this.ctx.request(this.ref, value, { timeout })) as Reply;
    if ('error' in reply) throw new SupervisorError(reply.error.code, reply.error.message);
    return reply.ok;
  }
}
