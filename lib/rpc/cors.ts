/**
 * What a browser on another origin needs allowed to call RPC handlers over
 * Connect (GET too) and gRPC-Web: the methods, the request headers the
 * clients send (sluice's, connect-web's and Google's grpc-web's, checked
 * in Chromium; none is safelisted, so a preflight must allow them)
 * and the response headers they must read (a gRPC-Web error answered
 * without a body has its status in them). For a CORS layer of your own or
 * a router's middleware; add your own metadata headers to both lists.
 *
 * @example The headers of a preflight's answer and of a response
 * ```ts
 * import { cors } from "@sluice/streams/rpc";
 * import assert from "node:assert/strict";
 *
 * const origin = "https://app.example.com";
 * const preflight = new Headers({
 *   "access-control-allow-origin": origin,
 *   "access-control-allow-methods": cors.allowedMethods.join(", "),
 *   "access-control-allow-headers": [...cors.allowedHeaders, "x-tenant"]
 *     .join(", "),
 *   "access-control-max-age": "7200",
 * });
 * const exposed = [...cors.exposedHeaders, "x-served-by"].join(", ");
 * assert.ok(preflight.get("access-control-allow-headers")!.includes("connect-protocol-version"));
 * assert.ok(exposed.includes("grpc-status"));
 * ```
 */
export const cors: {
  /** The HTTP methods: `POST`, and `GET` for Connect GET. */
  readonly allowedMethods: readonly string[];
  /** The request headers the RPC clients may send, lower case. */
  readonly allowedHeaders: readonly string[];
  /** The response headers the RPC clients read, lower case. */
  readonly exposedHeaders: readonly string[];
} = Object.freeze({
  allowedMethods: Object.freeze(["POST", "GET"]),
  allowedHeaders: Object.freeze([
    "content-type",
    "content-encoding",
    "connect-protocol-version",
    "connect-timeout-ms",
    "connect-content-encoding",
    "connect-accept-encoding",
    "grpc-timeout",
    "grpc-encoding",
    "grpc-accept-encoding",
    "x-grpc-web",
    "x-user-agent",
  ]),
  exposedHeaders: Object.freeze([
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "grpc-encoding",
    "grpc-accept-encoding",
    "connect-content-encoding",
    "connect-accept-encoding",
  ]),
});
