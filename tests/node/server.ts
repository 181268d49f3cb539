// The Worker of examples/workers/ served by Deno.serve or Bun.serve (the same
// module, its `fetch` called with a small env), plus StreamingCalcService
// over native gRPC with node:http2, plus a resumable-upload server on the
// file store (in a temporary directory under .tmp/) — the servers
// tests/node/clients.ts drives from Node.
//
//   deno run --allow-net=127.0.0.1 --allow-env tests/node/server.ts
//   bun run tests/node/server.ts
//
// Prints one JSON line, {"url": ..., "grpcUrl": ..., "resumableUrl": ...,
// "resumableDir": ...}, once all listen, and runs until stdin closes or it
// is killed.

import process from "node:process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import worker, { type Env } from "../../examples/workers/worker.ts";
import { streamingCalc } from "../../examples/streaming_calc.ts";
import { createUniversalHandler } from "../../lib/rpc/mod.ts";
import { serveHttp2 } from "../../lib/runtime/grpc_node.ts";
import { serve } from "../../lib/runtime/serve.ts";
import { createResumableUploadHandler } from "../../lib/http/mod.ts";
import {
  createHasher,
  createResumableFileStore,
} from "../../lib/runtime/fs.ts";

const env: Env = {
  MAX_UPLOAD_BYTES: String(8 * 1024 * 1024),
  SELF: { fetch: (input, init) => fetch(input, init) },
};
const server = await serve((request) => worker.fetch(request, env));
const grpc = await serveHttp2(createUniversalHandler(streamingCalc));
await mkdir(".tmp", { recursive: true });
const resumableDir = await mkdtemp(
  join(process.cwd(), ".tmp", "node-resumable-"),
);
const resumable = await serve(createResumableUploadHandler({
  store: createResumableFileStore(resumableDir),
  hasher: createHasher,
  maxBytes: 64 * 1024 * 1024,
}));
console.log(JSON.stringify({
  url: server.url.href,
  grpcUrl: grpc.url.href,
  resumableUrl: new URL("/uploads", resumable.url).href,
  resumableDir,
}));

process.stdin.resume();
process.stdin.on("end", async () => {
  await Promise.all([
    server.shutdown(),
    grpc.shutdown(),
    resumable.shutdown(),
  ]);
  await rm(resumableDir, { recursive: true, force: true });
  process.exit(0);
});
