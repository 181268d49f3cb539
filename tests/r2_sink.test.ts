// createR2Sink against an in-memory bucket that models R2's documented put
// and multipart semantics (tests/_r2_fake.ts): nothing is stored until the
// sink closes, a rejected upload leaves the previous object and no open
// multipart upload, chunked and fixed-length bodies both work.
// tests/r2_sink_workerd.test.ts runs the same flows against miniflare's R2.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createR2Sink } from "../lib/runtime/workers.ts";
import { _createR2Sink } from "../lib/runtime/r2_sink.ts";
import { HttpError, receiveBody } from "../lib/http/mod.ts";
import { FakeR2Bucket } from "./_r2_fake.ts";
import { WatchedViews } from "./_memory.ts";

const MiB = 1024 * 1024;
const PART = 5 * MiB;

/** Random bytes (`_seed` only names distinct bodies at call sites). */
function pattern(size: number, _seed = 1): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) {
    crypto.getRandomValues(bytes.subarray(i, Math.min(size, i + 65536)));
  }
  return bytes;
}

function digest(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** `bytes` as a stream of chunks of random sizes up to `max`. */
function chunked(bytes: Uint8Array, max = 300_000): ReadableStream<Uint8Array> {
  let offset = 0;
  let x = bytes.length;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      x = (x * 1103515245 + 12345) >>> 0;
      const n = 1 + (x % max);
      controller.enqueue(bytes.slice(offset, offset + n));
      offset += n;
    },
  });
}

/**
 * What a receiver does: counts and hashes the body on its way to the sink
 * and fails the pipe (so the sink is aborted, never closed) on a digest
 * mismatch or over `maxBytes`.
 */
function verify(
  expected: string | undefined,
  maxBytes = Infinity,
): TransformStream<Uint8Array, Uint8Array> {
  const hash = createHash("sha256");
  let bytes = 0;
  return new TransformStream({
    transform(chunk, controller) {
      bytes += chunk.length;
      if (bytes > maxBytes) {
        throw new RangeError(`Cannot accept body: over maxBytes ${maxBytes}`);
      }
      hash.update(chunk);
      controller.enqueue(chunk);
    },
    flush() {
      const actual = hash.digest("hex");
      if (expected !== undefined && actual !== expected) {
        throw new Error("Cannot accept body: Content-Digest mismatch");
      }
    },
  });
}

async function seed(bucket: FakeR2Bucket, key: string, bytes: Uint8Array) {
  await chunked(bytes).pipeTo(createR2Sink(bucket, key));
  assert.equal(sha256(bucket.objects.get(key)!.bytes), sha256(bytes));
}

describe("createR2Sink", () => {
  it("stores a small body with one put, with sha256 and metadata", async () => {
    const bucket = new FakeR2Bucket();
    const body = pattern(1000);
    await chunked(body, 100).pipeTo(createR2Sink(bucket, "k", {
      sha256: digest(body),
      httpMetadata: { contentType: "text/plain" },
      customMetadata: { by: "test" },
    }));
    assert.deepEqual(bucket.calls, ["put"]);
    const object = bucket.objects.get("k")!;
    assert.deepEqual(object.bytes, body);
    assert.equal(object.options?.sha256, sha256(body));
    assert.deepEqual(object.options?.httpMetadata, {
      contentType: "text/plain",
    });
    assert.deepEqual(object.options?.customMetadata, { by: "test" });
  });

  it("stores a chunked body of several parts through a multipart upload", async () => {
    const bucket = new FakeR2Bucket();
    const body = pattern(2 * PART + 12345);
    await chunked(body).pipeThrough(verify(sha256(body))).pipeTo(
      createR2Sink(bucket, "k", { partBytes: PART }),
    );
    assert.deepEqual(bucket.calls, [
      "create",
      "uploadPart",
      "uploadPart",
      "uploadPart",
      "complete",
    ]);
    assert.equal(sha256(bucket.objects.get("k")!.bytes), sha256(body));
    assert.equal(bucket.open.size, 0);
  });

  it("stores a body of exactly one part with put, of two with two parts", async () => {
    const bucket = new FakeR2Bucket();
    await chunked(pattern(PART)).pipeTo(
      createR2Sink(bucket, "one", { partBytes: PART }),
    );
    assert.deepEqual(bucket.calls, ["put"]);
    bucket.calls.length = 0;
    const two = pattern(2 * PART, 3);
    await ReadableStream.from([two]).pipeTo(
      createR2Sink(bucket, "two", { partBytes: PART }),
    );
    assert.deepEqual(bucket.calls, [
      "create",
      "uploadPart",
      "uploadPart",
      "complete",
    ]);
    assert.equal(sha256(bucket.objects.get("two")!.bytes), sha256(two));
  });

  it("stores an empty body as an empty object", async () => {
    const bucket = new FakeR2Bucket();
    await ReadableStream.from<Uint8Array>([]).pipeTo(createR2Sink(bucket, "k"));
    assert.equal(bucket.objects.get("k")!.bytes.length, 0);
  });

  it("keeps the previous object when the digest does not match", async () => {
    for (const size of [1000, 2 * PART + 1]) {
      const bucket = new FakeR2Bucket();
      const old = pattern(777, 9);
      await seed(bucket, "k", old);
      const body = pattern(size);
      await assert.rejects(
        chunked(body).pipeThrough(verify(sha256(old))).pipeTo(
          createR2Sink(bucket, "k", { partBytes: PART }),
        ),
        /Content-Digest mismatch/,
      );
      assert.deepEqual(bucket.objects.get("k")!.bytes, old);
      assert.equal(bucket.open.size, 0, "no multipart upload left open");
    }
  });

  it("keeps the previous object when R2 refuses put's sha256", async () => {
    const bucket = new FakeR2Bucket();
    const old = pattern(10, 2);
    await seed(bucket, "k", old);
    await assert.rejects(
      ReadableStream.from([pattern(100)]).pipeTo(
        createR2Sink(bucket, "k", { sha256: digest(old) }),
      ),
      /checksum/,
    );
    assert.deepEqual(bucket.objects.get("k")!.bytes, old);
  });

  it("keeps the previous object when the body is over the receiver's limit", async () => {
    const bucket = new FakeR2Bucket();
    const old = pattern(10, 2);
    await seed(bucket, "k", old);
    await assert.rejects(
      chunked(pattern(3 * PART)).pipeThrough(verify(undefined, 2 * PART + 5))
        .pipeTo(createR2Sink(bucket, "k", { partBytes: PART })),
      /maxBytes/,
    );
    assert.deepEqual(bucket.objects.get("k")!.bytes, old);
    assert.equal(bucket.open.size, 0);
    assert.ok(bucket.calls.includes("abort"));
  });

  it("keeps the previous object when the client aborts mid-body", async () => {
    const bucket = new FakeR2Bucket();
    const old = pattern(10, 2);
    await seed(bucket, "k", old);
    const body = pattern(PART + 100);
    let sent = 0;
    const source = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= body.length) {
          controller.error(new Error("client disconnected"));
          return;
        }
        controller.enqueue(body.slice(sent, sent + 65536));
        sent += 65536;
      },
    });
    await assert.rejects(
      source.pipeTo(createR2Sink(bucket, "k", { partBytes: PART })),
      /client disconnected/,
    );
    assert.deepEqual(bucket.objects.get("k")!.bytes, old);
    assert.equal(bucket.open.size, 0);
  });

  it("aborts the multipart upload when a part fails to upload", async () => {
    const bucket = new FakeR2Bucket();
    const old = pattern(10, 2);
    await seed(bucket, "k", old);
    bucket.failOn("uploadPart", 2);
    await assert.rejects(
      ReadableStream.from([pattern(3 * PART)]).pipeTo(
        createR2Sink(bucket, "k", { partBytes: PART }),
      ),
      /uploadPart failed/,
    );
    assert.deepEqual(bucket.objects.get("k")!.bytes, old);
    assert.equal(bucket.open.size, 0);
  });

  it("aborts the multipart upload when complete fails", async () => {
    const bucket = new FakeR2Bucket();
    const old = pattern(10, 2);
    await seed(bucket, "k", old);
    bucket.failOn("complete");
    await assert.rejects(
      ReadableStream.from([pattern(PART + 1)]).pipeTo(
        createR2Sink(bucket, "k", { partBytes: PART }),
      ),
      /complete failed/,
    );
    assert.deepEqual(bucket.objects.get("k")!.bytes, old);
    assert.equal(bucket.open.size, 0);
  });

  it("leaves one whole object from two concurrent uploads to one key", async () => {
    const bucket = new FakeR2Bucket();
    const a = pattern(2 * PART + 10, 5);
    const b = pattern(PART + 99, 6);
    await Promise.all([
      chunked(a).pipeTo(createR2Sink(bucket, "k", { partBytes: PART })),
      chunked(b).pipeTo(createR2Sink(bucket, "k", { partBytes: PART })),
    ]);
    const stored = sha256(bucket.objects.get("k")!.bytes);
    assert.ok(stored === sha256(a) || stored === sha256(b));
    assert.equal(bucket.open.size, 0);
  });

  it("leaves the old object or one whole new one when concurrent uploads fail", async () => {
    const bucket = new FakeR2Bucket();
    const old = pattern(10, 2);
    await seed(bucket, "k", old);
    const good = pattern(PART + 7, 7);
    const bad = pattern(PART + 8, 8);
    const results = await Promise.allSettled([
      chunked(good).pipeThrough(verify(sha256(good))).pipeTo(
        createR2Sink(bucket, "k", { partBytes: PART }),
      ),
      chunked(bad).pipeThrough(verify(sha256(good))).pipeTo(
        createR2Sink(bucket, "k", { partBytes: PART }),
      ),
    ]);
    assert.deepEqual(results.map((r) => r.status), ["fulfilled", "rejected"]);
    assert.equal(sha256(bucket.objects.get("k")!.bytes), sha256(good));
    assert.equal(bucket.open.size, 0);
  });

  it("holds at most one part in memory: writes wait while a part uploads", async () => {
    const bucket = new FakeR2Bucket();
    let pulled = 0;
    const size = 3 * PART;
    const source = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (pulled >= size) return controller.close();
        controller.enqueue(new Uint8Array(MiB));
        pulled += MiB;
      },
    }, { highWaterMark: 0 });
    const original = bucket.createMultipartUpload.bind(bucket);
    let pulledAtFirstPart = -1;
    bucket.createMultipartUpload = async (key, options) => {
      const upload = await original(key, options);
      const uploadPart = upload.uploadPart;
      upload.uploadPart = (n, v) => {
        if (pulledAtFirstPart < 0) pulledAtFirstPart = pulled;
        return uploadPart(n, v);
      };
      return upload;
    };
    await source.pipeTo(createR2Sink(bucket, "k", { partBytes: PART }));
    // The first part went out after one part and one chunk were read.
    assert.ok(pulledAtFirstPart <= PART + 2 * MiB, `${pulledAtFirstPart}`);
    assert.equal(bucket.objects.get("k")!.bytes.length, size);
  });

  describe("past R2's 10,000 parts (here 3, for R2_MAX_PARTS)", () => {
    const MAX = 3;

    it("stores a body of exactly that many full parts", async () => {
      const bucket = new FakeR2Bucket();
      const body = pattern(MAX * PART);
      await chunked(body).pipeTo(
        _createR2Sink(bucket, "k", { partBytes: PART }, MAX),
      );
      assert.equal(sha256(bucket.objects.get("k")!.bytes), sha256(body));
      assert.equal(bucket.calls.filter((c) => c === "uploadPart").length, MAX);
    });

    it("refuses one byte more with a 413 naming the limit, uploading no part past it and keeping the previous object", async () => {
      const bucket = new FakeR2Bucket();
      const old = pattern(10, 2);
      await seed(bucket, "k", old);
      bucket.calls.length = 0;
      const error = await chunked(pattern(MAX * PART + 1)).pipeTo(
        _createR2Sink(bucket, "k", { partBytes: PART }, MAX),
      ).then(() => undefined, (e) => e);
      assert.ok(error instanceof HttpError, String(error));
      assert.equal(error.status, 413);
      assert.equal(
        error.message,
        `Cannot store body in R2: it is larger than 3 parts of partBytes ${PART} (${
          3 * PART
        } bytes), the most parts R2 takes; raise partBytes (at most 5 GiB)`,
      );
      // The last part R2 would take never went up: the body was refused
      // once it could not fit.
      assert.deepEqual(bucket.calls, [
        "create",
        "uploadPart",
        "uploadPart",
        "abort",
      ]);
      assert.deepEqual(bucket.objects.get("k")!.bytes, old);
      assert.equal(bucket.open.size, 0);
    });

    it("is the receiver's answer: receiveBody rejects with that 413", async () => {
      const bucket = new FakeR2Bucket();
      const request = new Request("http://x/", {
        method: "PUT",
        body: chunked(pattern(MAX * PART + 100_000)),
        duplex: "half",
      } as RequestInit);
      await assert.rejects(
        receiveBody(
          request,
          _createR2Sink(bucket, "k", { partBytes: PART }, MAX),
          {
            maxBytes: 1024 * MiB,
          },
        ),
        (error: unknown) =>
          error instanceof HttpError && error.status === 413 &&
          /larger than 3 parts of partBytes/.test(error.message),
      );
      assert.equal(bucket.objects.has("k"), false);
      assert.equal(bucket.open.size, 0);
    });
  });

  it("rejects a part size R2 would refuse and a malformed sha256", () => {
    const bucket = new FakeR2Bucket();
    assert.throws(
      () => createR2Sink(bucket, "k", { partBytes: PART - 1 }),
      /Cannot create R2 sink: partBytes must be between 5 MiB and 5 GiB/,
    );
    assert.throws(
      () => createR2Sink(bucket, "k", { sha256: new Uint8Array(31) }),
      /Cannot create R2 sink: sha256 must be 32 bytes, got 31/,
    );
  });
});

describe("createR2Sink keeps the bytes of small chunks, not their buffers", () => {
  // workerd's request body chunks view 4 KiB buffers of their own
  // (measured: 2,000 one-byte chunks of a request, 8,192,000 bytes of
  // buffers): kept as views until a part filled (8 MiB by default), a
  // Worker trickled one-byte chunks passed its 128 MB within 32,000 of them.
  // (The resumable store likewise: tests/resumable_workers.test.ts.)
  const CHUNKS = 2_000;

  it("createR2Sink", async () => {
    const views = new WatchedViews(4096);
    const bucket = new FakeR2Bucket();
    const writer = createR2Sink(bucket, "k").getWriter();
    for (let i = 0; i < CHUNKS; i++) await writer.write(views.view());
    const kept = await views.alive();
    await writer.close();
    assert.ok(kept <= 2, `${kept} of ${CHUNKS} 4 KiB buffers kept`);
    const stored = await bucket.get("k");
    assert.equal(
      (await new Response(stored!.body).arrayBuffer()).byteLength,
      CHUNKS,
    );
  });
});
