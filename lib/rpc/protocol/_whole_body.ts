// Response bodies known whole when they are made (Connect unary messages,
// errors): a stream for the universal response, remembered with its bytes
// so that a fetch handler can give the runtime the bytes instead. Deno.serve
// and Bun.serve send a byte body natively, where they pull a stream chunk
// by chunk through JavaScript.

const wholes = new WeakMap<ReadableStream<Uint8Array>, Uint8Array>();

/** A stream of `bytes`, whose bytes `wholeBytes` can return. */
export function wholeBody(bytes: Uint8Array): ReadableStream<Uint8Array> {
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
  wholes.set(stream, bytes);
  return stream;
}

/**
 * The bytes of a body made by `wholeBody` and not read yet (unlocked), or
 * undefined.
 */
export function wholeBytes(
  stream: ReadableStream<Uint8Array>,
): Uint8Array | undefined {
  return stream.locked ? undefined : wholes.get(stream);
}
