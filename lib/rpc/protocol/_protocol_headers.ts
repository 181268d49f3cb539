// The headers the protocols own. The server sends none of them from a
// handler (its response headers and trailers, its error's metadata), and
// the transports none of those that describe a request body's encoding and
// length from a caller's call headers.
//
// A handler's RpcError metadata goes with the status as trailers, as
// Connect-ES, connect-go and grpc-js send it; not that of an error that
// came from the wire (a handler rethrowing what another server answered):
// it holds that server's trailers, and only its code, message and details
// go on.

import type { RpcError } from "../rpc_error.ts";
import { headerCanCarry } from "../../http/_utf8_header.ts";

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

/**
 * Whether a handler's field is sent: not a protocol header, and a valid
 * value. A control character other than HTAB is not allowed in a field
 * value (RFC 9110, 5.5), though `Headers` refuses only NUL, CR and LF. Sent
 * on, one made Deno's HTTP/1.1 server panic and exit (a handler that echoed
 * a client's text into a header took the process down) and Bun send a
 * malformed response.
 */
function isOwn(key: string, value: string): boolean {
  return !isProtocolHeader(key) && headerCanCarry(value);
}

/** Appends `from`'s entries to `into`, all but those `isOwn` refuses. */
function appendOwn(into: Headers, from: Headers): Headers {
  from.forEach((value, key) => {
    if (isOwn(key, value)) into.append(key, value);
  });
  return into;
}

/** Whether `headers` holds a field `isOwn` refuses. */
function hasForeign(headers: Headers): boolean {
  let found = false;
  headers.forEach((value, key) => found ||= !isOwn(key, value));
  return found;
}

/**
 * A handler's response headers as sent: protocol headers, and fields whose
 * value holds a control character, left out (the same object when it holds
 * none, as a call's usually does).
 */
export function handlerHeaders(headers: Headers): Headers {
  return hasForeign(headers) ? appendOwn(new Headers(), headers) : headers;
}

const fromWire = new WeakSet<RpcError>();

/**
 * Marks an error as a server's answer (the client's): a handler that
 * rethrows it sends its code, message and details, not its metadata.
 */
export function markFromWire(error: RpcError): void {
  fromWire.add(error);
}

/**
 * The trailers of a call that ends with `error` (or none): the handler's
 * trailers, then the error's metadata unless it came from the wire;
 * protocol headers and fields with a control character left out of both.
 */
export function statusTrailers(
  trailers: Headers,
  error: RpcError | undefined,
): Headers {
  const sent = handlerHeaders(trailers);
  if (error === undefined || fromWire.has(error)) return sent;
  // A copy, not the handler's own object, takes the error's metadata.
  return appendOwn(
    sent === trailers ? new Headers(trailers) : sent,
    error.metadata,
  );
}
