// A gzip bomb in one RPC message: decompression stops at maxMessageBytes
// before the memory is spent. Measured in a child process (its own peak
// RSS, VmHWM) under the runtime running the tests (Deno or Bun): one
// message of about 1 MiB that inflates to 1 GiB (ratio about 1000) must
// fail with RESOURCE_EXHAUSTED and raise peak RSS by at most
// MAX_GROWTH_BYTES. Written whole into Deno's DecompressionStream it came
// out as one 1 GiB chunk (RSS 48 MiB -> 2.1 GiB); fed in 4 KiB slices, at
// most maxMessageBytes (4 MiB) plus one slice's expansion (about 4 MiB) is
// held, plus the runtime's own buffers.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { createGzip, gzipSync } from "node:zlib";
import {
  createClient,
  createRpcHandler,
  defineService,
  implementService,
  type MessageType,
  RpcError,
} from "../lib/rpc/mod.ts";
import { encodeFrame } from "../lib/rpc/wire/_frame.ts";
import { MapStream } from "../lib/streams/mod.ts";
import { answeringGzip, deadline, runtime } from "./_helpers.ts";
import { concat } from "./_fuzz.ts";

/** The documented bound on peak RSS growth for the bomb. */
const MAX_GROWTH_BYTES = 128 * 1024 * 1024;
const INFLATED_BYTES = 1024 * 1024 * 1024;

const dir = join(import.meta.dirname ?? ".", "..", ".tmp");
const bombPath = join(dir, "rpc-bomb-1gib.gz");

/** gzip of 1 GiB of zeros (about 1 MiB), made once and kept in .tmp. */
async function makeBomb(): Promise<void> {
  if (existsSync(bombPath)) return;
  await mkdir(dir, { recursive: true });
  const gzip = createGzip({ level: 9 });
  const parts: Uint8Array[] = [];
  gzip.on("data", (chunk: Uint8Array) => parts.push(chunk));
  const ended = new Promise((resolve, reject) => {
    gzip.once("end", resolve);
    gzip.once("error", reject);
  });
  const zeros = new Uint8Array(1024 * 1024);
  for (let i = 0; i < INFLATED_BYTES / zeros.byteLength; i++) {
    if (!gzip.write(zeros)) {
      await new Promise((resolve) => gzip.once("drain", resolve));
    }
  }
  gzip.end();
  await ended;
  const tmp = `${bombPath}.${process.pid}`;
  await writeFile(tmp, Buffer.concat(parts));
  await rename(tmp, bombPath);
}

function runChild(): Promise<string> {
  const child = join(import.meta.dirname ?? ".", "_rpc_bomb_child.ts");
  const args = runtime === "deno"
    ? ["run", "--allow-all", child, bombPath]
    : [child, bombPath];
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      args,
      { maxBuffer: 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`child failed: ${stderr}`, { cause: error }));
        } else resolve(stdout);
      },
    );
  });
}

describe("gzip bomb in one RPC message", () => {
  it("fails with RESOURCE_EXHAUSTED and peak RSS grows at most 128 MiB", {
    skip: process.platform !== "linux" || runtime === "node",
  }, async () => {
    await deadline(makeBomb(), 120_000, "making the bomb");
    const out = await deadline(runChild(), 120_000, "the child");
    const { code, baseline, peak } = JSON.parse(out.trim().split("\n").at(-1)!);
    assert.equal(code, "resource_exhausted");
    const growth = peak - baseline;
    assert.ok(
      growth <= MAX_GROWTH_BYTES,
      `peak RSS grew by ${(growth / 2 ** 20).toFixed(0)} MiB (bound ${
        MAX_GROWTH_BYTES / 2 ** 20
      } MiB)`,
    );
  });
});

// Many gzip messages in one body chunk: 1 MiB of zeros gzips to about 1
// KiB, so a 48 KiB chunk held 48 MiB of messages, all decompressed at once
// before a reader took the first (60 KB on the wire held 56 MiB of a
// server's memory per call). Each side now decompresses a chunk's messages
// a batch at a time (64 KiB, at least one message), as its reader takes
// them; counted here by the codec's decodes.
describe("many gzip messages in one body chunk", () => {
  const MESSAGE_BYTES = 1024 * 1024;
  const COUNT = 48;
  // Frame i: 1 MiB whose first byte is i, gzipped.
  const frames = Array.from({ length: COUNT }, (_, i) => {
    const message = new Uint8Array(MESSAGE_BYTES);
    message[0] = i;
    return encodeFrame({ flags: 1, data: gzipSync(message) });
  });
  const chunk = concat(frames);
  // A bidi and a server-streaming service whose messages are the first
  // byte of what came, counting the messages decoded.
  function counted() {
    let decoded = 0;
    const type: MessageType<Uint8Array> = {
      typeName: "test.Counted",
      proto: {
        encode: (bytes) => bytes,
        decode: (bytes) => {
          decoded++;
          return bytes.slice(0, 1);
        },
      },
    };
    return {
      Bidi: defineService("test.v1.Bomb", {
        bidi: { kind: "bidi", input: type, output: type },
      }),
      Stream: defineService("test.v1.Bomb", {
        stream: { kind: "server-streaming", input: type, output: type },
      }),
      decoded: () => decoded,
    };
  }
  // A gRPC-Web request of `chunks`, as a fetch server hands it over.
  function request(chunks: Uint8Array[]): Request {
    return new Request("http://x/test.v1.Bomb/bidi", {
      method: "POST",
      headers: {
        "content-type": "application/grpc-web+proto",
        "grpc-encoding": "gzip",
      },
      body: ReadableStream.from(chunks),
      duplex: "half",
    } as RequestInit);
  }
  const pause = () => new Promise((resolve) => setTimeout(resolve, 100));

  it("a server handler that waits after its first request has one or two decoded", async () => {
    const { Bidi, decoded } = counted();
    const gate = Promise.withResolvers<void>();
    const seen: number[] = [];
    const handler = createRpcHandler(implementService(Bidi, {
      async *bidi(requests) {
        for await (const message of requests) {
          seen.push(message[0]);
          await gate.promise;
        }
        yield new Uint8Array([seen.length]);
      },
    }));
    // The head waits for the handler's first answer, which comes last.
    const responded = handler(request([chunk]));
    await pause();
    assert.ok(
      decoded() <= 2,
      `${decoded()} messages of 1 MiB decoded for a handler waiting on its first`,
    );
    gate.resolve();
    const response = await deadline(responded, 20_000, "the head");
    await deadline(response.arrayBuffer(), 20_000, "the response");
    assert.deepEqual(seen, frames.map((_, i) => i));
  });

  it("a fused handler (the synchronous path) decodes them as its step takes them", async () => {
    const { Bidi, decoded } = counted();
    const gate = Promise.withResolvers<void>();
    const seen: number[] = [];
    const handler = createRpcHandler(implementService(Bidi, {
      bidi: () =>
        new MapStream(async (message: Uint8Array) => {
          seen.push(message[0]);
          if (seen.length > 1) await gate.promise;
          return message;
        }),
    }));
    // The first message alone, so that the head goes out and the rest
    // take the synchronous path.
    const response = await handler(
      request([frames[0], concat(frames.slice(1))]),
    );
    const reader = response.body!.getReader();
    await deadline(reader.read(), 20_000, "the first answer");
    await pause();
    assert.ok(
      decoded() <= 3,
      `${decoded()} messages of 1 MiB decoded for a step waiting on its second`,
    );
    gate.resolve();
    while (!(await deadline(reader.read(), 20_000, "the answers")).done);
    assert.deepEqual(seen, frames.map((_, i) => i));
  });

  it("a client whose response body fails after them still gets all the messages that arrived whole, then the failure", async () => {
    // Before, the frames held back for the reader were dropped once the
    // body failed: 4 of 20 such messages came through.
    const { Stream } = counted();
    const transport = answeringGzip(
      new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(chunk);
          setTimeout(() => controller.error(new Error("cut")), 50);
        },
      }),
    );
    const call = createClient(Stream, transport).stream(new Uint8Array(1));
    const seen: number[] = [];
    const first = await deadline(call.receive(), 20_000, "the first message");
    seen.push((first.value as Uint8Array)[0]);
    await new Promise((resolve) => setTimeout(resolve, 200)); // the body has failed
    await assert.rejects(
      (async () => {
        for await (const message of call) seen.push(message[0]);
      })(),
      (error: unknown) =>
        error instanceof RpcError && /cut/.test(String(error)),
    );
    assert.deepEqual(seen, frames.map((_, i) => i));
  });

  it("a client that stops after its first response has one or two decoded", async () => {
    const { Stream, decoded } = counted();
    const end = new Uint8Array([2, 0, 0, 0, 2, 0x7b, 0x7d]); // {}
    const transport = answeringGzip(
      new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(chunk);
          controller.enqueue(end);
          controller.close();
        },
      }),
    );
    const call = createClient(Stream, transport).stream(new Uint8Array(1));
    const seen: number[] = [];
    const first = await deadline(call.receive(), 20_000, "the first message");
    seen.push((first.value as Uint8Array)[0]);
    await pause();
    assert.ok(
      decoded() <= 2,
      `${decoded()} messages of 1 MiB decoded for a reader that stopped`,
    );
    for await (const message of call) seen.push(message[0]);
    assert.deepEqual(seen, frames.map((_, i) => i));
  });
});
