// Chromium streams a request body only over HTTP/2 and says no more than
// "Failed to fetch" when asked to over an http: URL (docs/browser.md): the
// clients that stream one say why.

import { isBrowser } from "../_internal/user_agent.ts";

/**
 * `error`, or for a fetch a browser refused with a streamed body to an
 * http: URL, a TypeError saying why (`Cannot <what>: ... <instead>`).
 */
export function explainStreamingRefusal(
  error: unknown,
  url: URL,
  what: string,
  instead: string,
): unknown {
  return error instanceof TypeError && url.protocol === "http:" && isBrowser()
    ? new TypeError(
      `Cannot ${what}: ${error.message} (a browser streams a request body only over HTTP/2, an https: URL${instead})`,
      { cause: error },
    )
    : error;
}
