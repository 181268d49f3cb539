// Small byte arrays carved from a shared slab. Allocating an ArrayBuffer per
// message costs about 0.9 µs under Deno (measured with Deno 2.9.6), a view
// into an existing buffer about 20 ns: per-message encoders take their bytes
// from here.
//
// Under Bun (JavaScriptCore) a small `new Uint8Array(n)` keeps its bytes in
// the heap with no ArrayBuffer and costs 15-25 ns, a view into the slab 65-75
// (Bun 1.4.5, a loop of 7-10 byte arrays): a tiny array is cheaper on its
// own, and with them a streaming call, which allocates twice per message,
// ran 1.2-1.4× as many messages a second under Bun, and a lockstep round trip
// over node:http2 took about 1 µs less (docs/performance.md, "Small arrays
// under Bun"). Its first `subarray` (or `.buffer`) moves its bytes into a
// new ArrayBuffer, though: copied in and sliced, a 200-byte array of its own
// cost 254 ns against 183 for a slab view. So under Bun only requests up to
// COPY_MAX_BYTES, the size up to which the frame decoder copies a message
// out of its chunk rather than slicing it, get their own array.

import { isBun } from "../../_internal/user_agent.ts";

const SLAB_BYTES = 64 * 1024;
/** The largest request served from the slab; larger ones get their own buffer. */
export const MAX_SLAB_REQUEST = 256;
/**
 * Messages up to this size are copied out of their chunk rather than sliced
 * (frame_decoder.ts), and under Bun get an array of their own here.
 */
export const COPY_MAX_BYTES = 64;
const FRESH_MAX_BYTES = isBun() ? COPY_MAX_BYTES : 0;

let slab: ArrayBuffer | undefined;
let used = 0;

/**
 * Returns `n` zeroed bytes: a view into a shared 64 KiB slab for small `n`
 * (each region is handed out once; under Bun a tiny `n` gets an array of its
 * own), a new buffer otherwise. A view keeps its slab alive, so memory held
 * is about the bytes still referenced plus one slab.
 */
export function allocBytes(n: number): Uint8Array<ArrayBuffer> {
  if (n > MAX_SLAB_REQUEST || n <= FRESH_MAX_BYTES) return new Uint8Array(n);
  if (slab === undefined || used + n > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    used = 0;
  }
  // The constructor, not a subarray of a slab view: subarray looks up the
  // species constructor (measured: 31-42 ns a view under Deno 2.9.6 and
  // 51-64 ns under Bun, against 21-25 and 46).
  const view = new Uint8Array(slab, used, n);
  used += n;
  return view;
}
