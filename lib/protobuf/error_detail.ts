import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import type { ErrorDetail, RpcError } from "../rpc/mod.ts";

/**
 * Packs a protobuf-es message into an error detail for
 * `new RpcError(code, message, { details })`: its fully qualified type name
 * and its binary encoding, as gRPC (`grpc-status-details-bin`) and Connect
 * (the error's `details`) carry it. Works with any message type, such as
 * the `google.rpc` error details (`RetryInfo`, `BadRequest`, ...) generated
 * from googleapis' `error_details.proto`.
 *
 * @param schema The detail's message descriptor.
 * @param message The message, or a plain init object.
 * @returns The error detail.
 *
 * @example Fail a call with a typed detail
 * ```ts
 * import { packErrorDetail } from "@sluice/streams/protobuf";
 * import { Code, RpcError } from "@sluice/streams/rpc";
 * import { DurationSchema } from "@bufbuild/protobuf/wkt";
 * import assert from "node:assert/strict";
 *
 * const error = new RpcError(Code.Unavailable, "Cannot serve: try later", {
 *   details: [packErrorDetail(DurationSchema, { seconds: 5n })],
 * });
 * assert.equal(error.details[0].type, "google.protobuf.Duration");
 * ```
 */
export function packErrorDetail<Desc extends DescMessage>(
  schema: Desc,
  message: MessageShape<Desc> | MessageInitShape<Desc>,
): ErrorDetail {
  return {
    type: schema.typeName,
    value: toBinary(schema, create(schema, message as MessageInitShape<Desc>)),
  };
}

/**
 * Finds the details of one message type in an error and decodes them, in
 * order (details of other types are left out).
 *
 * @param error The error (or anything with `details`).
 * @param schema The detail's message descriptor.
 * @returns The decoded details of that type; empty if there are none.
 * @throws {SyntaxError} If a detail of that type does not parse.
 *
 * @example Read a typed detail from a failed call
 * ```ts
 * import { packErrorDetail, unpackErrorDetails } from "@sluice/streams/protobuf";
 * import { Code, RpcError } from "@sluice/streams/rpc";
 * import { DurationSchema } from "@bufbuild/protobuf/wkt";
 * import assert from "node:assert/strict";
 *
 * const error = new RpcError(Code.Unavailable, "Cannot serve: try later", {
 *   details: [packErrorDetail(DurationSchema, { seconds: 5n })],
 * });
 * const [delay] = unpackErrorDetails(error, DurationSchema);
 * assert.equal(delay.seconds, 5n);
 * ```
 */
export function unpackErrorDetails<Desc extends DescMessage>(
  error: Pick<RpcError, "details">,
  schema: Desc,
): MessageShape<Desc>[] {
  const found: MessageShape<Desc>[] = [];
  for (const detail of error.details) {
    if (detail.type !== schema.typeName) continue;
    try {
      found.push(fromBinary(schema, detail.value));
    } catch (cause) {
      throw new SyntaxError(
        `Cannot unpack error detail ${schema.typeName}: ${
          (cause as Error).message
        }`,
        { cause },
      );
    }
  }
  return found;
}
