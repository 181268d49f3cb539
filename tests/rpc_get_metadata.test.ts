// The response headers and trailers of unary calls, through the onHeader
// and onTrailer call options, on every transport (Connect POST and GET,
// gRPC-Web, native gRPC, WebSocket), for calls that succeed and calls that
// fail, with binary (-bin) metadata, from both createClient functions.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createClient, implementService } from "../lib/protobuf/mod.ts";
import { serviceDefinition } from "../lib/protobuf/_service_definition.ts";
import {
  type CallOptions,
  Code,
  createClient as createDefinedClient,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  createRpcHandler,
  createUniversalHandler,
  createWebSocketTransport,
  RpcError,
  type Transport,
} from "../lib/rpc/mod.ts";
import { createHttp2Client, serveHttp2 } from "../lib/runtime/grpc_node.ts";
import { createWebSocketRpcHandler } from "../lib/runtime/websocket.ts";
import type { Server } from "../lib/runtime/serve.ts";
import { decodeBase64 } from "../lib/_internal/base64.ts";
import { LookupService } from "./gen/lookup_pb.ts";
import { deadline, startServer } from "./_helpers.ts";

const T = 20_000;
const BIN = new Uint8Array([0, 1, 2, 254, 255]);
const BIN_TEXT = "AAEC/v8"; // BIN in unpadded base64

// A handler's error metadata, protocol headers among it (not sent).
const ERROR_METADATA = new Headers({
  "x-error": "e-1",
  "x-error-bin": BIN_TEXT,
  "grpc-status": "0",
  "grpc-message": "all is well",
  "content-type": "text/evil",
  "connect-protocol-version": "9",
});

// Another server, in process over Connect, whose every call fails as
// "fail-meta" does: where "relay" calls.
const failing = createRpcHandler(implementService(LookupService, {
  get(_, context) {
    context.responseTrailers.set("x-trailer", "t-failing");
    throw new RpcError(Code.ResourceExhausted, "Cannot get: quota", {
      metadata: ERROR_METADATA,
    });
  },
  put: (request) => ({ key: request.key }),
  append: (request) => ({ key: request.key }),
}));
const relayed = createClient(
  LookupService,
  createConnectTransport({
    baseUrl: "http://failing",
    fetch: (input, init) => failing(new Request(input as string, init)),
  }),
);

const lookup = implementService(LookupService, {
  get(request, context) {
    context.responseHeaders.set("x-header", `h-${request.key}`);
    context.responseHeaders.set("x-header-bin", BIN_TEXT);
    context.responseTrailers.set("x-trailer", `t-${request.key}`);
    context.responseTrailers.set("x-trailer-bin", BIN_TEXT);
    if (request.key === "fail") {
      throw new RpcError(Code.NotFound, "Cannot get fail: no such key");
    }
    if (request.key.startsWith("protocol")) {
      // The protocol's own headers, as a handler copying another
      // response's might set them: not sent.
      for (
        const target of [context.responseHeaders, context.responseTrailers]
      ) {
        target.set("content-type", "text/planted");
        target.set("content-encoding", "planted");
        target.set("grpc-status", "0");
        target.set("grpc-encoding", "planted");
        target.set("connect-content-encoding", "planted");
      }
      if (request.key === "protocol-fail") {
        throw new RpcError(Code.NotFound, "Cannot get: no such key");
      }
    }
    if (request.key === "fail-meta") {
      throw new RpcError(Code.ResourceExhausted, "Cannot get: quota", {
        metadata: ERROR_METADATA,
      });
    }
    if (request.key === "relay") {
      // Rethrows the error another server answered with: its code and
      // message go on, its metadata (that server's trailers) does not.
      return relayed.get({ key: "fail-meta" });
    }
    return { key: request.key, value: "v", httpMethod: context.requestMethod };
  },
  put: (request) => ({ key: request.key }),
  append: (request) => ({ key: request.key }),
});

interface Seen {
  order: string[];
  headers?: Headers;
  trailers?: Headers;
}

function callOptions(seen: Seen) {
  return {
    onHeader(headers: Headers) {
      seen.order.push("header");
      seen.headers = headers;
    },
    onTrailer(trailers: Headers) {
      seen.order.push("trailer");
      seen.trailers = trailers;
    },
  };
}

function assertBin(value: string | null | undefined, what: string) {
  assert.ok(value, `${what} is missing`);
  assert.deepEqual(decodeBase64(value), BIN, what);
}

let http: Server;
let h2: Awaited<ReturnType<typeof serveHttp2>>;
let h2Client: ReturnType<typeof createHttp2Client>;

before(async () => {
  const rpc = createRpcHandler(lookup);
  const ws = createWebSocketRpcHandler(lookup);
  http = await startServer((request) =>
    request.headers.get("upgrade") ? ws(request) : rpc(request)
  );
  h2 = await serveHttp2(createUniversalHandler(lookup));
  h2Client = createHttp2Client(h2.url.origin);
});
after(async () => {
  await h2Client.close();
  await deadline(h2.shutdown(), T, "h2 shutdown");
  await deadline(http.shutdown(), T, "server shutdown");
});

const transports: Record<string, () => Transport> = {
  "Connect (proto)": () => createConnectTransport({ baseUrl: http.url.origin }),
  "Connect (json)": () =>
    createConnectTransport({ baseUrl: http.url.origin, codec: "json" }),
  "Connect GET": () =>
    createConnectTransport({ baseUrl: http.url.origin, useHttpGet: true }),
  "gRPC-Web": () => createGrpcWebTransport({ baseUrl: http.url.origin }),
  "gRPC (node:http2)": () =>
    createGrpcTransport({ baseUrl: h2.url.origin, httpClient: h2Client }),
  "WebSocket": () => createWebSocketTransport({ baseUrl: http.url.origin }),
};

describe("onHeader and onTrailer on unary calls", { timeout: T }, () => {
  for (const [name, transport] of Object.entries(transports)) {
    it(`${name}: a successful call shows its headers and trailers`, async () => {
      const client = createClient(LookupService, transport());
      const seen: Seen = { order: [] };
      const answer = await client.get({ key: "a" }, callOptions(seen));
      assert.equal(answer.value, "v");
      assert.equal(
        answer.httpMethod,
        name === "Connect GET" ? "GET" : "POST",
      );
      assert.deepEqual(seen.order, ["header", "trailer"]);
      assert.equal(seen.headers?.get("x-header"), "h-a");
      assertBin(seen.headers?.get("x-header-bin"), "x-header-bin");
      assert.equal(seen.trailers?.get("x-trailer"), "t-a");
      assertBin(seen.trailers?.get("x-trailer-bin"), "x-trailer-bin");
      // Trailers are not shown as headers (Connect unary's trailer-*).
      assert.equal(seen.headers?.get("x-trailer"), null);
      assert.equal(seen.headers?.get("trailer-x-trailer"), null);
    });

    it(`${name}: a failed call shows them too, and the error's metadata`, async () => {
      // The rpc layer's createClient, over the same descriptor.
      const client = createDefinedClient(
        serviceDefinition(LookupService),
        transport(),
      ) as unknown as {
        get(input: { key: string }, options: CallOptions): Promise<unknown>;
      };
      const seen: Seen = { order: [] };
      await assert.rejects(
        client.get({ key: "fail" }, callOptions(seen)),
        (error: RpcError) => {
          assert.equal(error.code, Code.NotFound);
          assert.equal(error.rawMessage, "Cannot get fail: no such key");
          assert.equal(error.metadata.get("x-trailer"), "t-fail");
          assertBin(error.metadata.get("x-trailer-bin"), "metadata -bin");
          return true;
        },
      );
      assert.deepEqual(seen.order, ["header", "trailer"]);
      assert.equal(seen.headers?.get("x-header"), "h-fail");
      assertBin(seen.headers?.get("x-header-bin"), "x-header-bin");
      assert.equal(seen.trailers?.get("x-trailer"), "t-fail");
      assertBin(seen.trailers?.get("x-trailer-bin"), "x-trailer-bin");
    });
  }

  for (const [name, transport] of Object.entries(transports)) {
    it(`${name}: a handler's error sends its metadata as trailers, protocol headers left out`, async () => {
      const client = createClient(LookupService, transport());
      const seen: Seen = { order: [] };
      await assert.rejects(
        client.get({ key: "fail-meta" }, callOptions(seen)),
        (error: RpcError) => {
          assert.equal(error.code, Code.ResourceExhausted);
          assert.equal(error.rawMessage, "Cannot get: quota");
          assert.equal(error.metadata.get("x-error"), "e-1");
          assertBin(error.metadata.get("x-error-bin"), "error metadata -bin");
          assert.equal(error.metadata.get("x-trailer"), "t-fail-meta");
          assert.equal(error.details.length, 0);
          return true;
        },
      );
      assert.deepEqual(seen.order, ["header", "trailer"]);
      assert.equal(seen.trailers?.get("x-error"), "e-1");
      for (const name of ERROR_METADATA.keys()) {
        if (name.startsWith("x-")) continue;
        assert.notEqual(seen.trailers?.get(name), ERROR_METADATA.get(name));
        assert.notEqual(seen.headers?.get(name), ERROR_METADATA.get(name));
      }
    });

    it(`${name}: protocol headers a handler sets are not sent; the call answers as without them`, async () => {
      const client = createClient(LookupService, transport());
      const seen: Seen = { order: [] };
      const answer = await client.get({ key: "protocol" }, callOptions(seen));
      assert.equal(answer.value, "v");
      assert.equal(seen.headers?.get("x-header"), "h-protocol");
      assert.equal(seen.trailers?.get("x-trailer"), "t-protocol");
      for (const got of [seen.headers, seen.trailers]) {
        assert.notEqual(got?.get("content-type"), "text/planted");
        assert.notEqual(got?.get("content-encoding"), "planted");
        assert.notEqual(got?.get("grpc-encoding"), "planted");
      }
      await assert.rejects(
        client.get({ key: "protocol-fail" }),
        (error: RpcError) =>
          error.code === Code.NotFound &&
          error.rawMessage === "Cannot get: no such key",
      );
    });

    it(`${name}: an error relayed from another call keeps its code and message, not its metadata`, async () => {
      const client = createClient(LookupService, transport());
      const seen: Seen = { order: [] };
      await assert.rejects(
        client.get({ key: "relay" }, callOptions(seen)),
        (error: RpcError) => {
          assert.equal(error.code, Code.ResourceExhausted);
          assert.equal(error.rawMessage, "Cannot get: quota");
          assert.equal(error.metadata.get("x-error"), null);
          assert.equal(error.metadata.get("x-trailer"), "t-relay");
          return true;
        },
      );
      assert.equal(seen.trailers?.get("x-error"), null);
    });
  }

  it("neither is called when no response arrives", async () => {
    const unused = await startServer(() => new Response(null));
    const origin = unused.url.origin;
    await unused.shutdown();
    const client = createClient(
      LookupService,
      createConnectTransport({ baseUrl: origin }),
    );
    const seen: Seen = { order: [] };
    await assert.rejects(
      client.get({ key: "a" }, callOptions(seen)),
      (error: RpcError) => error.code === Code.Unavailable,
    );
    assert.deepEqual(seen.order, []);
  });

  it("onHeader is called for a response without an RPC status, onTrailer not", async () => {
    const proxy = await startServer(() =>
      new Response("overloaded", {
        status: 503,
        headers: { "x-proxy": "yes" },
      })
    );
    try {
      for (
        const transport of [
          createConnectTransport({ baseUrl: proxy.url.origin }),
          createGrpcWebTransport({ baseUrl: proxy.url.origin }),
        ]
      ) {
        const client = createClient(LookupService, transport);
        const seen: Seen = { order: [] };
        await assert.rejects(
          client.get({ key: "a" }, callOptions(seen)),
          (error: RpcError) => error.code === Code.Unavailable,
        );
        assert.deepEqual(seen.order, ["header"], transport.protocol);
        assert.equal(seen.headers?.get("x-proxy"), "yes");
      }
    } finally {
      await proxy.shutdown();
    }
  });

  it("an onHeader that throws fails the call with Unknown", async () => {
    const client = createClient(
      LookupService,
      createConnectTransport({ baseUrl: http.url.origin }),
    );
    await assert.rejects(
      client.get({ key: "a" }, {
        onHeader() {
          throw new Error("boom");
        },
      }),
      (error: RpcError) => {
        assert.equal(error.code, Code.Unknown);
        assert.match(error.message, /onHeader threw: boom/);
        return true;
      },
    );
  });
});
