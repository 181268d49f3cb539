import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ReadAheadStream } from "../lib/streams/read_ahead_stream.ts";
import { byteChunks, probeSource, settled } from "./_stream_probe.ts";
import { deadline, runtime } from "./_helpers.ts";

describe("ReadAheadStream", () => {
  it("ReadAheadStream passes chunks unchanged and in order", async () => {
    const out = await Array.fromAsync(
      ReadableStream.from(byteChunks(10, 3)).pipeThrough(
        new ReadAheadStream({ highWaterMark: 7 }),
      ),
    );
    assert.deepEqual(out, byteChunks(10, 3));
  });

  it("ReadAheadStream reads ahead up to highWaterMark bytes while the consumer waits", async () => {
    // 100-byte chunks, 1000 bytes of read-ahead: once reading has started
    // (a TransformStream waits for its first read), about 10 chunks are
    // pulled ahead of the consumer, and no more.
    const source = probeSource(byteChunks(100, 100));
    const reader = source.stream.pipeThrough(
      new ReadAheadStream({ highWaterMark: 1000 }),
    ).getReader();
    await reader.read();
    await settled();
    const ahead = source.pulls();
    // Never more than the high-water mark ahead, on every runtime.
    assert.ok(ahead <= 14, `pulled ${ahead} ahead`);
    if (runtime !== "deno") {
      assert.ok(ahead >= 11, `pulled ${ahead} ahead`);
    }
    // Measured with Deno 2.9.6: its pipeTo writes into a TransformStream's
    // writable only as its readable is read, so nothing is read ahead of a
    // source that produces on pull (ahead is 1 here).
    await settled();
    assert.equal(source.pulls(), ahead, "no pulls past the high-water mark");
    await reader.read();
    await settled();
    assert.ok(source.pulls() <= ahead + 2, `pulled ${source.pulls()}`);
    await reader.cancel();
  });

  it("ReadAheadStream counts each chunk's whole buffer, the memory it keeps alive", async () => {
    // Deno 2.9.6 over h2c gives each 16 KiB chunk of a request body a
    // 64 KiB buffer of its own: counted in viewed bytes, a read-ahead held
    // four times its bound.
    const view = () => new Uint8Array(new ArrayBuffer(64 * 1024), 0, 16 * 1024);
    const stream = new ReadAheadStream({ highWaterMark: 256 * 1024 });
    const writer = stream.writable.getWriter();
    const sizes = [];
    for (let i = 0; i < 4; i++) {
      void writer.write(view());
      sizes.push(writer.desiredSize);
    }
    // The readable side takes the first chunk into its own queue of 0
    // once a read is pending; with none, all four wait in the writable's.
    assert.deepEqual(sizes, [192, 128, 64, 0].map((k) => k * 1024));
    // A whole buffer larger than the mark still passes, alone.
    const reader = stream.readable.getReader();
    void writer.write(new Uint8Array(new ArrayBuffer(1024 * 1024), 0, 8));
    for (let i = 0; i < 5; i++) {
      const { value } = await reader.read();
      assert.equal(value?.byteLength, i < 4 ? 16 * 1024 : 8);
    }
    await writer.close();
    assert.equal((await reader.read()).done, true);
  });

  it("ReadAheadStream with highWaterMark 0 reads nothing ahead", async () => {
    const source = probeSource(byteChunks(10, 100));
    const reader = source.stream.pipeThrough(
      new ReadAheadStream({ highWaterMark: 0 }),
    ).getReader();
    await settled();
    const idle = source.pulls();
    assert.ok(idle <= 2, `pulled ${idle} with no read-ahead`);
    await reader.cancel();
  });

  it("ReadAheadStream with highWaterMark 0 passes every chunk through a pipe", async () => {
    // A writable side with a high-water mark of 0 never asks a pipe for a
    // chunk where pipeTo follows the Streams standard to the letter (Bun,
    // Node): the stream must still flow.
    const out: Uint8Array[] = [];
    await deadline(
      ReadableStream.from(byteChunks(10, 5))
        .pipeThrough(new ReadAheadStream({ highWaterMark: 0 }))
        .pipeTo(new WritableStream({ write: (chunk) => void out.push(chunk) })),
      5_000,
      "a pipe through ReadAheadStream({ highWaterMark: 0 })",
    );
    assert.deepEqual(out, byteChunks(10, 5));
  });

  it("ReadAheadStream refuses a bad highWaterMark with a RangeError", () => {
    for (const bad of [-1, 0.5, NaN]) {
      assert.throws(
        () => new ReadAheadStream({ highWaterMark: bad }),
        /highWaterMark must be a non-negative integer/,
      );
    }
  });

  it("ReadAheadStream propagates a cancel of its readable to the source", async () => {
    const source = probeSource(byteChunks(10, 1));
    const reader = source.stream.pipeThrough(new ReadAheadStream())
      .getReader();
    await reader.read();
    await reader.cancel("done");
    await settled();
    assert.deepEqual(source.cancelled(), { reason: "done" });
  });

  it("ReadAheadStream propagates a source error to the reader after the chunks before it", async () => {
    let sent = false;
    const failing = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (!sent) {
          sent = true;
          controller.enqueue(new Uint8Array(1));
        } else controller.error(new Error("network"));
      },
    });
    const reader = failing.pipeThrough(new ReadAheadStream()).getReader();
    assert.equal((await reader.read()).value?.byteLength, 1);
    await assert.rejects(reader.read(), /network/);
  });
});
