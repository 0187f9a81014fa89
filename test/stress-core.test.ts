// Regression tests for post-office bugs found by the stress harness (stress/core-faults.ts),
// written down in /tmp/core-bugs.txt. (A test marked `it.fails` would reproduce a bug that is
// still open; the forged-record checks below pass since core/mailbox.ts refuses such records with
// CorruptRecord.)

import { describe, expect, it } from 'vitest';
import { Perm, PostOffice, PostOfficeError } from '../core/index.ts';

function office() {
  const o = PostOffice.create({
    maxRoutes: 64,
    maxGroups: 32,
    maxTables: 8,
    maxCapabilities: 256,
    maxNodes: 256,
    heapBytes: 1 << 18,
  });
  const t = o.createTable();
  const mb = t.createGroup().createMailbox({ capacity: 2048 });
  return { o, t, mb, self: mb.export(Perm.SEND) };
}

/** Receives once; then a real message sent afterwards must be the next thing delivered. */
function receiveForgedThenReal(x: ReturnType<typeof office>): { first: string; real: boolean } {
  let first: string;
  try {
    const s = x.mb.tryReceive();
    first = s === null ? 'skipped' : s.kind;
  } catch (error) {
    first = error instanceof PostOfficeError ? 'refused' : `untyped ${(error as Error).name}`;
  }
  x.t.send(x.self, new Uint8Array([9, 9]));
  let real = false;
  for (let k = 0; k < 3 && !real; k++) {
    try {
      const s = x.mb.tryReceive();
      real = s?.kind === 'message' && s.data.length === 2;
    } catch {}
  }
  return { first, real };
}

describe('stress findings: the post office', () => {
  // core-bugs.txt [S1]: a record of a type the post office never writes is delivered as a message.
  it('skips or refuses a ring record of an unknown type', () => {
    const x = office();
    x.mb.ring.tryWrite(x.o.o.producer, 77, new Uint8Array([1, 2, 3]));
    const got = receiveForgedThenReal(x);
    expect(got.first === 'skipped' || got.first === 'refused').toBe(true);
    expect(got.real).toBe(true);
  });

  // core-bugs.txt [S1]: a capability record whose count exceeds its length imports entries until the
  // table's pool is full, then leaves the record at the head: every later receive throws.
  it('refuses a capability record with an impossible count, and keeps receiving', () => {
    const x = office();
    const payload = new Uint8Array(16);
    new DataView(payload.buffer).setInt32(0, 1 << 20, true);
    x.mb.ring.tryWrite(x.o.o.producer, 2, payload);
    const got = receiveForgedThenReal(x);
    expect(got.first).toBe('refused');
    expect(got.real).toBe(true);
  });

  // core-bugs.txt [S1]: an out-of-line record's heap offset is not checked: untyped RangeError.
  it('refuses an out-of-line record pointing outside the heap with a typed error', () => {
    const x = office();
    const payload = new Uint8Array(12);
    const view = new DataView(payload.buffer);
    view.setInt32(0, -64, true);
    view.setInt32(4, 8, true);
    x.mb.ring.tryWrite(x.o.o.producer, 3, payload);
    const got = receiveForgedThenReal(x);
    expect(got.first).toBe('refused');
    expect(got.real).toBe(true);
  });
});
