import {
  createUniversalHandler,
  type UniversalHandlerOptions,
} from "./create_universal_handler.ts";
import type { ServiceImplementation } from "./implement_service.ts";
import { isGrpcContentType } from "./protocol_grpc/content_type.ts";

/** Options for {@linkcode createRpcHandler}. */
export type RpcHandlerOptions = Omit<UniversalHandlerOptions, "protocols">;

/**
 * Creates a fetch handler (`Request` → `Response`) that serves services
 * over gRPC-Web (`application/grpc-web+proto|json`, trailers as the final
 * `0x80` frame) and Connect (`application/connect+proto|json` streaming with
 * its EndStreamResponse, and `application/proto|json` unary), for
 * `Deno.serve`, `Bun.serve`, Workers and any other fetch server.
 *
 * Native gRPC (`application/grpc`) needs HTTP trailers, which no fetch
 * server can send: such requests get 415 with a hint to use `serveHttp2`
 * from `@sluice/streams/grpc-node`.
 *
 * Streaming calls are full duplex: responses flow while the request is
 * still streaming, over HTTP/1.1 as over HTTP/2.
 *
 * @param services The service implementations to serve.
 * @param options Limits and compression.
 * @returns The fetch handler.
 *
 * @example Serve StreamingCalcService with Deno.serve
 * ```ts ignore
 * import { createRpcHandler, defineService, implementService, Int64Value } from "@sluice/streams/rpc";
 * import { reduce, ScanStream } from "@sluice/streams/streams";
 *
 * const StreamingCalcService = defineService("StreamingCalcService", {
 *   sum: { kind: "client-streaming", input: Int64Value, output: Int64Value },
 *   incrementalSum: { kind: "bidi", input: Int64Value, output: Int64Value },
 * });
 * const handler = createRpcHandler(implementService(StreamingCalcService, {
 *   sum: (values) => reduce(values, (a, b) => a + b, 0n),
 *   incrementalSum: () => new ScanStream((a: bigint, b: bigint) => a + b, 0n),
 * }));
 * Deno.serve({ port: 9090 }, handler);
 * ```
 */
export function createRpcHandler(
  services: ServiceImplementation | readonly ServiceImplementation[],
  options: RpcHandlerOptions = {},
): (request: Request) => Promise<Response> {
  const universal = createUniversalHandler(services, {
    ...options,
    protocols: ["grpc-web", "connect"],
  });
  return async (request) => {
    const type = request.headers.get("content-type") ?? "";
    if (isGrpcContentType(type)) {
      await request.body?.cancel();
      return new Response(
        "Cannot serve native gRPC from a fetch handler: it needs HTTP trailers; use serveHttp2 from @sluice/streams/grpc-node, or gRPC-Web or Connect",
        { status: 415, headers: { "content-type": "text/plain" } },
      );
    }
    const response = await universal({
      method: request.method,
      url: request.url,
      headers: request.headers,
      body: request.body,
      // Not request.signal: Deno aborts it after every successful response
      // (and warns about listeners). A client that goes away cancels the
      // response body, which cancels the call.
    });
    return new Response(response.body ?? null, {
      status: response.status,
      headers: response.headers,
    });
  };
}
