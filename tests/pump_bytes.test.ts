// pumpBytes: a request body moved into a writable through a BYOB reader,
// with reads that grow while they come back full (under Deno 2.9.6 over
// HTTP/1.1 each read of a full-duplex request copies the runtime's whole
// backlog: fewer, larger reads keep an echo out of that collapse), small
// reads copied out into chunks of their own size, and pipeTo's way of
// ending: the source's end closes the writable, an error on either side
// reaches the other.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { pumpBytes } from "../lib/_internal/pump_bytes.ts";
import { byobSource, byteChunks, settled } from "./_stream_probe.ts";
import { deadline } from "./_helpers.ts";

const KiB = 1024;

/** A writable that keeps what it is given. */
function collector(): {
  writable: WritableStream<Uint8Array>;
  chunks: Uint8Array[];
  closed: () => boolean;
} {
  const chunks: Uint8Array[] = [];
  let closed = false;
  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      chunks.push(chunk);
    },
    close() {
      closed = true;
    },
  });
  return { writable, chunks, closed: () => closed };
}

const sizes = { minReadBytes: 64 * KiB, maxReadBytes: 1024 * KiB };

describe("pumpBytes", () => {
  it("pumpBytes doubles a read after a full one, up to maxReadBytes, and halves it after one under a quarter", async () => {
    // Eight full reads, then small ones, then the end.
    const source = byobSource((n, asked) =>
      n <= 8 ? asked : n <= 12 ? 1 * KiB : null
    );
    const sink = collector();
    await pumpBytes(source.stream, sink.writable, sizes);
    assert.deepEqual(source.asked.map((b) => b / KiB), [
      64,
      128,
      256,
      512,
      1024,
      1024,
      1024,
      1024,
      1024, // 1 KiB: the next halves
      512,
      256,
      128,
      64,
    ]);
    assert.ok(sink.closed(), "the end closes the writable");
    const total = sink.chunks.reduce((sum, c) => sum + c.byteLength, 0);
    assert.equal(total, (64 + 128 + 256 + 512 + 4 * 1024) * KiB + 4 * KiB);
  });

  it("pumpBytes passes a read of at least half its buffer on as it is, and copies a smaller one into a chunk of its own size", async () => {
    const source = byobSource((n, asked) =>
      n === 1 ? asked / 2 : n === 2 ? asked / 2 - 1 : n === 3 ? 10 : null
    );
    const sink = collector();
    await pumpBytes(source.stream, sink.writable, sizes);
    const [half, under, small] = sink.chunks;
    assert.equal(half.byteLength, 32 * KiB);
    assert.equal(half.buffer.byteLength, 64 * KiB, "the read's own buffer");
    assert.equal(under.byteLength, 32 * KiB - 1);
    assert.equal(under.buffer.byteLength, 32 * KiB - 1, "a copy");
    assert.equal(small.buffer.byteLength, 10, "a copy");
    // Each chunk holds its own read's bytes (a reused buffer is not shared).
    assert.deepEqual([half[0], under[0], small[0]], [1, 2, 3]);
    assert.deepEqual(source.asked.map((b) => b / KiB), [64, 64, 64, 64]);
  });

  it("pumpBytes aborts the writable with the source's error, and rejects with it", async () => {
    const failure = new Error("source failed");
    let reads = 0;
    const stream = new ReadableStream({
      type: "bytes",
      pull(controller) {
        if (++reads === 3) throw failure;
        const request = controller.byobRequest!;
        request.respond(1);
      },
    }, { highWaterMark: 0 });
    let aborted: unknown;
    const writable = new WritableStream<Uint8Array>({
      abort(reason) {
        aborted = reason;
      },
    });
    await assert.rejects(
      pumpBytes(stream, writable, sizes),
      (e) => e === failure,
    );
    assert.equal(aborted, failure);
  });

  it("pumpBytes cancels the source with the writable's error, at once even with a read pending", async () => {
    // The source gives one chunk, then never answers; the writable's
    // consumer cancels (a TransformStream's readable side).
    let cancelled: unknown;
    let pulls = 0;
    const stream = new ReadableStream({
      type: "bytes",
      pull(controller) {
        if (++pulls === 1) controller.byobRequest!.respond(1);
      },
      cancel(reason) {
        cancelled = reason;
      },
    }, { highWaterMark: 0 });
    const transform = new TransformStream<Uint8Array, Uint8Array>();
    const pumped = pumpBytes(stream, transform.writable, sizes);
    const reader = transform.readable.getReader();
    assert.equal((await reader.read()).value?.byteLength, 1);
    await settled();
    assert.equal(pulls, 2, "a read is pending");
    await reader.cancel("consumer left");
    await assert.rejects(
      deadline(pumped, 5_000, "pump"),
      (e) => e === "consumer left",
    );
    assert.equal(cancelled, "consumer left");
  });

  it("pumpBytes pipes a stream that is no byte stream, chunks as they are", async () => {
    const chunks = byteChunks(5, 100);
    const sink = collector();
    await pumpBytes(ReadableStream.from(chunks), sink.writable, sizes);
    assert.equal(sink.chunks.length, 5);
    sink.chunks.forEach((chunk, i) => assert.equal(chunk, chunks[i]));
    assert.ok(sink.closed());
  });

  it("pumpBytes waits for the writable's room before each read", async () => {
    // A writable that takes nothing until released: one read is in it,
    // one queued, and no more reads happen meanwhile.
    const source = byobSource((n, asked) => n > 20 ? null : asked);
    const release = Promise.withResolvers<void>();
    const writable = new WritableStream<Uint8Array>({
      async write() {
        await release.promise;
      },
    }, { highWaterMark: 1 });
    const pumped = pumpBytes(source.stream, writable, sizes);
    await settled();
    const reads = source.asked.length;
    await settled();
    assert.equal(source.asked.length, reads, "no reads while held back");
    assert.ok(reads <= 3, `${reads} reads ahead`);
    release.resolve();
    await deadline(pumped, 5_000, "pump");
    assert.equal(source.asked.length, 21);
  });
});
