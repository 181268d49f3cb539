// The two messages of gRPC's health service (grpc.health.v1, gRPC's
// doc/health-checking.md), written by hand as Int64Value is: a binary codec
// and a proto3 JSON codec (the enum by name), so that grpc-js, connect-node,
// Kubernetes probes and buf curl read them without protobuf-es. Decoders
// throw SyntaxError on malformed input (INVALID_ARGUMENT on a server); as
// createMessageType's and Connect's, they skip unknown fields (binary) and
// unknown keys (JSON), and read an enum value they do not know, by number
// or by name, as UNKNOWN.

import type { MessageType } from "./message_type.ts";
import { WireReader, WireWriter } from "./_protobuf.ts";
import { quote } from "../protocol/_quote.ts";

/**
 * A serving status of gRPC's health service, by its name in
 * `grpc.health.v1.HealthCheckResponse.ServingStatus`: `"SERVING"` or
 * `"NOT_SERVING"` for a registered service, `"SERVICE_UNKNOWN"` for one
 * that is not (sent by `Watch` only; `Check` fails with `NOT_FOUND`
 * instead), `"UNKNOWN"` when none is set (the enum's zero value, and what a
 * client reads of a status it does not know).
 */
export type HealthStatus =
  | "UNKNOWN"
  | "SERVING"
  | "NOT_SERVING"
  | "SERVICE_UNKNOWN";

/** `grpc.health.v1.HealthCheckRequest`: the service to check. */
export interface HealthCheckRequest {
  /**
   * The service's fully qualified name (`package.Service`), or `""` for the
   * server as a whole.
   */
  service: string;
}

/** `grpc.health.v1.HealthCheckResponse`: a service's serving status. */
export interface HealthCheckResponse {
  /** The serving status. */
  status: HealthStatus;
}

/** The statuses by their enum number (the index). */
const STATUSES: readonly HealthStatus[] = [
  "UNKNOWN",
  "SERVING",
  "NOT_SERVING",
  "SERVICE_UNKNOWN",
];
const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function checkRequest(value: HealthCheckRequest): string {
  const service = (value as Partial<HealthCheckRequest> | null)?.service;
  if (typeof service !== "string") {
    throw new TypeError(
      `Cannot encode HealthCheckRequest: service must be a string, got ${
        service === null ? "null" : typeof service
      }`,
    );
  }
  return service;
}

function statusNumber(value: HealthCheckResponse): number {
  const status = (value as Partial<HealthCheckResponse> | null)?.status;
  const number = STATUSES.indexOf(status as HealthStatus);
  if (number < 0) {
    throw new TypeError(
      `Cannot encode HealthCheckResponse: status must be one of ${
        STATUSES.join(", ")
      }, got ${typeof status === "string" ? quote(status) : typeof status}`,
    );
  }
  return number;
}

/**
 * Parses a JSON object and returns its field `field`, for `what`. Other
 * keys are ignored, as protobuf-es's `ignoreUnknownFields` (what
 * `createMessageType` and Connect's implementations read JSON with): a
 * newer peer's fields do not fail an older one.
 */
function parseObject(
  bytes: Uint8Array,
  what: string,
  field: string,
): unknown {
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(bytes));
  } catch (cause) {
    throw new SyntaxError(`Cannot decode ${what}: invalid JSON`, { cause });
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new SyntaxError(
      `Cannot decode ${what}: expected a JSON object, got ${
        json === null ? "null" : Array.isArray(json) ? "an array" : typeof json
      }`,
    );
  }
  return Object.hasOwn(json, field)
    ? (json as Record<string, unknown>)[field]
    : undefined;
}

/** `grpc.health.v1.HealthCheckRequest`'s binary and JSON codecs. */
export const HealthCheckRequestType: MessageType<HealthCheckRequest> = {
  typeName: "grpc.health.v1.HealthCheckRequest",
  proto: {
    encode(value) {
      const service = checkRequest(value);
      // proto3: the default "" is not written.
      if (service === "") return EMPTY;
      return new WireWriter().tag(1, 2).bytes(encoder.encode(service))
        .finish();
    },
    decode(bytes) {
      const reader = new WireReader(bytes, "HealthCheckRequest");
      let service = "";
      while (!reader.done) {
        const [field, wireType] = reader.tag();
        if (field !== 1) {
          reader.skip(wireType, field); // unknown fields are skipped
          continue;
        }
        if (wireType !== 2) {
          reader.fail(
            `field 1 has wire type ${wireType}, expected 2 (length-delimited)`,
          );
        }
        const text = reader.lengthDelimited();
        try {
          service = decoder.decode(text);
        } catch {
          reader.fail("field 1 (service) is not valid UTF-8");
        }
      }
      return { service };
    },
  },
  json: {
    encode(value) {
      const service = checkRequest(value);
      return encoder.encode(
        service === "" ? "{}" : JSON.stringify({ service }),
      );
    },
    decode(bytes) {
      const service = parseObject(bytes, "HealthCheckRequest", "service");
      if (service === undefined || service === null) return { service: "" };
      if (typeof service !== "string") {
        throw new SyntaxError(
          `Cannot decode HealthCheckRequest: service must be a string, got ${
            Array.isArray(service) ? "an array" : typeof service
          }`,
        );
      }
      return { service };
    },
  },
};

/** `grpc.health.v1.HealthCheckResponse`'s binary and JSON codecs. */
export const HealthCheckResponseType: MessageType<HealthCheckResponse> = {
  typeName: "grpc.health.v1.HealthCheckResponse",
  proto: {
    encode(value) {
      const number = statusNumber(value);
      if (number === 0) return EMPTY;
      return Uint8Array.of(0x08, number); // tag 1, varint; numbers 1 to 3
    },
    decode(bytes) {
      const reader = new WireReader(bytes, "HealthCheckResponse");
      let status: HealthStatus = "UNKNOWN";
      while (!reader.done) {
        const [field, wireType] = reader.tag();
        if (field !== 1) {
          reader.skip(wireType, field);
          continue;
        }
        if (wireType !== 0) {
          reader.fail(`field 1 has wire type ${wireType}, expected 0 (varint)`);
        }
        // An enum is an int32 (negative ones as 10 bytes); proto3 enums are
        // open: a number this version does not know reads as UNKNOWN.
        const number = BigInt.asIntN(32, reader.uint64());
        status = STATUSES[Number(number)] ?? "UNKNOWN";
      }
      return { status };
    },
  },
  json: {
    encode(value) {
      const number = statusNumber(value);
      return encoder.encode(
        number === 0 ? "{}" : `{"status":"${STATUSES[number]}"}`,
      );
    },
    decode(bytes) {
      const status = parseObject(bytes, "HealthCheckResponse", "status");
      if (status === undefined || status === null) return { status: "UNKNOWN" };
      // proto3 JSON: an enum by name, or by number. A name this version does
      // not know (a newer server's status) reads as UNKNOWN, as an unknown
      // number does and as protobuf-es's ignoreUnknownFields reads it.
      if (typeof status === "string") {
        return {
          status: STATUSES.includes(status as HealthStatus)
            ? status as HealthStatus
            : "UNKNOWN",
        };
      }
      if (
        typeof status === "number" && Number.isInteger(status) &&
        status >= -(2 ** 31) && status < 2 ** 31
      ) {
        return { status: STATUSES[status] ?? "UNKNOWN" };
      }
      throw new SyntaxError(
        `Cannot decode HealthCheckResponse: status must be a name or an int32, got ${
          typeof status === "number" ? quote(String(status)) : typeof status
        }`,
      );
    },
  },
};
