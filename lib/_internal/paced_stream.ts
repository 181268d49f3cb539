// One JS stage for everything a receiver does per chunk of a request body:
// the idle timeout, the minimum rate, a per-chunk hook (byte limits,
// hashing), a read-ahead and an abort signal. Each of these used to be its
// own stream, and each stream costs a promise round trip per chunk, more
// than the bookkeeping itself (measured: a 1 GiB echo under Bun at 0.83× one
// bare TransformStream with three stages). Here one pull loop reads the
// source and enqueues into one queue sized by the read-ahead.

/** Options for {@linkcode pacedStream}; every part is optional. */
export interface PacedStreamOptions {
  /**
   * The longest wait for the source's next chunk, in ms (only time spent
   * waiting for the source counts); `0` or undefined disables.
   */
  idleTimeoutMs?: number;
  /** Makes the error of an idle timeout. */
  onIdle?: () => unknown;
  /**
   * The slowest accepted source, in bytes per second of time spent waiting
   * for it, measured per `minRateWindowMs` of waiting (the first window is
   * the grace period); `0` or undefined disables.
   */
  minBytesPerSecond?: number;
  /** The window of `minBytesPerSecond`, in ms of waiting. */
  minRateWindowMs?: number;
  /** Makes the error of a source slower than `minBytesPerSecond`. */
  onSlow?: () => unknown;
  /**
   * Bytes read ahead of the consumer: the source is read while fewer are
   * queued. `0` reads only when the consumer reads.
   */
  readAheadBytes?: number;
  /**
   * Called with each chunk before it is queued. A throw errors the stream
   * with what it threw (the chunk is not passed on) and cancels the source.
   */
  onChunk?: (chunk: Uint8Array) => void;
  /** Errors the stream (and cancels the source) when it aborts. */
  signal?: AbortSignal;
  /** Makes the error of an aborted `signal` from its reason (default: the reason). */
  onAbort?: (reason: unknown) => unknown;
}

/**
 * Wraps `source` in one stream that applies `options` to each chunk in a
 * single pull loop. An idle timeout, a too-slow source, a throwing
 * `onChunk` or an aborted signal errors the stream and cancels the source
 * with that error; a source error errors the stream; a cancel of the stream
 * cancels the source. Timers are armed lazily: at most one runs, armed when
 * a wait starts and none is pending, and re-armed only when it fires before
 * a deadline (a timer per chunk costs more than the chunk on a fast source).
 */
export function pacedStream(
  source: ReadableStream<Uint8Array>,
  options: PacedStreamOptions,
): ReadableStream<Uint8Array> {
  const {
    idleTimeoutMs: idleMs = 0,
    onIdle = () => new Error("Idle timeout"),
    minBytesPerSecond = 0,
    minRateWindowMs: windowMs = 0,
    onSlow = () => new Error("Too slow"),
    readAheadBytes = 0,
    onChunk,
    signal,
    onAbort = (reason: unknown) => reason,
  } = options;
  const needed = minBytesPerSecond > 0 && windowMs > 0
    ? minBytesPerSecond * windowMs / 1000
    : 0;
  const timed = idleMs > 0 || needed > 0;
  const reader = source.getReader();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  // performance.now() when the current wait for the source began; -1 while
  // not waiting.
  let waitingSince = -1;
  let waited = 0; // ms waited in the current rate window, before this wait
  let windowBytes = 0; // bytes that arrived in the current rate window
  let timer: ReturnType<typeof setTimeout> | undefined;
  let ended = false;

  const stop = () => {
    ended = true;
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    signal?.removeEventListener("abort", aborted);
  };
  const fail = (error: unknown, cancelSource: boolean) => {
    if (ended) return;
    stop();
    controller.error(error);
    if (cancelSource) reader.cancel(error).catch(() => {});
  };
  // The time left of the nearest deadline of the current wait (Infinity:
  // none), or -1 after failing the stream.
  const left = (now: number): number => {
    const wait = now - waitingSince;
    let next = Infinity;
    if (idleMs > 0) {
      if (wait >= idleMs) {
        fail(onIdle(), true);
        return -1;
      }
      next = idleMs - wait;
    }
    if (needed > 0) {
      const total = waited + wait;
      if (total < windowMs) next = Math.min(next, windowMs - total);
      else if (windowBytes < needed) {
        // The window is complete: its bytes are final unless a chunk
        // arrives in this same instant.
        fail(onSlow(), true);
        return -1;
      }
    }
    return next;
  };
  const check = () => {
    timer = undefined;
    if (waitingSince < 0 || ended) return; // re-armed by the next wait
    const next = left(performance.now());
    if (next >= 0 && next < Infinity) timer = setTimeout(check, next);
  };
  function aborted() {
    fail(onAbort(signal!.reason), true);
  }

  return new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      if (!signal) return;
      if (signal.aborted) {
        aborted();
        return;
      }
      signal.addEventListener("abort", aborted, { once: true });
    },
    async pull(c) {
      // Several chunks per pull while the queue has room: one promise per
      // chunk (the read), not two.
      do {
        let result: ReadableStreamReadResult<Uint8Array>;
        if (timed) {
          waitingSince = performance.now();
          if (timer === undefined) {
            const next = left(waitingSince);
            if (next < 0) return;
            if (next < Infinity) timer = setTimeout(check, next);
          }
        }
        try {
          result = await reader.read();
        } catch (error) {
          waitingSince = -1;
          fail(error, false);
          return;
        }
        if (timed) {
          if (needed > 0) waited += performance.now() - waitingSince;
          waitingSince = -1;
        }
        if (ended) return;
        if (result.done) {
          stop();
          c.close();
          return;
        }
        const chunk = result.value;
        if (needed > 0) {
          windowBytes += chunk.byteLength;
          if (waited >= windowMs) {
            if (windowBytes < needed) {
              fail(onSlow(), true);
              return;
            }
            waited = 0;
            windowBytes = 0;
            if (timer !== undefined) clearTimeout(timer);
            timer = undefined;
          }
        }
        if (onChunk) {
          try {
            onChunk(chunk);
          } catch (error) {
            fail(error, true);
            return;
          }
        }
        c.enqueue(chunk);
      } while ((c.desiredSize ?? 0) > 0);
    },
    cancel(reason) {
      stop();
      return reader.cancel(reason);
    },
  }, new ByteLengthQueuingStrategy({ highWaterMark: readAheadBytes }));
}
