// Reading a request body through a BYOB reader, in reads that grow while
// they come back full.
//
// Two runtime costs shaped it (docs/performance.md, "Request bodies read
// through a BYOB reader"):
// - Deno 2.9.6 gives each 16 KiB chunk of an h2c request body a 64 KiB
//   buffer of its own: a small read copied into an exact chunk keeps a
//   quarter of that alive, and measured faster than the pipe.
// - Deno 2.9.6's HTTP/1.1 server reads the socket whenever a streamed
//   response is written (to see the peer close), appends what it reads to
//   one buffer of request bytes, and serves each read of the request body
//   from the front of that buffer, moving everything behind it down
//   (`poll_peer_closed_with` and `Vec::drain` in its libs/http_h1). In a
//   full-duplex exchange nothing bounds that buffer, so each read costs a
//   copy of the whole backlog: perf showed 91% of the server's CPU in
//   memmove, and an echo fell to 12-40 MB/s while the backlog grew. A read
//   that takes all that waits ends the copying: reads that come back full
//   ask for twice as much next time.
// The HTTP layer uses it only for a request with a Content-Length
// (duplexMaxReadBytes in lib/http/_defaults.ts says why).

/** How a {@linkcode GrowingReader} sizes its reads. */
export interface ReadSizes {
  /** The size of a read, and the least it shrinks back to. */
  minReadBytes: number;
  /**
   * The most a read may grow to while reads keep coming back full (more
   * bytes are waiting in the source); `minReadBytes` or less: no growth.
   */
  maxReadBytes: number;
}

/**
 * Streams the library made that are not byte streams (`readableFromNode`'s):
 * {@linkcode EitherReader} reads them without asking for a BYOB reader,
 * whose refusal is a `TypeError` made, thrown and caught per body (9-17% of
 * serveHttp2's CPU per unary call under Deno).
 */
export const NOT_BYTES: WeakSet<ReadableStream> = new WeakSet();

/**
 * A reader of a byte stream through a BYOB reader (`byobReader`), or of
 * any other stream through a default reader (`defaultReader`): the shared
 * part of the readers that read a runtime's body into buffers of their own
 * choosing.
 */
export class EitherReader {
  /** The BYOB reader, if the stream is a byte stream. */
  protected readonly byobReader: ReadableStreamBYOBReader | undefined;
  /** The default reader, if it is not. */
  protected readonly defaultReader:
    | ReadableStreamDefaultReader<Uint8Array>
    | undefined;

  constructor(stream: ReadableStream<Uint8Array>) {
    let byob: ReadableStreamBYOBReader | undefined;
    try {
      if (!NOT_BYTES.has(stream)) byob = stream.getReader({ mode: "byob" });
    } catch {
      // Not a byte stream (or locked: getReader says so below).
    }
    this.byobReader = byob;
    this.defaultReader = byob === undefined ? stream.getReader() : undefined;
  }

  /** As a reader's `cancel`. */
  cancel(reason?: unknown): Promise<void> {
    return (this.byobReader ?? this.defaultReader!).cancel(reason);
  }

  /** As a reader's `releaseLock`. */
  releaseLock(): void {
    (this.byobReader ?? this.defaultReader!).releaseLock();
  }
}

/**
 * Reads a byte stream through a BYOB reader, each chunk its own (as a
 * default reader's): a read that fills at least half of its buffer returns
 * that buffer, a smaller one a copy of its bytes (the buffer is kept for the
 * next read), so that no chunk keeps alive more than twice its bytes. A
 * read that fills its buffer doubles the next one (up to `maxReadBytes`);
 * one under a quarter of it halves the next (down to `minReadBytes`). A
 * stream that is not a byte stream is read through a default reader.
 */
export class GrowingReader extends EitherReader {
  readonly #min: number;
  readonly #max: number;
  #size: number;
  #buffer: ArrayBuffer | undefined;

  constructor(stream: ReadableStream<Uint8Array>, sizes: ReadSizes) {
    super(stream);
    this.#min = this.#size = sizes.minReadBytes;
    this.#max = Math.max(sizes.maxReadBytes, sizes.minReadBytes);
  }

  /** True if the stream is read through a BYOB reader. */
  get byob(): boolean {
    return this.byobReader !== undefined;
  }

  /** The next chunk, as a default reader's `read`. */
  read(): Promise<ReadableStreamReadResult<Uint8Array>> {
    const byob = this.byobReader;
    if (byob === undefined) return this.defaultReader!.read();
    const view = new Uint8Array(this.#buffer ?? new ArrayBuffer(this.#size));
    this.#buffer = undefined;
    return byob.read(view).then(this.#own);
  }

  readonly #own = (
    result: ReadableStreamReadResult<Uint8Array>,
  ): ReadableStreamReadResult<Uint8Array> => {
    const value = result.value;
    if (result.done || value === undefined) return result;
    const size = this.#size;
    const read = value.byteLength;
    if (read * 2 >= size) {
      if (read === size) this.#size = Math.min(size * 2, this.#max);
      return result;
    }
    if (read * 4 < size && size > this.#min) {
      this.#size = Math.max(size / 2, this.#min);
    } else this.#buffer = value.buffer as ArrayBuffer;
    return { done: false, value: value.slice() };
  };
}

/**
 * Writes `source`'s bytes to `writable` as `pipeTo` does (the source's end
 * closes it, an error on either side errors or cancels the other, and the
 * returned promise settles the same way), reading a byte stream through a
 * {@linkcode GrowingReader}; a stream that is not a byte stream is piped.
 * A failed read of `source` errors the writable with `onSourceError`'s
 * error (default: its own).
 */
export function pumpBytes(
  source: ReadableStream<Uint8Array>,
  writable: WritableStream<Uint8Array>,
  sizes: ReadSizes,
  onSourceError?: (error: unknown) => unknown,
): Promise<void> {
  const reader = new GrowingReader(source, sizes);
  if (!reader.byob) {
    reader.releaseLock();
    if (onSourceError === undefined) return source.pipeTo(writable);
    // The pipe leaves the writable to the source's error: it gets
    // onSourceError's.
    return source.pipeTo(writable, { preventAbort: true }).catch(
      async (error) => {
        await writable.abort(onSourceError(error)).catch(() => {});
        throw error;
      },
    );
  }
  const writer = writable.getWriter();
  let failure: { error: unknown } | undefined;
  // The writable errors (its consumer cancelled, or its controller failed
  // it): the source is cancelled at once, even with a read pending.
  writer.closed.catch((error) => {
    if (failure) return;
    failure = { error };
    reader.cancel(error).catch(() => {});
  });
  const pump = async (): Promise<void> => {
    while (true) {
      await writer.ready;
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
      } catch (error) {
        // The source's own failure (not a cancel of ours), as the caller
        // names it.
        if (failure || onSourceError === undefined) throw error;
        throw onSourceError(error);
      }
      const { done, value } = result;
      if (failure) throw failure.error;
      if (done) break;
      // A write's failure errors the writable: `ready` or `closed` say so.
      writer.write(value).catch(() => {});
    }
    await writer.close();
  };
  return pump().catch(async (error) => {
    // Whichever side failed first, the other goes with its error: a
    // cancel of an errored source and an abort of an errored writable do
    // nothing.
    const first = failure ? failure.error : error;
    failure ??= { error };
    await Promise.all([
      reader.cancel(first).catch(() => {}),
      writer.abort(first).catch(() => {}),
    ]);
    throw first;
  });
}
