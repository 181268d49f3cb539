// Resumable uploads over loopback: each server runs in its own process
// (started by this file, `server <kind> <dir>`), so its peak RSS (VmHWM)
// belongs to the case; the client runs here, with the body in memory.
//
// Cases (MB/s, median of the samples, and the server's peak RSS):
//   plain            upload() → createUploadHandler + createFileSink
//   resumable        resumableUpload() → createResumableUploadHandler + file store
//   resumable-proxy  the same through a TCP proxy that cuts nothing
//   resumable-cut10  the same through the proxy cutting it 10 times
//   tus-js → @tus    tus-js-client → @tus/server + @tus/file-store
//   tus-js → sluice  tus-js-client → createResumableUploadHandler
// Both sluice servers hash with SHA-256 (createHasher) and fsync; @tus/server
// does neither. Ratios: resumable / plain (target ≥ 0.95) and
// resumable-cut10 / resumable-proxy (target ≥ 0.8).
//
//   deno run -A bench/resumable_bench.ts [--size 256] [--samples 3]
//   deno run -A bench/resumable_bench.ts --smoke     8 MiB, one sample
//   bun bench/resumable_bench.ts [...]                the same under Bun

import process from "node:process";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Buffer } from "node:buffer";
import * as tus from "tus-js-client";
import {
  createResumableUploadHandler,
  createUploadHandler,
  resumableUpload,
  upload,
} from "../lib/http/mod.ts";
import {
  createFileSink,
  createHasher,
  createResumableFileStore,
} from "../lib/runtime/fs.ts";
import { serve } from "../lib/runtime/serve.ts";
import { cutPoints, startCuttingProxy } from "../tests/_resumable_proxy.ts";

const MiB = 1024 * 1024;
const args = process.argv.slice(2);

if (args[0] === "server") {
  await runServer(args[1], args[2]);
} else {
  await runBench();
}

async function runServer(kind: string, dir: string): Promise<void> {
  let port: number;
  if (kind === "tus-server") {
    const { Server } = await import("@tus/server");
    const { FileStore } = await import("@tus/file-store");
    const server = new Server({
      path: "/uploads",
      datastore: new FileStore({ directory: dir }),
    });
    const node = createServer((req, res) => void server.handle(req, res));
    await new Promise<void>((resolve) =>
      node.listen(0, "127.0.0.1", () => resolve())
    );
    const address = node.address();
    port = typeof address === "object" && address ? address.port : 0;
  } else if (kind === "plain") {
    let n = 0;
    const handler = createUploadHandler({
      sink: () => createFileSink(join(dir, `plain-${n++}`)),
      hasher: createHasher,
      maxBytes: 64 * 1024 * MiB,
    });
    port = (await serve(handler, { hostname: "127.0.0.1", port: 0 })).port;
  } else {
    const handler = createResumableUploadHandler({
      store: createResumableFileStore(dir),
      hasher: createHasher,
      maxBytes: 64 * 1024 * MiB,
      maxTotalBytes: 1024 * 1024 * MiB,
    });
    port = (await serve(handler, { hostname: "127.0.0.1", port: 0 })).port;
  }
  console.log(`READY ${port}`);
}

interface Started {
  port: number;
  peakRss(): number;
  stop(): Promise<void>;
}

async function startServer(kind: string, dir: string): Promise<Started> {
  const self = new URL(import.meta.url).pathname;
  const argv = "Bun" in globalThis
    ? [self, "server", kind, dir]
    : ["run", "-A", self, "server", kind, dir];
  const child = spawn(process.execPath, argv, {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout!.setEncoding("utf8").on("data", (s: string) => {
      out += s;
      const match = /READY (\d+)/.exec(out);
      if (match) resolve(Number(match[1]));
    });
    child.on("exit", (code) => reject(new Error(`server exited ${code}`)));
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  return {
    port,
    peakRss() {
      try {
        const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
        return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
      } catch {
        return 0;
      }
    },
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

function tusJs(endpoint: string, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    new tus.Upload(Buffer.from(data.buffer, data.byteOffset, data.byteLength), {
      endpoint,
      retryDelays: [0, 10, 100],
      onError: reject,
      onSuccess: () => resolve(),
    }).start();
  });
}

async function runBench(): Promise<void> {
  const smoke = args.includes("--smoke") || process.env.BENCH_SMOKE === "1";
  const option = (name: string, fallback: number) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : fallback;
  };
  const size = (smoke ? 8 : option("--size", 256)) * MiB;
  const samples = smoke ? 1 : option("--samples", 3);
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) {
    crypto.getRandomValues(data.subarray(i, Math.min(size, i + 65536)));
  }
  const base = join(process.env.TMPDIR ?? tmpdir(), "sluice-resumable-bench");
  await mkdir(base, { recursive: true });
  const dir = await mkdtemp(join(base, "run-"));
  const FAST = { retryDelayMs: 5, maxRetryDelayMs: 50, maxRetries: 20 };

  const cases: Array<{
    name: string;
    server: string;
    send: (port: number) => Promise<unknown>;
  }> = [
    {
      name: "plain",
      server: "plain",
      send: async (port) => {
        const response = await upload(`http://127.0.0.1:${port}/`, data);
        if (response.status !== 201) throw new Error(`${response.status}`);
        await response.body?.cancel();
      },
    },
    {
      name: "resumable",
      server: "resumable",
      send: (port) =>
        resumableUpload(`http://127.0.0.1:${port}/uploads`, data, FAST),
    },
    {
      name: "resumable-proxy",
      server: "resumable",
      send: async (port) => {
        const proxy = await startCuttingProxy(port, []);
        try {
          await resumableUpload(
            `http://127.0.0.1:${proxy.port}/uploads`,
            data,
            FAST,
          );
        } finally {
          await proxy.close();
        }
      },
    },
    {
      name: "resumable-cut10",
      server: "resumable",
      send: async (port) => {
        const points = cutPoints(10, size, Math.floor(Math.random() * 2 ** 31));
        const proxy = await startCuttingProxy(port, points);
        try {
          await resumableUpload(
            `http://127.0.0.1:${proxy.port}/uploads`,
            data,
            FAST,
          );
          if (proxy.cuts() !== 10) throw new Error(`${proxy.cuts()} cuts`);
        } finally {
          await proxy.close();
        }
      },
    },
    {
      name: "tus-js → @tus",
      server: "tus-server",
      send: (port) => tusJs(`http://127.0.0.1:${port}/uploads`, data),
    },
    {
      name: "tus-js → sluice",
      server: "resumable",
      send: (port) => tusJs(`http://127.0.0.1:${port}/uploads`, data),
    },
  ];

  const results = new Map<string, { rate: number; rss: number }>();
  try {
    for (const { name, server, send } of cases) {
      const caseDir = await mkdtemp(join(dir, "case-"));
      const started = await startServer(server, caseDir);
      const rates: number[] = [];
      try {
        for (let i = 0; i < samples; i++) {
          const t0 = performance.now();
          await send(started.port);
          rates.push(size / MiB / ((performance.now() - t0) / 1000));
        }
      } finally {
        const rss = started.peakRss();
        await started.stop();
        rates.sort((a, b) => a - b);
        results.set(name, { rate: rates[Math.floor(rates.length / 2)], rss });
        await rm(caseDir, { recursive: true, force: true });
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  const runtime = "Bun" in globalThis
    ? `Bun ${process.versions.bun}`
    : `Deno ${process.versions.deno}`;
  console.log(
    `\nResumable uploads, ${
      size / MiB
    } MiB over loopback, ${runtime}, median of ${samples}\n`,
  );
  console.log("| case | MiB/s | server peak RSS (MiB) |");
  console.log("| --- | ---: | ---: |");
  for (const [name, { rate, rss }] of results) {
    console.log(
      `| ${name} | ${rate.toFixed(0)} | ${
        rss ? (rss / MiB).toFixed(0) : "n/a"
      } |`,
    );
  }
  const ratio = (a: string, b: string) =>
    (results.get(a)!.rate / results.get(b)!.rate).toFixed(2);
  console.log(
    `\nresumable / plain: ${ratio("resumable", "plain")} (target ≥ 0.95)`,
  );
  console.log(
    `resumable-cut10 / resumable-proxy: ${
      ratio("resumable-cut10", "resumable-proxy")
    } (target ≥ 0.8)`,
  );
  console.log(
    `resumable / tus-js → @tus: ${ratio("resumable", "tus-js → @tus")}`,
  );
}
