import { markUnbuffered } from "./_unbuffered.ts";
import { fromUtf8Header } from "./_utf8_header.ts";
import { isClientError, refuseMethod } from "./_client_error.ts";
import { checkTimerMs } from "../_internal/limits.ts";
import { checkArgument, checkHeadersOption } from "../_internal/arguments.ts";
import { isWorkers } from "../_internal/user_agent.ts";
import {
  formatSseEvent,
  type SseEncoderStreamOptions,
  type SseEvent,
} from "./sse_encoder_stream.ts";
import {
  DEFAULT_KEEP_ALIVE_MS,
  EMPTY_COMMENT,
  type KeepAlive,
  keepAlive,
} from "./_sse_keep_alive.ts";

/** Options for {@linkcode sseResponse} and {@linkcode createSseHandler}. */
export interface SseResponseOptions extends SseEncoderStreamOptions {
  /** More response headers (the event-stream headers win). */
  headers?: HeadersInit;
}

/** What a Server-Sent Events source may produce. */
export type SseSource =
  | ReadableStream<SseEvent>
  | AsyncIterable<SseEvent>
  | Iterable<SseEvent>;

/**
 * The headers of an event stream: its type, no caching, no transformation
 * and an explicit identity encoding (so that neither a proxy, nor
 * Deno.serve's automatic compression, nor an edge compresses and thereby
 * buffers it), and no buffering in nginx-style proxies. No `Content-Length`:
 * the stream has no end known in advance.
 */
function sseHeaders(extra?: HeadersInit): Headers {
  const headers = new Headers(extra);
  headers.set("content-type", "text/event-stream; charset=utf-8");
  headers.set("cache-control", "no-cache, no-transform");
  headers.set("content-encoding", "identity");
  markUnbuffered(headers);
  headers.delete("content-length");
  return headers;
}

/**
 * The response body of an event stream: each event the source gives is
 * encoded in the read that asked for it, with the keep-alive of
 * {@linkcode SseEncoderStream} (so no transform between: piped through
 * one, an event cost 9-13 µs per feed under Deno, broadcasting to 5,000
 * feeds, where the bytes enqueued by hand cost 1-2).
 */
function eventBody(
  source: SseSource,
  keepAliveMs: number,
  onCancel?: (reason: unknown) => void,
  gone?: AbortSignal,
): ReadableStream<Uint8Array> {
  checkArgument(
    typeof source === "object" && source !== null &&
      (source instanceof ReadableStream || Symbol.asyncIterator in source ||
        Symbol.iterator in source),
    "send events",
    "the source",
    "a ReadableStream or an (async) iterable of events",
    source,
    typeof source === "function" ? " (call the generator function)" : "",
  );
  // Not ReadableStream.from: browsers lack it.
  const iterator: AsyncIterator<SseEvent> | Iterator<SseEvent> | undefined =
    source instanceof ReadableStream
      ? undefined
      : Symbol.asyncIterator in source
      ? source[Symbol.asyncIterator]()
      : source[Symbol.iterator]();
  const reader = source instanceof ReadableStream
    ? source.getReader()
    : undefined;
  const encoder = new TextEncoder();
  let alive: KeepAlive | undefined;
  let stopped = false;
  const stop = async (reason: unknown) => {
    alive?.stop();
    if (stopped) return;
    stopped = true;
    // First the signal, so that a producer waiting on it wakes up and can
    // return.
    onCancel?.(reason);
    if (reader) await reader.cancel(reason);
    else await iterator!.return?.(reason);
  };
  // Stopped from outside too: the runtime's cancel of a body nobody reads
  // may never come (an abort that came while the handler made the source:
  // at once).
  if (gone?.aborted) stop(gone.reason).catch(() => {});
  else {
    gone?.addEventListener("abort", () => {
      stop(gone.reason).catch(() => {});
    }, { once: true });
  }
  return new ReadableStream<Uint8Array>({
    start(controller) {
      // A comment first, which clients ignore, so that the head goes out
      // at once: Bun 1.4.5 sends a response's head with its first body
      // chunk (a feed whose first event came after 5 s got its head, and
      // EventSource its open, after 5 s; a quiet one at its first
      // keep-alive). Deno and workerd send the head at once, and the
      // comment too: one behaviour everywhere.
      controller.enqueue(EMPTY_COMMENT.slice());
      alive = keepAlive(controller, keepAliveMs);
    },
    async pull(controller) {
      let next: IteratorResult<SseEvent> | ReadableStreamReadResult<SseEvent>;
      try {
        next = stopped
          ? { done: true as const, value: undefined }
          : reader
          ? await reader.read()
          : await iterator!.next();
      } catch (error) {
        alive!.stop();
        // Any other failure cuts the response (the runtime reports it).
        if (!isClientError(error)) throw error;
        // A refusal after the head, which can no longer carry its status
        // (an auth check at the top of a generator runs at the first read):
        // said in a comment, the stream ended, nothing logged, as serve
        // answers a 4xx. Cut, Bun logged its stack and Deno's onError saw
        // a body error.
        controller.enqueue(encoder.encode(formatSseEvent({
          comment: `refused ${error.status} ${error.message}`,
        })));
        controller.close();
        return;
      }
      if (next.done) {
        alive!.stop();
        controller.close();
        return;
      }
      let bytes: Uint8Array;
      try {
        bytes = encoder.encode(formatSseEvent(next.value));
      } catch (error) {
        // An event that cannot be encoded cuts the response, and the
        // source is stopped as a cancelled body's would be.
        stop(error).catch(() => {});
        throw error;
      }
      controller.enqueue(bytes);
      alive!.sent();
    },
    cancel: stop,
  }, { highWaterMark: 0 });
}

/** The methods {@linkcode createSseHandler} serves. */
const SSE_METHODS: readonly string[] = ["GET", "HEAD", "POST"];

/** Closes a source that was never read: a stream cancelled, an iterator returned. */
async function closeUnstarted(source: SseSource): Promise<void> {
  if (source instanceof ReadableStream) {
    await source.cancel();
  } else if (typeof source === "object" && source !== null) {
    const iterator = Symbol.asyncIterator in source
      ? source[Symbol.asyncIterator]()
      : Symbol.iterator in source
      ? source[Symbol.iterator]()
      : undefined;
    await iterator?.return?.();
  }
}

function encode(
  source: SseSource,
  options: SseResponseOptions,
  onCancel?: (reason: unknown) => void,
  gone?: AbortSignal,
): Response {
  const keepAliveMs = options.keepAliveMs ?? DEFAULT_KEEP_ALIVE_MS;
  checkTimerMs("encode events", "keepAliveMs", keepAliveMs);
  const body = eventBody(source, keepAliveMs, onCancel, gone);
  return new Response(body, { headers: sseHeaders(options.headers) });
}

/**
 * Answers a request with a stream of Server-Sent Events: encodes the events
 * as {@linkcode SseEncoderStream} does (keep-alive comments included), each
 * in the read that asks for it, and sets
 * `Content-Type: text/event-stream; charset=utf-8`,
 * `Cache-Control: no-cache, no-transform`, `Content-Encoding: identity` and
 * `X-Accel-Buffering: no`, so that every event reaches the client as it is
 * sent. When the client goes away the source is cancelled (an async
 * generator's `finally` runs), except in Workers, where workerd does not
 * cancel the body: use {@linkcode createSseHandler} there, with the
 * `enable_request_signal` compatibility flag.
 *
 * The body opens with a comment line (`:`), which clients ignore, so that
 * the `200` head goes out at once on every runtime (Bun sends a head with
 * the first body chunk, and held it until the first event), before the
 * source is first read. So a source that fails can no longer change the
 * status: an `HttpError` of status 400-499
 * (a refusal) ends the stream with a comment line carrying its status and
 * message (`: refused 401 Cannot stream: unauthorized`), logged nowhere; any other
 * error cuts the response (the client sees a dropped connection) and the
 * runtime reports it (`serve`'s `onError`, `Deno.serve`'s, or Bun's log).
 * `EventSource` reconnects after either; `fetchEventStream` errors with the
 * refusal's status and message. Refuse before the response is made.
 *
 * @param source The events: a stream, an async iterable (such as an async
 *   generator) or an iterable (such as an array).
 * @param options Keep-alive interval and more headers.
 * @returns A `200` response streaming the events.
 *
 * @example A clock, one event a second
 * ```ts ignore
 * import { sseResponse } from "@sluice/streams/http";
 *
 * Deno.serve(() =>
 *   sseResponse((async function* () {
 *     for (let i = 0; ; i++) {
 *       yield { id: String(i), data: new Date().toISOString() };
 *       await new Promise((resolve) => setTimeout(resolve, 1000));
 *     }
 *   })())
 * );
 * ```
 */
export function sseResponse(
  source: SseSource,
  options: SseResponseOptions = {},
): Response {
  return encode(source, options);
}

/** What an {@linkcode SseHandler} learns about the request. */
export interface SseRequestInfo {
  /**
   * The `Last-Event-ID` the client sent when it reconnected (the id of the
   * last event it received), or `""` on its first connection. Read as UTF-8,
   * as `EventSource` and `fetchEventStream` send it (an id beyond ASCII
   * arrives as the text it was).
   */
  lastEventId: string;
  /**
   * Aborted when the client goes away (the runtime cancels the response
   * body; in Workers, only with the `enable_request_signal` compatibility
   * flag): wait on it rather than on a promise that may never settle, so
   * that the producer can return.
   */
  signal: AbortSignal;
}

/** Produces the events of one event-stream request. */
export type SseHandler = (
  request: Request,
  info: SseRequestInfo,
) => SseSource | Promise<SseSource>;

/**
 * Makes a fetch handler that serves Server-Sent Events: it answers each
 * request with {@linkcode sseResponse} over the events the handler produces,
 * and passes it the client's `Last-Event-ID`, so that a reconnecting client
 * can be sent what it missed. A handler that throws an `HttpError` (or
 * anything with `getResponse()`) answers with that response, but only
 * before it returns its source: a generator's body runs at the first read,
 * after the `200` head has gone out. Check the request (authentication, its
 * parameters) in the handler itself, then return the generator, as in the
 * example; thrown from the source, an `HttpError` of 400-499 only ends the
 * stream, and anything else cuts it (see {@linkcode sseResponse}). `GET` and
 * `POST` get the events; `HEAD` gets the headers alone (the handler is
 * called, but its source is closed unstarted); `OPTIONS` (a CORS
 * preflight) gets `204` and any other method `405`, both with
 * `Allow: GET, HEAD, POST` and the headers of `options`, without calling
 * the handler.
 *
 * @param handler Produces the events for one request.
 * @param options Keep-alive interval and more headers.
 * @returns A `(request) => Promise<Response>` for `Deno.serve`, `Bun.serve`,
 *   a Worker or a router.
 * @throws {TypeError} When `handler` is not a function.
 *
 * @example Refuse a request, or resume from the client's last event
 * ```ts ignore
 * import { createSseHandler, HttpError } from "@sluice/streams/http";
 *
 * const log = ["a", "b", "c"];
 * Deno.serve(createSseHandler((request, { lastEventId }) => {
 *   // Here, before the head: a 401. In the generator it would come too late.
 *   if (request.headers.get("authorization") !== "Bearer secret") {
 *     throw new HttpError(401, "Cannot stream: unauthorized");
 *   }
 *   return (async function* () {
 *     for (let i = lastEventId ? Number(lastEventId) + 1 : 0; i < log.length; i++) {
 *       yield { id: String(i), data: log[i] };
 *     }
 *   })();
 * }));
 * ```
 */
export function createSseHandler(
  handler: SseHandler,
  options: SseResponseOptions = {},
): (request: Request) => Promise<Response> {
  if (typeof handler !== "function") {
    throw new TypeError(
      `Cannot create SSE handler: the handler must be a function, got ${typeof handler}`,
    );
  }
  // Once, here: each request ran the handler, then failed on them.
  if (options.keepAliveMs !== undefined) {
    checkTimerMs("create SSE handler", "keepAliveMs", options.keepAliveMs);
  }
  checkHeadersOption("create SSE handler", options.headers);
  const workers = isWorkers();
  return async (request) => {
    const head = request.method === "HEAD";
    if (!head && request.method !== "GET" && request.method !== "POST") {
      // No events for a request whose answer nobody reads (a preflight).
      return refuseMethod(
        "serve event stream",
        request,
        SSE_METHODS,
        options.headers,
      );
    }
    const cancelled = new AbortController();
    if (workers) {
      // Heard while the handler makes its source too (see encode).
      const gone = request.signal;
      const onAbort = () => cancelled.abort(gone.reason);
      if (gone.aborted) onAbort();
      else gone.addEventListener("abort", onAbort, { once: true });
    }
    try {
      const source = await handler(request, {
        lastEventId: fromUtf8Header(
          request.headers.get("last-event-id") ?? "",
        ),
        // Not request.signal: Deno warns on its use and aborts it when a
        // response completes; a client that goes away cancels the body.
        signal: cancelled.signal,
      });
      if (head) {
        // GET's answer without its body: the handler may still refuse (an
        // HttpError), but its source is closed unstarted (a generator's
        // body never runs).
        cancelled.abort();
        await closeUnstarted(source);
        return new Response(null, { headers: sseHeaders(options.headers) });
      }
      // workerd never cancels a response body whose client left; with the
      // enable_request_signal compatibility flag it aborts request.signal,
      // which then cancels the source as a cancelled body would.
      return encode(
        source,
        options,
        (reason) => cancelled.abort(reason),
        workers ? request.signal : undefined,
      );
    } catch (error) {
      const getResponse = (error as { getResponse?: () => Response } | null)
        ?.getResponse;
      const toResponse = (error as { toResponse?: () => Response } | null)
        ?.toResponse;
      if (typeof getResponse === "function") {
        return getResponse.call(error);
      }
      if (typeof toResponse === "function") return toResponse.call(error);
      throw error;
    }
  };
}
