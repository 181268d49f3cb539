// serve's maxConcurrentRequests and the echo under Deno over TLS (HTTP/2 by
// ALPN): a request stops counting once Deno's `info.completed` settles.
// Under Deno 2.9.6, reading `request.signal` delays that by up to seconds
// after the response has been sent, under load
// (docs/known-runtime-issues.md (ag)). The echo read it for every exchange,
// so an h2load run of short echoes that never had more than a few hundred
// streams open was answered 503 thousands of times (up to 5,000 requests
// not completed). The echo now reads it only for an exchange still going
// after a second: the first test checks that on any runtime; the second
// is the load itself, Deno only (Bun's `tls` speaks HTTP/1.1 only), and
// skipped where h2load is not installed.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { echo } from "../lib/http/echo.ts";
import { serve, type Server } from "../lib/runtime/serve.ts";
import { makeCertificates } from "./browser/_test_server.ts";
import { deadline, makeTempDir, removeDir, runtime } from "./_helpers.ts";

const CONNECTIONS = 10;
const STREAMS = 50; // per connection: at most 500 requests open at once
const LIMIT = 2 * CONNECTIONS * STREAMS; // maxConcurrentRequests
const REQUESTS = 10_000; // per run
const RUNS = 2; // the lag came mostly in a second run on the same server
// A server that stops answering is found by h2load itself: a connection
// with nothing to read for IDLE_S seconds is closed, and its requests
// count as failed. A run's whole time is no measure of a hang (2-3 s alone,
// 14-20 s beside seven busy loops on its core): RUN_MS only stops an
// h2load that never ends.
const IDLE_S = 10;
const RUN_MS = 120_000;

function h2loadAvailable(): boolean {
  try {
    execFileSync("h2load", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** The counts of h2load's "status codes:" line, by class ("2xx", "5xx"). */
function statusCounts(output: string): Record<string, number> {
  const line = /status codes: (.*)/.exec(output)?.[1] ?? "";
  const counts: Record<string, number> = {};
  for (const [, n, kind] of line.matchAll(/(\d+) (\dxx)/g)) {
    counts[kind] = Number(n);
  }
  return counts;
}

describe("echo and request.signal", () => {
  it("echo reads no request.signal for an exchange that ends at once", async () => {
    let reads = 0;
    class WatchedRequest extends Request {
      override get signal(): AbortSignal {
        reads++;
        return super.signal;
      }
    }
    const request = new WatchedRequest("http://127.0.0.1/echo", {
      method: "POST",
      body: ReadableStream.from([new TextEncoder().encode("echo")]),
      duplex: "half",
    } as RequestInit);
    const response = echo(request);
    assert.equal(await response.text(), "echo");
    assert.equal(reads, 0);
  });
});

describe("serve with echo over TLS (HTTP/2) under h2load", {
  skip: runtime !== "deno" || !h2loadAvailable(),
}, () => {
  let dir: string;
  let server: Server;
  let bodyPath: string;

  before(async () => {
    dir = await makeTempDir("completed-");
    const { cert, key } = await makeCertificates(join(dir, "tls"));
    bodyPath = join(dir, "body.bin");
    await writeFile(bodyPath, "echo\n");
    server = await serve((request) => echo(request), {
      tls: { cert, key },
      maxConcurrentRequests: LIMIT,
    });
  });

  after(async () => {
    await server?.shutdown();
    if (dir) await removeDir(dir);
  });

  it(
    `serve answers ${RUNS} h2load runs of ${REQUESTS} echoes, at most ${
      CONNECTIONS * STREAMS
    } open, with maxConcurrentRequests ${LIMIT} without a 503`,
    async () => {
      for (let run = 0; run < RUNS; run++) {
        const output = await deadline(
          new Promise<string>((resolve, reject) =>
            execFile(
              "h2load",
              [
                "-n",
                String(REQUESTS),
                "-c",
                String(CONNECTIONS),
                "-m",
                String(STREAMS),
                "-d",
                bodyPath,
                "-N",
                `${IDLE_S}s`,
                new URL("echo", server.url).href,
                // Killed with the deadline's run, not left behind.
              ],
              { timeout: RUN_MS, killSignal: "SIGKILL" },
              (error, stdout) => error ? reject(error) : resolve(stdout),
            )
          ),
          RUN_MS,
          `h2load run ${run}`,
        );
        assert.deepEqual(
          statusCounts(output),
          { "2xx": REQUESTS, "3xx": 0, "4xx": 0, "5xx": 0 },
          `run ${run}: ${output}`,
        );
      }
    },
  );
});
