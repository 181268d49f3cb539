// Bytes -> typed messages in one stream: frame decoding, decompression and
// parsing, with the end-of-stream frame (gRPC-Web trailers, Connect's
// EndStreamResponse) handed to a callback.

import { Code } from "../code.ts";
import {
  type Compression,
  decompressMessage,
} from "../protocol/_compression.ts";
import { type Frame, FrameDecoder } from "./frame_decoder.ts";
import type { Codec } from "./message_type.ts";
import { RpcError } from "../rpc_error.ts";
import { decodeMessage } from "../protocol/_codec.ts";

export interface MessageDecoderOptions<T> {
  codec: Codec<T>;
  typeName: string;
  maxMessageBytes: number;
  /** The compression named by the peer's headers, if any. */
  compression: Compression | null;
  /** The code for malformed input: InvalidArgument on servers, Internal on clients. */
  errorCode: Code;
  /** The flag bit that marks the end-of-stream frame, if the protocol has one. */
  endFlag?: number;
  /** Receives the (decompressed) end-of-stream frame's data. */
  onEnd?: (data: Uint8Array) => void;
  /** No frame is a view of a pushed chunk (see FrameDecoderOptions). */
  copyFrames?: boolean;
  /**
   * Decompressed bytes one `push` or `resume` hands over before it holds
   * the chunk's remaining frames back (at least one message is handed
   * over): without it, 60 KB of gzip frames decompressed to 56 MiB of
   * messages at once, before the reader could take one.
   *
   * @default {65536}
   */
  batchBytes?: number;
}

const BATCH_BYTES = 65536;

/**
 * The push form: feed body bytes, get the messages they complete through
 * `emit`. `push` returns a promise only when a message needs asynchronous
 * decompression; the next `push` must wait for it. Once a push has handed
 * over `batchBytes` of decompressed messages, the chunk's other frames are
 * `held`: the reader calls `resume` (after taking what it was given) until
 * none is, before the next `push` or `finish`. Errors are `RpcError`s with
 * the configured code (or `ResourceExhausted` for a size limit).
 */
export class MessageDecoder<T> {
  readonly #frames: FrameDecoder;
  readonly #options: MessageDecoderOptions<T>;
  readonly #allowed: number;
  #ended = false;

  constructor(options: MessageDecoderOptions<T>) {
    this.#frames = new FrameDecoder({
      maxMessageBytes: options.maxMessageBytes,
      copyFrames: options.copyFrames,
    });
    this.#options = options;
    this.#allowed = 1 | (options.endFlag ?? 0);
    this.#batchBytes = options.batchBytes ?? BATCH_BYTES;
  }

  readonly #batchBytes: number;
  // The frames of a chunk not yet decoded, from #heldAt (see push).
  #held: Frame[] | undefined;
  #heldAt = 0;

  /** Whether frames of a pushed chunk wait for `resume`. */
  get held(): boolean {
    return this.#held !== undefined;
  }

  #decodedBytes = 0;

  /**
   * Bytes of the messages decoded so far, after decompression: what a
   * reader that holds decoded messages back counts against its bound (the
   * wire's bytes of a gzip message may be a thousandth of them).
   */
  get decodedBytes(): number {
    return this.#decodedBytes;
  }

  /** Whether a message has been started but not completed. */
  get pending(): boolean {
    return this.#frames.pending;
  }

  #fail(message: string, cause?: unknown): never {
    throw new RpcError(this.#options.errorCode, message, { cause });
  }

  #parse(data: Uint8Array): T {
    const { codec, typeName, errorCode } = this.#options;
    return decodeMessage(codec, typeName, data, errorCode);
  }

  #unpack(frame: Frame): Uint8Array | Promise<Uint8Array> {
    if (this.#ended) {
      this.#fail("Cannot decode message: data after the end-of-stream message");
    }
    if ((frame.flags & ~this.#allowed) !== 0) {
      this.#fail(
        `Cannot decode frame: unknown flags 0x${frame.flags.toString(16)}`,
      );
    }
    if ((frame.flags & 1) === 0) return frame.data;
    const { compression, maxMessageBytes } = this.#options;
    if (compression === null) {
      // INTERNAL on either side, as grpc-go and Connect-ES answer: the
      // peer broke the protocol, no argument of the call was wrong.
      throw new RpcError(
        Code.Internal,
        "Cannot decode frame: compressed flag set but no message encoding was negotiated",
      );
    }
    return decompressMessage(compression, frame.data, maxMessageBytes).catch(
      (error) => {
        if (error instanceof RpcError) throw error;
        return this.#fail((error as Error).message, error);
      },
    );
  }

  #handle(frame: Frame, data: Uint8Array, emit: (message: T) => void): void {
    this.#decodedBytes += data.byteLength;
    const endFlag = this.#options.endFlag ?? 0;
    if ((frame.flags & endFlag) !== 0) {
      this.#ended = true;
      this.#options.onEnd?.(data);
    } else {
      emit(this.#parse(data));
    }
  }

  // From the first frame that decompresses: each frame in turn, until the
  // decompressed messages handed over reach batchBytes; the rest are held.
  async #slow(
    frames: Frame[],
    from: number,
    first: Promise<Uint8Array>,
    emit: (message: T) => void,
  ): Promise<void> {
    let inflated = 0;
    let data = await first;
    for (let i = from;;) {
      if ((frames[i].flags & 1) !== 0) inflated += data.byteLength;
      this.#handle(frames[i], data, emit);
      if (++i === frames.length) return;
      if (inflated >= this.#batchBytes) {
        this.#held = frames;
        this.#heldAt = i;
        return;
      }
      const next = this.#unpack(frames[i]);
      data = next instanceof Promise ? await next : next;
    }
  }

  #run(
    frames: Frame[],
    from: number,
    emit: (message: T) => void,
  ): void | Promise<void> {
    for (let i = from; i < frames.length; i++) {
      const data = this.#unpack(frames[i]);
      if (data instanceof Promise) return this.#slow(frames, i, data, emit);
      this.#handle(frames[i], data, emit);
    }
  }

  /** Decodes `chunk`, emitting each completed message in order. */
  push(chunk: Uint8Array, emit: (message: T) => void): void | Promise<void> {
    if (this.#held !== undefined) {
      throw new Error("MessageDecoder: push while frames are held (resume)");
    }
    let frames: Frame[];
    try {
      frames = this.#frames.decode(chunk);
    } catch (error) {
      const { errorCode } = this.#options;
      if (error instanceof RpcError && error.code !== errorCode) {
        // Over the size limit: keep ResourceExhausted.
        throw error;
      }
      throw RpcError.from(error, errorCode);
    }
    return this.#run(frames, 0, emit);
  }

  /** Decodes the held frames, as `push` does a chunk's. */
  resume(emit: (message: T) => void): void | Promise<void> {
    const frames = this.#held;
    if (frames === undefined) return;
    this.#held = undefined;
    return this.#run(frames, this.#heldAt, emit);
  }

  /** Signals the end of the body; throws if it ended inside a frame. */
  finish(): void {
    if (this.#held !== undefined) {
      throw new Error("MessageDecoder: finish while frames are held (resume)");
    }
    try {
      this.#frames.finish();
    } catch (error) {
      throw new RpcError(
        this.#options.errorCode,
        (error as RpcError).rawMessage,
        { cause: error },
      );
    }
  }
}

/** {@linkcode MessageDecoder} as a stream of bytes to messages. */
export class MessageDecoderStream<T> extends TransformStream<Uint8Array, T> {
  constructor(options: MessageDecoderOptions<T>) {
    const decoder = new MessageDecoder(options);
    super({
      async transform(chunk, controller) {
        const emit = (message: T) => controller.enqueue(message);
        await decoder.push(chunk, emit);
        while (decoder.held) await decoder.resume(emit);
      },
      flush() {
        decoder.finish();
      },
    });
  }
}
