import { isBrowser } from "../_internal/user_agent.ts";
import { asyncIterable } from "../_internal/async_iterable.ts";
import { failureOf } from "../_internal/message_of.ts";
import { checkFunction, checkSignal } from "../_internal/arguments.ts";
import { isCrossOrigin, resolveHttpUrl } from "./_url.ts";
import { checkMax, checkMs } from "../_internal/limits.ts";
import type {
  SseDecoderStreamOptions,
  SseMessage,
} from "./sse_decoder_stream.ts";
import { createSseParser, type SseParser } from "./_sse_parser.ts";
import { EMPTY_COMMENT } from "./_sse_keep_alive.ts";
import {
  checkHeaderValues,
  fromUtf8Header,
  headerKeeps,
  toUtf8Header,
} from "./_utf8_header.ts";

/** How soon a body of the opening comment alone ends to be an empty one. */
const OPENING_AT_ONCE_MS = 1_000;

/** Options for {@linkcode fetchEventStream}. */
export interface FetchEventStreamOptions extends SseDecoderStreamOptions {
  /**
   * The delay before reconnecting, in milliseconds, until the server sends a
   * `retry` field (which then replaces it).
   *
   * @default {3000}
   */
  retryDelayMs?: number;
  /**
   * The longest delay between two attempts, in milliseconds: the delay
   * doubles with each attempt in a row that brings no event (a connection
   * that fails, or ends or drops before an event), up to this; a server's
   * `Retry-After` is waited up to this too.
   *
   * @default {30000}
   */
  maxRetryDelayMs?: number;
  /**
   * How many connection attempts may fail in a row before the stream
   * errors: network errors, `429`, `502`, `503` or `504` answers, and
   * connections that drop before an event (a server that fails right after
   * its head), end empty, or end with an unfinished event or line, or with
   * what is no event stream (a field other than `data`, `event`, `id` and
   * `retry`: an error page sent as one). A quiet feed that ends (comments,
   * and `retry` or `id` lines that begin no event) is not a failure. A connection that delivers an event resets the count.
   *
   * @default {Infinity}
   */
  maxRetries?: number;
  /**
   * The `Last-Event-ID` to send on the first connection: no control
   * character but a tab, and no space or tab at either end. A
   * `last-event-id` in `headers` does the same (sent as given).
   *
   * @default {the `last-event-id` of `headers`, or none}
   */
  lastEventId?: string;
  /** More request headers. */
  headers?: HeadersInit;
  /** Stops the stream (and any reconnection); it errors with the reason. */
  signal?: AbortSignal;
  /**
   * The fetch to use.
   *
   * @default {globalThis.fetch}
   */
  fetch?: typeof fetch;
}

const DEFAULT_RETRY_MS = 3000;
const DEFAULT_MAX_RETRY_MS = 30_000;
/**
 * What a doubling delay starts from when the reconnection delay is shorter
 * (a server's `retry: 0`): a server that fails or answers nothing again
 * and again is never asked in a tight loop.
 */
const MIN_BACKOFF_MS = 100;

/**
 * How many reconnections in a row to another origin must fail with
 * `Last-Event-ID` while a `HEAD` without it is answered before the stream
 * errors naming the preflight.
 */
const REFUSALS_ACROSS = 3;

/**
 * Statuses that say "not now" (rate-limited, a proxy without its upstream,
 * a server at capacity or shutting down, as `serve` answers): retried as a
 * failed connection, where `EventSource` fails for good.
 */
const RETRIED_STATUSES = new Set([429, 502, 503, 504]);

/** A `Retry-After` (seconds, or an HTTP date) in milliseconds from now. */
function retryAfterMs(value: string | null): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function isEventStream(contentType: string | null): boolean {
  return contentType?.split(";")[0].trim().toLowerCase() ===
    "text/event-stream";
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("Aborted", "AbortError");
}

/** The longest delay one timer takes (2^31 - 1 ms); a longer one fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(abortReason(signal));
    let timer: ReturnType<typeof setTimeout>;
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal));
    };
    // A server's `retry` may be longer than a timer takes: one timer after
    // another.
    const wait = (left: number) => {
      timer = setTimeout(() => {
        if (left > MAX_TIMER_MS) return wait(left - MAX_TIMER_MS);
        signal.removeEventListener("abort", onAbort);
        resolve();
      }, Math.min(left, MAX_TIMER_MS));
    };
    wait(ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Reads a Server-Sent Events stream with `fetch`, reconnecting as
 * `EventSource` does, for runtimes without `EventSource` (Deno and Bun have
 * none that reconnects with custom headers; Node has none) and for browsers
 * when you need headers or a custom fetch.
 *
 * - When the response ends or the connection drops, it reconnects after the
 *   server's `retry` delay (or `retryDelayMs`) and sends `Last-Event-ID` (as
 *   UTF-8) with the last id the stream dispatched, so the server can resume:
 *   every event a connection completed is delivered, even after it drops.
 *   An id that no header carries unchanged (a control character other than
 *   a tab, or a space or tab at either end, valid in an event stream)
 *   errors the stream with a `TypeError` when it would be sent: it cannot
 *   resume.
 * - Each further attempt in a row that brings no event (a connection that
 *   fails with a network error, or ends or drops before an event) waits twice
 *   as long as the one before, from at least 100 ms (even after `retry: 0`) up
 *   to `maxRetryDelayMs`, and never less than the `retry` delay; an event
 *   resets the delay. Every wait is lengthened by up to half, at random
 *   (past `maxRetryDelayMs` too), so that clients a server dropped together
 *   do not all come back at once.
 * - A `429`, `502`, `503` or `504` answer (a rate limit, a proxy without its
 *   server, a server at capacity or shutting down) counts as a failed
 *   connection, and the next attempt waits at least its `Retry-After` (up to
 *   `maxRetryDelayMs`), where `EventSource` fails for good. A connection
 *   that drops before an event (a `200` whose body fails at once), ends
 *   empty, or ends with an unfinished event or with what is no event stream
 *   (an error page sent as one) counts as a failed one too; a quiet feed's
 *   comments, `retry` and `id` lines do not. After more than `maxRetries`
 *   failures in a row the stream errors with a `TypeError` whose `cause` is
 *   the last failure; an event resets the count. A refusal said after the
 *   head (`sseResponse`'s comment for an `HttpError` of 400-499 from its
 *   source) errors the stream at once, as a refusing status does.
 * - In a page, a reconnection to another origin carries `Last-Event-ID`,
 *   which needs a CORS preflight allowing it (`EventSource`'s reconnections
 *   need none). When one fails, a `HEAD` without the header (no preflight)
 *   asks whether the server is there: if it answers and the reconnection
 *   made again at once fails too, three times in a row (a server at
 *   capacity answers a 503 without CORS headers, which reads the same
 *   once), the stream errors with a `TypeError` naming `Last-Event-ID` and
 *   `Access-Control-Allow-Headers`; if not, it retries as above.
 * - A `204 No Content` answer closes the stream (the server's way to say
 *   "do not reconnect"); any other status but `200` (and those above), or a
 *   type other than `text/event-stream`, errors it, as `EventSource` fails
 *   the connection.
 * - Over a size limit (`maxLineBytes`, `maxEventBytes`) it errors with a
 *   `RangeError` and does not reconnect.
 * - `signal` (or cancelling the stream) stops it, also during a delay.
 *
 * Reads are pulled: a consumer that stops reading stops the reading of the
 * response body.
 *
 * @param url The event stream's URL.
 * @param options Reconnection delays, limits, headers, signal and fetch.
 * @returns The events, as a stream (async-iterable).
 * @throws {TypeError} When `url` is not an `http:` or `https:` URL (a
 * relative one needs a page's location), as EventSource's constructor
 * throws, when `lastEventId` has a control character other than a tab or a
 * space or tab at either end, or a value of `headers` has a control
 * character other than a tab.
 * @throws {RangeError} When an option is out of range.
 *
 * @example Follow a feed
 * ```ts ignore
 * import { fetchEventStream } from "@sluice/streams/http";
 *
 * const controller = new AbortController();
 * for await (const message of fetchEventStream("http://127.0.0.1:8000/feed", {
 *   signal: controller.signal,
 * })) {
 *   console.log(message.event, message.id, message.data);
 *   if (message.data === "bye") controller.abort();
 * }
 * ```
 */
export function fetchEventStream(
  url: string | URL,
  options: FetchEventStreamOptions = {},
): ReadableStream<SseMessage> {
  const what = "read event stream";
  // At once: a URL that cannot be one, or one of a scheme fetch cannot
  // send to (ftp:, ws:, "localhost:1/feed" with its http:// forgotten),
  // never connects, however long it retries (EventSource's constructor
  // throws too).
  const target = resolveHttpUrl(what, url);
  let retryDelayMs = options.retryDelayMs ?? DEFAULT_RETRY_MS;
  checkMs(what, "retryDelayMs", retryDelayMs);
  const maxRetryDelayMs = options.maxRetryDelayMs ?? DEFAULT_MAX_RETRY_MS;
  checkMs(what, "maxRetryDelayMs", maxRetryDelayMs);
  const maxRetries = options.maxRetries ?? Infinity;
  if (maxRetries !== Infinity) checkMax(what, "maxRetries", maxRetries);
  const decoderOptions: SseDecoderStreamOptions = {
    maxLineBytes: options.maxLineBytes,
    maxEventBytes: options.maxEventBytes,
  };
  createSseParser(decoderOptions); // checks the limits now
  const given = new Headers(options.headers);
  checkHeaderValues(what, given);
  // A Last-Event-ID among `headers` (as other clients take it) is the
  // first connection's too, sent as given, and is replaced by the ids the
  // stream sets.
  let rawLastEventId = options.lastEventId === undefined
    ? given.get("last-event-id") ?? undefined
    : undefined;
  let lastEventId = options.lastEventId ?? fromUtf8Header(rawLastEventId ?? "");
  if (!headerKeeps(lastEventId)) {
    throw new TypeError(
      `Cannot ${what}: lastEventId ${
        JSON.stringify(lastEventId.slice(0, 64))
      } contains a control character, or a space or tab at one end, which no Last-Event-ID header carries unchanged`,
    );
  }
  checkSignal(what, options.signal);
  checkFunction(what, "fetch", options.fetch);
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const browser = isBrowser();
  const crossOrigin = browser && isCrossOrigin(target);
  const stop = new AbortController();
  const signal = options.signal;
  const onAbort = () => stop.abort(abortReason(signal!));
  if (signal?.aborted) onAbort();
  else signal?.addEventListener("abort", onAbort, { once: true });
  const done = () => signal?.removeEventListener("abort", onAbort);

  // Failed attempts in a row (for maxRetries: network errors, refusals,
  // connections that ended before an event), and attempts in a row that
  // brought no event, the one under way included (for the delay); an event
  // resets both.
  let failures = 0;
  let fruitless = 0;
  let connected = false;
  /** Whether the connection being read has delivered an event. */
  let delivered = false;
  /** Whether the connection being read has brought any byte. */
  let received = false;
  // Bytes of sluice's opening comment (":\n\n", which sseResponse sends
  // first so that Bun sends the head) while nothing else came: a body of
  // that alone that ended at once (within OPENING_AT_ONCE_MS of its head)
  // is an empty one, a failed attempt (taken for a quiet feed, a generator
  // that ended at once was asked again for ever). Later, it is a quiet
  // feed's end, as a keep-alive's.
  let opening = 0;
  let openingOnly = true;
  let openedAt = 0;
  /** The last refusal's `Retry-After`, for the next attempt's delay. */
  let retryAfter: number | undefined;
  // The connection's body and parser; the events its last chunk completed,
  // delivered before the next read.
  let parser: SseParser | undefined;
  let body: ReadableStreamDefaultReader<Uint8Array> | undefined;
  // A stop ends the body's read itself: under Deno an abort of the fetch no
  // longer reached a body whose Response had been collected, and the
  // stream never stopped (its connection held for good).
  stop.signal.addEventListener("abort", () => {
    body?.cancel(stop.signal.reason).catch(() => undefined);
  }, { once: true });
  let events: SseMessage[] = [];
  let next = 0;
  /** Reconnections in a row refused across origins though HEAD answered. */
  let refusedAcross = 0;

  /**
   * After a page's request to another origin carrying Last-Event-ID failed:
   * that header needs a CORS preflight allowing it (EventSource's own
   * needs none), and a server that allows only plain requests fails each
   * reconnection as a network error would, retried for ever. A `HEAD`
   * without it (no preflight of its own) tells the two apart: unanswered,
   * the server is not there (undefined: retried as before); answered, the
   * request is made again at once, in case the server has just come back,
   * and the stream errors if that fails too.
   */
  async function resumeAcross(
    init: RequestInit,
    error: unknown,
  ): Promise<Response | undefined> {
    const plain = new Headers(init.headers);
    plain.delete("last-event-id");
    try {
      const probe = await fetchImpl(url, {
        ...init,
        method: "HEAD",
        headers: plain,
      });
      await probe.body?.cancel();
    } catch {
      if (stop.signal.aborted) throw abortReason(stop.signal);
      return undefined;
    }
    try {
      const response = await fetchImpl(url, init);
      refusedAcross = 0;
      return response;
    } catch {
      if (stop.signal.aborted) throw abortReason(stop.signal);
      // Once could be a server at capacity: its 503 carries no CORS headers
      // and reads as a network error too (a feed ended for good on one).
      if (++refusedAcross < REFUSALS_ACROSS) return undefined;
      throw new TypeError(
        `Cannot ${what}: the stream cannot resume: ${target.origin} is another origin, which answers requests without Last-Event-ID but refused one with it (its CORS preflight must allow the header: list last-event-id in Access-Control-Allow-Headers, as cors.allowedHeaders from @sluice/streams/http does)`,
        { cause: error },
      );
    }
  }

  /** Counts a failed attempt; past maxRetries, the stream errors. */
  function countFailure(cause: unknown, last: string): void {
    failures++;
    if (failures <= maxRetries) return;
    throw new TypeError(
      `Cannot ${what}: ${failures} connection ${
        failures === 1 ? "attempt" : "attempts"
      } failed in a row (maxRetries ${maxRetries}), the last: ${last}`,
      { cause },
    );
  }

  async function connect(): Promise<"open" | "closed"> {
    for (;;) {
      if (stop.signal.aborted) throw abortReason(stop.signal);
      if (connected || failures > 0) {
        // The back-off never goes below the server's reconnection time.
        const longest = Math.max(retryDelayMs, maxRetryDelayMs);
        const delay = fruitless <= 1 ? retryDelayMs : Math.min(
          longest,
          Math.max(retryDelayMs, MIN_BACKOFF_MS) * 2 ** (fruitless - 1),
        );
        // The server's Retry-After up to the longest delay, then up to half
        // again at random, past that longest too: clients dropped together
        // spread (capped, or told the same Retry-After, they all came back
        // in the same few milliseconds).
        const base = Math.min(longest, Math.max(delay, retryAfter ?? 0));
        await sleep(base * (1 + Math.random() / 2), stop.signal);
        retryAfter = undefined;
      }
      connected = true;
      fruitless++;
      const headers = new Headers(options.headers);
      // Again for each connection: a Headers object the caller changes (a
      // refreshed token) may have gained a value fetch refuses, which was
      // retried for ever as a network error.
      checkHeaderValues(what, headers);
      headers.set("accept", "text/event-stream");
      // A browser adds Cache-Control itself for a request that must not be
      // cached, as for EventSource, so that a feed from another origin
      // needs no preflight; elsewhere, `cache` may be unimplemented.
      if (!browser) headers.set("cache-control", "no-cache");
      if (!headerKeeps(lastEventId)) {
        // Sent, Deno's fetch refuses a control character (a network error,
        // retried for ever) and Bun's server answers 400; fetch trims a
        // space or tab at either end (the server reads another id): the
        // stream cannot resume.
        throw new TypeError(
          `Cannot ${what}: the last event id received, ${
            JSON.stringify(lastEventId.slice(0, 64))
          }, contains a control character, or a space or tab at one end, which no Last-Event-ID header carries unchanged: the stream cannot resume`,
        );
      }
      if (lastEventId !== "") {
        headers.set(
          "last-event-id",
          rawLastEventId ?? toUtf8Header(lastEventId),
        );
      } else headers.delete("last-event-id");
      const init: RequestInit = {
        headers,
        signal: stop.signal,
        ...(browser ? { cache: "no-store" } : {}),
      };
      let response: Response;
      try {
        response = await fetchImpl(url, init);
        refusedAcross = 0;
      } catch (error) {
        if (stop.signal.aborted) throw abortReason(stop.signal);
        const again = crossOrigin && headers.has("last-event-id")
          ? await resumeAcross(init, error)
          : undefined;
        if (again !== undefined) {
          response = again;
        } else {
          countFailure(error, failureOf(error));
          continue;
        }
      }
      if (response.status === 204) {
        await response.body?.cancel();
        return "closed";
      }
      if (RETRIED_STATUSES.has(response.status)) {
        await response.body?.cancel();
        const answered = `the server answered ${response.status}`;
        countFailure(new TypeError(`Cannot ${what}: ${answered}`), answered);
        retryAfter = retryAfterMs(response.headers.get("retry-after"));
        continue;
      }
      const type = response.headers.get("content-type");
      if (response.status !== 200 || !isEventStream(type)) {
        await response.body?.cancel();
        throw new TypeError(
          response.status !== 200
            ? `Cannot ${what}: the server answered ${response.status}`
            : `Cannot ${what}: the response is ${
              JSON.stringify((type ?? "").slice(0, 64))
            }, not text/event-stream`,
        );
      }
      if (!response.body) {
        const ended = "the response ended at once, empty";
        countFailure(new TypeError(`Cannot ${what}: ${ended}`), ended);
        continue;
      }
      // The id carries over: a connection that dispatches nothing (ends at
      // once) must not make the next one start from the beginning.
      parser = createSseParser({ ...decoderOptions, lastEventId });
      body = response.body.getReader();
      delivered = false;
      received = false;
      opening = 0;
      openingOnly = true;
      openedAt = performance.now();
      return "open";
    }
  }

  const stream = new ReadableStream<SseMessage>({
    async pull(controller) {
      try {
        for (;;) {
          // Aborted: not one more event, even of a burst already parsed
          // (after an abort, 680-999 more of a chunk of 1,000 came first).
          if (stop.signal.aborted) throw abortReason(stop.signal);
          if (next < events.length) {
            const event = events[next++];
            failures = 0;
            fruitless = 0;
            delivered = true;
            controller.enqueue(event);
            return;
          }
          if (!body) {
            if (await connect() === "closed") {
              done();
              controller.close();
              return;
            }
          }
          let result: ReadableStreamReadResult<Uint8Array>;
          // The read's failure, where the connection dropped.
          let dropped: { error: unknown } | undefined;
          try {
            result = await body!.read();
          } catch (error) {
            if (stop.signal.aborted) throw abortReason(stop.signal);
            dropped = { error };
            result = { done: true, value: undefined };
          }
          if (result.done) {
            // Ended or dropped, every event it completed delivered: the
            // parser's id is the last one (an id-only block counts too).
            if (parser!.lastEventId !== lastEventId) {
              rawLastEventId = undefined;
            }
            lastEventId = parser!.lastEventId;
            const refusal = dropped === undefined ? parser!.refusal : undefined;
            // A quiet feed's keep-alives: comments, and `retry`, `id` or
            // `event` lines that begin no event, every line finished. Not:
            // an unfinished event or line, or a field no event stream has.
            if (
              openingOnly && opening === EMPTY_COMMENT.length &&
              performance.now() - openedAt < OPENING_AT_ONCE_MS
            ) received = false;
            const quiet = received && !parser!.sawUnknownField &&
              !parser!.inEvent && !parser!.inField;
            body = parser = undefined;
            if (refusal !== undefined) {
              // Refused after its head (a check in a generator): as a
              // refusing status, not asked again.
              throw new TypeError(
                `Cannot ${what}: the server refused it after its head: ${refusal}`,
              );
            }
            if (!delivered && (dropped !== undefined || !quiet)) {
              // A failed attempt too: a server that answered 200 and then
              // failed, said nothing at all, or said something that was no
              // event (an unfinished one, an error page as an event
              // stream) was asked again for ever. (A quiet feed that ends,
              // keep-alives only, is not one.)
              const ended = dropped !== undefined
                ? `the response failed before any event: ${
                  failureOf(dropped.error)
                }`
                : received
                ? "the response ended with an unfinished event or what is no event stream"
                : "the response ended at once, empty";
              countFailure(
                dropped === undefined
                  ? new TypeError(`Cannot ${what}: ${ended}`)
                  : dropped.error,
                ended,
              );
            }
            continue;
          }
          if (result.value.byteLength > 0) received = true;
          if (openingOnly) {
            for (const byte of result.value) {
              if (
                opening < EMPTY_COMMENT.length &&
                byte === EMPTY_COMMENT[opening]
              ) {
                opening++;
              } else {
                openingOnly = false;
                break;
              }
            }
          }
          // Over a limit: a RangeError, and no reconnection.
          events = parser!.push(result.value);
          next = 0;
          if (parser!.retryMs !== undefined) retryDelayMs = parser!.retryMs;
        }
      } catch (error) {
        done();
        stop.abort(error);
        throw error;
      }
    },
    async cancel(reason) {
      done();
      stop.abort(reason);
      // The body is being given up: how its cancellation ends is moot.
      await body?.cancel(reason).catch(() => undefined);
    },
  }, { highWaterMark: 0 });
  // Async-iterable in WebKit too (see asyncIterable): `for await` over it
  // is the way the docs read it.
  return asyncIterable(stream);
}
