import { checkMax, checkTimerMs } from "../_internal/limits.ts";
import { headerKeeps } from "./_utf8_header.ts";
import { asyncIterable } from "../_internal/async_iterable.ts";
import {
  DEFAULT_KEEP_ALIVE_MS,
  type KeepAlive,
  keepAlive,
} from "./_sse_keep_alive.ts";

/**
 * One Server-Sent Event to send. Every field is optional: an event with
 * only `id` or `retry` updates the client without dispatching anything, one
 * with only `comment` is ignored by clients (a keep-alive).
 */
export interface SseEvent {
  /**
   * The payload. Line breaks (CR, LF or CRLF) split it into several `data:`
   * lines, which the client joins back with LF. Send JSON with
   * `JSON.stringify`.
   */
  data?: string | undefined;
  /** The event type (`message` on the client when absent); one line. */
  event?: string | undefined;
  /**
   * The event id: the client sends it back as `Last-Event-ID` when it
   * reconnects. One line, without NUL or other control characters (a tab
   * inside is fine) and without a space or tab at either end, which no
   * request header carries unchanged.
   */
  id?: string | undefined;
  /** The client's reconnection delay from now on, in milliseconds. */
  retry?: number | undefined;
  /** A comment, ignored by clients; line breaks make several comments. */
  comment?: string | undefined;
}

/** Options for {@linkcode SseEncoderStream}. */
export interface SseEncoderStreamOptions {
  /**
   * Sends a comment line (`:`) after this many milliseconds without an event,
   * so that proxies and load balancers do not close an idle stream and a
   * dropped client is noticed. `0` turns it off. The default stays well
   * under `Bun.serve`'s own idle timeout (10 s, counted in 4-s ticks: it
   * closes a connection idle for 8-12 s, as the ticks fall; at 15 s, a
   * quiet feed served by `Bun.serve` with its defaults was cut after 10-12
   * s, and at 8 s its keep-alive raced the earliest tick).
   *
   * @default {5000}
   */
  keepAliveMs?: number;
}

const LINE_BREAK = /\r\n|\r|\n/;

/** The field's value if it is a string (or absent), else a TypeError. */
function text(
  event: SseEvent,
  field: "data" | "event" | "id" | "comment",
): string | undefined {
  const value = event[field];
  if (value === undefined || typeof value === "string") return value;
  throw new TypeError(
    `Cannot encode event: its ${field} must be a string, got ${
      value === null ? "null" : typeof value
    }${field === "data" ? " (send JSON with JSON.stringify)" : ""}`,
  );
}

function oneLine(field: string, value: string): string {
  if (/[\r\n]/.test(value)) {
    throw new TypeError(
      `Cannot encode event: its ${field} must be one line, got ${
        JSON.stringify(value.slice(0, 64))
      }`,
    );
  }
  return value;
}

/**
 * Formats one event as `text/event-stream` text (without the keep-alive).
 *
 * @param event The event.
 * @returns Its lines, ending with the blank line that dispatches it.
 * @throws {TypeError} When `event` is not an object, a text field is not a
 * string, `event` or `id` spans lines, or `id` has a control character
 * other than a tab or a space or tab at either end.
 * @throws {RangeError} When `retry` is not a non-negative integer.
 */
export function formatSseEvent(event: SseEvent): string {
  if (typeof event !== "object" || event === null || Array.isArray(event)) {
    throw new TypeError(
      `Cannot encode event: expected an object such as { data: "..." }, got ${
        event === null
          ? "null"
          : Array.isArray(event)
          ? "an array"
          : typeof event
      }`,
    );
  }
  const comment = text(event, "comment");
  const type = text(event, "event");
  const id = text(event, "id");
  const data = text(event, "data");
  let out = "";
  if (comment !== undefined) {
    for (const line of comment.split(LINE_BREAK)) out += `: ${line}\n`;
  }
  if (type !== undefined) out += `event: ${oneLine("event", type)}\n`;
  if (id !== undefined) {
    if (id.includes("\0")) {
      throw new TypeError(
        "Cannot encode event: its id contains NUL, which clients ignore",
      );
    }
    const line = oneLine("id", id);
    if (!headerKeeps(line)) {
      throw new TypeError(
        "Cannot encode event: its id contains a control character, or a space or tab at one end, which a client cannot send back unchanged as Last-Event-ID",
      );
    }
    out += `id: ${line}\n`;
  }
  if (event.retry !== undefined) {
    if (typeof event.retry !== "number") {
      throw new TypeError(
        `Cannot encode event: its retry must be a number of milliseconds, got ${typeof event
          .retry}`,
      );
    }
    out += `retry: ${checkMax("encode event", "retry", event.retry)}\n`;
  }
  if (data !== undefined) {
    for (const line of data.split(LINE_BREAK)) {
      out += line === "" ? "data\n" : `data: ${line}\n`;
    }
  }
  return out + "\n";
}

/**
 * Encodes {@linkcode SseEvent} objects as `text/event-stream` bytes (UTF-8),
 * one chunk per event, and sends a keep-alive comment when no event was sent
 * for `keepAliveMs` (only while the reader keeps up: it is never queued ahead
 * of back-pressure).
 *
 * Serve it with {@linkcode sseResponse} (or `createSseHandler`), which sets
 * the headers an event stream needs.
 *
 * @example Encode two events
 * ```ts
 * import { SseEncoderStream } from "@sluice/streams/http";
 *
 * const bytes = ReadableStream.from([
 *   { event: "greeting", data: "Hello,\nWorld!", id: "1" },
 *   { data: "bye" },
 * ]).pipeThrough(new SseEncoderStream({ keepAliveMs: 0 }));
 * const text = await new Response(bytes).text();
 * console.log(text);
 * // event: greeting
 * // id: 1
 * // data: Hello,
 * // data: World!
 * //
 * // data: bye
 * ```
 */
export class SseEncoderStream extends TransformStream<SseEvent, Uint8Array> {
  /**
   * Creates an encoder.
   *
   * @param options The keep-alive interval.
   */
  constructor(options: SseEncoderStreamOptions = {}) {
    const keepAliveMs = options.keepAliveMs ?? DEFAULT_KEEP_ALIVE_MS;
    checkTimerMs("encode events", "keepAliveMs", keepAliveMs);
    const encoder = new TextEncoder();
    let alive: KeepAlive | undefined;
    super({
      start(controller) {
        alive = keepAlive(controller, keepAliveMs);
      },
      transform(event, controller) {
        try {
          controller.enqueue(encoder.encode(formatSseEvent(event)));
        } catch (error) {
          alive!.stop();
          throw error;
        }
        alive!.sent();
      },
      flush() {
        alive!.stop();
      },
      cancel() {
        alive!.stop();
      },
    } as Transformer<SseEvent, Uint8Array>);
    // Its readable is async-iterable in WebKit too (see asyncIterable).
    asyncIterable(this.readable);
  }
}
