// gRPC status in trailers (or in the headers of a Trailers-Only response):
// grpc-status, grpc-message (percent-encoded UTF-8) and
// grpc-status-details-bin (a base64 google.rpc.Status).

import { messageOf } from "../../_internal/message_of.ts";
import { Code } from "../code.ts";
import { isCode } from "../protocol/_codes.ts";
import { decodeBase64, encodeBase64 } from "../../_internal/base64.ts";
import { RpcError } from "../rpc_error.ts";
import type { CallStatus } from "../protocol/_server_call.ts";
import { decodeStatus, encodeStatus } from "../wire/_status_proto.ts";
import { headerMessage, headerStatus, headerStatusDetails } from "./headers.ts";

/**
 * Percent-encodes a status message: space and VCHAR except `%` stay, as
 * the gRPC spec writes them, but a space at either end is sent as `%20`,
 * since HTTP trims it from a header value (as grpc-js and Connect-ES,
 * which encode every space).
 */
export function encodeMessage(message: string): string {
  let out = "";
  const bytes = new TextEncoder().encode(message);
  const last = bytes.length - 1;
  for (let i = 0; i <= last; i++) {
    const byte = bytes[i];
    if (
      (byte > 0x20 && byte <= 0x7e && byte !== 0x25) ||
      (byte === 0x20 && i !== 0 && i !== last)
    ) {
      out += String.fromCharCode(byte);
    } else {
      out += "%" + byte.toString(16).toUpperCase().padStart(2, "0");
    }
  }
  return out;
}

/** Decodes a status message; keeps the raw text if it is not valid. */
export function decodeMessage(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    // The spec says never to fail on a bad encoding: show it as it came.
    return value;
  }
}

/**
 * The most characters of a status message sent in grpc-message: a longer
 * one is cut (with "…"), so that the trailers stay well under HTTP/2
 * header limits (grpc-js refuses metadata over 8 KiB, losing the status).
 */
export const MAX_STATUS_MESSAGE_CHARS = 1024;

function capMessage(message: string): string {
  if (message.length <= MAX_STATUS_MESSAGE_CHARS) return message;
  // Not between the two halves of a surrogate pair (an emoji, say), which
  // percent-encoding turned into U+FFFD.
  const last = message.charCodeAt(MAX_STATUS_MESSAGE_CHARS - 1);
  const end = last >= 0xd800 && last <= 0xdbff
    ? MAX_STATUS_MESSAGE_CHARS - 1
    : MAX_STATUS_MESSAGE_CHARS;
  return message.slice(0, end) + "…";
}

/**
 * Sets the status of a finished call on `headers` (trailers). Details that
 * cannot be encoded (changed after the error was made) make it INTERNAL,
 * saying why.
 */
export function setStatus(headers: Headers, status: CallStatus): Headers {
  const error = status.error;
  let details: string | undefined;
  if (error !== undefined && error.details.length > 0) {
    try {
      details = encodeBase64(
        encodeStatus({
          code: error.code,
          message: capMessage(error.rawMessage),
          details: error.details,
        }),
        false,
      );
    } catch (reason) {
      return setStatus(headers, {
        error: new RpcError(
          Code.Internal,
          `Cannot send status: ${messageOf(reason)}`,
        ),
        trailers: status.trailers,
      });
    }
  }
  status.trailers.forEach((value, key) => headers.append(key, value));
  if (error === undefined) {
    headers.set(headerStatus, "0");
    return headers;
  }
  headers.set(headerStatus, String(error.code));
  if (error.rawMessage) {
    headers.set(headerMessage, encodeMessage(capMessage(error.rawMessage)));
  }
  if (details !== undefined) headers.set(headerStatusDetails, details);
  return headers;
}

/**
 * Reads the status from trailers: undefined for OK, an RpcError otherwise,
 * or null if there is no grpc-status at all.
 */
export function readStatus(headers: Headers): RpcError | undefined | null {
  const value = headers.get(headerStatus);
  if (value === null) return null;
  const code = /^\d{1,2}$/.test(value) ? Number(value) : NaN;
  if (code === 0) return undefined;
  const metadata = new Headers(headers);
  let message = decodeMessage(headers.get(headerMessage) ?? "");
  if (!isCode(code)) {
    // The server's words kept beside it: they were lost.
    return new RpcError(
      Code.Unknown,
      `Invalid grpc-status: ${value.slice(0, 32)}${
        message ? `, grpc-message: ${message}` : ""
      }`,
      { metadata },
    );
  }
  let details: RpcError["details"] = [];
  const bin = headers.get(headerStatusDetails);
  if (bin !== null) {
    try {
      const status = decodeStatus(decodeBase64(bin));
      details = status.details;
      if (!message && status.message) message = status.message;
    } catch {
      // Malformed details do not hide the status itself.
    }
  }
  return new RpcError(code, message, { details, metadata });
}
