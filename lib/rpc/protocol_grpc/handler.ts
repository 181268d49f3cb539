// Serves one native gRPC call (application/grpc): status in HTTP trailers,
// Trailers-Only for errors before the call starts.

import { Code } from "../code.ts";
import { RpcError } from "../rpc_error.ts";
import { type ServerCallInit, startServerCall } from "../_server_call.ts";
import type { ResolvedServeOptions } from "../_serve_options.ts";
import {
  acceptEncoding,
  emptyBody,
  requestCompression,
  responseCompression,
} from "../_serve_common.ts";
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

export function handleGrpc(
  request: UniversalRequest,
  entry: ServerCallInit["entry"] | undefined,
  path: string,
  options: ResolvedServeOptions,
): UniversalResponse {
  const codec = parseContentType(request.headers.get(headerContentType));
  if (codec === undefined) return { status: 415, headers: new Headers() };
  const headers = new Headers({
    [headerContentType]: contentType(codec),
    [headerAcceptEncoding]: acceptEncoding(options.compressions),
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
    const inCompression = requestCompression(
      request.headers.get(headerEncoding),
      options.compressions,
      headerEncoding,
    );
    const outCompression = responseCompression(
      request.headers.get(headerAcceptEncoding),
      inCompression,
      options.compressions,
    );
    if (outCompression) headers.set(headerEncoding, outCompression.name);
    const call = startServerCall({
      entry,
      protocol: "grpc",
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
      end: () => undefined,
    });
    call.responseHeaders.forEach((value, key) => headers.append(key, value));
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
