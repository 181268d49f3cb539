// RPC loopback benchmark, one side per process (run by bench/run.ts under
// Deno or Bun):
//
//   _rpc.ts server <impl>                       prints "READY <port>"
//   _rpc.ts client <impl> <port> <methods> <ms> [<lockstepN> [<warmupN>]]
//                                               prints one JSON line: each
//                                               method's result (sum and
//                                               incrementalSum send for
//                                               <ms> milliseconds each)
//
// impl: ours-connect, ours-grpc-web (Connect / gRPC-Web over HTTP/1.1 fetch,
// served by Deno.serve / Bun.serve), ours-grpc (native gRPC over h2c,
// node:http2), connect-es (@connectrpc/connect-node, Connect over h2c) and
// grpc-js (@grpc/grpc-js, gRPC over h2c, with the retry buffer capped as
// RUNTIMES.md advises); ours-connect-h2f and ours-grpc-web-h2f (Connect /
// gRPC-Web over Deno's fetch on h2c, to Deno.serve; Deno only, run by hand:
// bench/h2_lockstep_ab.ts); the floor-* transports' floors (below).
// method: sum, incrementalSum or lockstep.

import process from "node:process";
import http2 from "node:http2";
// The peers (grpc-js, Connect-ES) are imported only by the processes that
// run them (about 0.3 s of each process's start). The library is imported
// by every process, the floors' too (unused there), so that every
// contender holds the same modules: under Deno 2.9.6, with server and
// client on one CPU, a bare node:http2 echo's round trip took 77-89 µs in a
// process holding little and 99-126 µs with a few MiB more of heap (the
// peers, the library imported at run time, or plain objects), V8's GC
// sharing the CPU (docs/performance.md). Under Bun: no difference.
import {
  makeTransport,
  type ProtocolName,
  startServer,
  StreamingCalcService,
} from "../examples/streaming_calc.ts";
import {
  createClient,
  createConnectTransport,
  createGrpcWebTransport,
} from "../lib/rpc/mod.ts";
import {
  byHandFetchTimes,
  byHandHandler,
  byHandServer,
  byHandTimes,
  duplexFetch,
  echoedBody,
  frameFor,
  h2cFetch,
} from "./_by_hand.ts";

export type RpcImpl =
  | "floor-h1"
  | "floor-h1-js"
  | "floor-h2"
  | "floor-h2-sums"
  | "floor-h1-sums"
  | "floor-h2f"
  | "floor-h2f-js"
  | "floor-h2f-sums"
  | "ours-connect"
  | "ours-grpc-web"
  | "ours-connect-h2f"
  | "ours-grpc-web-h2f"
  | "ours-grpc"
  | "connect-es"
  | "grpc-js";
export type RpcMethod = "sum" | "incrementalSum" | "lockstep";

/** What a client run reports. */
export interface RpcResult {
  impl: RpcImpl;
  method: RpcMethod;
  n: number;
  ms: number;
  /** Messages per second (sum, incrementalSum: messages sent by the client). */
  rate?: number;
  /** Lockstep round-trip latency percentiles, in microseconds. */
  p50?: number;
  p99?: number;
  /** The client process's CPU time for the run (user + system). */
  cpuMs?: number;
}

const expectedSum = (n: number) => BigInt(n) * BigInt(n + 1) / 2n;

function check(what: string, got: bigint | string, want: bigint): void {
  if (BigInt(got) !== want) {
    throw new Error(`Cannot trust ${what}: got ${got}, expected ${want}`);
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

// ---------- ours ----------

function ourProtocol(impl: RpcImpl): ProtocolName {
  return impl.startsWith("ours-connect")
    ? "connect"
    : impl.startsWith("ours-grpc-web")
    ? "grpc-web"
    : "grpc";
}

/**
 * The "-h2f" contenders: over Deno's fetch on h2c (an HTTP/2-only
 * Deno.HttpClient, prior knowledge) to Deno.serve, which answers h2c and
 * HTTP/1.1 on one port; Deno only (Bun's fetch speaks HTTP/1.1).
 */
function overH2cFetch(impl: RpcImpl): boolean {
  return impl.endsWith("-h2f") || impl.startsWith("floor-h2f");
}

/** A client process's connection: calls run on it, then it is closed. */
interface Session {
  /**
   * Runs one call: lockstep with `budget` round trips; sum and
   * incrementalSum sending for `budget` milliseconds.
   */
  run(method: RpcMethod, budget: number): Promise<RpcResult>;
  close(): Promise<void>;
}

/**
 * Whether to send another message: true until `ms` milliseconds from now
 * have passed (the clock is read every 64 messages, the same for every
 * implementation). `count` is the number of messages it allowed.
 */
function timeBudget(ms: number): { more(): boolean; readonly count: number } {
  const end = performance.now() + ms;
  let count = 0;
  let open = true;
  return {
    more() {
      if ((count & 63) === 0 && count > 0) open = performance.now() < end;
      if (!open) return false;
      count++;
      return true;
    },
    get count() {
      return count;
    },
  };
}

function oursSession(impl: RpcImpl, port: number): Session {
  const baseUrl = `http://127.0.0.1:${port}`;
  const { transport, close } = overH2cFetch(impl)
    ? {
      transport: ourProtocol(impl) === "connect"
        ? createConnectTransport({ baseUrl, fetch: h2cFetch() })
        : createGrpcWebTransport({ baseUrl, fetch: h2cFetch() }),
      close: () => Promise.resolve(),
    }
    : makeTransport(ourProtocol(impl), baseUrl);
  const client = createClient(StreamingCalcService, transport);
  return {
    run: (method, budget) => oursRun(client, impl, method, budget),
    close,
  };
}

/**
 * `n` lockstep round trips on one incrementalSum call (send one, wait for
 * its reply), every reply checked; each round trip's time in ms. With
 * `checkEnd` false the call's end is not checked (a by-hand server sends no
 * status: bench/_h1_split.ts).
 */
export async function lockstepTimes(
  client: ReturnType<typeof createClient<typeof StreamingCalcService>>,
  n: number,
  checkEnd = true,
): Promise<number[]> {
  const call = client.incrementalSum();
  const times = new Array<number>(n);
  let sum = 0n;
  for (let i = 1; i <= n; i++) {
    const t = performance.now();
    await call.send(BigInt(i));
    const r = await call.receive();
    times[i - 1] = performance.now() - t;
    sum += BigInt(i);
    if (r.done || r.value !== sum) throw new Error("Lockstep: wrong reply");
  }
  await call.complete();
  if (!checkEnd) {
    await call.receive().catch(() => {});
    return times;
  }
  if (!(await call.receive()).done) throw new Error("Lockstep: no end");
  return times;
}

async function oursRun(
  client: ReturnType<typeof createClient<typeof StreamingCalcService>>,
  impl: RpcImpl,
  method: RpcMethod,
  budget: number,
): Promise<RpcResult> {
  const start = performance.now();
  const sending = timeBudget(budget);
  let n = budget;
  if (method === "sum") {
    const call = client.sum();
    for (let i = 1; sending.more(); i++) await call.send(BigInt(i));
    await call.complete();
    n = sending.count;
    check("sum", await call.receive(), expectedSum(n));
  } else if (method === "incrementalSum") {
    const call = client.incrementalSum();
    const sent = (async () => {
      for (let i = 1; sending.more(); i++) await call.send(BigInt(i));
      await call.complete();
      return sending.count;
    })();
    let count = 0;
    let last = 0n;
    for (let r = await call.receive(); !r.done; r = await call.receive()) {
      last = r.value;
      count++;
    }
    n = await sent;
    if (count !== n) throw new Error(`Got ${count} of ${n} responses`);
    check("incrementalSum", last, expectedSum(n));
  } else {
    const times = await lockstepTimes(client, budget);
    return lockstepResult(impl, budget, performance.now() - start, times);
  }
  const ms = performance.now() - start;
  return { impl, method, n, ms, rate: n / ms * 1000 };
}

function lockstepResult(
  impl: RpcImpl,
  n: number,
  ms: number,
  times: number[],
): RpcResult {
  // The first round trips open the connection: leave out the first 1%.
  const sorted = times.slice(Math.ceil(n / 100)).sort((a, b) => a - b);
  return {
    impl,
    method: "lockstep",
    n,
    ms,
    p50: percentile(sorted, 0.5) * 1000,
    p99: percentile(sorted, 0.99) * 1000,
  };
}

// ---------- grpc-js ----------

// deno-lint-ignore no-explicit-any
type AnyCall = any;

async function grpcJsSession(port: number): Promise<Session> {
  const { grpcJsClient } = await import("../tests/_calc_peers.ts");
  const client = grpcJsClient(`127.0.0.1:${port}`);
  return {
    run: (method, budget) => grpcJsRun(client, method, budget),
    close: () => Promise.resolve(client.close()),
  };
}

async function grpcJsRun(
  client: AnyCall,
  method: RpcMethod,
  budget: number,
): Promise<RpcResult> {
  const sending = timeBudget(budget);
  let n = budget;
  // Writes honour back-pressure: write() returning false waits for 'drain'.
  const writeAll = (call: AnyCall) => {
    let i = 1;
    const go = () => {
      while (sending.more()) {
        if (!call.write({ value: String(i++) })) {
          call.once("drain", go);
          return;
        }
      }
      n = sending.count;
      call.end();
    };
    go();
  };
  const start = performance.now();
  if (method === "sum") {
    const value = await new Promise<string>((resolve, reject) => {
      const call = client.sum(
        (error: Error | null, response: { value: string }) =>
          error ? reject(error) : resolve(response.value),
      );
      writeAll(call);
    });
    check("sum", value, expectedSum(n));
  } else if (method === "incrementalSum") {
    const [count, last] = await new Promise<[number, string]>(
      (resolve, reject) => {
        const call = client.incrementalSum();
        let count = 0;
        let last = "0";
        call.on("data", (m: { value: string }) => {
          last = m.value;
          count++;
        });
        call.on("error", reject);
        call.on("end", () => resolve([count, last]));
        writeAll(call);
      },
    );
    if (count !== n) throw new Error(`Got ${count} of ${n} responses`);
    check("incrementalSum", last, expectedSum(n));
  } else {
    const times = new Array<number>(n);
    await new Promise<void>((resolve, reject) => {
      const call = client.incrementalSum();
      let i = 1;
      let t = 0;
      let sum = 0n;
      call.on("data", (m: { value: string }) => {
        times[i - 1] = performance.now() - t;
        sum += BigInt(i);
        if (BigInt(m.value) !== sum) {
          reject(new Error("Lockstep: wrong reply"));
        }
        if (++i > n) call.end();
        else {
          t = performance.now();
          call.write({ value: String(i) });
        }
      });
      call.on("error", reject);
      call.on("end", () => resolve());
      t = performance.now();
      call.write({ value: String(i) });
    });
    return lockstepResult("grpc-js", n, performance.now() - start, times);
  }
  const ms = performance.now() - start;
  return { impl: "grpc-js", method, n, ms, rate: n / ms * 1000 };
}

// ---------- Connect-ES ----------

type Int64Of = (value: bigint) => unknown;

async function* values(sending: { more(): boolean }, int64: Int64Of) {
  for (let i = 1; sending.more(); i++) yield int64(BigInt(i));
}

async function connectEsSession(port: number): Promise<Session> {
  const { createClient } = await import("@connectrpc/connect");
  const { createConnectTransport } = await import(
    "@connectrpc/connect-node"
  );
  const { connectService, int64 } = await import("../tests/_calc_peers.ts");
  const transport = createConnectTransport({
    baseUrl: `http://127.0.0.1:${port}`,
    httpVersion: "2",
  });
  const client = createClient(connectService(), transport);
  // connect-node closes its idle HTTP/2 session by itself.
  return {
    run: (method, budget) => connectEsRun(client, int64, method, budget),
    close: () => Promise.resolve(),
  };
}

async function connectEsRun(
  // deno-lint-ignore no-explicit-any
  client: any,
  int64: Int64Of,
  method: RpcMethod,
  budget: number,
): Promise<RpcResult> {
  const start = performance.now();
  const sending = timeBudget(budget);
  let n = budget;
  if (method === "sum") {
    const response = await client.sum(values(sending, int64));
    n = sending.count;
    check("sum", response.value, expectedSum(n));
  } else if (method === "incrementalSum") {
    let count = 0;
    let last = 0n;
    for await (const m of client.incrementalSum(values(sending, int64))) {
      last = m.value;
      count++;
    }
    n = sending.count;
    if (count !== n) throw new Error(`Got ${count} of ${n} responses`);
    check("incrementalSum", last, expectedSum(n));
  } else {
    // Requests as an async iterable that yields the next value only after
    // the previous reply arrived.
    let replied: PromiseWithResolvers<void> = Promise.withResolvers();
    let t = 0;
    const lockstepRequests = async function* () {
      for (let i = 1; i <= n; i++) {
        t = performance.now();
        yield int64(BigInt(i));
        await replied.promise;
        replied = Promise.withResolvers();
      }
    };
    const times = new Array<number>(n);
    let i = 0;
    let sum = 0n;
    for await (const m of client.incrementalSum(lockstepRequests())) {
      times[i] = performance.now() - t;
      sum += BigInt(++i);
      if (m.value !== sum) throw new Error("Lockstep: wrong reply");
      replied.resolve();
    }
    return lockstepResult("connect-es", n, performance.now() - start, times);
  }
  const ms = performance.now() - start;
  return { impl: "connect-es", method, n, ms, rate: n / ms * 1000 };
}

// ---------- transport floors ----------
//
// The same bytes in lockstep with no library code: a 5-byte frame header
// and an Int64Value (what the gRPC and gRPC-Web calls send), echoed by the
// runtime's own server. floor-h1: the runtime's fetch (a streamed request
// body, full duplex) into Deno.serve / Bun.serve returning
// `new Response(request.body)` (under Deno the body passes through with
// no JS per chunk); floor-h1-js: the same with each chunk through JS, read
// in a loop and enqueued into the response (bench/_by_hand.ts echoedBody:
// what any library that reads the request and writes the response in JS
// pays, at the least found; a pipe through one bare TransformStream cost
// more under Bun); floor-h2: a bare node:http2 session and
// server, the transport under ours-grpc and grpc-js; floor-h1-sums and
// floor-h2-sums: floor-h1's and floor-h2's pairs doing incrementalSum's own
// work by hand (bench/_by_hand.ts). floor-h2f, floor-h2f-js and
// floor-h2f-sums: floor-h1's three with Deno's fetch on h2c (the same
// servers: Deno.serve answers h2c with prior knowledge), Deno only.

type FloorImpl =
  | "floor-h1"
  | "floor-h1-js"
  | "floor-h1-sums"
  | "floor-h2"
  | "floor-h2-sums"
  | "floor-h2f"
  | "floor-h2f-js"
  | "floor-h2f-sums";

function isFloor(impl: RpcImpl): impl is FloorImpl {
  return impl.startsWith("floor-");
}

/** The fetch of a floor over fetch: Deno's on h2c for the "-h2f" ones. */
function floorFetch(impl: FloorImpl): typeof fetch {
  return overH2cFetch(impl) ? h2cFetch() : fetch;
}

// The bare node:http2 pairs' warm-up and measured calls share one session
// each (closed at the process's exit): under Deno 2.9.6 the by-hand
// server aborted when the warm-up's session closed (free(): invalid
// pointer; see docs/known-runtime-issues.md (e)).
let byHandSession: http2.ClientHttp2Session | undefined;
let floorSession: http2.ClientHttp2Session | undefined;

async function floorRun(
  impl: FloorImpl,
  port: number,
  n: number,
): Promise<RpcResult> {
  let times = new Array<number>(n);
  const start = performance.now();
  if (impl === "floor-h2-sums") {
    byHandSession ??= http2.connect(`http://127.0.0.1:${port}`);
    times = await byHandTimes(byHandSession, n);
  } else if (impl === "floor-h1-sums" || impl === "floor-h2f-sums") {
    times = await byHandFetchTimes(port, n, floorFetch(impl));
  } else if (impl !== "floor-h2") {
    const { controller, responded } = duplexFetch(port, floorFetch(impl));
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    for (let i = 1; i <= n; i++) {
      const frame = frameFor(i);
      const t = performance.now();
      controller.enqueue(frame);
      reader ??= (await responded).body!.getReader();
      for (let got = 0; got < frame.length;) {
        const r = await reader.read();
        if (r.done) throw new Error("Floor: the echo ended early");
        got += r.value.byteLength;
      }
      times[i - 1] = performance.now() - t;
    }
    controller.close();
    while (!(await reader!.read()).done);
  } else {
    floorSession ??= http2.connect(`http://127.0.0.1:${port}`);
    const stream = floorSession.request({ ":method": "POST", ":path": "/" });
    let want = 0;
    let wake: (() => void) | undefined;
    stream.on("data", (chunk: Uint8Array) => {
      want -= chunk.byteLength;
      if (want <= 0) wake?.();
    });
    for (let i = 1; i <= n; i++) {
      const frame = frameFor(i);
      const { promise, resolve } = Promise.withResolvers<void>();
      wake = resolve;
      want = frame.length;
      const t = performance.now();
      stream.write(frame);
      await promise;
      times[i - 1] = performance.now() - t;
    }
    stream.end();
  }
  return lockstepResult(impl, n, performance.now() - start, times);
}

function serveFloor(impl: FloorImpl): Promise<number> {
  if (impl === "floor-h2-sums") return byHandServer();
  const { promise, resolve } = Promise.withResolvers<number>();
  if (impl === "floor-h2") {
    const server = http2.createServer();
    server.on("stream", (stream: http2.ServerHttp2Stream) => {
      stream.respond({ ":status": 200 });
      stream.on("data", (chunk) => stream.write(chunk));
      stream.on("end", () => stream.end());
    });
    server.listen(0, "127.0.0.1", () => {
      resolve((server.address() as { port: number }).port);
    });
    return promise;
  }
  // deno-lint-ignore no-explicit-any
  const bun = (globalThis as any).Bun;
  const handler = impl === "floor-h1-js" || impl === "floor-h2f-js"
    ? (request: Request) => new Response(echoedBody(request.body!))
    : impl === "floor-h1-sums" || impl === "floor-h2f-sums"
    ? byHandHandler
    : (request: Request) => new Response(request.body);
  if (bun) {
    return Promise.resolve(
      bun.serve({
        port: 0,
        hostname: "127.0.0.1",
        idleTimeout: 0,
        fetch: handler,
      })
        .port,
    );
  }
  Deno.serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen: (addr) => resolve(addr.port),
  }, handler);
  return promise;
}

// ---------- main ----------

async function serveImpl(impl: RpcImpl): Promise<number> {
  if (isFloor(impl)) return await serveFloor(impl);
  if (impl === "grpc-js") {
    const { startGrpcJsServer } = await import("../tests/_calc_peers.ts");
    return (await startGrpcJsServer()).port;
  }
  if (impl === "connect-es") {
    const { startConnectNodeServer } = await import("../tests/_calc_peers.ts");
    return Number(new URL((await startConnectNodeServer("2")).url).port);
  }
  return Number((await startServer(ourProtocol(impl))).url.port);
}

/**
 * How long the warm-up call of sum and incrementalSum sends, the same for
 * every implementation (or the measured time, if shorter; lockstep: see
 * LOCKSTEP_WARMUP). A warm-up of a fixed count
 * (20,000 messages) measured ours while V8 still compiled it: our Deno
 * client's CPU per message was 1.3 µs over messages 20,000 to 100,000 of a
 * fresh process and 0.34 µs over 100,000 to 400,000, and grpc-js on Bun
 * sent 200,000 msg/s over its first 20,000 messages, 370,000 over
 * 300,000. Half a second is past both, for every contender.
 */
const WARMUP_MS = 500;

/**
 * Lockstep's warm-up round trips before the measured ones, the same for
 * every contender (lockstep runs in a client process of its own, on one
 * CPU beside the server: bench/run.ts), in LOCKSTEP_WARMUP_CALLS calls.
 * V8 compiles in steps while a process runs, and the more code a round
 * trip runs the longer it takes (pinned, the bench's own processes, one
 * call, p50 per 1,500 round trips): over node:http2 under Deno ours went
 * from 70 µs (round trips 1,500-7,500) to 63-66 (to 16,500) and 60 from
 * there on, the by-hand pair from 64-65 to 60-61 and 57-58. With a
 * quarter as many as measured (750 of 3,000) our gRPC-Web pair over
 * HTTP/1.1 under Deno took 59-61 µs p50 against 50-51 after 2,000 or more
 * (the by-hand pair 51-55 after any count); over h2c ours took 73-75 after
 * 5,000 and 67-70 after 10,000 (the floor 61-62 after both). Bun's rows
 * moved by 4% at most from 750 to 10,000 (grpc-js's 8%). 10,000, about
 * 0.6 s per contender, is near the end of that climb; its last few per
 * cent would cost seconds per contender. Under Bun the library's own code
 * climbed further (1.13× the by-hand pair after 10,000, 1.07× after
 * 30,000), so bench/run.ts gives Bun's contenders 30,000.
 */
export const LOCKSTEP_WARMUP = 10_000;

/**
 * Lockstep's warm-up round trips under Bun: the library's own code takes
 * longer to settle there. With 10,000 our gRPC-Web p50 was 1.13× the
 * by-hand exchange's (p99 409 µs), with 30,000 1.07× (p99 111), the by-hand
 * pair's unchanged; under Deno 40,000 moved ours and the by-hand pair alike
 * (docs/performance.md, "Lockstep warm-up under Bun"). About 2 s more per
 * Bun contender.
 */
export const LOCKSTEP_WARMUP_BUN = 30_000;

/**
 * The warm-up is that many calls, so that the measured call is not a
 * process's second one: over node:http2 under Deno our client's second call
 * ran its first thousand round trips at 88-98 µs p50 against 70 for the
 * first call's last ones (V8 deoptimizing code made for the first call's
 * objects: wrong call target, wrong map, field constness), and the third
 * call started at 70-72. A long-running client is past it.
 */
const LOCKSTEP_WARMUP_CALLS = 5;

/** `n` warm-up round trips as the round trips of each warm-up call. */
export function warmupCalls(n: number): number[] {
  const calls = Math.min(LOCKSTEP_WARMUP_CALLS, n);
  return Array.from(
    { length: calls },
    (_, i) => Math.floor(n * (i + 1) / calls) - Math.floor(n * i / calls),
  );
}

/**
 * Runs one client measurement, after a warm-up call of the same method
 * (WARMUP_MS of sending) on the same connection, so that every
 * implementation is measured with its code compiled and its connection
 * open: its steady state, as a long-running client or server sees it.
 * Sum and incrementalSum send for `ms` milliseconds (then complete and
 * check the result of every message sent); lockstep makes `n` round trips
 * after `lockstepWarmup` warm-up round trips in LOCKSTEP_WARMUP_CALLS calls.
 */
export async function runClient(
  impl: RpcImpl,
  port: number,
  runs: ReadonlyArray<{ method: RpcMethod; budget: number }>,
  lockstepWarmup = LOCKSTEP_WARMUP,
): Promise<Record<string, RpcResult>> {
  const results: Record<string, RpcResult> = {};
  if (isFloor(impl)) {
    for (const { method, budget: n } of runs) {
      if (method !== "lockstep") {
        throw new TypeError(`Cannot run ${method} on ${impl}: lockstep only`);
      }
      for (const calls of warmupCalls(lockstepWarmup)) {
        await floorRun(impl, port, calls);
      }
      results[method] = await floorRun(impl, port, n);
    }
    return results;
  }
  // One session for every method: under Deno 2.9.6 a node:http2 server can
  // abort when a client closes its connection after a bidi stream (see
  // docs/performance.md), so the connection closes only at the very end.
  const session =
    await (impl === "grpc-js"
      ? grpcJsSession(port)
      : impl === "connect-es"
      ? connectEsSession(port)
      : oursSession(impl, port));
  try {
    for (const { method, budget } of runs) {
      if (method === "lockstep") {
        for (const calls of warmupCalls(lockstepWarmup)) {
          await session.run(method, calls);
        }
      } else await session.run(method, Math.min(WARMUP_MS, budget));
      const cpu0 = process.cpuUsage();
      results[method] = await session.run(method, budget);
      const cpu = process.cpuUsage(cpu0);
      results[method].cpuMs = (cpu.user + cpu.system) / 1000;
    }
    return results;
  } finally {
    await session.close();
  }
}

if (import.meta.main) {
  const [command, impl, port, method, ms] = process.argv.slice(2);
  if (command === "server") {
    console.log(`READY ${await serveImpl(impl as RpcImpl)}`);
  } else if (command === "client") {
    // Several methods, comma-separated, run in turn on one connection each:
    // lockstep with <lockstepN> round trips after <warmupN>, the others
    // for <ms> ms.
    const lockstepN = Number(process.argv[7] ?? 1000);
    const warmupN = Number(process.argv[8] ?? LOCKSTEP_WARMUP);
    const runs = (method.split(",") as RpcMethod[]).map((m) => ({
      method: m,
      budget: m === "lockstep" ? lockstepN : Number(ms),
    }));
    console.log(
      JSON.stringify(
        await runClient(impl as RpcImpl, Number(port), runs, warmupN),
      ),
    );
    // grpc-js and http2 sessions may keep timers alive.
    process.exit(0);
  } else {
    console.error(
      "Usage: _rpc.ts server <impl> | client <impl> <port> <methods> <ms> [<lockstepN> [<warmupN>]]",
    );
    process.exit(2);
  }
}
