import { checkMax } from "../_internal/limits.ts";
import { heldBytesStrategy } from "../_internal/bytes.ts";
import { asyncIterable } from "../_internal/async_iterable.ts";

/** Options for {@linkcode ReadAheadStream}. */
export interface ReadAheadStreamOptions {
  /**
   * How many bytes of memory the chunks read ahead of the consumer may keep
   * alive. Each chunk counts its whole buffer: a 16 KiB view of a 64 KiB
   * buffer counts 64 KiB, and chunks that view one larger shared buffer
   * each count all of it. A chunk larger than this is still read ahead
   * alone (a source of such chunks is read one chunk ahead); `0` passes one
   * chunk at a time, reading nothing ahead.
   *
   * @default {4194304}
   */
  highWaterMark?: number;
}

/** The default read-ahead buffer: 4 MiB. */
const DEFAULT_READ_AHEAD_BYTES = 4 * 1024 * 1024;

/**
 * A pass-through byte stream that reads ahead of its consumer, up to
 * `highWaterMark` bytes of memory. Between a network body and a slow
 * consumer (a file, a hash) it keeps the source flowing in large steps, and
 * it bounds memory: a source is not pulled while its queued chunks keep that
 * many bytes alive (each chunk counts its whole buffer, as a view keeps all
 * of it: under Deno over h2c a request body's 16 KiB chunks each view a
 * 64 KiB buffer).
 *
 * Under Bun it reads ahead as described. Under Deno (2.9.6) it reads
 * nothing ahead: Deno's `pipeTo` writes into a `TransformStream` only as
 * its readable side is read (a transform function would change that, with
 * a cost of its own: docs/known-runtime-issues.md (i) in the repository),
 * so there it only bounds what the consumer's side holds.
 *
 * @example Read ahead of a file writer
 * ```ts
 * import { ReadAheadStream } from "@sluice/streams/streams";
 *
 * const source = ReadableStream.from([new Uint8Array(8), new Uint8Array(8)]);
 * const chunks = await Array.fromAsync(
 *   source.pipeThrough(new ReadAheadStream({ highWaterMark: 1024 * 1024 })),
 * );
 * console.log(chunks.length); // 2
 * ```
 */
export class ReadAheadStream extends TransformStream<Uint8Array, Uint8Array> {
  /**
   * Creates a read-ahead stage.
   *
   * @param options How many bytes to read ahead.
   */
  constructor(options: ReadAheadStreamOptions = {}) {
    const { highWaterMark = DEFAULT_READ_AHEAD_BYTES } = options;
    checkMax("create read-ahead", "highWaterMark", highWaterMark);
    super(
      {},
      // At least one byte (heldBytesStrategy): a pipe through a high-water
      // mark of 0 hangs under Bun and Node; one byte reads nothing ahead.
      heldBytesStrategy(highWaterMark),
      new ByteLengthQueuingStrategy({ highWaterMark: 0 }),
    );
    // Its readable is async-iterable in WebKit too (see asyncIterable).
    asyncIterable(this.readable);
  }
}
