// Per-side attribution of the gRPC lockstep over h2c (bench/run.ts's "ours,
// gRPC (h2c, node:http2)" row), one side per process, run by
// bench/h2_split_ab.ts under Deno or Bun:
//
//   _h2_split.ts server <kind>                 prints "READY <port>"
//   _h2_split.ts client <kind> <port> <n> [<serverPid> [<warmup>]]
//                                              prints one JSON line
//
// kind: raw (a bare node:http2 gRPC client or server, the sums by hand:
// bench/_by_hand.ts; RAW_DEFER=micro|tick|imm defers its writes), glue
// (serveHttp2 / createHttp2Client with the sums by hand: the runtime glue
// alone) or ours (the whole library, as bench/_rpc.ts's lockstep). The client
// warms up as bench/run.ts's lockstep does (or with <warmup> round trips)
// and reports the round trips' p50 and p99 (µs) and, per round trip, the
// CPU of its own process's threads and of the server's (bench/_split.ts).
import process from "node:process";
import http2 from "node:http2";
import {
  makeTransport,
  startServer,
  StreamingCalcService,
} from "../examples/streaming_calc.ts";
import { createClient } from "../lib/rpc/mod.ts";
import { lockstepTimes } from "./_rpc.ts";
import { measureSplit } from "./_split.ts";
import { createHttp2Client, serveHttp2 } from "../lib/runtime/grpc_node.ts";
import {
  byHandServer,
  byHandTimes,
  frameFor,
  runningSumsBody,
} from "./_by_hand.ts";

// serveHttp2 with a handler that does only the sums: the glue's cost.
async function glueServer(): Promise<number> {
  const server = await serveHttp2((request) => {
    const trailers = Promise.withResolvers<Headers>();
    const body = runningSumsBody(
      request.body!,
      () => trailers.resolve(new Headers({ "grpc-status": "0" })),
    );
    return Promise.resolve({
      status: 200,
      headers: new Headers({ "content-type": "application/grpc" }),
      body,
      trailers: trailers.promise,
    });
  });
  return server.port;
}

async function glueClient(port: number, n: number) {
  const client = createHttp2Client(`http://127.0.0.1:${port}`);
  const run = async (n: number) => {
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start: (c) => void (controller = c),
    }, { highWaterMark: 0 });
    const response = await client({
      url: `http://127.0.0.1:${port}/StreamingCalcService/incrementalSum`,
      method: "POST",
      headers: new Headers({
        "content-type": "application/grpc",
        te: "trailers",
      }),
      body,
      signal: new AbortController().signal,
    });
    const reader = response.body.getReader();
    const times = new Array<number>(n);
    let sum = 0;
    for (let i = 1; i <= n; i++) {
      sum += i;
      let pending = frameFor(sum).length;
      const t = performance.now();
      controller.enqueue(frameFor(i));
      while (pending > 0) {
        const r = await reader.read();
        if (r.done) throw new Error("ended");
        pending -= r.value.length;
      }
      times[i - 1] = performance.now() - t;
    }
    controller.close();
    while (!(await reader.read()).done);
    await response.trailers;
    return times;
  };
  // The warm-up's first request opens the connection.
  const result = await measureSplit(run, n, serverPid, warmup);
  await client.close();
  return result;
}

async function rawClient(port: number, n: number) {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  const result = await measureSplit(
    (n) => byHandTimes(session, n),
    n,
    serverPid,
    warmup,
  );
  session.close();
  return result;
}

async function oursClient(port: number, n: number) {
  const { transport, close } = makeTransport(
    "grpc",
    `http://127.0.0.1:${port}`,
  );
  const client = createClient(StreamingCalcService, transport);
  const result = await measureSplit(
    (n) => lockstepTimes(client, n),
    n,
    serverPid,
    warmup,
  );
  await close();
  return result;
}

const [cmd, kind, portArg, nArg, pidArg, warmupArg] = process.argv.slice(2);
const serverPid = Number(pidArg ?? 0);
// As bench/run.ts's lockstep warms up, unless given.
const warmup = warmupArg === undefined ? undefined : Number(warmupArg);
if (cmd === "server") {
  const port = kind === "raw"
    ? await byHandServer(process.env.RAW_DEFER ?? "")
    : kind === "glue"
    ? await glueServer()
    : Number((await startServer("grpc")).url.port);
  console.log(`READY ${port}`);
} else {
  const r = kind === "raw"
    ? await rawClient(Number(portArg), Number(nArg))
    : kind === "glue"
    ? await glueClient(Number(portArg), Number(nArg))
    : await oursClient(Number(portArg), Number(nArg));
  console.log(JSON.stringify(r));
  process.exit(0);
}
