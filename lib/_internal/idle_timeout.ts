import { checkMs } from "./limits.ts";
import { pacedStream } from "./paced_stream.ts";

// A read-side idle timeout for request bodies: a client that stops sending
// must not pin a handler forever.

/**
 * Wraps `source` so that a read waiting more than `ms` milliseconds for the
 * next chunk errors the stream with `onIdle()`'s error and cancels the
 * source with it. Only time spent waiting for the source counts: while the
 * consumer is not reading (a slow sink, back-pressure), no timer runs.
 * Returns `source` itself when `ms` is 0 or undefined.
 */
export function withIdleTimeout(
  source: ReadableStream<Uint8Array>,
  ms: number | undefined,
  onIdle: () => unknown,
): ReadableStream<Uint8Array> {
  if (!ms) return source;
  return pacedStream(source, { idleTimeoutMs: ms, onIdle });
}

/** Checks an `idleTimeoutMs` option: a non-negative finite number. */
export function checkIdleTimeout(what: string, ms: number | undefined): void {
  checkMs(what, "idleTimeoutMs", ms);
}
