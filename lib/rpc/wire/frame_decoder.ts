import { allocBytes, COPY_MAX_BYTES } from "./_alloc.ts";
import { Code } from "../code.ts";
import { RpcError } from "../rpc_error.ts";
import { checkMax, compressedBound } from "../../_internal/limits.ts";
import { ByteAccumulator } from "../../_internal/bytes.ts";
import { MAX_MESSAGE_BYTES } from "../protocol/_defaults.ts";

/**
 * One length-prefixed message of gRPC, gRPC-Web or Connect: a flag byte and
 * the message bytes. Flag bit `0x01` marks a compressed message; gRPC-Web
 * marks its trailers with `0x80` and Connect its end-of-stream message with
 * `0x02`.
 */
export interface Frame {
  /** The flag byte (0 to 255). */
  flags: number;
  /** The message bytes (without the 5-byte prefix). */
  data: Uint8Array;
}

/** Options for {@linkcode FrameDecoder} and `FrameDecoderStream`. */
export interface FrameDecoderOptions {
  /**
   * The largest message accepted, in bytes. A longer length prefix is
   * refused before anything is allocated, with an {@linkcode RpcError} of
   * code `ResourceExhausted`.
   *
   * @default {4194304}
   */
  maxMessageBytes?: number;
  /**
   * Copies every frame's bytes out of the chunk, so no frame is a view of
   * it: for a caller that reuses its chunks' buffer once `decode` returns
   * (a BYOB reader reading into one buffer).
   *
   * @default {false}
   */
  copyFrames?: boolean;
}

/**
 * A push decoder for length-prefixed messages (1 flag byte, 4-byte
 * big-endian length, the message): feed it bytes as they arrive, in chunks
 * of any size, and get back the complete frames; a partial frame is kept
 * until its remaining bytes arrive. Frames over 64 bytes that lie whole
 * inside one chunk are views of that chunk (no copy; copies with
 * `copyFrames`); smaller ones are copied (cheaper than a view of a small
 * chunk under Bun).
 *
 * @example Decode two frames split across chunks
 * ```ts
 * import { FrameDecoder } from "@sluice/streams/rpc";
 * import assert from "node:assert/strict";
 *
 * const decoder = new FrameDecoder();
 * assert.deepEqual(decoder.decode(new Uint8Array([0, 0, 0])), []);
 * const frames = decoder.decode(new Uint8Array([0, 1, 42, 2, 0, 0, 0, 0]));
 * assert.equal(frames.length, 2);
 * assert.deepEqual(frames[0].data, new Uint8Array([42]));
 * assert.equal(frames[1].flags, 2);
 * decoder.finish();
 * ```
 */
export class FrameDecoder {
  readonly #maxMessageBytes: number;
  readonly #copyFrames: boolean;
  readonly #header = new Uint8Array(5);
  #headerBytes = 0;
  #flags = 0;
  // The body being filled, grown as its bytes come (up to #length, the
  // prefix's): a prefix alone must not reserve its length (100 stalled
  // streams declaring 4 MiB each reserved 400 MiB).
  #body: ByteAccumulator | undefined;
  #length = 0;

  /**
   * Creates a decoder.
   *
   * @param options The message size limit, and whether frames are copied.
   */
  constructor(options: FrameDecoderOptions = {}) {
    const { maxMessageBytes = MAX_MESSAGE_BYTES, copyFrames = false } = options;
    this.#copyFrames = copyFrames;
    this.#maxMessageBytes = checkMax(
      "create decoder",
      "maxMessageBytes",
      maxMessageBytes,
    );
  }

  /** Whether a frame has been started but not completed. */
  get pending(): boolean {
    return this.#headerBytes > 0;
  }

  /**
   * Feeds bytes to the decoder.
   *
   * @param chunk The next bytes of the stream.
   * @returns The frames completed by these bytes, in order.
   * @throws {RpcError} `ResourceExhausted` if a length prefix exceeds
   * `maxMessageBytes` (for a compressed frame, flag 1, the most that
   * compression can add to it: its message is checked once decompressed).
   */
  decode(chunk: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    let offset = 0;
    const end = chunk.byteLength;
    while (offset < end) {
      if (this.#body !== undefined) {
        // Continue a body that started in an earlier chunk.
        const body = this.#body;
        const n = Math.min(this.#length - body.byteLength, end - offset);
        body.push(chunk.subarray(offset, offset + n));
        offset += n;
        if (body.byteLength === this.#length) {
          frames.push({ flags: this.#flags, data: body.bytes() });
          this.#reset();
        }
        continue;
      }
      if (this.#headerBytes === 0 && end - offset >= 5) {
        // Fast path: the whole header is in this chunk.
        const flags = chunk[offset];
        const length = readLength(chunk, offset + 1);
        this.#checkLength(length, flags);
        const start = offset + 5;
        if (end - start >= length) {
          frames.push({
            flags,
            data: frameData(chunk, start, length, this.#copyFrames),
          });
          offset = start + length;
          continue;
        }
        this.#headerBytes = 5;
        this.#startBody(flags, length);
        offset = start;
        continue;
      }
      // Slow path: the header is split across chunks.
      const n = Math.min(5 - this.#headerBytes, end - offset);
      this.#header.set(chunk.subarray(offset, offset + n), this.#headerBytes);
      this.#headerBytes += n;
      offset += n;
      if (this.#headerBytes === 5) {
        const length = readLength(this.#header, 1);
        this.#checkLength(length, this.#header[0]);
        this.#startBody(this.#header[0], length);
        if (length === 0) {
          frames.push({ flags: this.#flags, data: this.#body!.bytes() });
          this.#reset();
        }
      }
    }
    return frames;
  }

  /**
   * Signals the end of the input.
   *
   * @throws {RpcError} `InvalidArgument` if the input ended inside a frame.
   */
  finish(): void {
    if (this.#headerBytes === 0) return;
    const detail = this.#body === undefined
      ? `${this.#headerBytes} of 5 prefix bytes`
      : `${this.#body.byteLength} of ${this.#length} message bytes`;
    this.#reset();
    throw new RpcError(
      Code.InvalidArgument,
      `Cannot decode frame: stream ended after ${detail}`,
    );
  }

  #checkLength(length: number, flags: number): void {
    // A compressed frame's limit is on its message, checked once
    // decompressed: here only its worst compressed size.
    if (
      length > this.#maxMessageBytes &&
      ((flags & 1) === 0 || length > compressedBound(this.#maxMessageBytes))
    ) {
      throw new RpcError(
        Code.ResourceExhausted,
        `Cannot decode frame: length ${length} exceeds maxMessageBytes ${this.#maxMessageBytes}`,
      );
    }
  }

  #startBody(flags: number, length: number): void {
    this.#flags = flags;
    this.#length = length;
    // Doubled as its bytes come, never past the length: a whole body is
    // its buffer exactly.
    this.#body = new ByteAccumulator(
      Math.min(length, FIRST_BODY_BYTES),
      length,
    );
  }

  #reset(): void {
    this.#headerBytes = 0;
    this.#body = undefined;
    this.#length = 0;
  }
}

// Under Bun a small chunk read from fetch or Bun.serve keeps its bytes in
// the JS heap with no ArrayBuffer, and its first `subarray` allocates one
// and moves the bytes there: 1.2 µs per chunk measured (Bun 1.4.5, a 7-byte
// chunk of a streamed fetch response), against 0.3 µs for a copy. So a
// message of up to COPY_MAX_BYTES is copied into allocBytes's bytes (under
// Bun an array of its own; elsewhere a view of the shared slab, about 20 ns
// under Deno) and its chunk is never viewed.

// With `copy` (copyFrames) a larger one is copied out of the chunk too.
function frameData(
  chunk: Uint8Array,
  start: number,
  length: number,
  copy: boolean,
) {
  if (length > COPY_MAX_BYTES) {
    return copy
      ? chunk.slice(start, start + length)
      : chunk.subarray(start, start + length);
  }
  const data = allocBytes(length);
  for (let i = 0; i < length; i++) data[i] = chunk[start + i];
  return data;
}

/** What a body split across chunks starts with; it grows as bytes come. */
const FIRST_BODY_BYTES = 64 * 1024;

function readLength(bytes: Uint8Array, at: number): number {
  return (bytes[at] * 0x1000000) +
    ((bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]);
}
