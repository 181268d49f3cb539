// Mappings between status codes, their Connect names and HTTP statuses, from
// connectrpc.com/docs/protocol ("Error Codes", "HTTP to Error Code") and
// grpc/grpc doc/http-grpc-status-mapping.md.

import { Code } from "../code.ts";

const names: readonly string[] = [
  "ok",
  "canceled",
  "unknown",
  "invalid_argument",
  "deadline_exceeded",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
];

const httpStatuses: readonly number[] = [
  200, // ok
  499, // canceled
  500, // unknown
  400, // invalid_argument
  504, // deadline_exceeded
  404, // not_found
  409, // already_exists
  403, // permission_denied
  429, // resource_exhausted
  400, // failed_precondition
  409, // aborted
  400, // out_of_range
  501, // unimplemented
  500, // internal
  503, // unavailable
  500, // data_loss
  401, // unauthenticated
];

/** Whether `n` is a valid status code (0 to 16). */
export function isCode(n: number): n is Code {
  return Number.isInteger(n) && n >= 0 && n <= 16;
}

/** The Connect name of a code, such as `out_of_range`. */
export function codeToName(code: Code): string {
  return names[code];
}

/** The code for a Connect name, or undefined for an unknown name. */
export function codeFromName(name: string): Code | undefined {
  const index = names.indexOf(name);
  return index > 0 ? index as Code : undefined;
}

/** The HTTP status for a code, as Connect unary errors use. */
export function codeToHttpStatus(code: Code): number {
  return httpStatuses[code];
}

/**
 * The code to infer from an HTTP status when a response carries no status of
 * its own: gRPC's mapping, which Connect's protocol repeats (400 INTERNAL,
 * 401, 403, 404, 429, 502 to 504; every other status UNKNOWN, 431 too, as
 * the Connect conformance suite checks: only grpc-go makes it INTERNAL).
 */
export function codeFromHttpStatus(status: number): Code {
  switch (status) {
    case 400:
      return Code.Internal;
    case 401:
      return Code.Unauthenticated;
    case 403:
      return Code.PermissionDenied;
    case 404:
      return Code.Unimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return Code.Unavailable;
    default:
      return Code.Unknown;
  }
}

/**
 * The code for a 200 response whose content type is not the call's:
 * `Internal` when it is a type of the call's protocol with another codec
 * (`application/grpc+json` when proto was asked for: the server
 * misbehaves), and otherwise the code HTTP status 200 gives, `Unknown` (a
 * proxy's HTML page, an image), as Connect-ES, grpc-go and the Connect
 * conformance suite read it.
 *
 * @param protocolType Whether the type is one of the protocol's own.
 */
export function codeFromContentType(protocolType: boolean): Code {
  return protocolType ? Code.Internal : codeFromHttpStatus(200);
}
