import { registerFusable } from "./_fuse.ts";

/** Options for {@linkcode ScanStream}. */
export interface ScanStreamOptions {
  /**
   * Queuing strategy for the writable side.
   *
   * @default {{ highWaterMark: 1 }}
   */
  writableStrategy?: QueuingStrategy<unknown>;
  /**
   * Queuing strategy for the readable side.
   *
   * @default {{ highWaterMark: 0 }}
   */
  readableStrategy?: QueuingStrategy<unknown>;
}

/**
 * A running fold: each input chunk is combined with the accumulator, and the
 * new accumulator is passed on. `new ScanStream((a, b) => a + b, 0)` turns
 * `1, 2, 3` into `1, 3, 6`. The function may be async. An exception errors
 * the stream with that error, so a checked operation (say, an addition that
 * refuses to overflow) ends the stream instead of passing on a wrong value.
 *
 * @example Running totals
 * ```ts
 * import { ScanStream } from "@sluice/streams/streams";
 * import assert from "node:assert/strict";
 *
 * const totals = ReadableStream.from([1n, 2n, 3n])
 *   .pipeThrough(new ScanStream((sum: bigint, n: bigint) => sum + n, 0n));
 * assert.deepEqual(await Array.fromAsync(totals), [1n, 3n, 6n]);
 * ```
 */
export class ScanStream<I, A> extends TransformStream<I, A> {
  #accumulator: A;

  /**
   * Creates a running fold starting at `initial`.
   *
   * @param fn Combines the accumulator with the next chunk (sync or async).
   * @param initial The accumulator before the first chunk (never emitted
   * itself).
   * @param options Queuing strategies for both sides.
   */
  constructor(
    fn: (accumulator: A, chunk: I) => A | PromiseLike<A>,
    initial: A,
    options: ScanStreamOptions = {},
  ) {
    super(
      {
        transform: (chunk, controller) => {
          const next = fn(this.#accumulator, chunk);
          if (
            typeof next === "object" && next !== null &&
            typeof (next as { then?: unknown }).then === "function"
          ) {
            return Promise.resolve(next as PromiseLike<A>).then((value) => {
              this.#accumulator = value;
              controller.enqueue(value);
            });
          }
          this.#accumulator = next as A;
          controller.enqueue(next as A);
        },
      },
      options.writableStrategy as QueuingStrategy<I> | undefined,
      (options.readableStrategy ?? { highWaterMark: 0 }) as QueuingStrategy<A>,
    );
    this.#accumulator = initial;
    registerFusable(this, () => (chunk) => {
      const next = fn(this.#accumulator, chunk as I);
      if (
        typeof next === "object" && next !== null &&
        typeof (next as { then?: unknown }).then === "function"
      ) {
        return Promise.resolve(next as PromiseLike<A>).then((value) => {
          this.#accumulator = value;
          return value;
        });
      }
      this.#accumulator = next as A;
      return next;
    });
  }

  /** The accumulator so far (`initial` before the first chunk). */
  get accumulator(): A {
    return this.#accumulator;
  }
}
