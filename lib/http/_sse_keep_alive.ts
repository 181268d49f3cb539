// The keep-alive of an event stream, shared by SseEncoderStream (a
// transform) and the response body of sseResponse (which encodes in its
// own pull, with no transform between).

/** The default of `keepAliveMs`. */
export const DEFAULT_KEEP_ALIVE_MS = 5_000;

/**
 * An empty comment, `:` and the blank line: the keep-alive, the comment
 * sseResponse opens every body with, and what fetchEventStream knows that
 * opening by. Enqueue a copy (`.slice()`): a reader may take the buffer.
 */
export const EMPTY_COMMENT: Uint8Array = new Uint8Array([0x3a, 0x0a, 0x0a]);

/** A stream controller's side the keep-alive needs. */
interface Enqueuer {
  enqueue(chunk: Uint8Array): void;
  readonly desiredSize: number | null;
}

/** The keep-alive of one stream. */
export interface KeepAlive {
  /** Notes that an event just went out. */
  sent(): void;
  /** Stops it for good (the stream ended, was cancelled or failed). */
  stop(): void;
}

/**
 * Sends a keep-alive comment into `controller` after `keepAliveMs` (`0`:
 * never) without an event, only while its reader keeps up: at most one
 * waits for a reader that does not (the stream's high-water mark is 0, so
 * an idle reader leaves `desiredSize` at 0). An event only notes the time;
 * the timer, when it fires early, waits for what is left (re-arming it for
 * every event cost 8-10 of the 29 µs an event took per feed under Deno,
 * broadcasting to 5,000 feeds).
 */
export function keepAlive(
  controller: Enqueuer,
  keepAliveMs: number,
): KeepAlive {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = keepAliveMs === 0;
  let sentAt = performance.now();
  const stop = () => {
    stopped = true;
    clearTimeout(timer);
    timer = undefined;
  };
  const arm = (delayMs: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      timer = undefined;
      const quietMs = performance.now() - sentAt;
      if (quietMs < keepAliveMs) return arm(keepAliveMs - quietMs);
      try {
        if ((controller.desiredSize ?? 0) >= 0) {
          controller.enqueue(EMPTY_COMMENT.slice());
        }
        sentAt = performance.now();
        arm(keepAliveMs);
      } catch {
        // The stream was cancelled or errored: nothing to keep alive.
        stop();
      }
    }, delayMs);
  };
  arm(keepAliveMs);
  return {
    sent: () => void (sentAt = performance.now()),
    stop,
  };
}
