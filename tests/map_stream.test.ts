import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MapStream } from "../lib/streams/map.ts";
import { probeSource, settled } from "./_stream_probe.ts";

describe("MapStream", () => {
  it("MapStream maps each chunk with its index, in order", async () => {
    const out = await Array.fromAsync(
      ReadableStream.from(["a", "b", "c"]).pipeThrough(
        new MapStream((chunk: string, index) => `${index}:${chunk}`),
      ),
    );
    assert.deepEqual(out, ["0:a", "1:b", "2:c"]);
  });

  it("MapStream awaits an async function and keeps the order", async () => {
    const out = await Array.fromAsync(
      ReadableStream.from([30, 0, 10]).pipeThrough(
        new MapStream(async (ms: number) => {
          await new Promise((resolve) => setTimeout(resolve, ms));
          return ms;
        }),
      ),
    );
    assert.deepEqual(out, [30, 0, 10]);
  });

  it("MapStream errors the stream with the function's error and cancels the source", async () => {
    const source = probeSource([1, 2, 3]);
    const failure = new Error("bad chunk");
    await assert.rejects(
      Array.fromAsync(
        source.stream.pipeThrough(
          new MapStream((n: number) => {
            if (n === 2) throw failure;
            return n;
          }),
        ),
      ),
      (error) => error === failure,
    );
    assert.ok(source.cancelled());
  });

  it("MapStream errors the stream when an async function rejects", async () => {
    await assert.rejects(
      Array.fromAsync(
        ReadableStream.from([1]).pipeThrough(
          new MapStream(() => Promise.reject(new RangeError("no"))),
        ),
      ),
      RangeError,
    );
  });

  it("MapStream propagates a cancel of its readable to the source", async () => {
    const source = probeSource([1, 2, 3, 4]);
    const reader = source.stream.pipeThrough(new MapStream((n: number) => n))
      .getReader();
    await reader.read();
    await reader.cancel("stop");
    await settled();
    assert.deepEqual(source.cancelled(), { reason: "stop" });
  });

  it("MapStream propagates an abort of its writable to the reader", async () => {
    const map = new MapStream((n: number) => n);
    const reader = map.readable.getReader();
    await map.writable.abort(new Error("aborted upstream"));
    await assert.rejects(reader.read(), /aborted upstream/);
  });

  it("MapStream respects back-pressure: the function runs only as chunks are read", async () => {
    const source = probeSource(Array.from({ length: 50 }, (_, i) => i));
    let calls = 0;
    const reader = source.stream.pipeThrough(
      new MapStream((n: number) => {
        calls++;
        return n;
      }),
    ).getReader();
    await settled();
    assert.ok(source.pulls() <= 3, `pulled ${source.pulls()} before a read`);
    for (let i = 0; i < 5; i++) await reader.read();
    await settled();
    assert.ok(source.pulls() <= 8, `pulled ${source.pulls()}`);
    assert.ok(calls <= 7, `mapped ${calls}`);
    await reader.cancel();
  });
});
