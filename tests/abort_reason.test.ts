// An abort rejects with the signal's reason, as the clients' docs say, also
// through a fetch that rejects an aborted request with an AbortError of its
// own whatever the reason (WebKit's: "AbortError: Fetch is aborted"). Before,
// upload, resumableUpload, fetchDuplex and openDuplex passed that error on.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  fetchDuplex,
  openDuplex,
  resumableUpload,
  upload,
} from "../lib/http/mod.ts";
import type { Server } from "../lib/runtime/serve.ts";
import { deadline, startServer } from "./_helpers.ts";

const realFetch = globalThis.fetch;

/**
 * A fetch that rejects an aborted request as WebKit's does: with its own
 * `AbortError`, the signal's reason left out.
 */
const webkitFetch =
  ((input: RequestInfo | URL, init?: RequestInit) =>
    new Promise<Response>((resolve, reject) => {
      const signal = init?.signal ?? undefined;
      const own = new AbortController();
      const fail = () => {
        own.abort();
        reject(new DOMException("Fetch is aborted", "AbortError"));
      };
      if (signal?.aborted) return fail();
      signal?.addEventListener("abort", fail, { once: true });
      realFetch(input, { ...init, signal: own.signal }).then(resolve, reject);
    })) as typeof fetch;

describe("an abort rejects with the signal's reason through a fetch that rejects with its own AbortError (WebKit's)", () => {
  let server: Server;
  /** Held answers, released when the test ends. */
  const held: (() => void)[] = [];
  before(async () => {
    // Every request is held for up to 10 s: the abort comes first.
    server = await startServer(() =>
      new Promise<Response>((resolve) => {
        const timer = setTimeout(
          () => resolve(new Response(null, { status: 503 })),
          10_000,
        );
        held.push(() => {
          clearTimeout(timer);
          resolve(new Response(null, { status: 503 }));
        });
      })
    );
  });
  after(async () => {
    for (const release of held) release();
    await server.shutdown();
  });

  /** `run` with a signal aborted 100 ms in; resolves to what it rejected with. */
  async function abortedWith(
    run: (signal: AbortSignal) => Promise<unknown>,
  ): Promise<unknown> {
    const controller = new AbortController();
    const reason = new Error("the user cancelled");
    setTimeout(() => controller.abort(reason), 100);
    const error = await deadline(
      run(controller.signal).then(
        () => assert.fail("resolved"),
        (error: unknown) => error,
      ),
      10_000,
      "the rejection",
    );
    assert.equal(error, reason, String(error));
    return error;
  }

  it("upload", async () => {
    await abortedWith((signal) =>
      upload(`${server.url}/up`, new Uint8Array(1024), {
        signal,
        fetch: webkitFetch,
      })
    );
  });

  for (const protocol of ["tus", "ietf"] as const) {
    it(`resumableUpload (${protocol})`, async () => {
      await abortedWith((signal) =>
        resumableUpload(`${server.url}/files`, new Uint8Array(1024), {
          protocol,
          signal,
          fetch: webkitFetch,
        })
      );
    });
  }

  it("fetchDuplex", async () => {
    await abortedWith((signal) =>
      fetchDuplex(`${server.url}/echo`, {
        method: "POST",
        body: new ReadableStream<Uint8Array>(),
        signal,
        fetch: webkitFetch,
      })
    );
  });

  it("openDuplex (its response)", async () => {
    await abortedWith((signal) =>
      openDuplex(`${server.url}/echo`, { signal, fetch: webkitFetch }).response
    );
  });
});
