// Bundles the example Worker (examples/workers/worker.ts: upload, echo and
// duplex over HTTP and WebSocket, RPC over Connect and gRPC-Web) with
// `deno bundle`, minified, and reports its size minified and minified +
// gzipped (level 9), with one Worker per flow for comparison. Writes
// .tmp/build/worker.min.js and .tmp/runtimes/bundle.json (read by
// scripts/runtime_matrix.ts).
//
//   deno task build:worker

import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import process from "node:process";
import { gzipSync } from "node:zlib";
import { bundle } from "../tests/_workerd.ts";

const ROOT = resolve(import.meta.dirname ?? ".", "..");
const BUILD = join(ROOT, ".tmp", "build");
const OUT = join(ROOT, ".tmp", "runtimes", "bundle.json");

/** One-flow Workers, generated into .tmp/build/entries/. */
const FLOWS: Record<string, string> = {
  upload: `import { createUploadHandler } from "../../../lib/http/mod.ts";
import { createHasher } from "../../../lib/runtime/workers.ts";
export default {
  fetch: (request: Request) =>
    createUploadHandler({ sink: () => new WritableStream(), hasher: createHasher })(request),
};
`,
  "echo + duplex + WebSocket":
    `import { duplexResponse, echo, websocketDuplex } from "../../../lib/http/mod.ts";
import { upgradeWebSocket } from "../../../lib/runtime/websocket.ts";
export default {
  fetch(request: Request) {
    const path = new URL(request.url).pathname;
    if (path === "/echo") return echo(request);
    if (path === "/ws") {
      const { socket, response } = upgradeWebSocket(request);
      const stream = websocketDuplex(socket);
      (async () => {
        for await (const chunk of stream) await stream.write(chunk);
        await stream.close();
      })().catch((error) => stream.close(error));
      return response;
    }
    return duplexResponse(request, async (stream) => {
      for await (const line of stream.lines()) await stream.write(line + "\\n");
    });
  },
};
`,
  "RPC (Connect, gRPC-Web)":
    `import { createRpcHandler, defineService, implementService, Int64Value } from "../../../lib/rpc/mod.ts";
import { reduce, ScanStream } from "../../../lib/streams/mod.ts";
const Calc = defineService("StreamingCalcService", {
  sum: { kind: "client-streaming", input: Int64Value, output: Int64Value },
  incrementalSum: { kind: "bidi", input: Int64Value, output: Int64Value },
});
export default {
  fetch: (request: Request) =>
    createRpcHandler(implementService(Calc, {
      sum: (values) => reduce(values, (a: bigint, b: bigint) => a + b, 0n),
      incrementalSum: () => new ScanStream((a: bigint, b: bigint) => a + b, 0n),
    }))(request),
};
`,
};

interface Size {
  minified: number;
  gzip: number;
}

async function measure(entry: string, output: string): Promise<Size> {
  await bundle(entry, output, { minify: true, cwd: ROOT });
  const code = await readFile(output);
  return {
    minified: code.byteLength,
    gzip: gzipSync(code, { level: 9 }).byteLength,
  };
}

const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

await mkdir(join(BUILD, "entries"), { recursive: true });
const worker = await measure(
  join(ROOT, "examples", "workers", "worker.ts"),
  join(BUILD, "worker.min.js"),
);
const flows: Record<string, Size> = {};
let i = 0;
for (const [name, source] of Object.entries(FLOWS)) {
  const entry = join(BUILD, "entries", `flow_${i}.ts`);
  await writeFile(entry, source);
  flows[name] = await measure(entry, join(BUILD, "entries", `flow_${i}.js`));
  i++;
}
await rm(join(BUILD, "entries"), { recursive: true, force: true });

const deno = (process.versions as Record<string, string | undefined>).deno;
const report = {
  bundler: `\`deno bundle --minify\` (Deno ${deno ?? "?"}), then gzip level 9`,
  worker,
  flows,
};
await mkdir(join(ROOT, ".tmp", "runtimes"), { recursive: true });
await writeFile(OUT, JSON.stringify(report, null, 2) + "\n");

console.log(`${report.bundler.replaceAll("`", "")}:`);
console.log(
  `  examples/workers/worker.ts (all three flows): ${
    kib(worker.minified)
  } minified, ${kib(worker.gzip)} gzipped`,
);
for (const [name, size] of Object.entries(flows)) {
  console.log(
    `  ${name} alone: ${kib(size.minified)} minified, ${
      kib(size.gzip)
    } gzipped`,
  );
}
