/**
 * What a browser on another origin needs allowed to use the HTTP flows'
 * handlers: uploads (`createUploadHandler`), resumable uploads
 * (`createResumableUploadHandler`, tus 1.0 and the IETF draft), event
 * streams and duplex streams. The methods, the request headers the clients
 * send (sluice's `upload`, `resumableUpload`, `fetchEventStream` and
 * `openDuplex`, and tus-js-client's; none is safelisted, so a preflight
 * must allow them) and the response headers they must read: without
 * `Location` exposed, no resumable upload can be created from another
 * origin, and without `Upload-Offset` none resumed. For a CORS layer of
 * your own or a router's middleware; add your own headers to both lists.
 * `@sluice/streams/rpc` has the same for RPC.
 *
 * tus answers `OPTIONS` itself (its versions and extensions), so a CORS
 * layer in front of the resumable handler answers only preflights, the
 * `OPTIONS` requests with `Access-Control-Request-Method`, and passes the
 * others on.
 *
 * @example The headers of a preflight's answer and of a response
 * ```ts
 * import { cors } from "@sluice/streams/http";
 * import assert from "node:assert/strict";
 *
 * const origin = "https://app.example.com";
 * const preflight = new Headers({
 *   "access-control-allow-origin": origin,
 *   "access-control-allow-methods": cors.allowedMethods.join(", "),
 *   "access-control-allow-headers": cors.allowedHeaders.join(", "),
 *   "access-control-max-age": "7200",
 * });
 * const exposed = cors.exposedHeaders.join(", ");
 * assert.ok(preflight.get("access-control-allow-headers")!.includes("upload-offset"));
 * assert.ok(exposed.includes("location"));
 * ```
 */
export const cors: {
  /**
   * The HTTP methods: `POST` and `PUT` for uploads, `HEAD`, `PATCH`,
   * `DELETE` and tus's `OPTIONS` for resumable ones, `GET` for event
   * streams.
   */
  readonly allowedMethods: readonly string[];
  /** The request headers the clients may send, lower case. */
  readonly allowedHeaders: readonly string[];
  /** The response headers the clients read, lower case. */
  readonly exposedHeaders: readonly string[];
} = Object.freeze({
  allowedMethods: Object.freeze([
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "OPTIONS",
  ]),
  allowedHeaders: Object.freeze([
    "content-type",
    "content-encoding",
    "content-digest",
    "repr-digest",
    "cache-control",
    "last-event-id",
    "upload-complete",
    "upload-draft-interop-version",
    "upload-length",
    "upload-offset",
    "tus-resumable",
    "upload-metadata",
    "upload-defer-length",
    "upload-concat",
    "upload-checksum",
    "x-http-method-override",
    "x-request-id",
  ]),
  exposedHeaders: Object.freeze([
    "location",
    "upload-complete",
    "upload-offset",
    "upload-length",
    "upload-limit",
    "upload-expires",
    "upload-metadata",
    "upload-defer-length",
    "accept-patch",
    "tus-resumable",
    "tus-version",
    "tus-extension",
    "tus-max-size",
    "tus-checksum-algorithm",
    "repr-digest",
    "want-content-digest",
    "content-encoding",
    // A 503's or a 429's delay, which fetchEventStream waits out: readable
    // across origins only in an answer that carries CORS headers (serve's
    // own 503s, sent before any handler, carry none).
    "retry-after",
  ]),
});
