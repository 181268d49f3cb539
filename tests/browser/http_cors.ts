// Browser tests of the HTTP flows from another origin: a page of
// http://127.0.0.1:<port> uploads (sluice's upload over fetch and over
// XMLHttpRequest), makes resumable uploads (tus-js-client, and sluice's
// resumableUpload in both protocols), terminates one and reads a feed
// (fetchEventStream, with no preflight when it sends no header of its own,
// as EventSource), all at http://localhost:<port>, the same Deno.serve
// test server by another name, through a CORS layer built from the HTTP
// flows' `cors` lists (docs/browser.md shows one like it). Without the
// exposed headers, a resumable upload fails and says why.
// Registered by tests/browser/suite.ts.

import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import type * as Tus from "tus-js-client";
import { cors } from "../../lib/http/cors.ts";
import { createResumableUploadHandler } from "../../lib/http/resumable/resumable_upload_handler.ts";
import { createSseHandler } from "../../lib/http/sse_response.ts";
import { createUploadHandler } from "../../lib/http/upload_handler.ts";
import {
  createHasher,
  createResumableFileStore,
  type ResumableFileStore,
} from "../../lib/runtime/fs.ts";
import { ROOT } from "../_workerd.ts";
import type { Sluice } from "./page.ts";
import { serveForTest } from "./_test_server.ts";
import { corsLayer } from "./_cors_layer.ts";
import { idOf, PAGE_HELPERS, storedSha256 } from "./resumable.ts";

/** What the suite lends these tests. */
export interface HttpCorsSuite {
  test(name: string, fn: () => Promise<void>): void;
  context(): BrowserContext;
  assert(condition: unknown, message: string): void;
  assertEqual(actual: unknown, expected: unknown, what: string): void;
  /** The library bundled for the browser (tests/browser/page.ts). */
  script(): Uint8Array;
  /** A directory for the stores, under the suite's temporary one. */
  tmp: string;
}

const KiB = 1024;
/** The uploads' size: three appends of CHUNK and a few bytes. */
const CHUNK = 64 * KiB;
const SIZE = 3 * CHUNK + 17;

const corsPage = `<!doctype html>
<meta charset="utf-8">
<title>sluice from another origin</title>
<link rel="icon" href="data:,">
<script src="/tus.min.js"></script>
<script type="module" src="/sluice.js"></script>
<script>
${PAGE_HELPERS}</script>
<p>sluice from another origin</p>
`;

declare const sluice: Sluice;
declare const tus: typeof Tus;
declare const testFile: (size: number, seed: number) => File;
declare const sha256Hex: (blob: Blob) => Promise<string>;

interface CorsServer {
  store: ResumableFileStore;
  /** SHA-256 (hex) of each upload `createUploadHandler` stored. */
  uploads: string[];
  /** What the CORS layer exposes: the `cors` list, or nothing. */
  expose: boolean;
  /** Requests by method, as the handlers saw them (preflights aside). */
  methods: string[];
  /** The paths of the preflights answered. */
  preflights: string[];
  /** The Cache-Control of each request for the feed. */
  feedCacheControl: (string | null)[];
  /** The requests for the feed without a CORS layer: method, Last-Event-ID. */
  bareFeed: string[];
}

/** Runs `fn` with a server (its own store) and a page of 127.0.0.1 on it. */
async function withServer(
  suite: HttpCorsSuite,
  fn: (server: CorsServer, page: Page, other: string) => Promise<void>,
): Promise<void> {
  const dir = await mkdtemp(join(suite.tmp, "cors-"));
  const tusScript = await readFile(
    join(ROOT, "node_modules", "tus-js-client", "dist", "tus.min.js"),
  );
  const state: CorsServer = {
    store: createResumableFileStore(dir),
    uploads: [],
    expose: true,
    methods: [],
    preflights: [],
    feedCacheControl: [],
    bareFeed: [],
  };
  const resumable = createResumableUploadHandler({
    store: state.store,
    hasher: createHasher,
    requestPathPrefix: "/uploads/",
    maxBytes: 2 * SIZE,
  });
  const uploads = createUploadHandler({
    sink: () => {
      const hash = createHash("sha256");
      return new WritableStream<Uint8Array>({
        write: (chunk) => void hash.update(chunk),
        close: () => void state.uploads.push(hash.digest("hex")),
      });
    },
    hasher: createHasher,
  });
  const events = createSseHandler(async function* (_request, { lastEventId }) {
    const from = Number(lastEventId || 0);
    for (let id = from + 1; id <= from + 3; id++) {
      yield { id: String(id), data: `event ${id}` };
    }
  });
  const script = (body: Uint8Array) =>
    new Response(body as Uint8Array<ArrayBuffer>, {
      headers: { "content-type": "text/javascript; charset=utf-8" },
    });
  // The CORS layer built from `cors`, with an `x-tenant` header of the
  // page's own; it exposes nothing while `state.expose` is false.
  const withCors = corsLayer(cors, {
    allowHeaders: ["x-tenant"],
    expose: () => state.expose,
  });
  const route = async (request: Request): Promise<Response> => {
    state.methods.push(request.method);
    const { pathname } = new URL(request.url);
    if (pathname === "/upload") return await uploads(request);
    if (pathname === "/events") {
      state.feedCacheControl.push(request.headers.get("cache-control"));
      return await events(request);
    }
    return await resumable(request);
  };
  const server = await serveForTest(async (request) => {
    const { hostname, pathname } = new URL(request.url);
    if (hostname === "localhost") {
      if (request.headers.has("access-control-request-method")) {
        state.preflights.push(pathname);
      }
      if (pathname === "/credentialed-upload") {
        // Allows credentials only when asked to (?credentials): a page
        // that sends them is refused by its browser otherwise.
        const headers = new Headers({
          "access-control-allow-origin": request.headers.get("origin") ?? "",
          "access-control-allow-headers": "content-type",
          "access-control-allow-methods": "POST",
        });
        if (new URL(request.url).searchParams.has("credentials")) {
          headers.set("access-control-allow-credentials", "true");
        }
        if (request.method === "OPTIONS") {
          return new Response(null, { status: 204, headers });
        }
        await request.arrayBuffer();
        return new Response("stored", { headers });
      }
      if (pathname === "/bare-events") {
        // The feed with Access-Control-Allow-Origin alone, as for an
        // EventSource: no preflight allows Last-Event-ID (createSseHandler
        // answers it 204 with no Access-Control-Allow-Headers).
        state.bareFeed.push(
          `${request.method} ${request.headers.get("last-event-id") ?? "-"}`,
        );
        const response = await events(request);
        const origin = request.headers.get("origin");
        if (origin !== null) {
          response.headers.set("access-control-allow-origin", origin);
        }
        return response;
      }
      return await withCors(request, route);
    }
    if (pathname === "/") {
      return new Response(corsPage, {
        headers: { "content-type": "text/html; charset=utf-8" },
      });
    }
    if (pathname === "/sluice.js") return script(suite.script());
    if (pathname === "/tus.min.js") return script(tusScript);
    return new Response("Not found", { status: 404 });
  });
  const page = await suite.context().newPage();
  let failed = true;
  try {
    await page.goto(`http://127.0.0.1:${server.port}/`);
    await page.waitForFunction(() => "sluice" in globalThis);
    await fn(state, page, `http://localhost:${server.port}`);
    failed = false;
  } finally {
    await page.close();
    await server.close().catch((error) => {
      if (!failed) throw error;
    });
    await rm(dir, { recursive: true, force: true });
  }
}

/** Registers the tests with the suite. */
export function httpCorsTests(suite: HttpCorsSuite): void {
  const { test, assert, assertEqual } = suite;

  test("cross-origin: upload() over fetch and over XMLHttpRequest (onProgress) from another origin through a CORS layer built from the HTTP flows' `cors`, Repr-Digest read back", async () => {
    await withServer(suite, async (server, page, other) => {
      const results = await page.evaluate(async ({ other, size }) => {
        const file = testFile(size, 3);
        const sha256 = await sha256Hex(file);
        const out = [];
        for (const progress of [false, true]) {
          const seen: number[] = [];
          const response = await sluice.upload(`${other}/upload`, file, {
            headers: { "x-tenant": "a" },
            onProgress: progress ? (sent) => void seen.push(sent) : undefined,
          });
          out.push({
            status: response.status,
            body: await response.json(),
            reprDigest: response.headers.get("repr-digest"),
            lastProgress: seen.at(-1) ?? null,
          });
        }
        return { sha256, out };
      }, { other, size: SIZE });
      const base64 = btoa(
        String.fromCharCode(
          ...results.sha256.match(/../g)!.map((byte) => parseInt(byte, 16)),
        ),
      );
      for (const [i, result] of results.out.entries()) {
        assertEqual(result.status, 201, `upload ${i}: status`);
        assertEqual(
          result.body,
          { bytes: SIZE, sha256: base64 },
          `upload ${i}: body`,
        );
        assertEqual(
          result.reprDigest,
          `sha-256=:${base64}:`,
          `upload ${i}: Repr-Digest (exposed)`,
        );
      }
      assertEqual(results.out[1].lastProgress, SIZE, "last progress (XHR)");
      assertEqual(
        server.uploads,
        [results.sha256, results.sha256],
        "SHA-256 of what the sinks received",
      );
    });
  });

  test("cross-origin: tus-js-client uploads (tus and ietf-draft-05), resumes from HEAD and terminates from another origin, tus's OPTIONS answered through the CORS layer, and resumableUpload completes in both protocols", async () => {
    await withServer(suite, async (server, page, other) => {
      const tusRun = await page.evaluate(async ({ other, size, chunk }) => {
        const file = testFile(size, 5);
        const upload = await new Promise<Tus.Upload>((resolve, reject) => {
          const upload: Tus.Upload = new tus.Upload(file, {
            endpoint: `${other}/uploads/`,
            chunkSize: chunk,
            metadata: { filename: "cors.bin" },
            headers: { "x-tenant": "a" },
            storeFingerprintForResuming: false,
            onError: reject,
            onSuccess: () => resolve(upload),
          });
          upload.start();
        });
        // A second upload of the same file resumed from its URL: HEAD.
        const resumed = await new Promise<number[]>((resolve, reject) => {
          const progress: number[] = [];
          new tus.Upload(file, {
            uploadUrl: upload.url,
            chunkSize: chunk,
            storeFingerprintForResuming: false,
            onChunkComplete: (_, accepted) => void progress.push(accepted),
            onError: reject,
            onSuccess: () => resolve(progress),
          }).start();
        });
        // Its IETF draft mode, with a request id.
        const draft = testFile(size, 6);
        const draftUrl = await new Promise<string>((resolve, reject) => {
          // `protocol` is in tus-js-client 4.3.1's code, not in its typings.
          const upload: Tus.Upload = new tus.Upload(draft, {
            endpoint: `${other}/uploads/`,
            ...{ protocol: "ietf-draft-05" },
            chunkSize: chunk,
            addRequestId: true,
            storeFingerprintForResuming: false,
            onError: reject,
            onSuccess: () => resolve(upload.url!),
          });
          upload.start();
        });
        return {
          url: upload.url!,
          resumed,
          sha256: await sha256Hex(file),
          draftUrl,
          draftSha256: await sha256Hex(draft),
        };
      }, { other, size: SIZE, chunk: CHUNK });
      assert(
        tusRun.url.startsWith(`${other}/uploads/`),
        `the upload's URL: ${tusRun.url}`,
      );
      assertEqual(tusRun.resumed, [], "appends of the resumed, complete one");
      assertEqual(
        await storedSha256(server, tusRun.url),
        tusRun.sha256,
        "SHA-256 of the stored file (tus-js-client)",
      );
      assertEqual(
        await storedSha256(server, tusRun.draftUrl),
        tusRun.draftSha256,
        "SHA-256 of the stored file (tus-js-client, ietf-draft-05)",
      );

      const ours = await page.evaluate(async ({ other, size, chunk }) => {
        const out = [];
        for (const protocol of ["ietf", "tus"] as const) {
          const file = testFile(size, protocol.length);
          const progress: number[] = [];
          const result = await sluice.resumableUpload(
            `${other}/uploads/`,
            file,
            {
              protocol,
              chunkBytes: chunk,
              headers: { "x-tenant": "a" },
              maxRetries: 0,
              onProgress: (done) => void progress.push(done),
            },
          );
          await result.response.body?.cancel();
          const head = await fetch(result.uploadUrl, {
            method: "HEAD",
            headers: protocol === "tus" ? { "tus-resumable": "1.0.0" } : {},
          });
          out.push({
            url: result.uploadUrl,
            progress,
            offset: head.headers.get("upload-offset"),
            length: head.headers.get("upload-length"),
            limit: head.headers.get("upload-limit"),
            sha256: await sha256Hex(file),
          });
        }
        return out;
      }, { other, size: SIZE, chunk: CHUNK });
      for (const [i, run] of ours.entries()) {
        const what = i === 0 ? "IETF draft" : "tus";
        assertEqual(
          run.progress,
          [CHUNK, 2 * CHUNK, 3 * CHUNK, SIZE],
          `${what}: acknowledged progress`,
        );
        assertEqual(run.offset, String(SIZE), `${what}: HEAD's Upload-Offset`);
        assertEqual(run.length, String(SIZE), `${what}: HEAD's Upload-Length`);
        if (i === 0) {
          assert(
            run.limit?.includes(`max-size=${2 * SIZE}`),
            `${what}: HEAD's Upload-Limit ${run.limit}`,
          );
        }
        assertEqual(
          await storedSha256(server, run.url),
          run.sha256,
          `${what}: SHA-256 of the stored file`,
        );
      }

      // tus's discovery: an OPTIONS of the page's own (preflighted).
      const discovery = await page.evaluate(async (other) => {
        const response = await fetch(`${other}/uploads/`, {
          method: "OPTIONS",
          headers: { "tus-resumable": "1.0.0" },
        });
        return {
          status: response.status,
          version: response.headers.get("tus-version"),
          extension: response.headers.get("tus-extension"),
          maxSize: response.headers.get("tus-max-size"),
        };
      }, other);
      assertEqual(
        discovery,
        {
          status: 204,
          version: "1.0.0",
          extension:
            "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration",
          maxSize: String(2 * SIZE),
        },
        "tus's OPTIONS from the page",
      );
      assert(
        server.methods.includes("OPTIONS"),
        "tus's OPTIONS reached the handler",
      );

      // Termination (DELETE) of the tus-js-client upload.
      await page.evaluate((url) => tus.Upload.terminate(url), tusRun.url);
      assertEqual(
        await server.store.get(idOf(tusRun.url)),
        undefined,
        "the terminated upload in the store",
      );
      for (const method of ["POST", "PATCH", "HEAD", "DELETE"]) {
        assert(server.methods.includes(method), `no ${method} seen`);
      }
    });
  });

  test("cross-origin: fetchEventStream reads a feed from another origin with no preflight, as EventSource, and resumes it from an id through the CORS layer", async () => {
    await withServer(suite, async (server, page, other) => {
      const read = (lastEventId?: string) =>
        page.evaluate(async ({ other, lastEventId }) => {
          const seen = [];
          const feed = sluice.fetchEventStream(
            `${other}/events`,
            lastEventId === undefined
              ? {}
              : { lastEventId, headers: { "x-tenant": "a" } },
          );
          for await (const event of feed) {
            seen.push(`${event.id}: ${event.data}`);
            if (seen.length === 3) break;
          }
          return seen;
        }, { other, lastEventId });
      assertEqual(
        await read(),
        ["1: event 1", "2: event 2", "3: event 3"],
        "events from the start",
      );
      assertEqual(server.preflights, [], "preflights of a plain feed");
      assertEqual(
        server.feedCacheControl,
        ["no-cache"],
        "the Cache-Control the browser sent",
      );
      assertEqual(
        await read("4"),
        ["5: event 5", "6: event 6", "7: event 7"],
        "events after Last-Event-ID 4",
      );
      assertEqual(
        server.preflights,
        ["/events"],
        "preflights (Last-Event-ID and x-tenant need one)",
      );
    });
  });

  test('cross-origin: upload() with credentials: "include" sends a credentialed request, with onProgress (XMLHttpRequest\'s withCredentials) and without (fetch): refused by the browser where the server does not allow credentials, as no upload without it is', async () => {
    await withServer(suite, async (_server, page, other) => {
      const outcomes = await page.evaluate(async (other) => {
        const out: string[] = [];
        for (const allowed of [false, true]) {
          for (const credentials of ["include", undefined] as const) {
            for (const progress of [true, false]) {
              const url = `${other}/credentialed-upload${
                allowed ? "?credentials" : ""
              }`;
              out.push(
                await sluice.upload(url, new Blob(["hello"]), {
                  credentials,
                  onProgress: progress ? () => {} : undefined,
                }).then((response) => response.text(), () => "refused"),
              );
            }
          }
        }
        return out;
      }, other);
      assertEqual(
        outcomes,
        [
          ...["refused", "refused", "stored", "stored"],
          ...["stored", "stored", "stored", "stored"],
        ],
        "uploads (credentials allowed or not; include or not; XHR, fetch)",
      );
    });
  });

  test("cross-origin: fetchEventStream from a feed whose server answers no preflight errors after three reconnections refused so (one may be a server at capacity), naming Last-Event-ID and Access-Control-Allow-Headers (it retried for ever)", async () => {
    await withServer(suite, async (server, page, other) => {
      const result = await page.evaluate(async (other) => {
        const seen: string[] = [];
        try {
          for await (
            const event of sluice.fetchEventStream(`${other}/bare-events`, {
              retryDelayMs: 10,
            })
          ) seen.push(event.id);
          return { seen, error: null };
        } catch (error) {
          return { seen, error: String(error) };
        }
      }, other);
      assertEqual(result.seen, ["1", "2", "3"], "events before the end");
      assert(
        /^TypeError: Cannot read event stream: the stream cannot resume: http:\/\/localhost:\d+ is another origin, which answers requests without Last-Event-ID but refused one with it \(its CORS preflight must allow the header: list last-event-id in Access-Control-Allow-Headers/
          .test(String(result.error)),
        `the error: ${result.error}`,
      );
      // The preflights (204 without the header: createSseHandler runs no
      // feed for them), and the HEADs that told them from a server that is
      // not there, three times.
      assertEqual(
        server.bareFeed,
        [
          "GET -",
          ...Array(3).fill(["OPTIONS -", "HEAD -", "OPTIONS -"]).flat(),
        ],
        "the requests for the feed",
      );
    });
  });

  test("cross-origin: without the exposed headers, resumableUpload fails naming Location and Access-Control-Expose-Headers, and tus-js-client fails too", async () => {
    await withServer(suite, async (server, page, other) => {
      server.expose = false;
      const failures = await page.evaluate(async ({ other, size }) => {
        const file = testFile(size, 9);
        const ours = await sluice.resumableUpload(`${other}/uploads/`, file, {
          maxRetries: 0,
        }).then(
          () => "succeeded",
          (error) => `${error.name}: ${error.message}`,
        );
        const theirs = await new Promise<string>((resolve) => {
          new tus.Upload(file, {
            endpoint: `${other}/uploads/`,
            storeFingerprintForResuming: false,
            retryDelays: [],
            onError: (error) => resolve(String(error)),
            onSuccess: () => resolve("succeeded"),
          }).start();
        });
        return { ours, theirs };
      }, { other, size: SIZE });
      assertEqual(
        failures.ours,
        "HttpError: Cannot upload: the server created an upload without a Location (the response came from another origin, where a page sees Location only if the server lists it in Access-Control-Expose-Headers)",
        "resumableUpload's error",
      );
      assert(
        /Location/i.test(failures.theirs),
        `tus-js-client's error: ${failures.theirs}`,
      );
    });
  });
}
