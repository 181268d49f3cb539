// An echo server in its own process that reports its open file descriptors,
// for the test of clients that stop reading and then close (issue 16).
//
//   deno run --allow-all tests/_echo_server.ts     (reading /proc/self/fd needs all)
//
// Prints {"url": ...} once listening; then, for each line on its standard
// input, {"fds": n}, the number of entries in /proc/self/fd. Exits when its
// standard input closes.

import { readdirSync } from "node:fs";
import process from "node:process";
import { createInterface } from "node:readline";
import { echo } from "../lib/http/echo.ts";
import { serve } from "../lib/runtime/serve.ts";

const server = await serve((request) => echo(request));
console.log(JSON.stringify({ url: server.url.href }));
const lines = createInterface({ input: process.stdin });
lines.on("line", () => {
  console.log(JSON.stringify({ fds: readdirSync("/proc/self/fd").length }));
});
lines.on("close", () => {
  server.shutdown().then(() => process.exit(0));
});
