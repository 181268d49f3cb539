// Releasing a reader whose stream has ended, or not.

/**
 * Releases `reader`'s lock unless its stream was read to its end
 * (`ended`). The streams standard makes a `TypeError` on every release (the
 * reader's `closed` promise is rejected, or replaced by a rejected one):
 * Deno 2.9.6 builds it with its stack, about 7.5 µs (Bun 1.4.5: 1.5 µs),
 * and the three releases of a gRPC unary call over `serveHttp2` were 8% of
 * its server CPU. A stream read to its end has nothing left to give, so its
 * lock is kept: for the library's own streams, bodies handed to it to send,
 * and request bodies a call read to their end (as fetch's own
 * `request.arrayBuffer()` leaves a body: locked, so a `body.cancel()` after
 * it rejects there too).
 */
export function releaseUnlessEnded(
  reader: { releaseLock(): void },
  ended: boolean,
): void {
  if (!ended) reader.releaseLock();
}
