// The pace every receiver holds a request body to. The idle timeout restarts
// on every byte, so a client that sends one byte every few seconds would pin
// a handler, its sink and its file descriptors forever: a minimum rate,
// measured over windows of time spent WAITING for the client (time the
// consumer is busy, such as a slow sink, does not count), bounds that too.

import { PacedReader, type ReadPace } from "../_internal/idle_timeout.ts";
import { checkTimerMs } from "../_internal/limits.ts";
import { HttpError } from "./http_error.ts";

/** How a receiver paces a request body (see {@linkcode bodyPace}). */
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
 * Writes a request body into `writable` (a parser's input) in a read loop
 * held to {@linkcode bodyPace}: only time spent reading counts, so the
 * parser, or whoever reads what it gives, holding the body back is never
 * held against the client, and a limit fires when reached. `signal`
 * aborting fails it with the signal's reason. Every failure (the pace, the
 * signal, the body's own, `writable` erroring or its reader cancelling)
 * cancels the body and aborts `writable` with the same error, which is how
 * the parser's reader sees it; the returned promise settles when the body is
 * in or failed, and never rejects. A body already locked (used) throws its
 * TypeError at once, before anything starts.
 */
export function pumpPacedBody(
  body: ReadableStream<Uint8Array>,
  pace: BodyPace,
  writable: WritableStream<Uint8Array>,
  signal: AbortSignal,
): Promise<void> {
  const source = new PacedReader(body, bodyPace(pace));
  return pump(source, writable.getWriter(), signal);
}

async function pump(
  source: PacedReader,
  writer: WritableStreamDefaultWriter<Uint8Array>,
  signal: AbortSignal,
): Promise<void> {
  const aborted = () => source.fail(signal.reason);
  signal.addEventListener("abort", aborted, { once: true });
  // The parser failing, or its reader cancelling, stops the loop at once,
  // even while it waits for the client.
  writer.closed.catch((error) => source.fail(error));
  try {
    signal.throwIfAborted();
    while (true) {
      await writer.ready;
      const next = await source.read();
      if (next.done) break;
      // Its failure errors `writable`: seen by `ready`, `close` and `closed`.
      writer.write(next.value).catch(() => {});
    }
    await writer.close();
  } catch (error) {
    source.fail(error);
    await writer.abort(error).catch(() => {});
  } finally {
    signal.removeEventListener("abort", aborted);
  }
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
  checkTimerMs(what, "minRateWindowMs", windowMs);
}
