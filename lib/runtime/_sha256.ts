// The runtimes' native incremental hashes, shared by the file glue
// (@sluice/streams/fs) and the Workers glue (@sluice/streams/workers).

import { createHash } from "node:crypto";
import type { DigestAlgorithm, Hasher } from "../http/receive_body.ts";

const NAMES: Record<DigestAlgorithm, string> = {
  "sha-256": "sha256",
  "sha-512": "sha512",
};

/**
 * Creates an incremental hasher from `node:crypto` for SHA-256 or SHA-512,
 * the `hasher` option of `receiveBody` and `createUploadHandler`. Web
 * Crypto's `crypto.subtle.digest` needs the whole input at once, and Workers'
 * `crypto.DigestStream` resolves its digest asynchronously, so neither fits
 * the synchronous {@linkcode Hasher} that hashes a body while it streams.
 *
 * @param algorithm `"sha-256"` or `"sha-512"` (RFC 9530 names).
 * @returns A hasher, or `undefined` for an algorithm it does not support.
 *
 * @example Verify uploads in a Worker
 * ```ts
 * import { createUploadHandler } from "@sluice/streams/http";
 * import { createHasher } from "@sluice/streams/workers";
 *
 * const upload = createUploadHandler({
 *   sink: () => new WritableStream(), // or an R2 / S3 writer
 *   hasher: createHasher,
 *   maxBytes: 64 * 1024 * 1024,
 * });
 * // The Worker module: `export default worker;`
 * const worker = { fetch: (request: Request) => upload(request) };
 * const response = await worker.fetch(
 *   new Request("http://localhost/upload", { method: "POST", body: "hi" }),
 * );
 * console.log(response.headers.get("repr-digest")); // sha-256=:j0NDRmSPa5bfid2pAcUXaxCm2Dlh3TwayItZstwyeqQ=:
 * ```
 */
export function createHasher(algorithm: DigestAlgorithm): Hasher | undefined {
  const name = Object.hasOwn(NAMES, algorithm) ? NAMES[algorithm] : undefined;
  if (!name) return undefined;
  const hash = createHash(name);
  return {
    update(data: Uint8Array) {
      hash.update(data);
    },
    digest() {
      const buffer = hash.digest();
      return new Uint8Array(
        buffer.buffer,
        buffer.byteOffset,
        buffer.byteLength,
      );
    },
  };
}

/** The state of a {@linkcode Sha256} between blocks, for structured clone. */
export interface Sha256State {
  /** The eight working words. */
  words: number[];
  /** Bytes hashed so far (including `pending`). */
  bytes: number;
  /** The bytes of the unfinished block (fewer than 64). */
  pending: Uint8Array;
}

const ROUND = new Int32Array([
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
]);

const INITIAL = [
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
];

/**
 * SHA-256 (FIPS 180-4) in JavaScript, whose state can be saved between
 * blocks ({@linkcode Sha256.state}) and restored ({@linkcode Sha256.from}):
 * the Workers upload object keeps it in Durable Object storage so an
 * evicted object continues the hash. The runtimes' native hashes cannot
 * export their state.
 */
export class Sha256 {
  #h = new Int32Array(8);
  #w = new Int32Array(64);
  #block = new Uint8Array(64);
  #fill = 0;
  #bytes = 0;

  constructor() {
    this.#h.set(INITIAL);
  }

  /** A hasher that continues from a saved state. */
  static from(state: Sha256State): Sha256 {
    const hash = new Sha256();
    if (state.words.length !== 8 || state.pending.byteLength >= 64) {
      throw new TypeError("Cannot restore SHA-256: the state is malformed");
    }
    hash.#h.set(state.words);
    hash.#block.set(state.pending);
    hash.#fill = state.pending.byteLength;
    hash.#bytes = state.bytes;
    return hash;
  }

  /** The state, to be stored and given to {@linkcode Sha256.from}. */
  state(): Sha256State {
    return {
      words: Array.from(this.#h),
      bytes: this.#bytes,
      pending: this.#block.slice(0, this.#fill),
    };
  }

  /** Hashes more bytes. */
  update(data: Uint8Array): void {
    let i = 0;
    const n = data.byteLength;
    this.#bytes += n;
    if (this.#fill > 0) {
      const take = Math.min(64 - this.#fill, n);
      this.#block.set(data.subarray(0, take), this.#fill);
      this.#fill += take;
      i = take;
      if (this.#fill < 64) return;
      this.#compress(this.#block, 0, 64);
      this.#fill = 0;
    }
    const whole = i + ((n - i) & ~63);
    if (whole > i) this.#compress(data, i, whole);
    if (whole < n) {
      this.#block.set(data.subarray(whole));
      this.#fill = n - whole;
    }
  }

  /** The digest of everything hashed (the hasher is done afterwards). */
  digest(): Uint8Array {
    const bits = this.#bytes * 8;
    const tail = new Uint8Array(this.#fill < 56 ? 64 : 128);
    tail.set(this.#block.subarray(0, this.#fill));
    tail[this.#fill] = 0x80;
    const view = new DataView(tail.buffer);
    view.setUint32(tail.byteLength - 8, Math.floor(bits / 2 ** 32));
    view.setUint32(tail.byteLength - 4, bits >>> 0);
    this.#compress(tail, 0, tail.byteLength);
    const out = new Uint8Array(32);
    const outView = new DataView(out.buffer);
    for (let k = 0; k < 8; k++) outView.setInt32(k * 4, this.#h[k]);
    return out;
  }

  /** Runs the compression function over data[start, end), whole blocks. */
  #compress(data: Uint8Array, start: number, end: number): void {
    const w = this.#w;
    const h = this.#h;
    let h0 = h[0], h1 = h[1], h2 = h[2], h3 = h[3];
    let h4 = h[4], h5 = h[5], h6 = h[6], h7 = h[7];
    for (let p = start; p < end; p += 64) {
      for (let t = 0; t < 16; t++) {
        const q = p + t * 4;
        w[t] = (data[q] << 24) | (data[q + 1] << 16) | (data[q + 2] << 8) |
          data[q + 3];
      }
      for (let t = 16; t < 64; t++) {
        const a = w[t - 15], b = w[t - 2];
        const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^
          (a >>> 3);
        const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^
          (b >>> 10);
        w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
      }
      let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, k = h7;
      for (let t = 0; t < 64; t++) {
        const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^
          ((e >>> 25) | (e << 7));
        const t1 = (k + S1 + ((e & f) ^ (~e & g)) + ROUND[t] + w[t]) | 0;
        const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^
          ((a >>> 22) | (a << 10));
        const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        k = g;
        g = f;
        f = e;
        e = (d + t1) | 0;
        d = c;
        c = b;
        b = a;
        a = (t1 + t2) | 0;
      }
      h0 = (h0 + a) | 0;
      h1 = (h1 + b) | 0;
      h2 = (h2 + c) | 0;
      h3 = (h3 + d) | 0;
      h4 = (h4 + e) | 0;
      h5 = (h5 + f) | 0;
      h6 = (h6 + g) | 0;
      h7 = (h7 + k) | 0;
    }
    h[0] = h0, h[1] = h1, h[2] = h2, h[3] = h3;
    h[4] = h4, h[5] = h5, h[6] = h6, h[7] = h7;
  }
}
