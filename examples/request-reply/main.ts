/**
 * Request/reply spread over the workers.
 *
 *   clients ──request──▶ front ──{ job: Request }──▶ server 0..N-1
 *      ▲                                                   │
 *      └──────────────── ctx.reply(job, answer) ◀──────────┘
 *
 * N servers are spawned with `worker: 'next'`, so they land on the workers in
 * turn; the front hands each request on without answering it (deferred
 * reply); C clients make their requests concurrently. The host prints the
 * throughput and how the requests spread over the worker threads, then
 * checks that the post office is back to what it held after start.
 *
 * Run: npx tsx examples/request-reply/main.ts
 * Knobs (environment): WORKERS (default 2), SERVERS (4), CLIENTS (4),
 * REQUESTS per client (2500), WINDOW of requests in flight per client (16),
 * ROUNDS of work per request (20).
 */

import type { PostOfficeStats } from '../../core/index.ts';
import { Runtime } from '../../runtime/index.ts';
import { envInt, runExample, sleep } from '../common.ts';
import type { ClientReport, ProcessStats } from './processes.ts';

const PROCESSES = new URL('./processes.ts', import.meta.url).href;
/** Room for a few thousand small requests in the front's and the servers' mailboxes. */
const BIG_MAILBOX = 1 << 16;

const WORKERS = envInt('WORKERS', 2);
const SERVERS = envInt('SERVERS', 4);
const CLIENTS = envInt('CLIENTS', 4);
const REQUESTS = envInt('REQUESTS', 2500);
const WINDOW = envInt('WINDOW', 16);
const ROUNDS = envInt('ROUNDS', 20);

await runExample('request-reply', async (checks) => {
  const runtime = await Runtime.start({ workers: WORKERS });
  try {
    const baseline = runtime.stats();
    const workerOf = new Map(runtime.workers.map((w, i) => [w.threadId, i]));
    const where = (thread: number): string => `worker ${workerOf.get(thread) ?? `? (thread ${thread})`}`;

    // Servers first, one per worker in turn; then the front, handed the servers' Refs.
    const servers = [];
    for (let i = 0; i < SERVERS; i++) {
      servers.push(
        await runtime.spawn(PROCESSES, 'server', [i, ROUNDS], {
          worker: 'next',
          mailboxCapacity: BIG_MAILBOX,
        }),
      );
    }
    const front = await runtime.spawn(PROCESSES, 'front', [servers], {
      worker: 'next',
      mailboxCapacity: BIG_MAILBOX,
    });
    // The front holds its own copies of the servers' Refs; the host keeps its own to ask for stats.
    console.log(
      `${WORKERS} workers, ${SERVERS} servers behind one front, ${CLIENTS} clients x ${REQUESTS} requests (${WINDOW} in flight each)`,
    );

    // The clients start at once and report when done; the clock runs from the first spawn to the last report.
    const report = runtime.host.restrict(runtime.host.self, ['send']);
    const started = performance.now();
    const clients = [];
    for (let i = 0; i < CLIENTS; i++) {
      clients.push(
        await runtime.spawn(PROCESSES, 'client', [i, front, REQUESTS, WINDOW, ROUNDS, report], {
          worker: 'next',
        }),
      );
    }
    const reports: ClientReport[] = [];
    while (reports.length < CLIENTS)
      reports.push((await runtime.receive({ timeout: 15_000 })) as ClientReport);
    const seconds = (performance.now() - started) / 1000;

    const total = CLIENTS * REQUESTS;
    const answered = reports.reduce((s, r) => s + r.answered, 0);
    const wrong = reports.reduce((s, r) => s + r.wrong, 0);
    const throughput = Math.round(answered / seconds);
    console.log(`\n${answered} requests answered in ${seconds.toFixed(2)} s: ${throughput} requests/s`);
    for (const r of reports.sort((a, b) => a.client - b.client)) {
      console.log(`  client ${r.client} on ${where(r.thread)}: ${r.answered} answered, ${r.wrong} wrong`);
    }

    // Ask each server, and the front, what it did and where it ran.
    const serverStats = (await Promise.all(
      servers.map((s) => runtime.request(s, { op: 'stats' })),
    )) as ProcessStats[];
    const frontStats = (await runtime.request(front, { op: 'stats' })) as ProcessStats;
    console.log(`\nfront on ${where(frontStats.thread)}: handed on ${frontStats.handled} requests`);
    const perWorker = new Map<string, { servers: number[]; handled: number }>();
    serverStats.forEach((s, i) => {
      console.log(`  server ${i} on ${where(s.thread)}: ${s.handled} requests`);
      const w = perWorker.get(where(s.thread)) ?? { servers: [], handled: 0 };
      w.servers.push(i);
      w.handled += s.handled;
      perWorker.set(where(s.thread), w);
    });
    console.log('\nrequests per worker thread:');
    for (const [w, { servers: on, handled }] of [...perWorker].sort()) {
      const share = ((100 * handled) / total).toFixed(1);
      const bar = '#'.repeat(Math.round((40 * handled) / total));
      const label = `${w} (servers ${on.join(', ')}):`;
      console.log(`  ${label.padEnd(24)} ${String(handled).padStart(6)} ${share.padStart(5)}% ${bar}`);
    }

    console.log('');
    checks.check('every request answered', answered === total, `${answered}/${total}`);
    checks.check('every answer right', wrong === 0, `${wrong} wrong`);
    const served = serverStats.reduce((s, x) => s + x.handled, 0);
    checks.check(
      'the servers answered what the front handed on',
      served === frontStats.handled && served === total,
    );
    checks.check(
      'every server took a share (round robin)',
      serverStats.every((s) => Math.abs(s.handled - total / SERVERS) <= 1),
      serverStats.map((s) => s.handled).join('/'),
    );
    const workersUsed = new Set(serverStats.map((s) => s.thread)).size;
    checks.check(
      "the servers ran on every worker (worker: 'next')",
      workersUsed === Math.min(WORKERS, SERVERS),
      `${workersUsed} of ${WORKERS}`,
    );

    // Clean up: the clients have ended; the front and the servers are killed; the host drops its Refs.
    runtime.kill(front);
    for (const s of servers) runtime.kill(s);
    for (const ref of [front, report, ...servers, ...clients]) runtime.host.drop(ref);
    checks.check('the post office is back to its baseline', await backToBaseline(runtime, baseline));

    return [
      `${answered} requests in ${seconds.toFixed(2)} s = ${throughput} requests/s (${WORKERS} workers, ${SERVERS} servers, ${CLIENTS} clients, ${WINDOW} in flight each)`,
      `per worker: ${[...perWorker].map(([w, { handled }]) => `${w} ${((100 * handled) / total).toFixed(1)}%`).join(', ')}`,
    ];
  } finally {
    await runtime.shutdown();
  }
});

/** Polls `stats()` until it matches `baseline` (capacities aside), for up to 5 s. */
async function backToBaseline(runtime: Runtime, baseline: PostOfficeStats): Promise<boolean> {
  const strip = ({ capacity: _c, retired: _r, ...rest }: PostOfficeStats) => JSON.stringify(rest);
  const want = strip(baseline);
  for (let i = 0; i < 250; i++) {
    if (strip(runtime.stats()) === want) return true;
    await sleep(20);
  }
  console.log(`  baseline ${want}\n  now      ${strip(runtime.stats())}`);
  return false;
}
