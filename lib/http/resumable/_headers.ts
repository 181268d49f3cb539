// The header fields of resumable uploads: structured-field items of the
// IETF draft (RFC 9651 booleans and integers), tus 1.0's plain integers,
// upload ids, and the problem details (RFC 9457) the draft defines.

import { HttpError } from "../http_error.ts";

/** The draft's media type for appended bytes (PATCH). */
export const PARTIAL_UPLOAD = "application/partial-upload";
/** tus 1.0's media type for appended bytes (PATCH). */
export const OFFSET_OCTET_STREAM = "application/offset+octet-stream";
/** The tus protocol version served. */
export const TUS_VERSION = "1.0.0";
/**
 * The draft's interop version implemented (its "Draft Version
 * Identification" appendix): a client of the draft sends it as
 * `Upload-Draft-Interop-Version` with every request, and servers of the
 * draft other than ours (tusd's, for one) take a request without it for
 * tus 1.0.
 */
export const DRAFT_INTEROP_VERSION = "8";

const PROBLEM_BASE = "https://iana.org/assignments/http-problem-types#";

// An item's parameters (after `;`, RFC 9651 section 3.1.2) say nothing
// about its value here: server and client read the bare item alone.

/** The RFC 9651 boolean item `value` (`?1`, `?0`), else `undefined`. */
export function readBoolean(value: string): boolean | undefined {
  const item = value.split(";")[0].trim();
  return item === "?1" ? true : item === "?0" ? false : undefined;
}

/**
 * The non-negative RFC 9651 integer item `value` (at most 15 digits), else
 * `undefined`.
 */
export function readInteger(value: string): number | undefined {
  const item = value.split(";")[0].trim();
  return /^[0-9]{1,15}$/.test(item) ? Number(item) : undefined;
}

/** Parses an RFC 9651 boolean item (`?1`, `?0`); parameters are ignored. */
export function parseBoolean(
  name: string,
  value: string | null,
): boolean | undefined {
  if (value === null) return undefined;
  const item = readBoolean(value);
  if (item !== undefined) return item;
  throw new HttpError(
    400,
    `Cannot read ${name}: expected ?1 or ?0, got ${quote(value)}`,
  );
}

/**
 * Parses a non-negative integer header: an RFC 9651 integer item (at most 15
 * digits) for the draft, plain digits for tus.
 */
export function parseLength(
  name: string,
  value: string | null,
): number | undefined {
  if (value === null) return undefined;
  const item = readInteger(value);
  if (item !== undefined) return item;
  throw new HttpError(
    400,
    `Cannot read ${name}: expected a non-negative integer, got ${quote(value)}`,
  );
}

/**
 * Parses a tus length or offset: plain digits (at most 15), no structured
 * field's parameters.
 */
export function parseTusLength(
  name: string,
  value: string | null,
): number | undefined {
  if (value === null) return undefined;
  if (/^[0-9]{1,15}$/.test(value.trim())) return Number(value);
  throw new HttpError(
    400,
    `Cannot read ${name}: expected a non-negative integer, got ${quote(value)}`,
  );
}

/** An id: 16 random bytes (128 bits) in base64url, 22 characters. */
export function newUploadId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(
    /=+$/,
    "",
  );
}

/** Whether `id` has the shape of an id made by {@linkcode newUploadId}. */
export function isUploadId(id: string): boolean {
  return /^[A-Za-z0-9_-]{22}$/.test(id);
}

/** The problem types of the draft, and the one for a length conflict. */
export type ProblemType =
  | "mismatching-upload-offset"
  | "completed-upload"
  | "inconsistent-upload-length";

/**
 * An {@linkcode HttpError} answered as `application/problem+json` with one
 * of the draft's problem types, or as plain text (tus) without one; either
 * way with `headers` (a 409's current `Upload-Offset`). A problem of the
 * draft says `Upload-Complete: ?0`: the resumable upload's own refusal, not
 * the final answer of a complete upload (the draft requires it on a 409
 * for a wrong offset and shows it on an inconsistent length).
 */
export class ProblemError extends HttpError {
  readonly type: ProblemType | undefined;
  readonly extra: Record<string, number>;
  readonly headers: Record<string, string>;
  constructor(
    status: number,
    type: ProblemType | undefined,
    message: string,
    extra: Record<string, number> = {},
    headers: Record<string, string> = {},
  ) {
    super(status, message);
    this.type = type;
    this.extra = extra;
    this.headers = headers;
  }

  override getResponse(): Response {
    const response = this.type === undefined
      ? super.getResponse()
      : new Response(
        JSON.stringify({
          type: PROBLEM_BASE + this.type,
          title: this.message,
          ...this.extra,
        }),
        {
          status: this.status,
          headers: {
            "content-type": "application/problem+json",
            "upload-complete": "?0",
          },
        },
      );
    for (const [name, value] of Object.entries(this.headers)) {
      response.headers.set(name, value);
    }
    return response;
  }
}

/** At most 64 characters of the peer's input, for error messages. */
export function quote(value: string): string {
  return JSON.stringify(value.length > 64 ? value.slice(0, 64) + "…" : value);
}
