// Base64 without node:buffer, for header values and metadata: one encoder
// and one decoder for every layer.

/**
 * Standard base64 of `bytes`. `padded` keeps the trailing `=` (structured
 * field byte sequences, RFC 8941, need it); gRPC and Connect binary metadata
 * are sent unpadded, as their specifications prefer.
 */
export function encodeBase64(bytes: Uint8Array, padded = true): string {
  let binary = "";
  for (let i = 0; i < bytes.byteLength; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  const text = btoa(binary);
  return padded ? text : withoutPadding(text);
}

/**
 * `text` without its trailing `=`: a loop from the end, where `/=+$/` tried
 * a match at every `=` of a run and failed each time it was not the end
 * (100,000 of them then a letter took 4 s).
 */
function withoutPadding(text: string): string {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 0x3d) end--;
  return end === text.length ? text : text.slice(0, end);
}

/** Decodes padded, unpadded and URL-safe base64; SyntaxError otherwise. */
export function decodeBase64(text: string): Uint8Array {
  let normalized = withoutPadding(
    text.trim().replace(/-/g, "+").replace(/_/g, "/"),
  );
  if (!/^[A-Za-z0-9+/]*$/.test(normalized) || normalized.length % 4 === 1) {
    throw new SyntaxError(`Cannot decode base64: invalid input`);
  }
  normalized += "=".repeat((4 - (normalized.length % 4)) % 4);
  const binary = atob(normalized);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** Base64 characters, as bytes, in the order of their values. */
const ALPHABET =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/** In DECODE: `=`. */
const PAD = 64;
/** In DECODE: CR and LF, skipped (line breaks, as Go's decoder skips them). */
const SKIP = 65;
/** In DECODE: anything else. */
const INVALID = 66;

let decodeTable: Uint8Array | undefined;

/** Each byte's value (0-63), or PAD, SKIP or INVALID; built at first use. */
function table(): Uint8Array {
  if (decodeTable !== undefined) return decodeTable;
  const bytes = new Uint8Array(256).fill(INVALID);
  for (let i = 0; i < ALPHABET.length; i++) bytes[ALPHABET.charCodeAt(i)] = i;
  bytes[0x3d] = PAD;
  bytes[0x0d] = SKIP;
  bytes[0x0a] = SKIP;
  return decodeTable = bytes;
}

const EMPTY = new Uint8Array(0);

/**
 * Decodes standard base64 pushed in pieces of any size (a group of four
 * characters may be split across pushes), as a stream that is a
 * concatenation of padded segments: each group is whole, and `=` may end
 * any group, not only the last (gRPC-Web's text format pads each chunk it
 * flushes). CR and LF are skipped; any other character, a group that `=`
 * does not end, or text that ends inside a group is a SyntaxError that
 * names it and its offset. Holds at most three characters' bits between
 * pushes, whatever the input.
 */
export class Base64Decoder {
  readonly #what: string;
  /** The bits of the group begun, 6 per character (`=` counts as zeros). */
  #bits = 0;
  /** Characters of the group begun (0-3). */
  #count = 0;
  /** `=` in the group begun. */
  #padding = 0;
  /** Bytes pushed so far (the offset of the next push's first byte). */
  #offset = 0;

  /**
   * @param what What the messages say cannot be done, after "Cannot "
   * (default: "decode base64").
   */
  constructor(what = "decode base64") {
    this.#what = what;
  }

  /**
   * Decodes `chunk` (ASCII bytes) with the characters held from the pushes
   * before; returns the bytes of the groups it completes (a new array, or
   * an empty one), and holds the rest.
   */
  push(chunk: Uint8Array): Uint8Array {
    const decode = table();
    const out = new Uint8Array(((this.#count + chunk.byteLength) >> 2) * 3);
    let bits = this.#bits;
    let count = this.#count;
    let padding = this.#padding;
    let n = 0;
    for (let i = 0; i < chunk.byteLength; i++) {
      const value = decode[chunk[i]];
      if (value < PAD) {
        if (padding > 0) {
          this.#fail(chunk[i], i, "follows `=` in its group of 4");
        }
        bits = (bits << 6) | value;
      } else if (value === PAD) {
        // `=` takes the place of a group's third or fourth character only.
        if (count < 2) {
          this.#fail(
            chunk[i],
            i,
            "cannot be the first or second of a group of 4",
          );
        }
        bits <<= 6;
        padding++;
      } else if (value === SKIP) {
        continue;
      } else {
        this.#fail(chunk[i], i, "is not base64");
      }
      if (++count === 4) {
        out[n++] = bits >> 16;
        if (padding < 2) out[n++] = (bits >> 8) & 0xff;
        if (padding < 1) out[n++] = bits & 0xff;
        bits = 0;
        count = 0;
        padding = 0;
      }
    }
    this.#bits = bits;
    this.#count = count;
    this.#padding = padding;
    this.#offset += chunk.byteLength;
    if (n === 0) return EMPTY;
    return n === out.byteLength ? out : out.subarray(0, n);
  }

  /** Ends the text; a SyntaxError if it ends inside a group. */
  finish(): void {
    if (this.#count === 0) return;
    throw new SyntaxError(
      `Cannot ${this.#what}: the text ends inside a group of 4 characters (${this.#count} of them)`,
    );
  }

  #fail(byte: number, at: number, why: string): never {
    const shown = byte > 0x20 && byte < 0x7f
      ? `"${String.fromCharCode(byte)}"`
      : `0x${byte.toString(16).padStart(2, "0")}`;
    throw new SyntaxError(
      `Cannot ${this.#what}: character ${shown} at offset ${
        this.#offset + at
      } ${why}`,
    );
  }
}
