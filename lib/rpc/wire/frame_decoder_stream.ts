import {
  type Frame,
  FrameDecoder,
  type FrameDecoderOptions,
} from "./frame_decoder.ts";
import { asyncIterable } from "../../_internal/async_iterable.ts";

/**
 * Decodes a byte stream of length-prefixed messages into {@linkcode Frame}s,
 * whatever the chunk boundaries. A thin stream around
 * {@linkcode FrameDecoder}: the frames of one input chunk are enqueued
 * together, so the readable side holds at most one input chunk's worth of
 * frames (mostly views of that chunk). Errors with an `RpcError` on a length
 * over `maxMessageBytes` (`ResourceExhausted`) or an input that ends inside a
 * frame (`InvalidArgument`).
 *
 * @example Decode a response body
 * ```ts
 * import { FrameDecoderStream } from "@sluice/streams/rpc";
 * import assert from "node:assert/strict";
 *
 * const body = ReadableStream.from([new Uint8Array([0, 0, 0, 0, 1, 7])]);
 * const frames = await Array.fromAsync(body.pipeThrough(new FrameDecoderStream()));
 * assert.deepEqual(frames, [{ flags: 0, data: new Uint8Array([7]) }]);
 * ```
 */
export class FrameDecoderStream extends TransformStream<Uint8Array, Frame> {
  readonly #decoder: FrameDecoder;

  /**
   * Creates a decoding stream.
   *
   * @param options The message size limit.
   */
  constructor(options: FrameDecoderOptions = {}) {
    const decoder = new FrameDecoder(options);
    super({
      transform(chunk, controller) {
        for (const frame of decoder.decode(chunk)) controller.enqueue(frame);
      },
      flush() {
        decoder.finish();
      },
    });
    this.#decoder = decoder;
    // Its readable is async-iterable in WebKit too (see asyncIterable).
    asyncIterable(this.readable);
  }

  /** Whether a frame has been started but not completed. */
  get pending(): boolean {
    return this.#decoder.pending;
  }
}
