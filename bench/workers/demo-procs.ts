// Processes for the `npm start` demo (bench/demo.ts).
import type { ProcessContext, Ref } from '../../runtime/index.ts';
import { isRequest } from '../../runtime/index.ts';

/** Answers every request with its value. */
export async function echo(ctx: ProcessContext): Promise<void> {
  for (;;) {
    const m = await ctx.receive();
    if (isRequest(m)) ctx.reply(m, m.value);
  }
}

/** Idles until killed. */
export async function idle(ctx: ProcessContext): Promise<void> {
  await ctx.receive({ match: () => false });
}

/** Spawns `count` linked idle children on its own worker, then reports the time it took (ms). */
export async function nursery(ctx: ProcessContext, count: number, report: Ref): Promise<void> {
  const started = performance.now();
  const module = new URL(import.meta.url).href;
  for (let i = 0; i < count; i++) ctx.drop(await ctx.spawnLink(module, 'idle'));
  ctx.send(report, performance.now() - started);
  await ctx.receive({ match: () => false });
}

/** Sends `count` numbers to `to` as fast as its mailbox takes them, then reports. */
export async function producer(ctx: ProcessContext, to: Ref, count: number, report: Ref): Promise<void> {
  for (let i = 0; i < count; i++) if (!ctx.send(to, i)) await ctx.sendWhenRoom(to, i);
  ctx.send(report, 'sent');
}

/** Receives `count` messages, then reports how long the stream took (ms). */
export async function consumer(ctx: ProcessContext, count: number, report: Ref): Promise<void> {
  await ctx.receive();
  const started = performance.now();
  for (let i = 1; i < count; i++) await ctx.receive();
  ctx.send(report, performance.now() - started);
}
