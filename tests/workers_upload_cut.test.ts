// upload() with onProgress in a Worker forwarding a client's body to
// another Worker (a service binding; a Durable Object stub is the same
// subrequest) that stores it with createUploadHandler and createR2Sink:
// miniflare (npm, pinned; its own workerd) with a disk-backed bucket,
// serving tests/_workers_upload_cut_worker.ts on 127.0.0.1 port 0. workerd
// ends a subrequest's body cleanly when the source of a stream made in
// JavaScript fails (docs/known-runtime-issues.md (r)): a client's upload
// cut short must still leave no object.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { join } from "node:path";
import { type Miniflare, startMiniflare } from "./_miniflare.ts";

const MiB = 1024 * 1024;
const T = 120_000;

interface Settled {
  forwarded: {
    fetched: boolean;
    progressed: number;
    status?: number;
    body?: string;
    error?: string;
  };
  received?: number;
}

describe("upload with onProgress in a Worker forwarding to a receiver", () => {
  let base: URL;
  let miniflare: Miniflare | undefined;

  before(async () => {
    miniflare = await startMiniflare(
      "_miniflare_upload_cut.mjs",
      "_workers_upload_cut_worker.ts",
      "upload-cut-",
      (dir) => join(dir, "r2"),
      T,
    );
    base = miniflare.url;
  }, { timeout: T + 60_000 });

  after(() => miniflare?.stop());

  /**
   * A PUT of `path` on a raw socket that sends 3 MiB of a body announced
   * as chunked, or as 20 MiB long, and closes the connection once the
   * forward has settled (a client gone mid-body).
   */
  async function cut(path: string, framing: "chunked" | "length") {
    const socket = connect(Number(base.port), base.hostname);
    const closed = new Promise((resolve) => socket.once("close", resolve));
    await new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    // A reset once the server has answered is the client's end anyway.
    socket.on("error", () => {});
    socket.write(
      `PUT ${path} HTTP/1.1\r\nHost: ${base.host}\r\n` +
        "Content-Type: application/octet-stream\r\n" +
        (framing === "chunked"
          ? "Transfer-Encoding: chunked\r\n\r\n"
          : `Content-Length: ${20 * MiB}\r\n\r\n`),
    );
    const piece = new Uint8Array(MiB).fill(7);
    for (let i = 0; i < 3; i++) {
      const more = framing === "chunked"
        ? socket.write(`${piece.length.toString(16)}\r\n`) &&
          socket.write(piece) && socket.write("\r\n")
        : socket.write(piece);
      if (!more) {
        // A server that answered without reading on (upload() refused at
        // once) may never drain it, nor close (under Bun this waited for
        // ever): a client that cannot send is gone as well.
        const drained = await Promise.race([
          new Promise((resolve) => socket.once("drain", () => resolve(true))),
          closed.then(() => false),
          new Promise((resolve) => setTimeout(() => resolve(false), 2_000)),
        ]);
        if (!drained) break;
      }
    }
    return { socket, closed };
  }

  async function json<T>(path: string): Promise<T> {
    return await (await fetch(new URL(path, base))).json();
  }

  /** The forward's outcome for `key`, asked every 50 ms until settled. */
  async function settledOf(key: string): Promise<Settled> {
    const started = performance.now();
    for (;;) {
      const response = await fetch(new URL(`/settled/${key}`, base));
      if (response.status === 200) return await response.json();
      await response.body?.cancel();
      assert.equal(response.status, 202);
      assert.ok(performance.now() - started < T, `${key} never settled`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it(
    "upload refuses a stream of unknown length with onProgress under Workers, so a cut chunked upload leaves no object",
    { timeout: T },
    async () => {
      // Before, the pipe through ProgressStream ended the subrequest's
      // body cleanly when the client went: 3 MiB of the cut upload stored
      // as a whole object.
      const { socket, closed } = await cut("/forward/chunked", "chunked");
      socket.destroy();
      await closed;
      const settled = await settledOf("chunked");
      assert.equal(settled.forwarded.fetched, false, JSON.stringify(settled));
      assert.match(
        settled.forwarded.error ?? "",
        /^TypeError: Cannot upload: under Workers a stream of unknown length with onProgress would reach the server whole even when its source fails/,
      );
      assert.equal(await json("/objects/chunked"), null);
    },
  );

  it(
    "upload sends contentLength with onProgress under Workers, so the receiver refuses a cut body",
    { timeout: T },
    async () => {
      const { socket, closed } = await cut("/forward/sized?length", "length");
      socket.destroy();
      await closed;
      // The receiver answers once it has read what the forward sent.
      const { forwarded, received } = await settledOf("sized");
      assert.equal(received, 400, JSON.stringify(forwarded));
      assert.match(
        forwarded.body ?? forwarded.error ?? "",
        /Cannot accept body|Content-Length|aborted|Network connection lost/i,
      );
      assert.equal(await json("/objects/sized"), null);
    },
  );

  it(
    "upload with onProgress and contentLength under Workers stores a whole upload and reports its progress",
    { timeout: T },
    async () => {
      const body = new Uint8Array(6 * MiB + 5).fill(9);
      const response = await fetch(new URL("/forward/whole?length", base), {
        method: "PUT",
        headers: { "content-type": "application/octet-stream" },
        body,
      });
      const forwarded = await response.json();
      assert.equal(response.status, 201, JSON.stringify(forwarded));
      assert.equal(JSON.parse(forwarded.body).bytes, body.byteLength);
      assert.equal(forwarded.progressed, body.byteLength);
      assert.deepEqual(await json("/objects/whole"), { size: body.byteLength });
    },
  );
});
