// The browser suite: headless Chromium (Debian's package) driven by
// playwright-core, against a Deno.serve test server on 127.0.0.1 (port 0)
// that serves a test page, the library bundled for the browser
// (tests/browser/page.ts) and the flows a page uses: Server-Sent Events,
// a WebSocket duplex echo and uploads. The same server also listens over
// TLS (a CA and a leaf certificate made here with openssl), where Chromium
// speaks HTTP/2.
//
//   deno task test:browser            (tests/browser/run.sh finds Chromium)
//   CHROMIUM=/path/to/chromium deno run -A tests/browser/suite.ts
//   deno task test:browser --only '^resumable'   (tests whose names match)
//   SLUICE_BROWSER_NETLOG=/tmp/net.json deno task test:browser
//                       (Chromium's net log: sockets, h2 frames, GOAWAYs)
//
// Prints one line per test and ends with
// `browser (chromium): N passed, M failed`; exits 1 on any failure.

import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { createEchoHandler } from "../../lib/http/echo.ts";
import { createSseHandler } from "../../lib/http/sse_response.ts";
import { parseDigestHeader } from "../../lib/http/digest_header.ts";
import { websocketDuplex } from "../../lib/http/websocket_duplex.ts";
import { upgradeWebSocket } from "../../lib/runtime/websocket.ts";
import { bundle, ROOT } from "../_workerd.ts";
import type { Sluice } from "./page.ts";
import { buildApp, createDemoHandler } from "../../examples/web/server.ts";
import { registerRpcTests, rpcRoute } from "./rpc.ts";
import { formUploadTests } from "./form_upload.ts";
import { httpCorsTests } from "./http_cors.ts";
import { resumableTests } from "./resumable.ts";
import { makeCertificates, type Tls } from "./_test_server.ts";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const TMP = join(ROOT, ".tmp", "browser");
const TEST_TIMEOUT_MS = 60_000;
const MiB = 1024 * 1024;

// ---------------------------------------------------------------- test server

/** Last-Event-ID values the SSE route saw, per `run` query parameter. */
const sseSeen = new Map<string, string[]>();
const sse = createSseHandler((request, { lastEventId }) => {
  const run = new URL(request.url).searchParams.get("run") ?? "";
  const seen = sseSeen.get(run) ?? [];
  sseSeen.set(run, seen);
  seen.push(lastEventId);
  const from = lastEventId === "" ? 1 : Number(lastEventId) + 1;
  if (from > 6) {
    // 204: "do not reconnect" for EventSource and fetchEventStream.
    throw Object.assign(new Error("done"), {
      getResponse: () => new Response(null, { status: 204 }),
    });
  }
  return (async function* () {
    if (from === 1) yield { retry: 50, comment: "fast reconnection" };
    // Three events per connection, then the stream ends and the client
    // reconnects with Last-Event-ID.
    for (let i = from; i < from + 3; i++) {
      yield {
        id: String(i),
        event: i % 2 === 0 ? "even" : "message",
        data: `line one of ${i}\nline two of ${i}`,
      };
    }
  })();
}, { keepAliveMs: 0 });

const page = `<!doctype html>
<meta charset="utf-8">
<title>sluice browser tests</title>
<link rel="icon" href="data:,">
<script type="module" src="/sluice.js"></script>
<p>sluice browser tests</p>
`;

async function receiveUpload(request: Request): Promise<Response> {
  const hash = createHash("sha256");
  let bytes = 0;
  try {
    for await (const chunk of request.body ?? []) {
      hash.update(chunk);
      bytes += chunk.byteLength;
    }
  } catch (error) {
    // The client went away (the abort test): nobody reads this answer.
    return new Response(`Cannot receive upload: ${error}`, { status: 400 });
  }
  const digest = new Uint8Array(hash.digest());
  const header = request.headers.get("content-digest");
  const claimed = header ? parseDigestHeader(header).get("sha-256") : undefined;
  return Response.json({
    bytes,
    sha256: Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""),
    contentLength: request.headers.get("content-length"),
    contentType: request.headers.get("content-type"),
    digestMatches: claimed === undefined
      ? null
      : claimed.length === digest.length &&
        claimed.every((b, i) => b === digest[i]),
  });
}

function webSocketEcho(request: Request): Response {
  const { socket, response } = upgradeWebSocket(request);
  const stream = websocketDuplex(socket);
  (async () => {
    for await (const chunk of stream) await stream.write(chunk);
    await stream.close();
  })().catch((error) => stream.close(error));
  return response;
}

const echoHandler = createEchoHandler();
// Compresses whatever the client accepts: a page's Accept-Encoding is the
// browser's own.
const gzipEchoHandler = createEchoHandler({ compressMinBytes: 0 });

function handler(script: Uint8Array): (request: Request) => Promise<Response> {
  return async (request) => {
    const { pathname } = new URL(request.url);
    switch (pathname) {
      case "/":
        return new Response(page, {
          headers: { "content-type": "text/html; charset=utf-8" },
        });
      case "/sluice.js":
        return new Response(script as Uint8Array<ArrayBuffer>, {
          headers: { "content-type": "text/javascript; charset=utf-8" },
        });
      case "/sse":
        return await sse(request);
      case "/sse-seen": {
        const run = new URL(request.url).searchParams.get("run") ?? "";
        return Response.json(sseSeen.get(run) ?? []);
      }
      case "/ws":
        return webSocketEcho(request);
      case "/echo":
        return await echoHandler(request);
      case "/echo-compressed":
        return await gzipEchoHandler(request);
      case "/upload":
        return await receiveUpload(request);
    }
    const rpc = await rpcRoute(request, pathname);
    if (rpc) return rpc;
    return new Response("Not Found", { status: 404 });
  };
}

// ---------------------------------------------------------------- the tests

type Test = { name: string; fn: () => Promise<void> };
const tests: Test[] = [];
function test(name: string, fn: () => Promise<void>): void {
  tests.push({ name, fn });
}

function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

function assertEqual(actual: unknown, expected: unknown, what: string): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

declare const sluice: Sluice;

let browserContext: BrowserContext;
let httpPage: Page;
let httpsPage: Page;
let httpUrl: URL;
let httpsUrl: URL;
/** The library bundled for the browser (tests/browser/page.ts). */
let sluiceScript: Uint8Array;
let certificates: Tls;

const sseRun = async (p: Page, run: string) =>
  await p.evaluate(async (run) => {
    const messages: { type: string; id: string; data: string }[] = [];
    const source = new EventSource(`/sse?run=${run}`);
    await new Promise<void>((resolve, reject) => {
      const take = (event: MessageEvent) => {
        messages.push({
          type: event.type,
          id: event.lastEventId,
          data: event.data,
        });
        if (messages.length === 6) resolve();
      };
      source.addEventListener("message", take);
      source.addEventListener("even", take as EventListener);
      source.addEventListener("error", () => {
        if (source.readyState === EventSource.CLOSED) {
          reject(new Error(`EventSource closed after ${messages.length}`));
        }
      });
    });
    source.close();
    const seen = await (await fetch(`/sse-seen?run=${run}`)).json();
    return { messages, seen };
  }, run);

const expectedSse = [1, 2, 3, 4, 5, 6].map((i) => ({
  type: i % 2 === 0 ? "even" : "message",
  id: String(i),
  data: `line one of ${i}\nline two of ${i}`,
}));

test("EventSource reads sseResponse's events (types, ids, multi-line data) and resumes with Last-Event-ID after retry", async () => {
  const { messages, seen } = await sseRun(httpPage, "eventsource-http");
  assertEqual(messages, expectedSse, "events");
  assertEqual(seen.slice(0, 2), ["", "3"], "Last-Event-ID per connection");
});

test("fetchEventStream in the page reconnects with Last-Event-ID and stops at 204", async () => {
  const result = await httpPage.evaluate(async () => {
    const messages = [];
    for await (const m of sluice.fetchEventStream("/sse?run=fetch-http")) {
      messages.push({ type: m.event, id: m.id, data: m.data });
    }
    const seen = await (await fetch("/sse-seen?run=fetch-http")).json();
    return { messages, seen };
  });
  assertEqual(result.messages, expectedSse, "events");
  assertEqual(result.seen, ["", "3", "6"], "Last-Event-ID per connection");
});

test("websocketDuplex in the page echoes lines in lockstep through upgradeWebSocket's server", async () => {
  const replies = await httpPage.evaluate(async () => {
    const stream = sluice.websocketDuplex(
      new WebSocket(`ws://${location.host}/ws`),
    );
    const replies: (string | null)[] = [];
    for (const line of ["hello", "from", "the browser"]) {
      await stream.write(line + "\n");
      replies.push(await stream.readLine());
    }
    await stream.closeWrite();
    replies.push(await stream.readLine());
    await stream.close();
    return replies;
  });
  assertEqual(replies, ["hello", "from", "the browser", null], "replies");
});

test("websocketDuplex in the page round-trips 4 MiB of binary intact", async () => {
  const result = await httpPage.evaluate(async (size) => {
    const sent = new Uint8Array(size);
    for (let i = 0; i < size; i += 65536) {
      crypto.getRandomValues(sent.subarray(i, Math.min(size, i + 65536)));
    }
    const stream = sluice.websocketDuplex(
      new WebSocket(`ws://${location.host}/ws`),
    );
    const reading = (async () => {
      const received = new Uint8Array(size);
      let at = 0;
      for await (const chunk of stream) {
        received.set(chunk, at);
        at += chunk.byteLength;
      }
      return { at, received };
    })();
    for (let i = 0; i < size; i += 256 * 1024) {
      await stream.write(sent.subarray(i, i + 256 * 1024));
    }
    await stream.closeWrite();
    const { at, received } = await reading;
    const hex = async (b: Uint8Array<ArrayBuffer>) =>
      Array.from(
        new Uint8Array(await crypto.subtle.digest("SHA-256", b)),
        (x) => x.toString(16).padStart(2, "0"),
      ).join("");
    return {
      bytes: at,
      same: await hex(sent) === await hex(received),
    };
  }, 4 * MiB);
  assertEqual(result, { bytes: 4 * MiB, same: true }, "echo");
});

async function uploadFromPage(
  p: Page,
  options: { size: number; progress: boolean; stream?: boolean },
) {
  return await p.evaluate(async ({ size, progress, stream }) => {
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i += 65536) {
      crypto.getRandomValues(bytes.subarray(i, Math.min(size, i + 65536)));
    }
    const file = new File([bytes], "pick.bin", { type: "application/x-test" });
    const sha256 = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    const hex = Array.from(sha256, (b) => b.toString(16).padStart(2, "0"))
      .join("");
    const calls: [number, number | undefined][] = [];
    try {
      const response = await sluice.upload(
        "/upload",
        stream ? file.stream() : file,
        {
          sha256,
          contentLength: stream ? size : undefined,
          onProgress: progress
            ? (sent, total) => calls.push([sent, total])
            : undefined,
        },
      );
      return {
        ok: true,
        status: response.status,
        answer: await response.json(),
        hex,
        calls,
      };
    } catch (error) {
      return { ok: false, error: String(error), hex, calls };
    }
  }, options);
}

test("upload() with an onProgress that throws rejects with what it threw and stops sending (XMLHttpRequest)", async () => {
  // Before, the throw was only reported to the page and the upload went on.
  const result = await httpPage.evaluate(async () => {
    const file = new File([new Uint8Array(8 * 1024 * 1024)], "x.bin");
    const thrown = new Error("progress handler broke");
    let calls = 0;
    try {
      const response = await sluice.upload("/upload", file, {
        progressIntervalMs: 0,
        onProgress: () => {
          calls++;
          throw thrown;
        },
      });
      return `answered ${response.status}`;
    } catch (error) {
      return error === thrown
        ? `rejected with it after ${calls} call`
        : String(error);
    }
  });
  assertEqual(result, "rejected with it after 1 call", "the upload");
});

test("upload() with onProgress (XMLHttpRequest) checks its options as the fetch path does", async () => {
  // Before, a bad progressIntervalMs was taken, and an onProgress that is
  // no function failed the upload with a bare TypeError once it had begun.
  const refusals = await httpPage.evaluate(async () => {
    const file = new File([new Uint8Array(1024)], "x.bin");
    const refusals: string[] = [];
    for (
      const options of [
        { onProgress: () => {}, progressIntervalMs: -1 },
        { onProgress: "nope" as unknown as () => void },
      ]
    ) {
      try {
        await sluice.upload("/upload", file, options);
        refusals.push("sent");
      } catch (error) {
        refusals.push(String(error));
      }
    }
    return refusals;
  });
  assertEqual(refusals, [
    "RangeError: Cannot report progress: progressIntervalMs must be a non-negative number of milliseconds, got -1",
    "TypeError: Cannot report progress: onProgress must be a function, got string",
  ], "bad options");
});

test("upload() of a File without onProgress sends it with Content-Length and a matching Content-Digest (HTTP/1.1)", async () => {
  const size = 3 * MiB + 17;
  const r = await uploadFromPage(httpPage, { size, progress: false });
  assert(r.ok, `upload failed: ${r.error}`);
  assertEqual(r.status, 200, "status");
  assertEqual(r.answer.bytes, size, "bytes received");
  assertEqual(r.answer.sha256, r.hex, "server's SHA-256");
  assertEqual(r.answer.contentLength, String(size), "Content-Length");
  assertEqual(r.answer.contentType, "application/x-test", "Content-Type");
  assertEqual(r.answer.digestMatches, true, "Content-Digest");
});

test("upload() of a File with onProgress reports progress over HTTP/1.1 (XMLHttpRequest) and keeps Content-Length and Content-Digest", async () => {
  const size = 24 * MiB;
  const r = await uploadFromPage(httpPage, { size, progress: true });
  assert(r.ok, `upload failed: ${r.error}`);
  assertEqual(r.answer.bytes, size, "bytes received");
  assertEqual(r.answer.sha256, r.hex, "server's SHA-256");
  assertEqual(r.answer.contentLength, String(size), "Content-Length");
  assertEqual(r.answer.digestMatches, true, "Content-Digest");
  assert(r.calls.length >= 1, "no progress reported");
  for (let i = 1; i < r.calls.length; i++) {
    assert(r.calls[i][0] >= r.calls[i - 1][0], "progress went backwards");
  }
  assertEqual(r.calls.at(-1), [size, size], "last progress call");
});

test("upload rate: upload() with onProgress against a bare XMLHttpRequest of the same 100 MiB File (HTTP/1.1, interleaved, printed)", async () => {
  const result = await httpPage.evaluate(async () => {
    const size = 100 * 1024 * 1024;
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i += 65536) {
      crypto.getRandomValues(bytes.subarray(i, Math.min(size, i + 65536)));
    }
    const file = new File([bytes], "rate.bin", { type: "application/x-test" });
    const ours = async () => {
      let last = 0;
      const started = performance.now();
      const response = await sluice.upload("/upload", file, {
        onProgress: (sent) => void (last = sent),
      });
      const answer = await response.json();
      return { ms: performance.now() - started, bytes: answer.bytes, last };
    };
    const bare = () =>
      new Promise<{ ms: number; bytes: number; last: number }>(
        (resolve, reject) => {
          let last = 0;
          const started = performance.now();
          // The page's XMLHttpRequest (this file is type-checked without
          // the DOM library).
          const xhr = new (globalThis as unknown as {
            XMLHttpRequest: new () => {
              open(method: string, url: string): void;
              setRequestHeader(name: string, value: string): void;
              upload: { onprogress: (event: { loaded: number }) => void };
              onload: () => void;
              onerror: () => void;
              responseText: string;
              send(body: Blob): void;
            };
          }).XMLHttpRequest();
          xhr.open("POST", "/upload");
          xhr.setRequestHeader("content-type", file.type);
          xhr.upload.onprogress = (event) => void (last = event.loaded);
          xhr.onload = () =>
            resolve({
              ms: performance.now() - started,
              bytes: JSON.parse(xhr.responseText).bytes,
              last,
            });
          xhr.onerror = () => reject(new Error("XMLHttpRequest failed"));
          xhr.send(file);
        },
      );
    const runs: { ours: number[]; bare: number[]; ok: boolean } = {
      ours: [],
      bare: [],
      ok: true,
    };
    for (let i = 0; i < 3; i++) {
      const a = await ours();
      const b = await bare();
      runs.ours.push(a.ms);
      runs.bare.push(b.ms);
      runs.ok &&= a.bytes === size && b.bytes === size && a.last === size &&
        b.last === size;
    }
    return { size, ...runs };
  });
  assert(result.ok, "every upload stored whole, with progress up to its size");
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[1];
  const mbps = (ms: number) => result.size / 1e6 / (ms / 1000);
  const ours = mbps(median(result.ours));
  const bare = mbps(median(result.bare));
  const line =
    `upload rate in Chromium over HTTP/1.1, 100 MiB, median of 3 interleaved: ` +
    `upload() with onProgress ${ours.toFixed(0)} MB/s, bare XMLHttpRequest ` +
    `${bare.toFixed(0)} MB/s, ratio ${
      (ours / bare).toFixed(2)
    } (target >= 0.9)`;
  console.log(`  ${line}`);
  await mkdir(join(ROOT, ".tmp", "runtimes"), { recursive: true });
  await writeFile(
    join(ROOT, ".tmp", "runtimes", "chromium-upload-rate.json"),
    JSON.stringify({ ...result, oursMBps: ours, bareMBps: bare }, null, 2),
  );
});

test("upload() with onProgress stops with the signal's reason when aborted mid-way", async () => {
  const result = await httpPage.evaluate(async (size) => {
    const controller = new AbortController();
    const file = new Blob([new Uint8Array(size)]);
    let calls = 0;
    try {
      await sluice.upload("/upload", file, {
        signal: controller.signal,
        progressIntervalMs: 0,
        onProgress: () => {
          if (++calls === 1) controller.abort(new Error("user cancelled"));
        },
      });
      return "resolved";
    } catch (error) {
      return String(error);
    }
  }, 64 * MiB);
  assertEqual(result, "Error: user cancelled", "rejection");
});

test("known limit: a ReadableStream request body fails over HTTP/1.1 in Chromium (needs HTTP/2), and upload() with onProgress says why", async () => {
  const r = await uploadFromPage(httpPage, {
    size: 64 * 1024,
    progress: true,
    stream: true,
  });
  assert(!r.ok, "a streamed body over HTTP/1.1 unexpectedly worked");
  assert(
    /^TypeError: Cannot upload: Failed to fetch \(a browser streams a request body only over HTTP\/2/
      .test(r.error ?? ""),
    `unexpected error ${r.error}`,
  );
});

test("HTTPS: the page is served over HTTP/2", async () => {
  const protocol = await httpsPage.evaluate(() =>
    (performance.getEntriesByType("navigation")[0] as unknown as {
      nextHopProtocol: string;
    }).nextHopProtocol
  );
  assertEqual(protocol, "h2", "nextHopProtocol");
});

test("HTTPS/h2: upload() streams a ReadableStream body with progress", async () => {
  const size = 8 * MiB;
  const r = await uploadFromPage(httpsPage, {
    size,
    progress: true,
    stream: true,
  });
  assert(r.ok, `upload failed: ${r.error}`);
  assertEqual(r.answer.bytes, size, "bytes received");
  assertEqual(r.answer.sha256, r.hex, "server's SHA-256");
  assertEqual(r.answer.digestMatches, true, "Content-Digest");
  assertEqual(r.calls.at(-1), [size, size], "last progress call");
});

test("HTTPS/h2: upload() of a File with progress", async () => {
  const size = 8 * MiB;
  const r = await uploadFromPage(httpsPage, { size, progress: true });
  assert(r.ok, `upload failed: ${r.error}`);
  assertEqual(r.answer.sha256, r.hex, "server's SHA-256");
  assertEqual(r.answer.contentLength, String(size), "Content-Length");
  assertEqual(r.calls.at(-1), [size, size], "last progress call");
});

test("HTTPS/h2: upload() of a File without onProgress", async () => {
  const size = 2 * MiB + 5;
  const r = await uploadFromPage(httpsPage, { size, progress: false });
  assert(r.ok, `upload failed: ${r.error}`);
  assertEqual(r.answer.sha256, r.hex, "server's SHA-256");
  assertEqual(r.answer.contentLength, String(size), "Content-Length");
  assertEqual(r.answer.digestMatches, true, "Content-Digest");
});

test("HTTPS/h2: openDuplex streams its request and reads the echo once the request has ended (fetch is half duplex in a page)", async () => {
  const result = await httpsPage.evaluate(async () => {
    const { stream, response } = sluice.openDuplex("/echo");
    await stream.write("Hello, ");
    await stream.write("World!");
    await stream.closeWrite();
    let text = "";
    const decoder = new TextDecoder();
    for await (const chunk of stream) text += decoder.decode(chunk);
    return { text, status: (await response).status };
  });
  assertEqual(result, { text: "Hello, World!", status: 200 }, "the echo");
});

test("HTTPS/h2: openDuplex reads a response the browser decoded, whatever acceptCompression says (a page cannot set Accept-Encoding)", async () => {
  // Before, the browser's own Accept-Encoding let the server gzip, the
  // browser decoded the body, and openDuplex refused it for its header:
  // "Content-Encoding "gzip" was not accepted".
  const results = await httpsPage.evaluate(async () => {
    const out = [];
    const lists: ("gzip" | "deflate")[][] = [[], ["deflate"], ["gzip"]];
    for (const acceptCompression of lists) {
      const { stream, response } = sluice.openDuplex("/echo-compressed", {
        acceptCompression,
      });
      await stream.write("squeezed ".repeat(100));
      await stream.closeWrite();
      let text = "";
      const decoder = new TextDecoder();
      for await (const chunk of stream) text += decoder.decode(chunk);
      out.push({
        encoding: (await response).headers.get("content-encoding"),
        same: text === "squeezed ".repeat(100),
      });
    }
    return out;
  });
  for (const result of results) {
    assert(result.encoding !== null, "the server compressed");
    assertEqual(result.same, true, `the text (${result.encoding})`);
  }
});

test("HTTP/1.1: upload() of a ReadableStream fails saying a browser streams a request body only over HTTP/2, pointing to a Blob", async () => {
  const message = await httpPage.evaluate(async () => {
    const body = new Blob([new Uint8Array(1024)]).stream();
    return await sluice.upload("/upload", body).then(
      (response) => `answered ${response.status}`,
      (error) => String(error),
    );
  });
  assertEqual(
    message,
    "TypeError: Cannot upload: Failed to fetch (a browser streams a request body only over HTTP/2, an https: URL; a Blob or a Uint8Array goes whole, with progress by XMLHttpRequest)",
    "the error",
  );
});

test("HTTP/1.1: openDuplex fails saying a browser streams a request body only over HTTP/2, and names the way to full duplex", async () => {
  const message = await httpPage.evaluate(async () => {
    const { stream, response } = sluice.openDuplex("/echo");
    response.catch(() => {});
    try {
      await stream.write("Hello");
      await stream.closeWrite();
      for await (const _ of stream);
      return "no error";
    } catch (error) {
      return String(error);
    }
  });
  assertEqual(
    message,
    "TypeError: Cannot open duplex stream: Failed to fetch (a browser streams a request body only over HTTP/2, an https: URL, and half duplex even there; for full duplex use websocketDuplex)",
    "the error",
  );
});

test("HTTPS/h2: fetchEventStream in the page reconnects with Last-Event-ID", async () => {
  const result = await httpsPage.evaluate(async () => {
    const messages = [];
    for await (const m of sluice.fetchEventStream("/sse?run=fetch-h2")) {
      messages.push({ type: m.event, id: m.id, data: m.data });
    }
    const seen = await (await fetch("/sse-seen?run=fetch-h2")).json();
    return { messages, seen };
  });
  assertEqual(result.messages, expectedSse, "events");
  assertEqual(result.seen, ["", "3", "6"], "Last-Event-ID per connection");
});

test("HTTPS/h2: EventSource reads the event stream and resumes", async () => {
  const { messages, seen } = await sseRun(httpsPage, "eventsource-h2");
  assertEqual(messages, expectedSse, "events");
  assertEqual(seen.slice(0, 2), ["", "3"], "Last-Event-ID per connection");
});

test("HTTPS: websocketDuplex echoes over wss://", async () => {
  const replies = await httpsPage.evaluate(async () => {
    const stream = sluice.websocketDuplex(
      new WebSocket(`wss://${location.host}/ws`),
    );
    await stream.write("secure\n");
    const reply = await stream.readLine();
    await stream.close();
    return reply;
  });
  assertEqual(replies, "secure", "reply");
});

test("examples/web: the demo page uploads a file with matching SHA-256s, shows the feed and echoes the chat (screenshot in .tmp/browser/demo.png)", async () => {
  const handler = await createDemoHandler({
    appScript: await buildApp(),
    tickMs: 200,
  });
  const { promise: listening, resolve } = Promise.withResolvers<number>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port }) => resolve(port),
  }, handler);
  const p = await browserContext.newPage();
  try {
    await p.setViewportSize({ width: 1180, height: 720 });
    await p.goto(`http://127.0.0.1:${await listening}/`);
    const bytes = new Uint8Array(5 * MiB);
    for (let i = 0; i < bytes.length; i += 65536) {
      crypto.getRandomValues(bytes.subarray(i, i + 65536));
    }
    const expected = createHash("sha256").update(bytes).digest("hex");
    await p.setInputFiles("#file", {
      name: "quarterly-report.pdf",
      mimeType: "application/pdf",
      buffer: Buffer.from(bytes),
    });
    await p.waitForFunction(
      'document.getElementById("verdict").textContent !== ""',
    );
    const shown = {
      verdict: await p.textContent("#verdict"),
      local: await p.textContent("#local-sha"),
      server: await p.textContent("#server-sha"),
      bar: await p.getAttribute("#bar", "style"),
    };
    assertEqual(shown, {
      verdict: "✓ match",
      local: expected,
      server: expected,
      bar: "width: 100%;",
    }, "upload panel");
    await p.fill("#chat-input", "Hello from Chromium");
    await p.press("#chat-input", "Enter");
    await p.waitForSelector(".bubble.server");
    assertEqual(
      await p.textContent(".bubble.server"),
      "echo: Hello from Chromium",
      "chat reply",
    );
    await p.waitForFunction(
      'document.querySelectorAll("#feed li").length >= 3',
    );
    await p.evaluate("window.scrollTo(0, 0)");
    await p.screenshot({ path: join(TMP, "demo.png"), fullPage: true });
  } finally {
    await p.close();
    await server.shutdown();
  }
});

registerRpcTests({
  test,
  assert,
  assertEqual,
  pages: () => ({ http: httpPage, https: httpsPage }),
  newPage: () => browserContext.newPage(),
});

formUploadTests({
  test,
  context: () => browserContext,
  assertEqual,
  tmp: TMP,
});

resumableTests({
  test,
  context: () => browserContext,
  assert,
  assertEqual,
  script: () => sluiceScript,
  tls: () => certificates,
  tmp: TMP,
});

httpCorsTests({
  test,
  context: () => browserContext,
  assert,
  assertEqual,
  script: () => sluiceScript,
  tmp: TMP,
});

// ---------------------------------------------------------------- the run

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`timed out after ${ms} ms`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function openPage(context: BrowserContext, url: URL): Promise<Page> {
  const p = await context.newPage();
  p.on("console", (message) => {
    if (message.type() === "error") {
      console.log(`  [page console] ${message.text()}`);
    }
  });
  await p.goto(url.href);
  await p.waitForFunction(() => "sluice" in globalThis);
  return p;
}

async function main(): Promise<number> {
  await mkdir(TMP, { recursive: true });
  const work = await mkdtemp(join(TMP, "run-"));
  const servers: Deno.HttpServer[] = [];
  let context: BrowserContext | undefined;
  let passed = 0;
  let failed = 0;
  // One entry per test, for the runtime matrix's Chromium column.
  const results: { flow: string; name: string; ok: boolean; error?: string }[] =
    [];
  let version = "";
  try {
    const tls = certificates = await makeCertificates(join(work, "certs"));
    const script = join(work, "sluice.js");
    await bundle(join(ROOT, "tests", "browser", "page.ts"), script, {
      platform: "browser",
    });
    sluiceScript = await readFile(script);
    const fetchHandler = handler(sluiceScript);
    const listen = (
      options: Partial<Deno.TcpListenOptions & Deno.TlsCertifiedKeyPem>,
    ) => {
      const { promise, resolve } = Promise.withResolvers<number>();
      servers.push(Deno.serve({
        hostname: "127.0.0.1",
        port: 0,
        onListen: ({ port }) => resolve(port),
        onError: (error) => {
          console.log(`  [server] ${error}`);
          return new Response("Internal Server Error", { status: 500 });
        },
        ...options,
      } as Deno.ServeTcpOptions, fetchHandler));
      return promise;
    };
    httpUrl = new URL(`http://127.0.0.1:${await listen({})}/`);
    httpsUrl = new URL(
      `https://127.0.0.1:${await listen({ cert: tls.cert, key: tls.key })}/`,
    );

    context = await chromium.launchPersistentContext(
      join(work, "profile"),
      {
        executablePath: CHROMIUM,
        headless: true,
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--no-first-run",
          `--ignore-certificate-errors-spki-list=${tls.spki}`,
          ...(Deno.env.get("SLUICE_BROWSER_NETLOG")
            ? [`--log-net-log=${Deno.env.get("SLUICE_BROWSER_NETLOG")}`]
            : []),
        ],
      },
    );
    browserContext = context;
    version = context.browser()?.version() ?? "";
    console.log(
      `chromium ${context.browser()?.version() ?? ""} (${CHROMIUM}), ` +
        `pages ${httpUrl.href} and ${httpsUrl.href}`,
    );
    httpPage = await openPage(context, httpUrl);
    httpsPage = await openPage(context, httpsUrl);

    const only = onlyPattern();
    for (const { name, fn } of tests) {
      if (only && !only.test(name)) continue;
      const started = performance.now();
      try {
        await withTimeout(fn(), TEST_TIMEOUT_MS);
        passed++;
        results.push({ flow: flowOf(name), name, ok: true });
        console.log(
          `ok - ${name} (${Math.round(performance.now() - started)} ms)`,
        );
      } catch (error) {
        failed++;
        const message = String((error as Error)?.message ?? error);
        results.push({ flow: flowOf(name), name, ok: false, error: message });
        console.log(`FAIL - ${name}\n  ${message}`);
      }
    }
  } catch (error) {
    failed++;
    console.log(
      `FAIL - the suite could not run: ${(error as Error)?.stack ?? error}`,
    );
  } finally {
    await context?.close().catch((error) =>
      console.log(`  [chromium] close: ${error}`)
    );
    for (const server of servers) await server.shutdown();
    await rm(work, { recursive: true, force: true });
  }
  const runs = join(ROOT, ".tmp", "runtimes");
  await mkdir(runs, { recursive: true });
  await writeFile(
    join(runs, "chromium.json"),
    JSON.stringify({ chromium: version, results }, null, 2) + "\n",
  );
  console.log(`browser (chromium): ${passed} passed, ${failed} failed`);
  return failed === 0 && passed > 0 ? 0 : 1;
}

/**
 * `--only <regex>`: run only the tests whose names match (for reproducing
 * one test's failure without the whole suite's minute).
 */
function onlyPattern(): RegExp | undefined {
  const at = Deno.args.indexOf("--only");
  return at === -1 ? undefined : new RegExp(Deno.args[at + 1] ?? "");
}

/** The runtime matrix's row a browser test belongs to, from its name. */
function flowOf(name: string): string {
  if (/rpc|connect-web|grpc-web|incrementalSum/i.test(name)) return "rpc-web";
  if (/upload|formdata|multipart/i.test(name)) return "upload";
  if (/websocket|wss?:|echo chat/i.test(name)) return "websocket";
  if (/duplex|echo/i.test(name)) return "duplex-http";
  return "sse";
}

process.exit(await main());
