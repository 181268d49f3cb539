// Reading a Connect response: a streaming response must be 200 with the
// streaming content type of the call's codec; a unary response is read
// whole: 200 with the unary content type and the message, or an error JSON
// (within 64 KiB, not maxMessageBytes) with a mapped HTTP status. Unary
// trailers travel as trailer- headers.

import { isProtocolHeader } from "../protocol/_protocol_headers.ts";
import { Code } from "../code.ts";
import type { Compression } from "../../http/compression.ts";
import {
  decompressMessage,
  readCompression,
} from "../protocol/_compression.ts";
import type { CodecName } from "../protocol/_codec.ts";
import { codeFromContentType } from "../protocol/_codes.ts";
import type { ValidatedResponse } from "../protocol/_client_call.ts";
import { MAX_METADATA_BYTES } from "../protocol/_metadata_limit.ts";
import type { CallStatus } from "../protocol/_server_call.ts";
import { readAll } from "../protocol/_read_all.ts";
import { quote } from "../protocol/_quote.ts";
import { httpStatusError } from "../protocol/_transport.ts";
import { RpcError } from "../rpc_error.ts";
import type { UniversalClientResponse } from "../universal.ts";
import { parseContentType, parseUnaryContentType } from "./content_type.ts";
import { errorFromJson } from "./end_stream.ts";
import {
  headerContentType,
  headerStreamEncoding,
  headerUnaryEncoding,
} from "./headers.ts";

/** Checks a streaming response's headers; throws an RpcError if invalid. */
export function validateResponse(
  response: UniversalClientResponse,
  codec: CodecName,
  acceptCompression: readonly Compression[],
): ValidatedResponse {
  if (response.status !== 200) {
    throw httpStatusError(response.status, response.headers);
  }
  const type = response.headers.get(headerContentType);
  const typeCodec = parseContentType(type);
  if (typeCodec !== codec) {
    throw unexpectedType(type, typeCodec !== undefined);
  }
  return {
    compression: readCompression(
      response.headers.get(headerStreamEncoding),
      acceptCompression,
      headerStreamEncoding,
      Code.Internal,
    ),
  };
}

/**
 * Reads a whole unary response: the decompressed message of a success,
 * within `maxMessageBytes`, and the status (an error from the error JSON,
 * within MAX_METADATA_BYTES, 64 KiB, whatever `maxMessageBytes` is: a small
 * limit for messages lost the server's code); throws an error inferred
 * from the HTTP status if the body is not one.
 */
export async function readUnaryResponse(
  response: UniversalClientResponse,
  codec: CodecName,
  acceptCompression: readonly Compression[],
  maxMessageBytes: number,
): Promise<{ data?: Uint8Array; status: CallStatus }> {
  const trailers = new Headers();
  response.headers.forEach((value, key) => {
    if (key.startsWith("trailer-")) trailers.append(key.slice(8), value);
  });
  const type = response.headers.get(headerContentType);
  // The status and the type first: a proxy's error page (an HTML 503, in
  // a coding the client does not decode) gets its HTTP status's code, and
  // a body of the wrong type is not read (it may never end).
  const isError = response.status !== 200;
  const typeCodec = isError ? undefined : parseUnaryContentType(type);
  if (
    isError ? !type?.startsWith("application/json") : typeCodec !== codec
  ) {
    await response.body.cancel().catch(() => {});
    throw isError
      ? httpStatusError(response.status, response.headers)
      : unexpectedType(type, typeCodec !== undefined);
  }
  // An error's JSON is status, not a message: its bound is the one for
  // metadata in a body (Connect's end of stream, gRPC-Web's trailers).
  const maxBytes = isError ? MAX_METADATA_BYTES : maxMessageBytes;
  let data: Uint8Array;
  try {
    const compression = readCompression(
      response.headers.get(headerUnaryEncoding),
      acceptCompression,
      headerUnaryEncoding,
      Code.Internal,
    );
    data = await readAll(
      response.body,
      maxBytes,
      compression !== null,
      "read response",
    );
    if (compression !== null && data.byteLength > 0) {
      data = await decompressMessage(compression, data, maxBytes);
    }
  } catch (cause) {
    if (!isError) throw cause;
    await response.body.cancel().catch(() => {});
    // An error body that cannot be read: the HTTP status still says what
    // happened, and the message why the body was not read when it was too
    // large.
    const error = httpStatusError(response.status, response.headers);
    if (
      !(cause instanceof RpcError && cause.code === Code.ResourceExhausted)
    ) throw error;
    throw new RpcError(
      error.code,
      `${error.rawMessage} with an error body over ${MAX_METADATA_BYTES} bytes`,
      { metadata: response.headers, cause },
    );
  }
  if (isError) {
    // The error's metadata: the response's own headers and its trailers,
    // as Connect-ES reads them (connect-node sends an error's metadata
    // as plain headers, sluice and connect-go as trailers).
    const metadata = new Headers();
    response.headers.forEach((value, key) => {
      if (!key.startsWith("trailer-") && !isProtocolHeader(key)) {
        metadata.append(key, value);
      }
    });
    trailers.forEach((value, key) => metadata.append(key, value));
    let error: RpcError | undefined;
    try {
      error = errorFromJson(
        JSON.parse(new TextDecoder().decode(data)),
        metadata,
        httpStatusError(response.status, metadata),
      );
    } catch {
      // Not an error object (a proxy's JSON, say): no status from the
      // server, only the HTTP status to infer a code from.
    }
    if (error === undefined) {
      throw httpStatusError(response.status, response.headers);
    }
    return { status: { error, trailers } };
  }
  return { data, status: { error: undefined, trailers } };
}

/**
 * A response of the wrong type: Internal when it is Connect's with another
 * codec (the server misbehaves), Unknown when it is no Connect type at all
 * (an HTML page from a proxy, say): see codeFromContentType.
 */
function unexpectedType(type: string | null, connectType: boolean): RpcError {
  return new RpcError(
    codeFromContentType(connectType),
    `Cannot read response: unexpected content type ${quote(String(type))}`,
  );
}
