// Probes for the stream class tests: a source that counts pulls and records
// its cancel reason.

/** A pull source of `chunks`, counting pulls, recording a cancel. */
export function probeSource<T>(chunks: T[]): {
  stream: ReadableStream<T>;
  pulls: () => number;
  cancelled: () => { reason: unknown } | undefined;
} {
  let pulls = 0;
  let index = 0;
  let cancelled: { reason: unknown } | undefined;
  const stream = new ReadableStream<T>({
    pull(controller) {
      pulls++;
      if (index < chunks.length) controller.enqueue(chunks[index++]);
      else controller.close();
    },
    cancel(reason) {
      cancelled = { reason };
    },
  }, { highWaterMark: 0 });
  return { stream, pulls: () => pulls, cancelled: () => cancelled };
}

/** Lets queued stream work settle (a few macrotask turns). */
export async function settled(): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

/** `n` chunks of `size` bytes, each filled with its index. */
export function byteChunks(n: number, size: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => new Uint8Array(size).fill(i));
}

/**
 * `source` as a byte stream (`type: "bytes"`, read one chunk per pull), as
 * the runtimes' request bodies are under Deno and workerd: a reader of it
 * may be a BYOB reader. Its cancel reaches `source`.
 */
export function asByteStream(
  source: ReadableStream<Uint8Array>,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  return new ReadableStream({
    type: "bytes",
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) {
        controller.close();
        controller.byobRequest?.respond(0);
      } else controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

/**
 * A byte source that answers each BYOB request with `fill(n, asked)` bytes
 * (`n` counts the reads from 1; null closes the stream, undefined leaves
 * the read pending) and records how many bytes each read asked for.
 */
export function byobSource(
  fill: (n: number, asked: number) => number | null | undefined,
): {
  stream: ReadableStream<Uint8Array>;
  asked: number[];
  cancelled: () => { reason: unknown } | undefined;
} {
  const asked: number[] = [];
  let cancelled: { reason: unknown } | undefined;
  const stream = new ReadableStream({
    type: "bytes",
    pull(controller) {
      const request = controller.byobRequest!;
      const view = request.view!;
      asked.push(view.byteLength);
      const bytes = fill(asked.length, view.byteLength);
      if (bytes === undefined) return; // the read stays pending
      if (bytes === null) {
        controller.close();
        request.respond(0);
        return;
      }
      new Uint8Array(view.buffer, view.byteOffset, bytes).fill(asked.length);
      request.respond(bytes);
    },
    cancel(reason) {
      cancelled = { reason };
    },
  }, { highWaterMark: 0 });
  return { stream, asked, cancelled: () => cancelled };
}
