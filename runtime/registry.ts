/**
 * The name registry (DESIGN.md section 5): a process that maps names to
 * process references, and `Registry`, the client that talks to it.
 *
 * No ambient authority. The registry is an ordinary process: there is no
 * global name table and no well-known address. A process can register or
 * look up names only if it was handed a Ref to a registry (in its spawn
 * arguments or in a message), and a Ref restricted to ['send'] is enough to
 * use every operation (requests need nothing more). Whoever holds that Ref
 * may register, look up and unregister any name: hand out separate
 * registries when different parties must not see or touch each other's names.
 *
 * Permissions of what a lookup returns. A registrant chooses what the world
 * gets: `register(name, ref, { publish })` stores `ref` and answers every
 * lookup with a fresh Ref to the same process carrying exactly `publish`
 * (a subset of `ref`'s permissions; default: all of `ref`'s). The registry
 * needs 'monitor' on the stored Ref itself, so that it can drop the name when
 * the process ends; a Ref without it is refused (RegistryError
 * 'NotMonitorable'). The usual call registers
 * `ctx.restrict(ctx.self, ['send', 'monitor'])` and publishes ['send'].
 *
 * Liveness. The registry monitors every registration and drops the name when
 * its `down` arrives. Kill propagation is synchronous and a mailbox hands out
 * pending downs before messages, so a request sent after the process ended
 * (for instance by someone who has seen its down) never finds the name: the
 * registry answers `null`, and `register` of that name succeeds.
 *
 * Protocol. Requests are `{ op, ...operands }`, dispatched through one table
 * keyed by `op`; replies are `{ ok: value }` or `{ error: { code, message } }`,
 * which the client turns into a RegistryError. Any Ref that arrives in a
 * request the registry does not keep (or in a stray message) is dropped at
 * once, so a misbehaving client cannot grow the registry's table.
 */

import type { Permission, ProcessContext, SpawnOptions } from './api.ts';
import { dropRefs } from './drop-refs.ts';
import { ProcessEnded, RuntimeError } from './errors.ts';
import { isDown, isExit, isRequest } from './guards.ts';
import { Ref } from './ref.ts';
import type { Request } from './request.ts';

/** The module URL of this file: where workers load the `registry` process function from. */
export const REGISTRY_MODULE: string = import.meta.url;

/** Longest name, in UTF-16 code units. */
export const MAX_NAME_LENGTH = 255;

const PERMISSIONS: readonly Permission[] = ['send', 'monitor', 'kill', 'link'];

/** What went wrong, as the registry tells it. */
export type RegistryErrorCode = 'NameTaken' | 'NotMonitorable' | 'BadRequest';

/** A registry refused a request. */
export class RegistryError extends RuntimeError {
  override name = 'RegistryError';
  constructor(
    readonly code: RegistryErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface RegisterOptions {
  /** The permissions every lookup of the name gets. Default: all of the registered Ref's. */
  publish?: readonly Permission[];
}

// ---------------------------------------------------------------- the registry process

interface Entry {
  /** The registered Ref (in the registry's table; carries 'monitor'). */
  readonly ref: Ref;
  /** What a lookup gets. */
  readonly publish: readonly Permission[];
  readonly monitor: number;
}

type Reply = { ok: unknown } | { error: { code: RegistryErrorCode; message: string } };

/** A refusal thrown inside a handler, answered as `{ error }`. */
class Refusal {
  constructor(
    readonly code: RegistryErrorCode,
    readonly message: string,
  ) {}
}

/** One registry's state: names and the monitors that watch them. */
class Names {
  readonly byName = new Map<string, Entry>();
  readonly byMonitor = new Map<number, string>();

  constructor(readonly ctx: ProcessContext) {}

  /** Forgets `name`: no more monitor, and the stored Ref goes. */
  remove(name: string): boolean {
    const entry = this.byName.get(name);
    if (entry === undefined) return false;
    this.byName.delete(name);
    this.byMonitor.delete(entry.monitor);
    // A down already queued for this monitor finds no name and is dropped.
    this.ctx.demonitor(entry.monitor);
    this.ctx.drop(entry.ref);
    return true;
  }
}

type Handler = (names: Names, operands: Record<string, unknown>) => unknown;

/** Request handlers, by `op`. Each checks its operands first and throws a Refusal for a bad one. */
const HANDLERS: Record<string, Handler> = {
  register(names, { name, ref, publish }) {
    checkName(name);
    if (!(ref instanceof Ref)) throw new Refusal('BadRequest', 'register: ref must be a Ref');
    const ctx = names.ctx;
    const has = ctx.permissions(ref);
    if (!has.includes('monitor')) {
      throw new Refusal(
        'NotMonitorable',
        `register: the Ref for '${name}' must carry 'monitor', so that the name goes when the process ends`,
      );
    }
    const published = publish === undefined ? has : checkPermissions(publish);
    const missing = published.filter((p) => !has.includes(p));
    if (missing.length > 0) {
      throw new Refusal(
        'BadRequest',
        `register: cannot publish ${missing.join(', ')}: the Ref does not carry it`,
      );
    }
    if (names.byName.has(name)) throw new Refusal('NameTaken', `the name '${name}' is taken`);
    const monitor = ctx.monitor(ref);
    names.byName.set(name, { ref, publish: Object.freeze([...published]), monitor });
    names.byMonitor.set(monitor, name);
    return true;
  },

  lookup(names, { name }) {
    checkName(name);
    const entry = names.byName.get(name);
    return entry === undefined ? null : names.ctx.restrict(entry.ref, entry.publish);
  },

  unregister(names, { name }) {
    checkName(name);
    return names.remove(name);
  },

  names(names) {
    return [...names.byName.keys()].sort();
  },
};

/** The fields of a request that the registry keeps (the rest, if Refs, are dropped). */
const KEPT: Record<string, string | undefined> = { register: 'ref' };

function checkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_LENGTH) {
    throw new Refusal('BadRequest', `a name is a string of 1 to ${MAX_NAME_LENGTH} characters`);
  }
}

function checkPermissions(perms: unknown): Permission[] {
  if (!Array.isArray(perms) || !perms.every((p) => PERMISSIONS.includes(p))) {
    throw new Refusal('BadRequest', `publish must be a list of ${PERMISSIONS.join(', ')}`);
  }
  return [...new Set(perms as Permission[])];
}

/**
 * The registry process: `ctx.spawn(REGISTRY_MODULE, 'registry')`, or
 * `startRegistry`. Serves requests until it is killed.
 */
export async function registry(ctx: ProcessContext): Promise<void> {
  const names = new Names(ctx);
  for (;;) {
    const received = await ctx.receive();
    if (isRequest(received)) serve(names, received);
    else if (isDown(received)) {
      const name = names.byMonitor.get(received.monitor);
      if (name !== undefined) names.remove(name);
      ctx.drop(received.ref);
    } else if (isExit(received)) {
      if (received.from !== null) ctx.drop(received.from);
    } else dropRefs(ctx, received);
  }
}

function serve(names: Names, request: Request): void {
  const ctx = names.ctx;
  const value = request.value as Record<string, unknown> | null;
  const op = value !== null && typeof value === 'object' ? value.op : undefined;
  const handler = typeof op === 'string' && Object.hasOwn(HANDLERS, op) ? HANDLERS[op] : undefined;
  let reply: Reply;
  let kept: unknown;
  if (handler === undefined) {
    reply = { error: { code: 'BadRequest', message: `unknown request ${show(op)}` } };
  } else {
    try {
      reply = { ok: handler(names, value as Record<string, unknown>) };
      const field = KEPT[op as string];
      if (field !== undefined) kept = (value as Record<string, unknown>)[field];
    } catch (error) {
      if (error instanceof ProcessEnded) throw error;
      // ...a Refusal, or an operand the runtime itself refused (a Ref the registry cannot use).
      reply =
        error instanceof Refusal
          ? { error: { code: error.code, message: error.message } }
          : {
              error: { code: 'BadRequest', message: `${(error as Error).name}: ${(error as Error).message}` },
            };
    }
  }
  dropRefs(ctx, request.value, kept);
  ctx.reply(request, reply);
  // The reply carries its own copy of a looked-up Ref.
  if ('ok' in reply && reply.ok instanceof Ref) ctx.drop(reply.ok);
}

function show(op: unknown): string {
  return typeof op === 'string' ? `'${op.slice(0, 64)}'` : typeof op;
}

// ---------------------------------------------------------------- starting one

/** Anything that can spawn: a Runtime (spawning from the host) or a process's context. */
export interface Spawner {
  spawn(
    moduleUrl: string | URL,
    exportName: string,
    args?: readonly unknown[],
    options?: SpawnOptions,
  ): Promise<Ref>;
}

/** Ring capacity of a registry's mailbox unless told otherwise: a server many clients write to at once. */
export const REGISTRY_MAILBOX_CAPACITY = 16 << 10;

/**
 * Starts a registry process (on a scheduler worker: 'next' from the host,
 * the spawner's own worker from a process, unless `options.worker` says;
 * with a mailbox of REGISTRY_MAILBOX_CAPACITY bytes unless
 * `options.mailboxCapacity` says) and returns a Ref to it with every
 * permission. Hand others `restrict(ref, ['send'])`: that is all they need.
 */
export function startRegistry(
  spawner: Spawner,
  options: Pick<SpawnOptions, 'worker' | 'mailboxCapacity'> = {},
): Promise<Ref> {
  return spawner.spawn(REGISTRY_MODULE, 'registry', [], {
    mailboxCapacity: REGISTRY_MAILBOX_CAPACITY,
    ...options,
  });
}

// ---------------------------------------------------------------- the client

/**
 * The client side: requests to the registry at `ref` from the process whose
 * context is `ctx` (`runtime.host` on the main thread). Each method is one
 * request; it throws RegistryError for a refusal, RequestTimeout when the
 * registry does not answer within `timeout` (a registry that has ended never
 * answers).
 */
export class Registry {
  constructor(
    readonly ctx: ProcessContext,
    readonly ref: Ref,
    readonly options: { timeout?: number } = {},
  ) {}

  /**
   * Registers `name` for `ref`'s process (`ref` must carry 'monitor'; the
   * registry keeps its own copy, the caller keeps `ref`). Throws
   * RegistryError 'NameTaken' when a live process holds the name.
   */
  async register(name: string, ref: Ref, options: RegisterOptions = {}): Promise<void> {
    await this.call({ op: 'register', name, ref, publish: options.publish });
  }

  /** The Ref registered as `name` (with the permissions its registrant published; the caller owns it), or null. */
  async lookup(name: string): Promise<Ref | null> {
    return (await this.call({ op: 'lookup', name })) as Ref | null;
  }

  /** Removes `name`; false if it was not registered. */
  async unregister(name: string): Promise<boolean> {
    return (await this.call({ op: 'unregister', name })) as boolean;
  }

  /** Every registered name, sorted. */
  async names(): Promise<string[]> {
    return (await this.call({ op: 'names' })) as string[];
  }

  private async call(value: Record<string, unknown>): Promise<unknown> {
    const options = this.options.timeout === undefined ? {} : { timeout: this.options.timeout };
    const reply = (await this.ctx.request(this.ref, value, options)) as Reply;
    if ('error' in reply) throw new RegistryError(reply.error.code, reply.error.message);
    return reply.ok;
  }
}
