import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { pacedStream } from "../lib/_internal/paced_stream.ts";
import { byteChunks, probeSource, settled } from "./_stream_probe.ts";

// The one stage that echo and receiveBody run per chunk: idle timeout,
// minimum rate, per-chunk hook, read-ahead and abort in one pull loop.

/** A source that sends `chunks` and then waits forever (a stalled client). */
function stalling(chunks: Uint8Array[]) {
  let cancelled: { reason: unknown } | undefined;
  let index = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (index < chunks.length) controller.enqueue(chunks[index++]);
      else return new Promise(() => {});
    },
    cancel(reason) {
      cancelled = { reason };
    },
  }, { highWaterMark: 0 });
  return { stream, cancelled: () => cancelled };
}

describe("pacedStream", () => {
  it("pacedStream passes chunks unchanged and in order", async () => {
    const out = await Array.fromAsync(
      pacedStream(ReadableStream.from(byteChunks(20, 3)), {
        idleTimeoutMs: 10_000,
        minBytesPerSecond: 1,
        minRateWindowMs: 10_000,
        readAheadBytes: 7,
      }),
    );
    assert.deepEqual(out, byteChunks(20, 3));
  });

  it("pacedStream reads ahead up to readAheadBytes and no more", async () => {
    const source = probeSource(byteChunks(100, 100));
    const reader = pacedStream(source.stream, { readAheadBytes: 1000 })
      .getReader();
    await reader.read();
    await settled();
    const ahead = source.pulls();
    // 10 chunks fill the queue; one more pull starts as the first is read.
    assert.ok(ahead >= 10 && ahead <= 12, `pulled ${ahead} ahead`);
    await settled();
    assert.equal(source.pulls(), ahead, "no pulls past readAheadBytes");
    await reader.read();
    await settled();
    assert.ok(source.pulls() <= ahead + 1, `pulled ${source.pulls()}`);
    await reader.cancel();
  });

  it("pacedStream with readAheadBytes 0 reads only when read", async () => {
    const source = probeSource(byteChunks(10, 100));
    const reader = pacedStream(source.stream, {}).getReader();
    await settled();
    assert.equal(source.pulls(), 0);
    await reader.read();
    await settled();
    assert.ok(source.pulls() <= 2, `pulled ${source.pulls()}`);
    await reader.cancel();
  });

  it("pacedStream errors with onChunk's throw, passes nothing of that chunk, and cancels the source", async () => {
    const source = probeSource(byteChunks(10, 10));
    let seen = 0;
    const limit = new RangeError("over the limit");
    const out: Uint8Array[] = [];
    const stream = pacedStream(source.stream, {
      readAheadBytes: 1000,
      onChunk(chunk) {
        if (seen + chunk.byteLength > 25) throw limit;
        seen += chunk.byteLength;
      },
    });
    await assert.rejects(async () => {
      for await (const chunk of stream) out.push(chunk);
    }, (error) => error === limit);
    assert.equal(out.length, 2);
    await settled();
    assert.deepEqual(source.cancelled(), { reason: limit });
  });

  it("pacedStream errors with onIdle's error when the source sends nothing for idleTimeoutMs, and cancels it", async () => {
    const source = stalling(byteChunks(2, 10));
    const started = performance.now();
    const stream = pacedStream(source.stream, {
      idleTimeoutMs: 100,
      onIdle: () => new Error("idle"),
    });
    const out: Uint8Array[] = [];
    await assert.rejects(async () => {
      for await (const chunk of stream) out.push(chunk);
    }, /idle/);
    const ms = performance.now() - started;
    assert.equal(out.length, 2);
    assert.ok(ms >= 90 && ms < 5_000, `failed after ${ms} ms`);
    await settled();
    assert.match(
      String((source.cancelled()?.reason as Error)?.message),
      /idle/,
    );
  });

  it("pacedStream does not count time the consumer is not reading against idleTimeoutMs", async () => {
    const stream = pacedStream(ReadableStream.from(byteChunks(3, 10)), {
      idleTimeoutMs: 50,
      onIdle: () => new Error("idle"),
    });
    const reader = stream.getReader();
    await reader.read();
    // A slow consumer: four idle periods without a read.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal((await reader.read()).value?.byteLength, 10);
    assert.equal((await reader.read()).value?.byteLength, 10);
    assert.equal((await reader.read()).done, true);
  });

  it("pacedStream errors with onSlow's error when a window of waiting brings fewer than minBytesPerSecond", async () => {
    // One byte every 20 ms: 50 B/s, under 1000 B/s over 150 ms windows.
    let sent = 0;
    const source = new ReadableStream<Uint8Array>({
      async pull(controller) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        controller.enqueue(new Uint8Array(1));
        if (++sent > 1000) controller.close();
      },
    }, { highWaterMark: 0 });
    const stream = pacedStream(source, {
      idleTimeoutMs: 10_000,
      minBytesPerSecond: 1000,
      minRateWindowMs: 150,
      onSlow: () => new Error("too slow"),
    });
    const started = performance.now();
    await assert.rejects(Array.fromAsync(stream), /too slow/);
    const ms = performance.now() - started;
    assert.ok(ms >= 140 && ms < 5_000, `failed after ${ms} ms`);
  });

  it("pacedStream errors with onAbort's error when the signal aborts, and cancels the source", async () => {
    const source = stalling(byteChunks(1, 10));
    const controller = new AbortController();
    const stream = pacedStream(source.stream, {
      signal: controller.signal,
      onAbort: (reason) => new Error("aborted", { cause: reason }),
    });
    const reader = stream.getReader();
    await reader.read();
    const pending = reader.read();
    controller.abort("gone");
    await assert.rejects(pending, (error: Error) => error.cause === "gone");
    await settled();
    assert.equal(
      (source.cancelled()?.reason as Error)?.cause,
      "gone",
    );
  });

  it("pacedStream with an already aborted signal errors at once", async () => {
    const source = probeSource(byteChunks(1, 10));
    const stream = pacedStream(source.stream, {
      signal: AbortSignal.abort("before"),
    });
    await assert.rejects(stream.getReader().read(), (e) => e === "before");
    await settled();
    assert.deepEqual(source.cancelled(), { reason: "before" });
  });

  it("pacedStream propagates a cancel to the source and a source error to the reader", async () => {
    const source = probeSource(byteChunks(10, 1));
    const reader = pacedStream(source.stream, { idleTimeoutMs: 1_000 })
      .getReader();
    await reader.read();
    await reader.cancel("done");
    assert.deepEqual(source.cancelled(), { reason: "done" });

    const boom = new Error("boom");
    const failing = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.error(boom);
      },
    });
    await assert.rejects(
      Array.fromAsync(pacedStream(failing, { idleTimeoutMs: 1_000 })),
      (error) => error === boom,
    );
  });
});
