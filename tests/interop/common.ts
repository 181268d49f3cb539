// What the interop server and the cases share (tests/interop/), with no
// peer library behind it, so that the table generator can load it alone.

import { PayloadType } from "../gen/grpc/testing/messages_pb.ts";

/** Request metadata the server echoes as a response header. */
export const ECHO_INITIAL = "x-grpc-test-echo-initial";
/** Request metadata the server echoes as a trailer (binary: base64). */
export const ECHO_TRAILING = "x-grpc-test-echo-trailing-bin";

/**
 * Request metadata that the server's handler, when it fails the call,
 * puts into its error's metadata under the same name (not an interop
 * description's; tests/interop/status_cases.ts).
 */
export const ERROR_METADATA = "x-sluice-error-metadata";

/** A payload of `size` zero bytes. */
export function zeros(size: number) {
  return { type: PayloadType.COMPRESSABLE, body: new Uint8Array(size) };
}

/**
 * A `response_status` code that is no gRPC code: the test server's handler
 * throws a plain `Error` with the status message instead of a status
 * (tests/interop/status_cases.ts; the interop descriptions never send it).
 */
export const THROW_PLAIN_ERROR = 1000;
