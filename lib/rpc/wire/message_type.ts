/**
 * Serializes values of one type to bytes and back. Decoders throw a
 * `SyntaxError` (or another built-in error) on malformed input. What is
 * written (`W`) may be wider than what is read (`T`): protobuf-es codecs
 * write a message or a plain init object and read messages.
 */
export interface Codec<T, W = T> {
  /** Serializes a value. */
  encode(value: W): Uint8Array;
  /** Parses a value; throws on malformed input. */
  decode(bytes: Uint8Array): T;
}

/**
 * A message type that RPC methods take or return: its fully qualified
 * Protobuf name, its binary codec and, optionally, its JSON codec (proto3
 * JSON mapping, used by Connect's `+json` content types and gRPC's
 * `+json`). Write one to serve any message type; the library ships
 * {@linkcode Int64Value}. `T` is what a codec reads (a handler's requests, a
 * client's responses), `W` what it writes (a handler's responses, a
 * client's requests), when it takes more than it reads.
 *
 * @example A message type for raw bytes (google.protobuf.BytesValue-like)
 * ```ts
 * import type { MessageType } from "@sluice/streams/rpc";
 *
 * const Raw: MessageType<Uint8Array> = {
 *   typeName: "example.Raw",
 *   proto: { encode: (value) => value, decode: (bytes) => bytes },
 * };
 * ```
 */
export interface MessageType<T, W = T> {
  /** Fully qualified Protobuf name, such as `google.protobuf.Int64Value`. */
  readonly typeName: string;
  /** The binary (Protobuf) codec. */
  readonly proto: Codec<T, W>;
  /** The JSON codec, if the type supports JSON. */
  readonly json?: Codec<T, W>;
}
