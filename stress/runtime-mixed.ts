/**
 * Runtime stress scenario: a Runtime with two scheduler workers and many
 * processes doing seeded random operations at once (fixtures/
 * runtime-mixed.procs.ts), with worker crashes injected at random instants.
 *
 * The main thread plays the host: it spawns the first processes, hands them
 * Refs to each other (with random permissions), keeps the population up as
 * processes die, monitors every process (each registers with it first
 * thing, so the host's down is the ground truth of who died and why), and
 * now and then spawns a crasher on a worker, which takes the worker down
 * with process.exit, a throw inside a timer callback, or (some rounds) by
 * running out of memory; the runtime replaces the worker and every process
 * that was on it dies with 'worker-crashed'.
 *
 * Then it stops the operations, waits until every live process is quiet
 * (only receiving), lets the messages in flight arrive, and checks from the
 * journal (runtime-journal.ts) what needs every process's view:
 * - exactly once: every message accepted for a process alive at the end was
 *   delivered (and no process got more than was accepted for it); FIFO,
 *   wholeness and permissions were checked by the receivers as it went;
 * - monitors: a live watcher that did not demonitor got exactly one down
 *   for every dead process it watched, none for a live one, and every down
 *   carries the reason the process died of (as the host's own monitor saw
 *   it); no monitor got two downs;
 * - links: of two linked processes, if one died the other died too, or is
 *   alive and got an exit message with the dead one's reason;
 * - reasons: every death's reason was issued by someone (an exit, a throw,
 *   a kill, a return, a worker crash);
 * - every process that crashed its worker did so only while allowed.
 * Finally every process returns, and with all of them gone stats() must be
 * back to the baseline taken after start (before shutdown); after shutdown
 * every scheduler worker the round ever had, replacements included, must
 * have exited.
 */

import { setEnvironmentData, type Worker } from 'node:worker_threads';
import type { PostOfficeStats } from '../core/index.ts';
import { Prng } from '../ring/test/records.ts';
import { sleep } from '../ring/test/workers.ts';
import { isDown, ReceiveTimeout, type Ref, Runtime, SpawnError } from '../runtime/index.ts';
import { describeNewSlots, slotsInUse } from './census.ts';
import { type AgentInit, type CrashMethod, permNames, type Role } from './fixtures/runtime-mixed.procs.ts';
import {
  EV_CRASH,
  EV_DEATH,
  EV_DEMONITOR,
  EV_DOWN,
  EV_EXIT,
  EV_EXIT_RECEIVED,
  EV_KILL,
  EV_LINK,
  EV_MONITOR,
  EV_SPAWN,
  EV_UNLINK,
  JOURNAL_KEY,
  Journal,
  reasonToken,
  S_QUIET,
  showToken,
  TOKEN_KILLED,
  TOKEN_NORMAL,
  TOKEN_UNKNOWN,
  W_CAP,
  W_END,
  W_LOST,
  W_NO_CRASH,
  W_POPULATION,
  W_STOP,
} from './runtime-journal.ts';
import type { RoundContext, RoundResult, Scenario } from './scenario.ts';

const PROCS = new URL('./fixtures/runtime-mixed.procs.ts', import.meta.url).href;
const SEND = 1;
const MONITOR = 2;
const KILL = 4;
const LINK = 8;
/** Generous: a phase that takes this long has hung. */
const PHASE_TIMEOUT_MS = 30_000;

/** One journal for every round (zeroed in between): memory stays flat over a soak. */
let journalBuffer: SharedArrayBuffer | null = null;

class Failure extends Error {}

function show(value: unknown): string {
  try {
    return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)).slice(0, 300);
  } catch {
    return String(value);
  }
}

function fail(invariant: string, detail: string): never {
  throw new Failure(`${invariant}: ${detail}`);
}

export const runtimeMixed: Scenario = {
  name: 'runtime-mixed',
  async round(ctx: RoundContext): Promise<RoundResult> {
    const prng = new Prng(ctx.seed);
    journalBuffer ??= new SharedArrayBuffer(Journal.bytes());
    const j = new Journal(journalBuffer);
    j.reset(ctx.strict);
    // Every scheduler worker started from now on (replacements too) gets the journal.
    setEnvironmentData(JOURNAL_KEY, journalBuffer);
    const oom = prng.int(0, 3) === 0;
    const runtime = await Runtime.start({
      workers: 2,
      maxProcessesPerWorker: 1024,
      heapBytes: 24 << 20,
      maxMessageBytes: 256 << 10,
      // Rounds with out-of-memory crashes give the workers a heap limit a crasher reaches quickly.
      ...(oom ? { workerResourceLimits: { maxOldGenerationSizeMb: 96 } } : {}),
    });
    const round = new Round(runtime, j, prng, ctx, oom);
    try {
      return await round.run();
    } finally {
      await round.cleanup();
    }
  },
};

class Round {
  private readonly registered = new Map<number, number>();
  private readonly monitorToId = new Map<number, number>();
  private readonly deaths = new Map<number, number>();
  /** The reasons of deaths whose token was not recognised, as received. */
  private readonly rawReasons = new Map<number, string>();
  /** Full Refs of the processes the host spawned, while they live. */
  private readonly refs = new Map<number, Ref>();
  /** Host spawns not yet settled, with what they were (for a hang report). */
  private readonly pending = new Map<Promise<void>, string>();
  private readonly workers = new Map<Worker, Promise<number>>();
  private readonly crashing: boolean[] = [false, false];
  private hostRef: Ref | null = null;
  private baseline: PostOfficeStats | null = null;
  private baselineSlots: ReturnType<typeof slotsInUse> | null = null;
  private replaced = 0;
  private reasonsDropped = 0;
  private spawnedByHost = 0;
  private shutDown = false;
  private hostFailure: string | null = null;
  private readonly cap: number;
  private readonly target: number;

  constructor(
    private readonly runtime: Runtime,
    private readonly j: Journal,
    private readonly prng: Prng,
    private readonly ctx: RoundContext,
    private readonly oom: boolean,
  ) {
    this.target = prng.int(8, 14);
    this.cap = prng.int(40, 80);
    for (const w of runtime.workers) this.track(w);
    runtime.onWorkerReplaced = (index) => {
      this.replaced++;
      this.crashing[index] = false;
      this.track(runtime.workers[index]!);
    };
  }

  private track(worker: Worker): void {
    if (this.workers.has(worker)) return;
    this.workers.set(
      worker,
      new Promise<number>((resolve) => {
        worker.once('exit', resolve);
      }),
    );
  }

  private get host() {
    return this.runtime.host;
  }

  private live(id: number): boolean {
    return this.registered.has(id) && !this.deaths.has(id);
  }

  async run(): Promise<RoundResult> {
    const { j, prng, ctx } = this;
    this.baseline = this.runtime.stats();
    this.baselineSlots = slotsInUse(this.runtime.office.buffer);
    this.hostRef = this.host.restrict(this.host.self, ['send']);
    j.set(W_CAP, this.cap);
    const opsMs = Math.round(prng.int(2500, 4000) * ctx.scale);
    const started = performance.now();
    let nextCrash = started + this.crashInterval();
    let nextPeer = started;
    const roles: Role[] = ['agent', 'agent', 'agent', 'server', 'trapper', 'mortal'];
    while (performance.now() < started + opsMs) {
      ctx.check();
      this.checkProcesses();
      await this.pump(10);
      const now = performance.now();
      // Keep the population up: the host's own agents die of kills, links and crashes.
      if (this.refs.size + this.pending.size < this.target && j.word(W_POPULATION) < this.cap) {
        this.spawn(roles[prng.int(0, roles.length - 1)]!);
      }
      if (now >= nextPeer) {
        nextPeer = now + prng.int(5, 40);
        this.introduce();
      }
      if (now >= nextCrash) {
        nextCrash = now + this.crashInterval();
        this.crash();
      }
    }
    const t0 = performance.now();
    await this.quiesce();
    const t1 = performance.now();
    await this.settle();
    this.verify();
    const counts = { ...j.counts() };
    const t2 = performance.now();
    await this.end();
    const t3 = performance.now();
    await this.shutdown();
    const t4 = performance.now();
    const phases = [t1 - t0, t2 - t1, t3 - t2, t4 - t3].map((ms) => (ms / 1000).toFixed(1));
    const crashes = (counts.crashExit ?? 0) + (counts.crashThrow ?? 0) + (counts.crashOom ?? 0);
    return {
      counts: {
        ...counts,
        processes: this.registered.size,
        deaths: this.deaths.size,
        workersReplaced: this.replaced,
        diedKilledNoReason: this.reasonsDropped,
      },
      faults: crashes + (counts.faults ?? 0) + (counts.restrictRefused ?? 0),
      defects: this.j.defects(),
      note: `${this.registered.size} processes (${this.spawnedByHost} from the host), cap ${this.cap}, ${opsMs} ms of operations, ${crashes} worker crashes${this.oom ? ' (out of memory allowed)' : ''}; quiesce/settle/end/shutdown ${phases.join('/')} s`,
    };
  }

  private crashInterval(): number {
    return this.prng.int(400, 1800);
  }

  /** Throws as soon as a process has reported a violation, or the host saw one. */
  private checkProcesses(): void {
    if (this.hostFailure !== null) throw new Failure(this.hostFailure);
    let v = this.j.violations();
    if (v.count === 0) return;
    // The first violation's text is written before its count; a second one may count first.
    for (let spins = 0; v.first === '(text not yet written)' && spins < 1e6; spins++) v = this.j.violations();
    throw new Failure(`${v.first}${v.count > 1 ? ` (and ${v.count - 1} more)` : ''}`);
  }

  // ---------------------------------------------------------------- the host's mailbox

  /** Handles what reaches the host for up to `ms` (at least one look). */
  private async pump(ms: number): Promise<void> {
    const until = performance.now() + ms;
    for (;;) {
      let m: unknown;
      try {
        m = await this.runtime.receive({ timeout: Math.max(0, until - performance.now()) });
      } catch (error) {
        if (error instanceof ReceiveTimeout) return;
        throw error;
      }
      this.onHostMessage(m);
    }
  }

  private onHostMessage(m: unknown): void {
    if (isDown(m)) {
      const id = this.monitorToId.get(m.monitor);
      this.host.drop(m.ref);
      if (id === undefined) {
        this.hostFailure ??= `monitor: the host got a down for monitor ${m.monitor}, which it never placed`;
        return;
      }
      this.monitorToId.delete(m.monitor);
      if (this.deaths.has(id)) {
        this.hostFailure ??= `monitor: the host's monitor of process ${id} got two downs`;
        return;
      }
      const token = reasonToken(m.reason);
      if (token === TOKEN_UNKNOWN) this.rawReasons.set(id, show(m.reason));
      this.deaths.set(id, token);
      this.j.log(EV_DEATH, id, 0, 0, token);
      this.j.set(W_POPULATION, this.registered.size - this.deaths.size);
      const ref = this.refs.get(id);
      if (ref !== undefined) {
        this.refs.delete(id);
        this.host.drop(ref);
      }
      return;
    }
    const reg = m as { k?: string; id?: number; ref?: Ref };
    if (reg?.k === 'reg' && typeof reg.id === 'number' && reg.ref !== undefined) {
      if (this.registered.has(reg.id)) {
        this.hostFailure ??= `whole: process ${reg.id} registered twice`;
        this.host.drop(reg.ref);
        return;
      }
      const monitor = this.host.monitor(reg.ref);
      this.host.drop(reg.ref);
      this.registered.set(reg.id, monitor);
      this.monitorToId.set(monitor, reg.id);
      this.j.set(W_POPULATION, this.registered.size - this.deaths.size);
      return;
    }
    this.hostFailure ??= `whole: the host received ${JSON.stringify(m)}`;
  }

  // ---------------------------------------------------------------- spawning, introductions, crashes

  private spawn(role: Role, worker?: number, crash?: AgentInit['crash']): void {
    const id = this.j.newId();
    if (id === 0) return;
    const init: AgentInit = {
      id,
      role,
      seed: this.prng.next(),
      host: this.hostRef!,
      ...(crash ? { crash } : {}),
    };
    const options = {
      worker: worker ?? this.pickWorker(),
      mailboxCapacity: [256, 1024, 4096, 16384][this.prng.int(0, 3)]!,
    };
    this.spawnedByHost++;
    const p = this.runtime.spawn(PROCS, 'agent', [init], options).then(
      (ref) => {
        this.j.log(EV_SPAWN, 0, id, 0);
        if (role === 'crasher' || this.deaths.has(id) || this.j.word(W_STOP) !== 0) this.host.drop(ref);
        else {
          this.refs.set(id, ref);
          this.introduce(id, this.prng.int(2, 5));
        }
      },
      (error: unknown) => {
        // ...the worker crashed (or is being replaced): the spawn is refused, nothing leaks.
        if (!(error instanceof SpawnError)) this.hostFailure ??= `spawn: ${String(error)}`;
        else this.j.count('spawnFailed');
      },
    );
    const tracked = p.finally(() => this.pending.delete(tracked));
    this.pending.set(
      tracked,
      `${role} ${id} on worker ${options.worker} since ${(performance.now() / 1000).toFixed(1)} s`,
    );
  }

  private pickWorker(): number {
    const ok = [0, 1].filter((w) => !this.crashing[w]);
    return ok.length === 0 ? this.prng.int(0, 1) : ok[this.prng.int(0, ok.length - 1)]!;
  }

  /** Hands `to` (or a random agent) Refs to `n` other agents, each with random permissions (always send). */
  private introduce(to?: number, n = 1): void {
    const ids = [...this.refs.keys()];
    if (ids.length < 2) return;
    const dest = to ?? ids[this.prng.int(0, ids.length - 1)]!;
    const destRef = this.refs.get(dest);
    if (destRef === undefined) return;
    const refs: Ref[] = [];
    const peerIds: number[] = [];
    const perms: number[] = [];
    for (let k = 0; k < n; k++) {
      const peer = ids[this.prng.int(0, ids.length - 1)]!;
      if (peer === dest) continue;
      const p =
        SEND |
        (this.prng.int(0, 1) === 0 ? MONITOR : 0) |
        (this.prng.int(0, 6) === 0 ? KILL : 0) |
        (this.prng.int(0, 4) === 0 ? LINK : 0);
      refs.push(this.host.restrict(this.refs.get(peer)!, permNames(p)));
      peerIds.push(peer);
      perms.push(p);
    }
    if (refs.length > 0) this.runtime.send(destRef, { k: 'p', refs, ids: peerIds, perms });
    for (const r of refs) this.host.drop(r);
  }

  private crash(): void {
    if (process.env.STRESS_NO_CRASH === '1') return;
    const ok = [0, 1].filter((w) => !this.crashing[w]);
    if (ok.length === 0) return;
    const worker = ok[this.prng.int(0, ok.length - 1)]!;
    const methods: CrashMethod[] = this.oom ? ['exit', 'throw', 'oom'] : ['exit', 'throw'];
    const method = methods[this.prng.int(0, methods.length - 1)]!;
    this.crashing[worker] = true;
    this.spawn('crasher', worker, { method, delayMs: this.prng.int(0, 200), code: this.prng.int(3, 99) });
  }

  // ---------------------------------------------------------------- stop, settle, verify

  /** Stops the operations and waits until every live process is quiet (only receiving). */
  private async quiesce(): Promise<void> {
    const { j } = this;
    j.set(W_NO_CRASH, 1);
    j.set(W_STOP, 1);
    const deadline = performance.now() + PHASE_TIMEOUT_MS;
    for (;;) {
      this.ctx.check();
      this.checkProcesses();
      // Read the states first, then drain: a registration sent before a process went quiet is seen.
      const loud = [...this.registered.keys()].filter((id) => this.live(id) && j.state(id) !== S_QUIET);
      const before = this.registered.size + this.deaths.size;
      await this.pump(loud.length === 0 ? 2 : 20);
      await sleep(1); // a macrotask turn: timers (request timeouts of pending spawns) must get to run
      if (
        loud.length === 0 &&
        this.pending.size === 0 &&
        this.registered.size + this.deaths.size === before
      ) {
        const stillLoud = [...this.registered.keys()].filter(
          (id) => this.live(id) && j.state(id) !== S_QUIET,
        );
        if (stillLoud.length === 0) return;
      }
      if (performance.now() > deadline) {
        fail(
          'hang',
          `processes ${loud
            .slice(0, 8)
            .map((id) => `${id} (worker ${j.workerOf(id)})`)
            .join(
              ', ',
            )} did not stop within ${PHASE_TIMEOUT_MS} ms${this.pending.size > 0 ? `; host spawns pending: ${[...this.pending.values()].join(', ')} (now ${(performance.now() / 1000).toFixed(1)} s)` : ''}`,
        );
      }
    }
  }

  /** Lets messages and downs in flight arrive: waits until the journal shows nothing outstanding (bounded). */
  private async settle(): Promise<void> {
    const deadline = performance.now() + 10_000;
    while (performance.now() < deadline) {
      await this.pump(20);
      this.checkProcesses();
      if (this.outstanding().length === 0) return;
    }
  }

  /** Deliveries and downs the live processes are still owed. */
  private outstanding(): string[] {
    const out: string[] = [];
    for (const [s, r, accepted, delivered] of this.j.pairs()) {
      if (this.live(r) && delivered < accepted) out.push(`${r} has ${delivered} of ${accepted} from ${s}`);
    }
    const model = this.model();
    for (const m of model.monitors.values()) {
      if (this.live(m.watcher) && !m.demonitored && model.dead(m.target) && m.downs.length === 0) {
        out.push(`${m.watcher} awaits the down of ${m.target}`);
      }
    }
    return out;
  }

  private model() {
    const events = this.j.events();
    const spawned = new Set<number>();
    const issued = new Set<number>();
    let normal = false;
    const monitors = new Map<
      string,
      { watcher: number; target: number; downs: number[]; demonitored: boolean }
    >();
    const links = new Map<string, boolean>();
    const exits = new Map<number, { from: number; token: number }[]>();
    const crashes: { by: number; worker: number; token: number }[] = [];
    const monitorOf = (watcher: number, serial: number, target: number) => {
      const k = `${watcher}/${serial}`;
      let m = monitors.get(k);
      if (m === undefined) {
        m = { watcher, target, downs: [], demonitored: false };
        monitors.set(k, m);
      }
      return m;
    };
    for (const e of events) {
      switch (e.type) {
        case EV_SPAWN:
          spawned.add(e.a);
          break;
        case EV_KILL:
          issued.add(e.c);
          break;
        case EV_EXIT:
          if (e.b === 3) normal = true;
          else issued.add(e.c);
          break;
        case EV_CRASH:
          issued.add(e.c);
          crashes.push({ by: e.actor, worker: e.a, token: e.c });
          break;
        case EV_MONITOR:
          monitorOf(e.actor, e.b, e.a);
          break;
        case EV_DEMONITOR:
          monitorOf(e.actor, e.b, e.a).demonitored = true;
          break;
        case EV_DOWN:
          monitorOf(e.actor, e.b, e.a).downs.push(e.c);
          break;
        case EV_LINK:
          links.set(`${e.actor}/${e.a}`, true);
          break;
        case EV_UNLINK:
          links.set(`${e.actor}/${e.a}`, false);
          break;
        case EV_EXIT_RECEIVED: {
          const list = exits.get(e.actor) ?? [];
          list.push({ from: e.a, token: e.c });
          exits.set(e.actor, list);
          break;
        }
      }
    }
    // Dead: the host saw it die, or it was spawned and never lived to register (killed at birth).
    const dead = (id: number) => this.deaths.has(id) || (spawned.has(id) && !this.registered.has(id));
    return { spawned, issued, normal, monitors, links, exits, crashes, dead };
  }

  private verify(): void {
    const { j } = this;
    this.checkProcesses();
    if (j.word(W_LOST) !== 0) {
      throw new Error(
        `harness: ${j.word(W_LOST)} journal entries did not fit (raise LOG_EVENTS or PAIR_SLOTS)`,
      );
    }
    const model = this.model();
    const death = (id: number) => this.deaths.get(id);
    // Reasons: every death names a reason someone issued.
    for (const [id, token] of this.deaths) {
      // 'killed' is a kill whose reason was not stored: the post office drops a kill's detail when
      // its heap is full (core/README, exit reasons), and a spawn rolled back ends its child so.
      if (token === TOKEN_KILLED) {
        this.reasonsDropped++;
        continue;
      }
      const ok = model.issued.has(token) || (token === TOKEN_NORMAL && model.normal);
      if (!ok) {
        const raw = this.rawReasons.get(id);
        fail(
          'reason',
          `process ${id} died of ${showToken(token)}${raw === undefined ? '' : ` (${raw})`}, which no process issued`,
        );
      }
    }
    // Exactly once, for every receiver alive at the end.
    for (const [s, r, accepted, delivered] of j.pairs()) {
      if (delivered > accepted) {
        fail(
          'exactly-once',
          `process ${r} was delivered ${delivered} messages from ${s}, which had ${accepted} accepted`,
        );
      }
      if (this.live(r) && delivered !== accepted) {
        fail(
          'exactly-once',
          `process ${r}, alive at the end, was delivered ${delivered} of the ${accepted} messages ${s} had accepted for it`,
        );
      }
    }
    // Monitors.
    for (const m of model.monitors.values()) {
      const what = `monitor of ${m.target} by ${m.watcher}`;
      if (m.downs.length > 1) fail('monitor', `${what} got ${m.downs.length} downs`);
      if (m.demonitored && m.downs.length > 0) fail('monitor', `${what} got a down and was demonitored`);
      const d = death(m.target);
      for (const token of m.downs) {
        if (this.live(m.target))
          fail('monitor', `${what} got a down (${showToken(token)}), the process is alive`);
        if (d !== undefined && token !== d) {
          fail('down-reason', `${what} got ${showToken(token)}, the process died of ${showToken(d)}`);
        }
      }
      if (this.live(m.watcher) && !m.demonitored && model.dead(m.target) && m.downs.length === 0) {
        fail(
          'monitor',
          `${what}: the process died${d === undefined ? ' at birth' : ` of ${showToken(d)}`}, no down came`,
        );
      }
    }
    // Links: linked processes die together, or the survivor trapped the exit.
    for (const [pair, linked] of model.links) {
      if (!linked) continue;
      const [a, b] = pair.split('/').map(Number) as [number, number];
      for (const [survivor, gone] of [
        [a, b],
        [b, a],
      ] as const) {
        if (!this.live(survivor) || !model.dead(gone)) continue;
        const d = death(gone);
        const got = model.exits.get(survivor) ?? [];
        if (!got.some((x) => d === undefined || x.token === d)) {
          fail(
            'links',
            `${gone} died${d === undefined ? ' at birth' : ` of ${showToken(d)}`}, linked ${survivor} is alive and got no exit with that reason (exits: ${got.map((x) => showToken(x.token)).join(', ') || 'none'})`,
          );
        }
      }
    }
    // Exit messages name the reason their sender died of.
    for (const [id, list] of model.exits) {
      for (const x of list) {
        const d = x.from === 0 ? undefined : death(x.from);
        if (d !== undefined && d !== x.token) {
          fail(
            'exit-reason',
            `${id} got an exit from ${x.from} with ${showToken(x.token)}, it died of ${showToken(d)}`,
          );
        }
      }
    }
  }

  // ---------------------------------------------------------------- the end

  /** Every process returns; with all of them gone, stats() must equal the baseline. */
  private async end(): Promise<void> {
    this.j.set(W_END, 1);
    const deadline = performance.now() + PHASE_TIMEOUT_MS;
    while ([...this.registered.keys()].some((id) => !this.deaths.has(id))) {
      this.ctx.check();
      if (performance.now() > deadline) {
        const left = [...this.registered.keys()].filter((id) => !this.deaths.has(id));
        fail(
          'end',
          `processes ${left.slice(0, 8).join(', ')} did not end within ${PHASE_TIMEOUT_MS} ms of being told to`,
        );
      }
      await this.pump(20);
    }
    this.checkProcesses();
    for (const ref of this.refs.values()) this.host.drop(ref);
    this.refs.clear();
    this.host.drop(this.hostRef!);
    this.hostRef = null;
    const strip = (s: PostOfficeStats) => {
      const { capacity: _c, retired: _r, ...rest } = s;
      return rest;
    };
    const want = strip(this.baseline!);
    const until = performance.now() + 5000;
    for (;;) {
      const now = strip(this.runtime.stats());
      const diffs = Object.keys(want)
        .filter((k) => now[k as keyof typeof now] !== want[k as keyof typeof want])
        .map((k) => `${k} ${want[k as keyof typeof want]} -> ${now[k as keyof typeof now]}`);
      if (diffs.length === 0) return;
      if (performance.now() > until) {
        const census = describeNewSlots(this.runtime.office.buffer, this.baselineSlots!);
        const text = `stats() with every process gone differs from the baseline: ${diffs.join(', ')}; ${census.join('; ')}`;
        fail('leak', text);
      }
      await sleep(20);
    }
  }

  private async shutdown(): Promise<void> {
    await this.runtime.shutdown();
    this.shutDown = true;
    const exited = await Promise.race([
      Promise.all(this.workers.values()).then(() => true),
      sleep(10_000).then(() => false),
    ]);
    if (!exited)
      fail(
        'shutdown',
        `of the round's ${this.workers.size} scheduler workers, some still run after shutdown`,
      );
    // What shutdown let go of may be freed a moment later (a parked wait wakes on the close's nudge).
    let s = this.runtime.stats();
    for (
      const until = performance.now() + 2000;
      s.heapBytes !== 0 && performance.now() < until;
      s = this.runtime.stats()
    ) {
      await sleep(20);
    }
    if (s.liveGroups !== 0 || s.tables !== 0 || s.heapBytes !== 0) {
      const census = describeNewSlots(this.runtime.office.buffer, { routes: new Set(), groups: new Set() });
      fail(
        'shutdown',
        `after shutdown: ${s.liveGroups} live groups, ${s.tables} tables, ${s.heapBytes} heap bytes, ${s.routes} routes, ${s.groups} groups, ${s.threads} threads, ${s.details} details; ${census.join('; ')}`,
      );
    }
  }

  async cleanup(): Promise<void> {
    if (this.shutDown) return;
    this.j.set(W_NO_CRASH, 1);
    this.j.set(W_STOP, 1);
    this.j.set(W_END, 1);
    await Promise.race([this.runtime.shutdown(), sleep(10_000)]);
    for (const w of this.workers.keys()) await w.terminate();
  }
}
