// The HTTP clients in a browser whose fetch cannot stream a request body, as
// Firefox's cannot: it sends a ReadableStream body as the text
// "[object ReadableStream]" (with a Content-Length, and nothing fails), so a
// stream upload was stored as those 23 bytes, openDuplex echoed them, and a
// resumable upload with streamRequests sent them as each PATCH's body. Each
// test makes this runtime look like Firefox (its user agent, and a Request
// and fetch that treat a stream body as Firefox's do) against a real server
// on 127.0.0.1 that records every request, and puts the globals back.

import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  createEchoHandler,
  createResumableUploadHandler,
  fetchDuplex,
  openDuplex,
  resumableUpload,
  upload,
} from "../lib/http/mod.ts";
import { supportsRequestStreams } from "../lib/http/_browser_streaming.ts";
import {
  Code,
  createClient,
  createConnectTransport,
  createFetchClient,
  RpcError,
} from "../lib/rpc/mod.ts";
import { createResumableFileStore } from "../lib/runtime/fs.ts";
import type { Server } from "../lib/runtime/serve.ts";
import { StreamingCalcService } from "../examples/streaming_calc.ts";
import { makeTempDir, removeDir, startServer } from "./_helpers.ts";

const FIREFOX_AGENT =
  "Mozilla/5.0 (X11; Linux x86_64; rv:153.0) Gecko/20100101 Firefox/153.0";
const CHROMIUM_AGENT = "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0.0.0";
/** What Firefox's fetch sends for a ReadableStream body. */
const STRINGIFIED = "[object ReadableStream]";
/** The start of the refusals, in every client's words after `Cannot <what>: `. */
const REFUSAL =
  /this browser's fetch cannot stream a request body \(Firefox's would send the text "\[object ReadableStream\]" in its place, WebKit's refuses it\); /;

const realFetch = globalThis.fetch;
const RealRequest = globalThis.Request;

/** The RequestInit members a browser reads, `duplex` left out. */
const INIT_KEYS = [
  "method",
  "headers",
  "body",
  "signal",
  "credentials",
  "redirect",
  "cache",
  "mode",
  "referrer",
  "referrerPolicy",
  "integrity",
  "keepalive",
] as const;

/**
 * `init` as Firefox takes it: `duplex` never read, a stream body turned
 * into the text "[object ReadableStream]" (the Request then adds
 * `Content-Type: text/plain;charset=UTF-8` unless one is set), and a
 * page's `Content-Length` dropped (a forbidden header: the browser sends
 * the body's own).
 */
function firefoxInit(init: RequestInit | undefined): RequestInit | undefined {
  if (init === undefined) return undefined;
  const taken: Record<string, unknown> = {};
  for (const key of INIT_KEYS) {
    if (key in init) taken[key] = init[key];
  }
  if (taken.body instanceof ReadableStream) taken.body = STRINGIFIED;
  const headers = new Headers(init.headers);
  headers.delete("content-length");
  taken.headers = headers;
  return taken as RequestInit;
}

/** Requests made with Firefox's Request, counted. */
let firefoxRequests = 0;
class FirefoxRequest extends RealRequest {
  constructor(input: RequestInfo | URL, init?: RequestInit) {
    firefoxRequests++;
    super(input, firefoxInit(init));
  }
}
const firefoxFetch =
  ((input: RequestInfo | URL, init?: RequestInit) =>
    realFetch(input, firefoxInit(init))) as typeof fetch;

/**
 * A Request that streams a body, as Chromium's: it reads `duplex` and adds
 * no Content-Type for a stream (this runtime's own does neither).
 */
class ChromiumRequest extends RealRequest {
  constructor(input: RequestInfo | URL, init?: RequestInit) {
    void (init as { duplex?: unknown } | undefined)?.duplex;
    super(input, init);
  }
}

interface Browser {
  agent: string;
  request: typeof Request;
  fetch: typeof fetch;
}

const navigatorOf = () => globalThis.navigator as { userAgent: string };
let ownAgent: PropertyDescriptor | undefined;
/** Makes this runtime look like `browser` until {@linkcode leave}. */
function become(browser: Browser): void {
  Object.defineProperty(navigatorOf(), "userAgent", {
    value: browser.agent,
    configurable: true,
  });
  globalThis.Request = browser.request;
  globalThis.fetch = browser.fetch;
}
function leave(): void {
  if (ownAgent) Object.defineProperty(navigatorOf(), "userAgent", ownAgent);
  else delete (navigatorOf() as { userAgent?: string }).userAgent;
  globalThis.Request = RealRequest;
  globalThis.fetch = realFetch;
}
const FIREFOX: Browser = {
  agent: FIREFOX_AGENT,
  request: FirefoxRequest,
  fetch: firefoxFetch,
};

/** What the server was sent: method, path and body, as text. */
interface Seen {
  method: string;
  path: string;
  contentType: string | null;
  body: Uint8Array;
}
let seen: Seen[] = [];
let server: Server;
let dir: string;
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

before(async () => {
  ownAgent = Object.getOwnPropertyDescriptor(navigatorOf(), "userAgent");
  dir = await makeTempDir("no-request-streams-");
  const echo = createEchoHandler();
  const resumable = createResumableUploadHandler({
    store: createResumableFileStore(dir),
    requestPathPrefix: "/uploads/",
  });
  server = await startServer(async (request) => {
    const { pathname, searchParams } = new URL(request.url);
    if (pathname === "/echo") {
      seen.push({
        method: request.method,
        path: pathname,
        contentType: request.headers.get("content-type"),
        body: new Uint8Array(),
      });
      return await echo(request);
    }
    const body = new Uint8Array(await request.arrayBuffer());
    seen.push({
      method: request.method,
      path: pathname,
      contentType: request.headers.get("content-type"),
      body,
    });
    if (pathname === "/upload") {
      const status = Number(searchParams.get("status") ?? 201);
      return new Response(`stored ${body.byteLength}`, { status });
    }
    if (!pathname.startsWith("/uploads")) {
      return new Response("not found", { status: 404 });
    }
    // The bytes read above, passed on in this runtime's own Request.
    return await resumable(
      new RealRequest(request.url, {
        method: request.method,
        headers: request.headers,
        body: request.method === "GET" || request.method === "HEAD"
          ? undefined
          : body,
      }),
    );
  });
});

after(async () => {
  await server.shutdown();
  await removeDir(dir);
});

beforeEach(() => {
  seen = [];
  become(FIREFOX);
});

afterEach(() => {
  leave();
  // Whatever a test did, no request carried a stream's text.
  assert.deepEqual(
    seen.filter((s) => text(s.body).includes(STRINGIFIED)).map((s) =>
      `${s.method} ${s.path}`
    ),
    [],
  );
});

/** A stream that counts the reads of it. */
function countedStream(): {
  stream: ReadableStream<Uint8Array>;
  pulls(): number;
} {
  let pulls = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulls++;
      controller.enqueue(new TextEncoder().encode("Hello, World!"));
      controller.close();
    },
  }, { highWaterMark: 0 });
  return { stream, pulls: () => pulls };
}

/**
 * Asserts `actual` holds `expected`'s bytes, its length first: Deno's
 * assert took minutes to diff 70,000 bytes against 23.
 */
function assertBytes(actual: Uint8Array, expected: Uint8Array): void {
  assert.equal(actual.byteLength, expected.byteLength);
  assert.ok(actual.every((byte, i) => byte === expected[i]));
}

const bytes = (n: number) =>
  Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff);

describe("supportsRequestStreams in a browser", () => {
  it("supportsRequestStreams says no for Firefox's Request and yes for one that reads duplex, each checked once per Request", () => {
    firefoxRequests = 0;
    assert.equal(supportsRequestStreams(), false);
    assert.equal(supportsRequestStreams(), false);
    assert.equal(firefoxRequests, 1);
    become({ ...FIREFOX, agent: CHROMIUM_AGENT, request: ChromiumRequest });
    assert.equal(supportsRequestStreams(), true);
    become(FIREFOX);
    assert.equal(supportsRequestStreams(), false);
  });
});

describe("the HTTP clients in a browser whose fetch cannot stream a request body (Firefox)", () => {
  it("upload of a ReadableStream rejects with a TypeError naming what to send instead, before any request, its stream unread", async () => {
    const { stream, pulls } = countedStream();
    await assert.rejects(
      upload(new URL("/upload", server.url), stream),
      (error) => {
        assert.ok(error instanceof TypeError);
        assert.match(error.message, /^Cannot upload: /);
        assert.match(error.message, REFUSAL);
        assert.match(
          error.message,
          /; upload a Blob or a Uint8Array, which goes whole, with progress by XMLHttpRequest$/,
        );
        return true;
      },
    );
    assert.equal(pulls(), 0);
    assert.deepEqual(seen, []);
  });

  it("upload of a ReadableStream with onProgress and a fetch of the caller's rejects before any request too", async () => {
    const { stream } = countedStream();
    let progress = 0;
    await assert.rejects(
      upload(new URL("/upload", server.url), stream, {
        onProgress: () => void progress++,
        fetch: globalThis.fetch,
        contentLength: 13,
      }),
      { name: "TypeError", message: REFUSAL },
    );
    assert.equal(progress, 0);
    assert.deepEqual(seen, []);
  });

  it("upload of a Blob with onProgress and fetch (to read the answer as it streams) sends the Blob whole and reports (total, total) once it is answered", async () => {
    const data = bytes(100_000);
    const calls: [number, number | undefined][] = [];
    const response = await upload(
      new URL("/upload", server.url),
      new Blob([data], { type: "application/octet-stream" }),
      {
        onProgress: (sent, total) => void calls.push([sent, total]),
        progressIntervalMs: 0,
        fetch: globalThis.fetch,
      },
    );
    assert.equal(response.status, 201);
    assert.equal(await response.text(), `stored ${data.byteLength}`);
    assert.equal(seen.length, 1);
    assertBytes(seen[0].body, data);
    assert.equal(seen[0].contentType, "application/octet-stream");
    assert.deepEqual(calls, [[data.byteLength, data.byteLength]]);
  });

  it("upload of bytes with onProgress where there is no XMLHttpRequest (a service worker) sends them whole by fetch", async () => {
    const data = bytes(70_000);
    const calls: [number, number | undefined][] = [];
    const response = await upload(new URL("/upload", server.url), data, {
      onProgress: (sent, total) => void calls.push([sent, total]),
    });
    assert.equal(response.status, 201);
    await response.body?.cancel();
    assert.equal(seen.length, 1);
    assertBytes(seen[0].body, data);
    assert.deepEqual(calls, [[data.byteLength, data.byteLength]]);
  });

  it("upload of a Blob sent whole reports (0, total) for an answer other than 2xx: how much went is not known", async () => {
    const data = bytes(5_000);
    const calls: [number, number | undefined][] = [];
    const response = await upload(
      new URL("/upload?status=413", server.url),
      new Blob([data]),
      {
        onProgress: (sent, total) => void calls.push([sent, total]),
        fetch: globalThis.fetch,
      },
    );
    assert.equal(response.status, 413);
    await response.body?.cancel();
    assert.deepEqual(calls, [[0, data.byteLength]]);
  });

  it("upload of a Blob sent whole rejects with what onProgress threw", async () => {
    const thrown = new Error("progress bar gone");
    await assert.rejects(
      upload(new URL("/upload", server.url), new Blob([bytes(1_000)]), {
        onProgress: () => {
          throw thrown;
        },
        fetch: globalThis.fetch,
      }),
      (error) => error === thrown,
    );
    assert.equal(seen.length, 1);
    assertBytes(seen[0].body, bytes(1_000));
  });

  it("openDuplex throws a TypeError at once naming websocketDuplex, before any request", () => {
    assert.throws(() => openDuplex(new URL("/echo", server.url)), (error) => {
      assert.ok(error instanceof TypeError);
      assert.match(error.message, /^Cannot open duplex stream: /);
      assert.match(error.message, REFUSAL);
      assert.match(error.message, /; for full duplex use websocketDuplex$/);
      return true;
    });
    assert.deepEqual(seen, []);
  });

  it("fetchDuplex rejects with a TypeError naming websocketDuplex, before any request, its body unread", async () => {
    const { stream, pulls } = countedStream();
    await assert.rejects(
      fetchDuplex(new URL("/echo", server.url), {
        method: "POST",
        body: stream,
      }),
      (error) => {
        assert.ok(error instanceof TypeError);
        assert.match(error.message, /^Cannot send duplex request: /);
        assert.match(error.message, REFUSAL);
        assert.match(error.message, /; for full duplex use websocketDuplex$/);
        return true;
      },
    );
    assert.equal(pulls(), 0);
    assert.deepEqual(seen, []);
  });

  for (
    const [source, withFetch] of [["Blob", true], [
      "Uint8Array",
      false,
    ]] as const
  ) {
    it(
      `resumableUpload with streamRequests sends a ${source}'s appends as slices, stored whole (${
        withFetch ? "a fetch given" : "over http: too"
      })`,
      async () => {
        const data = bytes(2_500);
        const acknowledged: number[] = [];
        const result = await resumableUpload(
          new URL("/uploads", server.url),
          source === "Blob" ? new Blob([data]) : data,
          {
            streamRequests: true,
            fetch: withFetch ? globalThis.fetch : undefined,
            chunkBytes: 1_000,
            maxRetries: 0,
            onProgress: (done) => void acknowledged.push(done),
          },
        );
        assert.equal(result.bytes, data.byteLength);
        assert.ok(result.response.ok, String(result.response.status));
        await result.response.body?.cancel();
        const patches = seen.filter((s) => s.method === "PATCH");
        assert.deepEqual(patches.map((s) => s.body.byteLength), [
          1_000,
          1_000,
          500,
        ]);
        const sent = new Uint8Array(data.byteLength);
        let at = 0;
        for (const patch of patches) {
          sent.set(patch.body, at);
          at += patch.body.byteLength;
        }
        assertBytes(sent, data);
        assert.deepEqual(acknowledged, [1_000, 2_000, 2_500]);
      },
    );
  }

  it("a client-streaming RPC call over fetch fails at once with Unimplemented, before any request", () => {
    const client = createClient(
      StreamingCalcService,
      createConnectTransport({ baseUrl: server.url.href }),
    );
    assert.throws(
      () => client.sum(),
      (error) =>
        error instanceof RpcError && error.code === Code.Unimplemented &&
        /cannot stream a request body; use createWebSocketTransport/.test(
          error.message,
        ),
    );
    assert.deepEqual(seen, []);
  });

  it("a client-streaming RPC call through createFetchClient as the transport's httpClient fails with Unimplemented, its body unsent", async () => {
    const client = createClient(
      StreamingCalcService,
      createConnectTransport({
        baseUrl: server.url.href,
        httpClient: createFetchClient(),
      }),
    );
    const call = client.sum();
    await call.send(1n).catch(() => {});
    await assert.rejects(
      call.complete().then(() => call.receive()),
      (error) =>
        error instanceof RpcError && error.code === Code.Unimplemented &&
        /cannot stream a request body; use createWebSocketTransport/.test(
          error.message,
        ),
    );
    assert.deepEqual(seen, []);
  });
});

describe("the HTTP clients in a browser whose fetch streams a request body (Chromium's feature check)", () => {
  it("openDuplex is not refused: the exchange echoes what was written", async () => {
    become({
      agent: CHROMIUM_AGENT,
      request: ChromiumRequest,
      fetch: realFetch,
    });
    const { stream, response } = openDuplex(new URL("/echo", server.url));
    await stream.write("Hello, ");
    await stream.write("World!");
    await stream.closeWrite();
    let echoed = "";
    for await (const chunk of stream) echoed += text(chunk);
    assert.equal((await response).status, 200);
    assert.equal(echoed, "Hello, World!");
  });
});
