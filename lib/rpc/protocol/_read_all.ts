// Reads a whole body or stream into one buffer, refusing more than a limit:
// Connect unary bodies.

import { Code } from "../code.ts";
import { RpcError } from "../rpc_error.ts";
import { ByteAccumulator } from "../../_internal/bytes.ts";
import { compressedBound } from "../../_internal/limits.ts";
import { ChunkReader } from "../../streams/_chunk_reader.ts";

/**
 * The most bytes a whole body may take: `maxMessageBytes`, or compressed,
 * the most a message of that size takes compressed (its limit is checked
 * again once decompressed).
 */
export function bodyBound(
  maxMessageBytes: number,
  compressed: boolean,
): number {
  return compressed ? compressedBound(maxMessageBytes) : maxMessageBytes;
}

/**
 * RESOURCE_EXHAUSTED for a body past {@linkcode bodyBound}, naming the
 * limit as it was set (a compressed body's bound is not a number anyone
 * set: "maxMessageBytes 1066" for a limit of 1000 misled).
 */
export function bodyTooLarge(
  what: string,
  maxMessageBytes: number,
  compressed: boolean,
): RpcError {
  return new RpcError(
    Code.ResourceExhausted,
    compressed
      ? `Cannot ${what}: compressed size exceeds ${
        compressedBound(maxMessageBytes)
      } bytes, more than a message of maxMessageBytes ${maxMessageBytes} takes compressed`
      : `Cannot ${what}: size exceeds maxMessageBytes ${maxMessageBytes}`,
  );
}

/**
 * Reads `readable` to its end into one buffer. Past
 * {@linkcode bodyBound} it cancels the stream and throws
 * {@linkcode bodyTooLarge}'s RESOURCE_EXHAUSTED.
 */
export async function readAll(
  readable: ReadableStream<Uint8Array>,
  maxMessageBytes: number,
  compressed: boolean,
  what: string,
): Promise<Uint8Array> {
  const max = bodyBound(maxMessageBytes, compressed);
  // Into one reused buffer where the body is a byte stream (see
  // ChunkReader), each chunk copied, never kept as a view (see
  // ByteAccumulator).
  const reader = new ChunkReader(readable);
  const bytes = new ByteAccumulator();
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    if (bytes.byteLength + value.byteLength > max) {
      await reader.cancel().catch(() => {});
      throw bodyTooLarge(what, maxMessageBytes, compressed);
    }
    bytes.push(value);
  }
  return bytes.bytes();
}
