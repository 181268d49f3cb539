import { checkArgument } from "../_internal/arguments.ts";
import { registerFusable, watchWrites } from "./_fuse.ts";
import { isThenable } from "../_internal/thenable.ts";
import { asyncIterable } from "../_internal/async_iterable.ts";

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
  readonly #state: { accumulator: A };

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
    checkArgument(
      typeof fn === "function",
      "create scan stream",
      "fn",
      "a function",
      fn,
    );
    // The accumulator lives in a box that the transform and the fused step
    // share, so that the step (which may outlive the stream's use as a
    // stream) does not keep the stream itself alive.
    const state = { accumulator: initial };
    const step = scanStep(fn, state);
    const writes = watchWrites(options.writableStrategy);
    super(
      {
        transform: (chunk, controller) => {
          const next = step(chunk);
          if (isThenable(next)) {
            return next.then((value) => controller.enqueue(value));
          }
          controller.enqueue(next);
        },
      },
      writes.strategy as QueuingStrategy<I>,
      (options.readableStrategy ?? { highWaterMark: 0 }) as QueuingStrategy<A>,
    );
    this.#state = state;
    // Its readable is async-iterable in WebKit too (see asyncIterable).
    asyncIterable(this.readable);
    registerFusable(
      this,
      () => step as (chunk: unknown) => unknown,
      writes.written,
    );
  }

  /** The accumulator so far (`initial` before the first chunk). */
  get accumulator(): A {
    return this.#state.accumulator;
  }
}

// One step of the fold: combines, stores and returns the new accumulator
// (or a promise of it, for an async `fn`).
function scanStep<I, A>(
  fn: (accumulator: A, chunk: I) => A | PromiseLike<A>,
  state: { accumulator: A },
): (chunk: I) => A | Promise<A> {
  return (chunk) => {
    const next = fn(state.accumulator, chunk);
    if (isThenable(next)) {
      return Promise.resolve(next).then((value) => {
        state.accumulator = value;
        return value;
      });
    }
    state.accumulator = next;
    return next;
  };
}
