import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ScanStream } from "../lib/streams/scan.ts";
import { probeSource, settled } from "./_stream_probe.ts";

const add = (a: number, b: number) => a + b;

describe("ScanStream", () => {
  it("ScanStream emits each running accumulator, not the initial one", async () => {
    const scan = new ScanStream(add, 0);
    assert.equal(scan.accumulator, 0);
    const out = await Array.fromAsync(
      ReadableStream.from([1, 2, 3, 4]).pipeThrough(scan),
    );
    assert.deepEqual(out, [1, 3, 6, 10]);
    assert.equal(scan.accumulator, 10);
  });

  it("ScanStream emits nothing for an empty input", async () => {
    const out = await Array.fromAsync(
      ReadableStream.from<number>([]).pipeThrough(new ScanStream(add, 0)),
    );
    assert.deepEqual(out, []);
  });

  it("ScanStream awaits an async step and keeps the order", async () => {
    const out = await Array.fromAsync(
      ReadableStream.from([20, 0, 10]).pipeThrough(
        new ScanStream(async (a: number, ms: number) => {
          await new Promise((resolve) => setTimeout(resolve, ms));
          return a + ms;
        }, 0),
      ),
    );
    assert.deepEqual(out, [20, 20, 30]);
  });

  it("ScanStream errors after the values before a throwing step, and cancels the source", async () => {
    const source = probeSource([1, 2, 3]);
    const seen: number[] = [];
    await assert.rejects(
      source.stream.pipeThrough(
        new ScanStream((a: number, n: number) => {
          if (n === 3) throw new RangeError("overflow");
          return a + n;
        }, 0),
      ).pipeTo(new WritableStream({ write: (v) => void seen.push(v) })),
      RangeError,
    );
    assert.deepEqual(seen, [1, 3]);
    assert.ok(source.cancelled());
  });

  it("ScanStream propagates a cancel of its readable to the source", async () => {
    const source = probeSource([1, 2, 3, 4]);
    const reader = source.stream.pipeThrough(new ScanStream(add, 0))
      .getReader();
    await reader.read();
    await reader.cancel("stop");
    await settled();
    assert.deepEqual(source.cancelled(), { reason: "stop" });
  });

  it("ScanStream propagates an abort of its writable to the reader", async () => {
    const scan = new ScanStream(add, 0);
    const reader = scan.readable.getReader();
    await scan.writable.abort(new Error("client went away"));
    await assert.rejects(reader.read(), /client went away/);
  });

  it("ScanStream respects back-pressure: steps run only as values are read", async () => {
    const source = probeSource(Array.from({ length: 50 }, (_, i) => i));
    let steps = 0;
    const reader = source.stream.pipeThrough(
      new ScanStream((a: number, n: number) => {
        steps++;
        return a + n;
      }, 0),
    ).getReader();
    await settled();
    assert.ok(source.pulls() <= 3, `pulled ${source.pulls()} before a read`);
    for (let i = 0; i < 5; i++) await reader.read();
    await settled();
    assert.ok(source.pulls() <= 8, `pulled ${source.pulls()}`);
    assert.ok(steps <= 7, `stepped ${steps}`);
    await reader.cancel();
  });
});
