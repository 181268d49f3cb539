// Connect GET (unary calls of methods declared NO_SIDE_EFFECTS, their
// message in the query): sluice's server and its Connect transport with
// useHttpGet, against each other, against connect-node (client and server)
// and curl; the methods' idempotency from defineService and from
// protobuf-es descriptors (tests/proto/lookup.proto); bad queries.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  Code as ConnectCode,
  ConnectError,
  type ConnectRouter,
  createClient as createConnectClient,
} from "@connectrpc/connect";
import { createConnectTransport as connectNodeTransport } from "@connectrpc/connect-node";
import { createClient, implementService } from "../lib/protobuf/mod.ts";
import { serviceDefinition } from "../lib/protobuf/_service_definition.ts";
import {
  Code,
  createClient as createDefinedClient,
  createConnectTransport,
  createRpcHandler,
  createUniversalHandler,
  defineService,
  implementService as implementDefinedService,
  Int64Value,
  RpcError,
} from "../lib/rpc/mod.ts";
import { createHttp2Client, serveHttp2 } from "../lib/runtime/grpc_node.ts";
import {
  type LookupRequest,
  LookupRequestSchema,
  LookupService,
} from "./gen/lookup_pb.ts";
import { serveConnectRoutes } from "./_calc_peers.ts";
import { deadline, runtime, startServer } from "./_helpers.ts";

const T = 20_000;

// Under Deno (2.9.6), connect-node's client on node:http hangs or fails
// ("Cannot call write after a stream was destroyed", against connect-node's
// own server too) on a POST that reuses the keep-alive connection of one of
// its GETs: it gets a connection per call there. Bun needs nothing.
const connectNodeClientOptions = runtime === "deno"
  ? { agent: false as const }
  : undefined;
const GET_PATH = "/sluice.test.lookup.v1.LookupService/Get";

/** The handlers both servers run: a map, and the HTTP method seen. */
function lookupHandlers(store: Map<string, string>) {
  return {
    get(request: LookupRequest, context: { requestMethod: string }) {
      const value = store.get(request.key);
      if (value === undefined) {
        throw new RpcError(Code.NotFound, `Cannot get ${request.key}`);
      }
      return { key: request.key, value, httpMethod: context.requestMethod };
    },
    put(request: LookupRequest, context: { requestMethod: string }) {
      store.set(request.key, request.value);
      return {
        key: request.key,
        value: request.value,
        httpMethod: context.requestMethod,
      };
    },
    append(request: LookupRequest, context: { requestMethod: string }) {
      const value = (store.get(request.key) ?? "") + request.value;
      store.set(request.key, value);
      return { key: request.key, value, httpMethod: context.requestMethod };
    },
  };
}

interface Seen {
  method: string;
  url: string;
}

/** sluice's LookupService, recording each request's method and URL. */
function sluiceLookup(seen: Seen[], options = {}) {
  const store = new Map([["a", "alpha"], ["ü", "ümlaut"]]);
  const handler = createRpcHandler(
    implementService(LookupService, {
      get(request, context) {
        context.responseHeaders.set("cache-control", "max-age=60");
        context.responseTrailers.set("x-looked-up", request.key || "-");
        return lookupHandlers(store).get(request, context);
      },
      put: (r, c) => lookupHandlers(store).put(r, c),
      append: (r, c) => lookupHandlers(store).append(r, c),
    }),
    options,
  );
  return (request: Request) => {
    seen.push({ method: request.method, url: request.url });
    return handler(request);
  };
}

function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(
      command,
      args,
      { timeout: 10_000 },
      (error, stdout) => error ? reject(error) : resolve(stdout),
    )
  );
}

describe("method idempotency", () => {
  it("defineService keeps idempotency and rejects unknown values", () => {
    const S = defineService("example.S", {
      read: {
        kind: "unary",
        input: Int64Value,
        output: Int64Value,
        idempotency: "no-side-effects",
      },
      write: { kind: "unary", input: Int64Value, output: Int64Value },
    });
    assert.equal(S.methods.read.idempotency, "no-side-effects");
    assert.equal(S.methods.write.idempotency, undefined);
    assert.throws(
      () =>
        defineService("example.S", {
          read: {
            kind: "unary",
            input: Int64Value,
            output: Int64Value,
            // deno-lint-ignore no-explicit-any
            idempotency: "cached" as any,
          },
        }),
      /method read has unknown idempotency "cached"/,
    );
  });

  it("serviceDefinition reads idempotency_level from protobuf-es descriptors", () => {
    const definition = serviceDefinition(LookupService);
    assert.equal(definition.methods.get.idempotency, "no-side-effects");
    assert.equal(definition.methods.put.idempotency, "idempotent");
    assert.equal(definition.methods.append.idempotency, undefined);
  });
});

describe("Connect GET: sluice client -> sluice server", { timeout: T }, () => {
  const seen: Seen[] = [];
  let server: Awaited<ReturnType<typeof startServer>>;
  before(async () => {
    server = await startServer(sluiceLookup(seen));
  });
  after(() => server.shutdown());

  for (const codec of ["proto", "json"] as const) {
    it(`useHttpGet sends NO_SIDE_EFFECTS calls as GET (${codec})`, async () => {
      seen.length = 0;
      const client = createClient(
        LookupService,
        createConnectTransport({
          baseUrl: server.url.origin,
          codec,
          useHttpGet: true,
        }),
      );
      let headers: Headers | undefined;
      let trailers: Headers | undefined;
      const got = await client.get({ key: "ü" }, {
        timeoutMs: 5000,
        onHeader: (h) => headers = h,
        onTrailer: (t) => trailers = t,
      });
      assert.equal(got.value, "ümlaut");
      assert.equal(got.httpMethod, "GET");
      assert.equal(headers?.get("cache-control"), "max-age=60");
      assert.equal(trailers?.get("x-looked-up"), "ü");
      assert.equal(seen.length, 1);
      assert.equal(seen[0].method, "GET");
      const query = new URL(seen[0].url).searchParams;
      assert.equal(query.get("connect"), "v1");
      assert.equal(query.get("encoding"), codec);
      assert.equal(query.get("base64"), codec === "proto" ? "1" : null);
      if (codec === "json") {
        assert.deepEqual(JSON.parse(query.get("message")!), { key: "ü" });
      }
      // Other methods, and errors over GET.
      const put = await client.put({ key: "b", value: "beta" });
      assert.equal(put.httpMethod, "POST");
      const appended = await client.append({ key: "b", value: "!" });
      assert.equal(appended.httpMethod, "POST");
      assert.equal((await client.get({ key: "b" })).value, "beta!");
      await assert.rejects(client.get({ key: "missing" }), (e: RpcError) => {
        assert.equal(e.code, Code.NotFound);
        assert.equal(e.rawMessage, "Cannot get missing");
        return true;
      });
      assert.deepEqual(seen.map((s) => s.method), [
        "GET",
        "POST",
        "POST",
        "GET",
        "GET",
      ]);
    });
  }

  it("useHttpGet off (the default) sends POST", async () => {
    seen.length = 0;
    const client = createClient(
      LookupService,
      createConnectTransport({ baseUrl: server.url.origin }),
    );
    assert.equal((await client.get({ key: "a" })).httpMethod, "POST");
    assert.deepEqual(seen.map((s) => s.method), ["POST"]);
  });

  it("compressed GET messages go as base64 with compression=gzip", async () => {
    seen.length = 0;
    const client = createClient(
      LookupService,
      createConnectTransport({
        baseUrl: server.url.origin,
        codec: "json",
        useHttpGet: true,
        sendCompression: "gzip",
        compressMinBytes: 0,
      }),
    );
    const got = await client.get({ key: "a", padding: new Uint8Array(300) });
    assert.equal(got.httpMethod, "GET");
    const query = new URL(seen[0].url).searchParams;
    assert.equal(query.get("compression"), "gzip");
    assert.equal(query.get("base64"), "1");
  });

  it("falls back to POST past maxGetUrlBytes", async () => {
    seen.length = 0;
    const client = createClient(
      LookupService,
      createConnectTransport({
        baseUrl: server.url.origin,
        useHttpGet: true,
        maxGetUrlBytes: 1024,
      }),
    );
    assert.equal(
      (await client.get({ key: "a", padding: new Uint8Array(600) }))
        .httpMethod,
      "GET",
    );
    assert.equal(
      (await client.get({ key: "a", padding: new Uint8Array(800) }))
        .httpMethod,
      "POST",
    );
    assert.ok(seen[0].url.length <= 1024);
    assert.deepEqual(seen.map((s) => s.method), ["GET", "POST"]);
    assert.throws(
      () =>
        createConnectTransport({
          baseUrl: server.url.origin,
          maxGetUrlBytes: -1,
        }),
      /maxGetUrlBytes must be a non-negative integer/,
    );
  });

  it("a hand-written defineService method is called with GET", async () => {
    const Counter = defineService("example.Counter", {
      current: {
        kind: "unary",
        input: Int64Value,
        output: Int64Value,
        idempotency: "no-side-effects",
      },
      add: { kind: "unary", input: Int64Value, output: Int64Value },
    });
    const methods: string[] = [];
    const handler = createRpcHandler(implementDefinedService(Counter, {
      current: (n, context) => {
        methods.push(context.requestMethod);
        return n + 1n;
      },
      add: (n, context) => {
        methods.push(context.requestMethod);
        return n + 2n;
      },
    }));
    const counter = await startServer(handler);
    try {
      const client = createDefinedClient(
        Counter,
        createConnectTransport({
          baseUrl: counter.url.origin,
          useHttpGet: true,
        }),
      );
      assert.equal(await client.current(41n), 42n);
      assert.equal(await client.add(40n), 42n);
      assert.deepEqual(methods, ["GET", "POST"]);
      // A GET of add, which may have side effects: 405.
      const response = await fetch(
        `${counter.url.origin}/example.Counter/add?encoding=json&message=%221%22`,
      );
      await response.body?.cancel();
      assert.equal(response.status, 405);
      assert.equal(response.headers.get("allow"), "POST");
      assert.deepEqual(methods, ["GET", "POST"]);
    } finally {
      await counter.shutdown();
    }
  });

  it("curl GET gets the JSON response", async () => {
    const message = encodeURIComponent(JSON.stringify({ key: "a" }));
    const out = await run("curl", [
      "-s",
      "-i",
      `${server.url.origin}${GET_PATH}?connect=v1&encoding=json&message=${message}`,
    ]);
    const [head, body] = out.split(/\r\n\r\n/);
    assert.match(head, /^HTTP\/1\.1 200/);
    assert.match(head, /content-type: application\/json/i);
    assert.match(head, /cache-control: max-age=60/i);
    assert.match(head, /trailer-x-looked-up: a/i);
    assert.deepEqual(JSON.parse(body), {
      key: "a",
      value: "alpha",
      httpMethod: "GET",
    });
  });
});

describe("Connect GET: bad requests", { timeout: T }, () => {
  const seen: Seen[] = [];
  let server: Awaited<ReturnType<typeof startServer>>;
  before(async () => {
    server = await startServer(sluiceLookup(seen, { maxMessageBytes: 1024 }));
  });
  after(() => server.shutdown());

  const proto = (init: { key?: string }) =>
    toBinary(LookupRequestSchema, create(LookupRequestSchema, init));
  const base64 = (bytes: Uint8Array) =>
    btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(
      /\//g,
      "_",
    ).replace(/=+$/, "");

  async function get(path: string, query: string, headers?: HeadersInit) {
    const response = await fetch(`${server.url.origin}${path}?${query}`, {
      headers,
    });
    const text = await response.text();
    let json: { code?: string; message?: string } | undefined;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: response.status, headers: response.headers, text, json };
  }

  it("serves standard base64 with padding, escaped or not, and no connect=v1", async () => {
    // A key whose encoding has + and / in standard base64.
    const bytes = proto({ key: ">>>?>" }); // CgU+Pj4/Pg==
    const padded = btoa(String.fromCharCode(...bytes));
    assert.match(padded, /[+/]/);
    assert.match(padded, /=$/);
    for (const message of [padded, encodeURIComponent(padded)]) {
      const r = await get(
        GET_PATH,
        `encoding=proto&base64=1&message=${message}`,
      );
      // The key is unknown: not_found proves the message was decoded.
      assert.equal(r.status, 404, r.text);
      assert.equal(r.json?.message, "Cannot get >>>?>");
    }
  });

  it("serves percent-encoded binary without base64", async () => {
    const bytes = proto({ key: "a" });
    const message = [...bytes].map((b) => "%" + b.toString(16).padStart(2, "0"))
      .join("");
    const r = await get(GET_PATH, `encoding=proto&message=${message}`);
    assert.equal(r.status, 200);
  });

  it("GET of a method with side effects is 405 with Allow: POST", async () => {
    for (const method of ["Put", "Append"]) {
      const r = await get(
        `/sluice.test.lookup.v1.LookupService/${method}`,
        "encoding=json&message=%7B%7D",
      );
      assert.equal(r.status, 405, method);
      assert.equal(r.headers.get("allow"), "POST");
    }
  });

  it("other HTTP methods are 405, with the methods the path takes in Allow and said in the body", async () => {
    const response = await fetch(`${server.url.origin}${GET_PATH}`, {
      method: "PUT",
      body: "x",
    });
    assert.equal(response.status, 405);
    // GET_PATH's method may be called by Connect GET: Allow names GET too
    // (it said POST alone, and the body was empty).
    assert.equal(response.headers.get("allow"), "POST, GET");
    assert.equal(
      await response.text(),
      `Cannot serve "${GET_PATH}": method "PUT" is not POST or GET`,
    );
    const put = await fetch(
      `${server.url.origin}/sluice.test.lookup.v1.LookupService/Put`,
      { method: "DELETE" },
    );
    await put.body?.cancel();
    assert.equal(put.status, 405);
    assert.equal(put.headers.get("allow"), "POST");
  });

  it("GET of an unknown method is unimplemented", async () => {
    const r = await get(
      "/sluice.test.lookup.v1.LookupService/Nope",
      "encoding=json&message=%7B%7D",
    );
    assert.equal(r.status, 404);
    assert.equal(r.json?.code, "unimplemented");
  });

  it("a missing or unknown encoding is 415, naming it", async () => {
    let r = await get(GET_PATH, "message=%7B%7D");
    assert.equal(r.status, 415);
    assert.match(r.text, /no encoding query parameter \(proto or json\)/);
    r = await get(GET_PATH, "encoding=xml&message=%7B%7D");
    assert.equal(r.status, 415);
    assert.match(r.text, /encoding "xml" is not proto or json/);
  });

  const invalid: [string, string, RegExp][] = [
    [
      "invalid base64",
      "encoding=proto&base64=1&message=*ab",
      /not valid base64/,
    ],
    [
      "base64=2",
      "encoding=json&base64=2&message=%7B%7D",
      /base64 is "2", not 0 or 1/,
    ],
    ["no message", "encoding=json", /no message query parameter/],
    [
      "connect=v2",
      "connect=v2&encoding=json&message=%7B%7D",
      /connect is "v2", not v1/,
    ],
    [
      "bad percent-encoding",
      "encoding=json&message=%7B%7",
      /invalid percent-encoding/,
    ],
    ["malformed JSON", "encoding=json&message=%7Bkey", /./],
    ["malformed protobuf", "encoding=proto&base64=1&message=_w", /./],
  ];
  for (const [what, query, message] of invalid) {
    it(`${what} is invalid_argument`, async () => {
      const r = await get(GET_PATH, query);
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json?.code, "invalid_argument");
      assert.match(r.json?.message ?? "", message);
    });
  }

  it("an unsupported compression is unimplemented, listing the supported", async () => {
    const r = await get(
      GET_PATH,
      `encoding=proto&base64=1&compression=br&message=${
        base64(proto({ key: "a" }))
      }`,
    );
    assert.equal(r.status, 501);
    assert.equal(r.json?.code, "unimplemented");
    assert.match(
      r.json?.message ?? "",
      /compression.*"br"; supported: gzip, identity/,
    );
  });

  it("a message over maxMessageBytes is resource_exhausted, before decoding", async () => {
    for (
      const query of [
        `encoding=proto&base64=1&message=${"A".repeat(1500)}`,
        `encoding=json&message=${"%20".repeat(1100)}`,
      ]
    ) {
      const r = await get(GET_PATH, query);
      assert.equal(r.status, 429);
      assert.equal(r.json?.code, "resource_exhausted");
      assert.match(r.json?.message ?? "", /exceeds maxMessageBytes 1024/);
    }
  });

  it("a compressed message inflating past maxMessageBytes is resource_exhausted", async () => {
    const zeros = new Uint8Array(64 * 1024);
    const gzipped = new Uint8Array(
      await new Response(
        new Blob([zeros]).stream().pipeThrough(new CompressionStream("gzip")),
      ).arrayBuffer(),
    );
    assert.ok(gzipped.byteLength < 1024);
    const r = await get(
      GET_PATH,
      `encoding=proto&base64=1&compression=gzip&message=${base64(gzipped)}`,
    );
    assert.equal(r.status, 429);
    assert.match(r.json?.message ?? "", /exceeds maxMessageBytes 1024/);
  });

  it("connect-timeout-ms applies to GET; bad ones are invalid_argument", async () => {
    const ok = await get(
      GET_PATH,
      "encoding=json&message=%7B%22key%22%3A%22a%22%7D",
      { "connect-timeout-ms": "5000" },
    );
    assert.equal(ok.status, 200);
    const bad = await get(
      GET_PATH,
      "encoding=json&message=%7B%7D",
      { "connect-timeout-ms": "soon" },
    );
    assert.equal(bad.status, 400);
    assert.match(bad.json?.message ?? "", /connect-timeout-ms/);
  });

  it("responses to GET name Vary: accept-encoding", async () => {
    const big = "x".repeat(2000);
    const client = createClient(
      LookupService,
      createConnectTransport({ baseUrl: server.url.origin, useHttpGet: true }),
    );
    // Stored by POST (within maxMessageBytes), read back by GET.
    await client.put({ key: "big", value: big.slice(0, 900) });
    let headers: Headers | undefined;
    const got = await client.get({ key: "big" }, {
      onHeader: (h) => headers = h,
    });
    assert.equal(got.value.length, 900);
    assert.equal(headers?.get("vary"), "accept-encoding");
  });
});

describe("Connect GET with connect-node", { timeout: T }, () => {
  const seen: Seen[] = [];
  let sluice: Awaited<ReturnType<typeof startServer>>;
  let connect: Awaited<ReturnType<typeof serveConnectRoutes>>;
  const connectMethods: string[] = [];
  before(async () => {
    sluice = await startServer(sluiceLookup(seen));
    const store = new Map([["a", "alpha"]]);
    connect = await serveConnectRoutes(
      (router: ConnectRouter) =>
        router.service(LookupService, {
          get(request, context) {
            connectMethods.push(context.requestMethod);
            const value = store.get(request.key);
            if (value === undefined) {
              throw new ConnectError(`no ${request.key}`, ConnectCode.NotFound);
            }
            context.responseHeader.set("x-served-by", "connect-node");
            context.responseTrailer.set("x-looked-up", request.key);
            return {
              key: request.key,
              value,
              httpMethod: context.requestMethod,
            };
          },
          put(request, context) {
            connectMethods.push(context.requestMethod);
            store.set(request.key, request.value);
            return { key: request.key, value: request.value };
          },
          append(request, context) {
            connectMethods.push(context.requestMethod);
            return { key: request.key };
          },
        }),
      "1.1",
    );
  });
  after(async () => {
    await sluice.shutdown();
    await connect.shutdown();
  });

  for (const codec of ["proto", "json"] as const) {
    it(`connect-node client with useHttpGet -> sluice server (${codec})`, async () => {
      seen.length = 0;
      const client = createConnectClient(
        LookupService,
        connectNodeTransport({
          baseUrl: sluice.url.origin,
          httpVersion: "1.1",
          useBinaryFormat: codec === "proto",
          useHttpGet: true,
          nodeOptions: connectNodeClientOptions,
        }),
      );
      let trailer: Headers | undefined;
      const got = await client.get({ key: "ü" }, {
        onTrailer: (t) => trailer = t,
      });
      assert.equal(got.value, "ümlaut");
      assert.equal(got.httpMethod, "GET");
      assert.equal(trailer?.get("x-looked-up"), "ü");
      assert.equal(
        (await client.put({ key: "c", value: "y" })).httpMethod,
        "POST",
      );
      await assert.rejects(client.get({ key: "nope" }), (e: ConnectError) => {
        assert.equal(e.code, ConnectCode.NotFound);
        return true;
      });
      assert.deepEqual(seen.map((s) => s.method), ["GET", "POST", "GET"]);
    });
  }

  for (const codec of ["proto", "json"] as const) {
    it(`sluice client with useHttpGet -> connect-node server (${codec})`, async () => {
      connectMethods.length = 0;
      const client = createClient(
        LookupService,
        createConnectTransport({
          baseUrl: connect.url,
          codec,
          useHttpGet: true,
        }),
      );
      let headers: Headers | undefined;
      let trailers: Headers | undefined;
      const got = await client.get({ key: "a" }, {
        onHeader: (h) => headers = h,
        onTrailer: (t) => trailers = t,
      });
      assert.equal(got.value, "alpha");
      assert.equal(got.httpMethod, "GET");
      assert.equal(headers?.get("x-served-by"), "connect-node");
      assert.equal(trailers?.get("x-looked-up"), "a");
      await client.put({ key: "d", value: "delta" });
      assert.equal((await client.get({ key: "d" })).value, "delta");
      await assert.rejects(client.get({ key: "nope" }), (e: RpcError) => {
        assert.equal(e.code, Code.NotFound);
        return true;
      });
      assert.deepEqual(connectMethods, ["GET", "POST", "GET", "GET"]);
    });
  }

  it("sluice client GET -> connect-node server, gzip-compressed", async () => {
    connectMethods.length = 0;
    const client = createClient(
      LookupService,
      createConnectTransport({
        baseUrl: connect.url,
        useHttpGet: true,
        sendCompression: "gzip",
        compressMinBytes: 0,
      }),
    );
    const got = await client.get({ key: "a", padding: new Uint8Array(100) });
    assert.equal(got.value, "alpha");
    assert.deepEqual(connectMethods, ["GET"]);
  });
});

describe("Connect GET over node:http2 (serveHttp2)", { timeout: T }, () => {
  it("serves GET through the universal handler, to curl and sluice", async () => {
    const seen: string[] = [];
    const universal = createUniversalHandler(implementService(LookupService, {
      get: (request, context) => {
        seen.push(context.requestMethod);
        return {
          key: request.key,
          value: "h2",
          httpMethod: context.requestMethod,
        };
      },
      put: (r) => ({ key: r.key }),
      append: (r) => ({ key: r.key }),
    }));
    const server = await serveHttp2(universal);
    try {
      const message = encodeURIComponent(JSON.stringify({ key: "k" }));
      const out = await deadline(
        run("curl", [
          "-s",
          "--http2-prior-knowledge",
          `${server.url.origin}${GET_PATH}?encoding=json&message=${message}`,
        ]),
        10_000,
        "curl over h2c",
      );
      assert.deepEqual(JSON.parse(out), {
        key: "k",
        value: "h2",
        httpMethod: "GET",
      });
      assert.deepEqual(seen, ["GET"]);
      // sluice's client over its node:http2 client sends GET too.
      const httpClient = createHttp2Client(server.url.origin);
      try {
        const client = createClient(
          LookupService,
          createConnectTransport({
            baseUrl: server.url.origin,
            httpClient,
            useHttpGet: true,
          }),
        );
        const got = await deadline(
          client.get({ key: "k2" }),
          10_000,
          "GET over createHttp2Client",
        );
        assert.equal(got.httpMethod, "GET");
        assert.deepEqual(seen, ["GET", "GET"]);
      } finally {
        await httpClient.close();
      }
    } finally {
      await server.shutdown();
    }
  });
});
