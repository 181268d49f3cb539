// The response headers that keep a streamed answer streaming through what
// sits between it and its client: `X-Accel-Buffering: no` for nginx-style
// proxies, whose default (`proxy_buffering on`) held a stream of small
// writes (events, echoed bytes, RPC messages) until it ended or filled
// their buffers; `Cache-Control: no-transform` for compressing middleware
// and proxies (Hono's `compress()` skips such a response): Hono's, under
// Bun, gzipped a Connect or gRPC-Web stream of the JSON codec (its content
// type ends in `+json`) through a CompressionStream that flushed nothing
// until the call ended, and a bidi call in lockstep waited to its deadline.

const NO_TRANSFORM = /(?:^|,)\s*no-transform\s*(?:,|$)/i;

/**
 * Marks a streamed response unbuffered and untransformed:
 * `X-Accel-Buffering: no`, and `no-transform` added to its
 * `Cache-Control`.
 */
export function markUnbuffered(headers: Headers): Headers {
  headers.set("x-accel-buffering", "no");
  const cacheControl = headers.get("cache-control");
  if (cacheControl === null) headers.set("cache-control", "no-transform");
  else if (!NO_TRANSFORM.test(cacheControl)) {
    headers.set("cache-control", `${cacheControl}, no-transform`);
  }
  return headers;
}

/**
 * Adds a handler's own headers to a streamed response's `headers` (marked
 * by {@linkcode markUnbuffered}): its `Cache-Control` replaces the one
 * marked, with `no-transform` added if it lacks it (appended, it read
 * `no-transform, max-age=60, no-transform`).
 */
export function mergeUnbuffered(headers: Headers, own: Headers): void {
  if (own.has("cache-control")) headers.delete("cache-control");
  own.forEach((value, key) => headers.append(key, value));
  markUnbuffered(headers);
}
