import {
  ByteAccumulator,
  concatBytes,
  indexOfNewline,
} from "../_internal/bytes.ts";
import { checkMax } from "../_internal/limits.ts";
import { checkArgument } from "../_internal/arguments.ts";
import { asyncIterable } from "../_internal/async_iterable.ts";

/** The default for {@linkcode DuplexStreamOptions.maxReadBytes}: 16 MiB. */
const DEFAULT_MAX_READ_BYTES = 16 * 1024 * 1024;
/** The default for {@linkcode DuplexStreamOptions.maxLineBytes}: 64 KiB. */
const DEFAULT_MAX_LINE_BYTES = 64 * 1024;

/** Options for {@linkcode DuplexStream}. */
export interface DuplexStreamOptions {
  /**
   * The largest `n` that {@linkcode DuplexStream.prototype.read} accepts: it
   * allocates `n` bytes up front, so the limit is checked first.
   *
   * @default {16777216}
   */
  maxReadBytes?: number;
  /**
   * The longest line, in bytes without its line ending, that
   * {@linkcode DuplexStream.prototype.readLine} collects.
   *
   * @default {65536}
   */
  maxLineBytes?: number;
}

/** Options for {@linkcode DuplexStream.prototype.readLine}. */
export interface ReadLineOptions {
  /**
   * The longest line, in bytes without its line ending.
   *
   * @default {the stream's maxLineBytes}
   */
  maxLineBytes?: number;
}

function checkLimit(name: string, value: number): number {
  return checkMax("create duplex stream", name, value);
}

/**
 * Writes bytes the caller gives up (the library's own frames, never
 * written to again) to a duplex stream without the copy `write` makes.
 */
export let writeOwned: (
  stream: DuplexStream,
  chunk: Uint8Array,
) => Promise<void>;

/**
 * An IO-like object over two independent streams: bytes are read from
 * `readable` (the input) and written to `writable` (the output), like
 * protocol-http's `Body::Stream` merging a request body and a response body.
 *
 * - {@linkcode DuplexStream.prototype.readPartial} resolves as soon as any
 *   bytes are available; `null` means end of input (not an exception).
 * - {@linkcode DuplexStream.prototype.read} reads exactly `n` bytes, fewer
 *   only at the end of input.
 * - {@linkcode DuplexStream.prototype.readLine} and async iteration.
 * - {@linkcode DuplexStream.prototype.write} waits while the output is
 *   back-pressured (its queue is full).
 * - {@linkcode DuplexStream.prototype.closeWrite} half-closes: the peer sees
 *   the end of its input and can still write back.
 * - {@linkcode DuplexStream.prototype.close} with a reason aborts both sides.
 *
 * An error on either side surfaces on both: when the input errors, the output
 * is aborted with the same error, and when the output errors the input is
 * cancelled with it; pending and later reads and writes reject with it.
 * (One case waits: an output that errors while a write to it is in flight
 * that never settles and its queue still has room, which no event of the
 * stream shows; it is seen at the next write or `closeWrite()`.)
 *
 * Reads are served in call order, and so are writes. Returned chunks may be
 * views into the chunks of the input stream.
 *
 * It is also a `{ readable, writable }` pair, so web code can use it as one
 * (`source.pipeThrough(stream)`, `stream.readable.pipeTo(sink)`):
 * {@linkcode DuplexStream.prototype.readable} reads through `readPartial`
 * and {@linkcode DuplexStream.prototype.writable} writes through `write`,
 * closes with `closeWrite` and aborts with `close(reason)`. Both styles share
 * one read order and one write order, so they can be mixed: each chunk goes
 * to whichever read (a method call or a pull of `readable`) asks first, and
 * writes reach the output in the order they were made. Mixing while a pipe
 * runs is legal but rarely useful: the pipe takes chunks as fast as they
 * come. Cancelling `readable` cancels the input only (the output stays
 * writable); aborting `writable` closes the whole stream with the reason.
 *
 * @example Read what the other side wrote
 * ```ts
 * import { DuplexStream } from "@sluice/streams/streams";
 * import assert from "node:assert/strict";
 *
 * const enc = new TextEncoder();
 * const input = ReadableStream.from([enc.encode("Hello, "), enc.encode("World!\n")]);
 * const output = new TransformStream<Uint8Array, Uint8Array>();
 * const stream = new DuplexStream(input, output.writable);
 * assert.equal(await stream.readLine(), "Hello, World!");
 * assert.equal(await stream.readPartial(), null); // end of input
 * ```
 */

export class DuplexStream
  implements
    AsyncIterable<Uint8Array>,
    ReadableWritablePair<Uint8Array, Uint8Array> {
  #readable: ReadableStream<Uint8Array> | undefined;
  #writable: WritableStream<Uint8Array> | undefined;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #maxReadBytes: number;
  readonly #maxLineBytes: number;
  readonly #encoder = new TextEncoder();
  // Each line is decoded on its own: a U+FEFF the peer sent at the start
  // of a line is text, not a byte order mark to drop.
  readonly #decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  /** Bytes read from the input but not yet returned. */
  #buffer: Uint8Array | undefined;
  #inputEnded = false;
  #outputClosed = false;
  #closed = false;
  #error: { reason: unknown } | undefined;
  #readChain: Promise<unknown> = Promise.resolve();
  #writeChain: Promise<unknown> = Promise.resolve();

  /**
   * Merges an input and an output into one duplex stream. The stream locks
   * both.
   *
   * @param readable The input: where reads come from.
   * @param writable The output: where writes go.
   * @param options Limits for `read(n)` and line reading.
   */
  constructor(
    readable: ReadableStream<Uint8Array>,
    writable: WritableStream<Uint8Array>,
    options: DuplexStreamOptions = {},
  ) {
    checkArgument(
      typeof (readable as Partial<ReadableStream> | null)?.getReader ===
        "function",
      "create duplex stream",
      "readable",
      "a ReadableStream",
      readable,
    );
    checkArgument(
      typeof (writable as Partial<WritableStream> | null)?.getWriter ===
        "function",
      "create duplex stream",
      "writable",
      "a WritableStream",
      writable,
    );
    this.#maxReadBytes = checkLimit(
      "maxReadBytes",
      options.maxReadBytes ?? DEFAULT_MAX_READ_BYTES,
    );
    this.#maxLineBytes = checkLimit(
      "maxLineBytes",
      options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES,
    );
    this.#reader = readable.getReader();
    this.#writer = writable.getWriter();
    // Either side failing on its own (the peer aborted, the consumer
    // cancelled) fails the whole stream, so that both sides see it.
    this.#reader.closed.then(
      () => {},
      (reason) => this.#fail(reason),
    );
    this.#writer.closed.then(
      () => {},
      (reason) => this.#fail(reason),
    );
  }

  /**
   * The input as a `ReadableStream`: each pull is a
   * {@linkcode DuplexStream.prototype.readPartial}, so nothing is read ahead.
   * Cancelling it cancels the input only. The same stream on every access.
   *
   * @returns The read side as a web stream.
   */
  get readable(): ReadableStream<Uint8Array> {
    this.#readable ??= new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        const chunk = await this.readPartial();
        if (chunk === null) {
          controller.close();
          return;
        }
        controller.enqueue(chunk);
      },
      cancel: (reason) => this.#cancelInput(reason),
    }, { highWaterMark: 0 });
    // Async-iterable in WebKit too (see asyncIterable).
    asyncIterable(this.#readable);
    return this.#readable;
  }

  /**
   * The output as a `WritableStream`: each chunk is a
   * {@linkcode DuplexStream.prototype.write}, closing it is
   * {@linkcode DuplexStream.prototype.closeWrite}, aborting it is
   * {@linkcode DuplexStream.prototype.close} with the reason. The same stream
   * on every access.
   *
   * @returns The write side as a web stream.
   */
  get writable(): WritableStream<Uint8Array> {
    this.#writable ??= new WritableStream<Uint8Array>({
      // Handed over, as a web stream takes its chunks: not copied.
      write: (chunk) => this.#write(chunk, false),
      close: () => this.closeWrite(),
      abort: (reason) => this.close(reason ?? new Error("aborted")),
    }, new CountQueuingStrategy({ highWaterMark: 1 }));
    return this.#writable;
  }

  /** Whether the input has ended (a read returned `null`). */
  get readableEnded(): boolean {
    return this.#inputEnded && !this.#buffer;
  }

  /** Whether the output has been closed by {@linkcode closeWrite}. */
  get writableEnded(): boolean {
    return this.#outputClosed;
  }

  /**
   * Reads up to `max` bytes, resolving as soon as any are available.
   *
   * @param max The most bytes to return; without it, the next chunk whole.
   * @returns The bytes read (never empty), or `null` at the end of input.
   */
  readPartial(max?: number): Promise<Uint8Array | null> {
    if (max !== undefined && (!Number.isSafeInteger(max) || max < 1)) {
      return Promise.reject(
        new RangeError(
          `Cannot read: max must be a positive integer, got ${max}`,
        ),
      );
    }
    return this.#serialRead(async () => {
      const chunk = await this.#nextChunk();
      if (chunk === null) return null;
      if (max === undefined || chunk.byteLength <= max) return chunk;
      this.#buffer = chunk.subarray(max);
      return chunk.subarray(0, max);
    });
  }

  /**
   * Reads exactly `n` bytes, across chunk boundaries; fewer only when the
   * input ends first.
   *
   * @param n How many bytes to read; at most `maxReadBytes`.
   * @returns `n` bytes, fewer at the end of input, or `null` when the input
   *   had already ended.
   */
  read(n: number): Promise<Uint8Array | null> {
    if (!Number.isSafeInteger(n) || n < 0) {
      return Promise.reject(
        new RangeError(
          `Cannot read: n must be a non-negative integer, got ${n}`,
        ),
      );
    }
    if (n > this.#maxReadBytes) {
      return Promise.reject(
        new RangeError(
          `Cannot read ${n} bytes: n exceeds maxReadBytes ${this.#maxReadBytes}`,
        ),
      );
    }
    if (n === 0) return Promise.resolve(new Uint8Array(0));
    return this.#serialRead(async () => {
      const first = await this.#nextChunk();
      if (first === null) return null;
      if (first.byteLength >= n) {
        if (first.byteLength > n) this.#buffer = first.subarray(n);
        return first.subarray(0, n);
      }
      const result = new Uint8Array(n);
      result.set(first);
      let filled = first.byteLength;
      while (filled < n) {
        const chunk = await this.#nextChunk();
        if (chunk === null) return result.subarray(0, filled);
        const take = Math.min(chunk.byteLength, n - filled);
        result.set(chunk.subarray(0, take), filled);
        filled += take;
        if (take < chunk.byteLength) this.#buffer = chunk.subarray(take);
      }
      return result;
    });
  }

  /**
   * Reads one line, decoded as UTF-8, without its `\n` or `\r\n` ending. The
   * last line may lack an ending.
   *
   * If no line ending comes within `maxLineBytes`, rejects with a
   * `RangeError` and consumes nothing: the bytes examined stay readable.
   *
   * @param options The line length limit for this call.
   * @returns The line, or `null` at the end of input.
   */
  readLine(options: ReadLineOptions = {}): Promise<string | null> {
    let maxLineBytes: number;
    try {
      maxLineBytes = options.maxLineBytes === undefined
        ? this.#maxLineBytes
        : checkMax("read line", "maxLineBytes", options.maxLineBytes);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#serialRead(async () => {
      // The line's bytes from the chunks before, copied: a chunk may view a
      // much larger buffer (a 64 KiB one per read of a body under Deno),
      // and a line trickled a byte per chunk kept 65,536 times its bytes.
      let kept: ByteAccumulator | undefined;
      for (;;) {
        const chunk = await this.#nextChunk();
        const length = kept?.byteLength ?? 0;
        if (chunk === null) {
          if (kept === undefined) return null;
          const last = kept.bytes();
          const end = last[last.byteLength - 1] === 0x0d
            ? last.byteLength - 1
            : last.byteLength;
          if (end > maxLineBytes) {
            this.#buffer = last;
            throw new RangeError(
              `Cannot read line: length exceeds maxLineBytes ${maxLineBytes}`,
            );
          }
          return this.#decoder.decode(last.subarray(0, end));
        }
        const index = indexOfNewline(chunk);
        const lineBytes = index === -1 ? chunk.byteLength : index;
        // One more byte is allowed for the "\r" of a "\r\n" ending.
        if (length + lineBytes > maxLineBytes + 1) {
          // Bounded: at most maxLineBytes + 1 plus one chunk.
          kept ??= new ByteAccumulator();
          kept.push(chunk);
          this.#buffer = kept.bytes();
          throw new RangeError(
            `Cannot read line: length exceeds maxLineBytes ${maxLineBytes}`,
          );
        }
        if (index === -1) {
          kept ??= new ByteAccumulator();
          kept.push(chunk);
          continue;
        }
        let line = chunk.subarray(0, index);
        if (kept !== undefined) {
          kept.push(line);
          line = kept.bytes();
        }
        if (index + 1 < chunk.byteLength) {
          this.#buffer = chunk.subarray(index + 1);
        }
        if (line.byteLength > 0 && line[line.byteLength - 1] === 0x0d) {
          line = line.subarray(0, line.byteLength - 1);
        }
        if (line.byteLength > maxLineBytes) {
          this.#buffer = concatBytes(
            [line, chunk.subarray(index)],
            line.byteLength + chunk.byteLength - index,
          );
          throw new RangeError(
            `Cannot read line: length exceeds maxLineBytes ${maxLineBytes}`,
          );
        }
        return this.#decoder.decode(line);
      }
    });
  }

  /**
   * Iterates over the lines of the input (see
   * {@linkcode DuplexStream.prototype.readLine}).
   *
   * @param options The line length limit.
   * @returns An async iterable of lines, ending with the input.
   */
  async *lines(options: ReadLineOptions = {}): AsyncGenerator<string> {
    for (;;) {
      const line = await this.readLine(options);
      if (line === null) return;
      yield line;
    }
  }

  /**
   * Iterates over the input's chunks as they arrive, ending with the input.
   * Breaking out of the loop leaves the stream open.
   *
   * @returns An async iterator of chunks.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    for (;;) {
      const chunk = await this.readPartial();
      if (chunk === null) return;
      yield chunk;
    }
  }

  /**
   * Writes bytes (or a string, as UTF-8) to the output. Resolves once the
   * chunk is queued; waits first while the output's queue is at its
   * high-water mark, so a peer that stops reading makes writes wait. The
   * bytes are copied when the call is made, as an IO's write takes them:
   * the caller may fill its buffer again at once (the output reads a
   * queued chunk later; the `writable` side, a web stream, takes its chunks
   * as they are).
   *
   * @param chunk The bytes or text to write; empty chunks are skipped.
   * @returns A promise that resolves when the chunk is accepted.
   */
  write(chunk: Uint8Array | string): Promise<void> {
    return this.#write(chunk, true);
  }

  static {
    writeOwned = (stream, chunk) => stream.#write(chunk, false);
  }

  #write(chunk: Uint8Array | string, copy: boolean): Promise<void> {
    if (typeof chunk !== "string" && !(chunk instanceof Uint8Array)) {
      try {
        checkArgument(
          false,
          "write",
          "the chunk",
          "a Uint8Array or a string",
          chunk,
        );
      } catch (error) {
        return Promise.reject(error);
      }
    }
    // Uint8Array's own slice: a Buffer's slice() is a view, not a copy.
    const bytes = typeof chunk === "string"
      ? this.#encoder.encode(chunk)
      : copy
      ? Uint8Array.prototype.slice.call(chunk)
      : chunk;
    return this.#serialWrite(async () => {
      this.#checkWritable("write");
      if (bytes.byteLength === 0) return;
      // The output errored: the whole stream fails now (writer.closed
      // waits for a write in flight, which may never settle).
      await this.#writer.ready.catch((reason) => {
        this.#fail(reason);
        throw reason;
      });
      this.#checkWritable("write");
      // The write's own outcome also reaches writer.closed and the next
      // ready, where it fails the stream; waiting for it here would allow
      // only one chunk in flight.
      this.#writer.write(bytes).catch((reason) => this.#fail(reason));
      this.#watchReady();
    });
  }

  /** The `ready` promise watched for the output's error, if any. */
  #watched: Promise<void> | undefined;

  /**
   * Fails the stream as soon as the output errors while a write waits on
   * it: its `ready` rejects at once, where `writer.closed` waits for the
   * write in flight, which may never settle (a socket sink that waits for
   * "drain"), leaving a pending read hanging.
   */
  #watchReady(): void {
    const ready = this.#writer.ready;
    if (ready === this.#watched) return;
    this.#watched = ready;
    ready.catch((reason) => this.#fail(reason));
  }

  /**
   * Closes the output after the queued writes (a half-close): the peer sees
   * the end of its input and can keep writing; this side can keep reading.
   * Like {@linkcode DuplexStream.prototype.write}, resolves once the close is
   * queued, without waiting for the peer to read what is queued before it; a
   * later failure to deliver fails the stream.
   *
   * @returns A promise that resolves when the close is queued.
   */
  closeWrite(): Promise<void> {
    return this.#serialWrite(() => {
      if (this.#outputClosed) return Promise.resolve();
      this.#checkWritable("close the output");
      // An output already errored (desiredSize null) fails the stream with
      // its error, not a close that seems to succeed.
      if (this.#writer.desiredSize === null) {
        return this.#writer.ready.then(() => {}, (reason) => {
          this.#fail(reason);
          throw reason;
        });
      }
      this.#outputClosed = true;
      this.#writer.close().catch((reason) => this.#fail(reason));
      return Promise.resolve();
    });
  }

  /**
   * Closes both sides. Without a reason, the output is closed after the
   * queued writes and the rest of the input is cancelled; with one, the
   * output is aborted and the input cancelled with it, and pending reads and
   * writes reject with it.
   *
   * @param reason Why the stream is being closed; makes the close an abort.
   * @returns A promise that resolves when both sides are released.
   */
  async close(reason?: unknown): Promise<void> {
    if (reason !== undefined) {
      this.#fail(reason);
      return;
    }
    if (this.#closed || this.#error) return;
    if (!this.#outputClosed) await this.closeWrite();
    this.#closed = true;
    this.#buffer = undefined;
    if (!this.#inputEnded) {
      this.#inputEnded = true;
      await this.#reader.cancel();
    }
  }

  async #cancelInput(reason: unknown): Promise<void> {
    // Not queued behind pending reads: cancelling ends them (they see the
    // end of input).
    this.#buffer = undefined;
    if (this.#inputEnded || this.#error || this.#closed) return;
    this.#inputEnded = true;
    await this.#reader.cancel(reason);
  }

  #fail(reason: unknown): void {
    if (this.#error || this.#closed) return;
    this.#error = { reason };
    this.#buffer = undefined;
    // Both calls also settle any pending read or write with the reason.
    this.#reader.cancel(reason).catch(() => {});
    this.#writer.abort(reason).catch(() => {});
  }

  /** The recorded error; a method, so that type narrowing never sticks. */
  #failure(): { reason: unknown } | undefined {
    return this.#error;
  }

  #checkWritable(what: string): void {
    if (this.#error) throw this.#error.reason;
    if (this.#closed) {
      throw new TypeError(`Cannot ${what}: the duplex stream is closed`);
    }
    if (this.#outputClosed) {
      throw new TypeError(`Cannot ${what}: the output is already closed`);
    }
  }

  #serialRead<T>(op: () => Promise<T>): Promise<T> {
    const result = this.#readChain.then(op);
    this.#readChain = result.catch(() => {});
    return result;
  }

  #serialWrite<T>(op: () => Promise<T>): Promise<T> {
    const result = this.#writeChain.then(op);
    this.#writeChain = result.catch(() => {});
    return result;
  }

  /** The next non-empty chunk: the buffered rest first, `null` at the end. */
  async #nextChunk(): Promise<Uint8Array | null> {
    if (this.#error) throw this.#error.reason;
    if (this.#closed) {
      throw new TypeError("Cannot read: the duplex stream is closed");
    }
    const buffered = this.#buffer;
    if (buffered) {
      this.#buffer = undefined;
      return buffered;
    }
    while (!this.#inputEnded) {
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await this.#reader.read();
      } catch (reason) {
        this.#fail(reason);
        throw this.#failure()?.reason ?? reason;
      }
      const failure = this.#failure();
      if (failure) throw failure.reason;
      if (result.done) {
        this.#inputEnded = true;
        return null;
      }
      if (result.value.byteLength > 0) return result.value;
    }
    return null;
  }
}
