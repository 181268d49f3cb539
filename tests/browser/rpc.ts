// The browser suite's RPC tests (registered by tests/browser/suite.ts):
// sluice's RPC client in Chromium against sluice's servers. Unary and
// server-streaming calls over fetch on HTTP/1.1 and HTTP/2; client-streaming
// and bidi over the WebSocket transport (ws: and wss:); bidi over fetch
// failing at once with an error that names the WebSocket transport; and a
// small lockstep latency figure, WebSocket bidi beside HTTP/2 half duplex.

import { join } from "node:path";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import type { Page } from "playwright-core";
import { cors, createRpcHandler } from "../../lib/rpc/mod.ts";
import { corsLayer } from "./_cors_layer.ts";
import { createWebSocketRpcHandler } from "../../lib/runtime/websocket.ts";
import { bundle, ROOT } from "../_workerd.ts";
import { browserServices } from "./rpc_services.ts";
import { buildApp, createDemoHandler } from "../../examples/web/server.ts";
import { serve } from "../../lib/runtime/serve.ts";
import type { SluiceRpc } from "./rpc_page.ts";
import type { RpcPeers } from "./rpc_peers_page.ts";

const http = createRpcHandler(browserServices, { requestPathPrefix: "/rpc" });
const ws = createWebSocketRpcHandler(browserServices);
// Pages of localhost only, whatever their port or scheme.
const wsChecked = createWebSocketRpcHandler(browserServices, {
  allowedOrigins: (origin) => new URL(origin).hostname === "localhost",
});
const wsAny = createWebSocketRpcHandler(browserServices, {
  allowedOrigins: "*",
});
const crossOrigin = createRpcHandler(browserServices, {
  requestPathPrefix: "/cors-rpc",
});

/**
 * The CORS layer built from `cors` (docs/browser.md shows one like it), with
 * an `x-tenant` header of the page's own and `x-served-by` of the server's.
 */
const withCors = corsLayer(cors, {
  allowHeaders: ["x-tenant"],
  exposeHeaders: ["x-served-by"],
});

/** The same layer with the gRPC status headers left unexposed. */
const withoutStatus = corsLayer({
  ...cors,
  exposedHeaders: cors.exposedHeaders.filter((name) =>
    name !== "grpc-status" && name !== "grpc-message"
  ),
}, { allowHeaders: ["x-tenant"], exposeHeaders: ["x-served-by"] });

const scripts = new Map<string, Promise<Uint8Array>>();

/** Bundles a page entry of tests/browser for the browser, once. */
function pageScript(entry: string): Promise<Uint8Array> {
  let script = scripts.get(entry);
  if (script === undefined) {
    script = (async () => {
      const dir = await mkdtemp(join(ROOT, ".tmp", "browser-rpc-"));
      try {
        const out = join(dir, "bundle.js");
        await bundle(join(ROOT, "tests", "browser", entry), out, {
          platform: "browser",
        });
        return await readFile(out);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    })();
    scripts.set(entry, script);
  }
  return script;
}

/**
 * The RPC routes of the test server: `/sluice-rpc.js` and `/rpc-peers.js`
 * (the page's RPC bundles: sluice's client, third-party clients), `/rpc/*`
 * (Connect and gRPC-Web over fetch), `/cors-rpc/*` (the same through
 * `withCors`), `/rpc-ws` (RPC over WebSocket, pages of the same host),
 * `/rpc-ws-checked` (pages of localhost) and `/rpc-ws-any` (any page);
 * undefined for any other path.
 */
export async function rpcRoute(
  request: Request,
  pathname: string,
): Promise<Response | undefined> {
  const entry = pathname === "/sluice-rpc.js"
    ? "rpc_page.ts"
    : pathname === "/rpc-peers.js"
    ? "rpc_peers_page.ts"
    : undefined;
  if (entry !== undefined) {
    return new Response(await pageScript(entry) as Uint8Array<ArrayBuffer>, {
      headers: { "content-type": "text/javascript; charset=utf-8" },
    });
  }
  if (pathname === "/rpc-ws") return await ws(request);
  if (pathname === "/rpc-ws-checked") return await wsChecked(request);
  if (pathname === "/rpc-ws-any") return await wsAny(request);
  if (pathname.startsWith("/rpc/")) return await http(request);
  if (pathname.startsWith("/cors-rpc/")) {
    return await withCors(request, crossOrigin);
  }
  if (pathname.startsWith("/cors-rpc-hidden/")) {
    return await withoutStatus(
      new Request(
        request.url.replace("/cors-rpc-hidden/", "/cors-rpc/"),
        request,
      ),
      crossOrigin,
    );
  }
  return undefined;
}

/** What the suite gives the RPC tests. */
export interface RpcTestKit {
  test(name: string, fn: () => Promise<void>): void;
  assert(condition: unknown, message: string): void;
  assertEqual(actual: unknown, expected: unknown, what: string): void;
  /** The page served over HTTP/1.1 and the one over HTTPS (HTTP/2). */
  pages(): { http: Page; https: Page };
  /** Opens a new page in the suite's browser. */
  newPage(): Promise<Page>;
}

declare const sluiceRpc: SluiceRpc;
declare const rpcPeers: RpcPeers;

/** Loads the third-party clients' bundle into a page (once). */
async function withPeers(p: Page): Promise<Page> {
  if (!await p.evaluate(() => "rpcPeers" in globalThis)) {
    await p.addScriptTag({ url: "/rpc-peers.js", type: "module" });
    await p.waitForFunction(() => "rpcPeers" in globalThis);
  }
  return p;
}

/** Loads the RPC bundle into a page (once). */
async function withRpc(p: Page): Promise<Page> {
  if (!await p.evaluate(() => "sluiceRpc" in globalThis)) {
    await p.addScriptTag({ url: "/sluice-rpc.js", type: "module" });
    await p.waitForFunction(() => "sluiceRpc" in globalThis);
  }
  return p;
}

/** Unary and server-streaming calls over fetch, both HTTP protocols. */
function fetchCalls(p: Page) {
  return p.evaluate(async () => {
    const { createClient, BrowserService } = sluiceRpc;
    const results: Record<string, unknown> = {};
    for (
      const [name, make] of [
        ["connect", sluiceRpc.createConnectTransport],
        ["grpc-web", sluiceRpc.createGrpcWebTransport],
      ] as const
    ) {
      const baseUrl = `${location.origin}/rpc`;
      const client = createClient(BrowserService, make({ baseUrl }));
      const square = String(await client.square(12n));
      const counted: string[] = [];
      const call = client.count(4n);
      for (let r = await call.receive(); !r.done; r = await call.receive()) {
        counted.push(String(r.value));
      }
      results[name] = { square, counted };
    }
    const protocols = [
      ...new Set(
        performance.getEntriesByType("resource")
          .filter((e) => e.name.includes("/rpc/"))
          .map((e) => (e as PerformanceResourceTiming).nextHopProtocol),
      ),
    ];
    return { results, protocols };
  });
}

/** sum and incrementalSum (lockstep) over the WebSocket transport. */
function websocketCalls(p: Page) {
  return p.evaluate(async () => {
    const { createClient, StreamingCalcService } = sluiceRpc;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const client = createClient(
      StreamingCalcService,
      sluiceRpc.createWebSocketTransport({
        url: `${scheme}//${location.host}/rpc-ws`,
      }),
    );
    const sum = client.sum();
    for (let i = 1n; i <= 10n; i++) await sum.send(i);
    await sum.complete();
    const total = String(await sum.receive());
    const call = client.incrementalSum();
    const running: string[] = [];
    for (let i = 1n; i <= 5n; i++) {
      await call.send(i);
      const r = await call.receive();
      running.push(r.done ? "done" : String(r.value));
    }
    await call.complete();
    const end = await call.receive();
    return { total, running, ended: end.done };
  });
}

/** Starts a call over fetch and reports how it failed, bounded in time. */
function fetchStreamingFailure(
  p: Page,
  kind: "sum" | "incrementalSum",
) {
  return p.evaluate(async (kind) => {
    const { createClient, StreamingCalcService } = sluiceRpc;
    const started = performance.now();
    const attempt = (async () => {
      const client = createClient(
        StreamingCalcService,
        sluiceRpc.createConnectTransport({ baseUrl: `${location.origin}/rpc` }),
      );
      const call = client[kind]();
      await call.send(1n);
      await call.complete();
      await call.receive();
      return "succeeded";
    })();
    const timeout = new Promise<string>((resolve) =>
      setTimeout(() => resolve("hung for 10 s"), 10_000)
    );
    try {
      const outcome = await Promise.race([attempt, timeout]);
      return { outcome, ms: performance.now() - started };
    } catch (error) {
      const e = error as { code?: number; message?: string };
      return {
        outcome: "failed",
        code: e.code,
        isRpcError: error instanceof sluiceRpc.RpcError,
        message: e.message,
        ms: performance.now() - started,
      };
    }
  }, kind);
}

/**
 * Connect (POST and GET) and gRPC-Web calls from the page to `baseUrl`
 * (another origin): unary with a header of the page's own and one read
 * back, server-streaming, and a failure answered in headers alone over
 * gRPC-Web.
 */
function crossOriginCalls(p: Page, baseUrl: string) {
  return p.evaluate(async (baseUrl) => {
    const { createClient, BrowserService } = sluiceRpc;
    const results: Record<string, unknown> = {};
    for (
      const [name, make, extra] of [
        ["connect", sluiceRpc.createConnectTransport, {}],
        ["connect-get", sluiceRpc.createConnectTransport, {
          useHttpGet: true,
        }],
        ["grpc-web", sluiceRpc.createGrpcWebTransport, {}],
      ] as const
    ) {
      const client = createClient(
        BrowserService,
        make({ baseUrl, ...extra }),
      );
      const outcome = async (call: () => Promise<unknown>) => {
        try {
          return { value: String(await call()) };
        } catch (error) {
          const e = error as { code?: number; rawMessage?: string };
          return { code: e.code, message: e.rawMessage };
        }
      };
      let servedBy: string | null = null;
      const square = await outcome(() =>
        client.square(12n, {
          headers: { "x-tenant": "t1" },
          timeoutMs: 10_000,
          onHeader: (headers) => servedBy = headers.get("x-served-by"),
        })
      );
      const counted = await outcome(async () =>
        (await Array.fromAsync(client.count(3n).responses)).join(",")
      );
      const failed = await outcome(() => client.fail(1n));
      results[name] = { square, servedBy, counted, failed };
    }
    return results;
  }, baseUrl);
}

/** Registers the RPC tests. */
export function registerRpcTests(kit: RpcTestKit): void {
  const { test, assert, assertEqual } = kit;
  const expectedFetch = {
    connect: { square: "144", counted: ["1", "2", "3", "4"] },
    "grpc-web": { square: "144", counted: ["1", "2", "3", "4"] },
  };

  test("RPC in the page: unary and server-streaming over fetch on plain HTTP/1.1 (Connect and gRPC-Web; complete request bodies)", async () => {
    const r = await fetchCalls(await withRpc(kit.pages().http));
    assertEqual(r.results, expectedFetch, "results");
    assertEqual(r.protocols, ["http/1.1"], "protocols");
  });

  test("RPC in the page: unary and server-streaming over fetch on HTTPS/h2 (Connect and gRPC-Web)", async () => {
    const r = await fetchCalls(await withRpc(kit.pages().https));
    assertEqual(r.results, expectedFetch, "results");
    assertEqual(r.protocols, ["h2"], "protocols");
  });

  test('RPC in the page in process (createUniversalHandlerClient, as a page\'s tests call a handler): all four call kinds, and reduce over an array (ReadableStream.from, which Chromium lacks, failed them: "is not a function")', async () => {
    const p = await withRpc(kit.pages().http);
    const r = await p.evaluate(async () => {
      const {
        createClient,
        createConnectTransport,
        createUniversalHandler,
        createUniversalHandlerClient,
        reduce,
        BrowserService,
        browserServices,
        StreamingCalcService,
      } = sluiceRpc;
      const transport = createConnectTransport({
        baseUrl: "http://in-process.test",
        httpClient: createUniversalHandlerClient(
          createUniversalHandler(browserServices),
        ),
      });
      const calc = createClient(StreamingCalcService, transport);
      const browser = createClient(BrowserService, transport);
      const settle = async <T>(call: () => Promise<T>) => {
        try {
          return await call();
        } catch (error) {
          return `failed: ${(error as Error).message}`;
        }
      };
      const counted: string[] = [];
      const running: string[] = [];
      return {
        reduced: String(
          await settle(() => reduce([1n, 2n, 3n], (a, b) => a + b, 0n)),
        ),
        square: String(await settle(() => browser.square(12n))),
        counted: await settle(async () => {
          for await (const n of browser.count(3n)) counted.push(String(n));
          return counted;
        }),
        total: await settle(async () => {
          const sum = calc.sum();
          for (let i = 1n; i <= 4n; i++) await sum.send(i);
          await sum.complete();
          return String(await sum.receive());
        }),
        running: await settle(async () => {
          const call = calc.incrementalSum();
          for (let i = 1n; i <= 3n; i++) {
            await call.send(i);
            const r = await call.receive();
            running.push(r.done ? "done" : String(r.value));
          }
          await call.complete();
          return running;
        }),
      };
    });
    assertEqual(r, {
      reduced: "6",
      square: "144",
      counted: ["1", "2", "3"],
      total: "10",
      running: ["1", "3", "6"],
    }, "calls");
  });

  test("RPC in the page: client-streaming sum and bidi incrementalSum in lockstep over createWebSocketTransport (ws://)", async () => {
    const r = await websocketCalls(await withRpc(kit.pages().http));
    assertEqual(r, {
      total: "55",
      running: ["1", "3", "6", "10", "15"],
      ended: true,
    }, "calls");
  });

  test("RPC in the page: client-streaming and bidi over createWebSocketTransport (wss://)", async () => {
    const r = await websocketCalls(await withRpc(kit.pages().https));
    assertEqual(r, {
      total: "55",
      running: ["1", "3", "6", "10", "15"],
      ended: true,
    }, "calls");
  });

  test("RPC in the page: over createWebSocketTransport, a handler sees the page's cookie and Origin (sent with the upgrade), as over fetch", async () => {
    const p = await withRpc(kit.pages().http);
    const r = await p.evaluate(async () => {
      const { createClient, BrowserService } = sluiceRpc;
      // This file is type-checked without the DOM library.
      const page = globalThis as unknown as { document: { cookie: string } };
      page.document.cookie = "session=s3cret; path=/";
      try {
        const seen: Record<string, string | null>[] = [];
        for (
          const transport of [
            sluiceRpc.createWebSocketTransport({
              url: `ws://${location.host}/rpc-ws`,
            }),
            sluiceRpc.createConnectTransport({
              baseUrl: `${location.origin}/rpc`,
            }),
          ]
        ) {
          let headers: Headers | undefined;
          const value = await createClient(BrowserService, transport).square(
            7n,
            { onHeader: (h) => headers = h },
          );
          seen.push({
            value: String(value),
            session: headers?.get("x-session") ?? null,
            origin: headers?.get("x-origin") ?? null,
          });
        }
        return { seen, origin: location.origin };
      } finally {
        page.document.cookie = "session=; max-age=0; path=/";
      }
    });
    // Chromium sends Origin with every WebSocket upgrade; on a same-origin
    // POST over fetch it sends it too.
    const expected = { value: "49", session: "s3cret", origin: r.origin };
    assertEqual(r.seen, [expected, expected], "over WebSocket, over fetch");
  });

  for (const scheme of ["http", "https"] as const) {
    test(`RPC in the page: bidi over fetch (${scheme}) fails at once with UNIMPLEMENTED naming createWebSocketTransport, no hang`, async () => {
      const p = await withRpc(kit.pages()[scheme]);
      const r = await fetchStreamingFailure(p, "incrementalSum");
      assertEqual(r.outcome, "failed", `outcome (${r.message})`);
      assert(r.isRpcError, "not an RpcError");
      assertEqual(r.code, 12, "code (Unimplemented)");
      assert(
        /createWebSocketTransport/.test(r.message ?? ""),
        `message does not name the WebSocket transport: ${r.message}`,
      );
      assert(r.ms < 2000, `took ${r.ms} ms`);
    });
  }

  test("RPC in the page: client-streaming over fetch on HTTP/1.1 fails at once, before sending, with UNIMPLEMENTED saying a browser streams request bodies only over HTTP/2 and naming createWebSocketTransport", async () => {
    const r = await fetchStreamingFailure(
      await withRpc(kit.pages().http),
      "sum",
    );
    assertEqual(r.outcome, "failed", `outcome (${r.message})`);
    assert(r.isRpcError, "not an RpcError");
    // Refused before anything is sent, saying why (it was UNAVAILABLE,
    // "Failed to fetch", once Chromium had refused the request).
    assertEqual(
      [r.code, r.message],
      [
        12,
        "[unimplemented] Cannot start client-streaming call sum over fetch: a browser streams a request body only over HTTP/2, to an https: URL; use createWebSocketTransport from @sluice/streams/rpc",
      ],
      "code (Unimplemented) and message",
    );
    assert(r.ms < 2000, `took ${r.ms} ms`);
  });

  test("RPC in the page: a streaming call to a server that is not there fails UNAVAILABLE, without the HTTP/2 hint over WebSocket and with it only as a maybe over https (it said to use createWebSocketTransport)", async () => {
    const p = await withRpc(kit.pages().https);
    const messages = await p.evaluate(async () => {
      const { createClient, StreamingCalcService } = sluiceRpc;
      // A port nothing listens on (the discard port, refused here).
      const calls = [
        createClient(
          StreamingCalcService,
          sluiceRpc.createWebSocketTransport({
            url: "ws://127.0.0.1:9/rpc-ws",
          }),
        ),
        createClient(
          StreamingCalcService,
          sluiceRpc.createConnectTransport({
            baseUrl: "https://127.0.0.1:9/rpc",
            allowHalfDuplex: true,
          }),
        ),
      ].map(async (client) => {
        const call = client.sum();
        try {
          await call.send(1n);
          await call.complete();
          await call.receive();
          return "answered";
        } catch (error) {
          return String(error);
        }
      });
      return await Promise.all(calls);
    });
    for (const message of messages) {
      assert(/^RpcError: \[unavailable\] /.test(message), message);
    }
    // Over WebSocket, nothing about HTTP/2; over https, only as a maybe (a
    // server speaking only HTTP/1.1 is refused the same way).
    assert(!/HTTP\/2/.test(messages[0]), `says HTTP/2: ${messages[0]}`);
    assert(
      /\(if the server speaks only HTTP\/1\.1: a browser streams a request body only over HTTP\/2; /
        .test(messages[1]),
      messages[1],
    );
  });

  test("RPC in the page: client-streaming over fetch on h2 works (half duplex is enough for it)", async () => {
    const p = await withRpc(kit.pages().https);
    const total = await p.evaluate(async () => {
      const { createClient, StreamingCalcService } = sluiceRpc;
      const client = createClient(
        StreamingCalcService,
        sluiceRpc.createConnectTransport({ baseUrl: `${location.origin}/rpc` }),
      );
      const sum = client.sum();
      for (let i = 1n; i <= 10n; i++) await sum.send(i);
      await sum.complete();
      return String(await sum.receive());
    });
    assertEqual(total, "55", "sum");
  });

  test("RPC in the page: bidi over fetch on h2 with allowHalfDuplex sends every request, then reads", async () => {
    const p = await withRpc(kit.pages().https);
    const running = await p.evaluate(async () => {
      const { createClient, StreamingCalcService } = sluiceRpc;
      const client = createClient(
        StreamingCalcService,
        sluiceRpc.createConnectTransport({
          baseUrl: `${location.origin}/rpc`,
          allowHalfDuplex: true,
        }),
      );
      const call = client.incrementalSum();
      for (let i = 1n; i <= 4n; i++) await call.send(i);
      await call.complete();
      const values: string[] = [];
      for (let r = await call.receive(); !r.done; r = await call.receive()) {
        values.push(String(r.value));
      }
      return values;
    });
    assertEqual(running, ["1", "3", "6", "10"], "running sums");
  });

  test("RPC in the page from another origin: Connect (POST and GET) and gRPC-Web through a CORS layer built from `cors`; without it the browser refuses", async () => {
    const p = await withRpc(kit.pages().http);
    const other = await p.evaluate(() => `http://localhost:${location.port}`);
    const denied = { code: 7, message: "Cannot fail: denied" };
    const allowed = {
      square: { value: "144" },
      servedBy: "sluice for t1",
      counted: { value: "1,2,3" },
      failed: denied,
    };
    assertEqual(await crossOriginCalls(p, `${other}/cors-rpc`), {
      connect: allowed,
      "connect-get": allowed,
      "grpc-web": allowed,
    }, "through the CORS layer");
    // With grpc-status and grpc-message unexposed, gRPC-Web's error
    // answered in headers alone reads as a body without its trailer frame,
    // and the message says why.
    const hidden = await crossOriginCalls(
      p,
      `${other}/cors-rpc-hidden`,
    ) as Record<string, Record<string, { code?: number; message?: string }>>;
    assertEqual(hidden.connect.failed, denied, "Connect, status unexposed");
    assertEqual(hidden["grpc-web"].square, allowed.square, "gRPC-Web unary");
    assertEqual(hidden["grpc-web"].failed.code, 13, "gRPC-Web error: INTERNAL");
    assert(
      /without its trailer frame \(from another origin, a page sees a status answered in headers only if the server lists grpc-status and grpc-message in Access-Control-Expose-Headers\)/
        .test(hidden["grpc-web"].failed.message ?? ""),
      `gRPC-Web error's message: ${hidden["grpc-web"].failed.message}`,
    );
    // The same handler without it: every call fails to send (UNAVAILABLE).
    const refused = await crossOriginCalls(p, `${other}/rpc`) as Record<
      string,
      Record<string, { code?: number }>
    >;
    for (const [name, r] of Object.entries(refused)) {
      for (const call of ["square", "counted", "failed"]) {
        assertEqual(r[call].code, 14, `${name} ${call} without CORS`);
      }
    }
  });

  for (const scheme of ["http", "https"] as const) {
    test(`third-party client in the page: @connectrpc/connect-web 2.2.0 (Connect proto and JSON, gRPC-Web) calls sluice's createRpcHandler, unary and server-streaming (${scheme})`, async () => {
      const p = await withPeers(kit.pages()[scheme]);
      const results = await p.evaluate(async () => {
        const baseUrl = `${location.origin}/rpc`;
        return {
          connect: await rpcPeers.connectWeb("connect", baseUrl),
          "connect-json": await rpcPeers.connectWeb("connect-json", baseUrl),
          "grpc-web": await rpcPeers.connectWeb("grpc-web", baseUrl),
        };
      });
      const expected = { square: "144", counted: ["1", "2", "3", "4"] };
      assertEqual(results, {
        connect: expected,
        "connect-json": expected,
        "grpc-web": expected,
      }, "results");
    });
  }

  test("third-party client in the page: Google's grpc-web 2.1.1 (binary format, hand-written MethodDescriptors) calls sluice's createRpcHandler: unary, server-streaming and an UNIMPLEMENTED error", async () => {
    const p = await withPeers(kit.pages().http);
    const r = await p.evaluate(() =>
      rpcPeers.grpcWeb(`${location.origin}/rpc`)
    );
    assertEqual(r.square, "144", "square");
    assertEqual(r.counted, ["1", "2", "3", "4"], "count");
    assertEqual(r.error.code, 12, `error code (${r.error.message})`);
  });

  for (const scheme of ["http", "https"] as const) {
    test(`third-party client in the page: Google's grpc-web 2.1.1 in its text format (application/grpc-web-text, mode=grpcwebtext) calls sluice's createRpcHandler: unary, an UNIMPLEMENTED error, and server-streaming whose messages reach the page as they are sent (it was refused, 415) (${scheme})`, async () => {
      const p = await withPeers(kit.pages()[scheme]);
      const r = await p.evaluate(() =>
        rpcPeers.grpcWebText(`${location.origin}/rpc`)
      );
      assertEqual(r.square, "144", "square");
      assertEqual(r.error.code, 12, `error code (${r.error.message})`);
      assertEqual(r.counted, ["1", "2", "3", "4"], "count");
      // 2: the page read 1 while the call was open and released it (99:
      // it saw nothing until the server gave up waiting).
      assertEqual(r.paced, ["1", "2"], "paced");
    });
  }

  test("RPC over WebSocket from another origin: the browser opens it with no CORS check and the visitor's cookies, so allowedOrigins refuses a page of another host by default, and lets in those it names", async () => {
    const p = await withRpc(kit.pages().http);
    const r = await p.evaluate(async () => {
      const { createClient, StreamingCalcService } = sluiceRpc;
      const sum = async (url: string) => {
        try {
          const call = createClient(
            StreamingCalcService,
            sluiceRpc.createWebSocketTransport({ url }),
          ).sum();
          for (let i = 1n; i <= 3n; i++) await call.send(i);
          await call.complete();
          return String(await call.receive());
        } catch (error) {
          return `code ${(error as { code?: number }).code}`;
        }
      };
      // The page is on 127.0.0.1; localhost is another origin.
      const other = `ws://localhost:${location.port}`;
      return {
        // The default: a page of another host is refused (403).
        byDefault: await sum(`${other}/rpc-ws`),
        // allowedOrigins "*": any page.
        any: await sum(`${other}/rpc-ws-any`),
        // A function allowing pages of localhost only: this one is not.
        checked: await sum(`ws://${location.host}/rpc-ws-checked`),
        // ... and a page of localhost calling 127.0.0.1 is.
        sameHost: await sum(`ws://${location.host}/rpc-ws`),
      };
    });
    assertEqual(r.byDefault, "code 14", "another origin, by default");
    assertEqual(r.any, "6", 'allowedOrigins "*"');
    assertEqual(r.checked, "code 14", "refused by the function");
    assertEqual(r.sameHost, "6", "the page's own host");
  });

  test("third-party clients in the page from another origin through the CORS layer built from `cors`: connect-web (Connect proto and JSON, gRPC-Web) and Google's grpc-web (binary and text), with an error answered in headers alone", async () => {
    const p = await withPeers(kit.pages().http);
    const r = await p.evaluate(async () => {
      const baseUrl = `http://localhost:${location.port}/cors-rpc`;
      return {
        connect: await rpcPeers.connectWeb("connect", baseUrl),
        "connect-json": await rpcPeers.connectWeb("connect-json", baseUrl),
        "grpc-web": await rpcPeers.connectWeb("grpc-web", baseUrl),
        grpcWeb: await rpcPeers.grpcWeb(baseUrl),
        grpcWebText: await rpcPeers.grpcWebText(baseUrl),
      };
    });
    const expected = { square: "144", counted: ["1", "2", "3", "4"] };
    assertEqual(r.connect, expected, "connect-web, Connect");
    assertEqual(r["connect-json"], expected, "connect-web, Connect JSON");
    assertEqual(r["grpc-web"], expected, "connect-web, gRPC-Web");
    assertEqual(r.grpcWeb.square, "144", "grpc-web square");
    assertEqual(r.grpcWeb.counted, ["1", "2", "3", "4"], "grpc-web count");
    assertEqual(
      r.grpcWeb.error.code,
      12,
      `grpc-web error code (${r.grpcWeb.error.message})`,
    );
    assertEqual(r.grpcWebText.square, "144", "grpc-web text square");
    assertEqual(r.grpcWebText.paced, ["1", "2"], "grpc-web text paced");
    assertEqual(
      r.grpcWebText.error.code,
      12,
      `grpc-web text error code (${r.grpcWebText.error.message})`,
    );
  });

  test("examples/web: the running-total panel sums numbers as they are typed, over a WebSocket bidi call", async () => {
    const server = await serve(
      await createDemoHandler({ appScript: await buildApp() }),
      { hostname: "127.0.0.1", port: 0 },
    );
    const p = await kit.newPage();
    try {
      await p.goto(server.url.href);
      await p.waitForSelector("#sum-state.live");
      // Typed key by key: "1 2 " sends 1 and 2 as the spaces come.
      await p.locator("#sum-input").pressSequentially("1 2 ");
      await p.waitForFunction(
        'document.getElementById("sum-total").textContent === "3"',
      );
      await p.fill("#sum-input", "40");
      await p.press("#sum-input", "Enter");
      await p.waitForFunction(
        'document.getElementById("sum-total").textContent === "43"',
      );
      assertEqual(
        await p.$$eval(
          "#sum-steps li",
          (items) => items.map((item) => item.textContent),
        ),
        ["+ 40 = 43", "+ 2 = 3", "+ 1 = 1"],
        "steps",
      );
    } finally {
      await p.close();
      await server.shutdown();
    }
  });

  test("RPC in the page: lockstep latency, WebSocket bidi beside HTTP/2 half duplex (printed, not asserted)", async () => {
    const p = await withRpc(kit.pages().https);
    const figures = await p.evaluate(async () => {
      const { createClient, StreamingCalcService } = sluiceRpc;
      const p50 = (xs: number[]) =>
        [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
      const rounds = 100;
      const ws = createClient(
        StreamingCalcService,
        sluiceRpc.createWebSocketTransport({
          url: `wss://${location.host}/rpc-ws`,
        }),
      );
      const call = ws.incrementalSum();
      const wsTimes: number[] = [];
      for (let i = 0; i < rounds; i++) {
        const t = performance.now();
        await call.send(1n);
        await call.receive();
        wsTimes.push(performance.now() - t);
      }
      await call.complete();
      await call.receive();
      // Half duplex cannot answer before the request ends: one lockstep
      // step is a whole call (one message, then its reply).
      const h2 = createClient(
        StreamingCalcService,
        sluiceRpc.createConnectTransport({
          baseUrl: `${location.origin}/rpc`,
          allowHalfDuplex: true,
        }),
      );
      const h2Times: number[] = [];
      for (let i = 0; i < rounds; i++) {
        const t = performance.now();
        const c = h2.incrementalSum();
        await c.send(1n);
        await c.complete();
        await c.receive();
        await c.receive();
        h2Times.push(performance.now() - t);
      }
      return { ws: p50(wsTimes), h2: p50(h2Times), rounds };
    });
    console.log(
      `  lockstep p50 over ${figures.rounds} steps: WebSocket bidi ${
        figures.ws.toFixed(2)
      } ms per step, HTTP/2 half-duplex fetch ${
        figures.h2.toFixed(2)
      } ms per step (a call per step)`,
    );
    assert(figures.ws > 0 && figures.h2 > 0, "no figures");
  });
}
