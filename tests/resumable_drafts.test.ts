// createResumableUploadHandler against what the clients of each revision of
// the IETF draft send, as raw fetch requests to a server on 127.0.0.1 port
// 0: interop version 3 (the draft's -01, iOS 17's URLSession:
// Upload-Incomplete), 5 and 6 (tus-js-client's ietf-draft-03 and
// ietf-draft-05 modes, with its overridePatchMethod) and 8 (the current
// draft: Upload-Complete on a refused final answer and on the protocol's
// own refusals).

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { Buffer } from "node:buffer";
import * as tus from "tus-js-client";
import { createResumableUploadHandler, HttpError } from "../lib/http/mod.ts";
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

/** The size of an upload that `onComplete` refuses with `refusal`. */
const REFUSED_BYTES = 7;

let dir: string;
let store: ResumableFileStore;
let server: Server;
let base: string;
let refusal = 400;

before(async () => {
  dir = await makeTempDir("resumable-drafts-");
  store = createResumableFileStore(dir);
  server = await startServer(
    createResumableUploadHandler({
      store,
      hasher: createHasher,
      maxBytes: 16 * 1024 * 1024,
      onError: () => {},
      onComplete: ({ bytes }) => {
        if (bytes === REFUSED_BYTES) {
          throw new HttpError(refusal, "Cannot accept upload: not an image");
        }
      },
    }),
  );
  base = new URL("/uploads", server.url).href;
});

after(async () => {
  await server.shutdown();
  await removeDir(dir);
});

/** Sends a request and reads its answer's body as text. */
async function send(
  url: string,
  method: string,
  headers: Record<string, string>,
  body?: Uint8Array<ArrayBuffer> | string,
): Promise<{ response: Response; text: string }> {
  const response = await fetch(url, { method, headers, body });
  return { response, text: await response.text() };
}

/** Creates an empty upload (interop version `version`), returns its URL. */
async function create(
  version: string,
  headers: Record<string, string>,
): Promise<string> {
  const { response } = await send(base, "POST", {
    "upload-draft-interop-version": version,
    ...headers,
  });
  assert.equal(response.status, 201);
  return new URL(response.headers.get("location")!, base).href;
}

async function stored(url: string): Promise<Uint8Array> {
  return new Uint8Array(
    await readFile(store.path(new URL(url).pathname.split("/").pop()!)),
  );
}

const bytes = (n: number) => randomBytes(n);

describe("createResumableUploadHandler's final answers (interop version 8)", () => {
  it("answers onComplete's refusal of a completing PATCH with Upload-Complete: ?1, whatever its status", async () => {
    // Before, the refusal came as plain text without it, and HEAD then said
    // Upload-Complete: ?1: a client could not tell it from a lost success.
    for (const status of [400, 422, 500, 503]) {
      refusal = status;
      const url = await create("8", { "upload-complete": "?0" });
      const { response, text } = await send(url, "PATCH", {
        "upload-draft-interop-version": "8",
        "content-type": "application/partial-upload",
        "upload-offset": "0",
        "upload-complete": "?1",
      }, bytes(REFUSED_BYTES));
      assert.equal(response.status, status);
      assert.equal(text, "Cannot accept upload: not an image");
      assert.equal(
        response.headers.get("upload-complete"),
        "?1",
        `status ${status}`,
      );
      const head = await fetch(url, {
        method: "HEAD",
        headers: { "upload-draft-interop-version": "8" },
      });
      assert.equal(head.headers.get("upload-complete"), "?1");
    }
  });

  it("answers onComplete's refusal of a creation that completes the upload with Upload-Complete: ?1", async () => {
    refusal = 400;
    const { response } = await send(base, "POST", {
      "upload-draft-interop-version": "8",
      "upload-complete": "?1",
    }, bytes(REFUSED_BYTES));
    assert.equal(response.status, 400);
    assert.equal(response.headers.get("upload-complete"), "?1");
  });

  it("answers a Repr-Digest that the completed bytes do not match, which deletes the upload, with Upload-Complete: ?1 (a final answer; without it the client asked for the offset and reported the 404)", async () => {
    const wrong = `sha-256=:${sha256(new Uint8Array(1))}:`;
    const url = await create("8", {
      "upload-complete": "?0",
      "repr-digest": wrong,
    });
    const { response, text } = await send(url, "PATCH", {
      "upload-draft-interop-version": "8",
      "content-type": "application/partial-upload",
      "upload-offset": "0",
      "upload-complete": "?1",
    }, bytes(30));
    assert.equal(response.status, 400);
    assert.match(text, /does not match Repr-Digest; the upload was deleted/);
    assert.equal(response.headers.get("upload-complete"), "?1");
    const head = await fetch(url, {
      method: "HEAD",
      headers: { "upload-draft-interop-version": "8" },
    });
    assert.equal(head.status, 404);
  });

  it("answers a wrong offset with 409 and Upload-Complete: ?0", async () => {
    const url = await create("8", { "upload-complete": "?0" });
    const append = (offset: number, body: Uint8Array<ArrayBuffer>) =>
      send(url, "PATCH", {
        "upload-draft-interop-version": "8",
        "content-type": "application/partial-upload",
        "upload-offset": String(offset),
        "upload-complete": "?0",
      }, body);
    assert.equal((await append(0, bytes(4))).response.status, 204);
    const { response } = await append(2, bytes(2));
    assert.equal(response.status, 409);
    assert.equal(response.headers.get("upload-offset"), "4");
    // The draft: "MUST reject the request with a 409 (Conflict) status code
    // and the Upload-Complete header field set to false".
    assert.equal(response.headers.get("upload-complete"), "?0");
  });

  it("answers an inconsistent length with the problem and Upload-Complete: ?0", async () => {
    const url = await create("8", {
      "upload-complete": "?0",
      "upload-length": "10",
    });
    const { response, text } = await send(url, "PATCH", {
      "upload-draft-interop-version": "8",
      "content-type": "application/partial-upload",
      "upload-offset": "0",
      "upload-length": "12",
      "upload-complete": "?0",
    }, bytes(2));
    assert.equal(response.status, 400);
    assert.match(text, /inconsistent-upload-length/);
    assert.equal(response.headers.get("upload-complete"), "?0");
  });
});

describe("createResumableUploadHandler and interop version 3 (draft -01: Upload-Incomplete)", () => {
  it("stores a one-request upload sent with Upload-Incomplete: ?0, and one sent without it", async () => {
    // Before: 400 "Cannot create upload: Upload-Complete is missing".
    for (
      const headers of [{ "upload-incomplete": "?0" }, {}] as Record<
        string,
        string
      >[]
    ) {
      const data = bytes(1000);
      const { response } = await send(base, "POST", {
        "upload-draft-interop-version": "3",
        ...headers,
      }, data);
      assert.equal(response.status, 201);
      // -01: "MUST NOT include the Upload-Incomplete header with the value
      // of true"; it reads no Upload-Complete.
      assert.equal(response.headers.get("upload-incomplete"), "?0");
      assert.equal(response.headers.get("upload-complete"), null);
      assert.equal(response.headers.get("upload-offset"), "1000");
      const url = new URL(response.headers.get("location")!, base).href;
      assert.equal(sha256(await stored(url)), sha256(data));
    }
  });

  it("creates with Upload-Incomplete: ?1, reports it by HEAD, appends untyped PATCHes, completes with the one without it", async () => {
    const data = bytes(3000);
    const { response: created } = await send(base, "POST", {
      "upload-draft-interop-version": "3",
      "upload-incomplete": "?1",
    }, data.slice(0, 1000));
    assert.equal(created.status, 201);
    assert.equal(created.headers.get("upload-incomplete"), "?1");
    assert.equal(created.headers.get("upload-offset"), "1000");
    const url = new URL(created.headers.get("location")!, base).href;
    const head = await fetch(url, {
      method: "HEAD",
      headers: { "upload-draft-interop-version": "3" },
    });
    assert.equal(head.status, 204);
    assert.equal(head.headers.get("upload-offset"), "1000");
    assert.equal(head.headers.get("upload-incomplete"), "?1");
    assert.equal(head.headers.get("upload-complete"), null);
    // -01: an append short of the end says Upload-Incomplete: ?1 and is
    // acknowledged with 201 and it.
    const middle = await send(url, "PATCH", {
      "upload-draft-interop-version": "3",
      "upload-offset": "1000",
      "upload-incomplete": "?1",
    }, data.slice(1000, 2000));
    assert.equal(middle.response.status, 201);
    assert.equal(middle.response.headers.get("upload-incomplete"), "?1");
    assert.equal(middle.response.headers.get("upload-offset"), "2000");
    const wrong = await send(url, "PATCH", {
      "upload-draft-interop-version": "3",
      "upload-offset": "1500",
      "upload-incomplete": "?1",
    }, data.slice(1500, 2000));
    assert.equal(wrong.response.status, 409);
    assert.equal(wrong.response.headers.get("upload-offset"), "2000");
    assert.equal(wrong.response.headers.get("upload-incomplete"), "?1");
    const last = await send(url, "PATCH", {
      "upload-draft-interop-version": "3",
      "upload-offset": "2000",
    }, data.slice(2000));
    assert.equal(last.response.status, 200);
    assert.equal(last.response.headers.get("upload-incomplete"), "?0");
    assert.equal(last.response.headers.get("upload-offset"), "3000");
    const done = await fetch(url, {
      method: "HEAD",
      headers: { "upload-draft-interop-version": "3" },
    });
    assert.equal(done.headers.get("upload-incomplete"), "?0");
    assert.equal(sha256(await stored(url)), sha256(data));
  });
});

describe("createResumableUploadHandler and X-HTTP-Method-Override on the draft's path", () => {
  it("takes a POST saying PATCH as an append (interop versions 5, 6 and 8)", async () => {
    // Before: 405 `method "POST" is not HEAD, PATCH, DELETE, OPTIONS`.
    for (const version of ["5", "6", "8"]) {
      const url = await create(version, { "upload-complete": "?0" });
      const data = bytes(100);
      const headers: Record<string, string> = {
        "upload-draft-interop-version": version,
        "x-http-method-override": "PATCH",
        "upload-offset": "0",
        "upload-complete": "?1",
      };
      if (version !== "5") {
        headers["content-type"] = "application/partial-upload";
      }
      const { response } = await send(url, "POST", headers, data);
      assert.equal(response.status, 200, `version ${version}`);
      assert.equal(response.headers.get("upload-complete"), "?1");
      assert.equal(sha256(await stored(url)), sha256(data));
    }
  });

  it("takes the override for PATCH and DELETE alone: a POST saying OPTIONS or HEAD is a POST (it got a 405 naming OPTIONS as allowed, or was answered as a HEAD, its body unread)", async () => {
    const url = await create("8", { "upload-complete": "?0" });
    for (const said of ["OPTIONS", "HEAD", "GET"]) {
      const { response, text } = await send(url, "POST", {
        "upload-draft-interop-version": "8",
        "x-http-method-override": said,
      }, bytes(10));
      assert.equal(response.status, 405, said);
      assert.match(text, /method "POST" is not HEAD, PATCH, DELETE, OPTIONS/);
    }
    const head = await fetch(url, {
      method: "HEAD",
      headers: { "upload-draft-interop-version": "8" },
    });
    assert.equal(head.headers.get("upload-offset"), "0");
  });

  for (const protocol of ["ietf-draft-05", "ietf-draft-03"]) {
    it(`uploads from tus-js-client in its ${protocol} mode with overridePatchMethod`, async () => {
      const data = randomBytes(200_000);
      const url = await deadline(
        new Promise<string>((resolve, reject) => {
          const upload = new tus.Upload(Buffer.from(data), {
            endpoint: base,
            overridePatchMethod: true,
            retryDelays: [],
            chunkSize: 64 * 1024,
            // `protocol` is in tus-js-client 4.3.1's code, not its typings.
            protocol,
            onError: reject,
            onSuccess: () => resolve(upload.url!),
          } as tus.UploadOptions);
          upload.start();
        }),
        60_000,
        `tus-js-client (${protocol})`,
      );
      assert.equal(sha256(await stored(url)), sha256(data));
    });
  }
});
