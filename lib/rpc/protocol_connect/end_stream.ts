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
 * trailing metadata.
 *
 * @throws {RpcError} `Internal` if it is not valid JSON of the right shape.
 */
export function decodeEndStream(
  data: Uint8Array,
): { error: RpcError | undefined; trailers: Headers } {
  const invalid = (cause?: unknown) =>
    new RpcError(
      Code.Internal,
      "Cannot decode EndStreamResponse: invalid JSON",
      { cause },
    );
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(data));
  } catch (cause) {
    throw invalid(cause);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw invalid();
  }
  const trailers = new Headers();
  const { metadata, error } = json as Record<string, unknown>;
  if (metadata !== undefined) {
    if (
      typeof metadata !== "object" || metadata === null ||
      Array.isArray(metadata)
    ) throw invalid();
    const limit = new MetadataLimit("decode EndStreamResponse");
    for (const [key, values] of Object.entries(metadata)) {
      if (!Array.isArray(values)) throw invalid();
      for (const value of values) {
        if (typeof value !== "string") throw invalid();
        limit.add(key, value);
        try {
          trailers.append(key, value);
        } catch (cause) {
          // Not a header name (a token) or value: malformed metadata.
          throw invalid(cause);
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
  if (parsed === undefined) throw invalid();
  return { error: parsed, trailers };
}
