import { checkArgument } from "../_internal/arguments.ts";
import { checkTimerMs } from "../_internal/limits.ts";
import { asyncIterable } from "../_internal/async_iterable.ts";

/** Called by {@linkcode ProgressStream} with the bytes passed so far. */
export type ProgressCallback = (
  bytes: number,
  total: number | undefined,
) => void;

/** Options for {@linkcode ProgressStream}. */
export interface ProgressStreamOptions {
  /** The expected total, passed to the callback when known. */
  total?: number;
  /**
   * Call the callback at most once per this many milliseconds, plus once at
   * the end. `0` calls it for every chunk.
   *
   * @default {100}
   */
  intervalMs?: number;
}

/**
 * Checks a progress callback and its interval (a TypeError or RangeError
 * naming them, the interval by the caller's name for it): `ProgressStream`'s,
 * and `upload()`'s and `uploadFile`'s (`progressIntervalMs`).
 */
export function checkProgress(
  onProgress: unknown,
  intervalMs: number,
  intervalName = "intervalMs",
): void {
  checkArgument(
    typeof onProgress === "function",
    "report progress",
    "onProgress",
    "a function",
    onProgress,
  );
  checkTimerMs("report progress", intervalName, intervalMs);
}

/**
 * Counts bytes and reports them as {@linkcode ProgressStream} does: at most
 * once per `intervalMs`, each count once, and at the end the count unless
 * it was the last one reported. ProgressStream's, and `uploadFile`'s over
 * `node:http` (a file's 'data' events).
 */
export function progressCounter(
  onProgress: ProgressCallback,
  total: number | undefined,
  intervalMs: number,
): { add(bytes: number): void; end(): void } {
  let bytes = 0;
  let last = -Infinity;
  let reported = -1;
  const report = () => {
    reported = bytes;
    onProgress(bytes, total);
  };
  return {
    add(more) {
      bytes += more;
      const now = Date.now();
      // A count is reported once (an empty chunk adds none).
      if (now - last >= intervalMs && bytes !== reported) {
        last = now;
        report();
      }
    },
    end() {
      // Unless it was the last one reported: a caller that finishes when
      // `bytes === total` finishes once.
      if (bytes !== reported) report();
    },
  };
}

/**
 * A pass-through byte stream that reports progress: it calls `onProgress`
 * with the number of bytes passed so far (and the total, when known), at most
 * once per `intervalMs`, and when the stream ends with a count not reported
 * yet: the final count is reported exactly once (an empty stream's 0 too).
 *
 * @example Print progress of a body
 * ```ts
 * import { ProgressStream } from "@sluice/streams/streams";
 *
 * const seen: number[] = [];
 * const body = ReadableStream.from([new Uint8Array(3), new Uint8Array(4)])
 *   .pipeThrough(new ProgressStream((bytes) => seen.push(bytes), { intervalMs: 0 }));
 * await Array.fromAsync(body);
 * console.log(seen); // [3, 7]
 * ```
 */
export class ProgressStream extends TransformStream<Uint8Array, Uint8Array> {
  /**
   * Creates a progress-reporting pass-through stream.
   *
   * @param onProgress Receives `(bytesSoFar, total)`.
   * @param options The expected total and how often to report.
   */
  constructor(
    onProgress: ProgressCallback,
    options: ProgressStreamOptions = {},
  ) {
    const { total, intervalMs = 100 } = options;
    checkProgress(onProgress, intervalMs);
    const counter = progressCounter(onProgress, total, intervalMs);
    super({
      transform(chunk, controller) {
        controller.enqueue(chunk);
        counter.add(chunk.byteLength);
      },
      flush() {
        counter.end();
      },
    });
    // Its readable is async-iterable in WebKit too (see asyncIterable).
    asyncIterable(this.readable);
  }
}
