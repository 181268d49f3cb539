import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ByteLimitStream } from "../lib/streams/byte_limit_stream.ts";
import { byteChunks, probeSource, settled } from "./_stream_probe.ts";

describe("ByteLimitStream", () => {
  it("ByteLimitStream passes a stream at or under maxBytes unchanged", async () => {
    const limit = new ByteLimitStream(12);
    const out = await Array.fromAsync(
      ReadableStream.from(byteChunks(3, 4)).pipeThrough(limit),
    );
    assert.deepEqual(out, byteChunks(3, 4));
    assert.equal(limit.bytes, 12);
    assert.equal(limit.exceeded, false);
  });

  it("ByteLimitStream errors with a RangeError naming maxBytes and passes nothing past the limit", async () => {
    const limit = new ByteLimitStream(10, { name: "upload" });
    const source = probeSource(byteChunks(3, 4));
    const seen: Uint8Array[] = [];
    await assert.rejects(
      source.stream.pipeThrough(limit).pipeTo(
        new WritableStream({ write: (c) => void seen.push(c) }),
      ),
      (error: unknown) =>
        error instanceof RangeError &&
        error.message === "Cannot accept upload: size exceeds maxBytes 10",
    );
    assert.equal(seen.reduce((n, c) => n + c.byteLength, 0), 8);
    assert.equal(limit.bytes, 8);
    assert.equal(limit.exceeded, true);
    assert.ok(source.cancelled(), "the source is cancelled");
  });

  it("ByteLimitStream truncate passes exactly maxBytes, closes and cancels the source", async () => {
    const limit = new ByteLimitStream(10, { onExceeded: "truncate" });
    const source = probeSource(byteChunks(5, 4));
    const out = await Array.fromAsync(source.stream.pipeThrough(limit));
    assert.deepEqual(out.map((c) => c.byteLength), [4, 4, 2]);
    assert.equal(limit.bytes, 10);
    assert.equal(limit.exceeded, true);
    assert.ok(source.cancelled());
  });

  it("ByteLimitStream with maxBytes 0 passes an empty stream and refuses one byte", async () => {
    assert.deepEqual(
      await Array.fromAsync(
        ReadableStream.from<Uint8Array>([]).pipeThrough(new ByteLimitStream(0)),
      ),
      [],
    );
    await assert.rejects(
      Array.fromAsync(
        ReadableStream.from([new Uint8Array(1)]).pipeThrough(
          new ByteLimitStream(0),
        ),
      ),
      RangeError,
    );
  });

  it("ByteLimitStream refuses a bad maxBytes with a RangeError", () => {
    for (const bad of [-1, 1.5, NaN, Infinity]) {
      assert.throws(
        () => new ByteLimitStream(bad),
        /maxBytes must be a non-negative integer/,
      );
    }
  });

  it("ByteLimitStream propagates a cancel of its readable to the source", async () => {
    const source = probeSource(byteChunks(10, 4));
    const reader = source.stream.pipeThrough(new ByteLimitStream(100))
      .getReader();
    await reader.read();
    await reader.cancel("stop");
    await settled();
    assert.deepEqual(source.cancelled(), { reason: "stop" });
  });

  it("ByteLimitStream propagates an abort of its writable to the reader", async () => {
    const limit = new ByteLimitStream(100);
    const reader = limit.readable.getReader();
    await limit.writable.abort(new Error("gone"));
    await assert.rejects(reader.read(), /gone/);
  });

  it("ByteLimitStream respects back-pressure: pulls only as chunks are read", async () => {
    const source = probeSource(byteChunks(20, 4));
    const reader = source.stream.pipeThrough(new ByteLimitStream(1000))
      .getReader();
    await settled();
    const idle = source.pulls();
    assert.ok(idle <= 3, `pulled ${idle} before any read`);
    await reader.read();
    await reader.read();
    await settled();
    assert.ok(source.pulls() <= idle + 3, `pulled ${source.pulls()}`);
    await reader.cancel();
  });
  it("ByteLimitStream fails a chunk that is not bytes with a TypeError, not as over the limit", async () => {
    const limit = new ByteLimitStream(100, { name: "upload" });
    const writer = limit.writable.getWriter();
    writer.write("hello" as unknown as Uint8Array).catch(() => {});
    await assert.rejects(
      limit.readable.getReader().read(),
      (error: unknown) =>
        error instanceof TypeError &&
        /Cannot accept upload: a chunk is string, not a Uint8Array/.test(
          error.message,
        ),
    );
  });
});
