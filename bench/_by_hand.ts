// incrementalSum in lockstep by hand: a bare node:http2 gRPC server and
// client that do the call's own work (5-byte frames, Int64Value varints,
// the running sum, each answer checked) with no library code. The
// transport's floor (bench/_rpc.ts's floor-h2) echoes the request bytes and
// decodes nothing; this pair is that floor plus the work every
// incrementalSum implementation does per message, so ours / by hand is the
// library's own cost. The same over HTTP/1.1 with the runtime's own fetch
// and server (floor-h1-sums, beside floor-h1's echo). Used by bench/_rpc.ts
// and bench/_h2_split.ts (raw).
import http2 from "node:http2";
import process from "node:process";
import { h2cClient } from "../tests/_h2c_client.ts";

/**
 * The gRPC frame of an Int64Value holding `v` (0: the empty message), its
 * varint written in place. As first written (a spread of a byte array and
 * a DataView) a frame took 1.1-1.2 µs to build under Deno and Bun, inside
 * each round trip on both sides; now 44 ns under Bun and 306 under Deno
 * (most of that its new ArrayBuffer), in a loop, pinned.
 */
export function frameFor(v: number): Uint8Array {
  let length = 0; // the message's: tag and varint
  if (v !== 0) {
    length = 2;
    for (let rest = v; rest >= 128; rest = Math.floor(rest / 128)) length++;
  }
  const frame = new Uint8Array(5 + length);
  frame[4] = length; // below 256: the prefix's other length bytes stay 0
  if (v === 0) return frame;
  frame[5] = 0x08;
  let at = 6;
  for (; v >= 128; v = Math.floor(v / 128)) frame[at++] = (v % 128) | 0x80;
  frame[at] = v;
  return frame;
}

function readVarint(b: Uint8Array, at: number, end: number): number {
  let v = 0, mul = 1;
  for (let i = at; i < end; i++) {
    v += (b[i] & 0x7f) * mul;
    if (!(b[i] & 0x80)) break;
    mul *= 128;
  }
  return v;
}

/**
 * Calls `emit` with the Int64Value of each whole gRPC frame of a chunk (in
 * lockstep each chunk is whole frames).
 */
export function frameValues(
  chunk: Uint8Array,
  emit: (value: number) => void,
): void {
  let at = 0;
  while (at + 5 <= chunk.length) {
    const len = (chunk[at + 1] << 24) | (chunk[at + 2] << 16) |
      (chunk[at + 3] << 8) | chunk[at + 4];
    emit(len > 1 ? readVarint(chunk, at + 6, at + 5 + len) : 0);
    at += 5 + len;
  }
}

/** The server's sums: each frame's value added, the running sum emitted. */
export function runningSums(): (
  chunk: Uint8Array,
  emit: (sum: number) => void,
) => void {
  let sum = 0;
  return (chunk, emit) => frameValues(chunk, (v) => emit(sum += v));
}

/**
 * The server by hand: answers each request frame with the running sum,
 * written in the 'data' event that brought it (or deferred by `defer`:
 * "micro", "tick" or "imm", to measure what a deferral costs).
 */
export function byHandServer(defer = ""): Promise<number> {
  const server = http2.createServer();
  server.on("stream", (stream: http2.ServerHttp2Stream) => {
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, {
      waitForTrailers: true,
    });
    const sums = runningSums();
    stream.on("data", (chunk: Uint8Array) => {
      sums(chunk, (sum) => {
        const f = frameFor(sum);
        if (defer === "micro") queueMicrotask(() => stream.write(f));
        else if (defer === "tick") process.nextTick(() => stream.write(f));
        else if (defer === "imm") setImmediate(() => stream.write(f));
        else stream.write(f);
      });
    });
    stream.on(
      "wantTrailers",
      () => stream.sendTrailers({ "grpc-status": "0" }),
    );
    stream.on("end", () => stream.end());
  });
  return new Promise((resolve) =>
    server.listen(
      0,
      "127.0.0.1",
      () => resolve((server.address() as { port: number }).port),
    )
  );
}

/**
 * The client by hand: `n` round trips on one call over `session` (send
 * one frame, wait for its answer, check it is the running sum); each round
 * trip's time in ms.
 */
export async function byHandTimes(
  session: http2.ClientHttp2Session,
  n: number,
): Promise<number[]> {
  const stream = session.request({
    ":method": "POST",
    ":path": "/StreamingCalcService/incrementalSum",
    "content-type": "application/grpc",
    te: "trailers",
  });
  let wake: (() => void) | undefined;
  let answer = -1;
  stream.on("data", (chunk: Uint8Array) => {
    frameValues(chunk, (v) => answer = v);
    wake?.();
  });
  const times = new Array<number>(n);
  let sum = 0;
  for (let i = 1; i <= n; i++) {
    sum += i;
    const { promise, resolve } = Promise.withResolvers<void>();
    wake = resolve;
    const t = performance.now();
    stream.write(frameFor(i));
    await promise;
    times[i - 1] = performance.now() - t;
    if (answer !== sum) throw new Error("By hand: wrong answer");
  }
  const done = new Promise((r) => stream.on("close", r));
  stream.end();
  stream.resume();
  await done;
  return times;
}

/**
 * A response body made by hand from a request body: reads it in a loop and
 * calls `answer` with each chunk and the body's `enqueue` (the answers go
 * out at once); `ended` runs after the last answer.
 */
function answersBody(
  requests: ReadableStream<Uint8Array>,
  answer: (chunk: Uint8Array, enqueue: (bytes: Uint8Array) => void) => void,
  ended: () => void = () => {},
): ReadableStream<Uint8Array> {
  const reader = requests.getReader();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({
    start: (c) => void (controller = c),
  }, { highWaterMark: 0 });
  const enqueue = (bytes: Uint8Array) => controller.enqueue(bytes);
  (async () => {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      answer(value, enqueue);
    }
    controller.close();
    ended();
  })().catch((error) => controller.error(error));
  return body;
}

/**
 * The answers to a request body by hand: each frame answered with the
 * running sum, enqueued into the returned body at once; `ended` runs after
 * the last answer; `extra` (if any) before each chunk's answers.
 */
export function runningSumsBody(
  requests: ReadableStream<Uint8Array>,
  ended: () => void = () => {},
  extra?: () => void,
): ReadableStream<Uint8Array> {
  const sums = runningSums();
  return answersBody(
    requests,
    (chunk, enqueue) => {
      extra?.();
      sums(chunk, (sum) => enqueue(frameFor(sum)));
    },
    ended,
  );
}

/**
 * Keeps the CPU busy for `us` microseconds: JS work of a known length, to
 * measure what more JS per round trip costs a by-hand side (bench/_h1_split.ts).
 */
export function busyWait(us: number): void {
  const until = performance.now() + us / 1000;
  while (performance.now() < until) {
    // Spinning on the clock.
  }
}

/**
 * The request body echoed by hand, each chunk enqueued into the returned
 * body as it is read: the least JS per chunk found for a server that reads
 * the request and writes the response in JS (under Bun, a pipe through a
 * bare TransformStream cost more than the by-hand sums' whole exchange).
 */
export function echoedBody(
  requests: ReadableStream<Uint8Array>,
): ReadableStream<Uint8Array> {
  return answersBody(requests, (chunk, enqueue) => enqueue(chunk));
}

/** The HTTP/1.1 server by hand, a fetch handler for Deno.serve or Bun.serve. */
export function byHandHandler(request: Request): Response {
  return new Response(runningSumsBody(request.body!));
}

/** Where a by-hand client sends: a path and headers (default `/`, none). */
export interface ByHandTarget {
  path?: string;
  headers?: HeadersInit;
}

/**
 * A streamed request through the runtime's fetch (full duplex): what is
 * enqueued into `controller` is sent at once. `fetchImpl`: another fetch,
 * such as one bound to Deno's HTTP/2-only client (h2cFetch).
 */
export function duplexFetch(
  port: number,
  fetchImpl: typeof fetch = fetch,
  target: ByHandTarget = {},
): {
  controller: ReadableStreamDefaultController<Uint8Array>;
  responded: Promise<Response>;
} {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({
    start: (c) => void (controller = c),
  });
  const responded = fetchImpl(`http://127.0.0.1:${port}${target.path ?? "/"}`, {
    method: "POST",
    body,
    duplex: "half",
    headers: target.headers,
  } as RequestInit);
  return { controller, responded };
}

let h2cFetchImpl: typeof fetch | undefined;

/**
 * Deno's fetch on an HTTP/2-only client: h2c with prior knowledge (the one
 * runtime fetch here that speaks HTTP/2 without TLS; docs/runtimes.md).
 * One client per process, as a long-running client keeps its connection.
 */
export function h2cFetch(): typeof fetch {
  if (h2cFetchImpl) return h2cFetchImpl;
  if (!("Deno" in globalThis) || "Bun" in globalThis) {
    throw new Error("h2c over fetch needs Deno (Deno.createHttpClient)");
  }
  return h2cFetchImpl = h2cClient().fetch;
}

/**
 * The HTTP/1.1 client by hand: `n` round trips on one request through the
 * runtime's fetch (a streamed body, full duplex), each answer read whole
 * and checked; each round trip's time in ms. `fetchImpl` and `target` as
 * duplexFetch's; `extra` (if any) runs before each request is sent.
 */
export async function byHandFetchTimes(
  port: number,
  n: number,
  fetchImpl: typeof fetch = fetch,
  target: ByHandTarget = {},
  extra?: () => void,
): Promise<number[]> {
  const { controller, responded } = duplexFetch(port, fetchImpl, target);
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  const times = new Array<number>(n);
  let sum = 0;
  for (let i = 1; i <= n; i++) {
    sum += i;
    const t = performance.now();
    extra?.();
    controller.enqueue(frameFor(i));
    reader ??= (await responded).body!.getReader();
    let answer = -1;
    for (let want = frameFor(sum).length; want > 0;) {
      const r = await reader.read();
      if (r.done) throw new Error("By hand: the answers ended early");
      want -= r.value.byteLength;
      frameValues(r.value, (v) => answer = v);
    }
    times[i - 1] = performance.now() - t;
    if (answer !== sum) throw new Error("By hand: wrong answer");
  }
  controller.close();
  while (!(await reader!.read()).done);
  return times;
}
