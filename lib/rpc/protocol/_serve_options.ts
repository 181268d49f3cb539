// Options shared by every protocol's server side, with defaults applied.

import type { Compression } from "../../http/compression.ts";
import type { HandlerContext } from "../server/implement_service.ts";

export interface ResolvedServeOptions {
  maxMessageBytes: number;
  compressMinBytes: number;
  acceptCompression: readonly Compression[];
  maxTimeoutMs: number | undefined;
  idleTimeoutMs: number | undefined;
  minBytesPerSecond: number;
  minRateWindowMs: number;
  /** Told of a call failed by the server's fault; guarded: never throws. */
  onError: (error: unknown, context: HandlerContext) => void;
}
