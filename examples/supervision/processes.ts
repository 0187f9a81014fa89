/**
 * The supervised process of the supervision example: a shard of a small
 * service. It answers `{ n }` with `{ id, n, square }`, and crashes (throws)
 * at random, with probability `crashRate` per request, before answering: the
 * request in hand is lost, and its supervisor starts a fresh incarnation.
 * A `'crash'` message makes it throw at once (the host's crash storms).
 *
 * It tells `observer` every time it starts, so the host can watch restarts
 * happen.
 */

import { threadId } from 'node:worker_threads';
import { isRequest, type ProcessContext, type Ref } from '../../runtime/index.ts';

/** What a shard sends its observer when it starts. */
export interface Started {
  readonly started: string;
}

/** What a shard answers. */
export interface ShardAnswer {
  readonly id: string;
  readonly n: number;
  readonly square: number;
  readonly thread: number;
}

export async function shard(
  ctx: ProcessContext,
  id: string,
  crashRate: number,
  observer: Ref,
): Promise<void> {
  ctx.send(observer, { started: id } satisfies Started);
  for (;;) {
    const m = await ctx.receive();
    if (m === 'crash') throw new Error(`${id}: crash ordered by the host`);
    if (!isRequest(m)) continue;
    const { n } = m.value as { n: number };
    if (Math.random() < crashRate) throw new Error(`${id}: injected crash on request ${n}`);
    ctx.reply(m, { id, n, square: n * n, thread: threadId } satisfies ShardAnswer);
  }
}
