// An echo server in its own process that reports, on request, how many of
// its echo response bodies are still open and how many descriptors it holds,
// for the test of clients that stop reading and then close (issue 16).
//
//   deno run --allow-all tests/_echo_server.ts     (reading /proc/self/fd needs all)
//
// Prints {"url": ...} once listening; then, for each line on its standard
// input, {"open": n, "fds": m}: n echo response bodies not yet ended (closed,
// errored, or cancelled with the echo's own cancel settled) and m entries in
// /proc/self/fd. Exits when its standard input closes.

import { readdirSync } from "node:fs";
import process from "node:process";
import { createInterface } from "node:readline";
import { echo } from "../lib/http/echo.ts";
import { serve } from "../lib/runtime/serve.ts";
import { watchBody } from "./_helpers.ts";

let open = 0;

// Each echo body counts as open until it ends (closed, errored, or
// cancelled with the echo's own cancel settled): a pipeline that holds a
// stalled client forever never ends.
const server = await serve(async (request) => {
  const response = await echo(request);
  if (!response.body) return response;
  open++;
  return new Response(watchBody(response.body, () => open--), response);
});
console.log(JSON.stringify({ url: server.url.href }));
const lines = createInterface({ input: process.stdin });
lines.on("line", () => {
  console.log(
    JSON.stringify({ open, fds: readdirSync("/proc/self/fd").length }),
  );
});
lines.on("close", () => {
  server.shutdown().then(() => process.exit(0));
});
