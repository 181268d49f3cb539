// One event broadcast to many event streams, in process: the CPU per feed
// per event of sseResponse's body, of the same source piped through an
// SseEncoderStream (as sseResponse did before 2026-12-07, less the stream
// it read its source through), and of the bytes made and enqueued by hand
// (the floor). Each feed's source is a ReadableStream the broadcaster
// enqueues into, and a read waits on every body, as a server's does. Not
// part of `deno task bench`:
//
//   taskset -c 1 deno run -A bench/sse_feeds_bench.ts [feeds] [rounds]
//   taskset -c 1 bun bench/sse_feeds_bench.ts [feeds] [rounds]
import process from "node:process";
import {
  SseEncoderStream,
  type SseEvent,
  sseResponse,
} from "../lib/http/mod.ts";

const feeds = Number(process.argv[2] ?? 5000);
const rounds = Number(process.argv[3] ?? 20);
const encoder = new TextEncoder();

interface Feed {
  push(event: SseEvent): void;
  body: ReadableStream<Uint8Array>;
  /** Whether the body opens with a comment (sseResponse's), read first. */
  opens?: boolean;
}

function pushSource<T>(): { stream: ReadableStream<T>; push(chunk: T): void } {
  let controller!: ReadableStreamDefaultController<T>;
  const stream = new ReadableStream<T>({ start: (c) => void (controller = c) });
  return { stream, push: (chunk) => controller.enqueue(chunk) };
}

const kinds: Record<string, () => Feed> = {
  "by hand (bytes enqueued)": () => {
    const { stream, push } = pushSource<Uint8Array>();
    return {
      body: stream,
      push: (e) => push(encoder.encode(`id: ${e.id}\ndata: ${e.data}\n\n`)),
    };
  },
  "piped through SseEncoderStream": () => {
    const { stream, push } = pushSource<SseEvent>();
    return { body: stream.pipeThrough(new SseEncoderStream()), push };
  },
  "sseResponse": () => {
    const { stream, push } = pushSource<SseEvent>();
    return { body: sseResponse(stream).body!, push, opens: true };
  },
};

/** The median µs per feed per event of one kind, after three rounds. */
async function measure(make: () => Feed): Promise<number> {
  const all = Array.from({ length: feeds }, make);
  const readers = all.map((feed) => feed.body.getReader());
  // Each round's read is then that round's event.
  await Promise.all(
    readers.filter((_, i) => all[i].opens).map((reader) => reader.read()),
  );
  const times: number[] = [];
  for (let round = 0; round < rounds + 3; round++) {
    const event = { id: String(round), data: `t=${performance.now()}` };
    const started = performance.now();
    const reads = readers.map((reader) => reader.read());
    for (const feed of all) feed.push(event);
    const results = await Promise.all(reads);
    if (results.some((r) => r.done)) throw new Error("A feed ended");
    if (round >= 3) times.push(performance.now() - started);
  }
  await Promise.all(readers.map((reader) => reader.cancel()));
  times.sort((a, b) => a - b);
  return (times[times.length >> 1] * 1000) / feeds;
}

console.log(
  `${feeds} feeds, ${rounds} events (medians, µs per feed per event)`,
);
for (let repetition = 0; repetition < 3; repetition++) {
  const row: string[] = [];
  for (const [name, make] of Object.entries(kinds)) {
    row.push(`${name}: ${(await measure(make)).toFixed(1)}`);
  }
  console.log(row.join(", "));
}
process.exit(0);
