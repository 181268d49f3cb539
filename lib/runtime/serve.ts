/**
 * Serve a fetch handler with the runtime's own HTTP server: `Deno.serve` under
 * Deno, `Bun.serve` under Bun. This is runtime glue; the library's handlers
 * are plain `(request: Request) => Response | Promise<Response>` functions and
 * work with any server, including a Workers `export default { fetch }`.
 *
 * **File descriptors.** Every open connection holds one, and every upload
 * into a file one more. A process that runs out (`EMFILE`, "Too many open
 * files") cannot accept connections. Under Deno (2.9.6), `Deno.serve`'s
 * accept loop then ends and its `finished` rejects, which exits the process
 * if nothing observes it; `serve` observes it, logs the failure once, and
 * starts a new listener on the same port (retrying every 50 ms to 1 s until
 * a descriptor is free). Connections already accepted are served meanwhile;
 * new ones are refused or wait in the kernel's backlog. Bun.serve keeps its
 * listener. Stay clear of the limit all the same: raise it (`ulimit -n`,
 * `LimitNOFILE=` in systemd) well above `2 × maxConcurrentRequests` plus
 * idle keep-alive connections; keep `maxConcurrentRequests` below it (excess
 * requests get 503 at once); for a public server, put a proxy in front
 * (nginx, Caddy, a load balancer) that caps connections per client, closes
 * idle and slow ones (a client that never finishes its headers holds a
 * descriptor that no request cap sees), and buffers slow readers. Under Deno
 * (2.9.6) a client that resets its connection while a response body from JS
 * is under way sometimes leaves its socket open for good, whatever the
 * handler (up to 11 of 20 such clients at once, 0 to 5 of 20 one after
 * another, in the runs of docs/known-runtime-issues.md (g)): another reason
 * for the proxy.
 *
 * @module
 */

import { listenFailed } from "./_server_url.ts";
import { messageOf } from "../_internal/message_of.ts";
import { checkArgument } from "../_internal/arguments.ts";
import { type BunServer, getBun } from "./_bun.ts";
import {
  bunWebSocketHandlers,
  closeBunSockets,
  rememberBunServer,
} from "./_websocket_bun.ts";
import {
  closeDenoSockets,
  type DenoSockets,
  rememberDenoSockets,
} from "./_websocket_deno.ts";
import { type Deferred, deferred } from "../_internal/deferred.ts";
import { settledWithin } from "../_internal/settled_within.ts";
import { checkMax, checkPort, checkTimerMs } from "../_internal/limits.ts";
import { isClientError } from "../http/_client_error.ts";
import { isThenable } from "../_internal/thenable.ts";
import { wasReported } from "../_internal/reported.ts";
import { baseUrl, checkTls } from "./_tls.ts";

/** Options for {@linkcode serve}. */
export interface ServeOptions {
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
  /** Shuts the server down (as `shutdown()` does) when aborted. */
  signal?: AbortSignal;
  /**
   * The longest `shutdown()` (or the `signal`) waits for the requests in
   * progress to finish, in milliseconds, streaming responses and uploads
   * included; past it the connections still open are closed, cutting what
   * they carry, and the shutdown completes. A server with a client of a
   * never-ending stream (an SSE feed, a duplex or RPC stream) open would
   * otherwise never stop; the failures of the streams so cut are not
   * passed to `onError`. New requests meanwhile get `503` (under Deno,
   * whose listener stays open until then) or are refused (Bun). Open
   * WebSockets are not waited for: those `upgradeWebSocket` made are
   * closed (code 1001) when the shutdown begins (under Deno they were cut
   * with the connections, their peers sent code 1005). `0` waits for ever.
   * Under Deno, once no request is left, `shutdown()` begins Deno's
   * graceful shutdown and resolves when it ends or at the limit, whichever
   * comes first: a request stops counting once Deno has taken its answer,
   * not once the client has it, so a large answer a slow client is still
   * reading goes on whole after `shutdown()` has resolved (a 64 MiB answer
   * read at 100 KB/s held a 2-s shutdown until the client left, before
   * 2026-12-07), as do idle connections over `tls` and a WebSocket upgrade
   * whose client reset the connection before the 101, which Deno waits on
   * for ever (docs/known-runtime-issues.md (aa)): they keep the process
   * alive; call `Deno.exit()` after `shutdown()` to end at once.
   *
   * @default {10000}
   */
  shutdownTimeoutMs?: number;
  /**
   * Milliseconds a connection may stay idle (no bytes either way) before the
   * server closes it: Bun only (`Bun.serve`'s `idleTimeout`; Deno has no
   * such setting), enforced natively, with no JS per chunk. Bun counts it in
   * ticks of 4 s, one timer for the whole process, so its own timeout of
   * `n` ticks closes a connection idle for anywhere between `n - 1` and `n`
   * ticks; `serve` asks for one tick more than the timeout needs, so that no
   * connection closes before `idleTimeoutMs`, and an idle one closes up to
   * about 8 s after it (with 5,000, after 8-12 s; with 1,000, after 4-8 s.
   * Bun's own `idleTimeout: 5` closed one after 4.0-8.0 s, as the timer's
   * phase fell, measured with Bun 1.4.5; an exchange that sent a chunk every
   * 300 ms for 10 s was not cut, with 1,000 either, where Bun's own
   * `idleTimeout: 1` cuts every connection at its first tick).
   * A connection whose writes are blocked (a client that stopped reading)
   * counts as idle too: this is what frees the requests of such clients,
   * which otherwise hold `maxConcurrentRequests` for as long as they stay
   * (under Deno nothing in the process can: docs/reliability.md,
   * "Attacks"). So does a handler that sends nothing for longer (a long
   * poll). `0` disables it (for streams that idle by design); the most is
   * 252,000 (Bun's limit, 255 s, in whole ticks, one of them the tick more).
   *
   * @default {0}
   */
  idleTimeoutMs?: number;
  /**
   * Called with an error the handler threw (its result is sent instead;
   * a handler that gives no `Response` counts as throwing a TypeError),
   * and under Deno with the error of a response body that failed mid-stream
   * (the result is then discarded; Bun prints those itself). The default
   * answers an `HttpError` of status 400-499 with its own response, without
   * logging it: the library's handlers raise those on purpose for the
   * client's side of an exchange (a client that went away, an idle or
   * oversized body). Nor does it log the failure of a response body that
   * the handler's own `onError` was told of (a duplex handler's error after
   * its response started). Any other error is logged with `console.error`
   * and answered with 500. An `onError` that throws, rejects or gives no
   * `Response` is logged, and a plain 500 is sent (under Bun, its
   * development error page once went out instead: the error's message, its
   * stack and source).
   *
   * @default {an HttpError's response for 400-499, else console.error and 500}
   */
  onError?: (error: unknown) => Response | Promise<Response>;
  /**
   * The most requests in progress at once, streaming responses included (a
   * request counts until its response has been sent). Past it a request is
   * answered at once with `503 Service Unavailable` and `Retry-After: 1`,
   * without calling the handler, so a flood of uploads or streams cannot
   * exhaust file descriptors or memory. Keep it below half the process's
   * file-descriptor limit (see the module documentation). Clients that stop
   * reading and stay connected hold their slots for as long as they stay
   * (everyone else then gets 503): `idleTimeoutMs` frees them under Bun, a
   * proxy's send timeout under Deno (docs/reliability.md, "Attacks"). `0`
   * disables.
   *
   * @default {1024}
   */
  maxConcurrentRequests?: number;
  /**
   * Serve HTTPS with this certificate chain and private key (PEM strings):
   * passed as `cert`/`key` to `Deno.serve`, which then offers HTTP/2 and
   * HTTP/1.1 by ALPN (browsers stream request bodies only over HTTP/2, which
   * they speak only over TLS: docs/browser.md), and as `tls` to `Bun.serve`,
   * which speaks HTTP/1.1 only (Bun 1.4.5, measured: it selects no
   * protocol by ALPN, even for a client that offers `h2, http/1.1`; such
   * clients then speak HTTP/1.1). The server's `url` then starts with
   * `https:`, and `upgradeWebSocket` serves `wss://`.
   *
   * Shutdown under Deno: Deno's graceful shutdown waits without limit on an
   * idle HTTP/2 connection over TLS, and cannot be cut short once begun
   * (docs/known-runtime-issues.md (h)). So with `tls`, once the requests in
   * progress are done (waited for up to `shutdownTimeoutMs`, as without
   * it), `shutdown()` begins Deno's graceful shutdown, which lets the last
   * answers out whole, and resolves when it ends or when the limit has
   * passed, whichever comes first: a connection still idle then (Chromium
   * keeps a spare one for 60 s) closes when its client closes it, and keeps
   * the process alive until then; call `Deno.exit()` after `shutdown()` to
   * end at once. (Closing every connection instead cut answers Deno had
   * taken but not yet sent: a 16 MiB answer at 180 KB.) With
   * `shutdownTimeoutMs: 0` it waits for Deno's graceful shutdown, idle
   * connections and all. Under Bun an idle connection is closed at the
   * limit (1,002 ms with 1,000).
   *
   * A `tls` without both PEM strings, or whose key is not the certificate's,
   * is a TypeError naming it.
   *
   * @example Serve HTTPS
   * ```ts ignore
   * import { serve } from "@sluice/streams/serve";
   *
   * const server = await serve((request) => new Response(request.body), {
   *   tls: {
   *     cert: await Deno.readTextFile("./cert.pem"),
   *     key: await Deno.readTextFile("./key.pem"),
   *   },
   * });
   * console.log(`listening on ${server.url}`); // https://127.0.0.1:.../
   * ```
   */
  tls?: { cert: string; key: string };
}

/** A running server returned by {@linkcode serve}. */
export interface Server {
  /**
   * The base URL, such as `http://127.0.0.1:45123/` (`https:` with `tls`).
   */
  readonly url: URL;
  /** The port actually bound. */
  readonly port: number;
  /**
   * Stops taking requests, waits for those in progress (at most
   * `shutdownTimeoutMs`), closes every connection, and resolves once the
   * server has stopped.
   */
  shutdown(): Promise<void>;
  /** Resolves when the server has stopped. */
  readonly finished: Promise<void>;
}

/** A 503 to retry in a second, saying why. */
function unavailable(message: string, headers: HeadersInit = {}): Response {
  return new Response(message, {
    status: 503,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      "retry-after": "1",
      ...headers,
    },
  });
}

function overloaded(max: number): Response {
  return unavailable(
    `Cannot serve: ${max} requests in progress (maxConcurrentRequests)`,
  );
}

// A Host header's value (RFC 9110, 7.2): a name, an IPv4 address or an IP
// literal in brackets, and an optional port (a name before it).
const HOST =
  /^(?:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::(\d*))?)?$/;

/**
 * A 400 for a request whose Host is no host (RFC 9112, 3.2: a server
 * answers 400), or whose URL (from an HTTP/2 `:authority` when there is no
 * Host) does not parse or names a user: the runtimes take any, and a URL
 * made of `Host: h/rpc/x?` routed by another path than the request's
 * (Deno), one of `::1` or `:80` did not parse (a 500 from any handler
 * reading it, logged per request).
 */
function invalidHost(request: Request): Response | undefined {
  const host = request.headers.get("host");
  let why: string | undefined;
  if (host !== null) {
    const match = HOST.exec(host);
    if (!match || (match[2] !== undefined && Number(match[2]) > 65535)) {
      why = `the Host header is not a host and port, got ${
        JSON.stringify(host.slice(0, 64))
      }`;
    }
  }
  // A relative URL (Bun's for an empty Host) is a path, which handlers read.
  if (why === undefined && !request.url.startsWith("/")) {
    // One parse per request: canParse and then new URL parsed it twice.
    let url: URL | undefined;
    try {
      url = new URL(request.url);
    } catch {
      // Not a URL: refused below.
    }
    if (url === undefined || url.username !== "" || url.password !== "") {
      why = `the request's authority is not a host and port, got ${
        JSON.stringify(request.url.slice(0, 64))
      }`;
    }
  }
  if (why === undefined) return undefined;
  return new Response(`Cannot serve: ${why}`, {
    status: 400,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      "connection": "close",
    },
  });
}

function shuttingDown(): Response {
  return unavailable("Cannot serve: the server is shutting down", {
    "connection": "close",
  });
}

/** How long a shutdown that cut handlers waits for their cleanup. */
const CUT_CLEANUP_MS = 1000;

/** Bun's idle-timeout tick, and its limit of the timeout in seconds. */
const BUN_TICK_S = 4;
const BUN_MAX_IDLE_S = 255;
/** The longest `idleTimeoutMs`: Bun's limit less the tick more it is given. */
const MAX_IDLE_TIMEOUT_MS =
  (Math.floor((BUN_MAX_IDLE_S + BUN_TICK_S - 1) / BUN_TICK_S) - 1) *
  BUN_TICK_S * 1000;

/**
 * Bun.serve's `idleTimeout` (seconds) that never closes a connection idle
 * for less than `idleTimeoutMs`. Bun turns its timeout into ticks of 4 s
 * (`ceil(seconds / 4)`), and one timer for the whole process ticks them:
 * a connection whose timeout is `n` ticks closes at the `n`-th tick after
 * its last activity, after `n - 1` to `n` ticks of idleness, as the
 * timer's phase falls. So this asks for the ticks the timeout fills, plus
 * one, and names them by the smallest number of seconds Bun rounds up to
 * that count.
 */
function bunIdleTimeout(idleTimeoutMs: number): number {
  if (idleTimeoutMs === 0) return 0;
  const ticks = Math.ceil(idleTimeoutMs / (BUN_TICK_S * 1000)) + 1;
  return (ticks - 1) * BUN_TICK_S + 1;
}

function defaultOnError(error: unknown): Response {
  if (isClientError(error)) return error.getResponse();
  // A response body failed with an error its handler's own onError was
  // told of (a duplex handler that threw after writing): logged there, or
  // kept quiet there on purpose.
  if (wasReported(error)) return internalError();
  console.error("sluice: handler failed:", error);
  return internalError();
}

function internalError(): Response {
  return new Response("Internal Server Error", { status: 500 });
}

/**
 * `onError`, made to answer: what it throws or rejects with, or an answer
 * that is no `Response`, is logged and a plain 500 sent (the runtime's own
 * fallback may show the error: Bun's development page does).
 */
function answering(
  onError: (error: unknown) => Response | Promise<Response>,
): (error: unknown) => Response | Promise<Response> {
  const checked = (answer: unknown): Response => {
    if (answer instanceof Response) return answer;
    console.error("sluice: onError gave no Response:", answer);
    return internalError();
  };
  const failed = (reason: unknown): Response => {
    console.error("sluice: onError failed:", reason);
    return internalError();
  };
  return (error) => {
    try {
      const answer = onError(error) as unknown;
      return isThenable(answer)
        ? Promise.resolve(answer).then(checked, failed)
        : checked(answer);
    } catch (reason) {
      return failed(reason);
    }
  };
}

/**
 * A handler's answer, refused unless it is a `Response` (or a promise of
 * one): Bun answers anything else 204 without calling `error`, Deno calls
 * `onError` with a TypeError.
 */
function response(
  answer: unknown,
): Response | Promise<Response> {
  if (answer instanceof Response) return answer;
  if (isThenable(answer)) return Promise.resolve(answer).then(response);
  throw new TypeError(
    `Cannot serve: the handler gave no Response, got ${
      answer === null ? "null" : typeof answer
    }`,
  );
}

/**
 * Serves a fetch handler on the current runtime (`Deno.serve` or `Bun.serve`)
 * and resolves once it is listening. A request whose `Host` header is no
 * host and port (`h/rpc?`, `::1`, `a b`, a port past 65535) is answered
 * `400` before the handler, as RFC 9112 asks: the runtimes pass it on in
 * `request.url`, which then does not parse, or names another path.
 *
 * @param handler The fetch handler to serve (a `FetchHandler` from
 *   `@sluice/streams/http`, or any function that returns a `Response` or a
 *   promise of one).
 * @param options Where to listen and how to stop.
 * @returns The running server, with its URL and a `shutdown()` method.
 *
 * @example Serve a handler on a free port
 * ```ts ignore
 * import { serve } from "@sluice/streams/serve";
 *
 * const server = await serve((request) => new Response(request.body));
 * console.log(`listening on ${server.url}`);
 * await server.shutdown();
 * ```
 */
export async function serve(
  handler: (request: Request) => Response | Promise<Response>,
  options: ServeOptions = {},
): Promise<Server> {
  checkArgument(
    typeof handler === "function",
    "serve",
    "the handler",
    "a function of a Request",
    handler,
  );
  const {
    port = 0,
    hostname = "127.0.0.1",
    signal,
    idleTimeoutMs = 0,
    maxConcurrentRequests = 1024,
    shutdownTimeoutMs = 10_000,
  } = options;
  checkPort("serve", port);
  checkTimerMs("serve", "idleTimeoutMs", idleTimeoutMs);
  checkTimerMs("serve", "shutdownTimeoutMs", shutdownTimeoutMs);
  // The handlers still running: a shutdown that cuts them waits a moment
  // for their own cleanup (an upload's sink removing its temporary file),
  // so that a process that exits once shutdown() resolves leaves nothing.
  const running = new Set<Promise<unknown>>();
  const track = <T>(answer: T): T => {
    if (isThenable(answer)) {
      const settled: Promise<unknown> = Promise.resolve(answer).then(
        () => running.delete(settled),
        () => running.delete(settled),
      );
      running.add(settled);
    }
    return answer;
  };
  const handlersCut = async () => {
    if (running.size === 0) return;
    await settledWithin(Promise.allSettled(running), CUT_CLEANUP_MS);
  };
  checkMax("serve", "maxConcurrentRequests", maxConcurrentRequests);
  const tls = checkTls("serve", options.tls);
  if (idleTimeoutMs > MAX_IDLE_TIMEOUT_MS) {
    throw new RangeError(
      `Cannot serve: idleTimeoutMs must be at most ${MAX_IDLE_TIMEOUT_MS} (Bun's limit, 255 s, in its 4-s ticks with one tick more to never close early), got ${idleTimeoutMs}`,
    );
  }
  const given = options.onError ?? defaultOnError;
  checkArgument(
    typeof given === "function",
    "serve",
    "onError",
    "a function",
    given,
  );
  const onError = answering(given);
  const bun = getBun();
  if (bun) {
    let server: BunServer;
    try {
      server = bun.serve({
        port,
        hostname,
        idleTimeout: bunIdleTimeout(idleTimeoutMs),
        // Bodies are streamed and bounded by the handlers' own limits.
        maxRequestBodySize: Number.MAX_SAFE_INTEGER,
        // Never Bun's development error page (the error, its stack and
        // source) to a client, whatever NODE_ENV says.
        development: false,
        ...(tls ? { tls } : {}),
        // Remembered so that upgradeWebSocket can reach server.upgrade.
        fetch: (request: Request, server: BunServer) => {
          // pendingRequests counts this request too.
          if (
            maxConcurrentRequests > 0 &&
            server.pendingRequests > maxConcurrentRequests
          ) {
            return overloaded(maxConcurrentRequests);
          }
          const refused = invalidHost(request);
          if (refused) return refused;
          rememberBunServer(request, server);
          // onError is called here, not left to Bun: once a request is
          // upgraded or answered by Bun itself (a refused WebSocket upgrade
          // gets its 426), Bun drops a rejection unhandled, which exits the
          // process, and ignores a throw.
          try {
            const answer = response(track(handler(request)));
            return answer instanceof Response ? answer : answer.catch(onError);
          } catch (error) {
            return onError(error);
          }
        },
        error: onError,
        // Its maxPayloadLength left at Bun's 16 MiB: a larger message is
        // refused with 1009 (docs/known-runtime-issues.md (al)).
        websocket: bunWebSocketHandlers,
      });
    } catch (error) {
      throw listenFailed(error, hostname, port);
    }
    const finished = deferred<void>();
    let stopped = false;
    const shutdown = async () => {
      if (!stopped) {
        stopped = true;
        const stopping = server.stop(false);
        closeBunSockets(server, "Server shutting down");
        // Past the grace period, the connections still open are closed.
        let cut = false;
        const timer = shutdownTimeoutMs > 0
          ? setTimeout(() => {
            cut = true;
            void server.stop(true);
          }, shutdownTimeoutMs)
          : undefined;
        await stopping;
        clearTimeout(timer);
        if (cut) await handlersCut();
        finished.resolve();
      }
      return finished.promise;
    };
    signal?.addEventListener("abort", () => void shutdown(), { once: true });
    if (signal?.aborted) void shutdown();
    const url = baseUrl(hostname, server.port, tls);
    return { url, port: server.port, shutdown, finished: finished.promise };
  }
  if (typeof Deno === "undefined") {
    throw new TypeError(
      "Cannot serve: no Deno.serve or Bun.serve in this runtime; pass the handler to your server instead",
    );
  }
  // Requests in progress, counted for maxConcurrentRequests and for the
  // shutdown's wait; `drained` settles once none is left while stopping.
  let active = 0;
  let drained: Deferred<void> | undefined;
  // The WebSockets upgraded from its requests, closed when shutdown begins.
  const sockets: DenoSockets = { open: new Set() };
  const counted = (request: Request, info: Deno.ServeHandlerInfo) => {
    if (stopping) return shuttingDown();
    if (maxConcurrentRequests > 0 && active >= maxConcurrentRequests) {
      return overloaded(maxConcurrentRequests);
    }
    const refused = invalidHost(request);
    if (refused) return refused;
    rememberDenoSockets(request, sockets);
    active++;
    let released = false;
    const release = () => {
      if (!released) {
        released = true;
        if (--active === 0) drained?.resolve();
      }
    };
    // Settles once the response has been sent (or has failed), streaming
    // bodies included.
    const completed = (info as { completed?: Promise<void> }).completed;
    if (completed) completed.then(release, release);
    try {
      const response = handler(request);
      track(response);
      if (!completed) {
        return Promise.resolve(response).finally(release);
      }
      return response;
    } catch (error) {
      if (!completed) release();
      throw error;
    }
  };
  // Deno.serve's accept loop ends when accept fails with EMFILE/ENFILE
  // (its `finished` rejects; left unobserved, that rejection exits the
  // process). Past it, existing connections are still served: a new
  // listener on the same address is started as soon as a descriptor is free.
  primeSignalHandling();
  const finished = deferred<void>();
  let stopping = false;
  let current: Deno.HttpServer<Deno.NetAddr> | undefined;
  // Aborting a Deno.serve's signal closes all its connections at once (its
  // only way to); a server whose graceful `shutdown()` has begun can no
  // longer be stopped so (Deno's abort listener then throws BadResource,
  // uncaught): see docs/known-runtime-issues.md (h). So with a time limit
  // the wait for requests in progress is `serve`'s own: once none is left,
  // Deno's graceful shutdown (it lets the last answers out; aborting then
  // cut one mid-flight), past the limit the signal. One controller per
  // listener: a dead one's listener must not see it.
  let force: AbortController | undefined;
  let forced = false;
  let retryMs = 0;
  let loggedAt = -Infinity;
  let boundPort = port;
  const listen = () => {
    const listening = deferred<Deno.NetAddr>();
    force = new AbortController();
    const server = Deno.serve({
      port: boundPort,
      hostname,
      signal: force.signal,
      ...(tls ? { cert: tls.cert, key: tls.key } : {}),
      onListen: (addr) => {
        boundPort = addr.port;
        listening.resolve(addr);
      },
      // The failures of the streams a forced close cuts are its own doing:
      // not reported.
      onError: (error) => forced ? shuttingDown() : onError(error),
    }, counted);
    current = server;
    server.finished.then(
      () => {
        if (server === current) finished.resolve();
      },
      (error) => {
        if (server !== current) return;
        if (stopping) finished.resolve();
        else if (isOutOfDescriptors(error)) relisten(error);
        else finished.reject(error);
      },
    );
    return listening.promise;
  };
  const relisten = (error: unknown) => {
    if (performance.now() - loggedAt > 10_000) {
      loggedAt = performance.now();
      console.error(
        "sluice: serve's listener failed, out of file descriptors; restarting it:",
        error,
      );
    }
    retryMs = Math.min(Math.max(retryMs * 2, 50), 1_000);
    setTimeout(() => {
      if (stopping) return finished.resolve();
      try {
        listen().then(() => retryMs = 0);
      } catch (error) {
        if (isOutOfDescriptors(error)) relisten(error);
        else finished.reject(error);
      }
    }, retryMs);
  };
  let addr: Deno.NetAddr;
  try {
    addr = await listen();
  } catch (error) {
    throw listenFailed(error, hostname, port);
  }
  const shutdown = async () => {
    if (!stopping) {
      stopping = true;
      const startedAt = performance.now();
      // Their closing handshakes waited for (at most a second, within the
      // limit) before Deno's graceful shutdown, which closes each
      // connection right after its close frame: a client still sending got
      // 1006 ("Failed to send frame") for 1001.
      const socketsClosed = closeDenoSockets(
        sockets,
        "Server shutting down",
        shutdownTimeoutMs > 0 ? Math.min(1_000, shutdownTimeoutMs) : 1_000,
      );
      let done = active === 0 || shutdownTimeoutMs === 0;
      if (!done) {
        drained = deferred<void>();
        let timer: ReturnType<typeof setTimeout> | undefined;
        done = await Promise.race([
          drained.promise.then(() => true),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(false), shutdownTimeoutMs);
          }),
        ]);
        clearTimeout(timer);
      }
      const server = current;
      if (done) await socketsClosed;
      if (done && shutdownTimeoutMs > 0) {
        // Deno's graceful shutdown waits without limit on an idle HTTP/2
        // connection over TLS, on a WebSocket upgrade whose client reset
        // the connection before the 101 (known-runtime-issues.md (h),
        // (aa)) and on a large answer a slow client reads, and cannot be
        // cut short once begun. It is still what lets the last answers out
        // (a request stops counting when Deno has taken its answer, not
        // when the client has it: closing the connections then cut a 16
        // MiB answer at 180 KB, and a small one made just before): begun,
        // and waited for up to what is left of the limit; what it still
        // waits on then goes on without holding shutdown().
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          server?.shutdown().catch(() => {}),
          new Promise<void>((resolve) => {
            timer = setTimeout(
              resolve,
              Math.max(0, shutdownTimeoutMs - (performance.now() - startedAt)),
            );
          }),
        ]);
        clearTimeout(timer);
      } else if (done) {
        // No limit: Deno's own graceful shutdown, which lets the last
        // answers out, closes idle connections and WebSockets (1001), and
        // cannot be cut short once begun.
        await server?.shutdown().catch(() => {});
      } else {
        forced = true;
        force?.abort();
        await server?.finished.catch(() => {});
        await handlersCut();
      }
      finished.resolve();
    }
    return finished.promise;
  };
  signal?.addEventListener("abort", () => void shutdown(), { once: true });
  if (signal?.aborted) void shutdown();
  return {
    url: baseUrl(addr.hostname, addr.port, tls),
    port: addr.port,
    shutdown,
    finished: finished.promise,
  };
}

// Deno 2.9.6 sets up its signal handling on first use, which takes a
// descriptor; when that happens while the process is out of them, Deno
// panics (ext/signals/lib.rs, "Too many open files"): 1 run in 12 of
// tests/faults_serve.test.ts without this, none in 28 with it. A listener
// added and removed for SIGWINCH (ignored by default, so nothing changes
// for the process) sets it up at start.
function primeSignalHandling(): void {
  if (Deno.build.os === "windows") return;
  try {
    const ignore = () => {};
    Deno.addSignalListener("SIGWINCH", ignore);
    Deno.removeSignalListener("SIGWINCH", ignore);
  } catch {
    // No signal support here: nothing to set up.
  }
}

// EMFILE (24, the process's limit) or ENFILE (23, the system's).
function isOutOfDescriptors(error: unknown): boolean {
  const message = messageOf(error);
  return /too many open files|os error 2[34]\b|EMFILE|ENFILE/i.test(message);
}
