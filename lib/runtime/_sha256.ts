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
