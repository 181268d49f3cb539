// The request headers of a Connect call (connectrpc.com/docs/protocol):
// streaming calls name their message compression in
// connect-content-encoding; unary calls, whose body is one bare message,
// in content-encoding, set only when the body is compressed.

import type { Compression } from "../../http/compression.ts";
import { acceptHeader } from "../protocol/_compression.ts";
import type { CodecName } from "../protocol/_codec.ts";
import { contentType, unaryContentType } from "./content_type.ts";
import {
  formatTimeout,
  headerContentType,
  headerProtocolVersion,
  headerStreamAcceptEncoding,
  headerStreamEncoding,
  headerTimeout,
  headerUnaryAcceptEncoding,
} from "./headers.ts";

/** Sets the headers of a Connect request on `headers` and returns it. */
export function requestHeader(
  headers: Headers,
  unary: boolean,
  codec: CodecName,
  timeoutMs: number | undefined,
  sendCompression: Compression | null,
  acceptCompression: readonly Compression[],
): Headers {
  headers.set(
    headerContentType,
    unary ? unaryContentType(codec) : contentType(codec),
  );
  headers.set(headerProtocolVersion, "1");
  if (timeoutMs !== undefined) {
    headers.set(headerTimeout, formatTimeout(timeoutMs));
  }
  if (!unary && sendCompression !== null) {
    headers.set(headerStreamEncoding, sendCompression);
  }
  if (acceptCompression.length > 0) {
    headers.set(
      unary ? headerUnaryAcceptEncoding : headerStreamAcceptEncoding,
      acceptHeader(acceptCompression),
    );
  } else if (unary) {
    // Unary compression rides on HTTP's accept-encoding, which fetch fills
    // in itself ("gzip, br") when it is unset: say "none" explicitly.
    headers.set(headerUnaryAcceptEncoding, "identity");
  } else if (sendCompression !== null) {
    // Without the header a server answers in the request's compression,
    // which the client would then refuse: say "none" explicitly.
    headers.set(headerStreamAcceptEncoding, "identity");
  }
  return headers;
}
