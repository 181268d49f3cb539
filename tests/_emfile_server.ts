// `serve` in its own process, for tests/faults_serve.test.ts: started under
// a low descriptor limit (`ulimit -n`), it is run out of descriptors by
// connections that never finish their headers.
//
//   bash -c 'ulimit -n 256; exec deno run --allow-net=127.0.0.1 tests/_emfile_server.ts'
//
// Prints {"port": N} once listening and answers every request with "ok".
// Closing its standard input shuts the server down; the process then exits
// with 0 (or 1 if `finished` rejected).
//
// Under Deno it uses Deno's own stdin and exit, so that nothing but serve
// stands between the flood and the process.

import { serve } from "../lib/runtime/serve.ts";

const server = await serve(() => new Response("ok"));
console.log(JSON.stringify({ port: server.port }));
const exit = (code: number) =>
  typeof Deno === "undefined"
    ? import("node:process").then((p) => p.default.exit(code))
    : Deno.exit(code);
server.finished.then(
  () => exit(0),
  (error) => {
    console.error("finished rejected:", error);
    return exit(1);
  },
);
if (typeof Deno === "undefined") {
  const { default: process } = await import("node:process");
  process.stdin.on("data", () => {});
  process.stdin.on("end", () => void server.shutdown());
} else {
  for await (const _ of Deno.stdin.readable) { /* until stdin closes */ }
  await server.shutdown();
}
