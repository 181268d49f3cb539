// Steps every protocol's server side shares: reading a call's deadline and
// compressions from its request headers.

import { emptyStream } from "../../_internal/bytes.ts";
import { Code } from "../code.ts";
import type { Compression } from "../../http/compression.ts";
import {
  negotiateResponseCompression,
  readCompression,
} from "./_compression.ts";
import type { ResolvedServeOptions } from "./_serve_options.ts";
import type { CodecName } from "./_codec.ts";
import {
  type CallStatus,
  type ServerCall,
  type ServerCallInit,
  startServerCall,
} from "./_server_call.ts";
import type { Protocol } from "../server/implement_service.ts";
import type { UniversalRequest } from "../universal.ts";

/** The header names a protocol reads a call's parameters from. */
export interface ParamHeaders {
  /** Parses the deadline header (grpc-timeout, connect-timeout-ms). */
  parseTimeout(value: string | null): number | undefined;
  timeout: string;
  /** The request's message compression. */
  encoding: string;
  /** The compressions the client accepts on the response. */
  acceptEncoding: string;
}

/** A call's deadline and compressions, read from its request headers. */
export interface CallParams {
  timeoutMs: number | undefined;
  requestCompression: Compression | null;
  responseCompression: Compression | null;
}

/**
 * Reads a call's parameters; throws an RpcError for a malformed deadline
 * (`InvalidArgument`) or an unsupported compression (`Unimplemented`).
 */
export function readCallParams(
  request: { headers: Headers },
  names: ParamHeaders,
  options: ResolvedServeOptions,
): CallParams {
  const timeoutMs = clampTimeout(
    names.parseTimeout(request.headers.get(names.timeout)),
    options.maxTimeoutMs,
  );
  const requestCompression = readCompression(
    request.headers.get(names.encoding),
    options.acceptCompression,
    names.encoding,
    Code.Unimplemented,
  );
  const responseCompression = negotiateResponseCompression(
    request.headers.get(names.acceptEncoding),
    requestCompression,
    options.acceptCompression,
  );
  return { timeoutMs, requestCompression, responseCompression };
}

/** The deadline to enforce: the client's, capped by maxTimeoutMs. */
export function clampTimeout(
  timeoutMs: number | undefined,
  max: number | undefined,
): number | undefined {
  if (max === undefined) return timeoutMs;
  return timeoutMs === undefined ? max : Math.min(timeoutMs, max);
}

/** Starts the server call of `request` with the handler options applied. */
export function startCall(
  request: UniversalRequest,
  entry: ServerCallInit["entry"],
  protocol: Protocol,
  codec: CodecName,
  params: CallParams,
  options: ResolvedServeOptions,
  end: (status: CallStatus) => Uint8Array | undefined,
  bare = false,
): ServerCall {
  return startServerCall({
    entry,
    protocol,
    codecName: codec,
    requestMethod: request.method,
    requestHeaders: request.headers,
    requestBody: request.body ?? emptyStream(),
    requestSignal: request.signal,
    ...params,
    compressMinBytes: options.compressMinBytes,
    maxMessageBytes: options.maxMessageBytes,
    idleTimeoutMs: options.idleTimeoutMs,
    minBytesPerSecond: options.minBytesPerSecond,
    minRateWindowMs: options.minRateWindowMs,
    onError: options.onError,
    end,
    bare,
  });
}
