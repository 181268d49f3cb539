// The Workers store across Worker instances and Durable Object evictions,
// in workerd: miniflare (pinned) runs tests/_resumable_worker.ts as two
// services `a` and `b` (two isolates, each with its own handler and running
// hashes) bound to the same Durable Object namespace and R2 bucket, with
// the state on disk. An upload started through `a`, cut, is continued and
// completed through `b` (both protocols); PATCHes through both at once end
// with one 204 and one 409 and the winner's bytes only; a PATCH through `b`
// while an append through `a` is open gets the upload object's 409; after
// restarting workerd mid-upload (every object evicted, every in-memory hash
// lost) a digest mismatch is refused without the object ever being written
// to its final key, and a match completes. The upload object's JavaScript
// SHA-256 is checked against node:crypto and Web Crypto in workerd, and its
// cost printed.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { resumableUpload } from "../lib/http/mod.ts";
import {
  getWithOneRetry,
  type Miniflare,
  startMiniflare,
} from "./_miniflare.ts";
import { startCuttingProxy } from "./_resumable_proxy.ts";
import { ROOT } from "./_workerd.ts";
import { randomBytes, sha256Base64 as sha256 } from "./_helpers.ts";

const MiB = 1024 * 1024;
const T = 120_000;

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A body sending `data` in 256 KiB chunks, `ms` apart. */
function slowBody(data: Uint8Array, ms: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    async pull(controller) {
      if (at >= data.byteLength) return controller.close();
      if (at > 0) await delay(ms);
      controller.enqueue(data.slice(at, at + 256 * 1024));
      at += 256 * 1024;
    },
  }, { highWaterMark: 0 });
}

const PROTOCOL = {
  ietf: {
    create: (length: number, data: Uint8Array): Record<string, string> => ({
      "upload-complete": "?0",
      "upload-length": String(length),
      "repr-digest": `sha-256=:${sha256(data)}:`,
    }),
    patch: (offset: number): Record<string, string> => ({
      "content-type": "application/partial-upload",
      "upload-offset": String(offset),
      "upload-complete": "?0",
    }),
    head: {} as Record<string, string>,
  },
  tus: {
    create: (length: number): Record<string, string> => ({
      "tus-resumable": "1.0.0",
      "upload-length": String(length),
    }),
    patch: (offset: number): Record<string, string> => ({
      "tus-resumable": "1.0.0",
      "content-type": "application/offset+octet-stream",
      "upload-offset": String(offset),
    }),
    head: { "tus-resumable": "1.0.0" } as Record<string, string>,
  },
};

describe("createResumableWorkersStore across Worker instances and evictions", () => {
  let state: string;
  let miniflare: Miniflare | undefined;
  let a: URL;
  let b: URL;

  /** Starts workerd on the state directory (kept between starts). */
  async function start() {
    let dir = "";
    miniflare = await startMiniflare(
      "_miniflare_resumable.mjs",
      "_resumable_worker.ts",
      "resumable-instances-",
      (run) => {
        dir = run;
        return state;
      },
      T,
    );
    const urls = JSON.parse(
      await readFile(join(dir, "instances.json"), "utf8"),
    );
    a = new URL(urls.a);
    b = new URL(urls.b);
  }

  /** Stops workerd and starts it again on the same state. */
  async function restart() {
    await miniflare?.stop();
    miniflare = undefined;
    await start();
  }

  before(async () => {
    await mkdir(join(ROOT, ".tmp"), { recursive: true });
    state = await mkdtemp(join(ROOT, ".tmp", "resumable-state-"));
    await start();
  }, { timeout: T + 60_000 });

  after(async () => {
    await miniflare?.stop();
    await rm(state, { recursive: true, force: true });
  });

  /** The upload's URL on an instance's origin. */
  const on = (base: URL, url: string) =>
    new URL(new URL(url).pathname, base).href;
  const idOf = (url: string) => new URL(url).pathname.split("/").pop()!;

  async function object(url: string) {
    const response = await getWithOneRetry(new URL(`/objects/${idOf(url)}`, a));
    if (response.status === 404) {
      await response.body?.cancel();
      return undefined;
    }
    return await response.json() as { size: number; sha256: string };
  }

  async function published(url: string): Promise<boolean> {
    const response = await fetch(new URL(`/published/${idOf(url)}`, b));
    await response.body?.cancel();
    return response.status === 200;
  }

  async function offset(url: string, headers: Record<string, string>) {
    const response = await fetch(url, { method: "HEAD", headers });
    assert.ok(response.ok, `HEAD ${response.status}`); // 204 ietf, 200 tus
    return Number(response.headers.get("upload-offset"));
  }

  async function create(
    base: URL,
    headers: Record<string, string>,
  ): Promise<string> {
    const created = await fetch(new URL("/uploads", base), {
      method: "POST",
      headers,
    });
    assert.equal(created.status, 201, await created.text());
    return new URL(created.headers.get("location")!, base).href;
  }

  it("runs the instances in two isolates", { timeout: T }, async () => {
    const [ia, ib] = await Promise.all(
      [a, b].map(async (base) =>
        await (await fetch(new URL("/instance", base))).text()
      ),
    );
    assert.match(ia, /^[0-9a-f-]{36}$/);
    assert.notEqual(ia, ib);
  });

  it("hashes in JavaScript as node:crypto and Web Crypto do (cost printed)", {
    timeout: T,
  }, async () => {
    // The upload object's resumable SHA-256 against the native ones, in
    // workerd: 4 MiB per request in the test task (32 MiB with
    // SLUICE_RESUMABLE_FULL=1), interleaved, medians of 3 rounds, each
    // less the median time of a request that hashes nothing.
    const mib = process.env.SLUICE_RESUMABLE_FULL === "1" ? 32 : 4;
    const impls = ["none", "js", "node", "subtle"] as const;
    const times: Record<string, number[]> = {};
    const digests: Record<string, string> = {};
    await (await fetch(new URL("/hash/none", a))).text(); // makes the bytes
    for (let round = 0; round < 3; round++) {
      for (const impl of impls) {
        const start = performance.now();
        const response = await fetch(new URL(`/hash/${impl}?mib=${mib}`, a));
        digests[impl] = await response.text();
        (times[impl] ??= []).push(performance.now() - start);
      }
    }
    assert.match(digests.js, /^[A-Za-z0-9+/]{43}=$/);
    assert.equal(digests.js, digests.node);
    assert.equal(digests.js, digests.subtle);
    const median = (xs: number[]) => xs.sort((x, y) => x - y)[1];
    const cost = (impl: string) =>
      Math.max(0.1, median(times[impl]) - median(times.none));
    console.log(
      `SHA-256 of ${mib} MiB in workerd: JavaScript ${
        (cost("js") / cost("node")).toFixed(1)
      }x node:crypto, ${
        (cost("js") / cost("subtle")).toFixed(1)
      }x crypto.subtle.digest (${cost("js").toFixed(0)} ms vs ${
        cost("node").toFixed(0)
      } ms vs ${cost("subtle").toFixed(0)} ms)`,
    );
  });

  for (const protocol of ["ietf", "tus"] as const) {
    it(
      `continues through b an upload started through a and cut (${protocol})`,
      {
        timeout: T,
      },
      async () => {
        const p = PROTOCOL[protocol];
        const data = randomBytes(11 * MiB + 3);
        const url = await create(a, p.create(data.byteLength, data));
        // Through a cutting proxy to a: the PATCH dies after ~6 MiB.
        const proxy = await startCuttingProxy(Number(a.port), [6 * MiB + 1234]);
        try {
          await assert.rejects(
            fetch(on(new URL(`http://127.0.0.1:${proxy.port}`), url), {
              method: "PATCH",
              headers: p.patch(0),
              body: data.subarray(0, 9 * MiB),
            }).then((r) => r.arrayBuffer()),
          );
          assert.equal(proxy.cuts(), 1);
        } finally {
          await proxy.close();
        }
        // The cut append settles in its Durable Object shortly after.
        let kept = 0;
        for (let i = 0; i < 150 && kept === 0; i++) {
          kept = await offset(on(b, url), p.head);
          if (kept === 0) await delay(100);
        }
        assert.ok(kept > 0 && kept <= 6 * MiB + 1234, `kept ${kept}`);
        assert.equal(await object(url), undefined);
        const result = await resumableUpload(new URL("/uploads", b), data, {
          protocol,
          uploadUrl: on(b, url),
          chunkBytes: 4 * MiB,
        });
        assert.equal(result.bytes, data.byteLength);
        assert.deepEqual(await object(url), {
          size: data.byteLength,
          sha256: sha256(data),
        });
        if (protocol === "ietf") {
          // The digest b reports covers the bytes a received.
          assert.equal((await result.response.json()).sha256, sha256(data));
        }
      },
    );
  }

  it("lets one of two PATCHes through a and b at once win, the other 409", {
    timeout: T,
  }, async () => {
    const p = PROTOCOL.ietf;
    const size = 6 * MiB;
    const url = await create(a, { "upload-complete": "?0" });
    const bodies = [randomBytes(size), randomBytes(size)];
    const outcomes = await Promise.allSettled([a, b].map(async (base, i) => {
      const response = await fetch(on(base, url), {
        method: "PATCH",
        headers: p.patch(0),
        body: slowBody(bodies[i], 15),
        duplex: "half",
      } as RequestInit);
      await response.body?.cancel();
      return response.status;
    }));
    // The loser is answered 409 as soon as it asks to append, before its
    // body is read; a client still sending that body may see the
    // connection end instead (Deno's fetch does, under load).
    const statuses = outcomes.map((o) =>
      o.status === "fulfilled" ? o.value : String(o.reason)
    );
    assert.equal(statuses.filter((s) => s === 204).length, 1, String(statuses));
    const loser = statuses.find((s) => s !== 204);
    assert.ok(
      loser === 409 ||
        /fetch failed|error sending|connection/i.test(String(loser)),
      String(statuses),
    );
    const winner = bodies[statuses.indexOf(204)];
    assert.equal(await offset(on(b, url), {}), size);
    const done = await fetch(on(b, url), {
      method: "PATCH",
      headers: { ...p.patch(size), "upload-complete": "?1" },
    });
    assert.equal(done.status, 200, await done.text());
    assert.deepEqual(await object(url), { size, sha256: sha256(winner) });
  });

  it("refuses with 409 a PATCH through b while an append through a is open", {
    timeout: T,
  }, async () => {
    const p = PROTOCOL.ietf;
    const url = await create(a, { "upload-complete": "?0" });
    const mine = randomBytes(MiB);
    // a opens an append through the store and, while it is open, sends a
    // PATCH with the right offset through b: the upload's object refuses it.
    const race = await fetch(new URL(`/race/${idOf(url)}`, a), {
      method: "POST",
      body: mine,
    });
    assert.equal(race.status, 200);
    const theirs = await race.json() as { status: number; text: string };
    assert.equal(theirs.status, 409, theirs.text);
    assert.match(theirs.text, /another append is running/);
    assert.equal(await offset(on(b, url), {}), MiB);
    const done = await fetch(on(b, url), {
      method: "PATCH",
      headers: { ...p.patch(MiB), "upload-complete": "?1" },
    });
    assert.equal(done.status, 200, await done.text());
    assert.deepEqual(await object(url), {
      size: mine.byteLength,
      sha256: sha256(mine),
    });
  });

  /**
   * A PATCH at offset 0 through `base` whose body sends 64 KiB, then waits
   * for `release` before 64 KiB more; its answer as status and text.
   */
  function gatedPatch(base: URL, url: string) {
    let step = 0;
    const gate = Promise.withResolvers<void>();
    // Its first 64 KiB taken by fetch: the request, its headers long sent,
    // is in the handler's hands.
    const sent = Promise.withResolvers<void>();
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (step++ === 0) {
          controller.enqueue(new Uint8Array(64 * 1024).fill(1));
          return;
        }
        if (step === 2) {
          sent.resolve();
          await gate.promise;
          controller.enqueue(new Uint8Array(64 * 1024).fill(2));
          return;
        }
        controller.close();
      },
    }, { highWaterMark: 0 });
    const answer = fetch(on(base, url), {
      method: "PATCH",
      headers: PROTOCOL.ietf.patch(0),
      body,
      duplex: "half",
    } as RequestInit).then(
      async (r) => ({ status: r.status, text: await r.text() }),
      (error) => ({ status: 0, text: String(error) }),
    );
    return {
      sent: sent.promise.then(() => delay(300)),
      release: () => gate.resolve(),
      answer,
    };
  }

  it(
    "ends an append through an instance from a HEAD or DELETE through the same one (the newer request wins, as elsewhere)",
    {
      timeout: T,
    },
    async () => {
      // Before, each answered 500: the newer request aborted the older one's
      // streams from its own context, which Workers forbid ("Cannot perform
      // I/O on behalf of a different request"), and the DELETE did nothing.
      for (const method of ["HEAD", "DELETE"]) {
        const url = await create(a, { "upload-complete": "?0" });
        const patch = gatedPatch(a, url);
        await patch.sent;
        const second = await fetch(on(a, url), { method });
        await second.body?.cancel();
        assert.equal(second.status, 204, method);
        patch.release();
        const first = await patch.answer;
        assert.equal(first.status, 409, `${method}: ${first.text}`);
        assert.match(first.text, /a newer request for it took over/);
        const head = await fetch(on(a, url), { method: "HEAD" });
        await head.body?.cancel();
        if (method === "HEAD") {
          assert.equal(head.headers.get("upload-offset"), "65536");
        } else assert.equal(head.status, 404);
      }
    },
  );

  it(
    "keeps an upload deleted through b while an append through a runs: the append stops, saves nothing, and is answered 404",
    {
      timeout: T,
    },
    async () => {
      // Before, the append saved its state when it ended, after the delete:
      // the upload came back and could be completed and published to R2.
      const url = await create(a, { "upload-complete": "?0" });
      const patch = gatedPatch(a, url);
      await patch.sent;
      const deleted = await fetch(on(b, url), { method: "DELETE" });
      await deleted.body?.cancel();
      assert.equal(deleted.status, 204);
      patch.release();
      const first = await patch.answer;
      assert.equal(first.status, 404, first.text);
      assert.match(first.text, /it was deleted/);
      for (const base of [a, b]) {
        const head = await fetch(on(base, url), { method: "HEAD" });
        await head.body?.cancel();
        assert.equal(head.status, 404);
      }
      assert.equal(await object(url), undefined);
      assert.equal(await published(url), false);
    },
  );

  it("checks the digest after the Durable Objects are evicted", {
    timeout: 2 * T,
  }, async () => {
    const p = PROTOCOL.ietf;
    // Two uploads, one whose Repr-Digest matches its bytes, one whose
    // does not; 6 MiB of each through a: a 5 MiB part in R2, 1 MiB in the
    // object's storage.
    const uploads = await Promise.all([true, false].map(async (match) => {
      const data = randomBytes(7 * MiB + 5);
      const expected = match ? data : randomBytes(data.byteLength);
      const url = await create(a, p.create(data.byteLength, expected));
      const first = await fetch(url, {
        method: "PATCH",
        headers: p.patch(0),
        body: data.subarray(0, 6 * MiB),
      });
      assert.equal(first.status, 204, await first.text());
      return { match, data, url };
    }));
    // Every Durable Object and isolate goes; the state stays on disk.
    await restart();
    for (const { match, data, url } of uploads) {
      const rest = await fetch(on(b, url), {
        method: "PATCH",
        headers: { ...p.patch(6 * MiB), "upload-complete": "?1" },
        body: data.subarray(6 * MiB),
      });
      const text = await rest.text();
      if (match) {
        assert.equal(rest.status, 200, text);
        assert.equal(JSON.parse(text).sha256, sha256(data));
        assert.deepEqual(await object(url), {
          size: data.byteLength,
          sha256: sha256(data),
        });
        assert.equal(await published(url), true);
      } else {
        assert.equal(rest.status, 400, text);
        assert.match(text, /not match Repr-Digest/);
        assert.equal(await object(url), undefined);
        // Never written to its final key, not even for a moment.
        assert.equal(await published(url), false);
        const head = await fetch(on(a, url), { method: "HEAD" });
        assert.equal(head.status, 404);
      }
    }
  });
});
