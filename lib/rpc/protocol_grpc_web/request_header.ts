// The request headers of a gRPC-Web call (doc/PROTOCOL-WEB.md): gRPC's,
// with x-grpc-web instead of te.

import type { Compression } from "../../http/compression.ts";
import type { CodecName } from "../protocol/_codec.ts";
import { setGrpcHeaders } from "../protocol_grpc/request_header.ts";
import { contentType } from "./content_type.ts";
import { headerXGrpcWeb } from "./headers.ts";

/** Sets the headers of a gRPC-Web request on `headers` and returns it. */
export function requestHeader(
  headers: Headers,
  codec: CodecName,
  timeoutMs: number | undefined,
  sendCompression: Compression | null,
  acceptCompression: readonly Compression[],
): Headers {
  setGrpcHeaders(
    headers,
    contentType(codec),
    timeoutMs,
    sendCompression,
    acceptCompression,
  );
  headers.set(headerXGrpcWeb, "1");
  return headers;
}
