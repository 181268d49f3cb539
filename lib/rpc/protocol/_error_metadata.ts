// The metadata of a handler's RpcError, sent with the call's status as
// trailers (gRPC's, gRPC-Web's trailer frame, Connect's end-of-stream
// metadata, Connect unary's trailer- headers), as Connect-ES, connect-go and
// grpc-js send a handler's error metadata. Protocol headers are left out,
// and so is the metadata of an error that came from the wire (a handler
// rethrowing what another server answered): it holds that server's
// trailers, and only its code, message and details go on.

import type { RpcError } from "../rpc_error.ts";

/**
 * Headers that carry the protocols' own information (the same set as
 * connect-go's and Connect-ES's): never taken from an error's metadata.
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

const fromWire = new WeakSet<RpcError>();

/**
 * Marks an error as a server's answer (the client's): a handler that
 * rethrows it sends its code, message and details, not its metadata.
 */
export function markFromWire(error: RpcError): void {
  fromWire.add(error);
}

/**
 * The trailers of a call that ends with `error`: `trailers` with the
 * error's metadata appended (protocol headers left out), unless the error
 * came from the wire.
 */
export function trailersWithError(
  trailers: Headers,
  error: RpcError | undefined,
): Headers {
  if (error === undefined || fromWire.has(error)) return trailers;
  error.metadata.forEach((value, key) => {
    if (!PROTOCOL_HEADERS.has(key)) trailers.append(key, value);
  });
  return trailers;
}
