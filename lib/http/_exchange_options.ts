// The options the echo and the duplex handlers share, checked once here
// with their defaults: what the request may decode to, how far it is read
// ahead, when the response is compressed, how long the request may idle.

import type { Compression } from "./compression.ts";
import { checkCompressionList } from "./_compression.ts";
import {
  COMPRESS_MIN_BYTES,
  DUPLEX_READ_AHEAD_BYTES,
  IDLE_TIMEOUT_MS,
  MAX_DECOMPRESSED_BYTES,
} from "./_defaults.ts";
import { checkIdleTimeout } from "../_internal/idle_timeout.ts";
import { checkMax } from "../_internal/limits.ts";

/** The shared options, as `EchoOptions` and `DuplexResponseOptions` have them. */
export interface ExchangeOptions {
  maxDecompressedBytes?: number;
  readAheadBytes?: number;
  compressMinBytes?: number;
  idleTimeoutMs?: number;
  acceptCompression?: readonly Compression[];
}

/** The shared options, checked, with their defaults. */
export type CheckedExchangeOptions = Required<ExchangeOptions>;

/**
 * Checks the shared options (a RangeError or TypeError naming the option,
 * `what`: "Cannot <what>") and fills in their defaults.
 */
export function checkExchangeOptions(
  what: string,
  options: ExchangeOptions,
): CheckedExchangeOptions {
  const idleTimeoutMs = options.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
  checkIdleTimeout(what, idleTimeoutMs);
  return {
    maxDecompressedBytes: checkMax(
      what,
      "maxDecompressedBytes",
      options.maxDecompressedBytes ?? MAX_DECOMPRESSED_BYTES,
    ),
    readAheadBytes: checkMax(
      what,
      "readAheadBytes",
      options.readAheadBytes ?? DUPLEX_READ_AHEAD_BYTES,
    ),
    compressMinBytes: checkMax(
      what,
      "compressMinBytes",
      options.compressMinBytes ?? COMPRESS_MIN_BYTES,
    ),
    idleTimeoutMs,
    acceptCompression: checkCompressionList(what, options.acceptCompression, [
      "gzip",
      "deflate",
    ]),
  };
}
