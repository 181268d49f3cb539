// Options shared by every protocol's server side, with defaults applied.

import type { Compression } from "./_compression.ts";

export interface ResolvedServeOptions {
  maxMessageBytes: number;
  compressMinBytes: number;
  compressions: readonly Compression[];
  maxTimeoutMs: number | undefined;
  idleTimeoutMs: number | undefined;
}
