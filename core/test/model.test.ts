/**
 * Model check: random sequences of group, mailbox, link, monitor, kill (with
 * exit codes), trap and message operations run against the post office and
 * against a plain reference model of DESIGN.md section 1 and of trapped
 * exits; after every step their observable states must agree, and at the end
 * everything must be reclaimed.
 */

import fc from 'fast-check';
import { expect, test } from 'vitest';
import { type Group, type Mailbox, Perm, type Table } from '../index.ts';
import { harness } from './harness.ts';

type Reason = 'closed' | 'killed';

interface ModelGroup {
  alive: boolean;
  /** The code of the kill it died of. */
  code: number;
  /** The mailbox it traps exits into, or -1. */
  trap: number;
  /** Its first mailbox created while alive (its identity route), or -1. */
  identity: number;
}
type Pending =
  | { kind: 'down'; monitor: number; watched: number; reason: Reason; code: number }
  | { kind: 'exit'; from: number; reason: Reason; code: number };
interface ModelBox {
  group: number;
  open: boolean;
  reason: Reason | null;
  code: number;
  /** Let go by its owner (closed, or end received). */
  finished: boolean;
  messages: number[];
  /** Downs and exits not yet received: among themselves in any order. */
  downs: Pending[];
}

class Model {
  groups: ModelGroup[] = [];
  boxes: ModelBox[] = [];
  /** Each link's ids: linking again from the other side returns the id of that side's end. */
  links: { ids: Set<number>; a: number; b: number }[] = [];
  monitors = new Map<number, { watched: number; watcher: number }>();

  createMailbox(group: number): void {
    const g = this.groups[group]!;
    const alive = g.alive;
    if (alive && g.identity < 0) g.identity = this.boxes.length;
    this.boxes.push({
      group,
      open: alive,
      reason: alive ? null : 'killed',
      code: alive ? 0 : g.code,
      finished: false,
      messages: [],
      downs: [],
    });
  }

  private closeBox(box: number, reason: Reason): void {
    if (!this.boxes[box]!.open) return;
    this.markClosed(box, reason, 0);
    this.fire(box);
  }

  private markClosed(box: number, reason: Reason, code: number): void {
    const b = this.boxes[box]!;
    b.open = false;
    b.reason = reason;
    b.code = code;
  }

  private fire(box: number): void {
    const b = this.boxes[box]!;
    for (const [id, m] of [...this.monitors]) {
      if (m.watched !== box) continue;
      this.monitors.delete(id);
      this.deliver(m.watcher, { kind: 'down', monitor: id, watched: box, reason: b.reason!, code: b.code });
    }
  }

  private deliver(watcher: number, item: Pending): void {
    const w = this.boxes[watcher]!;
    if (w.open) w.downs.push(item);
  }

  /** Whether group `g` traps exits: alive, with an open trap mailbox. */
  private traps(g: number): boolean {
    const G = this.groups[g]!;
    return G.alive && G.trap >= 0 && this.boxes[G.trap]!.open;
  }

  /**
   * Kills the linked closure of `group` with `code`: every route in it closes
   * first, then monitors fire. A live trapping group reached through a link
   * is not killed nor walked past: that link goes, and it gets an exit.
   */
  kill(group: number, code: number): void {
    const work: [number, number][] = [[group, -1]];
    const seen = new Set<number>();
    const closed: number[] = [];
    while (work.length > 0) {
      const [g, from] = work.pop()!;
      if (seen.has(g)) continue;
      const G = this.groups[g]!;
      if (from >= 0 && this.traps(g)) {
        const k = this.links.findIndex((l) => (l.a === from && l.b === g) || (l.a === g && l.b === from));
        if (k >= 0) {
          this.links.splice(k, 1);
          const F = this.groups[from]!;
          this.deliver(G.trap, { kind: 'exit', from: F.identity, reason: 'killed', code: F.code });
        }
        continue;
      }
      seen.add(g);
      if (G.alive) {
        G.alive = false;
        G.code = code;
        G.trap = -1;
        this.boxes.forEach((b, i) => {
          if (b.group === g && b.open) {
            this.markClosed(i, 'killed', code);
            closed.push(i);
          }
        });
      }
      for (const l of this.links) {
        if (l.a === g) work.push([l.b, g]);
        if (l.b === g) work.push([l.a, g]);
      }
    }
    for (const box of closed) this.fire(box);
    this.links = this.links.filter((l) => !seen.has(l.a) && !seen.has(l.b));
  }

  /** Group y's link partner x is gone: y traps an exit, or dies of it. */
  private partnerGone(y: number, x: number, reason: Reason, code: number): void {
    const Y = this.groups[y]!;
    if (!Y.alive) return;
    if (this.traps(y)) this.deliver(Y.trap, { kind: 'exit', from: this.groups[x]!.identity, reason, code });
    else this.kill(y, code);
  }

  trap(group: number, box: number): void {
    const G = this.groups[group]!;
    if (G.alive) G.trap = box;
  }

  close(box: number): void {
    this.closeBox(box, 'closed');
    this.finish(box);
  }

  /** The owner lets go: its monitors go, its pending downs are dropped. */
  finish(box: number): void {
    const b = this.boxes[box]!;
    b.finished = true;
    b.downs = [];
    b.messages = [];
    const G = this.groups[b.group]!;
    if (G.trap === box) G.trap = -1;
    for (const [id, m] of [...this.monitors]) if (m.watcher === box) this.monitors.delete(id);
  }

  /** Returns the id the real link returned if it made a link, 0 otherwise. */
  link(box: number, group: number, realId: number): void {
    const target = this.boxes[box]!;
    if (!target.open) {
      this.partnerGone(group, target.group, target.reason!, target.code);
      return;
    }
    const partner = target.group;
    if (partner === group) return;
    const a = this.groups[group]!;
    const b = this.groups[partner]!;
    if (!a.alive || !b.alive) {
      if (a.alive) this.partnerGone(group, partner, 'killed', b.code);
      else if (b.alive) this.partnerGone(partner, group, 'killed', a.code);
      return;
    }
    const existing = this.links.find(
      (l) => (l.a === group && l.b === partner) || (l.a === partner && l.b === group),
    );
    if (existing === undefined) this.links.push({ ids: new Set([realId]), a: group, b: partner });
    else existing.ids.add(realId);
  }

  monitor(box: number, watcher: number, id: number): void {
    const b = this.boxes[box]!;
    if (!b.open)
      this.deliver(watcher, { kind: 'down', monitor: id, watched: box, reason: b.reason!, code: b.code });
    else this.monitors.set(id, { watched: box, watcher });
  }
}

type Op =
  | { op: 'group' }
  | { op: 'mailbox'; g: number }
  | { op: 'kill'; b: number; c: number }
  | { op: 'killGroup'; g: number; c: number }
  | { op: 'trap'; g: number; b: number; off: boolean }
  | { op: 'close'; b: number }
  | { op: 'link'; b: number; g: number }
  | { op: 'unlink'; k: number }
  | { op: 'monitor'; b: number; w: number }
  | { op: 'demonitor'; k: number }
  | { op: 'send'; b: number; v: number }
  | { op: 'receive'; b: number };

/** Operations, with a weight per kind (0 leaves a kind out). */
function opsWeighted(w: Record<Op['op'], number>): fc.Arbitrary<Op> {
  const kinds: { arbitrary: fc.Arbitrary<Op>; weight: number }[] = [
    { arbitrary: fc.constant({ op: 'group' as const }), weight: w.group },
    { arbitrary: fc.record({ op: fc.constant('mailbox' as const), g: fc.nat() }), weight: w.mailbox },
    { arbitrary: fc.record({ op: fc.constant('kill' as const), b: fc.nat(), c: fc.nat(3) }), weight: w.kill },
    {
      arbitrary: fc.record({ op: fc.constant('killGroup' as const), g: fc.nat(), c: fc.nat(3) }),
      weight: w.killGroup,
    },
    {
      arbitrary: fc.record({
        op: fc.constant('trap' as const),
        g: fc.nat(),
        b: fc.nat(),
        off: fc.nat(5).map((n) => n === 0),
      }),
      weight: w.trap,
    },
    { arbitrary: fc.record({ op: fc.constant('close' as const), b: fc.nat() }), weight: w.close },
    { arbitrary: fc.record({ op: fc.constant('link' as const), b: fc.nat(), g: fc.nat() }), weight: w.link },
    { arbitrary: fc.record({ op: fc.constant('unlink' as const), k: fc.nat() }), weight: w.unlink },
    {
      arbitrary: fc.record({ op: fc.constant('monitor' as const), b: fc.nat(), w: fc.nat() }),
      weight: w.monitor,
    },
    { arbitrary: fc.record({ op: fc.constant('demonitor' as const), k: fc.nat() }), weight: w.demonitor },
    {
      arbitrary: fc.record({
        op: fc.constant('send' as const),
        b: fc.nat(),
        v: fc.integer({ min: 0, max: 255 }),
      }),
      weight: w.send,
    },
    { arbitrary: fc.record({ op: fc.constant('receive' as const), b: fc.nat() }), weight: w.receive },
  ];
  return fc.oneof(...kinds.filter((k) => k.weight > 0));
}

/** Everything, evenly. */
const opArb = opsWeighted({
  group: 2,
  mailbox: 3,
  kill: 1,
  killGroup: 1,
  trap: 2,
  close: 1,
  link: 3,
  unlink: 1,
  monitor: 3,
  demonitor: 1,
  send: 2,
  receive: 3,
});

/** Webs of links between trapping groups, killed: most kills reach a trapping group. */
const trapArb = opsWeighted({
  group: 3,
  mailbox: 3,
  kill: 1,
  killGroup: 2,
  trap: 4,
  close: 1,
  link: 6,
  unlink: 1,
  monitor: 1,
  demonitor: 0,
  send: 0,
  receive: 4,
});

function run(ops: Op[]): void {
  const h = harness({ mailboxCapacity: 4096 });
  const t: Table = h.office.createTable();
  const model = new Model();
  const groups: Group[] = [];
  const boxes: Mailbox[] = [];
  const caps: number[] = []; // one ALL handle per mailbox
  const linkIds: number[] = [];
  const monitorIds: number[] = [];
  const compare = () => {
    for (const [i, g] of groups.entries()) expect(g.dead, `group ${i} dead`).toBe(!model.groups[i]!.alive);
    for (const [i, b] of boxes.entries()) expect(b.closed, `mailbox ${i} closed`).toBe(!model.boxes[i]!.open);
    const stats = h.office.stats();
    expect(stats.links).toBe(model.links.length);
    expect(stats.monitors).toBe(model.monitors.size);
    // Every down and exit made, received or not.
    const pending = (kind: Pending['kind']) =>
      model.boxes.reduce((n, b) => n + b.downs.filter((d) => d.kind === kind).length, 0);
    expect(stats.pendingDowns).toBe(pending('down'));
    expect(stats.pendingExits).toBe(pending('exit'));
  };
  const pickBox = (n: number) => (boxes.length === 0 ? -1 : n % boxes.length);
  const pickGroup = (n: number) => (groups.length === 0 ? -1 : n % groups.length);
  for (const step of ops) {
    switch (step.op) {
      case 'group':
        groups.push(t.createGroup());
        model.groups.push({ alive: true, code: 0, trap: -1, identity: -1 });
        break;
      case 'mailbox': {
        const g = pickGroup(step.g);
        if (g < 0) break;
        const mb = groups[g]!.createMailbox();
        boxes.push(mb);
        caps.push(mb.export(Perm.ALL));
        model.createMailbox(g);
        break;
      }
      case 'kill': {
        const b = pickBox(step.b);
        if (b < 0) break;
        t.kill(caps[b]!, { code: step.c });
        if (model.boxes[b]!.open) model.kill(model.boxes[b]!.group, step.c);
        break;
      }
      case 'killGroup': {
        const g = pickGroup(step.g);
        if (g < 0) break;
        groups[g]!.kill({ code: step.c });
        model.kill(g, step.c);
        break;
      }
      case 'trap': {
        const g = pickGroup(step.g);
        if (g < 0) break;
        if (step.off) {
          groups[g]!.trapExits(null);
          model.trap(g, -1);
          break;
        }
        const own = model.boxes.flatMap((m, i) => (m.group === g && !m.finished ? [i] : []));
        if (own.length === 0) break;
        const b = own[step.b % own.length]!;
        groups[g]!.trapExits(boxes[b]!);
        model.trap(g, b);
        break;
      }
      case 'close': {
        const b = pickBox(step.b);
        if (b < 0 || model.boxes[b]!.finished) break;
        boxes[b]!.close();
        model.close(b);
        break;
      }
      case 'link': {
        const b = pickBox(step.b);
        const g = pickGroup(step.g);
        if (b < 0 || g < 0) break;
        const id = t.link(caps[b]!, groups[g]!);
        if (id !== 0) linkIds.push(id);
        model.link(b, g, id);
        break;
      }
      case 'unlink': {
        if (linkIds.length === 0) break;
        const id = linkIds[step.k % linkIds.length]!;
        const live = model.links.findIndex((l) => l.ids.has(id));
        expect(t.unlink(id)).toBe(live >= 0);
        if (live >= 0) model.links.splice(live, 1);
        break;
      }
      case 'monitor': {
        const b = pickBox(step.b);
        const w = pickBox(step.w);
        if (b < 0 || model.boxes[w]!.finished) break;
        const id = t.monitor(caps[b]!, boxes[w]!);
        monitorIds.push(id);
        model.monitor(b, w, id);
        break;
      }
      case 'demonitor': {
        if (monitorIds.length === 0) break;
        const id = monitorIds[step.k % monitorIds.length]!;
        const live = model.monitors.has(id);
        expect(t.demonitor(id)).toBe(live);
        model.monitors.delete(id);
        break;
      }
      case 'send': {
        const b = pickBox(step.b);
        if (b < 0) break;
        expect(t.send(caps[b]!, Uint8Array.of(step.v))).toBe(true);
        const m = model.boxes[b]!;
        if (m.open) m.messages.push(step.v);
        break;
      }
      case 'receive': {
        const b = pickBox(step.b);
        if (b < 0) break;
        const m = model.boxes[b]!;
        const s = boxes[b]!.tryReceive();
        if (m.downs.length > 0) {
          // Downs and exits come first; several pending ones may come in any order.
          expect(['down', 'exit']).toContain(s?.kind);
          if (s?.kind === 'down') {
            const k = m.downs.findIndex((d) => d.kind === 'down' && d.monitor === s.monitor);
            expect(k).toBeGreaterThanOrEqual(0);
            const down = m.downs.splice(k, 1)[0]! as Pending & { kind: 'down' };
            expect([s.reason, s.code, s.detail]).toEqual([down.reason, down.code, null]);
            expect(t.sameRoute(s.route, caps[down.watched]!)).toBe(true);
            t.release(s.route);
          } else if (s?.kind === 'exit') {
            const k = m.downs.findIndex(
              (d) =>
                d.kind === 'exit' &&
                d.reason === s.reason &&
                d.code === s.code &&
                (d.from < 0 ? s.from === 0 : s.from !== 0 && t.sameRoute(s.from, caps[d.from]!)),
            );
            expect(k, `exit ${JSON.stringify(s)} among ${JSON.stringify(m.downs)}`).toBeGreaterThanOrEqual(0);
            m.downs.splice(k, 1);
            expect(s.detail).toBeNull();
            if (s.from !== 0) t.release(s.from);
          }
        } else if (!m.open) {
          expect(s).toEqual({ kind: 'end', reason: m.reason, code: m.code, detail: null });
          if (!m.finished) model.finish(b);
        } else if (m.messages.length > 0) {
          expect(s?.kind).toBe('message');
          if (s?.kind === 'message') expect(s.data).toEqual(Uint8Array.of(m.messages.shift()!));
        } else {
          expect(s).toBeNull();
        }
        break;
      }
    }
    compare();
  }
  t.close();
  h.expectNoLeaks();
}

test('random operation sequences agree with the reference model and leak nothing', () => {
  fc.assert(
    fc.property(fc.array(opArb, { minLength: 5, maxLength: 120, size: 'large' }), (ops) => {
      run(ops);
    }),
    { numRuns: 300, seed: 20261122 },
  );
});

/** A web first: n groups with a mailbox each, some trapping, linked at random; then operations. */
const webArb: fc.Arbitrary<Op[]> = fc
  .integer({ min: 2, max: 8 })
  .chain((n) =>
    fc.tuple(
      fc.array(fc.boolean(), { minLength: n, maxLength: n }),
      fc.array(fc.tuple(fc.nat(n - 1), fc.nat(n - 1)), { maxLength: 3 * n }),
      fc.array(trapArb, { minLength: 5, maxLength: 60 }),
    ),
  )
  .map(([traps, links, rest]) => {
    const n = traps.length;
    const ops: Op[] = [];
    for (let i = 0; i < n; i++) ops.push({ op: 'group' });
    for (let i = 0; i < n; i++) ops.push({ op: 'mailbox', g: i });
    traps.forEach((on, i) => {
      if (on) ops.push({ op: 'trap', g: i, b: 0, off: false });
    });
    for (const [b, g] of links) ops.push({ op: 'link', b, g });
    return [...ops, ...rest];
  });

test('webs of trapping groups agree with the reference model and leak nothing', () => {
  fc.assert(
    fc.property(webArb, (ops) => {
      run(ops);
    }),
    { numRuns: 300, seed: 20261123 },
  );
});
