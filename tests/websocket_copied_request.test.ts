// A WebSocket upgrade of a copy of the request the server received, as a
// router that rewrites the path makes one (Hono's app.mount builds
// `new Request(newUrl, request)`). Deno answered the copy 101, but its
// server socket never opened and fired no event: the client closed with
// 1006, the handler's duplex stream and RPC calls waited forever, and
// nothing reached the app's error handler. Under Bun the copy is refused
// with a TypeError; now under Deno too, before any socket exists.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Hono } from "hono";
import { websocketDuplex } from "../lib/http/mod.ts";
import {
  createClient,
  createWebSocketTransport,
  RpcError,
} from "../lib/rpc/mod.ts";
import {
  createWebSocketRpcHandler,
  upgradeWebSocket,
  type WebSocketLike,
} from "../lib/runtime/websocket.ts";
import {
  streamingCalc,
  StreamingCalcService,
} from "../examples/streaming_calc.ts";
import { deadline, withServer } from "./_helpers.ts";

/** What upgradeWebSocket says of a copy, under Deno and Bun alike. */
const COPY_REFUSED = /pass (it )?the request the server received, not a copy/;

/** The ws: URL of `path` on a server at `base`. */
function wsUrl(base: URL, path: string): string {
  const url = new URL(path, base);
  url.protocol = "ws:";
  return url.href;
}

/** Opens a client WebSocket and settles with how it ended. */
function attempt(url: string): Promise<{ opened: boolean; code: number }> {
  const socket = new WebSocket(url);
  let opened = false;
  socket.addEventListener("open", () => {
    opened = true;
    socket.close(1000);
  });
  return deadline(
    new Promise((resolve) => {
      socket.addEventListener(
        "close",
        (event) => resolve({ opened, code: event.code }),
        { once: true },
      );
    }),
    10_000,
    "WebSocket close",
  );
}

/** An echo over websocketDuplex that records the socket and its outcome. */
function echo(request: Request, sockets: WebSocketLike[]): Response {
  const { socket, response } = upgradeWebSocket(request);
  sockets.push(socket);
  const stream = websocketDuplex(socket);
  (async () => {
    for await (const chunk of stream) await stream.write(chunk);
    await stream.close();
  })().catch((error) => stream.close(error));
  return response;
}

describe("upgradeWebSocket given a copy of the request the server received", () => {
  it("upgradeWebSocket throws a TypeError naming a copy and makes no socket (under Deno it answered 101 with a socket that never opened)", async () => {
    const sockets: WebSocketLike[] = [];
    const errors: unknown[] = [];
    const outcome = await withServer((request) => {
      const copy = new Request(new URL("/ws", request.url), request);
      try {
        return echo(copy, sockets);
      } catch (error) {
        errors.push(error);
        return new Response("refused", { status: 500 });
      }
    }, (server) => attempt(wsUrl(server.url, "/m/ws")));
    assert.equal(errors.length, 1, "the upgrade of the copy threw nothing");
    assert.ok(errors[0] instanceof TypeError);
    assert.match(errors[0].message, COPY_REFUSED);
    assert.match(errors[0].message, /app\.mount/);
    assert.match(errors[0].message, /c\.req\.raw/);
    // No socket left waiting to open: before, one per attempt, readyState 0.
    assert.deepEqual(sockets.map((socket) => socket.readyState), []);
    // The client is refused, not answered 101 (then closed with 1006).
    assert.equal(outcome.opened, false);
  });

  it("createWebSocketRpcHandler under Hono's app.mount: the TypeError reaches the app's onError and the call fails at once (nothing reached it; the call got a 101 that closed with 1006)", async () => {
    const errors: Error[] = [];
    const app = new Hono();
    app.onError((error, c) => {
      errors.push(error);
      return c.text("refused", 500);
    });
    const rpc = createWebSocketRpcHandler(streamingCalc, {
      allowedOrigins: "*",
    });
    app.mount("/m", rpc);
    const failure = await withServer(
      (request) => app.fetch(request),
      async (server) => {
        const client = createClient(
          StreamingCalcService,
          createWebSocketTransport({ url: wsUrl(server.url, "/m/rpc") }),
        );
        return await deadline(
          (async () => {
            const call = client.incrementalSum({ timeoutMs: 8_000 });
            await call.send(8n);
            await call.receive();
            return undefined;
          })().catch((error: unknown) => error),
          10_000,
          "the RPC call",
        );
      },
    );
    assert.equal(errors.length, 1, "the app's onError saw nothing");
    assert.ok(errors[0] instanceof TypeError);
    assert.match(errors[0].message, COPY_REFUSED);
    // Refused before a 101, not a socket that dropped (before: "closed with
    // code 1006 (Reserved bits are not zero)" under Deno).
    assert.ok(failure instanceof RpcError, String(failure));
    assert.doesNotMatch(failure.message, /Reserved bits/);
  });

  it("upgradeWebSocket upgrades the request Hono routes as c.req.raw, beside a mount", async () => {
    const sockets: WebSocketLike[] = [];
    const app = new Hono();
    app.get("/r/ws", (c) => echo(c.req.raw, sockets));
    app.mount("/m", (request) => echo(request, sockets));
    await withServer((request) => app.fetch(request), async (server) => {
      const socket = new WebSocket(wsUrl(server.url, "/r/ws"));
      socket.binaryType = "arraybuffer";
      const echoed = await deadline(
        new Promise<string>((resolve, reject) => {
          socket.onopen = () => socket.send(new TextEncoder().encode("hi"));
          socket.onmessage = (event) => {
            resolve(new TextDecoder().decode(event.data as ArrayBuffer));
            socket.close(1000);
          };
          socket.onerror = () => reject(new Error("the WebSocket failed"));
        }),
        10_000,
        "echo",
      );
      assert.equal(echoed, "hi");
    });
    assert.equal(sockets.length, 1);
  });
});
