// serve: the concurrency cap (503 past maxConcurrentRequests, streaming
// responses counted until sent), its option checks and the error of an
// address it cannot take.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { type AddressInfo, connect, createServer } from "node:net";
import { createEchoHandler } from "../lib/http/echo.ts";
import { HttpError } from "../lib/http/http_error.ts";
import { serve } from "../lib/runtime/serve.ts";
import { serveHttp2 } from "../lib/runtime/serve_http2.ts";
import { listenFailed } from "../lib/runtime/_server_url.ts";
import { upgradeWebSocket } from "../lib/runtime/websocket.ts";
import {
  captureConsole,
  deadline,
  rawConnection,
  runtime,
} from "./_helpers.ts";

describe("serve", () => {
  it("serve answers 503 with Retry-After past maxConcurrentRequests, counting streaming responses until sent", async () => {
    // Each response streams until the test releases it.
    const release = Promise.withResolvers<void>();
    let calls = 0;
    const server = await serve(() => {
      calls++;
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(new TextEncoder().encode("start "));
          await release.promise;
          controller.enqueue(new TextEncoder().encode("end"));
          controller.close();
        },
      });
      return new Response(body);
    }, { maxConcurrentRequests: 2 });
    try {
      const open = [fetch(server.url), fetch(server.url)];
      const responses = await deadline(Promise.all(open), 10_000, "two in");
      for (const r of responses) assert.equal(r.status, 200);
      // Both still streaming: a third is refused without calling the handler.
      const third = await fetch(server.url);
      assert.equal(third.status, 503);
      assert.equal(third.headers.get("retry-after"), "1");
      assert.match(await third.text(), /maxConcurrentRequests/);
      assert.equal(calls, 2);
      release.resolve();
      for (const r of responses) assert.equal(await r.text(), "start end");
      // The slots are free again once the responses have been sent; the
      // server notices asynchronously (bounded: 50 tries).
      let status = 0;
      for (let i = 0; i < 50 && status !== 200; i++) {
        const again = await fetch(server.url);
        status = again.status;
        await again.text();
      }
      assert.equal(status, 200);
    } finally {
      release.resolve();
      await deadline(server.shutdown(), 10_000, "shutdown");
    }
  });

  it("serve with maxConcurrentRequests 0 has no cap", async () => {
    const server = await serve(() => new Response("ok"), {
      maxConcurrentRequests: 0,
    });
    try {
      const all = await Promise.all(
        Array.from(
          { length: 5 },
          () => fetch(server.url).then((r) => r.text()),
        ),
      );
      assert.deepEqual(all, ["ok", "ok", "ok", "ok", "ok"]);
    } finally {
      await server.shutdown();
    }
  });

  it("serve on an IPv6 address gives its URL in brackets", async () => {
    // Before, `hostname: "::1"` threw "Invalid URL" after binding, leaving a
    // listener nothing could stop.
    const server = await serve(() => new Response("six"), { hostname: "::1" });
    try {
      assert.equal(server.url.href, `http://[::1]:${server.port}/`);
      assert.equal(await (await fetch(server.url)).text(), "six");
    } finally {
      await deadline(server.shutdown(), 10_000, "shutdown");
    }
  });

  it("serve given a signal already aborted stops at once", async () => {
    // Before, Bun's path ignored it: its server answered on and `finished`
    // never settled.
    const aborted = await serve(() => new Response("late"), {
      signal: AbortSignal.abort(),
    });
    await deadline(aborted.finished, 10_000, "finished");
    await assert.rejects(fetch(aborted.url), TypeError);
  });

  it("serve refuses bad options with a RangeError naming them", async () => {
    await assert.rejects(
      serve(() => new Response(), { maxConcurrentRequests: -1 }),
      /maxConcurrentRequests must be a non-negative integer/,
    );
    await assert.rejects(
      serve(() => new Response(), { idleTimeoutMs: 252_001 }),
      /idleTimeoutMs must be at most 252000 \(Bun's limit, 255 s, in its 4-s ticks/,
    );
    // The longest fits Bun's limit with the tick more serve gives it.
    const longest = await serve(() => new Response(), {
      idleTimeoutMs: 252_000,
    });
    await deadline(longest.shutdown(), 10_000, "shutdown");
    await assert.rejects(
      serve(() => new Response(), { idleTimeoutMs: -5 }),
      /idleTimeoutMs must be a non-negative number/,
    );
    await assert.rejects(
      serve(() => new Response(), { shutdownTimeoutMs: NaN }),
      /shutdownTimeoutMs must be a non-negative number of milliseconds, got NaN/,
    );
  });

  it("serve's default onError answers a handler's 4xx HttpError with its own response, unlogged; any other error is logged and answered 500", async () => {
    const { logged, restore } = captureConsole("error");
    const server = await serve((request) => {
      const path = new URL(request.url).pathname;
      if (path === "/gone") throw new HttpError(404, "No such upload: gone");
      throw new Error("a bug");
    });
    try {
      const gone = await fetch(new URL("/gone", server.url));
      assert.equal(gone.status, 404);
      assert.equal(await gone.text(), "No such upload: gone");
      assert.deepEqual(logged, []);
      const bug = await fetch(new URL("/bug", server.url));
      assert.equal(bug.status, 500);
      await bug.text();
      assert.equal(logged.length, 1);
      assert.equal(logged[0][0], "sluice: handler failed:");
      assert.match(String(logged[0][1]), /a bug/);
    } finally {
      restore();
      await deadline(server.shutdown(), 10_000, "shutdown");
    }
  });

  it("an onError that throws, rejects or gives no Response is logged and answered with a plain 500 (Bun sent its development page: the error, its stack and source)", async () => {
    const { logged, restore } = captureConsole("error");
    const answers: Record<string, (error: unknown) => Response> = {
      throws: (error) => {
        throw error;
      },
      rejects: ((error: unknown) => Promise.reject(error)) as never,
      nothing: (() => undefined) as never,
    };
    try {
      for (const [name, onError] of Object.entries(answers)) {
        const server = await serve(() => {
          throw new Error("secret-db-password=hunter2");
        }, { onError });
        try {
          const response = await fetch(server.url);
          assert.equal(response.status, 500, name);
          assert.equal(await response.text(), "Internal Server Error", name);
        } finally {
          await deadline(server.shutdown(), 10_000, "shutdown");
        }
      }
      assert.equal(logged.length, 3);
    } finally {
      restore();
    }
  });

  it("a handler that gives no Response goes to onError (Bun answered 204, or 200 with its welcome page, calling nothing), and onError may answer with any thenable", async () => {
    const seen: string[] = [];
    const server = await serve((request) => {
      if (new URL(request.url).pathname === "/async") {
        return Promise.resolve(undefined) as never;
      }
      return undefined as never;
    }, {
      onError: (error) => {
        seen.push(String(error));
        // A thenable of a Response, not a native promise.
        return {
          then: (resolve: (r: Response) => void) =>
            resolve(new Response("teapot", { status: 418 })),
        } as never;
      },
    });
    try {
      for (const path of ["/", "/async"]) {
        const response = await fetch(new URL(path, server.url));
        assert.equal(response.status, 418, path);
        assert.equal(await response.text(), "teapot", path);
      }
      assert.equal(seen.length, 2);
      if (runtime === "bun") {
        assert.deepEqual(seen, [
          "TypeError: Cannot serve: the handler gave no Response, got undefined",
          "TypeError: Cannot serve: the handler gave no Response, got undefined",
        ]);
      }
    } finally {
      await deadline(server.shutdown(), 10_000, "shutdown");
    }
  });

  it("serve's default onError logs a response body that fails mid-stream, unless with a 4xx HttpError (an echo's client gone or idle)", async () => {
    const { logged, whenLogged, restore } = captureConsole("error");
    const failed: Promise<void>[] = [];
    const server = await serve((request) => {
      const path = new URL(request.url).pathname;
      const reason = path === "/idle"
        ? new HttpError(408, "Cannot echo: no request bytes arrived for 10 ms")
        : new Error("a body that broke");
      const done = Promise.withResolvers<void>();
      failed.push(done.promise);
      return new Response(
        new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode("first chunk"));
            setTimeout(() => {
              controller.error(reason);
              done.resolve();
            }, 10);
          },
        }),
      );
    });
    // Deno.serve may keep the connection of a failed body open, with the
    // client's read pending: the clients are aborted at the end.
    const clients = new AbortController();
    const read = async (path: string) => {
      const response = await fetch(new URL(path, server.url), {
        signal: clients.signal,
      });
      return response.body!.getReader().read();
    };
    try {
      // The 4xx body first, then the other one: once the latter is
      // logged, the runtime has reported the former too (if it reports
      // body errors at all).
      await read("/idle");
      await deadline(failed[0], 5_000, "the 408 body's failure");
      await read("/broken");
      await deadline(failed[1], 5_000, "the other body's failure");
      if (runtime === "deno") {
        await whenLogged();
        assert.equal(logged.length, 1, `logged: ${logged.map(String)}`);
        assert.match(String(logged[0][1]), /a body that broke/);
      } else {
        // Bun passes no failed body to its error handler (it prints the
        // error itself, whatever the handler).
        assert.deepEqual(logged, []);
      }
    } finally {
      clients.abort();
      restore();
      await deadline(server.shutdown(), 10_000, "shutdown");
    }
  });

  it(
    "serve's idleTimeoutMs (5,000, and 1,000: below Bun's tick) closes an idle connection, never before the timeout whatever the phase of Bun's 4-s ticks, and keeps a busy one open past it (Bun, echo's native passthrough)",
    { skip: runtime !== "bun" && "Deno.serve has no idle timeout" },
    async () => {
      const servers = [
        await serve(
          createEchoHandler({ idleTimeoutMs: 0, readAheadBytes: 0 }),
          { idleTimeoutMs: 5_000 },
        ),
        await serve(
          createEchoHandler({ idleTimeoutMs: 0, readAheadBytes: 0 }),
          { idleTimeoutMs: 1_000 },
        ),
      ];
      /** An echo request over a raw socket, chunked; resolves on close. */
      const exchange = async (
        port: number,
        pace: { everyMs: number; forMs: number; afterMs?: number },
      ) => {
        await new Promise((resolve) => setTimeout(resolve, pace.afterMs ?? 0));
        const socket = connect(port, "127.0.0.1");
        socket.on("error", () => {});
        const start = performance.now();
        let received = "";
        const last = "\r\n0\r\n\r\n";
        // Whether the echo's last chunk came before the connection closed.
        const ended = new Promise<boolean>((resolve) => {
          socket.on("data", (data) => {
            received += data.toString("latin1");
            if (received.endsWith(last)) resolve(true);
          });
          socket.once("close", () => resolve(false));
        });
        const closed = new Promise<number>((resolve) =>
          socket.once("close", () => resolve(performance.now() - start))
        );
        await new Promise((resolve) => socket.once("connect", resolve));
        socket.write(
          "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n",
        );
        let sent = 1;
        while (performance.now() - start < pace.forMs && !socket.destroyed) {
          await new Promise((resolve) => setTimeout(resolve, pace.everyMs));
          socket.write("4\r\nabcd\r\n");
          sent++;
        }
        if (pace.forMs > 0) socket.write("0\r\n\r\n");
        const echoEnded = await ended;
        const echoed = (received.match(/abcd/g) ?? []).length;
        if (pace.forMs > 0) socket.destroy();
        return {
          sent,
          echoed,
          ended: echoEnded,
          closedAfterMs: await closed,
        };
      };
      /** A busy exchange and eight idle ones; checks them. */
      const check = async (port: number, timeoutMs: number) => {
        // One timer ticks every 4 s for the whole process, in a phase
        // set by whatever connection came first. Idle connections begun
        // 500 ms apart over a whole tick: one of them goes idle at most
        // 500 ms before a tick. (Bun's own `idleTimeout: 5`, two ticks,
        // closed that one after 4.0-4.5 s.)
        const idles = Array.from(
          { length: 8 },
          (_, i) => exchange(port, { everyMs: 0, forMs: 0, afterMs: i * 500 }),
        );
        const [busy, ...idle] = await Promise.all([
          // A chunk every 300 ms for 10 s: past the timeout and the next
          // 4-s ticks of Bun's timer (Bun's own `idleTimeout: 1` cut it
          // at the first).
          exchange(port, { everyMs: 300, forMs: 10_000 }),
          // One chunk, then nothing.
          ...idles,
        ]);
        for (const [i, { echoed, closedAfterMs }] of idle.entries()) {
          assert.equal(echoed, 1);
          assert.ok(
            closedAfterMs >= timeoutMs &&
              closedAfterMs <= timeoutMs + 8_000 + 4_000,
            `idle connection ${i} (begun ${i * 500} ms in) closed after ${
              Math.round(closedAfterMs)
            } ms (timeout ${timeoutMs} ms; at most 8 s late, and 4 s for a loaded machine)`,
          );
        }
        assert.ok(
          busy.ended,
          `the busy exchange was cut (timeout ${timeoutMs} ms): ${
            JSON.stringify(busy)
          }`,
        );
        assert.equal(busy.echoed, busy.sent);
        assert.ok(busy.sent >= 20);
      };
      try {
        await deadline(
          Promise.all([
            check(servers[0].port, 5_000),
            check(servers[1].port, 1_000),
          ]),
          40_000,
          "the exchanges",
        );
      } finally {
        for (const server of servers) {
          await deadline(server.shutdown(), 10_000, "shutdown");
        }
      }
    },
  );

  it("serve's shutdown waits for a request in progress, then closes a never-ending stream after shutdownTimeoutMs", async () => {
    // Before, shutdown() waited for every open response: a server with an
    // SSE client connected never stopped (Ctrl-C on examples/echo.ts with
    // a client connected did nothing, twice).
    const encoder = new TextEncoder();
    let cancelled = false;
    const slow = Promise.withResolvers<void>();
    const server = await serve((request) => {
      if (new URL(request.url).pathname === "/slow") {
        // Ends 300 ms into the shutdown: within its grace period.
        return new Response(
          new ReadableStream<Uint8Array>({
            async start(controller) {
              controller.enqueue(encoder.encode("begun "));
              await slow.promise;
              controller.enqueue(encoder.encode("and done"));
              controller.close();
            },
          }),
        );
      }
      return new Response(
        new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(encoder.encode("data: first\n\n"));
          },
          cancel() {
            cancelled = true;
          },
        }),
        { headers: { "content-type": "text/event-stream" } },
      );
    }, { shutdownTimeoutMs: 1_500 });
    const feed = await fetch(new URL("/feed", server.url));
    const feedReader = feed.body!.getReader();
    assert.equal(
      new TextDecoder().decode((await feedReader.read()).value),
      "data: first\n\n",
    );
    const slowResponse = await fetch(new URL("/slow", server.url));
    const slowText = slowResponse.text();
    const feedEnd = feedReader.read().then(
      (result) => result.done ? "ended" : "more",
      () => "failed",
    );
    const started = performance.now();
    const stopped = server.shutdown();
    setTimeout(() => slow.resolve(), 300);
    // The request in progress still completes whole.
    assert.equal(await deadline(slowText, 5_000, "slow"), "begun and done");
    // A new request meanwhile is refused: 503 under Deno (its listener
    // stays open until the end), a failed connection under Bun.
    const late = await fetch(server.url).then(
      async (response) => `${response.status} ${await response.text()}`,
      () => "refused",
    );
    assert.match(
      late,
      /^503 Cannot serve: the server is shutting down$|^refused$/,
    );
    await deadline(stopped, 10_000, "shutdown");
    const tookMs = performance.now() - started;
    assert.ok(
      tookMs >= 1_400 && tookMs < 6_000,
      `shutdown took ${Math.round(tookMs)} ms (shutdownTimeoutMs 1,500)`,
    );
    await deadline(server.finished, 1_000, "finished");
    // The feed was cut, not ended as if complete.
    assert.equal(await deadline(feedEnd, 5_000, "the feed's end"), "failed");
    for (let i = 0; i < 50 && !cancelled; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(cancelled, "the feed's body was not cancelled");
    await assert.rejects(fetch(server.url), TypeError);
  });

  it("serve's shutdown with no request in progress completes at once", async () => {
    const server = await serve(() => new Response("ok"));
    assert.equal(await (await fetch(server.url)).text(), "ok");
    const started = performance.now();
    await deadline(server.shutdown(), 10_000, "shutdown");
    assert.ok(performance.now() - started < 1_000);
    await assert.rejects(fetch(server.url), TypeError);
  });

  it("serve's shutdownTimeoutMs 0 waits for open responses however long", async () => {
    const release = Promise.withResolvers<void>();
    const server = await serve(() =>
      new Response(
        new ReadableStream<Uint8Array>({
          async start(controller) {
            controller.enqueue(new Uint8Array([1]));
            await release.promise;
            controller.close();
          },
        }),
      ), { shutdownTimeoutMs: 0 });
    const response = await fetch(server.url);
    const body = response.arrayBuffer();
    let stopped = false;
    const stopping = server.shutdown().then(() => stopped = true);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(stopped, false);
    release.resolve();
    assert.deepEqual(new Uint8Array(await body), new Uint8Array([1]));
    await deadline(stopping, 10_000, "shutdown");
  });

  it("upgradeWebSocket refuses a negative idleTimeoutMs with a RangeError", () => {
    const request = new Request("http://localhost/ws", {
      headers: { upgrade: "websocket" },
    });
    assert.throws(
      () => upgradeWebSocket(request, { idleTimeoutMs: -1 }),
      /idleTimeoutMs must be a non-negative number of milliseconds/,
    );
  });
});

describe("serve and serveHttp2 on an address they cannot take", () => {
  it('reject naming the address and what to do (Deno\'s said only "Address already in use (os error 98)")', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) =>
      holder.listen(0, "127.0.0.1", resolve)
    );
    const port = (holder.address() as AddressInfo).port;
    try {
      for (
        const start of [
          () => serve(() => new Response("no"), { port }),
          () => serveHttp2(() => Promise.reject(new Error("no")), { port }),
        ]
      ) {
        await assert.rejects(start(), (error: unknown) => {
          assert.ok(error instanceof Error);
          assert.equal(
            error.message,
            `Cannot serve on 127.0.0.1:${port}: the address is already in use (another server listens there); stop that server or choose another port (port 0 takes a free one)`,
          );
          assert.ok(error.cause !== undefined);
          return true;
        });
      }
    } finally {
      holder.close();
    }
  });
});

describe("listenFailed, the error of a listener that could not start", () => {
  it("names the address and what to do for a port that needs privileges or an address not this machine's; other errors stay as they are", () => {
    const cases = [
      [
        { code: "EACCES" },
        /^Cannot serve on 127\.0\.0\.1:80: permission denied \(a port below 1024 needs privileges\); choose a port from 1024 up$/,
      ],
      [{ name: "PermissionDenied" }, /permission denied/],
      [
        { code: "EADDRNOTAVAIL" },
        /^Cannot serve on 127\.0\.0\.1:80: the address is not one of this machine's/,
      ],
      [{ name: "AddrNotAvailable" }, /not one of this machine's/],
      [{ name: "AddrInUse" }, /already in use/],
    ] as const;
    for (const [fields, said] of cases) {
      const error = Object.assign(new Error("os error"), fields);
      const named = listenFailed(error, "127.0.0.1", 80);
      assert.ok(named instanceof Error && named !== error);
      assert.match(named.message, said);
      assert.equal(named.cause, error);
    }
    const other = Object.assign(new Error("EINVAL"), { code: "EINVAL" });
    assert.equal(listenFailed(other, "127.0.0.1", 80), other);
    assert.match(
      (listenFailed({ code: "EADDRINUSE" }, "::1", 9) as Error).message,
      /^Cannot serve on \[::1\]:9: /,
    );
  });
});

describe("serve's shutdown with an upload it cuts", () => {
  it("resolves once the upload's handler has cleaned up: no temporary file is left for a process that exits then (Bun left the sink's .partial)", async () => {
    const { createUploadHandler } = await import("../lib/http/mod.ts");
    const { createFileSink } = await import("../lib/runtime/fs.ts");
    const { makeTempDir, removeDir } = await import("./_helpers.ts");
    const { readdir } = await import("node:fs/promises");
    const dir = await makeTempDir("cut-upload-");
    try {
      const server = await serve(
        createUploadHandler({
          sink: () => createFileSink(`${dir}/target.bin`),
        }),
        { hostname: "127.0.0.1", port: 0, shutdownTimeoutMs: 300 },
      );
      const socket = await rawConnection(server.port);
      socket.write(
        "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n",
      );
      socket.write(new Uint8Array(200_000));
      // The sink's temporary file exists once the body flows.
      const until = performance.now() + 5_000;
      while (
        (await readdir(dir)).length === 0 && performance.now() < until
      ) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.notDeepEqual(await readdir(dir), [], "the temporary file");
      await deadline(server.shutdown(), 10_000, "shutdown");
      assert.deepEqual(await readdir(dir), [], "what the cut upload left");
      socket.destroy();
    } finally {
      await removeDir(dir);
    }
  });
});
