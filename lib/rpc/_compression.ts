// Per-message compression with the web-standard CompressionStream. Only
// gzip, which every runtime has (deflate-raw and brotli vary).

import { Code } from "./code.ts";
import { RpcError } from "./rpc_error.ts";

/** A message compression algorithm. */
export interface Compression {
  /** The name used in grpc-encoding / connect-content-encoding. */
  readonly name: string;
  compress(data: Uint8Array): Promise<Uint8Array>;
  /** Decompresses, refusing output longer than `maxBytes`. */
  decompress(data: Uint8Array, maxBytes: number): Promise<Uint8Array>;
}

async function collect(
  readable: ReadableStream<Uint8Array>,
  maxBytes: number,
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
        `Cannot decompress message: size exceeds maxMessageBytes ${maxBytes}`,
      );
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

function run(
  transform: ReadableWritablePair<Uint8Array, Uint8Array>,
  data: Uint8Array,
  maxBytes: number,
): Promise<Uint8Array> {
  const writer = transform.writable.getWriter();
  // Write errors surface again as read errors, which collect() reports.
  writer.write(data).catch(() => {});
  writer.close().catch(() => {});
  return collect(transform.readable, maxBytes);
}

/** gzip, as named by gRPC and Connect. */
export const gzip: Compression = {
  name: "gzip",
  compress: (data) =>
    run(
      new CompressionStream("gzip") as ReadableWritablePair<
        Uint8Array,
        Uint8Array
      >,
      data,
      Number.MAX_SAFE_INTEGER,
    ),
  decompress: async (data, maxBytes) => {
    try {
      return await run(
        new DecompressionStream("gzip") as ReadableWritablePair<
          Uint8Array,
          Uint8Array
        >,
        data,
        maxBytes,
      );
    } catch (error) {
      if (error instanceof RpcError) throw error;
      throw new SyntaxError(`Cannot decompress message: invalid gzip data`, {
        cause: error,
      });
    }
  },
};

/** The compressions this library supports, by name. */
export function findCompression(name: string): Compression | undefined {
  return name === "gzip" ? gzip : undefined;
}

/**
 * Picks the response compression: the first of the client's accepted
 * encodings (comma-separated, in order of preference) that is enabled.
 */
export function negotiateCompression(
  accept: string | null,
  enabled: readonly Compression[],
): Compression | null {
  if (!accept) return null;
  for (const item of accept.split(",")) {
    const name = item.split(";")[0].trim();
    const found = enabled.find((c) => c.name === name);
    if (found) return found;
  }
  return null;
}
