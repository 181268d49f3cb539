// The pace every receiver holds a request body to. The idle timeout restarts
// on every byte, so a client that sends one byte every few seconds would pin
// a handler, its sink and its file descriptors forever: a minimum rate,
// measured over windows of time spent WAITING for the client (time the
// consumer is busy, such as a slow sink, does not count), bounds that too.

import {
  type PaceOptions,
  pipeWithPace,
  type ReadPace,
} from "../_internal/idle_timeout.ts";
import { checkMs } from "../_internal/limits.ts";
import { HttpError } from "./http_error.ts";

/** How a receiver paces a request body (see {@linkcode paceBody}). */
export interface BodyPace {
  idleTimeoutMs: number;
  minBytesPerSecond: number;
  minRateWindowMs: number;
}

/**
 * The pace every receiver holds a request body to: 408 when no byte arrives
 * for `idleTimeoutMs`, or fewer than `minBytesPerSecond` arrive over
 * `minRateWindowMs` (each message names its option).
 */
export function bodyPace(pace: BodyPace): ReadPace {
  const { idleTimeoutMs, minBytesPerSecond, minRateWindowMs } = pace;
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

/**
 * A request body paced as {@linkcode bodyPace} says, in one hop, for a
 * consumer that pipes it (a parser); `options` adds a read-ahead, an abort
 * signal and a look at each chunk to the same hop.
 */
export function paceBody(
  body: ReadableStream<Uint8Array>,
  pace: BodyPace,
  options: Omit<PaceOptions, keyof ReadPace> = {},
): ReadableStream<Uint8Array> {
  return pipeWithPace(body, { ...options, ...bodyPace(pace) });
}

/**
 * The whole body's deadline, from now: past `timeoutMs` (0: none) its signal
 * aborts with a 408 naming the option. `clear()` once the body is in.
 */
export function bodyDeadline(
  timeoutMs: number,
): { signal: AbortSignal; clear(): void } {
  const controller = new AbortController();
  const timer = timeoutMs > 0
    ? setTimeout(
      () =>
        controller.abort(
          new HttpError(
            408,
            `Cannot receive body: not complete within ${timeoutMs} ms (timeoutMs)`,
          ),
        ),
      timeoutMs,
    )
    : undefined;
  return { signal: controller.signal, clear: () => clearTimeout(timer) };
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
