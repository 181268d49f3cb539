// resumableUpload against what the IETF draft lets a server say beyond
// offsets: a final answer that refuses the finished upload (an error with
// `Upload-Complete: ?1`, from sluice's handler and from a fake), the limits
// of `Upload-Limit` (max-append-size, max-size, min-append-size), and a 412
// from a server of other interop versions. Fake servers listen on
// 127.0.0.1, port 0.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  createResumableUploadHandler,
  HttpError,
  resumableUpload,
} from "../lib/http/mod.ts";
import { createHasher, createResumableFileStore } from "../lib/runtime/fs.ts";
import type { Server } from "../lib/runtime/serve.ts";
import {
  makeTempDir,
  randomBytes,
  removeDir,
  startServer,
  withServer,
} from "./_helpers.ts";

const FAST = { retryDelayMs: 1, maxRetryDelayMs: 5, maxRetries: 2 };

/** A fetch that records each request's method (and the answer's status). */
function recording(seen: string[]): typeof fetch {
  return (async (input: RequestInfo | URL, init?: RequestInit) => {
    const method = init?.method ?? "GET";
    try {
      const response = await fetch(input, init);
      seen.push(`${method} ${response.status}`);
      return response;
    } catch (error) {
      seen.push(`${method} failed`);
      throw error;
    }
  }) as typeof fetch;
}

function isHttpError(status: number, message?: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof HttpError, `not an HttpError: ${error}`);
    assert.equal(error.status, status, error.message);
    if (message) assert.match(error.message, message);
    return true;
  };
}

/**
 * A fake draft server of one 10-byte upload: `POST` creates it, `HEAD`
 * reports it complete, and each append gets `answer`.
 */
function appendAnswered(
  answer: (request: Request) => Response | Promise<Response>,
): (request: Request) => Response | Promise<Response> {
  return (request) => {
    if (request.method === "POST") {
      return new Response(null, {
        status: 201,
        headers: { location: "/uploads/1", "upload-complete": "?0" },
      });
    }
    if (request.method === "HEAD") {
      return new Response(null, {
        status: 204,
        headers: { "upload-offset": "10", "upload-complete": "?1" },
      });
    }
    return answer(request);
  };
}

describe("resumableUpload and a refused finished upload", () => {
  let dir: string;
  let server: Server;
  let refuseWith = 400;

  before(async () => {
    dir = await makeTempDir("resumable-client-drafts-");
    const handler = createResumableUploadHandler({
      store: createResumableFileStore(dir),
      hasher: createHasher,
      onError: () => {},
      onComplete: () => {
        throw new HttpError(refuseWith, "Cannot accept upload: not an image");
      },
    });
    server = await startServer(handler);
  });

  after(async () => {
    await server.shutdown();
    await removeDir(dir);
  });

  for (const status of [400, 503]) {
    it(`resumableUpload rejects with the ${status} of an onComplete that refuses the finished upload, without asking for the offset (it resolved, its response the HEAD's 204)`, async () => {
      refuseWith = status;
      const seen: string[] = [];
      await assert.rejects(
        resumableUpload(new URL("/uploads", server.url), randomBytes(5000), {
          ...FAST,
          fetch: recording(seen),
        }),
        isHttpError(status, new RegExp(`answered ${status} to the append`)),
      );
      assert.deepEqual(seen, ["POST 201", `PATCH ${status}`]);
    });
  }

  it("resumableUpload rejects at once with an error answer that says Upload-Complete: ?1, never retried", async () => {
    for (const status of [422, 500]) {
      const seen: string[] = [];
      await withServer(
        appendAnswered(() =>
          new Response("Cannot accept upload: scanner down", {
            status,
            headers: { "upload-complete": "?1" },
          })
        ),
        async (fake) => {
          await assert.rejects(
            resumableUpload(new URL("/uploads", fake.url), randomBytes(10), {
              ...FAST,
              fetch: recording(seen),
            }),
            isHttpError(status),
          );
        },
      );
      assert.deepEqual(seen, ["POST 201", `PATCH ${status}`], `${status}`);
    }
  });

  /** An append of all 10 bytes answered `status` without Upload-Complete. */
  const lastAppendAnswered = (status: number, text: string) =>
    appendAnswered(async (request) => {
      await request.arrayBuffer();
      return new Response(text, { status });
    });

  it("resumableUpload resolves when an error without Upload-Complete: ?1 to the last append (a gateway's 5xx, a CDN's 524, a 400 of a tab that lost the race) is followed by an offset request that finds the upload complete: no final answer (a first version failed such uploads)", async () => {
    for (const status of [400, 500, 502, 503, 504, 524]) {
      const seen: string[] = [];
      await withServer(lastAppendAnswered(status, "gateway"), async (fake) => {
        const result = await resumableUpload(
          new URL("/uploads", fake.url),
          randomBytes(10),
          { ...FAST, fetch: recording(seen) },
        );
        assert.equal(result.bytes, 10, String(status));
        assert.equal(result.response.status, 204, String(status));
      });
      assert.deepEqual(seen, ["POST 201", `PATCH ${status}`, "HEAD 204"]);
    }
  });

  it("resumableUpload throws an append's 400 when the offset request then finds the upload gone (it threw the HEAD's 404, which said nothing of why)", async () => {
    const seen: string[] = [];
    await withServer(async (request) => {
      if (request.method === "POST") {
        return new Response(null, {
          status: 201,
          headers: { location: "/uploads/1", "upload-complete": "?0" },
        });
      }
      if (request.method === "HEAD") return new Response(null, { status: 404 });
      await request.arrayBuffer();
      return new Response(
        "Cannot complete upload: its SHA-256 does not match Repr-Digest; the upload was deleted",
        { status: 400 },
      );
    }, async (fake) => {
      await assert.rejects(
        resumableUpload(new URL("/uploads", fake.url), randomBytes(10), {
          ...FAST,
          fetch: recording(seen),
        }),
        isHttpError(400, /answered 400 to an append/),
      );
    });
    assert.deepEqual(seen, ["POST 201", "PATCH 400", "HEAD 404"]);
  });

  it("resumableUpload rejects at once when the creation of an empty upload is answered with an error that says Upload-Complete: ?1", async () => {
    const seen: string[] = [];
    await withServer(
      () =>
        new Response("Cannot accept upload: empty", {
          status: 500,
          headers: { "upload-complete": "?1" },
        }),
      async (fake) => {
        await assert.rejects(
          resumableUpload(new URL("/uploads", fake.url), new Uint8Array(0), {
            ...FAST,
            fetch: recording(seen),
          }),
          isHttpError(500, /to the creation of the upload/),
        );
      },
    );
    assert.deepEqual(seen, ["POST 500"]);
  });

  it("resumableUpload still resolves when the last append's answer was lost to a cut connection and the offset request finds the upload complete (the HEAD's answer is the result's response)", async () => {
    await withServer(
      appendAnswered(() => new Response("unreachable", { status: 500 })),
      async (fake) => {
        const cut = (async (input: RequestInfo | URL, init?: RequestInit) => {
          if (init?.method === "PATCH") {
            throw new TypeError("connection reset");
          }
          return await fetch(input, init);
        }) as typeof fetch;
        const result = await resumableUpload(
          new URL("/uploads", fake.url),
          randomBytes(10),
          { ...FAST, fetch: cut },
        );
        assert.equal(result.bytes, 10);
        assert.equal(result.response.status, 204);
      },
    );
  });
});

/** A fake draft server that announces `Upload-Limit` and enforces it. */
interface LimitServerOptions {
  /** `Upload-Limit` on the creation and offset answers. */
  limit?: string;
  /** `Upload-Limit` on a 413 (else `limit`). */
  limitOn413?: string;
  /** Appends larger are refused with 413. */
  maxAppend?: number;
  /** Appends smaller that do not complete the upload are refused (400). */
  minAppend?: number;
  /** The offset of the upload at the start (a stored one). */
  offset?: number;
  /** The status a DELETE gets (204). */
  deleteStatus?: number;
}

interface LimitServer {
  server: Server;
  /** The size of each append received. */
  appends: number[];
  methods: string[];
}

async function withLimitServer(
  options: LimitServerOptions,
  fn: (fake: LimitServer) => Promise<void>,
): Promise<void> {
  const appends: number[] = [];
  const methods: string[] = [];
  let offset = options.offset ?? 0;
  const limit = (): Record<string, string> =>
    options.limit === undefined ? {} : { "upload-limit": options.limit };
  await withServer(async (request) => {
    methods.push(request.method);
    if (request.method === "POST") {
      return new Response(null, {
        status: 201,
        headers: {
          location: "/uploads/1",
          "upload-complete": "?0",
          ...limit(),
        },
      });
    }
    if (request.method === "HEAD") {
      return new Response(null, {
        status: 204,
        headers: {
          "upload-offset": String(offset),
          "upload-complete": "?0",
          ...limit(),
        },
      });
    }
    if (request.method === "DELETE") {
      return new Response(null, { status: options.deleteStatus ?? 204 });
    }
    const bytes = (await request.arrayBuffer()).byteLength;
    appends.push(bytes);
    const done = request.headers.get("upload-complete") === "?1";
    if (options.maxAppend !== undefined && bytes > options.maxAppend) {
      const announced = options.limitOn413 ?? options.limit;
      return new Response("Cannot append to upload: too large", {
        status: 413,
        headers: announced === undefined ? {} : { "upload-limit": announced },
      });
    }
    if (options.minAppend !== undefined && bytes < options.minAppend && !done) {
      return new Response("Cannot append to upload: too small", {
        status: 400,
        headers: { "upload-complete": "?0" },
      });
    }
    offset += bytes;
    return new Response(null, {
      status: done ? 200 : 204,
      headers: {
        "upload-complete": done ? "?1" : "?0",
        "upload-offset": String(offset),
      },
    });
  }, (server) => fn({ server, appends, methods }));
}

describe("resumableUpload and Upload-Limit", () => {
  it("resumableUpload caps each append at the max-append-size announced at creation (it sent one append of the whole body, refused 413)", async () => {
    await withLimitServer(
      { limit: "max-append-size=1000", maxAppend: 1000 },
      async ({ server, appends }) => {
        const result = await resumableUpload(
          new URL("/uploads", server.url),
          randomBytes(2500),
          FAST,
        );
        assert.equal(result.bytes, 2500);
        assert.deepEqual(appends, [1000, 1000, 500]);
      },
    );
  });

  it("resumableUpload sends an append refused 413 again within the max-append-size the 413 announces", async () => {
    await withLimitServer(
      { limitOn413: "max-append-size=1000", maxAppend: 1000 },
      async ({ server, appends }) => {
        const result = await resumableUpload(
          new URL("/uploads", server.url),
          randomBytes(2500),
          FAST,
        );
        assert.equal(result.bytes, 2500);
        assert.deepEqual(appends, [2500, 1000, 1000, 500]);
      },
    );
  });

  it("resumableUpload names the announced max-append-size in the 413 to an append within it (a proxy's lower limit)", async () => {
    await withLimitServer(
      { limit: "max-append-size=1000", maxAppend: 600 },
      async ({ server, appends }) => {
        await assert.rejects(
          resumableUpload(
            new URL("/uploads", server.url),
            randomBytes(2500),
            FAST,
          ),
          isHttpError(
            413,
            /an append of 1000 bytes, within the server's Upload-Limit max-append-size=1000, \(a proxy/,
          ),
        );
        assert.deepEqual(appends, [1000]);
      },
    );
  });

  it("resumableUpload deletes the upload and rejects, naming the limit, when the max-size announced at creation is below the body (it sent the body)", async () => {
    await withLimitServer(
      { limit: "max-size=1000" },
      async ({ server, appends, methods }) => {
        const urls: string[] = [];
        await assert.rejects(
          resumableUpload(
            new URL("/uploads", server.url),
            randomBytes(2000),
            { ...FAST, onUploadUrl: (url) => void urls.push(url) },
          ),
          isHttpError(
            413,
            /the body's 2000 bytes exceed the server's Upload-Limit max-size=1000; the upload was deleted$/,
          ),
        );
        assert.deepEqual(methods, ["POST", "DELETE"]);
        assert.deepEqual(appends, []);
        assert.deepEqual(urls, [], "no URL of a deleted upload to store");
      },
    );
  });

  it("resumableUpload says its DELETE failed, not that the upload was deleted, when the server refuses it", async () => {
    await withLimitServer(
      { limit: "max-size=1000", deleteStatus: 500 },
      async ({ server, methods }) => {
        await assert.rejects(
          resumableUpload(
            new URL("/uploads", server.url),
            randomBytes(2000),
            FAST,
          ),
          isHttpError(
            413,
            /max-size=1000; deleting the upload failed: its DELETE answered 500$/,
          ),
        );
        assert.deepEqual(methods, ["POST", "DELETE"]);
      },
    );
  });

  it("resumableUpload deletes a stored upload and rejects when its offset request announces a max-size below the body", async () => {
    await withLimitServer(
      { limit: "max-size=1000", offset: 500 },
      async ({ server, methods }) => {
        await assert.rejects(
          resumableUpload(
            new URL("/uploads", server.url),
            randomBytes(2000),
            { ...FAST, uploadUrl: new URL("/uploads/1", server.url).href },
          ),
          isHttpError(413, /Upload-Limit max-size=1000/),
        );
        assert.deepEqual(methods, ["HEAD", "DELETE"]);
      },
    );
  });

  it("resumableUpload raises the appends that do not complete the upload to the min-append-size announced (the last one may be smaller)", async () => {
    await withLimitServer(
      { limit: "min-append-size=1000", minAppend: 1000 },
      async ({ server, appends }) => {
        const result = await resumableUpload(
          new URL("/uploads", server.url),
          randomBytes(2500),
          { ...FAST, chunkBytes: 300 },
        );
        assert.equal(result.bytes, 2500);
        assert.deepEqual(appends, [1000, 1000, 500]);
      },
    );
  });

  it("resumableUpload reads Upload-Limit as a dictionary: an unknown member (a string with a comma) skipped, parameters ignored", async () => {
    await withLimitServer(
      {
        limit: 'note="a, b";x=1, max-append-size=1000;y=2',
        maxAppend: 1000,
      },
      async ({ server, appends }) => {
        await resumableUpload(
          new URL("/uploads", server.url),
          randomBytes(2500),
          FAST,
        );
        assert.deepEqual(appends, [1000, 1000, 500]);
      },
    );
  });

  it("resumableUpload ignores a whole Upload-Limit with a known key that is no integer, as the draft says", async () => {
    await withLimitServer(
      { limit: "max-append-size=1000, max-size=?1" },
      async ({ server, appends }) => {
        await resumableUpload(
          new URL("/uploads", server.url),
          randomBytes(2500),
          FAST,
        );
        assert.deepEqual(appends, [2500]);
      },
    );
  });
});

describe("resumableUpload and a server of other versions", () => {
  it("resumableUpload names the likely cause of a 412 to the creation: another interop version of the draft, or a tus server", async () => {
    // As tusd answers a request of an interop version it does not speak
    // (it speaks 3 to 6, and takes the others for tus 1.0).
    await withServer(
      () =>
        new Response("unsupported version\n", {
          status: 412,
          headers: { "tus-version": "1.0.0", "tus-resumable": "1.0.0" },
        }),
      async (fake) => {
        await assert.rejects(
          resumableUpload(new URL("/files/", fake.url), randomBytes(10), {
            ...FAST,
            maxRetries: 0,
          }),
          isHttpError(
            412,
            /answered 412 to the creation of the upload \(the server may not speak interop version 8 of the IETF draft, sent as Upload-Draft-Interop-Version; it answered with Tus-Version "1\.0\.0"; for a tus server pass protocol: "tus"\): unsupported version$/,
          ),
        );
      },
    );
  });

  it("resumableUpload with protocol tus names tus 1.0.0 in a 412 to the creation", async () => {
    await withServer(
      () => new Response("unsupported version\n", { status: 412 }),
      async (fake) => {
        await assert.rejects(
          resumableUpload(new URL("/files/", fake.url), randomBytes(10), {
            ...FAST,
            maxRetries: 0,
            protocol: "tus",
          }),
          isHttpError(412, /may not speak tus 1\.0\.0, sent as Tus-Resumable/),
        );
      },
    );
  });
});
