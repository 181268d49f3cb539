import {
  MultipartDecoder,
  type MultipartLimits,
  type MultipartPartInfo,
} from "./multipart_decoder.ts";
import { PartBody } from "./_part_body.ts";
import { RAW_NAMES } from "./_multipart_headers.ts";
import { asyncIterable } from "../_internal/async_iterable.ts";

/** One part of a multipart/form-data body, with its body as a stream. */
export interface MultipartPart extends MultipartPartInfo {
  /**
   * The part's body. Read it to the end or cancel it: the next part comes
   * only after that.
   */
  readonly body: ReadableStream<Uint8Array>;
  /**
   * Reads the whole body as UTF-8 text (bounded by `maxFieldBytes` or
   * `maxFileBytes`), a leading byte order mark kept.
   */
  text(): Promise<string>;
  /**
   * Reads the whole body into one array (of its own `ArrayBuffer`, so web
   * APIs that take a `BufferSource`, such as `crypto.subtle.digest`, take
   * it as typed).
   */
  bytes(): Promise<Uint8Array<ArrayBuffer>>;
}

/** Options for {@linkcode MultipartStream}: the parser's limits. */
export type MultipartStreamOptions = MultipartLimits;

/** A part; its Headers object is made only if asked for. */
class Part implements MultipartPart {
  readonly name: string;
  readonly filename: string | undefined;
  readonly contentType: string;
  readonly body: ReadableStream<Uint8Array>;
  #info: MultipartPartInfo;
  constructor(info: MultipartPartInfo, body: PartBody) {
    this.name = info.name;
    this.filename = info.filename;
    this.contentType = info.contentType;
    this.body = body.stream;
    this.#info = info;
    // The names as sent, for the upload handler (not a field of the part).
    const raw = RAW_NAMES.get(info);
    if (raw !== undefined) RAW_NAMES.set(this, raw);
  }
  get headers(): Headers {
    return this.#info.headers;
  }
  async text(): Promise<string> {
    // As sent: a leading U+FEFF is the part's, not a mark to drop.
    return new TextDecoder("utf-8", { ignoreBOM: true }).decode(
      await this.bytes(),
    );
  }
  async bytes(): Promise<Uint8Array<ArrayBuffer>> {
    return new Uint8Array(await new Response(this.body).arrayBuffer());
  }
}

/**
 * Parses a `multipart/form-data` body into its parts as the bytes arrive:
 * a `TransformStream` from bytes to {@linkcode MultipartPart}s around a
 * {@linkcode MultipartDecoder}. Parts come one at a time: the next one is
 * parsed only after the previous body was read to its end or cancelled, and
 * a body is handed on in the pieces the network delivered (small ones
 * joined while the reader is busy), so no part is ever held whole. A part
 * whose body is not read holds up the rest: read or cancel each.
 *
 * A malformed body errors the stream and the current part's body with an
 * {@linkcode HttpError} (400, or 413 over a limit); cancelling the parts
 * stream errors the current body and cancels the source.
 *
 * @example Parse a request's parts
 * ```ts
 * import { MultipartStream } from "@sluice/streams/http";
 *
 * const form = new FormData();
 * form.append("title", "hello");
 * const request = new Request("http://localhost/", { method: "POST", body: form });
 * const boundary = request.headers.get("content-type")!.split("boundary=")[1];
 * const parts = request.body!.pipeThrough(new MultipartStream(boundary));
 * for await (const part of parts) {
 *   console.log(part.name, await part.text());
 * }
 * ```
 */
export class MultipartStream
  extends TransformStream<Uint8Array, MultipartPart> {
  /**
   * Creates a parser for one body.
   *
   * @param boundary The boundary from the Content-Type (HttpError 400 if
   *   it is not 1-70 characters allowed by RFC 2046).
   * @param options Limits; see {@linkcode MultipartLimits}.
   */
  constructor(boundary: string, options: MultipartStreamOptions = {}) {
    const decoder = new MultipartDecoder(boundary, options);
    let current: PartBody | undefined;
    const fail = (error: unknown) => {
      current?.error(error);
      current = undefined;
    };
    super(
      {
        async transform(chunk, controller) {
          try {
            for (const event of decoder.decode(chunk)) {
              if (event.type === "data") {
                await current!.push(event.bytes);
              } else if (event.type === "part") {
                current = new PartBody();
                controller.enqueue(new Part(event.part, current));
              } else {
                await current!.finish();
                current = undefined;
              }
            }
          } catch (error) {
            fail(error);
            throw error;
          }
        },
        flush() {
          try {
            decoder.end();
          } catch (error) {
            fail(error);
            throw error;
          }
        },
        cancel(reason) {
          fail(reason);
        },
      },
      { highWaterMark: 1 },
      // The parts' side never holds the parser back: workerd resumes a
      // TransformStream held back by its readable side only when a read
      // waits, not once a read has made room, and the consumer reads the
      // next part only after this one's body, which needs the parser (a
      // part's body of 64 KiB or more hung there). The queue stays short:
      // a part's body holds the parser until it is read (push and finish
      // wait), so only parts without bytes pile up, at most maxParts.
      // (workerd takes no Infinity here: an integer.)
      { highWaterMark: 2 ** 31 - 1 },
    );
    // Its readable is async-iterable in WebKit too (see asyncIterable).
    asyncIterable(this.readable);
  }
}
