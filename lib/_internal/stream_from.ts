// `ReadableStream.from` for code a page can load: browsers lack it
// (Chromium 156), so the library's core builds the same stream itself.

import { isThenable } from "./thenable.ts";

/**
 * A stream of an (async) iterable's values, as `ReadableStream.from`
 * makes it: pulled one value at a time (high-water mark 0), a sync
 * iterable's values awaited, and a cancel passed to the iterator's
 * `return`.
 */
export function streamFrom<T>(
  source: AsyncIterable<T> | Iterable<T>,
): ReadableStream<T> {
  const sync = !(Symbol.asyncIterator in source);
  const iterator: AsyncIterator<T> | Iterator<T> = sync
    ? (source as Iterable<T>)[Symbol.iterator]()
    : (source as AsyncIterable<T>)[Symbol.asyncIterator]();
  return new ReadableStream<T>({
    async pull(controller) {
      const result = await iterator.next();
      if (typeof result !== "object" || result === null) {
        throw new TypeError(
          "Cannot read the iterable: its next() returned no object",
        );
      }
      if (result.done) {
        controller.close();
        return;
      }
      let value = result.value;
      if (sync && isThenable(value)) {
        try {
          value = await value;
        } catch (error) {
          // As an async iterator made of a sync one: a rejected value
          // closes the sync iterator.
          try {
            iterator.return?.();
          } catch {
            // The rejection is the error to report.
          }
          throw error;
        }
      }
      controller.enqueue(value);
    },
    async cancel(reason) {
      const returned = await iterator.return?.(reason);
      if (
        returned !== undefined && (typeof returned !== "object" ||
          returned === null)
      ) {
        throw new TypeError(
          "Cannot cancel the iterable: its return() returned no object",
        );
      }
    },
  }, { highWaterMark: 0 });
}
