// streamFrom, the core's ReadableStream.from (browsers lack it): the same
// stream as the runtime's own, value for value, cancel for cancel.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { streamFrom } from "../lib/_internal/stream_from.ts";

async function readAll<T>(stream: ReadableStream<T>): Promise<T[]> {
  const values: T[] = [];
  const reader = stream.getReader();
  while (true) {
    const { done, value } = await reader.read();
    if (done) return values;
    values.push(value);
  }
}

describe("streamFrom", () => {
  it("streamFrom reads an array, a sync generator's promised values awaited, and an async generator, as ReadableStream.from does", async () => {
    function* promised() {
      yield Promise.resolve(1);
      yield 2;
    }
    async function* later() {
      yield "a";
      await new Promise((resolve) => setTimeout(resolve, 1));
      yield "b";
    }
    for (const make of [streamFrom, ReadableStream.from.bind(ReadableStream)]) {
      assert.deepEqual(await readAll(make([1n, 2n, 3n])), [1n, 2n, 3n]);
      assert.deepEqual(await readAll(make(promised())), [1, 2]);
      assert.deepEqual(await readAll(make(later())), ["a", "b"]);
    }
  });

  it("streamFrom pulls one value at a time and passes a cancel's reason to the iterator's return", async () => {
    const pulled: number[] = [];
    const returned: unknown[] = [];
    const iterator: AsyncIterableIterator<number> = {
      next() {
        pulled.push(pulled.length);
        return Promise.resolve({ done: false, value: pulled.length });
      },
      return(reason?: unknown) {
        returned.push(reason);
        return Promise.resolve({ done: true, value: undefined });
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
    const reader = streamFrom(iterator).getReader();
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(pulled.length, 0, "nothing pulled before a read");
    assert.deepEqual(await reader.read(), { done: false, value: 1 });
    await reader.cancel("stop");
    assert.deepEqual(returned, ["stop"]);
    assert.equal(pulled.length, 1);
  });

  it("streamFrom errors with an iterator's error and with a sync value's rejection, closing the sync iterator", async () => {
    async function* failing() {
      yield 1;
      throw new Error("broken source");
    }
    const reader = streamFrom(failing()).getReader();
    assert.deepEqual(await reader.read(), { done: false, value: 1 });
    await assert.rejects(reader.read(), /broken source/);

    let closed = false;
    function* rejecting() {
      try {
        yield Promise.reject(new Error("rejected value"));
        yield 2;
      } finally {
        closed = true;
      }
    }
    await assert.rejects(readAll(streamFrom(rejecting())), /rejected value/);
    assert.equal(closed, true);
  });
});
