// Connect's error JSON and EndStreamResponse
// (connectrpc.com/docs/protocol#error-end-stream):
// {"error": {"code": "out_of_range", "message": "...", "details": [...]},
//  "metadata": {"key": ["value"]}}.

import { Code } from "../code.ts";
import { codeFromName, codeToName } from "../protocol/_codes.ts";
import { decodeBase64, encodeBase64 } from "../../_internal/base64.ts";
import { RpcError } from "../rpc_error.ts";
import { encodeFrame } from "../wire/_frame.ts";
import type { CallStatus } from "../protocol/_server_call.ts";
import { MetadataLimit } from "../protocol/_metadata_limit.ts";
import { quote } from "../protocol/_quote.ts";
import { toUtf8Header } from "../../http/_utf8_header.ts";

/** A character a header's byte string cannot hold. */
const BEYOND_LATIN1 = /[\u0100-\uffff]/;

/** The flag that marks the EndStreamResponse frame. */
export const endStreamFlag = 0x02;

interface ErrorJson {
  code: string;
  message?: string;
  details?: { type: string; value: string }[];
}

/** An error as Connect's JSON error object. */
export function errorToJson(error: RpcError): ErrorJson {
  const json: ErrorJson = { code: codeToName(error.code) };
  if (error.rawMessage) json.message = error.rawMessage;
  if (error.details.length > 0) {
    json.details = error.details.map((d) => ({
      type: d.type,
      value: encodeBase64(d.value, false),
    }));
  }
  return json;
}

/**
 * Reads Connect's JSON error object; returns undefined if it is not an
 * object (callers then fall back to the HTTP status). A `code` that is
 * missing, null or not one of Connect's takes `fallback`'s (the HTTP
 * status's for a unary error, Unknown at the end of a stream), and so does
 * a missing message then; a message that is there is kept.
 */
export function errorFromJson(
  json: unknown,
  metadata: HeadersInit | undefined,
  fallback: RpcError,
): RpcError | undefined {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return undefined;
  }
  const { code, message, details } = json as Record<string, unknown>;
  const known = typeof code === "string" ? codeFromName(code) : undefined;
  const list: RpcError["details"] = [];
  if (Array.isArray(details)) {
    for (const d of details) {
      if (
        typeof d === "object" && d !== null && typeof d.type === "string" &&
        typeof d.value === "string"
      ) {
        try {
          list.push({ type: d.type, value: decodeBase64(d.value) });
        } catch {
          // A malformed detail does not hide the error itself.
        }
      }
    }
  }
  return new RpcError(
    known ?? fallback.code,
    typeof message === "string"
      ? message
      : known === undefined
      ? fallback.rawMessage
      : "",
    { details: list, metadata },
  );
}

/** Encodes a call's status as an EndStreamResponse frame (prefix included). */
export function encodeEndStreamFrame(status: CallStatus): Uint8Array {
  const json: { error?: ErrorJson; metadata?: Record<string, string[]> } = {};
  if (status.error) json.error = errorToJson(status.error);
  const metadata: Record<string, string[]> = {};
  let any = false;
  status.trailers.forEach((value, key) => {
    metadata[key] = [value];
    any = true;
  });
  if (any) json.metadata = metadata;
  return encodeFrame({
    flags: endStreamFlag,
    data: new TextEncoder().encode(JSON.stringify(json)),
  });
}

/**
 * Parses an EndStreamResponse: the error (undefined for success) and the
 * trailing metadata. A metadata value with a character past U+00FF (valid
 * JSON: connect-go writes a Go trailer "x-user: 日本" so) is read as its
 * UTF-8 bytes, a character each, as the same trailer reads over HTTP;
 * other values are kept as they are (what Headers holds and the encoder
 * writes).
 *
 * @throws {RpcError} `Internal` if it is not valid JSON, or JSON of another
 *   shape (saying what is wrong: `metadata "x-a" is not an array of
 *   strings`), or a metadata key or value cannot be a header (naming the
 *   key).
 */
export function decodeEndStream(
  data: Uint8Array,
): { error: RpcError | undefined; trailers: Headers } {
  // Valid JSON of the wrong shape says what is wrong in it.
  const invalid = (what: string, cause?: unknown) =>
    new RpcError(
      Code.Internal,
      `Cannot decode EndStreamResponse: ${what}`,
      { cause },
    );
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(data));
  } catch (cause) {
    throw invalid("invalid JSON", cause);
  }
  if (!isObject(json)) throw invalid("not a JSON object");
  const trailers = new Headers();
  const { metadata, error } = json;
  if (metadata !== undefined) {
    if (!isObject(metadata)) throw invalid("metadata is not an object");
    const limit = new MetadataLimit("decode EndStreamResponse");
    for (const [key, values] of Object.entries(metadata)) {
      if (
        !Array.isArray(values) ||
        !values.every((value) => typeof value === "string")
      ) {
        throw invalid(`metadata ${quote(key)} is not an array of strings`);
      }
      for (const value of values) {
        const header = BEYOND_LATIN1.test(value) ? toUtf8Header(value) : value;
        limit.add(key, header);
        try {
          trailers.append(key, header);
        } catch (cause) {
          // Not a header name (a token) or value (NUL, CR or LF): malformed
          // metadata, in valid JSON.
          throw new RpcError(
            Code.Internal,
            `Cannot decode EndStreamResponse: metadata key ${quote(key)} ${
              isHeaderName(key)
                ? "has a value that is not a valid header value (NUL, CR or LF)"
                : "is not a valid header name (a token)"
            }`,
            { cause },
          );
        }
      }
    }
  }
  if (error === undefined || error === null) {
    return { error: undefined, trailers };
  }
  const parsed = errorFromJson(
    error,
    trailers,
    new RpcError(
      Code.Unknown,
      "Cannot read end of stream: its error has no known code",
    ),
  );
  if (parsed === undefined) throw invalid("error is not an object");
  return { error: parsed, trailers };
}

/** Whether `value` is a JSON object (not null, not an array). */
function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Whether Headers takes `key` as a name (a token, RFC 9110, 5.1). */
function isHeaderName(key: string): boolean {
  try {
    new Headers().append(key, "");
    return true;
  } catch {
    return false;
  }
}
