// Native gRPC sent to createUniversalHandler without "grpc" in its
// protocols, behind serveHttp2: refused as a gRPC server refuses a call, in
// headers only, so that every gRPC client reports UNIMPLEMENTED and how to
// serve it. A 415's text was read as a frame by grpc-js ("Received message
// larger than max (1634627183 vs 4194304)", RESOURCE_EXHAUSTED) and as
// HTTP's status by connect-node and sluice's client (UNKNOWN "HTTP 415").

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { Code, createUniversalHandler, RpcError } from "../lib/rpc/mod.ts";
import { type Http2Server, serveHttp2 } from "../lib/runtime/grpc_node.ts";
import { streamingCalc } from "../examples/streaming_calc.ts";
import {
  connectNodeRefusal,
  grpcJsRefusal,
  sluiceGrpcRefusal,
} from "./_native_grpc_refused.ts";
const HINT =
  /^Cannot serve native gRPC: this handler's protocols are \["grpc-web", "connect"\]; add "grpc" to createUniversalHandler's protocols to serve it$/;

describe("createUniversalHandler without grpc refuses native gRPC", () => {
  const universal = createUniversalHandler(streamingCalc, {
    protocols: ["grpc-web", "connect"],
  });
  let server: Http2Server;
  before(async () => {
    server = await serveHttp2(universal);
  });
  after(() => server?.shutdown());

  it("createUniversalHandler answers native gRPC it does not serve in headers only: 200, grpc-status 12 (UNIMPLEMENTED), a grpc-message naming the protocols option, no body, the request body cancelled", async () => {
    let cancelled = false;
    const response = await universal({
      method: "POST",
      url: "http://localhost/StreamingCalcService/Sum",
      headers: new Headers({ "content-type": "application/grpc+json" }),
      body: new ReadableStream({
        cancel() {
          cancelled = true;
        },
      }),
    });
    assert.equal(response.status, 200);
    assert.equal(response.body, undefined);
    assert.equal(response.trailers, undefined);
    assert.equal(cancelled, true);
    assert.equal(response.headers.get("content-type"), "application/grpc+json");
    assert.equal(
      response.headers.get("grpc-status"),
      String(Code.Unimplemented),
    );
    assert.match(
      decodeURIComponent(response.headers.get("grpc-message")!),
      HINT,
    );
  });

  it("createUniversalHandler without grpc, behind serveHttp2: grpc-js reports UNIMPLEMENTED with how to serve it (it read a 415's text as a frame: RESOURCE_EXHAUSTED)", async () => {
    const error = await grpcJsRefusal(server.port);
    assert.equal(error.code, grpc.status.UNIMPLEMENTED, String(error));
    assert.match(error.details, HINT);
  });

  it("createUniversalHandler without grpc, behind serveHttp2: sluice's gRPC client reports UNIMPLEMENTED with how to serve it (it read a 415: UNKNOWN)", async () => {
    const error = await sluiceGrpcRefusal(server.url.origin);
    assert.ok(error instanceof RpcError, String(error));
    assert.equal(error.code, Code.Unimplemented, String(error));
    assert.match(error.rawMessage, HINT);
  });

  it("createUniversalHandler without grpc, behind serveHttp2: connect-node's gRPC transport reports UNIMPLEMENTED with how to serve it (it read a 415: UNKNOWN)", async () => {
    const error = await connectNodeRefusal(server.url.origin);
    assert.equal(error.code, Code.Unimplemented, String(error));
    assert.match(error.rawMessage, HINT);
  });
});
