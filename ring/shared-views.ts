/**
 * One set of typed-array views per SharedArrayBuffer, shared by every ring and
 * table attached to it in this thread, so that attaching many rings (one per
 * mailbox) allocates no views per ring. Views are indexed absolutely: word
 * `i` of `i32` is bytes `4i..4i+3` of the buffer.
 */
export interface SharedViews {
  readonly buffer: SharedArrayBuffer;
  readonly i32: Int32Array;
  readonly u8: Uint8Array;
}

const cache = new WeakMap<SharedArrayBuffer, SharedViews>();

export function viewsOf(buffer: SharedArrayBuffer): SharedViews {
  let views = cache.get(buffer);
  if (views === undefined) {
    views = { buffer, i32: new Int32Array(buffer), u8: new Uint8Array(buffer) };
    cache.set(buffer, views);
  }
  return views;
}
