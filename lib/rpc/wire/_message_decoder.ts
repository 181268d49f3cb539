// Bytes -> typed messages in one stream: frame decoding, decompression and
// parsing, with the end-of-stream frame (gRPC-Web trailers, Connect's
// EndStreamResponse) handed to a callback.

import type { Code } from "../code.ts";
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
}

/**
 * The push form: feed body bytes, get the messages they complete through
 * `emit`. `push` returns a promise only when a message needs asynchronous
 * decompression; the next `push` must wait for it. Errors are `RpcError`s
 * with the configured code (or `ResourceExhausted` for a size limit).
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
      return this.#fail(
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

  async #slow(
    frames: Frame[],
    from: number,
    first: Promise<Uint8Array>,
    emit: (message: T) => void,
  ): Promise<void> {
    this.#handle(frames[from], await first, emit);
    for (let i = from + 1; i < frames.length; i++) {
      this.#handle(frames[i], await this.#unpack(frames[i]), emit);
    }
  }

  /** Decodes `chunk`, emitting each completed message in order. */
  push(chunk: Uint8Array, emit: (message: T) => void): void | Promise<void> {
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
    for (let i = 0; i < frames.length; i++) {
      const data = this.#unpack(frames[i]);
      if (data instanceof Promise) return this.#slow(frames, i, data, emit);
      this.#handle(frames[i], data, emit);
    }
  }

  /** Signals the end of the body; throws if it ended inside a frame. */
  finish(): void {
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
      transform(chunk, controller) {
        return decoder.push(chunk, (message) => controller.enqueue(message));
      },
      flush() {
        decoder.finish();
      },
    });
  }
}
