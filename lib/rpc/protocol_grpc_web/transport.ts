import type { Transport, TransportOptions } from "../client/transport.ts";
import { createTransport } from "../protocol/_transport.ts";
import { isBrowser } from "../../_internal/user_agent.ts";
import { requestHeader } from "./request_header.ts";
import { trailerFlag } from "./trailers.ts";
import { decodeEnd, validateResponse } from "./validate_response.ts";

// In a browser, a status answered in headers alone (an error, with no
// body) reads as a body without its trailer frame when the server, on
// another origin, did not expose grpc-status to the page.
const END_IN_BROWSER =
  "its trailer frame (from another origin, a page sees a status answered in headers only if the server lists grpc-status and grpc-message in Access-Control-Expose-Headers)";

/** Options for {@linkcode createGrpcWebTransport}. */
export type GrpcWebTransportOptions = TransportOptions;

/**
 * A transport for gRPC-Web (`application/grpc-web+proto`; the status comes
 * in a trailer frame at the end of the body). Unary and server-streaming
 * requests are sent whole (with a Content-Length); client-streaming and
 * bidi requests stream over full-duplex fetch, so bidi works over HTTP/1.1.
 *
 * @param options The server URL, codec, compression and limits.
 * @returns The transport, for `createClient`.
 *
 * @example Call a gRPC-Web server
 * ```ts ignore
 * import { createClient, createGrpcWebTransport } from "@sluice/streams/rpc";
 *
 * const client = createClient(StreamingCalcService, createGrpcWebTransport({
 *   baseUrl: "http://127.0.0.1:9090",
 * }));
 * ```
 */
export function createGrpcWebTransport(
  options: GrpcWebTransportOptions,
): Transport {
  return createTransport(
    "grpc-web",
    options,
    (_method, resolved, callOptions, headers) => ({
      headers: requestHeader(
        headers,
        resolved.codec,
        callOptions.timeoutMs,
        resolved.sendCompression,
        resolved.acceptCompression,
      ),
      validateResponse: (response) =>
        validateResponse(response, resolved.codec, resolved.acceptCompression),
      endFlag: trailerFlag,
      decodeEnd,
      missingEnd: isBrowser() ? END_IN_BROWSER : "its trailer frame",
    }),
  );
}
