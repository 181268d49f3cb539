// A gzip bomb in one RPC message: decompression stops at maxMessageBytes
// before the memory is spent. Measured in a child process (its own peak
// RSS, VmHWM) under the runtime running the tests (Deno or Bun): one
// message of about 1 MiB that inflates to 1 GiB (ratio about 1000) must
// fail with RESOURCE_EXHAUSTED and raise peak RSS by at most
// MAX_GROWTH_BYTES. Written whole into Deno's DecompressionStream it came
// out as one 1 GiB chunk (RSS 48 MiB -> 2.1 GiB); fed in 4 KiB slices, at
// most maxMessageBytes (4 MiB) plus one slice's expansion (about 4 MiB) is
// held, plus the runtime's own buffers.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { createGzip } from "node:zlib";
import { deadline, runtime } from "./_helpers.ts";

/** The documented bound on peak RSS growth for the bomb. */
const MAX_GROWTH_BYTES = 128 * 1024 * 1024;
const INFLATED_BYTES = 1024 * 1024 * 1024;

const dir = join(import.meta.dirname ?? ".", "..", ".tmp");
const bombPath = join(dir, "rpc-bomb-1gib.gz");

/** gzip of 1 GiB of zeros (about 1 MiB), made once and kept in .tmp. */
async function makeBomb(): Promise<void> {
  if (existsSync(bombPath)) return;
  await mkdir(dir, { recursive: true });
  const gzip = createGzip({ level: 9 });
  const parts: Uint8Array[] = [];
  gzip.on("data", (chunk: Uint8Array) => parts.push(chunk));
  const ended = new Promise((resolve, reject) => {
    gzip.once("end", resolve);
    gzip.once("error", reject);
  });
  const zeros = new Uint8Array(1024 * 1024);
  for (let i = 0; i < INFLATED_BYTES / zeros.byteLength; i++) {
    if (!gzip.write(zeros)) {
      await new Promise((resolve) => gzip.once("drain", resolve));
    }
  }
  gzip.end();
  await ended;
  const tmp = `${bombPath}.${process.pid}`;
  await writeFile(tmp, Buffer.concat(parts));
  await rename(tmp, bombPath);
}

function runChild(): Promise<string> {
  const child = join(import.meta.dirname ?? ".", "_rpc_bomb_child.ts");
  const args = runtime === "deno"
    ? ["run", "--allow-all", child, bombPath]
    : [child, bombPath];
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      args,
      { maxBuffer: 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`child failed: ${stderr}`, { cause: error }));
        } else resolve(stdout);
      },
    );
  });
}

describe("gzip bomb in one RPC message", () => {
  it("fails with RESOURCE_EXHAUSTED and peak RSS grows at most 128 MiB", {
    skip: process.platform !== "linux" || runtime === "node",
  }, async () => {
    await deadline(makeBomb(), 120_000, "making the bomb");
    const out = await deadline(runChild(), 120_000, "the child");
    const { code, baseline, peak } = JSON.parse(out.trim().split("\n").at(-1)!);
    assert.equal(code, "resource_exhausted");
    const growth = peak - baseline;
    assert.ok(
      growth <= MAX_GROWTH_BYTES,
      `peak RSS grew by ${(growth / 2 ** 20).toFixed(0)} MiB (bound ${
        MAX_GROWTH_BYTES / 2 ** 20
      } MiB)`,
    );
  });
});
