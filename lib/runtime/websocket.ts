/**
 * Server WebSockets on every runtime, as WHATWG-like sockets for
 * `websocketDuplex` from `@sluice/streams/http`: `Deno.upgradeWebSocket`
 * under Deno, `server.upgrade` under Bun (the handler must be served with
 * `serve` from `@sluice/streams/serve`, which installs Bun's `websocket`
 * handlers) and `WebSocketPair` under Cloudflare Workers.
 *
 * @module
 */

import { offeredProtocols } from "./_websocket_protocols.ts";
import { checkArgument } from "../_internal/arguments.ts";
import type { WebSocketLike } from "../http/websocket_duplex.ts";
import { getBun } from "./_bun.ts";
import { checkTimerMs } from "../_internal/limits.ts";
import { bunRequestFor, bunServerFor, BunWebSocket } from "./_websocket_bun.ts";
import { trackDenoSocket } from "./_websocket_deno.ts";
import { HttpError } from "../http/http_error.ts";

/** Options for {@linkcode upgradeWebSocket}. */
export interface UpgradeWebSocketOptions {
  /**
   * Milliseconds without a pong before Deno closes the socket, rounded up
   * to whole seconds (Deno only; Bun's is a server setting and Workers have
   * none). Unset, Deno's own default applies: 30 s.
   *
   * @default {30000}
   */
  idleTimeoutMs?: number;
  /**
   * The subprotocol to answer with, if the client offered it in
   * `Sec-WebSocket-Protocol`; otherwise (and without this option) the 101
   * names none (RFC 6455, section 4.2.2: the server picks one of those
   * offered, or none), under Bun too, which by itself answered the first
   * protocol offered. A client that offered some may then fail the
   * connection: Chromium's and Bun's `WebSocket` do, Deno's opens with
   * none.
   */
  protocol?: string;
}

/** The result of {@linkcode upgradeWebSocket}. */
export interface WebSocketUpgrade {
  /** The server side of the socket; it opens once `response` is returned. */
  readonly socket: WebSocketLike;
  /**
   * The response to return from the handler: the 101 answer (under Bun,
   * which has already answered, a placeholder it ignores).
   */
  readonly response: Response;
}

interface WorkersWebSocket extends WebSocketLike {
  accept(): void;
}

/**
 * Accepts a WebSocket upgrade request with the current runtime's server API.
 * It upgrades whatever page asks: browsers apply no CORS to WebSockets and
 * send the visitor's cookies with the upgrade, so a handler that trusts
 * cookies checks the request's `Origin` first (`createWebSocketRpcHandler`
 * does, by its `allowedOrigins`).
 *
 * A request that is no valid upgrade is the client's mistake, thrown as an
 * `HttpError` that `serve`'s default `onError` (and Hono) answer without
 * logging: 426 with `Upgrade: websocket` when it asks no `Upgrade:
 * websocket` or names another version than 13 (RFC 6455, section 4.4),
 * 400 when it is no `GET`, its `Connection` does not name `Upgrade`, or its
 * `Sec-WebSocket-Key` is missing or not 16 bytes in base64: one rule under
 * Deno and Bun, whose own checks differ (Deno upgraded any version, Bun any
 * `Connection`). Under Workers, whose runtime does the handshake, only
 * `Upgrade` is checked.
 *
 * Return its `response`, and make every check before the call: under Deno
 * (2.9.6) a handler that upgrades and then answers otherwise (a 403 after
 * the upgrade) ends the whole server ("Upgrade response was not returned
 * from callback"; it stops listening).
 *
 * Under Workers the socket is accepted with `accept()`, not with a Durable
 * Object's hibernation API (`state.acceptWebSocket`, which then throws on
 * it): it cannot hibernate, and the object stays in memory while it is
 * open. `websocketDuplex` and `createWebSocketRpcHandler` need the socket's
 * event listeners, which a hibernatable socket never fires (its messages go
 * to the object's `webSocketMessage`); for rooms that should hibernate, use
 * the Workers API directly.
 *
 * @param request The upgrade request (`Upgrade: websocket`).
 * @param options Idle timeout and subprotocol.
 * @returns The server socket and the response to return.
 * @throws {HttpError} When the request is no valid WebSocket upgrade (426
 *   or 400, as above; under Bun also when Bun refuses it).
 * @throws {TypeError} When the runtime has no server WebSocket API, the
 *   request is a copy of the one the server received (under Deno and Bun,
 *   which upgrade only their own: a router that rewrites the path, as
 *   Hono's `app.mount`, makes one), or, under Bun, the handler is not
 *   served by `serve`.
 *
 * @example A WebSocket echo with the duplex stream
 * ```ts ignore
 * import { websocketDuplex } from "@sluice/streams/http";
 * import { serve } from "@sluice/streams/serve";
 * import { upgradeWebSocket } from "@sluice/streams/websocket";
 *
 * await serve((request) => {
 *   const { socket, response } = upgradeWebSocket(request);
 *   const stream = websocketDuplex(socket);
 *   (async () => {
 *     for await (const chunk of stream) await stream.write(chunk);
 *     await stream.close();
 *   })().catch((error) => stream.close(error));
 *   return response;
 * });
 * ```
 */
export function upgradeWebSocket(
  request: Request,
  options: UpgradeWebSocketOptions = {},
): WebSocketUpgrade {
  checkArgument(
    typeof (request as Partial<Request> | null)?.headers?.get === "function",
    "upgrade to WebSocket",
    "the request",
    "a Request",
    request,
  );
  checkTimerMs("upgrade to WebSocket", "idleTimeoutMs", options.idleTimeoutMs);
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    throw new UpgradeRequired(
      "Cannot upgrade to WebSocket: the request has no Upgrade: websocket header",
    );
  }
  // Answered only if offered: Deno refuses the upgrade (500) and clients
  // fail the connection when the answer names one they did not offer.
  const protocol = options.protocol !== undefined &&
      offeredProtocols(request).includes(options.protocol)
    ? options.protocol
    : undefined;
  const bun = getBun();
  if (bun) {
    const server = bunServerFor(request);
    if (!server) {
      // Either not served by serve(), or a copy of the request the server
      // received (a router that rewrites the path, as Hono's app.mount
      // does): Bun upgrades only the request its server handed over.
      throw new TypeError(
        "Cannot upgrade to WebSocket: under Bun, serve the handler with serve() from @sluice/streams/serve, and pass it the request the server received, not a copy (a router that rewrites the path, as Hono's app.mount, makes one: route the path to the handler with the original request, c.req.raw in Hono)",
      );
    }
    checkHandshake(request);
    const socket = new BunWebSocket(server);
    // Always given, empty for none: without it Bun 1.4.5 answers the first
    // protocol offered, one the handler never chose (a client offering
    // only chat.v1 opened with chat.v1 where protocol was chat.v2:
    // docs/known-runtime-issues.md (ak)); an empty one it leaves out.
    const headers = { "sec-websocket-protocol": protocol ?? "" };
    // A router's Proxy of the request (itty-router's AutoRouter) stands
    // for it: Bun upgrades only the request it handed over.
    if (!server.upgrade(bunRequestFor(request), { data: socket, headers })) {
      socket.refused();
      // Past checkHandshake, what Bun refuses is still the request's doing.
      throw new HttpError(
        400,
        "Cannot upgrade to WebSocket: Bun refused the upgrade request",
      );
    }
    return { socket, response: new Response(null, { status: 200 }) };
  }
  if (typeof Deno !== "undefined") {
    if (!isDenoServedRequest(request)) {
      // Deno answers 101 for a copy, but its socket never opens and fires
      // no event: websocketDuplex waited out openTimeoutMs, then blamed the
      // peer, and nothing reached the router's error handler.
      throw new TypeError(
        "Cannot upgrade to WebSocket: under Deno, pass the request the server received, not a copy (a router that rewrites the path, as Hono's app.mount, makes one; Deno answers it 101 with a socket that never opens): route the path to the handler with the original request, c.req.raw in Hono (docs/known-runtime-issues.md (s))",
      );
    }
    checkHandshake(request);
    // The subprotocol goes on the answer here, not through Deno's
    // `protocol` option: Deno 2.9.6 looks for it in the offer split at
    // ", " only, and threw on a list written without spaces ("a,b", as the
    // ws package sends it; RFC 9110 5.6.1 allows both), a 500.
    const { socket, response } = Deno.upgradeWebSocket(request, {
      idleTimeout: options.idleTimeoutMs === undefined
        ? undefined
        : Math.ceil(options.idleTimeoutMs / 1000),
    });
    if (protocol) response.headers.set("sec-websocket-protocol", protocol);
    // Closed with 1001 when serve's shutdown begins.
    trackDenoSocket(request, socket);
    return { socket: socket as WebSocketLike, response };
  }
  const Pair = (globalThis as {
    WebSocketPair?: new () => Record<0 | 1, WorkersWebSocket>;
  }).WebSocketPair;
  if (Pair) {
    const pair = new Pair();
    const client = pair[0];
    const server = pair[1];
    server.accept();
    const headers = protocol
      ? { "sec-websocket-protocol": protocol }
      : undefined;
    const response = new Response(null, {
      status: 101,
      headers,
      webSocket: client,
    } as ResponseInit);
    return { socket: server, response };
  }
  throw new TypeError(
    "Cannot upgrade to WebSocket: no Deno.upgradeWebSocket, Bun.serve or WebSocketPair in this runtime",
  );
}

/** The only WebSocket version there is (RFC 6455, section 4.1). */
const WEBSOCKET_VERSION = "13";

/** A 426 that names the upgrade (RFC 9110, section 15.5.22) and version. */
class UpgradeRequired extends HttpError {
  constructor(message: string) {
    super(426, message);
  }

  override getResponse(): Response {
    const response = super.getResponse();
    response.headers.set("upgrade", "websocket");
    response.headers.set("sec-websocket-version", WEBSOCKET_VERSION);
    return response;
  }
}

/**
 * Whether `request` is (or stands for, as a Proxy) the request `Deno.serve`
 * handed over, the only kind Deno upgrades: its headers are immutable,
 * those of a copy (`new Request(url, request)`) or of a request built by
 * hand are not. Deleting a header that is absent changes nothing, and
 * throws only on immutable headers.
 */
function isDenoServedRequest(request: Request): boolean {
  try {
    request.headers.delete("x-sluice-upgrade-probe");
  } catch {
    return true;
  }
  return false;
}

/** Whether a comma-separated header holds `token` (case-insensitive). */
function hasToken(value: string | null, token: string): boolean {
  return value !== null &&
    value.split(",").some((item) => item.trim().toLowerCase() === token);
}

/**
 * Checks the rest of the client's handshake (RFC 6455, section 4.2.1), as
 * one rule under Deno and Bun: their own checks differ, and their refusals
 * were server failures (Deno throws, Bun's `server.upgrade` returns false,
 * or answers 426 itself and drops the handler's answer).
 */
function checkHandshake(request: Request): void {
  const refuse = (problem: string) =>
    new HttpError(400, `Cannot upgrade to WebSocket: ${problem}`);
  if (request.method !== "GET") {
    throw refuse(
      `the request's method is ${request.method.slice(0, 16)}, not GET`,
    );
  }
  if (!hasToken(request.headers.get("connection"), "upgrade")) {
    throw refuse("the request's Connection header does not name Upgrade");
  }
  const key = request.headers.get("sec-websocket-key");
  if (key === null || key.trim() === "") {
    throw refuse("the request has no Sec-WebSocket-Key");
  }
  if (!/^[A-Za-z0-9+/]{22}==$/.test(key.trim())) {
    throw refuse("the request's Sec-WebSocket-Key is not 16 bytes in base64");
  }
  const version = request.headers.get("sec-websocket-version")?.trim();
  if (version !== WEBSOCKET_VERSION) {
    throw new UpgradeRequired(
      version === undefined
        ? `Cannot upgrade to WebSocket: the request has no Sec-WebSocket-Version (${WEBSOCKET_VERSION})`
        : `Cannot upgrade to WebSocket: Sec-WebSocket-Version ${
          JSON.stringify(version.slice(0, 16))
        } is not ${WEBSOCKET_VERSION}, the only version served`,
    );
  }
}

export {
  createWebSocketRpcHandler,
  type WebSocketRpcHandlerOptions,
} from "./websocket_rpc.ts";
export type { WebSocketLike } from "../http/websocket_duplex.ts";
