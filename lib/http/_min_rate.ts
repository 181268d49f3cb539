// A minimum transfer rate for request bodies: the idle timeout restarts on
// every byte, so a client that sends one byte every few seconds would pin a
// handler, its sink and its file descriptors forever. This guard measures
// the bytes that arrive per window of time spent WAITING for the source
// (time the consumer is busy, such as a slow sink, does not count) and fails
// the stream when a full window brought fewer than the minimum.

import { checkMs } from "../_internal/limits.ts";
import {
  pacedStream,
  type PacedStreamOptions,
} from "../_internal/paced_stream.ts";
import { HttpError } from "./http_error.ts";

/**
 * The pace options every receiver applies to a request body, with their
 * errors: 408 when no byte arrives for `idleTimeoutMs`, or fewer than
 * `minBytesPerSecond` arrive over `minRateWindowMs` (each message names its
 * option). Spread into {@linkcode pacedStream}'s options beside the
 * receiver's own (a byte limit, a read-ahead), so that all of it is one
 * stage per chunk.
 */
export function paceOptions(
  idleTimeoutMs: number,
  minBytesPerSecond: number,
  minRateWindowMs: number,
): PacedStreamOptions {
  return {
    idleTimeoutMs,
    onIdle: () =>
      new HttpError(
        408,
        `Cannot receive body: no bytes arrived for ${idleTimeoutMs} ms (idleTimeoutMs)`,
      ),
    minBytesPerSecond,
    minRateWindowMs,
    onSlow: () =>
      new HttpError(
        408,
        `Cannot receive body: fewer than ${minBytesPerSecond} bytes per second arrived over ${minRateWindowMs} ms (minBytesPerSecond)`,
      ),
  };
}

/** A request body paced as {@linkcode paceOptions} says, as one stage. */
export function withPace(
  body: ReadableStream<Uint8Array>,
  idleTimeoutMs: number,
  minBytesPerSecond: number,
  minRateWindowMs: number,
): ReadableStream<Uint8Array> {
  if (!idleTimeoutMs && !(minBytesPerSecond && minRateWindowMs)) return body;
  return pacedStream(
    body,
    paceOptions(idleTimeoutMs, minBytesPerSecond, minRateWindowMs),
  );
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
