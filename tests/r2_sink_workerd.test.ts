// createR2Sink in the Workers runtime against a real local R2: miniflare
// (npm, pinned; its own workerd) with a disk-backed bucket, serving
// tests/_r2_sink_worker.ts on 127.0.0.1 port 0. Each failed upload must
// leave the previous object and no open multipart upload; each good one
// exactly one whole object.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { connect } from "node:net";
import { join } from "node:path";
import { formatDigestHeader } from "../lib/http/digest_header.ts";
import { type Miniflare, startMiniflare } from "./_miniflare.ts";

/** The miniflare release (its workerd runs on Node 20, as wrangler 4.86's). */
const MiB = 1024 * 1024;
const T = 120_000;

function randomBytes(size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) {
    crypto.getRandomValues(bytes.subarray(i, Math.min(size, i + 65536)));
  }
  return bytes;
}

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function stream(bytes: Uint8Array, chunk = 256 * 1024) {
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + chunk));
      offset += chunk;
    },
  });
}

describe("createR2Sink in workerd with miniflare's R2", () => {
  let base: URL;
  let miniflare: Miniflare | undefined;

  before(async () => {
    miniflare = await startMiniflare(
      "_miniflare_r2.mjs",
      "_r2_sink_worker.ts",
      "r2-",
      (dir) => join(dir, "r2"),
      T,
    );
    base = miniflare.url;
  }, { timeout: T + 60_000 });

  after(() => miniflare?.stop());

  async function put(
    key: string,
    body: Uint8Array<ArrayBuffer>,
    options: { digest?: Uint8Array; maxBytes?: number; chunked?: boolean } = {},
  ): Promise<number> {
    const headers: Record<string, string> = {
      "content-type": "application/octet-stream",
    };
    if (options.digest) {
      headers["content-digest"] = formatDigestHeader({
        "sha-256": options.digest,
      });
    }
    if (options.maxBytes) headers["x-max-bytes"] = String(options.maxBytes);
    const response = await fetch(new URL(`/objects/${key}`, base), {
      method: "PUT",
      headers,
      body: options.chunked ? stream(body) : body,
      duplex: "half",
    } as RequestInit);
    await response.arrayBuffer();
    return response.status;
  }

  async function stored(key: string): Promise<string | undefined> {
    const response = await fetch(new URL(`/objects/${key}`, base));
    if (response.status === 404) {
      await response.body?.cancel();
      return undefined;
    }
    return (await response.json()).sha256;
  }

  async function openUploads(key: string): Promise<number> {
    const response = await fetch(new URL(`/settled/${key}`, base));
    return (await response.json()).open;
  }

  it(
    "stores a fixed-length body and a chunked multi-part body",
    { timeout: T },
    async () => {
      const small = randomBytes(1000);
      assert.equal(await put("a", small, { digest: sha256(small) }), 201);
      assert.equal(await stored("a"), hex(sha256(small)));
      const big = randomBytes(12 * MiB + 5);
      assert.equal(
        await put("b", big, { digest: sha256(big), chunked: true }),
        201,
      );
      assert.equal(await stored("b"), hex(sha256(big)));
      assert.equal(await openUploads("b"), 0);
    },
  );

  it(
    "keeps the previous object on a Content-Digest mismatch",
    { timeout: T },
    async () => {
      const old = randomBytes(2000);
      assert.equal(await put("d", old), 201);
      // Fixed length, one put: never made.
      const bad = randomBytes(3000);
      assert.equal(await put("d", bad, { digest: sha256(old) }), 400);
      assert.equal(await stored("d"), hex(sha256(old)));
      // Chunked, three parts uploaded, then the digest fails: aborted.
      const big = randomBytes(11 * MiB);
      assert.equal(
        await put("d", big, { digest: sha256(old), chunked: true }),
        400,
      );
      assert.equal(await stored("d"), hex(sha256(old)));
      assert.equal(await openUploads("d"), 0);
    },
  );

  it(
    "stores each file of a multipart form through its own sink, and a form cut short leaves no object and no open upload",
    { timeout: T },
    async () => {
      // Before, a form whose second file was 64 KiB or more hung in workerd
      // until it cancelled the request (30 s, then 500), and a form cut
      // short left the first file's multipart upload open: workerd resumes
      // a TransformStream held back by its readable side only when a read
      // waits (docs/known-runtime-issues.md).
      const enc = new TextEncoder();
      const files = [randomBytes(100), randomBytes(MiB), randomBytes(6 * MiB)];
      const part = (i: number, bytes: Uint8Array<ArrayBuffer>) => [
        enc.encode(
          `--B\r\ncontent-disposition: form-data; name="f"; filename="x${i}"\r\n\r\n`,
        ),
        bytes,
        enc.encode("\r\n"),
      ];
      const post = (key: string, body: BodyInit) =>
        fetch(new URL(`/forms/${key}`, base), {
          method: "POST",
          headers: { "content-type": "multipart/form-data; boundary=B" },
          body,
        });
      const whole = await post(
        "form",
        new Blob([
          ...files.flatMap((f, i) => part(i, f)),
          enc.encode("--B--\r\n"),
        ]),
      );
      assert.equal(whole.status, 201, await whole.clone().text());
      assert.deepEqual(
        (await whole.json()).files.map((f: { bytes: number }) => f.bytes),
        files.map((f) => f.byteLength),
      );
      for (const [i, file] of files.entries()) {
        assert.equal(await stored(`form-${i}`), hex(sha256(file)), `file ${i}`);
      }
      assert.equal(await openUploads("form"), 0);
      // The same files, the body ending inside the third.
      const cut = await post(
        "cut",
        new Blob(files.flatMap((f, i) => part(i, f)).slice(0, -1)),
      );
      assert.equal(cut.status, 400);
      assert.match(
        await cut.text(),
        /the body ended in the body of part 3, without the closing boundary/,
      );
      for (let i = 0; i < files.length; i++) {
        assert.equal(await stored(`cut-${i}`), undefined, `file ${i}`);
      }
      assert.equal(await openUploads("cut"), 0);
    },
  );

  it("keeps the previous object when the body is over the limit", {
    timeout: T,
  }, async () => {
    const old = randomBytes(100);
    assert.equal(await put("o", old), 201);
    const big = randomBytes(12 * MiB);
    const status = await put("o", big, {
      maxBytes: 7 * MiB,
      chunked: true,
    }).catch(() => 413); // the client may see its upload cut instead
    assert.equal(status, 413);
    assert.equal(await stored("o"), hex(sha256(old)));
    assert.equal(await openUploads("o"), 0);
  });

  it("keeps the previous object when the client disconnects mid-body", {
    timeout: T,
  }, async () => {
    const old = randomBytes(100);
    assert.equal(await put("c", old), 201);
    // A chunked PUT on a raw socket: 7 MiB (one part uploaded), then gone.
    await new Promise<void>((resolve, reject) => {
      const socket = connect(Number(base.port), base.hostname, async () => {
        socket.write(
          `PUT /objects/c HTTP/1.1\r\nHost: ${base.host}\r\n` +
            "Transfer-Encoding: chunked\r\n\r\n",
        );
        const piece = randomBytes(MiB);
        for (let i = 0; i < 7; i++) {
          const more = socket.write(
            `${piece.length.toString(16)}\r\n`,
          ) && socket.write(piece) && socket.write("\r\n");
          if (!more) {
            await new Promise((drained) => socket.once("drain", drained));
          }
        }
        socket.destroy();
        resolve();
      });
      socket.on("error", reject);
    });
    assert.equal(await openUploads("c"), 0);
    assert.equal(await stored("c"), hex(sha256(old)));
  });

  it("leaves one whole object from two concurrent uploads to one key", {
    timeout: T,
  }, async () => {
    const old = randomBytes(100);
    assert.equal(await put("x", old), 201);
    const a = randomBytes(11 * MiB);
    const b = randomBytes(6 * MiB);
    const bad = randomBytes(6 * MiB);
    const statuses = await Promise.all([
      put("x", a, { digest: sha256(a), chunked: true }),
      put("x", b, { digest: sha256(b), chunked: true }),
      put("x", bad, { digest: sha256(a), chunked: true }),
    ]);
    assert.deepEqual(statuses, [201, 201, 400]);
    const now = await stored("x");
    assert.ok(
      now === hex(sha256(a)) || now === hex(sha256(b)),
      "one of the good uploads, whole",
    );
    assert.equal(await openUploads("x"), 0);
  });
});
