// Bridges between node:http2 streams and web streams, with back-pressure:
// the node stream is paused while the web stream's queue is full.

import type { Duplex } from "node:stream";

/** The readable side of a node duplex as a web byte stream. */
export function readableFromNode(
  stream: Duplex,
  highWaterMark = 65536,
  resetError: () => Error = () =>
    new Error("Cannot read stream: it was reset before its end"),
): ReadableStream<Uint8Array> {
  let cancelled = false;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      stream.on("data", (chunk: Uint8Array) => {
        if (cancelled) return;
        controller.enqueue(
          new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength),
        );
        if ((controller.desiredSize ?? 0) <= 0) stream.pause();
      });
      stream.once("end", () => {
        if (!cancelled) controller.close();
      });
      stream.once("error", (error) => {
        if (!cancelled) controller.error(error);
        cancelled = true;
      });
      stream.once("close", () => {
        // Closed (reset) before the end of the data: an error.
        if (!cancelled && !stream.readableEnded) {
          cancelled = true;
          controller.error(resetError());
        }
      });
    },
    pull() {
      stream.resume();
    },
    cancel() {
      // Discard the rest: nothing reads it any more.
      cancelled = true;
      stream.resume();
    },
  }, new ByteLengthQueuingStrategy({ highWaterMark }));
}

/**
 * Writes a web stream to a node duplex, waiting for 'drain' when its buffer
 * is full. Resolves when the source has ended (the duplex is not ended).
 */
export async function writeToNode(
  source: ReadableStream<Uint8Array>,
  stream: Duplex,
): Promise<void> {
  const reader = source.getReader();
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) return;
      if (stream.destroyed) {
        throw new Error("Cannot write stream: it was closed");
      }
      if (!stream.write(value)) {
        await new Promise<void>((resolve, reject) => {
          const cleanup = () => {
            stream.off("drain", onDrain);
            stream.off("close", onClose);
          };
          const onDrain = () => {
            cleanup();
            resolve();
          };
          const onClose = () => {
            cleanup();
            reject(new Error("Cannot write stream: it was closed"));
          };
          stream.on("drain", onDrain);
          stream.on("close", onClose);
        });
      }
    }
  } catch (error) {
    await reader.cancel(error).catch(() => {});
    throw error;
  } finally {
    reader.releaseLock();
  }
}

/** Node's incoming headers (pseudo-headers dropped) as web `Headers`. */
export function headersFromNode(
  incoming: Record<string, string | string[] | undefined>,
): Headers {
  const headers = new Headers();
  for (const [key, value] of Object.entries(incoming)) {
    if (key.startsWith(":") || value === undefined) continue;
    if (Array.isArray(value)) {
      for (const v of value) headers.append(key, v);
    } else headers.append(key, String(value));
  }
  return headers;
}

/** Web `Headers` as node outgoing headers. */
export function headersToNode(
  headers: Headers,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  headers.forEach((value, key) => {
    out[key] = value;
  });
  return out;
}
