// An incremental SHA-1 (FIPS 180-4, section 6.1) for tus's checksum
// extension, which requires servers to support `sha1`. Web Crypto's
// `crypto.subtle.digest("SHA-1", ...)` needs the whole input at once, and a
// tus PATCH body can be the whole upload; this hashes it as it streams, in
// the core layer (no node:crypto). SHA-1 is broken for collision resistance:
// it checks transfer integrity here, nothing more.

import type { Hasher } from "../receive_body.ts";

/** Creates an incremental SHA-1 hasher (20-byte digest). */
export function createSha1(): Hasher {
  const h = new Uint32Array([
    0x67452301,
    0xefcdab89,
    0x98badcfe,
    0x10325476,
    0xc3d2e1f0,
  ]);
  const w = new Uint32Array(80);
  const block = new Uint8Array(64);
  let filled = 0;
  let total = 0;

  function compress(bytes: Uint8Array, at: number): void {
    for (let i = 0; i < 16; i++) {
      const j = at + i * 4;
      w[i] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) |
        bytes[j + 3];
    }
    for (let i = 16; i < 80; i++) {
      const x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16];
      w[i] = (x << 1) | (x >>> 31);
    }
    let a = h[0] | 0, b = h[1] | 0, c = h[2] | 0, d = h[3] | 0, e = h[4] | 0;
    let t = 0;
    for (let i = 0; i < 20; i++) {
      t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + 0x5a827999 +
        w[i]) | 0;
      e = d;
      d = c;
      c = (b << 30) | (b >>> 2);
      b = a;
      a = t;
    }
    for (let i = 20; i < 40; i++) {
      t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + 0x6ed9eba1 + w[i]) | 0;
      e = d;
      d = c;
      c = (b << 30) | (b >>> 2);
      b = a;
      a = t;
    }
    for (let i = 40; i < 60; i++) {
      t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e +
        0x8f1bbcdc + w[i]) | 0;
      e = d;
      d = c;
      c = (b << 30) | (b >>> 2);
      b = a;
      a = t;
    }
    for (let i = 60; i < 80; i++) {
      t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + 0xca62c1d6 + w[i]) | 0;
      e = d;
      d = c;
      c = (b << 30) | (b >>> 2);
      b = a;
      a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
  }

  return {
    update(data: Uint8Array) {
      total += data.byteLength;
      let at = 0;
      if (filled > 0) {
        const take = Math.min(64 - filled, data.byteLength);
        block.set(data.subarray(0, take), filled);
        filled += take;
        at = take;
        if (filled < 64) return;
        compress(block, 0);
        filled = 0;
      }
      for (; at + 64 <= data.byteLength; at += 64) compress(data, at);
      block.set(data.subarray(at), 0);
      filled = data.byteLength - at;
    },
    digest() {
      const bits = total * 8;
      const tail = new Uint8Array(filled < 56 ? 64 : 128);
      tail.set(block.subarray(0, filled));
      tail[filled] = 0x80;
      const view = new DataView(tail.buffer);
      view.setUint32(tail.byteLength - 8, Math.floor(bits / 2 ** 32));
      view.setUint32(tail.byteLength - 4, bits >>> 0);
      for (let at = 0; at < tail.byteLength; at += 64) compress(tail, at);
      const out = new Uint8Array(20);
      const outView = new DataView(out.buffer);
      for (let i = 0; i < 5; i++) outView.setUint32(i * 4, h[i]);
      return out;
    },
  };
}
