// The server side of `deno task stress` (scripts/stress.ts), in its own
// process so that its RSS is its own: uploads into files, the echo handler
// and StreamingCalcService over Connect and gRPC-Web, on one serve() server
// on 127.0.0.1. GET /stats reports RSS (current and the peak of samples
// every 20 ms) and requests in flight; POST /gc runs
// a full garbage collection when the runtime allows it.
//
// Usage: <runtime> scripts/_stress_server.ts <upload-dir>
// Prints {"port": N} on its first line of stdout.

import { join } from "node:path";
import process from "node:process";
import { createUploadHandler, echo, safeFileName } from "../lib/http/mod.ts";
import { createFileSink, createHasher } from "../lib/runtime/fs.ts";
import { createRpcHandler } from "../lib/rpc/mod.ts";
import { serve } from "../lib/runtime/serve.ts";
import { streamingCalc } from "../examples/streaming_calc.ts";
import { formatDigestHeader, type ReceivedBody } from "../mod.ts";
import { watchBody } from "../tests/_helpers.ts";

/** Answers as Ballerina's example does: 200 "File Received!", with Repr-Digest. */
function fileReceived(result: ReceivedBody): Response {
  return new Response("File Received!", {
    headers: result.sha256
      ? { "repr-digest": formatDigestHeader({ "sha-256": result.sha256 }) }
      : undefined,
  });
}

const dir = process.argv[process.argv.length - 1];

let peak = 0;
const sample = () => {
  const rss = process.memoryUsage().rss;
  if (rss > peak) peak = rss;
  return rss;
};
const sampler = setInterval(sample, 20);

function collectGarbage(): boolean {
  const g = globalThis as unknown as {
    Bun?: { gc(force: boolean): void };
    gc?: () => void;
  };
  if (g.Bun) {
    g.Bun.gc(true);
    return true;
  }
  if (typeof g.gc === "function") {
    g.gc();
    return true;
  }
  return false;
}

let inFlight = 0;
/** Counts a request until its response body ends (see watchBody). */
function tracked(response: Response): Response {
  if (!response.body) {
    inFlight--;
    return response;
  }
  const body = watchBody(response.body, () => inFlight--);
  return new Response(body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
}

const receiver = createUploadHandler({
  onComplete: fileReceived,
  sink: (request) =>
    createFileSink(
      join(
        dir,
        safeFileName(new URL(request.url).searchParams.get("name") ?? ""),
      ),
    ),
  hasher: createHasher,
  maxBytes: 8 * 1024 * 1024,
});
// The same receiver with a short rate window, for the refused-uploads round:
// a client under 1 KiB/s is refused after 1 s instead of 30 s.
const strictReceiver = createUploadHandler({
  onComplete: fileReceived,
  sink: (request) =>
    createFileSink(
      join(
        dir,
        safeFileName(new URL(request.url).searchParams.get("name") ?? ""),
      ),
    ),
  maxBytes: 8 * 1024 * 1024,
  minBytesPerSecond: 1024,
  minRateWindowMs: 1000,
});
const rpc = createRpcHandler(streamingCalc);

// The full run opens 1000 streams at once: above serve's default cap of
// 1024 with the stats requests on top, so the cap is raised here.
const server = await serve(async (request) => {
  const { pathname } = new URL(request.url);
  if (pathname === "/stats") {
    return Response.json({
      rss: sample(),
      peak,
      inFlight,
    });
  }
  if (pathname === "/gc") {
    await request.body?.cancel();
    const collected = collectGarbage();
    await new Promise((resolve) => setTimeout(resolve, 200));
    peak = 0;
    return Response.json({ collected, rss: sample() });
  }
  inFlight++;
  try {
    if (pathname === "/upload") return tracked(await receiver(request));
    if (pathname === "/upload-strict") {
      return tracked(await strictReceiver(request));
    }
    if (pathname === "/echo") return tracked(echo(request));
    return tracked(await rpc(request));
  } catch (error) {
    inFlight--;
    throw error;
  }
}, { maxConcurrentRequests: 4096 });

process.stdout.write(JSON.stringify({ port: server.port }) + "\n");
const stop = async () => {
  clearInterval(sampler);
  await server.shutdown();
  process.exit(0);
};
process.on("SIGTERM", () => void stop());
process.stdin.on("end", () => void stop());
process.stdin.resume();
