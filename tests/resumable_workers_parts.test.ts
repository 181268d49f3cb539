// The Workers store and R2's most parts: a multipart upload takes part
// numbers 1 to 10,000, so an upload holds at most 10,000 × partBytes
// (78.1 GiB at the default). Here, in process over the fakes of Durable
// Objects and R2 and the real handler, the upload object is made with 3
// parts of 5 MiB (15 MiB), and the fake R2 refuses part numbers past 3 as
// R2 refuses those past 10,000. Before, nothing counted the parts: an
// upload past them reached uploadPart(10001), which R2 refused, and the
// append took that for a cut request, so the client sent it again and
// again and no message named the limit.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  createResumableUploadHandler,
  HttpError,
  resumableUpload,
} from "../lib/http/mod.ts";
import { createHasher } from "../lib/runtime/workers.ts";
import {
  _createResumableUploadObject,
  createResumableWorkersStore,
} from "../lib/runtime/resumable_workers_store.ts";
import { FakeNamespace } from "./_do_fake.ts";
import { FakeR2Bucket } from "./_r2_fake.ts";
import { randomBytes, sha256Base64 } from "./_helpers.ts";

const MiB = 1024 * 1024;
const PART = 5 * MiB;
const MAX_PARTS = 3;
const CAPACITY = MAX_PARTS * PART;
const BASE = "http://localhost/uploads";
const TUS = "1.0.0";
/** The end of every refusal past the capacity: the limit and the way out. */
const LIMIT =
  "at most 3 R2 parts of 5242880 bytes (15728640 bytes); raise createResumableUploadObject's partBytes (at most 12484608: 37453824 bytes), or set the handler's maxBytes to at most 15728640";

/**
 * The handler over the Workers store, its objects holding `maxParts`
 * parts of 5 MiB in a fake R2 that refuses part numbers past them, their
 * part lists in storage values of `partsPerValue` parts.
 */
function setup(maxParts = MAX_PARTS, partsPerValue = 100) {
  const bucket = new FakeR2Bucket();
  bucket.maxPartNumber = maxParts;
  const namespace = new FakeNamespace(
    _createResumableUploadObject(
      { bucket: () => bucket, partBytes: PART },
      maxParts,
      partsPerValue,
    ),
    {},
  );
  const errors: unknown[] = [];
  const handler = createResumableUploadHandler({
    store: createResumableWorkersStore(namespace),
    hasher: createHasher,
    maxBytes: 64 * MiB,
    onError: (error) => errors.push(error),
  });
  /** Nothing in R2, no multipart upload open, no object state. */
  const nothingLeft = () => {
    assert.equal(bucket.objects.size, 0);
    assert.equal(bucket.open.size, 0);
    assert.deepEqual(
      [...namespace.storages.values()].filter((s) => s.values.size > 0),
      [],
    );
  };
  return { bucket, namespace, handler, errors, nothingLeft };
}

/** A request; a body of several chunks is streamed. */
function req(
  method: string,
  path: string,
  headers: Record<string, string>,
  chunks: Uint8Array[] = [],
): Request {
  return new Request(new URL(path, BASE), {
    method,
    headers,
    body: chunks.length === 0
      ? undefined
      : ReadableStream.from(chunks.map((c) => c.slice())),
    duplex: "half",
  } as RequestInit);
}

/** `data` in chunks of at most `size` bytes. */
function chunked(data: Uint8Array, size: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < data.byteLength; at += size) {
    chunks.push(data.subarray(at, at + size));
  }
  return chunks;
}

type Handler = (request: Request) => Promise<Response>;

/**
 * An upload through `handler` in `protocol`, of `length` bytes or of a
 * deferred length: `patch` appends chunks at an offset (never completing),
 * `offset` asks for it.
 */
async function createUpload(
  handler: Handler,
  protocol: "ietf" | "tus",
  length?: number,
) {
  const headers: Record<string, string> = protocol === "tus"
    ? length === undefined
      ? { "tus-resumable": TUS, "upload-defer-length": "1" }
      : { "tus-resumable": TUS, "upload-length": String(length) }
    : length === undefined
    ? { "upload-complete": "?0" }
    : { "upload-complete": "?0", "upload-length": String(length) };
  const created = await handler(req("POST", "/uploads", headers));
  const location = created.headers.get("location");
  const patch = (
    offset: number,
    chunks: Uint8Array[],
    extra: Record<string, string> = {},
  ) =>
    handler(req(
      "PATCH",
      location!,
      protocol === "tus"
        ? {
          "tus-resumable": TUS,
          "content-type": "application/offset+octet-stream",
          "upload-offset": String(offset),
          ...extra,
        }
        : {
          "content-type": "application/partial-upload",
          "upload-offset": String(offset),
          "upload-complete": "?0",
          ...extra,
        },
      chunks,
    ));
  const offset = async () => {
    const head = await handler(
      req(
        "HEAD",
        location!,
        protocol === "tus" ? { "tus-resumable": TUS } : {},
      ),
    );
    assert.ok(head.ok, `HEAD answered ${head.status}`);
    return Number(head.headers.get("upload-offset"));
  };
  const remove = () =>
    handler(
      req(
        "DELETE",
        location!,
        protocol === "tus" ? { "tus-resumable": TUS } : {},
      ),
    );
  return { created, location, patch, offset, remove };
}

/** The stored object at the upload's key, or undefined. */
async function stored(bucket: FakeR2Bucket, location: string) {
  const object = await bucket.get(`uploads/${location.split("/").pop()}`);
  if (!object) return undefined;
  return new Uint8Array(await new Response(object.body).arrayBuffer());
}

describe("createResumableUploadObject and R2's most parts (3 parts of 5 MiB here, 10,000 in R2)", () => {
  for (const protocol of ["ietf", "tus"] as const) {
    it(`refuses (413) a creation longer than the parts hold, naming the limit, and keeps nothing (${protocol})`, async () => {
      const { bucket, handler, errors, nothingLeft } = setup();
      const { created } = await createUpload(handler, protocol, CAPACITY + 1);
      assert.equal(created.status, 413);
      assert.equal(created.headers.get("location"), null);
      assert.equal(
        await created.text(),
        `Cannot create upload: its length ${
          CAPACITY + 1
        } is more than an upload holds: ${LIMIT}`,
      );
      assert.deepEqual(bucket.calls, []);
      nothingLeft();
      assert.deepEqual(errors, []);
    });
  }

  it("refuses (413) a deferred length set over what the parts hold (tus Upload-Length on a PATCH), keeping the upload as it was", async () => {
    const { bucket, handler, errors } = setup();
    const upload = await createUpload(handler, "tus");
    assert.equal(upload.created.status, 201);
    const refused = await upload.patch(0, [randomBytes(10)], {
      "upload-length": String(CAPACITY + 1),
    });
    assert.equal(refused.status, 413);
    assert.equal(
      await refused.text(),
      `Cannot set upload length: its length ${
        CAPACITY + 1
      } is more than an upload holds: ${LIMIT}`,
    );
    assert.equal(await upload.offset(), 0);
    assert.deepEqual(bucket.partNumbers, []);
    assert.deepEqual(errors, []);
  });

  for (const protocol of ["ietf", "tus"] as const) {
    it(`a deferred-length upload past the parts is refused (413, naming the limit) at them: no part number past them, the bytes up to them kept, nothing in R2, and a DELETE leaves nothing (${protocol})`, async () => {
      const { bucket, handler, errors, nothingLeft } = setup();
      const upload = await createUpload(handler, protocol);
      assert.equal(upload.created.status, 201);
      const data = randomBytes(CAPACITY + 2 * MiB);
      // Two parts and 2 MiB of the third, then 5 MiB in chunks of 768 KiB
      // that go past the third part in the middle of a chunk.
      const first = 12 * MiB;
      const appended = await upload.patch(
        0,
        chunked(data.subarray(0, first), MiB),
      );
      assert.equal(appended.status, 204);
      assert.equal(await upload.offset(), first);
      const refused = await upload.patch(
        first,
        chunked(data.subarray(first, first + 5 * MiB), 768 * 1024),
      );
      assert.equal(refused.status, 413);
      assert.equal(
        await refused.text(),
        `Cannot append to upload: its bytes would be more than an upload holds: ${LIMIT}`,
      );
      assert.equal(await upload.offset(), CAPACITY);
      // At the capacity, one more byte is refused the same way.
      const more = await upload.patch(CAPACITY, [data.subarray(CAPACITY)]);
      assert.equal(more.status, 413);
      assert.match(await more.text(), /more than an upload holds/);
      assert.equal(await upload.offset(), CAPACITY);
      assert.deepEqual(bucket.partNumbers, [1, 2, 3]);
      assert.equal(bucket.objects.size, 0);
      assert.equal((await upload.remove()).status, 204);
      nothingLeft();
      assert.deepEqual(errors, []);
    });
  }

  it("the bytes a refused append kept up to the parts complete the upload, byte-identical (tus: Upload-Length at the offset)", async () => {
    const { bucket, handler, errors } = setup();
    const upload = await createUpload(handler, "tus");
    const data = randomBytes(CAPACITY + MiB);
    const refused = await upload.patch(0, chunked(data, 3 * MiB));
    assert.equal(refused.status, 413);
    assert.equal(await upload.offset(), CAPACITY);
    const completed = await upload.patch(CAPACITY, [], {
      "upload-length": String(CAPACITY),
    });
    assert.equal(completed.status, 204, await completed.clone().text());
    const bytes = await stored(bucket, upload.location!);
    assert.equal(bytes?.byteLength, CAPACITY);
    assert.equal(
      sha256Base64(bytes!),
      sha256Base64(data.subarray(0, CAPACITY)),
    );
    assert.deepEqual(bucket.partNumbers, [1, 2, 3]);
    assert.equal(bucket.open.size, 0);
    assert.deepEqual(errors, []);
  });

  for (const size of [6 * MiB, MiB]) {
    it(`a whole append (with a checksum) whose part R2 refuses is a 500 told to onError naming it, keeping none of it (in one chunk it was a 409 'no longer pending', as for a conflict): chunks of ${size} bytes`, async () => {
      const { bucket, handler, errors } = setup();
      const upload = await createUpload(handler, "tus", 6 * MiB);
      const data = randomBytes(6 * MiB);
      bucket.failOn("uploadPart");
      const failed = await upload.patch(0, chunked(data, size), {
        "upload-checksum": `sha1 ${
          createHash("sha1").update(data).digest("base64")
        }`,
      });
      assert.equal(failed.status, 500, await failed.clone().text());
      assert.equal(await upload.offset(), 0);
      assert.equal(bucket.open.size, 0);
      assert.equal(errors.length, 1);
      assert.match(
        String((errors[0] as Error).cause),
        /its object failed to store the chunk/,
      );
    });
  }

  it("a whole append (with a checksum) past the parts is refused (413) and keeps none of its bytes", async () => {
    const { bucket, handler, errors } = setup();
    const upload = await createUpload(handler, "tus");
    const data = randomBytes(CAPACITY + MiB);
    const first = 8 * MiB;
    assert.equal(
      (await upload.patch(0, chunked(data.subarray(0, first), MiB))).status,
      204,
    );
    const rest = data.subarray(first);
    const sha1 = createHash("sha1").update(rest).digest("base64");
    const refused = await upload.patch(first, chunked(rest, MiB), {
      "upload-checksum": `sha1 ${sha1}`,
    });
    assert.equal(refused.status, 413);
    assert.equal(
      await refused.text(),
      `Cannot append to upload: its bytes would be more than an upload holds: ${LIMIT}`,
    );
    assert.equal(await upload.offset(), first);
    assert.ok(
      bucket.partNumbers.every((n) => n <= MAX_PARTS),
      `part numbers ${bucket.partNumbers}`,
    );
    // The bytes up to the capacity, sent again without the rest, count.
    const fits = data.subarray(first, CAPACITY);
    const last = await upload.patch(first, chunked(fits, MiB), {
      "upload-length": String(CAPACITY),
      "upload-checksum": `sha1 ${
        createHash("sha1").update(fits).digest("base64")
      }`,
    });
    assert.equal(last.status, 204, await last.clone().text());
    const bytes = await stored(bucket, upload.location!);
    assert.equal(
      sha256Base64(bytes!),
      sha256Base64(data.subarray(0, CAPACITY)),
    );
    assert.equal(bucket.open.size, 0);
    assert.deepEqual(errors, []);
  });

  for (const protocol of ["ietf", "tus"] as const) {
    it(`an upload of exactly the parts' bytes completes byte-identical (${protocol})`, async () => {
      const { bucket, handler, errors } = setup();
      const data = randomBytes(CAPACITY);
      const result = await resumableUpload(BASE, data, {
        protocol,
        chunkBytes: 4 * MiB,
        fetch: ((input: RequestInfo | URL, init?: RequestInit) =>
          handler(new Request(input, init))) as typeof fetch,
      });
      const bytes = await stored(bucket, result.uploadUrl);
      assert.equal(bytes?.byteLength, CAPACITY);
      assert.equal(sha256Base64(bytes!), sha256Base64(data));
      assert.deepEqual(bucket.partNumbers, [1, 2, 3]);
      assert.equal(bucket.open.size, 0);
      assert.deepEqual(errors, []);
    });
  }
});

describe("resumableUpload and a store's 413 at creation (more than R2's parts hold)", () => {
  for (const protocol of ["ietf", "tus"] as const) {
    it(`fails with the 413, sending the creation once and no byte (${protocol})`, async () => {
      const { handler, errors, nothingLeft } = setup();
      const requests: string[] = [];
      const error = await resumableUpload(
        BASE,
        new Blob([randomBytes(CAPACITY + 1)]),
        {
          protocol,
          retryDelayMs: 1,
          fetch: ((input: RequestInfo | URL, init?: RequestInit) => {
            const request = new Request(input, init);
            requests.push(request.method);
            return handler(request);
          }) as typeof fetch,
        },
      ).then(() => undefined, (error: unknown) => error);
      assert.ok(
        error instanceof HttpError && error.status === 413,
        String(error),
      );
      // The store's words, with the limit and the way out (they were
      // dropped: "the server answered 413 to the creation" only).
      assert.equal(
        error.message,
        `Cannot upload: the server answered 413 to the creation of the upload: Cannot create upload: its length ${
          CAPACITY + 1
        } is more than an upload holds: ${LIMIT}`,
      );
      assert.deepEqual(requests, ["POST"]);
      nothingLeft();
      assert.deepEqual(errors, []);
    });
  }
});

describe("createResumableUploadObject keeps its part list in storage values of a bounded size (3 parts a value here, 100 in Workers)", () => {
  const PER_VALUE = 3;

  /**
   * The part list of the one upload in `namespace`'s storage: the parts in
   * the state's own value and those of each `parts<i>` value.
   */
  function partList(namespace: FakeNamespace) {
    const [storage] = namespace.storages.values();
    const meta = storage.values.get("meta") as {
      parts: unknown[];
      partValues?: number;
    };
    const values = [...storage.values.keys()].filter((key) =>
      key.startsWith("parts")
    ).sort();
    return {
      inState: meta.parts.length,
      partValues: meta.partValues ?? 0,
      values: values.map((key) =>
        (storage.values.get(key) as unknown[]).length
      ),
      keys: values,
    };
  }

  /**
   * Asserts the part list: `inState` parts in the state's value, the
   * others in `full` values of PER_VALUE parts.
   */
  function assertPartList(
    namespace: FakeNamespace,
    inState: number,
    full: number,
  ) {
    const keys = Array.from({ length: full }, (_, i) => `parts${i}`);
    assert.deepEqual(partList(namespace), {
      inState,
      partValues: full,
      values: keys.map(() => PER_VALUE),
      keys,
    });
  }

  for (const protocol of ["ietf", "tus"] as const) {
    it(`an upload of 9 parts (the list in 2 values and its state) across evictions completes byte-identical, then its values are deleted (${protocol})`, async () => {
      const { bucket, namespace, handler, errors } = setup(20, PER_VALUE);
      const data = randomBytes(8 * PART + MiB);
      const upload = await createUpload(handler, protocol, data.byteLength);
      assert.equal(upload.created.status, 201);
      // 2 parts and a tail of 3 MiB: no value of parts yet.
      let response = await upload.patch(
        0,
        chunked(data.subarray(0, 13 * MiB), MiB),
      );
      assert.equal(response.status, 204, await response.clone().text());
      assertPartList(namespace, 2, 0);
      namespace.evict();
      // 6 parts: two values of 3, none in the state.
      response = await upload.patch(
        13 * MiB,
        chunked(data.subarray(13 * MiB, 32 * MiB), MiB),
      );
      assert.equal(response.status, 204, await response.clone().text());
      assertPartList(namespace, 0, 2);
      namespace.evict();
      response = await upload.patch(
        32 * MiB,
        chunked(data.subarray(32 * MiB), MiB),
        protocol === "ietf" ? { "upload-complete": "?1" } : {},
      );
      assert.ok(response.ok, `${response.status} ${await response.text()}`);
      const bytes = await stored(bucket, upload.location!);
      assert.equal(bytes?.byteLength, data.byteLength);
      assert.equal(sha256Base64(bytes!), sha256Base64(data));
      assert.deepEqual(bucket.partNumbers, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
      assert.equal(bucket.open.size, 0);
      // The list is of no more use once the object is in R2.
      assert.deepEqual(partList(namespace).keys, []);
      assert.equal(partList(namespace).inState, 0);
      assert.deepEqual(errors, []);
    });
  }

  it("a whole append (with a checksum) of 6 parts writes their values at its commit, and the upload completes byte-identical after an eviction", async () => {
    const { bucket, namespace, handler, errors } = setup(20, PER_VALUE);
    const data = randomBytes(8 * PART + MiB);
    const upload = await createUpload(handler, "tus", data.byteLength);
    const first = data.subarray(0, 32 * MiB);
    const response = await upload.patch(0, chunked(first, 3 * MiB), {
      "upload-checksum": `sha1 ${
        createHash("sha1").update(first).digest("base64")
      }`,
    });
    assert.equal(response.status, 204, await response.clone().text());
    assertPartList(namespace, 0, 2);
    namespace.evict();
    const last = await upload.patch(32 * MiB, [data.subarray(32 * MiB)]);
    assert.equal(last.status, 204, await last.clone().text());
    const bytes = await stored(bucket, upload.location!);
    assert.equal(sha256Base64(bytes!), sha256Base64(data));
    assert.deepEqual(errors, []);
  });

  it("an upload begun by a version that kept every part in the state's value is continued and completed byte-identical, its list moved into values", async () => {
    const bucket = new FakeR2Bucket();
    bucket.maxPartNumber = 20;
    const errors: unknown[] = [];
    // A list never moved into values, as the versions before kept it.
    const before = new FakeNamespace(
      _createResumableUploadObject(
        { bucket: () => bucket, partBytes: PART },
        20,
        1_000,
      ),
      {},
    );
    const after = new FakeNamespace(
      _createResumableUploadObject(
        { bucket: () => bucket, partBytes: PART },
        20,
        PER_VALUE,
      ),
      {},
    );
    const handlerOver = (namespace: FakeNamespace) =>
      createResumableUploadHandler({
        store: createResumableWorkersStore(namespace),
        hasher: createHasher,
        maxBytes: 64 * MiB,
        onError: (error) => errors.push(error),
      });
    const data = randomBytes(8 * PART + MiB);
    const old = await createUpload(
      handlerOver(before),
      "ietf",
      data.byteLength,
    );
    let response = await old.patch(0, chunked(data.subarray(0, 21 * MiB), MiB));
    assert.equal(response.status, 204, await response.clone().text());
    assertPartList(before, 4, 0);
    // The new version deployed: the same storage, a new class.
    for (const [name, storage] of before.storages) {
      after.storages.set(name, storage);
    }
    const handler = handlerOver(after);
    response = await handler(
      req("PATCH", old.location!, {
        "content-type": "application/partial-upload",
        "upload-offset": String(21 * MiB),
        "upload-complete": "?0",
      }, chunked(data.subarray(21 * MiB, 36 * MiB), MiB)),
    );
    assert.equal(response.status, 204, await response.clone().text());
    assertPartList(after, 1, 2);
    response = await handler(
      req("PATCH", old.location!, {
        "content-type": "application/partial-upload",
        "upload-offset": String(36 * MiB),
        "upload-complete": "?1",
      }, [data.subarray(36 * MiB)]),
    );
    assert.ok(response.ok, `${response.status} ${await response.text()}`);
    const bytes = await stored(bucket, old.location!);
    assert.equal(sha256Base64(bytes!), sha256Base64(data));
    assert.deepEqual(bucket.partNumbers, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(errors, []);
  });
});
