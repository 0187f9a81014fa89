// The in-context half of the sandbox membrane (see README.md, "The
// membrane"). This file is not a module: realm.ts evaluates it as a script
// in each sandbox's fresh vm context, before any untrusted code, and calls
// the function expression below ONCE with
//
//   call(op, a, b, c, d)   the only host function the context ever sees; it
//                          takes strings, numbers and booleans and returns a
//                          string: 'R' + value (an answer) or 'E' + error
//   config                 a JSON string: { powers: { spawn, log } }
//
// It returns a frozen object of context functions the trusted shim calls:
// load(moduleFn, exportName), start(args), deliver(op, ok, payload),
// fire(timer). From these it builds the whole process API (`ctx`) out of the
// context's own objects and promises, so that nothing of the host realm is
// ever reachable from sandboxed code: every host object carries the host's
// Function through `.constructor.constructor`, and with it `process`.
//
// Rules this file keeps:
// - `call` is referenced in one place (`host`), called directly, never
//   stored on an object, never passed as an argument.
// - A host exception never reaches sandboxed code: `host` catches without
//   binding what it caught and throws a context error instead (a host
//   RangeError from a stack overflow inside `call` would carry the host's
//   Function otherwise).
// - Error.prepareStackTrace is locked, so a stack trace hands no call sites
//   to sandboxed code.
// - Everything below is strict; intrinsics are captured before untrusted
//   code runs, so that polluting them later harms only the sandbox itself.
//
// Values cross as JSON text of a tagged tree (the wire format): strings,
// booleans, null and finite numbers other than -0 are themselves; anything
// else is an array whose first element is a tag:
//   ['u'] undefined            ['n', 'NaN' | 'Infinity' | '-Infinity' | '-0']
//   ['b', digits] bigint       ['a', ...items] array      ['o', k, v, ...] object
//   ['m', k, v, ...] Map       ['s', ...items] Set        ['d', time] Date
//   ['g', source, flags]       ['e', name, message] error
//   ['r', id] reference        ['q', id, value] request
//   ['D', ref, monitor, reason] down signal   ['X', ref | null, reason] exit signal
// A reference is an opaque frozen handle here and a number (an id private to
// this sandbox's shim) on the wire.

(function bootstrap(call, config) {
  'use strict';

  // ---------------------------------------------------------------- intrinsics, captured first

  const { apply, defineProperty, getPrototypeOf, setPrototypeOf } = Reflect;
  const { create, freeze, keys } = Object;
  const isArray = Array.isArray;
  const { parse, stringify } = JSON;
  const NativeError = Error;
  const NativeTypeError = TypeError;
  const NativeRangeError = RangeError;
  const NativePromise = Promise;
  const NativeMap = Map;
  const NativeSet = Set;
  const NativeWeakMap = WeakMap;
  const NativeWeakSet = WeakSet;
  const NativeDate = Date;
  const NativeRegExp = RegExp;
  const NativeBigInt = BigInt;
  const NativeString = String;
  const NativeNumber = Number;
  const dateNow = Date.now;
  const numberIsNaN = Number.isNaN;
  const promiseThen = Promise.prototype.then;
  const promiseResolve = Promise.resolve;
  const mapGet = Map.prototype.get;
  const mapSet = Map.prototype.set;
  const mapDelete = Map.prototype.delete;
  const mapForEach = Map.prototype.forEach;
  const mapSize = Reflect.getOwnPropertyDescriptor(Map.prototype, 'size').get;
  const setAdd = Set.prototype.add;
  const setForEach = Set.prototype.forEach;
  const setSize = Reflect.getOwnPropertyDescriptor(Set.prototype, 'size').get;
  const weakMapGet = WeakMap.prototype.get;
  const weakMapSet = WeakMap.prototype.set;
  const weakSetAdd = WeakSet.prototype.add;
  const weakSetHas = WeakSet.prototype.has;
  const dateGetTime = Date.prototype.getTime;
  const regExpSource = Reflect.getOwnPropertyDescriptor(RegExp.prototype, 'source').get;
  const regExpFlags = Reflect.getOwnPropertyDescriptor(RegExp.prototype, 'flags').get;
  const stringSlice = String.prototype.slice;
  const stringCharCode = String.prototype.charCodeAt;
  const arrayJoin = Array.prototype.join;
  const bigintToString = BigInt.prototype.toString;
  const ErrorPrototype = Error.prototype;
  const RegExpPrototype = RegExp.prototype;
  const global = globalThis;

  const { powers } = parse(config);
  const MAX_DEPTH = 512;
  const MAX_TIMER_MS = 2 ** 31 - 1;

  // ---------------------------------------------------------------- the context's global object

  // Stack traces hand out call sites (with functions and receivers) to this hook: locked off. Node
  // looks the hook up as globalThis.Error.prepareStackTrace of the error's realm, so the global's
  // `Error` binding is locked too (a replacement object could carry a hook of its own).
  defineProperty(NativeError, 'prepareStackTrace', {
    value: undefined,
    writable: false,
    configurable: false,
  });
  defineProperty(global, 'Error', {
    value: NativeError,
    writable: false,
    enumerable: false,
    configurable: false,
  });
  // No shared memory, no Wasm, no inspector console, and nothing that allocates outside the V8 heap
  // (ArrayBuffer backing stores, ICU objects behind Intl): that memory would escape the heap limit.
  for (const name of [
    'Intl',
    'SharedArrayBuffer',
    'Atomics',
    'WebAssembly',
    'ArrayBuffer',
    'DataView',
    'Int8Array',
    'Uint8Array',
    'Uint8ClampedArray',
    'Int16Array',
    'Uint16Array',
    'Int32Array',
    'Uint32Array',
    'Float32Array',
    'Float64Array',
    'BigInt64Array',
    'BigUint64Array',
    'console',
  ]) {
    delete global[name];
  }

  // ---------------------------------------------------------------- small helpers

  function def(target, key, value) {
    defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
  }

  function list() {
    return [];
  }

  function add(array, value) {
    def(array, array.length, value);
  }

  function fn(name, f) {
    defineProperty(f, 'name', { value: name });
    return freeze(f);
  }

  function makeError(name, message) {
    const C = name === 'TypeError' ? NativeTypeError : name === 'RangeError' ? NativeRangeError : NativeError;
    const error = new C(NativeString(message));
    if (C === NativeError && name !== 'Error') {
      defineProperty(error, 'name', {
        value: NativeString(name),
        writable: true,
        enumerable: false,
        configurable: true,
      });
    }
    return error;
  }

  function isBranded(getter, value) {
    try {
      apply(getter, value, []);
      return true;
    } catch {
      return false;
    }
  }

  function isError(value) {
    for (let p = getPrototypeOf(value); p !== null; p = getPrototypeOf(p))
      if (p === ErrorPrototype) return true;
    return false;
  }

  /** [name, message, stack] of a thrown value, read without letting anything it throws escape. */
  function describe(error) {
    try {
      if (error !== null && (typeof error === 'object' || typeof error === 'function') && isError(error)) {
        const stack = error.stack;
        return [
          NativeString(error.name),
          NativeString(error.message),
          typeof stack === 'string' ? stack : '',
        ];
      }
      return ['NonError', NativeString(error), ''];
    } catch {
      return ['NonError', 'a value that cannot be printed', ''];
    }
  }

  /** The wire tree of the reason a thrown value ends the process with: its `exit` reason, or an ErrorReason. */
  function reasonOf(error) {
    if (error !== null && typeof error === 'object') {
      const exit = apply(weakMapGet, exitReasons, [error]);
      if (exit !== undefined) return exit;
    }
    const d = describe(error);
    const tree = ['o', 'kind', 'error', 'name', d[0], 'message', d[1]];
    if (d[2] !== '') {
      add(tree, 'stack');
      add(tree, d[2]);
    }
    return stringify(tree);
  }

  // ---------------------------------------------------------------- the one host call

  /** Calls the host; returns the decoded answer or throws a context error. */
  function host(op, a, b, c, d) {
    let answer;
    try {
      answer = call(op, a, b, c, d);
    } catch {
      throw makeError('RuntimeError', 'the sandbox host could not serve this call');
    }
    if (typeof answer !== 'string' || answer.length === 0)
      throw makeError('RuntimeError', 'malformed host answer');
    const body = apply(stringSlice, answer, [1]);
    if (apply(stringCharCode, answer, [0]) === 69 /* 'E' */) throw errorOf(body);
    return body.length === 0 ? undefined : decode(body);
  }

  function errorOf(text) {
    let name = 'RuntimeError';
    let message = 'malformed host error';
    try {
      const e = parse(text);
      if (isArray(e) && typeof e[0] === 'string' && typeof e[1] === 'string') {
        name = e[0];
        message = e[1];
      }
    } catch {}
    return makeError(name, message);
  }

  // ---------------------------------------------------------------- references, requests, signals

  const RefPrototype = freeze(
    create(null, {
      toString: { value: fn('toString', () => 'Ref') },
      [Symbol.toStringTag]: { value: 'Ref' },
    }),
  );
  const RequestPrototype = freeze(
    create(null, {
      toString: { value: fn('toString', () => 'Request') },
      [Symbol.toStringTag]: { value: 'Request' },
    }),
  );
  /** Handle → wire id; and the one handle of each id (identity is stable while it lives). */
  const refIds = new NativeWeakMap();
  const handles = new NativeMap();
  const requestIds = new NativeWeakMap();
  const downs = new NativeWeakSet();
  const exits = new NativeWeakSet();
  /** What `exit` throws to unwind the process function → its reason, encoded. */
  const exitReasons = new NativeWeakMap();

  function handleFor(id) {
    let h = apply(mapGet, handles, [id]);
    if (h === undefined) {
      h = freeze(create(RefPrototype));
      apply(weakMapSet, refIds, [h, id]);
      apply(mapSet, handles, [id, h]);
    }
    return h;
  }

  function idOf(ref, what) {
    const id = ref !== null && typeof ref === 'object' ? apply(weakMapGet, refIds, [ref]) : undefined;
    if (id === undefined) throw makeError('TypeError', `${what}: expected a Ref, got ${typeof ref}`);
    return id;
  }

  // ---------------------------------------------------------------- values to and from the wire

  function encode(value) {
    let tree;
    try {
      tree = enc(value, 0);
    } catch (error) {
      if (error instanceof NativeRangeError)
        throw makeError('EncodeError', 'the value is cyclic or nested too deeply');
      throw error;
    }
    return stringify(tree);
  }

  function enc(v, depth) {
    switch (typeof v) {
      case 'string':
      case 'boolean':
        return v;
      case 'number':
        if (numberIsNaN(v)) return ['n', 'NaN'];
        if (v === 1 / 0) return ['n', 'Infinity'];
        if (v === -1 / 0) return ['n', '-Infinity'];
        if (v === 0 && 1 / v < 0) return ['n', '-0'];
        return v;
      case 'undefined':
        return ['u'];
      case 'bigint':
        return ['b', apply(bigintToString, v, [])];
      case 'symbol':
        throw makeError('EncodeError', 'symbols cannot be sent');
      case 'function':
        throw makeError('EncodeError', 'functions cannot be sent');
    }
    if (v === null) return null;
    if (depth > MAX_DEPTH) throw makeError('EncodeError', 'the value is cyclic or nested too deeply');
    const d = depth + 1;
    let id = apply(weakMapGet, refIds, [v]);
    if (id !== undefined) return ['r', id];
    id = apply(weakMapGet, requestIds, [v]);
    if (id !== undefined) return ['q', id, ['u']];
    const out = list();
    if (isArray(v)) {
      add(out, 'a');
      const n = v.length;
      for (let i = 0; i < n; i++) add(out, enc(v[i], d));
    } else if (isBranded(mapSize, v)) {
      add(out, 'm');
      apply(mapForEach, v, [
        (value, key) => {
          add(out, enc(key, d));
          add(out, enc(value, d));
        },
      ]);
    } else if (isBranded(setSize, v)) {
      add(out, 's');
      apply(setForEach, v, [(value) => add(out, enc(value, d))]);
    } else if (isBranded(dateGetTime, v)) {
      add(out, 'd');
      add(out, enc(apply(dateGetTime, v, []), d));
    } else if (v !== RegExpPrototype && isBranded(regExpSource, v)) {
      // (RegExp.prototype itself passes the brand check: it is sent as an object, below.)
      add(out, 'g');
      add(out, apply(regExpSource, v, []));
      add(out, apply(regExpFlags, v, []));
    } else if (isError(v)) {
      const e = describe(v);
      return ['e', e[0], e[1]];
    } else {
      add(out, 'o');
      const names = keys(v);
      const n = names.length;
      for (let i = 0; i < n; i++) {
        const k = names[i];
        add(out, k);
        add(out, enc(v[k], d));
      }
    }
    return out;
  }

  function decode(text) {
    return dec(parse(text), 0);
  }

  function dec(n, depth) {
    if (n === null || typeof n !== 'object') return n;
    if (!isArray(n) || depth > MAX_DEPTH) throw makeError('DecodeError', 'malformed value');
    const d = depth + 1;
    const length = n.length;
    switch (n[0]) {
      case 'u':
        return undefined;
      case 'n':
        return n[1] === 'NaN' ? 0 / 0 : n[1] === 'Infinity' ? 1 / 0 : n[1] === '-Infinity' ? -1 / 0 : -0;
      case 'b':
        return NativeBigInt(n[1]);
      case 'a': {
        const a = list();
        for (let i = 1; i < length; i++) def(a, i - 1, dec(n[i], d));
        return a;
      }
      case 'o': {
        const o = {};
        for (let i = 1; i + 1 < length; i += 2) def(o, NativeString(n[i]), dec(n[i + 1], d));
        return o;
      }
      case 'm': {
        const m = new NativeMap();
        for (let i = 1; i + 1 < length; i += 2) apply(mapSet, m, [dec(n[i], d), dec(n[i + 1], d)]);
        return m;
      }
      case 's': {
        const s = new NativeSet();
        for (let i = 1; i < length; i++) apply(setAdd, s, [dec(n[i], d)]);
        return s;
      }
      case 'd':
        return new NativeDate(dec(n[1], d));
      case 'g':
        return new NativeRegExp(NativeString(n[1]), NativeString(n[2]));
      case 'e':
        return makeError(NativeString(n[1]), NativeString(n[2]));
      case 'r':
        return handleFor(NativeNumber(n[1]));
      case 'q': {
        const request = freeze(
          create(RequestPrototype, { value: { value: dec(n[2], d), enumerable: true } }),
        );
        apply(weakMapSet, requestIds, [request, NativeNumber(n[1])]);
        return request;
      }
      case 'D': {
        const down = freeze({ kind: 'down', ref: dec(n[1], d), monitor: n[2], reason: dec(n[3], d) });
        apply(weakSetAdd, downs, [down]);
        return down;
      }
      case 'X': {
        const exit = freeze({ kind: 'exit', from: dec(n[1], d), reason: dec(n[2], d) });
        apply(weakSetAdd, exits, [exit]);
        return exit;
      }
    }
    throw makeError('DecodeError', 'malformed value');
  }

  // ---------------------------------------------------------------- asynchronous host operations

  /** Pending operations by id: { resolve, reject }. The host answers through `deliver`. */
  const pending = new NativeMap();
  let nextOp = 1;

  function begin(op, a, b, c) {
    const id = nextOp++;
    return new NativePromise((resolve, reject) => {
      host(op, id, a, b, c); // throws (rejecting the promise) when the host refuses at once
      apply(mapSet, pending, [id, { resolve, reject }]);
    });
  }

  function deliver(id, ok, payload) {
    const p = apply(mapGet, pending, [id]);
    if (p === undefined) return;
    apply(mapDelete, pending, [id]);
    try {
      if (ok) p.resolve(payload.length === 0 ? undefined : decode(payload));
      else p.reject(errorOf(payload));
    } catch (error) {
      p.reject(error);
    }
  }

  // ---------------------------------------------------------------- timers

  const timers = new NativeMap();
  let nextTimer = 1;

  function delayOf(ms) {
    const n = NativeNumber(ms);
    return n >= 1 ? (n > MAX_TIMER_MS ? MAX_TIMER_MS : n - (n % 1)) : 1;
  }

  function schedule(callback, ms, args, repeat) {
    if (typeof callback !== 'function') throw makeError('TypeError', 'the callback must be a function');
    const id = nextTimer++;
    const delay = delayOf(ms);
    apply(mapSet, timers, [id, { callback, args, repeat: repeat ? delay : 0 }]);
    host('timer', id, delay);
    return id;
  }

  function unschedule(id) {
    if (apply(mapDelete, timers, [id])) host('untimer', id);
  }

  function fire(id) {
    const t = apply(mapGet, timers, [id]);
    if (t === undefined) return;
    if (t.repeat === 0) apply(mapDelete, timers, [id]);
    else host('timer', id, t.repeat);
    apply(t.callback, undefined, t.args);
  }

  /** An exception nobody caught (a timer, a microtask): the process ends with it, as a Node process would. */
  function uncaught(error) {
    try {
      host('fail', reasonOf(error));
    } catch {}
  }

  defineProperty(global, 'setTimeout', {
    value: fn('setTimeout', (callback, ms, ...args) => schedule(callback, ms, args, false)),
    writable: true,
    configurable: true,
  });
  defineProperty(global, 'setInterval', {
    value: fn('setInterval', (callback, ms, ...args) => schedule(callback, ms, args, true)),
    writable: true,
    configurable: true,
  });
  defineProperty(global, 'clearTimeout', {
    value: fn('clearTimeout', unschedule),
    writable: true,
    configurable: true,
  });
  defineProperty(global, 'clearInterval', {
    value: fn('clearInterval', unschedule),
    writable: true,
    configurable: true,
  });
  defineProperty(global, 'queueMicrotask', {
    value: fn('queueMicrotask', (callback) => {
      if (typeof callback !== 'function') throw makeError('TypeError', 'the callback must be a function');
      apply(promiseThen, apply(promiseResolve, NativePromise, []), [
        () => {
          try {
            callback();
          } catch (error) {
            uncaught(error);
          }
        },
      ]);
    }),
    writable: true,
    configurable: true,
  });

  // ---------------------------------------------------------------- the process API

  let ended = false;

  function checkPerms(perms) {
    if (!isArray(perms)) throw makeError('TypeError', 'restrict: perms must be an array');
    return encode(perms);
  }

  function timeoutOf(options, fallback) {
    if (options === undefined || options === null) return fallback;
    const t = options.timeout;
    if (t === undefined) return fallback;
    const n = NativeNumber(t);
    if (!(n >= 0))
      throw makeError('RangeError', `timeout must be a non-negative number, got ${NativeString(t)}`);
    return n === 1 / 0 ? -1 : n;
  }

  function denied(power) {
    return makeError('PowerDenied', `this sandbox was not given the '${power}' power`);
  }

  const saved = list();
  let receiving = false;

  async function receive(options) {
    if (receiving) throw makeError('RuntimeError', 'a receive of this process is already waiting');
    const timeout = timeoutOf(options, -1);
    const match = options === undefined || options === null ? undefined : options.match;
    if (match !== undefined && typeof match !== 'function')
      throw makeError('TypeError', 'match must be a function');
    for (let i = 0; i < saved.length; i++) {
      const signal = saved[i];
      if (match === undefined || match(signal)) {
        for (let j = i; j + 1 < saved.length; j++) saved[j] = saved[j + 1];
        saved.length--;
        return signal;
      }
    }
    receiving = true;
    try {
      const deadline = timeout === -1 ? -1 : dateNow() + timeout;
      for (;;) {
        let left = -1;
        if (deadline !== -1) {
          left = deadline - dateNow();
          if (left < 0) left = 0;
        }
        let signal;
        try {
          signal = await begin('receive', left);
        } catch (error) {
          if (error.name === 'ReceiveTimeout')
            throw makeError('ReceiveTimeout', `nothing received within ${timeout} ms`);
          throw error;
        }
        if (match === undefined || match(signal)) return signal;
        add(saved, signal);
      }
    } finally {
      receiving = false;
    }
  }

  async function spawnWith(moduleUrl, exportName, args, options, link) {
    if (!powers.spawn) throw denied('spawn');
    if (args === undefined) args = list();
    if (!isArray(args)) throw makeError('TypeError', 'spawn: args must be an array');
    const capacity = options === undefined || options === null ? undefined : options.mailboxCapacity;
    return begin(
      'spawn',
      encode([
        NativeString(moduleUrl),
        NativeString(exportName),
        args,
        capacity === undefined ? null : capacity,
      ]),
      !!link,
    );
  }

  function makeContext(self, args) {
    const api = {
      self,
      args,
      receive: fn('receive', receive),
      send: fn('send', (ref, value) => host('send', idOf(ref, 'send'), encode(value))),
      sendWhenRoom: fn('sendWhenRoom', (ref, value, options) =>
        begin('sendWhenRoom', idOf(ref, 'sendWhenRoom'), encode(value), timeoutOf(options, -1)),
      ),
      request: fn('request', (ref, value, options) =>
        begin('request', idOf(ref, 'request'), encode(value), timeoutOf(options, 5000)),
      ),
      reply: fn('reply', (request, value) => {
        const id =
          request !== null && typeof request === 'object'
            ? apply(weakMapGet, requestIds, [request])
            : undefined;
        if (id === undefined) throw makeError('TypeError', 'reply: expected a Request');
        return host('reply', id, encode(value));
      }),
      spawn: fn('spawn', (moduleUrl, exportName, args, options) =>
        spawnWith(moduleUrl, exportName, args, options, false),
      ),
      spawnLink: fn('spawnLink', (moduleUrl, exportName, args, options) =>
        spawnWith(moduleUrl, exportName, args, options, true),
      ),
      spawnMonitor: fn('spawnMonitor', async (moduleUrl, exportName, args, options) => {
        const ref = await spawnWith(moduleUrl, exportName, args, options, false);
        return freeze({ ref, monitor: host('monitor', idOf(ref, 'monitor')) });
      }),
      link: fn('link', (ref) => host('link', idOf(ref, 'link'))),
      unlink: fn('unlink', (id) => host('unlink', NativeNumber(id))),
      monitor: fn('monitor', (ref) => host('monitor', idOf(ref, 'monitor'))),
      demonitor: fn('demonitor', (id) => host('demonitor', NativeNumber(id))),
      kill: fn('kill', (ref, reason) =>
        host('kill', idOf(ref, 'kill'), reason === undefined ? '' : encode(reason)),
      ),
      exit: fn('exit', (reason) => {
        const encoded = encode(reason === undefined ? 'normal' : reason);
        host('checkReason', encoded); // an unencodable reason is the caller's error, thrown here
        const signal = freeze(create(null));
        apply(weakMapSet, exitReasons, [signal, encoded]);
        throw signal;
      }),
      trapExits: fn('trapExits', (on) => host('trapExits', !!on)),
      sendAfter: fn('sendAfter', (ref, value, ms) => {
        const n = NativeNumber(ms);
        if (!(n >= 0))
          throw makeError('RangeError', `ms must be a non-negative number, got ${NativeString(ms)}`);
        const timer = host('sendAfter', idOf(ref, 'sendAfter'), encode(value), n);
        return freeze({ cancel: fn('cancel', () => host('cancel', timer)) });
      }),
      restrict: fn('restrict', (ref, perms) => host('restrict', idOf(ref, 'restrict'), checkPerms(perms))),
      permissions: fn('permissions', (ref) => host('permissions', idOf(ref, 'permissions'))),
      same: fn('same', (a, b) => host('same', idOf(a, 'same'), idOf(b, 'same'))),
      drop: fn('drop', (ref) => {
        const id = idOf(ref, 'drop');
        host('drop', id);
        apply(mapDelete, handles, [id]);
      }),
      // Sandbox extras: the guards (a sandbox cannot import runtime/), and the log power.
      isRequest: fn('isRequest', (value) => apply(weakMapGet, requestIds, [value]) !== undefined),
      isDown: fn('isDown', (value) => apply(weakSetHas, downs, [value])),
      isExit: fn('isExit', (value) => apply(weakSetHas, exits, [value])),
      log: fn('log', (...parts) => {
        if (!powers.log) throw denied('log');
        const texts = list();
        for (let i = 0; i < parts.length; i++) add(texts, NativeString(parts[i]));
        host('log', apply(arrayJoin, texts, [' ']));
      }),
    };
    setPrototypeOf(api, null);
    return freeze(api);
  }

  // ---------------------------------------------------------------- the entry points the shim calls

  let main;

  const requireNothing = fn('require', (specifier) => {
    throw makeError('Error', `cannot import '${NativeString(specifier)}': a sandboxed module has no imports`);
  });

  /** Runs the module's top level and finds the process function. Returns '' or why it failed. */
  function load(moduleFn, exportName) {
    try {
      const module = { exports: {} };
      apply(moduleFn, undefined, [module.exports, requireNothing, module]);
      const f =
        module.exports === null || module.exports === undefined ? undefined : module.exports[exportName];
      if (typeof f !== 'function') return `the module has no exported function '${exportName}'`;
      main = f;
      return '';
    } catch (error) {
      const e = describe(error);
      return `the module threw ${e[0]}: ${e[1]}`;
    }
  }

  function settle(error, failed) {
    if (ended) return;
    ended = true;
    try {
      host('end', failed ? reasonOf(error) : '"normal"');
    } catch {}
  }

  /** Calls the process function with its context and arguments; the process ends when it settles. */
  function start(selfText, argsText) {
    const self = decode(selfText);
    const args = freeze(decode(argsText));
    const ctx = makeContext(self, args);
    const callArgs = list();
    add(callArgs, ctx);
    for (let i = 0; i < args.length; i++) add(callArgs, args[i]);
    let result;
    try {
      result = apply(main, undefined, callArgs);
    } catch (error) {
      settle(error, true);
      return;
    }
    let promise;
    try {
      promise = apply(promiseResolve, NativePromise, [result]);
    } catch (error) {
      settle(error, true);
      return;
    }
    apply(promiseThen, promise, [() => settle(undefined, false), (error) => settle(error, true)]);
  }

  // What the shim calls never throws back at it: a failure is the process's own uncaught exception.
  return freeze({
    load,
    start: (selfText, argsText) => {
      try {
        start(selfText, argsText);
      } catch (error) {
        uncaught(error);
      }
    },
    deliver: (id, ok, payload) => {
      try {
        deliver(id, ok, payload);
      } catch (error) {
        uncaught(error);
      }
    },
    fire: (id) => {
      try {
        fire(id);
      } catch (error) {
        uncaught(error);
      }
    },
  });
});
