// A writer that knows it has nothing more flushes the frame queue instead
// of letting it wait its idle microtask turns for more (the gather that
// coalesces a burst): FrameEncoderStream.flush(), and createClient's
// receive() before it waits. Counted in microtask turns, which are
// deterministic.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  createClient,
  defineService,
  FrameEncoderStream,
  Int64Value,
  type Transport,
  type TransportCall,
} from "../lib/rpc/mod.ts";
import { FrameQueue } from "../lib/rpc/wire/frame_encoder_stream.ts";
import type { Frame } from "../lib/rpc/wire/frame_decoder.ts";
import { deadline, turnsUntil } from "./_helpers.ts";

/**
 * A frame queue writing into a readable (high-water mark 0), as the RPC
 * server's response body over fetch: its pulls wake the queue, its cancel
 * fails it. `done` is streamTo's.
 */
function queueIntoReadable(): {
  queue: FrameQueue<Frame>;
  readable: ReadableStream<Uint8Array>;
  done: () => Promise<void>;
} {
  const queue = new FrameQueue<Frame>({}, () => {});
  let streaming!: { pulled(): void; done: Promise<void> };
  const readable = new ReadableStream<Uint8Array>({
    start(c) {
      streaming = queue.streamTo(c);
    },
    pull: () => streaming.pulled(),
    cancel: (reason) => queue.fail(reason),
  }, { highWaterMark: 0 });
  return { queue, readable, done: () => streaming.done };
}

/** A frame holding the Int64Value `n` (below 128). */
const frameOf = (n: number): Frame => ({
  flags: 0,
  data: new Uint8Array([8, n]),
});

const Service = defineService("test.v1.FlushService", {
  scan: { kind: "bidi", input: Int64Value, output: Int64Value },
});

describe("flushing the frame queue", () => {
  it("FrameEncoderStream.flush sends a lone frame without the gather's wait", async () => {
    const turns: number[] = [];
    for (const flush of [false, true]) {
      const encoder = new FrameEncoderStream();
      const writer = encoder.writable.getWriter();
      const reader = encoder.readable.getReader();
      const read = reader.read();
      encoder.push({ flags: 0, data: new Uint8Array([8, 5]) });
      if (flush) encoder.flush();
      turns.push(await turnsUntil(read));
      assert.deepEqual([...(await read).value!], [0, 0, 0, 0, 2, 8, 5]);
      await writer.close();
    }
    const [waited, flushed] = turns;
    // Without flush the queue waits its 16 idle turns for more frames.
    assert.ok(waited >= 16, `without flush: ${waited} turns`);
    assert.ok(flushed <= 8, `with flush: ${flushed} turns`);
  });

  it("flush with nothing queued leaves the next frame to gather a burst", async () => {
    const encoder = new FrameEncoderStream();
    const writer = encoder.writable.getWriter();
    const reader = encoder.readable.getReader();
    encoder.flush();
    const read = reader.read();
    // A burst written over several turns still lands in one chunk.
    for (let i = 0; i < 5; i++) {
      encoder.push({ flags: 0, data: new Uint8Array([8, i]) });
      await undefined;
    }
    assert.equal((await read).value!.byteLength, 5 * 7);
    await writer.close();
  });

  it("a queue writing into a readable wakes every writer waiting for its reader", async () => {
    // The RPC server's response over fetch: the queue's write turn and the
    // call loop's synchronous writer (writeNow, then whenDrained) may both
    // wait for the reader at once; each must wake, or the queue's writer
    // stays parked and the body never ends.
    const { queue, readable, done } = queueIntoReadable();
    const reader = readable.getReader();
    // No read waits: the first frame fills the stream.
    queue.accept(frameOf(1));
    assert.equal(queue.writeNow(), false);
    // The write turn that the next frame schedules waits for the reader...
    queue.accept(frameOf(2));
    for (let i = 0; i < 20; i++) await undefined;
    // ...and so does the synchronous writer.
    const drained = queue.whenDrained();
    assert.deepEqual([...(await reader.read()).value!], [0, 0, 0, 0, 2, 8, 1]);
    const second = reader.read();
    await drained;
    queue.writeNow();
    assert.deepEqual([...(await second).value!], [0, 0, 0, 0, 2, 8, 2]);
    // The write turn woke too: closing ends the writing.
    queue.close();
    await deadline(done(), 1000, "the queue's writing after close");
  });

  it("a queue writing into a readable stops waiting for its reader once cancelled", async () => {
    // A reader that stops reading, then cancels: the write turn and the
    // synchronous writer wait for a pull that never comes; the cancel
    // (FrameEncoderStream's and the RPC server's body call fail) must end
    // both, or the turn stays parked and `done` never settles.
    const { queue, readable, done } = queueIntoReadable();
    queue.accept(frameOf(1));
    assert.equal(queue.writeNow(), false); // the stream holds it: full
    queue.accept(frameOf(2));
    for (let i = 0; i < 20; i++) await undefined; // the turn parks
    const drained = queue.whenDrained();
    const reason = new Error("reader gone");
    await readable.cancel(reason);
    await deadline(
      Promise.all([done(), drained]),
      1000,
      "the parked writers after the cancel",
    );
    assert.equal(queue.failed, true);
    // The synchronous writer, woken, finds the queue failed.
    assert.throws(() => queue.writeNow(), (error) => error === reason);
    assert.throws(() => queue.accept(frameOf(3)), (error) => error === reason);
  });

  it("createClient's receive() flushes what was sent before it waits", async () => {
    let flushes = 0;
    let respond!: ReadableStreamDefaultController<bigint>;
    const transport: Transport = {
      call<I, O>(): TransportCall<I, O> {
        return {
          requests: new WritableStream<I>(),
          responses: new ReadableStream<O>({
            start: (c) => void (respond = c as never),
          }),
          headers: Promise.resolve(new Headers()),
          trailers: Promise.resolve(new Headers()),
          push: () => {},
          flush: () => void flushes++,
          cancel: () => {},
        };
      },
    } as unknown as Transport;
    const call = createClient(Service, transport).scan();
    await call.send(1n);
    assert.equal(flushes, 0, "send() alone does not flush");
    const first = call.receive();
    assert.equal(flushes, 1, "receive() flushes before it waits");
    respond.enqueue(1n);
    respond.enqueue(3n);
    assert.deepEqual(await first, { done: false, value: 1n });
    await call.send(2n);
    respond.close();
    assert.deepEqual(await call.receive(), { done: false, value: 3n });
    assert.equal((await call.receive()).done, true);
    assert.ok(flushes >= 2, `${flushes} flushes`);
  });
});
