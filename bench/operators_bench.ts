// The generic stream operators (MapStream, ScanStream, reduce), in process,
// against the hand-written code a user would write instead (the baseline):
// the same work per chunk, [N msg] chunks per iteration.
//
//   deno bench --allow-env=BENCH_SMOKE bench/operators_bench.ts

import { MapStream, reduce, ScanStream } from "../lib/streams/mod.ts";
import { bench } from "./_bench_options.ts";

const COUNT = 10_000;
const values = Array.from({ length: COUNT }, (_, i) => BigInt(i + 1));
const expected = BigInt(COUNT) * BigInt(COUNT + 1) / 2n;

const add = (a: bigint, b: bigint) => a + b;

async function drain<T>(stream: ReadableStream<T>): Promise<T | undefined> {
  let last: T | undefined;
  for await (const value of stream) last = value;
  return last;
}

await bench({
  name: `reduce, hand-written read loop [${COUNT} msg]`,
  group: "reduce",
  baseline: true,
  async fn() {
    const reader = ReadableStream.from(values).getReader();
    let sum = 0n;
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      sum = add(sum, r.value);
    }
    if (sum !== expected) throw new Error("wrong sum");
  },
});

await bench({
  name: `reduce() [${COUNT} msg]`,
  group: "reduce",
  async fn() {
    const sum = await reduce(ReadableStream.from(values), add, 0n);
    if (sum !== expected) throw new Error("wrong sum");
  },
});

await bench({
  name: `scan, hand-written TransformStream [${COUNT} msg]`,
  group: "scan",
  baseline: true,
  async fn() {
    let sum = 0n;
    const last = await drain(
      ReadableStream.from(values).pipeThrough(
        new TransformStream<bigint, bigint>({
          transform(value, controller) {
            sum = add(sum, value);
            controller.enqueue(sum);
          },
        }),
      ),
    );
    if (last !== expected) throw new Error("wrong sum");
  },
});

await bench({
  name: `ScanStream [${COUNT} msg]`,
  group: "scan",
  async fn() {
    const last = await drain(
      ReadableStream.from(values).pipeThrough(new ScanStream(add, 0n)),
    );
    if (last !== expected) throw new Error("wrong sum");
  },
});

await bench({
  name: `map, hand-written TransformStream [${COUNT} msg]`,
  group: "map",
  baseline: true,
  async fn() {
    const last = await drain(
      ReadableStream.from(values).pipeThrough(
        new TransformStream<bigint, bigint>({
          transform(value, controller) {
            controller.enqueue(value * 2n);
          },
        }),
      ),
    );
    if (last !== BigInt(COUNT) * 2n) throw new Error("wrong value");
  },
});

await bench({
  name: `MapStream [${COUNT} msg]`,
  group: "map",
  async fn() {
    const last = await drain(
      ReadableStream.from(values).pipeThrough(
        new MapStream((value: bigint) => value * 2n),
      ),
    );
    if (last !== BigInt(COUNT) * 2n) throw new Error("wrong value");
  },
});
