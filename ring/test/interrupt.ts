/**
 * Deterministic stand-ins for a thread terminated at a chosen instruction.
 *
 * A terminated worker simply stops: whatever it stored before stays, nothing
 * after happens. In one thread the same state is reached by making the
 * chosen Atomics call throw (nothing of it or after it runs) and catching
 * that throw: the producer's slot and the ring then hold exactly what a
 * worker killed at that point would have left. The producer object is
 * abandoned afterwards, as the dead thread's would be.
 *
 * Faithful only on paths without `finally` blocks between the chosen call
 * and `body`: the throw runs them, a real termination runs none (for
 * those paths the tests terminate a real worker instead).
 */

class Terminated extends Error {
  override name = 'Terminated';
}

type AtomicsOp = 'compareExchange' | 'store' | 'wait';

/**
 * Runs `body`, "terminating" it when it reaches its `nth` (1-based) call of
 * `Atomics[op]`, before that call takes effect. With `before`, runs that first
 * (with the real Atomics), to interleave another thread's steps at that point.
 * With `after`, the nth call does take effect and termination comes right
 * after it. Returns whether the call was reached; if it was not, throws
 * unless `optional` (for a body that may legitimately return early, such as
 * a claim on a full ring).
 */
export function terminateAt(
  op: AtomicsOp,
  nth: number,
  body: () => unknown,
  options: { before?: () => void; after?: boolean; optional?: boolean } = {},
): boolean {
  const real = Atomics[op] as (...args: unknown[]) => unknown;
  let calls = 0;
  const patched = (...args: unknown[]) => {
    calls++;
    if (calls !== nth) return real.apply(Atomics, args);
    (Atomics as unknown as Record<AtomicsOp, unknown>)[op] = real;
    options.before?.();
    if (options.after === true) real.apply(Atomics, args);
    throw new Terminated(`terminated at Atomics.${op} call ${nth}`);
  };
  (Atomics as unknown as Record<AtomicsOp, unknown>)[op] = patched;
  try {
    body();
  } catch (error) {
    if (error instanceof Terminated) return true;
    throw error;
  } finally {
    (Atomics as unknown as Record<AtomicsOp, unknown>)[op] = real;
  }
  if (options.optional === true) return false;
  throw new Error(`body finished without reaching Atomics.${op} call ${nth}`);
}

/**
 * Runs `body`; the first time it atomically loads `i32[word]`, the load is
 * made and then `action` runs (with the real Atomics) before `body` goes on
 * with the loaded value: another thread's step, interleaved at that point.
 * Throws if `body` never loads that word.
 */
export function interleaveAfterLoad(word: number, action: () => void, body: () => unknown): void {
  const real = Atomics.load;
  let fired = false;
  const patched = (array: Int32Array, index: number) => {
    const value = real(array, index);
    if (!fired && index === word) {
      fired = true;
      Atomics.load = real;
      action();
    }
    return value;
  };
  Atomics.load = patched as typeof Atomics.load;
  try {
    body();
  } finally {
    Atomics.load = real;
  }
  if (!fired) throw new Error(`body never loaded word ${word}`);
}

/**
 * Runs `body`; right after its `nth` call of `Atomics.compareExchange` takes
 * effect, runs `action` (with the real Atomics), then lets `body` go on: a
 * second thread's steps interleaved between a producer's claim and the rest
 * of its write. Throws if the call is never reached.
 */
export function afterCompareExchange(nth: number, action: () => void, body: () => unknown): void {
  const real = Atomics.compareExchange;
  let calls = 0;
  let fired = false;
  const patched = (array: Int32Array, index: number, expected: number, replacement: number) => {
    const witnessed = real(array, index, expected, replacement);
    if (++calls === nth) {
      fired = true;
      Atomics.compareExchange = real;
      action();
    }
    return witnessed;
  };
  Atomics.compareExchange = patched as typeof Atomics.compareExchange;
  try {
    body();
  } finally {
    Atomics.compareExchange = real;
  }
  if (!fired) throw new Error(`body never reached Atomics.compareExchange call ${nth}`);
}
