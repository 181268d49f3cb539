// The response header that tells nginx-style proxies to pass a streamed
// answer on as it comes: their default (`proxy_buffering on`) held a
// stream of small writes (events, echoed bytes, RPC messages) until it
// ended or filled their buffers.

/** Marks a streamed response unbuffered: `X-Accel-Buffering: no`. */
export function markUnbuffered(headers: Headers): Headers {
  headers.set("x-accel-buffering", "no");
  return headers;
}
