/**
 * Runtime glue for native gRPC: a `node:http2` server that serves a
 * universal RPC handler with real HTTP trailers, and an HTTP/2 client that
 * reads them, for `createGrpcTransport`. `node:http2` works under Deno, Bun
 * and Node; the web-standard fetch servers cannot send trailers.
 *
 * @example Serve over gRPC and call it
 * ```ts ignore
 * import { createClient, createGrpcTransport, createUniversalHandler } from "@sluice/streams/rpc";
 * import { createHttp2Client, serveHttp2 } from "@sluice/streams/grpc-node";
 *
 * const server = await serveHttp2(createUniversalHandler(implementation));
 * const httpClient = createHttp2Client(server.url);
 * const client = createClient(StreamingCalcService, createGrpcTransport({
 *   baseUrl: server.url,
 *   httpClient,
 * }));
 * ```
 *
 * @module
 */

export {
  type Http2Server,
  serveHttp2,
  type ServeHttp2Options,
} from "./serve_http2.ts";
export {
  createHttp2Client,
  type Http2Client,
  type Http2ClientOptions,
} from "./http2_client.ts";
