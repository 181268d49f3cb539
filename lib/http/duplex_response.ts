import { markUnbuffered } from "./_unbuffered.ts";
import {
  checkArgument,
  checkBodyUnused,
  checkFunction,
  checkHeadersOption,
  checkOneOf,
} from "../_internal/arguments.ts";
import {
  DuplexStream,
  type DuplexStreamOptions,
} from "../streams/duplex_stream.ts";
import { ReadAheadStream } from "../streams/read_ahead_stream.ts";
import type { Compression } from "./compression.ts";
import {
  decodeBody,
  encodeBody,
  encodedResponseInit,
  negotiateCompression,
  parseContentEncoding,
} from "./_compression.ts";
import { HttpError } from "./http_error.ts";
import {
  BODY_METHODS,
  isClientError,
  refuseMethod,
  requestBodyFailed,
} from "./_client_error.ts";
import { duplexMaxReadBytes, WRITE_HIGH_WATER_MARK } from "./_defaults.ts";
import {
  type CheckedExchangeOptions,
  checkExchangeOptions,
} from "./_exchange_options.ts";
import type { FetchHandler } from "./fetch_handler.ts";
import { withIdleTimeout } from "../_internal/idle_timeout.ts";
import { checkMax } from "../_internal/limits.ts";
import { deferred } from "../_internal/deferred.ts";
import { byteQueueStrategy } from "../_internal/bytes.ts";
import { callOnError, markReported } from "../_internal/reported.ts";

/** Handles one duplex exchange; the stream is closed when it settles. */
export type DuplexHandler = (
  stream: DuplexStream,
  request: Request,
) => void | Promise<void>;

/** Options for {@linkcode duplexResponse}. */
export interface DuplexResponseOptions extends DuplexStreamOptions {
  /**
   * The most bytes a compressed request body may decode to. Past it the
   * handler's reads reject with an {@linkcode HttpError} 413, which becomes a
   * 413 response if the handler has not written yet.
   *
   * @default {67108864}
   */
  maxDecompressedBytes?: number;
  /**
   * The compressions decoded in a request (`Content-Encoding`; others are
   * answered with 415) and that the response may use, chosen from the
   * request's `Accept-Encoding` by q-value (see `compressMinBytes`). `[]`
   * refuses compressed requests and never compresses.
   *
   * @default {["gzip", "deflate"]}
   */
  acceptCompression?: readonly Compression[];
  /**
   * The response of a duplex exchange has no known length, and a
   * `CompressionStream` cannot be flushed (it may hold written bytes back,
   * which stalls lockstep exchanges), so the response is compressed only
   * when this is `0`: set it to `0` with `acceptCompression` for bulk
   * transfers. Any other value keeps the response uncompressed.
   *
   * @default {1024}
   */
  compressMinBytes?: number;
  /**
   * Memory, in bytes, that the request body's chunks read ahead of the
   * handler may keep alive, each counting its whole buffer; keeps
   * Deno.serve fast over HTTP/1.1 when the handler reads slowly. `0`
   * disables it. A chunk is one read of the request body: for a request
   * with a `Content-Length`, where the runtime already holds more than a
   * read took (Deno 2.9.6 over HTTP/1.1 buffers a full-duplex request
   * without bound, see docs/known-runtime-issues.md), reads grow to take it
   * in fewer steps, up to 16 MiB each.
   *
   * @default {1048576}
   */
  readAheadBytes?: number;
  /**
   * Bytes of written output queued before `write` waits (the output's
   * high-water mark). `0`: each write waits until the one before it was
   * taken.
   *
   * @default {65536}
   */
  writeHighWaterMark?: number;
  /**
   * The longest wait for the next bytes of the request, in milliseconds,
   * while the handler (or the read-ahead) is reading: past it the handler's
   * reads reject with an {@linkcode HttpError} 408 — answered 408 if the
   * handler has not written yet — so a client that sends nothing cannot pin
   * the handler forever. `0` disables (for exchanges that idle by design).
   *
   * @default {30000}
   */
  idleTimeoutMs?: number;
  /** Extra response headers. */
  headers?: HeadersInit;
  /**
   * When to send the response headers: `"first-write"` waits for the
   * handler's first write (or `closeWrite`, or its end), so an error before
   * it still becomes a status, such as 413 for a decompression bomb;
   * `"immediately"` sends 200 at once, for clients that wait for the headers
   * before they write.
   *
   * @default {"first-write"}
   */
  sendHeaders?: "first-write" | "immediately";
  /**
   * Called with a handler error that cannot become a status any more (the
   * response had started; the client sees its body fail) or that is not an
   * {@linkcode HttpError} (answered 500). The default logs it with
   * `console.error`, except an `HttpError` of status 400-499 (the client's
   * side, such as the 408 of an idle request read after the response
   * started), which it drops. An error told to it after the response
   * started is not logged again by `serve`'s default `onError` (Deno.serve
   * passes it the failed response body's error). What `onError` itself
   * throws is logged with `console.error` ("sluice: onError failed:").
   *
   * @default {console.error, except 4xx HttpErrors}
   */
  onError?: (error: unknown) => void;
}

function defaultOnError(error: unknown): void {
  if (isClientError(error)) return;
  console.error("sluice: duplex handler failed:", error);
}

/** The options of {@linkcode duplexResponse}, checked, with their defaults. */
interface CheckedDuplexOptions extends CheckedExchangeOptions {
  writeHighWaterMark: number;
  onError: (error: unknown) => void;
}

/**
 * Checks what {@linkcode duplexResponse} takes: for each request, and once
 * by {@linkcode createDuplexHandler} (which took any and then failed every
 * request).
 */
function checkDuplexOptions(
  what: string,
  options: DuplexResponseOptions,
): CheckedDuplexOptions {
  const shared = checkExchangeOptions(what, options);
  checkFunction(what, "onError", options.onError);
  checkHeadersOption(what, options.headers);
  if (options.sendHeaders !== undefined) {
    checkOneOf(what, "sendHeaders", options.sendHeaders, [
      "first-write",
      "immediately",
    ]);
  }
  // DuplexStream's own, for the handler's factory.
  checkMax(what, "maxReadBytes", options.maxReadBytes ?? 0);
  checkMax(what, "maxLineBytes", options.maxLineBytes ?? 0);
  return {
    ...shared,
    writeHighWaterMark: checkMax(
      what,
      "writeHighWaterMark",
      options.writeHighWaterMark ?? WRITE_HIGH_WATER_MARK,
    ),
    onError: options.onError ?? defaultOnError,
  };
}

/**
 * Runs `handler` on a {@linkcode DuplexStream} that reads the request body
 * and writes the response body, and resolves with the response: the
 * server side of a full-duplex exchange. The handler can read and write in
 * any order; writes reach the client while the request is still arriving.
 *
 * - The request body is decoded per its `Content-Encoding` (one of
 *   `acceptCompression`; others get 415) up to `maxDecompressedBytes` (413
 *   past it).
 * - The response is `application/octet-stream`, compressed only as
 *   `acceptCompression` and `compressMinBytes` allow.
 * - When the handler returns, the stream is closed (output closed, rest of
 *   input cancelled). When it throws, the error becomes the status if no
 *   byte was written yet ({@linkcode HttpError}'s status, else 500), and
 *   otherwise aborts the response body, which the client sees as an error.
 * - A client that aborts errors the handler's pending reads and writes.
 *
 * @param request The request to answer.
 * @param handler Reads and writes the exchange.
 * @param options Limits, encodings and when to send the headers.
 * @returns The response, once headers can be sent (see `sendHeaders`).
 *
 * @example Echo lines in upper case
 * ```ts ignore
 * import { duplexResponse } from "@sluice/streams/http";
 * import { serve } from "@sluice/streams/serve";
 *
 * await serve((request) =>
 *   duplexResponse(request, async (stream) => {
 *     for await (const line of stream.lines()) {
 *       await stream.write(line.toUpperCase() + "\n");
 *     }
 *   })
 * );
 * ```
 */
export function duplexResponse(
  request: Request,
  handler: DuplexHandler,
  options: DuplexResponseOptions = {},
): Promise<Response> {
  checkArgument(
    typeof handler === "function",
    "answer duplex",
    "the handler",
    "a function",
    handler,
  );
  const {
    maxDecompressedBytes,
    readAheadBytes,
    writeHighWaterMark,
    compressMinBytes,
    idleTimeoutMs,
    onError,
    acceptCompression: offered,
  } = checkDuplexOptions("answer duplex", options);
  checkBodyUnused("answer duplex", request);
  let codings;
  try {
    codings = parseContentEncoding(
      request.headers.get("content-encoding"),
      offered,
    );
  } catch (error) {
    if (error instanceof HttpError) return Promise.resolve(error.getResponse());
    throw error;
  }
  const responseEncoding = compressMinBytes === 0
    ? negotiateCompression(request.headers.get("accept-encoding"), offered)
    : undefined;
  const headers = new Headers(options.headers);
  headers.set("content-type", "application/octet-stream");
  if (!headers.has("cache-control")) headers.set("cache-control", "no-store");
  markUnbuffered(headers);
  if (responseEncoding) headers.set("content-encoding", responseEncoding);
  if (compressMinBytes === 0 && offered.length > 0) {
    headers.append("vary", "accept-encoding");
  }

  let input = request.body
    ? decodeBody(
      withIdleTimeout(
        request.body,
        idleTimeoutMs,
        () =>
          new HttpError(
            408,
            `Cannot read request: no bytes arrived for ${idleTimeoutMs} ms (idleTimeoutMs)`,
          ),
        duplexMaxReadBytes(request),
        undefined,
        // The client's doing, not the handler's failure to log.
        (cause) => requestBodyFailed("read request", cause),
      ),
      codings,
      maxDecompressedBytes,
    )
    : new ReadableStream<Uint8Array>({ start: (c) => c.close() });
  if (readAheadBytes > 0) {
    input = input.pipeThrough(
      new ReadAheadStream({ highWaterMark: readAheadBytes }),
    );
  }

  const started = deferred<void>();
  let responded = false;
  const start = () => {
    responded = true;
    started.resolve();
  };
  // The readable side's high-water mark of one byte lets the first chunk in
  // at once, which is what marks the response as started.
  // The runtime cancels the response body when the client goes away; the
  // handler's writes then fail with its reason.
  let gone: { reason: unknown } | undefined;
  const output = new TransformStream<Uint8Array, Uint8Array>(
    {
      transform(chunk, controller) {
        start();
        controller.enqueue(chunk);
      },
      flush() {
        start();
      },
      cancel(reason) {
        gone = { reason };
      },
    } as Transformer<Uint8Array, Uint8Array>,
    // At least one byte: a queue of 0 is never ready for a write.
    byteQueueStrategy(writeHighWaterMark),
    new ByteLengthQueuingStrategy({ highWaterMark: 1 }),
  );
  const stream = new DuplexStream(input, output.writable, options);
  const response = () =>
    new Response(
      encodeBody(output.readable, responseEncoding),
      responseEncoding ? encodedResponseInit({ headers }) : { headers },
    );
  if (options.sendHeaders === "immediately") start();

  const answered = started.promise.then(response);
  // A write that failed because the client went away (the cancel's own
  // reason, or an error caused by it) is its doing, not the handler's
  // failure to log (a client could fill the log); anything else the
  // handler throws then is still its own.
  const blame = (error: unknown) =>
    gone !== undefined && !(error instanceof HttpError) &&
      (error === gone.reason ||
        // (workerd cancels with no reason: no error without a cause is
        // taken for one caused by it.)
        gone.reason !== undefined &&
          (error as { cause?: unknown } | null)?.cause === gone.reason)
      ? new HttpError(400, "Cannot answer duplex: the client went away", {
        cause: error,
      })
      : error;
  const failed = (async () => {
    try {
      await handler(stream, request);
    } catch (thrown) {
      const error = blame(thrown);
      // A reason, always: close() without one ends the response as if the
      // handler had succeeded (a handler that threw undefined after writing
      // sent a truncated 200 that looked complete). An object, so that it
      // can be marked as told to onError: Deno.serve passes the failed
      // response body's error to the server's onError too, and serve's
      // default one logged it a second time.
      const reason = typeof error === "object" && error !== null
        ? error
        : new Error(
          `Cannot serve duplex: the handler threw ${
            error === undefined ? "undefined" : `a ${typeof error}`
          }`,
          { cause: error },
        );
      if (responded) markReported(reason);
      await stream.close(reason);
      if (responded) {
        callOnError(onError, error);
        return undefined;
      }
      if (error instanceof HttpError) return error.getResponse();
      callOnError(onError, error);
      return new Response("Internal Server Error", { status: 500 });
    }
    try {
      await stream.close();
    } catch (error) {
      callOnError(onError, blame(error));
    }
    return undefined;
  })();
  return Promise.race([
    answered,
    failed.then((early) => early ?? answered),
  ]);
}

/**
 * Creates a fetch handler that answers every `POST` and `PUT` with
 * {@linkcode duplexResponse} running `handler`, `OPTIONS` (a CORS
 * preflight) with `204` and any other method with `405`, both with
 * `Allow: POST, PUT` and the `headers` of `options`, the handler not run:
 * mount it in `Deno.serve`, `Bun.serve`, a Workers `fetch` or a router.
 *
 * @param handler Reads and writes each exchange.
 * @param options As for {@linkcode duplexResponse}.
 * @returns A fetch handler.
 * @throws {TypeError} When `handler` is not a function.
 *
 * @example Answer each line in upper case
 * ```ts
 * import { createDuplexHandler } from "@sluice/streams/http";
 *
 * const handler = createDuplexHandler(async (stream) => {
 *   for await (const line of stream.lines()) {
 *     await stream.write(line.toUpperCase() + "\n");
 *   }
 * });
 * const response = await handler(
 *   new Request("http://localhost/", { method: "POST", body: "hi\n" }),
 * );
 * console.log(await response.text()); // HI
 * ```
 */
export function createDuplexHandler(
  handler: DuplexHandler,
  options: DuplexResponseOptions = {},
): FetchHandler {
  if (typeof handler !== "function") {
    throw new TypeError(
      `Cannot create duplex handler: the handler must be a function, got ${typeof handler}`,
    );
  }
  checkDuplexOptions("create duplex handler", options);
  // A request with no body to exchange (a HEAD from a link checker, a CORS
  // preflight) ran the handler: 405 (OPTIONS 204), as the upload handler
  // answers.
  return (request) =>
    BODY_METHODS.includes(request.method)
      ? duplexResponse(request, handler, options)
      : Promise.resolve(
        refuseMethod("answer duplex", request, BODY_METHODS, options.headers),
      );
}
