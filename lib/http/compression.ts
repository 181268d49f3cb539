/**
 * A compression the library can apply or remove, on HTTP bodies
 * (`Content-Encoding`) and on RPC messages alike, with the web's
 * `CompressionStream` / `DecompressionStream`: `"gzip"` or `"deflate"` (the
 * zlib format HTTP calls deflate). These two work on every runtime the
 * library targets, Workers included.
 */
export type Compression = "gzip" | "deflate";
