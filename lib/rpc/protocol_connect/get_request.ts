// Connect GET (connectrpc.com/docs/protocol, Unary-Get-Request): a unary
// call of a method without side effects sent as an HTTP GET, its message in
// the query: connect=v1, encoding=proto|json, message=<payload>, with
// base64=1 when the payload is URL-safe base64 (binary and compressed
// messages) rather than percent-encoded bytes (JSON), and
// compression=<name> when the message is compressed. The response is an
// ordinary Connect unary response.

import { Code } from "../code.ts";
import type { Compression } from "../../http/compression.ts";
import type { CodecName } from "../protocol/_codec.ts";
import { quote } from "../protocol/_quote.ts";
import { bodyBound, bodyTooLarge } from "../protocol/_read_all.ts";
import { RpcError } from "../rpc_error.ts";
import { decodeBase64, encodeBase64 } from "../../_internal/base64.ts";

export const paramConnect = "connect";
export const paramEncoding = "encoding";
export const paramMessage = "message";
export const paramBase64 = "base64";
export const paramCompression = "compression";

/**
 * The URL of a GET request for one encoded message: `url` plus the query.
 * Binary and compressed messages go as URL-safe base64, JSON ones
 * percent-encoded (more readable, and shorter for ASCII text).
 */
export function getRequestUrl(
  url: string,
  codec: CodecName,
  data: Uint8Array,
  compression: Compression | null,
): string {
  const base64 = codec === "proto" || compression !== null;
  let query = `?${paramConnect}=v1&${paramEncoding}=${codec}`;
  if (base64) query += `&${paramBase64}=1`;
  if (compression !== null) query += `&${paramCompression}=${compression}`;
  const message = base64
    ? encodeBase64(data, false).replace(/\+/g, "-").replace(/\//g, "_")
    : encodeURIComponent(new TextDecoder().decode(data));
  return `${url}${query}&${paramMessage}=${message}`;
}

/** The query parameters of a GET request, raw (still percent-encoded). */
export function readQuery(url: string): Map<string, string> {
  const params = new Map<string, string>();
  const start = url.indexOf("?");
  if (start < 0) return params;
  const end = url.indexOf("#", start);
  const query = url.slice(start + 1, end < 0 ? undefined : end);
  for (const pair of query.split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const key = eq < 0 ? pair : pair.slice(0, eq);
    const value = eq < 0 ? "" : pair.slice(eq + 1);
    // The first of repeated parameters counts.
    if (!params.has(key)) params.set(key, value);
  }
  return params;
}

/** A query parameter's text (percent-decoded; `+` is a space). */
export function queryText(
  raw: string | undefined,
  name: string,
): string | undefined {
  if (raw === undefined) return undefined;
  return new TextDecoder().decode(percentDecode(raw, name));
}

/**
 * The message bytes of a GET request, within `maxMessageBytes`: decoded
 * from URL-safe (or standard) base64 with `base64=1`, else the
 * percent-decoded bytes.
 *
 * @throws {RpcError} `InvalidArgument` for a missing message, invalid
 * base64 or percent-encoding, or a `base64` other than `0` or `1`;
 * `ResourceExhausted` for a message over `maxMessageBytes` (`compressed`,
 * over the most a message of that size takes compressed: its own size is
 * checked once decompressed, as a POST's).
 */
export function readGetMessage(
  params: Map<string, string>,
  maxMessageBytes: number,
  compressed = false,
): Uint8Array {
  const max = bodyBound(maxMessageBytes, compressed);
  const tooLarge = (bytes: number): never => {
    throw compressed
      ? bodyTooLarge("read GET request", maxMessageBytes, true)
      : new RpcError(
        Code.ResourceExhausted,
        `Cannot read GET request: message of ${bytes} bytes exceeds maxMessageBytes ${maxMessageBytes}`,
      );
  };
  const raw = params.get(paramMessage);
  if (raw === undefined) {
    throw new RpcError(
      Code.InvalidArgument,
      `Cannot read GET request: no ${paramMessage} query parameter`,
    );
  }
  const base64 = queryText(params.get(paramBase64), paramBase64) ?? "0";
  if (base64 !== "0" && base64 !== "1") {
    throw new RpcError(
      Code.InvalidArgument,
      `Cannot read GET request: ${paramBase64} is ${quote(base64)}, not 0 or 1`,
    );
  }
  // Checked before decoding: base64 gives 3 bytes per 4 characters, and a
  // percent-encoded byte takes 1 to 3 characters.
  const atLeast = base64 === "1"
    ? Math.floor(unpaddedLength(raw) * 3 / 4)
    : Math.ceil(raw.length / 3);
  if (atLeast > max) tooLarge(atLeast);
  let data: Uint8Array;
  if (base64 === "1") {
    try {
      // Either alphabet, padded or not, escaped or not (a `+` is kept: it
      // is base64's, not a space).
      const text = raw.includes("%")
        ? new TextDecoder().decode(percentDecode(raw, paramMessage, false))
        : raw;
      data = decodeBase64(text);
    } catch (error) {
      throw new RpcError(
        Code.InvalidArgument,
        `Cannot read GET request: ${paramMessage} is not valid base64`,
        { cause: error },
      );
    }
  } else {
    data = percentDecode(raw, paramMessage);
  }
  if (data.byteLength > max) tooLarge(data.byteLength);
  return data;
}

const HEX = /^[0-9A-Fa-f]{2}$/;

/** Percent-decodes `raw` to bytes (`+` is a space, as in forms, or kept). */
function percentDecode(
  raw: string,
  name: string,
  plusIsSpace = true,
): Uint8Array {
  const utf8 = new TextEncoder().encode(raw);
  const out = new Uint8Array(utf8.byteLength);
  let n = 0;
  for (let i = 0; i < utf8.byteLength; i++) {
    const byte = utf8[i];
    if (byte === 0x25) {
      const hex = String.fromCharCode(utf8[i + 1] ?? 0, utf8[i + 2] ?? 0);
      if (!HEX.test(hex)) {
        throw new RpcError(
          Code.InvalidArgument,
          `Cannot read GET request: ${name} has an invalid percent-encoding at offset ${i}`,
        );
      }
      out[n++] = parseInt(hex, 16);
      i += 2;
    } else {
      out[n++] = byte === 0x2b && plusIsSpace ? 0x20 : byte;
    }
  }
  return out.subarray(0, n);
}

/**
 * The characters of `raw` without its trailing `=` or `%3D`, an escape
 * counted as one (a message in standard base64 escapes its `+` and `/`: at
 * three characters each, one within the limit was refused): a loop from the
 * end (a regex tried a match at every `=` of a run: 64 KB of them then a
 * letter blocked the server 8.7 s).
 */
function unpaddedLength(raw: string): number {
  let end = raw.length;
  while (end > 0) {
    if (raw.charCodeAt(end - 1) === 0x3d) end--;
    else if (
      end >= 3 && raw[end - 3] === "%" && raw[end - 2] === "3" &&
      (raw[end - 1] === "D" || raw[end - 1] === "d")
    ) end -= 3;
    else break;
  }
  // An escaped character ("%2B" for standard base64's "+") is one.
  let escapes = 0;
  for (
    let at = raw.indexOf("%");
    at !== -1 && at < end;
    at = raw.indexOf("%", at + 1)
  ) {
    escapes++;
  }
  return Math.max(0, end - 2 * escapes);
}
