// Browser tests of resumable uploads: tus-js-client (its browser build,
// npm:tus-js-client@4.3.1) and sluice's resumableUpload (bundled into the
// page) in Chromium, against createResumableUploadHandler with
// createResumableFileStore in a temporary directory, served by a Deno.serve
// test server on 127.0.0.1 (port 0). The page makes a File of deterministic
// bytes (two chunks and 123 bytes, a chunk larger than the sockets' buffers
// can hold: CHUNK); the stored file's SHA-256 on the server must be the
// page's. Interruptions are real: the server stops reading the upload's
// second PATCH part-way (a stalled link), the test aborts the upload or
// reloads the page, which cuts that request's connection, and the server
// reads on until it sees the cut.
// Registered by tests/browser/suite.ts.

import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import type * as Tus from "tus-js-client";
import { createResumableUploadHandler } from "../../lib/http/resumable/resumable_upload_handler.ts";
import {
  createHasher,
  createResumableFileStore,
  type ResumableFileStore,
} from "../../lib/runtime/fs.ts";
import { ROOT } from "../_workerd.ts";
import type { Sluice } from "./page.ts";
import { serveForTest } from "./_test_server.ts";

/** What the suite lends these tests. */
export interface ResumableSuite {
  test(name: string, fn: () => Promise<void>): void;
  context(): BrowserContext;
  assert(condition: unknown, message: string): void;
  assertEqual(actual: unknown, expected: unknown, what: string): void;
  /** The library bundled for the browser (tests/browser/page.ts). */
  script(): Uint8Array;
  /** The certificate Chromium trusts for https://127.0.0.1 (h2). */
  tls(): { cert: string; key: string };
  /** A directory for the stores, under the suite's temporary one. */
  tmp: string;
}

const MiB = 1024 * 1024;

/**
 * The most bytes one loopback connection's kernel buffers can hold: the
 * client's send buffer and the server's receive buffer at their largest
 * (Linux: the last field of tcp_wmem and tcp_rmem, up to which each grows
 * by itself; 4 MiB and 32 MiB on this project's machines).
 */
function socketBufferBytes(): number {
  const max = (name: string) =>
    Number(
      Deno.readTextFileSync(`/proc/sys/net/ipv4/${name}`).trim().split(/\s+/)
        .at(-1),
    );
  try {
    const bytes = max("tcp_wmem") + max("tcp_rmem");
    if (Number.isSafeInteger(bytes) && bytes > 0) return bytes;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return 64 * MiB; // not Linux: a guess on the large side
}

/**
 * The chunk of the tests that cut a PATCH: larger than the kernel can hold
 * in flight (plus 4 MiB), so the second PATCH is still being sent when it is
 * cut, whatever the timing. With 8 MiB chunks the server read 4.2-6.1 MiB
 * of a held PATCH before the cut (up to 8.2 with busy loops beside it), and
 * once, beside a benchmark run, all of it: the whole chunk had reached the
 * sockets' buffers before the abort, so the server never saw a cut. (With
 * 2 MiB chunks that was the rule.)
 */
const CHUNK = Math.ceil((socketBufferBytes() + 4 * MiB) / MiB) * MiB;
const SIZE = 2 * CHUNK + 123;
/** Bytes of the second PATCH the server reads before it stalls. */
const CUT_AFTER = 256 * 1024;
/** The streamed test's chunks (it cuts nothing). */
const STREAM_CHUNK = 8 * MiB;
const STREAM_SIZE = 2 * STREAM_CHUNK + 123;

// The pages' helpers (this file's and tests/browser/http_cors.ts's): a
// File of deterministic bytes (xorshift32 from a seed, with a fixed name and
// lastModified, so a reloaded page makes the same File and tus-js-client the
// same fingerprint) and a SHA-256 in hex.
export const PAGE_HELPERS = `globalThis.testFile = (size, seed) => {
  const words = new Uint32Array(Math.ceil(size / 4));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    words[i] = x >>> 0;
  }
  return new File([new Uint8Array(words.buffer, 0, size)], "resumable.bin", {
    type: "application/octet-stream",
    lastModified: 1767225600000,
  });
};
globalThis.sha256Hex = async (blob) =>
  Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer())),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
`;

const resumablePage = `<!doctype html>
<meta charset="utf-8">
<title>sluice resumable uploads</title>
<link rel="icon" href="data:,">
<script src="/tus.min.js"></script>
<script type="module" src="/sluice.js"></script>
<script>
${PAGE_HELPERS}</script>
<p>sluice resumable uploads</p>
`;

declare const sluice: Sluice;
declare const tus: typeof Tus;
declare const testFile: (size: number, seed: number) => File;
declare const sha256Hex: (blob: Blob) => Promise<string>;

/** What the page keeps on `globalThis` between `evaluate` calls. */
interface PageState {
  run: {
    progress: [number, number][];
    outcome?: string;
    upload?: Tus.Upload;
    controller?: AbortController;
    done?: Promise<string>;
  };
}

/** One PATCH as the server read it. */
interface Patch {
  offset: number;
  received: number;
  /** Its body failed: the client's connection went away mid-request. */
  cut: boolean;
  /** Its Content-Length (a streamed body over h2 has none). */
  contentLength: string | null;
}

interface ResumableServer {
  origin: string;
  store: ResumableFileStore;
  /** Creations seen. */
  posts: number;
  patches: Patch[];
  /** SHA-256 (hex) of each completed upload, from onComplete. */
  completed: Map<string, string>;
  /** Whether the second PATCH stalls after CUT_AFTER bytes. */
  hold: boolean;
}

const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/**
 * `request` with its body recorded, and held after CUT_AFTER bytes while
 * `server.hold` if it is the upload's second PATCH.
 */
function watched(request: Request, server: ResumableServer): Request {
  const patch: Patch = {
    offset: Number(request.headers.get("upload-offset")),
    received: 0,
    cut: false,
    contentLength: request.headers.get("content-length"),
  };
  const second = server.patches.push(patch) === 2;
  const reader = request.body!.getReader();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
      } catch (error) {
        patch.cut = true;
        controller.error(error);
        return;
      }
      if (result.done) {
        controller.close();
        return;
      }
      patch.received += result.value.byteLength;
      // Bounded by the test's timeout, which ends the server.
      while (second && server.hold && patch.received >= CUT_AFTER) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      controller.enqueue(result.value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
  return new Request(request.url, {
    method: request.method,
    headers: request.headers,
    body,
    signal: request.signal,
    duplex: "half",
  } as RequestInit);
}

/**
 * Runs `fn` with a server (its own store) and a page opened on it, over
 * HTTPS (h2) when `tls`.
 */
async function withServer(
  suite: ResumableSuite,
  fn: (server: ResumableServer, page: Page) => Promise<void>,
  tls = false,
): Promise<void> {
  const dir = await mkdtemp(join(suite.tmp, "resumable-"));
  const store = createResumableFileStore(dir);
  const tusScript = await readFile(
    join(ROOT, "node_modules", "tus-js-client", "dist", "tus.min.js"),
  );
  const state: ResumableServer = lastServer = {
    origin: "",
    store,
    posts: 0,
    patches: [],
    completed: new Map(),
    hold: true,
  };
  const uploads = createResumableUploadHandler({
    store,
    hasher: createHasher,
    maxBytes: 2 * SIZE,
    onComplete: ({ id, sha256 }) =>
      void state.completed.set(id, sha256 ? hex(sha256) : ""),
  });
  const server = await serveForTest(async (request) => {
    const { pathname } = new URL(request.url);
    const script = (body: Uint8Array) =>
      new Response(body as Uint8Array<ArrayBuffer>, {
        headers: { "content-type": "text/javascript; charset=utf-8" },
      });
    if (pathname === "/") {
      return new Response(resumablePage, {
        headers: { "content-type": "text/html; charset=utf-8" },
      });
    }
    if (pathname === "/sluice.js") return script(suite.script());
    if (pathname === "/tus.min.js") return script(tusScript);
    if (request.method === "POST") state.posts++;
    if (request.method === "PATCH" && request.body) {
      return await uploads(watched(request, state));
    }
    return await uploads(request);
  }, tls ? suite.tls() : undefined);
  state.origin = `${tls ? "https" : "http"}://127.0.0.1:${server.port}`;
  const page = await suite.context().newPage();
  let failed = true;
  try {
    await page.goto(`${state.origin}/`);
    await page.waitForFunction(() => "sluice" in globalThis);
    await fn(state, page);
    failed = false;
  } finally {
    state.hold = false;
    await page.close();
    // Not server.shutdown(): see tests/browser/_test_server.ts. A request
    // left unanswered fails the test, unless it failed already.
    await server.close().catch((error) => {
      if (!failed) throw error;
    });
    await rm(dir, { recursive: true, force: true });
  }
}

let lastServer: ResumableServer | undefined;

/** Waits (bounded) until `condition` holds. */
async function until(
  condition: () => boolean,
  what: string,
  ms = 15_000,
): Promise<void> {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) {
      throw new Error(
        `timed out waiting for ${what} (${JSON.stringify(lastServer)})`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Waits until the server has read part of the upload's second PATCH. */
async function secondPatchUnderway(server: ResumableServer): Promise<void> {
  await until(
    () => server.patches.length >= 2 && server.patches[1].received >= CUT_AFTER,
    "the second PATCH to be half received",
  );
}

/** An upload's id from its URL (tus-js-client's is relative to the page). */
export const idOf = (url: string): string =>
  new URL(url, "http://127.0.0.1/").pathname.split("/").pop()!;

/** The SHA-256 (hex) of the file `store` holds for the upload at `url`. */
export async function storedSha256(
  server: { store: ResumableFileStore },
  url: string,
): Promise<string> {
  return createHash("sha256").update(
    await readFile(server.store.path(idOf(url))),
  ).digest("hex");
}

/** The upload's offset as HEAD from the page reports it. */
async function headOffset(
  page: Page,
  url: string,
  tusHeader: boolean,
): Promise<number> {
  return await page.evaluate(async ({ url, tusHeader }) => {
    const response = await fetch(url, {
      method: "HEAD",
      headers: tusHeader ? { "tus-resumable": "1.0.0" } : {},
    });
    if (response.status !== 200 && response.status !== 204) {
      throw new Error(`HEAD answered ${response.status}`);
    }
    return Number(response.headers.get("upload-offset"));
  }, { url, tusHeader });
}

/** Registers the resumable upload tests with the suite. */
export function resumableTests(suite: ResumableSuite): void {
  const { test, assert, assertEqual } = suite;
  /**
   * The upload of `url` completed with `sha256`: as `onComplete` saw it, and
   * as the stored file's bytes hash.
   */
  const assertStored = async (
    server: ResumableServer,
    url: string,
    sha256: string,
  ): Promise<void> => {
    assertEqual(
      server.completed.get(idOf(url)),
      sha256,
      "SHA-256 at onComplete",
    );
    assertEqual(
      await storedSha256(server, url),
      sha256,
      "SHA-256 of the stored file",
    );
  };

  /** Progress reports: rising, of `size`, ending at it. */
  function checkProgress(
    progress: [number, number][],
    from: number,
    what: string,
  ): void {
    assert(progress.length >= 1, `${what}: no progress reported`);
    let last = from;
    for (const [done, total] of progress) {
      assertEqual(total, SIZE, `${what}: total`);
      assert(done >= last, `${what}: progress went back (${progress})`);
      last = done;
    }
    assertEqual(progress.at(-1), [SIZE, SIZE], `${what}: last progress`);
  }

  test("resumable: tus-js-client in the page uploads to the tus endpoint, is aborted mid-PATCH, resumes via findPreviousUploads and completes byte-identical", async () => {
    await withServer(suite, async (server, page) => {
      await page.evaluate(({ size, chunk }) => {
        const g = globalThis as unknown as PageState;
        g.run = { progress: [] };
        const upload = new tus.Upload(testFile(size, 7), {
          endpoint: "/uploads",
          chunkSize: chunk,
          metadata: { filename: "resumable.bin" },
          onChunkComplete: (_, accepted, total) =>
            void g.run.progress.push([accepted, total]),
          onError: (error) => void (g.run.outcome = `error: ${error}`),
          onSuccess: () => void (g.run.outcome = "success"),
        });
        g.run.upload = upload;
        upload.start();
      }, { size: SIZE, chunk: CHUNK });
      await secondPatchUnderway(server);
      const first = await page.evaluate(async () => {
        const g = globalThis as unknown as PageState;
        await g.run.upload!.abort();
        return {
          url: g.run.upload!.url!,
          acknowledged: g.run.progress.map(([done]) => done),
          outcome: g.run.outcome ?? null,
        };
      });
      assertEqual(first.outcome, null, "outcome before the abort");
      assertEqual(first.acknowledged, [CHUNK], "chunks acknowledged");
      server.hold = false;
      await until(() => server.patches[1].cut, "the server to see the cut");
      const offset = await headOffset(page, first.url, true);
      assertEqual(
        (await server.store.get(idOf(first.url)))?.offset,
        offset,
        "the store's offset against HEAD's",
      );
      assert(
        offset >= CHUNK && offset < SIZE,
        `offset ${offset} after the abort`,
      );
      const second = await page.evaluate(async ({ size, chunk }) => {
        const g = globalThis as unknown as PageState;
        const file = testFile(size, 7);
        const progress: number[] = [];
        let resumed = "";
        await new Promise<void>((resolve, reject) => {
          const upload = new tus.Upload(file, {
            endpoint: "/uploads",
            chunkSize: chunk,
            onChunkComplete: (_, accepted) => void progress.push(accepted),
            onError: reject,
            onSuccess: () => resolve(),
          });
          g.run.upload = upload;
          upload.findPreviousUploads().then((previous) => {
            if (previous.length !== 1) {
              throw new Error(`${previous.length} previous uploads stored`);
            }
            resumed = previous[0].uploadUrl ?? "";
            upload.resumeFromPreviousUpload(previous[0]);
            upload.start();
          }).catch(reject);
        });
        return {
          resumed,
          url: g.run.upload!.url!,
          progress,
          sha256: await sha256Hex(file),
        };
      }, { size: SIZE, chunk: CHUNK });
      assertEqual(second.resumed, first.url, "the stored upload URL");
      assertEqual(second.url, first.url, "the resumed upload's URL");
      assertEqual(server.posts, 1, "creations");
      assertEqual(
        server.patches[2]?.offset,
        offset,
        "the resumed PATCH's Upload-Offset",
      );
      assertEqual(second.progress.at(-1), SIZE, "last acknowledged");
      await assertStored(server, first.url, second.sha256);
    });
  });

  test("resumable: resumableUpload (IETF draft) in the page reports acknowledged progress, survives a page reload mid-PATCH from the URL onUploadUrl put in localStorage, and completes byte-identical", async () => {
    await withServer(suite, async (server, page) => {
      await page.evaluate(({ size, chunk }) => {
        const g = globalThis as unknown as PageState;
        g.run = { progress: [] };
        localStorage.removeItem("upload");
        g.run.done = sluice.resumableUpload("/uploads", testFile(size, 11), {
          chunkBytes: chunk,
          onUploadUrl: (url) => localStorage.setItem("upload", url),
          onProgress: (done, total) => {
            g.run.progress.push([done, total]);
            localStorage.setItem("progress", JSON.stringify(g.run.progress));
          },
        }).then(() => "resolved", (error) => String(error));
      }, { size: SIZE, chunk: CHUNK });
      await secondPatchUnderway(server);
      await page.reload();
      await page.waitForFunction(() => "sluice" in globalThis);
      server.hold = false;
      await until(() => server.patches[1].cut, "the server to see the cut");
      const before = await page.evaluate(() => ({
        url: localStorage.getItem("upload") ?? "",
        progress: JSON.parse(localStorage.getItem("progress") ?? "[]"),
      }));
      assertEqual(before.progress, [[CHUNK, SIZE]], "progress before reload");
      const offset = await headOffset(page, before.url, false);
      assertEqual(
        (await server.store.get(idOf(before.url)))?.offset,
        offset,
        "the store's offset against HEAD's",
      );
      assert(
        offset >= CHUNK && offset < SIZE,
        `offset ${offset} after the reload`,
      );
      const after = await page.evaluate(async ({ size, chunk }) => {
        const file = testFile(size, 11);
        const progress: [number, number][] = [];
        const stored = localStorage.getItem("upload")!;
        const result = await sluice.resumableUpload("/uploads", file, {
          uploadUrl: stored,
          chunkBytes: chunk,
          onUploadUrl: () => {
            throw new Error("a resumed upload was created again");
          },
          onProgress: (done, total) => void progress.push([done, total]),
        });
        return {
          stored,
          url: result.uploadUrl,
          bytes: result.bytes,
          status: result.response.status,
          progress,
          sha256: await sha256Hex(file),
        };
      }, { size: SIZE, chunk: CHUNK });
      assertEqual(after.url, before.url, "the resumed upload's URL");
      assertEqual(after.bytes, SIZE, "bytes");
      assertEqual(server.posts, 1, "creations");
      assertEqual(
        server.patches[2]?.offset,
        offset,
        "the resumed PATCH's Upload-Offset",
      );
      // Blob slices (streamRequests is off in browsers): sized requests.
      assert(
        server.patches.every((patch) => patch.contentLength !== null),
        "a PATCH without Content-Length over HTTP/1.1",
      );
      // The offset the server kept, then one report per acknowledged PATCH.
      assertEqual(after.progress[0], [offset, SIZE], "first progress report");
      checkProgress(after.progress, offset, "after the reload");
      await assertStored(server, after.url, after.sha256);
    });
  });

  test("resumable: resumableUpload (tus) in the page stops at an AbortSignal mid-PATCH, HEAD reports the offset the store kept, and a resumption from uploadUrl completes byte-identical", async () => {
    await withServer(suite, async (server, page) => {
      await page.evaluate(({ size, chunk }) => {
        const g = globalThis as unknown as PageState;
        const controller = new AbortController();
        g.run = { progress: [], controller };
        g.run.done = sluice.resumableUpload("/uploads", testFile(size, 13), {
          protocol: "tus",
          chunkBytes: chunk,
          signal: controller.signal,
          onUploadUrl: (url) => localStorage.setItem("upload", url),
          onProgress: (done, total) => void g.run.progress.push([done, total]),
        }).then(() => "resolved", (error) => String(error));
      }, { size: SIZE, chunk: CHUNK });
      await secondPatchUnderway(server);
      const first = await page.evaluate(async () => {
        const g = globalThis as unknown as PageState;
        g.run.controller!.abort(new Error("user cancelled"));
        return {
          outcome: await g.run.done,
          progress: g.run.progress,
          url: localStorage.getItem("upload") ?? "",
        };
      });
      assertEqual(first.outcome, "Error: user cancelled", "rejection");
      assertEqual(first.progress, [[CHUNK, SIZE]], "progress before abort");
      server.hold = false;
      await until(() => server.patches[1].cut, "the server to see the cut");
      const offset = await headOffset(page, first.url, true);
      assert(
        offset >= CHUNK && offset < SIZE,
        `offset ${offset} after the abort`,
      );
      assertEqual(
        (await server.store.get(idOf(first.url)))?.offset,
        offset,
        "the store's offset against HEAD's",
      );
      await new Promise((resolve) => setTimeout(resolve, 200));
      assertEqual(
        await headOffset(page, first.url, true),
        offset,
        "HEAD's offset 200 ms later (nothing appended after the abort)",
      );
      assertEqual(server.patches.length, 2, "PATCHes after the abort");
      const after = await page.evaluate(async ({ size, chunk, url }) => {
        const file = testFile(size, 13);
        const progress: [number, number][] = [];
        const result = await sluice.resumableUpload("/uploads", file, {
          protocol: "tus",
          uploadUrl: url,
          chunkBytes: chunk,
          onProgress: (done, total) => void progress.push([done, total]),
        });
        return {
          url: result.uploadUrl,
          progress,
          sha256: await sha256Hex(file),
        };
      }, { size: SIZE, chunk: CHUNK, url: first.url });
      assertEqual(after.url, first.url, "the resumed upload's URL");
      assertEqual(server.posts, 1, "creations");
      assertEqual(
        server.patches[2]?.offset,
        offset,
        "the resumed PATCH's Upload-Offset",
      );
      assertEqual(after.progress[0], [offset, SIZE], "first progress report");
      checkProgress(after.progress, offset, "after the abort");
      await assertStored(server, after.url, after.sha256);
    });
  });

  // Over h2, where Chromium streams request bodies. (It once timed out in 4
  // runs of 9: not the upload, which had completed, but the server's
  // shutdown after it, waiting a minute on a spare connection Chromium had
  // opened and left idle; tests/browser/_test_server.ts.)
  test("resumable: resumableUpload over HTTPS/h2 with streamRequests: true streams each PATCH (no Content-Length), reports acknowledged progress and completes byte-identical", async () => {
    await withServer(suite, async (server, page) => {
      server.hold = false;
      const result = await page.evaluate(async ({ size, chunk }) => {
        const file = testFile(size, 17);
        const progress: [number, number][] = [];
        const result = await sluice.resumableUpload("/uploads", file, {
          chunkBytes: chunk,
          streamRequests: true,
          onProgress: (done, total) => void progress.push([done, total]),
        });
        return {
          url: result.uploadUrl,
          status: result.response.status,
          progress,
          sha256: await sha256Hex(file),
        };
      }, { size: STREAM_SIZE, chunk: STREAM_CHUNK });
      assertEqual(
        server.patches.map((patch) => [patch.offset, patch.contentLength]),
        [[0, null], [STREAM_CHUNK, null], [2 * STREAM_CHUNK, null]],
        "PATCHes (offset, Content-Length)",
      );
      assertEqual(
        result.progress,
        [
          [STREAM_CHUNK, STREAM_SIZE],
          [2 * STREAM_CHUNK, STREAM_SIZE],
          [STREAM_SIZE, STREAM_SIZE],
        ],
        "progress",
      );
      await assertStored(server, result.url, result.sha256);
    }, true);
  });

  test("resumable: resumableUpload with streamRequests: true to an http: URL refuses at once, naming HTTPS, and sends nothing", async () => {
    await withServer(suite, async (server, page) => {
      const message = await page.evaluate(async () =>
        await sluice.resumableUpload("/uploads", testFile(1024, 3), {
          streamRequests: true,
          maxRetries: 2,
        }).then(() => "succeeded", (error) => String(error))
      );
      assertEqual(
        message,
        "TypeError: Cannot upload: streamRequests needs HTTP/2, which a browser speaks only to an https: URL; over http: leave it off (each PATCH then sends a slice of the Blob)",
        "the error",
      );
      assertEqual(server.posts, 0, "creations");
    });
  });
}
