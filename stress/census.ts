/**
 * A census of a post office's route and group slots, read straight from
 * shared memory (core/layout.ts): what a leak report names when stats()
 * does not come back to its baseline. Read-only; safe while other threads
 * run (a reading may be stale).
 */

import {
  E_OWNER,
  E_ROUTE,
  ENTRY_BYTES,
  G_LINKS,
  G_MEMBERS,
  G_OBJECT,
  G_REFS,
  G_STATE,
  G_TABLE,
  GROUP_BYTES,
  GS_ALIVE,
  GS_DEAD,
  H_POOLS,
  N_A,
  N_C,
  N_KIND,
  NK_MONITOR,
  NODE_BYTES,
  PIN_COUNT_MASK,
  POOL_ENTRIES,
  POOL_GROUPS,
  POOL_NODES,
  POOL_ROUTES,
  R_CLOSED_BIT,
  R_DOWNS,
  R_GONE_BIT,
  R_GROUP,
  R_MONITORS,
  R_OWNER_TABLE,
  R_PIN,
  R_REFS,
  R_RING_FREED_BIT,
  R_UNREF_BIT,
  ROUTE_BYTES,
} from '../core/layout.ts';

function pool(i32: Int32Array, p: number) {
  return {
    bitmap: i32[H_POOLS + 3 * p]! >> 2,
    slots: i32[H_POOLS + 3 * p + 1]! >> 2,
    count: i32[H_POOLS + 3 * p + 2]!,
  };
}

/** Which route and group slots are in use now. */
export function slotsInUse(buffer: SharedArrayBuffer): { routes: Set<number>; groups: Set<number> } {
  const i32 = new Int32Array(buffer);
  const used = (p: number) => {
    const { bitmap, count } = pool(i32, p);
    const out = new Set<number>();
    for (let s = 0; s < count; s++)
      if ((Atomics.load(i32, bitmap + (s >> 5)) & (1 << (s & 31))) !== 0) out.add(s);
    return out;
  };
  return { routes: used(POOL_ROUTES), groups: used(POOL_GROUPS) };
}

export interface RouteSlot {
  index: number;
  closed: boolean;
  gone: boolean;
  unref: boolean;
  ringFreed: boolean;
  pins: number;
  refs: number;
  /** Table entries and list nodes that name the route (each holds one reference). */
  holders: string[];
  ownerTable: number;
  group: number;
  monitors: boolean;
  pendingDowns: boolean;
}

export interface GroupSlot {
  index: number;
  state: 'alive' | 'dead' | 'free';
  refs: number;
  members: boolean;
  links: boolean;
  object: number;
  createdBy: number;
}

/** The route and group slots in use now and not in `before`, read from shared memory. */
export function newSlots(
  buffer: SharedArrayBuffer,
  before: { routes: Set<number>; groups: Set<number> },
  limit = 64,
): { routes: RouteSlot[]; groups: GroupSlot[] } {
  const i32 = new Int32Array(buffer);
  const now = slotsInUse(buffer);
  const routes = pool(i32, POOL_ROUTES);
  const entries = pool(i32, POOL_ENTRIES);
  const nodes = pool(i32, POOL_NODES);
  const inUse = (p: { bitmap: number }, s: number) =>
    (Atomics.load(i32, p.bitmap + (s >> 5)) & (1 << (s & 31))) !== 0;
  const holders = (r: number): string[] => {
    const out: string[] = [];
    for (let e = 0; e < entries.count; e++) {
      if (!inUse(entries, e)) continue;
      const w = entries.slots + e * (ENTRY_BYTES >> 2);
      if (Atomics.load(i32, w + E_ROUTE) === r)
        out.push(`entry of table ${Atomics.load(i32, w + E_OWNER) - 1}`);
    }
    for (let n = 0; n < nodes.count; n++) {
      if (!inUse(nodes, n)) continue;
      const w = nodes.slots + n * (NODE_BYTES >> 2);
      const kind = Atomics.load(i32, w + N_KIND);
      if (Atomics.load(i32, w + N_A) === r || (kind === NK_MONITOR && Atomics.load(i32, w + N_C) === r)) {
        out.push(`node of kind ${kind}`);
      }
    }
    return out;
  };
  const outRoutes: RouteSlot[] = [];
  for (const r of now.routes) {
    if (before.routes.has(r) || outRoutes.length >= limit) continue;
    const w = routes.slots + r * (ROUTE_BYTES >> 2);
    const pin = Atomics.load(i32, w + R_PIN);
    outRoutes.push({
      index: r,
      closed: (pin & R_CLOSED_BIT) !== 0,
      gone: (pin & R_GONE_BIT) !== 0,
      unref: (pin & R_UNREF_BIT) !== 0,
      ringFreed: (pin & R_RING_FREED_BIT) !== 0,
      pins: pin & PIN_COUNT_MASK,
      refs: Atomics.load(i32, w + R_REFS),
      holders: holders(r),
      ownerTable: Atomics.load(i32, w + R_OWNER_TABLE) - 1,
      group: Atomics.load(i32, w + R_GROUP),
      monitors: Atomics.load(i32, w + R_MONITORS) !== 0,
      pendingDowns: Atomics.load(i32, w + R_DOWNS) !== 0,
    });
  }
  const groups = pool(i32, POOL_GROUPS);
  const outGroups: GroupSlot[] = [];
  for (const g of now.groups) {
    if (before.groups.has(g) || outGroups.length >= limit) continue;
    const w = groups.slots + g * (GROUP_BYTES >> 2);
    const state = Atomics.load(i32, w + G_STATE);
    outGroups.push({
      index: g,
      state: state === GS_ALIVE ? 'alive' : state === GS_DEAD ? 'dead' : 'free',
      refs: Atomics.load(i32, w + G_REFS),
      members: Atomics.load(i32, w + G_MEMBERS) !== 0,
      links: Atomics.load(i32, w + G_LINKS) !== 0,
      object: Atomics.load(i32, w + G_OBJECT),
      createdBy: Atomics.load(i32, w + G_TABLE) - 1,
    });
  }
  return { routes: outRoutes, groups: outGroups };
}

export function describeRoute(r: RouteSlot): string {
  const flags = [
    r.closed ? 'closed' : 'open',
    r.gone ? 'gone' : '',
    r.unref ? 'unref' : '',
    r.ringFreed ? 'ring-freed' : '',
  ].filter((f) => f !== '');
  return `route ${r.index}: ${flags.join('+')}, pins ${r.pins}, refs ${r.refs} (${r.holders.join(', ') || 'no entry or node names it'}), owner table ${r.ownerTable}, group ${r.group}, monitors ${r.monitors ? 'some' : 'none'}, pending downs ${r.pendingDowns ? 'some' : 'none'}`;
}

export function describeGroup(g: GroupSlot): string {
  return `group ${g.index}: ${g.state}, refs ${g.refs}, members ${g.members ? 'some' : 'none'}, links ${g.links ? 'some' : 'none'}, object ${g.object}, created by table ${g.createdBy}`;
}

/** One line per route or group slot in use now and not in `before` (at most `limit`). */
export function describeNewSlots(
  buffer: SharedArrayBuffer,
  before: { routes: Set<number>; groups: Set<number> },
  limit = 12,
): string[] {
  const { routes, groups } = newSlots(buffer, before, limit);
  return [...routes.map(describeRoute), ...groups.map(describeGroup)].slice(0, limit);
}
