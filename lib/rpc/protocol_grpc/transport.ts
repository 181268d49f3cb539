import type { Transport, TransportOptions } from "../client/transport.ts";
import { createTransport } from "../protocol/_transport.ts";
import type { HttpClient } from "../universal.ts";
import { requestHeader } from "./request_header.ts";
import { readTrailers, validateResponse } from "./validate_response.ts";

/** Options for {@linkcode createGrpcTransport}. */
export interface GrpcTransportOptions extends TransportOptions {
  /**
   * An HTTP/2 client that reads trailers, such as `createHttp2Client` from
   * `@sluice/streams/grpc-node` (fetch cannot read trailers).
   */
  httpClient: HttpClient;
}

/**
 * A transport for native gRPC (`application/grpc+proto`, HTTP/2 with the
 * status in trailers). It needs an HTTP client that reads trailers: use
 * `createHttp2Client` from `@sluice/streams/grpc-node`, which works under
 * Deno, Bun and Node.
 *
 * @param options The server URL, the HTTP/2 client, codec and limits.
 * @returns The transport, for `createClient`.
 *
 * @example Call a gRPC server
 * ```ts ignore
 * import { createClient, createGrpcTransport } from "@sluice/streams/rpc";
 * import { createHttp2Client } from "@sluice/streams/grpc-node";
 *
 * const httpClient = createHttp2Client("http://127.0.0.1:9090");
 * const client = createClient(StreamingCalcService, createGrpcTransport({
 *   baseUrl: "http://127.0.0.1:9090",
 *   httpClient,
 * }));
 * ```
 */
export function createGrpcTransport(options: GrpcTransportOptions): Transport {
  if (typeof options.httpClient !== "function") {
    throw new TypeError(
      "Cannot create gRPC transport: it needs an httpClient that reads trailers, such as createHttp2Client from @sluice/streams/grpc-node (fetch cannot read them)",
    );
  }
  return createTransport(
    "grpc",
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
      readTrailers,
      missingEnd: "a grpc-status trailer",
    }),
  );
}
