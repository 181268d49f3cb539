import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { checkArgument } from "../_internal/arguments.ts";
import { listenFailed, listenHost } from "./_server_url.ts";
import { baseUrl, checkTls } from "./_tls.ts";
import * as http2 from "node:http2";
import type { UniversalHandler } from "../rpc/universal.ts";
import { Code } from "../rpc/code.ts";
import { RpcError } from "../rpc/rpc_error.ts";
import {
  headerListBytes,
  headersFromNode,
  headersToH2,
  readableFromNode,
  writeToNode,
} from "./_node_streams.ts";
import { deferred } from "../_internal/deferred.ts";
import {
  checkMax,
  checkMs,
  checkPort,
  checkTimerMs,
} from "../_internal/limits.ts";

/**
 * Options for {@linkcode serveHttp2}. The limits bound what one peer can make
 * the server hold: streams, header bytes, memory per session, sessions, time
 * without a request and streams reset before their answer (HTTP/2 rapid
 * reset, CVE-2023-44487). Their defaults follow what nginx and Go servers
 * ship; {@linkcode serveHttp2} gives the figures measured with and without
 * them. Each count and size must be a non-negative integer and each
 * duration a non-negative number of milliseconds (`0` turns that timeout
 * off); otherwise `serveHttp2` throws a `RangeError` such as `Cannot serve
 * HTTP/2: maxConcurrentStreams must be a non-negative integer, got -1`.
 */
export interface ServeHttp2Options {
  /**
   * Port to listen on; `0` picks a free one.
   *
   * @default {0}
   */
  port?: number;
  /**
   * Address to listen on.
   *
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /** Closes the server when aborted. */
  signal?: AbortSignal;
  /**
   * Bytes of request body buffered per call before the peer is paused.
   *
   * @default {65536}
   */
  readBufferBytes?: number;
  /**
   * Streams one session may have open at once, announced to the client as
   * SETTINGS_MAX_CONCURRENT_STREAMS. A stream over it, or a new stream while
   * this many handlers of the session still run (their streams reset), is
   * refused with RST_STREAM REFUSED_STREAM, which a client may retry (Bun
   * does not send it for a stream whose request has ended: the client
   * waits for its deadline; known-runtime-issues.md (au)). nginx ships 128
   * (`http2_max_concurrent_streams`), Go's HTTP/2 server 250.
   *
   * @default {128}
   */
  maxConcurrentStreams?: number;
  /**
   * Streams open at once over all sessions; a stream over it is refused with
   * REFUSED_STREAM (not sent under Bun for a stream whose request has
   * ended: known-runtime-issues.md (au)). Bounds the handlers a server runs
   * however many sessions its clients open.
   *
   * @default {4096}
   */
  maxOpenStreams?: number;
  /**
   * Sessions (connections) open at once; a connection over it is closed as
   * soon as it is accepted.
   *
   * @default {1000}
   */
  maxSessions?: number;
  /**
   * Memory one session may use for its HTTP/2 state (header tables, queued
   * frames), in bytes, rounded up to whole MiB for `node:http2`'s
   * `maxSessionMemory`. Over it, new streams are refused with
   * ENHANCE_YOUR_CALM.
   *
   * @default {10485760}
   */
  maxSessionMemoryBytes?: number;
  /**
   * Bytes of one request's header list, counted as HTTP/2 does (name, value
   * and 32 per field, after HPACK decoding), announced as
   * SETTINGS_MAX_HEADER_LIST_SIZE. A request over it is answered 431 without
   * running the handler (or reset by `node:http2` itself). This bound alone
   * decides: the number of fields is not limited otherwise (`node:http2`'s
   * own default resets a request of more than 128). nginx reads at most 4 ×
   * 8 KiB of request headers by default.
   *
   * @default {32768}
   */
  maxHeaderListBytes?: number;
  /**
   * Milliseconds a new session has to send its first complete request
   * headers; a session that has not is closed. nginx and Node's HTTP server
   * wait 60 s (`client_header_timeout`, `headersTimeout`); an HTTP/2 client
   * sends its preface and first request in one flight. With `tls`, a
   * connection also has this long to complete its TLS handshake (Node's
   * `handshakeTimeout`, 120 s by default), else it is closed. `0` turns it
   * off.
   *
   * @default {30000}
   */
  headersTimeoutMs?: number;
  /**
   * Milliseconds a session may stay open with no open stream before it is
   * closed with GOAWAY NO_ERROR (gRPC and fetch clients reconnect on their
   * next call). nginx closes idle HTTP/2 connections after 75 s
   * (`keepalive_timeout`). A session still open `headersTimeoutMs` (at
   * least 1 s) after that GOAWAY is destroyed: under Bun and Node a
   * graceful close waits for a header block the client began and never
   * ended, which held the session, and its place in `maxSessions`, for
   * good. `0` turns it off.
   *
   * @default {120000}
   */
  idleTimeoutMs?: number;
  /**
   * Milliseconds a stream may hold a write of its response that its client
   * does not take (HTTP/2 flow control: a client that opens no window, or
   * reads next to nothing) before it is reset with CANCEL and its handler's
   * signal aborted, as nginx's `send_timeout` (60 s) closes a connection
   * whose client receives nothing for that long. Without it such a client
   * held its handlers, its streams and their slots for good (one client
   * with a zero window held all `maxOpenStreams` under Deno, and each of
   * its sessions stayed open however idle). The clock runs only while part
   * of the response (or its end) waits to be sent, and starts again each
   * time a write has gone whole: `node:http2` tells no less (under Deno and
   * Bun a write counts as sent only once all of it is, and writes queued
   * behind it go as one). A body goes in writes of at most 64 KiB, so a
   * client must take about 64 KiB of it per `sendTimeoutMs` (1.1 KiB/s at
   * the default); an RPC message larger than that is one write, taken
   * whole within it. `0` turns it off.
   *
   * @default {60000}
   */
  sendTimeoutMs?: number;
  /**
   * Streams a session may reset (or close) before their response ended,
   * and before their handler started or within 10 ms of opening them, or
   * open while its handlers still hold every `maxConcurrentStreams` place
   * (refused), within `streamResetWindowMs`; past it the session is closed
   * with GOAWAY ENHANCE_YOUR_CALM (rapid reset, CVE-2023-44487), its other
   * calls cut (UNAVAILABLE: a client that shares one connection between
   * calls it cancels within 10 ms by the hundred and others loses those
   * too, then reconnects). A client that cancels all its
   * `maxConcurrentStreams` calls at once stays well under it, and a call
   * cancelled after it ran longer (its deadline passed, a user's abort)
   * does not count: such a stream held its place among the
   * `maxConcurrentStreams` as any call does (counted, 600 grpc-js calls
   * that missed a 30 ms deadline had their connection closed, the next
   * calls failing RESOURCE_EXHAUSTED). The runtimes' own `node:http2`
   * closes a session after about 1,000 streams its client cancelled,
   * whatever this says (Bun with GOAWAY ENHANCE_YOUR_CALM, Deno with
   * INTERNAL_ERROR; known-runtime-issues.md (ap)).
   *
   * @default {400}
   */
  maxStreamResets?: number;
  /**
   * The window, in milliseconds, over which `maxStreamResets` counts (a
   * fixed window, started by the first reset after the previous one ended).
   *
   * @default {10000}
   */
  streamResetWindowMs?: number;
  /**
   * Streams a session may open; the one that reaches it is served (under
   * Deno, with those that came in the same read), and the session is then
   * closed with GOAWAY (its open streams end normally; a gRPC or fetch
   * client opens a new connection for its next call), as nginx's
   * `keepalive_requests` does. Calls a client had already sent past it are
   * refused unprocessed: `createHttp2Client` sends them again, grpc-js and
   * grpc-go only once, connect-node not at all, and Chromium fails a
   * request still waiting for a stream on the session ("Failed to fetch",
   * net::ERR_FAILED) the moment GOAWAY comes. Under Deno 2.9.6 this was 50
   * by default, against the abort of the whole process when clients closed
   * connections that had carried a few hundred streams; since `serveHttp2`
   * defers its answer to a client's GOAWAY, those clients left it alive
   * with no bound (0 aborts in 271 runs of every such shape, with 100 and
   * 256 concurrent streams too), while the bound of 50 lost bursts of
   * concurrent calls: 244 of 500 from grpc-js, 320 of 500 from grpc-go, 200
   * of 300 from connect-node, 32 of 100 from a Chromium page
   * (docs/known-runtime-issues.md (e)). `0` sets no bound.
   *
   * @default {0}
   */
  maxStreamsPerSession?: number;
  /**
   * The longest `shutdown()` (or the `signal`) waits for open streams to
   * end after sending GOAWAY, in milliseconds; past it the calls still open
   * end with `UNAVAILABLE` (the handlers' signals abort; gRPC clients get
   * the status in trailers), and the sessions still open 250 ms later are
   * destroyed. A server with a streaming call open would otherwise never
   * stop. `0` waits for ever.
   *
   * @default {10000}
   */
  shutdownTimeoutMs?: number;
  /**
   * Serve HTTP/2 over TLS with this certificate chain and private key (PEM
   * strings), as `serve` takes them: `node:http2`'s `createSecureServer`,
   * which offers `h2` alone by ALPN, and the server's `url` starts with
   * `https:`, and handlers see `https:` request URLs. It is what native
   * gRPC clients speak in production: grpc-js with
   * `credentials.createSsl(ca)`, connect-node's `createGrpcTransport` with
   * an `https:` `baseUrl` (`nodeOptions: { ca }` for a private CA), and
   * `createHttp2Client` with an `https:` URL (`connectOptions: { ca }`);
   * gRPC-Web and Connect are served over it as well. As over h2c, HTTP/1.1
   * is not served: a client that offers only `http/1.1` by ALPN fails its
   * handshake (`no_application_protocol`), one that offers no protocol is
   * closed once connected, and a client speaking cleartext to the TLS port
   * is closed, none of them counting against `maxSessions` once gone (serve
   * HTTP/1.1 over TLS with `serve` and its `tls`). Every limit above holds
   * as over h2c, and so does what {@linkcode serveHttp2} says of Deno: under
   * Bun and Node it may face clients directly, under Deno put a proxy that
   * terminates HTTP/2 in front. A `tls` without both PEM strings, or whose
   * key is not the certificate's, is a TypeError naming it.
   *
   * @example Serve native gRPC over TLS
   * ```ts ignore
   * import { createUniversalHandler } from "@sluice/streams/rpc";
   * import { serveHttp2 } from "@sluice/streams/grpc-node";
   *
   * const server = await serveHttp2(createUniversalHandler(implementation), {
   *   port: 9443,
   *   tls: {
   *     cert: await Deno.readTextFile("./cert.pem"),
   *     key: await Deno.readTextFile("./key.pem"),
   *   },
   * });
   * console.log(`gRPC on ${server.url}`); // https://127.0.0.1:9443/
   * ```
   */
  tls?: { cert: string; key: string };
}

/** A running server returned by {@linkcode serveHttp2}. */
export interface Http2Server {
  /**
   * The base URL, such as `http://127.0.0.1:45123/` (`https:` with `tls`).
   */
  readonly url: URL;
  /** The port actually bound. */
  readonly port: number;
  /**
   * Stops accepting connections, closes open sessions (GOAWAY; at most
   * `shutdownTimeoutMs` for their streams to end) and resolves when closed.
   */
  shutdown(): Promise<void>;
  /** Resolves when the server has stopped. */
  readonly finished: Promise<void>;
}

/**
 * Serves a universal RPC handler over cleartext HTTP/2 (h2c, prior
 * knowledge), or over TLS with `tls` (h2 by ALPN), with `node:http2`, which
 * can send the HTTP trailers native gRPC needs. The same server also answers
 * gRPC-Web and Connect requests over HTTP/2. Works under Deno, Bun and Node.
 *
 * The limits in {@linkcode ServeHttp2Options} bound what one peer can make
 * it hold, and are on by default. A stream already reset when its turn
 * comes never starts the handler, and a stream reset later aborts the
 * handler's `signal`. Measured under Deno 2.9.6 with the server in its own
 * process (baseline RSS about 53 MiB), before the limits → with them:
 * 20,000 streams opened at once on one connection ran 20,000 handlers, took
 * RSS to 351 MiB and left the server unanswering for 14.7 s → the session
 * was closed with GOAWAY ENHANCE_YOUR_CALM in 0.7 s, no handler ran, RSS
 * 60 MiB; 10 connections × 1,000 streams reset at once ran 10,000 handlers
 * for reset streams and no session was closed → none ran and every session
 * was closed (RSS about 222 MiB in both cases: node:http2's own state for
 * streams that arrive in one read); 3,000 requests of 60 KB of headers
 * (15 bytes each on the wire, an HPACK bomb) ran 3,000 handlers, RSS
 * 328 MiB, the server unanswering for 12 s → none ran, the session was
 * closed, RSS 96-111 MiB. Under Deno the process can still abort after such
 * floods, with or without the limits (an nghttp2 assertion in Deno's
 * node:http2). Clients that close their connection aborted it too, in most
 * runs of a few hundred, whether each made one call on a connection of its
 * own (a CLI, a cron job, a health probe) or hundreds: Deno's node:http2
 * closed the session from inside nghttp2's handling of the client's
 * GOAWAY. Under Deno `serveHttp2` closes it once that is done, and no run
 * aborted since (0 of 12 runs of 800 one-call clients over h2c and TLS,
 * against 6 of 12 before). Under Bun and Node it may face clients
 * directly; under Deno, put a proxy that terminates HTTP/2 (Envoy, nginx
 * `grpc_pass`) in front of a server open to clients you do not control, and
 * a supervisor that restarts it (`docs/known-runtime-issues.md` (e)).
 *
 * @param handler The handler, from `createUniversalHandler`.
 * @param options Where to listen, how to stop and the limits.
 * @returns The running server.
 *
 * @example Serve StreamingCalcService over native gRPC
 * ```ts ignore
 * import { createUniversalHandler } from "@sluice/streams/rpc";
 * import { serveHttp2 } from "@sluice/streams/grpc-node";
 *
 * const server = await serveHttp2(createUniversalHandler(implementation), {
 *   port: 9090,
 * });
 * console.log(`gRPC on ${server.url}`);
 * ```
 */
export async function serveHttp2(
  handler: UniversalHandler,
  options: ServeHttp2Options = {},
): Promise<Http2Server> {
  checkArgument(
    typeof handler === "function",
    "serve HTTP/2",
    "the handler",
    "a universal handler (createUniversalHandler(services))",
    handler,
    typeof (handler as { handlers?: unknown } | null)?.handlers === "object"
      ? " (a service implementation: wrap it in createUniversalHandler)"
      : "",
  );
  const {
    port = 0,
    hostname = "127.0.0.1",
    signal,
    readBufferBytes = 65536,
    maxConcurrentStreams = 128,
    maxOpenStreams = 4096,
    maxSessions = 1000,
    maxSessionMemoryBytes = 10 * 1024 * 1024,
    maxHeaderListBytes = 32768,
    headersTimeoutMs = 30000,
    idleTimeoutMs = 120000,
    sendTimeoutMs = 60000,
    maxStreamResets = 400,
    streamResetWindowMs = 10000,
    shutdownTimeoutMs = 10000,
    maxStreamsPerSession = 0,
  } = options;
  const what = "serve HTTP/2";
  checkPort(what, port);
  checkMax(what, "readBufferBytes", readBufferBytes);
  checkMax(what, "maxConcurrentStreams", maxConcurrentStreams);
  checkMax(what, "maxOpenStreams", maxOpenStreams);
  checkMax(what, "maxSessions", maxSessions);
  checkMax(what, "maxSessionMemoryBytes", maxSessionMemoryBytes);
  checkMax(what, "maxHeaderListBytes", maxHeaderListBytes);
  checkMax(what, "maxStreamResets", maxStreamResets);
  checkTimerMs(what, "headersTimeoutMs", headersTimeoutMs);
  checkTimerMs(what, "idleTimeoutMs", idleTimeoutMs);
  checkTimerMs(what, "sendTimeoutMs", sendTimeoutMs);
  checkTimerMs(what, "shutdownTimeoutMs", shutdownTimeoutMs);
  checkMax(what, "maxStreamsPerSession", maxStreamsPerSession);
  checkMs(what, "streamResetWindowMs", streamResetWindowMs);
  const tls = checkTls(what, options.tls);
  if (maxConcurrentStreams > 0xffffffff || maxHeaderListBytes > 0xffffffff) {
    throw new RangeError(
      `Cannot ${what}: maxConcurrentStreams and maxHeaderListBytes must fit in 32 bits`,
    );
  }
  const serverOptions = {
    maxSessionMemory: Math.max(1, Math.ceil(maxSessionMemoryBytes / MiB)),
    maxHeaderListSize: maxHeaderListBytes,
    // node:http2 resets a stream of more than 128 fields (ENHANCE_YOUR_CALM)
    // whatever their bytes: every field counts at least 32 bytes, so the
    // byte bound alone decides (the pseudo-headers count as fields).
    maxHeaderListPairs: Math.ceil(maxHeaderListBytes / 32) + 8,
    settings: {
      maxConcurrentStreams,
      maxHeaderListSize: maxHeaderListBytes,
    },
  };
  const server = tls
    ? http2.createSecureServer({
      ...serverOptions,
      cert: tls.cert,
      key: tls.key,
      // h2 alone, as over h2c: HTTP/1.1 would come as node:http2's
      // compatibility 'request' events, past every limit here.
      ALPNProtocols: ["h2"],
      allowHTTP1: false,
      // A connection that never completes its handshake holds a slot of
      // maxSessions as one that never sends a request would.
      handshakeTimeout: headersTimeoutMs,
    } as http2.SecureServerOptions)
    : http2.createServer(serverOptions as http2.ServerOptions);
  if (tls) {
    // A client that offered no protocol by ALPN (it would speak HTTP/1.1)
    // is closed now: Node closes it after unknownProtocolTimeout (10 s),
    // Deno and Bun left it open (more than 20 s, measured), holding a slot
    // of maxSessions. A failed handshake ('tlsClientError': an untrusted
    // certificate, cleartext on the TLS port, no common protocol) has its
    // connection closed by the runtime itself (measured under Deno and Bun).
    server.on("unknownProtocol", (socket: TLSSocket) => socket.destroy());
  }
  // Connections over maxSessions are closed by node:net at accept, before
  // node:http2 makes a session of them.
  server.maxConnections = maxSessions;
  const sessions = new Map<http2.ServerHttp2Session, SessionState>();
  // The connections themselves: a session closed before any request keeps
  // its socket open under Deno's and Bun's node:http2 (shutdown() waited
  // for it for ever), so what is left at the cut is destroyed here.
  const sockets = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  // Aborted when shutdown() has waited shutdownTimeoutMs: ends the calls.
  const cutCalls = new CutCalls();
  const sending = sendTimeoutMs > 0 ? new SendWatch(sendTimeoutMs) : undefined;
  let openStreams = 0;
  let stopping = false;
  server.on("session", (session) => {
    const state = watchSession(session, {
      headersTimeoutMs,
      idleTimeoutMs,
      maxStreamResets,
      streamResetWindowMs,
    });
    sessions.set(session, state);
    session.on("error", () => {
      // A broken session only concerns its own streams; node:http2 closes it.
    });
    if (typeof Deno !== "undefined") deferCloseOnGoaway(session);
    const forget = () => {
      sessions.delete(session);
      state.stop();
    };
    session.once("close", forget);
    // Under Deno a session whose connection was destroyed with streams
    // stalled on flow control never emits 'close' (nor do those streams),
    // and its entries stayed for good (about 200 KiB a connection). Its
    // socket's 'close' comes: the streams and the session go with it.
    session.socket?.once("close", () => {
      state.destroyStreams();
      if (!session.destroyed) session.destroy();
      forget();
    });
    let streamsSeen = 0;
    session.on("stream", (stream, headers) => {
      if (
        maxStreamsPerSession > 0 && ++streamsSeen === maxStreamsPerSession
      ) {
        // This stream is served; no new one is taken (GOAWAY).
        session.close();
      }
      const serverStream = stream as http2.ServerHttp2Stream;
      serverStream.on("error", () => {
        // Reported through the stream's close; the handler sees its signal.
      });
      // A peer with more streams open than it was told it may have ignores
      // SETTINGS_MAX_CONCURRENT_STREAMS (or floods HEADERS and RST_STREAM in
      // one read): each such stream is refused and counts as a reset.
      const overLimit = state.open >= maxConcurrentStreams;
      // Its handlers still run after their streams went: a peer that resets
      // calls once they ran (uncounted) and opens more meanwhile, refused
      // here, is counted for these (else it refused thousands a second).
      const overRunning = state.running >= maxConcurrentStreams;
      const refuse = overLimit || overRunning ||
        openStreams >= maxOpenStreams;
      // A stream refused here is the server's doing, not a peer reset.
      state.opened(serverStream, !refuse);
      if (refuse) {
        if (overLimit || overRunning) state.strike();
        serverStream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      openStreams++;
      state.running++;
      sending?.watch(serverStream);
      const done = () => {
        openStreams--;
        state.running--;
        state.touch();
      };
      // The body is bridged now: under Deno a stream whose HEADERS ended it
      // emits its end at once, and a listener added later never sees it.
      const body = readableFromNode(serverStream, readBufferBytes);
      const drop = () => {
        body.cancel().catch(() => {});
        done();
      };
      // Dispatch once the frames read with these headers have been handled:
      // a stream reset in the same read (rapid reset) is closed by then and
      // never starts a handler.
      setImmediate(() => {
        if (isGone(serverStream)) return drop();
        DISPATCHED.add(serverStream);
        if (headerListBytes(headers) > maxHeaderListBytes) {
          // node:http2 enforces SETTINGS_MAX_HEADER_LIST_SIZE under Node
          // and Bun, not under Deno. A peer over the announced size counts
          // as one that resets streams.
          state.strike();
          serverStream.respond({ ":status": 431 }, { endStream: true });
          return drop();
        }
        const scheme = tls ? "https" : "http";
        const conflict = authorityConflict(scheme, headers);
        if (conflict !== undefined) {
          // Malformed (RFC 9113, 8.3.1): the handler would see one
          // authority in its URL and another in `Host`. Answered 400, as
          // 8.1.1 allows for a malformed request, and the rest of its body,
          // if any, read and dropped as after the 431 above (a reset after
          // an answer made some clients lose it: known-runtime-issues (ae)).
          serverStream.respond({
            ":status": 400,
            "content-type": "text/plain; charset=utf-8",
          });
          serverStream.end(conflict);
          return drop();
        }
        handleStream(
          handler,
          serverStream,
          headers,
          body,
          cutCalls,
          scheme,
        )
          .catch((error) => {
            console.error("sluice: HTTP/2 stream failed:", error);
            if (!serverStream.destroyed) {
              serverStream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
            }
          })
          .finally(done);
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    const failed = (error: Error) =>
      reject(listenFailed(error, hostname, port));
    server.once("error", failed);
    server.listen(port, listenHost(hostname), () => {
      server.off("error", failed);
      resolve();
    });
  });
  const address = server.address();
  const bound = typeof address === "object" && address ? address.port : port;
  const finished = deferred<void>();
  server.once("close", () => finished.resolve());
  const shutdown = () => {
    if (!stopping) {
      stopping = true;
      server.close();
      sending?.stop();
      const busy = new Set<string>();
      for (const [session, state] of sessions) {
        // A session with no stream open has nothing to finish: ended now
        // (GOAWAY NO_ERROR). Closed gracefully, one that never sent a
        // request kept its socket open under Deno and Bun, and shutdown()
        // never resolved.
        if (session.socket === undefined) {
          // Under Deno a session whose client just destroyed its connection
          // has no socket before its 'close': peerOf threw (a TypeError),
          // and shutdown() stopped there, the other sessions left open.
          state.destroyStreams();
          session.destroy();
        } else if (state.open === 0 && state.running === 0) {
          session.destroy(undefined, http2.constants.NGHTTP2_NO_ERROR);
        } else {
          session.close();
          busy.add(peerOf(session.socket));
        }
      }
      // The connections with no stream open (none sent a request, or its
      // session was just ended, whose socket those runtimes keep) are
      // closed a moment later, whatever shutdownTimeoutMs says.
      const idle = setTimeout(() => {
        for (const socket of sockets) {
          if (!busy.has(peerOf(socket))) socket.destroy();
        }
      }, CUT_GRACE_MS);
      finished.promise.then(() => clearTimeout(idle));
      if (shutdownTimeoutMs > 0 && (sessions.size > 0 || sockets.size > 0)) {
        let cut: ReturnType<typeof setTimeout> | undefined;
        const timer = setTimeout(() => {
          // The calls still open end with UNAVAILABLE (gRPC's status for a
          // server shutting down), in their trailers: a session destroyed
          // with them open reset them with no status, which grpc-js and
          // connect-node read as INTERNAL. What is still open a moment
          // later is cut.
          cutCalls.abort(
            new RpcError(
              Code.Unavailable,
              `Cannot finish call: the server is shutting down (shutdownTimeoutMs ${shutdownTimeoutMs} passed)`,
            ),
          );
          cut = setTimeout(() => {
            // The sockets first: under Deno a session destroyed with a
            // stream stalled on flow control emits its socket's 'close'
            // but keeps the connection open, so the client was never told.
            for (const socket of [...sockets]) socket.destroy();
            for (const session of [...sessions.keys()]) session.destroy();
          }, CUT_GRACE_MS);
        }, shutdownTimeoutMs);
        finished.promise.then(() => {
          clearTimeout(timer);
          clearTimeout(cut);
        });
      }
    }
    return finished.promise;
  };
  signal?.addEventListener("abort", () => void shutdown(), { once: true });
  // Aborted before or while it started: the event has passed.
  if (signal?.aborted) void shutdown();
  return {
    url: baseUrl(hostname, bound, tls),
    port: bound,
    shutdown,
    finished: finished.promise,
  };
}

/**
 * A connection's peer address and port: how a session's socket (a proxy of
 * it under Node's node:http2) is matched with the server's own.
 */
function peerOf(socket: { remoteAddress?: string; remotePort?: number }) {
  return `${socket.remoteAddress}:${socket.remotePort}`;
}

/**
 * Under Deno, closes a session whose client sent GOAWAY NO_ERROR once the
 * frame has been handled, not while it is. Deno 2.9.6's node:http2 answers
 * such a GOAWAY with `session.close()` from inside nghttp2's receive
 * callback (its own GOAWAY sent there and then), and that aborted the
 * process (`find_stream_on_goaway_func`, `free(): invalid pointer`) or
 * crashed it (SIGSEGV) in most runs of clients making one call per
 * connection, or a few hundred, then closing it. The 'goaway' listener runs
 * just before that call: `close()` does nothing until the next turn of the
 * event loop, which closes the session (its open streams end normally).
 * A session the server closed first never met it: `close()` then already
 * did nothing. Measured in docs/known-runtime-issues.md (e).
 */
function deferCloseOnGoaway(session: http2.ServerHttp2Session): void {
  session.on("goaway", (code: number) => {
    if (
      code !== http2.constants.NGHTTP2_NO_ERROR || session.closed ||
      session.destroyed
    ) return;
    const shadowed = session as { close: () => void };
    shadowed.close = () => {};
    setImmediate(() => {
      Reflect.deleteProperty(session, "close");
      if (!session.destroyed) session.close();
    });
  });
}

const MiB = 1024 * 1024;
/** How long calls ended by a shutdown's timeout have to send their status. */
const CUT_GRACE_MS = 250;

interface SessionLimits {
  headersTimeoutMs: number;
  idleTimeoutMs: number;
  maxStreamResets: number;
  streamResetWindowMs: number;
}

interface SessionState {
  /** Handlers of this session still running (their streams may be gone). */
  running: number;
  /** Streams of this session not yet closed. */
  readonly open: number;
  /** Counts a new stream; if `countReset`, its early close is a reset. */
  opened(stream: http2.ServerHttp2Stream, countReset: boolean): void;
  /** Counts one abuse (a reset stream, an oversized header list). */
  strike(): void;
  /** Re-arms the idle timer if no stream is open. */
  touch(): void;
  stop(): void;
  /** Destroys the streams not yet closed (their connection is gone). */
  destroyStreams(): void;
}

/**
 * A stream closed unanswered before its handler started, or sooner than
 * this after it opened, is a reset counted against maxStreamResets; one
 * whose handler ran longer held its slot as a call does (a deadline, a
 * cancel), which a flood cannot multiply. (Timed alone, a flood that kept
 * the event loop busy past it would count none of its resets.)
 */
const RAPID_RESET_MS = 10;
/** The streams whose handler was started (not reset before dispatch). */
const DISPATCHED = new WeakSet<http2.Http2Stream>();

// The per-session limits that node:http2 has no option for: the first
// request's deadline, the idle timeout and the count of streams the peer
// reset before their response ended.
function watchSession(
  session: http2.ServerHttp2Session,
  limits: SessionLimits,
): SessionState {
  let open = 0;
  const streams = new Set<http2.ServerHttp2Stream>();
  let sawRequest = false;
  let resets = 0;
  let windowStart = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = (ms: number, code: number, graceful = false) => {
    clearTimeout(timer);
    timer = ms > 0
      ? setTimeout(() => {
        if (session.destroyed || session.closed) return;
        // An idle session is closed with GOAWAY, its streams let finish: a
        // request already on its way is then refused unprocessed (above
        // GOAWAY's last stream), which clients send again. Destroyed, the
        // socket was cut under it (EPIPE, a reset INTERNAL_ERROR) and the
        // call failed UNAVAILABLE, though never run.
        if (!graceful) return session.destroy(undefined, code);
        session.close();
        // Under Bun and Node 20 the close waits for a header block the
        // client began and never ended (HEADERS without END_HEADERS), for
        // ever: destroyed once the headers timeout has passed again.
        timer = setTimeout(() => {
          if (!session.destroyed) session.destroy(undefined, code);
        }, Math.max(limits.headersTimeoutMs, 1000));
      }, ms)
      : undefined;
  };
  // Until the first request, the headers timeout runs; a session that
  // never completes one is closed with no error code worth more than
  // NO_ERROR to a well-behaved peer.
  arm(limits.headersTimeoutMs, http2.constants.NGHTTP2_NO_ERROR);
  const state: SessionState = {
    running: 0,
    get open() {
      return open;
    },
    opened(stream, counted) {
      open++;
      streams.add(stream);
      sawRequest = true;
      clearTimeout(timer);
      timer = undefined;
      const openedAt = performance.now();
      stream.once("close", () => {
        streams.delete(stream);
        open--;
        if (
          counted && !isAnswered(stream) &&
          (!DISPATCHED.has(stream) ||
            performance.now() - openedAt < RAPID_RESET_MS)
        ) state.strike();
        state.touch();
      });
    },
    touch() {
      if (open === 0 && state.running === 0 && sawRequest) {
        arm(limits.idleTimeoutMs, http2.constants.NGHTTP2_NO_ERROR, true);
      }
    },
    stop() {
      clearTimeout(timer);
      timer = undefined;
    },
    destroyStreams() {
      for (const stream of streams) {
        if (!stream.destroyed) stream.destroy();
      }
      streams.clear();
    },
    strike() {
      const now = performance.now();
      if (now - windowStart > limits.streamResetWindowMs) {
        windowStart = now;
        resets = 0;
      }
      if (++resets > limits.maxStreamResets && !session.destroyed) {
        // The code as the first argument, which node:http2 takes (its types
        // do not say so): destroy(undefined, code) sent GOAWAY NO_ERROR (the
        // error parameter defaults to NO_ERROR, a number, which then
        // replaces the code).
        (session.destroy as unknown as (code: number) => void).call(
          session,
          http2.constants.NGHTTP2_ENHANCE_YOUR_CALM,
        );
      }
    },
  };
  return state;
}

// True once the server sent the whole response (the stream ended cleanly
// on our side); a stream closed before that was reset or abandoned.
function isAnswered(stream: http2.ServerHttp2Stream): boolean {
  return stream.writableFinished &&
    (stream.rstCode === undefined ||
      stream.rstCode === http2.constants.NGHTTP2_NO_ERROR);
}

async function handleStream(
  handler: UniversalHandler,
  stream: http2.ServerHttp2Stream,
  incoming: http2.IncomingHttpHeaders,
  body: ReadableStream<Uint8Array>,
  cut: CutCalls,
  scheme: "http" | "https",
): Promise<void> {
  const abort = new AbortController();
  let ended = false;
  cut.add(abort);
  const onGone = () => {
    cut.delete(abort);
    if (!ended) {
      abort.abort(
        STALLED.get(stream) ??
          new Error("Cannot serve call: the client reset the stream"),
      );
    }
  };
  stream.once("close", onGone);
  // Under Deno a stream whose session the client destroyed, or whose
  // socket was cut, emits 'aborted' and never 'close': its handler ran on
  // (a server-streaming one wrote gigabytes into the dead stream).
  stream.once("aborted", onGone);
  const response = await handler({
    method: String(incoming[":method"]),
    // `Host` names the authority when `:authority` is missing (RFC 9113,
    // 8.3.1), as some HTTP/1.1-to-HTTP/2 intermediaries send it.
    url: requestUrl(
      scheme,
      incoming[":authority"] ?? incoming.host,
      incoming[":path"],
    ),
    headers: headersFromNode(incoming),
    body,
    signal: abort.signal,
  });
  if (isGone(stream)) {
    await response.body?.cancel();
    return;
  }
  const head = {
    ":status": response.status,
    ...headersToH2(response.headers),
  };
  if (response.body === undefined) {
    // Trailers-Only (gRPC) or a body-less reply. A deadline-exceeded one
    // waits for the client's own reset first, as trailers do below.
    if (
      response.headers.get("grpc-status") === "4" &&
      await closesWithin(stream)
    ) return;
    if (isGone(stream)) return;
    ended = true;
    stream.respond(head, { endStream: true });
    return;
  }
  const wantTrailers = response.trailers !== undefined;
  stream.respond(head, { waitForTrailers: wantTrailers });
  try {
    await writeToNode(response.body, stream);
  } catch {
    if (isGone(stream)) {
      // The client went away: the call is told (if no event has told it).
      onGone();
    } else {
      // The handler's own body failed: the client is told by a reset,
      // INTERNAL_ERROR (it waited for the rest for ever; close(code) sent
      // none under Deno and Bun), and the slot is freed. The handler
      // knows; its signal is not aborted.
      ended = true;
      stream.destroy(new Error("the handler's body failed"));
    }
    return;
  }
  const trailers = wantTrailers
    ? headersToH2(await response.trailers!)
    : undefined;
  if (isGone(stream)) return;
  if (trailers?.["grpc-status"] === "4" && await closesWithin(stream)) {
    // Deadline exceeded, and the client reset the stream itself, as clients
    // enforcing their own deadline do at the same moment. Waiting for that
    // reset first avoids two races: trailers written into a reset stream
    // crashed Deno's node:http2 now and then, and a server RST_STREAM that
    // won made grpc-js report CANCELLED instead of DEADLINE_EXCEEDED.
    return;
  }
  if (trailers !== undefined) {
    stream.once("wantTrailers", () => {
      ended = true;
      if (isGone(stream)) return;
      try {
        stream.sendTrailers(trailers);
      } catch (error) {
        // Trailers node:http2 refuses: the stream is reset rather than
        // left open with its client waiting for them.
        console.error("sluice: HTTP/2 trailers refused:", error);
        stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      }
    });
  } else {
    ended = true;
  }
  stream.end();
}

/** Why a stream was reset by its {@linkcode SendWatch}, for its handler. */
const STALLED = new WeakMap<http2.Http2Stream, Error>();

/**
 * Resets the streams whose response waits to be sent (bytes their client
 * takes none of, or the response's end) with no progress for `timeoutMs`.
 * One timer for the server, from its first stream to its shutdown (not
 * one per call, nor started and stopped as calls come and go): each tick
 * looks at the bytes each stream still holds (node:http2 holds a write
 * until its frame is sent, which a closed window defers).
 */
class SendWatch {
  readonly #timeoutMs: number;
  readonly #streams = new Map<
    http2.ServerHttp2Stream,
    { held: number; since: number }
  >();
  #timer: ReturnType<typeof setInterval> | undefined;
  #stopped = false;

  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
  }

  watch(stream: http2.ServerHttp2Stream): void {
    const watched = { held: 0, since: performance.now() };
    this.#streams.set(stream, watched);
    // A writer held back waits for 'drain': the buffer went, whatever a
    // tick saw of it (refilled between two ticks, it looked unmoved).
    stream.on("drain", () => watched.since = performance.now());
    const forget = () => this.#streams.delete(stream);
    stream.once("close", forget);
    stream.once("aborted", forget);
    if (this.#stopped) return;
    this.#timer ??= setInterval(
      () => this.#tick(),
      Math.min(1000, Math.max(10, this.#timeoutMs / 4)),
    );
  }

  /** Stops the timer for good (the server is shutting down). */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    const now = performance.now();
    for (const [stream, watched] of this.#streams) {
      // What waits: bytes not yet sent, or the end (END_STREAM) not sent.
      const held = stream.writableLength +
        (stream.writableEnded && !stream.writableFinished ? 1 : 0);
      if (held === 0 || held < watched.held) {
        // Nothing waits, or some of it went.
        watched.since = now;
      } else if (now - watched.since >= this.#timeoutMs) {
        this.#streams.delete(stream);
        STALLED.set(
          stream,
          new Error(
            `Cannot serve call: no write of the response (up to 64 KiB) was taken within ${this.#timeoutMs} ms: the client reads too slowly or not at all (sendTimeoutMs)`,
          ),
        );
        // CANCEL: the stream is no longer needed (RFC 9113, 7). Destroyed
        // too: closed alone, it stayed open under Deno and Bun.
        stream.close(http2.constants.NGHTTP2_CANCEL);
        if (!stream.destroyed) stream.destroy();
        continue;
      }
      watched.held = held;
    }
  }
}

/**
 * The request's URL from its pseudo-headers, `https:` over TLS and `http:`
 * over h2c (the connection's own, whatever `:scheme` the client sent); a
 * malformed `:authority` (`[::1`, a port past 65535), which routing does
 * not need, gives way to `localhost` rather than fail the stream.
 */
function requestUrl(
  scheme: "http" | "https",
  authority: string | undefined,
  path: string | undefined,
): string {
  const url = `${scheme}://${authority ?? "localhost"}${path ?? "/"}`;
  // A path of plain characters under an authority already found to parse
  // needs no parse of its own (1.2% of serveHttp2's CPU per unary call
  // under Deno): a session's requests name the same authority.
  if (
    authority !== undefined && path !== undefined && PLAIN_PATH.test(path) &&
    authorityParses(scheme, authority)
  ) return url;
  return URL.canParse(url) ? url : `${scheme}://localhost${path ?? "/"}`;
}

/**
 * Why a request is malformed whose `Host` names another authority than its
 * `:authority` (RFC 9113, 8.3.1; compared as URL hosts, so case and a
 * default port do not count), or `undefined` if it names one or none.
 */
function authorityConflict(
  scheme: "http" | "https",
  incoming: http2.IncomingHttpHeaders,
): string | undefined {
  const authority = incoming[":authority"];
  const host = incoming.host;
  if (authority === undefined || host === undefined || host === authority) {
    return undefined;
  }
  const hostOf = (value: string) => {
    try {
      return new URL(`${scheme}://${value}/`).host;
    } catch {
      return undefined;
    }
  };
  const named = hostOf(authority);
  if (named !== undefined && named === hostOf(host)) return undefined;
  return `Bad request: the Host header (${
    JSON.stringify(host)
  }) names another authority than :authority (${
    JSON.stringify(authority)
  }) (RFC 9113, 8.3.1)`;
}

/** A path of unreserved characters only. */
const PLAIN_PATH = /^\/[A-Za-z0-9._~\/-]*$/;
/** The last authority asked about, and whether it parses. */
let lastAuthority = "";
let lastParses = false;

/** Whether `scheme://authority/` is a URL (the last answer kept). */
function authorityParses(scheme: string, authority: string): boolean {
  const key = `${scheme}://${authority}/`;
  if (key !== lastAuthority) {
    lastAuthority = key;
    lastParses = URL.canParse(key);
  }
  return lastParses;
}

/**
 * The running calls' controllers, all aborted by `abort()` (a shutdown's
 * timeout). One listener each on one signal cost every call a scan of all
 * the others': Deno's EventTarget walks its list on each add and remove
 * (2.8% of serveHttp2's CPU at 1,000 open calls).
 */
class CutCalls {
  #calls = new Set<AbortController>();
  #reason: unknown;
  #aborted = false;

  /** Adds a call's controller; aborts it at once after `abort()`. */
  add(call: AbortController): void {
    if (this.#aborted) call.abort(this.#reason);
    else this.#calls.add(call);
  }

  /** Forgets a call's controller. */
  delete(call: AbortController): void {
    this.#calls.delete(call);
  }

  /** Aborts every call added, and those added later, with `reason`. */
  abort(reason: unknown): void {
    this.#aborted = true;
    this.#reason = reason;
    const calls = this.#calls;
    this.#calls = new Set();
    for (const call of calls) call.abort(reason);
  }
}

/** How long a deadline-exceeded status waits for the client's own reset. */
const DEADLINE_GRACE_MS = 50;

// Resolves true if the stream closes within DEADLINE_GRACE_MS.
function closesWithin(stream: http2.Http2Stream): Promise<boolean> {
  if (isGone(stream)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      stream.off("close", onClose);
      resolve(false);
    }, DEADLINE_GRACE_MS);
    const onClose = () => {
      clearTimeout(timer);
      resolve(true);
    };
    stream.once("close", onClose);
  });
}

// A stream the peer has reset (or that is closed) must not be written to.
function isGone(stream: http2.Http2Stream): boolean {
  return stream.destroyed || stream.closed || stream.aborted;
}
