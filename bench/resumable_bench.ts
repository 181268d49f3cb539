// Resumable uploads over loopback: each server runs in its own process
// (started by this file, `server <kind> <dir>`), so its peak RSS (VmHWM)
// belongs to the case; the client runs here, with the body in memory.
//
// Cases (MiB/s, median of the repetitions, and the server's peak RSS):
//   plain            upload() → createUploadHandler + createFileSink (the
//                    body as a stream of 1 MiB copies, as resumableUpload
//                    sends it outside browsers)
//   resumable        resumableUpload() → createResumableUploadHandler + file store
//   resumable-proxy  the same through a TCP proxy that cuts nothing
//   resumable-cut10  the same through the proxy dropping the connection 10
//                    times (it destroys both sockets at a seeded random
//                    request byte: bytes in flight are lost, as on a real
//                    network; the server keeps what reached it)
//   tus-js → @tus    tus-js-client → @tus/server + @tus/file-store
//   tus-js → sluice  tus-js-client → createResumableUploadHandler
// The sluice servers hash with SHA-256 (createHasher) and fsync (plain: once
// at the end; the resumable file store every 16 MiB and after each request,
// in the background); @tus/server does neither. The clients use their
// default retry settings. Every repetition runs all cases in turn
// (interleaved), each with a server of its own. Targets: resumable / plain ≥ 0.95 and
// resumable-cut10 / resumable-proxy ≥ 0.8.
//
//   deno run -A bench/resumable_bench.ts [--size 1024] [--reps 3]
//   ... --tus-size 256     the tus-js-client rows send only this many MiB
//   ... --direct-size 256  so do plain and resumable (the first target)
//   deno run -A bench/resumable_bench.ts --smoke     8 MiB, one repetition
//   ... --json    rows and targets as JSON, for bench/run.ts (deno task bench)
//   ... --tmp DIR where the servers write (default: the system's temp dir)
//   bun bench/resumable_bench.ts [...]                the same under Bun

import process from "node:process";
import { spawn } from "node:child_process";
import { Readable } from "node:stream";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Buffer } from "node:buffer";
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
import { readyPort } from "./_ready.ts";

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
  const port = await readyPort(
    Readable.toWeb(child.stdout!) as ReadableStream<Uint8Array>,
    `${kind} server`,
  );
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

async function tusJs(endpoint: string, data: Uint8Array): Promise<void> {
  // Imported here: the server processes do not need it.
  const tus = await import("tus-js-client");
  await new Promise<void>((resolve, reject) => {
    new tus.Upload(Buffer.from(data.buffer, data.byteOffset, data.byteLength), {
      endpoint,
      onError: reject,
      onSuccess: () => resolve(),
    }).start();
  });
}

interface Case {
  name: string;
  label: string;
  server: string;
  /** Bytes it sends (the whole body unless given). */
  bytes?: number;
  send: (port: number) => Promise<unknown>;
}

async function runBench(): Promise<void> {
  const smoke = args.includes("--smoke") || process.env.BENCH_SMOKE === "1";
  const json = args.includes("--json");
  const option = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const size = (smoke ? 8 : Number(option("--size") ?? 1024)) * MiB;
  /** Bytes sent by rows other than those through the proxy. */
  const sizeOf = (name: string) => {
    const bytes = smoke ? size : Number(option(name) ?? size / MiB) * MiB;
    if (!(bytes > 0 && bytes <= size)) {
      throw new RangeError(`Cannot run: ${name} must be in (0, --size]`);
    }
    return bytes;
  };
  /** The tus rows' size (their comparison is not a target). */
  const tusSize = sizeOf("--tus-size");
  /** The direct rows' size (plain and resumable: the first target). */
  const directSize = sizeOf("--direct-size");
  const sizeNote = (bytes: number) =>
    bytes < size ? `, ${bytes / MiB} MiB` : "";
  const reps = smoke ? 1 : Number(option("--reps") ?? 3);
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) {
    crypto.getRandomValues(data.subarray(i, Math.min(size, i + 65536)));
  }
  const base = option("--tmp") ??
    join(process.env.TMPDIR ?? tmpdir(), "sluice-resumable-bench");
  await mkdir(base, { recursive: true });
  const dir = await mkdtemp(join(base, "run-"));
  const log = (line: string) => console.error(line);
  /**
   * The body as resumableUpload streams it (copies of up to 1 MiB), for the
   * plain upload: Deno's fetch sends a large Uint8Array at about half the
   * rate of a stream of it (256 MiB: 15-27 vs 30-41 MiB/s here), and the
   * comparison is between receivers and protocols, not two fetch paths.
   */
  const stream = (end: number) => {
    let at = 0;
    return new ReadableStream<Uint8Array>({
      pull(controller) {
        if (at >= end) return controller.close();
        const next = Math.min(end, at + MiB);
        controller.enqueue(data.slice(at, next));
        at = next;
      },
    });
  };

  const cases: Case[] = [
    {
      name: "plain",
      label: "plain: `upload()` → `createUploadHandler` + `createFileSink`" +
        sizeNote(directSize),
      server: "plain",
      bytes: directSize,
      send: async (port) => {
        const response = await upload(
          `http://127.0.0.1:${port}/`,
          stream(directSize),
          { contentLength: directSize },
        );
        if (response.status !== 201) throw new Error(`${response.status}`);
        await response.body?.cancel();
      },
    },
    {
      name: "resumable",
      label: "resumable: `resumableUpload()` → handler + file store" +
        sizeNote(directSize),
      server: "resumable",
      bytes: directSize,
      send: (port) =>
        resumableUpload(
          `http://127.0.0.1:${port}/uploads`,
          data.subarray(0, directSize),
        ),
    },
    {
      name: "resumable-proxy",
      label: "resumable through a TCP proxy that drops nothing",
      server: "resumable",
      send: async (port) => {
        const proxy = await startCuttingProxy(port, []);
        try {
          await resumableUpload(`http://127.0.0.1:${proxy.port}/uploads`, data);
        } finally {
          await proxy.close();
        }
      },
    },
    {
      name: "resumable-cut10",
      label: "resumable through the proxy dropping the connection 10 times",
      server: "resumable",
      send: async (port) => {
        const points = cutPoints(10, size, Math.floor(Math.random() * 2 ** 31));
        const proxy = await startCuttingProxy(port, points);
        try {
          await resumableUpload(`http://127.0.0.1:${proxy.port}/uploads`, data);
          if (proxy.cuts() !== 10) throw new Error(`${proxy.cuts()} cuts`);
          const resent = proxy.forwarded() - size;
          log(`  cut10: ${(resent / MiB).toFixed(1)} MiB sent more than once`);
        } finally {
          await proxy.close();
        }
      },
    },
    {
      name: "tus-js → @tus",
      label: `tus-js-client → @tus/server + @tus/file-store (node:http)${
        sizeNote(tusSize)
      }`,
      server: "tus-server",
      bytes: tusSize,
      send: (port) =>
        tusJs(`http://127.0.0.1:${port}/uploads`, data.subarray(0, tusSize)),
    },
    {
      name: "tus-js → sluice",
      label: `tus-js-client → sluice's handler + file store (tus 1.0)${
        sizeNote(tusSize)
      }`,
      server: "resumable",
      bytes: tusSize,
      send: (port) =>
        tusJs(`http://127.0.0.1:${port}/uploads`, data.subarray(0, tusSize)),
    },
  ];

  const results = new Map<string, { rates: number[]; rss: number[] }>(
    cases.map((c) => [c.name, { rates: [], rss: [] }]),
  );
  try {
    for (let rep = 0; rep < reps; rep++) {
      for (const { name, server, send, bytes = size } of cases) {
        const caseDir = await mkdtemp(join(dir, "case-"));
        const started = await startServer(server, caseDir);
        const result = results.get(name)!;
        try {
          const t0 = performance.now();
          await send(started.port);
          const rate = bytes / MiB / ((performance.now() - t0) / 1000);
          result.rates.push(rate);
          result.rss.push(started.peakRss() / MiB);
          log(`${name}: ${rate.toFixed(0)} MiB/s`);
        } finally {
          await started.stop();
          await rm(caseDir, { recursive: true, force: true });
        }
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2
      ? sorted[mid]
      : (sorted[mid - 1] + sorted[mid]) / 2;
  };
  const rate = (name: string) => median(results.get(name)!.rates);
  const runtime = "Bun" in globalThis
    ? `Bun ${process.versions.bun}`
    : `Deno ${process.versions.deno}`;
  const mib = size / MiB;
  const rows = cases.map(({ name, label }) => {
    const { rates, rss } = results.get(name)!;
    return [
      label,
      `${rate(name).toFixed(0)} (${rates.map((r) => r.toFixed(0)).join(", ")})`,
      (rate("resumable") / rate(name)).toFixed(2),
      rss.some((r) => r > 0) ? median(rss).toFixed(0) : "n/a",
    ];
  });
  const table = [
    "| case | MiB/s: median (each repetition) | resumable / this | server peak RSS (MiB) |",
    "| --- | ---: | ---: | ---: |",
    ...rows.map((cells) => `| ${cells.join(" | ")} |`),
  ].join("\n");
  const direct = rate("resumable") / rate("plain");
  const cut = rate("resumable-cut10") / rate("resumable-proxy");
  const targets = [
    {
      target: `Resumable upload ${
        directSize / MiB
      } MiB, ${runtime}: resumableUpload → file store ≥ 0.95 × plain upload() → createFileSink`,
      measured: `${rate("resumable").toFixed(0)} vs ${
        rate("plain").toFixed(0)
      } MiB/s`,
      ratio: direct,
      goal: 0.95,
      met: direct >= 0.95,
      note: direct >= 0.95
        ? ""
        : "the client sends a request (a round trip, a new stream of the body) per 64 MiB, the plain upload one; the file store fsyncs every 16 MiB and after each request (in the background: requests do not wait for it where the boot id is readable), the plain sink once at the end.",
    },
    {
      target:
        `Resumable upload ${mib} MiB through a TCP proxy, ${runtime}: 10 connection drops ≥ 0.8 × none`,
      measured: `${rate("resumable-cut10").toFixed(0)} vs ${
        rate("resumable-proxy").toFixed(0)
      } MiB/s`,
      ratio: cut,
      goal: 0.8,
      met: cut >= 0.8,
      note: cut >= 0.8
        ? ""
        : "each drop costs the client a HEAD and a new connection, and the bytes in flight at the drop (or not yet read by the server when the HEAD ends the cut request) are sent again.",
    },
  ];
  const smaller = [
    ...(directSize < size
      ? [`plain and resumable ${directSize / MiB} MiB`]
      : []),
    ...(tusSize < size ? [`the tus-js-client rows ${tusSize / MiB} MiB`] : []),
  ];
  const title = `Resumable uploads, ${mib} MiB over loopback${
    smaller.length ? ` (${smaller.join(", ")})` : ""
  }, ${runtime}, median of ${reps}`;
  if (json) {
    console.log(JSON.stringify({ title, table, targets }));
    return;
  }
  console.log(`\n${title}\n\n${table}\n`);
  for (const t of targets) {
    console.log(
      `${t.target}: ${t.measured} = ${t.ratio.toFixed(2)} (${
        t.met ? "met" : "missed"
      })`,
    );
  }
  console.log(
    `resumable / tus-js → @tus: ${
      (rate("resumable") / rate("tus-js → @tus")).toFixed(2)
    }`,
  );
}
