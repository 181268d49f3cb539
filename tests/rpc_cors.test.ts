// The `cors` lists (lib/rpc/cors.ts) against what the clients really send
// and read: every request header of sluice's Connect (POST and GET) and
// gRPC-Web clients and of connect-web's is in allowedHeaders (or one a
// browser sets itself), and the headers a gRPC-Web error without a body
// carries its status in are in exposedHeaders. A browser on another origin
// calling through a CORS layer built from them: tests/browser/rpc.ts.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Code,
  cors,
  createClient,
  createConnectTransport,
  createGrpcWebTransport,
  createRpcHandler,
  defineService,
  implementService,
  Int64Value,
  RpcError,
} from "../lib/rpc/mod.ts";
import { createClient as createConnectClient } from "@connectrpc/connect";
import {
  createConnectTransport as connectWebConnect,
  createGrpcWebTransport as connectWebGrpcWeb,
} from "@connectrpc/connect-web";
import { LookupService } from "./gen/lookup_pb.ts";

const Service = defineService("test.v1.Cors", {
  get: {
    kind: "unary",
    input: Int64Value,
    output: Int64Value,
    idempotency: "no-side-effects",
  },
  count: { kind: "server-streaming", input: Int64Value, output: Int64Value },
});

/** Headers a browser sets itself, or that need no preflight. */
const BROWSER_OWN = new Set(["accept-encoding", "accept", "user-agent"]);

/** A fetch that records each request's header names and fails it. */
function recorder(seen: Set<string>): typeof fetch {
  return (_input, init) => {
    new Headers(init?.headers).forEach((_, name) => seen.add(name));
    return Promise.reject(new TypeError("recorded"));
  };
}

describe("cors", () => {
  it("allowedHeaders holds every request header sluice's and connect-web's clients send", async () => {
    const seen = new Set<string>();
    const fetch = recorder(seen);
    for (
      const transport of [
        createConnectTransport({ baseUrl: "http://x", fetch }),
        createConnectTransport({
          baseUrl: "http://x",
          fetch,
          sendCompression: "gzip",
          compressMinBytes: 0,
        }),
        createConnectTransport({
          baseUrl: "http://x",
          fetch,
          useHttpGet: true,
        }),
        createConnectTransport({ baseUrl: "http://x", fetch, codec: "json" }),
        createGrpcWebTransport({ baseUrl: "http://x", fetch }),
        createGrpcWebTransport({
          baseUrl: "http://x",
          fetch,
          sendCompression: "gzip",
          compressMinBytes: 0,
        }),
      ]
    ) {
      const client = createClient(Service, transport);
      await client.get(1n, { timeoutMs: 5000 }).catch(() => {});
      await Array.fromAsync(client.count(1n, { timeoutMs: 5000 }).responses)
        .catch(() => {});
    }
    for (
      const transport of [
        connectWebConnect({ baseUrl: "http://x", fetch }),
        connectWebConnect({ baseUrl: "http://x", fetch, useHttpGet: true }),
        connectWebGrpcWeb({ baseUrl: "http://x", fetch }),
      ]
    ) {
      const client = createConnectClient(LookupService, transport);
      await client.get({ key: "a" }, { timeoutMs: 5000 }).catch(() => {});
    }
    assert.ok(seen.has("connect-protocol-version"), "nothing recorded");
    const missing = [...seen].filter((name) =>
      !BROWSER_OWN.has(name) && !cors.allowedHeaders.includes(name)
    );
    assert.deepEqual(missing, []);
  });

  it("exposedHeaders holds the status of a gRPC-Web error answered in headers alone", async () => {
    const handler = createRpcHandler(
      implementService(Service, {
        get() {
          throw new RpcError(Code.PermissionDenied, "Cannot get: denied", {
            details: [{ type: "a.B", value: new Uint8Array([1]) }],
          });
        },
        count: async function* () {},
      }),
      { acceptCompression: ["gzip"] },
    );
    const response = await handler(
      new Request("http://x/test.v1.Cors/get", {
        method: "POST",
        headers: {
          "content-type": "application/grpc-web+proto",
          "grpc-accept-encoding": "gzip",
        },
        body: new Uint8Array(5),
      }),
    );
    await response.body?.cancel();
    const statusHeaders = [...response.headers.keys()].filter((name) =>
      name.startsWith("grpc-")
    );
    assert.ok(statusHeaders.includes("grpc-status"), "no status in headers");
    assert.deepEqual(
      statusHeaders.filter((name) => !cors.exposedHeaders.includes(name)),
      [],
    );
  });

  it("is frozen: a caller adds its own headers to copies", () => {
    assert.ok(Object.isFrozen(cors));
    assert.ok(Object.isFrozen(cors.allowedHeaders));
    assert.throws(() => (cors.allowedHeaders as string[]).push("x"));
  });
});
