/**
 * A compression the library can apply or remove, on HTTP bodies
 * (`Content-Encoding`) and on RPC messages alike, with the web's
 * `CompressionStream` / `DecompressionStream`: `"gzip"` or `"deflate"` (the
 * zlib format HTTP calls deflate). These two work on every runtime the
 * library targets, Workers included.
 */
export type Compression = "gzip" | "deflate";

/**
 * The default limit on the decompressed size of a body: 64 MiB. Past it a
 * server answers 413, or errors the stream if its response has started.
 */
export const DEFAULT_MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024;
