import { checkOneOf } from "../_internal/arguments.ts";
import { checkMax } from "../_internal/limits.ts";
import { asyncIterable } from "../_internal/async_iterable.ts";
/** Options for {@linkcode ByteLimitStream}. */
export interface ByteLimitStreamOptions {
  /**
   * What to do when the limit is passed: `"error"` errors the stream with a
   * `RangeError` (nothing beyond the limit is passed on); `"truncate"` passes
   * on exactly `maxBytes` bytes and then closes, cancelling the source.
   *
   * @default {"error"}
   */
  onExceeded?: "error" | "truncate";
  /** Names what is limited, in the error message. @default {"stream"} */
  name?: string;
}

/**
 * A pass-through byte stream that counts bytes and refuses more than
 * `maxBytes`. With the default `onExceeded: "error"`, the chunk that would
 * pass the limit is not forwarded: the stream errors with a `RangeError`
 * naming the limit, so a sink downstream never receives more than
 * `maxBytes` bytes.
 *
 * @example Refuse a body over 1 KiB
 * ```ts
 * import { ByteLimitStream } from "@sluice/streams/streams";
 * import assert from "node:assert/strict";
 *
 * const body = ReadableStream.from([new Uint8Array(1000), new Uint8Array(100)]);
 * const limited = body.pipeThrough(new ByteLimitStream(1024));
 * await assert.rejects(Array.fromAsync(limited), RangeError);
 * ```
 */
export class ByteLimitStream extends TransformStream<Uint8Array, Uint8Array> {
  #bytes = 0;
  #exceeded = false;

  /**
   * Creates a stream that passes at most `maxBytes` bytes.
   *
   * @param maxBytes The most bytes allowed through (a non-negative integer).
   * @param options What to do past the limit, and what to call the stream.
   */
  constructor(maxBytes: number, options: ByteLimitStreamOptions = {}) {
    checkMax("limit bytes", "maxBytes", maxBytes);
    const { name = "stream" } = options;
    const onExceeded = options.onExceeded === undefined
      ? "error"
      : checkOneOf("limit bytes", "onExceeded", options.onExceeded, [
        "error",
        "truncate",
      ]);
    super({
      transform: (chunk, controller) => {
        if (!ArrayBuffer.isView(chunk)) {
          // A string or a number has no byteLength: not "over the limit".
          throw new TypeError(
            `Cannot accept ${name}: a chunk is ${typeof chunk}, not a Uint8Array`,
          );
        }
        const next = this.#bytes + chunk.byteLength;
        if (next <= maxBytes) {
          this.#bytes = next;
          controller.enqueue(chunk);
          return;
        }
        this.#exceeded = true;
        if (onExceeded === "truncate") {
          const rest = maxBytes - this.#bytes;
          if (rest > 0) controller.enqueue(chunk.subarray(0, rest));
          this.#bytes = maxBytes;
          controller.terminate();
          return;
        }
        controller.error(
          new RangeError(
            `Cannot accept ${name}: size exceeds maxBytes ${maxBytes}`,
          ),
        );
      },
    });
    // Its readable is async-iterable in WebKit too (see asyncIterable).
    asyncIterable(this.readable);
  }

  /** Whether the source offered more than `maxBytes` bytes. */
  get exceeded(): boolean {
    return this.#exceeded;
  }

  /** The number of bytes passed through so far. */
  get bytes(): number {
    return this.#bytes;
  }
}
