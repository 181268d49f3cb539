import { checkMax } from "../_internal/limits.ts";
import { HttpError } from "./http_error.ts";
import {
  indexOfDelimiter,
  partialDelimiterStart,
  shiftTable,
} from "./_delimiter.ts";
import {
  CANNOT_PARSE,
  checkBoundary,
  parsePartHead,
  type PartHead,
  transferEncodingOf,
} from "./_multipart_headers.ts";
import { type TransferDecoder, transferDecoder } from "./_transfer_decoding.ts";

/** Limits of a multipart/form-data parser; each over-limit body is a 413. */
export interface MultipartLimits {
  /**
   * The most parts a body may have.
   *
   * @default {1000}
   */
  maxParts?: number;
  /**
   * The most bytes of one part's header block (its boundary line's padding
   * and headers, up to the blank line).
   *
   * @default {8192}
   */
  maxHeaderBytes?: number;
  /**
   * The most body bytes of a part without a filename (a form field),
   * decoded where it has a Content-Transfer-Encoding.
   *
   * @default {1048576} (1 MiB)
   */
  maxFieldBytes?: number;
  /**
   * The most body bytes of a part with a filename (a file), decoded where
   * it has a Content-Transfer-Encoding.
   *
   * @default {1073741824} (1 GiB)
   */
  maxFileBytes?: number;
  /**
   * The most bytes of the whole multipart body, boundaries and headers
   * included, as sent (encoded parts counted before their decoding).
   *
   * @default {1073741824} (1 GiB)
   */
  maxTotalBytes?: number;
}

/** Options for {@linkcode MultipartDecoder}. */
export type MultipartDecoderOptions = MultipartLimits;

/** The description of one part, known before its body. */
export interface MultipartPartInfo {
  /**
   * The `name` of its Content-Disposition (`name*` if present), decoded as
   * UTF-8, or as windows-1252 where its bytes are no UTF-8 (a form on a
   * legacy page).
   */
  readonly name: string;
  /**
   * The `filename` of its Content-Disposition (`filename*`, RFC 5987, if
   * present and in UTF-8 or ISO-8859-1), decoded as `name` is; undefined
   * for a form field.
   * It is the client's string: pass it through `safeFileName` before
   * using it as a path.
   */
  readonly filename: string | undefined;
  /**
   * Its Content-Type; when absent, `text/plain` for a field and
   * `application/octet-stream` for a file.
   */
  readonly contentType: string;
  /**
   * All its headers (values as byte strings, as HTTP headers are), as sent:
   * a Content-Transfer-Encoding stays, although the body is decoded.
   */
  readonly headers: Headers;
}

/** One thing a {@linkcode MultipartDecoder} found in the bytes it was given. */
export type MultipartEvent =
  | { readonly type: "part"; readonly part: MultipartPartInfo }
  | { readonly type: "data"; readonly bytes: Uint8Array }
  | { readonly type: "end" };

const PREAMBLE = 0;
const BOUNDARY_LINE = 1;
const HEADERS = 2;
const BODY = 3;
const EPILOGUE = 4;
const CR = 0x0d;
const LF = 0x0a;
const DASH = 0x2d;

/**
 * The end of a header block (the index of its CR LF CR LF), -1 if it is
 * not complete yet, or -2 at a bare LF (a line not ended by CR LF).
 */
function indexOfBlankLine(
  bytes: Uint8Array,
  from: number,
  resume = from,
): number {
  // A plain loop: header blocks are short, and the native indexOf costs
  // more per call than it saves on a few dozen bytes. An unfinished block
  // is scanned again only from `resume`, where the last scan stopped.
  const end = bytes.length;
  for (let i = resume; i < end; i++) {
    const b = bytes[i];
    if (b === LF) {
      if (i === from || bytes[i - 1] !== CR) return -2;
    } else if (
      b === CR && i + 3 < end && bytes[i + 1] === LF &&
      bytes[i + 2] === CR && bytes[i + 3] === LF
    ) return i;
  }
  return -1;
}

/**
 * How many bytes at the end of `bytes` (from `from`) may be the start of the
 * CR LF CR LF that ends a header block (0 to 3): an unfinished block does
 * not count them, as a finished one does not count its end, so that a
 * block is measured alike however the body is split.
 */
function blankLineStart(bytes: Uint8Array, from: number): number {
  const end = bytes.length;
  for (let n = Math.min(3, end - from); n > 0; n--) {
    // CR LF CR LF's prefixes of length n: CR, CR LF, CR LF CR.
    let k = 0;
    while (k < n && bytes[end - n + k] === (k % 2 === 0 ? CR : LF)) k++;
    if (k === n) return n;
  }
  return 0;
}

/**
 * Checks the parser's limits, as every option is checked: at the call (an
 * upload handler's at its creation: bad limits failed its every form with
 * 500), and resolves their defaults.
 */
export function checkMultipartLimits(
  what: string,
  options: MultipartLimits,
): Required<
  Pick<
    MultipartLimits,
    | "maxParts"
    | "maxHeaderBytes"
    | "maxFieldBytes"
    | "maxFileBytes"
    | "maxTotalBytes"
  >
> {
  return {
    maxParts: checkMax(what, "maxParts", options.maxParts ?? 1000),
    maxHeaderBytes: checkMax(
      what,
      "maxHeaderBytes",
      options.maxHeaderBytes ?? 8192,
    ),
    maxFieldBytes: checkMax(
      what,
      "maxFieldBytes",
      options.maxFieldBytes ?? 1024 * 1024,
    ),
    maxFileBytes: checkMax(
      what,
      "maxFileBytes",
      options.maxFileBytes ?? 1024 * 1024 * 1024,
    ),
    maxTotalBytes: checkMax(
      what,
      "maxTotalBytes",
      options.maxTotalBytes ?? 1024 * 1024 * 1024,
    ),
  };
}

/**
 * A push decoder for `multipart/form-data` bodies (RFC 7578, RFC 2046):
 * give it the body's bytes in chunks of any size with
 * {@linkcode MultipartDecoder.prototype.decode}, get back what they
 * complete — a part's description, pieces of its body, its end — and call
 * {@linkcode MultipartDecoder.prototype.end} after the last chunk. It keeps
 * only the bytes that might be a split delimiter or an unfinished header
 * block; body bytes are returned as views of the chunks given (do not reuse
 * a chunk's memory after passing it in).
 *
 * A part with `Content-Transfer-Encoding: base64` or `quoted-printable`
 * (RFC 2045; `curl -F "f=@x;encoder=base64"` sends it) has its body decoded
 * as it streams, into new arrays: `data` events, `maxFieldBytes` and
 * `maxFileBytes` are of the decoded bytes, `maxTotalBytes` of the bytes
 * sent. `7bit`, `8bit` and `binary` are the bytes as sent; any other
 * encoding, a byte that is no base64, or a malformed quoted-printable
 * escape is a 400 naming the part.
 *
 * Lines must end in CR LF, as RFC 2046 and every browser, curl and
 * FormData encoder send them: a boundary or header line that ends in a
 * bare LF is a 400, refused rather than guessed at (a lenient parser would
 * split some bodies differently from a strict one in front of it). Preamble and epilogue are ignored. The delimiter search
 * (Horspool's, falling back to a linear scan on crafted input) is linear
 * in the input for any boundary length.
 *
 * Errors are {@linkcode HttpError}s: 413 for a body over one of the
 * {@linkcode MultipartLimits}, 400 for a malformed one, each saying
 * `Cannot parse multipart body: ...`. After an error the decoder is spent.
 *
 * @example Decode a body in two chunks
 * ```ts
 * import { MultipartDecoder } from "@sluice/streams/http";
 *
 * const body = new TextEncoder().encode(
 *   '--xyz\r\nContent-Disposition: form-data; name="a"\r\n\r\nhello\r\n--xyz--\r\n',
 * );
 * const decoder = new MultipartDecoder("xyz");
 * const events = [
 *   ...decoder.decode(body.subarray(0, 20)),
 *   ...decoder.decode(body.subarray(20)),
 * ];
 * decoder.end();
 * console.log(events.map((event) => event.type)); // part, data, end
 * ```
 */
export class MultipartDecoder {
  #needle: Uint8Array;
  #shift: Uint8Array;
  #state = PREAMBLE;
  #atStart = true;
  #rest: Uint8Array = new Uint8Array(0);
  /**
   * The buffer an unfinished header block grows in (`#rest` is a view of
   * it), so that a block sent a byte at a time is not copied whole at each
   * byte; its bytes are only ever appended to, never rewritten.
   */
  #store: Uint8Array | undefined;
  /** Bytes of the unfinished header block in `#rest` already scanned. */
  #headerScanned = 0;
  #parts = 0;
  #isFile = false;
  /** The current part's Content-Transfer-Encoding, where it has one. */
  #transfer: TransferDecoder | undefined;
  #partBytes = 0;
  #headerBytes = 0;
  #totalBytes = 0;
  #failed = false;
  #maxParts: number;
  #maxHeaderBytes: number;
  #maxFieldBytes: number;
  #maxFileBytes: number;
  #maxTotalBytes: number;

  /**
   * Creates a decoder for one body.
   *
   * @param boundary The boundary from the body's Content-Type (1-70
   *   characters allowed by RFC 2046; HttpError 400 otherwise).
   * @param options Limits; see {@linkcode MultipartLimits}.
   */
  constructor(boundary: string, options: MultipartDecoderOptions = {}) {
    checkBoundary(boundary);
    const limits = checkMultipartLimits("create multipart decoder", options);
    this.#maxParts = limits.maxParts;
    this.#maxHeaderBytes = limits.maxHeaderBytes;
    this.#maxFieldBytes = limits.maxFieldBytes;
    this.#maxFileBytes = limits.maxFileBytes;
    this.#maxTotalBytes = limits.maxTotalBytes;
    this.#needle = new TextEncoder().encode(`\r\n--${boundary}`);
    this.#shift = shiftTable(this.#needle);
  }

  /** Whether the closing boundary has been seen. */
  get done(): boolean {
    return this.#state === EPILOGUE;
  }

  /**
   * Decodes the next chunk of the body.
   *
   * @param chunk The next bytes, of any length.
   * @returns What the bytes completed, in order: `part` starts a part,
   *   `data` carries a piece of its body, `end` ends it.
   */
  decode(chunk: Uint8Array): MultipartEvent[] {
    if (this.#failed) {
      throw new TypeError(`${CANNOT_PARSE}: the decoder failed before`);
    }
    try {
      return this.#decode(chunk);
    } catch (error) {
      this.#failed = true;
      this.#rest = new Uint8Array(0);
      throw error;
    }
  }

  /**
   * Ends the body: throws HttpError 400 if the closing boundary was not
   * seen (a truncated body is never taken for a complete one).
   */
  end(): void {
    if (this.#failed) {
      throw new TypeError(`${CANNOT_PARSE}: the decoder failed before`);
    }
    if (this.#state === EPILOGUE) return;
    this.#failed = true;
    const where = this.#state === HEADERS
      ? `in the headers of part ${this.#parts}`
      : this.#state === BODY
      ? `in the body of part ${this.#parts}`
      : this.#state === BOUNDARY_LINE
      ? "in a boundary line"
      : "before the first boundary";
    throw new HttpError(
      400,
      `${CANNOT_PARSE}: the body ended ${where}, without the closing boundary`,
    );
  }

  #tooBig(what: string, name: string, limit: number): HttpError {
    return new HttpError(
      413,
      `${CANNOT_PARSE}: ${what} exceeds ${name} ${limit}`,
    );
  }

  /**
   * `#rest` and then `chunk`, in one buffer: appended in place when `#rest`
   * is the start of `#store` and there is room, else in a new store twice
   * as large (a header block grows by doubling, not by a copy per chunk).
   */
  #join(chunk: Uint8Array): Uint8Array {
    const rest = this.#rest;
    const store = this.#store;
    const length = rest.length + chunk.length;
    if (
      store !== undefined && rest.buffer === store.buffer &&
      rest.byteOffset === store.byteOffset && length <= store.length
    ) {
      store.set(chunk, rest.length);
      return store.subarray(0, length);
    }
    const grown = new Uint8Array(Math.max(length, 2 * rest.length, 256));
    grown.set(rest);
    grown.set(chunk, rest.length);
    this.#store = grown;
    return grown.subarray(0, length);
  }

  #decode(chunk: Uint8Array): MultipartEvent[] {
    const events: MultipartEvent[] = [];
    this.#totalBytes += chunk.length;
    if (this.#totalBytes > this.#maxTotalBytes) {
      throw this.#tooBig(
        `body of ${this.#totalBytes}+ bytes`,
        "maxTotalBytes",
        this.#maxTotalBytes,
      );
    }
    if (this.#state === EPILOGUE) return events;
    // `rest` is at most a delimiter's length, except in a header block,
    // where it is at most maxHeaderBytes: the join is bounded.
    const buf = this.#rest.length ? this.#join(chunk) : chunk;
    this.#rest = new Uint8Array(0);
    const needle = this.#needle;
    let pos = 0;
    while (pos < buf.length || this.#state === BOUNDARY_LINE) {
      switch (this.#state) {
        case PREAMBLE: {
          if (this.#atStart) {
            // The first boundary may open the body without a CR LF.
            const dashes = needle.subarray(2);
            const n = Math.min(dashes.length, buf.length);
            let k = 0;
            while (k < n && buf[k] === dashes[k]) k++;
            if (k === dashes.length) {
              this.#atStart = false;
              this.#state = BOUNDARY_LINE;
              pos = dashes.length;
              continue;
            }
            if (k === buf.length) {
              this.#rest = buf.slice();
              return events;
            }
            this.#atStart = false;
          }
          const i = indexOfDelimiter(buf, needle, this.#shift, pos);
          if (i >= 0) {
            this.#state = BOUNDARY_LINE;
            pos = i + needle.length;
            continue;
          }
          const keep = partialDelimiterStart(buf, needle, pos);
          this.#rest = buf.slice(keep);
          return events;
        }
        case BOUNDARY_LINE: {
          // After `--boundary`: `--` closes the body; otherwise optional
          // linear white space, then CR LF.
          let i = pos;
          if (i + 2 > buf.length) {
            this.#rest = buf.slice(pos);
            return events;
          }
          if (buf[i] === DASH) {
            if (buf[i + 1] !== DASH) throw this.#badBoundaryLine(buf, pos);
            this.#state = EPILOGUE;
            return events;
          }
          while (i < buf.length && (buf[i] === 0x20 || buf[i] === 0x09)) i++;
          if (i - pos > this.#maxHeaderBytes) {
            throw this.#tooBig(
              `the padding after boundary ${this.#parts + 1}`,
              "maxHeaderBytes",
              this.#maxHeaderBytes,
            );
          }
          if (i + 2 > buf.length) {
            this.#rest = buf.slice(pos);
            return events;
          }
          if (buf[i] !== CR || buf[i + 1] !== LF) {
            throw this.#badBoundaryLine(buf, pos);
          }
          if (this.#parts >= this.#maxParts) {
            throw this.#tooBig(
              `part ${this.#parts + 1}`,
              "maxParts",
              this.#maxParts,
            );
          }
          this.#parts++;
          this.#headerBytes = i - pos;
          this.#state = HEADERS;
          pos = i + 2;
          continue;
        }
        case HEADERS: {
          let end: number;
          let next: number;
          if (buf[pos] === CR && pos + 1 < buf.length && buf[pos + 1] === LF) {
            end = pos; // no headers at all
            next = pos + 2;
          } else {
            end = indexOfBlankLine(buf, pos, pos + this.#headerScanned);
            next = end + 4;
            if (end === -2) {
              throw new HttpError(
                400,
                `${CANNOT_PARSE}: a header line of part ${this.#parts} ends in a bare LF (lines must end in CR LF)`,
              );
            }
          }
          // Unfinished, the bytes that may start its end are not counted.
          const size = (end < 0 ? buf.length - blankLineStart(buf, pos) : end) -
            pos + this.#headerBytes;
          if (size > this.#maxHeaderBytes) {
            throw this.#tooBig(
              `the header block of part ${this.#parts}`,
              "maxHeaderBytes",
              this.#maxHeaderBytes,
            );
          }
          if (end < 0) {
            // The last 3 bytes may start its CR LF CR LF: scanned again.
            this.#headerScanned = Math.max(0, buf.length - pos - 3);
            this.#rest = buf.buffer === this.#store?.buffer
              ? buf.subarray(pos)
              : buf.slice(pos);
            return events;
          }
          this.#headerScanned = 0;
          const head: PartHead = parsePartHead(
            buf.subarray(pos, end),
            this.#parts,
          );
          this.#isFile = head.filename !== undefined;
          this.#partBytes = 0;
          const encoding = transferEncodingOf(head);
          this.#transfer = encoding === undefined
            ? undefined
            : transferDecoder(encoding, this.#parts, head.name);
          events.push({ type: "part", part: head });
          this.#state = BODY;
          pos = next;
          continue;
        }
        case BODY: {
          const i = indexOfDelimiter(buf, needle, this.#shift, pos);
          const stop = i >= 0 ? i : partialDelimiterStart(buf, needle, pos);
          if (stop > pos) {
            const bytes = this.#transfer === undefined
              ? buf.subarray(pos, stop)
              : this.#transfer.decode(buf.subarray(pos, stop));
            this.#data(bytes, events);
          }
          if (i < 0) {
            this.#rest = buf.slice(stop);
            return events;
          }
          if (this.#transfer !== undefined) {
            this.#data(this.#transfer.end(), events);
            this.#transfer = undefined;
          }
          events.push({ type: "end" });
          this.#state = BOUNDARY_LINE;
          pos = i + needle.length;
          continue;
        }
        default:
          return events; // EPILOGUE: ignored
      }
    }
    return events;
  }

  /** A piece of the current part's body, counted against its limit. */
  #data(bytes: Uint8Array, events: MultipartEvent[]): void {
    if (bytes.length === 0) return;
    this.#partBytes += bytes.length;
    const limit = this.#isFile ? this.#maxFileBytes : this.#maxFieldBytes;
    if (this.#partBytes > limit) {
      const name = this.#isFile ? "maxFileBytes" : "maxFieldBytes";
      throw this.#tooBig(
        `part ${this.#parts} (${this.#isFile ? "file" : "field"})`,
        name,
        limit,
      );
    }
    events.push({ type: "data", bytes });
  }

  #badBoundaryLine(buf: Uint8Array, pos: number): HttpError {
    const line = buf.subarray(pos, Math.min(buf.length, pos + 16));
    const bareLf = line.indexOf(LF) >= 0 && line.indexOf(CR) < 0;
    return new HttpError(
      400,
      `${CANNOT_PARSE}: ${
        bareLf
          ? "a boundary line ends in a bare LF (lines must end in CR LF)"
          : "unexpected bytes after a boundary"
      }`,
    );
  }
}
