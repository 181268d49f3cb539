// The request headers of a native gRPC call (doc/PROTOCOL-HTTP2.md), and
// the part gRPC-Web shares with it.

import type { Compression } from "../../http/compression.ts";
import { acceptHeader } from "../protocol/_compression.ts";
import type { CodecName } from "../protocol/_codec.ts";
import { contentType } from "./content_type.ts";
import {
  formatTimeout,
  headerAcceptEncoding,
  headerContentType,
  headerEncoding,
  headerTe,
  headerTimeout,
} from "./headers.ts";

/**
 * Sets what gRPC and gRPC-Web requests share on `headers`: the content
 * type, grpc-timeout, grpc-encoding and grpc-accept-encoding.
 */
export function setGrpcHeaders(
  headers: Headers,
  contentType: string,
  timeoutMs: number | undefined,
  sendCompression: Compression | null,
  acceptCompression: readonly Compression[],
): Headers {
  headers.set(headerContentType, contentType);
  if (timeoutMs !== undefined) {
    headers.set(headerTimeout, formatTimeout(timeoutMs));
  }
  if (sendCompression !== null) headers.set(headerEncoding, sendCompression);
  if (acceptCompression.length > 0) {
    headers.set(headerAcceptEncoding, acceptHeader(acceptCompression));
  } else if (sendCompression !== null) {
    // Without the header a server answers in the request's compression,
    // which the client would then refuse: say "none" explicitly.
    headers.set(headerAcceptEncoding, "identity");
  }
  return headers;
}

/** Sets the headers of a gRPC request on `headers` and returns it. */
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
  headers.set(headerTe, "trailers");
  return headers;
}
