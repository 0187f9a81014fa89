/**
 * What the core-mixed scenario's main thread and its workers share: the
 * control words, the killed-group flags, the messages they exchange, and the
 * test-level identities of mailboxes and groups.
 *
 * Identities. The post office names routes by slot and generation, which a
 * test cannot see through a handle. So every worker numbers its own groups
 * and mailboxes (serials, from 0 for the home group and its mailbox), and
 * every capability that travels in a message is described in the message
 * body by (owner worker, group serial, mailbox serial, permissions). A key
 * packs (owner, serial) in one number.
 */

import type { OwnedCapability } from '../core/index.ts';

/** Control words (Int32Array over `control`). */
export const CTRL_STOP = 0; // main sets 1: stop the random operations
export const CTRL_DONE = 1; // each worker adds 1 once its operations are over: the quiescence barrier
export const CTRL_ABORT = 2; // main sets 1 when the round failed: workers stop waiting and exit
export const CTRL_FLAGS = 16; // closed-route flags from here, MAILBOX_SERIAL_LIMIT per worker

/**
 * A worker's mailboxes per round. The flag of (owner, mailbox serial) is set,
 * after the fact, by whoever knows the route is closed: a killer once
 * kill() returned (closed already, or closed by that kill), the owner once
 * it read its group dead or its end, a prober once the immediate down came.
 * A sender that reads the flag set before it sends has started its send
 * after the close (after the kill returned), so the message must never be
 * delivered; the body says so.
 */
export const MAILBOX_SERIAL_LIMIT = 1 << 13;

export function controlBytes(workers: number): number {
  return (CTRL_FLAGS + workers * MAILBOX_SERIAL_LIMIT) * 4;
}

export function flagIndex(owner: number, mailboxSerial: number): number {
  return CTRL_FLAGS + owner * MAILBOX_SERIAL_LIMIT + mailboxSerial;
}

const KEY_SPAN = 2 ** 24;

/** One number for (owner worker, serial): a mailbox key or a group key. */
export function key(owner: number, serial: number): number {
  return owner * KEY_SPAN + serial;
}

export function keyOwner(k: number): number {
  return Math.floor(k / KEY_SPAN);
}

export function keySerial(k: number): number {
  return k % KEY_SPAN;
}

export function showKey(k: number): string {
  return `${keyOwner(k)}.${keySerial(k)}`;
}

export interface WorkerInit {
  buffer: SharedArrayBuffer;
  control: SharedArrayBuffer;
  worker: number;
  workers: number;
  seed: number;
}

export type Fate = 'open' | 'closed' | 'killed';

/** Everything a worker knows at the quiescent point, for the cross-worker checks. */
export interface WorkerReport {
  worker: number;
  counts: Record<string, number>;
  faults: number;
  /** Per destination mailbox key: messages accepted (send returned true). */
  sent: [mailbox: number, accepted: number][];
  /** Per own mailbox key and sender: messages delivered (always a gap-free prefix, checked as they came). */
  received: [mailbox: number, sender: number, delivered: number][];
  /** Every own mailbox ever created: open at the end, or the reason its end reported. */
  fates: [mailbox: number, fate: Fate][];
  /** Every monitor this worker placed. */
  monitors: {
    watched: number;
    downs: number;
    reason: Fate | null;
    demonitored: boolean;
    watcherOpen: boolean;
  }[];
  /** Every own group ever created and whether it is dead (released groups were dead). */
  groups: [group: number, dead: boolean][];
  /** Links this worker made and did not unlink: (own group key, partner group key). */
  links: [own: number, partner: number][];
}

export type ToMain =
  | { kind: 'hello'; tokens: (OwnedCapability | null)[] }
  | { kind: 'report'; report: WorkerReport }
  | { kind: 'closed' }
  | { kind: 'violation'; message: string };

export type FromMain = { kind: 'peers'; tokens: (OwnedCapability | null)[] } | { kind: 'teardown' };
