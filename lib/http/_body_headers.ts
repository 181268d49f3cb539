// Checks of a request's body headers that need no body: run before a sink is
// opened, so a refused request costs nothing.

import { parseDigestHeader } from "./digest_header.ts";
import { HttpError } from "./http_error.ts";

/**
 * The request's Content-Length, or undefined; 400 if malformed, 413 if over
 * `maxBytes`.
 */
export function declaredLength(
  headers: Headers,
  maxBytes: number,
  limitName = "maxBytes",
): number | undefined {
  const header = headers.get("content-length");
  if (header === null) return undefined;
  if (!/^\d{1,16}$/.test(header.trim())) {
    throw new HttpError(
      400,
      `Cannot read body: bad Content-Length "${header}"`,
    );
  }
  const length = Number(header.trim());
  if (length > maxBytes) {
    throw new HttpError(
      413,
      `Cannot accept body: Content-Length ${length} exceeds ${limitName} ${maxBytes}`,
    );
  }
  return length;
}

/**
 * The digests a `Content-Digest` header value promises (all algorithms, by
 * lower-case name), or undefined without one; 400 if malformed.
 */
export function contentDigests(
  header: string | null,
): Map<string, Uint8Array> | undefined {
  if (header === null) return undefined;
  try {
    return parseDigestHeader(header);
  } catch (cause) {
    throw new HttpError(400, (cause as Error).message, { cause });
  }
}
