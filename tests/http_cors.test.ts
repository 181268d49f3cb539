// The HTTP flows' `cors` lists (lib/http/cors.ts) against what really goes
// over the wire: every request header and method of sluice's upload,
// resumableUpload (both protocols), fetchEventStream and openDuplex is
// allowed, and every response header the upload, resumable (tus and the
// draft, each request kind), event-stream and duplex handlers answer with is
// exposed or one a browser shows anyway. A browser on another origin using
// them through a CORS layer built from the lists: tests/browser/resumable.ts
// and tests/browser/suite.ts.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  cors,
  createDuplexHandler,
  createResumableUploadHandler,
  createSseHandler,
  createUploadHandler,
  fetchEventStream,
  openDuplex,
  resumableUpload,
  upload,
} from "../lib/http/mod.ts";
import { createHasher, createResumableFileStore } from "../lib/runtime/fs.ts";
import { serve, type Server } from "../lib/runtime/serve.ts";
import { makeTempDir, removeDir, startServer } from "./_helpers.ts";

/**
 * Request headers a browser sets itself (a page cannot) or that need no
 * preflight; `content-type` is in the list anyway (most values need it).
 */
const BROWSER_OWN = new Set([
  "accept",
  "accept-encoding",
  "accept-language",
  "connection",
  "content-length",
  "host",
  "transfer-encoding",
  "user-agent",
]);

/**
 * Response headers every page reads without their being exposed (the
 * CORS-safelisted response-header names of the Fetch standard), and those
 * for the browser or intermediaries alone.
 */
const SAFELISTED = new Set([
  "cache-control",
  "content-language",
  "content-length",
  "content-type",
  "expires",
  "last-modified",
  "pragma",
  // The browser's or an intermediary's, never a client's.
  "allow",
  "connection",
  "date",
  "keep-alive",
  "transfer-encoding",
  "vary",
  "x-accel-buffering",
]);

const digest = async (data: Uint8Array) =>
  new Uint8Array(
    await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>),
  );

let dir: string;
let server: Server;
const methods = new Set<string>();
const requestHeaders = new Set<string>();
const responseHeaders = new Set<string>();

before(async () => {
  dir = await makeTempDir("cors-");
  const uploads = createUploadHandler({
    sink: () => new WritableStream(),
    hasher: createHasher,
  });
  const resumable = createResumableUploadHandler({
    store: createResumableFileStore(dir),
    hasher: createHasher,
    requestPathPrefix: "/files/",
    maxBytes: 1024 * 1024,
    expiresInMs: 60_000,
  });
  const events = createSseHandler(async function* (_request, { lastEventId }) {
    yield { id: String(Number(lastEventId || 0) + 1), data: "tick" };
  });
  const duplex = createDuplexHandler(async (stream) => {
    for await (const chunk of stream.readable) await stream.write(chunk);
  });
  server = await startServer(async (request) => {
    methods.add(request.method);
    request.headers.forEach((_, name) => requestHeaders.add(name));
    const { pathname } = new URL(request.url);
    const response = pathname === "/upload"
      ? await uploads(request)
      : pathname.startsWith("/files/")
      ? await resumable(request)
      : pathname === "/events"
      ? await events(request)
      : await duplex(request);
    response.headers.forEach((_, name) => responseHeaders.add(name));
    return response;
  });
});

after(async () => {
  await server.shutdown();
  await removeDir(dir);
});

describe("cors (HTTP flows)", () => {
  it("allows every method and request header the HTTP clients send, and exposes every response header the handlers answer with", async () => {
    const url = (path: string) => new URL(path, server.url);
    const data = new Uint8Array(3000).fill(7);

    // Uploads, with a digest, a body of unknown length and by PUT.
    await (await upload(url("/upload"), data, {
      sha256: await digest(data),
    })).body
      ?.cancel();
    await (await upload(url("/upload"), new Blob([data]).stream(), {
      method: "PUT",
    })).body?.cancel();

    // Resumable uploads, both protocols, in several appends, with tus
    // metadata; then each further request kind of each by hand.
    for (const protocol of ["ietf", "tus"] as const) {
      const { uploadUrl, response } = await resumableUpload(
        url("/files/"),
        data,
        { protocol, chunkBytes: 1000, metadata: { filename: "a.bin" } },
      );
      await response.body?.cancel();
      const tus: Record<string, string> = protocol === "tus"
        ? { "tus-resumable": "1.0.0" }
        : {};
      for (const method of ["HEAD", "DELETE"]) {
        await (await fetch(uploadUrl, { method, headers: tus })).body
          ?.cancel();
      }
    }
    // tus: discovery, a deferred length, a checksum, an override, a
    // conflict; the draft: an offset that does not match.
    const tus = { "tus-resumable": "1.0.0" };
    await (await fetch(url("/files/"), { method: "OPTIONS" })).body?.cancel();
    const created = await fetch(url("/files/"), {
      method: "POST",
      headers: { ...tus, "upload-defer-length": "1" },
    });
    await created.body?.cancel();
    const deferred = new URL(created.headers.get("location")!, url("/files/"));
    for (
      const headers of <Record<string, string>[]> [
        {
          "upload-offset": "0",
          "upload-length": "3",
          "upload-checksum": "sha1 " + btoa("x".repeat(20)),
        },
        {
          "upload-offset": "5",
          "x-http-method-override": "PATCH",
        },
      ]
    ) {
      await (await fetch(deferred, {
        method: "PATCH",
        headers: {
          ...tus,
          "content-type": "application/offset+octet-stream",
          ...headers,
        },
        body: "abc",
      })).body?.cancel();
    }
    const draft = await fetch(url("/files/"), {
      method: "POST",
      headers: { "upload-complete": "?0" },
    });
    await draft.body?.cancel();
    await (await fetch(
      new URL(draft.headers.get("location")!, url("/files/")),
      {
        method: "PATCH",
        headers: {
          "content-type": "application/partial-upload",
          "upload-offset": "9",
          "upload-complete": "?1",
        },
        body: "abc",
      },
    )).body?.cancel();

    // An event stream that resumes from an id, and a compressed duplex.
    const feed = fetchEventStream(url("/events"), { lastEventId: "4" });
    for await (const _ of feed) break;
    const { stream, response } = openDuplex(url("/duplex"), {
      sendCompression: "gzip",
      acceptCompression: ["gzip"],
    });
    await stream.write(data);
    await stream.closeWrite();
    for await (const _ of stream.readable);
    assert.equal((await response).status, 200);

    for (const name of ["upload-offset", "last-event-id", "content-digest"]) {
      assert.ok(requestHeaders.has(name), `${name} not sent`);
    }
    for (const name of ["location", "tus-version", "upload-limit"]) {
      assert.ok(responseHeaders.has(name), `${name} not answered`);
    }
    assert.deepEqual(
      [...methods].filter((method) => !cors.allowedMethods.includes(method)),
      [],
      "methods not allowed",
    );
    assert.deepEqual(
      [...requestHeaders].filter((name) =>
        !BROWSER_OWN.has(name) && !cors.allowedHeaders.includes(name)
      ),
      [],
      "request headers not allowed",
    );
    assert.deepEqual(
      [...responseHeaders].filter((name) =>
        !SAFELISTED.has(name) && !cors.exposedHeaders.includes(name)
      ),
      [],
      "response headers not exposed",
    );
  });

  it("exposes every header of serve's own 503 (Retry-After, which fetchEventStream waits out), for a CORS layer that answers with them", async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => release = resolve);
    const busy = await serve(() => held.then(() => new Response("done")), {
      hostname: "127.0.0.1",
      port: 0,
      maxConcurrentRequests: 1,
    });
    try {
      const holding = fetch(busy.url);
      let refused: Response | undefined;
      for (let i = 0; i < 500 && !refused; i++) {
        const probe = await fetch(busy.url);
        await probe.body?.cancel();
        if (probe.status === 503) refused = probe;
        else await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.ok(refused, "no 503");
      const names: string[] = [];
      refused.headers.forEach((_, name) => names.push(name));
      assert.ok(names.includes("retry-after"));
      assert.deepEqual(
        names.filter((name) =>
          !SAFELISTED.has(name) && !cors.exposedHeaders.includes(name)
        ),
        [],
      );
      release();
      await (await holding).body?.cancel();
    } finally {
      release();
      await busy.shutdown();
    }
  });

  it("is frozen: a caller adds its own headers to copies", () => {
    assert.ok(Object.isFrozen(cors));
    for (const list of Object.values(cors)) assert.ok(Object.isFrozen(list));
    assert.throws(() => (cors.exposedHeaders as string[]).push("x"));
  });
});
