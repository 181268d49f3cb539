// Serves one native gRPC call (application/grpc): status in HTTP trailers,
// Trailers-Only for errors before the call starts. gRPC-Web differs only in
// its content type and in ending the body with a trailer frame instead (and
// its text format in a body in base64), so it serves its calls with
// serveGrpcCall too.

import { markUnbuffered, mergeUnbuffered } from "../../http/_unbuffered.ts";
import { Code } from "../code.ts";
import { RpcError } from "../rpc_error.ts";
import type { CallStatus, ServerCallInit } from "../protocol/_server_call.ts";
import type { ResolvedServeOptions } from "../protocol/_serve_options.ts";
import {
  type ParamHeaders,
  readCallParams,
  startCall,
} from "../protocol/_serve_common.ts";
import { acceptHeader } from "../protocol/_compression.ts";
import { quote } from "../protocol/_quote.ts";
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
  /**
   * gRPC-Web's text format: the request as the call reads it (its body
   * decoded from base64), and the response body as sent (encoded).
   */
  text?: {
    request(request: UniversalRequest): UniversalRequest;
    body(body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array>;
  };
}

const grpc: GrpcVariant = { protocol: "grpc", parseContentType, contentType };

/** Serves a native gRPC call. */
export function handleGrpc(
  request: UniversalRequest,
  entry: ServerCallInit["entry"] | undefined,
  path: string,
  options: ResolvedServeOptions,
): Promise<UniversalResponse> {
  return serveGrpcCall(request, entry, path, options, grpc);
}

const paramHeaders: ParamHeaders = {
  parseTimeout,
  timeout: headerTimeout,
  encoding: headerEncoding,
  acceptEncoding: headerAcceptEncoding,
};

/**
 * Serves a gRPC or gRPC-Web call. The response head goes out with the
 * first response message, or with the status if the call ends first: then
 * as Trailers-Only (status in the headers), which is also the answer to an
 * unknown method or a malformed request.
 */
export async function serveGrpcCall(
  request: UniversalRequest,
  entry: ServerCallInit["entry"] | undefined,
  path: string,
  options: ResolvedServeOptions,
  variant: GrpcVariant,
): Promise<UniversalResponse> {
  const type = request.headers.get(headerContentType);
  const codec = variant.parseContentType(type);
  const headers = new Headers({
    [headerContentType]: variant.contentType(codec ?? "proto"),
    [headerAcceptEncoding]: acceptHeader(options.acceptCompression),
  });
  // gRPC-Web goes over HTTP/1.1 too, through proxies that would hold a
  // streamed answer until the call ends.
  if (variant.protocol === "grpc-web") markUnbuffered(headers);
  const trailersOnly = (status: CallStatus): UniversalResponse => {
    setStatus(headers, status);
    return { status: 200, headers };
  };
  if (codec === undefined) {
    // A gRPC content type of a codec not served (application/grpc+thrift):
    // answered in gRPC, so that the client says why (a bare 415 was
    // "Received HTTP status code 415"); PROTOCOL-HTTP2 keeps 415 for
    // types that are no gRPC at all.
    await request.body?.cancel().catch(() => {});
    return trailersOnly({
      error: new RpcError(
        Code.Unimplemented,
        `Cannot serve content type ${
          quote(type ?? "")
        }: the codecs served are proto and json`,
      ),
      trailers: new Headers(),
    });
  }
  if (entry === undefined) {
    await request.body?.cancel().catch(() => {});
    return trailersOnly({
      error: new RpcError(
        Code.Unimplemented,
        `Cannot find method ${quote(path)}`,
      ),
      trailers: new Headers(),
    });
  }
  if (
    codec === "json" && (!entry.method.input.json || !entry.method.output.json)
  ) {
    // JSON asked of a method whose messages have no JSON codec: refused
    // in gRPC, as a codec the server does not have is.
    await request.body?.cancel().catch(() => {});
    const typeName = entry.method.input.json
      ? entry.method.output.typeName
      : entry.method.input.typeName;
    return trailersOnly({
      error: new RpcError(
        Code.Unimplemented,
        `Cannot serve content type ${
          quote(type ?? "")
        }: ${typeName} has no JSON codec (send the binary proto encoding)`,
      ),
      trailers: new Headers(),
    });
  }
  if (variant.text) request = variant.text.request(request);
  try {
    const params = readCallParams(request, paramHeaders, options);
    const call = startCall(
      request,
      entry,
      variant.protocol,
      codec,
      params,
      options,
      variant.endFrame ?? (() => undefined),
    );
    await call.head;
    if (variant.protocol === "grpc-web") {
      mergeUnbuffered(headers, call.responseHeaders);
    } else {
      call.responseHeaders.forEach((value, key) => headers.append(key, value));
    }
    const ended = await settledWithin(call.status);
    if (ended !== undefined && ended.error !== undefined) {
      // Failed before its first message: Trailers-Only.
      await call.body.cancel().catch(() => {});
      return trailersOnly(ended);
    }
    if (params.responseCompression) {
      headers.set(headerEncoding, params.responseCompression);
    }
    if (variant.endFrame) {
      const body = variant.text ? variant.text.body(call.body) : call.body;
      return { status: 200, headers, body };
    }
    return {
      status: 200,
      headers,
      body: call.body,
      trailers: call.status.then((status) => setStatus(new Headers(), status)),
    };
  } catch (error) {
    await request.body?.cancel().catch(() => {});
    return trailersOnly({
      error: RpcError.from(error, Code.Internal),
      trailers: new Headers(),
    });
  }
}

/** The status if `status` has already settled (after a microtask), else undefined. */
async function settledWithin(
  status: Promise<CallStatus>,
): Promise<CallStatus | undefined> {
  const pending = {};
  const result = await Promise.race([status, Promise.resolve(pending)]);
  return result === pending ? undefined : result as CallStatus;
}
