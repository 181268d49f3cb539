// The codec of a message type for a call: binary Protobuf or proto3 JSON,
// chosen once here for clients and servers.

import { messageOf } from "../../_internal/message_of.ts";
import { Code } from "../code.ts";
import type { Codec, MessageType } from "../wire/message_type.ts";
import { RpcError } from "../rpc_error.ts";

/** The codec named by a content type. */
export type CodecName = "proto" | "json";

/**
 * The codec of `type` for `name`; an `Internal` RpcError if JSON is asked
 * of a type without a JSON codec.
 */
export function codecFor<T>(type: MessageType<T>, name: CodecName): Codec<T> {
  if (name === "proto") return type.proto;
  if (type.json) return type.json;
  throw new RpcError(
    Code.Internal,
    `Cannot use JSON: ${type.typeName} has no JSON codec`,
  );
}

/**
 * Decodes one message. A codec's SyntaxError or TypeError keeps its
 * message, cut to MAX_ERROR_CHARS; anything else (a RangeError from the
 * engine, such as `Maximum call stack size exceeded`) becomes
 * `malformed message`, never the engine's text. Throws an RpcError with
 * `code` (InvalidArgument on servers, Internal on clients).
 */
export function decodeMessage<T>(
  codec: Codec<T>,
  typeName: string,
  data: Uint8Array,
  code: Code,
): T {
  try {
    return codec.decode(data);
  } catch (error) {
    const reason = error instanceof SyntaxError || error instanceof TypeError
      ? cut(error.message)
      : "malformed message";
    throw new RpcError(code, `Cannot decode ${typeName}: ${reason}`, {
      cause: error,
    });
  }
}

/**
 * Encodes one message. A value the codec cannot write (a handler's output
 * its type cannot hold) fails with an `Internal` RpcError naming the type
 * and the codec's reason, as grpc-js's and connect-node's servers answer
 * it: the fault is the sender's. An RpcError passes as it is.
 */
export function encodeMessage<T>(
  codec: Codec<T>,
  typeName: string,
  value: T,
): Uint8Array {
  try {
    return codec.encode(value);
  } catch (error) {
    if (error instanceof RpcError) throw error;
    const reason = cut(messageOf(error));
    throw new RpcError(Code.Internal, `Cannot encode ${typeName}: ${reason}`, {
      cause: error,
    });
  }
}

/** The longest codec error message passed on to the peer. */
export const MAX_ERROR_CHARS = 256;

function cut(message: string): string {
  return message.length > MAX_ERROR_CHARS
    ? message.slice(0, MAX_ERROR_CHARS) + "…"
    : message;
}
