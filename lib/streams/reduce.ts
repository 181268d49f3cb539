import { openBurstReader } from "./_fuse.ts";
import { isThenable } from "../_internal/thenable.ts";
import { checkArgument, checkSignal } from "../_internal/arguments.ts";
import { streamFrom } from "../_internal/stream_from.ts";

/** Options for {@linkcode reduce}. */
export interface ReduceOptions {
  /**
   * Stops reading when aborted: the source is cancelled with the abort
   * reason and the returned promise rejects with it.
   */
  signal?: AbortSignal;
}

/**
 * Folds a stream (or any async iterable) into one value. Reads one chunk at
 * a time, so memory stays constant however long the stream is. If `fn`
 * throws, the source is cancelled with that error and the promise rejects
 * with it.
 *
 * @param source The chunks to fold.
 * @param fn Combines the accumulator with the next chunk (sync or async).
 * @param initial The accumulator before the first chunk, returned as it is
 * for an empty source.
 * @param options An optional abort signal.
 * @returns The final accumulator.
 *
 * @example Sum a stream of bigints
 * ```ts
 * import { reduce } from "@sluice/streams/streams";
 * import assert from "node:assert/strict";
 *
 * const sum = await reduce(ReadableStream.from([1n, 2n, 3n]), (a, b) => a + b, 0n);
 * assert.equal(sum, 6n);
 * ```
 */
export async function reduce<I, A>(
  source: ReadableStream<I> | AsyncIterable<I> | Iterable<I>,
  fn: (accumulator: A, chunk: I) => A | PromiseLike<A>,
  initial: A,
  options: ReduceOptions = {},
): Promise<A> {
  const { signal } = options;
  checkArgument(
    source instanceof ReadableStream ||
      typeof source === "object" && source !== null &&
        (Symbol.asyncIterator in source || Symbol.iterator in source),
    "reduce",
    "the source",
    "a ReadableStream or an (async) iterable",
    source,
  );
  checkArgument(typeof fn === "function", "reduce", "fn", "a function", fn);
  checkSignal("reduce", signal);
  const stream = source instanceof ReadableStream ? source : streamFrom(source);
  if (signal?.aborted) {
    // Stopped before reading: the source is cancelled all the same, not
    // waited for (as mid-way: a cancel may never settle).
    stream.cancel(signal.reason).catch(() => {});
    throw signal.reason;
  }
  const reader = stream.getReader();
  const onAbort = () => {
    reader.cancel(signal!.reason).catch(() => {});
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  let accumulator = initial;
  const burst = openBurstReader(stream, reader);
  try {
    // The library's own sources hand over a burst of chunks at once: one
    // promise per burst, not per chunk.
    while (burst !== undefined) {
      let chunks = burst.read();
      if (isThenable(chunks)) chunks = await chunks;
      signal?.throwIfAborted();
      if (chunks === undefined) return accumulator;
      for (let i = 0; i < chunks.length; i++) {
        try {
          const next = fn(accumulator, chunks[i] as I);
          accumulator = isThenable(next) ? await next : next;
        } catch (error) {
          await reader.cancel(error).catch(() => {});
          throw error;
        }
        signal?.throwIfAborted();
      }
    }
    while (true) {
      const { done, value } = await reader.read();
      signal?.throwIfAborted();
      if (done) return accumulator;
      try {
        const next = fn(accumulator, value);
        // Await only a promise: awaiting a plain value costs a microtask
        // turn per chunk.
        accumulator = isThenable(next) ? await next : next;
      } catch (error) {
        await reader.cancel(error).catch(() => {});
        throw error;
      }
    }
  } finally {
    burst?.release();
    signal?.removeEventListener("abort", onAbort);
    reader.releaseLock();
  }
}
