// Serves one native gRPC call (application/grpc): status in HTTP trailers,
// Trailers-Only for errors before the call starts. gRPC-Web differs only in
// its content type and in ending the body with a trailer frame instead, so
// it serves its calls with serveGrpcCall too.

import { Code } from "../code.ts";
import { RpcError } from "../rpc_error.ts";
import {
  type CallStatus,
  type ServerCallInit,
  startServerCall,
} from "../protocol/_server_call.ts";
import type { ResolvedServeOptions } from "../protocol/_serve_options.ts";
import { emptyBody } from "../protocol/_serve_common.ts";
import {
  acceptHeader,
  negotiateResponseCompression,
  readCompression,
} from "../protocol/_compression.ts";
import type { UniversalRequest, UniversalResponse } from "../universal.ts";
import { contentType, parseContentType } from "./content_type.ts";
import {
  headerAcceptEncoding,
  headerContentType,
  headerEncoding,
  headerTimeout,
  parseTimeout,
} from "./headers.ts";
import { setStatus } from "./trailers.ts";

/** What tells native gRPC and gRPC-Web apart on the server. */
export interface GrpcVariant {
  protocol: "grpc" | "grpc-web";
  parseContentType(value: string | null): "proto" | "json" | undefined;
  contentType(codec: "proto" | "json"): string;
  /**
   * The bytes that end the body with the status (gRPC-Web's trailer frame).
   * Without it, the status goes in HTTP trailers (native gRPC).
   */
  endFrame?: (status: CallStatus) => Uint8Array;
}

const grpc: GrpcVariant = { protocol: "grpc", parseContentType, contentType };

export function handleGrpc(
  request: UniversalRequest,
  entry: ServerCallInit["entry"] | undefined,
  path: string,
  options: ResolvedServeOptions,
): UniversalResponse {
  return serveGrpcCall(request, entry, path, options, grpc);
}

export function serveGrpcCall(
  request: UniversalRequest,
  entry: ServerCallInit["entry"] | undefined,
  path: string,
  options: ResolvedServeOptions,
  variant: GrpcVariant,
): UniversalResponse {
  const codec = variant.parseContentType(
    request.headers.get(headerContentType),
  );
  if (codec === undefined) return { status: 415, headers: new Headers() };
  const headers = new Headers({
    [headerContentType]: variant.contentType(codec),
    [headerAcceptEncoding]: acceptHeader(options.acceptCompression),
  });
  const trailersOnly = (error: unknown): UniversalResponse => {
    setStatus(headers, {
      error: RpcError.from(error, Code.Internal),
      trailers: new Headers(),
    });
    return { status: 200, headers };
  };
  if (entry === undefined) {
    return trailersOnly(
      new RpcError(Code.Unimplemented, `Cannot find method ${path}`),
    );
  }
  try {
    const timeoutMs = parseTimeout(request.headers.get(headerTimeout));
    const inCompression = readCompression(
      request.headers.get(headerEncoding),
      options.acceptCompression,
      headerEncoding,
      Code.Unimplemented,
    );
    const outCompression = negotiateResponseCompression(
      request.headers.get(headerAcceptEncoding),
      inCompression,
      options.acceptCompression,
    );
    if (outCompression) headers.set(headerEncoding, outCompression);
    const call = startServerCall({
      entry,
      protocol: variant.protocol,
      codecName: codec,
      requestHeaders: request.headers,
      requestBody: request.body ?? emptyBody(),
      requestSignal: request.signal,
      requestCompression: inCompression,
      responseCompression: outCompression,
      compressMinBytes: options.compressMinBytes,
      maxMessageBytes: options.maxMessageBytes,
      timeoutMs: clampTimeout(timeoutMs, options.maxTimeoutMs),
      idleTimeoutMs: options.idleTimeoutMs,
      end: variant.endFrame ?? (() => undefined),
    });
    call.responseHeaders.forEach((value, key) => headers.append(key, value));
    if (variant.endFrame) return { status: 200, headers, body: call.body };
    return {
      status: 200,
      headers,
      body: call.body,
      trailers: call.status.then((status) => setStatus(new Headers(), status)),
    };
  } catch (error) {
    return trailersOnly(error);
  }
}

export function clampTimeout(
  timeoutMs: number | undefined,
  max: number | undefined,
): number | undefined {
  if (max === undefined) return timeoutMs;
  return timeoutMs === undefined ? max : Math.min(timeoutMs, max);
}
