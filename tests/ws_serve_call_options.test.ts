// serveWebSocketCall checks its options as createWebSocketRpcHandler does:
// before, an idleTimeoutMs past setTimeout's limit (30 days) closed the
// socket at once with deadline_exceeded, and NaN or -1 never timed out.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createUniversalHandler } from "../lib/rpc/mod.ts";
import { serveWebSocketCall } from "../lib/rpc/protocol_websocket/serve_socket.ts";
import { createWebSocketRpcHandler } from "../lib/runtime/websocket.ts";
import { FakeWebSocket } from "./_fake_websocket.ts";
import type { WebSocketLike } from "../lib/http/websocket_duplex.ts";

const MONTH_MS = 30 * 24 * 3600 * 1000;

/** The error `fn` throws, or undefined. */
function thrown(fn: () => unknown): Error | undefined {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  return undefined;
}

describe("serveWebSocketCall options", () => {
  const handler = createUniversalHandler([], { protocols: ["connect"] });
  const cases: [string, number][] = [
    ["idleTimeoutMs", MONTH_MS],
    ["idleTimeoutMs", NaN],
    ["idleTimeoutMs", -1],
    ["maxBufferedBytes", -1],
    ["maxBufferedBytes", 1.5],
  ];
  for (const [name, value] of cases) {
    it(`serveWebSocketCall throws the RangeError of createWebSocketRpcHandler for ${name} ${value}, touching no socket`, () => {
      const socket = new FakeWebSocket();
      const error = thrown(() =>
        serveWebSocketCall(
          socket as unknown as WebSocketLike,
          handler,
          { [name]: value },
        )
      );
      const expected = thrown(() =>
        createWebSocketRpcHandler([], { [name]: value })
      );
      assert.ok(expected instanceof RangeError);
      assert.ok(error instanceof RangeError, `got ${error}`);
      assert.equal(
        error.message.replace(/^Cannot serve WebSocket call: /, ""),
        expected.message.replace(/^Cannot create WebSocket RPC handler: /, ""),
      );
      assert.equal(socket.closes, 0);
      assert.deepEqual(socket.sent, []);
    });
  }

  it("serveWebSocketCall takes idleTimeoutMs 2147483647, the longest a timer waits, and 0", async () => {
    for (const idleTimeoutMs of [2 ** 31 - 1, 0]) {
      const socket = new FakeWebSocket();
      const serving = serveWebSocketCall(
        socket as unknown as WebSocketLike,
        handler,
        { idleTimeoutMs },
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(socket.closedWith, undefined);
      socket.end(1000, "");
      await serving;
    }
  });
});
