import { markUnbuffered } from "./_unbuffered.ts";
import type { Compression } from "./compression.ts";
import {
  decodeBody,
  encodeBody,
  encodedResponseInit,
  negotiateCompression,
  parseContentEncoding,
} from "./_compression.ts";
import { duplexMaxReadBytes } from "./_defaults.ts";
import { checkExchangeOptions } from "./_exchange_options.ts";
import type { FetchHandler } from "./fetch_handler.ts";
import { HttpError } from "./http_error.ts";
import {
  BODY_METHODS,
  refuseMethod,
  requestBodyFailed,
} from "./_client_error.ts";
import { pipeWithPace } from "../_internal/idle_timeout.ts";
import { checkBodyUnused } from "../_internal/arguments.ts";

/**
 * How long an exchange goes before the echo reads `request.signal`: under
 * Deno 2.9.6, a request whose signal was read is counted in progress by
 * `info.completed` (and so by serve's `maxConcurrentRequests`) for up to
 * seconds after its response was sent, under load (h2load, 500 streams
 * open: up to 5,000 requests not completed, 1.4 s median, 2.7 s max),
 * docs/known-runtime-issues.md (ag). Exchanges that end sooner never read
 * it; a client that leaves earlier is heard at this point.
 */
const SIGNAL_AFTER_MS = 1000;

/** Options for {@linkcode echo} and {@linkcode createEchoHandler}. */
export interface EchoOptions {
  /**
   * The most bytes a compressed request body may decode to. Past it the
   * response body errors (the response has started: it answers as it reads)
   * and the request is cancelled, so a decompression bomb costs at most this
   * much work and one decoded chunk of memory.
   *
   * @default {67108864}
   */
  maxDecompressedBytes?: number;
  /**
   * The compressions the echo decodes in a request (`Content-Encoding`;
   * others are answered with 415) and may use on its response, chosen from
   * the request's `Accept-Encoding` by q-value. `[]` refuses compressed
   * requests and never compresses.
   *
   * @default {["gzip", "deflate"]}
   */
  acceptCompression?: readonly Compression[];
  /**
   * The response is compressed only when the request declares a
   * `Content-Length` of at least this many bytes. A `CompressionStream`
   * cannot be flushed: it may hold bytes back until more arrive, which
   * would stall a lockstep exchange, so a streamed request of unknown length
   * gets an uncompressed echo unless this is `0` (compress whenever the
   * client accepts it; for bulk transfers).
   *
   * @default {1024}
   */
  compressMinBytes?: number;
  /**
   * Memory, in bytes, that the request body's chunks (as sent, before any
   * decoding) read ahead of the response may keep alive, each counting its
   * whole buffer: keeps the request flowing in large steps and bounds
   * memory. `0` disables it (one chunk may still be read ahead). A chunk is
   * one read of the request body: for a request with a `Content-Length`,
   * where the runtime already holds more than a read took (Deno 2.9.6 over
   * HTTP/1.1 buffers a full-duplex request without bound, see
   * docs/known-runtime-issues.md), reads grow to take it in fewer steps, up
   * to 16 MiB each.
   *
   * @default {1048576}
   */
  readAheadBytes?: number;
  /**
   * The longest wait for the next bytes of the request, in milliseconds,
   * while the echo is ready for them, and the longest the client may leave
   * the echo's read-ahead full while taking none of it (nginx's
   * `send_timeout`): past either the response body errors with an
   * {@linkcode HttpError} 408 naming it and the request is cancelled, so a
   * client that sends nothing, or reads nothing, cannot pin the exchange
   * forever (nor one that left without the runtime telling the handler:
   * Bun 1.4.5 sometimes does not, docs/known-runtime-issues.md). The echo
   * is handed to the runtime at most 256 KiB at a time, and the runtime
   * takes the next piece once the server's socket has room for it, which
   * it has again only once the client has read about a third of the
   * socket's send buffer (about 1.4 MiB on Linux's loopback): a client
   * must read about that and one piece (1.6 MiB) per spell of this length
   * (about 60 KB/s at the default; measured with Deno 2.9.6). A piece is
   * counted as the request sent it: with a compressed request it is 256
   * KiB before decoding, so the client must read its decoded size (a 16:1
   * gzip request: about 4 MiB) per spell. Either limit may come up to a
   * quarter of it late, never early. `0` disables both.
   *
   * @default {30000}
   */
  idleTimeoutMs?: number;
}

/**
 * A fetch handler that writes each chunk of the request body back as it
 * arrives: a `TransformStream` pipeline from the request body to the
 * response body with no buffering beyond a bounded read-ahead, so the
 * response streams while the request is still being sent (full duplex).
 *
 * The request may be gzip- or deflate-encoded (`Content-Encoding`, one of
 * `acceptCompression`): it is decoded, with `maxDecompressedBytes` as the
 * limit; another encoding is answered with 415. The response is
 * `application/octet-stream` (a type edge compression leaves alone) and is
 * compressed only as `acceptCompression` and `compressMinBytes` allow.
 * With `idleTimeoutMs: 0` and `readAheadBytes: 0`, a request that needs
 * neither decoding nor a compressed response is answered with
 * `new Response(request.body)`: the runtime's native passthrough, with no
 * JS per chunk (the fastest echo; nothing then bounds an idle client).
 * When the request's `signal` aborts (the client went away), the pipeline
 * ends: the request body is cancelled and the response body errored, so
 * no stream of the echo holds the connection. The signal is read only
 * once the exchange has lasted a second (an abort before is heard then):
 * under Deno 2.9.6, a request whose signal was read may go on counting in
 * `serve`'s `maxConcurrentRequests` for seconds after its response was
 * sent, which under a load of short exchanges answered thousands of them
 * 503 (docs/known-runtime-issues.md (ag)). (Reading the
 * signal makes `Deno.serve` print its one-time notice that the signal
 * "aborts on successful responses (legacy behavior)": harmless here, as no
 * pipeline is left once a response has been sent; `deno run
 * --unstable-no-legacy-abort` silences it. Deno 2.9.6 still keeps some
 * sockets of clients that close mid-transfer, whatever the handler: a
 * runtime race, see docs/known-runtime-issues.md (g).) A client that stops
 * reading ends the echo's pipeline once it has taken nothing for
 * `idleTimeoutMs` (its streams and its timer go), but if it keeps its
 * connection open it may still hold that connection (and its file
 * descriptor, and one of `serve`'s `maxConcurrentRequests`, which such
 * clients can use up): the runtime's pending write to it cannot be ended
 * from a handler (measured with Deno 2.9.6). Under Bun, `serve`'s
 * `idleTimeoutMs` closes such connections; under Deno, put a proxy in front
 * that times out slow readers (docs/reliability.md, "Attacks").
 *
 * @param request The request whose body to echo.
 * @param options Decoding limit, compression and read-ahead.
 * @returns The response, at once; its body is the echo.
 *
 * @example Serve an echo endpoint
 * ```ts ignore
 * import { echo } from "@sluice/streams/http";
 * import { serve } from "@sluice/streams/serve";
 *
 * const server = await serve((request) => echo(request));
 * const response = await fetch(server.url, { method: "POST", body: "Hello, World!" });
 * console.log(await response.text()); // Hello, World!
 * await server.shutdown();
 * ```
 */
export function echo(request: Request, options: EchoOptions = {}): Response {
  const checked = checkExchangeOptions("echo", options);
  checkBodyUnused("echo", request);
  let codings;
  try {
    codings = parseContentEncoding(
      request.headers.get("content-encoding"),
      checked.acceptCompression,
    );
  } catch (error) {
    if (error instanceof HttpError) return error.getResponse();
    throw error;
  }
  const declared = Number(request.headers.get("content-length") ?? NaN);
  const compress = checked.compressMinBytes === 0 ||
    declared >= checked.compressMinBytes;
  const responseEncoding = compress
    ? negotiateCompression(
      request.headers.get("accept-encoding"),
      checked.acceptCompression,
    )
    : undefined;
  const headers = markUnbuffered(
    new Headers({
      "content-type": "application/octet-stream",
      "cache-control": "no-store",
    }),
  );
  if (responseEncoding) headers.set("content-encoding", responseEncoding);
  if (checked.acceptCompression.length > 0) {
    headers.set("vary", "accept-encoding");
  }
  if (!request.body) return new Response(null, { headers });
  const { idleTimeoutMs, readAheadBytes } = checked;
  if (
    idleTimeoutMs === 0 && readAheadBytes === 0 && codings.length === 0 &&
    !responseEncoding
  ) {
    // Nothing to do per chunk in JS: no decoding (so no limit to count),
    // no encoding, no idle timer, no read-ahead. The runtime passes the
    // body through natively, and ends both sides when the client goes away.
    return new Response(request.body, { headers });
  }
  // The echo itself, in one stream: each chunk is read (with the idle
  // timer, up to readAheadBytes ahead) and passed on as it arrives. A
  // client that goes away aborts the request's signal (read once the
  // exchange has lasted SIGNAL_AFTER_MS: a client gone before is heard
  // then): that errors the stream, which cancels the request body and
  // errors the response body, so the pipeline ends instead of waiting on
  // a peer that will never read (under Deno, a response body that is never
  // read to its end keeps the socket open).
  const input = pipeWithPace(request.body, {
    idleTimeoutMs,
    onIdle: () =>
      new HttpError(
        408,
        `Cannot echo: no request bytes arrived for ${idleTimeoutMs} ms (idleTimeoutMs)`,
      ),
    // The client reads none of its echo (or left, and the runtime never
    // said so: Bun 1.4.5 sometimes neither aborts the signal nor cancels
    // the response body): held back by it, the pipeline would live for ever.
    maxHeldBackMs: idleTimeoutMs,
    onHeldBack: () =>
      new HttpError(
        408,
        `Cannot echo: the client took no further part of the echo for ${idleTimeoutMs} ms (idleTimeoutMs)`,
      ),
    readAheadBytes,
    maxReadBytes: duplexMaxReadBytes(request),
    // Read only for an exchange still going after SIGNAL_AFTER_MS: under
    // Deno 2.9.6 reading it delays `info.completed`, and with it the end of
    // the request's count in serve's maxConcurrentRequests, by up to
    // seconds (docs/known-runtime-issues.md (ag)).
    signal: () => request.signal,
    signalAfterMs: SIGNAL_AFTER_MS,
    onAbort: (cause) =>
      new HttpError(400, "Cannot echo: the client went away", { cause }),
    // The client's doing, not a server failure to log.
    onSourceError: (cause) => requestBodyFailed("echo", cause),
  });
  const body = decodeBody(input, codings, checked.maxDecompressedBytes);
  return new Response(
    encodeBody(body, responseEncoding),
    responseEncoding ? encodedResponseInit({ headers }) : { headers },
  );
}

/**
 * Creates a fetch handler that answers every `POST` and `PUT` with
 * {@linkcode echo}, `OPTIONS` (a CORS preflight) with `204` and any other
 * method with `405`, both with `Allow: POST, PUT`: mount it in
 * `Deno.serve`, `Bun.serve`, a Workers `fetch` or a router.
 * The options are checked once, here.
 *
 * @param options As for {@linkcode echo}.
 * @returns A fetch handler that echoes each request body.
 * @throws {RangeError} When an option is out of range.
 *
 * @example Echo through a handler
 * ```ts
 * import { createEchoHandler } from "@sluice/streams/http";
 *
 * const handler = createEchoHandler();
 * const response = await handler(
 *   new Request("http://localhost/echo", { method: "POST", body: "hi" }),
 * );
 * console.log(await response.text()); // hi
 * ```
 */
export function createEchoHandler(options: EchoOptions = {}): FetchHandler {
  checkExchangeOptions("create echo handler", options);
  return (request) =>
    Promise.resolve(
      BODY_METHODS.includes(request.method)
        ? echo(request, options)
        : refuseMethod("echo", request, BODY_METHODS),
    );
}
