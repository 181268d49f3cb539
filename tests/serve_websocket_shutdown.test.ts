// serve's shutdown and the WebSockets it upgraded, while another request
// holds the shutdown to its shutdownTimeoutMs. Under Deno the forced close
// at the limit sent each open WebSocket a close frame with code 1005, which
// no peer may send (Deno's client reported 1006 "Invalid close code", Bun's
// a protocol error); now the sockets are closed with 1001 when the shutdown
// begins, as Deno's graceful shutdown does and as serve does under Bun.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { serve } from "../lib/runtime/serve.ts";
import {
  createWebSocketRpcHandler,
  upgradeWebSocket,
} from "../lib/runtime/websocket.ts";
import {
  Code,
  createClient,
  createWebSocketTransport,
  RpcError,
} from "../lib/rpc/mod.ts";
import {
  streamingCalc,
  StreamingCalcService,
} from "../examples/streaming_calc.ts";
import { deadline } from "./_helpers.ts";

/**
 * A server whose `/ws` upgrades (after `delayMs`) and whose other paths
 * answer a stream that never ends, which holds a shutdown to its limit;
 * with such an answer begun (`held` aborts it). `reached` resolves when a
 * `/ws` request reaches the handler.
 */
async function heldServer(delayMs: number, shutdownTimeoutMs: number) {
  const reached = Promise.withResolvers<void>();
  const server = await serve(async (request) => {
    if (new URL(request.url).pathname === "/ws") {
      reached.resolve();
      if (delayMs > 0) {
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
      return upgradeWebSocket(request).response;
    }
    return new Response(
      new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new Uint8Array([1]));
        },
      }),
    );
  }, { hostname: "127.0.0.1", port: 0, shutdownTimeoutMs });
  const held = new AbortController();
  const streaming = await fetch(server.url, { signal: held.signal });
  await streaming.body!.getReader().read();
  return { server, held, reached: reached.promise };
}

/** A WebSocket client of `/ws`, and its close's code and time. */
function socketOf(server: { url: URL }) {
  const client = new WebSocket(
    new URL("/ws", server.url).href.replace("http", "ws"),
  );
  const closed = new Promise<{ code: number; at: number }>((resolve) => {
    client.onclose = (event) =>
      resolve({ code: event.code, at: performance.now() });
  });
  return { client, closed };
}

describe("serve's shutdown and its WebSockets", () => {
  it("closes an open WebSocket with 1001 at once while a streaming answer holds the shutdown (Deno sent 1005 at the limit)", async () => {
    const { server, held } = await heldServer(0, 1_500);
    try {
      const { client, closed } = socketOf(server);
      await deadline(
        new Promise((resolve, reject) => {
          client.onopen = resolve;
          client.onerror = () => reject(new Error("the socket did not open"));
        }),
        5_000,
        "the socket's open",
      );
      const started = performance.now();
      const stopping = server.shutdown();
      const { code, at } = await deadline(closed, 10_000, "the socket's close");
      assert.equal(code, 1001);
      assert.ok(at - started < 1_000, `closed after ${at - started} ms`);
      held.abort();
      await deadline(stopping, 10_000, "the shutdown");
    } finally {
      held.abort();
      await server.shutdown();
    }
  });

  it("closes with 1001 a WebSocket upgraded after the shutdown began, once it opens (Deno cut it at the limit)", async () => {
    // A check before the upgrade (say, authentication) that outlasts the
    // shutdown's start.
    const { server, held, reached } = await heldServer(300, 2_000);
    try {
      const { closed } = socketOf(server);
      await deadline(reached, 5_000, "the upgrade's request");
      const started = performance.now();
      const stopping = server.shutdown();
      const { code, at } = await deadline(closed, 10_000, "the socket's close");
      assert.equal(code, 1001);
      // Under Bun, whose stop() holds it, it closes at the limit.
      if (typeof Deno !== "undefined") {
        assert.ok(at - started < 1_500, `closed after ${at - started} ms`);
      }
      held.abort();
      await deadline(stopping, 10_000, "the shutdown");
    } finally {
      held.abort();
      await server.shutdown();
    }
  });

  it("a WebSocket RPC call still sending when a shutdown with nothing else open begins fails UNAVAILABLE with 1001 (Deno closed the connection after the close frame: 1006)", async () => {
    const ws = createWebSocketRpcHandler([streamingCalc]);
    const server = await serve((request) => ws(request), {
      hostname: "127.0.0.1",
      port: 0,
      shutdownTimeoutMs: 1_500,
    });
    try {
      const client = createClient(
        StreamingCalcService,
        createWebSocketTransport({
          baseUrl: String(server.url).replace(/\/$/, ""),
        }),
      );
      const call = client.incrementalSum();
      await call.send(1n);
      await call.receive();
      const stopping = server.shutdown();
      const error = await deadline(
        (async () => {
          for (let i = 2n; i <= 200n; i++) {
            await call.send(i);
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
          await call.complete();
          await call.receive();
        })().then(() => undefined, (error: unknown) => error),
        10_000,
        "the call",
      );
      assert.ok(error instanceof RpcError, String(error));
      assert.equal(error.code, Code.Unavailable);
      assert.match(error.rawMessage, /code 1001 \(Server shutting down\)/);
      await deadline(stopping, 10_000, "the shutdown");
    } finally {
      await server.shutdown();
    }
  });
});
