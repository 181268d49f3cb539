// The runtimes' native incremental SHA-256, shared by the file glue
// (@sluice/streams/fs) and the Workers glue (@sluice/streams/workers).

import { createHash } from "node:crypto";
import type { Hasher } from "../http/receive_body.ts";

/**
 * Creates an incremental SHA-256 hasher from `node:crypto`. Web Crypto's
 * `crypto.subtle.digest` needs the whole input at once, and Workers'
 * `crypto.DigestStream` resolves its digest asynchronously, so neither fits
 * the synchronous {@linkcode Hasher} that hashes a body while it streams.
 *
 * @returns A hasher whose `digest()` returns the 32-byte SHA-256.
 *
 * @example Verify uploads in a Worker
 * ```ts
 * import { createReceiver } from "@sluice/streams/http";
 * import { createSha256 } from "@sluice/streams/workers";
 *
 * const receiver = createReceiver({
 *   sink: () => new WritableStream(), // or an R2 / S3 writer
 *   sha256: createSha256,
 *   maxBytes: 64 * 1024 * 1024,
 * });
 * // The Worker module: `export default worker;`
 * const worker = { fetch: (request: Request) => receiver(request) };
 * const response = await worker.fetch(
 *   new Request("http://localhost/upload", { method: "POST", body: "hi" }),
 * );
 * console.log(response.headers.get("repr-digest")); // sha-256=:j0NDRmSPa5bfid2pAcUXaxCm2Dlh3TwayItZstwyeqQ=:
 * ```
 */
export function createSha256(): Hasher {
  const hash = createHash("sha256");
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
