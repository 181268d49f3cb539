// Load-growth benchmark, one side per process (run by bench/run.ts under
// Deno or Bun):
//
//   _load.ts server <kind>                          prints "READY <port>"
//   _load.ts client <kind> <port> <streams> <total> prints one JSON result line
//   _load.ts idle <kind> <port> <n1,n2,...>         opens idle streams up
//                                                   to each count in turn,
//                                                   printing "OPEN <count>",
//                                                   then waits to be killed
//
// kind: echo (the library's `echo`; client: <streams> concurrent fetches
// sharing <total> bytes), echo-bare (`new Response(request.body)`), upload
// (`createUploadHandler` into a sink that drops the bytes; client: the
// library's `upload`), upload-bare (a raw handler that only reads the body;
// client: the runtime's own fetch, sending the same Content-Length), rpc
// (StreamingCalcService over native gRPC, h2c, node:http2; client:
// <streams> concurrent incrementalSum calls sharing <total> messages on one
// session; idle: calls that sent one message, got its reply and stay open),
// rpc-bare (a bare node:http2 server that echoes each stream's bytes: the
// runtime's own cost of an open h2 stream), ws (the library's
// `upgradeWebSocket` + `websocketDuplex`, echoing), ws-bare (the runtime's
// own WebSocket upgrade, echoing). Every wait is bounded by bench/run.ts,
// which kills a process that overruns.

import process from "node:process";
import http2 from "node:http2";
import { echo } from "../lib/http/echo.ts";
import { createUploadHandler } from "../lib/http/upload_handler.ts";
import { upload } from "../lib/http/upload.ts";
import { websocketDuplex } from "../lib/http/websocket_duplex.ts";
import { upgradeWebSocket } from "../lib/runtime/websocket.ts";
import { serve } from "../lib/runtime/serve.ts";
import { serveRaw } from "./_loopback.ts";
import { createClient } from "../lib/rpc/mod.ts";
import {
  makeTransport,
  serverOptions,
  streamingCalc,
  StreamingCalcService,
} from "../examples/streaming_calc.ts";
import { serveHttp2 } from "../lib/runtime/serve_http2.ts";
import { createUniversalHandler } from "../lib/rpc/server/create_universal_handler.ts";

// deno-lint-ignore no-explicit-any
const Bun = (globalThis as any).Bun;

/** A bare WebSocket echo with the runtime's own API. */
function serveBareWebSocket(): Promise<number> {
  if (Bun) {
    const server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch(request: Request, srv: { upgrade(r: Request): boolean }) {
        return srv.upgrade(request)
          ? undefined
          : new Response("no", { status: 400 });
      },
      websocket: {
        message(ws: { send(m: unknown): void }, m: unknown) {
          ws.send(m);
        },
      },
    });
    return Promise.resolve(server.port);
  }
  return serveRaw((request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => socket.send(event.data);
    return response;
  });
}

async function startServer(kind: string): Promise<number> {
  switch (kind) {
    case "echo":
      return (await serve((request) => echo(request))).port;
    case "echo-bare":
      return await serveRaw((request) => new Response(request.body));
    case "upload-bare":
      return await serveRaw(async (request) => {
        const reader = request.body!.getReader();
        while (!(await reader.read()).done);
        return new Response("ok");
      });
    case "upload":
      return (await serve(createUploadHandler({
        sink: () => new WritableStream<Uint8Array>(),
        maxBytes: Number.MAX_SAFE_INTEGER,
      }))).port;
    case "rpc":
      // The example's server, with serveHttp2's stream limits (128 per
      // session, 4,096 in all) raised to what these runs open on their one
      // session, and no bound of streams per session (the default); the bare
      // server below has node:http2's own (no) limit.
      return (await serveHttp2(
        createUniversalHandler(streamingCalc, serverOptions),
        {
          maxConcurrentStreams: 20_000,
          maxOpenStreams: 20_000,
          maxStreamsPerSession: 0,
        },
      )).port;
    case "rpc-bare": {
      const server = http2.createServer();
      server.on("stream", (stream: http2.ServerHttp2Stream) => {
        stream.respond({ ":status": 200 });
        stream.on("data", (chunk) => stream.write(chunk));
        stream.on("end", () => stream.end());
        stream.on("error", () => {});
      });
      const { promise, resolve } = Promise.withResolvers<number>();
      server.listen(0, "127.0.0.1", () => {
        resolve((server.address() as { port: number }).port);
      });
      return await promise;
    }
    case "ws":
      return (await serve((request) => {
        const { socket, response } = upgradeWebSocket(request);
        const stream = websocketDuplex(socket);
        (async () => {
          for await (const chunk of stream) await stream.write(chunk);
          await stream.close();
        })().catch((error) => stream.close(error).catch(() => {}));
        return response;
      })).port;
    case "ws-bare":
      return await serveBareWebSocket();
  }
  throw new TypeError(`Unknown server kind ${kind}`);
}

/** A body of `size` bytes in fresh 64 KiB chunks, made as it is read. */
function generated(size: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= size) {
        controller.close();
        return;
      }
      const n = Math.min(65536, size - sent);
      sent += n;
      controller.enqueue(new Uint8Array(n));
    },
  }, { highWaterMark: 0 });
}

/** Runs `streams` concurrent streams sharing `total` bytes or messages. */
async function runClient(
  kind: string,
  port: number,
  streams: number,
  total: number,
): Promise<{ ms: number; units: number }> {
  const url = `http://127.0.0.1:${port}/`;
  const each = Math.max(1, Math.floor(total / streams));
  if (kind === "rpc-bare") {
    // The runtime's own floor for the rpc run: the same streams on one
    // node:http2 session, each writing `each` 7-byte frames (an Int64Value
    // message's size) and reading their echo, no library code.
    const session = http2.connect(url);
    session.on("error", () => {});
    const frame = new Uint8Array([0, 0, 0, 0, 2, 8, 1]);
    const batch = new Uint8Array(frame.length * 64);
    for (let i = 0; i < 64; i++) batch.set(frame, i * frame.length);
    const one = (n: number) =>
      new Promise<void>((resolve, reject) => {
        const stream = session.request({ ":method": "POST", ":path": "/" });
        let left = n * frame.length;
        stream.on("data", (chunk: Uint8Array) => {
          left -= chunk.byteLength;
          if (left <= 0) resolve();
        });
        stream.on("error", reject);
        // Written as a client writes messages one at a time, 64 per write
        // call at most, honouring back-pressure.
        let sent = 0;
        const go = () => {
          while (sent < n) {
            const k = Math.min(64, n - sent);
            sent += k;
            const ok = stream.write(batch.subarray(0, k * frame.length));
            if (!ok) return void stream.once("drain", go);
          }
          stream.end();
        };
        go();
      });
    await one(Math.min(each, 10_000)); // warm-up, on the same session
    const start = performance.now();
    await Promise.all(Array.from({ length: streams }, () => one(each)));
    const ms = performance.now() - start;
    session.close();
    return { ms, units: each * streams };
  }
  if (kind === "rpc") {
    const { transport, close } = makeTransport("grpc", url);
    const client = createClient(StreamingCalcService, transport);
    const one = async (n: number) => {
      const call = client.incrementalSum();
      const sending = (async () => {
        for (let i = 1; i <= n; i++) await call.send(BigInt(i));
        await call.complete();
      })();
      let count = 0;
      for (let r = await call.receive(); !r.done; r = await call.receive()) {
        count++;
      }
      await sending;
      if (count !== n) throw new Error(`Got ${count} of ${n} replies`);
    };
    await one(Math.min(each, 10_000)); // warm-up, on the same session
    const start = performance.now();
    await Promise.all(Array.from({ length: streams }, () => one(each)));
    const ms = performance.now() - start;
    await close();
    return { ms, units: each * streams };
  }
  const one = async (bytes: number) => {
    if (kind === "upload-bare") {
      // The same request as the library's client sends: a stream body
      // with its Content-Length (chunked framing costs a server more).
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-length": String(bytes) },
        body: generated(bytes),
        duplex: "half",
      } as RequestInit);
      await response.arrayBuffer();
      if (!response.ok) throw new Error(`Upload: ${response.status}`);
      return;
    }
    if (kind === "upload") {
      const response = await upload(url, generated(bytes), {
        contentLength: bytes,
      });
      await response.arrayBuffer();
      if (!response.ok) throw new Error(`Upload: ${response.status}`);
      return;
    }
    const response = await fetch(url, {
      method: "POST",
      body: generated(bytes),
      duplex: "half",
    } as RequestInit);
    let received = 0;
    for await (const chunk of response.body!) received += chunk.byteLength;
    if (received !== bytes) throw new Error(`Echo: ${received} of ${bytes}`);
  };
  await one(Math.min(each, 1 << 20)); // warm-up
  const start = performance.now();
  await Promise.all(Array.from({ length: streams }, () => one(each)));
  return { ms: performance.now() - start, units: each * streams };
}

/** Opens `count` idle streams, each having made one round trip. */
async function openIdle(kind: string, port: number, steps: number[]) {
  const url = `http://127.0.0.1:${port}/`;
  // Opened in batches, so that a loaded machine is not asked for
  // thousands of handshakes at once.
  const batch = async (open: () => Promise<void>) => {
    let opened = 0;
    for (const count of steps) {
      for (; opened < count; opened += Math.min(250, count - opened)) {
        await Promise.all(
          Array.from({ length: Math.min(250, count - opened) }, open),
        );
      }
      // Lets the server settle before bench/run.ts reads its RSS.
      await new Promise((resolve) => setTimeout(resolve, 200));
      console.log(`OPEN ${count}`);
    }
  };
  if (kind === "rpc") {
    const { transport } = makeTransport("grpc", url);
    const client = createClient(StreamingCalcService, transport);
    await batch(async () => {
      const call = client.incrementalSum();
      await call.send(1n);
      const r = await call.receive();
      if (r.done || r.value !== 1n) throw new Error("Idle: wrong reply");
    });
  } else if (kind === "rpc-bare") {
    const session = http2.connect(url);
    session.on("error", () => {});
    await batch(() =>
      new Promise<void>((resolve, reject) => {
        const stream = session.request({ ":method": "POST", ":path": "/" });
        stream.on("error", reject);
        stream.once("data", () => resolve());
        stream.write(new Uint8Array(7));
      })
    );
  } else if (kind === "ws" || kind === "ws-bare") {
    await batch(() =>
      new Promise<void>((resolve, reject) => {
        const socket = new WebSocket(`ws://127.0.0.1:${port}/`);
        socket.binaryType = "arraybuffer";
        socket.onopen = () => socket.send(new Uint8Array(7));
        socket.onmessage = () => resolve();
        socket.onerror = () => reject(new Error("WebSocket failed"));
      })
    );
  } else throw new TypeError(`Unknown idle kind ${kind}`);
  // Stays open until bench/run.ts kills this process.
  await new Promise(() => setInterval(() => {}, 60_000));
}

if (import.meta.main) {
  const [side, kind, a, b, c] = process.argv.slice(2);
  if (side === "server") {
    console.log(`READY ${await startServer(kind)}`);
  } else if (side === "client") {
    const result = await runClient(kind, Number(a), Number(b), Number(c));
    console.log(JSON.stringify(result));
    process.exit(0);
  } else if (side === "idle") {
    await openIdle(kind, Number(a), b.split(",").map(Number));
  } else {
    console.error(
      "Usage: _load.ts server <kind> | client <kind> <port> <streams> <total> | idle <kind> <port> <n1,n2,...>",
    );
    process.exit(2);
  }
}
