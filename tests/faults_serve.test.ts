// serve out of file descriptors: a server process under a low `ulimit -n`
// (tests/_emfile_server.ts) flooded with connections that never finish their
// headers, more than it has descriptors for. Deno.serve's accept loop fails
// with EMFILE and ends; left alone, its rejected `finished` exited the
// process (`Uncaught (in promise) Http: Error: Too many open files`). serve
// starts a new listener on the same port once descriptors are free: the
// process stays up and answers again when the flood is gone.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import process from "node:process";
import { createInterface } from "node:readline";
import { deadline, runtime } from "./_helpers.ts";

const LIMIT = 256;
const CONNECTIONS = 320;

describe("serve out of file descriptors (server in its own process)", () => {
  it(
    `serve survives EMFILE under ulimit -n ${LIMIT} (${CONNECTIONS} half-sent requests) and answers once they close`,
    // Deno only: Bun.serve kept answering through the same flood (it did
    // not fail its listener), so there is nothing to survive. Linux: ulimit
    // in bash.
    { skip: runtime !== "deno" || process.platform !== "linux" },
    async () => {
      const path = join(import.meta.dirname ?? "tests", "_emfile_server.ts");
      // The paths go through the environment: Deno's node:child_process
      // rewrites arguments that follow its own executable's path.
      const child = spawn("bash", [
        "-c",
        `ulimit -n ${LIMIT} && exec "$SERVE_RUNTIME" run --allow-net=127.0.0.1 "$SERVE_SCRIPT"`,
      ], {
        stdio: ["pipe", "pipe", "pipe"],
        env: {
          ...process.env,
          SERVE_RUNTIME: process.execPath,
          SERVE_SCRIPT: path,
        },
      });
      let stderr = "";
      child.stderr!.setEncoding("utf8");
      child.stderr!.on("data", (d: string) => stderr += d);
      let exitCode: string | undefined;
      const exited = new Promise<string>((resolve) =>
        child.once("exit", (code, sig) => resolve(exitCode = `${code ?? sig}`))
      );
      const sockets: Socket[] = [];
      try {
        const lines = createInterface({ input: child.stdout! });
        const first = await deadline(
          new Promise<string>((resolve) => lines.once("line", resolve)),
          30_000,
          "server start",
        );
        const { port } = JSON.parse(first) as { port: number };
        const url = `http://127.0.0.1:${port}/`;
        assert.equal(await (await fetch(url)).text(), "ok");
        // Headers never finished: each holds a server descriptor.
        for (let i = 0; i < CONNECTIONS && exitCode === undefined; i++) {
          const socket = connect(port, "127.0.0.1");
          socket.on("error", () => {});
          socket.write("GET / HTTP/1.1\r\nHost: x\r\n");
          sockets.push(socket);
          if (i % 20 === 19) await new Promise((r) => setTimeout(r, 10));
        }
        // serve logs the listener's failure (bounded: 5 s).
        const until = performance.now() + 5_000;
        while (
          !/Too many open files/.test(stderr) && exitCode === undefined &&
          performance.now() < until
        ) {
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.match(stderr, /Too many open files/, "no EMFILE reached");
        for (const socket of sockets) socket.destroy();
        // Bounded: 100 tries, 100 ms apart.
        let answer = "";
        for (let i = 0; i < 100 && exitCode === undefined; i++) {
          answer = await fetch(url, { signal: AbortSignal.timeout(2_000) })
            .then((r) => r.text(), (e) => String(e));
          if (answer === "ok") break;
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.equal(
          exitCode,
          undefined,
          `server exited (${exitCode}): ${stderr}`,
        );
        assert.equal(answer, "ok", `no answer after the flood: ${stderr}`);
        child.stdin!.end();
        assert.equal(
          await deadline(exited, 10_000, "server exit"),
          "0",
          `server exit: ${stderr}`,
        );
      } finally {
        for (const socket of sockets) socket.destroy();
        if (exitCode === undefined) child.kill("SIGKILL");
      }
    },
  );
});
