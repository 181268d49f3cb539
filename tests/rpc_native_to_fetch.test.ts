// Native gRPC sent to createRpcHandler, a fetch handler, which cannot send
// the trailers gRPC needs: every gRPC client must report why, with the hint
// to serve it through serveHttp2. Under Deno, Deno.serve answers HTTP/2
// with prior knowledge (h2c), as it does over TLS, where a Deno user's only
// TLS server is Deno.serve; Bun.serve speaks no HTTP/2.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { createClient as createConnectClient } from "@connectrpc/connect";
import { createGrpcTransport as connectNodeGrpc } from "@connectrpc/connect-node";
import {
  Code,
  createClient,
  createGrpcTransport,
  createRpcHandler,
  RpcError,
} from "../lib/rpc/mod.ts";
import { createHttp2Client } from "../lib/runtime/grpc_node.ts";
import type { Server } from "../lib/runtime/serve.ts";
import {
  streamingCalc,
  StreamingCalcService,
} from "../examples/streaming_calc.ts";
import { deadline, runtime, startServer } from "./_helpers.ts";
import {
  connectService,
  grpcJsClient,
  grpcJsSum,
  int64,
} from "./_calc_peers.ts";

const T = 20_000;
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
    assert.match(
      message,
      /^Cannot serve native gRPC from a fetch handler: .*serveHttp2/,
    );
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
        assert.match(
          error.details,
          /^Cannot serve native gRPC from a fetch handler: .*serveHttp2/,
        );
      } finally {
        client.close();
      }
    },
  );

  it(
    "createRpcHandler under Deno.serve (h2c): sluice's gRPC client reports UNIMPLEMENTED with the hint (it read a 415: UNKNOWN)",
    { skip: h2c },
    async () => {
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
        assert.match(
          error.rawMessage,
          /^Cannot serve native gRPC from a fetch handler: .*serveHttp2/,
        );
      } finally {
        await httpClient.close();
      }
    },
  );

  it(
    "createRpcHandler under Deno.serve (h2c): connect-node's gRPC transport reports UNIMPLEMENTED with the hint (it read a 415: UNKNOWN)",
    { skip: h2c },
    async () => {
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
      assert.match(
        error.rawMessage,
        /^Cannot serve native gRPC from a fetch handler: .*serveHttp2/,
      );
    },
  );
});
