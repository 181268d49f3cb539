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

import { EitherReader } from "../_internal/pump_bytes.ts";

/** The size of the reused buffer: a read returns at most this much. */
const BUFFER_BYTES = 65536;

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

  constructor(stream: ReadableStream<Uint8Array>) {
    super(stream);
    this.borrowed = this.byobReader !== undefined;
  }

  /** The next chunk, as a default reader's `read`. */
  read(): Promise<ReadableStreamReadResult<Uint8Array>> {
    const byob = this.byobReader;
    if (byob === undefined) return this.defaultReader!.read();
    const view = new Uint8Array(this.#buffer ?? new ArrayBuffer(BUFFER_BYTES));
    this.#buffer = undefined;
    return byob.read(view).then(this.#keep);
  }

  // The read transferred the buffer: the chunk's is the one to reuse.
  readonly #keep = (
    result: ReadableStreamReadResult<Uint8Array>,
  ): ReadableStreamReadResult<Uint8Array> => {
    if (result.value !== undefined) {
      this.#buffer = result.value.buffer as ArrayBuffer;
    }
    return result;
  };
}
