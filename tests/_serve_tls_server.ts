// `serve` over TLS in its own process, for tests/serve_tls.test.ts: shows
// that its shutdown is bounded while a client holds an idle TLS connection,
// and that the process can exit afterwards.
//
//   deno run -A tests/_serve_tls_server.ts <certificate dir> <shutdownTimeoutMs>
//
// Reads leaf.crt and leaf.key from the directory, prints {"port": N} once
// listening (answering every request with "ok"), then answers the command
// {"cmd": "shutdown"} with {"ms": N}, how long `shutdown()` took. It exits
// by itself, without process.exit, once its standard input closes and
// nothing else holds it.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { createInterface } from "node:readline";
import { serve } from "../lib/runtime/serve.ts";

const [dir, timeout] = process.argv.slice(2);
const server = await serve(() => new Response("ok"), {
  tls: {
    cert: readFileSync(join(dir, "leaf.crt"), "utf8"),
    key: readFileSync(join(dir, "leaf.key"), "utf8"),
  },
  shutdownTimeoutMs: Number(timeout),
});
console.log(JSON.stringify({ port: server.port }));
for await (const line of createInterface({ input: process.stdin })) {
  const { cmd } = JSON.parse(line);
  if (cmd === "shutdown") {
    const started = performance.now();
    await server.shutdown();
    console.log(
      JSON.stringify({ ms: Math.round(performance.now() - started) }),
    );
  } else {
    console.log(JSON.stringify({ error: `unknown command ${cmd}` }));
  }
}
