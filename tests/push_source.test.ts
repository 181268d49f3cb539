// A push source over any byte stream (lib/streams/_fuse.ts's openPushSource
// with the consumer's read): the reads of a fetch body pumped, each chunk
// handed over in the read's own reaction. What the RPC server's synchronous
// path and the client's inbox rely on: order and the end, one read under
// way even while paused (so that a body that fails is told at once), the
// chunk it brings held until resume, nothing read past it, stop, and a
// listener's own failures told, never left as unhandled rejections.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { openPushSource, type PushListener } from "../lib/streams/_fuse.ts";

/** A body whose reads are counted and answered by hand. */
function countedBody() {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const stream = new ReadableStream<Uint8Array>({
    start: (c) => void (controller = c),
  }, { highWaterMark: 0 });
  const reader = stream.getReader();
  const counts = { reads: 0 };
  const read = () => {
    counts.reads++;
    return reader.read();
  };
  return { stream, controller, read, reader, counts };
}

/** A listener that records what it is told. */
function recorder() {
  const events: string[] = [];
  const listener: PushListener = {
    data: (chunk) => void events.push(`data ${[...chunk].join(",")}`),
    end: () => void events.push("end"),
    error: (reason) => void events.push(`error ${(reason as Error).message}`),
  };
  return { events, listener };
}

/** Lets pending reactions run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await undefined;
}

describe("a push source over a byte stream's reads", () => {
  it("hands over every chunk in order, then the end", async () => {
    const body = countedBody();
    const { events, listener } = recorder();
    openPushSource(body.stream, listener, body.read);
    for (let i = 1; i <= 3; i++) body.controller.enqueue(new Uint8Array([i]));
    body.controller.close();
    await settle();
    assert.deepEqual(events, ["data 1", "data 2", "data 3", "end"]);
  });

  it("while paused, keeps one read under way and holds its chunk until resume", async () => {
    const body = countedBody();
    const { events, listener } = recorder();
    const source = openPushSource(body.stream, listener, body.read);
    source.pause();
    body.controller.enqueue(new Uint8Array([1]));
    body.controller.enqueue(new Uint8Array([2]));
    await settle();
    assert.deepEqual(events, [], "nothing handed over while paused");
    // The first read brought chunk 1; nothing is read past it.
    assert.equal(body.counts.reads, 1);
    source.resume();
    await settle();
    assert.deepEqual(events, ["data 1", "data 2"]);
    // Chunk 1 at resume, chunk 2 by the read after it, one more under way.
    assert.equal(body.counts.reads, 3);
  });

  it("a chunk is not read past while paused from within data", async () => {
    // As the RPC server's synchronous path: data() pauses while a handler
    // waits, and the chunk it was given stays valid (no read reuses its
    // buffer) until resume.
    const body = countedBody();
    const events: string[] = [];
    const source = openPushSource(body.stream, {
      data(chunk) {
        events.push(`data ${chunk[0]}`);
        if (chunk[0] === 1) source.pause();
      },
      end: () => void events.push("end"),
      error: () => void events.push("error"),
    }, body.read);
    for (let i = 1; i <= 3; i++) body.controller.enqueue(new Uint8Array([i]));
    await settle();
    assert.deepEqual(events, ["data 1"]);
    assert.equal(body.counts.reads, 2, "chunk 1's read and the one held");
    source.resume();
    await settle();
    assert.deepEqual(events, ["data 1", "data 2", "data 3"]);
  });

  it("a body that fails while paused is told at once", async () => {
    const body = countedBody();
    const { events, listener } = recorder();
    const source = openPushSource(body.stream, listener, body.read);
    source.pause();
    body.controller.error(new Error("the client went away"));
    await settle();
    assert.deepEqual(events, ["error the client went away"]);
    source.resume();
    await settle();
    assert.deepEqual(events, ["error the client went away"], "told once");
  });

  it("stop drops the read under way and any held chunk", async () => {
    const body = countedBody();
    const { events, listener } = recorder();
    const source = openPushSource(body.stream, listener, body.read);
    source.pause();
    body.controller.enqueue(new Uint8Array([1]));
    await settle();
    source.stop();
    source.resume();
    body.controller.enqueue(new Uint8Array([2]));
    body.controller.close();
    await settle();
    assert.deepEqual(events, []);
    assert.equal(body.counts.reads, 1);
  });

  it("a listener that throws in data is told as an error, and reads stop", async () => {
    const body = countedBody();
    const events: string[] = [];
    openPushSource(body.stream, {
      data() {
        throw new Error("listener bug");
      },
      end: () => void events.push("end"),
      error: (reason) => void events.push((reason as Error).message),
    }, body.read);
    body.controller.enqueue(new Uint8Array([1]));
    body.controller.enqueue(new Uint8Array([2]));
    await settle();
    assert.deepEqual(events, ["listener bug"]);
    assert.equal(body.counts.reads, 1);
  });

  it("a listener that throws in end is told as an error; one that throws in error ends nothing else", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => void unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      const body = countedBody();
      const events: string[] = [];
      openPushSource(body.stream, {
        data: () => void events.push("data"),
        end() {
          throw new Error("end bug");
        },
        error: (reason) => void events.push((reason as Error).message),
      }, body.read);
      body.controller.enqueue(new Uint8Array([1]));
      body.controller.close();
      await settle();
      assert.deepEqual(events, ["data", "end bug"]);
      // error() throwing as well, at the end and on a failed read.
      for (const fail of [false, true]) {
        const other = countedBody();
        openPushSource(other.stream, {
          data() {},
          end() {
            throw new Error("end bug");
          },
          error() {
            throw new Error("error bug");
          },
        }, other.read);
        if (fail) other.controller.error(new Error("reset"));
        else other.controller.close();
      }
      await settle();
      await new Promise((resolve) => setTimeout(resolve, 10));
      assert.deepEqual(unhandled, []);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  it("without a read, a stream with no push source of its own has none", () => {
    const body = countedBody();
    assert.equal(openPushSource(body.stream, recorder().listener), undefined);
  });
});
