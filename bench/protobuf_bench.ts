// protobuf-es services (ChatService: tests/proto/chat.proto, generated code
// in tests/gen/) served on the same server (Deno.serve or Bun.serve) by
// sluice, by Connect-ES's own fetch handler (@connectrpc/connect's
// universal handlers behind its createFetchHandler) and, as the floor, by a
// bare handler doing the same codec work with no RPC library:
//
// - large_unary-like: `Echo` of a 256 KiB `bytes` payload, 4 calls at a
//   time, the request sent whole (as browsers and Connect-ES send unary
//   requests), no compression either way;
// - a bidi stream (`Chat`) of small messages, each echoed, 1,000,000 for
//   sluice (200,000 for the others: their rate is per message either way).
//
// One client drives every server: plain fetch with the request bytes
// encoded once, every answer checked (status, sizes, count, end of stream),
// so that the client costs little next to the server. Bun's fetch by
// default (`deno task bench` runs this under Bun): under Deno, Deno's fetch
// was the bottleneck (4-7x slower than Bun's on the 256 KiB echoes). Each
// server runs in its own process, started fresh for each measurement, so
// its peak RSS (VmHWM) and CPU time (utime + stime, per message) are its
// own; "server busy" is that CPU time over the wall time (100% = one core):
// well under 100%, the rate is set by the client or the loaded machine,
// and the CPU ratio is the one that compares the servers. Repetitions are
// interleaved (every server in turn), the table gives medians.
//
// A second table (native gRPC over h2c) serves the same ChatService with
// sluice's `serveHttp2(createUniversalHandler(implementService(...)))` on
// the --server runtime and with a @grpc/grpc-js Server (protobuf-es's
// toBinary and fromBinary as its serialize and deserialize, writes pausing
// for 'drain') on Bun, where the RPC bench runs grpc-js (bench/_rpc.ts).
// One grpc-js client (the peer a Node user would pick; the RPC bench's
// grpc-js client) drives all with the same pre-encoded request bytes and
// the same counts, one connection per server process, every answer checked
// (status, sizes, count); the same two workloads, the same columns, ratios
// against grpc-js. sluice's compression is off (grpc-js clients always
// accept gzip; a grpc-js Server compresses nothing by default). Its floor:
// a bare node:http2 server on sluice's runtime doing the same codec work
// with no RPC library. A server that dies (Deno's node:http2 can abort when
// clients close, docs/known-runtime-issues.md (e)) is a failed row.
//
//   bun bench/protobuf_bench.ts [--server deno|bun] [--deno PATH] [--bun PATH] [--smoke] [--only unary|bidi] [--reps N] [--messages N] [--peer-messages N] [--grpc-messages N] [--calls N] [--grpc-calls N] [--grpc yes|no|only]
//   deno run --allow-net=127.0.0.1 --allow-read --allow-run --allow-env bench/protobuf_bench.ts [...]
//
// Defaults: the client's runtime as the server, 3 repetitions, 400 calls
// (--calls' count for gRPC too), the gRPC stream with --peer-messages'
// count (200,000) for all its servers;
// --smoke: 1 repetition, 2,000 messages and 20 calls. `deno task bench`
// runs it under Bun for both servers with RPC's sizes (bench/run.ts), so
// the gRPC table comes once with sluice on Deno and once on Bun. The
// output ends with the issue's targets (>= 1x the peer's rate on unary,
// >= 3x on the stream) and, when one is missed, the measured cause.

import { Buffer } from "node:buffer";
import { spawn } from "node:child_process";
import process from "node:process";
import { Readable } from "node:stream";
import { parseArgs } from "node:util";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createConnectRouter } from "@connectrpc/connect";
import {
  createFetchHandler,
  type UniversalHandler as ConnectUniversalHandler,
} from "@connectrpc/connect/protocol";
import type * as GrpcJs from "@grpc/grpc-js";
import type { ServerHttp2Stream } from "node:http2";
import { implementService } from "../lib/protobuf/mod.ts";
import { createRpcHandler, createUniversalHandler } from "../lib/rpc/mod.ts";
import { serve } from "../lib/runtime/serve.ts";
import { readyPort } from "./_ready.ts";
import {
  type ChatMessage,
  ChatMessageSchema,
  ChatService,
} from "../tests/gen/chat_pb.ts";

type Impl = "sluice" | "connect-es" | "bare";
const IMPLS: Impl[] = ["sluice", "connect-es", "bare"];
/** The native-gRPC section's servers (h2c, node:http2 for both). */
type GrpcImpl = "sluice-grpc" | "grpc-js" | "bare-h2";
const GRPC_IMPLS: GrpcImpl[] = ["sluice-grpc", "grpc-js", "bare-h2"];
const LABELS: Record<Impl | GrpcImpl, string> = {
  sluice: "sluice",
  "connect-es": "Connect-ES fetch handler",
  bare: "floor: bare handler, same codec work",
  "sluice-grpc": "sluice serveHttp2",
  "grpc-js": "grpc-js Server",
  "bare-h2": "floor: bare node:http2 server, same codec work",
};
const UNARY = "unary Echo, 256 KiB";
const BIDI = "bidi Chat, small messages";
const PAYLOAD_BYTES = 256 * 1024;
const CONCURRENCY = 4;
const TIME_LIMIT_MS = 120_000;

// ---------- servers ----------

/** The floors' protobuf-es options: unknown fields kept, as sluice does. */
const READ = { readUnknownFields: true };
const WRITE = { writeUnknownFields: true };

/** sluice from the descriptor: the handlers echo. */
function sluiceHandler(): (request: Request) => Promise<Response> {
  return createRpcHandler(implementService(ChatService, {
    async *chat(messages) {
      yield* messages;
    },
    echo: (m) => m,
  }));
}

/** Connect-ES's universal handlers behind its own fetch adapter. */
function connectHandler(): (request: Request) => Promise<Response> {
  const router = createConnectRouter();
  router.service(ChatService, {
    async *chat(messages) {
      yield* messages;
    },
    echo: (m) => m,
  });
  // httpVersion "" (unknown): Connect-ES refuses bidi when told "1.1", but
  // Deno.serve and Bun.serve stream both ways over HTTP/1.1.
  const routes = new Map<string, (request: Request) => Promise<Response>>(
    router.handlers.map((h: ConnectUniversalHandler) => [
      h.requestPath,
      createFetchHandler(h, { httpVersion: "" }),
    ]),
  );
  return (request) => {
    const route = routes.get(new URL(request.url).pathname);
    return route
      ? route(request)
      : Promise.resolve(new Response(null, { status: 404 }));
  };
}

/**
 * The floor: a bare handler on the same server doing the same codec work
 * with no RPC library (whole body read by the runtime, protobuf-es's
 * fromBinary and toBinary, one TransformStream for the stream's frames).
 */
function bareHandler(): (request: Request) => Promise<Response> {
  return async (request) => {
    const path = new URL(request.url).pathname;
    if (path.endsWith("/Echo")) {
      const data = new Uint8Array(await request.arrayBuffer());
      const message = fromBinary(ChatMessageSchema, data, READ);
      return new Response(toBinary(ChatMessageSchema, message, WRITE), {
        headers: { "content-type": "application/proto" },
      });
    }
    let pending = new Uint8Array(0);
    const frames = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        const bytes = pending.byteLength === 0
          ? chunk
          : concat([pending, chunk]);
        const { out, at } = echoWholeFrames(bytes);
        pending = bytes.slice(at);
        if (out.length > 0) controller.enqueue(concat(out));
      },
      flush(controller) {
        controller.enqueue(frame(2, new TextEncoder().encode("{}")));
      },
    });
    return new Response(request.body!.pipeThrough(frames), {
      headers: { "content-type": "application/connect+proto" },
    });
  };
}

/**
 * The floors' codec work: each whole frame of `bytes` decoded and encoded
 * again (protobuf-es, unknown fields kept), framed; `at` is where the first
 * incomplete frame starts.
 */
function echoWholeFrames(bytes: Uint8Array): { out: Uint8Array[]; at: number } {
  const out: Uint8Array[] = [];
  let at = 0;
  while (bytes.byteLength - at >= 5) {
    const size = new DataView(bytes.buffer, bytes.byteOffset + at).getUint32(1);
    if (bytes.byteLength - at - 5 < size) break;
    const message = fromBinary(
      ChatMessageSchema,
      bytes.subarray(at + 5, at + 5 + size),
      READ,
    );
    out.push(frame(0, toBinary(ChatMessageSchema, message, WRITE)));
    at += 5 + size;
  }
  return { out, at };
}

function frame(flags: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + data.byteLength);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.byteLength);
  out.set(data, 5);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.byteLength;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

// The native-gRPC section: the same ChatService over gRPC on h2c, served by
// sluice's serveHttp2 and by a grpc-js Server with protobuf-es's toBinary
// and fromBinary as its serialize and deserialize. Loaded only where used,
// so that no server process holds another's modules (peak RSS).

let grpc: typeof GrpcJs;
/** The client's options, as every grpc-js peer here (tests/_calc_peers.ts). */
let clientOptions: GrpcJs.ClientOptions;

async function loadGrpcJs(): Promise<void> {
  grpc = await import("@grpc/grpc-js");
}

/**
 * sluice: the universal handler from the descriptor, on node:http2. No
 * compression: grpc-js clients always send `grpc-accept-encoding:
 * identity,deflate,gzip`, sluice would then gzip the 256 KiB echoes, and a
 * grpc-js Server compresses nothing unless configured to: the same work.
 */
async function sluiceGrpcServer(): Promise<number> {
  const { serveHttp2 } = await import("../lib/runtime/grpc_node.ts");
  const server = await serveHttp2(createUniversalHandler(
    implementService(ChatService, {
      async *chat(messages) {
        yield* messages;
      },
      echo: (m) => m,
    }),
    { acceptCompression: [] },
  ));
  return Number(new URL(server.url).port);
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The method paths and protobuf-es codecs, for a grpc-js server. */
function grpcJsDefinition(): GrpcJs.ServiceDefinition {
  const serialize = (m: ChatMessage) =>
    toBuffer(toBinary(ChatMessageSchema, m));
  const deserialize = (b: Buffer) => fromBinary(ChatMessageSchema, b);
  const method = (name: string, streams: boolean) => ({
    path: `/${ChatService.typeName}/${name}`,
    requestStream: streams,
    responseStream: streams,
    requestSerialize: serialize,
    requestDeserialize: deserialize,
    responseSerialize: serialize,
    responseDeserialize: deserialize,
    originalName: name.toLowerCase(),
  });
  return { Echo: method("Echo", false), Chat: method("Chat", true) };
}

/** grpc-js echoing, writes honouring back-pressure (pause until 'drain'). */
async function grpcJsServer(): Promise<number> {
  await loadGrpcJs();
  const server = new grpc.Server();
  server.addService(grpcJsDefinition(), {
    Echo(
      call: GrpcJs.ServerUnaryCall<ChatMessage, ChatMessage>,
      callback: GrpcJs.sendUnaryData<ChatMessage>,
    ) {
      callback(null, call.request);
    },
    Chat(call: GrpcJs.ServerDuplexStream<ChatMessage, ChatMessage>) {
      call.on("data", (m: ChatMessage) => {
        if (!call.write(m)) {
          call.pause();
          call.once("drain", () => call.resume());
        }
      });
      call.on("end", () => call.end());
    },
  });
  return await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      "127.0.0.1:0",
      grpc.ServerCredentials.createInsecure(),
      (error, port) => error ? reject(error) : resolve(port),
    )
  );
}

/**
 * The gRPC floor, on sluice's runtime: a bare node:http2 server doing the
 * same codec work with no RPC library (frames parsed per chunk, protobuf-es's
 * fromBinary and toBinary, one write per chunk's answers, pausing for
 * 'drain', grpc-status 0 in the trailers).
 */
async function bareH2Server(): Promise<number> {
  const http2 = await import("node:http2");
  const server = http2.createServer();
  server.on("stream", (stream: ServerHttp2Stream) => {
    stream.on("error", () => {});
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, {
      waitForTrailers: true,
    });
    stream.on(
      "wantTrailers",
      () => stream.sendTrailers({ "grpc-status": "0" }),
    );
    // Chunks are joined once a whole frame is in (not per chunk: a 256 KiB
    // message comes in many).
    let chunks: Uint8Array[] = [];
    let buffered = 0;
    let frameBytes = -1;
    const sizeOf = (bytes: Uint8Array, at: number) =>
      5 + new DataView(bytes.buffer, bytes.byteOffset + at).getUint32(1);
    stream.on("data", (chunk: Uint8Array) => {
      chunks.push(chunk);
      buffered += chunk.byteLength;
      if (frameBytes < 0 && buffered >= 5) {
        chunks = [chunks.length === 1 ? chunks[0] : concat(chunks)];
        frameBytes = sizeOf(chunks[0], 0);
      }
      if (frameBytes < 0 || buffered < frameBytes) return;
      const bytes = chunks.length === 1 ? chunks[0] : concat(chunks);
      const { out, at } = echoWholeFrames(bytes);
      chunks = at < bytes.byteLength ? [bytes.slice(at)] : [];
      buffered = bytes.byteLength - at;
      frameBytes = buffered >= 5 ? sizeOf(chunks[0], 0) : -1;
      const answer = out.length === 1 ? out[0] : concat(out);
      if (out.length > 0 && !stream.write(answer)) {
        stream.pause();
        stream.once("drain", () => stream.resume());
      }
    });
    stream.on("end", () => stream.end());
  });
  return await new Promise<number>((resolve) =>
    server.listen(
      0,
      "127.0.0.1",
      () => resolve((server.address() as { port: number }).port),
    )
  );
}

async function runServer(impl: Impl | GrpcImpl): Promise<void> {
  if (GRPC_IMPLS.includes(impl as GrpcImpl)) {
    const port = impl === "grpc-js"
      ? await grpcJsServer()
      : impl === "bare-h2"
      ? await bareH2Server()
      : await sluiceGrpcServer();
    console.log(`READY ${port}`);
    return;
  }
  const server = await serve(
    impl === "sluice"
      ? sluiceHandler()
      : impl === "connect-es"
      ? connectHandler()
      : bareHandler(),
    { port: 0 },
  );
  console.log(`READY ${server.port}`);
  // Runs until the parent kills it.
}

// ---------- the parent: servers in child processes, the client here ----------

interface Child {
  port: number;
  /** CPU time the server has used so far, in ms (Linux; NaN elsewhere). */
  cpuMs(): Promise<number>;
  /** How the server process ended, if it did ("signal SIGABRT"). */
  died(): string | undefined;
  /** Peak RSS in KiB (VmHWM), then stops the server. */
  stop(): Promise<number>;
}

/** The runtime the servers run on, and its executable. */
interface ServerRuntime {
  name: "deno" | "bun";
  path: string;
}

async function startChild(
  impl: Impl | GrpcImpl,
  runtime: ServerRuntime,
): Promise<Child> {
  const self = new URL(import.meta.url).pathname;
  const args = runtime.name === "deno"
    ? ["run", "--allow-net=127.0.0.1", "--allow-env", self, "server", impl]
    : [self, "server", impl];
  const child = spawn(runtime.path, args, {
    stdio: ["ignore", "pipe", "inherit"],
  });
  // A runtime that cannot be spawned says so here, not as a server that
  // printed nothing.
  const spawnFailed = new Promise<never>((_, reject) =>
    child.once("error", (error) =>
      reject(
        new Error(
          `Cannot start ${impl} server with ${runtime.path} (--${runtime.name} PATH): ${error.message}`,
        ),
      ))
  );
  const port = await Promise.race([
    readyPort(
      Readable.toWeb(child.stdout!) as ReadableStream<Uint8Array>,
      `${impl} server with ${runtime.path}`,
    ),
    spawnFailed,
  ]);
  return {
    port,
    died: () =>
      child.signalCode !== null
        ? `signal ${child.signalCode}`
        : child.exitCode !== null
        ? `exit ${child.exitCode}`
        : undefined,
    async cpuMs() {
      // utime and stime, fields 14 and 15, in clock ticks (100 per second
      // on Linux); the name (field 2) may hold spaces, so count from ")".
      const stat = await readProc(child.pid!, "stat");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return (Number(fields[11]) + Number(fields[12])) * 10;
    },
    async stop() {
      const status = await readProc(child.pid!, "status");
      const peak = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
      // A server that died (an abort) has no status left: NaN, no wait.
      if (child.exitCode !== null || child.signalCode !== null) return peak;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
      return peak;
    },
  };
}

/** /proc/PID/FILE by `cat` (Deno refuses to read /proc); "" elsewhere. */
function readProc(pid: number, file: string): Promise<string> {
  return new Promise((resolve) => {
    const cat = spawn("cat", [`/proc/${pid}/${file}`], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    let text = "";
    cat.stdout!.setEncoding("utf8").on("data", (s: string) => text += s);
    cat.once("error", () => resolve(""));
    cat.once("close", () => resolve(text));
  });
}

// The client: plain fetch with the request bytes encoded once, so that it
// costs little next to the server and the same bytes reach every server.
// It checks every answer (status, sizes, count, the end-of-stream frame).

const CONNECT_HEADERS = { "connect-protocol-version": "1" };

export async function unary(port: number, calls: number): Promise<void> {
  const body = toBinary(
    ChatMessageSchema,
    create(ChatMessageSchema, {
      payload: new Uint8Array(PAYLOAD_BYTES).fill(7),
    }),
  );
  const url = `http://127.0.0.1:${port}/${ChatService.typeName}/Echo`;
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < calls && performance.now() - started < TIME_LIMIT_MS) {
      next++;
      const response = await fetch(url, {
        method: "POST",
        headers: {
          ...CONNECT_HEADERS,
          "content-type": "application/proto",
          // No response compression: Connect-ES's handler compresses
          // nothing unless configured to, so both servers do the same work.
          "accept-encoding": "identity",
        },
        body,
      });
      const answer = await response.arrayBuffer();
      if (response.status !== 200 || answer.byteLength !== body.byteLength) {
        throw new Error(
          `Cannot trust echo: status ${response.status}, ${answer.byteLength} bytes`,
        );
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  if (next < calls) throw new Error(`Cannot finish ${calls} calls in time`);
}

/** Request frames sent per body chunk. */
const BATCH = 256;

export async function bidi(port: number, messages: number): Promise<void> {
  const one = frame(
    0,
    toBinary(
      ChatMessageSchema,
      create(ChatMessageSchema, { text: "hi", numbers: [1, 2] }),
    ),
  );
  const batch = concat(Array.from({ length: BATCH }, () => one));
  let sent = 0;
  const requests = new ReadableStream<Uint8Array>({
    pull(controller) {
      const n = Math.min(BATCH, messages - sent);
      controller.enqueue(
        n === BATCH ? batch : batch.subarray(0, n * one.byteLength),
      );
      sent += n;
      if (sent === messages) controller.close();
    },
  }, { highWaterMark: 0 });
  const response = await fetch(
    `http://127.0.0.1:${port}/${ChatService.typeName}/Chat`,
    {
      method: "POST",
      headers: {
        ...CONNECT_HEADERS,
        "content-type": "application/connect+proto",
      },
      body: requests,
      duplex: "half",
      signal: AbortSignal.timeout(TIME_LIMIT_MS),
    } as RequestInit,
  );
  if (response.status !== 200) {
    throw new Error(`Cannot trust chat: status ${response.status}`);
  }
  // Frames are counted across chunk boundaries: `need` bytes are left of
  // the current frame's header (5) or data.
  let received = 0;
  const header = new Uint8Array(5);
  let inHeader = true;
  let need = 5;
  let end: Uint8Array[] | undefined;
  for await (const chunk of response.body!) {
    let at = 0;
    while (at < chunk.byteLength) {
      const take = Math.min(need, chunk.byteLength - at);
      if (inHeader) header.set(chunk.subarray(at, at + take), 5 - need);
      else if (end) end.push(chunk.slice(at, at + take));
      at += take;
      need -= take;
      if (need > 0) continue;
      if (inHeader) {
        inHeader = false;
        need = new DataView(header.buffer).getUint32(1);
        if (end) throw new Error("Cannot trust chat: a frame after the end");
        if (header[0] === 2) end = [];
        else if (need !== one.byteLength - 5) {
          throw new Error(`Cannot trust chat: a ${need}-byte answer`);
        }
      }
      if (!inHeader && need === 0) {
        if (header[0] !== 2) received++;
        inHeader = true;
        need = 5;
      }
    }
  }
  const status = end && new TextDecoder().decode(concat(end));
  if (status === undefined || "error" in JSON.parse(status)) {
    throw new Error(`Cannot trust chat: end of stream ${status}`);
  }
  if (received !== messages) {
    throw new Error(`Cannot trust chat: ${received} of ${messages} answers`);
  }
}

// The native-gRPC client: one grpc-js client (the peer a Node user would
// pick) for both gRPC servers, one connection per server process, the
// request bytes encoded once (its serialize passes them through), every
// answer checked (status, sizes, count). Closed only once the server has
// stopped: Deno 2.9.6's node:http2 server can abort when a client closes
// after a bidi stream (docs/known-runtime-issues.md (e)).

const grpcClients = new Map<number, GrpcJs.Client>();

function grpcClient(port: number): GrpcJs.Client {
  let client = grpcClients.get(port);
  if (!client) {
    client = new grpc.Client(
      `127.0.0.1:${port}`,
      grpc.credentials.createInsecure(),
      clientOptions,
    );
    grpcClients.set(port, client);
  }
  return client;
}

function closeGrpcClient(port: number): void {
  grpcClients.get(port)?.close();
  grpcClients.delete(port);
}

const passBytes = (b: Buffer) => b;

export async function grpcUnary(port: number, calls: number): Promise<void> {
  const client = grpcClient(port);
  const body = toBuffer(toBinary(
    ChatMessageSchema,
    create(ChatMessageSchema, {
      payload: new Uint8Array(PAYLOAD_BYTES).fill(7),
    }),
  ));
  const path = `/${ChatService.typeName}/Echo`;
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < calls && performance.now() - started < TIME_LIMIT_MS) {
      next++;
      const answer = await new Promise<Buffer>((resolve, reject) =>
        client.makeUnaryRequest(
          path,
          passBytes,
          passBytes,
          body,
          { deadline: Date.now() + TIME_LIMIT_MS },
          (error, value) => error ? reject(error) : resolve(value!),
        )
      );
      if (answer.byteLength !== body.byteLength) {
        throw new Error(`Cannot trust echo: ${answer.byteLength} bytes`);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  if (next < calls) throw new Error(`Cannot finish ${calls} calls in time`);
}

export async function grpcBidi(port: number, messages: number): Promise<void> {
  const client = grpcClient(port);
  const one = toBuffer(toBinary(
    ChatMessageSchema,
    create(ChatMessageSchema, { text: "hi", numbers: [1, 2] }),
  ));
  const call = client.makeBidiStreamRequest(
    `/${ChatService.typeName}/Chat`,
    passBytes,
    passBytes,
    new grpc.Metadata(),
    { deadline: Date.now() + TIME_LIMIT_MS },
  );
  let received = 0;
  const done = new Promise<void>((resolve, reject) => {
    call.on("data", (answer: Buffer) => {
      if (answer.byteLength !== one.byteLength) {
        reject(
          new Error(`Cannot trust chat: a ${answer.byteLength}-byte answer`),
        );
      }
      received++;
    });
    call.on("error", reject);
    call.on("status", (status: GrpcJs.StatusObject) => {
      if (status.code !== grpc.status.OK) {
        reject(
          new Error(
            `Cannot trust chat: status ${status.code} ${status.details}`,
          ),
        );
      } else resolve();
    });
  });
  // Writes honour back-pressure: write() returning false waits for 'drain'.
  let sent = 0;
  const write = () => {
    while (sent < messages) {
      sent++;
      if (!call.write(one)) {
        call.once("drain", write);
        return;
      }
    }
    call.end();
  };
  write();
  await done;
  if (received !== messages) {
    throw new Error(`Cannot trust chat: ${received} of ${messages} answers`);
  }
}

interface Sample {
  impl: Impl | GrpcImpl;
  what: string;
  count: number;
  ms: number;
  rate: number;
  cpuUsPerMessage: number;
  peakMiB: number;
}

async function measure(
  runtime: ServerRuntime,
  impl: Impl | GrpcImpl,
  what: string,
  count: number,
  run: (port: number, count: number) => Promise<void>,
  afterStop?: (port: number) => void,
): Promise<Sample> {
  const child = await startChild(impl, runtime);
  let ms: number;
  let cpuMs: number;
  let peakKiB: number;
  try {
    // Warm-up (JIT), untimed: a tenth of the work, at most 20,000 units.
    await run(child.port, Math.max(1, Math.min(20_000, Math.ceil(count / 10))));
    const cpu0 = await child.cpuMs();
    const started = performance.now();
    await run(child.port, count);
    ms = performance.now() - started;
    cpuMs = await child.cpuMs() - cpu0;
  } catch (error) {
    // The client may see the connection drop before the exit event.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const died = child.died();
    throw died ? new Error(`the server died (${died}): ${error}`) : error;
  } finally {
    peakKiB = await child.stop();
    afterStop?.(child.port);
  }
  return {
    impl,
    what,
    count,
    ms,
    rate: count / (ms / 1000),
    cpuUsPerMessage: cpuMs * 1000 / count,
    peakMiB: peakKiB / 1024,
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    allowPositionals: true,
    options: {
      smoke: { type: "boolean", default: false },
      messages: { type: "string" },
      "peer-messages": { type: "string" },
      calls: { type: "string" },
      reps: { type: "string" },
      only: { type: "string" },
      server: { type: "string" },
      grpc: { type: "string", default: "yes" },
      "grpc-messages": { type: "string" },
      "grpc-calls": { type: "string" },
      deno: { type: "string" },
      bun: { type: "string" },
    },
  });
  if (positionals[0] === "server") {
    const impl = positionals[1] as Impl | GrpcImpl;
    if (![...IMPLS, ...GRPC_IMPLS].includes(impl)) {
      throw new TypeError(`Unknown impl ${impl}`);
    }
    return await runServer(impl);
  }
  const smoke = values.smoke;
  const messages = Number(values.messages ?? (smoke ? 2_000 : 1_000_000));
  const peerMessages = Number(
    values["peer-messages"] ?? (smoke ? 2_000 : 200_000),
  );
  const calls = Number(values.calls ?? (smoke ? 20 : 400));
  const reps = Number(values.reps ?? (smoke ? 1 : 3));
  const only = values.only;
  const client = "Bun" in globalThis ? "bun" : "deno";
  const name = values.server ?? client;
  if (name !== "deno" && name !== "bun") {
    throw new TypeError(`Unknown server runtime ${name}`);
  }
  const server: ServerRuntime = {
    name,
    path: name === client ? process.execPath : values[name] ?? name,
  };
  const runtime = name === "bun" ? "Bun.serve" : "Deno.serve";
  const grpcPart = values.grpc;
  if (!["yes", "no", "only"].includes(grpcPart!)) {
    throw new TypeError(`--grpc takes yes, no or only, not ${grpcPart}`);
  }
  if (grpcPart !== "only") {
    await connectSection({
      server,
      client,
      runtime,
      smoke,
      reps,
      only,
      calls,
      messages,
      peerMessages,
    });
  }
  if (grpcPart === "no") return;
  if (grpcPart !== "only") console.log("");
  await grpcSection({
    server,
    // grpc-js runs under Bun, as in the RPC bench (bench/_rpc.ts under
    // bench/run.ts): where it was fastest when measured here.
    peer: {
      name: "bun",
      path: client === "bun" ? process.execPath : values.bun ?? "bun",
    },
    client,
    smoke,
    reps,
    only,
    calls: Number(values["grpc-calls"] ?? calls),
    messages: Number(values["grpc-messages"] ?? peerMessages),
  });
}

async function connectSection(
  { server, client, runtime, smoke, reps, only, calls, messages, peerMessages }:
    {
      server: ServerRuntime;
      client: string;
      runtime: string;
      smoke: boolean;
      reps: number;
      only: string | undefined;
      calls: number;
      messages: number;
      peerMessages: number;
    },
): Promise<void> {
  const samples: Sample[] = [];
  // Interleaved: each repetition measures every server in turn.
  for (let rep = 0; rep < reps; rep++) {
    for (const impl of IMPLS) {
      if (only !== "bidi") {
        samples.push(await measure(server, impl, UNARY, calls, unary));
      }
    }
    for (const impl of IMPLS) {
      const n = impl === "sluice" ? messages : peerMessages;
      if (only !== "unary") {
        samples.push(await measure(server, impl, BIDI, n, bidi));
      }
    }
  }
  const cases = only === "unary" ? [UNARY] : only === "bidi" ? [BIDI] : [
    UNARY,
    BIDI,
  ];
  const rows = cases.flatMap((what) =>
    IMPLS.map((impl) => {
      const mine = samples.filter((s) => s.impl === impl && s.what === what);
      return {
        impl,
        what,
        count: mine[0].count,
        rate: median(mine.map((s) => s.rate)),
        rates: mine.map((s) => s.rate),
        cpu: median(mine.map((s) => s.cpuUsPerMessage)),
        busy: median(mine.map((s) => s.cpuUsPerMessage * s.rate / 1e4)),
        peakMiB: Math.max(...mine.map((s) => s.peakMiB)),
      };
    })
  );
  console.log(
    `protobuf-es ChatService on ${runtime}: medians of ${reps} interleaved run(s), one ${
      client === "bun" ? "Bun" : "Deno"
    } fetch client (request bytes encoded once, every answer checked)${
      smoke ? " (smoke)" : ""
    }\n`,
  );
  console.log(
    "| server | case | count | rate (/s) | rate vs Connect-ES | server CPU (µs/msg) | CPU vs Connect-ES | server busy | server peak RSS (MiB) |",
  );
  console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const row of rows) {
    const peer = rows.find((r) =>
      r.what === row.what && r.impl === "connect-es"
    )!;
    console.log(
      `| ${LABELS[row.impl]} | ${row.what} | ${row.count} | ${
        row.rate.toFixed(0)
      } (${row.rates.map((r) => r.toFixed(0)).join(", ")}) | ${
        (row.rate / peer.rate).toFixed(2)
      }x | ${row.cpu.toFixed(1)} | ${(peer.cpu / row.cpu).toFixed(2)}x | ${
        row.busy.toFixed(0)
      }% | ${row.peakMiB.toFixed(1)} |`,
    );
  }
  // The issue's targets, with the measured cause when one is missed.
  console.log("");
  for (const [what, target] of [[UNARY, 1], [BIDI, 3]] as const) {
    const row = (impl: Impl) =>
      rows.find((r) => r.what === what && r.impl === impl);
    const [mine, peer, floor] = [row("sluice"), row("connect-es"), row("bare")];
    if (!mine || !peer || !floor) continue;
    const ratio = mine.rate / peer.rate;
    const floorRatio = floor.rate / peer.rate;
    const cpuRatio = peer.cpu / mine.cpu;
    const cause = ratio >= target
      ? "met"
      : floorRatio < target
      ? `missed: not reachable here, the floor (a bare handler, same codec work) reached only ${
        floorRatio.toFixed(2)
      }x`
      : cpuRatio >= target
      ? `missed on rate, met on server CPU per message (${
        cpuRatio.toFixed(2)
      }x); see the repetitions' spread (server ${mine.busy.toFixed(0)}% busy)`
      : `missed: server CPU ${cpuRatio.toFixed(2)}x Connect-ES's, floor ${
        (peer.cpu / floor.cpu).toFixed(2)
      }x`;
    console.log(
      `- ${what}: >= ${target}x Connect-ES's rate on ${runtime}: ${
        ratio.toFixed(2)
      }x, ${cause}.`,
    );
  }
}

/**
 * The native-gRPC section: sluice's serveHttp2 on the `server` runtime and
 * a grpc-js Server on `peer` (Bun), each in its own process, one grpc-js
 * client for both, the same message count for both. A server that fails
 * (Deno's node:http2 can abort, docs/known-runtime-issues.md (e)) is a
 * failed row, not a failed bench.
 */
async function grpcSection(
  { server, peer, client, smoke, reps, only, calls, messages }: {
    server: ServerRuntime;
    peer: ServerRuntime;
    client: string;
    smoke: boolean;
    reps: number;
    only: string | undefined;
    calls: number;
    messages: number;
  },
): Promise<void> {
  await loadGrpcJs();
  clientOptions = (await import("../tests/_calc_peers.ts")).GRPC_JS_OPTIONS;
  const runtimes: Record<GrpcImpl, ServerRuntime> = {
    "sluice-grpc": server,
    "grpc-js": peer,
    "bare-h2": server,
  };
  const cases = only === "unary" ? [UNARY] : only === "bidi" ? [BIDI] : [
    UNARY,
    BIDI,
  ];
  const samples: Sample[] = [];
  const failures = new Map<string, string[]>();
  const key = (impl: GrpcImpl, what: string) => `${impl} ${what}`;
  // Interleaved: each repetition measures every server in turn.
  for (let rep = 0; rep < reps; rep++) {
    for (const what of cases) {
      for (const impl of GRPC_IMPLS) {
        try {
          samples.push(
            await measure(
              runtimes[impl],
              impl,
              what,
              what === UNARY ? calls : messages,
              what === UNARY ? grpcUnary : grpcBidi,
              closeGrpcClient,
            ),
          );
        } catch (error) {
          const list = failures.get(key(impl, what)) ?? [];
          list.push(String(error instanceof Error ? error.message : error));
          failures.set(key(impl, what), list);
          console.error(`${LABELS[impl]}, ${what}: failed: ${error}`);
        }
      }
    }
  }
  const rows = cases.flatMap((what) =>
    GRPC_IMPLS.map((impl) => {
      const mine = samples.filter((s) => s.impl === impl && s.what === what);
      return {
        impl,
        what,
        count: what === UNARY ? calls : messages,
        ok: mine.length > 0,
        failed: failures.get(key(impl, what)) ?? [],
        rate: median(mine.map((s) => s.rate)),
        rates: mine.map((s) => s.rate),
        cpu: median(mine.map((s) => s.cpuUsPerMessage)),
        busy: median(mine.map((s) => s.cpuUsPerMessage * s.rate / 1e4)),
        peakMiB: Math.max(...mine.map((s) => s.peakMiB)),
      };
    })
  );
  const name = (r: ServerRuntime) => r.name === "bun" ? "Bun" : "Deno";
  console.log(
    `protobuf-es ChatService over native gRPC (h2c): sluice's serveHttp2 on ${
      name(server)
    } (node:http2) vs a grpc-js Server on ${
      name(peer)
    }: medians of ${reps} interleaved run(s), one grpc-js client on ${
      client === "bun" ? "Bun" : "Deno"
    } for both (request bytes encoded once, every answer checked)${
      smoke ? " (smoke)" : ""
    }\n`,
  );
  console.log(
    "| server | runtime | case | count | rate (/s) | rate vs grpc-js | server CPU (µs/msg) | CPU vs grpc-js | server busy | server peak RSS (MiB) |",
  );
  console.log(
    "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  );
  for (const row of rows) {
    const ref = rows.find((r) => r.what === row.what && r.impl === "grpc-js")!;
    const label = `| ${LABELS[row.impl]} | ${
      name(runtimes[row.impl])
    } | ${row.what} | ${row.count} |`;
    const failed = row.failed.length
      ? `${row.failed.length} of ${reps} failed: ${
        row.failed[0].replaceAll("|", "/").replaceAll("\n", " ")
      }`
      : "";
    if (!row.ok) {
      console.log(`${label} ${failed} | | | | | |`);
      continue;
    }
    const vs = (x: number) => ref.ok ? `${x.toFixed(2)}x` : "n/a";
    console.log(
      `${label} ${row.rate.toFixed(0)} (${
        row.rates.map((r) => r.toFixed(0)).join(", ")
      }${failed ? `; ${failed}` : ""}) | ${vs(row.rate / ref.rate)} | ${
        row.cpu.toFixed(1)
      } | ${vs(ref.cpu / row.cpu)} | ${row.busy.toFixed(0)}% | ${
        row.peakMiB.toFixed(1)
      } |`,
    );
  }
  console.log("");
  for (const [what, target] of [[UNARY, 1], [BIDI, 3]] as const) {
    const mine = rows.find((r) => r.what === what && r.impl === "sluice-grpc");
    const ref = rows.find((r) => r.what === what && r.impl === "grpc-js");
    if (!mine || !ref) continue;
    if (!mine.ok || !ref.ok) {
      console.log(
        `- ${what}, gRPC: >= ${target}x grpc-js's rate: not measured (${
          mine.ok ? "grpc-js" : "sluice"
        } failed).`,
      );
      continue;
    }
    const ratio = mine.rate / ref.rate;
    const cpuRatio = ref.cpu / mine.cpu;
    const floor = rows.find((r) => r.what === what && r.impl === "bare-h2");
    // Not reachable: a bare server misses it on rate and on CPU too.
    const floorRatio = floor?.ok
      ? Math.max(floor.rate / ref.rate, ref.cpu / floor.cpu)
      : NaN;
    const floorText = floor?.ok
      ? `; the floor (bare node:http2 on ${name(server)}) ${
        (floor.rate / ref.rate).toFixed(2)
      }x on rate, ${(ref.cpu / floor.cpu).toFixed(2)}x on CPU`
      : "";
    const verdict = ratio >= target
      ? "met"
      : floorRatio < target
      ? "missed: not reachable here, the floor is below it on rate and CPU"
      : "missed";
    console.log(
      `- ${what}, gRPC: >= ${target}x grpc-js's rate (sluice on ${
        name(server)
      }): ${ratio.toFixed(2)}x, ${verdict}; server CPU per message ${
        cpuRatio.toFixed(2)
      }x grpc-js's (servers ${mine.busy.toFixed(0)}% and ${
        ref.busy.toFixed(0)
      }% busy)${floorText}.`,
    );
  }
}

if (import.meta.main) {
  main().catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
}
