// What one upload costs the server in process, apart from the network:
// `createUploadHandler` (its defaults, and with its idle timer, minimum rate
// and read-ahead turned off) against the handler a user would write instead
// (a read loop that drops the bytes) and two bare pipe hops, each given a
// fresh Request with its Content-Length: 1 KiB in one chunk, and 1 MiB in
// 64 chunks.
//
//   deno bench --allow-env=BENCH_SMOKE bench/upload_request_bench.ts
//
// Not part of `deno task bench` (docs/performance.md, "What one upload costs
// in process").

import { createUploadHandler } from "../lib/http/upload_handler.ts";
import { bench, type BenchCase } from "./_bench_options.ts";

// A fixed count per shape, warmed up first: a case of CASE_MS
// (_bench_options.ts) is a few hundred requests here, too few for the
// compilers to finish and for a steady figure (5-12x against 4-5x from one
// run to the next).
const cases: (BenchCase & { n: number })[] = [];

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

// One chunk of 1 KiB: what each request's own setup costs. 64 chunks of
// 16 KiB (1 MiB): what each chunk costs on top.
for (
  const { count, size, n } of [
    { count: 1, size: 1024, n: 5_000 },
    { count: 64, size: 16 * 1024, n: 500 },
  ]
) {
  const chunks = Array.from({ length: count }, () => new Uint8Array(size));
  const bytes = count * size;
  const shape = count === 1 ? `${size} B` : `${count} x ${size / 1024} KiB`;
  const group = `upload request, ${shape}`;
  const request = () =>
    new Request("http://localhost/upload", {
      method: "POST",
      body: ReadableStream.from(chunks),
      headers: { "content-length": String(bytes) },
      duplex: "half",
    } as RequestInit);
  const add = (name: string, fn: () => Promise<void>, baseline = false) =>
    cases.push({ name: `${name} [${shape}]`, group, baseline, fn, n });

  add("a read loop that drops the bytes", async () => {
    const reader = request().body!.getReader();
    let got = 0;
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      got += r.value.byteLength;
    }
    if (got !== bytes) throw new Error("wrong length");
  }, true);
  add("two bare pipe hops into a sink", async () => {
    await request().body!
      .pipeThrough(new TransformStream({ transform: (c, k) => k.enqueue(c) }))
      .pipeThrough(new TransformStream())
      .pipeTo(sink());
  });
  add("createUploadHandler, defaults", async () => {
    await check(await defaults(request()));
  });
  add(
    "createUploadHandler, no idle timer, minimum rate or read-ahead",
    async () => {
      await check(await bare(request()));
    },
  );
}

for (const { n, ...definition } of cases) {
  if (Deno.env.get("BENCH_SMOKE") === "1") await bench(definition);
  else Deno.bench({ ...definition, n, warmup: n });
}
