// What one small upload costs the server in process, apart from the
// network: `createUploadHandler` (its defaults, and with every per-chunk
// stage turned off) against the handler a user would write instead (a read
// loop that drops the bytes) and two bare pipe hops, each given a fresh
// 1 KiB Request with its Content-Length, one chunk.
//
//   deno bench --allow-env=BENCH_SMOKE bench/upload_request_bench.ts
//
// Not part of `deno task bench` (docs/performance.md, "What one upload costs
// in process").

import { createUploadHandler } from "../lib/http/upload_handler.ts";
import { bench, type BenchCase } from "./_bench_options.ts";

// A fixed count, warmed up first: a case of CASE_MS (_bench_options.ts) is
// a few hundred requests here, too few for the compilers to finish and for
// a steady figure (5-12x against 4-5x from one run to the next).
const N = 5_000;
const cases: BenchCase[] = [];
const add = (definition: BenchCase) => cases.push(definition);

const BYTES = 1024;
const body = new Uint8Array(BYTES);

function request(): Request {
  return new Request("http://localhost/upload", {
    method: "POST",
    body: ReadableStream.from([body]),
    headers: { "content-length": String(BYTES) },
    duplex: "half",
  } as RequestInit);
}

const sink = () => new WritableStream<Uint8Array>();
const defaults = createUploadHandler({ sink });
const bare = createUploadHandler({
  sink,
  idleTimeoutMs: 0,
  minBytesPerSecond: 0,
  readAheadBytes: 0,
});

async function check(response: Response): Promise<void> {
  if (response.status !== 201) {
    throw new Error(`Upload: ${response.status} ${await response.text()}`);
  }
}

add({
  name: `a read loop that drops the bytes [${BYTES} B]`,
  group: "upload request",
  baseline: true,
  async fn() {
    const reader = request().body!.getReader();
    let bytes = 0;
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      bytes += r.value.byteLength;
    }
    if (bytes !== BYTES) throw new Error("wrong length");
  },
});

add({
  name: `two bare pipe hops into a sink [${BYTES} B]`,
  group: "upload request",
  async fn() {
    await request().body!
      .pipeThrough(new TransformStream({ transform: (c, k) => k.enqueue(c) }))
      .pipeThrough(new TransformStream())
      .pipeTo(sink());
  },
});

add({
  name: `createUploadHandler, defaults [${BYTES} B]`,
  group: "upload request",
  async fn() {
    await check(await defaults(request()));
  },
});

add({
  name:
    `createUploadHandler, no idle timer, minimum rate or read-ahead [${BYTES} B]`,
  group: "upload request",
  async fn() {
    await check(await bare(request()));
  },
});

for (const definition of cases) {
  if (Deno.env.get("BENCH_SMOKE") === "1") await bench(definition);
  else Deno.bench({ ...definition, n: N, warmup: N });
}
