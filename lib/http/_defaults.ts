// The HTTP layer's defaults, private: each is documented with @default on
// the option it fills. One constant per value, shared by the files that use
// the same default.

/** `maxBytes` of receiveBody and createUploadHandler: 1 GiB. */
export const MAX_BODY_BYTES = 1024 * 1024 * 1024;

/** `idleTimeoutMs` of receiveBody, echo and duplexResponse: 30 s. */
export const IDLE_TIMEOUT_MS = 30_000;

/** `maxDecompressedBytes` of echo, duplexResponse and openDuplex: 64 MiB. */
export const MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024;

/** `readAheadBytes` of echo and duplexResponse: 1 MiB. */
export const DUPLEX_READ_AHEAD_BYTES = 1024 * 1024;

/**
 * Not an option: how large a read of a full-duplex request body (echo,
 * duplexResponse) may grow while reads keep coming back full, or undefined
 * (the body is piped or read as it comes). Under Deno 2.9.6 over HTTP/1.1
 * the runtime buffers such a request without bound and each read copies
 * the backlog behind it (lib/_internal/pump_bytes.ts); reads that take the
 * backlog whole keep the exchange out of that collapse. Measured (echo,
 * 1 GiB, curl; docs/performance.md): reads of a fixed 1 MiB collapsed in 5
 * of 8 runs; reads growing to 4 MiB in none of 6, to 16 MiB in none of 24.
 * Only for a request that declares its length (`Content-Length`): a read
 * of a chunked body stops at its chunk's end, so growing cannot help it,
 * and with BYOB reads Deno left sockets of chunked clients that stop
 * reading and close open more often (3 of 26 runs of tests/echo.test.ts's
 * scenario against 0 of 24 with a pipe or a default reader;
 * docs/known-runtime-issues.md (g)).
 */
export function duplexMaxReadBytes(request: Request): number | undefined {
  return request.headers.has("content-length") ? 16 * 1024 * 1024 : undefined;
}

/** `writeHighWaterMark` of duplexResponse and openDuplex: 64 KiB. */
export const WRITE_HIGH_WATER_MARK = 64 * 1024;

/** `compressMinBytes` of the servers: 1 KiB. */
export const COMPRESS_MIN_BYTES = 1024;
