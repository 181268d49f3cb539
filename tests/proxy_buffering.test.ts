// Streamed answers say `X-Accel-Buffering: no`, so that an nginx-style
// proxy with its defaults (`proxy_buffering on`) passes each write on as it
// comes. Found through nginx 1.22 with only `proxy_pass`: a Connect or
// gRPC-Web server-streaming call of 25 messages 400 ms apart reached its
// client all at once after 10 s, and so did echoed bytes; event streams,
// which said it already, flowed.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { echo } from "../lib/http/echo.ts";
import { duplexResponse } from "../lib/http/duplex_response.ts";
import { sseResponse } from "../lib/http/sse_response.ts";
import {
  createClient,
  createConnectTransport,
  createGrpcWebTransport,
  createRpcHandler,
} from "../lib/rpc/mod.ts";
import {
  streamingCalc,
  StreamingCalcService,
} from "../examples/streaming_calc.ts";
import { withServer } from "./_helpers.ts";

describe("streamed answers and proxies that buffer", () => {
  it("echo, duplexResponse, event streams and streaming RPC over HTTP/1.1 (Connect, gRPC-Web) say X-Accel-Buffering: no", async () => {
    const rpc = createRpcHandler(streamingCalc);
    await withServer(async (request) => {
      const path = new URL(request.url).pathname;
      if (path === "/echo") return await echo(request);
      if (path === "/duplex") {
        return await duplexResponse(request, async (duplex) => {
          await duplex.readable.pipeTo(duplex.writable);
        }, { sendHeaders: "immediately" });
      }
      if (path === "/events") {
        return sseResponse([{ data: "one" }]);
      }
      return await rpc(request);
    }, async (server) => {
      const seen: Record<string, string | null> = {};
      for (const path of ["/echo", "/duplex", "/events"]) {
        const response = await fetch(new URL(path, server.url), {
          method: path === "/events" ? "GET" : "POST",
          body: path === "/events" ? undefined : "hello",
        });
        await response.body?.cancel();
        seen[path] = response.headers.get("x-accel-buffering");
      }
      for (
        const [name, transport] of [
          ["connect", createConnectTransport({ baseUrl: server.url })],
          ["grpc-web", createGrpcWebTransport({ baseUrl: server.url })],
        ] as const
      ) {
        const call = createClient(StreamingCalcService, transport)
          .incrementalSum();
        await call.send(1n);
        assert.deepEqual(await call.receive(), { done: false, value: 1n });
        seen[name] = (await call.headers).get("x-accel-buffering");
        await call.complete();
        assert.deepEqual(await call.receive(), {
          done: true,
          value: undefined,
        });
      }
      assert.deepEqual(seen, {
        "/echo": "no",
        "/duplex": "no",
        "/events": "no",
        connect: "no",
        "grpc-web": "no",
      });
    });
  });
});
