/**
 * Serializes values of one type to bytes and back. Decoders throw a
 * `SyntaxError` (or another built-in error) on malformed input.
 */
export interface Codec<T> {
  /** Serializes a value. */
  encode(value: T): Uint8Array;
  /** Parses a value; throws on malformed input. */
  decode(bytes: Uint8Array): T;
}

/**
 * A message type that RPC methods take or return: its fully qualified
 * Protobuf name, its binary codec and, optionally, its JSON codec (proto3
 * JSON mapping, used by Connect's `+json` content types and gRPC's
 * `+json`). Write one to serve any message type; the library ships
 * {@linkcode Int64Value}.
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
export interface MessageType<T> {
  /** Fully qualified Protobuf name, such as `google.protobuf.Int64Value`. */
  readonly typeName: string;
  /** The binary (Protobuf) codec. */
  readonly proto: Codec<T>;
  /** The JSON codec, if the type supports JSON. */
  readonly json?: Codec<T>;
}
