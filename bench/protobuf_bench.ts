// protobuf-es services served by sluice vs Connect-ES's own fetch handler,
// on the same server (Deno.serve or Bun.serve) and called by the same
// client (sluice's Connect client over HTTP/1.1 fetch), for ChatService
// (tests/proto/chat.proto, generated code in tests/gen/):
//
// - large_unary-like: `Echo` of a 256 KiB `bytes` payload, 4 calls at a
//   time, the request body streamed (sluice's client) or sent whole (as
//   browsers and Connect-ES send unary requests);
// - a bidi stream (`Chat`) of many small messages, echoed one for one.
//
// Each server runs in its own process, started fresh for each measurement,
// so its peak RSS (VmHWM, Linux) is its own. Standalone, not part of
// `deno task bench`:
//
//   deno run --allow-net=127.0.0.1 --allow-read --allow-run --allow-env bench/protobuf_bench.ts [--smoke] [--messages N] [--calls N]
//   bun bench/protobuf_bench.ts [--smoke] [--messages N] [--calls N]
//
// Defaults: 1,000,000 messages and 1,000 calls; --smoke: 2,000 and 20.
// Every answer is checked (counts and payload sizes).

import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import process from "node:process";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import { createConnectRouter } from "@connectrpc/connect";
import {
  createFetchHandler,
  type UniversalHandler as ConnectUniversalHandler,
} from "@connectrpc/connect/protocol";
import { createClient, implementService } from "../lib/protobuf/mod.ts";
import { createConnectTransport, createRpcHandler } from "../lib/rpc/mod.ts";
import { serve } from "../lib/runtime/serve.ts";
import { ChatMessageSchema, ChatService } from "../tests/gen/chat_pb.ts";

type Impl = "sluice" | "connect-es";
const IMPLS: Impl[] = ["sluice", "connect-es"];
const PAYLOAD_BYTES = 256 * 1024;
const CONCURRENCY = 4;
const TIME_LIMIT_MS = 120_000;

// ---------- servers ----------

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

async function runServer(impl: Impl): Promise<void> {
  const server = await serve(
    impl === "sluice" ? sluiceHandler() : connectHandler(),
    { port: 0 },
  );
  console.log(`READY ${server.port}`);
  // Runs until the parent kills it.
}

// ---------- the parent: servers in child processes, the client here ----------

interface Child {
  port: number;
  /** Peak RSS in KiB (VmHWM), then stops the server. */
  stop(): Promise<number>;
}

async function startChild(impl: Impl): Promise<Child> {
  const self = new URL(import.meta.url).pathname;
  const isDeno = "Deno" in globalThis;
  const args = isDeno
    ? ["run", "--allow-net=127.0.0.1", "--allow-env", self, "server", impl]
    : [self, "server", impl];
  const child = spawn(process.execPath, args, {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    lines.once("line", (line) => {
      const match = /^READY (\d+)$/.exec(line);
      if (match) resolve(Number(match[1]));
      else reject(new Error(`Cannot start ${impl} server: ${line}`));
    });
    child.once(
      "exit",
      (code) => reject(new Error(`Cannot start ${impl} server: exit ${code}`)),
    );
  });
  return {
    port,
    async stop() {
      const peak = await peakKiB(child.pid!);
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
      return peak;
    },
  };
}

/** VmHWM of a process in KiB, by `cat` (Deno refuses to read /proc). */
function peakKiB(pid: number): Promise<number> {
  return new Promise((resolve) => {
    const cat = spawn("cat", [`/proc/${pid}/status`], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    let status = "";
    cat.stdout!.setEncoding("utf8").on("data", (s: string) => status += s);
    // Not Linux (no /proc): the peak is unknown (NaN).
    cat.once("error", () => resolve(NaN));
    cat.once(
      "close",
      () => resolve(Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN)),
    );
  });
}

interface Row {
  impl: Impl;
  what: string;
  count: number;
  ms: number;
  rate: number;
  peakMiB: number;
}

/**
 * fetch that sends a request body whole (with a Content-Length), as
 * browsers' and Connect-ES's unary clients do, where sluice's client
 * streams it (chunked).
 */
const wholeBodyFetch: typeof fetch = async (input, init) => {
  const body = init?.body instanceof ReadableStream
    ? new Uint8Array(await new Response(init.body).arrayBuffer())
    : init?.body;
  const { duplex: _duplex, ...rest } = (init ?? {}) as RequestInit & {
    duplex?: string;
  };
  return fetch(input, { ...rest, body });
};

async function unary(
  port: number,
  calls: number,
  whole: boolean,
): Promise<number> {
  const client = createClient(
    ChatService,
    // No compression either way: Connect-ES's handler compresses nothing
    // unless configured to, so both servers do the same work.
    createConnectTransport({
      baseUrl: `http://127.0.0.1:${port}`,
      acceptCompression: [],
      fetch: whole ? wholeBodyFetch : undefined,
    }),
  );
  const payload = new Uint8Array(PAYLOAD_BYTES).fill(7);
  const request = create(ChatMessageSchema, { payload });
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < calls && performance.now() - started < TIME_LIMIT_MS) {
      next++;
      const response = await client.echo(request);
      if (response.payload.length !== PAYLOAD_BYTES) {
        throw new Error(
          `Cannot trust echo: got ${response.payload.length} bytes`,
        );
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  if (next < calls) throw new Error(`Cannot finish ${calls} calls in time`);
  return performance.now() - started;
}

async function bidi(port: number, messages: number): Promise<number> {
  const client = createClient(
    ChatService,
    createConnectTransport({ baseUrl: `http://127.0.0.1:${port}` }),
  );
  const message = create(ChatMessageSchema, { text: "hi", numbers: [1, 2] });
  const started = performance.now();
  const call = client.chat();
  const receiving = (async () => {
    let received = 0;
    for await (const m of call.responses) {
      if (m.text !== "hi") throw new Error("Cannot trust chat: wrong message");
      received++;
    }
    return received;
  })();
  for (let i = 0; i < messages; i++) {
    if (performance.now() - started > TIME_LIMIT_MS) {
      call.cancel();
      throw new Error(`Cannot send ${messages} messages in time`);
    }
    await call.send(message);
  }
  await call.complete();
  const received = await receiving;
  if (received !== messages) {
    throw new Error(`Cannot trust chat: ${received} of ${messages} answers`);
  }
  return performance.now() - started;
}

async function measure(
  impl: Impl,
  what: string,
  count: number,
  run: (port: number, count: number) => Promise<number>,
): Promise<Row> {
  const child = await startChild(impl);
  let ms: number;
  let peakKiB: number;
  try {
    // Warm-up (JIT), untimed: a tenth of the work, at most 1,000 units.
    await run(child.port, Math.max(1, Math.min(1_000, Math.ceil(count / 10))));
    ms = await run(child.port, count);
  } finally {
    peakKiB = await child.stop();
  }
  return {
    impl,
    what,
    count,
    ms,
    rate: count / (ms / 1000),
    peakMiB: peakKiB / 1024,
  };
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    allowPositionals: true,
    options: {
      smoke: { type: "boolean", default: false },
      messages: { type: "string" },
      calls: { type: "string" },
    },
  });
  if (positionals[0] === "server") {
    const impl = positionals[1] as Impl;
    if (!IMPLS.includes(impl)) throw new TypeError(`Unknown impl ${impl}`);
    return await runServer(impl);
  }
  const messages = Number(
    values.messages ?? (values.smoke ? 2_000 : 1_000_000),
  );
  const calls = Number(values.calls ?? (values.smoke ? 20 : 1_000));
  const runtime = "Bun" in globalThis ? "Bun.serve" : "Deno.serve";
  const rows: Row[] = [];
  // Interleaved: sluice, Connect-ES, sluice, Connect-ES.
  for (const whole of [false, true]) {
    for (const impl of IMPLS) {
      rows.push(
        await measure(
          impl,
          whole ? "unary 256 KiB, whole body" : "unary 256 KiB, streamed body",
          calls,
          (port, count) => unary(port, count, whole),
        ),
      );
    }
  }
  for (const impl of IMPLS) {
    rows.push(
      await measure(impl, "bidi small", messages, bidi),
    );
  }
  console.log(
    `protobuf-es ChatService on ${runtime}, sluice's Connect client over HTTP/1.1 fetch${
      values.smoke ? " (smoke)" : ""
    }\n`,
  );
  console.log(
    "| server | case | count | time (ms) | rate (/s) | vs Connect-ES | server peak RSS (MiB) |",
  );
  console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
  for (const row of rows) {
    const peer = rows.find((r) =>
      r.what === row.what && r.impl === "connect-es"
    )!;
    console.log(
      `| ${row.impl} | ${row.what} | ${row.count} | ${row.ms.toFixed(0)} | ${
        row.rate.toFixed(0)
      } | ${(row.rate / peer.rate).toFixed(2)}x | ${row.peakMiB.toFixed(1)} |`,
    );
  }
}

if (import.meta.main) {
  main().catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
}
