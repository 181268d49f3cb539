import * as http2 from "node:http2";
import { Code } from "../rpc/code.ts";
import { RpcError } from "../rpc/rpc_error.ts";
import type {
  HttpClient,
  UniversalClientRequest,
  UniversalClientResponse,
} from "../rpc/universal.ts";
import {
  headersFromNode,
  headersToH2,
  readableFromNode,
  writeToNode,
} from "./_node_streams.ts";
import { deferred } from "../_internal/deferred.ts";

/** Options for {@linkcode createHttp2Client}. */
export interface Http2ClientOptions {
  /**
   * Bytes of response body buffered per call before the server is paused.
   *
   * @default {65536}
   */
  readBufferBytes?: number;
}

/** An {@linkcode HttpClient} over one HTTP/2 connection, with `close()`. */
export interface Http2Client extends HttpClient {
  /** Closes the connection (open calls finish first). */
  close(): Promise<void>;
}

/**
 * An HTTP client on `node:http2` that reads trailers, for native gRPC
 * (`createGrpcTransport`). It keeps one connection (cleartext h2c, or TLS
 * for `https:`) to the origin, opened on first use and reopened if it
 * closes; calls are multiplexed on it. Works under Deno, Bun and Node.
 * Call `close()` when done, or the connection keeps the process alive.
 *
 * @param baseUrl The server's origin, such as `http://127.0.0.1:9090`.
 * @param options Buffering.
 * @returns The client.
 *
 * @example A gRPC transport
 * ```ts ignore
 * import { createClient, createGrpcTransport } from "@sluice/streams/rpc";
 * import { createHttp2Client } from "@sluice/streams/grpc-node";
 *
 * const httpClient = createHttp2Client("http://127.0.0.1:9090");
 * const client = createClient(StreamingCalcService, createGrpcTransport({
 *   baseUrl: "http://127.0.0.1:9090",
 *   httpClient,
 * }));
 * // ... calls ...
 * await httpClient.close();
 * ```
 */
export function createHttp2Client(
  baseUrl: string | URL,
  options: Http2ClientOptions = {},
): Http2Client {
  const origin = new URL(baseUrl).origin;
  const { readBufferBytes = 65536 } = options;
  let session: http2.ClientHttp2Session | undefined;

  const connect = (): http2.ClientHttp2Session => {
    if (session && !session.closed && !session.destroyed) return session;
    const s = http2.connect(origin);
    // A failed connection surfaces as an error of the requests on it.
    s.on("error", () => {});
    s.once("close", () => {
      if (session === s) session = undefined;
    });
    session = s;
    return s;
  };

  const request = (
    req: UniversalClientRequest,
  ): Promise<UniversalClientResponse> => {
    req.signal.throwIfAborted();
    const url = new URL(req.url);
    const session = connect();
    // A cancel is RST_STREAM CANCEL alone. `stream.close(CANCEL)` ends the
    // request first (an empty DATA with END_STREAM), so a server read a
    // cancelled client-streaming call's requests as complete and answered
    // it; node:http2 resets a request whose `signal` aborts without it.
    const cancel = new AbortController();
    const stream = session.request({
      ":method": req.method,
      ":path": url.pathname + url.search,
      ...headersToH2(req.headers),
    }, { signal: AbortSignal.any([req.signal, cancel.signal]) });
    // A stream ended by its connection (cut, or closed by the peer) has
    // node's CANCEL as its code too: it is UNAVAILABLE, not a reset. (When
    // the stream closes, Bun has destroyed the session, Deno only closed it
    // and destroyed its socket.)
    const connectionGone = () =>
      session.destroyed || session.closed || session.socket?.destroyed === true;
    const peerReset = () => isReset(stream.rstCode) && !connectionGone();
    const errorOf = (error?: Error) =>
      connectionGone()
        ? new RpcError(
          Code.Unavailable,
          "Cannot read response: the connection closed before its end",
          { cause: error },
        )
        : error === undefined || peerReset()
        ? resetError(stream.rstCode)
        : error;
    const trailers = deferred<Headers>();
    let gotTrailers = false;
    stream.once("trailers", (incoming) => {
      gotTrailers = true;
      trailers.resolve(headersFromNode(incoming));
    });
    trailers.promise.catch(() => {}); // observed by whoever awaits it
    stream.once("close", () => {
      if (gotTrailers) return;
      // Reset without trailers (say, a server's RST_STREAM CANCEL on a
      // deadline), or cut with its connection: the call failed, whatever
      // data came before.
      if (connectionGone() || isReset(stream.rstCode)) {
        trailers.reject(errorOf());
      } else trailers.resolve(new Headers());
    });
    // A request body that fails (the call's request stream errored) is a
    // cancel too, not an end.
    const onAbort = () => cancel.abort();
    // A GET (Connect GET) has no body: node:http2 ends its stream at once.
    if (req.method === "GET") {
      if (!stream.writableEnded) stream.end();
    } else if (req.body instanceof Uint8Array) stream.end(req.body);
    else {
      writeToNode(req.body, stream).then(
        () => stream.end(),
        () => onAbort(),
      );
    }
    // node:http2 reports most RST_STREAM codes as a bare 'error': the
    // code says what the server meant (ENHANCE_YOUR_CALM is no reason to
    // retry, as UNAVAILABLE would be).
    const body = readableFromNode(stream, readBufferBytes, errorOf);
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => reject(errorOf(error));
      const onClose = () =>
        reject(
          req.signal.aborted
            ? req.signal.reason
            : peerReset()
            ? resetError(stream.rstCode)
            : new Error(
              "Cannot read response: the stream closed before its headers",
            ),
        );
      stream.once("error", onError);
      stream.once("close", onClose);
      stream.once("response", (incoming) => {
        stream.off("error", onError);
        stream.off("close", onClose);
        resolve({
          status: Number(incoming[":status"]),
          headers: headersFromNode(incoming),
          body,
          trailers: trailers.promise,
        });
      });
    });
  };

  const isReset = (rstCode: number | undefined) =>
    rstCode !== undefined && rstCode !== http2.constants.NGHTTP2_NO_ERROR;

  // RST_STREAM codes to status codes, as doc/PROTOCOL-HTTP2.md maps them.
  const resetError = (rstCode: number | undefined): RpcError => {
    const {
      NGHTTP2_CANCEL,
      NGHTTP2_REFUSED_STREAM,
      NGHTTP2_ENHANCE_YOUR_CALM,
    } = http2.constants;
    const code = rstCode === NGHTTP2_CANCEL
      ? Code.Canceled
      : rstCode === NGHTTP2_REFUSED_STREAM
      ? Code.Unavailable
      : rstCode === NGHTTP2_ENHANCE_YOUR_CALM
      ? Code.ResourceExhausted
      : Code.Internal;
    return new RpcError(
      code,
      `Cannot read response: the stream was reset (RST_STREAM ${rstCode})`,
    );
  };

  return Object.assign(request, {
    close(): Promise<void> {
      const s = session;
      session = undefined;
      if (!s || s.closed) return Promise.resolve();
      return new Promise<void>((resolve) => s.close(() => resolve()));
    },
  });
}
