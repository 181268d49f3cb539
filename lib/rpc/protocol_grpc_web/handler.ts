// Serves one gRPC-Web call: the status goes in a trailer frame at the end of
// the body, or in the headers (Trailers-Only) for errors before the call.
// Everything else is native gRPC's (protocol_grpc/handler.ts). A request in
// the text format (application/grpc-web-text), or one whose Accept asks for
// it, is answered in it (text.ts): the same call, its request body decoded
// from base64 and its response body encoded.

import type { ServerCallInit } from "../protocol/_server_call.ts";
import type { ResolvedServeOptions } from "../protocol/_serve_options.ts";
import type { UniversalRequest, UniversalResponse } from "../universal.ts";
import { type GrpcVariant, serveGrpcCall } from "../protocol_grpc/handler.ts";
import { setStatus } from "../protocol_grpc/trailers.ts";
import {
  acceptsText,
  contentType,
  isTextContentType,
  parseAnyContentType,
  parseContentType,
  textContentType,
} from "./content_type.ts";
import { headerAccept, headerContentType } from "./headers.ts";
import { TextDecodeStream, TextEncodeStream } from "./text.ts";
import { encodeTrailerFrame } from "./trailers.ts";

const grpcWeb: GrpcVariant = {
  protocol: "grpc-web",
  parseContentType,
  contentType,
  endFrame: (status) => encodeTrailerFrame(setStatus(new Headers(), status)),
};

const grpcWebText: GrpcVariant = {
  ...grpcWeb,
  // A binary request may ask for a text response (Accept).
  parseContentType: parseAnyContentType,
  contentType: textContentType,
  text: {
    request: decodeRequest,
    body: (body) => body.pipeThrough(new TextEncodeStream()),
  },
};

/**
 * A text-format request as the call reads it: its body decoded. Its signal
 * also aborts with the error of a body that is not base64, so that the
 * call ends with that error (`InvalidArgument`), not as a client gone.
 */
function decodeRequest(request: UniversalRequest): UniversalRequest {
  const { body, signal } = request;
  if (
    body === null || !isTextContentType(request.headers.get(headerContentType))
  ) {
    return request;
  }
  const decoding = new TextDecodeStream();
  return {
    method: request.method,
    url: request.url,
    headers: request.headers,
    body: body.pipeThrough(decoding),
    signal: signal === undefined
      ? decoding.signal
      : AbortSignal.any([signal, decoding.signal]),
  };
}

export function handleGrpcWeb(
  request: UniversalRequest,
  entry: ServerCallInit["entry"] | undefined,
  path: string,
  options: ResolvedServeOptions,
): Promise<UniversalResponse> {
  const { headers } = request;
  const text = isTextContentType(headers.get(headerContentType)) ||
    acceptsText(headers.get(headerAccept));
  return serveGrpcCall(
    request,
    entry,
    path,
    options,
    text ? grpcWebText : grpcWeb,
  );
}
