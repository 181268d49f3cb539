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

let open = 0;

/**
 * The echo's body, read through a reader that counts it open until it ends:
 * closed, errored, or cancelled by the runtime (once the echo's own cancel
 * has settled). A pipeline that holds a stalled client forever never ends.
 */
function watched(body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  open++;
  let ended = false;
  const end = () => {
    if (!ended) {
      ended = true;
      open--;
    }
  };
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { value, done } = await reader.read();
        if (done) {
          end();
          controller.close();
        } else {
          controller.enqueue(value);
        }
      } catch (error) {
        end();
        throw error;
      }
    },
    cancel: (reason) => reader.cancel(reason).finally(end),
  }, { highWaterMark: 0 });
}

const server = await serve(async (request) => {
  const response = await echo(request);
  return response.body
    ? new Response(watched(response.body), response)
    : response;
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
