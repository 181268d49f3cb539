// The RPC layer's defaults, each said once here and documented with
// @default on the options that use it. Not exported from the package.

import type { Compression } from "../../http/compression.ts";

/** `maxMessageBytes`: 4 MiB, gRPC's default limit on one message. */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** `compressMinBytes`, on clients and servers. */
export const COMPRESS_MIN_BYTES = 1024;

/** `acceptCompression`, on clients and servers. */
export const ACCEPT_COMPRESSION: readonly Compression[] = ["gzip"];

/**
 * `idleTimeoutMs` of handlers: 60 s, as nginx's `grpc_read_timeout`. Long
 * enough for interactive streams that pause between messages, short enough
 * that a client that stops sending cannot pin a call (and its memory) for
 * long. 0 turns it off.
 */
export const IDLE_TIMEOUT_MS = 60_000;
