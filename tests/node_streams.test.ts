// The node:http2 glue's bridges between node streams and web streams
// (lib/runtime/_node_streams.ts), on a PassThrough standing in for an
// HTTP/2 stream: plain Uint8Array chunks, bounded buffering, cancel, reset
// and 'drain'.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { PassThrough } from "node:stream";
import { readableFromNode, writeToNode } from "../lib/runtime/_node_streams.ts";
import { deadline } from "./_helpers.ts";

const T = 5000;

/** Resolves after the queued callbacks and a macrotask turn have run. */
const settle = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

describe("readableFromNode", () => {
  it("readableFromNode yields plain Uint8Arrays with the node chunks' bytes", async () => {
    const source = new PassThrough();
    const body = readableFromNode(source);
    for (const size of [1, 10, 900, 1100, 70_000]) {
      source.write(Buffer.alloc(size, size & 0xff));
    }
    source.end();
    const chunks = await deadline(Array.fromAsync(body), T);
    let total = 0;
    for (const chunk of chunks) {
      assert.equal(Object.getPrototypeOf(chunk), Uint8Array.prototype);
      total += chunk.byteLength;
    }
    assert.equal(total, 1 + 10 + 900 + 1100 + 70_000);
    const bytes = new Uint8Array(total);
    let at = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, at);
      at += chunk.byteLength;
    }
    assert.equal(bytes[0], 1);
    assert.equal(bytes[1 + 10 + 900 - 1], 900 & 0xff);
    assert.equal(bytes[total - 1], 70_000 & 0xff);
  });

  it("readableFromNode pauses the node stream once maxBufferBytes are unread, and resumes on a read", async () => {
    const source = new PassThrough({ highWaterMark: 1024 });
    // Counts what node emits, and what it had emitted at the first pause.
    let seen = 0;
    let seenAtPause = -1;
    source.on("data", (chunk: Uint8Array) => void (seen += chunk.byteLength));
    const pause = source.pause.bind(source);
    source.pause = () => {
      if (seenAtPause < 0) seenAtPause = seen;
      return pause();
    };
    const body = readableFromNode(source, 4096);
    // 32 KiB, past the PassThrough's own buffers too.
    const written = 32 * 1024;
    for (let i = 0; i < 32; i++) source.write(new Uint8Array(1024));
    await settle();
    assert.equal(source.isPaused(), true);
    // Paused when the third KiB was queued unread (each chunk counting 512
    // bytes more: 3 x 1,536 >= 4,096), and nothing came after.
    assert.equal(seenAtPause, 3072);
    assert.equal(seen, 3072);
    // Reading it all resumes the flow.
    const reader = body.getReader();
    let read = 0;
    while (read < written) {
      const r = await deadline(reader.read(), T);
      assert.equal(r.done, false);
      read += r.value!.byteLength;
    }
    assert.equal(read, written);
    assert.equal(source.isPaused(), false);
    source.end();
    assert.equal((await deadline(reader.read(), T)).done, true);
  });

  it("readableFromNode gives the small chunks queued behind a read in one (a client's one-byte DATA frames cost a read each), and pauses after about maxBufferBytes / 513 of them", async () => {
    const source = new PassThrough({ highWaterMark: 1 });
    let seen = 0;
    source.on("data", (chunk: Uint8Array) => void (seen += chunk.byteLength));
    const body = readableFromNode(source);
    for (let i = 0; i < 1000; i++) source.write(new Uint8Array([i & 0xff]));
    source.end();
    await settle();
    // 128 one-byte chunks queued: 128 x 513 >= 65,536.
    assert.equal(source.isPaused(), true);
    assert.equal(seen, 128);
    const chunks = await deadline(Array.fromAsync(body), T);
    const bytes = new Uint8Array(1000);
    let at = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, at);
      at += chunk.byteLength;
    }
    assert.equal(at, 1000);
    assert.deepEqual(
      bytes,
      Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff),
    );
    // A read took every chunk queued by then: far fewer reads than chunks.
    assert.ok(chunks.length <= 20, `${chunks.length} reads`);
    assert.equal(chunks[0].byteLength, 128);
  });

  it("readableFromNode with a waiting read takes each chunk without pausing", async () => {
    const source = new PassThrough();
    const reader = readableFromNode(source, 0).getReader();
    for (let i = 0; i < 100; i++) {
      const read = reader.read();
      source.write(new Uint8Array([i]));
      const r = await deadline(read, T);
      assert.deepEqual(r.value, new Uint8Array([i]));
    }
    source.end();
    assert.equal((await deadline(reader.read(), T)).done, true);
  });

  it("readableFromNode cancel discards the rest so the node stream ends", async () => {
    const source = new PassThrough({ highWaterMark: 1024 });
    const body = readableFromNode(source, 1024);
    while (source.write(new Uint8Array(1024)));
    await settle();
    assert.equal(source.isPaused(), true);
    await body.cancel();
    const ended = new Promise((resolve) => source.once("end", resolve));
    source.end();
    await deadline(ended, T);
  });

  it("readableFromNode errors with the reset error when the node stream closes before its end", async () => {
    const source = new PassThrough();
    const body = readableFromNode(
      source,
      65536,
      () => new Error("reset by test"),
    );
    const reader = body.getReader();
    source.write(new Uint8Array([1]));
    assert.deepEqual(
      (await deadline(reader.read(), T)).value,
      new Uint8Array([1]),
    );
    source.destroy();
    await assert.rejects(deadline(reader.read(), T), /reset by test/);
  });
});

describe("writeToNode", () => {
  it("writeToNode writes every chunk in order and waits for 'drain'", async () => {
    const sink = new PassThrough({ highWaterMark: 16 });
    const sizes = [1, 5, 15, 700, 1024, 1025, 20_000];
    const writing = writeToNode(
      ReadableStream.from(sizes.map((n) => new Uint8Array(n).fill(n & 0xff))),
      sink,
    );
    const received: number[] = [];
    // Nothing reads the sink until here: the writer must wait for 'drain'.
    await settle();
    assert.ok(sink.writableLength > 0);
    sink.on("data", (chunk: Uint8Array) => {
      for (const byte of chunk) received.push(byte);
    });
    await deadline(writing, T);
    const want = sizes.flatMap((n) => Array<number>(n).fill(n & 0xff));
    assert.equal(received.length, want.length);
    assert.deepEqual(received, want);
  });

  it("writeToNode rejects and cancels the source when the node stream closes", async () => {
    const sink = new PassThrough({ highWaterMark: 1 });
    let cancelled: unknown;
    const source = new ReadableStream<Uint8Array>({
      pull: (c) => c.enqueue(new Uint8Array(64)),
      cancel: (reason) => void (cancelled = reason),
    });
    const writing = writeToNode(source, sink);
    await settle();
    sink.destroy();
    await assert.rejects(deadline(writing, T), /closed/);
    assert.ok(cancelled instanceof Error);
  });
});
