// Frame encoding and decoding, in process: Int64Value messages (the RPC
// benchmarks' message) per second, and 64 KiB messages in bytes per second.
// Each case states its work per iteration in brackets ([N msg] or [N B]);
// bench/run.ts turns the time per iteration into a rate.
//
//   deno bench --allow-env=BENCH_SMOKE bench/frame_bench.ts

import {
  type Frame,
  FrameDecoder,
  FrameEncoderStream,
  Int64Value,
} from "../lib/rpc/mod.ts";
import { bench } from "./_bench_options.ts";

const COUNT = 10_000;
const values = Array.from({ length: COUNT }, (_, i) => BigInt(i + 1));
const LARGE = 64 * 1024;
const LARGE_COUNT = 64;
const largeFrames: Frame[] = Array.from({ length: LARGE_COUNT }, (_, i) => ({
  flags: 0,
  data: new Uint8Array(LARGE).fill(i),
}));

// ---------- naive baselines: one allocation per step, no coalescing ----------

function naiveVarint(value: bigint): Uint8Array {
  const out: number[] = [0x08];
  let v = BigInt.asUintN(64, value);
  while (v > 0x7fn) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Uint8Array.from(out);
}

function naiveFrame(data: Uint8Array): Uint8Array {
  const frame = new Uint8Array(5 + data.byteLength);
  new DataView(frame.buffer).setUint32(1, data.byteLength);
  frame.set(data, 5);
  return frame;
}

function naiveDecodeVarint(data: Uint8Array): bigint {
  let value = 0n;
  let shift = 0n;
  for (let i = 1; i < data.byteLength; i++) {
    value |= BigInt(data[i] & 0x7f) << shift;
    shift += 7n;
  }
  return BigInt.asIntN(64, value);
}

/** Splits `bytes` into chunks of `size`: how a body arrives. */
function chunked(bytes: Uint8Array, size: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.byteLength; i += size) {
    chunks.push(bytes.slice(i, i + size));
  }
  return chunks;
}

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

/** A naive stream decoder: concatenates the buffer with each chunk. */
function naiveDecode(chunks: Uint8Array[]): Uint8Array[] {
  const messages: Uint8Array[] = [];
  let buffer: Uint8Array<ArrayBuffer> = new Uint8Array(0);
  for (const chunk of chunks) {
    buffer = concat([buffer, chunk]);
    while (buffer.byteLength >= 5) {
      const length = new DataView(buffer.buffer, buffer.byteOffset)
        .getUint32(1);
      if (buffer.byteLength < 5 + length) break;
      messages.push(buffer.slice(5, 5 + length));
      buffer = buffer.slice(5 + length);
    }
  }
  return messages;
}

async function countBytes(
  encoded: ReadableStream<Uint8Array>,
): Promise<number> {
  let bytes = 0;
  for await (const chunk of encoded) bytes += chunk.byteLength;
  return bytes;
}

// ---------- fixtures for decoding ----------

const smallEncoded = concat(
  values.map((v) => naiveFrame(Int64Value.proto.encode(v))),
);
const smallChunks = chunked(smallEncoded, 32 * 1024);
const largeEncoded = concat(largeFrames.map((f) => naiveFrame(f.data)));
const largeChunks = chunked(largeEncoded, 64 * 1024);

// ---------- Int64Value ----------

await bench({
  name: `Int64Value codec, naive varint (number[] per message) [${COUNT} msg]`,
  group: "int64-codec",
  baseline: true,
  fn() {
    let bytes = 0;
    for (const v of values) bytes += naiveVarint(v).byteLength;
    if (bytes === 0) throw new Error("nothing encoded");
  },
});

await bench({
  name: `Int64Value codec, Int64Value.proto.encode [${COUNT} msg]`,
  group: "int64-codec",
  fn() {
    let bytes = 0;
    for (const v of values) bytes += Int64Value.proto.encode(v).byteLength;
    if (bytes === 0) throw new Error("nothing encoded");
  },
});

await bench({
  name:
    `Int64Value encode stream, naive (one chunk per message) [${COUNT} msg]`,
  group: "int64-encode",
  baseline: true,
  async fn() {
    const bytes = await countBytes(
      ReadableStream.from(values).pipeThrough(
        new TransformStream<bigint, Uint8Array>({
          transform(v, controller) {
            controller.enqueue(naiveFrame(naiveVarint(v)));
          },
        }),
      ),
    );
    if (bytes !== smallEncoded.byteLength) throw new Error("wrong size");
  },
});

await bench({
  name:
    `Int64Value encode stream, FrameEncoderStream (coalesced) [${COUNT} msg]`,
  group: "int64-encode",
  async fn() {
    const bytes = await countBytes(
      ReadableStream.from(values).pipeThrough(
        new FrameEncoderStream<bigint>({
          toFrame: (v) => ({ flags: 0, data: Int64Value.proto.encode(v) }),
        }),
      ),
    );
    if (bytes !== smallEncoded.byteLength) throw new Error("wrong size");
  },
});

await bench({
  name: `Int64Value decode, naive (concatenating buffer) [${COUNT} msg]`,
  group: "int64-decode",
  baseline: true,
  fn() {
    let sum = 0n;
    for (const m of naiveDecode(smallChunks)) sum += naiveDecodeVarint(m);
    if (sum === 0n) throw new Error("nothing decoded");
  },
});

await bench({
  name: `Int64Value decode, FrameDecoder + codec [${COUNT} msg]`,
  group: "int64-decode",
  fn() {
    const decoder = new FrameDecoder();
    let sum = 0n;
    for (const chunk of smallChunks) {
      for (const frame of decoder.decode(chunk)) {
        sum += Int64Value.proto.decode(frame.data);
      }
    }
    decoder.finish();
    if (sum === 0n) throw new Error("nothing decoded");
  },
});

// ---------- 64 KiB messages ----------

const LARGE_BYTES = LARGE_COUNT * (LARGE + 5);

await bench({
  name: `64 KiB messages encode, naive (copy per frame) [${LARGE_BYTES} B]`,
  group: "large-encode",
  baseline: true,
  fn() {
    let bytes = 0;
    for (const f of largeFrames) bytes += naiveFrame(f.data).byteLength;
    if (bytes !== LARGE_BYTES) throw new Error("wrong size");
  },
});

await bench({
  name: `64 KiB messages encode, FrameEncoderStream [${LARGE_BYTES} B]`,
  group: "large-encode",
  async fn() {
    const bytes = await countBytes(
      ReadableStream.from(largeFrames).pipeThrough(new FrameEncoderStream()),
    );
    if (bytes !== LARGE_BYTES) throw new Error("wrong size");
  },
});

await bench({
  name:
    `64 KiB messages decode, naive (concatenating buffer) [${LARGE_BYTES} B]`,
  group: "large-decode",
  baseline: true,
  fn() {
    if (naiveDecode(largeChunks).length !== LARGE_COUNT) throw new Error("bad");
  },
});

await bench({
  name: `64 KiB messages decode, FrameDecoder [${LARGE_BYTES} B]`,
  group: "large-decode",
  fn() {
    const decoder = new FrameDecoder();
    let count = 0;
    for (const chunk of largeChunks) count += decoder.decode(chunk).length;
    decoder.finish();
    if (count !== LARGE_COUNT) throw new Error("bad");
  },
});
