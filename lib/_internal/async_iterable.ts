// Async iteration for the ReadableStreams the library hands to users, where
// the runtime's ReadableStream lacks it: WebKit (Safari; WebKitGTK 2.50.6)
// has neither `ReadableStream.prototype[Symbol.asyncIterator]` nor
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
  options?: IteratorOptions,
): AsyncIterableIterator<T> {
  return new StreamIterator(
    this.getReader(),
    Boolean(options?.preventCancel),
  );
}

/**
 * The standard's ReadableStream async iterator, over a reader: `next()` is
 * the reader's read, its result passed on as it is (one promise per chunk,
 * as a read costs anyway); a `return()` made while reads are pending waits
 * for them, as the standard's does.
 */
class StreamIterator<T> implements AsyncIterableIterator<T> {
  #reader: ReadableStreamDefaultReader<T> | undefined;
  readonly #preventCancel: boolean;
  /** Reads not settled yet, and the last one's promise. */
  #reading = 0;
  #last: Promise<IteratorResult<T, undefined>> | undefined;
  /** `return()` was called: it waits for the reads, and no read follows. */
  #returning = false;

  constructor(reader: ReadableStreamDefaultReader<T>, preventCancel: boolean) {
    this.#reader = reader;
    this.#preventCancel = preventCancel;
  }

  readonly #onRead = (
    result: ReadableStreamReadResult<T>,
  ): IteratorResult<T, undefined> => {
    this.#reading--;
    if (result.done) this.#release();
    return result as IteratorResult<T, undefined>;
  };

  readonly #onError = (error: unknown): never => {
    this.#reading--;
    this.#release();
    throw error;
  };

  /** Ends the iteration: later reads are done; the lock is released. */
  #release(): void {
    const reader = this.#reader;
    this.#reader = undefined;
    reader?.releaseLock();
  }

  next(): Promise<IteratorResult<T, undefined>> {
    const reader = this.#reader;
    if (reader === undefined || this.#returning) {
      return Promise.resolve({ done: true, value: undefined });
    }
    this.#reading++;
    return this.#last = reader.read().then(this.#onRead, this.#onError);
  }

  return(value?: unknown): Promise<IteratorResult<T, undefined>> {
    this.#returning = true;
    if (this.#reading > 0) {
      const end = () => this.return(value);
      return this.#last!.then(end, end);
    }
    const reader = this.#reader;
    const result = { done: true, value } as IteratorResult<T, undefined>;
    if (reader === undefined) return Promise.resolve(result);
    this.#reader = undefined;
    if (this.#preventCancel) {
      reader.releaseLock();
      return Promise.resolve(result);
    }
    const cancelled = reader.cancel(value);
    reader.releaseLock();
    return cancelled.then(() => result);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
