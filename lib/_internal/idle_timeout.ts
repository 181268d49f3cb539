import { checkMs } from "./limits.ts";

// A read-side idle timeout for request bodies: a client that stops sending
// must not pin a handler forever.

/** What {@linkcode pipeWithIdleTimeout} adds beside its timer, in the same hop. */
export interface IdlePipeOptions {
  /**
   * Bytes read ahead of the consumer (a byte-length high-water mark on the
   * returned stream); 0 reads at most one chunk ahead.
   */
  readAheadBytes?: number;
  /** When it aborts, the stream errors with `onAbort(reason)`'s error. */
  signal?: AbortSignal;
  /** The error for an aborted `signal` (default: the signal's reason). */
  onAbort?: (reason: unknown) => unknown;
}

/**
 * {@linkcode withIdleTimeout} as one `TransformStream` that `source` is
 * piped through, with a read-ahead and an abort signal in the same hop: for
 * a body passed on to the runtime (an echo), where a pull-based stream
 * reading `source` in JS costs more per chunk. Its timer looks at
 * back-pressure instead of seeing each read: a spell of the consumer holding
 * the stream back may delay the error by up to `ms / 8`, never bring it
 * early. Where a handler reads the body itself and answers with a response
 * body of its own, use withIdleTimeout: under Deno 2.9.6 over HTTP/1.1, when
 * such a handler failed with a read of the request pending, its errored
 * response body closed the connection if the request body was read through
 * a reader (or an identity TransformStream), but not if it was piped
 * through a TransformStream with a transform function (the client waited
 * forever). Returns `source` itself when there is nothing to add.
 */
export function pipeWithIdleTimeout(
  source: ReadableStream<Uint8Array>,
  ms: number | undefined,
  onIdle: () => unknown,
  options: IdlePipeOptions = {},
): ReadableStream<Uint8Array> {
  const { readAheadBytes = 0, signal, onAbort = (reason) => reason } = options;
  const idleMs = ms ?? 0;
  if (!idleMs && !readAheadBytes && !signal) return source;
  // One hop, and one timer re-armed only when it fires early: a timer per
  // chunk costs more than the chunk on a fast stream (measured: RSS growth
  // of a 1 GiB echo went from 12 MiB to 50-70 MiB). A pull-based
  // ReadableStream reading `source` in JS measured slower than a pipe
  // through a TransformStream under Bun (1 GiB echo, curl: 0.90-0.99x a
  // bare TransformStream, with twice its RSS growth), and no faster under
  // Deno (docs/performance.md, "One TransformStream hop").
  let controller!: TransformStreamDefaultController<Uint8Array>;
  let last = 0; // the last chunk's time, or the end of a held-back spell
  let timer: ReturnType<typeof setTimeout> | undefined;
  let done = false;
  const stop = () => {
    done = true;
    clearTimeout(timer);
    timer = undefined;
    signal?.removeEventListener("abort", aborted);
  };
  const fail = (error: unknown) => {
    if (done) return;
    stop();
    controller.error(error);
  };
  const aborted = () => fail(onAbort(signal!.reason));
  const check = () => {
    timer = undefined;
    if (done) return;
    const now = performance.now();
    if ((controller.desiredSize ?? 0) <= 0) {
      // The consumer holds the stream back (its queue is full): not
      // waiting for the source. Counted as held until the next look, so
      // that a wait is never cut short.
      const step = Math.max(1, idleMs / 8);
      last = now + step;
      timer = setTimeout(check, step);
      return;
    }
    const left = last + idleMs - now;
    if (left > 0) timer = setTimeout(check, left);
    else fail(onIdle());
  };
  const stream = new TransformStream<Uint8Array, Uint8Array>(
    {
      start(c) {
        controller = c;
        last = performance.now();
        if (idleMs) timer = setTimeout(check, idleMs);
        if (signal?.aborted) aborted();
        else signal?.addEventListener("abort", aborted, { once: true });
      },
      transform(chunk, c) {
        last = performance.now();
        c.enqueue(chunk);
      },
    },
    undefined,
    // At least one byte, so that an empty queue reads as waiting.
    new ByteLengthQueuingStrategy({
      highWaterMark: Math.max(readAheadBytes, 1),
    }),
  );
  // The pipe settles however it ends (the source done, an error, the
  // consumer's cancel): the timer and the listener go with it. Its
  // rejection is the stream's own error, seen by the consumer.
  source.pipeTo(stream.writable).then(stop, stop);
  return stream.readable;
}

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
  const reader = source.getReader();
  // One timer, re-armed only when it fires early: a timer per chunk costs
  // more than the chunk on a fast stream (measured: RSS growth of a 1 GiB
  // echo went from 12 MiB to 50-70 MiB).
  let waitingSince = -1;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let failed = false;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const check = () => {
    timer = undefined;
    if (waitingSince < 0) return; // not waiting: re-armed by the next pull
    const left = waitingSince + ms - performance.now();
    if (left > 0) {
      timer = setTimeout(check, left);
      return;
    }
    failed = true;
    const error = onIdle();
    controller.error(error);
    reader.cancel(error).catch(() => {});
  };
  const stop = () => {
    clearTimeout(timer);
    timer = undefined;
  };
  return new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    async pull() {
      waitingSince = performance.now();
      timer ??= setTimeout(check, ms);
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
      } catch (error) {
        stop();
        if (!failed) controller.error(error);
        return;
      } finally {
        waitingSince = -1;
      }
      if (failed) return;
      if (result.done) {
        stop();
        controller.close();
        return;
      }
      controller.enqueue(result.value);
    },
    cancel(reason) {
      stop();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/** Checks an `idleTimeoutMs` option: a non-negative finite number. */
export function checkIdleTimeout(what: string, ms: number | undefined): void {
  checkMs(what, "idleTimeoutMs", ms);
}
