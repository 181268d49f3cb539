import { writeOwned } from "../../streams/duplex_stream.ts";
import { Code } from "../code.ts";
import { RpcError } from "../rpc_error.ts";
import type { UniversalHandler } from "../universal.ts";
import {
  websocketDuplex,
  type WebSocketLike,
} from "../../http/websocket_duplex.ts";
import {
  bodyAfterHead,
  encodeResponseHead,
  headersOf,
  readHead,
  writeBody,
} from "./_head.ts";
import { encodeEndStreamFrame } from "../protocol_connect/end_stream.ts";
import { contentType } from "../protocol_connect/content_type.ts";
import { isGrpcContentType } from "../protocol_grpc/content_type.ts";
import { checkMax, checkTimerMs } from "../../_internal/limits.ts";

/** Options for {@linkcode serveWebSocketCall}. */
export interface ServeWebSocketCallOptions {
  /**
   * The most request bytes received and not yet read by the handler. A
   * WebSocket cannot be paused: past this bound the socket is closed (code
   * 1009) and the call fails.
   * (A message queued behind another counts 512 bytes more, as
   * `websocketDuplex` counts them.)
   *
   * @default {16777216}
   */
  maxBufferedBytes?: number;
  /**
   * The longest wait for the call's head after the socket opens, in
   * milliseconds; 0 waits for ever.
   *
   * @default {60000}
   */
  idleTimeoutMs?: number;
  /**
   * The headers of the HTTP request that opened the socket (its upgrade).
   * Each call's handler sees them in `context.requestHeaders` beside the
   * headers of the call's head, as a call over fetch would: the cookies,
   * `Origin` and `User-Agent` a browser sends, and what a proxy adds. A
   * header the upgrade carries wins over the head's of the same name, so a
   * page's script cannot replace what its browser or a proxy set; the
   * handshake's own (`Connection`, `Upgrade`, `Sec-WebSocket-*`,
   * `Accept-Encoding`) are left out.
   */
  upgradeHeaders?: Headers;
}

/**
 * Serves one RPC call over an accepted server WebSocket (subprotocol
 * `sluice.rpc.v1`): reads the call's head, hands the call to `handler` (a
 * universal handler serving the Connect protocol) as a request whose body
 * is the rest of the socket's input, and sends the response head, the
 * response messages and the end-of-stream status back. The socket closing
 * early cancels the call. `createWebSocketRpcHandler` from
 * `@sluice/streams/websocket` does the upgrade and calls this.
 *
 * @param socket The server socket (open or about to open).
 * @param handler The universal handler that serves the calls.
 * @param options Queue bound and head timeout.
 * @returns A promise that settles when the call is over (never rejects).
 * @throws {RangeError} When `maxBufferedBytes` is not a non-negative
 *   integer, or `idleTimeoutMs` not a number of milliseconds from 0 to
 *   2147483647 (the longest a timer waits), as `createWebSocketRpcHandler`
 *   checks them (a TypeError when one is not a number).
 *
 * @example Serve calls on sockets accepted by hand
 * ```ts ignore
 * import { createUniversalHandler, serveWebSocketCall } from "@sluice/streams/rpc";
 *
 * const universal = createUniversalHandler(services, { protocols: ["connect"] });
 * Deno.serve((request) => {
 *   const { socket, response } = Deno.upgradeWebSocket(request, { protocol: "sluice.rpc.v1" });
 *   serveWebSocketCall(socket, universal);
 *   return response;
 * });
 * ```
 */
export function serveWebSocketCall(
  socket: WebSocketLike,
  handler: UniversalHandler,
  options: ServeWebSocketCallOptions = {},
): Promise<void> {
  // Checked before any work, and thrown: past setTimeout's limit the head's
  // timer fired at once, and NaN or a negative value never did.
  const what = "serve WebSocket call";
  if (options.maxBufferedBytes !== undefined) {
    checkMax(what, "maxBufferedBytes", options.maxBufferedBytes);
  }
  checkTimerMs(what, "idleTimeoutMs", options.idleTimeoutMs);
  return serveCall(socket, handler, options);
}

async function serveCall(
  socket: WebSocketLike,
  handler: UniversalHandler,
  options: ServeWebSocketCallOptions,
): Promise<void> {
  const duplex = websocketDuplex(socket, {
    maxBufferedBytes: options.maxBufferedBytes,
  });
  const closed = new AbortController();
  let done = false;
  let headSent = false;
  let flagsSent = false;
  const onClose = (event: CloseEvent) => {
    if (!done) {
      closed.abort(
        new RpcError(
          Code.Canceled,
          // Closed by either side: the client, or the server shutting
          // down (Bun's 1001 "Server shutting down"), the reason saying which.
          `Cannot finish call: the WebSocket closed (code ${event.code}${
            event.reason ? `: ${event.reason}` : ""
          })`,
        ),
      );
    }
  };
  socket.addEventListener("close", onClose);
  const idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
  const timer = idleTimeoutMs > 0
    ? setTimeout(() => {
      duplex.close(
        new RpcError(
          Code.DeadlineExceeded,
          `Cannot read call head: none arrived in ${idleTimeoutMs} ms (idleTimeoutMs)`,
        ),
      ).catch(() => {});
    }, idleTimeoutMs)
    : undefined;
  try {
    let head;
    try {
      head = await readHead(duplex, "read call head", Code.InvalidArgument);
    } finally {
      clearTimeout(timer);
    }
    // The response head's first byte (its flags, always 0) goes out at
    // once, alone: the TCP segment that carries it acknowledges the call's
    // head. A client whose socket runs Nagle's algorithm (Deno's WebSocket
    // client turns TCP_NODELAY off) holds back what it writes after the
    // head (the end of a unary request, a bidi call's first message) until
    // that acknowledgement, which the server's kernel otherwise delays
    // about 40 ms. Message boundaries mean nothing to the protocol.
    await writeOwned(duplex, new Uint8Array(1));
    flagsSent = true;
    const path = head.json.path;
    if (typeof path !== "string" || !path.startsWith("/")) {
      throw new RpcError(
        Code.InvalidArgument,
        "Cannot read call head: path is not a method path",
      );
    }
    const headers = headersOf(
      head.json,
      "read call head",
      Code.InvalidArgument,
    );
    if (options.upgradeHeaders !== undefined) {
      withUpgradeHeaders(headers, options.upgradeHeaders);
    }
    if (isGrpcContentType(headers.get("content-type") ?? "")) {
      // Said here, in Connect's framing: the handler's gRPC refusal would
      // tell this peer to add "grpc" to protocols, which cannot help.
      throw new RpcError(
        Code.Unimplemented,
        "Cannot serve native gRPC over WebSocket: RPC over WebSocket speaks Connect; serve native gRPC with serveHttp2",
      );
    }
    const response = await handler({
      method: "POST",
      url: `http://websocket${path}`,
      headers,
      // A call that stops reading its request (it has ended, or failed)
      // still sends its response: the rest of the input is read and
      // dropped until the socket closes.
      body: bodyAfterHead(duplex, head.rest, undefined, () => {
        (async () => {
          while (await duplex.readPartial().catch(() => null) !== null);
        })();
        return Promise.resolve();
      }),
      signal: closed.signal,
    });
    headSent = true;
    await writeOwned(
      duplex,
      encodeResponseHead({
        status: response.status,
        headers: response.headers,
      }).subarray(1),
    );
    await writeBody(duplex, response.body);
    done = true;
  } catch (error) {
    done = true;
    // A head that could not be read gets a Connect error status, when the
    // socket still takes it; then the socket closes.
    const rpcError = RpcError.from(error, Code.Internal);
    if (!headSent && !closed.signal.aborted && socket.readyState === 1) {
      try {
        const head = encodeResponseHead({
          status: 200,
          headers: new Headers({ "content-type": contentType("proto") }),
        });
        // Its first byte went out already if the call's head was read.
        await writeOwned(duplex, flagsSent ? head.subarray(1) : head);
        await writeOwned(
          duplex,
          encodeEndStreamFrame({ error: rpcError, trailers: new Headers() }),
        );
        await duplex.closeWrite();
        return;
      } catch {
        // Fall through: close with the error.
      }
    }
    await duplex.close(rpcError).catch(() => {});
  } finally {
    socket.removeEventListener("close", onClose);
  }
}

/**
 * The WebSocket handshake's own headers, not the call's: the upgrade's
 * `Accept-Encoding` names what its browser decodes on an HTTP answer, while
 * a unary call's answer is decoded by the client's own code, as the head
 * says.
 */
const HANDSHAKE_HEADERS = new Set([
  "accept-encoding",
  "connection",
  "upgrade",
  "content-length",
  "transfer-encoding",
  "keep-alive",
  "te",
  "trailer",
  "http2-settings",
]);

/** Sets the upgrade request's headers over the call head's. */
function withUpgradeHeaders(headers: Headers, upgrade: Headers): void {
  upgrade.forEach((value, name) => {
    if (!HANDSHAKE_HEADERS.has(name) && !name.startsWith("sec-websocket-")) {
      headers.set(name, value);
    }
  });
}
