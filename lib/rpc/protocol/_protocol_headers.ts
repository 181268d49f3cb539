// The headers the protocols own: none is taken from a handler's error
// metadata, and those that describe a request body's encoding and length
// (or what the client can read) from a caller's call headers.

/**
 * Headers that carry the protocols' own information (the set connect-go
 * and Connect-ES keep out of error metadata), lower case.
 */
const PROTOCOL_HEADERS: ReadonlySet<string> = new Set([
  "content-type",
  "content-length",
  "content-encoding",
  "accept-encoding",
  "host",
  "user-agent",
  "trailer",
  "date",
  "te",
  "connect-content-encoding",
  "connect-accept-encoding",
  "connect-timeout-ms",
  "connect-protocol-version",
  "grpc-encoding",
  "grpc-accept-encoding",
  "grpc-timeout",
  "grpc-status",
  "grpc-message",
  "grpc-status-details-bin",
]);

/** Whether `name` (lower case, as Headers gives it) is a protocol header. */
export function isProtocolHeader(name: string): boolean {
  return PROTOCOL_HEADERS.has(name);
}

/**
 * Request headers that describe the body's encoding and length, or the
 * encodings the client reads: the transport alone sets them, from its
 * options. (A caller's deadline header goes as given, unless `timeoutMs`
 * is set; content-type and protocol version are always the transport's.)
 */
const ENCODING_HEADERS: ReadonlySet<string> = new Set([
  "content-length",
  "content-encoding",
  "accept-encoding",
  "connect-content-encoding",
  "connect-accept-encoding",
  "grpc-encoding",
  "grpc-accept-encoding",
]);

/** Whether `name` (lower case) is a request's encoding or length header. */
export function isEncodingHeader(name: string): boolean {
  return ENCODING_HEADERS.has(name);
}
