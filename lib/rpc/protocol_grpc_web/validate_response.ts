// Checking a gRPC-Web response: 200, then a Trailers-Only status in the
// headers, or the call's content type and an accepted grpc-encoding; the
// status itself comes in the trailer frame at the end of the body.

import { Code } from "../code.ts";
import type { Compression } from "../../http/compression.ts";
import type { CodecName } from "../protocol/_codec.ts";
import type { ValidatedResponse } from "../protocol/_client_call.ts";
import type { CallStatus } from "../protocol/_server_call.ts";
import { httpStatusError } from "../protocol/_transport.ts";
import { RpcError } from "../rpc_error.ts";
import type { UniversalClientResponse } from "../universal.ts";
import { readStatus } from "../protocol_grpc/trailers.ts";
import { validateGrpcMessages } from "../protocol_grpc/validate_response.ts";
import { parseContentType } from "./content_type.ts";
import { decodeTrailerBlock } from "./trailers.ts";

/** Checks a gRPC-Web response's headers; throws an RpcError if invalid. */
export function validateResponse(
  response: UniversalClientResponse,
  codec: CodecName,
  acceptCompression: readonly Compression[],
): ValidatedResponse {
  const status = readStatus(response.headers);
  if (response.status !== 200) {
    // An error status in the headers of another HTTP status than 200 is
    // the call's (a proxy's 503 that says RESOURCE_EXHAUSTED and why, as
    // gRPC's validation reads it; its code and message were replaced by
    // the HTTP status's), whatever body comes with it (an error page).
    throw status ?? httpStatusError(response.status, response.headers);
  }
  if (status !== null) {
    return {
      compression: null,
      status: { error: status, trailers: response.headers },
    };
  }
  return validateGrpcMessages(
    response,
    codec,
    acceptCompression,
    parseContentType,
  );
}

/** Decodes the trailer frame's data into the call's status. */
export function decodeEnd(data: Uint8Array): CallStatus {
  const trailers = decodeTrailerBlock(data);
  const status = readStatus(trailers);
  if (status === null) {
    throw new RpcError(
      Code.Internal,
      "Cannot finish call: the trailer frame has no grpc-status",
    );
  }
  return { error: status, trailers };
}
