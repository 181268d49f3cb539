// gRPC-Web's text format (application/grpc-web-text, doc/PROTOCOL-WEB.md):
// the frames of the binary format in base64. A request body is decoded as
// it arrives (a concatenation of padded segments, split anywhere); each
// chunk of a response body is encoded at once with its own padding, so
// every message and the trailer frame reach the client when produced
// (Google's grpc-web decodes what it has received up to a multiple of 4
// characters).

import { Base64Decoder, encodeBase64 } from "../../_internal/base64.ts";
import { Code } from "../code.ts";
import { RpcError } from "../rpc_error.ts";

/**
 * Decodes a text-format request body into the binary format's bytes. Text
 * that is not base64 (see Base64Decoder: CR and LF are skipped) fails the
 * stream with an `InvalidArgument` RpcError, as a malformed frame fails a
 * server's call; `signal` aborts with that error first, so that a call
 * linked to it ends with it rather than as a client gone.
 */
export class TextDecodeStream extends TransformStream<Uint8Array, Uint8Array> {
  readonly #invalid: AbortController;

  constructor() {
    const decoder = new Base64Decoder("decode gRPC-Web text request");
    const invalid = new AbortController();
    const fail = (cause: unknown): RpcError => {
      const error = new RpcError(
        Code.InvalidArgument,
        cause instanceof Error ? cause.message : String(cause),
        { cause },
      );
      invalid.abort(error);
      return error;
    };
    super({
      transform(chunk, controller) {
        let bytes: Uint8Array;
        try {
          bytes = decoder.push(chunk);
        } catch (cause) {
          throw fail(cause);
        }
        if (bytes.byteLength > 0) controller.enqueue(bytes);
      },
      flush() {
        try {
          decoder.finish();
        } catch (cause) {
          throw fail(cause);
        }
      },
    });
    this.#invalid = invalid;
  }

  /** Aborted with the error of invalid text, before the stream fails. */
  get signal(): AbortSignal {
    return this.#invalid.signal;
  }
}

const ascii = new TextEncoder();

/**
 * Encodes a response body in the text format: each chunk at once, padded,
 * so that nothing waits for the next chunk.
 */
export class TextEncodeStream extends TransformStream<Uint8Array, Uint8Array> {
  constructor() {
    super({
      transform(chunk, controller) {
        if (chunk.byteLength > 0) {
          controller.enqueue(ascii.encode(encodeBase64(chunk)));
        }
      },
    });
  }
}
