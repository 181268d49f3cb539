import { deferred } from "../../_internal/deferred.ts";
// A way past a WritableStream's per-chunk machinery for the library's own
// writers. A WritableStream write costs a promise, a queue entry and several
// state checks per chunk (about 0.5 µs under Deno), which dominates the
// cost of sending small RPC messages. A stream that can take chunks directly
// registers a function here; a writer that holds the stream's lock (so that
// nothing else writes through it) and has not closed it may call that
// function instead of `writer.write`, one call at a time: the next only
// after the previous returned (or its promise settled).

// deno-lint-ignore no-explicit-any
type DirectWrite = (chunk: any) => void | Promise<void>;

const writers = new WeakMap<WritableStream<unknown>, DirectWrite>();

/** Registers `write` as the direct path into `stream`. */
export function registerDirectWrite<T>(
  stream: WritableStream<T>,
  write: (chunk: T) => void | Promise<void>,
): void {
  writers.set(stream as WritableStream<unknown>, write);
}

/** The direct path into `stream`, if it has one. */
export function directWrite<T>(
  stream: WritableStream<T>,
): ((chunk: T) => void | Promise<void>) | undefined {
  return writers.get(stream as WritableStream<unknown>);
}

/**
 * `source.pipeTo(target, { preventClose: true, preventAbort: true, signal })`,
 * writing each chunk through the target's direct path when it has one. Like
 * `pipeTo`, it locks both streams while it runs, cancels the source when the
 * target fails or the signal aborts, and rejects with that reason.
 */
export async function pipeDirect<T>(
  source: ReadableStream<T>,
  target: WritableStream<T>,
  signal: AbortSignal,
): Promise<void> {
  const write = directWrite(target);
  if (write === undefined) {
    return await source.pipeTo(target, {
      preventClose: true,
      preventAbort: true,
      signal,
    });
  }
  const writer = target.getWriter();
  const reader = source.getReader();
  const aborted = deferred<never>();
  aborted.promise.catch(() => {});
  const onAbort = () => {
    aborted.reject(signal.reason);
    reader.cancel(signal.reason).catch(() => {});
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (signal.aborted) throw signal.reason;
      if (done) return;
      const written = write(value);
      if (written !== undefined) await Promise.race([written, aborted.promise]);
    }
  } catch (error) {
    const reason = signal.aborted ? signal.reason : error;
    await reader.cancel(reason).catch(() => {});
    throw reason;
  } finally {
    signal.removeEventListener("abort", onAbort);
    reader.releaseLock();
    writer.releaseLock();
  }
}
