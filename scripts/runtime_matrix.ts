// Renders the README's runtime matrix (between `<!-- section:runtimes -->`
// and `<!-- /section:runtimes -->`) from what the test task recorded in
// .tmp/runtimes/: the `deno test` and `bun test` logs (deno.log, bun.log),
// the Node client script's results (node.json) and the Worker bundle size
// (bundle.json). Nothing in the matrix is typed by hand: a cell is what the
// last run measured, or "not run".
//
//   deno task matrix            (the last step of `deno task test`)
//   deno task matrix --check    (fails if the README differs from the logs)

import { readFile, writeFile } from "node:fs/promises";
import { spawnSync } from "node:child_process";
import { join, resolve } from "node:path";
import process from "node:process";
import { WORKERD_VERSION } from "../tests/_workerd.ts";

const ROOT = resolve(import.meta.dirname ?? ".", "..");
const RUNS = join(ROOT, ".tmp", "runtimes");
const README = join(ROOT, "README.md");
const BEGIN = "<!-- section:runtimes -->";
const END = "<!-- /section:runtimes -->";

type Status = "pass" | "fail" | "skip";

/** One test result from a runner's log. */
export interface TestResult {
  /** The test file's name, such as `upload.test.ts`. */
  file: string;
  /** Describe blocks, then the test name. */
  path: string[];
  status: Status;
}

/**
 * Reads `deno test` output: per file, nested `name ... ok|FAILED|ignored`
 * lines, indented two spaces per level. A line is a test (not a group) when
 * no deeper result came right before it.
 */
export function parseDenoLog(log: string): TestResult[] {
  const results: TestResult[] = [];
  let file = "";
  let inOutput = false;
  const open: string[] = [];
  let lastDepth = -1;
  for (const line of log.split("\n")) {
    if (/^-+ (post-test )?output -+$/.test(line)) {
      inOutput = true;
      continue;
    }
    if (/^-+ (post-test )?output end -+$/.test(line)) {
      inOutput = false;
      continue;
    }
    if (inOutput) continue;
    const header = /^running \d+ tests? from \.\/(?:.*\/)?([^/]+)$/.exec(line);
    if (header) {
      file = header[1];
      lastDepth = -1;
      continue;
    }
    if (!file) continue;
    const opening = /^( *)(.+) \.\.\.$/.exec(line);
    if (opening) {
      open[opening[1].length / 2] = opening[2];
      continue;
    }
    const result = /^( *)(.+?) \.\.\. (ok|FAILED|ignored)\b.*$/.exec(line);
    if (!result) continue;
    const depth = result[1].length / 2;
    const isGroup = lastDepth > depth;
    lastDepth = depth;
    if (isGroup) continue;
    results.push({
      file,
      path: [...open.slice(0, depth), result[2]],
      status: result[3] === "ok"
        ? "pass"
        : result[3] === "ignored"
        ? "skip"
        : "fail",
    });
  }
  return results;
}

/**
 * Reads `bun test` output: per `file.test.ts:` header, `(pass|fail|skip)
 * group > name [time]` lines, until the closing summary repeats some.
 */
export function parseBunLog(log: string): TestResult[] {
  const results: TestResult[] = [];
  let file = "";
  for (const line of log.split("\n")) {
    const header = /^(?:.*\/)?([^/\s]+\.test\.[jt]s):$/.exec(line);
    if (header) {
      file = header[1];
      continue;
    }
    if (/^\d+ tests? (skipped|failed|todo):$/.test(line.trim())) break;
    if (!file) continue;
    const result = /^\((pass|fail|skip|todo)\) (.+?)(?: \[[\d.]+m?s\])?$/
      .exec(line);
    if (!result) continue;
    results.push({
      file,
      path: result[2].split(" > "),
      status: result[1] === "pass"
        ? "pass"
        : result[1] === "fail"
        ? "fail"
        : "skip",
    });
  }
  return results;
}

/** A Node client check, from tests/node/clients.ts. */
interface NodeResult {
  flow: string;
  server: string;
  name: string;
  ok: boolean;
  polyfilled: boolean;
  divergence?: string;
  skipped?: string;
  error?: string;
}

interface Row {
  flow: string;
  /** Test files for the Deno and Bun columns. */
  files: string[];
  /** Describe blocks of tests/workerd.test.ts (prefix match). */
  workerd?: string[];
  /** Flows of the Node client script. */
  node?: string[];
  /** Said in the workerd cell after the counts. */
  workerdNote?: string;
  /** Said in the workerd cell when nothing runs there. */
  workerdNone?: string;
}

const ROWS: Row[] = [
  {
    flow:
      "Upload (seed 000): `upload`, `createReceiver`, `receiveBody`, `forwardResponse`",
    files: ["upload.test.ts", "upload_file.test.ts", "faults_upload.test.ts"],
    workerd: ["upload"],
    node: ["upload"],
    workerdNote: "hashing sink; no file system",
  },
  {
    flow:
      "Echo and full duplex over HTTP/1.1: `echo`, `duplexResponse`, `openDuplex`, `DuplexStream`",
    files: [
      "echo.test.ts",
      "duplex_http.test.ts",
      "duplex_stream.test.ts",
      "faults_duplex.test.ts",
    ],
    workerd: ["echo and duplex"],
    node: ["duplex-http"],
  },
  {
    flow: "Duplex over WebSocket: `websocketDuplex`, `upgradeWebSocket`",
    files: ["websocket.test.ts"],
    workerd: ["WebSocket"],
    node: ["websocket"],
    workerdNote: "`WebSocketPair`",
  },
  {
    flow: "RPC (seed 002): Connect, gRPC-Web, native gRPC",
    files: [
      "rpc_calls.test.ts",
      "rpc_interop.test.ts",
      "rpc_wire.test.ts",
      "faults_rpc.test.ts",
      "fuzz_rpc.test.ts",
    ],
    workerd: ["RPC"],
    node: ["rpc-web", "rpc-grpc"],
    workerdNote: "Connect and gRPC-Web; native gRPC needs trailers (415)",
  },
  {
    flow:
      "Building blocks: stream operators, fuzzed HTTP parsers, core purity and layering",
    files: ["operators.test.ts", "fuzz_http.test.ts", "check_layers.test.ts"],
    workerdNone: "in the bundle, through the flows above",
  },
  {
    flow: "Examples (`deno run` / `bun run`): `examples/*.ts`",
    files: ["examples.test.ts"],
    workerdNone: "`examples/workers/` is the Worker above",
  },
];

interface Counts {
  pass: number;
  fail: number;
  skip: number;
}

function count(results: TestResult[]): Counts {
  const c = { pass: 0, fail: 0, skip: 0 };
  for (const r of results) c[r.status]++;
  return c;
}

function cell(c: Counts | undefined, note = ""): string {
  if (!c || c.pass + c.fail + c.skip === 0) return "not run";
  const total = c.pass + c.fail;
  let text = c.fail === 0 ? `✓ ${c.pass}` : `✗ ${c.fail} of ${total} failed`;
  if (c.skip > 0) text += ` (${c.skip} skipped)`;
  return note ? `${text}; ${note}` : text;
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch {
    return undefined;
  }
}

function nodeCell(results: NodeResult[] | undefined, flows: string[]): string {
  if (!results) return "not run";
  const mine = results.filter((r) => flows.includes(r.flow));
  if (mine.length === 0) return "—";
  const plain = mine.filter((r) => !r.polyfilled);
  const servers = [...new Set(plain.map((r) => r.server))];
  const passed = plain.filter((r) => r.ok).length;
  const diverged = plain.filter((r) => r.divergence);
  const failed = plain.filter((r) => !r.ok && !r.divergence && !r.skipped);
  if (failed.length > 0) {
    return `✗ ${failed.length} of ${plain.length} failed`;
  }
  if (diverged.length > 0) {
    const poly = mine.filter((r) => r.polyfilled);
    const polyPassed = poly.filter((r) => r.ok).length;
    return `✗ needs \`Promise.withResolvers\` (Node 22+); ✓ ${polyPassed} of ${poly.length} with a polyfill`;
  }
  const skipped = plain.filter((r) => r.skipped).length;
  return `✓ ${passed} vs ${servers.join(", ")}${
    skipped ? ` (${skipped} skipped)` : ""
  }`;
}

interface BundleReport {
  bundler: string;
  worker: { minified: number; gzip: number };
  flows: Record<string, { minified: number; gzip: number }>;
}

const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

/** Renders the section (without its markers). */
export function render(input: {
  deno?: TestResult[];
  bun?: TestResult[];
  node?: { node: string; results: NodeResult[] };
  bundle?: BundleReport;
  versions: { deno?: string; bun?: string; workerd: string };
}): string {
  const { deno, bun, node, bundle, versions } = input;
  const byFiles = (results: TestResult[] | undefined, files: string[]) =>
    results ? count(results.filter((r) => files.includes(r.file))) : undefined;
  const inWorkerd = (results: TestResult[] | undefined, groups: string[]) =>
    results?.filter((r) =>
      r.file === "workerd.test.ts" &&
      groups.some((g) => (r.path[1] ?? "").startsWith(g))
    ) ?? [];

  const out: string[] = [];
  out.push("## Runtimes");
  out.push("");
  out.push(
    "Measured, not claimed: `deno task test` runs every flow under Deno and Bun, serves the example Worker in workerd, and drives all of them from a Node client; `scripts/runtime_matrix.ts` then writes this section from what the runners reported (`.tmp/runtimes/`). A number is how many tests passed in that run.",
  );
  out.push("");
  out.push(
    `Versions: Deno ${versions.deno ?? "?"}, Bun ${
      versions.bun ?? "not run"
    }, workerd ${versions.workerd} (npm \`workerd\`), Node ${
      node?.node ?? "not run"
    }.`,
  );
  out.push("");
  out.push(
    "| flow | Deno (`deno test`) | Bun (`bun test`) | workerd (Deno and Bun clients) | Node client (Node's fetch) | browser |",
  );
  out.push("| --- | --- | --- | --- | --- | --- |");
  for (const row of ROWS) {
    const workerdResults = row.workerd
      ? [...inWorkerd(deno, row.workerd), ...inWorkerd(bun, row.workerd)]
      : [];
    const workerdCell = row.workerd
      ? (deno || bun) ? cell(count(workerdResults), row.workerdNote) : "not run"
      : `— (${row.workerdNone})`;
    out.push(
      `| ${row.flow} | ${cell(byFiles(deno, row.files))} | ${
        cell(byFiles(bun, row.files))
      } | ${workerdCell} | ${
        row.node ? nodeCell(node?.results, row.node) : "—"
      } | not run here |`,
    );
  }
  const known = new Set([
    ...ROWS.flatMap((r) => r.files),
    "workerd.test.ts",
  ]);
  const others = [...(deno ?? []), ...(bun ?? [])].filter((r) =>
    !known.has(r.file)
  );
  if (others.length > 0) {
    const files = [...new Set(others.map((r) => r.file))].sort();
    out.push(
      `| Other tests (${files.map((f) => `\`${f}\``).join(", ")}) | ${
        cell(deno ? count(others.filter((r) => deno.includes(r))) : undefined)
      } | ${
        cell(bun ? count(others.filter((r) => bun.includes(r))) : undefined)
      } | — | — | not run here |`,
    );
  }
  out.push("");
  out.push(
    "The workerd cells count the tests of `tests/workerd.test.ts` run by both `deno test` and `bun test` (each starts its own workerd). The Node column is `tests/node/clients.ts`, bundled and run by Node against the Worker served by `Deno.serve`, `Bun.serve` and workerd, and native gRPC against `serveHttp2` under Deno and Bun.",
  );

  const skipped = [
    ...(deno ?? []).filter((r) => r.status === "skip").map((r) => ({
      ...r,
      runner: "Deno",
    })),
    ...(bun ?? []).filter((r) => r.status === "skip").map((r) => ({
      ...r,
      runner: "Bun",
    })),
  ];
  if (skipped.length > 0) {
    out.push("");
    out.push("Skipped in this run:");
    out.push("");
    for (const r of skipped) {
      out.push(`- ${r.runner}: ${r.path.join(" › ")} (\`${r.file}\`)`);
    }
  }

  out.push("");
  out.push("### Known divergences");
  out.push("");
  const nodeDivergence = node?.results.find((r) => r.divergence)?.divergence;
  const divergences = [
    "**Native gRPC needs HTTP trailers**, which no fetch-style server sends (`Deno.serve`, `Bun.serve`, workerd). It is served with `node:http2` (`serveHttp2`, under Deno, Bun and Node); in Workers only Connect and gRPC-Web run, and `createRpcHandler` answers native gRPC with 415 and a hint (tested in workerd).",
    "**Workers have no file system**: the Worker streams uploads into a `WritableStream` (a counting sink here; an R2 writer in production) and hashes them with `createSha256` from `@sluice/streams/workers`, which is `node:crypto` under the `nodejs_compat` flag. Web Crypto has no incremental digest, and `crypto.DigestStream` resolves its digest asynchronously, so neither fits `Hasher`.",
    "**Cloudflare's edge compresses, and so buffers, compressible responses** (text/*, JSON, `application/x-protobuf`, or no content type) when the client accepts gzip or brotli; miniflare and `wrangler dev` emulate it. Every streamed response of the Worker is `application/octet-stream`, `application/connect+proto|json` or `application/grpc-web+proto|json`, none of which is on Cloudflare's list; the workerd tests check the types against that list (raw workerd never compresses, so the edge itself is not exercised here).",
    nodeDivergence
      ? `**${nodeDivergence}** (measured in this run): those checks fail at their first call with \`TypeError: Promise.withResolvers is not a function\`, while \`upload\` and \`openDuplex\` work. Run again with a polyfill installed, every one of them passes, so nothing else is missing. Use Node 22 or later, or install a polyfill, until the library stops using it.`
      : "",
    "**Node 20's `WebSocket` client** exists only behind `--experimental-websocket` (the Node script runs with it); Deno and Bun have it by default.",
    "**Deno's fetch sends a stream body chunked** even when `upload` is given `contentLength`; Bun's and Node's fetch send the `Content-Length` (the Node client checks it: a stream declared over the limit is refused with 413 from its header alone).",
    "**h2c**: only Deno's fetch can speak HTTP/2 without TLS (`Deno.createHttpClient`), so the h2c tests run under Deno and are skipped under Bun; Bun's and Node's fetch are HTTP/1.1. Full duplex works over HTTP/1.1 with every client and server here.",
    "**Compression**: `CompressionStream` has gzip and deflate everywhere; brotli only in Deno and Bun, zstd only in Bun, neither in workerd nor Node 20. The library uses gzip and deflate only.",
    "**Bun delivers WebSocket events to `Bun.serve`'s `websocket` handlers**, so `upgradeWebSocket` works under Bun only for handlers served with `serve` from `@sluice/streams/serve`; Deno uses `Deno.upgradeWebSocket`, Workers `WebSocketPair`.",
    "**A refusal before the body is read** (413 for a declared `Content-Length` over the limit): workerd answers and closes the connection, so a client still sending a large body may see the connection fail instead of the 413 (Deno's fetch reported `Broken pipe` for an 8 MiB body). The workerd tests send raw HTTP/1.1 to check the 413 itself.",
    "**workerd keeps running on SIGTERM while it serves a WebSocket**; the tests stop it with SIGKILL, by its process id.",
    "**Browsers are not run by this task**: it would need Chromium from Debian (`apt-get install -y chromium`, root) and `playwright-core`, which a fresh machine with only Node and npm does not have. Measured separately with Chromium 156 (see `../shared/RUNTIMES.md`), not in this run: a streaming upload (`body: ReadableStream`) over HTTP/1.1 fails with `ERR_ALPN_NEGOTIATION_FAILED`; over h2 it streams but only half duplex (the response is seen after the request ends), so full duplex in a browser needs the WebSocket; the Connect and gRPC-Web clients' streaming calls need the same.",
  ].filter(Boolean);
  for (const d of divergences) out.push(`- ${d}`);

  out.push("");
  out.push("### Workers bundle size");
  out.push("");
  if (bundle) {
    out.push(
      `\`deno task build:worker\` bundles each Worker with ${bundle.bundler}:`,
    );
    out.push("");
    out.push("| bundle | minified | minified + gzip |");
    out.push("| --- | --- | --- |");
    out.push(
      `| \`examples/workers/worker.ts\`: all three flows | ${
        kib(bundle.worker.minified)
      } | ${kib(bundle.worker.gzip)} |`,
    );
    for (const [name, size] of Object.entries(bundle.flows)) {
      out.push(
        `| ${name} alone | ${kib(size.minified)} | ${kib(size.gzip)} |`,
      );
    }
  } else {
    out.push("Not measured in this run (`deno task build:worker`).");
  }
  out.push("");
  out.push(
    "The core (`lib/streams`, `lib/http`, `lib/rpc`) imports no `node:` module and never touches `Deno`, `Bun`, `process` or `Buffer`, and no file under `lib/` imports from a later layer (streams ← http ← rpc ← runtime): `deno task check:layers`, a step of the test task, fails otherwise.",
  );

  out.push("");
  out.push("### How workerd runs in the tests");
  out.push("");
  out.push(
    `\`tests/_workerd.ts\` installs \`workerd@${versions.workerd}\` from npm into \`.tools/\` on first use, bundles \`examples/workers/worker.ts\` with \`deno bundle\`, writes a Cap'n Proto config into a temporary directory under \`.tmp/\` (the compatibility date and flags come from \`examples/workers/wrangler.toml\`; \`MAX_UPLOAD_BYTES\` is a text binding, \`SELF\` a service binding to the Worker itself), and starts \`workerd serve config.capnp --control-fd=1\` with the socket on \`127.0.0.1:0\`: workerd reports the port it bound as \`{"event":"listen",...}\`. The tests then use plain \`fetch\` and \`WebSocket\`.`,
  );
  out.push("");
  out.push(
    "**Why `deno bundle`** (Deno 2.9.6's bundler, esbuild inside) rather than esbuild from npm: it resolves modules exactly as `deno check` and `deno test` do (the same `deno.json`, `.ts` extensions, `npm:` specifiers), needs no second pinned tool — it comes with the pinned Deno — and leaves `node:` imports for the runtime (`nodejs_compat`). On first use it downloads its esbuild binary from the npm registry, the one registry these machines reach. `wrangler` bundles the same entry with its own esbuild when deploying.",
  );

  out.push("");
  out.push("### Deploying to Cloudflare Workers");
  out.push("");
  out.push(
    "[`examples/workers/worker.ts`](examples/workers/worker.ts) serves every flow: `POST /upload` (size limit from `MAX_UPLOAD_BYTES`, `Content-Digest` check, `Repr-Digest` answer), `POST /forward` (the seed's `/stream/fileupload`, through the `SELF` service binding), `POST /echo`, `POST /duplex` (line by line), `GET /ws` (WebSocket echo) and `POST /StreamingCalcService/sum|incrementalSum` (Connect, gRPC-Web). Deploying is not tested here.",
  );
  out.push("");
  out.push("```sh");
  out.push("cd examples/workers");
  out.push("npx wrangler login          # once");
  out.push("npx wrangler dev            # local, on miniflare");
  out.push(
    "npx wrangler deploy         # to https://sluice-streams.<account>.workers.dev",
  );
  out.push("```");
  out.push("");
  out.push(
    "[`wrangler.toml`](examples/workers/wrangler.toml) sets the compatibility date, `nodejs_compat` (for `node:crypto`), `MAX_UPLOAD_BYTES` and the `SELF` binding (rename `service` along with `name`). To keep uploads, replace the counting sink with R2: the writable side of a `FixedLengthStream(contentLength)` whose readable side goes to `env.BUCKET.put(key, readable)` (R2 wants the length up front), or a multipart upload for chunked bodies. Keep streamed responses on non-compressible content types, as the Worker does, or the edge buffers them. Then, for example:",
  );
  out.push("");
  out.push("```sh");
  out.push(
    "curl -T file.bin -H 'content-type: application/octet-stream' https://sluice-streams.<account>.workers.dev/upload   # up to MAX_UPLOAD_BYTES",
  );
  out.push(
    "# against `wrangler dev` (http://127.0.0.1:8787): the seed 002 client, over Connect or gRPC-Web",
  );
  out.push(
    "deno run --allow-net=127.0.0.1 examples/streaming_calc.ts client --port 8787 --protocol grpc-web",
  );
  out.push("```");
  return out.join("\n");
}

if (import.meta.main) {
  const denoLog = await readOptional(join(RUNS, "deno.log"));
  const bunLog = await readOptional(join(RUNS, "bun.log"));
  const nodeJson = await readOptional(join(RUNS, "node.json"));
  const bundleJson = await readOptional(join(RUNS, "bundle.json"));
  const bunVersion = await readOptional(join(RUNS, "bun.version"));
  const section = render({
    deno: denoLog ? parseDenoLog(denoLog) : undefined,
    bun: bunLog ? parseBunLog(bunLog) : undefined,
    node: nodeJson ? JSON.parse(nodeJson) : undefined,
    bundle: bundleJson ? JSON.parse(bundleJson) : undefined,
    versions: {
      deno: (process.versions as Record<string, string | undefined>).deno,
      bun: bunVersion?.trim(),
      workerd: WORKERD_VERSION,
    },
  });
  const readme = await readFile(README, "utf8");
  const begin = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (begin === -1 || end === -1 || end < begin) {
    console.error(`Cannot find ${BEGIN} ... ${END} in README.md`);
    process.exit(1);
  }
  // Formatted as `deno fmt` formats the README.
  const fmt = spawnSync(process.execPath, ["fmt", "--ext=md", "-"], {
    input: section + "\n",
    encoding: "utf8",
  });
  if (fmt.status !== 0) {
    console.error(`Cannot format the section: ${fmt.stderr}`);
    process.exit(1);
  }
  const formatted = fmt.stdout.trimEnd();
  await writeFile(join(RUNS, "matrix.md"), formatted + "\n");
  const updated = readme.slice(0, begin + BEGIN.length) + "\n\n" +
    formatted + "\n\n" + readme.slice(end);
  if (process.argv.includes("--check")) {
    if (updated !== readme) {
      console.error("README.md's runtime matrix differs from .tmp/runtimes/");
      process.exit(1);
    }
    console.log("README.md's runtime matrix matches .tmp/runtimes/");
  } else if (updated !== readme) {
    await writeFile(README, updated);
    console.log("README.md: runtime matrix updated from .tmp/runtimes/");
  } else {
    console.log("README.md: runtime matrix unchanged");
  }
}
