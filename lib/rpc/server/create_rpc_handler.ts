import { encodedResponseInit } from "../../http/_compression.ts";
import {
  createUniversalHandler,
  type UniversalHandlerOptions,
} from "./create_universal_handler.ts";
import type { ServiceImplementation } from "./implement_service.ts";
import { isGrpcContentType } from "../protocol_grpc/content_type.ts";
import { refuseGrpc } from "./_refuse_grpc.ts";
import { wholeBytes } from "../protocol/_whole_body.ts";
import { isWorkers } from "../../_internal/user_agent.ts";
import { checkBodyUnused } from "../../_internal/arguments.ts";

/** Why a fetch handler refuses a native gRPC call, sent as its grpc-message. */
const NATIVE_GRPC_REFUSED =
  "Cannot serve native gRPC from a fetch handler: it needs HTTP trailers; use serveHttp2 from @sluice/streams/grpc-node, or gRPC-Web or Connect";

/** Options for {@linkcode createRpcHandler}. */
export type RpcHandlerOptions = Omit<UniversalHandlerOptions, "protocols">;

/**
 * Creates a fetch handler (`Request` → `Response`) that serves services
 * over gRPC-Web (`application/grpc-web+proto|json`, trailers as the final
 * `0x80` frame, and its base64 text format `application/grpc-web-text`,
 * which Google's `grpc-web` streams in) and Connect (`application/connect+proto|json` streaming with
 * its EndStreamResponse, and `application/proto|json` unary), for
 * `Deno.serve`, `Bun.serve`, Workers and any other fetch server.
 *
 * Native gRPC (`application/grpc`) needs HTTP trailers, which no fetch
 * server can send: such a call is refused as a gRPC server refuses a call
 * it cannot serve, in headers only (Trailers-Only: HTTP 200, `grpc-status`
 * 12, UNIMPLEMENTED, no body), with a `grpc-message` that says to use
 * `serveHttp2` from `@sluice/streams/grpc-node`: the error gRPC clients
 * report (grpc-js, Connect's and this library's).
 *
 * Streaming calls are full duplex: responses flow while the request is
 * still streaming, over HTTP/1.1 as over HTTP/2.
 *
 * To mount it in a router, give it the route's prefix as
 * `requestPathPrefix` and pass the router's request on as it is:
 * `app.all("/rpc/*", (c) => handler(c.req.raw))`. A router that rewrites
 * the path by re-creating the request (Hono's `app.mount`) reads
 * `request.signal` while copying it, which under Deno logs
 * `Deno.serve: request.signal aborts on successful responses` (once per
 * process). This handler itself reads `request.signal` only for a call
 * whose handler waits before its first response message, to notice a
 * client that leaves meanwhile.
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
 *
 * @example Mount under /rpc in a router
 * ```ts ignore
 * import { createRpcHandler } from "@sluice/streams/rpc";
 * import { Hono } from "hono";
 *
 * const handler = createRpcHandler(implementation, { requestPathPrefix: "/rpc" });
 * const app = new Hono();
 * app.all("/rpc/*", (c) => handler(c.req.raw));
 * Deno.serve({ port: 9090 }, app.fetch);
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
  const workers = isWorkers();
  return async (request) => {
    checkBodyUnused("serve RPC", request);
    const type = request.headers.get("content-type") ?? "";
    if (isGrpcContentType(type)) {
      // In headers only (Trailers-Only), the hint in grpc-message.
      const refusal = await refuseGrpc(request, NATIVE_GRPC_REFUSED);
      return new Response(null, {
        status: refusal.status,
        headers: refusal.headers,
      });
    }
    // The response head waits for the handler's first message or its end.
    // A client that leaves once the head is out cancels the response body,
    // which cancels the call; one that leaves before has only
    // request.signal to say so. Reading that signal makes Deno.serve print
    // once per process that it "aborts on successful responses (legacy
    // behavior)", so it is read only for a call still without a head one
    // macrotask after it started (a handler that waits before it answers).
    // workerd never cancels a response body whose client left; with the
    // enable_request_signal compatibility flag it aborts request.signal
    // instead, which is then heard for the whole call.
    const gone = new AbortController();
    let unlink = () => {};
    const link = () => {
      const signal = request.signal;
      const onAbort = () => gone.abort(signal.reason);
      if (signal.aborted) onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      unlink = () => signal.removeEventListener("abort", onAbort);
    };
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (workers) link();
    else timer = setTimeout(link, 0);
    let response;
    try {
      response = await universal({
        method: request.method,
        url: request.url,
        headers: request.headers,
        body: request.body,
        signal: gone.signal,
      });
    } finally {
      clearTimeout(timer);
      // The call goes on after its head: in workerd, so does the link.
      if (!workers) unlink();
    }
    // A body known whole goes to the runtime as bytes (sent natively).
    const body = response.body;
    const bytes = body && wholeBytes(body) as BodyInit | undefined;
    const init = { status: response.status, headers: response.headers };
    // A Connect unary answer the handler compressed is sent as it is.
    return new Response(
      bytes ?? body ?? null,
      response.headers.has("content-encoding")
        ? encodedResponseInit(init)
        : init,
    );
  };
}
