// Reading a runtime's byte stream into one reused buffer.
//
// A default reader of a byte stream with autoAllocateChunkSize gets a new
// buffer for every read: Deno 2.9.6's fetch response and Deno.serve
// request bodies allocate and zero 64 KiB per read (callgrind: one calloc
// and 65,536 instructions of memset per read), whatever the chunk's size.
// In a lockstep round trip over HTTP/1.1 a BYOB read into one reused buffer
// took a by-hand client from 51-53 to 46-47 µs p50 and cut its CPU by a
// third (docs/performance.md). The price: a chunk is valid only until the
// next read, so its reader must not keep views of it.
//
// The buffer starts small and grows: a read that waits holds its buffer,
// and an idle call or upload waits most of its life. With a fixed 64 KiB
// one, each idle RPC call over Deno.serve cost about 110 KiB more than
// with 4 KiB (server and client alike, 1,000 → 2,000 idle calls), 45 KiB
// above a bare handler that reads the same body. A read that fills half of
// the buffer or more doubles it, up to 64 KiB (a bulk body reaches it in
// four reads; grown only by full reads, it stopped at 32 KiB under 16 KiB
// chunks, and a 256 MiB upload took 7% longer);
// eight reads in a row that fill an eighth or less halve it, down to 4 KiB
// again. (Halved by one such read, the buffer of a stream of frames, a
// 5-byte head then a 16 KiB message, flipped between 8 and 16 KiB, a new
// one per read: uploads took a third more CPU.)

import { EitherReader } from "../_internal/pump_bytes.ts";

/** The first and smallest size of the reused buffer. */
const MIN_BUFFER_BYTES = 4096;
/** The largest size of the reused buffer: a read returns at most this much. */
const MAX_BUFFER_BYTES = 65536;
/** Reads in a row that fill an eighth or less of the buffer, to halve it. */
const SHRINK_AFTER_READS = 8;

/**
 * Reads a byte stream through a BYOB reader into one buffer that every
 * read reuses (`borrowed`: a chunk is valid only until the next read), or,
 * for a stream that is no byte stream, through a default reader (chunks
 * of its own).
 */
export class ChunkReader extends EitherReader {
  /** True if a chunk's buffer is reused by the next read. */
  readonly borrowed: boolean;
  #buffer: ArrayBuffer | undefined;
  /** The size of the next read's buffer. */
  #size = MIN_BUFFER_BYTES;
  /** Reads in a row that filled an eighth or less of their buffer. */
  #small = 0;

  constructor(stream: ReadableStream<Uint8Array>) {
    super(stream);
    this.borrowed = this.byobReader !== undefined;
  }

  /** The next chunk, as a default reader's `read`. */
  read(): Promise<ReadableStreamReadResult<Uint8Array>> {
    const byob = this.byobReader;
    if (byob === undefined) return this.defaultReader!.read();
    const buffer = this.#buffer?.byteLength === this.#size
      ? this.#buffer
      : new ArrayBuffer(this.#size);
    this.#buffer = undefined;
    return byob.read(new Uint8Array(buffer)).then(this.#keep);
  }

  // The read transferred the buffer: the chunk's is the one to reuse, and
  // its fill decides the next one's size.
  readonly #keep = (
    result: ReadableStreamReadResult<Uint8Array>,
  ): ReadableStreamReadResult<Uint8Array> => {
    const chunk = result.value;
    if (chunk !== undefined) {
      const buffer = chunk.buffer as ArrayBuffer;
      const size = buffer.byteLength;
      this.#buffer = buffer;
      if (chunk.byteLength > size / 8) {
        this.#small = 0;
        if (chunk.byteLength >= size / 2 && size < MAX_BUFFER_BYTES) {
          this.#size = size * 2;
        }
      } else if (
        ++this.#small >= SHRINK_AFTER_READS && size > MIN_BUFFER_BYTES
      ) {
        this.#small = 0;
        this.#size = size / 2;
      }
    }
    return result;
  };
}
