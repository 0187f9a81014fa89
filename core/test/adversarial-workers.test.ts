/**
 * Adversarial multi-worker tests: racing uses of one owned capability (the
 * bearer form must be single-use under a race). Workers run inline code
 * through the ts-worker shim, so this file needs no worker module of its own.
 */

import { Worker } from 'node:worker_threads';
import { describe, expect, test } from 'vitest';
import { Perm } from '../index.ts';
import { bytes, expectMessage, harness } from './harness.ts';

const SHIM = new URL('./ts-worker.mjs', import.meta.url);
const CORE = new URL('../index.ts', import.meta.url).href;

/**
 * Worker body: attach, wait on the start barrier, then try to import (or
 * discard) the token; report what happened; send one message through an
 * imported capability so the receiver can count winners; clean up.
 */
const BODY = `
import { parentPort, workerData } from 'node:worker_threads';
const { PostOffice } = await import(${JSON.stringify(CORE)});
const { buffer, owned, barrier, mode, id } = workerData;
const office = PostOffice.attach(buffer);
const table = office.createTable();
const gate = new Int32Array(barrier);
Atomics.add(gate, 0, 1);
while (Atomics.load(gate, 1) === 0) {}
let outcome;
try {
  if (mode === 'discard') {
    outcome = office.discardOwned(owned) ? 'discarded' : 'lost';
  } else {
    const h = table.importOwned(owned);
    table.send(h, new Uint8Array([id]));
    outcome = 'imported';
  }
} catch (error) {
  outcome = error.name;
}
table.close();
office.detach();
parentPort.postMessage({ outcome });
`;

function run(
  buffer: SharedArrayBuffer,
  owned: unknown,
  barrier: SharedArrayBuffer,
  mode: string,
  id: number,
) {
  const worker = new Worker(SHIM, {
    workerData: {
      __script: `data:text/javascript,${encodeURIComponent(BODY)}`,
      buffer,
      owned,
      barrier,
      mode,
      id,
    },
  });
  return new Promise<string>((resolve, reject) => {
    worker.on('message', (m: { outcome: string }) => resolve(m.outcome));
    worker.on('error', reject);
    worker.on('exit', (code) => {
      if (code !== 0) reject(new Error(`worker exited with ${code}`));
    });
  });
}

describe('owned capabilities under a race', () => {
  test('many workers import one token at once: exactly one wins, the others get InvalidHandle', async () => {
    const h = harness();
    const t = h.office.createTable();
    const mb = t.createGroup().createMailbox();
    const cap = mb.export(Perm.SEND);
    for (let round = 0; round < 2; round++) {
      const owned = t.toOwned(cap);
      const barrier = new SharedArrayBuffer(8);
      const gate = new Int32Array(barrier);
      const n = 4;
      const results = Array.from({ length: n }, (_, i) =>
        run(h.office.buffer, owned, barrier, i % 3 === 2 ? 'discard' : 'import', i + 1),
      );
      while (Atomics.load(gate, 0) < n) await new Promise((r) => setTimeout(r, 5));
      Atomics.store(gate, 1, 1);
      const outcomes = await Promise.all(results);
      const winners = outcomes.filter((o) => o === 'imported' || o === 'discarded');
      expect(winners.length).toBe(1);
      for (const o of outcomes) expect(['imported', 'discarded', 'lost', 'InvalidHandle']).toContain(o);
      const imported = outcomes.filter((o) => o === 'imported').length;
      let received = 0;
      for (let s = mb.tryReceive(); s !== null; s = mb.tryReceive()) {
        expectMessage(s);
        received++;
      }
      expect(received).toBe(imported);
      expect(h.office.stats().owned).toBe(0);
    }
    expect(t.send(cap, bytes(1))).toBe(true);
    t.close();
    h.expectNoLeaks();
  });
});
