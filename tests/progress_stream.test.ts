import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ProgressStream } from "../lib/streams/progress_stream.ts";
import { byteChunks, probeSource, settled } from "./_stream_probe.ts";

describe("ProgressStream", () => {
  it("ProgressStream passes chunks unchanged and reports bytes and total", async () => {
    const calls: [number, number | undefined][] = [];
    const out = await Array.fromAsync(
      ReadableStream.from(byteChunks(3, 5)).pipeThrough(
        new ProgressStream((bytes, total) => calls.push([bytes, total]), {
          total: 15,
          intervalMs: 0,
        }),
      ),
    );
    assert.deepEqual(out, byteChunks(3, 5));
    // One call per chunk with intervalMs 0; the end's count, reported
    // already, is not reported again (a caller finishing at
    // bytes === total finished twice).
    assert.deepEqual(calls, [[5, 15], [10, 15], [15, 15]]);
  });

  it("ProgressStream reports at most once per intervalMs, and always at the end", async () => {
    const calls: number[] = [];
    await Array.fromAsync(
      ReadableStream.from(byteChunks(100, 1)).pipeThrough(
        new ProgressStream((bytes) => calls.push(bytes), {
          intervalMs: 60_000,
        }),
      ),
    );
    assert.deepEqual(calls, [1, 100]);
  });

  it("ProgressStream reports a count once, an empty chunk adding none (a stream ending in one reported its last count twice)", async () => {
    const calls: number[] = [];
    await Array.fromAsync(
      ReadableStream.from([
        new Uint8Array(3),
        new Uint8Array(0),
        new Uint8Array(4),
        new Uint8Array(0),
      ]).pipeThrough(
        new ProgressStream((bytes) => calls.push(bytes), { intervalMs: 0 }),
      ),
    );
    assert.deepEqual(calls, [3, 7]);
  });

  it("ProgressStream reports an unknown total as undefined and an empty stream as 0", async () => {
    const calls: [number, number | undefined][] = [];
    await Array.fromAsync(
      ReadableStream.from<Uint8Array>([]).pipeThrough(
        new ProgressStream((bytes, total) => calls.push([bytes, total])),
      ),
    );
    assert.deepEqual(calls, [[0, undefined]]);
  });

  it("ProgressStream errors the stream when the callback throws", async () => {
    const source = probeSource(byteChunks(3, 1));
    await assert.rejects(
      Array.fromAsync(
        source.stream.pipeThrough(
          new ProgressStream(() => {
            throw new Error("callback failed");
          }, { intervalMs: 0 }),
        ),
      ),
      /callback failed/,
    );
    assert.ok(source.cancelled());
  });

  it("ProgressStream propagates a cancel of its readable to the source", async () => {
    const source = probeSource(byteChunks(10, 1));
    const reader = source.stream.pipeThrough(new ProgressStream(() => {}))
      .getReader();
    await reader.read();
    await reader.cancel("enough");
    await settled();
    assert.deepEqual(source.cancelled(), { reason: "enough" });
  });

  it("ProgressStream propagates an abort of its writable to the reader, with no final report", async () => {
    const calls: number[] = [];
    const progress = new ProgressStream((bytes) => calls.push(bytes));
    const reader = progress.readable.getReader();
    await progress.writable.abort(new Error("upload aborted"));
    await assert.rejects(reader.read(), /upload aborted/);
    assert.deepEqual(calls, []);
  });

  it("ProgressStream respects back-pressure: pulls only as chunks are read", async () => {
    const source = probeSource(byteChunks(50, 1));
    const reader = source.stream.pipeThrough(new ProgressStream(() => {}))
      .getReader();
    await settled();
    const idle = source.pulls();
    assert.ok(idle <= 3, `pulled ${idle} before any read`);
    for (let i = 0; i < 5; i++) await reader.read();
    await settled();
    assert.ok(source.pulls() <= idle + 6, `pulled ${source.pulls()}`);
    await reader.cancel();
  });
});
