// The metadata of a handler's RpcError, sent with the call's status as
// trailers (gRPC's, gRPC-Web's trailer frame, Connect's end-of-stream
// metadata, Connect unary's trailer- headers), as Connect-ES, connect-go and
// grpc-js send a handler's error metadata. Protocol headers are left out,
// and so is the metadata of an error that came from the wire (a handler
// rethrowing what another server answered): it holds that server's
// trailers, and only its code, message and details go on.

import type { RpcError } from "../rpc_error.ts";
import { isProtocolHeader } from "./_protocol_headers.ts";

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
    if (!isProtocolHeader(key)) trailers.append(key, value);
  });
  return trailers;
}
