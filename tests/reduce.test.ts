import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { reduce } from "../lib/streams/reduce.ts";
import { probeSource } from "./_stream_probe.ts";
import { deadline } from "./_helpers.ts";

const add = (a: number, b: number) => a + b;

describe("reduce", () => {
  it("reduce folds a stream, an async iterable and an iterable", async () => {
    assert.equal(await reduce(ReadableStream.from([1, 2, 3]), add, 0), 6);
    async function* numbers() {
      yield 4;
      yield 5;
    }
    assert.equal(await reduce(numbers(), add, 1), 10);
    assert.equal(await reduce([1, 2], add, 0), 3);
  });

  it("reduce returns the initial value for an empty source", async () => {
    assert.equal(await reduce(ReadableStream.from<number>([]), add, 42), 42);
  });

  it("reduce awaits an async function", async () => {
    const total = await reduce(
      [1, 2, 3],
      async (a: number, n: number) => {
        await new Promise((resolve) => setTimeout(resolve, 1));
        return a + n;
      },
      0,
    );
    assert.equal(total, 6);
  });

  it("reduce cancels the source with the function's error and rejects with it", async () => {
    const source = probeSource([1, 2, 3, 4]);
    const failure = new RangeError("too big");
    await assert.rejects(
      reduce(source.stream, (a: number, n: number) => {
        if (n === 2) throw failure;
        return a + n;
      }, 0),
      (error) => error === failure,
    );
    assert.deepEqual(source.cancelled(), { reason: failure });
  });

  it("reduce rejects with the source's error", async () => {
    const failing = new ReadableStream<number>({
      start: (controller) => controller.error(new Error("broken")),
    });
    await assert.rejects(reduce(failing, add, 0), /broken/);
  });

  it("reduce with an aborted signal rejects at once, reads nothing and cancels the source (it was left uncancelled)", async () => {
    const source = probeSource([1, 2]);
    const reason = new Error("already aborted");
    await assert.rejects(
      reduce(source.stream, add, 0, { signal: AbortSignal.abort(reason) }),
      (error) => error === reason,
    );
    assert.equal(source.pulls(), 0);
    assert.deepEqual(source.cancelled(), { reason });
    // Not waiting for a cancel that never settles.
    const stuck = new ReadableStream({ cancel: () => new Promise(() => {}) });
    await assert.rejects(
      deadline(
        reduce(stuck, add, 0, { signal: AbortSignal.abort(reason) }),
        2_000,
        "reduce",
      ),
      (error) => error === reason,
    );
  });

  it("reduce stops and cancels the source when its signal aborts mid-stream", async () => {
    const controller = new AbortController();
    let cancelled: unknown;
    let pulls = 0;
    const endless = new ReadableStream<number>({
      pull(c) {
        pulls++;
        c.enqueue(1);
        if (pulls === 5) controller.abort(new Error("stop"));
      },
      cancel(reason) {
        cancelled = reason;
      },
    }, { highWaterMark: 0 });
    await assert.rejects(
      reduce(endless, add, 0, { signal: controller.signal }),
      /stop/,
    );
    assert.match(String(cancelled), /stop/);
    assert.ok(pulls <= 7, `pulled ${pulls}`);
  });

  it("reduce reads one chunk at a time (back-pressure: pulls match reads)", async () => {
    let pulls = 0;
    let inFlight = 0;
    let maxAhead = 0;
    const source = new ReadableStream<number>({
      pull(c) {
        pulls++;
        inFlight++;
        maxAhead = Math.max(maxAhead, inFlight);
        if (pulls > 100) c.close();
        else c.enqueue(pulls);
      },
    }, { highWaterMark: 0 });
    const total = await reduce(source, (a: number, n: number) => {
      inFlight--;
      return a + n;
    }, 0);
    assert.equal(total, 5050);
    assert.ok(maxAhead <= 2, `up to ${maxAhead} chunks pulled ahead`);
  });
});
