// Native gRPC sent to createRpcHandler, a fetch handler, which cannot send
// the trailers gRPC needs: every gRPC client must report why, with the hint
// to serve it through serveHttp2. Under Deno, Deno.serve answers HTTP/2
// with prior knowledge (h2c), as it does over TLS, where a Deno user's only
// TLS server is Deno.serve; Bun.serve speaks no HTTP/2.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { Code, createRpcHandler, RpcError } from "../lib/rpc/mod.ts";
import type { Server } from "../lib/runtime/serve.ts";
import { streamingCalc } from "../examples/streaming_calc.ts";
import { runtime, startServer } from "./_helpers.ts";
import {
  connectNodeRefusal,
  grpcJsRefusal,
  sluiceGrpcRefusal,
} from "./_native_grpc_refused.ts";

const HINT = /^Cannot serve native gRPC from a fetch handler: .*serveHttp2/;
const h2c = runtime === "deno" ? false : "Bun.serve speaks no HTTP/2 (h2c)";

describe("createRpcHandler refuses native gRPC", () => {
  let server: Server;
  before(async () => {
    server = await startServer(createRpcHandler(streamingCalc));
  });
  after(() => server?.shutdown());

  it("createRpcHandler answers native gRPC over HTTP/1.1 in headers only: 200, grpc-status 12 (UNIMPLEMENTED), a grpc-message naming serveHttp2, no body", async () => {
    const response = await fetch(
      new URL("/StreamingCalcService/Sum", server.url),
      {
        method: "POST",
        headers: { "content-type": "application/grpc" },
        body: new Uint8Array([0, 0, 0, 0, 2, 8, 2]),
      },
    );
    assert.equal(response.status, 200);
    assert.equal(
      response.headers.get("content-type"),
      "application/grpc+proto",
    );
    assert.equal(
      response.headers.get("grpc-status"),
      String(Code.Unimplemented),
    );
    const message = decodeURIComponent(response.headers.get("grpc-message")!);
    assert.match(message, HINT);
    assert.equal(await response.text(), "");
  });

  it("createRpcHandler answers a gRPC JSON call in its own content type", async () => {
    const response = await fetch(
      new URL("/StreamingCalcService/Sum", server.url),
      {
        method: "POST",
        headers: { "content-type": "application/grpc+json" },
        body: "",
      },
    );
    await response.body?.cancel();
    assert.equal(response.headers.get("content-type"), "application/grpc+json");
    assert.equal(
      response.headers.get("grpc-status"),
      String(Code.Unimplemented),
    );
  });

  it(
    "createRpcHandler under Deno.serve (h2c): grpc-js reports UNIMPLEMENTED with the hint (it read a 415's text as a frame: RESOURCE_EXHAUSTED)",
    { skip: h2c },
    async () => {
      const error = await grpcJsRefusal(server.port);
      assert.equal(error.code, grpc.status.UNIMPLEMENTED, String(error));
      assert.match(error.details, HINT);
    },
  );

  it(
    "createRpcHandler under Deno.serve (h2c): sluice's gRPC client reports UNIMPLEMENTED with the hint (it read a 415: UNKNOWN)",
    { skip: h2c },
    async () => {
      const error = await sluiceGrpcRefusal(server.url.origin);
      assert.ok(error instanceof RpcError, String(error));
      assert.equal(error.code, Code.Unimplemented, String(error));
      assert.match(error.rawMessage, HINT);
    },
  );

  it(
    "createRpcHandler under Deno.serve (h2c): connect-node's gRPC transport reports UNIMPLEMENTED with the hint (it read a 415: UNKNOWN)",
    { skip: h2c },
    async () => {
      const error = await connectNodeRefusal(server.url.origin);
      assert.equal(error.code, Code.Unimplemented, String(error));
      assert.match(error.rawMessage, HINT);
    },
  );
});
