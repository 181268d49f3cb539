// Checking a native gRPC response's headers: a Trailers-Only response
// (grpc-status in the headers) carries the status and nothing else;
// otherwise it must be 200 with the call's content type and an accepted
// grpc-encoding.

import { Code } from "../code.ts";
import type { Compression } from "../../http/compression.ts";
import { readCompression } from "../protocol/_compression.ts";
import type { CodecName } from "../protocol/_codec.ts";
import { codeFromContentType } from "../protocol/_codes.ts";
import type { ValidatedResponse } from "../protocol/_client_call.ts";
import { quote } from "../protocol/_quote.ts";
import { httpStatusError } from "../protocol/_transport.ts";
import { RpcError } from "../rpc_error.ts";
import type { UniversalClientResponse } from "../universal.ts";
import { parseContentType } from "./content_type.ts";
import { headerContentType, headerEncoding } from "./headers.ts";
import { readStatus } from "./trailers.ts";

/**
 * The content type and compression checks that gRPC and gRPC-Web share;
 * `parse` reads the protocol's content type. A type that is not the call's
 * is `Internal` when it is the protocol's with another codec, and `Unknown`
 * (from the HTTP status 200) when it is no type of the protocol's at all (a
 * proxy's maintenance page), as the Connect client reads it.
 */
export function validateGrpcMessages(
  response: UniversalClientResponse,
  codec: CodecName,
  acceptCompression: readonly Compression[],
  parse: (type: string | null) => CodecName | undefined,
): ValidatedResponse {
  const type = response.headers.get(headerContentType);
  const typeCodec = parse(type);
  if (typeCodec !== codec) {
    throw new RpcError(
      codeFromContentType(typeCodec !== undefined),
      `Cannot read response: unexpected content type ${quote(String(type))}`,
    );
  }
  return {
    compression: readCompression(
      response.headers.get(headerEncoding),
      acceptCompression,
      headerEncoding,
      Code.Internal,
    ),
  };
}

/** Checks a gRPC response's headers; throws an RpcError if invalid. */
export function validateResponse(
  response: UniversalClientResponse,
  codec: CodecName,
  acceptCompression: readonly Compression[],
): ValidatedResponse {
  const status = readStatus(response.headers);
  // Trailers-Only: the status is in the headers; an OK one only on a 200
  // (a proxy's 503 saying grpc-status 0 was read as a success).
  if (status !== null && (response.status === 200 || status !== undefined)) {
    return {
      compression: null,
      status: { error: status, trailers: response.headers },
    };
  }
  if (response.status !== 200) {
    throw httpStatusError(response.status, response.headers);
  }
  return validateGrpcMessages(
    response,
    codec,
    acceptCompression,
    parseContentType,
  );
}

/** Reads the status from a gRPC response's trailers; null if absent. */
export function readTrailers(
  trailers: Headers,
): { error: RpcError | undefined; trailers: Headers } | null {
  const status = readStatus(trailers);
  return status === null ? null : { error: status, trailers };
}
