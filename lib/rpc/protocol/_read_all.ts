// Reads a whole body or stream into one buffer, refusing more than a limit:
// Connect unary bodies.

import { Code } from "../code.ts";
import { RpcError } from "../rpc_error.ts";
import { concatBytes } from "../../_internal/bytes.ts";

/**
 * Reads `readable` to its end into one buffer. Past `maxBytes` it cancels the
 * stream and throws RESOURCE_EXHAUSTED: `Cannot ${what}: size exceeds
 * maxMessageBytes ${maxBytes}`.
 */
export async function readAll(
  readable: ReadableStream<Uint8Array>,
  maxBytes: number,
  what: string,
): Promise<Uint8Array> {
  const reader = readable.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      throw new RpcError(
        Code.ResourceExhausted,
        `Cannot ${what}: size exceeds maxMessageBytes ${maxBytes}`,
      );
    }
    chunks.push(value);
  }
  return concatBytes(chunks, total);
}
