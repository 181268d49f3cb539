// serve's shutdown and the WebSockets it upgraded, while another request
// holds the shutdown to its shutdownTimeoutMs. Under Deno the forced close
// at the limit sent each open WebSocket a close frame with code 1005, which
// no peer may send (Deno's client reported 1006 "Invalid close code", Bun's
// a protocol error); now the sockets are closed with 1001 when the shutdown
// begins, as Deno's graceful shutdown does and as serve does under Bun.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { serve } from "../lib/runtime/serve.ts";
import { upgradeWebSocket } from "../lib/runtime/websocket.ts";
import { deadline } from "./_helpers.ts";

describe("serve's shutdown and its WebSockets", () => {
  it("closes an open WebSocket with 1001 at once while a streaming answer holds the shutdown (Deno sent 1005 at the limit)", async () => {
    const server = await serve((request) => {
      if (new URL(request.url).pathname === "/ws") {
        return upgradeWebSocket(request).response;
      }
      // An answer that never ends: it holds the shutdown to its limit.
      return new Response(
        new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new Uint8Array([1]));
          },
        }),
      );
    }, {
      hostname: "127.0.0.1",
      port: 0,
      shutdownTimeoutMs: 1_500,
    });
    const held = new AbortController();
    try {
      const streaming = await fetch(server.url, { signal: held.signal });
      await streaming.body!.getReader().read();
      const client = new WebSocket(
        new URL("/ws", server.url).href.replace("http", "ws"),
      );
      await deadline(
        new Promise((resolve, reject) => {
          client.onopen = resolve;
          client.onerror = () => reject(new Error("the socket did not open"));
        }),
        5_000,
        "the socket's open",
      );
      const closed = new Promise<{ code: number; at: number }>((resolve) => {
        client.onclose = (event) =>
          resolve({ code: event.code, at: performance.now() });
      });
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
});
