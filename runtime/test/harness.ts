// What every runtime test file shares: the leak check (the post office back
// to the stats taken right after Runtime.start) and waiting for a down.

import { expect } from 'vitest';
import type { PostOfficeStats } from '../../core/index.ts';
import { isDown, type Runtime } from '../index.ts';

/** Stats without the fields that are not counts of things in use. */
export function comparable(stats: PostOfficeStats): Omit<PostOfficeStats, 'capacity' | 'retired'> {
  const { capacity: _c, retired: _r, ...rest } = stats;
  return rest;
}

/**
 * Receives whatever the host still holds (queued, or saved by selective
 * receives), dropping the Refs of downs in it. Reading the host's mailbox dry
 * also frees the producer slot of a dead worker whose last write went there.
 */
export async function drainHost(runtime: Runtime): Promise<void> {
  for (;;) {
    let m: unknown;
    try {
      m = await runtime.receive({ timeout: 0 });
    } catch {
      return;
    }
    if (isDown(m)) runtime.host.drop(m.ref);
  }
}

/**
 * The leak check: once every process the test started is gone, the post
 * office holds what it held after start (deaths reach the schedulers
 * asynchronously, hence the poll).
 */
export async function expectBaseline(runtime: Runtime, baseline: PostOfficeStats): Promise<void> {
  await drainHost(runtime);
  await expect
    .poll(() => comparable(runtime.stats()), { timeout: 5000, interval: 20 })
    .toEqual(comparable(baseline));
}

/** The reason carried by the down of `monitor` (its Ref dropped). */
export async function downOf(runtime: Runtime, monitor: number, timeout = 10_000): Promise<unknown> {
  const m = await runtime.receive({ timeout, match: (s) => isDown(s) && s.monitor === monitor });
  if (!isDown(m)) throw new Error('expected a down');
  runtime.host.drop(m.ref); // a down's ref holds the dead route's slot until dropped
  return m.reason;
}
