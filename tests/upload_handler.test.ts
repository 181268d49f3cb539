// createUploadHandler and receiveBody in process: the docs/api.md vocabulary
// (params, onComplete, the 201 answer), stream input, RFC 9530 digests in
// sha-256 and sha-512 and unsupported algorithms, the minimum rate and the
// total deadline, and HttpError.getResponse as a router calls it.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  createUploadHandler,
  formatDigestHeader,
  HttpError,
  receiveBody,
  safeFileName,
} from "../mod.ts";
import { createFileSink, createHasher } from "../lib/runtime/fs.ts";
import { join } from "node:path";
import { readFile } from "node:fs/promises";
import { createHasher as createWorkersHasher } from "../lib/runtime/workers.ts";
import {
  captureConsole,
  deadline,
  makeTempDir,
  removeDir,
  runtime,
} from "./_helpers.ts";
import { byteChunks, probeSource, settled } from "./_stream_probe.ts";

const enc = new TextEncoder();

function digest(algorithm: "sha256" | "sha512", bytes: Uint8Array) {
  return new Uint8Array(createHash(algorithm).update(bytes).digest());
}

function post(body: BodyInit | null, headers: HeadersInit = {}): Request {
  return new Request("http://localhost/upload", {
    method: "POST",
    body,
    headers,
  });
}

/** A sink that keeps what it is given, and whether it was closed/aborted. */
function memorySink() {
  const chunks: Uint8Array[] = [];
  const state = { closed: false, aborted: undefined as unknown };
  const sink = new WritableStream<Uint8Array>({
    write: (chunk) => void chunks.push(chunk.slice()),
    close: () => void (state.closed = true),
    abort: (reason) => void (state.aborted = reason ?? "aborted"),
  });
  const text = () => new TextDecoder().decode(concat(chunks));
  return { sink, state, text };
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

/** A body that sends `chunk` every `everyMs`, `count` times. */
function drip(chunk: Uint8Array, everyMs: number, count: number) {
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (sent === count) {
        controller.close();
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, everyMs));
      sent++;
      controller.enqueue(chunk);
    },
  });
}

describe("createUploadHandler", () => {
  it("createUploadHandler answers 201 with JSON bytes and base64 sha256 and a Repr-Digest", async () => {
    const handler = createUploadHandler({
      sink: () => new WritableStream(),
      hasher: createHasher,
    });
    const body = enc.encode("hello");
    const response = await handler(post(body));
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("content-type"), "application/json");
    const sha = digest("sha256", body);
    assert.deepEqual(await response.json(), {
      bytes: 5,
      sha256: btoa(String.fromCharCode(...sha)),
    });
    assert.equal(
      response.headers.get("repr-digest"),
      formatDigestHeader({ "sha-256": sha }),
    );
  });

  it("createUploadHandler answers 201 with only bytes when no hasher ran", async () => {
    const handler = createUploadHandler({ sink: () => new WritableStream() });
    const response = await handler(post("hi"));
    assert.equal(response.status, 201);
    assert.deepEqual(await response.json(), { bytes: 2 });
    assert.equal(response.headers.get("repr-digest"), null);
  });

  it("createUploadHandler with readAheadBytes 0 receives the whole body", async () => {
    const { sink, state, text } = memorySink();
    const handler = createUploadHandler({
      sink: () => sink,
      readAheadBytes: 0,
    });
    const chunks = ["block one, ", "block two, ", "block three"];
    const response = await deadline(
      handler(post(ReadableStream.from(chunks.map((c) => enc.encode(c))))),
      5_000,
      "an upload with readAheadBytes 0",
    );
    assert.equal(response.status, 201);
    assert.deepEqual(await response.json(), { bytes: chunks.join("").length });
    assert.equal(text(), chunks.join(""));
    assert.equal(state.closed, true);
  });

  it("createUploadHandler passes { params } to sink and onComplete", async () => {
    const seen: Record<string, string>[] = [];
    const handler = createUploadHandler({
      sink: (_request, { params }) => {
        seen.push(params);
        return new WritableStream();
      },
      onComplete: (result, request, { params }) =>
        new Response(`${params.name} ${result.bytes} ${request.method}`),
    });
    const response = await handler(post("abc"), { params: { name: "a.pdf" } });
    assert.equal(await response.text(), "a.pdf 3 POST");
    assert.deepEqual(seen, [{ name: "a.pdf" }]);
  });

  it("createUploadHandler ignores a runtime's own second argument (Deno's ServeHandlerInfo)", async () => {
    const seen: Record<string, string>[] = [];
    const handler = createUploadHandler({
      sink: (_request, { params }) => {
        seen.push(params);
        return new WritableStream();
      },
    });
    const info = { remoteAddr: { hostname: "127.0.0.1", port: 1 } };
    // deno-lint-ignore no-explicit-any
    const response = await handler(post("abc"), info as any);
    assert.equal(response.status, 201);
    assert.deepEqual(seen, [{}]);
  });

  it("createUploadHandler passes the params a router put on the request (itty-router, Bun.serve's routes) when no second argument gives them (they were ignored: params.name undefined)", async () => {
    const seen: Record<string, string>[] = [];
    const handler = createUploadHandler({
      sink: (_request, { params }) => {
        seen.push(params);
        return new WritableStream();
      },
      onComplete: (_result, _request, { params }) =>
        new Response(`stored as ${params.name}`),
    });
    // As itty-router does: the parameters set on the request itself.
    const request = Object.assign(post("abc"), {
      params: { name: "report.pdf" },
    });
    const info = { remoteAddr: { hostname: "127.0.0.1", port: 1 } };
    // deno-lint-ignore no-explicit-any
    const response = await handler(request, info as any);
    assert.equal(await response.text(), "stored as report.pdf");
    // A second argument's { params } wins over the request's.
    const again = Object.assign(post("abc"), { params: { name: "no.pdf" } });
    const given = await handler(again, { params: { name: "yes.pdf" } });
    assert.equal(await given.text(), "stored as yes.pdf");
    assert.deepEqual(seen, [{ name: "report.pdf" }, { name: "yes.pdf" }]);
  });

  it(
    "createUploadHandler mounted in Bun.serve's routes stores the file under its route's :name",
    {
      skip: runtime !== "bun" && "Bun.serve's routes",
    },
    async () => {
      const dir = await makeTempDir("sluice-bun-routes-");
      try {
        const upload = createUploadHandler({
          sink: (_request, { params }) =>
            createFileSink(join(dir, safeFileName(params.name))),
          onComplete: () => new Response("File Received!"),
        });
        // deno-lint-ignore no-explicit-any
        const server = (globalThis as any).Bun.serve({
          hostname: "127.0.0.1",
          port: 0,
          routes: { "/files/:name": { PUT: upload } },
          fetch: () => new Response("not found", { status: 404 }),
        });
        try {
          const response = await fetch(
            `http://127.0.0.1:${server.port}/files/report.pdf`,
            { method: "PUT", body: "hello" },
          );
          assert.equal(response.status, 200, await response.clone().text());
          assert.equal(await response.text(), "File Received!");
          assert.equal(
            await readFile(join(dir, "report.pdf"), "utf8"),
            "hello",
          );
        } finally {
          await server.stop(true);
        }
      } finally {
        await removeDir(dir);
      }
    },
  );

  it("createUploadHandler answers a request's onComplete error as its HttpError", async () => {
    const handler = createUploadHandler({
      sink: () => new WritableStream(),
      onComplete: () => {
        throw new HttpError(409, "Cannot store: exists");
      },
    });
    const response = await handler(post("x"));
    assert.equal(response.status, 409);
    assert.equal(await response.text(), "Cannot store: exists");
  });
});

describe("createUploadHandler's onError", () => {
  it("is told of a 5xx answer (a sink that failed) and its cause, and not of a 4xx; by default it logs", async () => {
    // Before, the README's example run where ./uploads did not exist
    // answered 500 and nothing said why: the file system's error stayed in
    // an HttpError's cause that nobody saw.
    const dir = await makeTempDir("upload-onerror-");
    try {
      const missing = join(dir, "no-such-dir", "a.bin");
      const seen: unknown[] = [];
      const handler = createUploadHandler({
        sink: () => createFileSink(missing),
        maxBytes: 10,
        onError: (error) => seen.push(error),
      });
      const put = (body: string) =>
        handler(
          new Request("http://localhost/", { method: "PUT", body }),
        );
      const failed = await put("hello");
      assert.equal(failed.status, 500);
      assert.doesNotMatch(await failed.text(), /no-such-dir/);
      assert.equal(seen.length, 1);
      const error = seen[0] as HttpError;
      assert.ok(error instanceof HttpError && error.status === 500);
      assert.equal((error.cause as { code?: string }).code, "ENOENT");
      const tooBig = await put("more than ten bytes");
      assert.equal(tooBig.status, 413);
      assert.equal(seen.length, 1);

      const { logged, restore } = captureConsole("error");
      try {
        const quiet = createUploadHandler({
          sink: () => createFileSink(missing),
        });
        const response = await quiet(
          new Request("http://localhost/", { method: "PUT", body: "x" }),
        );
        assert.equal(response.status, 500);
        assert.equal(logged.length, 1);
        assert.equal(logged[0][0], "sluice: upload failed:");
      } finally {
        restore();
      }
    } finally {
      await removeDir(dir);
    }
  });
});

describe("Content-Digest (RFC 9530)", () => {
  const body = enc.encode("All work and no play");

  it("receiveBody verifies a sha-512 Content-Digest", async () => {
    const sha512 = digest("sha512", body);
    const { sink, state } = memorySink();
    const received = await receiveBody(
      post(body, {
        "content-digest": formatDigestHeader({ "sha-512": sha512 }),
      }),
      sink,
      { hasher: createHasher },
    );
    assert.deepEqual(received.sha512, sha512);
    assert.deepEqual(received.sha256, digest("sha256", body));
    assert.deepEqual(received.verified, ["sha-512"]);
    assert.equal(state.closed, true);
  });

  it("receiveBody refuses a sha-512 mismatch with 400 and aborts the sink", async () => {
    const { sink, state } = memorySink();
    await assert.rejects(
      receiveBody(
        post(body, {
          "content-digest": formatDigestHeader({
            "sha-512": new Uint8Array(64),
          }),
        }),
        sink,
        { hasher: createHasher },
      ),
      (error: HttpError) =>
        error.status === 400 && /SHA-512 does not match/.test(error.message),
    );
    assert.ok(state.aborted);
    assert.equal(state.closed, false);
  });

  it("receiveBody checks both digests when sha-256 and sha-512 are sent, and refuses if either mismatches", async () => {
    const good = await receiveBody(
      post(body, {
        "content-digest": formatDigestHeader({
          "sha-256": digest("sha256", body),
          "sha-512": digest("sha512", body),
        }),
      }),
      new WritableStream(),
      { hasher: createWorkersHasher },
    );
    assert.deepEqual(good.verified, ["sha-256", "sha-512"]);
    await assert.rejects(
      receiveBody(
        post(body, {
          "content-digest": formatDigestHeader({
            "sha-256": digest("sha256", body),
            "sha-512": new Uint8Array(64),
          }),
        }),
        new WritableStream(),
        { hasher: createHasher },
      ),
      (error: HttpError) => error.status === 400,
    );
  });

  it("receiveBody ignores an md5-only Content-Digest: accepted unverified, listed in unverifiedDigests", async () => {
    const { sink, state } = memorySink();
    const received = await receiveBody(
      post(body, { "content-digest": "md5=:AAAAAAAAAAAAAAAAAAAAAA==:" }),
      sink,
      { hasher: createHasher },
    );
    assert.equal(received.bytes, body.byteLength);
    assert.equal(received.verified, undefined);
    assert.deepEqual(received.unverifiedDigests, ["md5"]);
    assert.equal(state.closed, true);
  });

  it("receiveBody checks the supported digest and ignores an unknown one beside it", async () => {
    const received = await receiveBody(
      post(body, {
        "content-digest": `unixsum=:AAAA:, ${
          formatDigestHeader({ "sha-256": digest("sha256", body) })
        }`,
      }),
      new WritableStream(),
      { hasher: createHasher },
    );
    assert.deepEqual(received.verified, ["sha-256"]);
    assert.equal(received.unverifiedDigests, undefined);
  });

  it("createUploadHandler answers an md5-only Content-Digest with 201 and Want-Content-Digest", async () => {
    const handler = createUploadHandler({
      sink: () => new WritableStream(),
      hasher: createHasher,
    });
    const response = await handler(
      post(body, { "content-digest": "md5=:AAAAAAAAAAAAAAAAAAAAAA==:" }),
    );
    assert.equal(response.status, 201);
    assert.equal(
      response.headers.get("want-content-digest"),
      "sha-256=10, sha-512=5",
    );
  });

  it("receiveBody refuses a sha-512 Content-Digest with 500 before reading when the hasher cannot make sha-512", async () => {
    let pulled = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        controller.enqueue(body);
        controller.close();
      },
    }, { highWaterMark: 0 });
    await assert.rejects(
      receiveBody(stream, new WritableStream(), {
        headers: {
          "content-digest": formatDigestHeader({
            "sha-512": digest("sha512", body),
          }),
        },
        hasher: (algorithm) =>
          algorithm === "sha-256" ? createHasher(algorithm) : undefined,
      }),
      (error: HttpError) =>
        error.status === 500 && /no sha512 hasher/.test(error.message),
    );
    assert.equal(pulled, 0);
  });

  it("createHasher returns undefined for an algorithm it does not know", () => {
    // deno-lint-ignore no-explicit-any
    assert.equal(createHasher("md5" as any), undefined);
    // deno-lint-ignore no-explicit-any
    assert.equal(createHasher("__proto__" as any), undefined);
  });
});

describe("receiveBody from a stream", () => {
  it("receiveBody takes a stream with contentLength and checks it", async () => {
    const { sink, text } = memorySink();
    const received = await receiveBody(
      ReadableStream.from([enc.encode("hel"), enc.encode("lo")]),
      sink,
      { contentLength: 5 },
    );
    assert.deepEqual(received, { bytes: 5 });
    assert.equal(text(), "hello");
    await assert.rejects(
      receiveBody(
        ReadableStream.from([enc.encode("hi")]),
        new WritableStream(),
        {
          contentLength: 5,
        },
      ),
      (error: HttpError) => error.status === 400,
    );
  });

  it("receiveBody refuses a stream's contentLength over maxBytes with 413 before reading", async () => {
    await assert.rejects(
      receiveBody(
        ReadableStream.from([enc.encode("hi")]),
        new WritableStream(),
        {
          contentLength: 10,
          maxBytes: 5,
        },
      ),
      (error: HttpError) =>
        error.status === 413 && /maxBytes 5/.test(error.message),
    );
  });

  it("receiveBody checks a stream's expected sha256 option", async () => {
    const body = enc.encode("part");
    const ok = await receiveBody(
      ReadableStream.from([body]),
      new WritableStream(),
      {
        sha256: digest("sha256", body),
        hasher: createHasher,
      },
    );
    assert.deepEqual(ok.verified, ["sha-256"]);
    await assert.rejects(
      receiveBody(ReadableStream.from([body]), new WritableStream(), {
        sha256: new Uint8Array(32),
        hasher: createHasher,
      }),
      (error: HttpError) => error.status === 400,
    );
  });

  it("receiveBody reads a stream's Content-Length and Content-Digest from the headers option", async () => {
    const body = enc.encode("part");
    await assert.rejects(
      receiveBody(ReadableStream.from([body]), new WritableStream(), {
        headers: { "content-length": "3" },
      }),
      (error: HttpError) => error.status === 400,
    );
    const ok = await receiveBody(
      ReadableStream.from([body]),
      new WritableStream(),
      {
        headers: {
          "content-digest": formatDigestHeader({
            "sha-256": digest("sha256", body),
          }),
        },
        hasher: createHasher,
      },
    );
    assert.deepEqual(ok.verified, ["sha-256"]);
  });
});

describe("slow clients", () => {
  it("receiveBody refuses a client under minBytesPerSecond with 408 naming the option", async () => {
    // 1 byte every 20 ms is 50 B/s: under 1000 B/s, measured over 200 ms
    // windows; the idle timeout (default 30 s) never fires.
    const { sink, state } = memorySink();
    const error = await deadline(
      receiveBody(drip(new Uint8Array(1), 20, 1000), sink, {
        minBytesPerSecond: 1000,
        minRateWindowMs: 200,
      }).then(() => undefined, (e) => e),
      10_000,
      "min rate",
    );
    assert.ok(error instanceof HttpError, String(error));
    assert.equal(error.status, 408);
    assert.match(error.message, /minBytesPerSecond/);
    assert.ok(state.aborted);
  });

  it("receiveBody accepts a client above minBytesPerSecond", async () => {
    // 1 KiB every 10 ms is about 100 KiB/s: far above 1000 B/s.
    const received = await deadline(
      receiveBody(drip(new Uint8Array(1024), 10, 40), new WritableStream(), {
        minBytesPerSecond: 1000,
        minRateWindowMs: 100,
      }),
      10_000,
      "fast enough",
    );
    assert.equal(received.bytes, 40 * 1024);
  });

  it("receiveBody does not count a slow sink against minBytesPerSecond", async () => {
    // The client sends everything at once; the sink takes 30 ms a chunk.
    const chunks = Array.from({ length: 20 }, () => new Uint8Array(16));
    const sink = new WritableStream<Uint8Array>({
      write: () => new Promise((resolve) => setTimeout(resolve, 30)),
    }, new CountQueuingStrategy({ highWaterMark: 1 }));
    const received = await deadline(
      receiveBody(ReadableStream.from(chunks), sink, {
        minBytesPerSecond: 1_000_000,
        minRateWindowMs: 50,
        readAheadBytes: 16,
      }),
      10_000,
      "slow sink",
    );
    assert.equal(received.bytes, 320);
  });

  it("receiveBody refuses a body not done within timeoutMs with 408 naming the option", async () => {
    const { sink, state } = memorySink();
    const error = await deadline(
      receiveBody(drip(new Uint8Array(1024), 20, 1000), sink, {
        timeoutMs: 150,
      }).then(() => undefined, (e) => e),
      10_000,
      "deadline",
    );
    assert.ok(error instanceof HttpError, String(error));
    assert.equal(error.status, 408);
    assert.match(error.message, /timeoutMs/);
    assert.ok(state.aborted);
  });

  it("receiveBody refuses a bad minBytesPerSecond or timeoutMs with a RangeError", async () => {
    await assert.rejects(
      receiveBody(post("x"), new WritableStream(), { minBytesPerSecond: -1 }),
      /minBytesPerSecond must be a non-negative number/,
    );
    await assert.rejects(
      receiveBody(post("x"), new WritableStream(), { timeoutMs: NaN }),
      /timeoutMs must be a non-negative number/,
    );
  });

  it("receiveBody refuses a bad readAheadBytes with a RangeError and aborts the sink", async () => {
    for (const bad of [-1, 0.5, NaN]) {
      const { sink, state } = memorySink();
      await assert.rejects(
        receiveBody(post("x"), sink, { readAheadBytes: bad }),
        /Cannot receive body: readAheadBytes must be a non-negative integer/,
      );
      assert.ok(state.aborted, `sink aborted for readAheadBytes ${bad}`);
    }
  });
});

/** A sink whose first write waits until `release()`; it keeps the bytes. */
function gatedSink() {
  const gate = Promise.withResolvers<void>();
  const chunks: Uint8Array[] = [];
  let first = true;
  const sink = new WritableStream<Uint8Array>({
    async write(chunk) {
      if (first) {
        first = false;
        await gate.promise;
      }
      chunks.push(chunk.slice());
    },
  });
  return { sink, chunks, release: () => gate.resolve() };
}

describe("receiveBody's read loop", () => {
  for (const readAheadBytes of [0, 4096]) {
    it(`receiveBody reads at most readAheadBytes (${readAheadBytes}) ahead of a sink that holds its first write`, async () => {
      const { stream, pulls } = probeSource(byteChunks(64, 1024));
      const { sink, chunks, release } = gatedSink();
      const receiving = receiveBody(stream, sink, { readAheadBytes });
      for (let i = 0; i < 4; i++) await settled();
      // The chunk in the sink's write, the chunks read ahead (each counts
      // its 1,024-byte buffer), and the one read that found no room.
      const most = 1 + readAheadBytes / 1024 + 1;
      assert.ok(
        pulls() <= most,
        `${pulls()} chunks pulled, at most ${most} expected`,
      );
      assert.ok(pulls() >= 1, "the first chunk was read");
      release();
      const received = await deadline(receiving, 10_000, "receive");
      assert.equal(received.bytes, 64 * 1024);
      assert.equal(chunks.length, 64);
      chunks.forEach((c, i) => assert.equal(c[0], i % 256, `chunk ${i}`));
    });
  }

  it("receiveBody does not count a slow sink against idleTimeoutMs", async () => {
    // Every chunk is there at once; the sink takes 3x the idle timeout for
    // each: the client is never waited for that long.
    const sink = new WritableStream<Uint8Array>({
      write: () => new Promise((resolve) => setTimeout(resolve, 150)),
    });
    const received = await deadline(
      receiveBody(ReadableStream.from(byteChunks(4, 8)), sink, {
        idleTimeoutMs: 50,
      }),
      10_000,
      "slow sink",
    );
    assert.equal(received.bytes, 32);
  });

  it("receiveBody answers an aborted signal mid-body with 503, aborts the sink and cancels the body", async () => {
    const { sink, state } = memorySink();
    const controller = new AbortController();
    const reason = new Error("shutting down");
    let cancelled: unknown;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        controller.enqueue(new Uint8Array(8));
      },
      cancel: (why) => void (cancelled = why ?? "cancelled"),
    }, { highWaterMark: 0 });
    setTimeout(() => controller.abort(reason), 60);
    const error = await deadline(
      receiveBody(body, sink, { signal: controller.signal })
        .then(() => undefined, (e) => e),
      10_000,
      "aborted receive",
    );
    assert.ok(error instanceof HttpError, String(error));
    assert.equal(error.status, 503);
    assert.equal(error.cause, reason);
    assert.ok(state.aborted, "sink aborted");
    assert.equal(state.closed, false);
    assert.equal(cancelled, reason, "body cancelled with the reason");
  });

  it("receiveBody answers a failing sink with 500 (its error the cause) and cancels the body", async () => {
    const { stream, pulls, cancelled } = probeSource(byteChunks(100, 16));
    const failure = new Error("disk full");
    let writes = 0;
    const sink = new WritableStream<Uint8Array>({
      write() {
        if (++writes === 3) throw failure;
      },
    });
    const error = await deadline(
      receiveBody(stream, sink).then(() => undefined, (e) => e),
      10_000,
      "sink failure",
    );
    assert.ok(error instanceof HttpError, String(error));
    assert.equal(error.status, 500);
    assert.equal(error.cause, failure);
    assert.ok(cancelled(), "body cancelled");
    assert.ok(pulls() < 100, `${pulls()} of 100 chunks read`);
  });

  it("receiveBody answers a body that fails (a client gone) with 400 and aborts the sink", async () => {
    const { sink, state } = memorySink();
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ === 3) controller.error(new Error("connection reset"));
        else controller.enqueue(new Uint8Array(8));
      },
    });
    const error = await deadline(
      receiveBody(body, sink).then(() => undefined, (e) => e),
      10_000,
      "body failure",
    );
    assert.ok(error instanceof HttpError, String(error));
    assert.equal(error.status, 400);
    assert.match(error.message, /connection reset/);
    assert.ok(state.aborted, "sink aborted");
    assert.equal(state.closed, false);
  });

  /**
   * A store that never answers a write, but watches its controller's
   * signal: `reason()` is what its abort said.
   */
  function stalledSink() {
    let reason: unknown;
    let signal!: AbortSignal;
    const sink = new WritableStream<Uint8Array>({
      start(controller) {
        signal = controller.signal;
      },
      write: () =>
        new Promise<void>((_, reject) =>
          signal.addEventListener("abort", () => {
            reason = signal.reason;
            reject(signal.reason);
          })
        ),
    });
    return { sink, reason: () => reason };
  }

  it("receiveBody's timeoutMs reaches a sink's stalled write through the sink controller's signal", async () => {
    // A store that never answers a write, but watches its controller's
    // signal (the Streams standard's abort waits for the write otherwise).
    const { sink, reason } = stalledSink();
    const started = performance.now();
    const error = await deadline(
      receiveBody(drip(new Uint8Array(8), 5, 1_000), sink, { timeoutMs: 150 })
        .then(() => undefined, (e) => e),
      5_000,
      "stalled sink",
    );
    assert.ok(error instanceof HttpError, String(error));
    assert.equal(error.status, 408);
    assert.match(error.message, /timeoutMs/);
    assert.equal(reason(), error, "the sink saw the 408 as its abort reason");
    assert.ok(performance.now() - started < 2_000);
  });

  it("receiveBody's timeoutMs also ends the write of the bytes up to maxBytes (a stalled store: 408, not a call held for good)", async () => {
    // The chunk that crosses maxBytes has its bytes up to the limit
    // written first; that write was awaited with no timeout, so a stalled
    // store that watches its signal held the call for good (the abort
    // that tells it came only after the write).
    const { sink, reason } = stalledSink();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new Uint8Array(100)); // and never ends
      },
    });
    const started = performance.now();
    const error = await deadline(
      receiveBody(body, sink, { maxBytes: 50, timeoutMs: 150 })
        .then(() => undefined, (e) => e),
      5_000,
      "stalled sink over the limit",
    );
    assert.ok(error instanceof HttpError, String(error));
    assert.equal(error.status, 408);
    assert.equal(reason(), error, "the sink saw the 408 as its abort reason");
    assert.ok(performance.now() - started < 2_000);
  });

  it("receiveBody refuses a body already read with its TypeError at once, and aborts the sink", async () => {
    // It used to wait forever (the pipe never started).
    const request = post("hello", { "content-length": "5" });
    await request.text();
    const { sink, state } = memorySink();
    const error = await deadline(
      receiveBody(request, sink, { timeoutMs: 60_000 })
        .then(() => undefined, (e) => e),
      2_000,
      "used body",
    );
    assert.ok(error instanceof TypeError, String(error));
    assert.ok(state.aborted, "sink aborted");
  });

  it("receiveBody refuses a sink already locked with its TypeError at once, and cancels the body", async () => {
    const { stream, cancelled } = probeSource(byteChunks(4, 8));
    const sink = new WritableStream<Uint8Array>();
    sink.getWriter();
    const error = await deadline(
      receiveBody(stream, sink).then(() => undefined, (e) => e),
      2_000,
      "locked sink",
    );
    assert.ok(error instanceof TypeError, String(error));
    assert.ok(cancelled(), "body cancelled");
  });
});

describe("HttpError.getResponse", () => {
  it("HttpError.getResponse answers its status and message", async () => {
    const response = new HttpError(413, "Cannot accept body: too big")
      .getResponse();
    assert.equal(response.status, 413);
    assert.equal(await response.text(), "Cannot accept body: too big");
  });

  it("a Hono-style error handler that calls err.getResponse() answers the HttpError's status", async () => {
    // Hono's app.onError / compose: `if ("getResponse" in err) return
    // err.getResponse()`; a router written that way, around our receiver.
    const upload = createUploadHandler({
      sink: () => new WritableStream(),
      maxBytes: 4,
    });
    const route = async (request: Request): Promise<Response> => {
      const response = await upload(request);
      if (response.status >= 400) {
        throw new HttpError(response.status, await response.text());
      }
      return response;
    };
    const app = async (request: Request): Promise<Response> => {
      try {
        return await route(request);
      } catch (err) {
        if (err && typeof err === "object" && "getResponse" in err) {
          return (err as { getResponse(): Response }).getResponse();
        }
        return new Response("Internal Server Error", { status: 500 });
      }
    };
    const response = await app(post("too long", { "content-length": "8" }));
    assert.equal(response.status, 413);
    assert.match(await response.text(), /maxBytes 4/);
  });
});
