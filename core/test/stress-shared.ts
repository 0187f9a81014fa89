/** Shared helpers of the multi-worker tests: a seeded PRNG and self-checking payloads. */

/** mulberry32: a small seeded PRNG, so every run of a seed does the same thing. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const PAYLOAD_BYTES = 48;

/** Sender id, sequence number, then bytes derived from both (catches torn or mixed records). */
export function makePayload(sender: number, seq: number, size = PAYLOAD_BYTES): Uint8Array {
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, sender, true);
  view.setUint32(4, seq, true);
  for (let i = 8; i < size; i++) out[i] = (sender * 131 + seq * 7 + i) & 255;
  return out;
}

/** Returns [sender, seq] of a payload, or null if its bytes are not what makePayload wrote. */
export function checkPayload(data: Uint8Array, size = PAYLOAD_BYTES): [number, number] | null {
  if (data.length !== size) return null;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const sender = view.getUint32(0, true);
  const seq = view.getUint32(4, true);
  for (let i = 8; i < size; i++) if (data[i] !== ((sender * 131 + seq * 7 + i) & 255)) return null;
  return [sender, seq];
}

/** Iteration counts scale with POSTERN_STRESS (default 1): CI runs short, a soak runs long. */
export const SCALE = Math.max(1, Number(process.env.POSTERN_STRESS ?? 1) || 1);
