import { messageOf } from "../_internal/message_of.ts";
import { Code } from "./code.ts";
import { codeToName, isCode } from "./protocol/_codes.ts";

/**
 * A typed error detail: the fully qualified Protobuf message name and the
 * binary message. gRPC carries details in `grpc-status-details-bin` (a
 * `google.rpc.Status`); Connect in the `details` array of its error JSON.
 */
export interface ErrorDetail {
  /** Fully qualified message name, such as `google.rpc.RetryInfo`. */
  type: string;
  /** The binary Protobuf encoding of the detail message. */
  value: Uint8Array;
}

/** Options for {@linkcode RpcError}. */
export interface RpcErrorOptions {
  /** Typed error details. @default {[]} */
  details?: ErrorDetail[];
  /**
   * Metadata of the error. A handler's is sent with the status as trailers
   * (protocol headers such as `content-type` or `grpc-status` left out); a
   * client's holds the trailers that came with the error.
   */
  metadata?: HeadersInit;
  /** The underlying error. */
  cause?: unknown;
}

/**
 * The error of a failed RPC: a status {@linkcode Code}, a message and
 * optional details. Handlers throw it to fail a call with a given code, and
 * clients reject with it when a call fails, whatever the protocol.
 *
 * `message` is prefixed with the Connect name of the code, as in
 * `[out_of_range] Cannot add 1 to 9223372036854775807: int64 overflow`;
 * `rawMessage` is the message alone, as sent on the wire.
 *
 * @example Fail a call with OUT_OF_RANGE
 * ```ts
 * import { Code, RpcError } from "@sluice/streams/rpc";
 * import assert from "node:assert/strict";
 *
 * const error = new RpcError(Code.OutOfRange, "Cannot add 1: int64 overflow");
 * assert.equal(error.message, "[out_of_range] Cannot add 1: int64 overflow");
 * assert.equal(error.rawMessage, "Cannot add 1: int64 overflow");
 * ```
 */
export class RpcError extends Error {
  /** The status code; never `Code.OK`. */
  readonly code: Code;
  /** The message without the code prefix, as sent on the wire. */
  readonly rawMessage: string;
  /** Typed error details. */
  readonly details: ErrorDetail[];
  /**
   * Metadata: a handler's is sent with the status as trailers; a client's
   * holds the trailers that came with the error. An error a handler rethrows
   * from another call sends its code, message and details, not this.
   */
  readonly metadata: Headers;

  /**
   * Creates an RPC error.
   *
   * @param code The status code: an error code, 1 to 16 (`Code.OK`, 0, is
   * not one).
   * @param message The error message.
   * @param options Details, metadata and cause.
   * @throws {RangeError} If `code` is not an error code: sent as it is, an
   * OK or unknown status would misreport the call.
   * @throws {TypeError} If a detail is not a `{ type, value }` of a string
   * and a `Uint8Array`, or `metadata` is not valid headers.
   */
  constructor(code: Code, message = "", options: RpcErrorOptions = {}) {
    if (!isCode(code) || code === Code.OK) {
      throw new RangeError(
        `Cannot create RpcError: code ${
          String(code)
        } is not an error code (1 to 16; Code.OK is 0)`,
      );
    }
    super(
      message ? `[${codeToName(code)}] ${message}` : `[${codeToName(code)}]`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "RpcError";
    this.code = code;
    this.rawMessage = String(message);
    this.details = checkDetails(options.details ?? []);
    this.metadata = new Headers(options.metadata);
  }

  /**
   * Converts any thrown value to an `RpcError`: an `RpcError` is returned as
   * it is, an `AbortError` becomes `Code.Canceled`, a `TimeoutError`
   * `Code.DeadlineExceeded`, and anything else `fallbackCode` with the
   * error's message, keeping the original as `cause`.
   *
   * @param reason The thrown value.
   * @param fallbackCode The code for errors of unknown meaning.
   * @returns An `RpcError`.
   *
   * @example Wrap an unexpected error
   * ```ts
   * import { Code, RpcError } from "@sluice/streams/rpc";
   * import assert from "node:assert/strict";
   *
   * const error = RpcError.from(new TypeError("boom"));
   * assert.equal(error.code, Code.Unknown);
   * assert.equal(error.rawMessage, "boom");
   * ```
   */
  static from(reason: unknown, fallbackCode: Code = Code.Unknown): RpcError {
    if (reason instanceof RpcError) return reason;
    if (reason instanceof Error || reason instanceof DOMException) {
      if (reason.name === "AbortError") {
        return new RpcError(Code.Canceled, reason.message, { cause: reason });
      }
      if (reason.name === "TimeoutError") {
        return new RpcError(Code.DeadlineExceeded, reason.message, {
          cause: reason,
        });
      }
      return new RpcError(fallbackCode, reason.message, { cause: reason });
    }
    return new RpcError(fallbackCode, messageOf(reason), { cause: reason });
  }
}

/** The details, if each is a `{ type: string, value: Uint8Array }`. */
function checkDetails(details: ErrorDetail[]): ErrorDetail[] {
  if (!Array.isArray(details)) {
    throw new TypeError("Cannot create RpcError: details must be an array");
  }
  details.forEach((detail, i) => {
    if (
      typeof detail?.type !== "string" || !(detail.value instanceof Uint8Array)
    ) {
      throw new TypeError(
        `Cannot create RpcError: detail ${i} is not { type: string, value: Uint8Array }`,
      );
    }
  });
  return details;
}
