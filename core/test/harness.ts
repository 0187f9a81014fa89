/**
 * Test harness: a small post office per test, and the leak check every test
 * ends with (stats back to the baseline taken right after creation).
 */

import { expect } from 'vitest';
import { PostOffice, type PostOfficeOptions, type PostOfficeStats, type Signal } from '../index.ts';

export const SMALL: PostOfficeOptions = {
  maxThreads: 16,
  maxRoutes: 256,
  maxGroups: 256,
  maxTables: 32,
  maxCapabilities: 4096,
  maxNodes: 4096,
  heapBytes: 1 << 20,
  mailboxCapacity: 1024,
  maxMessageBytes: 64 << 10,
};

export interface Harness {
  office: PostOffice;
  baseline: PostOfficeStats;
  /** Asserts that everything created since the baseline has been reclaimed. */
  expectNoLeaks(): void;
}

export function harness(options: PostOfficeOptions = {}): Harness {
  const office = PostOffice.create({ ...SMALL, ...options });
  const baseline = office.stats();
  return {
    office,
    baseline,
    expectNoLeaks() {
      const { capacity: _c, ...now } = office.stats();
      const { capacity: _b, ...base } = baseline;
      expect(now).toEqual(base);
    },
  };
}

export const bytes = (...values: number[]) => Uint8Array.from(values);
export const text = (s: string) => new TextEncoder().encode(s);
export const decode = (b: Uint8Array) => new TextDecoder().decode(b);

export function expectMessage(signal: Signal | null): { data: Uint8Array; caps: number[] } {
  expect(signal?.kind).toBe('message');
  if (signal?.kind !== 'message') throw new Error('unreachable');
  return signal;
}
