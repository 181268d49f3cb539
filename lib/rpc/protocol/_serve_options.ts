// Options shared by every protocol's server side, with defaults applied.

import type { Compression } from "../../http/compression.ts";

export interface ResolvedServeOptions {
  maxMessageBytes: number;
  compressMinBytes: number;
  acceptCompression: readonly Compression[];
  maxTimeoutMs: number | undefined;
  idleTimeoutMs: number | undefined;
  minBytesPerSecond: number;
  minRateWindowMs: number;
}
