// resumableUpload and what stands between it and the upload server: a
// redirect to a sign-in page (an append's, an offset request's, the
// creation's), a collection that moved to another host, `Retry-After` on a
// 429 or 503, and a TLS certificate the runtime refuses. Servers and their
// redirecting fronts listen on 127.0.0.1, port 0.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  createResumableUploadHandler,
  HttpError,
  resumableUpload,
} from "../lib/http/mod.ts";
import { createResumableFileStore } from "../lib/runtime/fs.ts";
import { serve } from "../lib/runtime/serve.ts";
import type { FetchHandler } from "../lib/http/mod.ts";
import { makeCertificates } from "./browser/_test_server.ts";
import {
  deadline,
  makeTempDir,
  randomBytes,
  removeDir,
  withServer,
} from "./_helpers.ts";

const FAST = { retryDelayMs: 1, maxRetryDelayMs: 5, maxRetries: 2 };
/** Three appends of 1000 bytes. */
const BODY = randomBytes(3000);
const CHUNKS = { chunkBytes: 1000 };

function isHttpError(status: number, message?: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof HttpError, `not an HttpError: ${error}`);
    assert.equal(error.status, status, error.message);
    if (message) assert.match(error.message, message);
    return true;
  };
}

/** The sign-in page of a proxy whose session expired: 200 to anything. */
async function signIn(request: Request): Promise<Response> {
  await request.body?.cancel().catch(() => {});
  return new Response("<html>please sign in</html>", {
    headers: { "content-type": "text/html" },
  });
}

describe("resumableUpload and redirects", () => {
  let dir: string;
  let completed: number[];
  let handler: FetchHandler;

  before(async () => {
    completed = [];
    dir = await makeTempDir("resumable-client-redirects-");
    handler = createResumableUploadHandler({
      store: createResumableFileStore(dir),
      onComplete: (done) => {
        completed.push(done.bytes);
      },
    });
  });
  after(async () => {
    await removeDir(dir);
  });

  /**
   * The upload server behind a front that answers the first request that
   * `hit` picks with `status` to /login, a sign-in page; the requests it
   * saw ("PATCH /uploads/..." as "PATCH").
   */
  function front(
    status: number,
    hit: (request: Request) => boolean,
    seen: string[],
  ): FetchHandler {
    let redirected = false;
    return async (request) => {
      const { pathname } = new URL(request.url);
      seen.push(`${request.method} ${pathname === "/login" ? "/login" : ""}`);
      if (pathname === "/login") return signIn(request);
      if (!redirected && hit(request)) {
        redirected = true;
        await request.body?.cancel().catch(() => {});
        return new Response(null, { status, headers: { location: "/login" } });
      }
      return handler(request);
    };
  }

  const lastAppend = (request: Request) =>
    request.method === "PATCH" &&
    request.headers.get("upload-complete") === "?1";

  it("resumableUpload rejects with the 3xx of a redirected last append, the sign-in page's 200 not taken for the upload's success (it resolved, the upload never completed)", async () => {
    for (const status of [301, 302, 303, 307, 308]) {
      for (const streamRequests of [true, false]) {
        completed = [];
        const seen: string[] = [];
        await withServer(front(status, lastAppend, seen), async (server) => {
          await assert.rejects(
            resumableUpload(new URL("/uploads", server.url), BODY, {
              ...FAST,
              ...CHUNKS,
              streamRequests,
            }),
            isHttpError(
              status,
              new RegExp(
                `answered ${status} to an append, a redirect to http://127\\.0\\.0\\.1:${server.port}/login; .*resume with uploadUrl`,
              ),
            ),
          );
        });
        assert.deepEqual(completed, [], `${status} ${streamRequests}`);
        assert.deepEqual(
          seen,
          ["POST ", "PATCH ", "PATCH ", "PATCH "],
          `${status} ${streamRequests}: nothing sent on to /login`,
        );
      }
    }
  });

  it("resumableUpload rejects at the redirect of a middle append, without another request (it followed, and went on)", async () => {
    const seen: string[] = [];
    await withServer(
      front(303, (request) => request.method === "PATCH", seen),
      async (server) => {
        await assert.rejects(
          resumableUpload(new URL("/uploads", server.url), BODY, {
            ...FAST,
            ...CHUNKS,
          }),
          isHttpError(303, /answered 303 to an append, a redirect to /),
        );
      },
    );
    assert.deepEqual(seen, ["POST ", "PATCH "]);
  });

  it("resumableUpload rejects with the 3xx of a redirected offset request of a stored uploadUrl (it followed it, and blamed the sign-in page's missing Upload-Offset)", async () => {
    const seen: string[] = [];
    await withServer(
      front(302, (request) => request.method === "HEAD", seen),
      async (server) => {
        const created = await fetch(new URL("/uploads", server.url), {
          method: "POST",
          headers: {
            "upload-draft-interop-version": "8",
            "upload-complete": "?0",
            "upload-length": String(BODY.byteLength),
          },
        });
        assert.equal(created.status, 201);
        const uploadUrl = new URL(created.headers.get("location")!, server.url)
          .href;
        await assert.rejects(
          resumableUpload(new URL("/uploads", server.url), BODY, {
            ...FAST,
            uploadUrl,
          }),
          isHttpError(
            302,
            /answered 302 to the offset request, a redirect to http:\/\/127\.0\.0\.1:\d+\/login;/,
          ),
        );
      },
    );
    assert.deepEqual(seen, ["POST ", "HEAD "]);
  });

  it("resumableUpload rejects with 502 when a fetch of the caller's follows the last append's redirect anyway, naming where it went", async () => {
    completed = [];
    const following =
      ((input: RequestInfo | URL, init?: RequestInit) =>
        fetch(input, { ...init, redirect: "follow" })) as typeof fetch;
    const seen: string[] = [];
    await withServer(front(307, lastAppend, seen), async (server) => {
      await assert.rejects(
        resumableUpload(new URL("/uploads", server.url), BODY, {
          ...FAST,
          ...CHUNKS,
          streamRequests: false,
          fetch: following,
        }),
        isHttpError(
          502,
          /an append was redirected to http:\/\/127\.0\.0\.1:\d+\/login, which answered 200;/,
        ),
      );
    });
    assert.deepEqual(completed, []);
  });

  it("resumableUpload over tus rejects an append's 2xx without Upload-Offset, which no tus server sends (a page of a proxy in the way read as the upload complete)", async () => {
    completed = [];
    const seen: string[] = [];
    await withServer((request) => {
      seen.push(request.method);
      if (
        request.method === "PATCH" &&
        request.headers.get("upload-offset") === "2000"
      ) {
        return signIn(request);
      }
      return handler(request);
    }, async (server) => {
      await assert.rejects(
        resumableUpload(new URL("/uploads", server.url), BODY, {
          ...FAST,
          ...CHUNKS,
          protocol: "tus",
        }),
        isHttpError(502, /invalid Upload-Offset null/),
      );
    });
    assert.deepEqual(seen, ["POST", "PATCH", "PATCH", "PATCH"]);
    assert.deepEqual(completed, []);
  });

  it("resumableUpload resolves the upload's Location against where a redirected creation ended, so each append goes to the collection's new host (each went to the old one, redirected in turn, and failed)", async () => {
    for (const streamRequests of [true, false]) {
      const seen: string[] = [];
      completed = [];
      await withServer(async (request) => {
        seen.push(`new ${request.method}`);
        return await handler(request);
      }, async (moved) => {
        await withServer(async (request) => {
          seen.push(`old ${request.method}`);
          await request.body?.cancel().catch(() => {});
          return new Response(null, {
            status: 308,
            headers: {
              location: new URL(new URL(request.url).pathname, moved.url).href,
            },
          });
        }, async (old) => {
          const urls: string[] = [];
          const result = await resumableUpload(
            new URL("/uploads", old.url),
            BODY,
            {
              ...FAST,
              ...CHUNKS,
              streamRequests,
              onUploadUrl: (url) => {
                urls.push(url);
              },
            },
          );
          assert.equal(new URL(result.uploadUrl).origin, moved.url.origin);
          assert.deepEqual(urls, [result.uploadUrl]);
          assert.equal(result.response.status, 200);
        });
      });
      assert.deepEqual(seen, [
        "old POST",
        "new POST",
        "new PATCH",
        "new PATCH",
        "new PATCH",
      ]);
      assert.deepEqual(completed, [BODY.byteLength]);
    }
  });

  it("resumableUpload names the redirect of a creation answered without a Location, and that the POST went on as a GET (it said the server created an upload without a Location)", async () => {
    const seen: string[] = [];
    await withServer(
      front(303, (request) => request.method === "POST", seen),
      async (server) => {
        await assert.rejects(
          resumableUpload(new URL("/uploads", server.url), BODY, FAST),
          isHttpError(
            502,
            /the creation of the upload was redirected to http:\/\/127\.0\.0\.1:\d+\/login, which answered 200 without a Location.*sends the POST on as a GET.*give the upload collection's final URL as url/,
          ),
        );
      },
    );
    assert.deepEqual(seen, ["POST ", "GET /login"]);
  });

  it("resumableUpload names the redirect of a creation refused where it went (a collection moved with a 301: its GET refused)", async () => {
    await withServer(handler, async (moved) => {
      await withServer(
        () =>
          new Response(null, {
            status: 301,
            headers: { location: new URL("/uploads", moved.url).href },
          }),
        async (old) => {
          await assert.rejects(
            resumableUpload(new URL("/uploads", old.url), BODY, FAST),
            (error: unknown) => {
              assert.ok(error instanceof HttpError, String(error));
              assert.ok(error.status >= 400 && error.status < 500);
              assert.match(
                error.message,
                new RegExp(
                  `to the creation of the upload \\(redirected to http://127\\.0\\.0\\.1:${moved.port}/uploads: after a 301, 302 or 303 fetch sends the POST on as a GET`,
                ),
              );
              return true;
            },
          );
        },
      );
    });
  });
});

describe("resumableUpload and Retry-After", () => {
  let dir: string;
  let handler: FetchHandler;

  before(async () => {
    dir = await makeTempDir("resumable-client-retry-after-");
    handler = createResumableUploadHandler({
      store: createResumableFileStore(dir),
    });
  });

  after(async () => {
    await removeDir(dir);
  });

  /**
   * The upload server, but the first append is answered `status` with
   * `Retry-After: <retryAfter()>`; the times of the requests after it.
   */
  function busyOnce(
    status: number,
    retryAfter: () => string,
    times: { refused?: number; next?: number },
  ): FetchHandler {
    return async (request) => {
      if (times.refused !== undefined && times.next === undefined) {
        times.next = performance.now();
      }
      if (request.method === "PATCH" && times.refused === undefined) {
        await request.body?.cancel().catch(() => {});
        times.refused = performance.now();
        return new Response("busy", {
          status,
          headers: { "retry-after": retryAfter() },
        });
      }
      return await handler(request);
    };
  }

  it("resumableUpload waits the seconds a 503's Retry-After asks for before its retry (it retried after its own back-off, 1 ms here)", async () => {
    const times: { refused?: number; next?: number } = {};
    await withServer(busyOnce(503, () => "1", times), async (server) => {
      const result = await resumableUpload(
        new URL("/uploads", server.url),
        BODY,
        { ...FAST, maxRetryDelayMs: 10_000 },
      );
      assert.equal(result.bytes, BODY.byteLength);
    });
    const waited = times.next! - times.refused!;
    assert.ok(waited >= 950 && waited < 5_000, `waited ${waited} ms`);
  });

  it("resumableUpload spreads the retries of clients refused together with one Retry-After (a server at maxUploads): up to a tenth more each, never less", async () => {
    // Each client's creation is refused once (by its `x-client` header);
    // the wait from its refusal to its retry.
    const refused = new Map<string, number>();
    const waits: number[] = [];
    await withServer(async (request) => {
      const client = request.headers.get("x-client")!;
      if (request.method === "POST") {
        const at = refused.get(client);
        if (at === undefined) {
          refused.set(client, performance.now());
          await request.body?.cancel().catch(() => {});
          return new Response("busy", {
            status: 503,
            headers: { "retry-after": "1" },
          });
        }
        waits.push(performance.now() - at);
      }
      return await handler(request);
    }, async (server) => {
      await deadline(
        Promise.all(
          Array.from(
            { length: 12 },
            (_, i) =>
              resumableUpload(new URL("/uploads", server.url), BODY, {
                ...FAST,
                maxRetryDelayMs: 10_000,
                headers: { "x-client": String(i) },
              }),
          ),
        ),
        30_000,
        "the uploads",
      );
    });
    assert.equal(waits.length, 12);
    const least = Math.min(...waits);
    const most = Math.max(...waits);
    assert.ok(least >= 950, `a retry after ${least} ms`);
    // Without jitter they all waited 1,000 ms and a timer's lateness; the
    // chance that twelve draws from 0-100 ms fall within 30 ms is 2e-5.
    assert.ok(most - least >= 30, `waits ${least}-${most} ms`);
  });

  it("resumableUpload's jitter never cuts short a Retry-After the cap allows, nor the back-off under a Retry-After of 0 (a draw near the cap retried 10% early)", async () => {
    const random = Math.random;
    // The draw that went furthest below: near the top of its range.
    Math.random = () => 0.99;
    try {
      for (
        const [retryAfter, options, least] of [
          ["1", { maxRetryDelayMs: 1_040, retryDelayMs: 1 }, 990],
          ["0", { maxRetryDelayMs: 1_000, retryDelayMs: 1_000 }, 950],
        ] as const
      ) {
        const times: { refused?: number; next?: number } = {};
        await withServer(
          busyOnce(503, () => retryAfter, times),
          (server) =>
            deadline(
              resumableUpload(new URL("/uploads", server.url), BODY, {
                ...FAST,
                ...options,
              }),
              10_000,
              "the upload",
            ),
        );
        const waited = times.next! - times.refused!;
        assert.ok(
          waited >= least,
          `Retry-After ${retryAfter}: waited ${waited} ms`,
        );
      }
    } finally {
      Math.random = random;
    }
  });

  it("resumableUpload waits until the HTTP date a 503's Retry-After names", async () => {
    const times: { refused?: number; next?: number } = {};
    // Whole seconds: 1.5 to 2.5 s from now.
    const at = () => new Date(Date.now() + 2_500).toUTCString();
    await withServer(busyOnce(503, at, times), async (server) => {
      await resumableUpload(new URL("/uploads", server.url), BODY, {
        ...FAST,
        maxRetryDelayMs: 10_000,
      });
    });
    const waited = times.next! - times.refused!;
    assert.ok(waited >= 1_200 && waited < 5_000, `waited ${waited} ms`);
  });

  for (
    const [label, value] of [
      ["0", () => "0"],
      ["an HTTP date past", () => new Date(0).toUTCString()],
    ] as const
  ) {
    it(`resumableUpload keeps its back-off under a Retry-After of ${label} (the retries were spent in milliseconds)`, async () => {
      const started = performance.now();
      await withServer(async (request) => {
        await request.body?.cancel().catch(() => {});
        if (request.method !== "PATCH") return await handler(request);
        return new Response("busy", {
          status: 503,
          headers: { "retry-after": value() },
        });
      }, async (server) => {
        await assert.rejects(
          resumableUpload(new URL("/uploads", server.url), BODY, {
            retryDelayMs: 200,
            maxRetryDelayMs: 1_000,
            maxRetries: 3,
          }),
          (error: unknown) =>
            error instanceof HttpError && error.status === 503,
        );
      });
      // Back-offs of 100-200, 200-400 and 400-800 ms.
      const took = performance.now() - started;
      assert.ok(took >= 650, `gave up after ${took} ms`);
    });
  }

  it("resumableUpload waits no longer than maxRetryDelayMs for a Retry-After that asks for more", async () => {
    const times: { refused?: number; next?: number } = {};
    await withServer(busyOnce(503, () => "120", times), async (server) => {
      await deadline(
        resumableUpload(new URL("/uploads", server.url), BODY, {
          ...FAST,
          maxRetryDelayMs: 300,
        }),
        10_000,
        "the upload",
      );
    });
    const waited = times.next! - times.refused!;
    assert.ok(waited >= 250 && waited < 3_000, `waited ${waited} ms`);
  });

  it("resumableUpload retries a 429 as a 503, after its Retry-After (it rejected at once)", async () => {
    const times: { refused?: number; next?: number } = {};
    await withServer(busyOnce(429, () => "1", times), async (server) => {
      const result = await resumableUpload(
        new URL("/uploads", server.url),
        BODY,
        { ...FAST, maxRetryDelayMs: 10_000 },
      );
      assert.equal(result.bytes, BODY.byteLength);
    });
    const waited = times.next! - times.refused!;
    assert.ok(waited >= 950 && waited < 5_000, `waited ${waited} ms`);
  });

  it("resumableUpload stops waiting on a Retry-After at once when its signal aborts, no timer left armed", async () => {
    const controller = new AbortController();
    const reason = new Error("stopped by the user");
    const started = performance.now();
    await withServer(async (request) => {
      if (request.method === "PATCH") {
        await request.body?.cancel().catch(() => {});
        setTimeout(() => controller.abort(reason), 100);
        return new Response("busy", {
          status: 503,
          headers: { "retry-after": "60" },
        });
      }
      return await handler(request);
    }, async (server) => {
      await assert.rejects(
        resumableUpload(new URL("/uploads", server.url), BODY, {
          ...FAST,
          maxRetryDelayMs: 60_000,
          signal: controller.signal,
        }),
        (error) => error === reason,
      );
    });
    const took = performance.now() - started;
    assert.ok(took < 5_000, `took ${took} ms`);
  });
});

describe("resumableUpload and failures no retry heals", () => {
  it("resumableUpload fails at once, with a TypeError naming the error, for an untrusted certificate as Node's fetch reports it (a code in the cause), without a retry", async () => {
    let calls = 0;
    const nodeLike = (() => {
      calls++;
      const cause = Object.assign(
        new Error("self-signed certificate"),
        { code: "DEPTH_ZERO_SELF_SIGNED_CERT" },
      );
      return Promise.reject(new TypeError("fetch failed", { cause }));
    }) as typeof fetch;
    await assert.rejects(
      resumableUpload("https://127.0.0.1:9/uploads", BODY, {
        ...FAST,
        fetch: nodeLike,
      }),
      (error: unknown) => {
        assert.ok(error instanceof TypeError, String(error));
        assert.match(
          error.message,
          /^Cannot upload: the server's TLS certificate was refused, which no retry changes: self-signed certificate \(DEPTH_ZERO_SELF_SIGNED_CERT\); /,
        );
        assert.ok(error.cause instanceof TypeError);
        return true;
      },
    );
    assert.equal(calls, 1);
  });

  it("resumableUpload retries a DNS failure (a device offline for a moment), and names it once retries run out", async () => {
    let calls = 0;
    const offline = (() => {
      calls++;
      return Promise.reject(
        Object.assign(
          new TypeError("getaddrinfo ENOTFOUND uploads.example"),
          { code: "ENOTFOUND" },
        ),
      );
    }) as typeof fetch;
    await assert.rejects(
      resumableUpload("https://uploads.example/uploads", BODY, {
        ...FAST,
        fetch: offline,
      }),
      isHttpError(
        503,
        /gave up after 2 retries \(maxRetries\), the last: getaddrinfo ENOTFOUND uploads\.example$/,
      ),
    );
    assert.equal(calls, 3);
  });

  const openssl = (() => {
    try {
      execFileSync("openssl", ["version"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  })();

  it(
    "resumableUpload fails at once with the runtime's words for a server whose certificate it does not trust (retried ten times over 85 s, then a 503 'gave up')",
    {
      skip: !openssl && "needs openssl for the test certificates",
    },
    async () => {
      const dir = await makeTempDir("resumable-client-tls-");
      try {
        const tls = await makeCertificates(dir);
        let requests = 0;
        const server = await serve(() => {
          requests++;
          return new Response(null, { status: 500 });
        }, {
          hostname: "127.0.0.1",
          port: 0,
          tls: { cert: tls.cert, key: tls.key },
        });
        try {
          await assert.rejects(
            resumableUpload(new URL("/uploads", server.url), BODY, {
              maxRetries: 3,
              retryDelayMs: 200,
            }),
            (error: unknown) => {
              assert.ok(error instanceof TypeError, String(error));
              assert.match(
                error.message,
                /^Cannot upload: the server's TLS certificate was refused, which no retry changes: .*(invalid peer certificate: UnknownIssuer|\(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)); fix the certificate/,
              );
              return true;
            },
          );
          assert.equal(requests, 0);
        } finally {
          await deadline(server.shutdown(), 10_000, "shutdown");
        }
      } finally {
        await removeDir(dir);
      }
    },
  );
});
