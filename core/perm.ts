/**
 * Permission bits of a capability. Each is its own bit: LINK in particular is
 * not SEND|MONITOR (Flue's defect), so a SEND+MONITOR holder cannot bind its
 * fate to a route's group and kill it indirectly.
 */
export const Perm = Object.freeze({
  /** Send a message to the route. */
  SEND: 1,
  /** Get a `down` signal when the route closes. */
  MONITOR: 2,
  /** Kill the route's group. */
  KILL: 4,
  /** Link one of your groups to the route's group. */
  LINK: 8,
  /** Every permission: what the owner of a mailbox may export. */
  ALL: 15,
  NONE: 0,
});

export type Perms = number;

/** Whether `perms` is a set of known permission bits. */
export function isPermSet(perms: unknown): perms is Perms {
  // The upper bound first: `&` would look only at the low 32 bits of a larger number.
  return (
    typeof perms === 'number' &&
    Number.isInteger(perms) &&
    perms >= 0 &&
    perms <= Perm.ALL &&
    (perms & ~Perm.ALL) === 0
  );
}
