import {
  createUniversalHandler,
  type UniversalHandlerOptions,
} from "../rpc/server/create_universal_handler.ts";
import type { ServiceImplementation } from "../rpc/server/implement_service.ts";
import { serveWebSocketCall } from "../rpc/protocol_websocket/serve_socket.ts";
import { WEBSOCKET_RPC_PROTOCOL } from "../rpc/protocol_websocket/_head.ts";
import { checkMax, checkTimerMs } from "../_internal/limits.ts";
import { checkArgument } from "../_internal/arguments.ts";
import { upgradeWebSocket } from "./websocket.ts";
import { offeredProtocols } from "./_websocket_protocols.ts";
import { isClientError } from "../http/_client_error.ts";

/** Options for {@linkcode createWebSocketRpcHandler}. */
export interface WebSocketRpcHandlerOptions
  extends Omit<UniversalHandlerOptions, "protocols" | "requestPathPrefix"> {
  /**
   * The most request bytes received and not yet read by a handler. A
   * WebSocket cannot be paused: past this bound the socket is closed (code
   * 1009) and the client's call fails with `ResourceExhausted`.
   * (A message queued behind another counts 512 bytes more, as
   * `websocketDuplex` counts them.)
   *
   * @default {16777216}
   */
  maxBufferedBytes?: number;
  /**
   * The origins whose pages may open a socket. Browsers apply no CORS to
   * WebSockets and send the page's cookies with the upgrade, so any page a
   * visitor opens could otherwise make calls as that visitor (cross-site
   * WebSocket hijacking). By default only pages of the server's own host
   * (the `Origin`'s host is the request URL's, whatever the scheme; where
   * the request names a port, the page's or its scheme's default is that
   * port, as for `Host: a.example:443` from a proxy) and clients that send no
   * `Origin` (not browsers) are served; others get 403, as does any page
   * when the request URL has no host that parses (a bad `Host`). A list
   * names the origins allowed (`"https://app.example.com"`), `"*"` allows
   * any (for a server that authenticates calls by their own headers, not
   * cookies), and a function decides per request.
   *
   * @default {same host}
   */
  allowedOrigins?:
    | "*"
    | readonly string[]
    | ((origin: string, request: Request) => boolean);
}

/**
 * Creates a fetch handler that serves RPC over WebSocket (subprotocol
 * `sluice.rpc.v1`, one call per socket), the transport of
 * `createWebSocketTransport` from `@sluice/streams/rpc`: the same
 * `implementService` implementations as `createRpcHandler`, unchanged, with
 * full-duplex bidi and client-streaming calls for browsers and over
 * HTTP/1.1. It upgrades with `upgradeWebSocket` (Deno, Bun through `serve`
 * from `@sluice/streams/serve`, and Workers' `WebSocketPair`); a request
 * that is not a WebSocket upgrade offering `sluice.rpc.v1` gets 426, and a
 * malformed upgrade (no `GET`, no `Sec-WebSocket-Key`, a `Connection` that
 * does not name `Upgrade`, another version than 13) gets the 400 or 426
 * of `upgradeWebSocket`, as an answer: nothing is thrown or logged.
 *
 * The method path travels in the call's head, so the handler can be mounted
 * at any route (`/rpc-ws`, or `/rpc-ws/*` for clients made with
 * `baseUrl`), given the request the server received: a router's copy of
 * it (Hono's `app.mount` makes one) cannot be upgraded under Deno or Bun.
 * The options are those of `createRpcHandler`: limits,
 * compression, `maxTimeoutMs` and `idleTimeoutMs` (which also bounds the
 * wait for the call's head). A handler's `context.requestHeaders` holds
 * the call's headers and the upgrade request's (a browser's cookies and
 * `Origin`), the upgrade's winning where both name a header. Browsers
 * apply no CORS to WebSockets: `allowedOrigins` says which pages may call
 * (by default, those of the server's own host).
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
  const { maxBufferedBytes, allowedOrigins, ...rest } = options;
  const what = "create WebSocket RPC handler";
  const originAllowed = checkAllowedOrigins(what, allowedOrigins);
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
    if (
      request.headers.get("upgrade")?.toLowerCase() !== "websocket" ||
      !offeredProtocols(request).includes(WEBSOCKET_RPC_PROTOCOL)
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
    const origin = request.headers.get("origin");
    if (origin !== null && !originAllowed(origin, request)) {
      return Promise.resolve(
        new Response(
          `Cannot serve RPC over WebSocket: origin ${
            JSON.stringify(origin.slice(0, 64))
          } is not allowed (allowedOrigins${
            allowedOrigins === undefined
              ? ": by default only pages of the server's own host"
              : ""
          })`,
          { status: 403, headers: { "content-type": "text/plain" } },
        ),
      );
    }
    // Copied first: Deno's request is closed once upgraded.
    const upgradeHeaders = new Headers(request.headers);
    let upgrade;
    try {
      upgrade = upgradeWebSocket(request, {
        protocol: WEBSOCKET_RPC_PROTOCOL,
      });
    } catch (error) {
      // A malformed handshake is the client's: answered 400 or 426, as the
      // other refusals here, not a handler failure (500, logged).
      return isClientError(error)
        ? Promise.resolve(error.getResponse())
        : Promise.reject(error);
    }
    const { socket, response } = upgrade;
    serveWebSocketCall(socket, universal, {
      maxBufferedBytes: queue,
      idleTimeoutMs,
      upgradeHeaders,
    });
    return Promise.resolve(response);
  };
}

/** The port of a page's origin that names none, by its scheme. */
const DEFAULT_PORTS: Record<string, string | undefined> = {
  "http:": "80",
  "https:": "443",
};

/** The check of `allowedOrigins`, its value checked once. */
function checkAllowedOrigins(
  what: string,
  allowed: WebSocketRpcHandlerOptions["allowedOrigins"],
): (origin: string, request: Request) => boolean {
  if (allowed === undefined) {
    // The page's host is the server's: same host, whatever the scheme (a
    // proxy in front may end TLS, and may forward `Host: a.example:443`
    // for a page of https://a.example).
    return (origin, request) => {
      // A request URL that does not parse (Deno passes on one of a Host
      // header such as `::1`, Bun gives "/ws" for an empty one) names no
      // host to compare: refused as another's, not thrown (500, logged).
      if (!URL.canParse(origin) || !URL.canParse(request.url)) return false;
      const page = new URL(origin);
      const server = new URL(request.url);
      if (page.hostname !== server.hostname) return false;
      // No port in the request URL: the page must name none either.
      if (server.port === "") return page.port === "";
      return (page.port || DEFAULT_PORTS[page.protocol]) === server.port;
    };
  }
  if (allowed === "*") return () => true;
  if (typeof allowed === "function") return allowed;
  checkArgument(
    Array.isArray(allowed) &&
      allowed.every((origin) => typeof origin === "string"),
    what,
    "allowedOrigins",
    '"*", a list of origins or a function',
    allowed,
  );
  // One that is no origin ("a.example", with no scheme) could never match:
  // every page was refused, silently.
  const set = new Set(
    allowed.map((entry) => {
      const origin = originOf(entry);
      if (origin === undefined) {
        throw new TypeError(
          `Cannot ${what}: allowedOrigins holds ${
            JSON.stringify(entry.slice(0, 64))
          }, which is no origin (a scheme, a host and a port if not the scheme's own, as "https://app.example.com")`,
        );
      }
      return origin;
    }),
  );
  return (origin) => set.has(origin);
}

/**
 * An `allowedOrigins` entry as browsers send the origin: scheme, host and
 * port, no slash; an extension's or an app's (chrome-extension://id,
 * tauri://localhost), which URL gives no origin of its own, as scheme and
 * host; "null" (sandboxed and file pages) as it is. `undefined` for none.
 */
function originOf(entry: string): string | undefined {
  if (entry === "null") return "null";
  if (!URL.canParse(entry)) return undefined;
  const url = new URL(entry);
  if (url.origin !== "null") return url.origin;
  return url.host !== "" ? `${url.protocol}//${url.host}` : undefined;
}
