import { writeOwned } from "../../streams/duplex_stream.ts";
import type { Transport, TransportOptions } from "../client/transport.ts";
import { checkFunction } from "../../_internal/arguments.ts";
import { createConnectTransport } from "../protocol_connect/transport.ts";
import { Code } from "../code.ts";
import { RpcError } from "../rpc_error.ts";
import type {
  HttpClient,
  UniversalClientRequest,
  UniversalClientResponse,
} from "../universal.ts";
import {
  WEBSOCKET_CLOSE_TOO_BIG,
  websocketDuplex,
  type WebSocketLike,
} from "../../http/websocket_duplex.ts";
import { checkMax } from "../../_internal/limits.ts";
import { parseUrl } from "../../http/_url.ts";
import { quote } from "../protocol/_quote.ts";
import { checkNoQueryOrFragment } from "../protocol/_transport.ts";
import {
  bodyAfterHead,
  encodeRequestHead,
  headersOf,
  readHead,
  WEBSOCKET_RPC_PROTOCOL,
  writeBody,
} from "./_head.ts";

/** Options for {@linkcode createWebSocketTransport}. */
export interface WebSocketTransportOptions extends
  Omit<
    TransportOptions,
    "baseUrl" | "fetch" | "httpClient" | "allowHalfDuplex"
  > {
  /**
   * The server's base URL (`http:`, `https:`, `ws:` or `wss:`): each call
   * opens a socket to it plus the method path, such as
   * `ws://127.0.0.1:9090/StreamingCalcService/Sum`, so it has no query or
   * fragment. Give `baseUrl` or `url`, not both.
   */
  baseUrl?: string | URL;
  /**
   * One URL for every call, such as `wss://example.com/rpc-ws`: the method
   * path travels in the call's head instead. It may have a query, not a
   * fragment. Give `baseUrl` or `url`, not both.
   */
  url?: string | URL;
  /**
   * The most response bytes received and not yet read. A WebSocket cannot
   * be paused: past this bound the socket is closed (code 4009) and the call
   * fails with `ResourceExhausted`.
   * (A message queued behind another counts 512 bytes more, as
   * `websocketDuplex` counts them.)
   *
   * @default {16777216}
   */
  maxBufferedBytes?: number;
  /**
   * The `WebSocket` constructor (for a runtime without a global one, or a
   * mock in tests).
   *
   * @default {globalThis.WebSocket}
   */
  WebSocket?: new (url: string, protocols?: string | string[]) => WebSocketLike;
}

/**
 * A transport that makes each call over its own WebSocket (subprotocol
 * `sluice.rpc.v1`): full duplex everywhere a WebSocket is, browsers
 * included, and over HTTP/1.1, so bidi and client-streaming calls work
 * where fetch cannot stream a request body. The socket carries the
 * Connect protocol's messages and end-of-stream status; serve it with
 * `createWebSocketRpcHandler` from `@sluice/streams/websocket`.
 *
 * Back-pressure both ways: sends wait while the socket's `bufferedAmount`
 * is high; received bytes queue up to `maxBufferedBytes` unread. Deadlines,
 * cancellation (the socket is closed), compression and `maxMessageBytes`
 * work as on the HTTP transports; `protocol` is `"connect"`.
 *
 * @param options The server URL, codec, compression and limits.
 * @returns The transport, for `createClient`.
 * @throws {TypeError} Without `baseUrl` or `url`, or with both; when it is
 * not a `ws:`, `wss:`, `http:` or `https:` URL (or, in a page, relative to
 * it), has a fragment, or (`baseUrl`) a query.
 *
 * @example Sum numbers over a WebSocket
 * ```ts ignore
 * import { createClient, createWebSocketTransport } from "@sluice/streams/rpc";
 *
 * const client = createClient(StreamingCalcService, createWebSocketTransport({
 *   baseUrl: "ws://127.0.0.1:9090",
 * }));
 * const call = client.incrementalSum();
 * await call.send(5n);
 * console.log(await call.receive()); // 5n
 * ```
 */
export function createWebSocketTransport(
  options: WebSocketTransportOptions,
): Transport {
  const what = "create WebSocket transport";
  const { baseUrl, url, maxBufferedBytes, WebSocket: _, ...rest } = options;
  if ((baseUrl === undefined) === (url === undefined)) {
    throw new TypeError(`Cannot ${what}: give baseUrl or url, not both`);
  }
  checkFunction(what, "WebSocket", options.WebSocket);
  const Socket = options.WebSocket ??
    (globalThis as { WebSocket?: WebSocketTransportOptions["WebSocket"] })
      .WebSocket;
  if (Socket === undefined) {
    throw new TypeError(
      `Cannot ${what}: this runtime has no WebSocket; give the WebSocket option`,
    );
  }
  // Checked here, not at each call: a URL no WebSocket opens failed every
  // call UNAVAILABLE (retryable), in the runtime's words.
  const base = url === undefined
    ? socketUrl(what, "baseUrl", baseUrl!).replace(/\/+$/, "")
    : undefined;
  const fixed = url === undefined ? undefined : socketUrl(what, "url", url);
  const client = websocketClient(
    Socket,
    (path) => fixed ?? base + path,
    checkMax(what, "maxBufferedBytes", maxBufferedBytes ?? 16 * 1024 * 1024),
  );
  // The call's URL is the method path alone (baseUrl ""): the client above
  // turns it into the socket's URL.
  return createConnectTransport({ ...rest, baseUrl: "", httpClient: client });
}

/**
 * `value` as the absolute URL a WebSocket opens, `http:` made `ws:` and
 * `https:` made `wss:` (relative to the page's location in a page, as the
 * HTTP transports take it), or a TypeError naming `name`: another scheme,
 * a fragment (a WebSocket refuses one) and, in `baseUrl`, a query (the
 * method path is appended to it: "/?x=1/pkg.Service/Method").
 */
function socketUrl(
  what: string,
  name: "baseUrl" | "url",
  value: string | URL,
): string {
  const text = String(value);
  const parsed = parseUrl(text);
  if (parsed === undefined || !/^(?:wss?|https?):$/.test(parsed.protocol)) {
    throw new TypeError(
      `Cannot ${what}: ${name} must be a ws:, wss:, http: or https: URL${
        parsed === undefined ? " (or, in a page, relative to it)" : ""
      }, got ${quote(text)}`,
    );
  }
  if (name === "baseUrl") checkNoQueryOrFragment(what, parsed, text);
  // The href, not hash: an empty fragment ("...#") is one too.
  if (parsed.href.includes("#")) {
    throw new TypeError(
      `Cannot ${what}: url must have no fragment (a WebSocket URL has none), got ${
        quote(text)
      }`,
    );
  }
  return parsed.href.replace(/^http(s?):/, "ws$1:");
}

/** An HttpClient that makes each request a WebSocket. */
function websocketClient(
  Socket: NonNullable<WebSocketTransportOptions["WebSocket"]>,
  urlFor: (path: string) => string,
  maxBufferedBytes: number,
): HttpClient {
  return async (
    request: UniversalClientRequest,
  ): Promise<UniversalClientResponse> => {
    const path = request.url;
    const socket = new Socket(urlFor(path), WEBSOCKET_RPC_PROTOCOL);
    let closeCode = 0;
    socket.addEventListener("close", (event: CloseEvent) => {
      closeCode = event.code;
    });
    const duplex = websocketDuplex(socket, { maxBufferedBytes });
    const onAbort = () => {
      duplex.close(request.signal.reason).catch(() => {});
    };
    if (request.signal.aborted) onAbort();
    request.signal.addEventListener("abort", onAbort, { once: true });
    // The receive queue passing maxBufferedBytes here (a RangeError), or
    // the server's closing the socket for its own (1009).
    const toRpcError = (error: unknown) =>
      error instanceof RangeError
        ? new RpcError(
          Code.ResourceExhausted,
          `Cannot read response: more than maxBufferedBytes ${maxBufferedBytes} received and unread`,
          { cause: error },
        )
        : closeCode === WEBSOCKET_CLOSE_TOO_BIG
        ? new RpcError(
          Code.ResourceExhausted,
          "Cannot send request: the server's receive queue is full (WebSocket closed with 1009)",
          { cause: error },
        )
        : error;
    try {
      const callHead = encodeRequestHead({ path, headers: request.headers });
      if (request.body instanceof Uint8Array) {
        // A whole body (unary, server-streaming) goes in the head's
        // message: one write less for a socket that runs Nagle's
        // algorithm to hold back (see serveWebSocketCall).
        const message = new Uint8Array(
          callHead.byteLength + request.body.byteLength,
        );
        message.set(callHead);
        message.set(request.body, callHead.byteLength);
        await writeOwned(duplex, message);
        sendBody(duplex, undefined);
      } else {
        await writeOwned(duplex, callHead);
        // The request body streams while the response is read.
        sendBody(duplex, request.body);
      }
      const head = await readHead(duplex, "read response head", Code.Internal);
      const status = head.json.status;
      if (typeof status !== "number") {
        throw new RpcError(
          Code.Internal,
          "Cannot read response head: status is not a number",
        );
      }
      return {
        status,
        headers: headersOf(head.json, "read response head", Code.Internal),
        body: bodyAfterHead(duplex, head.rest, toRpcError),
        trailers: Promise.resolve(new Headers()),
      };
    } catch (error) {
      await duplex.close(error).catch(() => {});
      throw toRpcError(error);
    }
  };
}

/** Sends the request body and half-closes; a failure closes the socket. */
async function sendBody(
  duplex: ReturnType<typeof websocketDuplex>,
  body: ReadableStream<Uint8Array> | Uint8Array | undefined,
): Promise<void> {
  try {
    await writeBody(duplex, body);
  } catch (error) {
    await duplex.close(error).catch(() => {});
  }
}
