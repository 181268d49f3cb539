import { HttpError } from "./http_error.ts";

/**
 * The error codes of a storage with no room left: the disk is full
 * (ENOSPC) or the user's quota is spent (EDQUOT). Node's, Deno's and Bun's
 * `node:fs` set them as the error's `code`.
 */
const NO_SPACE = new Set(["ENOSPC", "EDQUOT"]);

/**
 * The answer to a sink or store that failed: its own `HttpError` as it is,
 * `507 Insufficient Storage` when it ran out of space (RFC 4918, 11.5: a
 * client that retries at once will fail again until room is made), else
 * `500` with `message`. The client gets the message alone; the cause keeps
 * the file system's error for `onError`.
 */
export function storeFailed(message: string, cause: unknown): HttpError {
  if (cause instanceof HttpError) return cause;
  return noSpace(cause)
    ? new HttpError(507, `${message}: no space left on the server`, { cause })
    : new HttpError(500, message, { cause });
}

// A no-space error, looked for along a short chain of causes (a sink that
// wraps the file system's error keeps it as its cause).
function noSpace(error: unknown): boolean {
  for (let depth = 0; depth < 4; depth++) {
    if (typeof error !== "object" || error === null) return false;
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" && NO_SPACE.has(code)) return true;
    error = (error as { cause?: unknown }).cause;
  }
  return false;
}
