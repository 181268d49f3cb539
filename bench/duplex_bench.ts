// DuplexStream, in process: readPartial and write against the bare web
// stream reader and writer they wrap (the baseline). Each iteration moves
// [N chunks] through the stream (passed by reference: the cost is per
// chunk, whatever its size); bench/run.ts turns that into chunks per second.
//
//   deno bench --allow-env=BENCH_SMOKE bench/duplex_bench.ts

import { DuplexStream } from "../lib/streams/mod.ts";
import { bench } from "./_bench_options.ts";

const CHUNKS = 1000;
const SIZES = [1024, 64 * 1024];
const fixtures = new Map(
  SIZES.map((size) => [
    size,
    Array.from({ length: CHUNKS }, (_, i) => new Uint8Array(size).fill(i)),
  ]),
);

function source(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i < chunks.length) controller.enqueue(chunks[i++]);
      else controller.close();
    },
  }, { highWaterMark: 0 });
}

function discard(): WritableStream<Uint8Array> {
  return new WritableStream<Uint8Array>({ write() {} });
}

for (const size of SIZES) {
  const chunks = fixtures.get(size)!;
  const total = size * CHUNKS;
  const work = `[${CHUNKS} chunks]`;
  const label = size >= 1024 * 64 ? "64 KiB" : "1 KiB";

  await bench({
    name: `read ${label} chunks, bare reader.read() ${work}`,
    group: `read-${label}`,
    baseline: true,
    async fn() {
      const reader = source(chunks).getReader();
      let bytes = 0;
      for (let r = await reader.read(); !r.done; r = await reader.read()) {
        bytes += r.value.byteLength;
      }
      if (bytes !== total) throw new Error("short read");
    },
  });

  await bench({
    name: `read ${label} chunks, DuplexStream.readPartial() ${work}`,
    group: `read-${label}`,
    async fn() {
      const stream = new DuplexStream(source(chunks), discard());
      let bytes = 0;
      for (
        let c = await stream.readPartial();
        c;
        c = await stream.readPartial()
      ) {
        bytes += c.byteLength;
      }
      if (bytes !== total) throw new Error("short read");
      await stream.close();
    },
  });

  await bench({
    name: `write ${label} chunks, bare writer.write() ${work}`,
    group: `write-${label}`,
    baseline: true,
    async fn() {
      const writer = discard().getWriter();
      for (const chunk of chunks) await writer.write(chunk);
      await writer.close();
    },
  });

  await bench({
    name: `write ${label} chunks, DuplexStream.write() ${work}`,
    group: `write-${label}`,
    async fn() {
      const stream = new DuplexStream(source([]), discard());
      for (const chunk of chunks) await stream.write(chunk);
      await stream.closeWrite();
    },
  });
}
