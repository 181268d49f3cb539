// A serveHttp2 server in its own process, for tests/faults_http2.test.ts and
// `deno task stress --h2`: its RSS and descriptors are its own.
//
// Usage: <runtime> tests/_h2_server.ts '<ServeHttp2Options as JSON>'
// Prints {"port": N} on its first line of stdout, then answers each line on
// stdin: "stats" with {"rss", "hwm", "peak", "fds", "handlers", "started"}
// (bytes; peak is the highest RSS sampled every 20 ms since the last
// "reset"), "reset" with the same after resetting the peak, "gc" after a full
// garbage collection. Closing stdin stops the server and the process.
//
// Routes: GET /ping answers "pong"; /hold answers after the call's signal
// aborts or 2 s, whichever is first (a handler that does work); /stream
// answers an endless body, 16 KiB a chunk, as it is read ("streaming" in the
// stats counts those not ended by a cancel or the signal, "peakStreaming"
// the most at once); /big answers one
// chunk of 512 KiB; anything else 404.

import { readdirSync, readFileSync } from "node:fs";
import process from "node:process";
import { createInterface } from "node:readline";
import {
  serveHttp2,
  type ServeHttp2Options,
} from "../lib/runtime/serve_http2.ts";
import type { UniversalHandler } from "../lib/rpc/universal.ts";

const options = JSON.parse(
  process.argv[process.argv.length - 1] || "{}",
) as ServeHttp2Options;

let handlers = 0;
let started = 0;
let streaming = 0;
let peakStreaming = 0;
const text = (body: string) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(body));
      controller.close();
    },
  });
const handler: UniversalHandler = async (request) => {
  started++;
  handlers++;
  try {
    const path = new URL(request.url).pathname;
    if (path === "/ping") {
      return { status: 200, headers: new Headers(), body: text("pong") };
    }
    if (path === "/hold") {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 2000);
        request.signal?.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
      return { status: 200, headers: new Headers(), body: text("held") };
    }
    if (path === "/big") {
      return {
        status: 200,
        headers: new Headers(),
        body: new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new Uint8Array(512 * 1024));
            controller.close();
          },
        }),
      };
    }
    if (path === "/stream") {
      peakStreaming = Math.max(peakStreaming, ++streaming);
      let ended = false;
      const end = () => {
        if (!ended) streaming--;
        ended = true;
      };
      request.signal?.addEventListener("abort", end, { once: true });
      return {
        status: 200,
        headers: new Headers(),
        body: new ReadableStream<Uint8Array>({
          pull(controller) {
            controller.enqueue(new Uint8Array(16384));
          },
          cancel: end,
        }, { highWaterMark: 0 }),
      };
    }
    return { status: 404, headers: new Headers() };
  } finally {
    handlers--;
  }
};

function status(): { rss: number; hwm: number } {
  const text = readFileSync("/proc/self/status", "utf8");
  const kib = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0) *
    1024;
  return { rss: kib("VmRSS"), hwm: kib("VmHWM") };
}
let peak = 0;
const sampler = setInterval(() => {
  peak = Math.max(peak, status().rss);
}, 20);
const stats = () => {
  const now = status();
  peak = Math.max(peak, now.rss);
  return {
    ...now,
    peak,
    fds: readdirSync("/proc/self/fd").length,
    handlers,
    started,
    streaming,
    peakStreaming,
  };
};
function collectGarbage(): void {
  const g = globalThis as unknown as {
    Bun?: { gc(force: boolean): void };
    gc?: () => void;
  };
  if (g.Bun) g.Bun.gc(true);
  else g.gc?.();
}

const server = await serveHttp2(handler, options);
process.stdout.write(JSON.stringify({ port: server.port }) + "\n");
const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (line === "gc") collectGarbage();
  if (line === "reset") peak = 0;
  process.stdout.write(JSON.stringify(stats()) + "\n");
});
lines.once("close", async () => {
  clearInterval(sampler);
  await server.shutdown();
  process.exit(0);
});
