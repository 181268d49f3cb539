// resumableUpload against createResumableUploadHandler over real HTTP on
// 127.0.0.1: both protocols, progress as acknowledged bytes, resumption from
// a stored upload URL, 5xx retries with back-off, give-up and refusal, and
// connections cut at random offsets by a TCP proxy (the final file is
// byte-identical).

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import process from "node:process";
import {
  createResumableUploadHandler,
  HttpError,
  resumableUpload,
} from "../lib/http/mod.ts";
import {
  createHasher,
  createResumableFileStore,
  type ResumableFileStore,
} from "../lib/runtime/fs.ts";
import type { Server } from "../lib/runtime/serve.ts";
import {
  deadline,
  makeTempDir,
  randomBytes,
  removeDir,
  sha256Base64 as sha256,
  startServer,
} from "./_helpers.ts";
import { cutPoints, startCuttingProxy } from "./_resumable_proxy.ts";

const MiB = 1024 * 1024;
const enc = new TextEncoder();
const FAST = { retryDelayMs: 5, maxRetryDelayMs: 50 };
/**
 * The full fault run (100 cuts during 256 MiB) is the test task's
 * `resumable-faults` step:
 * `SLUICE_RESUMABLE_FULL=1 deno test -A tests/resumable_client.test.ts`.
 * The deno and bun test steps run 20 cuts over 32 MiB.
 */
const FULL = process.env.SLUICE_RESUMABLE_FULL === "1";
const CUTS = FULL ? 100 : 20;
const CUT_BYTES = (FULL ? 256 : 32) * MiB;

let dir: string;
let store: ResumableFileStore;
let server: Server;
/** Makes the next PATCHes fail with 503 while it is above 0. */
let failPatches = 0;
/** Makes the next PATCHes stall after 64 KiB while it is above 0. */
let stallPatches = 0;

/**
 * A stalled link: reads `bytes` of the request's body, then neither reads
 * nor answers until the client goes away (bounded by 10 s).
 */
async function stall(request: Request, bytes: number): Promise<Response> {
  const reader = request.body?.getReader();
  let read = 0;
  try {
    while (reader && read < bytes) {
      const { done, value } = await reader.read();
      if (done) break;
      read += value.byteLength;
    }
  } catch {
    // The client went away already.
  }
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, 10_000);
    request.signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve(undefined);
    });
  });
  return new Response("stalled", { status: 500 });
}

before(async () => {
  dir = await makeTempDir("resumable-client-");
  store = createResumableFileStore(dir);
  const handler = createResumableUploadHandler({
    store,
    hasher: createHasher,
    maxBytes: 256 * MiB,
  });
  const small = createResumableUploadHandler({
    store,
    maxBytes: MiB,
    requestPathPrefix: "/small",
  });
  server = await startServer((request) => {
    if (new URL(request.url).pathname.startsWith("/small")) {
      return small(request);
    }
    if (new URL(request.url).pathname.startsWith("/silent")) {
      return stall(request, 0);
    }
    if (request.method === "PATCH" && stallPatches > 0) {
      stallPatches--;
      return stall(request, 64 * 1024);
    }
    if (request.method === "PATCH" && failPatches > 0) {
      failPatches--;
      return new Response("busy", { status: 503 });
    }
    return handler(request);
  });
});

after(async () => {
  await server.shutdown();
  await removeDir(dir);
});

function idOf(url: string): string {
  return new URL(url).pathname.split("/").pop()!;
}

/**
 * Uploads `data` in 1 MiB requests until `bytes` are acknowledged, then
 * aborts (an app closed): the upload's URL, for a resumption.
 */
async function abandonedAt(data: Uint8Array, bytes: number): Promise<string> {
  const controller = new AbortController();
  let saved: string | undefined;
  await assert.rejects(
    resumableUpload(new URL("/uploads", server.url), data, {
      chunkBytes: MiB,
      signal: controller.signal,
      onUploadUrl: (url) => void (saved = url),
      onProgress: (done) => {
        if (done >= bytes) controller.abort(new Error("app closed"));
      },
    }),
    /app closed/,
  );
  assert.ok(saved);
  return saved;
}

describe("resumableUpload", () => {
  for (const protocol of ["ietf", "tus"] as const) {
    it(`uploads in chunks with acknowledged progress (${protocol})`, async () => {
      const data = randomBytes(5 * MiB + 123);
      const progress: number[] = [];
      const urls: string[] = [];
      const result = await resumableUpload(
        new URL("/uploads", server.url),
        data,
        {
          protocol,
          chunkBytes: MiB,
          onProgress: (done, total) => {
            assert.equal(total, data.byteLength);
            progress.push(done);
          },
          onUploadUrl: (url) => void urls.push(url),
          metadata: { filename: "a b.bin" },
        },
      );
      assert.equal(result.bytes, data.byteLength);
      assert.deepEqual(urls, [result.uploadUrl]);
      assert.equal(progress.length, 6);
      assert.deepEqual(progress, [...progress].sort((a, b) => a - b));
      assert.equal(progress.at(-1), data.byteLength);
      const stored = new Uint8Array(
        await readFile(store.path(idOf(result.uploadUrl))),
      );
      assert.equal(sha256(stored), sha256(data));
      if (protocol === "ietf") {
        assert.equal((await result.response.json()).sha256, sha256(data));
      } else {
        assert.equal(result.response.status, 204);
      }
    });
  }

  for (const protocol of ["ietf", "tus"] as const) {
    it(`uploads an empty body, complete once created (${protocol})`, async () => {
      const methods: string[] = [];
      const result = await resumableUpload(
        new URL("/uploads", server.url),
        new Uint8Array(0),
        {
          protocol,
          fetch: (input, init) => {
            methods.push(init?.method ?? "GET");
            return fetch(input, init);
          },
        },
      );
      assert.equal(result.bytes, 0);
      assert.deepEqual(methods, ["POST"]);
      assert.equal(
        (await readFile(store.path(idOf(result.uploadUrl)))).byteLength,
        0,
      );
      // A client that sends an empty PATCH anyway (older ones did) is
      // told the offset, not refused.
      if (protocol === "tus") {
        const late = await fetch(result.uploadUrl, {
          method: "PATCH",
          headers: {
            "tus-resumable": "1.0.0",
            "content-type": "application/offset+octet-stream",
            "upload-offset": "0",
          },
          body: new Uint8Array(0),
        });
        assert.equal(late.status, 204);
        assert.equal(late.headers.get("upload-offset"), "0");
      }
    });
  }

  for (const protocol of ["ietf", "tus"] as const) {
    it(`starts again, once, from a stored upload URL the server no longer has (404, 410), telling onUploadUrl the new one (${protocol})`, async () => {
      // Before, it failed with the 404 or 410 on every try, and an app that
      // keeps the URL until success (docs/resumable.md) never got past it.
      const data = randomBytes(MiB + 7);
      const urls: string[] = [];
      const gone = await resumableUpload(
        new URL("/uploads", server.url),
        data,
        { protocol },
      );
      await fetch(gone.uploadUrl, {
        method: "DELETE",
        headers: protocol === "tus" ? { "tus-resumable": "1.0.0" } : {},
      });
      const result = await resumableUpload(
        new URL("/uploads", server.url),
        data,
        {
          protocol,
          uploadUrl: gone.uploadUrl,
          onUploadUrl: (url) => void urls.push(url),
        },
      );
      assert.notEqual(result.uploadUrl, gone.uploadUrl);
      assert.deepEqual(urls, [result.uploadUrl]);
      const stored = new Uint8Array(
        await readFile(store.path(idOf(result.uploadUrl))),
      );
      assert.equal(sha256(stored), sha256(data));
      // Once: a server that keeps answering 404 fails the upload.
      let posts = 0;
      await assert.rejects(
        resumableUpload(new URL("/uploads", server.url), data, {
          protocol,
          uploadUrl: gone.uploadUrl,
          fetch: (input, init) => {
            if (init?.method === "POST") posts++;
            return init?.method === "POST"
              ? Promise.resolve(
                new Response(null, {
                  status: 201,
                  headers: { location: gone.uploadUrl },
                }),
              )
              : fetch(input, init);
          },
        }),
        (error: unknown) => error instanceof HttpError && error.status === 404,
      );
      assert.equal(posts, 1);
    });
  }

  it("refuses an upload the server says is complete at another length than the body (a stored URL of another file)", async () => {
    // Before, it resolved as if the body had been delivered (IETF draft).
    const other = await resumableUpload(
      new URL("/uploads", server.url),
      randomBytes(10),
    );
    await assert.rejects(
      resumableUpload(new URL("/uploads", server.url), randomBytes(20), {
        uploadUrl: other.uploadUrl,
      }),
      (error: unknown) =>
        error instanceof HttpError && error.status === 409 &&
        error.message ===
          "Cannot upload: the server's upload is 10 bytes long, and the body has 20",
    );
  });

  for (const protocol of ["tus", "ietf"] as const) {
    it(`refuses a stored upload URL of an unfinished upload of another length, before sending a byte (${protocol})`, async () => {
      // Before, tus resolved as if the body had been delivered (the upload
      // never completed), and IETF appended bytes of this body to it
      // before failing with a bare 400.
      const url = new URL("/uploads", server.url);
      let stored: string | undefined;
      const first = new AbortController();
      await assert.rejects(
        resumableUpload(url, randomBytes(2000), {
          protocol,
          chunkBytes: 500,
          signal: first.signal,
          onUploadUrl: (u) => void (stored = u),
          onProgress: (done) => done >= 500 && first.abort(new Error("stop")),
        }),
        /stop/,
      );
      const before = await store.get(idOf(stored!));
      assert.equal(before?.offset, 500);
      await assert.rejects(
        resumableUpload(url, randomBytes(1000), {
          protocol,
          uploadUrl: stored,
          ...FAST,
        }),
        (error: unknown) =>
          error instanceof HttpError && error.status === 409 &&
          error.message ===
            "Cannot upload: the server's upload is 2000 bytes long, and the body has 1000",
      );
      assert.equal((await store.get(idOf(stored!)))?.offset, 500);
    });
  }

  it("ends at once with the error of a caller's callback or a metadata key no header can carry (they were retried as cut connections, then 503)", async () => {
    const url = new URL("/uploads", server.url);
    const started = performance.now();
    for (const key of ["file name", "a\u0001b", ""]) {
      await assert.rejects(
        resumableUpload(url, randomBytes(10), {
          protocol: "tus",
          metadata: { [key]: "v" },
        }),
        {
          name: "TypeError",
          message: `Cannot upload: metadata key ${
            JSON.stringify(key)
          } is empty or has a space, a comma or a control character`,
        },
      );
    }
    await assert.rejects(
      resumableUpload(url, randomBytes(10), {
        headers: { "x-bad": "\u0100" },
      }),
      TypeError,
    );
    // Headers takes a control character; Deno's fetch refuses to send it.
    await assert.rejects(
      resumableUpload(url, randomBytes(10), {
        headers: { "x-trace": "a\u0001b" },
      }),
      {
        name: "TypeError",
        message:
          "Cannot upload: the value of header x-trace has a control character, which the runtime's fetch refuses to send",
      },
    );
    const mine = new Error("the progress bar is gone");
    let calls = 0;
    await assert.rejects(
      resumableUpload(url, randomBytes(1000), {
        chunkBytes: 100,
        onProgress: () => {
          calls++;
          throw mine;
        },
      }),
      (error: unknown) => error === mine,
    );
    assert.equal(calls, 1);
    // A key beyond ASCII goes as its UTF-8 bytes (the store keeps the
    // header as it came, a character per byte).
    const { uploadUrl } = await resumableUpload(url, randomBytes(10), {
      protocol: "tus",
      metadata: { "ключ": "значение" },
    });
    assert.equal(
      (await store.get(idOf(uploadUrl)))?.metadata,
      `${String.fromCharCode(...enc.encode("ключ"))} ${
        btoa(String.fromCharCode(...enc.encode("значение")))
      }`,
    );
    assert.ok(performance.now() - started < 5_000);
  });

  it("reads the caller's Headers again for each request (a token refreshed mid-upload is sent)", async () => {
    // The up-front check of the headers once kept a copy made at the start.
    const seen: (string | null)[] = [];
    const mine = createResumableUploadHandler({ store });
    const other = await startServer((request) => {
      seen.push(request.headers.get("authorization"));
      return mine(request);
    });
    try {
      const headers = new Headers({ authorization: "Bearer 1" });
      await resumableUpload(new URL("/uploads", other.url), randomBytes(300), {
        chunkBytes: 100,
        headers,
        onProgress: (done) => headers.set("authorization", `Bearer ${done}`),
      });
      assert.deepEqual(seen, [
        "Bearer 1",
        "Bearer 1",
        "Bearer 100",
        "Bearer 200",
      ]);
    } finally {
      await other.shutdown();
    }
  });

  it("resumes from a stored upload URL after an abort", async () => {
    const data = randomBytes(4 * MiB);
    const saved = await abandonedAt(data, 2 * MiB);
    const head = await fetch(saved, { method: "HEAD" });
    assert.equal(head.headers.get("upload-offset"), String(2 * MiB));
    const progress: number[] = [];
    const result = await resumableUpload(
      new URL("/uploads", server.url),
      data,
      {
        uploadUrl: saved,
        chunkBytes: MiB,
        onProgress: (done) => void progress.push(done),
      },
    );
    assert.equal(result.uploadUrl, saved);
    assert.deepEqual(
      progress.slice(0, 2),
      [2 * MiB, 3 * MiB],
      "the stored bytes count as acknowledged, and it continued after them",
    );
    const stored = new Uint8Array(await readFile(store.path(idOf(saved))));
    assert.equal(sha256(stored), sha256(data));
  });

  it("resolves when another client with the same upload URL completed the upload between its offset request and its append (the server's 400 completed-upload was an error, the file whole)", async () => {
    const data = randomBytes(3 * MiB);
    const saved = await abandonedAt(data, MiB);
    // Two clients resume it at once; the first to append finishes it
    // while the second waits with its offset (1 MiB) in hand.
    let patches = 0;
    const racing = ((input: RequestInfo | URL, init?: RequestInit) => {
      if (init?.method === "PATCH" && patches++ === 0) {
        return resumableUpload(new URL("/uploads", server.url), data, {
          uploadUrl: saved,
          chunkBytes: 4 * MiB,
        }).then(() => fetch(input, init));
      }
      return fetch(input, init);
    }) as typeof fetch;
    const progress: number[] = [];
    const result = await resumableUpload(
      new URL("/uploads", server.url),
      data,
      {
        uploadUrl: saved,
        chunkBytes: MiB,
        fetch: racing,
        onProgress: (done) => void progress.push(done),
      },
    );
    assert.equal(result.uploadUrl, saved);
    assert.equal(progress.at(-1), data.byteLength);
    const stored = new Uint8Array(await readFile(store.path(idOf(saved))));
    assert.equal(sha256(stored), sha256(data));
  });

  it("after an append's 400, asks for the offset once and throws the 400 if the upload is not complete, unread body and all (its problem body, read, was once taken for a cut connection and retried, or held the upload when it stalled)", async () => {
    const problem =
      '{"type":"https://iana.org/assignments/http-problem-types#inconsistent-upload-length"}';
    for (const stalls of [false, true]) {
      const seen: string[] = [];
      const fake = ((_input: RequestInfo | URL, init?: RequestInit) => {
        const method = init?.method ?? "GET";
        seen.push(method);
        if (method === "POST") {
          return Promise.resolve(
            new Response(null, {
              status: 201,
              headers: { location: "/uploads/abc", "upload-offset": "0" },
            }),
          );
        }
        if (method === "HEAD") {
          return Promise.resolve(
            new Response(null, {
              status: 204,
              headers: { "upload-offset": "0", "upload-complete": "?0" },
            }),
          );
        }
        return Promise.resolve(
          new Response(
            new ReadableStream<Uint8Array>({
              start(controller) {
                controller.enqueue(
                  enc.encode(stalls ? problem.slice(0, 20) : problem),
                );
                if (!stalls) controller.close();
              },
            }),
            {
              status: 400,
              headers: { "content-type": "application/problem+json" },
            },
          ),
        );
      }) as typeof fetch;
      await assert.rejects(
        deadline(
          resumableUpload("http://x/uploads", new Uint8Array(10), {
            fetch: fake,
            idleTimeoutMs: 200,
            ...FAST,
          }),
          5_000,
          "the upload",
        ),
        // The server's words, quoted; a stalled body's none (nor its
        // start, cut anywhere), after a bounded wait.
        (error: unknown) =>
          error instanceof HttpError && error.status === 400 &&
          error.message ===
            `Cannot upload: the server answered 400 to an append${
              stalls ? "" : `: ${problem}`
            }`,
      );
      assert.deepEqual(seen, ["POST", "PATCH", "HEAD"]);
    }
  });

  it("retries a 5xx after asking for the offset", async () => {
    const data = randomBytes(3 * MiB);
    failPatches = 3;
    const result = await resumableUpload(
      new URL("/uploads", server.url),
      data,
      { ...FAST, chunkBytes: MiB },
    );
    assert.equal(failPatches, 0);
    const stored = new Uint8Array(
      await readFile(store.path(idOf(result.uploadUrl))),
    );
    assert.equal(sha256(stored), sha256(data));
  });

  it("gives up after maxRetries failures without progress", async () => {
    failPatches = 1000;
    try {
      await assert.rejects(
        resumableUpload(new URL("/uploads", server.url), randomBytes(10), {
          ...FAST,
          maxRetries: 3,
        }),
        (error: unknown) => error instanceof HttpError && error.status === 503,
      );
    } finally {
      failPatches = 0;
    }
  });

  it("abandons a streamed PATCH that makes no progress for idleTimeoutMs, asks for the offset and completes", async () => {
    const data = randomBytes(2 * MiB);
    const methods: string[] = [];
    const spying: typeof fetch = (input, init) => {
      methods.push(init?.method ?? "GET");
      return fetch(input, init);
    };
    stallPatches = 1;
    try {
      const started = performance.now();
      const result = await deadline(
        resumableUpload(new URL("/uploads", server.url), data, {
          fetch: spying,
          idleTimeoutMs: 1_000,
        }),
        10_000,
        "the upload past a stall",
      );
      assert.equal(stallPatches, 0);
      // The stalled PATCH, abandoned, then the offset. (Later PATCHes may
      // be abandoned too on a loaded machine: each waits 1 s at most.)
      assert.deepEqual(methods.slice(0, 4), ["POST", "PATCH", "HEAD", "PATCH"]);
      assert.ok(performance.now() - started >= 990, "waited idleTimeoutMs");
      const stored = new Uint8Array(
        await readFile(store.path(idOf(result.uploadUrl))),
      );
      assert.equal(sha256(stored), sha256(data));
    } finally {
      stallPatches = 0;
    }
  });

  it("fails with 503 naming idleTimeoutMs when the server never answers, after maxRetries", async () => {
    const started = performance.now();
    await assert.rejects(
      deadline(
        resumableUpload(new URL("/silent", server.url), randomBytes(10), {
          ...FAST,
          idleTimeoutMs: 200,
          maxRetries: 2,
        }),
        10_000,
        "the upload to a silent server",
      ),
      (error: unknown) => {
        assert.ok(error instanceof HttpError, String(error));
        assert.equal(error.status, 503);
        assert.match(
          String(error.message),
          /gave up after 2 retries \(maxRetries\), the last: .*idleTimeoutMs/,
        );
        const cause = error.cause as DOMException;
        assert.equal(cause.name, "TimeoutError");
        assert.match(
          cause.message,
          /^Cannot upload: the POST request made no progress for 200 ms \(idleTimeoutMs\)$/,
        );
        return true;
      },
    );
    // Three attempts of 200 ms, and the back-off between them.
    assert.ok(performance.now() - started >= 590, "three attempts");
  });

  it("retries at once after a cut connection, then backs off", async () => {
    const events: Array<{ method: string; at: number; failed?: boolean }> = [];
    let cutsLeft = 2;
    const flaky: typeof fetch = (input, init) => {
      const method = init?.method ?? "GET";
      if (method === "PATCH" && cutsLeft > 0) {
        cutsLeft--;
        events.push({ method, at: performance.now(), failed: true });
        return Promise.reject(new TypeError("connection reset"));
      }
      events.push({ method, at: performance.now() });
      return fetch(input, init);
    };
    await resumableUpload(new URL("/uploads", server.url), randomBytes(1000), {
      fetch: flaky,
      retryDelayMs: 2_000,
    });
    const [first, second] = events
      .map((event, i) => ({ event, next: events[i + 1] }))
      .filter(({ event }) => event.failed);
    assert.equal(first.next.method, "HEAD");
    // No progress between the two cuts: the second waits retryDelayMs with
    // jitter (1-2 s); the first goes at once.
    assert.ok(first.next.at - first.event.at < 900, "first retry at once");
    assert.ok(second.next.at - second.event.at >= 990, "second backs off");
  });

  it("asks for the offset at once after a 409 that the offset explains", async () => {
    // A cut request's bytes that reach the server after the client asked for
    // the offset: the next append gets 409, and the offset shows progress.
    const data = randomBytes(3000);
    const events: Array<{ method: string; at: number; status: number }> = [];
    const spying: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      events.push({
        method: init?.method ?? "GET",
        at: performance.now(),
        status: response.status,
      });
      return response;
    };
    const result = await resumableUpload(
      new URL("/uploads", server.url),
      data,
      {
        fetch: spying,
        retryDelayMs: 2_000,
        onUploadUrl: async (url) => {
          const late = await fetch(url, {
            method: "PATCH",
            headers: {
              "content-type": "application/partial-upload",
              "upload-offset": "0",
              "upload-complete": "?0",
            },
            body: data.slice(0, 1000),
          });
          assert.equal(late.status, 204);
        },
      },
    );
    assert.deepEqual(
      events.map(({ method, status }) => `${method} ${status}`),
      ["POST 201", "PATCH 409", "HEAD 204", "PATCH 200"],
    );
    assert.ok(events[3].at - events[1].at < 900, "no back-off");
    const stored = new Uint8Array(
      await readFile(store.path(idOf(result.uploadUrl))),
    );
    assert.equal(sha256(stored), sha256(data));
  });

  it("backs off after a 409 when the offset shows no progress", async () => {
    const events: Array<{ method: string; at: number }> = [];
    let conflicts = 1;
    const conflicting: typeof fetch = (input, init) => {
      const method = init?.method ?? "GET";
      events.push({ method, at: performance.now() });
      if (method === "PATCH" && conflicts > 0) {
        conflicts--;
        return Promise.resolve(new Response("busy", { status: 409 }));
      }
      return fetch(input, init);
    };
    await resumableUpload(new URL("/uploads", server.url), randomBytes(1000), {
      fetch: conflicting,
      retryDelayMs: 2_000,
    });
    assert.deepEqual(events.map(({ method }) => method), [
      "POST",
      "PATCH",
      "HEAD",
      "PATCH",
    ]);
    assert.ok(events[2].at - events[1].at < 900, "the offset at once");
    // retryDelayMs with jitter: 1-2 s.
    assert.ok(events[3].at - events[2].at >= 990, "the append backs off");
  });

  it("says its protocol in every request, Upload-Draft-Interop-Version 8 or Tus-Resumable 1.0.0 (a server of both, as tusd routes, took the draft's requests, which said neither, for tus 1.0 without its header: 412)", async () => {
    for (const protocol of ["ietf", "tus"] as const) {
      const seen: string[] = [];
      const routed: typeof fetch = (input, init) => {
        const headers = new Headers(init?.headers);
        const interop = headers.get("upload-draft-interop-version");
        const tus = headers.get("tus-resumable");
        seen.push(`${init?.method} ${interop} ${tus}`);
        return interop === null && tus !== "1.0.0"
          ? Promise.resolve(
            new Response("missing, invalid or unsupported Tus-Resumable", {
              status: 412,
            }),
          )
          : fetch(input, init);
      };
      const data = randomBytes(2000);
      const first = await resumableUpload(
        new URL("/uploads", server.url),
        data,
        { protocol, fetch: routed, chunkBytes: 1000 },
      );
      // Resumed from its URL: the offset asked for (HEAD), already whole.
      const again = await resumableUpload(
        new URL("/uploads", server.url),
        data,
        { protocol, fetch: routed, uploadUrl: first.uploadUrl },
      );
      assert.equal(again.bytes, data.byteLength);
      const says = protocol === "ietf" ? "8 null" : "null 1.0.0";
      assert.deepEqual(seen, [
        `POST ${says}`,
        `PATCH ${says}`,
        `PATCH ${says}`,
        `HEAD ${says}`,
      ], protocol);
    }
  });

  it("sends each request's bytes as a stream unless streamRequests is false", async () => {
    for (const streamRequests of [undefined, false]) {
      const bodies: string[] = [];
      const spying: typeof fetch = (input, init) => {
        if (init?.method === "PATCH") {
          const duplex = (init as { duplex?: string }).duplex;
          bodies.push(
            init.body instanceof ReadableStream
              ? `stream ${duplex}`
              : init.body instanceof Uint8Array
              ? "bytes"
              : typeof init.body,
          );
        }
        return fetch(input, init);
      };
      const data = randomBytes(3000);
      const result = await resumableUpload(
        new URL("/uploads", server.url),
        data,
        { fetch: spying, streamRequests, chunkBytes: 1000 },
      );
      assert.deepEqual(
        bodies,
        new Array(3).fill(streamRequests === false ? "bytes" : "stream half"),
      );
      const stored = new Uint8Array(
        await readFile(store.path(idOf(result.uploadUrl))),
      );
      assert.equal(sha256(stored), sha256(data));
    }
  });

  it("uploads a Blob, streamed and not", async () => {
    for (const streamRequests of [true, false]) {
      const data = randomBytes(2 * MiB + 3);
      const result = await resumableUpload(
        new URL("/uploads", server.url),
        new Blob([data]),
        { streamRequests, chunkBytes: MiB },
      );
      const stored = new Uint8Array(
        await readFile(store.path(idOf(result.uploadUrl))),
      );
      assert.equal(
        sha256(stored),
        sha256(data),
        `streamRequests ${streamRequests}`,
      );
    }
  });

  it("does not retry a refusal (413)", async () => {
    let requests = 0;
    const counting: typeof fetch = (input, init) => {
      requests++;
      return fetch(input, init);
    };
    await assert.rejects(
      resumableUpload(
        new URL("/small", server.url),
        new Uint8Array(MiB + 1),
        { fetch: counting },
      ),
      (error: unknown) => error instanceof HttpError && error.status === 413,
    );
    assert.equal(requests, 1);
  });

  it("fails at once on a 413 to an append, naming its size and chunkBytes (a proxy's body limit, as nginx's 1 MiB: the message said only 413)", async () => {
    // A proxy that passes the creation and refuses requests over 1 MiB.
    const proxied: typeof fetch = (input, init) =>
      init?.method === "PATCH"
        ? Promise.resolve(
          new Response("Request Entity Too Large", {
            status: 413,
          }),
        )
        : fetch(input, init);
    await assert.rejects(
      resumableUpload(new URL("/uploads", server.url), randomBytes(3 * MiB), {
        fetch: proxied,
        chunkBytes: 2 * MiB,
      }),
      (error: unknown) => {
        assert.ok(error instanceof HttpError);
        assert.equal(error.status, 413);
        assert.equal(
          error.message,
          `Cannot upload: the server answered 413 to an append of ${
            2 * MiB
          } bytes (a proxy in front may limit request bodies, nginx's client_max_body_size to 1 MiB by default: lower chunkBytes, ${
            2 * MiB
          } now): Request Entity Too Large`,
        );
        return true;
      },
    );
  });

  it("quotes the upload server's own 413 to an append (its protocol's headers on it) without the proxy hint, and a proxy's HTML page not at all (the server's words were dropped, and the hint misled)", async () => {
    const words = "Cannot append to upload: it is over the store's quota";
    const cases: {
      protocol: "ietf" | "tus";
      headers: Record<string, string>;
      body: string;
      message: string;
    }[] = [
      {
        protocol: "ietf",
        headers: { "upload-limit": `max-size=${4 * MiB}` },
        body: words,
        message: `an append of ${2 * MiB} bytes: ${words}`,
      },
      {
        protocol: "tus",
        headers: { "tus-resumable": "1.0.0" },
        body: words,
        message: `an append of ${2 * MiB} bytes: ${words}`,
      },
      {
        protocol: "ietf",
        headers: { "content-type": "text/html" },
        body: "<html><body><h1>413 Request Entity Too Large</h1></body></html>",
        message: `an append of ${
          2 * MiB
        } bytes (a proxy in front may limit request bodies, nginx's client_max_body_size to 1 MiB by default: lower chunkBytes, ${
          2 * MiB
        } now)`,
      },
    ];
    for (const { protocol, headers, body, message } of cases) {
      const refusing: typeof fetch = (input, init) =>
        init?.method === "PATCH"
          ? Promise.resolve(new Response(body, { status: 413, headers }))
          : fetch(input, init);
      await assert.rejects(
        resumableUpload(
          new URL("/uploads", server.url),
          randomBytes(3 * MiB),
          { fetch: refusing, chunkBytes: 2 * MiB, protocol },
        ),
        (error: unknown) => {
          assert.ok(error instanceof HttpError);
          assert.equal(error.status, 413);
          assert.equal(
            error.message,
            `Cannot upload: the server answered 413 to ${message}`,
          );
          return true;
        },
      );
    }
  });

  it("fails with 502 when the server reports an Upload-Offset it cannot have", async () => {
    // A server that creates the upload, then answers HEAD and PATCH with the
    // Upload-Offset given: absent, malformed, or past the bytes sent.
    const lying =
      (head: string | null, patch: string | null): typeof fetch =>
      async (input, init) => {
        const request = new Request(input, init);
        await request.arrayBuffer();
        const offset = request.method === "HEAD" ? head : patch;
        const headers = new Headers();
        if (request.method === "POST") headers.set("location", "/uploads/1");
        else if (offset !== null) headers.set("upload-offset", offset);
        return new Response(null, {
          status: request.method === "POST" ? 201 : 204,
          headers,
        });
      };
    const upload = (server: typeof fetch, uploadUrl?: string) =>
      resumableUpload("http://lying/uploads", new Uint8Array(10), {
        fetch: server,
        uploadUrl,
        chunkBytes: 4,
        maxRetries: 0,
      });
    const invalid = (value: string | null, max: number) => (error: unknown) =>
      error instanceof HttpError && error.status === 502 &&
      error.message ===
        `Cannot upload: the server reported an invalid Upload-Offset ${
          JSON.stringify(value)
        } (expected 0 to ${max})`;
    // An append of bytes 0-3 acknowledged at 1000 (it was taken for
    // the end of the upload) or at 5, or as "1.5" or "".
    for (const value of ["1000", "5", "1.5", "", "-1"]) {
      await assert.rejects(upload(lying(null, value)), invalid(value, 4));
    }
    // Resuming: a HEAD without Upload-Offset (it was taken for 0) or with
    // one past the body.
    for (const value of [null, "11", "x"]) {
      await assert.rejects(
        upload(lying(value, "4"), "http://lying/uploads/1"),
        invalid(value, 10),
      );
    }
  });

  it("reads Upload-Offset and Upload-Complete with RFC 9651 parameters, as the server does", async () => {
    // Parameters say nothing about the item's value: "4;a=1" is 4.
    const patches: string[] = [];
    const server: typeof fetch = async (input, init) => {
      const request = new Request(input, init);
      const body = new Uint8Array(await request.arrayBuffer());
      if (request.method === "POST") {
        return new Response(null, {
          status: 201,
          headers: { location: "/uploads/1", "upload-offset": "0;x" },
        });
      }
      const offset = Number(request.headers.get("upload-offset"));
      patches.push(`${offset}+${body.byteLength}`);
      const end = offset + body.byteLength;
      return new Response(null, {
        status: 204,
        headers: {
          "upload-offset": `${end} ; a=1;b`,
          "upload-complete": end === 10 ? "?1;v=2" : "?0;v=2",
        },
      });
    };
    const result = await resumableUpload(
      "http://params/uploads",
      new Uint8Array(10),
      {
        fetch: server,
        chunkBytes: 4,
        maxRetries: 0,
      },
    );
    assert.equal(result.bytes, 10);
    assert.deepEqual(patches, ["0+4", "4+4", "8+2"]);
    // Resuming from a HEAD whose answer has parameters.
    let heads = 0;
    const resumed = await resumableUpload(
      "http://params/uploads",
      new Uint8Array(10),
      {
        fetch: async (input, init) => {
          const request = new Request(input, init);
          await request.arrayBuffer();
          if (request.method === "HEAD") {
            heads++;
            return new Response(null, {
              status: 204,
              headers: { "upload-offset": "10;a", "upload-complete": "?1;a" },
            });
          }
          throw new Error(`no ${request.method} expected`);
        },
        uploadUrl: "http://params/uploads/1",
        maxRetries: 0,
      },
    );
    assert.equal(resumed.bytes, 10);
    assert.equal(heads, 1);
  });

  it("refuses a relative URL outside a page at once, without a request", async () => {
    let requests = 0;
    const counting: typeof fetch = (input, init) => {
      requests++;
      return fetch(input, init);
    };
    await assert.rejects(
      resumableUpload("/uploads", new Uint8Array(16), { fetch: counting }),
      (error: unknown) =>
        error instanceof TypeError && /"\/uploads" is not a URL/.test(
          error.message,
        ),
    );
    assert.equal(requests, 0);
  });

  for (const protocol of ["ietf", "tus"] as const) {
    it(
      `survives ${CUTS} connection cuts at random offsets over ${
        CUT_BYTES / MiB
      } MiB (${protocol})`,
      async () => {
        const size = CUT_BYTES;
        const data = randomBytes(size);
        const seed = Math.floor(Math.random() * 2 ** 31);
        // Request bytes include headers and retries: spread the cuts over
        // the body's size so that all of them fall inside the upload.
        const points = cutPoints(CUTS, size, seed);
        const proxy = await startCuttingProxy(server.port, points);
        try {
          const result = await deadline(
            resumableUpload(`http://127.0.0.1:${proxy.port}/uploads`, data, {
              protocol,
              ...FAST,
              chunkBytes: 8 * MiB,
              maxRetries: 20,
            }),
            FULL ? 1_200_000 : 120_000,
            `upload with cuts (seed ${seed})`,
          );
          assert.equal(proxy.cuts(), CUTS, `seed ${seed}`);
          const stored = new Uint8Array(
            await readFile(store.path(idOf(result.uploadUrl))),
          );
          assert.equal(stored.byteLength, size, `seed ${seed}`);
          assert.equal(sha256(stored), sha256(data), `seed ${seed}`);
        } finally {
          await proxy.close();
        }
      },
    );
  }
});
