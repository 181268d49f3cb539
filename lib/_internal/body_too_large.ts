// A framework's own limit on a request body, told by the error it fails the
// body stream with: srvx's `serve({ maxRequestBodySize })` (its
// BodyTooLargeError, code ERR_BODY_TOO_LARGE) and h3's `bodyLimit()` (an
// HTTPError) both carry `status: 413` and `statusCode: 413`. Answered as a
// failed read (the client went away: 400, or CANCELED), such a body got the
// wrong code and a misleading message; the HTTP handlers answer it 413, the
// RPC server RESOURCE_EXHAUSTED, both in its words.

import { messageOf } from "./message_of.ts";

/**
 * The message of `reason`, a request body's failure, when it says the body
 * is too large: an error that carries a numeric `status` or `statusCode` of
 * 413. Otherwise `undefined`: another status on a stream's error is no
 * convention to trust, and a getter that throws is no such error.
 */
export function bodyTooLargeMessage(reason: unknown): string | undefined {
  if (typeof reason !== "object" || reason === null) return undefined;
  try {
    const { status, statusCode } = reason as {
      status?: unknown;
      statusCode?: unknown;
    };
    if (status !== 413 && statusCode !== 413) return undefined;
  } catch {
    return undefined;
  }
  return messageOf(reason);
}
