import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MapStream, reduce, ScanStream } from "../lib/streams/mod.ts";

/** A source that counts how many times it was pulled. */
function counted(values: number[]) {
  let pulls = 0;
  let i = 0;
  const stream = new ReadableStream<number>({
    pull(controller) {
      pulls++;
      if (i < values.length) controller.enqueue(values[i++]);
      else controller.close();
    },
  }, { highWaterMark: 0 });
  return { stream, pulls: () => pulls };
}

describe("MapStream", () => {
  it("MapStream maps every chunk in order", async () => {
    const out = ReadableStream.from([1, 2, 3])
      .pipeThrough(new MapStream((n: number, i) => `${i}:${n * 10}`));
    assert.deepEqual(await Array.fromAsync(out), ["0:10", "1:20", "2:30"]);
  });

  it("MapStream awaits an async function and keeps order", async () => {
    const out = ReadableStream.from([3, 1, 2]).pipeThrough(
      new MapStream(async (n: number) => {
        await new Promise((r) => setTimeout(r, n));
        return n;
      }),
    );
    assert.deepEqual(await Array.fromAsync(out), [3, 1, 2]);
  });

  it("MapStream errors the stream with the function's error", async () => {
    const boom = new RangeError("boom");
    const out = ReadableStream.from([1, 2]).pipeThrough(
      new MapStream((n: number) => {
        if (n === 2) throw boom;
        return n;
      }),
    );
    await assert.rejects(Array.fromAsync(out), (e) => e === boom);
  });

  it("MapStream respects back-pressure (pulls only what is read)", async () => {
    const source = counted([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const reader = source.stream.pipeThrough(new MapStream((n: number) => n))
      .getReader();
    assert.equal((await reader.read()).value, 1);
    await new Promise((r) => setTimeout(r, 10));
    assert.ok(source.pulls() <= 4, `pulled ${source.pulls()} times`);
    await reader.cancel();
  });

  it("MapStream propagates cancellation to the source", async () => {
    const cancelled = Promise.withResolvers<unknown>();
    const source = new ReadableStream<number>({
      pull: (c) => c.enqueue(1),
      cancel: (reason) => cancelled.resolve(reason),
    });
    const reader = source.pipeThrough(new MapStream((n: number) => n))
      .getReader();
    await reader.read();
    await reader.cancel("stop");
    assert.equal(await cancelled.promise, "stop");
  });
});

describe("ScanStream", () => {
  it("ScanStream emits running accumulators", async () => {
    const out = ReadableStream.from([1n, 2n, 3n, 4n])
      .pipeThrough(new ScanStream((a: bigint, b: bigint) => a + b, 0n));
    assert.deepEqual(await Array.fromAsync(out), [1n, 3n, 6n, 10n]);
  });

  it("ScanStream emits nothing for an empty input", async () => {
    const scan = new ScanStream((a: number, b: number) => a + b, 42);
    const out = ReadableStream.from([] as number[]).pipeThrough(scan);
    assert.deepEqual(await Array.fromAsync(out), []);
    assert.equal(scan.accumulator, 42);
  });

  it("ScanStream supports an async function", async () => {
    const out = ReadableStream.from(["a", "b", "c"]).pipeThrough(
      new ScanStream(async (a: string, b: string) => {
        await Promise.resolve();
        return a + b;
      }, ""),
    );
    assert.deepEqual(await Array.fromAsync(out), ["a", "ab", "abc"]);
  });

  it("ScanStream errors on a throwing step, after the values before it", async () => {
    const seen: number[] = [];
    const out = ReadableStream.from([1, 2, 3]).pipeThrough(
      new ScanStream((a: number, b: number) => {
        if (b === 3) throw new RangeError("overflow");
        return a + b;
      }, 0),
    );
    const reader = out.getReader();
    seen.push((await reader.read()).value!);
    seen.push((await reader.read()).value!);
    await assert.rejects(reader.read(), RangeError);
    assert.deepEqual(seen, [1, 3]);
  });
});

describe("reduce", () => {
  it("reduce folds a stream", async () => {
    assert.equal(
      await reduce(ReadableStream.from([1, 2, 3, 4]), (a, b) => a + b, 0),
      10,
    );
  });

  it("reduce returns the initial value for an empty stream", async () => {
    assert.equal(await reduce(ReadableStream.from([]), (a, b) => a + b, 7), 7);
  });

  it("reduce accepts async iterables and async functions", async () => {
    async function* gen() {
      yield 1n;
      yield 2n;
    }
    const step = (a: bigint, b: bigint) => Promise.resolve(a * 10n + b);
    assert.equal(await reduce(gen(), step, 0n), 12n);
  });

  it("reduce cancels the source when the function throws", async () => {
    const cancelled = Promise.withResolvers<unknown>();
    let i = 0;
    const source = new ReadableStream<number>({
      pull: (c) => c.enqueue(i++),
      cancel: (reason) => cancelled.resolve(reason),
    });
    const boom = new RangeError("too big");
    await assert.rejects(
      reduce(source, (a, b) => {
        if (b === 3) throw boom;
        return a + b;
      }, 0),
      (e) => e === boom,
    );
    assert.equal(await cancelled.promise, boom);
  });

  it("reduce stops and cancels the source when aborted", async () => {
    const cancelled = Promise.withResolvers<unknown>();
    const source = new ReadableStream<number>({
      start: (c) => c.enqueue(1), // then nothing more
      cancel: (reason) => cancelled.resolve(reason),
    });
    const controller = new AbortController();
    const result = reduce(source, (a, b) => a + b, 0, {
      signal: controller.signal,
    });
    const reason = new Error("stop");
    controller.abort(reason);
    await assert.rejects(result, (e) => e === reason);
    assert.equal(await cancelled.promise, reason);
  });

  it("reduce reads one chunk at a time (constant memory)", async () => {
    const source = counted(Array.from({ length: 100 }, (_, i) => i));
    let maxAhead = 0;
    let consumed = 0;
    const sum = await reduce(source.stream, (a, b) => {
      consumed++;
      maxAhead = Math.max(maxAhead, source.pulls() - consumed);
      return a + b;
    }, 0);
    assert.equal(sum, 4950);
    assert.ok(maxAhead <= 1, `read ${maxAhead} chunks ahead`);
  });
});
