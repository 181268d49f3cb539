// Serves one gRPC-Web call: the status goes in a trailer frame at the end of
// the body, or in the headers (Trailers-Only) for errors before the call.
// Everything else is native gRPC's (protocol_grpc/handler.ts).

import type { ServerCallInit } from "../protocol/_server_call.ts";
import type { ResolvedServeOptions } from "../protocol/_serve_options.ts";
import type { UniversalRequest, UniversalResponse } from "../universal.ts";
import { type GrpcVariant, serveGrpcCall } from "../protocol_grpc/handler.ts";
import { setStatus } from "../protocol_grpc/trailers.ts";
import { contentType, parseContentType } from "./content_type.ts";
import { encodeTrailerFrame } from "./trailers.ts";

const grpcWeb: GrpcVariant = {
  protocol: "grpc-web",
  parseContentType,
  contentType,
  endFrame: (status) => encodeTrailerFrame(setStatus(new Headers(), status)),
};

export function handleGrpcWeb(
  request: UniversalRequest,
  entry: ServerCallInit["entry"] | undefined,
  path: string,
  options: ResolvedServeOptions,
): Promise<UniversalResponse> {
  return serveGrpcCall(request, entry, path, options, grpcWeb);
}
