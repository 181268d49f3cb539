// A multipart part's Content-Transfer-Encoding (RFC 2045, section 6) undone
// as its body streams: push decoders for base64 (6.8) and quoted-printable
// (6.7) that carry at most a few bytes of state from one chunk to the next.
// RFC 7578 (4.7) deprecates the header in forms, but `curl -F
// "f=@x;encoder=base64"` and encoders derived from mail still send it.

import { HttpError } from "./http_error.ts";
import { CANNOT_PARSE, quote } from "./_multipart_headers.ts";

/** A Content-Transfer-Encoding whose bytes must be decoded. */
export type TransferEncoding = "base64" | "quoted-printable";

/** Undoes one part's Content-Transfer-Encoding, a chunk at a time. */
export interface TransferDecoder {
  /**
   * Decodes the next bytes of the part's body, as sent.
   *
   * @returns The bytes they complete (possibly none), in a new array.
   */
  decode(bytes: Uint8Array): Uint8Array;
  /**
   * Ends the part's body.
   *
   * @returns The bytes that were held back (possibly none); HttpError 400
   *   if the body ends where its encoding cannot.
   */
  end(): Uint8Array;
}

/**
 * A decoder for one part's body.
 *
 * @param encoding The part's Content-Transfer-Encoding.
 * @param index The part's place in the body, for error messages.
 * @param name The part's name, for error messages.
 */
export function transferDecoder(
  encoding: TransferEncoding,
  index: number,
  name: string,
): TransferDecoder {
  const part = `part ${index} (field ${quote(name)})`;
  return encoding === "base64"
    ? new Base64Decoder(part)
    : new QuotedPrintableDecoder(part);
}

const EMPTY = new Uint8Array(0);
const CR = 0x0d;
const LF = 0x0a;
const SPACE = 0x20;
const TAB = 0x09;
const EQUALS = 0x3d;

/** A byte in an error message: `"!" (0x21)`. */
function describe(byte: number): string {
  const hex = `0x${byte.toString(16).padStart(2, "0")}`;
  return byte > 0x20 && byte < 0x7f
    ? `${JSON.stringify(String.fromCharCode(byte))} (${hex})`
    : hex;
}

// Base64's table: a digit's value, or one of these.
const INVALID = -1;
const WHITE = -2;
const PAD = -3;
let base64Table: Int8Array | undefined;

/** Made on first use: no work at module top level. */
function base64Digits(): Int8Array {
  if (base64Table !== undefined) return base64Table;
  const table = new Int8Array(256).fill(INVALID);
  const digits =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (let i = 0; i < 64; i++) table[digits.charCodeAt(i)] = i;
  // Line breaks and other white space, which encoders put between lines.
  for (const white of [SPACE, TAB, CR, LF, 0x0b, 0x0c]) table[white] = WHITE;
  table[EQUALS] = PAD;
  return base64Table = table;
}

/**
 * Base64 (RFC 2045, 6.8): white space between digits ignored, `=` padding
 * only where a group of 4 ends, any other byte an error (RFC 2045 lets a
 * decoder skip them; skipped, a corrupted body was stored as a different
 * file). A body that ends without its padding is decoded as if it had it.
 */
class Base64Decoder implements TransferDecoder {
  #part: string;
  /** The digits of the unfinished group of 4, 6 bits each. */
  #bits = 0;
  #digits = 0;
  /** `=` still allowed after the padding began; -1 before it. */
  #padsLeft = -1;
  /** Bytes of the body decoded before the current chunk. */
  #offset = 0;

  constructor(part: string) {
    this.#part = part;
  }

  decode(bytes: Uint8Array): Uint8Array {
    const table = base64Digits();
    const n = bytes.length;
    // Every 4 digits make 3 bytes; padding ends a group early.
    const out = new Uint8Array(((this.#digits + n) >> 2) * 3 + 2);
    let o = 0;
    let bits = this.#bits;
    let digits = this.#digits;
    for (let i = 0; i < n; i++) {
      const value = table[bytes[i]];
      if (value >= 0) {
        if (this.#padsLeft >= 0) throw this.#invalid(bytes[i], i, "after");
        bits = (bits << 6) | value;
        if (++digits === 4) {
          out[o++] = bits >> 16;
          out[o++] = bits >> 8;
          out[o++] = bits;
          bits = 0;
          digits = 0;
        }
      } else if (value === WHITE) {
        continue;
      } else if (value === PAD && this.#padsLeft < 0 && digits >= 2) {
        // `xx==` holds one byte, `xxx=` two.
        if (digits === 2) {
          out[o++] = bits >> 4;
          this.#padsLeft = 1;
        } else {
          out[o++] = bits >> 10;
          out[o++] = bits >> 2;
          this.#padsLeft = 0;
        }
        bits = 0;
        digits = 0;
      } else if (value === PAD && this.#padsLeft > 0) {
        this.#padsLeft--;
      } else {
        throw this.#invalid(bytes[i], i, value === PAD ? "pad" : "byte");
      }
    }
    this.#bits = bits;
    this.#digits = digits;
    this.#offset += n;
    return o === 0 ? EMPTY : out.subarray(0, o);
  }

  end(): Uint8Array {
    const digits = this.#digits;
    if (digits === 0) return EMPTY;
    if (digits === 1) {
      throw new HttpError(
        400,
        `${CANNOT_PARSE}: ${this.#part} is not valid base64: its body ends in a single digit of a group of 4`,
      );
    }
    // A group without its padding, as if the padding were there.
    const bits = this.#bits;
    return digits === 2
      ? Uint8Array.of(bits >> 4)
      : Uint8Array.of((bits >> 10) & 0xff, (bits >> 2) & 0xff);
  }

  #invalid(byte: number, at: number, why: "after" | "pad" | "byte") {
    const where = `at byte ${this.#offset + at} of its body`;
    return new HttpError(
      400,
      `${CANNOT_PARSE}: ${this.#part} is not valid base64: ${
        why === "after"
          ? `${describe(byte)} ${where} follows its padding`
          : why === "pad"
          ? `"=" ${where} is padding where none can be`
          : `${describe(byte)} ${where} is not a base64 digit`
      }`,
    );
  }
}

/**
 * The longest run of spaces and tabs a quoted-printable decoder holds while
 * it does not know whether a line break ends it (RFC 2045 lines are at most
 * 76 characters; RFC 5322 allows 998).
 */
const MAX_WHITE_RUN = 998;

// Quoted-printable's states.
const TEXT = 0;
/** After a CR in text: a line break if LF follows. */
const TEXT_CR = 1;
/** After `=`. */
const ESCAPE = 2;
/** After `=` and one hex digit. */
const ESCAPE_HEX = 3;
/** After `=` and spaces or tabs: a soft line break, padded. */
const SOFT = 4;
/** After `=`, spaces or tabs, and CR. */
const SOFT_CR = 5;

/** A hex digit's value, either case; -1 for another byte. */
function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  const lower = byte | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/**
 * Quoted-printable (RFC 2045, 6.7): `=XX` is the byte XX (hex digits of
 * either case), `=` at the end of a line is a soft line break (with CR LF,
 * a bare LF, or spaces and tabs before them), spaces and tabs at the end of
 * a line are dropped, and line breaks are kept as sent. Any other `=` is an
 * error. A body that ends in `=` ends in a soft line break whose CR LF is
 * the delimiter's.
 */
class QuotedPrintableDecoder implements TransferDecoder {
  #part: string;
  #state = TEXT;
  /** The first hex digit of an escape. */
  #high = 0;
  /** A run of spaces and tabs not yet known to be inside a line. */
  #white = new Uint8Array(16);
  #whiteLength = 0;
  #offset = 0;

  constructor(part: string) {
    this.#part = part;
  }

  decode(bytes: Uint8Array): Uint8Array {
    const n = bytes.length;
    // The held run and CR come out with the bytes at most.
    const out = new Uint8Array(n + this.#whiteLength + 1);
    let o = 0;
    let state = this.#state;
    for (let i = 0; i < n; i++) {
      const byte = bytes[i];
      switch (state) {
        case TEXT:
          if (byte === SPACE || byte === TAB) {
            this.#hold(byte, i);
          } else if (byte === CR) {
            state = TEXT_CR;
          } else {
            // A line break drops the run before it; anything else keeps it.
            if (byte !== LF) o = this.#release(out, o);
            this.#whiteLength = 0;
            if (byte === EQUALS) state = ESCAPE;
            else out[o++] = byte;
          }
          break;
        case TEXT_CR:
          if (byte === LF) {
            this.#whiteLength = 0;
            out[o++] = CR;
            out[o++] = LF;
          } else {
            // A bare CR is text.
            o = this.#release(out, o);
            this.#whiteLength = 0;
            out[o++] = CR;
            i--;
          }
          state = TEXT;
          break;
        case ESCAPE: {
          const value = hexValue(byte);
          if (value >= 0) {
            this.#high = value;
            state = ESCAPE_HEX;
          } else if (byte === SPACE || byte === TAB) {
            state = SOFT;
          } else if (byte === CR) {
            state = SOFT_CR;
          } else if (byte === LF) {
            state = TEXT;
          } else {
            throw this.#malformed(`"=" and ${describe(byte)}`, i);
          }
          break;
        }
        case ESCAPE_HEX: {
          const value = hexValue(byte);
          if (value < 0) {
            throw this.#malformed(
              `"=${this.#high.toString(16).toUpperCase()}" and ${
                describe(byte)
              }`,
              i,
            );
          }
          out[o++] = (this.#high << 4) | value;
          state = TEXT;
          break;
        }
        case SOFT:
          if (byte === CR) state = SOFT_CR;
          else if (byte === LF) state = TEXT;
          else if (byte !== SPACE && byte !== TAB) {
            throw this.#malformed(
              `"=", spaces or tabs, and ${describe(byte)}`,
              i,
            );
          }
          break;
        default: // SOFT_CR
          if (byte !== LF) {
            throw this.#malformed(`"=", CR and ${describe(byte)}`, i);
          }
          state = TEXT;
      }
    }
    this.#state = state;
    this.#offset += n;
    return o === 0 ? EMPTY : out.subarray(0, o);
  }

  end(): Uint8Array {
    const state = this.#state;
    if (state === ESCAPE_HEX) {
      throw new HttpError(
        400,
        `${CANNOT_PARSE}: ${this.#part} is not valid quoted-printable: its body ends inside the escape "=${
          this.#high.toString(16).toUpperCase()
        }"`,
      );
    }
    // The run at the end of the last line is dropped; one before a CR
    // that no LF followed is text, as that CR is.
    let out = EMPTY;
    if (state === TEXT_CR) {
      out = new Uint8Array(this.#whiteLength + 1);
      out[this.#release(out, 0)] = CR;
    }
    this.#whiteLength = 0;
    return out;
  }

  /** Holds a space or tab of a run, growing the store up to its limit. */
  #hold(byte: number, at: number): void {
    if (this.#whiteLength === this.#white.length) {
      if (this.#whiteLength >= MAX_WHITE_RUN) {
        throw new HttpError(
          400,
          `${CANNOT_PARSE}: ${this.#part} is not valid quoted-printable: a run of spaces and tabs at byte ${
            this.#offset + at
          } of its body exceeds ${MAX_WHITE_RUN} bytes (a line is at most 76)`,
        );
      }
      const grown = new Uint8Array(
        Math.min(MAX_WHITE_RUN, 2 * this.#white.length),
      );
      grown.set(this.#white);
      this.#white = grown;
    }
    this.#white[this.#whiteLength++] = byte;
  }

  /** Writes the held run into `out` at `o`; returns the new end. */
  #release(out: Uint8Array, o: number): number {
    const length = this.#whiteLength;
    if (length === 0) return o;
    out.set(this.#white.subarray(0, length), o);
    return o + length;
  }

  #malformed(what: string, at: number): HttpError {
    return new HttpError(
      400,
      `${CANNOT_PARSE}: ${this.#part} is not valid quoted-printable: ${what} at byte ${
        this.#offset + at
      } of its body are no escape (=XX) or soft line break`,
    );
  }
}
