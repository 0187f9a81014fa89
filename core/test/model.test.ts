/**
 * Model check: random sequences of group, mailbox, link, monitor, kill and
 * message operations run against the post office and against a plain
 * reference model of DESIGN.md section 1; after every step their observable
 * states must agree, and at the end everything must be reclaimed.
 */

import fc from 'fast-check';
import { expect, test } from 'vitest';
import { type Group, type Mailbox, Perm, type Table } from '../index.ts';
import { harness } from './harness.ts';

type Reason = 'closed' | 'killed';

interface ModelGroup {
  alive: boolean;
}
interface ModelBox {
  group: number;
  open: boolean;
  reason: Reason | null;
  /** Let go by its owner (closed, or end received). */
  finished: boolean;
  messages: number[];
  downs: { monitor: number; watched: number; reason: Reason }[];
}

class Model {
  groups: ModelGroup[] = [];
  boxes: ModelBox[] = [];
  links: { id: number; a: number; b: number }[] = [];
  monitors = new Map<number, { watched: number; watcher: number }>();

  createMailbox(group: number): void {
    const alive = this.groups[group]!.alive;
    this.boxes.push({
      group,
      open: alive,
      reason: alive ? null : 'killed',
      finished: false,
      messages: [],
      downs: [],
    });
  }

  private closeBox(box: number, reason: Reason): void {
    if (!this.boxes[box]!.open) return;
    this.markClosed(box, reason);
    this.fire(box, reason);
  }

  private markClosed(box: number, reason: Reason): void {
    const b = this.boxes[box]!;
    b.open = false;
    b.reason = reason;
  }

  private fire(box: number, reason: Reason): void {
    for (const [id, m] of [...this.monitors]) {
      if (m.watched !== box) continue;
      this.monitors.delete(id);
      this.deliverDown(m.watcher, { monitor: id, watched: box, reason });
    }
  }

  private deliverDown(watcher: number, down: ModelBox['downs'][number]): void {
    const w = this.boxes[watcher]!;
    if (w.open) w.downs.push(down);
  }

  /** Kills the linked closure of `group`: every route in it closes first, then monitors fire. */
  kill(group: number): void {
    const work = [group];
    const seen = new Set<number>();
    const closed: number[] = [];
    while (work.length > 0) {
      const g = work.pop()!;
      if (seen.has(g)) continue;
      seen.add(g);
      if (this.groups[g]!.alive) {
        this.groups[g]!.alive = false;
        this.boxes.forEach((b, i) => {
          if (b.group === g && b.open) {
            this.markClosed(i, 'killed');
            closed.push(i);
          }
        });
      }
      for (const l of this.links) {
        if (l.a === g) work.push(l.b);
        if (l.b === g) work.push(l.a);
      }
    }
    for (const box of closed) this.fire(box, 'killed');
    this.links = this.links.filter((l) => !seen.has(l.a) && !seen.has(l.b));
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
    for (const [id, m] of [...this.monitors]) if (m.watcher === box) this.monitors.delete(id);
  }

  /** Returns the id the real link returned if it made a link, 0 otherwise. */
  link(box: number, group: number, realId: number): void {
    const target = this.boxes[box]!;
    if (!target.open) {
      this.kill(group);
      return;
    }
    const partner = target.group;
    if (partner === group) return;
    const a = this.groups[group]!;
    const b = this.groups[partner]!;
    if (!a.alive || !b.alive) {
      if (a.alive) this.kill(group);
      else if (b.alive) this.kill(partner);
      return;
    }
    const existing = this.links.find(
      (l) => (l.a === group && l.b === partner) || (l.a === partner && l.b === group),
    );
    if (existing === undefined) this.links.push({ id: realId, a: group, b: partner });
  }

  monitor(box: number, watcher: number, id: number): void {
    const b = this.boxes[box]!;
    if (!b.open) this.deliverDown(watcher, { monitor: id, watched: box, reason: b.reason! });
    else this.monitors.set(id, { watched: box, watcher });
  }
}

type Op =
  | { op: 'group' }
  | { op: 'mailbox'; g: number }
  | { op: 'kill'; b: number }
  | { op: 'killGroup'; g: number }
  | { op: 'close'; b: number }
  | { op: 'link'; b: number; g: number }
  | { op: 'unlink'; k: number }
  | { op: 'monitor'; b: number; w: number }
  | { op: 'demonitor'; k: number }
  | { op: 'send'; b: number; v: number }
  | { op: 'receive'; b: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.constant({ op: 'group' as const }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant('mailbox' as const), g: fc.nat() }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant('kill' as const), b: fc.nat() }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant('killGroup' as const), g: fc.nat() }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant('close' as const), b: fc.nat() }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant('link' as const), b: fc.nat(), g: fc.nat() }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant('unlink' as const), k: fc.nat() }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant('monitor' as const), b: fc.nat(), w: fc.nat() }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant('demonitor' as const), k: fc.nat() }), weight: 1 },
  {
    arbitrary: fc.record({
      op: fc.constant('send' as const),
      b: fc.nat(),
      v: fc.integer({ min: 0, max: 255 }),
    }),
    weight: 2,
  },
  { arbitrary: fc.record({ op: fc.constant('receive' as const), b: fc.nat() }), weight: 3 },
);

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
    expect(h.office.stats().links).toBe(model.links.length);
    expect(h.office.stats().monitors).toBe(model.monitors.size);
  };
  const pickBox = (n: number) => (boxes.length === 0 ? -1 : n % boxes.length);
  const pickGroup = (n: number) => (groups.length === 0 ? -1 : n % groups.length);
  for (const step of ops) {
    switch (step.op) {
      case 'group':
        groups.push(t.createGroup());
        model.groups.push({ alive: true });
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
        t.kill(caps[b]!);
        if (model.boxes[b]!.open) model.kill(model.boxes[b]!.group);
        break;
      }
      case 'killGroup': {
        const g = pickGroup(step.g);
        if (g < 0) break;
        groups[g]!.kill();
        model.kill(g);
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
        const live = model.links.findIndex((l) => l.id === id);
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
          // Downs come first; several pending ones may come in any order.
          expect(s?.kind).toBe('down');
          if (s?.kind !== 'down') break;
          const k = m.downs.findIndex((d) => d.monitor === s.monitor);
          expect(k).toBeGreaterThanOrEqual(0);
          const down = m.downs.splice(k, 1)[0]!;
          expect(s.reason).toBe(down.reason);
          expect(t.sameRoute(s.route, caps[down.watched]!)).toBe(true);
          t.release(s.route);
        } else if (!m.open) {
          expect(s).toEqual({ kind: 'end', reason: m.reason, code: 0, detail: null });
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
