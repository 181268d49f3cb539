// The bodies the upload clients take, checked at once.

import { checkArgument } from "../_internal/arguments.ts";

/**
 * Throws a TypeError naming `what` unless `body` is a Blob or a Uint8Array
 * (or, with `streams`, a ReadableStream); text and an ArrayBuffer get a
 * hint at the conversion.
 */
export function checkBody(what: string, body: unknown, streams: boolean): void {
  checkArgument(
    body instanceof Blob || body instanceof Uint8Array ||
      (streams && body instanceof ReadableStream),
    what,
    "the body",
    streams ? "a ReadableStream, Blob or Uint8Array" : "a Blob or Uint8Array",
    body,
    typeof body === "string"
      ? " (encode text with new TextEncoder().encode(text))"
      : body instanceof ArrayBuffer
      ? " (view it with new Uint8Array(buffer))"
      : "",
  );
}
