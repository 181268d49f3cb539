import { checkArgument } from "../_internal/arguments.ts";
import { registerFusable, watchWrites } from "./_fuse.ts";
import { isThenable } from "../_internal/thenable.ts";
import { asyncIterable } from "../_internal/async_iterable.ts";

/** Options for {@linkcode MapStream}. */
export interface MapStreamOptions {
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
 * A stream that applies a function to every chunk and passes on the result.
 * The function may be async; chunks stay in order and the next chunk is not
 * transformed before the previous result is enqueued. An exception (or a
 * rejected promise) errors both sides of the stream with that error.
 *
 * @example Double numbers
 * ```ts
 * import { MapStream } from "@sluice/streams/streams";
 * import assert from "node:assert/strict";
 *
 * const doubled = ReadableStream.from([1, 2, 3])
 *   .pipeThrough(new MapStream((n: number) => n * 2));
 * assert.deepEqual(await Array.fromAsync(doubled), [2, 4, 6]);
 * ```
 */
export class MapStream<I, O> extends TransformStream<I, O> {
  /**
   * Creates a stream that maps each chunk with `fn`.
   *
   * @param fn Called with each chunk and its zero-based index; returns the
   * chunk to pass on (or a promise of it).
   * @param options Queuing strategies for both sides.
   */
  constructor(
    fn: (chunk: I, index: number) => O | PromiseLike<O>,
    options: MapStreamOptions = {},
  ) {
    checkArgument(
      typeof fn === "function",
      "create map stream",
      "fn",
      "a function",
      fn,
    );
    let index = 0;
    const writes = watchWrites(options.writableStrategy);
    super(
      {
        transform(chunk, controller) {
          const result = fn(chunk, index++);
          if (isThenable(result)) {
            return Promise.resolve(result).then((value) =>
              controller.enqueue(value)
            );
          }
          controller.enqueue(result);
        },
      },
      writes.strategy as QueuingStrategy<I>,
      (options.readableStrategy ?? { highWaterMark: 0 }) as QueuingStrategy<O>,
    );
    // Its readable is async-iterable in WebKit too (see asyncIterable).
    asyncIterable(this.readable);
    registerFusable(
      this,
      () => (chunk) => fn(chunk as I, index++),
      writes.written,
    );
  }
}
