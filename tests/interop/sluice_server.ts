// sluice serving grpc.testing.TestService, in its own process (run with
// `deno run` or `bun run` by tests/interop.test.ts): createRpcHandler on
// the runtime's own server (Deno.serve / Bun.serve, HTTP/1.1: Connect and
// gRPC-Web) and serveHttp2 (h2c: gRPC, gRPC-Web and Connect). Prints one
// JSON line, { "h1": url, "h2": url }, and shuts down when stdin closes.

import process from "node:process";
import { createRpcHandler, createUniversalHandler } from "../../lib/rpc/mod.ts";
import { serve } from "../../lib/runtime/serve.ts";
import { serveHttp2 } from "../../lib/runtime/grpc_node.ts";
import { sluiceTestService } from "./test_service.ts";

const h1 = await serve(createRpcHandler(sluiceTestService), {
  hostname: "127.0.0.1",
  port: 0,
});
const h2 = await serveHttp2(createUniversalHandler(sluiceTestService));
console.log(JSON.stringify({ h1: h1.url.origin, h2: h2.url.origin }));

process.stdin.resume();
process.stdin.on("end", async () => {
  await Promise.race([
    Promise.all([h1.shutdown(), h2.shutdown()]),
    new Promise((resolve) => setTimeout(resolve, 2000)),
  ]);
  process.exit(0);
});
