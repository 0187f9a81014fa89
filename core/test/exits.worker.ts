/**
 * Worker side of the multi-worker tests of exits.test.ts: trapped exits
 * under racing kills, a trapping receiver parked in its thread, and a thread
 * that dies holding groups and mailboxes. Attaches the post office from
 * workerData, runs one named scenario, reports its result with postMessage.
 */

import { parentPort, workerData } from 'node:worker_threads';
import { type OwnedCapability, Perm, PostOffice } from '../index.ts';

const port = parentPort!;
const office = PostOffice.attach(workerData.buffer as SharedArrayBuffer);

/**
 * Per round, links a group of its own to the given spoke of that round's
 * chain (every spoke linked to a trapping hub), then, racing another killer,
 * kills its group. Group.kill always walks (a kill through a route a racing
 * kill already closed would be a no-op), so right after it returns every
 * exit of the round must be queued: the hub receives only once both killers
 * are done.
 */
function spokeKiller(args: {
  rounds: { spoke: OwnedCapability; spokes: number }[];
  control: SharedArrayBuffer;
  id: number;
}) {
  const control = new Int32Array(args.control);
  const t = office.createTable();
  const mine = args.rounds.map(({ spoke, spokes }) => {
    const g = t.createGroup();
    const h = t.importOwned(spoke);
    t.link(h, g);
    t.release(h);
    return { g, spokes };
  });
  const problems: string[] = [];
  for (let round = 0; round < mine.length; round++) {
    Atomics.wait(control, 0, round); // round word: the main thread bumps it to start a round
    const { g, spokes } = mine[round]!;
    g.kill({ code: args.id, detail: Uint8Array.of(args.id, round) });
    const pending = office.stats().pendingExits;
    if (pending !== spokes) problems.push(`round ${round}: ${pending} exits queued when kill returned`);
    Atomics.add(control, 1, 1); // this worker is done with the round
    Atomics.notify(control, 1);
  }
  t.close();
  return { problems };
}

/** Traps exits into a mailbox, hands out a LINK capability to it, and parks in receiveSync until an exit comes. */
function trapWaiter() {
  const t = office.createTable();
  const g = t.createGroup();
  const mb = g.createMailbox();
  g.trapExits(mb);
  port.postMessage({ link: t.toOwned(mb.export(Perm.LINK)) });
  const s = mb.receiveSync(30_000);
  const result = {
    kind: s?.kind ?? 'timeout',
    code: s?.kind === 'exit' ? s.code : -1,
    detail: s?.kind === 'exit' && s.detail !== null ? [...s.detail] : null,
    from: s?.kind === 'exit' ? s.from !== 0 : false,
    alive: !g.dead,
  };
  t.close();
  return result;
}

const scenarios: Record<string, (args: never) => unknown> = { spokeKiller, trapWaiter };

try {
  const run = scenarios[workerData.scenario as string];
  if (run === undefined) throw new Error(`no scenario ${workerData.scenario}`);
  const result = await run(workerData.args as never);
  office.detach();
  port.postMessage({ result });
} catch (error) {
  port.postMessage({
    error: error instanceof Error ? `${error.name}: ${error.message}\n${error.stack}` : String(error),
  });
}
// The message listener keeps this thread alive; closing the port lets it exit (posted messages still arrive).
port.close();
