// The RPC options of docs/api.md: requestPathPrefix and mounting in a
// router, sendCompression / acceptCompression with q-value negotiation,
// the fetch option, and defaults that are documented, not exported.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as rpc from "../lib/rpc/mod.ts";
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
import * as root from "../mod.ts";
import type { Server } from "../lib/runtime/serve.ts";
import {
  Bytes,
  captureConsole,
  deadline,
  runtime,
  startServer,
} from "./_helpers.ts";

const T = 20_000;

const MountService = defineService("test.v1.MountService", {
  add: { kind: "unary", input: Int64Value, output: Int64Value },
  echo: { kind: "bidi", input: Bytes, output: Bytes },
  count: { kind: "server-streaming", input: Int64Value, output: Int64Value },
});

const impl = implementService(MountService, {
  add: (v) => v + 1n,
  echo: async function* (inputs) {
    for await (const b of inputs) yield b;
  },
  count: async function* (n) {
    for (let i = 1n; i <= n; i++) yield i;
  },
});

/** A Hono-style router: `app.all("/rpc/*", (c) => handler(c.req.raw))`. */
function router(
  routes: [string, (request: Request) => Promise<Response>][],
): (request: Request) => Promise<Response> {
  return (request) => {
    const path = new URL(request.url).pathname;
    for (const [pattern, handle] of routes) {
      const base = pattern.replace(/\*$/, "");
      if (path.startsWith(base)) return handle(request);
    }
    return Promise.resolve(new Response("router: not found", { status: 404 }));
  };
}

function frame(flags: number, data: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(5 + data.byteLength);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.byteLength);
  out.set(data, 5);
  return out;
}

describe("requestPathPrefix", () => {
  const handler = createRpcHandler(impl, { requestPathPrefix: "/rpc" });
  const app = router([
    ["/rpc/*", (request) => handler(request)],
  ]);

  it("serves /rpc/pkg.Service/Method through a router (plain Requests)", async () => {
    const response = await app(
      new Request("http://x/rpc/test.v1.MountService/add", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: '"41"',
      }),
    );
    assert.equal(response.status, 200);
    assert.equal(await response.text(), '"42"');
  });

  it("answers a path outside the prefix with a plain 404", async () => {
    // Reached only when mounted without a router in front: the path names
    // no method of this handler, so it is not an RPC at all (gRPC clients
    // read HTTP 404 as UNIMPLEMENTED).
    const response = await handler(
      new Request("http://x/test.v1.MountService/add", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: '"41"',
      }),
    );
    assert.equal(response.status, 404);
    assert.match(await response.text(), /not under \/rpc\//);
  });

  it("answers an unknown method inside the prefix with UNIMPLEMENTED (HTTP 404)", async () => {
    const response = await handler(
      new Request("http://x/rpc/test.v1.MountService/nope", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: '"1"',
      }),
    );
    assert.equal(response.status, 404);
    assert.equal((await response.json()).code, "unimplemented");
  });

  it("refuses a prefix without a leading slash", () => {
    assert.throws(
      () => createRpcHandler(impl, { requestPathPrefix: "rpc" }),
      /requestPathPrefix must start with "\/"/,
    );
  });

  it("a prefix with characters a URL's path encodes serves its paths, written either way", async () => {
    // It was compared to the encoded request path as written, so never
    // matched.
    // And the percent-encodings' case is not the path's (RFC 3986
    // §6.2.2.1): a prefix or a request in lower case was 404.
    for (
      const requestPathPrefix of ["/ñ api", "/%C3%B1%20api", "/%c3%b1%20api"]
    ) {
      const h = createRpcHandler(impl, { requestPathPrefix });
      for (const path of ["/ñ api", "/%c3%b1%20api"]) {
        const response = await h(
          new Request(`http://x${path}/test.v1.MountService/add`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: '"1"',
          }),
        );
        assert.equal(
          await response.text(),
          '"2"',
          `${requestPathPrefix} ${path}`,
        );
      }
    }
  });

  it("a trailing slash on the prefix is the same prefix", async () => {
    const h = createRpcHandler(impl, { requestPathPrefix: "/api/rpc/" });
    const response = await h(
      new Request("http://x/api/rpc/test.v1.MountService/add", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: '"1"',
      }),
    );
    assert.equal(await response.text(), '"2"');
  });

  describe("over a real server, every client transport", () => {
    let server: Server;
    before(async () => {
      server = await startServer(app);
    });
    after(() => server.shutdown());

    for (
      const make of [createConnectTransport, createGrpcWebTransport] as const
    ) {
      it(`${make.name}: unary, server-streaming and bidi under /rpc`, async () => {
        const client = createClient(
          MountService,
          make({ baseUrl: new URL("/rpc", server.url) }),
        );
        assert.equal(await deadline(client.add(1n), T), 2n);
        assert.deepEqual(
          await deadline(Array.fromAsync(client.count(3n).responses), T),
          [1n, 2n, 3n],
        );
        const call = client.echo();
        await call.send(new Uint8Array([7]));
        await call.complete();
        assert.deepEqual(
          await deadline(Array.fromAsync(call.responses), T),
          [new Uint8Array([7])],
        );
      });
    }
  });
});

describe("no Deno.serve warning for calls through a handler", () => {
  it("an RPC call through a router logs no warning", {
    skip: runtime !== "deno",
  }, async () => {
    // Deno.serve warns "request.signal aborts on successful responses
    // (legacy behavior)" as soon as anything reads request.signal; the
    // handler must not, and mounting with requestPathPrefix needs no
    // re-created Request (which would read it).
    const handler = createRpcHandler(impl, { requestPathPrefix: "/rpc" });
    const { logged: warnings, restore } = captureConsole("warn", "error");
    try {
      const server = await startServer(
        router([["/rpc/*", (request) => handler(request)]]),
      );
      try {
        for (
          const make of [createConnectTransport, createGrpcWebTransport]
        ) {
          const client = createClient(
            MountService,
            make({ baseUrl: new URL("/rpc", server.url) }),
          );
          assert.equal(await deadline(client.add(1n), T), 2n);
          const call = client.echo();
          await call.send(new Uint8Array([1]));
          await call.complete();
          await deadline(Array.fromAsync(call.responses), T);
        }
      } finally {
        await server.shutdown();
      }
    } finally {
      restore();
    }
    assert.deepEqual(warnings, []);
  });
});

/** Sends 5,000 bytes on an echo call and checks they come back. */
async function assertEchoes(
  call: ReturnType<
    ReturnType<typeof createClient<typeof MountService>>["echo"]
  >,
  what: string,
): Promise<void> {
  const payload = new Uint8Array(5000).fill(7);
  await call.send(payload);
  await call.complete();
  assert.deepEqual(
    await deadline(Array.fromAsync(call.responses), T),
    [payload],
    what,
  );
}

describe("compression options", () => {
  const handler = createRpcHandler(impl, {
    acceptCompression: ["deflate", "gzip"],
    compressMinBytes: 0,
  });

  it("the server picks by q-value: gzip;q=0 refuses gzip", async () => {
    const response = await handler(
      new Request("http://x/test.v1.MountService/echo", {
        method: "POST",
        headers: {
          "content-type": "application/grpc-web+proto",
          "grpc-accept-encoding": "deflate;q=0, gzip;q=0.5",
        },
        body: frame(0, new Uint8Array(100)),
      }),
    );
    assert.equal(response.headers.get("grpc-encoding"), "gzip");
    assert.equal(response.headers.get("grpc-accept-encoding"), "deflate,gzip");
    await response.body?.cancel();
  });

  it("the server's order wins among accepted ones", async () => {
    const response = await handler(
      new Request("http://x/test.v1.MountService/echo", {
        method: "POST",
        headers: {
          "content-type": "application/grpc-web+proto",
          "grpc-accept-encoding": "gzip, deflate",
        },
        body: frame(0, new Uint8Array(100)),
      }),
    );
    assert.equal(response.headers.get("grpc-encoding"), "deflate");
    await response.body?.cancel();
  });

  describe("deflate both ways, and acceptCompression: [] turns it off", () => {
    let server: Server;
    before(async () => {
      server = await startServer(handler);
    });
    after(() => server.shutdown());

    for (
      const make of [createConnectTransport, createGrpcWebTransport] as const
    ) {
      it(`${make.name}: sendCompression "deflate"`, async () => {
        const seen: Headers[] = [];
        const transport = make({
          baseUrl: server.url,
          sendCompression: "deflate",
          acceptCompression: ["deflate"],
          compressMinBytes: 0,
          fetch: async (input, init) => {
            const response = await fetch(input, init);
            seen.push(response.headers);
            return response;
          },
        });
        const call = createClient(MountService, transport).echo();
        const payload = new Uint8Array(50_000).fill(3);
        await call.send(payload);
        await call.complete();
        assert.deepEqual(
          await deadline(Array.fromAsync(call.responses), T),
          [payload],
        );
        const name = make === createConnectTransport
          ? "connect-content-encoding"
          : "grpc-encoding";
        assert.equal(seen[0].get(name), "deflate");
      });

      it(`${make.name}: acceptCompression [] gets identity responses`, async () => {
        const seen: Headers[] = [];
        const transport = make({
          baseUrl: server.url,
          acceptCompression: [],
          fetch: async (input, init) => {
            seen.push(new Headers(init?.headers));
            return await fetch(input, init);
          },
        });
        const call = createClient(MountService, transport).echo();
        await call.send(new Uint8Array(5000));
        await call.complete();
        await deadline(Array.fromAsync(call.responses), T);
        assert.equal(seen[0].get("grpc-accept-encoding"), null);
        assert.equal(seen[0].get("connect-accept-encoding"), null);
      });
    }
  });

  it("acceptCompression [] with sendCompression: compressed requests, identity responses", async () => {
    // A server answers in the request's compression when the client names
    // none it accepts (grpc-go documents the same): the client says
    // "identity" rather than refuse its own compression back.
    for (
      const [make, name] of [
        [createConnectTransport, "connect-accept-encoding"],
        [createGrpcWebTransport, "grpc-accept-encoding"],
      ] as const
    ) {
      const seen: Headers[] = [];
      const transport = make({
        baseUrl: "http://in-process",
        sendCompression: "gzip",
        compressMinBytes: 0,
        acceptCompression: [],
        fetch: async (input, init) => {
          seen.push(new Headers(init?.headers));
          return await handler(new Request(input, init));
        },
      });
      await assertEchoes(
        createClient(MountService, transport).echo(),
        make.name,
      );
      assert.equal(seen[0].get(name), "identity", make.name);
    }
  });

  it("a caller's encoding headers are the transport's: the call goes as without them", async () => {
    // Forwarded from another request, say: they would claim a compression
    // the body does not have, or ask for one the client does not read.
    const forwarded = {
      "content-encoding": "gzip",
      "connect-content-encoding": "gzip",
      "grpc-encoding": "gzip",
      "accept-encoding": "br",
      "connect-accept-encoding": "deflate",
      "grpc-accept-encoding": "deflate",
      "content-length": "3",
      "x-kept": "yes",
    };
    for (const make of [createConnectTransport, createGrpcWebTransport]) {
      const seen: Headers[] = [];
      const transport = make({
        // None: a compressed unary answer would reach this fetch, which
        // is a handler, not decoded as fetch decodes it.
        baseUrl: "http://in-process",
        acceptCompression: [],
        headers: { "grpc-encoding": "deflate" },
        fetch: async (input, init) => {
          seen.push(new Headers(init?.headers));
          return await handler(new Request(input, init));
        },
      });
      const client = createClient(MountService, transport);
      assert.equal(await client.add(1n, { headers: forwarded }), 2n);
      await assertEchoes(client.echo({ headers: forwarded }), make.name);
      for (const headers of seen) {
        assert.equal(headers.get("x-kept"), "yes", make.name);
        for (const [name, value] of Object.entries(forwarded)) {
          if (name !== "x-kept") {
            assert.notEqual(headers.get(name), value, `${make.name}: ${name}`);
          }
        }
        assert.notEqual(headers.get("grpc-encoding"), "deflate", make.name);
      }
    }
  });

  it("a compressed request the server does not accept fails with UNIMPLEMENTED", async () => {
    const plain = createRpcHandler(impl, { acceptCompression: [] });
    const response = await plain(
      new Request("http://x/test.v1.MountService/echo", {
        method: "POST",
        headers: {
          "content-type": "application/grpc-web+proto",
          "grpc-encoding": "gzip",
        },
        body: frame(0, new Uint8Array(1)),
      }),
    );
    assert.equal(
      response.headers.get("grpc-status"),
      String(Code.Unimplemented),
    );
    assert.match(
      decodeURIComponent(response.headers.get("grpc-message")!),
      /unsupported grpc-encoding "gzip"; supported: identity/,
    );
  });

  it("an unknown compression name is refused when the option is set", () => {
    assert.throws(
      () =>
        createConnectTransport({
          baseUrl: "http://127.0.0.1:1",
          sendCompression: "br" as "gzip",
        }),
      /sendCompression "br" is not "gzip" or "deflate"/,
    );
    assert.throws(
      () => createRpcHandler(impl, { acceptCompression: ["zstd" as "gzip"] }),
      /acceptCompression "zstd" is not "gzip" or "deflate"/,
    );
  });

  it("a negative compressMinBytes or maxMessageBytes is refused", () => {
    assert.throws(
      () => createRpcHandler(impl, { compressMinBytes: -1 }),
      /Cannot create handler: compressMinBytes must be a non-negative integer/,
    );
    assert.throws(
      () =>
        createGrpcWebTransport({
          baseUrl: "http://127.0.0.1:1",
          maxMessageBytes: 1.5,
        }),
      /Cannot create transport: maxMessageBytes must be a non-negative integer/,
    );
  });
});

describe("the fetch option", () => {
  it("every call goes through the given fetch", async () => {
    const handler = createRpcHandler(impl);
    let calls = 0;
    const transport = createConnectTransport({
      baseUrl: "http://in-process",
      fetch: (input, init) => {
        calls++;
        return handler(new Request(input, init));
      },
    });
    const client = createClient(MountService, transport);
    assert.equal(await client.add(1n), 2n);
    assert.deepEqual(await Array.fromAsync(client.count(2n).responses), [
      1n,
      2n,
    ]);
    assert.equal(calls, 2);
  });

  it("fetch and httpClient together are refused", () => {
    assert.throws(
      () =>
        createConnectTransport({
          baseUrl: "http://127.0.0.1:1",
          fetch: globalThis.fetch,
          httpClient: rpc.createFetchClient(),
        }),
      /give fetch or httpClient, not both/,
    );
  });
});

describe("defaults are documented, not exported", () => {
  it("no DEFAULT_* or MAX_* constant comes from the RPC entry point", () => {
    const names = Object.keys(rpc).filter((n) => /^(DEFAULT|MAX)_/.test(n));
    assert.deepEqual(names, []);
    const rootRpc = Object.keys(root).filter((n) =>
      /^DEFAULT_MAX_MESSAGE_BYTES$/.test(n)
    );
    assert.deepEqual(rootRpc, []);
  });

  it("RpcError is still what a failed call rejects with", async () => {
    const handler = createRpcHandler(impl);
    const client = createClient(
      MountService,
      createConnectTransport({
        baseUrl: "http://in-process",
        fetch: (input, init) => handler(new Request(input, init)),
      }),
    );
    const error = await client.add(MAX).catch((e) => e);
    assert.ok(error instanceof RpcError);
  });
});

const MAX = (1n << 63n) - 1n;

describe("timeoutMs", () => {
  const client = createClient(
    MountService,
    createConnectTransport({
      baseUrl: "http://in-process",
      httpClient: rpc.createUniversalHandlerClient(
        rpc.createUniversalHandler(impl),
      ),
    }),
  );

  it("a timeout that is no finite number is a RangeError naming it, text a TypeError showing it", async () => {
    // NaN read as "already passed" and Infinity as a header it could not
    // format.
    for (const timeoutMs of [NaN, Infinity]) {
      await assert.rejects(
        client.add(1n, { timeoutMs }),
        (error: Error) =>
          error instanceof RangeError &&
          error.message.startsWith(
            "Cannot start call: timeoutMs must be a finite number",
          ),
      );
      // A streaming call throws at once, as for a deadline already passed.
      assert.throws(() => client.echo({ timeoutMs }), RangeError);
    }
    // Text is a TypeError that shows it, as for every number option.
    const text = "100" as unknown as number;
    const message =
      'Cannot start call: timeoutMs must be a number, got string "100"';
    await assert.rejects(client.add(1n, { timeoutMs: text }), {
      name: "TypeError",
      message,
    });
    assert.throws(() => client.echo({ timeoutMs: text }), {
      name: "TypeError",
      message,
    });
  });

  it("zero or less has already passed: DEADLINE_EXCEEDED; a fraction or a long one runs", async () => {
    for (const timeoutMs of [0, -1]) {
      await assert.rejects(
        client.add(1n, { timeoutMs }),
        (error: RpcError) => error.code === Code.DeadlineExceeded,
      );
    }
    assert.equal(await client.add(1n, { timeoutMs: 1500.5 }), 2n);
    assert.equal(await client.add(1n, { timeoutMs: 2 ** 40 }), 2n);
  });
});
