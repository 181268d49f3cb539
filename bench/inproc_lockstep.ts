// The library's own JS per lockstep round trip, without sockets: the
// StreamingCalcService client and server in one process. Three kinds:
//
// - universal (the default): joined by createUniversalHandlerClient, which
//   hands the client's request to the server's UniversalHandler and its
//   response back (native gRPC framing, no node:http2, no HTTP);
// - fetch: the gRPC-Web client over a `fetch` that calls the server's
//   fetch handler (createRpcHandler) directly, as bench/run.ts's HTTP/1.1
//   rows but with no runtime HTTP between them;
// - hand: the same exchange by hand (bench/_by_hand.ts's client and server
//   body) over that same direct `fetch`: what the runtime's streams cost
//   with no library code, to subtract from `fetch`.
//
// What a round trip over loopback costs beyond this is the transport and
// the glue (bench/run.ts's lockstep rows, and bench/h2_split_ab.ts).
//
//   deno run -A bench/inproc_lockstep.ts [round trips, default 40000] [kind]
//   bun bench/inproc_lockstep.ts [round trips] [kind]
//
// Pin it to one CPU (taskset -c 1) for figures that repeat. Under Bun, the
// response chunks of `universal` reach the decoder without the glue's copy
// into the shared slab (lib/runtime/_node_streams.ts), so each pays Bun's
// first `subarray` of a small typed array (about 15% of the samples).

import process from "node:process";
import {
  createClient,
  createGrpcTransport,
  createGrpcWebTransport,
  createRpcHandler,
  createUniversalHandler,
  createUniversalHandlerClient,
} from "../lib/rpc/mod.ts";
import {
  serverOptions,
  streamingCalc,
  StreamingCalcService,
} from "../examples/streaming_calc.ts";
import { lockstepTimes } from "./_rpc.ts";
import { byHandFetchTimes, runningSumsBody } from "./_by_hand.ts";

const n = Number(process.argv[2] ?? 40_000);
const kind = process.argv[3] ?? "universal";

/** A `fetch` that hands each request to `handler` in this process. */
function directFetch(handler: (request: Request) => Promise<Response>) {
  return ((input: RequestInfo | URL, init?: RequestInit) =>
    handler(new Request(input, init))) as typeof fetch;
}

let times: (n: number) => Promise<number[]>;
if (kind === "hand") {
  const fetchImpl = directFetch((request) =>
    Promise.resolve(new Response(runningSumsBody(request.body!)))
  );
  times = (n) => byHandFetchTimes(0, n, fetchImpl);
} else {
  let transport;
  if (kind === "universal") {
    transport = createGrpcTransport({
      baseUrl: "http://in-process",
      httpClient: createUniversalHandlerClient(
        createUniversalHandler(streamingCalc, serverOptions),
      ),
    });
  } else if (kind === "fetch") {
    transport = createGrpcWebTransport({
      baseUrl: "http://in-process",
      fetch: directFetch(createRpcHandler(streamingCalc, serverOptions)),
    });
  } else {
    throw new TypeError(`Cannot measure ${kind}: universal, fetch or hand`);
  }
  const client = createClient(StreamingCalcService, transport);
  times = (n) => lockstepTimes(client, n);
}

// Warm-up: half as many round trips, as the bench's lockstep is warm.
await times(Math.max(1, n >> 1));
for (let run = 1; run <= 3; run++) {
  const start = performance.now();
  const sorted = (await times(n)).sort((a, b) => a - b);
  const us = (ms: number) => (ms * 1000).toFixed(2);
  console.log(
    `run ${run}: ${
      us((performance.now() - start) / n)
    } µs per round trip (mean), p50 ${us(sorted[n >> 1])} µs, p99 ${
      us(sorted[Math.floor(n * 0.99)])
    } µs`,
  );
}
