// Clients that go away, or send a malformed body, in the middle of an echo
// or a duplex exchange behind `serve`: the failure is the client's (a 400
// HttpError, which the default onErrors drop), not a server failure logged
// for each of them. Before, under Deno each such client logged the
// runtime's words ("unexpected EOF while reading HTTP/1 body", "invalid
// HTTP/1 request") once or twice as "sluice: handler failed", and under
// Bun the duplex handler's write to the cancelled response logged "sluice:
// duplex handler failed: The connection was closed.": any client could
// fill the log. And the methods the echo and duplex factories serve: a
// request with no body to exchange is answered 405, the handler not run.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  createEchoHandler,
  createUploadHandler,
  duplexResponse,
} from "../lib/http/mod.ts";
import { createDuplexHandler } from "../lib/http/duplex_response.ts";
import type { DuplexStream } from "../lib/streams/duplex_stream.ts";
import {
  captureConsole,
  deadline,
  rawConnection,
  withServer,
} from "./_helpers.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A duplex handler that writes until its client goes away, and whose
 * cleanup then has a bug of its own (a TypeError, with no cause).
 */
async function buggyOnceGone(stream: DuplexStream): Promise<void> {
  await stream.write("hello\n");
  try {
    for (let i = 0; i < 10_000; i++) {
      await stream.write(new Uint8Array(64 * 1024));
    }
  } catch {
    (undefined as unknown as { flush(): void }).flush();
  }
}

/** Waits until `seen` holds something, at most 5 s. */
async function untilSeen(seen: unknown[]): Promise<void> {
  const until = performance.now() + 5_000;
  while (seen.length === 0 && performance.now() < until) await sleep(10);
}

/** A chunked request with one line, then `end`; the socket closed after. */
async function goAway(
  port: number,
  path: string,
  end: "reset" | "half-close" | "bad chunk",
): Promise<void> {
  const socket = await rawConnection(port);
  socket.write(
    `POST ${path} HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello\n\r\n`,
  );
  await sleep(150);
  if (end === "reset") socket.resetAndDestroy();
  else if (end === "half-close") socket.end();
  else socket.write("zz\r\n");
  await sleep(200);
  socket.destroy();
}

describe("clients that go away mid-exchange", () => {
  it("are not logged as the echo's or the duplex handler's failures (each logged one or two lines)", async () => {
    const echo = createEchoHandler();
    const lines = (request: Request) =>
      duplexResponse(request, async (stream) => {
        for await (const line of stream.lines()) {
          await stream.write(`echo ${line}\n`);
        }
      });
    const console = captureConsole("error");
    try {
      await withServer(
        (request) =>
          new URL(request.url).pathname === "/echo"
            ? echo(request)
            : lines(request),
        async (server) => {
          for (const path of ["/lines", "/echo"]) {
            for (const end of ["reset", "half-close", "bad chunk"] as const) {
              await goAway(server.port, path, end);
            }
          }
          await sleep(300);
        },
      );
    } finally {
      console.restore();
    }
    assert.deepEqual(
      console.logged.map((args) =>
        args.map((arg) => arg instanceof Error ? arg.message : String(arg))
          .join(" ")
      ),
      [],
    );
  });

  it("a duplex handler's own error after the client left still reaches onError as it is (only the failed writes are the client's)", async () => {
    const seen: unknown[] = [];
    const handler = (request: Request) =>
      duplexResponse(request, buggyOnceGone, {
        onError: (error) => void seen.push(error),
        sendHeaders: "immediately",
      });
    await withServer(handler, async (server) => {
      const socket = await rawConnection(server.port);
      socket.write(
        "POST / HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\n\r\n",
      );
      await deadline(
        new Promise((resolve) => socket.once("data", resolve)),
        5_000,
        "the response's head",
      );
      socket.destroy();
      await untilSeen(seen);
    });
    assert.equal(seen.length, 1);
    assert.ok(seen[0] instanceof TypeError, String(seen[0]));
  });
});

describe("duplexResponse when the runtime cancels the response with no reason (as workerd does)", () => {
  it("still hands a handler's own error (one with no cause) to onError as it is", async () => {
    const seen: unknown[] = [];
    const response = await duplexResponse(
      new Request("http://localhost/x", { method: "POST", body: "a\n" }),
      buggyOnceGone,
      { onError: (error) => void seen.push(error) },
    );
    const reader = response.body!.getReader();
    await reader.read();
    await reader.cancel(); // no reason
    await untilSeen(seen);
    assert.equal(seen.length, 1);
    assert.ok(seen[0] instanceof TypeError, String(seen[0]));
  });
});

describe("createUploadHandler, createEchoHandler and createDuplexHandler", () => {
  it("answer a method with no body to exchange 405, and OPTIONS 204, with Allow: POST, PUT and the duplex handler's headers, the handler not run (a HEAD or a CORS preflight ran it)", async () => {
    let runs = 0;
    const cors = {
      "access-control-allow-origin": "https://app.example",
      "access-control-allow-headers": "content-type",
    };
    const handlers = {
      "receive body": createUploadHandler({ sink: () => new WritableStream() }),
      echo: createEchoHandler(),
      "answer duplex": createDuplexHandler(async (stream) => {
        runs++;
        await stream.write("hello\n");
      }, { headers: cors }),
    };
    for (const [what, handler] of Object.entries(handlers)) {
      const own = what === "answer duplex";
      for (const method of ["GET", "HEAD", "DELETE", "PATCH"]) {
        const response = await handler(
          new Request("http://localhost/x", { method }),
        );
        assert.equal(response.status, 405, `${what} ${method}`);
        assert.equal(response.headers.get("allow"), "POST, PUT");
        assert.equal(
          response.headers.get("content-type"),
          "text/plain; charset=utf-8",
        );
        assert.equal(
          await response.text(),
          `Cannot ${what}: method ${method} is not POST or PUT`,
        );
      }
      const preflight = await handler(
        new Request("http://localhost/x", {
          method: "OPTIONS",
          headers: { "access-control-request-method": "POST" },
        }),
      );
      assert.equal(preflight.status, 204, `${what} OPTIONS`);
      assert.equal(preflight.headers.get("allow"), "POST, PUT");
      assert.equal(
        preflight.headers.get("access-control-allow-origin"),
        own ? "https://app.example" : null,
      );
      const put = await handler(
        new Request("http://localhost/x", { method: "PUT", body: "hello\n" }),
      );
      if (what === "receive body") assert.equal(put.status, 201);
      else assert.equal(await put.text(), "hello\n", `${what} PUT`);
    }
    assert.equal(runs, 1);
  });
});
