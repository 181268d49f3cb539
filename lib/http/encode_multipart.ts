import { checkArgument, kindOf } from "../_internal/arguments.ts";
import { checkNumber } from "../_internal/limits.ts";
import { concatBytes } from "../_internal/bytes.ts";
import { asyncIterable } from "../_internal/async_iterable.ts";
import { DelimiterSearch, shiftTable } from "./_delimiter.ts";

/** The value of one part: text, a Blob (or File), bytes, or a stream. */
export type MultipartValue =
  | string
  | Blob
  | Uint8Array
  | ReadableStream<Uint8Array>;

/** One part for {@linkcode encodeMultipart}. */
export interface MultipartField {
  /** The part's name (the form field's name). */
  name: string;
  /** Its body. */
  value: MultipartValue;
  /**
   * The file name; makes the part a file. Defaults to a File's own name,
   * and `"blob"` for another Blob (as FormData does); text, bytes and
   * streams without one are fields.
   */
  filename?: string;
  /**
   * Its Content-Type: printable ASCII (else a TypeError), sent trimmed; an
   * empty one is none. Defaults to a Blob's type, else
   * `application/octet-stream` for files; fields get none (`text/plain`
   * to a reader).
   */
  contentType?: string;
  /**
   * The length of a stream value in bytes, if known: with it the body gets
   * a content length, and a stream of another length errors the body.
   */
  size?: number;
}

/** Options for {@linkcode encodeMultipart}. */
export interface EncodeMultipartOptions {
  /**
   * The boundary (1-70 characters allowed by RFC 2046). A value that holds
   * it (CR LF `--` boundary, or `--` boundary at its start) would end its
   * part early for every reader, so it is refused: `encodeMultipart`
   * throws a RangeError for bytes and text, the body errors with one where
   * a Blob or stream is read. The default, 32 random hex digits after
   * `----sluice-`, will not occur and is not searched for.
   *
   * @default {a random boundary}
   */
  boundary?: string;
}

/** A multipart/form-data body ready to send. */
export interface EncodedMultipart {
  /** The body, produced as it is read (streams are read only then). */
  body: ReadableStream<Uint8Array>;
  /** `multipart/form-data; boundary=...`, for the Content-Type header. */
  contentType: string;
  /** The body's length when every part's size is known, else undefined. */
  contentLength: number | undefined;
}

const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;
const encoder = new TextEncoder();

/**
 * Escapes a name or file name as browsers do (WHATWG HTML,
 * multipart/form-data encoding): CR, LF and `"` as `%0D`, `%0A`, `%22`.
 */
function escapeName(name: string): string {
  return name.replace(/\r/g, "%0D").replace(/\n/g, "%0A").replace(
    /"/g,
    "%22",
  );
}

/**
 * A lone CR or LF made CR LF, as browsers and the runtimes' own encoders do
 * to a form entry's name and to a field's text before encoding it.
 */
function normalizeLineBreaks(text: string): string {
  return text.replace(/\r(?!\n)|(?<!\r)\n/g, "\r\n");
}

/**
 * A chunk of a part's stream as bytes: a Uint8Array as is, other binary
 * (an ArrayBuffer, a view) as a Uint8Array over it; text or anything else
 * a TypeError naming the part (it failed deep in the runtime's fetch, or
 * as "chunk.subarray is not a function").
 */
function bytesOf(value: unknown, name: string): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) {
    return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }
  throw new TypeError(
    `Cannot encode multipart body: the stream of part ${
      JSON.stringify(name)
    } gave a chunk of type ${kindOf(value)}, not bytes${
      typeof value === "string" ? " (encode text with TextEncoderStream)" : ""
    }`,
  );
}

function randomBoundary(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `----sluice-${
    Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")
  }`;
}

interface Planned {
  head: Uint8Array;
  value: Uint8Array | Blob | ReadableStream<Uint8Array>;
  size: number | undefined;
  name: string;
}

function plan(field: MultipartField): Planned {
  const { name, value } = field;
  let filename = field.filename;
  // Sent trimmed, as readers take it; an empty one is none.
  let contentType = field.contentType?.trim() || undefined;
  let body: Planned["value"];
  let size: number | undefined;
  if (typeof value === "string") {
    body = encoder.encode(value);
    size = body.length;
  } else if (value instanceof Uint8Array) {
    body = value;
    size = value.length;
  } else if (value instanceof Blob) {
    filename ??= "name" in value && typeof value.name === "string"
      ? value.name
      : "blob";
    contentType ??= value.type || undefined;
    body = value;
    size = value.size;
  } else if (value instanceof ReadableStream) {
    body = value;
    size = field.size;
    if (size !== undefined) {
      checkNumber(
        "encode multipart body",
        `size of part ${JSON.stringify(name)}`,
        size,
      );
    }
    if (
      size !== undefined && (!Number.isSafeInteger(size) || size < 0)
    ) {
      throw new RangeError(
        `Cannot encode multipart body: size of part ${
          JSON.stringify(name)
        } must be a non-negative integer, got ${size}`,
      );
    }
  } else {
    throw new TypeError(
      `Cannot encode multipart body: the value of part ${
        JSON.stringify(name)
      } is not a string, Blob, Uint8Array or ReadableStream, got ${
        kindOf(value)
      }`,
    );
  }
  if (filename !== undefined) contentType ??= "application/octet-stream";
  // NUL has no escape, and no header line may hold it (RFC 9110 section
  // 5.5): readers refuse the part.
  for (const [what, text] of [["name", name], ["file name", filename]]) {
    if (text?.includes("\0")) {
      throw new TypeError(
        `Cannot encode multipart body: the ${what} of part ${
          JSON.stringify(name)
        } holds NUL`,
      );
    }
  }
  let head = `Content-Disposition: form-data; name="${
    escapeName(normalizeLineBreaks(name))
  }"`;
  if (filename !== undefined) head += `; filename="${escapeName(filename)}"`;
  if (contentType !== undefined) {
    // A media type is ASCII (RFC 9110 section 8.3.1); a control character
    // or a line break would end or spoil the header line.
    if (/[^\t\x20-\x7e]/.test(contentType)) {
      throw new TypeError(
        `Cannot encode multipart body: the content type of part ${
          JSON.stringify(name)
        } is not printable ASCII: ${JSON.stringify(contentType.slice(0, 64))}`,
      );
    }
    head += `\r\nContent-Type: ${contentType}`;
  }
  return { head: encoder.encode(`${head}\r\n\r\n`), value: body, size, name };
}

function* fieldsOf(
  fields: FormData | Iterable<MultipartField>,
): Iterable<MultipartField> {
  if (fields instanceof FormData) {
    for (const [name, value] of fields) {
      yield {
        name,
        value: typeof value === "string" ? normalizeLineBreaks(value) : value,
      };
    }
    return;
  }
  const what = "encode multipart body";
  checkArgument(
    typeof fields !== "string" &&
      typeof (fields as Partial<Iterable<unknown>> | null)?.[
          Symbol.iterator
        ] === "function",
    what,
    "the fields",
    "a FormData or an iterable of { name, value } parts",
    fields,
    kindOf(fields) === "object"
      ? " (for an object of fields: Object.entries(fields).map(([name, value]) => ({ name, value })))"
      : "",
  );
  let i = 0;
  for (const field of fields) {
    checkArgument(
      typeof field === "object" && typeof field?.name === "string",
      what,
      `part ${i++}`,
      "a { name, value } object with a string name",
      field,
      Array.isArray(field)
        ? " (a [name, value] pair: write { name, value })"
        : "",
    );
    yield field;
  }
}

/**
 * Encodes form fields, Blobs, byte arrays and streams as a streaming
 * `multipart/form-data` body, as a browser's FormData would, for `fetch`
 * or {@linkcode upload}. Stream values are read only as the body is read,
 * so a large file is never held in memory; the body's length is known
 * (`contentLength`) when every part's size is: text, bytes, Blobs, and
 * streams given a `size`. Names and file names are sent as UTF-8 with CR,
 * LF and `"` escaped as `%0D`, `%0A` and `%22`, as browsers do; one that
 * holds NUL, which no header may, is refused with a TypeError. As browsers
 * do, a lone CR or LF becomes CR LF in names, and in a FormData's text
 * values (a list's text is sent as given; file names and file contents
 * always are).
 *
 * @param fields The parts in order: a FormData, or a list of
 *   {@linkcode MultipartField}s.
 * @param options The boundary, if not a random one.
 * @returns The body stream, its Content-Type and, if known, its length.
 *
 * @example Post a field and a streamed file
 * ```ts
 * import { encodeMultipart } from "@sluice/streams/http";
 *
 * const file = new Blob(["x".repeat(1000)]).stream();
 * const { body, contentType, contentLength } = encodeMultipart([
 *   { name: "title", value: "report" },
 *   { name: "file", value: file, filename: "report.txt", size: 1000 },
 * ]);
 * console.log(contentType, contentLength);
 * const form = await new Response(body, {
 *   headers: { "content-type": contentType },
 * }).formData();
 * console.log(form.get("title"));
 * ```
 */
export function encodeMultipart(
  fields: FormData | Iterable<MultipartField>,
  options: EncodeMultipartOptions = {},
): EncodedMultipart {
  const boundary = options.boundary ?? randomBoundary();
  checkArgument(
    typeof boundary === "string",
    "encode multipart body",
    "boundary",
    "a string",
    boundary,
  );
  if (!BOUNDARY.test(boundary)) {
    throw new RangeError(
      `Cannot encode multipart body: boundary ${
        JSON.stringify(boundary.slice(0, 64))
      } is not 1-70 characters allowed by RFC 2046`,
    );
  }
  const planned = [...fieldsOf(fields)].map(plan);
  // A boundary of the caller's own may occur in a value (the default's 128
  // random bits will not): checked in every value, at once for bytes and
  // text, as they are read for Blobs and streams.
  const pattern = options.boundary === undefined
    ? undefined
    : encoder.encode(`\r\n--${boundary}`);
  const shift = pattern && shiftTable(pattern);
  const holdsBoundary = (part: Planned) =>
    new RangeError(
      `Cannot encode multipart body: the value of part ${
        JSON.stringify(part.name)
      } holds the boundary ${
        JSON.stringify(boundary)
      }; choose another (or leave it to encodeMultipart)`,
    );
  if (pattern !== undefined) {
    for (const part of planned) {
      if (
        part.value instanceof Uint8Array &&
        new DelimiterSearch(pattern, shift).found(part.value)
      ) throw holdsBoundary(part);
    }
  }
  const delimiter = encoder.encode(`--${boundary}\r\n`);
  const between = encoder.encode(`\r\n--${boundary}\r\n`);
  const close = encoder.encode(
    `${planned.length ? "\r\n" : ""}--${boundary}--\r\n`,
  );
  let contentLength: number | undefined = close.length;
  for (const [i, part] of planned.entries()) {
    if (part.size === undefined || contentLength === undefined) {
      contentLength = undefined;
    } else {
      contentLength += (i === 0 ? delimiter : between).length +
        part.head.length + part.size;
    }
  }

  // Small pieces (delimiters, heads, text) are joined into one chunk until
  // a Blob or stream part has to be read.
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  const add = (bytes: Uint8Array) => {
    pending.push(bytes);
    pendingBytes += bytes.length;
  };
  let index = 0;
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  let readBytes = 0;
  let search: DelimiterSearch | undefined;
  // Streams not read yet are cancelled when the body fails or is cancelled.
  const cancelUnread = async (reason: unknown) => {
    const unread = planned.splice(index);
    await Promise.all(unread.map(async ({ value }) => {
      if (value instanceof ReadableStream) await value.cancel(reason);
    }));
  };
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        await step(controller);
      } catch (error) {
        await Promise.all([
          reader?.cancel(error).catch(() => {}),
          cancelUnread(error).catch(() => {}),
        ]);
        throw error;
      }
    },
    async cancel(reason) {
      await Promise.all([reader?.cancel(reason), cancelUnread(reason)]);
    },
  }, { highWaterMark: 0 });
  async function step(
    controller: ReadableStreamDefaultController<Uint8Array>,
  ): Promise<void> {
    while (true) {
      if (reader) {
        const part = planned[index - 1];
        const { done, value } = await reader.read();
        if (!done) {
          const chunk = bytesOf(value, part.name);
          readBytes += chunk.length;
          if (part.size !== undefined && readBytes > part.size) {
            throw new RangeError(
              `Cannot encode multipart body: part ${
                JSON.stringify(part.name)
              } gave more than its size ${part.size}`,
            );
          }
          if (search?.found(chunk)) throw holdsBoundary(part);
          controller.enqueue(chunk);
          return;
        }
        reader = undefined;
        if (part.size !== undefined && readBytes !== part.size) {
          throw new RangeError(
            `Cannot encode multipart body: part ${
              JSON.stringify(part.name)
            } gave ${readBytes} bytes, not its size ${part.size}`,
          );
        }
      }
      if (index === planned.length) {
        add(close);
        controller.enqueue(concatBytes(pending, pendingBytes));
        pending = [];
        controller.close();
        return;
      }
      const part = planned[index];
      add(index === 0 ? delimiter : between);
      index++;
      add(part.head);
      if (part.value instanceof Uint8Array) {
        add(part.value);
        if (pendingBytes < 64 * 1024) continue;
      } else {
        reader = (part.value instanceof Blob ? part.value.stream() : part.value)
          .getReader();
        readBytes = 0;
        if (pattern !== undefined) search = new DelimiterSearch(pattern, shift);
      }
      controller.enqueue(concatBytes(pending, pendingBytes));
      pending = [];
      pendingBytes = 0;
      return;
    }
  }
  const token = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(boundary);
  return {
    body: asyncIterable(body), // in WebKit too
    contentType: `multipart/form-data; boundary=${
      token ? boundary : `"${boundary}"`
    }`,
    contentLength,
  };
}
