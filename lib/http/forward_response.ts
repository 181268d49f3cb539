import { checkArgument } from "../_internal/arguments.ts";
import { encodedResponseInit, fetchDecoded } from "./_compression.ts";

// Hop-by-hop headers (RFC 9110 §7.6.1).
const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
];

// What describes the bytes as received, not as fetch decoded them.
const DESCRIBE_ENCODED = [
  "content-encoding",
  "content-length",
  "content-digest",
  "repr-digest",
];

/**
 * Makes a response from an upstream response, to return to the caller
 * unchanged: same status, status text, headers and streamed body (never
 * buffered). Only what cannot be forwarded is dropped: hop-by-hop headers
 * (`Connection`, `Transfer-Encoding`, ... are illegal in HTTP/2), and, when
 * `fetch` has already decompressed the body, what would otherwise describe
 * bytes that are no longer there: `Content-Encoding`, `Content-Length`,
 * `Content-Digest` and `Repr-Digest`, and a strong `ETag` becomes weak
 * (RFC 9110, 8.8.1). A body the runtime's fetch leaves encoded (Deno's and
 * workerd's `deflate` and `zstd`, any list of codings, a coding it does not
 * know) keeps its `Content-Encoding` and goes on encoded.
 *
 * @param upstream The response from `fetch`.
 * @returns A response to return from a fetch handler.
 *
 * @example Forward the receiver's answer to the caller
 * ```ts ignore
 * import { forwardResponse, upload } from "@sluice/streams/http";
 *
 * const handler = async () => {
 *   const file = new Blob(["%PDF-1.4 ..."], { type: "application/pdf" });
 *   return forwardResponse(await upload("http://127.0.0.1:9090/receiver", file));
 * };
 * ```
 */
export function forwardResponse(upstream: Response): Response {
  checkArgument(
    typeof (upstream as Partial<Response> | null)?.headers?.get ===
      "function",
    "forward response",
    "the upstream response",
    "a Response",
    upstream,
    upstream instanceof Promise ? " (await the fetch first)" : "",
  );
  const headers = new Headers(upstream.headers);
  const connectionTokens = (headers.get("connection") ?? "")
    .split(",")
    .map((token) => token.trim().toLowerCase())
    .filter(Boolean);
  for (const name of [...HOP_BY_HOP, ...connectionTokens]) headers.delete(name);
  const encoding = headers.get("content-encoding");
  if (encoding !== null && fetchDecoded(encoding)) {
    for (const name of DESCRIBE_ENCODED) headers.delete(name);
    const etag = headers.get("etag");
    if (etag !== null && !etag.startsWith("W/")) {
      headers.set("etag", `W/${etag}`);
    }
  }
  const init = {
    status: upstream.status,
    statusText: upstream.statusText,
    headers,
  };
  // A coding kept is the body's own: sent as it is.
  return new Response(
    upstream.body,
    headers.has("content-encoding") ? encodedResponseInit(init) : init,
  );
}
