// The Workers store in workerd: miniflare (pinned; its own workerd) serves
// tests/_resumable_worker.ts with a disk-backed R2 bucket and Durable
// Objects on 127.0.0.1 port 0. Uploads over both protocols land in R2
// byte-identical, the object is absent until the upload completes, and 20
// connection cuts over 32 MiB (through a cutting TCP proxy) still give a
// byte-identical object.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { Buffer } from "node:buffer";
import { resumableUpload } from "../lib/http/mod.ts";
import {
  createResumableUploadObject,
  createResumableWorkersStore,
} from "../lib/runtime/workers.ts";
import { FakeNamespace } from "./_do_fake.ts";
import { FakeR2Bucket } from "./_r2_fake.ts";
import { Sha256 } from "../lib/runtime/_sha256.ts";
import { deadline, randomBytes, sha256Base64 as sha256 } from "./_helpers.ts";
import { WatchedViews } from "./_memory.ts";
import {
  getWithOneRetry,
  type Miniflare,
  startMiniflare,
} from "./_miniflare.ts";
import { cutPoints, startCuttingProxy } from "./_resumable_proxy.ts";

const MiB = 1024 * 1024;
const T = 120_000;
/**
 * The full fault run (100 cuts during 256 MiB) is the test task's
 * `resumable-faults` step:
 * `SLUICE_RESUMABLE_FULL=1 deno test -A tests/resumable_workers.test.ts`.
 * The deno and bun test steps run 20 cuts over 32 MiB.
 */
const FULL = process.env.SLUICE_RESUMABLE_FULL === "1";
const CUTS = FULL ? 100 : 20;
const CUT_BYTES = (FULL ? 256 : 32) * MiB;

describe("createResumableUploadObject", () => {
  it("refuses a partBytes below R2's 5 MiB smallest part", () => {
    assert.throws(
      () =>
        createResumableUploadObject({
          bucket: () => {
            throw new Error("not reached");
          },
          partBytes: 5 * MiB - 1,
        }),
      (error: unknown) =>
        error instanceof RangeError && /partBytes/.test(error.message),
    );
  });
});

/**
 * A Workers store over fakes of Durable Objects and R2 (parts of
 * `partBytes`, if given), with one upload created.
 */
async function storeWithUpload(partBytes?: number) {
  const bucket = new FakeR2Bucket();
  const UploadObject = createResumableUploadObject({
    bucket: () => bucket,
    partBytes,
  });
  const store = createResumableWorkersStore(
    new FakeNamespace(UploadObject, {}),
  );
  const upload = {
    id: "AAAAAAAAAAAAAAAAAAAAAA",
    offset: 0,
    complete: false,
    createdAt: Date.now(),
  };
  await store.create(upload);
  return { bucket, store, upload };
}

describe("createResumableUploadObject and Durable Objects' 128 keys a write", () => {
  it("refuses a partBytes whose tail would not fit one write, and with the largest it takes saves every tail within the limit", async () => {
    // Before, a partBytes of 16 MiB was taken, and an append that left a
    // tail of over 127 values of 96 KiB wrote them with the state in one
    // put() of more keys than Durable Objects take (workerd asserts it;
    // miniflare does not check, the fake storage here does).
    const largest = 127 * 96 * 1024;
    assert.throws(
      () =>
        createResumableUploadObject({
          bucket: () => new FakeR2Bucket(),
          partBytes: largest + 1,
        }),
      /^RangeError: Cannot create resumable upload object: partBytes must be at most 12484608 \(127 storage values of 98304 bytes: a Durable Object writes at most 128 keys at once\), got 12484609$/,
    );
    const { bucket, store, upload } = await storeWithUpload(largest);
    // One byte short of a part, then a part and all but a byte of another:
    // each save holds the largest tail there can be.
    const data = randomBytes(3 * largest - 2);
    let offset = 0;
    for (const size of [largest - 1, 2 * largest - 1]) {
      const sink = (await store.append(upload.id, offset)).getWriter();
      await sink.write(data.subarray(offset, offset + size));
      await sink.close();
      offset += size;
      assert.equal((await store.get(upload.id))?.offset, offset);
    }
    await store.complete(upload.id);
    const stored = await bucket.get(`uploads/${upload.id}`);
    assert.equal(
      sha256(new Uint8Array(await new Response(stored!.body).arrayBuffer())),
      sha256(data),
    );
  });
});

describe("createResumableWorkersStore keeps the bytes of small chunks, not their buffers", () => {
  it("2,000 one-byte chunks, each viewing a 4 KiB buffer of its own, appended", async () => {
    // workerd's request body chunks view 4 KiB buffers of their own: kept
    // as views until a part filled (8 MiB by default), one-byte chunks
    // passed a Worker's 128 MB within about 32,000 of them.
    const views = new WatchedViews(4096);
    const { store, upload } = await storeWithUpload();
    const writer = (await store.append(upload.id, 0)).getWriter();
    for (let i = 0; i < 2_000; i++) await writer.write(views.view());
    const kept = await views.alive();
    await writer.close();
    assert.ok(kept <= 2, `${kept} of 2000 4 KiB buffers kept`);
    assert.equal((await store.get(upload.id))?.offset, 2_000);
  });
});

describe("createResumableWorkersStore appends a whole chunk (one with a checksum) only once it is closed", () => {
  it("aborted, or its object evicted before the close (a crash), nothing counts; closed, all of it", async () => {
    // Before, the object saved the offset after each R2 part and at the
    // end of the body, before the handler compared the chunk's checksum:
    // a Worker that went before its truncate kept the refused bytes.
    const bucket = new FakeR2Bucket();
    const namespace = new FakeNamespace(
      createResumableUploadObject({ bucket: () => bucket, partBytes: 5 * MiB }),
      {},
    );
    const store = createResumableWorkersStore(namespace);
    const id = "BBBBBBBBBBBBBBBBBBBBBB";
    await store.create({ id, offset: 0, complete: false, createdAt: 0 });
    const data = randomBytes(6 * MiB);
    const write = async () => {
      const sink = (await store.append(id, 0, { whole: true })).getWriter();
      for (let at = 0; at < data.byteLength; at += MiB) {
        await sink.write(data.subarray(at, at + MiB));
      }
      return sink;
    };
    let sink = await write();
    await sink.abort(new Error("Upload-Checksum does not match"));
    assert.equal((await store.get(id))?.offset, 0);
    // The multipart upload the chunk began is aborted with it.
    assert.equal(bucket.open.size, 0);
    await store.truncate(id, 0); // the handler's, after a refusal: a no-op
    sink = await write();
    namespace.evict();
    await assert.rejects(sink.close(), /no longer pending/);
    assert.equal((await store.get(id))?.offset, 0);
    sink = await write();
    await sink.close();
    assert.equal((await store.get(id))?.offset, data.byteLength);
    await store.complete(id);
    const stored = await bucket.get(`uploads/${id}`);
    assert.equal(
      sha256(new Uint8Array(await new Response(stored!.body).arrayBuffer())),
      sha256(data),
    );
  });
});

describe("Sha256 (the upload object's resumable hash)", () => {
  it("matches node:crypto, also across a saved and restored state", () => {
    for (
      const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 1000, 65537]
    ) {
      const data = randomBytes(n);
      const want = sha256(data);
      // Split at every size from 1 to 97 bytes, and restore from a
      // structured clone of the state in the middle.
      for (const step of [1, 7, 64, 97]) {
        let hasher = new Sha256();
        for (let i = 0; i < n; i += step) {
          hasher.update(data.subarray(i, i + step));
          if (i === step * 3) {
            hasher = Sha256.from(structuredClone(hasher.state()));
          }
        }
        assert.equal(
          Buffer.from(hasher.digest()).toString("base64"),
          want,
          `${n} bytes in steps of ${step}`,
        );
      }
    }
    assert.throws(
      () => Sha256.from({ words: [1], bytes: 0, pending: new Uint8Array() }),
      TypeError,
    );
  });
});

describe("createResumableWorkersStore in workerd (Durable Objects + R2)", () => {
  let base: URL;
  let miniflare: Miniflare | undefined;

  before(async () => {
    miniflare = await startMiniflare(
      "_miniflare_resumable.mjs",
      "_resumable_worker.ts",
      "resumable-workers-",
      (dir) => dir,
      T,
    );
    base = miniflare.url;
  }, { timeout: T + 60_000 });

  after(() => miniflare?.stop());

  async function object(uploadUrl: string) {
    const id = new URL(uploadUrl).pathname.split("/").pop()!;
    const response = await getWithOneRetry(new URL(`/objects/${id}`, base));
    if (response.status === 404) {
      await response.body?.cancel();
      return undefined;
    }
    return await response.json() as { size: number; sha256: string };
  }

  for (const protocol of ["ietf", "tus"] as const) {
    it(`stores an upload in R2 parts and a tail (${protocol})`, {
      timeout: T,
    }, async () => {
      const data = randomBytes(13 * MiB + 7);
      const result = await resumableUpload(new URL("/uploads", base), data, {
        protocol,
        chunkBytes: 3 * MiB,
      });
      assert.deepEqual(await object(result.uploadUrl), {
        size: data.byteLength,
        sha256: sha256(data),
      });
      if (protocol === "ietf") {
        assert.equal((await result.response.json()).sha256, sha256(data));
      }
    });
  }

  it(
    "deletes an upload left unfinished when it expires, with no request for it (its object's alarm): its tail and its R2 parts go",
    {
      timeout: T,
    },
    async () => {
      // Before, an abandoned upload kept its tail in the object's storage and
      // its R2 multipart upload open until a request for it came (then 410).
      const created = await fetch(new URL("/brief/uploads", base), {
        method: "POST",
        headers: { "upload-complete": "?0" },
      });
      assert.equal(created.status, 201);
      const url = new URL(created.headers.get("location")!, base).href;
      const id = new URL(url).pathname.split("/").pop()!;
      // A part (5 MiB) in R2 and a tail in the object's storage.
      const patched = await fetch(url, {
        method: "PATCH",
        headers: {
          "content-type": "application/partial-upload",
          "upload-offset": "0",
          "upload-complete": "?0",
        },
        body: randomBytes(5 * MiB + 100),
      });
      assert.equal(patched.status, 204, await patched.text());
      // Expired after a second; the alarm runs then. Bounded: 20 s.
      let aborted = false;
      for (let i = 0; i < 100 && !aborted; i++) {
        await new Promise((r) => setTimeout(r, 200));
        const response = await fetch(new URL(`/aborted/${id}`, base));
        await response.body?.cancel();
        aborted = response.status === 200;
      }
      assert.ok(aborted, "the multipart upload was aborted");
      // Gone, not found expired (a request finding it expired answers 410).
      const head = await fetch(url, { method: "HEAD" });
      await head.body?.cancel();
      assert.equal(head.status, 404);
    },
  );

  it(
    "aborts the R2 multipart upload of a chunk refused for its Upload-Checksum at once (workerd ends the object's aborted body as if whole: it stayed open until another request for the upload came)",
    { timeout: T },
    async () => {
      const created = await fetch(new URL("/uploads", base), {
        method: "POST",
        headers: {
          "tus-resumable": "1.0.0",
          "upload-length": String(13 * MiB),
        },
      });
      assert.equal(created.status, 201);
      const url = new URL(created.headers.get("location")!, base).href;
      const id = new URL(url).pathname.split("/").pop()!;
      // More than a part (5 MiB): the chunk begins a multipart upload.
      const data = randomBytes(7 * MiB);
      const sent = data.slice();
      sent[100] ^= 1;
      const patched = await fetch(url, {
        method: "PATCH",
        headers: {
          "tus-resumable": "1.0.0",
          "content-type": "application/offset+octet-stream",
          "upload-offset": "0",
          "upload-checksum": `sha256 ${sha256(data)}`,
        },
        body: sent,
      });
      assert.equal(patched.status, 460, await patched.text());
      // Bounded: 10 s.
      let aborted = false;
      for (let i = 0; i < 50 && !aborted; i++) {
        const response = await fetch(new URL(`/aborted/${id}`, base));
        await response.body?.cancel();
        aborted = response.status === 200;
        if (!aborted) await new Promise((r) => setTimeout(r, 200));
      }
      assert.ok(aborted, "the multipart upload was aborted");
      const head = await fetch(url, {
        method: "HEAD",
        headers: { "tus-resumable": "1.0.0" },
      });
      await head.body?.cancel();
      assert.equal(head.headers.get("upload-offset"), "0");
    },
  );

  it("stores a small upload with one put", { timeout: T }, async () => {
    const data = randomBytes(1000);
    const result = await resumableUpload(new URL("/uploads", base), data);
    assert.deepEqual(await object(result.uploadUrl), {
      size: 1000,
      sha256: sha256(data),
    });
  });

  it("keeps no object in R2 until the upload completes", {
    timeout: T,
  }, async () => {
    const data = randomBytes(7 * MiB);
    const created = await fetch(new URL("/uploads", base), {
      method: "POST",
      headers: { "upload-complete": "?0", "upload-length": String(7 * MiB) },
    });
    assert.equal(created.status, 201);
    const url = new URL(created.headers.get("location")!, base).href;
    const first = await fetch(url, {
      method: "PATCH",
      headers: {
        "content-type": "application/partial-upload",
        "upload-offset": "0",
        "upload-complete": "?0",
      },
      body: data.subarray(0, 6 * MiB),
    });
    assert.equal(first.status, 204);
    assert.equal(first.headers.get("upload-offset"), String(6 * MiB));
    assert.equal(await object(url), undefined);
    const head = await fetch(url, { method: "HEAD" });
    assert.equal(head.headers.get("upload-offset"), String(6 * MiB));
    const result = await resumableUpload(new URL("/uploads", base), data, {
      uploadUrl: url,
    });
    assert.equal(result.uploadUrl, url);
    assert.deepEqual(await object(url), {
      size: data.byteLength,
      sha256: sha256(data),
    });
  });

  it(
    `survives ${CUTS} connection cuts at random offsets over ${
      CUT_BYTES / MiB
    } MiB`,
    {
      timeout: FULL ? 20 * T : 2 * T,
    },
    async () => {
      const size = CUT_BYTES;
      const data = randomBytes(size);
      const seed = Math.floor(Math.random() * 2 ** 31);
      const proxy = await startCuttingProxy(
        Number(base.port),
        cutPoints(CUTS, size, seed),
      );
      try {
        const result = await deadline(
          resumableUpload(`http://127.0.0.1:${proxy.port}/uploads`, data, {
            chunkBytes: 8 * MiB,
            retryDelayMs: 10,
            maxRetryDelayMs: 100,
            maxRetries: 30,
          }),
          FULL ? 20 * T : 2 * T,
          `upload with cuts (seed ${seed})`,
        );
        assert.equal(proxy.cuts(), CUTS, `seed ${seed}`);
        assert.deepEqual(await object(result.uploadUrl), {
          size,
          sha256: sha256(data),
        }, `seed ${seed}`);
      } finally {
        await proxy.close();
      }
    },
  );
});
