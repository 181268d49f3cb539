// A minimum transfer rate for request bodies: the idle timeout restarts on
// every byte, so a client that sends one byte every few seconds would pin a
// handler, its sink and its file descriptors forever. This guard measures
// the bytes that arrive per window of time spent WAITING for the source
// (time the consumer is busy, such as a slow sink, does not count) and fails
// the stream when a full window brought fewer than the minimum.

import { checkMs } from "../_internal/limits.ts";
import { withIdleTimeout } from "../_internal/idle_timeout.ts";
import { HttpError } from "./http_error.ts";

/**
 * A request body paced as every receiver paces it: 408 when no byte arrives
 * for `idleTimeoutMs`, or fewer than `minBytesPerSecond` arrive over
 * `minRateWindowMs` (each message names its option).
 */
export function withPace(
  body: ReadableStream<Uint8Array>,
  idleTimeoutMs: number,
  minBytesPerSecond: number,
  minRateWindowMs: number,
): ReadableStream<Uint8Array> {
  return withMinRate(
    withIdleTimeout(
      body,
      idleTimeoutMs,
      () =>
        new HttpError(
          408,
          `Cannot receive body: no bytes arrived for ${idleTimeoutMs} ms (idleTimeoutMs)`,
        ),
    ),
    minBytesPerSecond,
    minRateWindowMs,
    () =>
      new HttpError(
        408,
        `Cannot receive body: fewer than ${minBytesPerSecond} bytes per second arrived over ${minRateWindowMs} ms (minBytesPerSecond)`,
      ),
  );
}

/**
 * Wraps `source` so that, once `windowMs` milliseconds have been spent
 * waiting for it in the current window, fewer than
 * `minBytesPerSecond * windowMs / 1000` bytes in that window error the stream
 * with `onSlow()`'s error and cancel the source with it. The first window is
 * the grace period. Returns `source` itself when `minBytesPerSecond` is 0.
 */
export function withMinRate(
  source: ReadableStream<Uint8Array>,
  minBytesPerSecond: number,
  windowMs: number,
  onSlow: () => unknown,
): ReadableStream<Uint8Array> {
  if (!minBytesPerSecond || !windowMs) return source;
  const needed = minBytesPerSecond * windowMs / 1000;
  const reader = source.getReader();
  let waited = 0; // ms spent waiting in the current window, before this wait
  let bytes = 0; // bytes that arrived in the current window
  let waitingSince = -1;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let failed = false;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const fail = () => {
    failed = true;
    clearTimeout(timer);
    timer = undefined;
    const error = onSlow();
    controller.error(error);
    reader.cancel(error).catch(() => {});
  };
  // Fires when the current wait would complete the window: the bytes of the
  // window are then final unless a chunk arrives in the same instant.
  const check = () => {
    timer = undefined;
    if (waitingSince < 0 || failed) return;
    const total = waited + performance.now() - waitingSince;
    if (total < windowMs) {
      timer = setTimeout(check, windowMs - total);
      return;
    }
    if (bytes < needed) fail();
  };
  return new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    async pull() {
      waitingSince = performance.now();
      timer ??= setTimeout(check, Math.max(0, windowMs - waited));
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
      } catch (error) {
        clearTimeout(timer);
        timer = undefined;
        if (!failed) controller.error(error);
        return;
      }
      waited += performance.now() - waitingSince;
      waitingSince = -1;
      if (failed) return;
      if (result.done) {
        clearTimeout(timer);
        timer = undefined;
        controller.close();
        return;
      }
      bytes += result.value.byteLength;
      if (waited >= windowMs) {
        if (bytes < needed) {
          fail();
          return;
        }
        waited = 0;
        bytes = 0;
        clearTimeout(timer);
        timer = undefined;
      }
      controller.enqueue(result.value);
    },
    cancel(reason) {
      clearTimeout(timer);
      timer = undefined;
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/** Checks a `minBytesPerSecond` option: a non-negative finite number. */
export function checkMinRate(
  what: string,
  minBytesPerSecond: number,
  windowMs: number,
): void {
  if (!(minBytesPerSecond >= 0 && Number.isFinite(minBytesPerSecond))) {
    throw new RangeError(
      `Cannot ${what}: minBytesPerSecond must be a non-negative number, got ${minBytesPerSecond}`,
    );
  }
  checkMs(what, "minRateWindowMs", windowMs);
}
