// A server (or a front) that redirects an RPC call: the fetch clients do
// not follow it, and the call fails UNKNOWN naming the redirect. Before,
// fetch followed it: a 301/302/303 turned the POST into a GET (an UNKNOWN
// "HTTP status 405" from the target), and a stream body could not be sent
// again after a 307/308 (UNAVAILABLE, inviting retries that never succeed).

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Code,
  createClient,
  createConnectTransport,
  createGrpcWebTransport,
  createRpcHandler,
  defineService,
  implementService,
  Int64Value,
  RpcError,
} from "../lib/rpc/mod.ts";
import { deadline, withServer } from "./_helpers.ts";

const Calc = defineService("test.v1.Redirected", {
  add: { kind: "unary", input: Int64Value, output: Int64Value },
  sum: { kind: "client-streaming", input: Int64Value, output: Int64Value },
  inc: { kind: "bidi", input: Int64Value, output: Int64Value },
});

const rpc = createRpcHandler(
  implementService(Calc, {
    add: (value: bigint) => value + 1n,
    async sum(values: AsyncIterable<bigint>) {
      let sum = 0n;
      for await (const value of values) sum += value;
      return sum;
    },
    async *inc(values: AsyncIterable<bigint>) {
      let sum = 0n;
      for await (const value of values) yield sum += value;
    },
  }),
  { requestPathPrefix: "/new" },
);

/** Each call of the service once, its result or its error. */
function calls(client: ReturnType<typeof createClient<typeof Calc>>) {
  return {
    unary: () => client.add(41n),
    "client-streaming": async () => {
      const call = client.sum();
      for (let i = 1n; i <= 3n; i++) await call.send(i);
      await call.complete();
      return await call.receive();
    },
    bidi: async () => {
      const call = client.inc();
      await call.send(5n);
      const first = await call.receive();
      await call.complete();
      return first;
    },
  };
}

describe("RPC fetch clients and a redirect", () => {
  for (const status of [301, 302, 303, 307, 308]) {
    for (const protocol of ["connect", "grpc-web"] as const) {
      it(`a ${status} is not followed: UNKNOWN naming it, each call kind (${protocol})`, async () => {
        const seen: string[] = [];
        await withServer(async (request) => {
          const url = new URL(request.url);
          seen.push(`${request.method} ${url.pathname}`);
          if (url.pathname.startsWith("/new/")) return await rpc(request);
          await request.body?.cancel();
          // A query (a sign-in page's token) is never shown.
          return new Response(null, {
            status,
            headers: {
              location: `${url.pathname.replace("/old/", "/new/")}?token=x`,
            },
          });
        }, async (server) => {
          const baseUrl = new URL("/old", server.url).href;
          const transport = protocol === "connect"
            ? createConnectTransport({ baseUrl })
            : createGrpcWebTransport({ baseUrl });
          const client = createClient(Calc, transport);
          for (const [kind, call] of Object.entries(calls(client))) {
            const method = { unary: "add", "client-streaming": "sum" }[
              kind
            ] ?? "inc";
            await assert.rejects(
              deadline(call() as Promise<unknown>, 10_000, kind),
              (error: unknown) => {
                assert.ok(error instanceof RpcError, String(error));
                assert.equal(error.code, Code.Unknown, kind);
                assert.equal(
                  error.rawMessage,
                  `Cannot call ${baseUrl}/test.v1.Redirected/${method}: the server redirected it (${status} to ${server.url.origin}/new/test.v1.Redirected/${method}); RPC calls are not redirected: give the transport the final URL as its baseUrl`,
                );
                return true;
              },
            );
          }
          // Only the calls: none was sent again where it was redirected.
          assert.deepEqual(seen, [
            "POST /old/test.v1.Redirected/add",
            "POST /old/test.v1.Redirected/sum",
            "POST /old/test.v1.Redirected/inc",
          ]);
          // The final URL as baseUrl serves them.
          const direct = createClient(
            Calc,
            createConnectTransport({
              baseUrl: new URL("/new", server.url).href,
            }),
          );
          assert.equal(await direct.add(41n), 42n);
        });
      });
    }
  }

  it("a 304 is no redirect: the call fails with its status, saying nothing of a redirect", async () => {
    await withServer(async (request) => {
      await request.body?.cancel();
      return new Response(null, { status: 304 });
    }, async (server) => {
      const client = createClient(
        Calc,
        createConnectTransport({ baseUrl: server.url.href }),
      );
      await assert.rejects(client.add(1n), (error: unknown) => {
        assert.ok(error instanceof RpcError, String(error));
        assert.doesNotMatch(error.rawMessage, /redirect/);
        assert.match(error.rawMessage, /HTTP status 304/);
        return true;
      });
    });
  });

  it("a fetch of the caller's that follows a redirect all the same: UNKNOWN naming where it went (it failed with the target's own status)", async () => {
    await withServer(async (request) => {
      const url = new URL(request.url);
      await request.body?.cancel();
      if (url.pathname.startsWith("/elsewhere/")) {
        return new Response("no such page", { status: 404 });
      }
      return new Response(null, {
        status: 307,
        headers: { location: url.pathname.replace("/old/", "/elsewhere/") },
      });
    }, async (server) => {
      const following: typeof fetch = (input, init) =>
        fetch(input, { ...init, redirect: "follow" });
      const baseUrl = new URL("/old", server.url).href;
      const client = createClient(
        Calc,
        createConnectTransport({ baseUrl, fetch: following }),
      );
      await assert.rejects(client.add(1n), (error: unknown) => {
        assert.ok(error instanceof RpcError, String(error));
        assert.equal(error.code, Code.Unknown, error.rawMessage);
        assert.match(
          error.rawMessage,
          new RegExp(
            `the server redirected it \\(to ${server.url.origin}/elsewhere/test\\.v1\\.Redirected/add, which answered 404\\)`,
          ),
        );
        return true;
      });
    });
  });
});
