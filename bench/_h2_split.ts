// Per-side attribution of the gRPC lockstep over h2c (bench/run.ts's "ours,
// gRPC (h2c, node:http2)" row), one side per process, run by
// bench/h2_split_ab.ts under Deno or Bun:
//
//   _h2_split.ts server <kind>                 prints "READY <port>"
//   _h2_split.ts client <kind> <port> <n> [<serverPid>]
//                                              prints one JSON line
//
// kind: raw (a bare node:http2 gRPC client or server, the sums by hand:
// bench/_by_hand.ts; RAW_DEFER=micro|tick|imm defers its writes), glue
// (serveHttp2 / createHttp2Client with the sums by hand: the runtime glue
// alone) or ours (the whole library, as bench/_rpc.ts's lockstep). The client
// reports the round trips' p50 and p99 (µs) and, per round trip, the main
// thread's CPU of its own process and of the server (from
// /proc/<pid>/schedstat: less moved by a loaded machine than latency).
import fs from "node:fs";
import process from "node:process";
import http2 from "node:http2";
import {
  makeTransport,
  startServer,
  StreamingCalcService,
} from "../examples/streaming_calc.ts";
import { createClient } from "../lib/rpc/mod.ts";
import { lockstepTimes } from "./_rpc.ts";
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
  // The first request opens the connection.
  await run(Math.max(1, n >> 4));
  cpuStart();
  const times = await run(n);
  cpu = cpuEnd(n);
  await client.close();
  return pct(times);
}

function cpuNs(pid: number): number {
  let total = 0;
  // The main thread's time on a CPU, in ns.
  total += Number(
    fs.readFileSync(`/proc/${pid}/task/${pid}/schedstat`, "utf8").split(" ")[0],
  );
  return total;
}
let serverPid = 0;
let cpu0 = [0, 0];
function cpuStart() {
  cpu0 = [cpuNs(process.pid), serverPid ? cpuNs(serverPid) : 0];
}
function cpuEnd(n: number) {
  return {
    cliUs: (cpuNs(process.pid) - cpu0[0]) / n / 1000,
    srvUs: serverPid ? (cpuNs(serverPid) - cpu0[1]) / n / 1000 : 0,
  };
}
let cpu = { cliUs: 0, srvUs: 0 };

function pct(times: number[]) {
  const s = times.slice(Math.ceil(times.length / 100)).sort((a, b) => a - b);
  const p = (q: number) => s[Math.min(s.length - 1, Math.floor(s.length * q))];
  return { p50: p(0.5) * 1000, p99: p(0.99) * 1000, ...cpu };
}

async function rawClient(port: number, n: number) {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  const run = (n: number) => byHandTimes(session, n);
  await run(Math.max(1, n >> 4));
  cpuStart();
  const times = await run(n);
  cpu = cpuEnd(n);
  session.close();
  return pct(times);
}

async function oursClient(port: number, n: number) {
  const { transport, close } = makeTransport(
    "grpc",
    `http://127.0.0.1:${port}`,
  );
  const client = createClient(StreamingCalcService, transport);
  const run = (n: number) => lockstepTimes(client, n);
  await run(Math.max(1, n >> 4));
  cpuStart();
  const times = await run(n);
  cpu = cpuEnd(n);
  await close();
  return pct(times);
}

const [cmd, kind, portArg, nArg, pidArg] = process.argv.slice(2);
serverPid = Number(pidArg ?? 0);
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
