// StreamingCalcService served by serveHttp2 in its own process, for
// tests/rpc_interop.test.ts. Under Deno, node:http2 can abort or crash the
// process when a session that had streams reset is closed
// (docs/known-runtime-issues.md (e)); in a child that takes down this
// server only, not the test runner, and the test reports it.
//
// Usage: <runtime> tests/_calc_h2_server.ts '<UniversalHandlerOptions as JSON>'
//   ['<ServeHttp2Options as JSON>']
// Prints {"port": N} once listening; closing stdin shuts it down and exits.

import process from "node:process";
import { createUniversalHandler } from "../lib/rpc/mod.ts";
import { serveHttp2 } from "../lib/runtime/serve_http2.ts";
import { streamingCalc } from "../examples/streaming_calc.ts";

const [options = "{}", serveOptions = "{}"] = process.argv.slice(2);
const server = await serveHttp2(
  createUniversalHandler(streamingCalc, JSON.parse(options)),
  JSON.parse(serveOptions),
);
console.log(JSON.stringify({ port: server.port }));
process.stdin.on("data", () => {});
process.stdin.once("end", async () => {
  await server.shutdown();
  process.exit(0);
});
