// gRPC-Web trailers travel in the body: a frame with flag 0x80 whose data is
// an HTTP/1-style header block ("key: value\r\n" lines). It is written in
// UTF-8, as Connect-ES and grpc-web write and read it. Each line is read as
// UTF-8 where that gives a header's characters (none past U+00FF: what this
// encoder and those clients write), else as HTTP reads a header's bytes,
// one character a byte: a Go server's raw "x-user: 日本" or a Latin-1 byte
// reads as the same byte string it would over HTTP/2 (decoded as UTF-8,
// characters past U+00FF, which Headers refuses, lost the status). Line by
// line, so that a value reads the same whatever the other trailers.

import { Code } from "../code.ts";
import { RpcError } from "../rpc_error.ts";
import { encodeFrame } from "../wire/_frame.ts";
import { quote } from "../protocol/_quote.ts";
import {
  MAX_METADATA_BYTES,
  MetadataLimit,
} from "../protocol/_metadata_limit.ts";

/** The flag that marks the trailer frame. */
export const trailerFlag = 0x80;

/** Encodes trailers as a complete trailer frame (prefix included). */
export function encodeTrailerFrame(trailers: Headers): Uint8Array {
  let block = "";
  trailers.forEach((value, key) => {
    block += `${key}: ${value}\r\n`;
  });
  return encodeFrame({
    flags: trailerFlag,
    data: new TextEncoder().encode(block),
  });
}

/**
 * Parses the data of a trailer frame.
 *
 * @throws {RpcError} `Internal` for a line that is not a valid header.
 */
export function decodeTrailerBlock(data: Uint8Array): Headers {
  const headers = new Headers();
  const limit = new MetadataLimit("decode gRPC-Web trailers");
  // Far past the bound whatever its lines (spaces around a value are not
  // counted): refused before it is split.
  if (data.byteLength > 2 * MAX_METADATA_BYTES) limit.count(data.byteLength);
  for (const raw of byteString(data).split(/\r?\n/)) {
    if (raw === "") continue;
    const line = headerText(raw);
    const colon = line.indexOf(":");
    if (colon <= 0) {
      throw new RpcError(
        Code.Internal,
        `Cannot decode gRPC-Web trailers: invalid line ${quote(line)}`,
      );
    }
    // Spaces and tabs only: String.prototype.trim also takes U+00A0, the
    // byte 0xA0 that ends the UTF-8 of "à".
    const name = trimOws(line.slice(0, colon));
    const value = trimOws(line.slice(colon + 1));
    limit.add(name, value);
    try {
      headers.append(name, value);
    } catch (cause) {
      // Headers refuses names that are not tokens and values with NUL or
      // CR (never a character past U+00FF: see headerText): a malformed
      // block, not an engine error.
      throw new RpcError(
        Code.Internal,
        `Cannot decode gRPC-Web trailers: invalid header ${quote(name)}`,
        { cause },
      );
    }
  }
  return headers;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * A line (a byte string) as text: its UTF-8 if that is valid and holds no
 * character past U+00FF, else its bytes, one character each.
 */
function headerText(line: string): string {
  if (!/[\x80-\xff]/.test(line)) return line;
  const bytes = new Uint8Array(line.length);
  for (let i = 0; i < line.length; i++) bytes[i] = line.charCodeAt(i);
  try {
    const text = utf8.decode(bytes);
    if (!/[\u0100-\uffff]/.test(text)) return text;
  } catch {
    // Not UTF-8 (a Latin-1 byte): read as HTTP reads it.
  }
  return line;
}

/** Bytes as a byte string: one character a byte, as HTTP reads a header. */
function byteString(data: Uint8Array): string {
  let text = "";
  for (let at = 0; at < data.length; at += 0x2000) {
    text += String.fromCharCode.apply(
      null,
      data.subarray(at, at + 0x2000) as unknown as number[],
    );
  }
  return text;
}

/** `text` without the spaces and tabs at its ends (RFC 9110, 5.6.3). */
function trimOws(text: string): string {
  return text.replace(/^[ \t]+|[ \t]+$/g, "");
}
