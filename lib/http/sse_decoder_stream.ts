import {
  createSseParser,
  type SseMessage,
  type SseParser,
} from "./_sse_parser.ts";
import { asyncIterable } from "../_internal/async_iterable.ts";

export type { SseMessage };

/** Options for {@linkcode SseDecoderStream}. */
export interface SseDecoderStreamOptions {
  /**
   * The longest line, in bytes. A longer one errors the stream with a
   * `RangeError` before it is buffered.
   *
   * @default {1048576}
   */
  maxLineBytes?: number;
  /**
   * The most bytes of `data` lines one event may have, each line counting
   * 32 bytes more than its own (what it costs in the string built from
   * it). A bigger event errors the stream with a `RangeError`.
   *
   * @default {16777216}
   */
  maxEventBytes?: number;
  /**
   * The last event id from before this stream (a reconnection's
   * `Last-Event-ID`): the stream starts from it, as Chromium's
   * `EventSource` starts each connection, so an event with no `id` field
   * before it carries it, and only an `id` field changes it (an empty one
   * clears it): a block without one (a keep-alive) keeps it.
   *
   * @default {""}
   */
  lastEventId?: string;
}

/**
 * Decodes `text/event-stream` bytes into the events an `EventSource` would
 * dispatch, following the WHATWG HTML standard's event-stream parsing: a
 * leading BOM is dropped; lines end in CRLF, LF or CR (even split across
 * chunks); lines starting with `:` are comments; a line without a colon is a
 * field with an empty value; `data` lines are joined with LF; `retry` counts
 * only if it is all ASCII digits; an `id` containing NUL is ignored; a blank
 * line dispatches the event, and one without data dispatches nothing. An
 * unfinished event at the end of the stream is dropped.
 *
 * The stream also keeps what a client needs to reconnect:
 * {@linkcode SseDecoderStream.prototype.lastEventId} and
 * {@linkcode SseDecoderStream.prototype.retryMs}.
 *
 * @example Decode a response body
 * ```ts
 * import { SseDecoderStream } from "@sluice/streams/http";
 *
 * const body = new Response("event: hello\ndata: World\nid: 7\n\n").body!;
 * for await (const message of body.pipeThrough(new SseDecoderStream())) {
 *   console.log(message); // { data: "World", event: "hello", id: "7" }
 * }
 * ```
 */
export class SseDecoderStream extends TransformStream<Uint8Array, SseMessage> {
  #parser: SseParser;

  /**
   * Creates a decoder.
   *
   * @param options Line and event size limits, and the last event id
   *   from before this stream.
   */
  constructor(options: SseDecoderStreamOptions = {}) {
    const parser = createSseParser(options);
    super({
      transform(chunk, controller) {
        for (const message of parser.push(chunk)) controller.enqueue(message);
      },
    });
    this.#parser = parser;
    // Its readable is async-iterable in WebKit too (see asyncIterable).
    asyncIterable(this.readable);
  }

  /**
   * The id the stream is at: the `lastEventId` option (`""` if not given)
   * until an `id` field and the blank line after it change it: what a
   * reconnecting client sends as `Last-Event-ID`.
   *
   * @returns The last event id.
   */
  get lastEventId(): string {
    return this.#parser.lastEventId;
  }

  /**
   * The last valid `retry` field, in milliseconds, or `undefined` if none.
   *
   * @returns The server's reconnection delay.
   */
  get retryMs(): number | undefined {
    return this.#parser.retryMs;
  }
}
