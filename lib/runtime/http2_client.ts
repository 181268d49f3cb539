import * as http2 from "node:http2";
import { Code } from "../rpc/code.ts";
import { RpcError } from "../rpc/rpc_error.ts";
import type {
  HttpClient,
  UniversalClientRequest,
  UniversalClientResponse,
} from "../rpc/universal.ts";
import {
  headerListBytes,
  headersFromNode,
  headersToH2,
  readableFromNode,
  writeToSink,
} from "./_node_streams.ts";
import { type ReplayBudget, RequestReplay } from "./_request_replay.ts";
import { deferred } from "../_internal/deferred.ts";
import { checkMax } from "../_internal/limits.ts";

/** Options for {@linkcode createHttp2Client}. */
export interface Http2ClientOptions {
  /**
   * Bytes of response body buffered per call before the server is paused.
   *
   * @default {65536}
   */
  readBufferBytes?: number;
  /**
   * Options of the connection, passed to `node:http2`'s `connect()`: for
   * an `https:` server with a private CA, `ca` (its certificate, PEM);
   * `cert` and `key` for a client certificate (mutual TLS); `servername`.
   * (Without them, the runtime's trust store: `DENO_CERT` under Deno,
   * `NODE_EXTRA_CA_CERTS` under Bun and Node add a CA to it.)
   */
  connectOptions?: http2.SecureClientSessionOptions;
}

/** An {@linkcode HttpClient} over one HTTP/2 connection, with `close()`. */
export interface Http2Client extends HttpClient {
  /**
   * Closes the connection (open calls finish first). Calls made after it
   * fail with `FAILED_PRECONDITION`: a new connection would keep the
   * process alive. Resolves once the connection closed or, if it has not
   * closed 200 ms after the last of those calls ended (Bun's `node:http2`
   * may never close it), once it was destroyed.
   */
  close(): Promise<void>;
}

/**
 * An HTTP client on `node:http2` that reads trailers, for native gRPC
 * (`createGrpcTransport`). It keeps one connection (cleartext h2c, or TLS
 * for `https:`) to the origin, opened on first use and reopened if it
 * closes; calls are multiplexed on it. Works under Deno, Bun and Node.
 * Call `close()` when done, or the connection keeps the process alive.
 *
 * A call the server never processed (`REFUSED_STREAM`, or above the last
 * stream of its GOAWAY) is sent again, as grpc-js does: a streaming call
 * with everything it had sent, kept until the server's response head (up
 * to 64 KiB per call, 16 MiB for all calls; past that it fails
 * `UNAVAILABLE`, not processed). A call whose header list (its metadata,
 * counted as HTTP/2 counts: names, values and 32 a field) is over 64 KiB
 * fails `RESOURCE_EXHAUSTED` before anything is sent: `node:http2` cannot
 * send it (under Bun it closed the connection under every call).
 *
 * @param baseUrl The server's origin, such as `http://127.0.0.1:9090` (a
 *   path is not used: the transport's `baseUrl` gives the calls' paths). A
 *   call to another origin fails `INTERNAL` before anything is sent.
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
  const what = "create HTTP/2 client";
  const url = URL.canParse(String(baseUrl)) ? new URL(baseUrl) : undefined;
  if (
    url === undefined || (url.protocol !== "http:" && url.protocol !== "https:")
  ) {
    throw new TypeError(
      `Cannot ${what}: baseUrl must be an absolute http: or https: URL, got ${
        JSON.stringify(String(baseUrl).slice(0, 64))
      }`,
    );
  }
  const origin = url.origin;
  const readBufferBytes = checkMax(
    what,
    "readBufferBytes",
    options.readBufferBytes ?? 65536,
  );
  let session: http2.ClientHttp2Session | undefined;
  // Set by close(): a call refused meanwhile is not sent again (its new
  // connection would outlive close() and hold the process).
  let closed = false;
  const goneAfter = new WeakMap<http2.ClientHttp2Session, number>();
  const sessionErrors = new WeakMap<http2.ClientHttp2Session, Error>();
  // The sessions that connected: a call on one that never did failed to
  // connect, not mid-response.
  const connected = new WeakSet<http2.ClientHttp2Session>();
  // The streams open on each session, and what close() does when the last
  // of them closes.
  const openStreams = new WeakMap<
    http2.ClientHttp2Session,
    Set<http2.ClientHttp2Stream>
  >();
  const onDrained = new WeakMap<http2.ClientHttp2Session, () => void>();
  // Every session not yet closed: the current one, and those a GOAWAY
  // replaced whose calls still run.
  const live = new Set<http2.ClientHttp2Session>();
  // The streaming request bodies kept by all calls for sending again.
  const replayBudget: ReplayBudget = { used: 0 };

  const connect = (): http2.ClientHttp2Session => {
    if (session && !session.closed && !session.destroyed) return session;
    const s = http2.connect(origin, options.connectOptions);
    // Connected once the server spoke HTTP/2 (its SETTINGS): a TCP
    // connection closed before that never opened an HTTP/2 one.
    s.once("remoteSettings", () => connected.add(s));
    // A failed connection surfaces as an error of the requests on it,
    // which name its cause (a certificate not trusted, a refused port).
    s.on("error", (error: Error) => {
      if (!sessionErrors.has(s)) sessionErrors.set(s, error);
    });
    // The last stream the server processes: those above it it never saw.
    // (A graceful shutdown may send two, the first with the largest id.)
    s.on("goaway", (_code: number, lastStreamId: number) => {
      goneAfter.set(s, Math.min(lastStreamId, goneAfter.get(s) ?? Infinity));
    });
    s.once("close", () => {
      if (session === s) session = undefined;
      live.delete(s);
    });
    openStreams.set(s, new Set());
    live.add(s);
    session = s;
    return s;
  };

  const request = (
    req: UniversalClientRequest,
    refusals = 0,
    replay?: RequestReplay,
  ): Promise<UniversalClientResponse> => {
    try {
      req.signal.throwIfAborted();
    } catch (error) {
      replay?.fail(error);
      throw error;
    }
    if (closed) {
      const error = new RpcError(
        Code.FailedPrecondition,
        "Cannot send request: the HTTP/2 client was closed (close())",
      );
      replay?.fail(error);
      throw error;
    }
    const url = new URL(req.url);
    if (url.origin !== origin) {
      // The session is this origin's: another's path would go to the wrong
      // server, with this one's :authority.
      const error = new RpcError(
        Code.Internal,
        `Cannot send request to ${url.origin}: this HTTP/2 client connects to ${origin} (createHttp2Client's baseUrl); give the transport a baseUrl of the same origin, or make a client for ${url.origin}`,
      );
      replay?.fail(error);
      throw error;
    }
    const headers = {
      ":method": req.method,
      // node:http2's own (under Deno and Node) leaves an IPv6 host out of
      // its brackets ("::1:9090"), which strict servers reset.
      ":authority": url.host,
      ":path": url.pathname + url.search,
      ...headersToH2(req.headers),
    };
    const listBytes = headerListBytes(headers);
    if (listBytes > MAX_HEADER_LIST_BYTES) {
      const error = new RpcError(
        Code.ResourceExhausted,
        `Cannot send request: its header list is ${listBytes} bytes (names, values and 32 a field, as HTTP/2 counts), over the ${MAX_HEADER_LIST_BYTES} createHttp2Client sends (node:http2 fails one field of 64 KiB, and under Deno larger lists, as if the server had refused them); send large data in the request message, not in metadata`,
      );
      replay?.fail(error);
      throw error;
    }
    const session = connect();
    // A cancel is RST_STREAM CANCEL alone. `stream.close(CANCEL)` ends the
    // request first (an empty DATA with END_STREAM), so a server read a
    // cancelled client-streaming call's requests as complete and answered
    // it; node:http2 resets a request whose `signal` aborts without it.
    const cancel = new AbortController();
    const stream = session.request(headers, {
      signal: AbortSignal.any([req.signal, cancel.signal]),
    });
    const open = openStreams.get(session);
    open?.add(stream);
    stream.once("close", () => {
      open?.delete(stream);
      if (open?.size === 0) onDrained.get(session)?.();
    });
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
          `${
            connected.has(session)
              ? "Cannot read response: the connection closed before its end"
              : `Cannot connect to ${origin}`
          }${reasonOf(sessionErrors.get(session) ?? error)}`,
          { cause: sessionErrors.get(session) ?? error },
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
      // A streaming body is read once, into whichever stream carries the
      // call: kept until the server answers, it can go again whole.
      // (Attached before the body starts: nothing it writes at once waits
      // for a stream, whatever the bound on what is kept.)
      if (replay === undefined) {
        const body = new RequestReplay(replayBudget);
        body.attach(stream, onAbort);
        writeToSink(req.body, body).then(() => body.end(), () => body.abort());
        replay = body;
      } else replay.attach(stream, onAbort);
    }
    // node:http2 reports most RST_STREAM codes as a bare 'error': the
    // code says what the server meant (ENHANCE_YOUR_CALM is no reason to
    // retry, as UNAVAILABLE would be).
    // An end of a stream already destroyed or reset (its connection cut:
    // node:http2 ends its data then) is no end of the response. (A
    // session closing gracefully, GOAWAY sent, ends its streams whole.)
    const body = readableFromNode(
      stream,
      readBufferBytes,
      errorOf,
      () => stream.destroyed || isReset(stream.rstCode) ? errorOf() : undefined,
    );
    // A stream the server refused (REFUSED_STREAM), or one above the last
    // its GOAWAY says it processes (a server closing a connection after so
    // many streams, as serveHttp2 does under Deno), was never processed
    // (RFC 9113, section 8.7): a request whose body is whole may be sent
    // again (see mayRetry).
    const unprocessed = () => {
      const last = goneAfter.get(session);
      return stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM ||
        (last !== undefined && (stream.id === undefined || stream.id > last));
    };
    // Sent again while the server makes progress: a GOAWAY after streams
    // it processed (a connection closed after so many streams), up to
    // MAX_REFUSALS times; otherwise (REFUSED_STREAM, or a GOAWAY that
    // processed none: a server shedding load or draining) once, as grpc-js
    // retries transparently, so that no call storms a refusing server.
    const mayRetry = () => {
      if (closed) return false;
      const last = goneAfter.get(session);
      return last !== undefined && last > 0
        ? refusals < MAX_REFUSALS
        : refusals < 1;
    };
    // A whole body, or a streaming one whose bytes so far are all kept.
    const replayable = () =>
      req.method === "GET" || req.body instanceof Uint8Array ||
      replay?.replayable === true;
    return new Promise((resolve, reject) => {
      const failed = (error: unknown) => {
        stream.off("error", onError);
        stream.off("close", onClose);
        if (req.signal.aborted) {
          replay?.fail(req.signal.reason);
          return reject(req.signal.reason);
        }
        if (!unprocessed()) {
          replay?.fail(error);
          return reject(error);
        }
        const again = replayable();
        if (again && mayRetry()) {
          // In a reaction: a throw of request() rejects the call.
          return resolve(
            Promise.resolve().then(() => request(req, refusals + 1, replay)),
          );
        }
        const failure = new RpcError(
          Code.Unavailable,
          again
            ? `Cannot send request: the server refused it ${
              refusals === 0 ? "once" : `${refusals + 1} times`
            } without processing it (GOAWAY or REFUSED_STREAM)`
            : `Cannot send request: the server closed the stream without processing it (GOAWAY or REFUSED_STREAM), after ${
              replay?.notKept ?? "its request was sent"
            }; the call may be retried`,
          { cause: error },
        );
        replay?.fail(failure);
        reject(failure);
      };
      const onError = (error: Error) => failed(errorOf(error));
      const onClose = () =>
        failed(
          peerReset()
            ? resetError(stream.rstCode)
            : connectionGone()
            ? errorOf()
            : new Error(
              "Cannot read response: the stream closed before its headers",
            ),
        );
      stream.once("error", onError);
      stream.once("close", onClose);
      stream.once("response", (incoming, flags: number) => {
        stream.off("error", onError);
        stream.off("close", onClose);
        // Processed: its request is not sent again.
        replay?.release();
        const headers = headersFromNode(incoming);
        // A status in headers that do not end the stream is no
        // Trailers-Only response (a server that copied another response's
        // headers, say): its messages and its trailers' status follow, as
        // grpc-js reads them. Read as Trailers-Only, a failing call came
        // out an empty success.
        if (
          headers.has("grpc-status") && flags !== undefined &&
          (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) === 0
        ) {
          for (const name of NOT_IN_HEADERS) headers.delete(name);
        }
        resolve({
          status: Number(incoming[":status"]),
          headers,
          body,
          trailers: trailers.promise,
        });
      });
    });
  };

  /**
   * How many times a call is sent again after GOAWAYs that left it
   * unprocessed while the server processed others on each connection:
   * each refusal then came with progress (under Bun, 50 calls at once
   * against 5 streams a connection were refused up to 33 times each, as
   * the calls that follow them compete for the same streams).
   */
  const MAX_REFUSALS = 100;

  const isReset = (rstCode: number | undefined) =>
    rstCode !== undefined && rstCode !== http2.constants.NGHTTP2_NO_ERROR;

  // RST_STREAM codes to status codes, as doc/PROTOCOL-HTTP2.md maps them.
  const resetError = (rstCode: number | undefined): RpcError => {
    const {
      NGHTTP2_CANCEL,
      NGHTTP2_REFUSED_STREAM,
      NGHTTP2_ENHANCE_YOUR_CALM,
      NGHTTP2_INADEQUATE_SECURITY,
    } = http2.constants;
    const code = rstCode === NGHTTP2_CANCEL
      ? Code.Canceled
      : rstCode === NGHTTP2_REFUSED_STREAM
      ? Code.Unavailable
      : rstCode === NGHTTP2_ENHANCE_YOUR_CALM
      ? Code.ResourceExhausted
      : rstCode === NGHTTP2_INADEQUATE_SECURITY
      ? Code.PermissionDenied
      : Code.Internal;
    return new RpcError(
      code,
      `Cannot read response: the stream was reset (RST_STREAM ${rstCode})`,
    );
  };

  // Its failures are rejections, never throws (after close(), a signal
  // already aborted): a caller of the HttpClient awaits a promise.
  const client = (req: UniversalClientRequest) => {
    try {
      return request(req);
    } catch (error) {
      return Promise.reject(error);
    }
  };
  return Object.assign(client, {
    close(): Promise<void> {
      closed = true;
      session = undefined;
      // The sessions a GOAWAY replaced too: their calls finish first.
      return Promise.all([...live].map(closeSession)).then(() => {});
    },
  });

  /**
   * Closes `s` once its open streams have ended; resolves when it has
   * closed, or was destroyed.
   */
  function closeSession(s: http2.ClientHttp2Session): Promise<void> {
    // A session its error destroyed (under Deno: a server that answered in
    // HTTP/1.1, a refused client certificate) never calls close()'s
    // callback: close() waited for ever, and a program awaiting it ended
    // with "Top-level await promise never resolved".
    if (s.destroyed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let settled = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = () => {
        settled = true;
        clearTimeout(timer);
        onDrained.delete(s);
        resolve();
      };
      s.once("close", done);
      if (!s.closed) s.close(done);
      // Bun 1.4.5 may never close a session that got a response (HEADERS
      // with END_STREAM) on a stream it had reset, once another stream ran
      // on it (grpc-go answers a call past its deadline so, racing the
      // client's cancel): every stream closed, GOAWAY sent, no 'close', and
      // its socket kept the process alive. Once the calls open now have
      // ended, it is given CLOSE_GRACE_MS, then destroyed. (Deno and Node
      // close it at once: the timer is cleared.)
      const drained = () => {
        if (settled || timer !== undefined) return;
        timer = setTimeout(() => {
          if (!s.destroyed) s.destroy();
          done();
        }, CLOSE_GRACE_MS);
      };
      if (openStreams.get(s)?.size) onDrained.set(s, drained);
      else drained();
    });
  }
}

/**
 * How long `close()` waits, once the calls open at `close()` have ended, for
 * the connection to close before it destroys it (Bun's `node:http2` may never
 * close it). Stated in `Http2Client.close`'s documentation.
 */
const CLOSE_GRACE_MS = 200;

/**
 * The largest header list a request is sent with, one that node:http2
 * sends under every runtime. Past it, it may not send the HEADERS frame:
 * under Deno and Node the stream fails with REFUSED_STREAM as if the server
 * had refused it (a call then sent again in vain and failed UNAVAILABLE),
 * under Bun the client closes the whole connection (COMPRESSION_ERROR),
 * every call on it failing; one field of 65,535 bytes did both, while
 * thousands of small fields (about 127 KB) still went under Deno and Node
 * (known-runtime-issues.md (aq)). A bound of sluice's: metadata that large
 * belongs in the message.
 */
const MAX_HEADER_LIST_BYTES = 65536;

/** The status fields, which belong in trailers unless the headers end the stream. */
const NOT_IN_HEADERS = [
  "grpc-status",
  "grpc-message",
  "grpc-status-details-bin",
];

/**
 * Why a connection failed, as " (reason)": the session's error, or the
 * cause node:http2 gives a stream it cancelled with it (a certificate not
 * trusted, a port that refused); empty when nothing says.
 */
function reasonOf(error: Error | undefined): string {
  const cause = error?.cause;
  const reason = cause instanceof Error
    ? cause.message
    : error?.message.includes("pending stream has been canceled")
    ? undefined
    : error?.message;
  return reason ? ` (${reason.slice(0, 200)})` : "";
}
