// Async iteration for the ReadableStreams the library hands to users, where
// the runtime's ReadableStream lacks it: WebKit (Safari's engine; WebKitGTK
// 2.50.6) has neither `ReadableStream.prototype[Symbol.asyncIterator]` nor
// `values`, so `for await` over a stream throws "... is not a function" and
// `Array.fromAsync` of one resolves to `[]` (it reads the stream as an
// array-like of length 0).

/** The options of a stream's `values()` and `[Symbol.asyncIterator]()`. */
interface IteratorOptions {
  preventCancel?: boolean;
}

/**
 * Returns `stream`, given the streams standard's async iterator when it has
 * none: own `[Symbol.asyncIterator](options?)` and `values(options?)` (one
 * function, as on the prototype) that read through a reader; leaving a loop
 * early cancels the stream (unless `preventCancel`) and releases the lock,
 * as do the end of the stream and an error, which the loop throws. Where the
 * stream has one (the prototype's, in Deno, Bun, Node, Chromium and
 * Firefox, or its class's) it does nothing: the test is one property read
 * per call, made at each call so that an iterator a polyfill adds later is
 * the one used.
 */
export function asyncIterable<S extends ReadableStream<unknown>>(
  stream: S,
): S {
  if (
    typeof (stream as Partial<AsyncIterable<unknown>>)[
      Symbol.asyncIterator
    ] !== "function"
  ) {
    Object.defineProperty(stream, Symbol.asyncIterator, {
      value: values,
      writable: true,
      configurable: true,
    });
    Object.defineProperty(stream, "values", {
      value: values,
      writable: true,
      configurable: true,
    });
  }
  return stream;
}

/** A stream's `values()`, for streams whose runtime lacks it. */
function values<T>(
  this: ReadableStream<T>,
  // A rest parameter: `values.length` is 0, as the standard's.
  ...args: [IteratorOptions?]
): AsyncIterableIterator<T> {
  const options = args[0];
  // A dictionary, as Web IDL converts one: undefined, null or an object.
  if (
    options !== undefined && options !== null && typeof options !== "object" &&
    typeof options !== "function"
  ) {
    throw new TypeError(
      "Cannot iterate stream: options must be an object",
    );
  }
  return new StreamIterator(
    this.getReader(),
    Boolean(options?.preventCancel),
  );
}

/** The prototype of async iterators (`%AsyncIteratorPrototype%`). */
const ASYNC_ITERATOR_PROTOTYPE = Object.getPrototypeOf(
  Object.getPrototypeOf(async function* () {}).prototype,
);

/**
 * The standard's ReadableStream async iterator, over a reader, as Web IDL
 * runs one: each `next()` or `return()` waits for the one before it to
 * settle (the "ongoing promise"), so results settle in call order, and
 * once the stream has ended, failed or been returned from, every later
 * `next()` is done (an error is thrown by one `next()` only).
 */
class StreamIterator<T> implements AsyncIterableIterator<T> {
  readonly #reader: ReadableStreamDefaultReader<T>;
  readonly #preventCancel: boolean;
  #ongoing: Promise<unknown> | undefined;
  #finished = false;

  constructor(reader: ReadableStreamDefaultReader<T>, preventCancel: boolean) {
    this.#reader = reader;
    this.#preventCancel = preventCancel;
  }

  /** Queues `steps` after the ongoing call, as the ongoing one. */
  #queue<R>(steps: () => Promise<R>): Promise<R> {
    const ongoing = this.#ongoing;
    const next = ongoing === undefined ? steps() : ongoing.then(steps, steps);
    this.#ongoing = next;
    return next;
  }

  next(): Promise<IteratorResult<T, undefined>> {
    return this.#queue(() => {
      if (this.#finished) {
        return Promise.resolve({ done: true, value: undefined });
      }
      return this.#reader.read().then((result) => {
        if (result.done) {
          this.#finished = true;
          this.#reader.releaseLock();
          return { done: true, value: undefined };
        }
        return { done: false, value: result.value };
      }, (error: unknown) => {
        this.#finished = true;
        this.#reader.releaseLock();
        throw error;
      });
    });
  }

  return(value?: unknown): Promise<IteratorResult<T, undefined>> {
    const returned = this.#queue((): Promise<unknown> => {
      if (this.#finished) return Promise.resolve();
      this.#finished = true;
      if (this.#preventCancel) {
        this.#reader.releaseLock();
        return Promise.resolve();
      }
      const cancelled = this.#reader.cancel(value);
      this.#reader.releaseLock();
      return cancelled;
    });
    return returned.then(() =>
      ({ done: true, value }) as IteratorResult<T, undefined>
    );
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
Object.setPrototypeOf(StreamIterator.prototype, ASYNC_ITERATOR_PROTOTYPE);
