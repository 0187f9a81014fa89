/**
 * Parking on a futex word without blocking the event loop.
 *
 * Node 20 does not count a pending `Atomics.waitAsync` as work that keeps the
 * event loop alive: a worker whose only business is an awaited write or
 * receive would simply exit in the middle of the wait (and a main thread would
 * end the process). So while a wait is pending we hold a ref'd timer, and drop
 * it when the wait settles. One timer per park, never per record.
 */

const KEEP_ALIVE_PERIOD_MS = 1 << 30;
const noop = () => {};

/**
 * Waits until `i32[index]` is notified or no longer holds `value`, or
 * `timeoutMs` passes. Returns undefined when the word already differs (no
 * wait was needed), else a promise that settles when the wait ends.
 */
export function parkAsync(
  i32: Int32Array,
  index: number,
  value: number,
  timeoutMs: number,
): Promise<unknown> | undefined {
  const result = Atomics.waitAsync(i32, index, value, timeoutMs);
  if (!result.async) return undefined;
  const keepAlive = setInterval(noop, KEEP_ALIVE_PERIOD_MS);
  return result.value.finally(() => clearInterval(keepAlive));
}
