// Per-message compression with the web-standard CompressionStream. Only
// gzip, which every runtime has (deflate-raw and brotli vary).

import { readAll } from "./_read_all.ts";
import { RpcError } from "./rpc_error.ts";

/** A message compression algorithm. */
export interface Compression {
  /** The name used in grpc-encoding / connect-content-encoding. */
  readonly name: string;
  compress(data: Uint8Array): Promise<Uint8Array>;
  /** Decompresses, refusing output longer than `maxBytes`. */
  decompress(data: Uint8Array, maxBytes: number): Promise<Uint8Array>;
}

function run(
  transform: ReadableWritablePair<Uint8Array, Uint8Array>,
  data: Uint8Array,
  maxBytes: number,
): Promise<Uint8Array> {
  const writer = transform.writable.getWriter();
  // Write errors surface again as read errors, which readAll() reports.
  writer.write(data).catch(() => {});
  writer.close().catch(() => {});
  return readAll(transform.readable, maxBytes, "decompress message");
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
