// The browser demo: one fetch handler serving a page (examples/web/
// index.html and its script, app.ts bundled for the browser at start-up), a
// streaming upload that answers the body's SHA-256, a Server-Sent Events
// feed and an echo chat over a WebSocket duplex stream.
//
//   deno task web                          (http://127.0.0.1:8000/)
//   bun run examples/web/server.ts
//   ... server.ts --port 0                 (any free port)
//
// Routes:
//   GET  /          the page
//   GET  /app.js    the page's script
//   POST /upload    hashes the body as it arrives, answers {bytes, sha256}
//   GET  /feed      Server-Sent Events: a tick a second, resumed by Last-Event-ID
//   GET  /chat      WebSocket: answers each line with "echo: <line>"
//   GET  /rpc-ws    RPC over WebSocket (sluice.rpc.v1): StreamingCalcService

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import process from "node:process";
import { createSseHandler } from "../../lib/http/sse_response.ts";
import { websocketDuplex } from "../../lib/http/websocket_duplex.ts";
import { serve } from "../../lib/runtime/serve.ts";
import {
  createWebSocketRpcHandler,
  upgradeWebSocket,
} from "../../lib/runtime/websocket.ts";
import { streamingCalc } from "../streaming_calc.ts";

const HERE = resolve(import.meta.dirname ?? ".");
const ROOT = resolve(HERE, "..", "..");

/** Options for {@linkcode createDemoHandler}. */
export interface DemoOptions {
  /** The page's script (app.ts bundled for the browser). */
  appScript: Uint8Array;
  /** The largest upload accepted, in bytes. @default {1073741824} */
  maxUploadBytes?: number;
  /** Milliseconds between two feed events. @default {1000} */
  tickMs?: number;
}

function wait(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((done) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      done();
    }, { once: true });
  });
}

async function receive(request: Request, maxBytes: number): Promise<Response> {
  const hash = createHash("sha256");
  let bytes = 0;
  try {
    for await (const chunk of request.body ?? []) {
      bytes += chunk.byteLength;
      if (bytes > maxBytes) {
        return new Response(
          `Cannot receive upload: size exceeds maxUploadBytes ${maxBytes}`,
          { status: 413 },
        );
      }
      hash.update(chunk);
    }
  } catch (error) {
    return new Response(`Cannot receive upload: ${error}`, { status: 400 });
  }
  return Response.json({ bytes, sha256: hash.digest("hex") });
}

function chat(request: Request): Response {
  const { socket, response } = upgradeWebSocket(request);
  const stream = websocketDuplex(socket);
  (async () => {
    for await (const line of stream.lines()) {
      await stream.write(`echo: ${line}\n`);
    }
    await stream.close();
  })().catch((error) => stream.close(error));
  return response;
}

/**
 * The demo's fetch handler.
 *
 * @param options The page's script and limits.
 * @returns A handler for `serve`, `Deno.serve` or `Bun.serve`.
 */
export async function createDemoHandler(
  options: DemoOptions,
): Promise<(request: Request) => Promise<Response>> {
  const html = await readFile(join(HERE, "index.html"), "utf8");
  const maxUploadBytes = options.maxUploadBytes ?? 1024 * 1024 * 1024;
  const tickMs = options.tickMs ?? 1000;
  const feed = createSseHandler(async function* (_request, info) {
    let n = info.lastEventId === "" ? 0 : Number(info.lastEventId) || 0;
    yield { retry: 2000 };
    while (!info.signal.aborted) {
      n++;
      yield {
        event: "tick",
        id: String(n),
        data: JSON.stringify({ n, time: Date.now() }),
      };
      await wait(tickMs, info.signal);
    }
  });
  const rpc = createWebSocketRpcHandler(streamingCalc);
  return async (request) => {
    const { pathname } = new URL(request.url);
    switch (pathname) {
      case "/":
        return new Response(html, {
          headers: { "content-type": "text/html; charset=utf-8" },
        });
      case "/app.js":
        return new Response(options.appScript as Uint8Array<ArrayBuffer>, {
          headers: { "content-type": "text/javascript; charset=utf-8" },
        });
      case "/upload":
        if (request.method !== "POST") break;
        return await receive(request, maxUploadBytes);
      case "/feed":
        return await feed(request);
      case "/chat":
        return chat(request);
      case "/rpc-ws":
        return await rpc(request);
    }
    return new Response("Not Found", { status: 404 });
  };
}

/**
 * Bundles app.ts for the browser: with `Bun.build` under Bun, else with
 * `deno bundle` (written to .tmp/web/app.js).
 *
 * @returns The bundled script.
 */
export async function buildApp(): Promise<Uint8Array> {
  const entry = join(HERE, "app.ts");
  const bun = (globalThis as {
    Bun?: {
      build(options: { entrypoints: string[]; target: string }): Promise<{
        success: boolean;
        logs: unknown[];
        outputs: { arrayBuffer(): Promise<ArrayBuffer> }[];
      }>;
    };
  }).Bun;
  if (bun) {
    const result = await bun.build({ entrypoints: [entry], target: "browser" });
    if (!result.success) {
      throw new Error(`Cannot bundle app.ts: ${result.logs.join("\n")}`);
    }
    return new Uint8Array(await result.outputs[0].arrayBuffer());
  }
  const out = join(ROOT, ".tmp", "web", "app.js");
  await mkdir(join(ROOT, ".tmp", "web"), { recursive: true });
  const deno = "Deno" in globalThis ? process.execPath : "deno";
  const code = await new Promise<number | null>((done, fail) => {
    const child = spawn(
      deno,
      ["bundle", "--quiet", "--platform=browser", "--output", out, entry],
      { cwd: ROOT, stdio: "inherit" },
    );
    child.on("error", fail);
    child.on("close", done);
  });
  if (code !== 0) throw new Error(`Cannot bundle app.ts: deno exited ${code}`);
  return await readFile(out);
}

if (import.meta.main) {
  const at = process.argv.indexOf("--port");
  const port = at === -1 ? 8000 : Number(process.argv[at + 1]);
  const handler = await createDemoHandler({ appScript: await buildApp() });
  const server = await serve(handler, { hostname: "127.0.0.1", port });
  console.log(`sluice web demo on ${server.url}`);
}
