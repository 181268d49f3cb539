// Native gRPC sent to createUniversalHandler without "grpc" in its
// protocols, behind serveHttp2: refused as a gRPC server refuses a call, in
// headers only, so that every gRPC client reports UNIMPLEMENTED and how to
// serve it. A 415's text was read as a frame by grpc-js ("Received message
// larger than max (1634627183 vs 4194304)", RESOURCE_EXHAUSTED) and as
// HTTP's status by connect-node and sluice's client (UNKNOWN "HTTP 415").

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { createClient as createConnectClient } from "@connectrpc/connect";
import { createGrpcTransport as connectNodeGrpc } from "@connectrpc/connect-node";
import {
  Code,
  createClient,
  createGrpcTransport,
  createUniversalHandler,
  RpcError,
} from "../lib/rpc/mod.ts";
import {
  createHttp2Client,
  type Http2Server,
  serveHttp2,
} from "../lib/runtime/grpc_node.ts";
import {
  streamingCalc,
  StreamingCalcService,
} from "../examples/streaming_calc.ts";
import { deadline } from "./_helpers.ts";
import {
  connectService,
  grpcJsClient,
  grpcJsSum,
  int64,
} from "./_calc_peers.ts";

const T = 20_000;
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
    const client = grpcJsClient(`127.0.0.1:${server.port}`);
    try {
      const error = await deadline(
        grpcJsSum(client, [2n]).then(
          (value) => assert.fail(`resolved with ${value}`),
          (error: grpc.ServiceError) => error,
        ),
        T,
        "the grpc-js call",
      );
      assert.equal(error.code, grpc.status.UNIMPLEMENTED, String(error));
      assert.match(error.details, HINT);
    } finally {
      client.close();
    }
  });

  it("createUniversalHandler without grpc, behind serveHttp2: sluice's gRPC client reports UNIMPLEMENTED with how to serve it (it read a 415: UNKNOWN)", async () => {
    const baseUrl = server.url.origin;
    const httpClient = createHttp2Client(baseUrl);
    try {
      const client = createClient(
        StreamingCalcService,
        createGrpcTransport({ baseUrl, httpClient }),
      );
      const error = await deadline(
        (async () => {
          const call = client.sum();
          await call.send(2n);
          await call.complete();
          return await call.receive();
        })().then(
          (value) => assert.fail(`resolved with ${value}`),
          (error: unknown) => error,
        ),
        T,
        "the sluice call",
      );
      assert.ok(error instanceof RpcError, String(error));
      assert.equal(error.code, Code.Unimplemented, String(error));
      assert.match(error.rawMessage, HINT);
    } finally {
      await httpClient.close();
    }
  });

  it("createUniversalHandler without grpc, behind serveHttp2: connect-node's gRPC transport reports UNIMPLEMENTED with how to serve it (it read a 415: UNKNOWN)", async () => {
    const client = createConnectClient(
      connectService(),
      connectNodeGrpc({ baseUrl: server.url.origin }),
    );
    async function* values() {
      yield int64(2n);
    }
    const error = await deadline(
      // deno-lint-ignore no-explicit-any
      (client as any).sum(values()).then(
        (value: unknown) => assert.fail(`resolved with ${value}`),
        (error: unknown) => error,
      ),
      T,
      "the connect-node call",
    ) as { code: number; rawMessage: string };
    assert.equal(error.code, Code.Unimplemented, String(error));
    assert.match(error.rawMessage, HINT);
  });
});
