/**
 * How much of the machine other processes used while the bench ran: total
 * busy CPU time from /proc/stat minus this process's own (all its threads,
 * from process.cpuUsage). Linux only; elsewhere it reports nothing. Child
 * processes (the C ceiling) count as "other", so measure around the worker
 * scenarios only.
 */

import { readFileSync } from 'node:fs';

/** USER_HZ of /proc/stat: 100 on every Linux architecture Node runs on. */
const TICKS_PER_SECOND = 100;

interface Sample {
  readonly busyTicks: number;
  readonly totalTicks: number;
  readonly ownMicros: number;
}

function sample(): Sample | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/stat', 'utf8');
  } catch {
    return undefined;
  }
  const fields = text.split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  const own = process.cpuUsage();
  return { busyTicks: total - idle, totalTicks: total, ownMicros: own.user + own.system };
}

/** Starts a measurement; the returned function ends it and gives other processes' share of all CPU time, 0..1. */
export function startLoadMeter(): () => number | undefined {
  const start = sample();
  return () => {
    const end = sample();
    if (!start || !end || end.totalTicks <= start.totalTicks) return undefined;
    const busy = (end.busyTicks - start.busyTicks) / TICKS_PER_SECOND;
    const own = (end.ownMicros - start.ownMicros) / 1e6;
    const total = (end.totalTicks - start.totalTicks) / TICKS_PER_SECOND;
    return Math.min(1, Math.max(0, (busy - own) / total));
  };
}
