// Header parsing for multipart/form-data (RFC 7578, RFC 2046): the boundary
// from a Content-Type, one part's header block, Content-Disposition
// parameters with quoted-string escapes and RFC 5987 / RFC 2231 extended
// values (`filename*=UTF-8''...`). Shared by the decoder and the encoder.

import { HttpError } from "./http_error.ts";
import { checkArgument } from "../_internal/arguments.ts";
import type { TransferEncoding } from "./_transfer_decoding.ts";

/** What every multipart error message starts with. */
export const CANNOT_PARSE = "Cannot parse multipart body";

// RFC 2046 section 5.1.1: bchars, 1-70 of them, the last not a space.
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** What a header value may not hold (Headers refuses them too). */
const BAD_VALUE = /[\0\r\n]/;

/** Quotes at most 64 characters of the peer's input for an error message. */
export function quote(text: string): string {
  const cut = text.length > 64 ? `${text.slice(0, 64)}...` : text;
  return JSON.stringify(cut);
}

/** Checks a boundary against RFC 2046: 1-70 bchars, not ending in a space. */
export function checkBoundary(boundary: string): string {
  // The caller's mistake, not the client's: the regex took undefined for
  // the boundary "undefined".
  checkArgument(
    typeof boundary === "string",
    "parse multipart body",
    "the boundary",
    "a string",
    boundary,
  );
  if (!BOUNDARY.test(boundary)) {
    throw new HttpError(
      400,
      `${CANNOT_PARSE}: boundary ${
        quote(boundary)
      } is not 1-70 characters allowed by RFC 2046`,
    );
  }
  return boundary;
}

/**
 * The boundary of a `multipart/form-data` Content-Type; HttpError 415 for
 * another type, 400 for a missing or invalid boundary.
 */
export function boundaryOf(contentType: string | null): string {
  const { type, params } = parseHeaderValue(contentType ?? "");
  if (type !== "multipart/form-data") {
    throw new HttpError(
      415,
      `${CANNOT_PARSE}: Content-Type is ${
        quote(contentType ?? "")
      }, not multipart/form-data`,
    );
  }
  const boundary = params.get("boundary");
  if (boundary === undefined) {
    throw new HttpError(400, `${CANNOT_PARSE}: Content-Type has no boundary`);
  }
  return checkBoundary(boundary);
}

interface HeaderValue {
  /** The lower-cased value before the first `;`. */
  type: string;
  /** Parameters by lower-cased name; the first of duplicates wins. */
  params: Map<string, string>;
  /** The lower-cased names of the parameters given twice, if any. */
  repeated?: Set<string>;
  /** Whether the last parameter's quoted string has no closing quote. */
  unclosed?: boolean;
}

/** `text.toLowerCase()`, without a new string when it has no upper case. */
function lowerAscii(text: string): string {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c >= 0x41 && c <= 0x5a) || c > 0x7f) return text.toLowerCase();
  }
  return text;
}

/**
 * Splits `type; a=b; c="d e"` into its type and parameters. A quoted
 * string is read as browsers, curl, undici, Deno and Bun write it (and
 * Deno's formData() reads it): up to the next `"`, every backslash kept, since
 * they escape `"` as `%22` and nothing with a backslash. Only where that
 * cannot end the value (the `"` is not followed by `;` or the end), as in
 * `name="a\"b"` from an encoder that escapes RFC 9110's way, are `\"` and
 * `\\` read as quoted-pairs (section 5.6.4); other backslashes stay.
 */
export function parseHeaderValue(value: string): HeaderValue {
  const params = new Map<string, string>();
  let i = value.indexOf(";");
  const type = lowerAscii(trimOws(i < 0 ? value : value.slice(0, i)));
  if (i < 0) return { type, params };
  let repeated: Set<string> | undefined;
  let unclosed = false;
  const n = value.length;
  i++;
  while (i < n) {
    let c = value.charCodeAt(i);
    while (c === 0x20 || c === 0x09 || c === 0x3b) c = value.charCodeAt(++i);
    if (i >= n) break;
    // Searched within this parameter only: a search to the end for each
    // of many parameters (`a; x; x; ...`) cost time quadratic in the value.
    const semi = value.indexOf(";", i);
    const inParam = value.slice(i, semi < 0 ? n : semi).indexOf("=");
    const eq = inParam < 0 ? -1 : i + inParam;
    if (eq < 0) {
      // A parameter without a value: skip it.
      i = semi < 0 ? n : semi + 1;
      continue;
    }
    const name = lowerAscii(trimOws(value.slice(i, eq)));
    i = eq + 1;
    c = value.charCodeAt(i);
    while (c === 0x20 || c === 0x09) c = value.charCodeAt(++i);
    let text = "";
    const close = value[i] === '"' ? value.indexOf('"', i + 1) : -1;
    const slashed = close > 0 && value.slice(i + 1, close).includes("\\");
    if (close > 0 && (!slashed || endsParameter(value, close + 1))) {
      // The common case, a quoted string read as sent: one slice.
      text = value.slice(i + 1, close);
      const next = value.indexOf(";", close + 1);
      i = next < 0 ? n : next + 1;
    } else if (value[i] === '"') {
      i++;
      while (i < n && value[i] !== '"') {
        // RFC 9110 quoted-pair for the two characters that need it; other
        // backslashes are kept, so Windows paths and browsers' names (which
        // escape nothing with backslashes) survive.
        if (
          value[i] === "\\" && (value[i + 1] === '"' || value[i + 1] === "\\")
        ) i++;
        text += value[i++];
      }
      if (i >= n) unclosed = true;
      i++; // the closing quote
      const next = value.indexOf(";", i);
      i = next < 0 ? n : next + 1;
    } else {
      const end = value.indexOf(";", i);
      text = trimOws(end < 0 ? value.slice(i) : value.slice(i, end));
      i = end < 0 ? n : end + 1;
    }
    if (name && !params.has(name)) params.set(name, text);
    else if (name) (repeated ??= new Set()).add(name);
  }
  const parsed: HeaderValue = { type, params };
  if (repeated !== undefined) parsed.repeated = repeated;
  if (unclosed) parsed.unclosed = true;
  return parsed;
}

/** `value`, the first of its header in a part; a second is refused. */
function once(
  seen: string | undefined,
  value: string,
  header: string,
  index: number,
): string {
  if (seen !== undefined) {
    throw new HttpError(
      400,
      `${CANNOT_PARSE}: part ${index} has more than one ${header} header`,
    );
  }
  return value;
}

/** The Content-Disposition parameters that name a part or its file. */
const DISPOSITION_NAMES = ["name", "name*", "filename", "filename*"];

/** Whether only spaces or tabs stand between `at` and a `;` or the end. */
function endsParameter(value: string, at: number): boolean {
  let c = value.charCodeAt(at);
  while (c === 0x20 || c === 0x09) c = value.charCodeAt(++at);
  return at >= value.length || c === 0x3b;
}

// A leading U+FEFF is kept: it is part of the name as sent (a decoder
// without ignoreBOM took it for a byte order mark and dropped it).
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
// The WHATWG Encoding Standard's windows-1252 (labels "latin1",
// "iso-8859-1" too): every byte maps to a code point of its own.
const windows1252 = new TextDecoder("windows-1252");

/**
 * The text of a form that names no encoding: UTF-8, what a browser sends
 * from a UTF-8 page; bytes that are no UTF-8 as windows-1252, what it sends
 * from a legacy Western page (the form's `_charset_` field says which). Both
 * are exact, one code point per byte for windows-1252: with U+FFFD for each
 * byte that is no UTF-8, `caf\xE9` and `caf\xE8` read alike. Names and file
 * names are read so, and the upload handler's field values by default.
 */
export function decodeFormText(bytes: Uint8Array): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return windows1252.decode(bytes);
  }
}

/**
 * A plain `name` or `filename` parameter (a string of bytes, one char per
 * byte, as HTTP headers are) as text, with {@linkcode decodeFormText}: with
 * U+FFFD for each byte that is no UTF-8, `caf\xE9.txt` and `caf\xE8.txt`
 * read alike, and one file replaced the other on disk.
 */
function decodeName(text: string): string {
  let ascii = true;
  for (let i = 0; i < text.length && ascii; i++) {
    ascii = text.charCodeAt(i) < 0x80;
  }
  if (ascii) return text;
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return decodeFormText(bytes);
}

/**
 * Whether a name's bytes may read otherwise in another charset a form may be
 * in: a byte over 0x7F, or ISO-2022-JP's escape and shift bytes (ESC, SO,
 * SI). Every other ASCII byte is itself in every charset names can be in.
 */
function needsCharset(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f || c === 0x1b || c === 0x0e || c === 0x0f) return true;
  }
  return false;
}

/**
 * The plain `name` and `filename` parameters of a part, as sent (byte
 * strings, one char per byte), where the part's `name` and `filename` were
 * read from them and may read otherwise in the form's charset.
 */
export interface RawNames {
  name?: string;
  filename?: string;
}

/**
 * The raw names of the parts {@linkcode parsePartHead} made (and of the
 * `MultipartStream` parts made from them), for the upload handler, which
 * reads them in the form's charset once it knows it. Internal: kept off the
 * parts themselves, which report the names read as {@linkcode decodeName}
 * reads them.
 */
export const RAW_NAMES: WeakMap<object, RawNames> = new WeakMap();

/**
 * An RFC 5987 / RFC 2231 extended value, `charset'language'%XX...`;
 * undefined for a charset other than UTF-8, ISO-8859-1 or US-ASCII, or a malformed
 * value (the plain parameter is used instead). HttpError 400, naming the
 * parameter, for one that decodes to NUL, CR or LF, which a plain
 * parameter cannot hold either (its header line is refused).
 */
function decodeExtended(
  value: string,
  param: string,
  index: number,
): string | undefined {
  const text = decodeExtendedValue(value);
  if (text !== undefined && BAD_VALUE.test(text)) {
    throw new HttpError(
      400,
      `${CANNOT_PARSE}: part ${index} has NUL, CR or LF in its ${param} parameter ${
        quote(value)
      }`,
    );
  }
  return text;
}

function decodeExtendedValue(value: string): string | undefined {
  const match = /^([^']*)'[^']*'(.*)$/.exec(value);
  if (!match) return undefined;
  const charset = match[1].toLowerCase();
  if (
    charset !== "utf-8" && charset !== "iso-8859-1" && charset !== "us-ascii"
  ) return undefined;
  const text = match[2];
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x25) {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (c > 0x7f) {
      return undefined;
    } else {
      bytes.push(c);
    }
  }
  const array = Uint8Array.from(bytes);
  if (charset === "utf-8") {
    // Bytes that are no UTF-8 make no name (two of them read alike).
    try {
      return strictUtf8.decode(array);
    } catch {
      return undefined;
    }
  }
  // US-ASCII, a subset of both, as some clients name it.
  if (charset === "us-ascii" && array.some((byte) => byte > 0x7f)) {
    return undefined;
  }
  return byteString(array);
}

/** What the decoder reports of each part before its body. */
export interface PartHead {
  name: string;
  filename: string | undefined;
  contentType: string;
  headers: Headers;
}

/**
 * A PartHead whose Headers object is made on first use. Its transfer
 * encoding is private: the decoder's `part` events are these objects.
 */
class Head implements PartHead {
  #pairs: Array<[string, string]>;
  #headers: Headers | undefined;
  #encoding: TransferEncoding | undefined;
  constructor(
    readonly name: string,
    readonly filename: string | undefined,
    readonly contentType: string,
    pairs: Array<[string, string]>,
    encoding: TransferEncoding | undefined,
  ) {
    this.#pairs = pairs;
    this.#encoding = encoding;
  }
  get headers(): Headers {
    return this.#headers ??= new Headers(this.#pairs);
  }
  static encodingOf(head: PartHead): TransferEncoding | undefined {
    return #encoding in head ? head.#encoding : undefined;
  }
}

/**
 * The Content-Transfer-Encoding of a part {@linkcode parsePartHead} made,
 * where its body must be decoded: undefined for none, `7bit`, `8bit` or
 * `binary`, whose bytes are the content.
 */
export function transferEncodingOf(
  head: PartHead,
): TransferEncoding | undefined {
  return Head.encodingOf(head);
}

/**
 * A Content-Transfer-Encoding value (RFC 2045, section 6.1; any case,
 * surrounding white space ignored) as one to decode; HttpError 400 naming
 * the part and the value for one that is not known (`x-uuencode`): its
 * bytes stored as they are would not be the file that was sent.
 */
function transferEncoding(
  value: string,
  index: number,
  name: string,
): TransferEncoding | undefined {
  const token = lowerAscii(value);
  if (token === "base64" || token === "quoted-printable") return token;
  if (token === "7bit" || token === "8bit" || token === "binary") {
    return undefined;
  }
  throw new HttpError(
    400,
    `${CANNOT_PARSE}: part ${index} (field ${
      quote(name)
    }) has Content-Transfer-Encoding ${
      quote(value)
    }, not one of 7bit, 8bit, binary, base64 and quoted-printable`,
  );
}

/**
 * Parses one part's header block (the bytes between the boundary line and
 * the blank line, without the final CRLF CRLF). Header values are kept as
 * byte strings in `headers`; `name` and `filename` are decoded as UTF-8, as
 * browsers send them from a UTF-8 page, or as windows-1252 where their bytes
 * are no UTF-8 (a legacy page's form), with `filename*` taking precedence.
 * Plain ones that may read otherwise in another charset are kept as sent in
 * {@linkcode RAW_NAMES}, for a reader that knows the form's charset. A
 * Content-Transfer-Encoding is read for {@linkcode transferEncodingOf}
 * (HttpError 400 for one that cannot be decoded); the first of duplicate
 * Content-Type or Content-Transfer-Encoding headers is the one read.
 */
export function parsePartHead(block: Uint8Array, index: number): PartHead {
  const text = byteString(block);
  // The Headers object is made only if asked for: it costs more than the
  // rest of the parse. Values are checked here as Headers would check them.
  const pairs: Array<[string, string]> = [];
  let disposition: string | undefined;
  let contentType: string | undefined;
  let transfer: string | undefined;
  // Lines found with indexOf, not String.prototype.split: it goes through
  // the runtime, and costs more than the rest of a short header block.
  const n = text.length;
  for (let at = 0; at < n;) {
    let eol = text.indexOf("\r\n", at);
    if (eol < 0) eol = n;
    let line = text.slice(at, eol);
    at = eol + 2;
    // Obsolete line folding: a line that starts with a space continues the
    // previous one.
    while (
      at < n &&
      (text.charCodeAt(at) === 0x20 || text.charCodeAt(at) === 0x09)
    ) {
      let next = text.indexOf("\r\n", at);
      if (next < 0) next = n;
      line += " " + trimOws(text.slice(at, next));
      at = next + 2;
    }
    const colon = line.indexOf(":");
    const name = colon < 0 ? "" : line.slice(0, colon);
    const value = trimOws(line.slice(colon + 1));
    if (!TOKEN.test(name) || BAD_VALUE.test(value)) {
      throw new HttpError(
        400,
        `${CANNOT_PARSE}: part ${index} has a malformed header line ${
          quote(line)
        }`,
      );
    }
    pairs.push([name, value]);
    // Only names of the right length are lower-cased and compared. Each
    // of the three given twice is refused: parsers differ on which counts
    // (the runtimes' formData() takes the last), so a part read here as a
    // field, or as a file of an allowed type, could reach a parser behind
    // this one as a file, or of another type.
    if (name.length === 19 && name.toLowerCase() === "content-disposition") {
      disposition = once(disposition, value, "Content-Disposition", index);
    } else if (name.length === 12 && name.toLowerCase() === "content-type") {
      contentType = once(contentType, value, "Content-Type", index);
    } else if (
      name.length === 25 &&
      name.toLowerCase() === "content-transfer-encoding"
    ) transfer = once(transfer, value, "Content-Transfer-Encoding", index);
  }
  if (disposition === undefined) {
    throw new HttpError(
      400,
      `${CANNOT_PARSE}: part ${index} has no Content-Disposition header`,
    );
  }
  const { params, repeated, unclosed } = parseHeaderValue(disposition);
  // Read one way here and other ways by other parsers (the first or the
  // last of a repeated parameter; an unclosed quote kept in the value):
  // refused, so that no parser behind this one sees another name or file.
  const twice = repeated && DISPOSITION_NAMES.find((n) => repeated.has(n));
  if (twice) {
    throw new HttpError(
      400,
      `${CANNOT_PARSE}: part ${index} gives ${twice} twice in its Content-Disposition`,
    );
  }
  if (unclosed) {
    throw new HttpError(
      400,
      `${CANNOT_PARSE}: part ${index} has a quoted string without its closing quote in its Content-Disposition`,
    );
  }
  const extendedName = params.get("name*");
  const rawName = params.get("name");
  const extendedText = extendedName !== undefined
    ? decodeExtended(extendedName, "name*", index)
    : undefined;
  const name = extendedText ??
    (rawName !== undefined ? decodeName(rawName) : undefined);
  if (name === undefined) {
    throw new HttpError(
      400,
      `${CANNOT_PARSE}: part ${index} has no name in its Content-Disposition`,
    );
  }
  const extendedFile = params.get("filename*");
  const rawFile = params.get("filename");
  const extended = extendedFile !== undefined
    ? decodeExtended(extendedFile, "filename*", index)
    : undefined;
  // An empty filename* does not hide a plain filename beside it.
  const filename =
    (extended === "" && rawFile !== undefined ? undefined : extended) ??
      (rawFile !== undefined ? decodeName(rawFile) : undefined);
  if (filename === undefined) {
    // A file name it cannot read (another charset, a bad escape, RFC 2231
    // continuations) still makes the part a file: taken for a field, its
    // bytes were decoded as text and no sink saw them.
    const unread = [...params.keys()].find((key) => /^filename\*/i.test(key));
    if (unread !== undefined) {
      throw new HttpError(
        400,
        `${CANNOT_PARSE}: part ${index} has a file name that cannot be read (${unread}=${
          quote(decodeName(params.get(unread)!))
        }): use filename, or filename* in UTF-8, ISO-8859-1 or US-ASCII, percent-encoded, in one parameter`,
      );
    }
  }
  const head = new Head(
    name,
    filename,
    contentType ??
      (filename === undefined ? "text/plain" : "application/octet-stream"),
    pairs,
    transfer === undefined
      ? undefined
      : transferEncoding(transfer, index, name),
  );
  // Only names that may read otherwise in another charset, and only those
  // read from the plain parameter (filename* names its own charset).
  const raw: RawNames = {};
  if (
    extendedText === undefined && rawName !== undefined &&
    needsCharset(rawName)
  ) raw.name = rawName;
  if (
    rawFile !== undefined && filename !== undefined && needsCharset(rawFile) &&
    (extended === undefined || extended === "")
  ) raw.filename = rawFile;
  if (raw.name !== undefined || raw.filename !== undefined) {
    RAW_NAMES.set(head, raw);
  }
  return head;
}

/**
 * `text` without the spaces and tabs at its ends: HTTP's whitespace (RFC
 * 9110, 5.6.3). `String.prototype.trim` also takes U+00A0, the byte 0xA0
 * in a byte string, which ends the UTF-8 of "à" and of Cyrillic "Р".
 */
function trimOws(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isOws(text.charCodeAt(start))) start++;
  while (end > start && isOws(text.charCodeAt(end - 1))) end--;
  return start === 0 && end === text.length ? text : text.slice(start, end);
}

function isOws(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

/**
 * Bytes as a byte string (one char per byte). An ASCII block, the usual
 * one, goes through the native UTF-8 decoder, which gives the same string
 * several times faster than String.fromCharCode.
 */
function byteString(block: Uint8Array): string {
  const n = block.length;
  let i = 0;
  while (i < n && block[i] < 0x80) i++;
  if (i === n) return utf8.decode(block);
  let text = "";
  for (let at = 0; at < n; at += 0x2000) {
    // apply, not a spread: a spread walks the typed array's iterator.
    text += String.fromCharCode.apply(
      null,
      block.subarray(at, at + 0x2000) as unknown as number[],
    );
  }
  return text;
}
