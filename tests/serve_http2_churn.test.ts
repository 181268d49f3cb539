// serveHttp2 under connection churn: clients that make one call per
// connection and close it (a CLI such as grpcurl, a cron job, a health
// probe that connects each time), with the server in its own process
// (tests/_h2_server.ts), so that a runtime abort fails the test and not the
// runner.
//
// Deno 2.9.6's node:http2 answered each client's GOAWAY by closing the
// session from inside nghttp2's receive callback, which aborted the process
// (`find_stream_on_goaway_func`) or crashed it (SIGSEGV) in most runs of a
// few hundred such clients; serveHttp2 defers that close
// (docs/known-runtime-issues.md (e)).

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { deadline, runProcess, runtime } from "./_helpers.ts";

const T = 60_000;

interface Server {
  port: number;
  child: ChildProcess;
  exited: Promise<number | string | null>;
}

const children: Server[] = [];
after(async () => {
  for (const { child, exited } of children) {
    child.stdin?.end();
    await deadline(exited, 10_000, "server process exit");
  }
});

/**
 * tests/_h2_server.ts (serveHttp2 with its defaults) in a child process of
 * this runtime. Spawned here rather than by `startChildServer`, whose
 * `--v8-flags=--expose-gc` made the abort rarer (1 run in 6 against 3 to 4).
 */
async function startServer(): Promise<Server> {
  const script = fileURLToPath(new URL("./_h2_server.ts", import.meta.url));
  const args = "Bun" in globalThis
    ? [script, "{}"]
    : ["run", "--allow-all", script, "{}"];
  const child = spawn(process.execPath, args, {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise<number | string | null>((resolve) =>
    child.once("exit", (code, signal) => resolve(code ?? signal))
  );
  const line = await deadline(
    new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once("line", resolve);
      exited.then((code) =>
        reject(new Error(`Cannot start the server: it exited (${code})`))
      );
    }),
    T,
    "the server's port",
  );
  const server = { port: JSON.parse(line).port as number, child, exited };
  children.push(server);
  return server;
}

/**
 * Node (the `node` on PATH) as `n` clients one after another, each on a
 * connection of its own: a gRPC-like POST of a small body to a path the
 * server answers 404, then the connection closed (GOAWAY) as soon as the
 * answer is in. Resolves with what it printed, the number answered 404.
 */
function runOneCallClients(port: number, n: number): Promise<string> {
  const script = `
    const http2 = require("node:http2");
    let ok = 0;
    (async () => {
      for (let i = 0; i < ${n}; i++) {
        await new Promise((resolve) => {
          const session = http2.connect("http://127.0.0.1:${port}");
          session.on("error", resolve);
          const stream = session.request({
            ":method": "POST",
            ":path": "/test.Svc/echo",
            "content-type": "application/grpc",
            te: "trailers",
          });
          stream.on("error", () => {});
          stream.on("response", (h) => { if (h[":status"] === 404) ok++; });
          stream.on("close", () => { session.close(); resolve(); });
          stream.resume();
          stream.end(Buffer.from([0, 0, 0, 0, 1, 7]));
        });
      }
      process.stdout.write(String(ok));
      // Alive while the last close completes.
      await new Promise((resolve) => setTimeout(resolve, 500));
    })();
  `;
  return runProcess("node", ["-e", script], { cwd: ".", timeoutMs: T })
    .then(({ stdout }) => stdout);
}

describe("serveHttp2 under connection churn (server in its own process)", () => {
  it(
    "serveHttp2 outlives clients that each make one call on a connection of their own and close it, 400 a server (Deno's node:http2 aborted the process, most often within the first hundred)",
    {
      // Bun's node:http2 never aborted so (and 29 s of the suite's time).
      skip: runtime !== "deno" && "Deno's node:http2 only",
    },
    async () => {
      // Before the deferred close, this test failed in 4 runs of 6 under
      // Deno with four servers (most aborted within the first hundred
      // clients); two halve its time in the suite (four took 11 s beside a
      // second suite; two take about 4 s on a quiet machine).
      for (let round = 1; round <= 2; round++) {
        const server = await startServer();
        const answered = await deadline(
          runOneCallClients(server.port, 400),
          T,
          `round ${round}: the clients`,
        );
        const outcome = await Promise.race([
          server.exited.then((code) => `exited (${code})`),
          new Promise((resolve) => setTimeout(() => resolve("alive"), 300)),
        ]);
        assert.equal(outcome, "alive", `round ${round}`);
        assert.equal(answered, "400", `round ${round}`);
        server.child.stdin!.end();
        assert.equal(
          await deadline(server.exited, 10_000, "server exit"),
          0,
          `round ${round}: the server's exit`,
        );
      }
    },
  );
});
