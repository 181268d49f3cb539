// createResumableUploadHandler over the file store, in process: the IETF
// draft (creation, offset retrieval, appending, cancellation, problem
// types, limits) and tus 1.0 (core, creation, creation-with-upload,
// defer-length, termination, checksum, expiration), ids, locks and limits.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdir, readFile, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  createResumableUploadHandler,
  HttpError,
  type ResumableStore,
} from "../lib/http/mod.ts";
import {
  createHasher,
  createResumableFileStore,
  type ResumableFileStore,
} from "../lib/runtime/fs.ts";
import {
  deadline,
  fileStoreUploadIds,
  makeTempDir,
  removeDir,
} from "./_helpers.ts";

const BASE = "http://localhost/uploads";

function bytes(n: number, seed = 1): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

function sha256(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(data).digest());
}

function b64(data: Uint8Array): string {
  return btoa(String.fromCharCode(...data));
}

let dir: string;
let store: ResumableFileStore;
let handler: (request: Request) => Promise<Response>;
const completed: string[] = [];

before(async () => {
  dir = await makeTempDir("resumable-");
  store = createResumableFileStore(dir);
  handler = createResumableUploadHandler({
    store,
    hasher: createHasher,
    maxBytes: 1024 * 1024,
    maxTotalBytes: 64 * 1024 * 1024,
    onComplete: (upload) => void completed.push(upload.id),
  });
});

after(async () => {
  await removeDir(dir);
});

function req(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: BodyInit,
): Request {
  return new Request(new URL(path, BASE), { method, headers, body });
}

/** The ids of the uploads whose files are in the store's directory. */
function uploadIds(): Promise<string[]> {
  return fileStoreUploadIds(dir);
}

/**
 * A request body that fails (a client gone) once `sent` has been read (an
 * error at once would drop it from the queue unread).
 */
function droppedAfter(sent: Uint8Array): ReadableStream<Uint8Array> {
  let pulls = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pulls++ === 0) controller.enqueue(sent);
      else controller.error(new Error("connection reset"));
    },
  });
}

async function ietfCreate(
  headers: Record<string, string> = {},
  body?: BodyInit,
): Promise<{ response: Response; location: string }> {
  const response = await handler(
    req("POST", "/uploads", { "upload-complete": "?0", ...headers }, body),
  );
  const location = response.headers.get("location") ?? "";
  return { response, location };
}

async function patch(
  location: string,
  offset: number,
  body: BodyInit,
  complete: boolean,
  headers: Record<string, string> = {},
): Promise<Response> {
  return await handler(
    req("PATCH", location, {
      "content-type": "application/partial-upload",
      "upload-offset": String(offset),
      "upload-complete": complete ? "?1" : "?0",
      ...headers,
    }, body),
  );
}

describe("createResumableUploadHandler (IETF draft)", () => {
  it("creates an upload with a 128-bit base64url id under the prefix", async () => {
    const { response, location } = await ietfCreate({ "upload-length": "10" });
    assert.equal(response.status, 201);
    assert.match(location, /^\/uploads\/[A-Za-z0-9_-]{22}$/);
    assert.equal(response.headers.get("upload-offset"), "0");
    assert.equal(response.headers.get("upload-complete"), "?0");
    assert.match(
      response.headers.get("upload-limit") ?? "",
      /max-size=1048576/,
    );
    const other = await ietfCreate({ "upload-length": "10" });
    assert.notEqual(other.location, location);
  });

  it("stores a complete upload sent in one creation request", async () => {
    const data = bytes(5000);
    const { response, location } = await ietfCreate(
      { "upload-complete": "?1" },
      data,
    );
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("upload-complete"), "?1");
    const json = await response.json();
    assert.equal(json.bytes, 5000);
    assert.equal(json.sha256, b64(sha256(data)));
    const id = location.split("/").pop()!;
    assert.deepEqual(new Uint8Array(await readFile(store.path(id))), data);
    assert.ok(completed.includes(id));
  });

  it("appends in several requests, reports the offset by HEAD, completes", async () => {
    const data = bytes(300_000, 7);
    const { location } = await ietfCreate({ "upload-length": "300000" });
    let response = await patch(location, 0, data.subarray(0, 100_000), false);
    assert.equal(response.status, 204);
    assert.equal(response.headers.get("upload-offset"), "100000");
    response = await handler(req("HEAD", location));
    assert.equal(response.status, 204);
    assert.equal(response.headers.get("upload-offset"), "100000");
    assert.equal(response.headers.get("upload-complete"), "?0");
    assert.equal(response.headers.get("upload-length"), "300000");
    assert.equal(response.headers.get("cache-control"), "no-store");
    const id = location.split("/").pop()!;
    await assert.rejects(stat(store.path(id)), "not published before complete");
    response = await patch(location, 100_000, data.subarray(100_000), true);
    assert.equal(response.status, 200);
    assert.equal((await response.json()).sha256, b64(sha256(data)));
    assert.deepEqual(new Uint8Array(await readFile(store.path(id))), data);
    response = await handler(req("HEAD", location));
    assert.equal(response.headers.get("upload-complete"), "?1");
  });

  it("reports the length of an upload completed without a declared one", async () => {
    // A streamed body (no Content-Length) and no Upload-Length: the length is
    // known once the upload completes, and HEAD says it.
    const { response, location } = await ietfCreate(
      { "upload-complete": "?1" },
      ReadableStream.from([bytes(700)]),
    );
    assert.equal(response.status, 201);
    let head = await handler(req("HEAD", location));
    assert.equal(head.headers.get("upload-complete"), "?1");
    assert.equal(head.headers.get("upload-offset"), "700");
    assert.equal(head.headers.get("upload-length"), "700");
    // The same when an append completes it.
    const created = await ietfCreate();
    await patch(created.location, 0, bytes(30), false);
    const done = await patch(
      created.location,
      30,
      ReadableStream.from([bytes(20)]),
      true,
    );
    assert.equal(done.status, 200);
    head = await handler(req("HEAD", created.location));
    assert.equal(head.headers.get("upload-length"), "50");
  });

  it("refuses a creation that completes short of its Upload-Length, keeping nothing", async () => {
    const kept = await uploadIds();
    const response = await handler(
      req("POST", "/uploads", {
        "upload-complete": "?1",
        "upload-length": "10",
      }, ReadableStream.from([bytes(5)])),
    );
    assert.equal(response.status, 400);
    const problem = await response.json();
    assert.equal(
      problem.type,
      "https://iana.org/assignments/http-problem-types#inconsistent-upload-length",
    );
    assert.match(problem.title, /length 5 is inconsistent with 10/);
    assert.equal(response.headers.get("location"), null);
    // No object of 5 bytes published as complete, no unfinished upload left.
    assert.deepEqual(await uploadIds(), kept);
  });

  it("keeps nothing of a creation whose body fails: its client was never told where the upload is", async () => {
    const kept = await uploadIds();
    // Dropped after 5 bytes, and past its Upload-Length.
    const dropped = droppedAfter(bytes(5));
    for (
      const [headers, body, status] of [
        [{ "upload-complete": "?0" }, dropped, 400],
        [
          { "upload-complete": "?0", "upload-length": "4" },
          ReadableStream.from([bytes(8)]),
          413,
        ],
      ] as const
    ) {
      const response = await handler(req("POST", "/uploads", headers, body));
      assert.equal(response.status, status, await response.text());
      assert.equal(response.headers.get("location"), null);
      assert.deepEqual(await uploadIds(), kept);
    }
  });

  it("refuses an Upload-Length below the bytes already received", async () => {
    const { location } = await ietfCreate();
    await patch(location, 0, bytes(8), false);
    const response = await patch(location, 8, new Uint8Array(0), false, {
      "upload-length": "3",
    });
    assert.equal(response.status, 400);
    const problem = await response.json();
    assert.equal(
      problem.type,
      "https://iana.org/assignments/http-problem-types#inconsistent-upload-length",
    );
    assert.match(problem.title, /Upload-Length 3 is below its offset 8/);
    const head = await handler(req("HEAD", location));
    assert.equal(head.headers.get("upload-offset"), "8");
    assert.equal(head.headers.get("upload-length"), null);
  });

  it("answers a wrong offset with a mismatching-upload-offset problem", async () => {
    const { location } = await ietfCreate();
    await patch(location, 0, bytes(10), false);
    const response = await patch(location, 5, bytes(10), false);
    assert.equal(response.status, 409);
    assert.equal(
      response.headers.get("content-type"),
      "application/problem+json",
    );
    const problem = await response.json();
    assert.equal(
      problem.type,
      "https://iana.org/assignments/http-problem-types#mismatching-upload-offset",
    );
    assert.equal(problem["expected-offset"], 10);
    assert.equal(problem["provided-offset"], 5);
    assert.equal(response.headers.get("upload-offset"), "10");
  });

  it("answers an append to a complete upload: empty → completed-upload, bytes → inconsistent-upload-length", async () => {
    const { location } = await ietfCreate({ "upload-complete": "?1" }, "abc");
    const empty = await handler(
      req("PATCH", location, {
        "content-type": "application/partial-upload",
        "content-length": "0",
        "upload-offset": "3",
        "upload-complete": "?1",
      }),
    );
    assert.equal(empty.status, 400);
    assert.equal(
      (await empty.json()).type,
      "https://iana.org/assignments/http-problem-types#completed-upload",
    );
    const more = await patch(location, 3, bytes(1), true);
    assert.equal(more.status, 400);
    assert.equal(
      (await more.json()).type,
      "https://iana.org/assignments/http-problem-types#inconsistent-upload-length",
    );
  });

  it("refuses a PATCH whose media type is not application/partial-upload", async () => {
    const { location } = await ietfCreate();
    const response = await handler(
      req("PATCH", location, {
        "content-type": "application/octet-stream",
        "upload-offset": "0",
        "upload-complete": "?0",
      }, "x"),
    );
    assert.equal(response.status, 415);
  });

  it("refuses an encoded append with 415 (Accept-Encoding: identity) and keeps none of it (its gzip bytes were appended as the upload's)", async () => {
    const { location } = await ietfCreate();
    const gzipped = await handler(
      req("PATCH", location, {
        "content-type": "application/partial-upload",
        "content-encoding": "gzip",
        "upload-offset": "0",
        "upload-complete": "?0",
      }, bytes(3)),
    );
    assert.equal(gzipped.status, 415);
    assert.equal(gzipped.headers.get("accept-encoding"), "identity");
    assert.match(
      await gzipped.text(),
      /it is encoded \(Content-Encoding: gzip\), and it is kept as sent, never decoded/,
    );
    const head = await handler(req("HEAD", location, {}));
    assert.equal(head.headers.get("upload-offset"), "0");
  });

  it("takes a PATCH with no media type only from the draft's revisions that sent none (interop version 5 and below)", async () => {
    const { location } = await ietfCreate();
    const untyped = (version?: string) =>
      handler(
        req("PATCH", location, {
          "upload-offset": "0",
          "upload-complete": "?0",
          ...(version === undefined
            ? {}
            : { "upload-draft-interop-version": version }),
        }, bytes(3)),
      );
    for (const version of [undefined, "6", "7", "x"]) {
      const response = await untyped(version);
      assert.equal(response.status, 415, `interop version ${version}`);
      assert.match(
        await response.text(),
        /Content-Type must be application\/partial-upload, got "none"/,
      );
    }
    const response = await untyped("5");
    assert.equal(response.status, 204);
    assert.equal(response.headers.get("upload-offset"), "3");
    // A wrong media type is refused whatever the version.
    const wrong = await handler(
      req("PATCH", location, {
        "content-type": "text/plain",
        "upload-offset": "3",
        "upload-complete": "?0",
        "upload-draft-interop-version": "5",
      }, bytes(1)),
    );
    assert.equal(wrong.status, 415);
  });

  it("refuses a malformed Upload-Complete and a missing one", async () => {
    let response = await handler(
      req("POST", "/uploads", { "upload-complete": "yes" }),
    );
    assert.equal(response.status, 400);
    response = await handler(req("POST", "/uploads", {}, "x"));
    assert.equal(response.status, 400);
  });

  it("refuses bytes past the declared length with 413, keeping none past it", async () => {
    const { location } = await ietfCreate({ "upload-length": "10" });
    const response = await patch(
      location,
      0,
      ReadableStream.from([bytes(8), bytes(8)]),
      false,
    );
    assert.equal(response.status, 413);
    const head = await handler(req("HEAD", location));
    assert.ok(Number(head.headers.get("upload-offset")) <= 10);
  });

  it("refuses a length over maxBytes with 413 (Upload-Limit)", async () => {
    const { response } = await ietfCreate({ "upload-length": "1048577" });
    assert.equal(response.status, 413);
    assert.match(response.headers.get("upload-limit")!, /max-size=1048576/);
  });

  it("an append of an upload of unknown length past maxBytes is 413 naming maxBytes, not the room left", async () => {
    // Before: "size exceeds maxBytes 400" for maxBytes 1000 at offset 600.
    const small = createResumableUploadHandler({ store, maxBytes: 1000 });
    const { headers } = await small(
      req("POST", "/uploads", { "upload-complete": "?0" }),
    );
    const location = headers.get("location")!;
    const first = await small(
      req("PATCH", location, {
        "content-type": "application/partial-upload",
        "upload-offset": "0",
        "upload-complete": "?0",
      }, bytes(600)),
    );
    assert.equal(first.status, 204);
    const over = await small(
      req("PATCH", location, {
        "content-type": "application/partial-upload",
        "upload-offset": "600",
        "upload-complete": "?0",
      }, bytes(600)),
    );
    assert.equal(over.status, 413);
    assert.equal(
      await over.text(),
      "Cannot append to upload: it would exceed maxBytes 1000",
    );
  });

  it("refuses creations past maxTotalBytes with 413", async () => {
    const small = createResumableUploadHandler({
      store,
      maxBytes: 1000,
      maxTotalBytes: 1500,
    });
    const first = await small(
      req("POST", "/uploads", {
        "upload-complete": "?0",
        "upload-length": "1000",
      }),
    );
    assert.equal(first.status, 201);
    const second = await small(
      req("POST", "/uploads", {
        "upload-complete": "?0",
        "upload-length": "1000",
      }),
    );
    assert.equal(second.status, 413);
    assert.match(await second.text(), /maxTotalBytes 1500/);
    await small(req("DELETE", first.headers.get("location")!));
    const third = await small(
      req("POST", "/uploads", {
        "upload-complete": "?0",
        "upload-length": "1000",
      }),
    );
    assert.equal(third.status, 201);
  });

  it("refuses creations past maxUploads with 503 and Retry-After, untold to onError, however small their lengths", async () => {
    const errors: unknown[] = [];
    const few = createResumableUploadHandler({
      store,
      maxUploads: 3,
      onError: (error) => void errors.push(error),
    });
    const create = (tus: boolean) =>
      few(
        tus
          ? req("POST", "/uploads", {
            "tus-resumable": "1.0.0",
            "upload-length": "1",
          })
          : req("POST", "/uploads", {
            "upload-complete": "?0",
            "upload-length": "1",
          }),
      );
    const created = [
      await create(false),
      await create(true),
      await create(false),
    ];
    assert.deepEqual(created.map((r) => r.status), [201, 201, 201]);
    for (const tus of [false, true]) {
      const refused = await create(tus);
      assert.equal(refused.status, 503);
      assert.equal(refused.headers.get("retry-after"), "60");
      assert.equal(
        await refused.text(),
        "Cannot create upload: 3 unfinished uploads already (maxUploads)",
      );
    }
    assert.deepEqual(errors, []);
    // A completed upload and a cancelled one free their places.
    const done = await few(
      req("PATCH", created[0].headers.get("location")!, {
        "content-type": "application/partial-upload",
        "upload-offset": "0",
        "upload-complete": "?1",
      }, bytes(1)),
    );
    assert.equal(done.status, 200);
    assert.equal(
      (await few(req("DELETE", created[2].headers.get("location")!))).status,
      204,
    );
    assert.deepEqual([
      (await create(true)).status,
      (await create(false)).status,
    ], [
      201,
      201,
    ]);
    assert.equal((await create(false)).status, 503);
    assert.throws(
      () => createResumableUploadHandler({ store, maxUploads: -1 }),
      /maxUploads/,
    );
  });

  it("a PATCH that declares the length of an upload another handler created is not refused for this one's limits (it had its length set, then 503 'Cannot create upload')", async () => {
    const creator = createResumableUploadHandler({ store });
    const full = createResumableUploadHandler({
      store,
      maxUploads: 1,
      maxTotalBytes: 1000,
      maxBytes: 1000,
    });
    // `full` holds its one upload, with all of maxTotalBytes.
    const own = await full(
      req("POST", "/uploads", { "upload-complete": "?0" }),
    );
    assert.equal(own.status, 201);
    const tus = { "tus-resumable": "1.0.0" };
    const deferred = await creator(
      req("POST", "/uploads", { ...tus, "upload-defer-length": "1" }),
    );
    assert.equal(deferred.status, 201);
    const tusAppend = await full(
      req("PATCH", deferred.headers.get("location")!, {
        ...tus,
        "upload-offset": "0",
        "upload-length": "10",
        "content-type": "application/offset+octet-stream",
      }, bytes(10)),
    );
    assert.equal(tusAppend.status, 204, await tusAppend.clone().text());
    const ietf = await creator(
      req("POST", "/uploads", { "upload-complete": "?0" }),
    );
    const ietfAppend = await full(
      req("PATCH", ietf.headers.get("location")!, {
        "content-type": "application/partial-upload",
        "upload-offset": "0",
        "upload-complete": "?1",
      }, bytes(10)),
    );
    assert.equal(ietfAppend.status, 200, await ietfAppend.clone().text());
  });

  it("releases the reservation of an abandoned upload once it expired", async () => {
    const quick = createResumableUploadHandler({
      store,
      maxBytes: 1000,
      maxTotalBytes: 1000,
      expiresInMs: 1,
    });
    const create = () =>
      quick(
        req("POST", "/uploads", {
          "upload-complete": "?0",
          "upload-length": "1000",
        }),
      );
    const first = await create();
    assert.equal(first.status, 201);
    const id = first.headers.get("location")!.split("/").pop()!;
    const upload = await store.get(id);
    while (Date.now() <= upload!.expiresAt!) {
      await new Promise((r) => setTimeout(r, 2));
    }
    assert.equal((await create()).status, 201);
  });

  it("cancels an upload with DELETE; later requests get 404", async () => {
    const { location } = await ietfCreate();
    await patch(location, 0, bytes(100), false);
    const response = await handler(req("DELETE", location));
    assert.equal(response.status, 204);
    assert.equal((await handler(req("HEAD", location))).status, 404);
    assert.equal((await patch(location, 100, bytes(1), true)).status, 404);
  });

  it("ends an in-flight append on DELETE before deleting", async () => {
    const { location } = await ietfCreate();
    const never = Promise.withResolvers<void>();
    const older = held(bytes(1000, 5), bytes(1000, 6), never.promise);
    const first = patch(location, 0, older.body, false);
    await older.started;
    assert.equal((await handler(req("DELETE", location))).status, 204);
    assert.equal((await first).status, 409);
    assert.equal((await handler(req("HEAD", location))).status, 404);
    never.resolve();
  });

  it("a PATCH that arrives while a DELETE runs waits for it and gets 404; nothing of the upload is left", async () => {
    // Before, such a PATCH was stored (204, its record written again after
    // the deletion) or failed on the vanished file (a 500), depending on
    // where the deletion was when it came.
    for (let turns = 0; turns < 15; turns++) {
      const { location } = await ietfCreate();
      assert.equal((await patch(location, 0, bytes(4), false)).status, 204);
      const deleting = handler(req("DELETE", location));
      for (let i = 0; i < turns; i++) {
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
      const late = await patch(location, 4, bytes(3), false);
      assert.equal((await deleting).status, 204, `after ${turns} turns`);
      assert.equal(late.status, 404, `after ${turns} turns`);
      assert.equal((await handler(req("HEAD", location))).status, 404);
      const id = location.split("/").pop()!;
      assert.ok(!(await uploadIds()).includes(id), `after ${turns} turns`);
    }
  });

  it("a DELETE is not ended by a request that comes after it: it answers 204 and that request 404", async () => {
    // Before, a HEAD or PATCH arriving while the DELETE waited for an
    // append in flight ended the DELETE (409 "a newer request for it took
    // over"), and the upload stayed.
    for (const later of ["HEAD", "PATCH"]) {
      const { location } = await ietfCreate();
      const never = Promise.withResolvers<void>();
      const older = held(bytes(100, 5), bytes(100, 6), never.promise);
      const first = patch(location, 0, older.body, false);
      await older.started;
      // The later request comes while the DELETE waits for the append.
      const deleting = handler(req("DELETE", location));
      const after = later === "HEAD"
        ? handler(req("HEAD", location))
        : patch(location, 100, bytes(5), false);
      assert.equal((await deleting).status, 204, later);
      assert.equal((await after).status, 404, later);
      assert.equal((await first).status, 409, later);
      assert.equal((await handler(req("HEAD", location))).status, 404);
      never.resolve();
    }
  });

  it("keeps nothing of a PATCH with a Content-Digest that fails, past the length included (its bytes up to the length were stored unverified)", async () => {
    const { location } = await ietfCreate({ "upload-length": "10" });
    const body = bytes(15, 3);
    const response = await patch(location, 0, body, false, {
      "content-digest": `sha-256=:${b64(new Uint8Array(32))}:`,
    });
    assert.ok([400, 413].includes(response.status), String(response.status));
    const head = await handler(req("HEAD", location));
    assert.equal(head.headers.get("upload-offset"), "0");
  });

  it("announces the remaining lifetime in Upload-Limit max-age", async () => {
    const { response, location } = await ietfCreate();
    assert.match(response.headers.get("upload-limit")!, /max-age=\d+/);
    const head = await handler(req("HEAD", location));
    const age = Number(
      /max-age=(\d+)/.exec(head.headers.get("upload-limit")!)![1],
    );
    assert.ok(age > 86_000 && age <= 86_400, `max-age ${age}`);
  });

  it("answers a method it does not serve with 405 and the Allow header RFC 9110 requires, both protocols", async () => {
    const { location } = await ietfCreate({ "upload-length": "10" });
    for (
      const [method, path, allow] of [
        ["GET", "/uploads", "POST, OPTIONS"],
        ["PUT", "/uploads", "POST, OPTIONS"],
        ["GET", location, "HEAD, PATCH, DELETE, OPTIONS"],
        ["POST", location, "HEAD, PATCH, DELETE, OPTIONS"],
      ]
    ) {
      for (
        const tus of [{}, { "tus-resumable": "1.0.0" }] as Record<
          string,
          string
        >[]
      ) {
        const response = await handler(req(method, path, tus));
        await response.body?.cancel();
        assert.equal(response.status, 405, `${method} ${path}`);
        // Before, a 405 came without it.
        assert.equal(response.headers.get("allow"), allow, `${method} ${path}`);
      }
    }
  });

  it("answers unknown and malformed ids with 404", async () => {
    assert.equal(
      (await handler(req("HEAD", "/uploads/AAAAAAAAAAAAAAAAAAAAAA"))).status,
      404,
    );
    assert.equal(
      (await handler(req("HEAD", "/uploads/..%2F..%2Fetc"))).status,
      404,
    );
    assert.equal((await handler(req("HEAD", "/other/x"))).status, 404);
  });

  it("checks Repr-Digest on completion and deletes a mismatching upload", async () => {
    const data = bytes(1000, 3);
    const wrong = sha256(bytes(1000, 4));
    const { location } = await ietfCreate({
      "repr-digest": `sha-256=:${b64(wrong)}:`,
    });
    await patch(location, 0, data.subarray(0, 500), false);
    const response = await patch(location, 500, data.subarray(500), true);
    assert.equal(response.status, 400);
    assert.match(await response.text(), /Repr-Digest/);
    assert.equal((await handler(req("HEAD", location))).status, 404);
  });

  it("checks a per-request Content-Digest and keeps nothing of a bad chunk", async () => {
    const { location } = await ietfCreate();
    const response = await patch(location, 0, bytes(100), false, {
      "content-digest": `sha-256=:${b64(sha256(bytes(100, 9)))}:`,
    });
    assert.equal(response.status, 400);
    const head = await handler(req("HEAD", location));
    assert.equal(head.headers.get("upload-offset"), "0");
  });

  /** A body that sends `first`, then waits for `release` to send `rest`. */
  function held(first: Uint8Array, rest: Uint8Array, release: Promise<void>) {
    const started = Promise.withResolvers<void>();
    let pulls = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (pulls++ === 0) {
          controller.enqueue(first);
          started.resolve();
          return;
        }
        await release;
        controller.enqueue(rest);
        controller.close();
      },
    }, { highWaterMark: 0 });
    return { body, started: started.promise };
  }

  it("ends an older append when a newer PATCH comes: the older gets 409, bytes never interleave", async () => {
    const { location } = await ietfCreate();
    const id = location.split("/").pop()!;
    const never = Promise.withResolvers<void>();
    const older = held(bytes(1000, 5), bytes(1000, 6), never.promise);
    const first = patch(location, 0, older.body, false);
    await older.started;
    const second = await patch(location, 0, bytes(500, 8), false);
    const firstResponse = await first;
    assert.equal(firstResponse.status, 409);
    assert.match(await firstResponse.text(), /newer request/);
    const stored = new Uint8Array(await readFile(`${dir}/.${id}.upload`));
    if (second.status === 204) {
      // The older append had stored nothing yet: the newer one appended.
      assert.deepEqual(stored, bytes(500, 8));
    } else {
      // It had stored its first chunk: the newer one is told the offset.
      assert.equal(second.status, 409);
      assert.equal(second.headers.get("upload-offset"), "1000");
      assert.equal((await second.json())["expected-offset"], 1000);
      assert.deepEqual(stored, bytes(1000, 5));
    }
    never.resolve();
  });

  it("ends a PATCH that arrived before a HEAD even before it appends: HEAD's offset stays", async () => {
    // A cut request's PATCH that the server is still loading when the
    // client's HEAD comes: the HEAD ends it, so no byte moves the offset
    // after HEAD reported it.
    const entered = Promise.withResolvers<void>();
    const gate = Promise.withResolvers<void>();
    let hold = false;
    const slow: ResumableStore = {
      ...store,
      async get(id) {
        if (hold) {
          hold = false;
          entered.resolve();
          await gate.promise;
        }
        return await store.get(id);
      },
    };
    const racy = createResumableUploadHandler({ store: slow });
    const created = await racy(
      req("POST", "/uploads", { "upload-complete": "?0" }),
    );
    const location = created.headers.get("location")!;
    hold = true;
    const late = racy(req("PATCH", location, {
      "content-type": "application/partial-upload",
      "upload-offset": "0",
      "upload-complete": "?0",
    }, bytes(1000, 3)));
    await entered.promise;
    const head = racy(req("HEAD", location));
    await new Promise((resolve) => setTimeout(resolve, 20));
    gate.resolve();
    const [lateResponse, headResponse] = await Promise.all([late, head]);
    assert.equal(lateResponse.status, 409);
    assert.match(await lateResponse.text(), /newer request/);
    assert.equal(headResponse.headers.get("upload-offset"), "0");
    const again = await racy(req("HEAD", location));
    assert.equal(again.headers.get("upload-offset"), "0");
  });

  it("answers HEAD during an append with the offset of what the append stored", async () => {
    const data = bytes(3000, 12);
    const { location } = await ietfCreate({ "upload-length": "3000" });
    const id = location.split("/").pop()!;
    const never = Promise.withResolvers<void>();
    const older = held(data.slice(0, 1000), data.slice(1000), never.promise);
    const first = patch(location, 0, older.body, false);
    await older.started;
    const head = await handler(req("HEAD", location));
    assert.equal((await first).status, 409);
    const offset = Number(head.headers.get("upload-offset"));
    assert.ok(offset === 0 || offset === 1000, `offset ${offset}`);
    const stored = new Uint8Array(await readFile(`${dir}/.${id}.upload`));
    assert.deepEqual(stored, data.subarray(0, offset));
    // The offset answered is accepted by the next append.
    const done = await patch(location, offset, data.subarray(offset), true);
    assert.equal(done.status, 200);
    assert.deepEqual(new Uint8Array(await readFile(store.path(id))), data);
    never.resolve();
  });

  it("keeps the bytes of an interrupted PATCH and resumes after them", async () => {
    const data = bytes(4000, 11);
    const { location } = await ietfCreate({ "upload-length": "4000" });
    const broken = droppedAfter(data.slice(0, 1500));
    const response = await patch(
      location,
      0,
      broken,
      false,
    );
    assert.equal(response.status, 400);
    const head = await handler(req("HEAD", location));
    const offset = Number(head.headers.get("upload-offset"));
    assert.equal(offset, 1500);
    const done = await patch(location, offset, data.subarray(offset), true);
    assert.equal(done.status, 200);
    assert.equal((await done.json()).sha256, b64(sha256(data)));
  });

  it("answers an expired upload with 410 and deletes it", async () => {
    const quick = createResumableUploadHandler({ store, expiresInMs: 1 });
    const response = await quick(
      req("POST", "/uploads", { "upload-complete": "?0" }),
    );
    const location = response.headers.get("location")!;
    const id = location.split("/").pop()!;
    const upload = await store.get(id);
    assert.ok(upload?.expiresAt !== undefined);
    // Expiry is judged against the clock: wait until it has passed.
    while (Date.now() <= upload.expiresAt) {
      await new Promise((r) => setTimeout(r, 2));
    }
    assert.equal((await quick(req("HEAD", location))).status, 410);
    assert.equal((await quick(req("HEAD", location))).status, 404);
  });
});

describe("createResumableUploadHandler's requestPathPrefix", () => {
  it("matches a prefix beyond ASCII or with a space as request URLs encode it, and refuses one without its leading slash", async () => {
    // Before, "/my uploads" was compared with the encoded path
    // "/my%20uploads": every request was 404.
    for (const prefix of ["/files/téléchargements", "/my uploads/"]) {
      const mounted = createResumableUploadHandler({
        store,
        requestPathPrefix: prefix,
      });
      const created = await mounted(
        req(
          "POST",
          prefix.replace(/\/$/, ""),
          { "upload-complete": "?1" },
          bytes(3),
        ),
      );
      assert.equal(created.status, 201, prefix);
      const location = created.headers.get("location")!;
      assert.ok(
        location.startsWith(
          new URL(prefix, BASE).pathname.replace(/\/$/, "") + "/",
        ),
        location,
      );
      const head = await mounted(req("HEAD", location));
      assert.equal(head.headers.get("upload-offset"), "3");
      // Its percent-encodings in lower case (RFC 3986 §6.2.2.1): 404 before.
      const lower = await mounted(
        req("HEAD", location.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase())),
      );
      assert.equal(lower.headers.get("upload-offset"), "3", prefix);
    }
    assert.throws(
      () =>
        createResumableUploadHandler({ store, requestPathPrefix: "uploads" }),
      /^TypeError: Cannot create resumable upload handler: requestPathPrefix must start with "\/", got "uploads"$/,
    );
  });
});

describe("createResumableUploadHandler (tus 1.0)", () => {
  const TUS = { "tus-resumable": "1.0.0" };

  function tusPatch(
    location: string,
    offset: number,
    body: BodyInit,
    headers: Record<string, string> = {},
  ) {
    return handler(
      req("PATCH", location, {
        ...TUS,
        "content-type": "application/offset+octet-stream",
        "upload-offset": String(offset),
        ...headers,
      }, body),
    );
  }

  it("answers OPTIONS with its version, extensions and limits", async () => {
    const response = await handler(req("OPTIONS", "/uploads"));
    assert.equal(response.status, 204);
    assert.equal(response.headers.get("tus-resumable"), "1.0.0");
    assert.equal(response.headers.get("tus-version"), "1.0.0");
    assert.equal(response.headers.get("tus-max-size"), "1048576");
    assert.match(response.headers.get("tus-extension")!, /creation/);
    assert.match(response.headers.get("tus-extension")!, /termination/);
    assert.equal(
      response.headers.get("tus-checksum-algorithm"),
      "sha1,sha256,sha512",
    );
    assert.equal(
      response.headers.get("accept-patch"),
      "application/partial-upload",
    );
  });

  it("completes an upload whose last PATCH failed after storing every byte (cut after them, or going past the length), and one that a HEAD finds whole", async () => {
    // Before, such an upload stayed unfinished for good (its file never
    // published, onComplete never called), while HEAD's offset = length
    // told tus clients it had succeeded; it expired a day later.
    const data = bytes(10, 7);
    const create = async () => {
      const response = await handler(
        req("POST", "/uploads", { ...TUS, "upload-length": "10" }),
      );
      return response.headers.get("location")!;
    };
    const id = (location: string) => location.split("/").pop()!;
    // All ten bytes, then the connection reset.
    const cut = await create();
    const failed = await tusPatch(cut, 0, droppedAfter(data));
    assert.equal(failed.status, 400);
    assert.ok(completed.includes(id(cut)), "completed after the cut");
    assert.deepEqual(new Uint8Array(await readFile(store.path(id(cut)))), data);
    const head = await handler(req("HEAD", cut, TUS));
    assert.equal(head.headers.get("upload-offset"), "10");
    assert.equal(head.headers.get("upload-expires"), null);
    // Ten bytes, then five more, for ten: 413, the ten kept, and complete.
    const past = await create();
    const over = await tusPatch(
      past,
      0,
      new ReadableStream({
        start(controller) {
          controller.enqueue(data);
          controller.enqueue(bytes(5));
          controller.close();
        },
      }),
    );
    assert.equal(over.status, 413);
    assert.ok(completed.includes(id(past)), "completed past its length");
    assert.deepEqual(
      new Uint8Array(await readFile(store.path(id(past)))),
      data,
    );
    // The same wherever the body's chunks split: the bytes up to the length
    // in one chunk with those past it (before, they were dropped with them,
    // and the upload stayed unfinished at 0 or 8 of 10).
    const tail = bytes(3, 99);
    for (const split of [0, 8]) {
      const straddled = await create();
      const response = await tusPatch(
        straddled,
        0,
        new ReadableStream({
          start(controller) {
            if (split > 0) controller.enqueue(data.slice(0, split));
            const rest = new Uint8Array(10 - split + tail.byteLength);
            rest.set(data.subarray(split));
            rest.set(tail, 10 - split);
            controller.enqueue(rest);
            controller.close();
          },
        }),
      );
      assert.equal(response.status, 413, `split at ${split}`);
      assert.ok(completed.includes(id(straddled)), `split at ${split}`);
      assert.deepEqual(
        new Uint8Array(await readFile(store.path(id(straddled)))),
        data,
      );
    }
    // Bytes stored and the upload left unfinished (a server stopped before
    // finishing it): the client's HEAD finishes it.
    const left = await create();
    const sink = (await store.append(id(left), 0)).getWriter();
    await sink.write(data);
    await sink.close();
    assert.ok(!completed.includes(id(left)));
    const resumed = await handler(req("HEAD", left, TUS));
    assert.equal(resumed.status, 200);
    assert.equal(resumed.headers.get("upload-offset"), "10");
    assert.ok(completed.includes(id(left)), "completed by HEAD");
    assert.deepEqual(
      new Uint8Array(await readFile(store.path(id(left)))),
      data,
    );
  });

  it("completes an empty upload at its creation (tus clients send no PATCH for an empty file)", async () => {
    const response = await handler(
      req("POST", "/uploads", { ...TUS, "upload-length": "0" }),
    );
    assert.equal(response.status, 201);
    const id = response.headers.get("location")!.split("/").pop()!;
    assert.ok(completed.includes(id));
    assert.equal(response.headers.get("upload-expires"), null);
    assert.equal((await readFile(store.path(id))).byteLength, 0);
  });

  it("answers an unsupported version with 412 and Tus-Version", async () => {
    const response = await handler(
      req("POST", "/uploads", { "tus-resumable": "0.2.2" }),
    );
    assert.equal(response.status, 412);
    assert.equal(response.headers.get("tus-version"), "1.0.0");
  });

  it("creates, reports, appends and completes with metadata", async () => {
    const data = bytes(20_000, 21);
    const response = await handler(
      req("POST", "/uploads", {
        ...TUS,
        "upload-length": "20000",
        "upload-metadata":
          "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential",
      }),
    );
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("tus-resumable"), "1.0.0");
    assert.ok(response.headers.get("upload-expires"));
    const location = response.headers.get("location")!;
    let head = await handler(req("HEAD", location, TUS));
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("upload-offset"), "0");
    assert.equal(head.headers.get("upload-length"), "20000");
    assert.match(head.headers.get("upload-metadata")!, /^filename /);
    const first = await tusPatch(location, 0, data.subarray(0, 5000));
    assert.equal(first.status, 204);
    assert.equal(first.headers.get("upload-offset"), "5000");
    const second = await tusPatch(location, 5000, data.subarray(5000));
    assert.equal(second.status, 204);
    assert.equal(second.headers.get("upload-offset"), "20000");
    head = await handler(req("HEAD", location, TUS));
    assert.equal(head.headers.get("upload-offset"), "20000");
    const id = location.split("/").pop()!;
    assert.deepEqual(new Uint8Array(await readFile(store.path(id))), data);
  });

  it("answers 409 to a wrong offset and 415 to a wrong content type", async () => {
    const response = await handler(
      req("POST", "/uploads", { ...TUS, "upload-length": "10" }),
    );
    const location = response.headers.get("location")!;
    assert.equal((await tusPatch(location, 3, "abc")).status, 409);
    const wrongType = await handler(
      req("PATCH", location, {
        ...TUS,
        "content-type": "text/plain",
        "upload-offset": "0",
      }, "abc"),
    );
    assert.equal(wrongType.status, 415);
  });

  it("creates with an upload (creation-with-upload)", async () => {
    const response = await handler(
      req("POST", "/uploads", {
        ...TUS,
        "upload-length": "6",
        "content-type": "application/offset+octet-stream",
      }, "abc"),
    );
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("upload-offset"), "3");
    const location = response.headers.get("location")!;
    assert.equal(
      (await tusPatch(location, 3, "def")).headers.get("upload-offset"),
      "6",
    );
  });

  it("keeps nothing of a creation-with-upload whose body fails", async () => {
    const kept = await uploadIds();
    const dropped = droppedAfter(bytes(3));
    for (
      const [headers, body, status] of [
        [{ "upload-length": "6" }, dropped, 400],
        [{ "upload-length": "2" }, ReadableStream.from([bytes(3)]), 413],
        [
          {
            "upload-length": "6",
            "upload-checksum": "sha1 2jmj7l5rSw0yVb/vlWAYkK/YBwk=",
          },
          ReadableStream.from([bytes(3)]),
          460,
        ],
      ] as const
    ) {
      const response = await handler(
        req("POST", "/uploads", {
          ...TUS,
          "content-type": "application/offset+octet-stream",
          ...headers,
        }, body),
      );
      assert.equal(response.status, status, await response.text());
      assert.equal(response.headers.get("location"), null);
      assert.deepEqual(await uploadIds(), kept);
    }
  });

  it("defers the length until a PATCH declares it", async () => {
    const response = await handler(
      req("POST", "/uploads", { ...TUS, "upload-defer-length": "1" }),
    );
    assert.equal(response.status, 201);
    const location = response.headers.get("location")!;
    let head = await handler(req("HEAD", location, TUS));
    assert.equal(head.headers.get("upload-defer-length"), "1");
    await tusPatch(location, 0, "hello ");
    const done = await tusPatch(location, 6, "world", {
      "upload-length": "11",
    });
    assert.equal(done.status, 204);
    head = await handler(req("HEAD", location, TUS));
    assert.equal(head.headers.get("upload-length"), "11");
    const id = location.split("/").pop()!;
    assert.equal(await readFile(store.path(id), "utf8"), "hello world");
  });

  it("refuses a creation with neither or both length headers", async () => {
    assert.equal(
      (await handler(req("POST", "/uploads", TUS))).status,
      400,
    );
    assert.equal(
      (await handler(
        req("POST", "/uploads", {
          ...TUS,
          "upload-length": "1",
          "upload-defer-length": "1",
        }),
      )).status,
      400,
    );
  });

  it("refuses an encoded PATCH with 415 whatever its Upload-Checksum (a chunk with a sha256 or sha512 checksum was appended as its gzip bytes)", async () => {
    const response = await handler(
      req("POST", "/uploads", { ...TUS, "upload-length": "10" }),
    );
    const location = response.headers.get("location")!;
    const data = bytes(10, 32);
    for (const checksum of [undefined, "sha1", "sha256", "sha512"]) {
      const digest = checksum === "sha1"
        ? await sha1(data)
        : checksum === "sha256"
        ? b64(sha256(data))
        : b64(new Uint8Array(await crypto.subtle.digest("SHA-512", data)));
      const refused = await tusPatch(location, 0, data, {
        "content-encoding": "gzip",
        ...(checksum ? { "upload-checksum": `${checksum} ${digest}` } : {}),
      });
      assert.equal(refused.status, 415, String(checksum));
      assert.equal(refused.headers.get("tus-resumable"), "1.0.0");
      assert.equal(refused.headers.get("accept-encoding"), "identity");
    }
    const head = await handler(req("HEAD", location, TUS));
    assert.equal(head.headers.get("upload-offset"), "0");
  });

  it("checks Upload-Checksum: 460 on a mismatch, nothing kept", async () => {
    const response = await handler(
      req("POST", "/uploads", { ...TUS, "upload-length": "10" }),
    );
    const location = response.headers.get("location")!;
    const data = bytes(10, 30);
    const bad = await tusPatch(location, 0, data, {
      "upload-checksum": `sha256 ${b64(sha256(bytes(10, 31)))}`,
    });
    assert.equal(bad.status, 460);
    let head = await handler(req("HEAD", location, TUS));
    assert.equal(head.headers.get("upload-offset"), "0");
    const good = await tusPatch(location, 0, data, {
      "upload-checksum": `sha256 ${b64(sha256(data))}`,
    });
    assert.equal(good.status, 204);
    head = await handler(req("HEAD", location, TUS));
    assert.equal(head.headers.get("upload-offset"), "10");
    const unsupported = await handler(
      req("POST", "/uploads", { ...TUS, "upload-length": "1" }),
    );
    assert.equal(
      (await tusPatch(unsupported.headers.get("location")!, 0, "x", {
        "upload-checksum": "md5 AAAA",
      })).status,
      400,
    );
  });

  /** SHA-1 by Web Crypto, the oracle for the handler's own SHA-1. */
  async function sha1(data: Uint8Array<ArrayBuffer>): Promise<string> {
    return b64(new Uint8Array(await crypto.subtle.digest("SHA-1", data)));
  }

  it("checks Upload-Checksum sha1: 204 on a match, 460 on a mismatch with nothing kept", async () => {
    const response = await handler(
      req("POST", "/uploads", { ...TUS, "upload-length": "200000" }),
    );
    const location = response.headers.get("location")!;
    const data = bytes(200_000, 40);
    const first = data.slice(0, 100_001);
    const bad = await tusPatch(location, 0, first, {
      "upload-checksum": `sha1 ${await sha1(bytes(100_001, 41))}`,
    });
    assert.equal(bad.status, 460);
    assert.match(await bad.text(), /Upload-Checksum does not match/);
    let head = await handler(req("HEAD", location, TUS));
    assert.equal(head.headers.get("upload-offset"), "0");
    const good = await tusPatch(location, 0, first, {
      "upload-checksum": `sha1 ${await sha1(first)}`,
    });
    assert.equal(good.status, 204);
    head = await handler(req("HEAD", location, TUS));
    assert.equal(head.headers.get("upload-offset"), "100001");
    const rest = data.slice(100_001);
    const last = await tusPatch(location, 100_001, rest, {
      "upload-checksum": `sha1 ${await sha1(rest)}`,
    });
    assert.equal(last.status, 204);
    assert.deepEqual(
      new Uint8Array(await readFile(store.path(location.split("/").pop()!))),
      data,
    );
  });

  it("appends a chunk with a checksum whole: its sink is closed only once it matched, aborted otherwise", async () => {
    // Before, the sink was closed (its bytes recorded, durably) and the
    // SHA-1 compared after: a server killed between the two kept the
    // refused bytes, and the upload completed holding them.
    const sinks: { whole?: boolean; ended?: "close" | "abort" }[] = [];
    const watched: ResumableStore = {
      ...store,
      async append(id, offset, options) {
        const seen: (typeof sinks)[number] = { whole: options?.whole };
        sinks.push(seen);
        const writer = (await store.append(id, offset, options)).getWriter();
        return new WritableStream<Uint8Array>({
          write: (chunk) => writer.write(chunk),
          close: () => {
            seen.ended = "close";
            return writer.close();
          },
          abort: (reason) => {
            seen.ended = "abort";
            return writer.abort(reason);
          },
        });
      },
    };
    const checking = createResumableUploadHandler({
      store: watched,
      hasher: createHasher,
    });
    const created = await checking(
      req("POST", "/uploads", { ...TUS, "upload-length": "1000" }),
    );
    const location = created.headers.get("location")!;
    const data = bytes(1000, 43);
    const patch = (body: Uint8Array<ArrayBuffer>, sum: string) =>
      checking(
        req("PATCH", location, {
          ...TUS,
          "content-type": "application/offset+octet-stream",
          "upload-offset": "0",
          "upload-checksum": `sha1 ${sum}`,
        }, body),
      );
    const bad = await patch(bytes(1000, 44), await sha1(data));
    assert.equal(bad.status, 460);
    assert.deepEqual(sinks, [{ whole: true, ended: "abort" }]);
    const good = await patch(data, await sha1(data));
    assert.equal(good.status, 204);
    assert.deepEqual(sinks[1], { whole: true, ended: "close" });
    // Without a checksum a chunk is kept as it comes, cut or not.
    const plain = await checking(
      req("POST", "/uploads", { ...TUS, "upload-length": "10" }),
    );
    await checking(
      req("PATCH", plain.headers.get("location")!, {
        ...TUS,
        "content-type": "application/offset+octet-stream",
        "upload-offset": "0",
      }, bytes(10)),
    );
    assert.deepEqual(sinks[2], { whole: undefined, ended: "close" });
  });

  it("never truncates a store that appends whole after a refused chunk (it rolled back another instance's acknowledged append), and answers a sink's HttpError at close with it", async () => {
    // Before, the handler called truncate after every refused checksum
    // chunk: the Workers store rolled back to the state before the last
    // append, another instance's acknowledged (even completing) chunk, and
    // a commit that lost to that append answered 500.
    let truncates = 0;
    let closeFails: HttpError | undefined;
    const counting = (wholeAppends: boolean): ResumableStore => ({
      ...store,
      wholeAppends,
      async append(id, offset, options) {
        const writer = (await store.append(id, offset, options)).getWriter();
        return new WritableStream<Uint8Array>({
          write: (chunk) => writer.write(chunk),
          async close() {
            if (closeFails) {
              await writer.abort(closeFails);
              throw closeFails;
            }
            await writer.close();
          },
          abort: (reason) => writer.abort(reason),
        });
      },
      truncate(id, offset) {
        truncates++;
        return store.truncate(id, offset);
      },
    });
    const data = bytes(1000, 46);
    for (const wholeAppends of [true, false]) {
      const checking = createResumableUploadHandler({
        store: counting(wholeAppends),
      });
      const created = await checking(
        req("POST", "/uploads", { ...TUS, "upload-length": "1000" }),
      );
      const location = created.headers.get("location")!;
      const patch = async (body: Uint8Array<ArrayBuffer>) =>
        await checking(
          req("PATCH", location, {
            ...TUS,
            "content-type": "application/offset+octet-stream",
            "upload-offset": "0",
            "upload-checksum": `sha1 ${await sha1(data)}`,
          }, body),
        );
      truncates = 0;
      assert.equal((await patch(bytes(1000, 47))).status, 460);
      assert.equal(
        truncates,
        wholeAppends ? 0 : 1,
        `wholeAppends ${wholeAppends}`,
      );
      closeFails = new HttpError(409, "Cannot commit append: another came");
      const lost = await patch(data);
      closeFails = undefined;
      assert.equal(lost.status, 409);
      assert.match(await lost.text(), /another came/);
      assert.equal((await patch(data)).status, 204);
    }
  });

  it("the file store keeps none of a whole chunk before its close, not even for a process that starts on its directory meanwhile", async () => {
    const sync = createResumableFileStore(dir, {
      syncIntervalBytes: 64 * 1024,
    });
    const upload = {
      id: "wholechunk0123456789AB",
      offset: 0,
      complete: false,
      createdAt: Date.now(),
      length: 4 * 1024 * 1024,
    };
    await sync.create(upload);
    const data = bytes(1024 * 1024, 45);
    // Aborted: nothing kept.
    let sink = (await sync.append(upload.id, 0, { whole: true })).getWriter();
    for (let i = 0; i < 16; i++) {
      await sink.write(data.subarray(i * 65536, (i + 1) * 65536));
    }
    // A checkpoint would have run by now for a chunk that is not whole.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const restarted = createResumableFileStore(dir);
    assert.equal((await restarted.get(upload.id))?.offset, 0);
    await sink.abort(new Error("refused"));
    assert.equal((await sync.get(upload.id))?.offset, 0);
    assert.equal((await stat(join(dir, `.${upload.id}.upload`))).size, 0);
    // Closed: all of it, durably.
    sink = (await sync.append(upload.id, 0, { whole: true })).getWriter();
    await sink.write(data);
    await sink.close();
    assert.equal((await sync.get(upload.id))?.offset, data.byteLength);
    // Once its checkpoint has run (read() waits for it), on disk too.
    await (await sync.read(upload.id))?.cancel();
    assert.equal(
      (await createResumableFileStore(dir).get(upload.id))?.offset,
      data.byteLength,
    );
    await sync.delete(upload.id);
  });

  it("checks sha1 as a stream of odd-sized chunks, across SHA-1 blocks", async () => {
    const data = bytes(70_000, 42);
    const response = await handler(
      req("POST", "/uploads", { ...TUS, "upload-length": "70000" }),
    );
    const location = response.headers.get("location")!;
    const sizes = [1, 63, 64, 65, 127, 4096, 9];
    let at = 0;
    let i = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (at >= data.byteLength) return controller.close();
        const next = Math.min(data.byteLength, at + sizes[i++ % sizes.length]);
        controller.enqueue(data.slice(at, next));
        at = next;
      },
    });
    const done = await handler(
      new Request(new URL(location, BASE), {
        method: "PATCH",
        headers: {
          ...TUS,
          "content-type": "application/offset+octet-stream",
          "upload-offset": "0",
          "upload-checksum": `sha1 ${await sha1(data)}`,
        },
        body,
        duplex: "half",
      } as RequestInit),
    );
    assert.equal(done.status, 204);
    assert.equal(done.headers.get("upload-offset"), "70000");
  });

  it("refuses an unknown checksum algorithm and a malformed sha1 digest with 400", async () => {
    const response = await handler(
      req("POST", "/uploads", { ...TUS, "upload-length": "3" }),
    );
    const location = response.headers.get("location")!;
    for (
      const checksum of [
        "md5 AAAA",
        "crc32 AAAAAA==",
        "sha1 AAAA", // 3 bytes, not 20
        "sha1 !!notbase64!!",
        "sha1",
      ]
    ) {
      const refused = await tusPatch(location, 0, "abc", {
        "upload-checksum": checksum,
      });
      assert.equal(refused.status, 400, checksum);
      assert.match(await refused.text(), /Upload-Checksum/, checksum);
    }
    const head = await handler(req("HEAD", location, TUS));
    assert.equal(head.headers.get("upload-offset"), "0");
  });

  it("checks sha1 without a hasher, and lists only it then", async () => {
    const plain = createResumableUploadHandler({ store });
    const options = await plain(req("OPTIONS", "/uploads"));
    assert.equal(options.headers.get("tus-checksum-algorithm"), "sha1");
    const response = await plain(
      req("POST", "/uploads", { ...TUS, "upload-length": "5" }),
    );
    const location = response.headers.get("location")!;
    const send = (checksum: string) =>
      plain(
        req("PATCH", location, {
          ...TUS,
          "content-type": "application/offset+octet-stream",
          "upload-offset": "0",
          "upload-checksum": checksum,
        }, "hello"),
      );
    const sha256Refused = await send(
      `sha256 ${b64(sha256(new TextEncoder().encode("hello")))}`,
    );
    assert.equal(sha256Refused.status, 400);
    const ok = await send(
      `sha1 ${await sha1(new TextEncoder().encode("hello"))}`,
    );
    assert.equal(ok.status, 204);
    assert.equal(ok.headers.get("upload-offset"), "5");
  });

  it("drops the bytes of a cut chunk that carried a checksum", async () => {
    const response = await handler(
      req("POST", "/uploads", { ...TUS, "upload-length": "4000" }),
    );
    const location = response.headers.get("location")!;
    const data = bytes(4000, 43);
    const broken = droppedAfter(data.slice(0, 1500));
    const cut = await tusPatch(location, 0, broken, {
      "upload-checksum": `sha1 ${await sha1(data)}`,
    });
    assert.equal(cut.status, 400);
    const head = await handler(req("HEAD", location, TUS));
    assert.equal(head.headers.get("upload-offset"), "0");
  });

  it("terminates an upload with DELETE (404 afterwards)", async () => {
    const response = await handler(
      req("POST", "/uploads", { ...TUS, "upload-length": "10" }),
    );
    const location = response.headers.get("location")!;
    assert.equal((await handler(req("DELETE", location, TUS))).status, 204);
    assert.equal((await handler(req("HEAD", location, TUS))).status, 404);
  });

  it("refuses Upload-Metadata over maxMetadataBytes and malformed metadata with 400", async () => {
    const small = createResumableUploadHandler({ store, maxMetadataBytes: 16 });
    const big = await small(
      req("POST", "/uploads", {
        ...TUS,
        "upload-length": "1",
        "upload-metadata": "filename " + "QUFB".repeat(8),
      }),
    );
    assert.equal(big.status, 400);
    assert.match(await big.text(), /maxMetadataBytes 16/);
    const malformed = await handler(
      req("POST", "/uploads", {
        ...TUS,
        "upload-length": "1",
        "upload-metadata": "a b c",
      }),
    );
    assert.equal(malformed.status, 400);
  });

  it("refuses Upload-Metadata with a key twice or a value that is not base64, and lengths or offsets that are not plain integers (tus 1.0; @tus/server refuses them too)", async () => {
    // Before, each was taken: `a YQ==,a Yg==` stored with both values,
    // `a abc` stored, `4;x` read as 4.
    const create = (headers: Record<string, string>) =>
      handler(req("POST", "/uploads", { ...TUS, ...headers }));
    for (
      const [metadata, message] of [
        ["a YQ==,a Yg==", /the key "a" twice/],
        ["a abc", /malformed Upload-Metadata/],
        ["a YQ=", /malformed Upload-Metadata/],
      ] as const
    ) {
      const response = await create({
        "upload-length": "1",
        "upload-metadata": metadata,
      });
      assert.equal(response.status, 400, metadata);
      assert.match(await response.text(), message);
    }
    const fine = await create({
      "upload-length": "1",
      "upload-metadata": "a YQ==,b,c YWI=,d YWJj",
    });
    assert.equal(fine.status, 201);
    const parameters = await create({ "upload-length": "4;x" });
    assert.equal(parameters.status, 400);
    assert.match(
      await parameters.text(),
      /Upload-Length: expected a non-negative integer, got "4;x"/,
    );
    const location = fine.headers.get("location")!;
    const offset = await tusPatch(location, 0, "a", {
      "upload-offset": "0;x=1",
    });
    assert.equal(offset.status, 400);
    assert.match(
      await offset.text(),
      /Upload-Offset: expected a non-negative integer/,
    );
  });

  it("honours X-HTTP-Method-Override", async () => {
    const response = await handler(
      req("POST", "/uploads", { ...TUS, "upload-length": "3" }),
    );
    const location = response.headers.get("location")!;
    const overridden = await handler(
      req("POST", location, {
        ...TUS,
        "x-http-method-override": "PATCH",
        "content-type": "application/offset+octet-stream",
        "upload-offset": "0",
      }, "abc"),
    );
    assert.equal(overridden.status, 204);
    assert.equal(overridden.headers.get("upload-offset"), "3");
  });

  it("honours X-HTTP-Method-Override on POST alone: a HEAD, GET or OPTIONS saying DELETE deleted the upload, a HEAD saying POST created one", async () => {
    const response = await handler(
      req("POST", "/uploads", { ...TUS, "upload-length": "3" }),
    );
    const location = response.headers.get("location")!;
    const id = location.split("/").pop()!;
    for (const method of ["HEAD", "GET", "OPTIONS"]) {
      const answer = await handler(
        req(method, location, { ...TUS, "x-http-method-override": "DELETE" }),
      );
      await answer.body?.cancel();
      assert.ok(await store.get(id), `${method}: the upload is still there`);
    }
    const before = (await fileStoreUploadIds(dir)).length;
    const head = await handler(
      req("HEAD", "/uploads", {
        ...TUS,
        "x-http-method-override": "POST",
        "upload-length": "0",
      }),
    );
    assert.notEqual(head.status, 201);
    assert.equal((await fileStoreUploadIds(dir)).length, before);
    // Through POST, as tus-js-client tunnels it, DELETE still deletes.
    const deleted = await handler(
      req("POST", location, { ...TUS, "x-http-method-override": "DELETE" }),
    );
    assert.equal(deleted.status, 204);
    assert.equal(await store.get(id), undefined);
  });

  it("refuses an oversized Upload-Length with 413", async () => {
    const response = await handler(
      req("POST", "/uploads", { ...TUS, "upload-length": "99999999" }),
    );
    assert.equal(response.status, 413);
  });

  it("deletes expired uploads with the store's deleteExpired", async () => {
    const id = await expiredUpload(store);
    const removed = await store.deleteExpired();
    assert.ok(removed.includes(id));
    assert.equal(await store.get(id), undefined);
  });

  it("keeps nothing in memory of a completed upload", async () => {
    // Before, the ids of every upload ever opened stayed in one of the
    // store's sets for the process's life (about 60-100 B each). The
    // store's own sets and maps are found by watching their add and set.
    const own = await makeTempDir("resumable-memory-");
    const collections = new Set<Set<unknown> | Map<unknown, unknown>>();
    const setAdd = Set.prototype.add;
    const mapSet = Map.prototype.set;
    Set.prototype.add = function (value) {
      if (this !== collections) setAdd.call(collections, this);
      return setAdd.call(this, value);
    };
    Map.prototype.set = function (key, value) {
      setAdd.call(collections, this);
      return mapSet.call(this, key, value);
    };
    let fileStore: ResumableFileStore;
    const ids: string[] = [];
    try {
      fileStore = createResumableFileStore(own);
      for (let i = 0; i < 5; i++) {
        const id = `upload${i}AAAAAAAAAAAAAAAAAAAA`.slice(0, 22);
        ids.push(id);
        await fileStore.create({
          id,
          offset: 0,
          complete: false,
          createdAt: Date.now(),
          length: 3,
        });
        const writer = (await fileStore.append(id, 0)).getWriter();
        await writer.write(new Uint8Array([1, 2, 3]));
        await writer.close();
        await fileStore.complete(id);
      }
    } finally {
      Set.prototype.add = setAdd;
      Map.prototype.set = mapSet;
      await removeDir(own);
    }
    for (const collection of collections) {
      const keys = [...collection.keys()];
      for (const id of ids) {
        assert.ok(!keys.includes(id), `${id} is still held`);
      }
    }
  });

  it("two handlers over one store (mounted under two paths) share its uploads' locks: a newer PATCH through one ends the older through the other (both ran at once: one client's bytes published, another's SHA-256 answered)", async () => {
    const own = await makeTempDir("resumable-two-");
    try {
      const store = createResumableFileStore(own);
      const a = createResumableUploadHandler({
        store,
        requestPathPrefix: "/a",
      });
      const b = createResumableUploadHandler({
        store,
        requestPathPrefix: "/b",
      });
      const size = 64 * 1024;
      const created = await a(
        req("POST", "/a", {
          "upload-complete": "?0",
          "upload-length": String(size),
        }),
      );
      assert.equal(created.status, 201);
      const id = created.headers.get("location")!.split("/").pop()!;
      // The first sends 16 KiB, then waits (until the end of the test)
      // with the handler asking for more: it is still sending when the
      // second comes. (A fixed 100 ms between them raced a loaded
      // machine.)
      const firstWaits = Promise.withResolvers<void>();
      const resume = Promise.withResolvers<void>();
      // 4 KiB every 20 ms.
      const slow = (byte: number, pauseAt = size) => {
        let sent = 0;
        let cancelled = false;
        return new ReadableStream<Uint8Array>({
          async pull(controller) {
            if (sent === pauseAt) {
              firstWaits.resolve();
              await resume.promise;
              if (cancelled) return;
            }
            if (sent >= size) return controller.close();
            await new Promise((r) => setTimeout(r, 20));
            controller.enqueue(new Uint8Array(4096).fill(byte));
            sent += 4096;
          },
          cancel() {
            cancelled = true;
          },
        });
      };
      const patch = (
        handler: (request: Request) => Promise<Response>,
        prefix: string,
        byte: number,
        pauseAt?: number,
      ) =>
        handler(
          new Request(new URL(`/${prefix}/${id}`, BASE), {
            method: "PATCH",
            headers: {
              "content-type": "application/partial-upload",
              "upload-offset": "0",
              "upload-complete": "?1",
              "content-length": String(size),
            },
            body: slow(byte, pauseAt),
            duplex: "half",
          } as RequestInit),
        );
      const first = patch(a, "a", 0x41, 4 * 4096);
      let second: Response;
      try {
        await deadline(firstWaits.promise, 10_000, "the first PATCH's 16 KiB");
        // It takes over: the first's body is cancelled while it waits.
        second = await deadline(patch(b, "b", 0x42), 10_000, "the second");
      } finally {
        resume.resolve();
      }
      const older = await deadline(first, 10_000, "the first PATCH");
      assert.equal(older.status, 409);
      assert.equal(
        await older.text(),
        "Cannot append to upload: a newer request for it took over",
      );
      // The newer one found the bytes the older kept: its offset is wrong.
      assert.equal(second.status, 409);
      const { "expected-offset": kept } = await second.json();
      const head = await b(req("HEAD", `/b/${id}`));
      assert.equal(head.headers.get("upload-offset"), String(kept));
      assert.equal(head.headers.get("upload-complete"), "?0");
      assert.ok(!(await readdir(own)).includes(id), "a complete file");
      // After its checkpoints (delete waits for them).
      await store.delete(id);
    } finally {
      await removeDir(own);
    }
  });

  it("deleteExpired works unbound (setInterval(store.deleteExpired, ...)) and sweeps what a stopped process left, an hour old", async () => {
    // Before, unbound it threw "Cannot read properties of undefined
    // (reading 'delete')" once an upload had expired, and a record's
    // temporary file or an upload's bytes without a record stayed for good.
    const own = await makeTempDir("resumable-sweep-");
    try {
      const sweeping = createResumableFileStore(own);
      const id = await expiredUpload(sweeping);
      const old = new Date(Date.now() - 2 * 60 * 60 * 1000);
      const left = [
        ".AAAAAAAAAAAAAAAAAAAAAA.json.tmp",
        ".BBBBBBBBBBBBBBBBBBBBBB.upload",
      ];
      const recent = ".CCCCCCCCCCCCCCCCCCCCCC.upload";
      for (const name of [...left, recent]) {
        await writeFile(join(own, name), "x");
      }
      for (const name of left) await utimes(join(own, name), old, old);
      const { deleteExpired } = sweeping;
      assert.deepEqual(await deleteExpired(), [id]);
      assert.deepEqual((await readdir(own)).sort(), [recent]);
    } finally {
      await removeDir(own);
    }
  });
  it("a record's temporary file that a stopped process left beside the record goes with delete, or with deleteExpired an hour later", async () => {
    // Before, a `.json.tmp` (a checkpoint cut by the process's end) beside
    // an upload's record stayed while the record did, and delete() left it.
    const own = await makeTempDir("resumable-sweep-");
    try {
      const store = createResumableFileStore(own);
      const handler = createResumableUploadHandler({ store });
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const response = await handler(
          req("POST", "/uploads", {
            "tus-resumable": "1.0.0",
            "upload-length": "10",
          }),
        );
        assert.equal(response.status, 201);
        ids.push(response.headers.get("location")!.split("/").pop()!);
      }
      const [deleted, old, recent] = ids;
      const stale = new Date(Date.now() - 2 * 60 * 60 * 1000);
      for (const id of ids) {
        for (const suffix of [".json.tmp", ".tail.tmp"]) {
          await writeFile(join(own, `.${id}${suffix}`), "{");
          if (id !== recent) {
            await utimes(join(own, `.${id}${suffix}`), stale, stale);
          }
        }
      }
      await store.delete(deleted);
      assert.deepEqual(
        (await readdir(own)).filter((name) => name.includes(deleted)),
        [],
      );
      assert.deepEqual(await store.deleteExpired(), []);
      assert.deepEqual(
        (await readdir(own)).filter((name) => !name.includes(recent)).sort(),
        [`.${old}.json`, `.${old}.upload`],
      );
      assert.deepEqual(
        (await readdir(own)).filter((name) => name.includes(recent)).sort(),
        [".json", ".json.tmp", ".tail.tmp", ".upload"].map((suffix) =>
          `.${recent}${suffix}`
        ),
      );
      // The upload whose temporary files went still takes its bytes.
      const patched = await handler(
        req("PATCH", `/uploads/${old}`, {
          "tus-resumable": "1.0.0",
          "upload-offset": "0",
          "content-type": "application/offset+octet-stream",
        }, "0123456789"),
      );
      assert.equal(patched.status, 204);
      assert.equal(await readFile(join(own, old), "utf8"), "0123456789");
    } finally {
      await removeDir(own);
    }
  });
});

/**
 * Creates a tus upload of 10 bytes in `store` that expires 1 ms later, and
 * waits until it has: its id.
 */
async function expiredUpload(store: ResumableStore): Promise<string> {
  const quick = createResumableUploadHandler({ store, expiresInMs: 1 });
  const response = await quick(
    req("POST", "/uploads", {
      "tus-resumable": "1.0.0",
      "upload-length": "10",
    }),
  );
  const id = response.headers.get("location")!.split("/").pop()!;
  const upload = await store.get(id);
  while (Date.now() <= upload!.expiresAt!) {
    await new Promise((r) => setTimeout(r, 2));
  }
  return id;
}
