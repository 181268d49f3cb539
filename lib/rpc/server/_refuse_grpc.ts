// The answer to a native gRPC call from a handler that does not serve native
// gRPC (createRpcHandler, which cannot send trailers; createUniversalHandler
// without "grpc" in its protocols): refused as a gRPC server refuses a call,
// in headers only, so that every gRPC client reports why.

import { Code } from "../code.ts";
import {
  contentType,
  parseContentType,
} from "../protocol_grpc/content_type.ts";
import { setStatus } from "../protocol_grpc/trailers.ts";
import { RpcError } from "../rpc_error.ts";
import type { UniversalResponse } from "../universal.ts";

/**
 * Refuses a native gRPC call (`application/grpc`) with `message`: cancels
 * its body and answers Trailers-Only, HTTP 200 with `grpc-status` 12
 * (UNIMPLEMENTED) and `grpc-message` in the headers and no body, in the
 * request's codec. A body (a 415's text) was read as a gRPC frame by
 * grpc-js (RESOURCE_EXHAUSTED, a message of 1634627183 bytes), and any
 * status but 200 as HTTP's by Connect's client and this library's (UNKNOWN
 * "HTTP 415"): none showed why, which `grpc-message` carries to all.
 *
 * @param request The refused call's headers and body.
 * @param message Why, and what serves native gRPC instead.
 * @returns The response, with no body and no trailers.
 */
export async function refuseGrpc(
  request: {
    readonly headers: Headers;
    readonly body: ReadableStream<Uint8Array> | null;
  },
  message: string,
): Promise<UniversalResponse> {
  await request.body?.cancel();
  const codec = parseContentType(request.headers.get("content-type"));
  return {
    status: 200,
    headers: setStatus(
      new Headers({ "content-type": contentType(codec ?? "proto") }),
      {
        error: new RpcError(Code.Unimplemented, message),
        trailers: new Headers(),
      },
    ),
  };
}
