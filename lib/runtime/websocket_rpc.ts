import {
  createUniversalHandler,
  type UniversalHandlerOptions,
} from "../rpc/server/create_universal_handler.ts";
import type { ServiceImplementation } from "../rpc/server/implement_service.ts";
import { serveWebSocketCall } from "../rpc/protocol_websocket/serve_socket.ts";
import { WEBSOCKET_RPC_PROTOCOL } from "../rpc/protocol_websocket/_head.ts";
import { checkMax, checkTimerMs } from "../_internal/limits.ts";
import { upgradeWebSocket } from "./websocket.ts";

/** Options for {@linkcode createWebSocketRpcHandler}. */
export interface WebSocketRpcHandlerOptions
  extends Omit<UniversalHandlerOptions, "protocols" | "requestPathPrefix"> {
  /**
   * The most request bytes received and not yet read by a handler. A
   * WebSocket cannot be paused: past this bound the socket is closed (code
   * 1009) and the client's call fails with `ResourceExhausted`.
   *
   * @default {16777216}
   */
  maxBufferedBytes?: number;
}

/**
 * Creates a fetch handler that serves RPC over WebSocket (subprotocol
 * `sluice.rpc.v1`, one call per socket), the transport of
 * `createWebSocketTransport` from `@sluice/streams/rpc`: the same
 * `implementService` implementations as `createRpcHandler`, unchanged, with
 * full-duplex bidi and client-streaming calls for browsers and over
 * HTTP/1.1. It upgrades with `upgradeWebSocket` (Deno, Bun through `serve`
 * from `@sluice/streams/serve`, and Workers' `WebSocketPair`); a request
 * that is not a WebSocket upgrade offering `sluice.rpc.v1` gets 426.
 *
 * The method path travels in the call's head, so the handler can be mounted
 * at any route (`/rpc-ws`, or `/rpc-ws/*` for clients made with
 * `baseUrl`). The options are those of `createRpcHandler`: limits,
 * compression, `maxTimeoutMs` and `idleTimeoutMs` (which also bounds the
 * wait for the call's head). A handler's `context.requestHeaders` holds
 * the call's headers and the upgrade request's (a browser's cookies and
 * `Origin`), the upgrade's winning where both name a header; browsers
 * apply no CORS to WebSockets, so check `Origin` in front of the handler.
 *
 * @param services The service implementations to serve.
 * @param options Limits, compression and the receive queue bound.
 * @returns The fetch handler.
 *
 * @example Serve StreamingCalcService over HTTP and WebSocket
 * ```ts ignore
 * import { createRpcHandler } from "@sluice/streams/rpc";
 * import { serve } from "@sluice/streams/serve";
 * import { createWebSocketRpcHandler } from "@sluice/streams/websocket";
 *
 * const http = createRpcHandler(implementation);
 * const ws = createWebSocketRpcHandler(implementation);
 * await serve((request) =>
 *   new URL(request.url).pathname === "/rpc-ws" ? ws(request) : http(request)
 * );
 * ```
 */
export function createWebSocketRpcHandler(
  services: ServiceImplementation | readonly ServiceImplementation[],
  options: WebSocketRpcHandlerOptions = {},
): (request: Request) => Promise<Response> {
  const { maxBufferedBytes, ...rest } = options;
  const what = "create WebSocket RPC handler";
  const queue = checkMax(
    what,
    "maxBufferedBytes",
    maxBufferedBytes ?? 16 * 1024 * 1024,
  );
  checkTimerMs(what, "idleTimeoutMs", options.idleTimeoutMs);
  const idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
  const universal = createUniversalHandler(services, {
    ...rest,
    protocols: ["connect"],
  });
  return (request) => {
    const offered = (request.headers.get("sec-websocket-protocol") ?? "")
      .split(",").map((name) => name.trim());
    if (
      request.headers.get("upgrade")?.toLowerCase() !== "websocket" ||
      !offered.includes(WEBSOCKET_RPC_PROTOCOL)
    ) {
      return Promise.resolve(
        new Response(
          `Cannot serve RPC over WebSocket: the request is not a WebSocket upgrade offering the subprotocol ${WEBSOCKET_RPC_PROTOCOL}`,
          {
            status: 426,
            headers: {
              "content-type": "text/plain",
              "upgrade": "websocket",
            },
          },
        ),
      );
    }
    // Copied first: Deno's request is closed once upgraded.
    const upgradeHeaders = new Headers(request.headers);
    const { socket, response } = upgradeWebSocket(request, {
      protocol: WEBSOCKET_RPC_PROTOCOL,
    });
    serveWebSocketCall(socket, universal, {
      maxBufferedBytes: queue,
      idleTimeoutMs,
      upgradeHeaders,
    });
    return Promise.resolve(response);
  };
}
