// The library's own JS per lockstep round trip, without sockets: the
// StreamingCalcService client and server in one process, joined by
// createUniversalHandlerClient, which hands the client's request to the
// server's UniversalHandler and its response back (native gRPC framing, no
// node:http2, no HTTP). What a round trip over loopback costs beyond this
// is the transport and the glue (bench/run.ts's lockstep rows, and
// bench/h2_split_ab.ts).
//
//   deno run -A bench/inproc_lockstep.ts [round trips, default 40000]
//   bun bench/inproc_lockstep.ts [round trips]
//
// Pin it to one CPU (taskset -c 1) for figures that repeat. Under Bun, the
// response chunks here reach the decoder without the glue's copy into the
// shared slab (lib/runtime/_node_streams.ts), so each pays Bun's first
// `subarray` of a small typed array (about 15% of the samples).

import process from "node:process";
import {
  createClient,
  createGrpcTransport,
  createUniversalHandler,
  createUniversalHandlerClient,
} from "../lib/rpc/mod.ts";
import {
  serverOptions,
  streamingCalc,
  StreamingCalcService,
} from "../examples/streaming_calc.ts";
import { lockstepTimes } from "./_rpc.ts";

const n = Number(process.argv[2] ?? 40_000);
const handler = createUniversalHandler(streamingCalc, serverOptions);
const transport = createGrpcTransport({
  baseUrl: "http://in-process",
  httpClient: createUniversalHandlerClient(handler),
});
const client = createClient(StreamingCalcService, transport);

// Warm-up: half as many round trips, as the bench's lockstep is warm.
await lockstepTimes(client, Math.max(1, n >> 1));
for (let run = 1; run <= 3; run++) {
  const start = performance.now();
  const times = (await lockstepTimes(client, n)).sort((a, b) => a - b);
  const us = (ms: number) => (ms * 1000).toFixed(2);
  console.log(
    `run ${run}: ${
      us((performance.now() - start) / n)
    } µs per round trip (mean), p50 ${us(times[n >> 1])} µs, p99 ${
      us(times[Math.floor(n * 0.99)])
    } µs`,
  );
}
