// gRPC-Web trailers travel in the body: a frame with flag 0x80 whose data is
// an HTTP/1-style header block ("key: value\r\n" lines).

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
  const text = new TextDecoder().decode(data);
  for (const line of text.split(/\r?\n/)) {
    if (line === "") continue;
    const colon = line.indexOf(":");
    if (colon <= 0) {
      throw new RpcError(
        Code.Internal,
        `Cannot decode gRPC-Web trailers: invalid line ${quote(line)}`,
      );
    }
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    limit.add(name, value);
    try {
      headers.append(name, value);
    } catch (cause) {
      // Headers refuses names that are not tokens and values with NUL or
      // CR: a malformed block, not an engine error.
      throw new RpcError(
        Code.Internal,
        `Cannot decode gRPC-Web trailers: invalid header ${quote(name)}`,
        { cause },
      );
    }
  }
  return headers;
}
