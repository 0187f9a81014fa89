/**
 * How the core contender's consumer hands the producers their first
 * capability: owned tokens (core's host-level bearer form) written into a
 * small SharedArrayBuffer laid out on the main thread. The consumer must
 * create the mailbox itself (a mailbox is read only by the thread that
 * created it), so the tokens exist only once the workers run.
 *
 * Layout: Int32 word 0 is the ready flag (0, then 1 once every token is
 * written); Float64 words from HANDOFF_TOKENS hold (office, token, perms)
 * per producer. Tokens are safe integers above 2^32, hence doubles.
 */

export const HANDOFF_READY = 0;
export const HANDOFF_TOKENS = 1;
export const TOKEN_WORDS = 3;

/** Bytes of handoff space for `producers` tokens. */
export function handoffBytes(producers: number): number {
  return 8 * (HANDOFF_TOKENS + TOKEN_WORDS * producers);
}
