// Reads a whole body or stream into one buffer, refusing more than a limit:
// Connect unary bodies.

import { Code } from "../code.ts";
import { RpcError } from "../rpc_error.ts";
import { ByteAccumulator } from "../../_internal/bytes.ts";
import { ChunkReader } from "../../streams/_chunk_reader.ts";

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
  // Into one reused buffer where the body is a byte stream (see
  // ChunkReader), each chunk copied, never kept as a view (see
  // ByteAccumulator).
  const reader = new ChunkReader(readable);
  const bytes = new ByteAccumulator();
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    if (bytes.byteLength + value.byteLength > maxBytes) {
      await reader.cancel().catch(() => {});
      throw new RpcError(
        Code.ResourceExhausted,
        `Cannot ${what}: size exceeds maxMessageBytes ${maxBytes}`,
      );
    }
    bytes.push(value);
  }
  return bytes.bytes();
}
