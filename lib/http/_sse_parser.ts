// The push parser behind SseDecoderStream: the event-stream interpretation
// of the WHATWG HTML standard (section "Parsing an event stream"), on
// bytes. Lines end in CRLF, LF or CR (also across chunk boundaries); a
// leading UTF-8 BOM is dropped; each line is decoded as UTF-8 with
// replacement characters, which gives what decoding the whole stream would
// (line ends are ASCII, so no character spans them).

import { checkMax } from "../_internal/limits.ts";
import { ByteAccumulator } from "../_internal/bytes.ts";

/**
 * What a data line costs besides its bytes, counted against maxEventBytes:
 * the event's data is built a line at a time, a string node each (15 MiB
 * of empty data lines held 80-120 MiB of Deno's heap, 137-159 of Bun's).
 */
const DATA_LINE_OVERHEAD_BYTES = 32;

/** One dispatched event, as `EventSource` would deliver it. */
export interface SseMessage {
  /** The data lines joined with LF. */
  data: string;
  /** The event type: the `event` field, or `"message"`. */
  event: string;
  /**
   * The last event id seen so far in the stream (ids persist across events,
   * as `MessageEvent.lastEventId` does), `""` if none.
   */
  id: string;
}

/** Limits of {@linkcode SseParser}. */
export interface SseParserLimits {
  maxLineBytes: number;
  maxEventBytes: number;
}

const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;
const DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024;

/**
 * A parser with the limits given (checked; 1 MiB a line and 16 MiB an
 * event by default) that starts from `lastEventId`.
 */
export function createSseParser(
  options: Partial<SseParserLimits> & { lastEventId?: string },
): SseParser {
  const parser = new SseParser({
    maxLineBytes: checkMax(
      "decode event stream",
      "maxLineBytes",
      options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES,
    ),
    maxEventBytes: checkMax(
      "decode event stream",
      "maxEventBytes",
      options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES,
    ),
  }, options.lastEventId);
  return parser;
}

const LF = 0x0a;
const CR = 0x0d;
const BOM = [0xef, 0xbb, 0xbf];

/** Feed bytes, get complete events; keeps the partial line and event. */
/**
 * A refusal's comment line: `: refused `, a status of 400-499, a space (what
 * `sseResponse` sends, and no feed's own comment: `: 404 items in queue`
 * ended a feed).
 */
const REFUSAL = /^: refused 4\d\d /;
const REFUSAL_PREFIX = ": refused ".length;

export class SseParser {
  #limits: SseParserLimits;
  /** Lines are decoded one by one: only the stream's first BOM goes. */
  #decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  /**
   * The line being read, and its size: one piece, or the pieces copied
   * into one buffer (a line trickled a byte per chunk kept a small array
   * per byte).
   */
  #line: Uint8Array | ByteAccumulator | undefined;
  #lineBytes = 0;
  /** The previous chunk ended in CR: a leading LF belongs to it. */
  #afterCR = false;
  /** Bytes of a possible BOM at the very start, until decided. */
  #bom: number[] | undefined = [];
  #data = "";
  #dataBytes = 0;
  #hasData = false;
  #event = "";
  #idBuffer = "";
  /** The last event id (dispatched). */
  lastEventId = "";
  /** The last `retry` value, in milliseconds. */
  retryMs: number | undefined;
  /**
   * A refusal the server said after its head, since the last event: the
   * comment `sseResponse` ends a stream with when its source throws an
   * `HttpError` of 400-499 (`: refused 401 Cannot stream: unauthorized`),
   * when nothing but comments (not a keep-alive) came after it.
   */
  refusal: string | undefined;
  /**
   * Whether a line came whose field is none of `data`, `event`, `id` and
   * `retry` (which the standard ignores): with no event dispatched, such a
   * stream was no event stream (an error page sent as one).
   */
  sawUnknownField = false;

  /**
   * Whether an event was begun (a `data` line) and not dispatched: a
   * stream that ends here ends with an unfinished event.
   */
  get inEvent(): boolean {
    return this.#hasData;
  }

  /**
   * Whether a line is unfinished (no line break after it yet) that is not
   * a comment: a stream that ends here ended mid-field.
   */
  get inField(): boolean {
    const line = this.#line;
    if (this.#lineBytes === 0 || line === undefined) return false;
    const first = line instanceof ByteAccumulator ? line.bytes()[0] : line[0];
    return first !== 0x3a;
  }

  /**
   * @param limits The line and event limits.
   * @param lastEventId The id to start from: also the id buffer's, as
   * `EventSource` starts it, so that a block with no id (a keep-alive, a
   * `retry`) keeps it (it reset it, and the next reconnection asked for
   * the whole feed again).
   */
  constructor(limits: SseParserLimits, lastEventId = "") {
    this.#limits = limits;
    this.#idBuffer = lastEventId;
    this.lastEventId = lastEventId;
  }

  /** Parses a chunk; returns the events it completed. */
  push(chunk: Uint8Array): SseMessage[] {
    const out: SseMessage[] = [];
    // Nothing to parse: an empty chunk between a CR and its LF must not
    // make the LF an empty line (it dispatched the event early).
    if (chunk.length === 0) return out;
    let start = 0;
    if (this.#bom !== undefined) {
      // Decide whether the stream starts with a BOM, across chunks.
      while (start < chunk.length && this.#bom.length < 3) {
        if (chunk[start] !== BOM[this.#bom.length]) break;
        this.#bom.push(chunk[start++]);
      }
      if (this.#bom.length === 3) {
        this.#bom = undefined;
      } else if (start < chunk.length) {
        // Not a BOM: the bytes taken so far are line bytes.
        const taken = new Uint8Array(this.#bom);
        this.#bom = undefined;
        if (taken.length > 0) this.#scan(taken, out);
      } else {
        return out;
      }
    }
    this.#scan(start === 0 ? chunk : chunk.subarray(start), out);
    return out;
  }

  #scan(chunk: Uint8Array, out: SseMessage[]): void {
    let start = 0;
    if (this.#afterCR) {
      this.#afterCR = false;
      if (chunk.length > 0 && chunk[0] === LF) start = 1;
    }
    for (let i = start; i < chunk.length; i++) {
      const byte = chunk[i];
      if (byte !== LF && byte !== CR) continue;
      this.#append(chunk.subarray(start, i));
      this.#endLine(out);
      if (byte === CR) {
        if (i + 1 === chunk.length) this.#afterCR = true;
        else if (chunk[i + 1] === LF) i++;
      }
      start = i + 1;
    }
    if (start < chunk.length) this.#append(chunk.subarray(start), true);
  }

  // `keep`: the piece outlives this chunk (the line goes on in the next),
  // so a piece kept alone is copied too.
  #append(bytes: Uint8Array, keep = false): void {
    if (bytes.length === 0) return;
    const total = this.#lineBytes + bytes.length;
    if (total > this.#limits.maxLineBytes) {
      throw new RangeError(
        `Cannot decode event stream: a line exceeds maxLineBytes ${this.#limits.maxLineBytes}`,
      );
    }
    const line = this.#line;
    if (line === undefined) this.#line = keep ? bytes.slice() : bytes;
    else if (line instanceof ByteAccumulator) line.push(bytes);
    else {
      const joined = new ByteAccumulator();
      joined.push(line);
      joined.push(bytes);
      this.#line = joined;
    }
    this.#lineBytes = total;
  }

  #takeLine(): string {
    const line = this.#line!;
    this.#line = undefined;
    this.#lineBytes = 0;
    return this.#decoder.decode(
      line instanceof ByteAccumulator ? line.bytes() : line,
    );
  }

  #endLine(out: SseMessage[]): void {
    if (this.#lineBytes === 0) {
      this.#line = undefined;
      this.#dispatch(out);
      return;
    }
    const size = this.#lineBytes;
    const line = this.#takeLine();
    if (line.charCodeAt(0) === 0x3a) {
      // A comment; a refusal's first line is kept (its status and message),
      // until a keep-alive or a field comes after it.
      if (REFUSAL.test(line)) this.refusal = line.slice(REFUSAL_PREFIX);
      else if (size === 1) this.refusal = undefined;
      return;
    }
    this.refusal = undefined;
    const colon = line.indexOf(":");
    let field = line;
    let value = "";
    if (colon !== -1) {
      field = line.slice(0, colon);
      value = line.charCodeAt(colon + 1) === 0x20
        ? line.slice(colon + 2)
        : line.slice(colon + 1);
    }
    switch (field) {
      case "event":
        this.#event = value;
        break;
      case "data": {
        const bytes = this.#dataBytes + size + 1 + DATA_LINE_OVERHEAD_BYTES;
        if (bytes > this.#limits.maxEventBytes) {
          throw new RangeError(
            `Cannot decode event stream: an event's data exceeds maxEventBytes ${this.#limits.maxEventBytes}`,
          );
        }
        this.#dataBytes = bytes;
        this.#data += this.#hasData ? "\n" + value : value;
        this.#hasData = true;
        break;
      }
      case "id":
        if (!value.includes("\0")) this.#idBuffer = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) this.retryMs = Number(value);
        break;
      default:
        this.sawUnknownField = true;
    }
  }

  #dispatch(out: SseMessage[]): void {
    this.lastEventId = this.#idBuffer;
    if (this.#hasData) {
      this.refusal = undefined;
      out.push({
        data: this.#data,
        event: this.#event || "message",
        id: this.lastEventId,
      });
    }
    this.#data = "";
    this.#dataBytes = 0;
    this.#hasData = false;
    this.#event = "";
  }
}
