import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Buffer } from "node:buffer";
import { DuplexStream } from "../lib/streams/duplex_stream.ts";
import { deadline, splitAt } from "./_helpers.ts";
import { WatchedViews } from "./_memory.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Two duplex streams wired to each other, like the two ends of a socket. */
function pair(
  highWaterMark = 1,
): [DuplexStream, DuplexStream] {
  const strategy = () => new ByteLengthQueuingStrategy({ highWaterMark });
  const ab = new TransformStream<Uint8Array, Uint8Array>({}, strategy());
  const ba = new TransformStream<Uint8Array, Uint8Array>({}, strategy());
  return [
    new DuplexStream(ba.readable, ab.writable),
    new DuplexStream(ab.readable, ba.writable),
  ];
}

/** A duplex stream reading `chunks` and writing nowhere useful. */
function reading(chunks: Uint8Array[], options = {}): DuplexStream {
  return new DuplexStream(
    ReadableStream.from(chunks),
    new WritableStream(),
    options,
  );
}

describe("DuplexStream.readPartial", () => {
  it("DuplexStream.readPartial resolves as soon as any bytes arrive from a slow writer", async () => {
    const [client, server] = pair();
    await client.write("a");
    // The writer is still open and writes nothing more until the read
    // resolves: a read that waited for more would hit the deadline.
    const first = await deadline(server.readPartial(1024), 2000, "readPartial");
    assert.equal(dec.decode(first!), "a");
    await client.write("bc");
    const second = await deadline(
      server.readPartial(1024),
      2000,
      "readPartial",
    );
    assert.equal(dec.decode(second!), "bc");
    await client.close(new Error("done"));
  });

  it("DuplexStream.readPartial returns at most max bytes and keeps the rest", async () => {
    const stream = reading([enc.encode("abcdef")]);
    assert.equal(dec.decode((await stream.readPartial(4))!), "abcd");
    assert.equal(dec.decode((await stream.readPartial(4))!), "ef");
    assert.equal(await stream.readPartial(4), null);
  });

  it("DuplexStream.readPartial returns null at the end of input, every time", async () => {
    const stream = reading([new Uint8Array(0), enc.encode("x")]);
    assert.equal(dec.decode((await stream.readPartial())!), "x");
    assert.equal(await stream.readPartial(), null);
    assert.equal(await stream.readPartial(), null);
    assert.equal(stream.readableEnded, true);
  });

  it("DuplexStream.readPartial rejects a max below 1", async () => {
    await assert.rejects(reading([]).readPartial(0), RangeError);
  });
});

describe("DuplexStream.read", () => {
  it("DuplexStream.read returns exactly n bytes across any chunk boundaries", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 0, maxLength: 64 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 1 }),
        async (bytes, cuts, sizes) => {
          const stream = reading(splitAt(bytes, cuts));
          let offset = 0;
          for (const n of sizes) {
            const got = await stream.read(n);
            if (offset >= bytes.length && n > 0) {
              assert.equal(got, null);
              continue;
            }
            const want = bytes.subarray(offset, offset + n);
            assert.deepEqual(got, want);
            offset += want.length;
          }
        },
      ),
    );
  });

  it("DuplexStream.read returns fewer bytes only at the end of input", async () => {
    const stream = reading([enc.encode("ab"), enc.encode("c")]);
    assert.equal(dec.decode((await stream.read(5))!), "abc");
    assert.equal(await stream.read(5), null);
  });

  it("DuplexStream.read sweeps 1-byte and 2-byte chunks", async () => {
    const text = "the quick brown fox";
    for (const size of [1, 2, 3]) {
      const chunks: Uint8Array[] = [];
      const bytes = enc.encode(text);
      for (let i = 0; i < bytes.length; i += size) {
        chunks.push(bytes.slice(i, i + size));
      }
      const stream = reading(chunks);
      assert.equal(dec.decode((await stream.read(4))!), "the ");
      assert.equal(dec.decode((await stream.read(6))!), "quick ");
      assert.equal(dec.decode((await stream.read(100))!), "brown fox");
    }
  });

  it("DuplexStream.read rejects n over maxReadBytes before allocating", async () => {
    const stream = reading([enc.encode("abc")], { maxReadBytes: 2 });
    await assert.rejects(stream.read(3), /exceeds maxReadBytes 2/);
    assert.equal(dec.decode((await stream.read(2))!), "ab");
  });
});

describe("DuplexStream.readLine", () => {
  it("DuplexStream.readLine splits \\n and \\r\\n lines and returns a last line without ending", async () => {
    const stream = reading([enc.encode("one\r\ntwo\n\nthree")]);
    assert.deepEqual(await Array.fromAsync(stream.lines()), [
      "one",
      "two",
      "",
      "three",
    ]);
    assert.equal(await stream.readLine(), null);
  });

  it("DuplexStream.readLine gives the same lines for any split of the bytes", async () => {
    const lines = ["alpha", "", "béta", "gamma\r", "δ"];
    const bytes = enc.encode(lines.join("\n") + "\n");
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat(), { maxLength: 12 }), async (cuts) => {
        const got = await Array.fromAsync(
          reading(splitAt(bytes, cuts)).lines(),
        );
        assert.deepEqual(got, ["alpha", "", "béta", "gamma", "δ"]);
      }),
    );
  });

  it("DuplexStream.readLine rejects a line over maxLineBytes and consumes nothing", async () => {
    const stream = reading([enc.encode("abcd"), enc.encode("efgh\nrest")], {
      maxLineBytes: 5,
    });
    await assert.rejects(stream.readLine(), /exceeds maxLineBytes 5/);
    assert.equal(dec.decode((await stream.read(12))!), "abcdefgh\nres");
  });

  it("DuplexStream.readLine accepts a line of exactly maxLineBytes with \\r\\n", async () => {
    const stream = reading([enc.encode("abcde\r\nx")], { maxLineBytes: 5 });
    assert.equal(await stream.readLine(), "abcde");
    assert.equal(await stream.readLine(), "x");
  });
});

describe("DuplexStream iteration and writing", () => {
  it("DuplexStream iterates over chunks until the end of input", async () => {
    const stream = reading([enc.encode("a"), enc.encode("b")]);
    const chunks = await Array.fromAsync(stream);
    assert.deepEqual(chunks.map((c) => dec.decode(c)), ["a", "b"]);
  });

  it("DuplexStream.write encodes strings as UTF-8", async () => {
    const [a, b] = pair();
    await a.write("héllo");
    await a.closeWrite();
    assert.equal(dec.decode((await b.read(100))!), "héllo");
  });

  it("DuplexStream.write copies the bytes: a buffer filled again after each write sends what it held then (they all read as its last content)", async () => {
    // Written with a 64 KiB queue and read after all writes: each chunk
    // waits in the queue while the caller refills its buffer.
    const [a, b] = pair(64 * 1024);
    const buffer = new Uint8Array(4);
    for (let i = 0; i < 100; i++) {
      buffer.fill(48 + i % 10);
      await a.write(buffer);
    }
    await a.closeWrite();
    const expected = Array.from(
      { length: 100 },
      (_, i) => String(i % 10).repeat(4),
    ).join("");
    assert.equal(dec.decode((await b.read(1000))!), expected);
    // A Node Buffer too, whose own slice() is a view (fs.read fills one).
    const [c, d] = pair(64 * 1024);
    const reused = Buffer.alloc(2);
    for (const text of ["ab", "cd", "ef"]) {
      reused.write(text);
      await c.write(reused);
    }
    await c.closeWrite();
    assert.equal(dec.decode((await d.read(6))!), "abcdef");
  });

  it("DuplexStream.write waits while the output is back-pressured", async () => {
    const pulls: number[] = [];
    let queued = 0;
    const output = new WritableStream<Uint8Array>({
      write(chunk) {
        queued -= chunk.byteLength;
        pulls.push(chunk.byteLength);
        // Never finishes: a consumer that stopped reading.
        return new Promise(() => {});
      },
    }, new ByteLengthQueuingStrategy({ highWaterMark: 1024 }));
    const stream = new DuplexStream(ReadableStream.from([]), output);
    let accepted = 0;
    let blocked = false;
    for (let i = 0; i < 64; i++) {
      const write = stream.write(new Uint8Array(256));
      const settled = await Promise.race([
        write.then(() => true),
        new Promise((r) => setTimeout(() => r(false), 50)),
      ]);
      if (!settled) {
        blocked = true;
        break;
      }
      accepted += 256;
      queued += 256;
    }
    assert.ok(blocked, "a write should wait once the queue is full");
    // One chunk in the sink plus at most the high-water mark queued.
    assert.ok(accepted <= 256 + 1024, `accepted ${accepted} bytes`);
    assert.deepEqual(pulls, [256]);
    await stream.close(new Error("stop"));
  });

  it("DuplexStream.closeWrite half-closes: the peer sees the end and can still write back", async () => {
    const [client, server] = pair();
    await client.write("question");
    await client.closeWrite();
    assert.equal(client.writableEnded, true);
    assert.equal(dec.decode((await server.read(100))!), "question");
    assert.equal(await server.readPartial(), null);
    await server.write("answer");
    await server.closeWrite();
    assert.equal(dec.decode((await client.read(100))!), "answer");
    assert.equal(await client.readPartial(), null);
  });

  it("DuplexStream.write after closeWrite rejects with a TypeError", async () => {
    const [client] = pair();
    await client.closeWrite();
    await assert.rejects(client.write("x"), TypeError);
  });
});

/**
 * A DuplexStream over `input` and an output whose writes never settle (a
 * socket sink waiting for "drain"), high-water mark 1; `output` is its
 * controller (set by the constructor's start), to error it.
 */
function overStalledOutput(input: UnderlyingDefaultSource<Uint8Array>) {
  let controller!: WritableStreamDefaultController;
  const duplex = new DuplexStream(
    new ReadableStream<Uint8Array>(input),
    new WritableStream<Uint8Array>({
      start: (c) => void (controller = c),
      write: () => new Promise(() => {}),
    }, { highWaterMark: 1 }),
  );
  return { duplex, output: controller };
}

describe("DuplexStream errors and aborts", () => {
  it("an output that errors with a write in flight that never settles fails pending reads and cancels the input (they hung)", async () => {
    // A socket sink that waits for "drain" and errors itself when the
    // socket closes: its write never settles.
    let cancelled: unknown;
    const { duplex, output } = overStalledOutput({
      pull() {},
      cancel(reason) {
        cancelled = reason;
      },
    });
    await duplex.write("a");
    const pending: Promise<unknown>[] = [
      duplex.write("b"),
      duplex.write("c"),
      duplex.readPartial(),
    ];
    await new Promise((resolve) => setTimeout(resolve, 10));
    const boom = new Error("the socket closed");
    output.error(boom);
    for (const p of pending) {
      await assert.rejects(deadline(p, 2_000, "a pending call"), boom);
    }
    assert.equal(cancelled, boom);
    await assert.rejects(duplex.write("d"), boom);
  });

  it("a read pending behind a write in flight that never settles rejects when the output errors, and closeWrite says the error (the read hung, the close seemed to succeed)", async () => {
    const { duplex, output } = overStalledOutput({ pull() {} });
    await duplex.write("request");
    const read = duplex.readPartial();
    await new Promise((resolve) => setTimeout(resolve, 10));
    const boom = new Error("the socket closed");
    output.error(boom);
    await assert.rejects(deadline(read, 2_000, "the pending read"), boom);
    await assert.rejects(duplex.closeWrite(), boom);
  });

  it("DuplexStream.close with a reason rejects the pending read and aborts the peer", async () => {
    const [client, server] = pair();
    const pending = client.readPartial();
    const reason = new Error("client gave up");
    await client.close(reason);
    await assert.rejects(pending, reason);
    await assert.rejects(client.write("x"), reason);
    // The peer's read sees the abort of its input.
    await assert.rejects(
      deadline(server.readPartial(), 2000, "peer read"),
      reason,
    );
  });

  it("DuplexStream aborts its output when its input errors", async () => {
    const reason = new Error("input broke");
    const input = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.error(reason);
      },
    });
    const aborted = Promise.withResolvers<unknown>();
    const output = new WritableStream<Uint8Array>({
      abort: (r) => aborted.resolve(r),
    });
    const stream = new DuplexStream(input, output);
    await assert.rejects(stream.readPartial(), reason);
    assert.equal(await deadline(aborted.promise, 2000, "abort"), reason);
    await assert.rejects(stream.write("x"), reason);
  });

  it("DuplexStream cancels its input when its output errors", async () => {
    const reason = new Error("consumer went away");
    const cancelled = Promise.withResolvers<unknown>();
    const input = new ReadableStream<Uint8Array>({
      cancel: (r) => cancelled.resolve(r),
    });
    const output = new TransformStream<Uint8Array, Uint8Array>();
    const stream = new DuplexStream(input, output.writable);
    const pendingRead = stream.readPartial();
    await output.readable.cancel(reason);
    assert.equal(await deadline(cancelled.promise, 2000, "cancel"), reason);
    await assert.rejects(pendingRead);
    await assert.rejects(stream.write("x"));
  });

  it("DuplexStream.close without a reason closes the output and cancels the input", async () => {
    const cancelled = Promise.withResolvers<unknown>();
    const input = new ReadableStream<Uint8Array>({
      cancel: (r) => cancelled.resolve(r),
    });
    const output = new TransformStream<Uint8Array, Uint8Array>();
    const stream = new DuplexStream(input, output.writable);
    const written = Array.fromAsync(output.readable);
    await stream.write("bye");
    await stream.close();
    assert.deepEqual((await written).map((c) => dec.decode(c)), ["bye"]);
    await deadline(cancelled.promise, 2000, "cancel");
    await assert.rejects(stream.readPartial(), TypeError);
  });
});

describe("DuplexStream as a { readable, writable } pair", () => {
  it("DuplexStream works in pipeThrough: the source is written, the input read", async () => {
    // The duplex's output feeds a transform that upper-cases, whose output
    // is the duplex's input: pipeThrough(duplex) is a round trip.
    const upper = new TransformStream<Uint8Array, Uint8Array>({
      transform: (chunk, c) =>
        c.enqueue(enc.encode(dec.decode(chunk).toUpperCase())),
    });
    const duplex = new DuplexStream(upper.readable, upper.writable);
    const out = ReadableStream.from([enc.encode("ab"), enc.encode("cd")])
      .pipeThrough(duplex);
    const chunks = await deadline(Array.fromAsync(out), 5_000, "pipeThrough");
    assert.equal(chunks.map((c) => dec.decode(c)).join(""), "ABCD");
    assert.equal(duplex.writableEnded, true);
  });

  it("DuplexStream.readable and .writable are the same object on every access", () => {
    const duplex = reading([]);
    assert.equal(duplex.readable, duplex.readable);
    assert.equal(duplex.writable, duplex.writable);
  });

  it("DuplexStream.readable pulls only when read (no read-ahead)", async () => {
    let pulls = 0;
    const input = new ReadableStream<Uint8Array>({
      pull(c) {
        pulls++;
        c.enqueue(enc.encode("x"));
      },
    }, { highWaterMark: 0 });
    const duplex = new DuplexStream(input, new WritableStream());
    const reader = duplex.readable.getReader();
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(pulls, 0);
    await reader.read();
    assert.equal(pulls, 1);
    await reader.read();
    assert.equal(pulls, 2);
  });

  it("DuplexStream mixes styles: method reads and readable pulls share one order", async () => {
    const duplex = reading(["a", "b", "c", "d"].map((s) => enc.encode(s)));
    const reader = duplex.readable.getReader();
    assert.equal(dec.decode((await duplex.readPartial())!), "a");
    assert.equal(dec.decode((await reader.read()).value!), "b");
    assert.equal(dec.decode((await duplex.read(1))!), "c");
    assert.equal(dec.decode((await reader.read()).value!), "d");
    assert.equal((await reader.read()).done, true);
    assert.equal(await duplex.readPartial(), null);
  });

  it("DuplexStream mixes styles: write() and writable writes arrive in order", async () => {
    const [a, b] = pair(1024);
    const writer = a.writable.getWriter();
    await a.write("1");
    await writer.write(enc.encode("2"));
    await a.write("3");
    await writer.close();
    assert.equal(a.writableEnded, true);
    let text = "";
    for await (const chunk of b) text += dec.decode(chunk);
    assert.equal(text, "123");
  });

  it("DuplexStream.readable cancel cancels the input only; the output stays writable", async () => {
    let cancelled: unknown;
    const input = new ReadableStream<Uint8Array>({
      cancel: (reason) => void (cancelled = reason),
    });
    const output = new TransformStream<Uint8Array, Uint8Array>();
    const duplex = new DuplexStream(input, output.writable);
    const pending = duplex.readPartial();
    await duplex.readable.cancel("done reading");
    assert.equal(cancelled, "done reading");
    assert.equal(await pending, null);
    await duplex.write("still");
    await duplex.closeWrite();
    const chunks = await Array.fromAsync(output.readable);
    assert.equal(dec.decode(chunks[0]), "still");
  });

  it("DuplexStream.writable abort closes the whole stream with the reason", async () => {
    let cancelled: unknown;
    const input = new ReadableStream<Uint8Array>({
      cancel: (reason) => void (cancelled = reason),
    });
    const duplex = new DuplexStream(input, new WritableStream());
    const reason = new Error("give up");
    const pending = duplex.readPartial();
    await duplex.writable.abort(reason);
    await assert.rejects(pending, (e) => e === reason);
    assert.equal(cancelled, reason);
    await assert.rejects(duplex.write("x"), (e) => e === reason);
  });

  it("DuplexStream.readable errors when the input errors", async () => {
    const failure = new Error("broken");
    const input = new ReadableStream<Uint8Array>({
      start: (c) => c.error(failure),
    });
    const duplex = new DuplexStream(input, new WritableStream());
    await assert.rejects(
      duplex.readable.getReader().read(),
      (e) => e === failure,
    );
  });
});

describe("DuplexStream's text and arguments", () => {
  it("keeps a U+FEFF that starts a line (text the peer sent, not a byte order mark)", async () => {
    // Before, each line was decoded with a decoder that drops a BOM: every
    // line lost a leading U+FEFF.
    const stream = new DuplexStream(
      ReadableStream.from([new TextEncoder().encode("\uFEFFone\n\uFEFFtwo\n")]),
      new WritableStream(),
    );
    assert.deepEqual(await Array.fromAsync(stream.lines()), [
      "\uFEFFone",
      "\uFEFFtwo",
    ]);
  });

  it("rejects a write of anything but bytes or a string, and a readLine limit that is no count, naming them", async () => {
    // Before, write(42) and write(new ArrayBuffer(3)) resolved and passed
    // the value on, and readLine({ maxLineBytes: NaN }) read without limit.
    const stream = new DuplexStream(
      ReadableStream.from([new TextEncoder().encode("a\n")]),
      new WritableStream(),
    );
    for (
      const [chunk, kind] of [[42, "number"], [
        new ArrayBuffer(3),
        "ArrayBuffer",
      ]] as const
    ) {
      await assert.rejects(
        stream.write(chunk as unknown as Uint8Array),
        {
          name: "TypeError",
          message:
            `Cannot write: the chunk must be a Uint8Array or a string, got ${kind}`,
        },
      );
    }
    for (const bad of [NaN, Infinity, -1]) {
      await assert.rejects(
        stream.readLine({ maxLineBytes: bad }),
        (error: unknown) =>
          error instanceof RangeError &&
          error.message ===
            `Cannot read line: maxLineBytes must be a non-negative integer, got ${bad}`,
      );
    }
    assert.equal(await stream.readLine(), "a");
  });
});

describe("DuplexStream.readLine keeps a long line's bytes, not its chunks' buffers", () => {
  it("2,000 one-byte chunks, each viewing a 64 KiB buffer of its own, then the line's end", async () => {
    // A body read under Deno gets a 64 KiB buffer per read: a line
    // trickled a byte per chunk was kept as views until its end (up to
    // maxLineBytes, 64 KiB of them: 4 GiB).
    const views = new WatchedViews(65536);
    let sent = 0;
    let release!: () => void;
    const ended = new Promise<void>((resolve) => release = resolve);
    const readable = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent === 2_000) {
          await ended;
          controller.enqueue(new TextEncoder().encode("\n"));
          return controller.close();
        }
        sent++;
        controller.enqueue(views.view());
      },
    }, { highWaterMark: 0 });
    const stream = new DuplexStream(readable, new WritableStream());
    const line = stream.readLine();
    while (sent < 2_000) await new Promise((resolve) => setTimeout(resolve, 5));
    const kept = await views.alive();
    release();
    assert.equal(await deadline(line, 5_000, "the line"), "a".repeat(2_000));
    assert.ok(kept <= 2, `${kept} of 2000 64 KiB buffers kept`);
  });
});
