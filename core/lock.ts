/**
 * A short mutex in one shared word (Drepper's "futex mutex 3"): 0 = free,
 * 1 = held, 2 = held and someone may be parked. Lockers spin briefly, then
 * park with Atomics.wait; the unlocker notifies only when the word says
 * someone may be parked.
 *
 * Used only on control paths (kill, link, unlink, monitor, demonitor, route
 * creation and freeing), never on send or receive. Lock order (documented
 * in README.md): group locks before route locks; two group locks in
 * ascending slot index; never two route locks; nothing is locked while a
 * route lock is held.
 */

const SPINS = 100;

export function lock(i32: Int32Array, word: number): void {
  if (Atomics.compareExchange(i32, word, 0, 1) === 0) return;
  for (let i = 0; i < SPINS; i++) {
    if (Atomics.load(i32, word) === 0 && Atomics.compareExchange(i32, word, 0, 1) === 0) return;
  }
  // Mark the lock contended; whoever held it will notify on unlock.
  let c = Atomics.exchange(i32, word, 2);
  while (c !== 0) {
    Atomics.wait(i32, word, 2);
    c = Atomics.exchange(i32, word, 2);
  }
}

export function unlock(i32: Int32Array, word: number): void {
  if (Atomics.exchange(i32, word, 0) === 2) Atomics.notify(i32, word, 1); // publishes everything written under the lock
}
