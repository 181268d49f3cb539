// The wire layer: framing, Int64Value codecs, status and header formats.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { ChunkReader } from "../lib/streams/_chunk_reader.ts";
import {
  Code,
  type Frame,
  FrameDecoder,
  FrameDecoderStream,
  FrameEncoderStream,
  Int64Value,
  RpcError,
} from "../lib/rpc/mod.ts";
import {
  formatTimeout as formatGrpcTimeout,
  parseTimeout as parseGrpcTimeout,
} from "../lib/rpc/protocol_grpc/headers.ts";
import {
  formatTimeout as formatConnectTimeout,
  parseTimeout as parseConnectTimeout,
} from "../lib/rpc/protocol_connect/headers.ts";
import {
  decodeMessage,
  encodeMessage,
  readStatus,
  setStatus,
} from "../lib/rpc/protocol_grpc/trailers.ts";
import {
  decodeTrailerBlock,
  encodeTrailerFrame,
} from "../lib/rpc/protocol_grpc_web/trailers.ts";
import {
  decodeEndStream,
  encodeEndStreamFrame,
} from "../lib/rpc/protocol_connect/end_stream.ts";
import {
  allocBytes,
  COPY_MAX_BYTES,
  MAX_SLAB_REQUEST,
} from "../lib/rpc/wire/_alloc.ts";

const MIN = -(1n << 63n);
const MAX = (1n << 63n) - 1n;

function frameBytes(frames: Frame[]): Uint8Array {
  const total = frames.reduce((n, f) => n + 5 + f.data.byteLength, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const f of frames) {
    out[at] = f.flags;
    new DataView(out.buffer).setUint32(at + 1, f.data.byteLength);
    out.set(f.data, at + 5);
    at += 5 + f.data.byteLength;
  }
  return out;
}

function plain(frames: Frame[]) {
  return frames.map((f) => ({ flags: f.flags, data: [...f.data] }));
}

function splitEvery(bytes: Uint8Array, size: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.byteLength; i += size) {
    chunks.push(bytes.slice(i, i + size));
  }
  return chunks;
}

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const sample: Frame[] = [
  { flags: 0, data: new Uint8Array([8, 1]) },
  { flags: 0, data: new Uint8Array(0) },
  { flags: 1, data: new Uint8Array(300).fill(7) },
  { flags: 0x80, data: new TextEncoder().encode("grpc-status: 0\r\n") },
];

describe("allocBytes", () => {
  it("allocBytes hands out zeroed, disjoint arrays of every size, across slabs", () => {
    // Tiny sizes (an array of their own under Bun), slab sizes and sizes
    // past the slab's limit; enough of them to fill several 64 KiB slabs.
    const sizes = [
      0,
      1,
      11,
      COPY_MAX_BYTES,
      COPY_MAX_BYTES + 1,
      200,
      MAX_SLAB_REQUEST,
      MAX_SLAB_REQUEST + 1,
    ];
    const held: Uint8Array[] = [];
    for (let i = 0; i < 3_000; i++) {
      const n = sizes[i % sizes.length];
      const bytes = allocBytes(n);
      assert.equal(bytes.byteLength, n);
      assert.ok(bytes.every((b) => b === 0), `allocBytes(${n}) not zeroed`);
      bytes.fill(i % 251 + 1);
      held.push(bytes);
    }
    // No array shares a byte with another: each still holds its own fill.
    held.forEach((bytes, i) => {
      assert.ok(
        bytes.every((b) => b === i % 251 + 1),
        `array ${i} overwritten`,
      );
    });
  });
});

describe("FrameDecoder", () => {
  for (const size of [1, 2, 3, 5, 7, 64, 100_000]) {
    it(`FrameDecoder decodes the same frames from ${size}-byte chunks`, () => {
      const decoder = new FrameDecoder();
      const frames = splitEvery(frameBytes(sample), size)
        .flatMap((c) => decoder.decode(c));
      decoder.finish();
      assert.deepEqual(plain(frames), plain(sample));
    });
  }

  it("FrameDecoder's frames are views of the chunk, or copies with copyFrames", () => {
    const chunk = new Uint8Array(5 + 100);
    chunk[4] = 100;
    chunk.fill(9, 5);
    const [viewed] = new FrameDecoder().decode(chunk);
    const [copied] = new FrameDecoder({ copyFrames: true }).decode(chunk);
    chunk.fill(0, 5); // the chunk's buffer reused, as a BYOB reader's is
    assert.deepEqual(viewed.data, new Uint8Array(100));
    assert.deepEqual(copied.data, new Uint8Array(100).fill(9));
  });

  it("ChunkReader reads a byte stream into one reused buffer, other streams as they are", async () => {
    const parts = [new Uint8Array([1, 2, 3]), new Uint8Array([4, 5])];
    const bytes = new ReadableStream({
      type: "bytes",
      pull(controller) {
        const part = parts.shift();
        if (part === undefined) {
          controller.close();
          // A pending BYOB read ends with the view given back empty.
          return controller.byobRequest?.respond(0);
        }
        controller.enqueue(part.slice());
      },
    });
    const reader = new ChunkReader(bytes);
    assert.equal(reader.borrowed, true);
    const first = await reader.read();
    assert.deepEqual(first.value, new Uint8Array([1, 2, 3]));
    const buffer = first.value!.buffer;
    const second = await reader.read();
    assert.deepEqual(second.value, new Uint8Array([4, 5]));
    // The first chunk's buffer went to the second read.
    assert.equal(buffer.byteLength, 0);
    assert.equal((await reader.read()).done, true);

    const plain = new ChunkReader(ReadableStream.from([new Uint8Array([7])]));
    assert.equal(plain.borrowed, false);
    assert.deepEqual((await plain.read()).value, new Uint8Array([7]));
    assert.equal((await plain.read()).done, true);
  });

  /** The sizes of the BYOB views a ChunkReader offers reading `script`. */
  async function offeredFor(script: number[]): Promise<number[]> {
    const offered: number[] = [];
    const bytes = new ReadableStream({
      type: "bytes",
      pull(controller) {
        const request = controller.byobRequest!;
        const view = request.view!;
        offered.push(view.byteLength);
        const want = script.shift();
        if (want === undefined) {
          controller.close();
          return request.respond(0);
        }
        const n = Math.min(want, view.byteLength);
        new Uint8Array(view.buffer, view.byteOffset, n).fill(7);
        request.respond(n);
      },
    });
    const reader = new ChunkReader(bytes);
    while (!(await reader.read()).done);
    return offered;
  }

  it("ChunkReader's buffer starts at 4 KiB, doubles on reads that fill half of it or more, up to 64 KiB, and halves after eight reads in a row that fill an eighth of it (a pending read held 64 KiB per idle call)", async () => {
    const K = 1024;
    const offered = await offeredFor([
      ...Array(6).fill(1 << 20), // bulk: every read fills its buffer
      ...Array(40).fill(100), // then small messages
    ]);
    assert.deepEqual(offered, [
      4 * K,
      8 * K,
      16 * K,
      32 * K,
      64 * K,
      64 * K, // full reads grow it
      ...Array(8).fill(64 * K), // eight small reads halve it
      ...Array(8).fill(32 * K),
      ...Array(8).fill(16 * K),
      ...Array(8).fill(8 * K),
      ...Array(8).fill(4 * K), // down to 4 KiB
      4 * K, // the end
    ]);
  });

  it("ChunkReader keeps its buffer over frames of a 5-byte head and a 16 KiB message (one small read halved it: a new buffer per read)", async () => {
    const script: number[] = [];
    for (let i = 0; i < 50; i++) script.push(5, 16384);
    const offered = await offeredFor(script);
    // Grown to 64 KiB by the first reads, then the same size to the end.
    const settled = offered.slice(8);
    assert.ok(settled.length > 80);
    assert.deepEqual(new Set(settled), new Set([65536]), `${offered}`);
  });

  it("FrameDecoder rejects a length over maxMessageBytes before allocating", () => {
    const decoder = new FrameDecoder({ maxMessageBytes: 4194304 });
    // Only the prefix: length 9000000, no body at all.
    const prefix = new Uint8Array([0, 0, 0x89, 0x54, 0x40]);
    assert.throws(
      () => decoder.decode(prefix),
      (e) =>
        e instanceof RpcError && e.code === Code.ResourceExhausted &&
        e.rawMessage ===
          "Cannot decode frame: length 9000000 exceeds maxMessageBytes 4194304",
    );
  });

  it("FrameDecoder rejects a length over the limit split across chunks", () => {
    const decoder = new FrameDecoder({ maxMessageBytes: 10 });
    assert.deepEqual(decoder.decode(new Uint8Array([0, 0, 0])), []);
    assert.throws(
      () => decoder.decode(new Uint8Array([0, 11])),
      (e) => e instanceof RpcError && e.code === Code.ResourceExhausted,
    );
  });

  it("FrameDecoder accepts a message of exactly maxMessageBytes", () => {
    const decoder = new FrameDecoder({ maxMessageBytes: 3 });
    const frames = decoder.decode(frameBytes([{
      flags: 0,
      data: new Uint8Array([1, 2, 3]),
    }]));
    assert.equal(frames.length, 1);
  });

  it("FrameDecoder.finish rejects input that ends inside a prefix", () => {
    const decoder = new FrameDecoder();
    decoder.decode(new Uint8Array([0, 0, 0]));
    assert.throws(
      () => decoder.finish(),
      (e) =>
        e instanceof RpcError && e.code === Code.InvalidArgument &&
        /3 of 5 prefix bytes/.test(e.rawMessage),
    );
  });

  it("FrameDecoder.finish rejects input that ends inside a message", () => {
    const decoder = new FrameDecoder();
    decoder.decode(new Uint8Array([0, 0, 0, 0, 4, 1, 2]));
    assert.ok(decoder.pending);
    assert.throws(
      () => decoder.finish(),
      (e) => e instanceof RpcError && /2 of 4 message bytes/.test(e.rawMessage),
    );
  });

  it("FrameDecoder returns views of the chunk for whole frames over 64 bytes (no copy), copies of tiny ones", () => {
    const bytes = frameBytes(sample.slice(0, 3));
    const [tiny, empty, large] = new FrameDecoder().decode(bytes);
    // 300 bytes: a view of the chunk.
    assert.equal(large.data.buffer, bytes.buffer);
    assert.equal(large.data.byteOffset, 5 + 2 + 5 + 5);
    assert.deepEqual(large.data, sample[2].data);
    // 2 bytes: a copy (the chunk is never viewed, see frame_decoder.ts).
    assert.notEqual(tiny.data.buffer, bytes.buffer);
    assert.deepEqual(tiny.data, sample[0].data);
    assert.equal(empty.data.byteLength, 0);
    // A copy that later chunks do not overwrite.
    bytes.fill(0);
    assert.deepEqual([...tiny.data], [8, 1]);
  });

  it("FrameDecoder: any split of an encoded stream gives the same frames (property)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            flags: fc.constantFrom(0, 1, 2, 0x80),
            data: fc.uint8Array({ maxLength: 70 }),
          }),
          { maxLength: 20 },
        ),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1 }),
        (frames, sizes) => {
          const bytes = frameBytes(frames);
          const decoder = new FrameDecoder();
          const out: Frame[] = [];
          let at = 0;
          for (let i = 0; at < bytes.byteLength; i++) {
            const size = sizes[i % sizes.length];
            out.push(...decoder.decode(bytes.subarray(at, at + size)));
            at += size;
          }
          decoder.finish();
          assert.deepEqual(plain(out), plain(frames));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("FrameDecoderStream", () => {
  it("FrameDecoderStream decodes a byte stream", async () => {
    const frames = await Array.fromAsync(
      ReadableStream.from(splitEvery(frameBytes(sample), 3))
        .pipeThrough(new FrameDecoderStream()),
    );
    assert.deepEqual(plain(frames), plain(sample));
  });

  it("FrameDecoderStream errors on a truncated stream", async () => {
    const bytes = frameBytes(sample).slice(0, 9);
    await assert.rejects(
      Array.fromAsync(
        ReadableStream.from([bytes]).pipeThrough(new FrameDecoderStream()),
      ),
      (e) => e instanceof RpcError && e.code === Code.InvalidArgument,
    );
  });
});

describe("FrameEncoderStream", () => {
  it("FrameEncoderStream coalesces a burst of small frames into few chunks", async () => {
    const count = 10_000;
    const frames = ReadableStream.from(
      Array.from({ length: count }, (_, i) => ({
        flags: 0,
        data: new Uint8Array([8, i & 0x7f]),
      })),
    );
    const chunks = await Array.fromAsync(
      frames.pipeThrough(new FrameEncoderStream()),
    );
    const total = chunks.reduce((n, c) => n + c.byteLength, 0);
    assert.equal(total, count * 7);
    assert.ok(
      chunks.length <= 20,
      `${chunks.length} chunks for ${count} frames`,
    );
  });

  it("FrameEncoderStream output decodes to the input frames", async () => {
    const chunks = await Array.fromAsync(
      ReadableStream.from(sample).pipeThrough(new FrameEncoderStream()),
    );
    const decoder = new FrameDecoder();
    const frames = chunks.flatMap((c) => decoder.decode(c));
    assert.deepEqual(plain(frames), plain(sample));
  });

  it("FrameEncoderStream flushes a lone frame without waiting for more", async () => {
    const encoder = new FrameEncoderStream();
    const writer = encoder.writable.getWriter();
    const reader = encoder.readable.getReader();
    await writer.write({ flags: 0, data: new Uint8Array([8, 5]) });
    // The writer stays open: the frame must still arrive.
    const { value } = await reader.read();
    assert.deepEqual([...value!], [0, 0, 0, 0, 2, 8, 5]);
    await writer.write({ flags: 0, data: new Uint8Array([8, 6]) });
    assert.deepEqual([...(await reader.read()).value!], [0, 0, 0, 0, 2, 8, 6]);
    await writer.close();
    assert.equal((await reader.read()).done, true);
  });

  it("FrameEncoderStream passes a large frame through without a copy", async () => {
    const data = new Uint8Array(100_000);
    const chunks = await Array.fromAsync(
      ReadableStream.from([{ flags: 0, data }]).pipeThrough(
        new FrameEncoderStream({ chunkBytes: 1024 }),
      ),
    );
    assert.equal(chunks.length, 2);
    assert.deepEqual([...chunks[0]], [0, 0, 1, 0x86, 0xa0]);
    assert.equal(chunks[1], data);
  });

  it("FrameEncoderStream refuses a message over maxMessageBytes", async () => {
    await assert.rejects(
      Array.fromAsync(
        ReadableStream.from([{ flags: 0, data: new Uint8Array(11) }])
          .pipeThrough(new FrameEncoderStream({ maxMessageBytes: 10 })),
      ),
      (e) => e instanceof RpcError && e.code === Code.ResourceExhausted,
    );
  });

  it("FrameEncoderStream applies back-pressure at maxQueueBytes", async () => {
    const encoder = new FrameEncoderStream({ maxQueueBytes: 100 });
    const writer = encoder.writable.getWriter();
    let accepted = 0;
    const writing = (async () => {
      for (let i = 0; i < 100; i++) {
        await writer.write({ flags: 0, data: new Uint8Array(15) });
        accepted++;
      }
      await writer.close();
    })();
    await new Promise((r) => setTimeout(r, 20));
    assert.ok(accepted <= 6, `accepted ${accepted} frames without a reader`);
    const chunks = await Array.fromAsync(encoder.readable);
    await writing;
    assert.equal(chunks.reduce((n, c) => n + c.byteLength, 0), 2000);
  });

  it("FrameEncoderStream's readable holds at most one chunk ahead of a reader that stopped reading", async () => {
    // Frames of one chunk each (chunkBytes 21): once read, chunks are put
    // into the stream as they come, while a read waits or one chunk waits.
    const encoder = new FrameEncoderStream({
      chunkBytes: 21,
      maxQueueBytes: 60,
    });
    const writer = encoder.writable.getWriter();
    const reader = encoder.readable.getReader();
    const first = reader.read();
    let accepted = 0;
    const writing = (async () => {
      for (let i = 0; i < 50; i++) {
        await writer.write({ flags: 0, data: new Uint8Array(15).fill(i) });
        accepted++;
      }
      await writer.close();
    })();
    assert.deepEqual([...(await first).value!], [
      0,
      0,
      0,
      0,
      15,
      ...Array(15).fill(0),
    ]);
    await new Promise((r) => setTimeout(r, 20));
    // The first chunk read, one more in the stream, three in the queue
    // (60 bytes) and the write that waits: no more.
    assert.ok(
      accepted <= 6,
      `accepted ${accepted} frames with no read pending`,
    );
    const rest: number[] = [];
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      for (let at = 0; at < r.value.byteLength; at += 20) {
        rest.push(r.value[at + 5]);
      }
    }
    await writing;
    assert.deepEqual(rest, Array.from({ length: 49 }, (_, i) => i + 1));
  });

  it("FrameEncoderStream serializes with toFrame", async () => {
    const chunks = await Array.fromAsync(
      ReadableStream.from([55n]).pipeThrough(
        new FrameEncoderStream<bigint>({
          toFrame: (v) => ({ flags: 0, data: Int64Value.proto.encode(v) }),
        }),
      ),
    );
    assert.equal(hex(chunks[0]), "00000000020837");
  });

  it("FrameEncoderStream fails writes after its readable is cancelled", async () => {
    const encoder = new FrameEncoderStream();
    const writer = encoder.writable.getWriter();
    await encoder.readable.cancel(new Error("gone"));
    await assert.rejects(
      writer.write({ flags: 0, data: new Uint8Array(1) }),
      /gone/,
    );
  });

  it("FrameEncoderStream errors both sides when its signal aborts", async () => {
    const abort = new AbortController();
    const encoder = new FrameEncoderStream({ signal: abort.signal });
    const writer = encoder.writable.getWriter();
    const reader = encoder.readable.getReader();
    abort.abort(new RangeError("call ended"));
    await assert.rejects(reader.read(), RangeError);
    await assert.rejects(
      writer.write({ flags: 0, data: new Uint8Array(1) }),
      RangeError,
    );
  });
});

describe("Int64Value", () => {
  const encode = Int64Value.proto.encode;
  const decode = Int64Value.proto.decode;

  it("Int64Value encodes 0 as the empty message", () => {
    assert.equal(encode(0n).byteLength, 0);
    assert.equal(decode(new Uint8Array(0)), 0n);
  });

  it("Int64Value encodes small values as a short varint", () => {
    assert.equal(hex(encode(1n)), "0801");
    assert.equal(hex(encode(300n)), "08ac02");
    assert.equal(hex(encode(55n)), "0837");
  });

  it("Int64Value encodes negative values as 10-byte varints", () => {
    assert.equal(hex(encode(-1n)), "08ffffffffffffffffff01");
    assert.equal(hex(encode(MIN)), "0880808080808080808001");
    assert.equal(decode(encode(-1n)), -1n);
  });

  it("Int64Value round-trips the extremes", () => {
    for (const v of [MIN, MIN + 1n, -1n, 0n, 1n, MAX - 1n, MAX, 1n << 32n]) {
      assert.equal(decode(encode(v)), v);
    }
    assert.equal(hex(encode(MAX)), "08ffffffffffffffff7f");
  });

  it("Int64Value refuses values outside int64", () => {
    assert.throws(() => encode(MAX + 1n), RangeError);
    assert.throws(() => encode(MIN - 1n), RangeError);
  });

  it("Int64Value skips unknown fields of every wire type", () => {
    const bytes = new Uint8Array([
      0x10,
      0x96,
      0x01, // field 2 varint
      0x19,
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8, // field 3 fixed64
      0x22,
      2,
      0xaa,
      0xbb, // field 4 length-delimited
      0x2d,
      1,
      2,
      3,
      4, // field 5 fixed32
      0x33,
      0x08,
      0x01,
      0x34, // field 6 group with a nested field
      0x08,
      0x2a, // field 1 = 42
    ]);
    assert.equal(decode(bytes), 42n);
  });

  it("Int64Value takes the last value of a repeated field 1", () => {
    assert.equal(decode(new Uint8Array([0x08, 1, 0x08, 2])), 2n);
  });

  it("Int64Value decodes every varint length and its boundaries exactly", () => {
    // 1 to 7 varint bytes take the decoder's number fast path, 8 to 10 the
    // general one: both must agree with the encoder at each boundary.
    for (let bits = 0; bits <= 63; bits++) {
      const edge = 1n << BigInt(bits);
      for (const value of [edge - 1n, edge, edge + 1n]) {
        if (value <= 0n || value >= 1n << 63n) continue;
        assert.equal(decode(encode(value)), value, `2^${bits} (${value})`);
        assert.equal(decode(encode(-value)), -value, `-(${value})`);
      }
    }
    // A non-minimal varint (a trailing 0x00 byte) is the same value.
    assert.equal(decode(new Uint8Array([0x08, 0x81, 0x80, 0x00])), 1n);
    // A varint that ends before the message: the next field still counts.
    assert.equal(decode(new Uint8Array([0x08, 0x05, 0x08, 0x81, 0x01])), 129n);
  });

  it("Int64Value rejects a truncated varint", () => {
    assert.throws(() => decode(new Uint8Array([0x08, 0x80])), SyntaxError);
  });

  it("Int64Value rejects a varint longer than 10 bytes", () => {
    const bytes = new Uint8Array([0x08, ...new Array(10).fill(0xff), 0x01]);
    assert.throws(() => decode(bytes), /longer than 10 bytes/);
  });

  it("Int64Value rejects a 10th varint byte over 1 (more than 64 bits)", () => {
    const bytes = new Uint8Array([0x08, ...new Array(9).fill(0xff), 0x02]);
    assert.throws(() => decode(bytes), /exceeds 64 bits/);
  });

  it("Int64Value rejects field 1 with the wrong wire type", () => {
    assert.throws(() => decode(new Uint8Array([0x0a, 1, 1])), SyntaxError);
  });

  it("Int64Value rejects a length running past the end", () => {
    assert.throws(() => decode(new Uint8Array([0x12, 5, 1])), SyntaxError);
  });

  it("Int64Value rejects field number 0 and invalid wire types", () => {
    assert.throws(() => decode(new Uint8Array([0x00, 1])), SyntaxError);
    assert.throws(() => decode(new Uint8Array([0x0f, 1])), SyntaxError);
  });

  it("Int64Value JSON is a decimal string", () => {
    const json = Int64Value.json!;
    assert.equal(new TextDecoder().decode(json.encode(MIN)), `"${MIN}"`);
    assert.equal(json.decode(new TextEncoder().encode(`"${MAX}"`)), MAX);
    assert.equal(json.decode(new TextEncoder().encode("12")), 12n);
  });

  it("Int64Value JSON rejects inexact numbers and out-of-range strings", () => {
    const json = Int64Value.json!;
    const te = new TextEncoder();
    assert.throws(
      () => json.decode(te.encode("9223372036854775807")),
      SyntaxError,
    );
    assert.throws(() => json.decode(te.encode(`"${MAX + 1n}"`)), SyntaxError);
    assert.throws(() => json.decode(te.encode(`"1.5"`)), SyntaxError);
    assert.throws(() => json.decode(te.encode(`null`)), SyntaxError);
    assert.throws(() => json.decode(te.encode(`{`)), SyntaxError);
  });

  it("Int64Value round-trips any int64, binary and JSON (property)", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.bigInt({ min: MIN, max: MAX }),
          fc.constantFrom(MIN, MAX, 0n, -1n, 1n, 1n << 53n, -(1n << 53n)),
        ),
        (v) => {
          assert.equal(decode(encode(v)), v);
          assert.equal(Int64Value.json!.decode(Int64Value.json!.encode(v)), v);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("Int64Value decoding arbitrary bytes only ever throws SyntaxError (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 30 }), (bytes) => {
        try {
          const v = decode(bytes);
          assert.ok(v >= MIN && v <= MAX);
        } catch (error) {
          assert.ok(error instanceof SyntaxError, String(error));
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe("headers and status formats", () => {
  it("grpc-timeout parses every unit", () => {
    assert.equal(parseGrpcTimeout("2H"), 7_200_000);
    assert.equal(parseGrpcTimeout("3M"), 180_000);
    assert.equal(parseGrpcTimeout("1S"), 1000);
    assert.equal(parseGrpcTimeout("250m"), 250);
    assert.equal(parseGrpcTimeout("1500u"), 1.5);
    assert.equal(parseGrpcTimeout("2000000n"), 2);
    assert.equal(parseGrpcTimeout(null), undefined);
  });

  it("grpc-timeout rejects more than 8 digits or a bad unit", () => {
    for (const bad of ["123456789m", "10", "10x", "-1S", "1.5S", ""]) {
      assert.throws(
        () => parseGrpcTimeout(bad),
        (e) => e instanceof RpcError && e.code === Code.InvalidArgument,
        bad,
      );
    }
  });

  it("grpc-timeout formats in at most 8 digits", () => {
    assert.equal(formatGrpcTimeout(200), "200000u");
    assert.equal(formatGrpcTimeout(1_000_000), "1000000m");
    assert.equal(formatGrpcTimeout(200_000_000), "200000S");
    for (const ms of [0.5, 1, 99_999, 100_000, 1e9, 1e12]) {
      const text = formatGrpcTimeout(ms);
      assert.match(text, /^\d{1,8}[HMSmun]$/);
      assert.ok(parseGrpcTimeout(text)! >= ms);
    }
  });

  it("connect-timeout-ms parses at most 10 digits", () => {
    assert.equal(parseConnectTimeout("5000"), 5000);
    assert.throws(() => parseConnectTimeout("12345678901"), RpcError);
    assert.throws(() => parseConnectTimeout("1.5"), RpcError);
    assert.equal(formatConnectTimeout(1.2), "2");
  });

  it("grpc-message is percent-encoded UTF-8 and decodes back", () => {
    const text = "Cannot add 1: 100% \u00fcber \n";
    const encoded = encodeMessage(text);
    assert.match(encoded, /^[\x20-\x7e]*$/);
    assert.ok(encoded.includes("100%25"));
    assert.equal(decodeMessage(encoded), text);
    assert.equal(decodeMessage("bad %zz"), "bad %zz");
  });

  it("grpc-status-details-bin round-trips code, message and details", () => {
    const error = new RpcError(Code.OutOfRange, "too big", {
      details: [{
        type: "google.rpc.RetryInfo",
        value: new Uint8Array([1, 2]),
      }],
    });
    const headers = setStatus(new Headers(), {
      error,
      trailers: new Headers({ "x-cost": "7" }),
    });
    assert.equal(headers.get("grpc-status"), "11");
    assert.ok(headers.get("grpc-status-details-bin"));
    const back = readStatus(headers)!;
    assert.equal(back.code, Code.OutOfRange);
    assert.equal(back.rawMessage, "too big");
    assert.deepEqual(back.details, [{
      type: "google.rpc.RetryInfo",
      value: new Uint8Array([1, 2]),
    }]);
    assert.equal(back.metadata.get("x-cost"), "7");
    assert.equal(readStatus(new Headers({ "grpc-status": "0" })), undefined);
    assert.equal(readStatus(new Headers()), null);
    assert.equal(
      readStatus(new Headers({ "grpc-status": "99" }))!.code,
      Code.Unknown,
    );
    // A status of no known code keeps the server's message (it was lost).
    const unknown = readStatus(
      new Headers({ "grpc-status": "17", "grpc-message": "quota%20gone" }),
    )!;
    assert.equal(unknown.code, Code.Unknown);
    assert.equal(
      unknown.rawMessage,
      "Invalid grpc-status: 17, grpc-message: quota gone",
    );
  });

  it("gRPC-Web trailer frames round-trip", () => {
    const frame = encodeTrailerFrame(
      new Headers({ "grpc-status": "4", "grpc-message": "late" }),
    );
    assert.equal(frame[0], 0x80);
    const [decoded] = new FrameDecoder().decode(frame);
    const trailers = decodeTrailerBlock(decoded.data);
    assert.equal(trailers.get("grpc-status"), "4");
    assert.equal(trailers.get("grpc-message"), "late");
  });

  it("Connect EndStreamResponse round-trips errors and metadata", () => {
    const frame = encodeEndStreamFrame({
      error: new RpcError(Code.ResourceExhausted, "quota"),
      trailers: new Headers({ "x-cost": "7" }),
    });
    assert.equal(frame[0], 0x02);
    const [decoded] = new FrameDecoder().decode(frame);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(decoded.data)), {
      error: { code: "resource_exhausted", message: "quota" },
      metadata: { "x-cost": ["7"] },
    });
    const end = decodeEndStream(decoded.data);
    assert.equal(end.error!.code, Code.ResourceExhausted);
    assert.equal(end.trailers.get("x-cost"), "7");
    const ok = decodeEndStream(new TextEncoder().encode("{}"));
    assert.equal(ok.error, undefined);
    // An error with no code is UNKNOWN (the Connect conformance suite's
    // end-stream/missing-code); one that is no object is malformed.
    const codeless = decodeEndStream(new TextEncoder().encode('{"error":{}}'));
    assert.equal(codeless.error!.code, Code.Unknown);
    assert.equal(
      codeless.error!.rawMessage,
      "Cannot read end of stream: its error has no known code",
    );
    assert.throws(
      () => decodeEndStream(new TextEncoder().encode('{"error":5}')),
      (error: unknown) =>
        error instanceof RpcError && error.code === Code.Internal,
    );
  });

  it("RpcError refuses a code that is not an error code, naming it", () => {
    for (const code of [Code.OK, 17, -1, 1.5, NaN]) {
      assert.throws(
        () => new RpcError(code as Code, "x"),
        (error: Error) =>
          error instanceof RangeError &&
          error.message.includes(`code ${code} is not an error code`),
      );
    }
    assert.equal(new RpcError(Code.Unauthenticated).code, 16);
  });

  it("RpcError refuses details that are not { type: string, value: Uint8Array }", () => {
    for (
      const detail of [
        { type: "a.B", value: "abc" },
        { type: "a.B", value: [1, 2] },
        { value: new Uint8Array(1) },
        null,
      ]
    ) {
      assert.throws(
        () => new RpcError(Code.NotFound, "x", { details: [detail as never] }),
        /detail 0 is not \{ type: string, value: Uint8Array \}/,
      );
    }
    const value = new Uint8Array([1]);
    assert.deepEqual(
      new RpcError(Code.NotFound, "x", { details: [{ type: "a.B", value }] })
        .details,
      [{ type: "a.B", value }],
    );
  });

  it("RpcError.from keeps RpcErrors and maps abort reasons", () => {
    const e = new RpcError(Code.Aborted, "x");
    assert.equal(RpcError.from(e), e);
    assert.equal(
      RpcError.from(new DOMException("a", "AbortError")).code,
      Code.Canceled,
    );
    assert.equal(
      RpcError.from(new DOMException("t", "TimeoutError")).code,
      Code.DeadlineExceeded,
    );
    assert.equal(RpcError.from("plain", Code.Internal).code, Code.Internal);
  });
});
