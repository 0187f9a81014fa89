// Regression tests for runtime bugs found by the stress harness (stress/runtime-mixed.ts),
// written down in /tmp/runtime-bugs.txt. A test marked `it.fails` reproduces a bug that is
// still open: it passes while the bug is there. When the bug is fixed it fails; then drop
// `.fails` (and the matching entry of DEFECTS in stress/runtime-journal.ts).

import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PostOfficeStats } from '../core/index.ts';
import { Perm } from '../core/index.ts';
import { ReceiveTimeout, Ref, Runtime } from '../runtime/index.ts';

const PROCS = new URL('../stress/fixtures/regressions.procs.ts', import.meta.url).href;

let runtime: Runtime;
let baseline: PostOfficeStats;

beforeEach(async () => {
  runtime = await Runtime.start({ workers: 2 });
  baseline = runtime.stats();
});

afterEach(async () => {
  await runtime.shutdown();
});

async function expectBaseline(): Promise<void> {
  const { capacity: _c, retired: _r, ...want } = baseline;
  await expect
    .poll(
      () => {
        const { capacity: _c2, retired: _r2, ...now } = runtime.stats();
        return now;
      },
      { timeout: 5000, interval: 20 },
    )
    .toEqual(want);
}

describe('stress findings: the runtime', () => {
  // runtime-bugs.txt #1: a process waiting for room (sendWhenRoom) on a worker that crashes
  // leaves the target's ring pinned and the references of the prepared record held for good.
  it('reclaims a waiting sendWhenRoom of a crashed worker (pin and references)', async () => {
    const sink = await runtime.spawn(PROCS, 'sink', [], { worker: 0, mailboxCapacity: 256 });
    const flooder = await runtime.spawn(PROCS, 'flooder', [sink, runtime.host.self], { worker: 1 });
    expect(await runtime.receive({ timeout: 5000 })).toBe('waiting');
    const replaced = new Promise<void>((resolve) => {
      runtime.onWorkerReplaced = () => resolve();
    });
    const crasher = await runtime.spawn(PROCS, 'crashWorker', [], { worker: 1 });
    await replaced;
    runtime.kill(sink);
    for (const r of [sink, flooder, crasher]) runtime.host.drop(r);
    await expectBaseline();
  });

  // runtime-bugs.txt #2: a child that ends during its first synchronous run makes a local
  // spawn throw InvalidHandle ('this table is closed') instead of returning its Ref.
  it('returns a Ref for a child that ended during its first synchronous run', async () => {
    const p = await runtime.spawn(PROCS, 'spawnsShortLived', [PROCS, runtime.host.self], { worker: 0 });
    expect(await runtime.receive({ timeout: 5000 })).toEqual({ spawned: true, same: true });
    runtime.host.drop(p);
    await expectBaseline();
  });

  // runtime-bugs.txt #3: shutdown while a crashed worker is being replaced throws InvalidHandle
  // ('this table is closed') from the main thread's 'ready' handler (an uncaught exception) and
  // never stops the replacement worker. Run in a process of its own (the exception is uncaught).
  it('shuts down cleanly while a crashed worker is being replaced', () => {
    const script = fileURLToPath(
      new URL('../stress/fixtures/shutdown-during-replacement.ts', import.meta.url),
    );
    const tsx = fileURLToPath(new URL('../node_modules/tsx/dist/cli.mjs', import.meta.url));
    const out = execFileSync(process.execPath, [tsx, script], { encoding: 'utf8', timeout: 60_000 });
    expect(JSON.parse(out.trim().split('\n').pop()!)).toEqual({ uncaught: [], replacementExited: true });
  });

  // runtime-bugs.txt #4: a malformed message carrying capabilities makes the receiver release
  // them twice (decode's `unused` and toReceived's catch both list them): receive throws
  // InvalidHandle, and from then on every receive of that process throws (the leftover handles
  // stay in its unusedCaps list). Only forged or corrupted bytes can do it (host level).
  it('skips a malformed message with capabilities and keeps receiving', async () => {
    const table = Ref.tableOf(runtime.host.self)!;
    const self = Ref.handleOf(runtime.host.self);
    const cap = table.demote(self, Perm.SEND);
    // A Ref extension (0xd4 0x50) naming capability 0, twice: "capability 0 is referenced twice".
    table.send(self, new Uint8Array([0x92, 0xd4, 0x50, 0x00, 0xd4, 0x50, 0x00]), [cap, cap]);
    table.release(cap);
    await expect(runtime.receive({ timeout: 50 })).rejects.toThrow(ReceiveTimeout);
    runtime.send(runtime.host.self, 'after');
    expect(await runtime.receive({ timeout: 1000 })).toBe('after');
    await expectBaseline();
  });

  // runtime-bugs.txt #7: the control routes the main thread posts to a worker as owned tokens
  // (announceControl, and the replacement's list) are never imported nor discarded when that
  // worker dies before handling the message: owned +1 and the route slot are kept for good.
  it('discards the owned control routes a worker died before importing', async () => {
    let replaced = 0;
    runtime.onWorkerReplaced = () => {
      replaced++;
    };
    // Worker 0 is busy (no event-loop turn) while worker 1 crashes and is replaced: the new
    // worker's control route, posted to worker 0, is still unread when worker 0 crashes too.
    const blocker = await runtime.spawn(PROCS, 'blockThenExit', [2500], { worker: 0 });
    await new Promise((r) => setTimeout(r, 50));
    const crasher = await runtime.spawn(PROCS, 'crashWorker', [], { worker: 1 });
    await expect.poll(() => replaced, { timeout: 20_000, interval: 20 }).toBe(2);
    for (const r of [blocker, crasher]) runtime.host.drop(r);
    await expectBaseline();
  });
});
