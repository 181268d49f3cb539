// Per-side attribution of the lockstep over HTTP/1.1 (bench/run.ts's "ours,
// gRPC-Web (HTTP/1.1 fetch)" rows), one side per process, run by
// bench/h2_split_ab.ts --transport h1 under Deno or Bun (the runtime's own
// fetch and server, as the bench's rows):
//
//   _h1_split.ts server <kind>                 prints "READY <port>"
//   _h1_split.ts client <kind> <port> <n> [<serverPid> [<warmup>]]
//                                              prints one JSON line
//
// kind: hand (bench/_by_hand.ts's fetch handler and fetch client, gRPC-Web
// content type and path so that either side talks to ours), hand+<µs> (as
// hand, spinning that many microseconds more per round trip: before each
// request is sent, or before each request chunk is answered), ours (the whole
// library: the example's server and client over gRPC-Web) and, servers
// only, by elimination between them: codec (the by-hand server decoding
// and answering with the library's frame decoder, Int64Value and the
// example's addInt64 on BigInts) and queue (as codec, its answers through
// the library's response queue: FrameQueue.streamTo and flush). The client
// warms up as bench/run.ts's lockstep does (or with <warmup> round trips)
// and reports as bench/_split.ts measures.
import process from "node:process";
import {
  addInt64,
  makeTransport,
  startServer,
  StreamingCalcService,
} from "../examples/streaming_calc.ts";
import { createClient } from "../lib/rpc/mod.ts";
import { FrameDecoder } from "../lib/rpc/wire/frame_decoder.ts";
import { FrameQueue } from "../lib/rpc/wire/frame_encoder_stream.ts";
import { encodeFrame } from "../lib/rpc/wire/_frame.ts";
import { Int64Value } from "../lib/rpc/wire/int64_value.ts";
import { serve } from "../lib/runtime/serve.ts";
import { busyWait, byHandFetchTimes, runningSumsBody } from "./_by_hand.ts";
import { lockstepTimes } from "./_rpc.ts";
import { measureSplit } from "./_split.ts";

const PATH = "/StreamingCalcService/incrementalSum";
const HEADERS = { "content-type": "application/grpc-web+proto" };

/** The answers by hand with the library's codec, and for `queue` its queue. */
function codecBody(
  requests: ReadableStream<Uint8Array>,
  queue: boolean,
): ReadableStream<Uint8Array> {
  const reader = requests.getReader();
  const decoder = new FrameDecoder();
  // The response queue, for `queue` only.
  const frames = queue
    ? new FrameQueue<bigint>({
      toFrame: (sum) => ({ flags: 0, data: Int64Value.proto.encode(sum) }),
    }, () => {})
    : undefined;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let streaming: { pulled(): void; done: Promise<void> } | undefined;
  const body = new ReadableStream<Uint8Array>(
    queue
      ? {
        pull(c) {
          if (streaming !== undefined) return streaming.pulled();
          streaming = frames!.streamTo(c);
          streaming.done.then(() => c.close(), (error) => c.error(error));
        },
      }
      : { start: (c) => void (controller = c) },
    { highWaterMark: 0 },
  );
  (async () => {
    let sum = 0n;
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      for (const frame of decoder.decode(value)) {
        sum = addInt64(sum, Int64Value.proto.decode(frame.data));
        if (frames) frames.accept(sum);
        else {controller.enqueue(
            encodeFrame({ flags: 0, data: Int64Value.proto.encode(sum) }),
          );}
      }
      frames?.flush();
    }
    if (frames) frames.close();
    else controller.close();
  })().catch((error) => frames ? frames.fail(error) : controller.error(error));
  return body;
}

/** The extra microseconds per round trip of a "hand+<µs>" kind, or 0. */
function extraUs(kind: string): number {
  if (!kind.startsWith("hand+")) return 0;
  const us = Number(kind.slice(5));
  if (!(us > 0)) throw new TypeError(`Cannot run kind ${kind}: hand+<µs>`);
  return us;
}

const [cmd, kind, portArg, nArg, pidArg, warmupArg] = process.argv.slice(2);
// The by-hand side's extra work per round trip, if any (hand+<µs>).
const extraMicros = extraUs(kind);
const extra = extraMicros > 0 ? () => busyWait(extraMicros) : undefined;
const byHand = kind === "hand" || extra !== undefined;

async function server(): Promise<number> {
  if (kind === "ours") return Number((await startServer("grpc-web")).url.port);
  const s = await serve((request) => {
    const body = byHand
      ? runningSumsBody(request.body!, undefined, extra)
      : codecBody(request.body!, kind === "queue");
    return new Response(body, { headers: HEADERS });
  }, { port: 0 });
  return Number(s.url.port);
}

if (cmd === "server") {
  console.log(`READY ${await server()}`);
} else {
  const port = Number(portArg);
  let run: (n: number) => Promise<number[]>;
  if (byHand) {
    // bench/_by_hand.ts's client, to our path with our content type.
    run = (n) =>
      byHandFetchTimes(port, n, fetch, { path: PATH, headers: HEADERS }, extra);
  } else {
    const base = `http://127.0.0.1:${port}`;
    const client = createClient(
      StreamingCalcService,
      makeTransport("grpc-web", base).transport,
    );
    // A by-hand server sends no status at the end: it is not checked.
    run = (n) => lockstepTimes(client, n, false);
  }
  const result = await measureSplit(
    run,
    Number(nArg),
    Number(pidArg ?? 0),
    warmupArg === undefined ? undefined : Number(warmupArg),
  );
  console.log(JSON.stringify(result));
  process.exit(0);
}
