/** The lock-free bitmap allocator behind every pool and the heap. */

import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { Bitmap } from '../bitmap.ts';

function fresh(count: number): { bitmap: Bitmap; i32: Int32Array } {
  // One spare word on each side, as canaries: the allocator must never touch them.
  const words = Math.ceil(count / 32) + 2;
  const i32 = new Int32Array(new SharedArrayBuffer(words * 4));
  i32[0] = 0x5a5a5a5a;
  i32[words - 1] = 0x5a5a5a5a;
  const bitmap = new Bitmap(i32, 1, count);
  bitmap.init();
  return { bitmap, i32 };
}

function canariesIntact(i32: Int32Array): boolean {
  return i32[0] === 0x5a5a5a5a && i32[i32.length - 1] === 0x5a5a5a5a;
}

describe('Bitmap', () => {
  test('hands out every bit once, then reports full; freed bits come back', () => {
    const { bitmap, i32 } = fresh(70);
    const got = new Set<number>();
    for (let i = 0; i < 70; i++) got.add(bitmap.alloc());
    expect([...got].sort((a, b) => a - b)).toEqual(Array.from({ length: 70 }, (_, i) => i));
    expect(bitmap.alloc()).toBe(-1);
    bitmap.free(33);
    expect(bitmap.alloc()).toBe(33);
    expect(canariesIntact(i32)).toBe(true);
  });

  test('runs never overlap each other or single bits (model check)', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('run' as const), n: fc.integer({ min: 1, max: 70 }) }),
      fc.record({ kind: fc.constant('one' as const) }),
      fc.record({ kind: fc.constant('free' as const), k: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 200 }), fc.array(op, { maxLength: 200 }), (count, ops) => {
        const { bitmap, i32 } = fresh(count);
        const used = new Uint8Array(count);
        const held: [number, number][] = [];
        for (const o of ops) {
          if (o.kind === 'free') {
            if (held.length === 0) continue;
            const [start, n] = held.splice(o.k % held.length, 1)[0]!;
            bitmap.freeRun(start, n);
            used.fill(0, start, start + n);
            continue;
          }
          const n = o.kind === 'one' ? 1 : o.n;
          const start = o.kind === 'one' ? bitmap.alloc() : bitmap.allocRun(n);
          if (start < 0) {
            // Full: there really is no run of n free bits.
            let run = 0;
            let best = 0;
            for (let i = 0; i < count; i++) {
              run = used[i] ? 0 : run + 1;
              best = Math.max(best, run);
            }
            expect(best).toBeLessThan(n);
            continue;
          }
          expect(start + n).toBeLessThanOrEqual(count);
          for (let i = start; i < start + n; i++) {
            expect(used[i]).toBe(0);
            used[i] = 1;
          }
          held.push([start, n]);
        }
        for (let i = 0; i < count; i++) expect(bitmap.isSet(i)).toBe(used[i] === 1);
        expect(canariesIntact(i32)).toBe(true);
      }),
      { numRuns: 300, seed: 42 },
    );
  });
});
