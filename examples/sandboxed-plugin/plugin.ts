/**
 * Plugins of the sandboxed-plugin example. This module runs inside sandboxes:
 * each process gets its own worker with a heap limit and a CPU watchdog, and
 * its code runs in a fresh realm that sees only the process API (`ctx`). It
 * may import types, nothing else (a sandbox has no imports).
 *
 *   textPlugin  a well-behaved text service, which also, when asked, tries
 *               every way out it can think of and reports how each failed;
 *   spinner     loops for ever without yielding (killed: 'cpu' limit);
 *   hog         allocates without bound (killed: 'memory' limit).
 */

import type { Ref } from '../../runtime/index.ts';
import type { SandboxContext } from '../../runtime/sandbox/index.ts';

/** Node's types declare WebAssembly as a namespace only; the plugin reaches for the global anyway. */
declare const WebAssembly: { Memory: new (descriptor: object) => unknown };

/** One escape attempt and what became of it. */
export interface Attempt {
  readonly attempt: string;
  /** 'blocked': it threw; 'contained': it worked, but only inside the sandbox; 'ESCAPED': it worked. */
  readonly outcome: 'blocked' | 'contained' | 'ESCAPED';
  readonly detail: string;
}

/** Requests the text plugin serves. */
export type PluginRequest =
  | { op: 'words'; text: string }
  | { op: 'shout'; text: string }
  | { op: 'escape' }
  | { op: 'stop' };

/**
 * Serves `words` (a word count) and `shout` (upper case); on `escape` it
 * misbehaves on purpose and answers with the list of attempts. `host` is a
 * send-only Ref to the host, the only Ref it was given.
 */
export async function textPlugin(ctx: SandboxContext, host: Ref): Promise<void> {
  ctx.log('text plugin up; my powers: log');
  for (;;) {
    const m = await ctx.receive();
    if (!ctx.isRequest(m)) continue;
    const r = m.value as PluginRequest;
    switch (r.op) {
      case 'words':
        ctx.reply(m, r.text.split(/\s+/).filter((w) => w.length > 0).length);
        break;
      case 'shout':
        ctx.reply(m, r.text.toUpperCase());
        break;
      case 'escape':
        ctx.reply(m, await tryToEscape(ctx, host));
        break;
      case 'stop':
        ctx.reply(m, 'bye');
        return;
    }
  }
}

/** Each way out, tried in turn; none is expected to work. */
async function tryToEscape(ctx: SandboxContext, host: Ref): Promise<Attempt[]> {
  const results: Attempt[] = [];
  const attempt = async (name: string, f: () => unknown, contained?: () => string): Promise<void> => {
    try {
      const got = await f();
      if (contained !== undefined) results.push({ attempt: name, outcome: 'contained', detail: contained() });
      else results.push({ attempt: name, outcome: 'ESCAPED', detail: `got ${String(got)}` });
    } catch (error) {
      const e = error as { name?: unknown; message?: unknown };
      results.push({
        attempt: name,
        outcome: 'blocked',
        detail: `${String(e?.name)}: ${String(e?.message)}`,
      });
    }
  };
  const reach = (what: unknown, name: string): unknown => {
    if (what === undefined || what === null) throw new ReferenceError(`${name} is ${String(what)} here`);
    return what;
  };

  // Node's globals.
  await attempt('process.exit(1): stop the host', () => process.exit(1));
  await attempt(
    'globalThis.process.env',
    () => (reach(globalThis.process, 'globalThis.process') as NodeJS.Process).env,
  );
  await attempt("require('node:child_process')", () => require('node:child_process'));
  // (The text of this file must not hold the dynamic-import call anywhere else, strings included:
  // a module that does is refused at load, in case the call reached V8 untransformed.)
  await attempt("a dynamic import of 'node:fs'", async () =>
    (await import('node:fs')).readFileSync('/etc/hostname'),
  );
  await attempt("fetch('http://example.com')", () => fetch('http://example.com'));
  await attempt('console.log', () => console.log('hello from inside'));

  // Shared memory: the post office is one SharedArrayBuffer.
  await attempt('new SharedArrayBuffer(1024)', () => new SharedArrayBuffer(1024));
  await attempt('Atomics.notify', () => Atomics.notify(new Int32Array(1), 0));
  await attempt('new WebAssembly.Memory({ shared: true })', () => {
    return new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  });

  // Climbing to a Function constructor, to compile code that names the host's globals.
  const body = 'return process';
  await attempt('ctx.send.constructor.constructor(...)()', () =>
    (ctx.send.constructor.constructor as FunctionConstructor)(body)(),
  );
  // biome-ignore lint/security/noGlobalEval: the plugin tries eval on purpose
  await attempt("eval('process')", () => eval(body.slice(7)));
  await attempt('new Function(...)', () => new Function(body)());
  await attempt('(async () => {}).constructor(...)', () =>
    (Object.getPrototypeOf(async () => {}).constructor as FunctionConstructor)(body)(),
  );
  await attempt('an error thrown by a host call: error.constructor.constructor(...)', () => {
    try {
      ctx.send(42 as unknown as Ref, 'not a Ref');
    } catch (error) {
      return ((error as Error).constructor.constructor as FunctionConstructor)(body)();
    }
    return 'no error thrown';
  });
  await attempt("a Ref's prototype: its constructor", () => {
    const proto = reach(Object.getPrototypeOf(ctx.self), 'the prototype of a Ref') as object;
    const ctor: unknown = Reflect.get(proto, 'constructor');
    if (typeof ctor !== 'function')
      throw new TypeError(`a Ref's prototype has no constructor (${typeof ctor})`);
    return (ctor.constructor as FunctionConstructor)(body)();
  });
  await attempt("setTimeout('process.exit()', 0): a string timer", () =>
    (setTimeout as unknown as (code: string, ms: number) => unknown)('process.exit()', 0),
  );
  await attempt('Error.prepareStackTrace: the call sites of a stack trace', () => {
    (Error as unknown as { prepareStackTrace: unknown }).prepareStackTrace = (_: unknown, sites: unknown) =>
      sites;
    return 'set';
  });

  // Capabilities: it holds a send-only Ref to the host and no power but log.
  await attempt('ctx.kill(host) through the send-only Ref', () => ctx.kill(host, 'plugin says so'));
  await attempt("ctx.restrict(host, ['send', 'kill']): amplify the Ref", () =>
    ctx.restrict(host, ['send', 'kill']),
  );
  await attempt('ctx.monitor(host)', () => ctx.monitor(host));
  await attempt('ctx.spawn(...) without the spawn power', () => ctx.spawn('./plugin.ts', 'spinner', [host]));

  // Pollution: it works, but only on this realm's own intrinsics.
  await attempt(
    'Object.prototype.polluted = true',
    () => {
      (Object.prototype as unknown as Record<string, unknown>).polluted = true;
    },
    () => 'only this sandbox realm is polluted (the host checks its own)',
  );
  return results;
}

/** Says so, then loops for ever without awaiting: the CPU watchdog ends it. */
export async function spinner(ctx: SandboxContext, report: Ref): Promise<void> {
  ctx.send(report, { plugin: 'spinner', state: 'about to spin' });
  await new Promise((r) => setTimeout(r, 1));
  let n = 0;
  for (;;) n = (n + 1) | 0;
}

/**
 * Says so, then allocates without bound, yielding now and then (so that the
 * CPU watchdog is not the one that stops it): the heap limit ends it.
 */
export async function hog(ctx: SandboxContext, report: Ref): Promise<void> {
  ctx.send(report, { plugin: 'hog', state: 'about to allocate' });
  const keep: unknown[] = [];
  for (let i = 0; ; i++) {
    keep.push({ i, text: `item ${i} `.repeat(8), list: [i, i + 1, i + 2, i + 3] });
    if (i % 20_000 === 0) await new Promise((r) => setTimeout(r, 0));
  }
}
