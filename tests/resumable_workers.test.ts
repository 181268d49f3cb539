// The Workers store in workerd: miniflare (pinned; its own workerd) serves
// tests/_resumable_worker.ts with a disk-backed R2 bucket and Durable
// Objects on 127.0.0.1 port 0. Uploads over both protocols land in R2
// byte-identical, the object is absent until the upload completes, and 20
// connection cuts over 32 MiB (through a cutting TCP proxy) still give a
// byte-identical object.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import process from "node:process";
import { resumableUpload } from "../lib/http/mod.ts";
import { createResumableUploadObject } from "../lib/runtime/workers.ts";
import { deadline } from "./_helpers.ts";
import { bundle, ROOT } from "./_workerd.ts";
import { cutPoints, startCuttingProxy } from "./_resumable_proxy.ts";

/** The miniflare release of tests/r2_sink_workerd.test.ts. */
const MINIFLARE_VERSION = "4.20260426.0";
const MiB = 1024 * 1024;
const T = 120_000;
/**
 * The full fault run (100 cuts during 256 MiB) is opt-in:
 * `SLUICE_RESUMABLE_FULL=1 deno test -A tests/resumable_workers.test.ts`.
 * The test task runs 20 cuts over 32 MiB.
 */
const FULL = process.env.SLUICE_RESUMABLE_FULL === "1";
const CUTS = FULL ? 100 : 20;
const CUT_BYTES = (FULL ? 256 : 32) * MiB;

function randomBytes(n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  }
  return out;
}

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("base64");
}

function run(command: string, args: string[]): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: "ignore" });
    child.on("error", reject);
    child.on("close", resolve);
  });
}

/** miniflare's entry, installed into .tools/miniflare on first use. */
async function findMiniflare(): Promise<string> {
  const prefix = join(ROOT, ".tools", "miniflare");
  const entry = join(
    prefix,
    "node_modules",
    "miniflare",
    "dist",
    "src",
    "index.js",
  );
  if (!await stat(entry).then(() => true, () => false)) {
    const code = await run("npm", [
      "install",
      "--silent",
      "--no-audit",
      "--no-fund",
      "--save-exact",
      "--prefix",
      prefix,
      `miniflare@${MINIFLARE_VERSION}`,
    ]);
    if (code !== 0) {
      throw new Error(`Cannot install miniflare@${MINIFLARE_VERSION}`);
    }
  }
  return pathToFileURL(entry).href;
}

describe("createResumableUploadObject", () => {
  it("refuses a partBytes below R2's 5 MiB smallest part", () => {
    assert.throws(
      () =>
        createResumableUploadObject({
          bucket: () => {
            throw new Error("not reached");
          },
          partBytes: 5 * MiB - 1,
        }),
      (error: unknown) =>
        error instanceof RangeError && /partBytes/.test(error.message),
    );
  });
});

describe("createResumableWorkersStore in workerd (Durable Objects + R2)", () => {
  let dir: string;
  let base: URL;
  let child: ReturnType<typeof spawn> | undefined;
  let stderr = "";

  before(async () => {
    const module = await findMiniflare();
    await mkdir(join(ROOT, ".tmp"), { recursive: true });
    dir = await mkdtemp(join(ROOT, ".tmp", "resumable-workers-"));
    await bundle(
      join(ROOT, "tests", "_resumable_worker.ts"),
      join(dir, "worker.js"),
    );
    const proc = spawn("node", [
      join(ROOT, "tests", "_miniflare_resumable.mjs"),
      module,
      join(dir, "worker.js"),
      dir,
    ], { cwd: dir, stdio: ["pipe", "pipe", "pipe"] });
    child = proc;
    proc.stderr!.setEncoding("utf8").on("data", (s: string) => stderr += s);
    const ready = new Promise<URL>((resolve, reject) => {
      let out = "";
      proc.stdout!.setEncoding("utf8").on("data", (s: string) => {
        out += s;
        const line = out.split("\n").find((l) => l.startsWith("{"));
        if (line) resolve(new URL(JSON.parse(line).url));
      });
      proc.on(
        "close",
        (code) =>
          reject(new Error(`Cannot start miniflare (${code}): ${stderr}`)),
      );
    });
    base = await deadline(ready, T, "miniflare start");
  }, { timeout: T + 60_000 });

  after(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child!.on("close", resolve));
      child.stdin!.end();
      await deadline(exited, 30_000, "miniflare exit").catch(() => {
        child!.kill("SIGKILL");
      });
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function object(uploadUrl: string) {
    const id = new URL(uploadUrl).pathname.split("/").pop()!;
    const response = await fetch(new URL(`/objects/${id}`, base));
    if (response.status === 404) {
      await response.body?.cancel();
      return undefined;
    }
    return await response.json() as { size: number; sha256: string };
  }

  for (const protocol of ["ietf", "tus"] as const) {
    it(`stores an upload in R2 parts and a tail (${protocol})`, {
      timeout: T,
    }, async () => {
      const data = randomBytes(13 * MiB + 7);
      const result = await resumableUpload(new URL("/uploads", base), data, {
        protocol,
        chunkBytes: 3 * MiB,
      });
      assert.deepEqual(await object(result.uploadUrl), {
        size: data.byteLength,
        sha256: sha256(data),
      });
      if (protocol === "ietf") {
        assert.equal((await result.response.json()).sha256, sha256(data));
      }
    });
  }

  it("stores a small upload with one put", { timeout: T }, async () => {
    const data = randomBytes(1000);
    const result = await resumableUpload(new URL("/uploads", base), data);
    assert.deepEqual(await object(result.uploadUrl), {
      size: 1000,
      sha256: sha256(data),
    });
  });

  it("keeps no object in R2 until the upload completes", {
    timeout: T,
  }, async () => {
    const data = randomBytes(7 * MiB);
    const created = await fetch(new URL("/uploads", base), {
      method: "POST",
      headers: { "upload-complete": "?0", "upload-length": String(7 * MiB) },
    });
    assert.equal(created.status, 201);
    const url = new URL(created.headers.get("location")!, base).href;
    const first = await fetch(url, {
      method: "PATCH",
      headers: {
        "content-type": "application/partial-upload",
        "upload-offset": "0",
        "upload-complete": "?0",
      },
      body: data.subarray(0, 6 * MiB),
    });
    assert.equal(first.status, 204);
    assert.equal(first.headers.get("upload-offset"), String(6 * MiB));
    assert.equal(await object(url), undefined);
    const head = await fetch(url, { method: "HEAD" });
    assert.equal(head.headers.get("upload-offset"), String(6 * MiB));
    const result = await resumableUpload(new URL("/uploads", base), data, {
      uploadUrl: url,
    });
    assert.equal(result.uploadUrl, url);
    assert.deepEqual(await object(url), {
      size: data.byteLength,
      sha256: sha256(data),
    });
  });

  it(
    `survives ${CUTS} connection cuts at random offsets over ${
      CUT_BYTES / MiB
    } MiB`,
    {
      timeout: FULL ? 20 * T : 2 * T,
    },
    async () => {
      const size = CUT_BYTES;
      const data = randomBytes(size);
      const seed = Math.floor(Math.random() * 2 ** 31);
      const proxy = await startCuttingProxy(
        Number(base.port),
        cutPoints(CUTS, size, seed),
      );
      try {
        const result = await deadline(
          resumableUpload(`http://127.0.0.1:${proxy.port}/uploads`, data, {
            chunkBytes: 8 * MiB,
            retryDelayMs: 10,
            maxRetryDelayMs: 100,
            maxRetries: 30,
          }),
          FULL ? 20 * T : 2 * T,
          `upload with cuts (seed ${seed})`,
        );
        assert.equal(proxy.cuts(), CUTS, `seed ${seed}`);
        assert.deepEqual(await object(result.uploadUrl), {
          size,
          sha256: sha256(data),
        }, `seed ${seed}`);
      } finally {
        await proxy.close();
      }
    },
  );
});
