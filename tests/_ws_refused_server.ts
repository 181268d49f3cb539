// A server in its own process for tests/websocket_upgrade_refused.test.ts:
// a refused WebSocket upgrade once exited a Bun server (a handler's
// rejection after Bun had answered the request itself went unhandled).
//
//   deno run --allow-all tests/_ws_refused_server.ts  |  bun tests/_ws_refused_server.ts
//
// Prints {"port": ...} once listening; then, for each line on its standard
// input, {"errors": [...]}: the messages of the errors passed to onError so
// far. Exits when its standard input closes. Routes, each behind an async
// function as a router would mount it:
// - /rpc: createWebSocketRpcHandler;
// - /bun-refused (Bun): server.upgrade on the request as it is (Bun
//   answers a wrong version 426 itself), then the handler fails;
// - anything else: 200.

import process from "node:process";
import { createInterface } from "node:readline";
import { serve } from "../lib/runtime/serve.ts";
import { createWebSocketRpcHandler } from "../lib/runtime/websocket.ts";
import { bunServerFor } from "../lib/runtime/_websocket_bun.ts";
import { defineService, implementService, Int64Value } from "../lib/rpc/mod.ts";
import { messageOf } from "../lib/_internal/message_of.ts";

const Calc = defineService("Calc", {
  unary: { kind: "unary", input: Int64Value, output: Int64Value },
});
const rpc = createWebSocketRpcHandler(
  implementService(Calc, { unary: (value: bigint) => value }),
);
const errors: string[] = [];

const server = await serve(async (request) => {
  const path = new URL(request.url).pathname;
  if (path === "/rpc") return await rpc(request);
  if (path === "/bun-refused") {
    const upgraded = bunServerFor(request)?.upgrade(request);
    await Promise.resolve();
    throw new Error(`the handler failed after server.upgrade gave ${upgraded}`);
  }
  return new Response("alive");
}, {
  onError: (error) => {
    errors.push(messageOf(error));
    return new Response("failed", { status: 500 });
  },
});
console.log(JSON.stringify({ port: server.port }));
const lines = createInterface({ input: process.stdin });
lines.on("line", () => console.log(JSON.stringify({ errors })));
lines.on("close", () => {
  server.shutdown().then(() => process.exit(0));
});
