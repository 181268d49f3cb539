// A multipart/form-data upload to disk against a raw-body upload of the same
// bytes into the same receiver: createUploadHandler with a sink (raw) and
// the multipart option, atomic file sinks and SHA-256, in its own server
// process (a fresh one per measurement, so that its peak RSS, VmHWM, belongs
// to it). The client is curl for both: `curl -T FILE` (raw) and
// `curl -F file=@FILE` (multipart). Runs are interleaved (raw, multipart,
// raw, ...) so that a loaded machine slows both alike; the median rate and
// the largest RSS growth (VmHWM - VmRSS at start) are reported, with the
// ratio multipart / raw.
//
//   deno run -A bench/multipart_upload_bench.ts            1 GiB, 3 runs each
//   deno run -A bench/multipart_upload_bench.ts --smoke    16 MiB, 1 run each
//   ... --mib N --runs N                                   another size
//
// The server mode (`--serve DIR`) is this file run by itself: it prints
// `READY <port>` and stores what it receives in DIR.

import process from "node:process";
import { spawn } from "node:child_process";
import { Readable } from "node:stream";
import { mkdir, open, readdir, readFile, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { createUploadHandler } from "../lib/http/mod.ts";
import { createFileSink, createHasher } from "../lib/runtime/fs.ts";
import { serve } from "../lib/runtime/serve.ts";
import { readyPort } from "./_ready.ts";

const argv = process.argv.slice(2);
const flag = (name: string) => {
  const i = argv.indexOf(name);
  return i < 0 ? undefined : argv[i + 1];
};

if (argv[0] === "--serve") {
  const dir = argv[1];
  let n = 0;
  const handler = createUploadHandler({
    hasher: createHasher,
    maxBytes: 8 * 1024 * 1024 * 1024,
    sink: () => createFileSink(join(dir, `raw-${n++}.bin`)),
    multipart: {
      sink: () => createFileSink(join(dir, `part-${n++}.bin`)),
      maxFileBytes: 8 * 1024 * 1024 * 1024,
    },
  });
  const server = await serve(handler, { hostname: "127.0.0.1", port: 0 });
  console.log(`READY ${server.url.port}`);
} else {
  await main();
}

async function procKiB(pid: number, key: string): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const match = status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"));
  return match ? Number(match[1]) : NaN;
}

function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => out += s);
    child.stderr.setEncoding("utf8").on("data", (s: string) => err += s);
    child.on("error", reject);
    child.on(
      "close",
      (code) =>
        code === 0
          ? resolve(out)
          : reject(new Error(`${command} ${code}: ${err}`)),
    );
  });
}

/** One upload through a fresh server: MB/s and the server's RSS growth. */
async function measure(
  mode: "raw" | "multipart",
  file: string,
  bytes: number,
  dir: string,
): Promise<{ mbps: number; rssMiB: number }> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const script = new URL(import.meta.url).pathname;
  const child = spawn(
    process.execPath,
    "Bun" in globalThis
      ? [script, "--serve", dir]
      : ["run", "-A", script, "--serve", dir],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  try {
    const port = await readyPort(
      Readable.toWeb(child.stdout!) as ReadableStream<Uint8Array>,
      `${mode} server`,
    );
    const start = await procKiB(child.pid!, "VmRSS");
    const url = `http://127.0.0.1:${port}/`;
    const t0 = performance.now();
    await run("curl", [
      "-sS",
      "-f",
      "-H",
      "Expect:",
      "--max-time",
      "600",
      "-o",
      "/dev/null",
      ...(mode === "raw" ? ["-T", file] : ["-F", `file=@${file}`]),
      url,
    ]);
    const ms = performance.now() - t0;
    const peak = await procKiB(child.pid!, "VmHWM");
    const names = await readdir(dir);
    if (
      names.length !== 1 || (await stat(join(dir, names[0]))).size !== bytes
    ) {
      throw new Error(`Cannot benchmark: ${mode} stored ${names.join(", ")}`);
    }
    return { mbps: bytes / ms / 1000, rssMiB: (peak - start) / 1024 };
  } finally {
    child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function main(): Promise<void> {
  const smoke = argv.includes("--smoke") || process.env.BENCH_SMOKE === "1";
  const mib = Number(flag("--mib") ?? (smoke ? 16 : 1024));
  const runs = Number(flag("--runs") ?? (smoke ? 1 : 3));
  const tmp = resolve(flag("--tmp") ?? ".tmp/multipart-upload-bench");
  await mkdir(tmp, { recursive: true });
  const file = join(tmp, "source.bin");
  const bytes = mib * 1024 * 1024;
  // The source: random bytes, written once.
  const handle = await open(file, "w");
  const block = new Uint8Array(1024 * 1024);
  for (let i = 0; i < mib; i++) {
    for (let j = 0; j < block.length; j += 65536) {
      crypto.getRandomValues(block.subarray(j, j + 65536));
    }
    await handle.write(block);
  }
  await handle.close();
  const results = { raw: [] as number[], multipart: [] as number[] };
  const rss = { raw: [] as number[], multipart: [] as number[] };
  try {
    for (let i = 0; i < runs; i++) {
      for (const mode of ["raw", "multipart"] as const) {
        const r = await measure(mode, file, bytes, join(tmp, "out"));
        results[mode].push(r.mbps);
        rss[mode].push(r.rssMiB);
        console.error(
          `  run ${i + 1} ${mode}: ${r.mbps.toFixed(0)} MB/s, RSS +${
            r.rssMiB.toFixed(1)
          } MiB`,
        );
      }
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  const runtime = "Bun" in globalThis
    ? `Bun ${process.versions.bun}`
    : `Deno ${process.versions.deno}`;
  console.log(
    `upload to disk through createUploadHandler, ${mib} MiB, ${runtime}, curl client, median of ${runs} interleaved runs`,
  );
  console.log("| body | MB/s | server RSS growth (max) | vs raw |");
  console.log("| --- | ---: | ---: | ---: |");
  const raw = median(results.raw);
  for (const mode of ["raw", "multipart"] as const) {
    const m = median(results[mode]);
    console.log(
      `| ${mode === "raw" ? "raw body (curl -T)" : "multipart (curl -F)"} | ${
        m.toFixed(0)
      } | ${Math.max(...rss[mode]).toFixed(1)} MiB | ${
        (m / raw).toFixed(2)
      }x |`,
    );
  }
  const perRun = results.multipart.map((m, i) => m / results.raw[i]);
  console.log(
    `per-run ratios multipart/raw: ${
      perRun.map((r) => r.toFixed(2)).join(", ")
    }`,
  );
}
