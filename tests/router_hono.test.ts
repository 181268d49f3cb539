// The handlers mounted in Hono, the router most users mount them in: an RPC
// handler under a path prefix, an upload handler with route parameters, and
// an HttpError thrown in a route, answered through Hono's own error handling
// (which calls getResponse()).

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Hono } from "hono";
import { compress } from "hono/compress";
import {
  createDuplexHandler,
  createEchoHandler,
  createResumableUploadHandler,
  createUploadHandler,
  HttpError,
  parseMultipart,
  resumableUpload,
  safeFileName,
} from "../lib/http/mod.ts";
import { createResumableFileStore } from "../lib/runtime/fs.ts";
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
import {
  streamingCalc,
  StreamingCalcService,
} from "../examples/streaming_calc.ts";
import { makeTempDir, removeDir, withServer } from "./_helpers.ts";

function app() {
  const rpc = createRpcHandler(streamingCalc, { requestPathPrefix: "/rpc" });
  const stored = new Map<string, Uint8Array[]>();
  const upload = createUploadHandler({
    sink: (_request, { params }) => {
      const name = safeFileName(params.name ?? "");
      const chunks: Uint8Array[] = [];
      stored.set(name, chunks);
      return new WritableStream({ write: (c) => void chunks.push(c) });
    },
    onComplete: (result, _request, { params }) =>
      Response.json({ name: params.name, bytes: result.bytes }, {
        status: 201,
        headers: { location: `/files/${params.name}` },
      }),
  });
  const hono = new Hono();
  hono.all("/rpc/*", (c) => rpc(c.req.raw));
  hono.put("/files/:name", (c) => upload(c.req.raw, { params: c.req.param() }));
  hono.get("/teapot", () => {
    throw new HttpError(418, "Cannot brew: I am a teapot");
  });
  return { hono, stored };
}

describe("mounted in Hono", () => {
  it("createRpcHandler serves its methods under requestPathPrefix (Connect and gRPC-Web)", async () => {
    const { hono } = app();
    await withServer((request) => hono.fetch(request), async (server) => {
      const baseUrl = new URL("/rpc", server.url).href;
      for (
        const transport of [
          createConnectTransport({ baseUrl }),
          createGrpcWebTransport({ baseUrl }),
        ]
      ) {
        const call = createClient(StreamingCalcService, transport).sum();
        for (let i = 1n; i <= 10n; i++) await call.send(i);
        await call.complete();
        assert.equal(await call.receive(), 55n);
      }
    });
  });

  it("behind Hono's compress(), streamed RPC answers of the JSON codec stay streamed: a bidi call in lockstep, and the echo (they carry Cache-Control: no-transform)", async () => {
    // Under Bun, compress() gzipped a Connect or gRPC-Web stream whose
    // content type ends in +json through a CompressionStream that flushed
    // nothing until the call ended: each lockstep call waited to its
    // deadline (DEADLINE_EXCEEDED).
    const rpc = createRpcHandler(streamingCalc, { requestPathPrefix: "/rpc" });
    const echo = createEchoHandler();
    const hono = new Hono();
    hono.use(compress());
    hono.all("/rpc/*", (c) => rpc(c.req.raw));
    hono.post("/echo", (c) => echo(c.req.raw));
    await withServer((request) => hono.fetch(request), async (server) => {
      const baseUrl = new URL("/rpc", server.url).href;
      for (
        const transport of [
          createConnectTransport({ baseUrl, codec: "json" }),
          createGrpcWebTransport({ baseUrl, codec: "json" }),
        ]
      ) {
        const call = createClient(StreamingCalcService, transport)
          .incrementalSum({ timeoutMs: 10_000 });
        let sum = 0n;
        for (let i = 1n; i <= 3n; i++) {
          await call.send(i);
          const { done, value } = await call.receive();
          assert.equal(done, false);
          assert.equal(value, sum += i);
        }
        assert.match(
          await call.headers.then((h) => h.get("cache-control") ?? ""),
          /no-transform/,
        );
        await call.complete();
      }
      const response = await fetch(new URL("/echo", server.url), {
        method: "POST",
        body: "abc",
        headers: { "accept-encoding": "gzip" },
      });
      assert.equal(
        response.headers.get("cache-control"),
        "no-store, no-transform",
      );
      assert.equal(await response.text(), "abc");
    });
  });

  it("a streaming handler's own Cache-Control is kept, with no-transform added once (it came after ours: 'no-transform, max-age=60, no-transform')", async () => {
    const Feed = defineService("test.Feed", {
      watch: {
        kind: "server-streaming",
        input: Int64Value,
        output: Int64Value,
      },
    });
    const values = ["max-age=60, no-transform", "max-age=60", "No-Transform"];
    const rpc = createRpcHandler(
      implementService(Feed, {
        async *watch(value, context) {
          context.responseHeaders.set("cache-control", values[Number(value)]);
          yield value;
        },
      }),
    );
    await withServer(rpc, async (server) => {
      const baseUrl = server.url.origin;
      for (
        const transport of [
          createConnectTransport({ baseUrl }),
          createGrpcWebTransport({ baseUrl }),
        ]
      ) {
        const seen: (string | null)[] = [];
        for (let i = 0n; i < 3n; i++) {
          const call = createClient(Feed, transport).watch(i);
          seen.push((await call.headers).get("cache-control"));
          for await (const _ of call) { /* drained */ }
        }
        assert.deepEqual(seen, [
          "max-age=60, no-transform",
          "max-age=60, no-transform",
          "No-Transform",
        ]);
      }
    });
  });

  it("a body a middleware already read is refused by each handler with a TypeError naming bodyUsed (it was the runtime's bare 'ReadableStream is locked', RPC's as an UNKNOWN answer)", async () => {
    const dir = await makeTempDir("hono-used-");
    try {
      const rpc = createRpcHandler(streamingCalc, {
        requestPathPrefix: "/rpc",
      });
      const upload = createUploadHandler({
        sink: () => new WritableStream(),
      });
      const echo = createEchoHandler();
      const duplex = createDuplexHandler(async (stream) => {
        await stream.close();
      });
      const resumable = createResumableUploadHandler({
        store: createResumableFileStore(dir),
        requestPathPrefix: "/files",
      });
      const hono = new Hono();
      const seen: string[] = [];
      hono.use(async (c, next) => {
        await c.req.raw.text();
        await next();
      });
      hono.onError((error, c) => {
        seen.push(`${error.name}: ${error.message}`);
        return c.text("refused", 500);
      });
      hono.all("/rpc/*", (c) => rpc(c.req.raw));
      hono.put("/up", (c) => upload(c.req.raw));
      hono.post("/echo", (c) => echo(c.req.raw));
      hono.post("/duplex", (c) => duplex(c.req.raw));
      hono.post("/files", (c) => resumable(c.req.raw));
      hono.post("/form", (c) => {
        parseMultipart(c.req.raw);
        return c.text("parsed");
      });
      await withServer((request) => hono.fetch(request), async (server) => {
        const form = new FormData();
        form.append("a", "1");
        for (
          const [path, init] of [
            ["/rpc/StreamingCalcService/sum", {
              method: "POST",
              body: new Uint8Array([0, 0, 0, 0, 0]),
              headers: { "content-type": "application/connect+proto" },
            }],
            ["/up", { method: "PUT", body: "x" }],
            ["/echo", { method: "POST", body: "x" }],
            ["/duplex", { method: "POST", body: "x" }],
            ["/files", {
              method: "POST",
              body: "x",
              headers: { "upload-complete": "?1" },
            }],
            ["/form", { method: "POST", body: form }],
          ] as const
        ) {
          const response = await fetch(new URL(path, server.url), init);
          assert.equal(response.status, 500, path);
          await response.body?.cancel();
        }
      });
      assert.equal(seen.length, 6);
      // An empty body read (Deno gives one where Bun gives none) is no body
      // lost: a tus creation after the middleware is created.
      await withServer((request) => hono.fetch(request), async (server) => {
        const created = await fetch(new URL("/files", server.url), {
          method: "POST",
          headers: { "tus-resumable": "1.0.0", "upload-length": "5" },
          body: "",
        });
        assert.equal(created.status, 201, await created.text());
      });
      assert.equal(seen.length, 6);
      for (const line of seen) {
        assert.match(
          line,
          /^TypeError: Cannot .+: the request body was already read \(bodyUsed\)/,
        );
      }
    } finally {
      await removeDir(dir);
    }
  });

  it("the handler itself answers 404 for a path outside requestPathPrefix", async () => {
    const rpc = createRpcHandler(streamingCalc, { requestPathPrefix: "/rpc" });
    const response = await rpc(
      new Request("http://localhost/other/StreamingCalcService/sum", {
        method: "POST",
        headers: { "content-type": "application/connect+proto" },
        body: new Uint8Array(0),
      }),
    );
    assert.equal(response.status, 404);
    await response.body?.cancel();
    // A Connect client reads that 404 as UNIMPLEMENTED.
    const { hono } = app();
    await withServer((request) => hono.fetch(request), async (server) => {
      const call = createClient(
        StreamingCalcService,
        createConnectTransport({ baseUrl: new URL("/other", server.url).href }),
      ).sum();
      await call.complete().catch(() => {});
      const error = await call.receive().then(
        () => assert.fail("the call succeeded"),
        (e: unknown) => e,
      );
      assert.ok(error instanceof RpcError);
      assert.equal(error.code, Code.Unimplemented);
    });
  });

  it("createUploadHandler gets the route's parameters and answers from onComplete", async () => {
    const { hono, stored } = app();
    await withServer((request) => hono.fetch(request), async (server) => {
      const response = await fetch(new URL("/files/report.txt", server.url), {
        method: "PUT",
        body: "hello",
      });
      assert.equal(response.status, 201);
      assert.equal(response.headers.get("location"), "/files/report.txt");
      assert.deepEqual(await response.json(), {
        name: "report.txt",
        bytes: 5,
      });
      const chunks = stored.get("report.txt");
      assert.ok(chunks);
      assert.equal(new TextDecoder().decode(chunks[0]), "hello");
    });
  });

  it("an HttpError thrown in a route keeps its status through Hono's error handling", async () => {
    const { hono } = app();
    const response = await hono.fetch(new Request("http://localhost/teapot"));
    assert.equal(response.status, 418);
    assert.match(await response.text(), /I am a teapot/);
  });

  it("createResumableUploadHandler under app.mount, which strips the mount path: locationPrefix gives a Location the client reaches (it got 404 at /uploads/<id>), in both protocols", async () => {
    const dir = await makeTempDir("hono-resumable-");
    try {
      const hono = new Hono();
      hono.mount(
        "/files",
        createResumableUploadHandler({
          store: createResumableFileStore(dir),
          requestPathPrefix: "/uploads",
          locationPrefix: "/files/uploads",
        }),
      );
      await withServer((request) => hono.fetch(request), async (server) => {
        const body = new Uint8Array(200_000).map((_, i) => i % 253);
        for (const protocol of ["ietf", "tus"] as const) {
          const result = await resumableUpload(
            new URL("/files/uploads", server.url),
            body,
            { protocol, chunkBytes: 64 * 1024, maxRetries: 0 },
          );
          assert.equal(result.bytes, body.byteLength, protocol);
          assert.match(
            new URL(result.uploadUrl).pathname,
            /^\/files\/uploads\/[^/]+$/,
            protocol,
          );
          const head = await fetch(result.uploadUrl, {
            method: "HEAD",
            headers: protocol === "tus" ? { "tus-resumable": "1.0.0" } : {},
          });
          assert.equal(head.status, protocol === "tus" ? 200 : 204, protocol);
        }
      });
    } finally {
      await removeDir(dir);
    }
  });

  it("createResumableUploadHandler refuses a locationPrefix that is no path", () => {
    assert.throws(
      () =>
        createResumableUploadHandler({
          store: createResumableFileStore("/nonexistent"),
          locationPrefix: "files/uploads",
        }),
      {
        name: "TypeError",
        message:
          'Cannot create resumable upload handler: locationPrefix must start with "/", got "files/uploads"',
      },
    );
  });
});
