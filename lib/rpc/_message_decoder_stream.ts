// Bytes -> typed messages in one stream: frame decoding, decompression and
// parsing, with the end-of-stream frame (gRPC-Web trailers, Connect's
// EndStreamResponse) handed to a callback.

import type { Code } from "./code.ts";
import type { Compression } from "./_compression.ts";
import { type Frame, FrameDecoder } from "./frame_decoder.ts";
import type { Codec } from "./message_type.ts";
import { RpcError } from "./rpc_error.ts";

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
}

export class MessageDecoderStream<T> extends TransformStream<Uint8Array, T> {
  constructor(options: MessageDecoderOptions<T>) {
    const decoder = new FrameDecoder({
      maxMessageBytes: options.maxMessageBytes,
    });
    const { codec, typeName, compression, errorCode, endFlag = 0, onEnd } =
      options;
    let ended = false;
    const allowed = 1 | endFlag;

    const fail = (message: string, cause?: unknown): never => {
      throw new RpcError(errorCode, message, { cause });
    };

    const parse = (data: Uint8Array): T => {
      try {
        return codec.decode(data);
      } catch (error) {
        return fail(
          `Cannot decode ${typeName}: ${(error as Error).message}`,
          error,
        );
      }
    };

    const unpack = (frame: Frame): Uint8Array | Promise<Uint8Array> => {
      if (ended) {
        fail("Cannot decode message: data after the end-of-stream message");
      }
      if ((frame.flags & ~allowed) !== 0) {
        fail(
          `Cannot decode frame: unknown flags 0x${frame.flags.toString(16)}`,
        );
      }
      if ((frame.flags & 1) === 0) return frame.data;
      if (compression === null) {
        return fail(
          "Cannot decode frame: compressed flag set but no message encoding was negotiated",
        );
      }
      return compression.decompress(frame.data, options.maxMessageBytes).catch(
        (error) => {
          if (error instanceof RpcError) throw error;
          return fail((error as Error).message, error);
        },
      );
    };

    const handle = (
      frame: Frame,
      data: Uint8Array,
      controller: TransformStreamDefaultController<T>,
    ) => {
      if ((frame.flags & endFlag) !== 0) {
        ended = true;
        onEnd?.(data);
      } else {
        controller.enqueue(parse(data));
      }
    };

    const slow = async (
      frames: Frame[],
      from: number,
      controller: TransformStreamDefaultController<T>,
    ) => {
      for (let i = from; i < frames.length; i++) {
        handle(frames[i], await unpack(frames[i]), controller);
      }
    };

    super({
      transform(chunk, controller) {
        let frames: Frame[];
        try {
          frames = decoder.decode(chunk);
        } catch (error) {
          if (error instanceof RpcError && error.code !== errorCode) {
            // Over the size limit: keep ResourceExhausted.
            throw error;
          }
          throw RpcError.from(error, errorCode);
        }
        for (let i = 0; i < frames.length; i++) {
          const data = unpack(frames[i]);
          if (data instanceof Promise) {
            return data.then((d) => {
              handle(frames[i], d, controller);
              return slow(frames, i + 1, controller);
            });
          }
          handle(frames[i], data, controller);
        }
      },
      flush() {
        try {
          decoder.finish();
        } catch (error) {
          throw new RpcError(errorCode, (error as RpcError).rawMessage, {
            cause: error,
          });
        }
      },
    });
  }
}
