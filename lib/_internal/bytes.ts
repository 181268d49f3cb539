// Small byte helpers: joining, searching, what a queued chunk keeps alive,
// and the empty byte stream.

/** Joins `parts`, whose lengths add up to `length`, into one array. */
export function concatBytes(parts: Uint8Array[], length: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

/**
 * Bytes kept by copying them into one growing buffer, for a reader that
 * holds a whole body: it keeps the bytes (at most twice over), never the
 * buffers its chunks view. Under Deno 2.9.6 each chunk of a body may view a
 * 64 KiB buffer of its own: 100,000 one-byte chunks of a Connect unary
 * request kept as views held 3 GiB.
 */
export class ByteAccumulator {
  #buffer: Uint8Array;
  #length = 0;

  readonly #max: number;

  /**
   * `expected`: the bytes to come, if known (a Content-Length); `max`: the
   * most it will keep (the buffer grows no larger).
   */
  constructor(expected = 0, max = Infinity) {
    this.#buffer = new Uint8Array(expected);
    this.#max = max;
  }

  /** The bytes kept. */
  get byteLength(): number {
    return this.#length;
  }

  /** Copies `chunk` in after the bytes kept. */
  push(chunk: Uint8Array): void {
    const length = this.#length + chunk.byteLength;
    if (length > this.#buffer.byteLength) {
      const grown = new Uint8Array(
        Math.max(
          length,
          Math.min(Math.max(2 * this.#buffer.byteLength, 1024), this.#max),
        ),
      );
      grown.set(this.#buffer.subarray(0, this.#length));
      this.#buffer = grown;
    }
    this.#buffer.set(chunk, this.#length);
    this.#length = length;
  }

  /**
   * The bytes kept: the buffer itself once they fill it, else a view of it
   * (valid until the next push).
   */
  bytes(): Uint8Array {
    return this.#length === this.#buffer.byteLength
      ? this.#buffer
      : this.#buffer.subarray(0, this.#length);
  }
}

/** The index of the first `\n` in `bytes`, or -1. */
export function indexOfNewline(bytes: Uint8Array): number {
  return bytes.indexOf(0x0a);
}

/**
 * The memory a queued chunk keeps alive: its whole buffer, not only the
 * bytes it views. Under Deno 2.9.6 each 16 KiB chunk of a request body over
 * h2c views a 64 KiB buffer of its own, so a read-ahead counted in viewed
 * bytes held four times its bound there.
 */
export function heldBytes(chunk: ArrayBufferView): number {
  return chunk.buffer?.byteLength ?? chunk.byteLength;
}

/**
 * A queuing strategy whose high-water mark bounds the memory its queued
 * chunks keep alive ({@linkcode heldBytes}). A chunk larger than the mark
 * is still queued alone, so a stream always moves. A mark of 0 counts as
 * one byte (see {@linkcode byteQueueStrategy}).
 */
export function heldBytesStrategy(
  highWaterMark: number,
): QueuingStrategy<ArrayBufferView> {
  return { highWaterMark: Math.max(highWaterMark, 1), size: heldBytes };
}

/**
 * A byte-counted queue of at least one byte, for a writable side or a
 * writer's queue: where pipeTo follows the Streams standard to the letter
 * (Bun, Node) a pipe never writes into a writable side whose desired size
 * is 0, and a writer is never ready for a queue of 0. One byte takes one
 * chunk at a time: an option of 0 means nothing queued ahead.
 */
export function byteQueueStrategy(
  highWaterMark: number,
): ByteLengthQueuingStrategy {
  return new ByteLengthQueuingStrategy({
    highWaterMark: Math.max(highWaterMark, 1),
  });
}

/** A byte stream that is already closed: a body without bytes. */
export function emptyStream(): ReadableStream<Uint8Array> {
  return new ReadableStream({ start: (c) => c.close() });
}
