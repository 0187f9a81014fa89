/**
 * The sandbox's realm: a fresh vm context with no code generation from
 * strings and no Wasm, the in-context half of the membrane (bootstrap.cjs)
 * evaluated in it first, and the untrusted module compiled into it.
 *
 * Loading a module. Only `file:` URLs. The source (ESM, JavaScript or
 * TypeScript) is transformed by esbuild to a CommonJS-shaped function body
 * with dynamic `import()` lowered to `require()`, and compiled with
 * vm.compileFunction as `function (exports, require, module)` in the
 * context; the `require` the membrane passes throws, so every import fails
 * (a static one when the module's top level runs, a dynamic one when it is
 * awaited). A dynamic `import()` that reached V8 would be rejected with an
 * error of the HOST realm (Node's missing-callback TypeError), which would
 * leak the host's Function: so the compiled text is checked, after a
 * second, minified transform that drops comments, to contain no `import(`
 * at all, and refused if it does (even one inside a string literal).
 */

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import { transformSync } from 'esbuild';

const BOOTSTRAP_SOURCE = readFileSync(new URL('./bootstrap.cjs', import.meta.url), 'utf8');

/** The host function of the membrane: primitives in, a string out, never throws. */
export type HostCall = (op: unknown, a: unknown, b: unknown, c: unknown, d: unknown) => string;

/**
 * The context functions the shim calls (bootstrap.cjs). They take and
 * return primitives, apart from `load`'s compiled module function, which is
 * the context's own.
 */
export interface RealmEntry {
  load(moduleFn: unknown, exportName: string): unknown;
  start(selfText: string, argsText: string): void;
  deliver(id: number, ok: boolean, payload: string): void;
  fire(id: number): void;
}

/** A module that cannot be loaded into a sandbox. `detail` may quote the file; `message` does not. */
export class LoadError extends Error {
  override name = 'LoadError';
  constructor(
    message: string,
    readonly detail: string,
  ) {
    super(message);
  }
}

export interface Realm {
  readonly entry: RealmEntry;
  /** Compiles module code (from `transformModule`) into the context as `function (exports, require, module)`. */
  compile(code: string, url: string): unknown;
}

export function createRealm(call: HostCall, powers: { spawn: boolean; log: boolean }): Realm {
  const context = vm.createContext(Object.create(null), {
    name: 'postern sandbox',
    codeGeneration: { strings: false, wasm: false },
  });
  const bootstrap = vm.runInContext(BOOTSTRAP_SOURCE, context, {
    filename: 'postern:sandbox/bootstrap.cjs',
  }) as (call: HostCall, config: string) => RealmEntry;
  const entry = bootstrap(call, JSON.stringify({ powers }));
  return {
    entry,
    compile(code: string, url: string): unknown {
      try {
        return vm.compileFunction(`"use strict";${code}`, ['exports', 'require', 'module'], {
          parsingContext: context,
          filename: url,
        });
      } catch (error) {
        throw new LoadError('the module does not compile', String((error as Error).message));
      }
    },
  };
}

/** Reads and transforms the module at `url` for `Realm.compile`. Throws LoadError. */
export function transformModule(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new LoadError(`'${url}' is not a URL`, '');
  }
  if (parsed.protocol !== 'file:') throw new LoadError('a sandboxed module must be a file: URL', url);
  let source: string;
  try {
    source = readFileSync(fileURLToPath(parsed), 'utf8');
  } catch (error) {
    throw new LoadError('cannot read the module', String((error as Error).message));
  }
  if (source.startsWith('#!')) source = `//${source.slice(2)}`; // a hashbang would not survive the "use strict" prefix
  const loader = /\.[cm]?tsx?$/.test(parsed.pathname) ? 'ts' : 'js';
  let code: string;
  let check: string;
  try {
    code = transformSync(source, {
      loader,
      format: 'cjs',
      target: 'es2022',
      sourcefile: url,
      tsconfigRaw: {},
      supported: { 'dynamic-import': false },
      logLevel: 'silent',
    }).code;
    check = transformSync(code, {
      loader: 'js',
      minifyWhitespace: true,
      legalComments: 'none',
      logLevel: 'silent',
    }).code;
  } catch (error) {
    throw new LoadError('the module does not compile', String((error as Error).message));
  }
  if (/(?<![.\w$])import\s*\(/.test(check)) {
    throw new LoadError('the module uses import(), which a sandbox does not have', url);
  }
  return code;
}
