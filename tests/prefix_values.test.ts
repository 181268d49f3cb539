// Path prefixes given to handlers, and what a client hears from a server
// that is mounted elsewhere. A route pattern copied from a router
// (`app.all("/rpc/*")`) was taken for the path "/rpc/*" and every call was
// 404; "/rpc?v=1" and "/rpc#frag" silently became "/rpc"; a locationPrefix
// "//cdn.example.com/files" sent clients to another host. The RPC clients
// answered such a 404, or a proxy's 502, said only "HTTP status 404"; a tus
// request outside the resumable handler's prefix got a 404 without
// Tus-Resumable.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Code,
  createClient,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  createRpcHandler,
  createUniversalHandler,
  defineService,
  type HttpClient,
  implementService,
  Int64Value,
  RpcError,
  type Transport,
} from "../lib/rpc/mod.ts";
import { createResumableUploadHandler } from "../lib/http/mod.ts";
import { createResumableFileStore } from "../lib/runtime/fs.ts";
import { createHttp2Client, serveHttp2 } from "../lib/runtime/grpc_node.ts";
import { deadline, startServer } from "./_helpers.ts";

const T = 20_000;

const Service = defineService("test.v1.Prefix", {
  echo: { kind: "unary", input: Int64Value, output: Int64Value },
  count: { kind: "server-streaming", input: Int64Value, output: Int64Value },
});

const implementation = implementService(Service, {
  echo: (v) => v,
  async *count(n) {
    for (let i = 1n; i <= n; i++) yield i;
  },
});

/** A store never reached: the options are refused, or the path is. */
const store = () => createResumableFileStore("/nonexistent-prefix-values");

describe("requestPathPrefix and locationPrefix", () => {
  const rpc = (requestPathPrefix: string) => () =>
    createRpcHandler(implementation, { requestPathPrefix });
  const resumable = (options: Record<string, string>) => () =>
    createResumableUploadHandler({ store: store(), ...options });
  const RPC = "Cannot create handler: requestPathPrefix must";
  const RESUMABLE = "Cannot create resumable upload handler:";
  const refusals: [string, () => unknown, string][] = [
    [
      'createRpcHandler refuses a route pattern ("/rpc/*")',
      rpc("/rpc/*"),
      `${RPC} be a path without "*", got "/rpc/*" (a path prefix, not a route pattern: drop the "/*", as "/rpc" covers every path under it)`,
    ],
    [
      'createRpcHandler refuses a wildcard inside the path ("/api/*/rpc")',
      rpc("/api/*/rpc"),
      `${RPC} be a path without "*", got "/api/*/rpc" (a path prefix, not a route pattern: give the fixed path the handler is mounted under)`,
    ],
    [
      'createRpcHandler refuses a query ("/rpc?v=1")',
      rpc("/rpc?v=1"),
      `${RPC} be a path without "?", got "/rpc?v=1" (a path prefix has no query: write "/rpc")`,
    ],
    [
      'createRpcHandler refuses a fragment ("/rpc#frag")',
      rpc("/rpc#frag"),
      `${RPC} be a path without "#", got "/rpc#frag" (a path prefix has no fragment: write "/rpc")`,
    ],
    [
      'createRpcHandler refuses a leading "//" ("//rpc")',
      rpc("//rpc"),
      `${RPC} start with one "/", got "//rpc" ("//" starts a host name in a URL: write "/rpc")`,
    ],
    [
      'createUniversalHandler refuses a route pattern ("/rpc/*")',
      () =>
        createUniversalHandler(implementation, { requestPathPrefix: "/rpc/*" }),
      `${RPC} be a path without "*", got "/rpc/*" (a path prefix, not a route pattern: drop the "/*", as "/rpc" covers every path under it)`,
    ],
    [
      'createResumableUploadHandler refuses a route pattern as requestPathPrefix ("/uploads/*")',
      resumable({ requestPathPrefix: "/uploads/*" }),
      `${RESUMABLE} requestPathPrefix must be a path without "*", got "/uploads/*" (a path prefix, not a route pattern: drop the "/*", as "/uploads" covers every path under it)`,
    ],
    [
      'createResumableUploadHandler refuses a locationPrefix with a query ("/files?tenant=a")',
      resumable({ locationPrefix: "/files?tenant=a" }),
      `${RESUMABLE} locationPrefix must be a path without "?", got "/files?tenant=a" (a path prefix has no query: write "/files")`,
    ],
    [
      'createResumableUploadHandler refuses a locationPrefix that names a host ("//cdn.example.com/files")',
      resumable({ locationPrefix: "//cdn.example.com/files" }),
      `${RESUMABLE} locationPrefix must start with one "/", got "//cdn.example.com/files" ("//" starts a host name in a URL: write "/cdn.example.com/files")`,
    ],
    [
      // A URL's parser reads "\" as "/" in an http: path: browsers follow
      // such a Location to the host.
      'createResumableUploadHandler refuses a locationPrefix read as "//" ("/\\\\cdn.example.com/files")',
      resumable({ locationPrefix: "/\\cdn.example.com/files" }),
      `${RESUMABLE} locationPrefix must start with one "/", got "/\\\\cdn.example.com/files" (read as "//cdn.example.com/files": "//" starts a host name in a URL: write "/cdn.example.com/files")`,
    ],
  ];
  for (const [name, make, message] of refusals) {
    it(name, () => {
      assert.throws(make, { name: "TypeError", message });
    });
  }

  it("a prefix with a trailing slash, dot segments or percent-encodings still serves", async () => {
    for (const requestPathPrefix of ["/rpc/", "/api/../rpc", "/%72pc"]) {
      const handler = createRpcHandler(implementation, { requestPathPrefix });
      const response = await handler(
        new Request("http://x/rpc/test.v1.Prefix/echo", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: '"7"',
        }),
      );
      assert.equal(response.status, 200, requestPathPrefix);
      assert.equal(await response.json(), "7", requestPathPrefix);
    }
  });
});

/**
 * A transport whose every call gets this answer (a proxy's): its status,
 * headers and body.
 */
function answeredBy(
  make: (options: { baseUrl: string; httpClient: HttpClient }) => Transport,
  status: number,
  headers: HeadersInit,
  body: string | Uint8Array,
): Transport {
  return make({
    baseUrl: "http://x",
    httpClient: () =>
      Promise.resolve({
        status,
        headers: new Headers(headers),
        body: ReadableStream.from([
          typeof body === "string" ? new TextEncoder().encode(body) : body,
        ]),
        trailers: Promise.resolve(new Headers()),
      }),
  });
}

/** Asserts that `call` fails with `code` and exactly `message`. */
async function failsWith(
  call: Promise<unknown>,
  code: Code,
  message: string,
  label: string,
): Promise<void> {
  await assert.rejects(deadline(call, T, label), (error: unknown) => {
    assert.ok(error instanceof RpcError, String(error));
    assert.equal(error.code, code, label);
    assert.equal(error.rawMessage, message, label);
    return true;
  });
}

const MAKERS = [
  ["Connect", createConnectTransport],
  ["gRPC-Web", createGrpcWebTransport],
  ["gRPC", createGrpcTransport],
] as const;

describe("the RPC clients, answered by a server that is no RPC's", () => {
  let server: Awaited<ReturnType<typeof startServer>>;
  before(async () => {
    server = await startServer(
      createRpcHandler(implementation, { requestPathPrefix: "/rpc" }),
    );
  });
  after(() => server.shutdown());

  it("createConnectTransport quotes the 404 of a handler under another prefix (unary and streaming)", async () => {
    const client = createClient(
      Service,
      createConnectTransport({ baseUrl: new URL("/api", server.url).href }),
    );
    await failsWith(
      client.echo(1n),
      Code.Unimplemented,
      'Cannot read response: HTTP status 404: Cannot serve "/api/test.v1.Prefix/echo": not under /rpc/',
      "unary",
    );
    await failsWith(
      client.count(2n).receive(),
      Code.Unimplemented,
      'Cannot read response: HTTP status 404: Cannot serve "/api/test.v1.Prefix/count": not under /rpc/',
      "server-streaming",
    );
  });

  it("createGrpcWebTransport quotes the 404 of a handler under another prefix", async () => {
    const client = createClient(
      Service,
      createGrpcWebTransport({ baseUrl: new URL("/api", server.url).href }),
    );
    await failsWith(
      client.echo(1n),
      Code.Unimplemented,
      'Cannot read response: HTTP status 404: Cannot serve "/api/test.v1.Prefix/echo": not under /rpc/',
      "unary",
    );
  });

  it("createGrpcTransport quotes the 404 of a handler under another prefix (node:http2)", async () => {
    const h2 = await serveHttp2(
      createUniversalHandler(implementation, { requestPathPrefix: "/rpc" }),
    );
    const baseUrl = new URL("/api", h2.url).href;
    const httpClient = createHttp2Client(baseUrl);
    try {
      const client = createClient(
        Service,
        createGrpcTransport({ baseUrl, httpClient }),
      );
      await failsWith(
        client.echo(1n),
        Code.Unimplemented,
        'Cannot read response: HTTP status 404: Cannot serve "/api/test.v1.Prefix/echo": not under /rpc/',
        "unary",
      );
    } finally {
      httpClient.close();
      await h2.shutdown();
    }
  });

  const proxyAnswers: [
    string,
    number,
    HeadersInit,
    string | Uint8Array,
    Code,
    string,
  ][] = [
    [
      "every client quotes a proxy's 502 in text, its code still UNAVAILABLE",
      502,
      { "content-type": "text/plain" },
      "upstream refused\n",
      Code.Unavailable,
      "Cannot read response: HTTP status 502: upstream refused",
    ],
    [
      "every client leaves out a proxy's HTML page",
      503,
      { "content-type": "text/html; charset=utf-8" },
      "<html><body>busy</body></html>",
      Code.Unavailable,
      "Cannot read response: HTTP status 503",
    ],
    [
      "an HttpClient of one's own: a body in a content coding is not quoted (its bytes are no words)",
      502,
      { "content-type": "text/plain", "content-encoding": "gzip" },
      new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]),
      Code.Unavailable,
      "Cannot read response: HTTP status 502",
    ],
  ];
  for (const [title, status, headers, body, code, message] of proxyAnswers) {
    it(title, async () => {
      for (const [name, make] of MAKERS) {
        const client = createClient(
          Service,
          answeredBy(make, status, headers, body),
        );
        await failsWith(client.echo(1n), code, message, name);
      }
    });
  }

  it("a 502 whose body never ends fails after quoteBody's 2 s wait, unquoted", async () => {
    const client = createClient(
      Service,
      createConnectTransport({
        baseUrl: "http://x",
        httpClient: () =>
          Promise.resolve({
            status: 502,
            headers: new Headers({ "content-type": "text/plain" }),
            body: new ReadableStream<Uint8Array>({
              start(controller) {
                controller.enqueue(new TextEncoder().encode("upstream"));
              },
            }),
            trailers: Promise.resolve(new Headers()),
          }),
      }),
    );
    await failsWith(
      client.echo(1n),
      Code.Unavailable,
      "Cannot read response: HTTP status 502",
      "unary",
    );
  });

  it("a Connect error's JSON is still the call's status, not quoted", async () => {
    const client = createClient(
      Service,
      answeredBy(
        createConnectTransport,
        404,
        { "content-type": "application/json" },
        '{"code":"not_found","message":"no such thing"}',
      ),
    );
    await failsWith(client.echo(1n), Code.NotFound, "no such thing", "unary");
  });
});

describe("createResumableUploadHandler (tus 1.0): a path outside its prefix", () => {
  const TUS = { "tus-resumable": "1.0.0" };
  const handler = createResumableUploadHandler({
    store: store(),
    requestPathPrefix: "/files",
  });

  it("answers a tus request 404 with Tus-Resumable", async () => {
    const response = await handler(
      new Request("http://x/other", { method: "HEAD", headers: TUS }),
    );
    assert.equal(response.status, 404);
    assert.equal(response.headers.get("tus-resumable"), "1.0.0");
  });

  it("answers a tus request for a path below an upload 404 with Tus-Resumable", async () => {
    const response = await handler(
      new Request("http://x/files/a/b", { method: "HEAD", headers: TUS }),
    );
    assert.equal(response.status, 404);
    assert.equal(response.headers.get("tus-resumable"), "1.0.0");
  });

  it("answers a request without Tus-Resumable 404 without it", async () => {
    const response = await handler(
      new Request("http://x/other", { method: "HEAD" }),
    );
    assert.equal(response.status, 404);
    assert.equal(response.headers.get("tus-resumable"), null);
  });
});
