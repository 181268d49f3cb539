// createResumableUploadHandler over a store that fails: a completion the
// store cannot publish (a creation keeps nothing and frees its reservation;
// a PATCH keeps the upload, which the next completion publishes), on the
// file store and on the Workers store (fakes of Durable Objects and R2),
// and onError, told of every 5xx answer the handler gives.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readdir, readFile, rm, stat } from "node:fs/promises";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import {
  type CompletedResumableUpload,
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
  createResumableUploadObject,
  createResumableWorkersStore,
} from "../lib/runtime/workers.ts";
import { FakeNamespace } from "./_do_fake.ts";
import { FakeR2Bucket } from "./_r2_fake.ts";
import {
  captureConsole,
  fileStoreUploadIds,
  makeTempDir,
  randomBytes,
  removeDir,
  sha256Base64,
} from "./_helpers.ts";

const BASE = "http://localhost/uploads";
const TUS = "1.0.0";

function req(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: BodyInit,
): Request {
  return new Request(new URL(path, BASE), { method, headers, body });
}

/**
 * `store` whose `complete` fails (an EIO on the final rename) while
 * `failures` is above 0, one failure a call.
 */
function failingComplete(store: ResumableStore) {
  const state = { failures: 0 };
  const wrapped: ResumableStore = Object.create(store);
  wrapped.complete = (id) => {
    if (state.failures > 0) {
      state.failures--;
      return Promise.reject(
        Object.assign(new Error("EIO: i/o error, rename '/srv/uploads/x'"), {
          code: "EIO",
        }),
      );
    }
    return store.complete(id);
  };
  return { store: wrapped, state };
}

/**
 * A handler over `store` whose completions fail on demand, recording what
 * `onComplete` and `onError` are told.
 */
function failingHandler(store: ResumableStore) {
  const { store: wrapped, state } = failingComplete(store);
  const done: CompletedResumableUpload[] = [];
  const errors: unknown[] = [];
  const handler = createResumableUploadHandler({
    store: wrapped,
    hasher: createHasher,
    maxBytes: 1000,
    // Room for one upload of 600 bytes: a reservation left behind refuses
    // the next creation (413).
    maxTotalBytes: 1000,
    // Never: an upload left behind keeps its reservation for good.
    expiresInMs: 0,
    onComplete: (upload) => void done.push(upload),
    onError: (error) => void errors.push(error),
  });
  return { handler, state, done, errors };
}

/** That `error` is the 500 of a failed publication, the store's cause in it. */
function assertPublishFailed(error: unknown): void {
  assert.ok(error instanceof HttpError, String(error));
  assert.equal(error.status, 500);
  assert.equal(
    error.message,
    "Cannot complete upload: the store failed to publish it",
  );
  assert.ok(error.cause instanceof Error);
}

/**
 * Creates an IETF upload of `length` bytes through `handler`; `patch`
 * appends `bytes` at `offset` and completes it.
 */
async function ietfUpload(
  handler: (request: Request) => Promise<Response>,
  length: number,
) {
  const created = await handler(
    req("POST", "/uploads", {
      "upload-complete": "?0",
      "upload-length": String(length),
    }),
  );
  assert.equal(created.status, 201);
  const location = created.headers.get("location")!;
  const patch = (offset: number, bytes: Uint8Array) =>
    handler(
      req("PATCH", location, {
        "content-type": "application/partial-upload",
        "upload-offset": String(offset),
        "upload-complete": "?1",
      }, bytes as Uint8Array<ArrayBuffer>),
    );
  return { location, patch };
}

/** A POST creating an upload of 600 bytes, in tus or the draft. */
function creation(tus: boolean): Request {
  return req(
    "POST",
    "/uploads",
    tus
      ? { "tus-resumable": TUS, "upload-length": "600" }
      : { "upload-complete": "?0", "upload-length": "600" },
  );
}

let dir: string;
let fileStore: ResumableFileStore;

before(async () => {
  dir = await makeTempDir("resumable-failures-");
  fileStore = createResumableFileStore(dir);
});

after(async () => {
  await removeDir(dir);
});

describe("createResumableUploadHandler when the store fails to publish an upload", () => {
  it("keeps nothing of an IETF creation it completes and frees its reservation: 500 without Location", async () => {
    // Before, the handler threw the store's error (500 from the server,
    // no Location), the upload's files stayed, and its 600 bytes stayed
    // reserved: the next creation got 413 ("would exceed maxTotalBytes").
    const { handler, state, done, errors } = failingHandler(fileStore);
    const body = randomBytes(600);
    const create = () =>
      handler(
        req("POST", "/uploads", {
          "upload-complete": "?1",
          "upload-length": "600",
        }, body),
      );
    const kept = await fileStoreUploadIds(dir);
    state.failures = 1;
    const failed = await create();
    assert.equal(failed.status, 500);
    assert.equal(
      await failed.text(),
      "Cannot complete upload: the store failed to publish it",
    );
    assert.equal(failed.headers.get("location"), null);
    assert.deepEqual(await fileStoreUploadIds(dir), kept);
    assert.equal(done.length, 0);
    assert.equal(errors.length, 1);
    assertPublishFailed(errors[0]);

    const healthy = await create();
    assert.equal(healthy.status, 201, await healthy.clone().text());
    const id = healthy.headers.get("location")!.split("/").pop()!;
    assert.deepEqual(
      new Uint8Array(await readFile(fileStore.path(id))),
      body,
    );
    assert.equal(done.length, 1);
  });

  it("keeps nothing of a tus creation-with-upload it completes, nor of an empty tus upload, and frees the reservation", async () => {
    const { handler, state, done, errors } = failingHandler(fileStore);
    const body = randomBytes(600);
    const withUpload = () =>
      handler(
        req("POST", "/uploads", {
          "tus-resumable": TUS,
          "upload-length": "600",
          "content-type": "application/offset+octet-stream",
        }, body),
      );
    const empty = () =>
      handler(
        req("POST", "/uploads", {
          "tus-resumable": TUS,
          "upload-length": "0",
        }),
      );
    for (const create of [withUpload, empty]) {
      const kept = await fileStoreUploadIds(dir);
      state.failures = 1;
      const failed = await create();
      assert.equal(failed.status, 500);
      assert.equal(failed.headers.get("tus-resumable"), TUS);
      assert.equal(failed.headers.get("location"), null);
      assert.deepEqual(await fileStoreUploadIds(dir), kept);
    }
    assert.equal(done.length, 0);
    assert.equal(errors.length, 2);
    for (const error of errors) assertPublishFailed(error);

    for (const create of [withUpload, empty]) {
      const healthy = await create();
      assert.equal(healthy.status, 201);
      assert.ok(healthy.headers.get("location"));
    }
    assert.deepEqual(done.map((upload) => upload.bytes), [600, 0]);
  });

  it("keeps an upload whose completing IETF PATCH it fails: 500, every byte kept, and the next completion publishes it with its SHA-256", async () => {
    // Before, the handler threw the store's error; and the retry could not
    // complete it: the running SHA-256 had given its digest already.
    const { handler, state, done, errors } = failingHandler(fileStore);
    const body = randomBytes(600);
    const { location, patch } = await ietfUpload(handler, 600);
    state.failures = 1;
    const failed = await patch(0, body);
    assert.equal(failed.status, 500);
    assert.equal(
      await failed.text(),
      "Cannot complete upload: the store failed to publish it",
    );
    assert.equal(errors.length, 1);
    assertPublishFailed(errors[0]);
    assert.equal(done.length, 0);

    // What resumableUpload does after a 5xx: ask for the offset, then
    // complete at it.
    const head = await handler(req("HEAD", location));
    assert.equal(head.status, 204);
    assert.equal(head.headers.get("upload-offset"), "600");
    assert.equal(head.headers.get("upload-complete"), "?0");
    const completed = await patch(600, new Uint8Array(0));
    assert.equal(completed.status, 200, await completed.clone().text());
    assert.equal(
      completed.headers.get("repr-digest"),
      `sha-256=:${sha256Base64(body)}:`,
    );
    const id = location.split("/").pop()!;
    assert.deepEqual(
      new Uint8Array(await readFile(fileStore.path(id))),
      body,
    );
    assert.equal(done.length, 1);
    assert.equal(errors.length, 1);
  });

  it("the file store: a completion whose record cannot be written (a disk just full) leaves the data unpublished, and the next completion publishes it", async () => {
    // Before, complete() renamed the data to its published name and then
    // failed to write the record: the record said unfinished, every retry
    // failed (ENOENT on the renamed data, thrown out of the handler), the
    // reservation stayed, and the upload's expiry would have deleted the
    // published file.
    const store: ResumableStore = Object.create(fileStore);
    let failNext = true;
    store.complete = async (id) => {
      if (failNext) {
        failNext = false;
        // Once the append's own record writes are done (read() waits for
        // them), the record's temporary file cannot be written: a
        // directory there.
        await (await fileStore.read(id))?.cancel();
        await rm(join(dir, `.${id}.json.tmp`), { force: true });
        await mkdir(join(dir, `.${id}.json.tmp`));
      }
      return await fileStore.complete(id);
    };
    const { handler, done, errors } = failingHandler(store);
    const body = randomBytes(600);
    const { location, patch } = await ietfUpload(handler, 600);
    const id = location.split("/").pop()!;
    const failed = await patch(0, body);
    assert.equal(failed.status, 500);
    assertPublishFailed(errors[0]);
    await rm(join(dir, `.${id}.json.tmp`), { recursive: true, force: true });
    // Not published: nothing under its final name.
    await assert.rejects(stat(fileStore.path(id)), { code: "ENOENT" });

    const head = await handler(req("HEAD", location));
    assert.equal(head.headers.get("upload-offset"), "600");
    const completed = await patch(600, new Uint8Array(0));
    assert.equal(completed.status, 200, await completed.clone().text());
    assert.equal(
      completed.headers.get("repr-digest"),
      `sha-256=:${sha256Base64(body)}:`,
    );
    assert.deepEqual(new Uint8Array(await readFile(fileStore.path(id))), body);
    assert.equal(done.length, 1);
    // Its reservation freed: another upload of 600 bytes is taken.
    const next = await handler(
      req("POST", "/uploads", {
        "upload-complete": "?0",
        "upload-length": "600",
      }),
    );
    assert.equal(next.status, 201);
  });

  it("keeps an upload whose completing tus PATCH it fails: 500, and the HEAD that finds it whole publishes it", async () => {
    const { handler, state, done, errors } = failingHandler(fileStore);
    const body = randomBytes(600);
    const created = await handler(
      req("POST", "/uploads", { "tus-resumable": TUS, "upload-length": "600" }),
    );
    assert.equal(created.status, 201);
    const location = created.headers.get("location")!;
    state.failures = 1;
    const failed = await handler(
      req("PATCH", location, {
        "tus-resumable": TUS,
        "content-type": "application/offset+octet-stream",
        "upload-offset": "0",
      }, body),
    );
    assert.equal(failed.status, 500);
    assert.equal(errors.length, 1);
    assertPublishFailed(errors[0]);

    const head = await handler(
      req("HEAD", location, { "tus-resumable": TUS }),
    );
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("upload-offset"), "600");
    assert.equal(head.headers.get("upload-expires"), null);
    const id = location.split("/").pop()!;
    assert.deepEqual(
      new Uint8Array(await readFile(fileStore.path(id))),
      body,
    );
    assert.equal(done.length, 1);
    assert.equal(
      btoa(String.fromCharCode(...done[0].sha256!)),
      sha256Base64(body),
    );
  });

  it("on the Workers store too: a creation whose R2 put fails leaves no object, no state and no reservation; a failed PATCH's upload completes on the next try", async () => {
    const bucket = new FakeR2Bucket();
    const namespace = new FakeNamespace(
      createResumableUploadObject({ bucket: () => bucket }),
      {},
    );
    const { handler, done, errors } = failingHandler(
      createResumableWorkersStore(namespace),
    );
    const body = randomBytes(600);
    const create = () =>
      handler(
        req("POST", "/uploads", {
          "upload-complete": "?1",
          "upload-length": "600",
        }, body),
      );
    bucket.failOn("put");
    const failed = await create();
    assert.equal(failed.status, 500);
    assert.equal(failed.headers.get("location"), null);
    assert.equal(bucket.objects.size, 0);
    assert.deepEqual(
      [...namespace.storages.values()].map((storage) => storage.values.size),
      [0],
    );
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof HttpError && errors[0].status === 500);

    const healthy = await create();
    assert.equal(healthy.status, 201, await healthy.clone().text());
    assert.equal(bucket.objects.size, 1);

    const { patch } = await ietfUpload(handler, 600);
    bucket.failOn("put");
    assert.equal((await patch(0, body)).status, 500);
    assert.equal(errors.length, 2);
    const completed = await patch(600, new Uint8Array(0));
    assert.equal(completed.status, 200, await completed.clone().text());
    assert.equal(
      completed.headers.get("repr-digest"),
      `sha-256=:${sha256Base64(body)}:`,
    );
    assert.equal(bucket.objects.size, 2);
    assert.equal(done.length, 2);
  });
});

/**
 * `store` whose appends fail once they have written 100 bytes, as on a
 * full disk.
 */
function fullDisk(store: ResumableStore): ResumableStore {
  const wrapped: ResumableStore = Object.create(store);
  wrapped.append = async (id, offset, options) => {
    const writer = (await store.append(id, offset, options)).getWriter();
    let written = 0;
    return new WritableStream<Uint8Array>({
      async write(chunk) {
        written += chunk.byteLength;
        if (written > 100) {
          throw Object.assign(
            new Error("ENOSPC: no space left on device, write"),
            { code: "ENOSPC" },
          );
        }
        await writer.write(chunk);
      },
      close: () => writer.close(),
      abort: (reason) => writer.abort(reason),
    });
  };
  return wrapped;
}

/**
 * The descriptors this process holds open on paths under `dir` (Linux's
 * /proc, read by `find`: Deno reads /proc itself only with --allow-all).
 */
function openUnder(dir: string): string[] {
  return execFileSync("find", [
    `/proc/${process.pid}/fd`,
    "-lname",
    `${dir}*`,
  ], { encoding: "utf8" }).split("\n").filter((line) => line !== "");
}

describe("the file store when a write fails (a full disk)", () => {
  it("closes the upload's file: nothing stays open, expiry removes the upload, and the next append is served", async () => {
    const storeDir = await makeTempDir("resumable-write-fails-");
    try {
      const store = createResumableFileStore(storeDir);
      const errors: unknown[] = [];
      const handler = createResumableUploadHandler({
        store,
        maxBytes: 1000,
        // Long enough for the PATCH on a loaded machine, waited for below.
        expiresInMs: 2_000,
        onError: (error) => void errors.push(error),
      });
      const createdAt = Date.now();
      const { location, patch } = await ietfUpload(handler, 600);
      const [id] = await fileStoreUploadIds(storeDir);
      const data = (await readdir(storeDir)).find((name) =>
        name.includes(id) && name.endsWith(".upload")
      );
      assert.ok(data, "no data file");
      // Its bytes' file becomes a FIFO: a positioned write there fails
      // (ESPIPE) as one on a full disk does (ENOSPC), which a test cannot
      // fill without mounting one.
      await rm(join(storeDir, data));
      execFileSync("mkfifo", [join(storeDir, data)]);
      const failed = await patch(0, randomBytes(600));
      assert.equal(failed.status, 500);
      assert.equal(await failed.text(), "Cannot store body: the sink failed");
      assert.equal(errors.length, 1);
      // The stream errored, which calls neither close nor abort: its file
      // stayed open, and the upload among those appending for good.
      assert.deepEqual(openUnder(storeDir), []);
      assert.equal((await store.get(id))?.offset, 0);
      // Expiry skips an upload that is appending: it is removed now.
      const expiry = createdAt + 2_100 - Date.now();
      assert.ok(expiry > 0, "the PATCH came after the upload's expiry");
      await new Promise((resolve) => setTimeout(resolve, expiry));
      const expired = await store.deleteExpired();
      assert.deepEqual(expired, [id]);
      assert.deepEqual(await fileStoreUploadIds(storeDir), []);
      const head = await handler(req("HEAD", location));
      assert.equal(head.status, 404);
      // A new upload's append is served in full.
      const again = await ietfUpload(handler, 600);
      const body = randomBytes(600);
      const completed = await again.patch(0, body);
      assert.equal(completed.status, 200, await completed.clone().text());
      assert.deepEqual(openUnder(storeDir), []);
    } finally {
      await removeDir(storeDir);
    }
  });
});

describe("the file store when a checkpoint fails (a full disk)", () => {
  it("goes back to the last durable offset, and a client resuming from what HEAD says completes the upload, never answered a bare 500", async () => {
    const storeDir = await makeTempDir("resumable-checkpoint-fails-");
    try {
      const errors: unknown[] = [];
      const handler = createResumableUploadHandler({
        store: createResumableFileStore(storeDir),
        hasher: createHasher,
        maxBytes: 1000,
        onError: (error) => void errors.push(error),
      });
      const { location } = await ietfUpload(handler, 600);
      const [id] = await fileStoreUploadIds(storeDir);
      // The record cannot be written (a directory where its temporary file
      // goes: EISDIR, as ENOSPC on a full disk), so the append's checkpoint
      // fails: the append is answered 204 where the tail file vouches for
      // its bytes (Bun; under Deno the tests may not read the boot id),
      // else 500.
      const blocker = join(storeDir, `.${id}.json.tmp`);
      await mkdir(blocker);
      const body = randomBytes(600);
      const append = (offset: number, bytes: Uint8Array, complete: boolean) =>
        handler(
          req("PATCH", location, {
            "content-type": "application/partial-upload",
            "upload-offset": String(offset),
            "upload-complete": complete ? "?1" : "?0",
          }, bytes as Uint8Array<ArrayBuffer>),
        );
      const partial = await append(0, body.slice(0, 300), false);
      assert.ok(
        partial.status === 204 ||
          (partial.status === 500 &&
            await partial.text() ===
              "Cannot store body: the sink failed to close"),
        `${partial.status}`,
      );
      // The space is freed; the client resumes as resumableUpload does:
      // from the offset a HEAD gives, again after a 409.
      await rm(blocker, { recursive: true });
      const statuses: number[] = [];
      for (let round = 0; round < 3; round++) {
        const head = await handler(req("HEAD", location));
        const offset = Number(head.headers.get("upload-offset"));
        const response = await append(offset, body.slice(offset), true);
        statuses.push(response.status);
        if (response.status === 200) {
          assert.equal(
            response.headers.get("repr-digest"),
            `sha-256=:${sha256Base64(body)}:`,
          );
          break;
        }
        // It was thrown on as it was (an earlier request's EISDIR): a bare
        // 500 on the first request after the space was freed.
        assert.equal(response.status, 409, await response.text());
      }
      assert.equal(statuses.at(-1), 200, `${statuses}`);
      assert.equal(errors.length, partial.status === 500 ? 1 : 0);
    } finally {
      await removeDir(storeDir);
    }
  });
});

describe("the file store when a checkpoint fails during a later append", () => {
  it("a get (a HEAD, which takes no lock) during the later append reports its offsets, and the upload goes on from the offset acknowledged last", async () => {
    for (let round = 0; round < 5; round++) {
      const storeDir = await makeTempDir("resumable-recover-race-");
      try {
        const store = createResumableFileStore(storeDir);
        const id = `${"A".repeat(21)}${"ABCDE"[round]}`;
        await store.create({ id, offset: 0, complete: false, createdAt: 0 });
        // The first append's checkpoint cannot write its record.
        const blocker = join(storeDir, `.${id}.json.tmp`);
        await mkdir(blocker);
        const first = (await store.append(id, 0)).getWriter();
        await first.write(new Uint8Array(300).fill(1));
        // Acknowledged at once where the tail file vouches for it (the boot
        // id readable: Bun; Deno's tests may not read it, and the close
        // then fails with its checkpoint, nothing acknowledged).
        const acknowledged = await first.close().then(() => 300, () => 0);
        // The second starts at the offset acknowledged, the first's
        // checkpoint still running; it fails meanwhile.
        const second = (await store.append(id, acknowledged)).getWriter();
        await new Promise((resolve) => setTimeout(resolve, 20));
        await rm(blocker, { recursive: true });
        assert.equal((await store.get(id))?.offset, acknowledged);
        await second.write(new Uint8Array(300).fill(2));
        await second.close();
        // It dropped the second append's state under it: an unknown upload
        // (undefined), then 409 for the acknowledged offset.
        const after = acknowledged + 300;
        assert.equal((await store.get(id))?.offset, after);
        const third = (await store.append(id, after)).getWriter();
        await third.write(new Uint8Array(100).fill(3));
        await third.close();
        assert.equal((await store.get(id))?.offset, after + 100);
      } finally {
        await removeDir(storeDir);
      }
    }
  });
});

describe("the file store's expiry sweep and an upload another store completed", () => {
  it("deleteExpired keeps an upload completed through another store object over its directory (as another process or isolate: deno serve --parallel), which it had seen unfinished: its published file was deleted", async () => {
    const shared = await makeTempDir("resumable-two-stores-");
    try {
      const first = createResumableFileStore(shared);
      const second = createResumableFileStore(shared);
      // Room for a slow disk's fsyncs between a creation and its PATCH.
      const through = (store: ResumableFileStore) =>
        createResumableUploadHandler({ store, expiresInMs: 2_000 });
      /** When the upload at `location` expires, and its id. */
      const expiry = async (location: string) => {
        const id = location.split("/").pop()!;
        return { id, at: (await first.get(id))!.expiresAt! };
      };
      const until = async (at: number) => {
        while (Date.now() <= at) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      };
      const { location, patch } = await ietfUpload(through(first), 600);
      const { id, at } = await expiry(location);
      // The second store sees it unfinished, and remembers it so.
      const head = await through(second)(req("HEAD", location));
      assert.equal(head.headers.get("upload-complete"), "?0");
      const data = randomBytes(600);
      assert.equal((await patch(0, data)).status, 200);
      await until(at);
      assert.deepEqual(await second.deleteExpired(), []);
      assert.deepEqual(new Uint8Array(await readFile(join(shared, id))), data);
      // An unfinished one that expired is still swept.
      const stale = await expiry(
        (await ietfUpload(through(first), 600)).location,
      );
      await until(stale.at);
      assert.deepEqual(await second.deleteExpired(), [stale.id]);
    } finally {
      await removeDir(shared);
    }
  });
});

describe("a creation the store fails", () => {
  it("is answered 507 on a full disk, 500 otherwise, and told to onError (it was thrown on: the server's bare 500, onError not told)", async () => {
    for (
      const [thrown, status, said] of [
        [
          Object.assign(new Error("ENOSPC: no space left on device"), {
            code: "ENOSPC",
          }),
          507,
          "Cannot create upload: the store failed: no space left on the server",
        ],
        [
          new Error("EIO: i/o error"),
          500,
          "Cannot create upload: the store failed",
        ],
      ] as const
    ) {
      const store: ResumableStore = Object.create(fileStore);
      store.create = () => Promise.reject(thrown);
      const errors: unknown[] = [];
      const handler = createResumableUploadHandler({
        store,
        onError: (error) => void errors.push(error),
      });
      for (const tus of [false, true]) {
        const response = await handler(
          creation(tus),
        );
        assert.equal(response.status, status);
        assert.equal(await response.text(), said);
        assert.equal(response.headers.get("location"), null);
      }
      assert.equal(errors.length, 2);
      for (const error of errors) {
        assert.ok(error instanceof HttpError && error.status === status);
        assert.equal(error.cause, thrown);
      }
    }
  });

  it("leaves no file in the file store when its record cannot be written (its data file stayed until the hourly sweep)", async () => {
    const storeDir = await makeTempDir("resumable-create-");
    try {
      const store = createResumableFileStore(storeDir);
      const id = "a".repeat(22); // the shape of the handler's ids
      // A directory where the record's temporary file goes: EISDIR, as
      // ENOSPC on a full disk.
      await mkdir(join(storeDir, `.${id}.json.tmp`), { recursive: true });
      await assert.rejects(
        store.create({ id, offset: 0, complete: false, createdAt: 0 }),
        { code: "EISDIR" },
      );
      // (Deno's unlink removes the empty directory too.)
      await rm(join(storeDir, `.${id}.json.tmp`), {
        recursive: true,
        force: true,
      });
      assert.deepEqual(await readdir(storeDir), []);
      assert.equal(await store.get(id), undefined);
    } finally {
      await removeDir(storeDir);
    }
  });
});

describe("createResumableUploadHandler's onError", () => {
  it("is told of a 5xx answer (a store write that failed: a full disk, 507) and its cause, and not of a 4xx; by default it logs", async () => {
    // Before, the client got 500 "Cannot store body: the sink failed" and
    // nothing said why: the handler answered the HttpError itself, so the
    // server never saw it, and its cause (ENOSPC) went unlogged. A full
    // disk is 507 Insufficient Storage, its cause's words unsent.
    const errors: unknown[] = [];
    const handler = createResumableUploadHandler({
      store: fullDisk(fileStore),
      onError: (error) => void errors.push(error),
    });
    for (const tus of [false, true]) {
      const created = await handler(
        creation(tus),
      );
      assert.equal(created.status, 201);
      const location = created.headers.get("location")!;
      const patch = (offset: number) =>
        handler(
          req(
            "PATCH",
            location,
            tus
              ? {
                "tus-resumable": TUS,
                "content-type": "application/offset+octet-stream",
                "upload-offset": String(offset),
              }
              : {
                "content-type": "application/partial-upload",
                "upload-offset": String(offset),
                "upload-complete": "?1",
              },
            ReadableStream.from([randomBytes(50), randomBytes(550)]),
          ),
        );
      const failed = await patch(0);
      assert.equal(failed.status, 507);
      assert.equal(
        await failed.text(),
        "Cannot store body: the sink failed: no space left on the server",
      );
      // A wrong offset: the client's side.
      const refused = await patch(7);
      assert.equal(refused.status, 409);
      await refused.body?.cancel();
    }
    assert.equal(errors.length, 2);
    for (const error of errors) {
      assert.ok(error instanceof HttpError && error.status === 507);
      assert.equal((error.cause as { code?: string }).code, "ENOSPC");
    }

    const { logged, restore } = captureConsole("error");
    try {
      const quiet = createResumableUploadHandler({
        store: fullDisk(fileStore),
      });
      const response = await quiet(
        req("POST", "/uploads", { "upload-complete": "?1" }, randomBytes(600)),
      );
      assert.equal(response.status, 507);
      assert.equal(logged.length, 1);
      assert.equal(logged[0][0], "sluice: resumable upload failed:");
      assert.ok(logged[0][1] instanceof HttpError);
    } finally {
      restore();
    }
  });

  it("refuses an onError that is not a function", () => {
    assert.throws(
      () =>
        createResumableUploadHandler({
          store: fileStore,
          onError: "log" as never,
        }),
      (error: unknown) =>
        error instanceof TypeError && /onError/.test(error.message),
    );
  });
});
