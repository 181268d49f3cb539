// Renders the runtime matrix from what the test task recorded in
// .tmp/runtimes/: the `deno test` and `bun test` logs (deno.log, bun.log),
// the Node client script's results (node.json), the browser client's
// results when a browser ran (chromium.json, same shape as node.json) and
// the Worker bundle size (bundle.json). Nothing in the matrix is typed by
// hand: a cell is what the last run measured, or "not run".
//
//   deno task matrix         (a step of `deno task test`): writes
//                            .tmp/runtimes/matrix.md and prints it; never
//                            touches a tracked file
//   deno task matrix:docs    also copies it into docs/runtime-matrix.md,
//                            when a developer wants to publish a run

import { readFile, writeFile } from "node:fs/promises";
import { spawnSync } from "node:child_process";
import { join, resolve } from "node:path";
import process from "node:process";
import { WORKERD_VERSION } from "../tests/_workerd.ts";

const ROOT = resolve(import.meta.dirname ?? ".", "..");
const RUNS = join(ROOT, ".tmp", "runtimes");
const DOCS = join(ROOT, "docs", "runtime-matrix.md");

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
      "Upload (Ballerina's HTTP streaming example): `upload`, `uploadFile`, `createUploadHandler`, `receiveBody`, `forwardResponse`",
    files: [
      "upload.test.ts",
      "upload_file.test.ts",
      "upload_handler.test.ts",
      "http_failures.test.ts",
      "receive_body_stalled_sink.test.ts",
      "http_cors.test.ts",
      "faults_upload.test.ts",
      "safe_file_name.test.ts",
      "sweep_temporary_files.test.ts",
      "client_fetch_failures.test.ts",
      "workers_upload_cut.test.ts",
      "request_like.test.ts",
      "browser_no_request_streams.test.ts",
      "abort_reason.test.ts",
    ],
    workerd: ["upload"],
    node: ["upload"],
    workerdNote: "hashing sink; no file system",
  },
  {
    flow:
      "Echo and full duplex over HTTP/1.1 (Ruby async-http's streaming guide): `createEchoHandler`, `duplexResponse`, `openDuplex`, `DuplexStream`",
    files: [
      "echo.test.ts",
      "duplex_http.test.ts",
      "duplex_stream.test.ts",
      "faults_duplex.test.ts",
      "workerd_compression.test.ts",
      "client_gone.test.ts",
      "echo_client_gone.test.ts",
      "fetch_duplex_network_error.test.ts",
      "quote_body.test.ts",
    ],
    workerd: ["echo and duplex"],
    node: ["duplex-http"],
  },
  {
    flow: "Duplex over WebSocket: `websocketDuplex`, `upgradeWebSocket`",
    files: [
      "websocket.test.ts",
      "websocket_upgrade_refused.test.ts",
      "websocket_reset_before_open.test.ts",
      "websocket_close_bound.test.ts",
      "websocket_connecting_abort.test.ts",
      "websocket_copied_request.test.ts",
      "websocket_subprotocol_bun.test.ts",
      "serve_websocket_shutdown.test.ts",
    ],
    workerd: ["WebSocket"],
    node: ["websocket"],
    workerdNote: "`WebSocketPair`",
  },
  {
    flow:
      "RPC (Ballerina's gRPC streaming guide): Connect, gRPC-Web, native gRPC",
    files: [
      "rpc_calls.test.ts",
      "rpc_interop.test.ts",
      "rpc_wire.test.ts",
      "rpc_burst.test.ts",
      "node_streams.test.ts",
      "push_source.test.ts",
      "faults_rpc.test.ts",
      "fuzz_rpc.test.ts",
      "rpc_bomb.test.ts",
      "rpc_get.test.ts",
      "rpc_get_metadata.test.ts",
      "rpc_options.test.ts",
      "rpc_on_error.test.ts",
      "rpc_busy_streams.test.ts",
      "rpc_protocol.test.ts",
      "rpc_regressions.test.ts",
      "rpc_websocket.test.ts",
      "rpc_websocket_workerd.test.ts",
      "workerd_busy_streams.test.ts",
      "ws_serve_call_options.test.ts",
      "interop.test.ts",
      "rpc_direct.test.ts",
      "rpc_flush.test.ts",
      "rpc_handler_client.test.ts",
      "rpc_cors.test.ts",
      "rpc_grpc_web_text.test.ts",
      "rpc_client_api.test.ts",
      "rpc_conformance.test.ts",
      "rpc_slow_request.test.ts",
      "rpc_client_deadlines.test.ts",
      "http2_client_close.test.ts",
      "rpc_native_to_fetch.test.ts",
      "refuse_native_grpc_universal.test.ts",
      "health.test.ts",
      "rpc_client_redirects.test.ts",
    ],
    workerd: ["RPC"],
    node: ["rpc-web", "rpc-grpc"],
    workerdNote:
      "Connect and gRPC-Web; native gRPC needs trailers (UNIMPLEMENTED)",
  },
  {
    flow:
      "Building blocks: stream operators, fuzzed HTTP parsers, core purity and layering",
    files: [
      "operators.test.ts",
      "stream_from.test.ts",
      "byte_limit_stream.test.ts",
      "map_stream.test.ts",
      "progress_stream.test.ts",
      "read_ahead_stream.test.ts",
      "reduce.test.ts",
      "scan_stream.test.ts",
      "idle_timeout.test.ts",
      "pump_bytes.test.ts",
      "fuzz_http.test.ts",
      "handler_types.test.ts",
      "http_arguments.test.ts",
      "error_queries.test.ts",
      "runtime_arguments.test.ts",
      "option_values.test.ts",
      "check_layers.test.ts",
      "webkit_streams.test.ts",
    ],
    workerdNone: "in the bundle, through the flows above",
  },
  {
    flow:
      "RPC from protobuf-es generated code (`@sluice/streams/protobuf`): codecs, fuzzing, interop",
    files: [
      "protobuf.test.ts",
      "protobuf_gen.test.ts",
      "protobuf_interop.test.ts",
      "fuzz_protobuf.test.ts",
      "protobuf_floor.test.ts",
      "reflection.test.ts",
    ],
    workerdNone: "the RPC row's Worker uses the hand-written descriptors",
  },
  {
    flow:
      "HTML form uploads and object storage: `parseMultipart`, `MultipartStream`, `encodeMultipart`, `createR2Sink`, names past ASCII",
    files: [
      "multipart.test.ts",
      "multipart_encoder.test.ts",
      "multipart_interop.test.ts",
      "unicode_names.test.ts",
      "upload_handler_multipart.test.ts",
      "multipart_legacy_names.test.ts",
      "multipart_field_charset.test.ts",
      "multipart_transfer_encoding.test.ts",
      "r2_sink.test.ts",
      "r2_sink_workerd.test.ts",
    ],
    workerdNone: "R2 through miniflare, counted in the Deno and Bun columns",
  },
  {
    flow:
      "Resumable uploads (IETF draft, tus 1.0): `createResumableUploadHandler`, `resumableUpload`, file and Workers stores",
    files: [
      "resumable_client.test.ts",
      "resumable_handler.test.ts",
      "resumable_failures.test.ts",
      "resumable_interop.test.ts",
      "resumable_kill.test.ts",
      "resumable_workers.test.ts",
      "resumable_workers_instances.test.ts",
      "resumable_workers_parts.test.ts",
      "resumable_drafts.test.ts",
      "resumable_client_drafts.test.ts",
      "resumable_client_redirects.test.ts",
    ],
    node: ["resumable"],
    workerdNone:
      "Durable Objects + R2 through miniflare, counted in the Deno and Bun columns",
  },
  {
    flow:
      "Server-Sent Events, serving, routers and proxies: `createSseHandler`, `serve` (HTTPS too), `serveHttp2` limits, Hono and frameworks' body limits, `X-Accel-Buffering`, URLs and Host headers",
    files: [
      "sse.test.ts",
      "sse_failures.test.ts",
      "serve.test.ts",
      "faults_serve.test.ts",
      "faults_http2.test.ts",
      "router_hono.test.ts",
      "serve_tls.test.ts",
      "serve_http2_tls.test.ts",
      "serve_http2_churn.test.ts",
      "serve_http2_session_bound.test.ts",
      "serve_completed.test.ts",
      "framework_body_limits.test.ts",
      "proxy_buffering.test.ts",
      "urls_hosts.test.ts",
      "sse_head.test.ts",
      "prefix_values.test.ts",
    ],
    workerdNone: "SSE through workerd is in the Deno and Bun columns",
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
  const servers = [...new Set(plain.map((r) => r.server))].filter(Boolean);
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
  // The browser's results name no server.
  const against = servers.length > 0 ? ` vs ${servers.join(", ")}` : "";
  return `✓ ${passed}${against}${skipped ? ` (${skipped} skipped)` : ""}`;
}

interface BundleReport {
  bundler: string;
  worker: { minified: number; gzip: number };
  flows: Record<string, { minified: number; gzip: number }>;
}

const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

/** What a client script (Node, a browser) reported. */
interface ClientReport {
  results: NodeResult[];
}

/**
 * Renders docs/runtime-matrix.md: the versions, the matrix, what was
 * skipped, and the Workers bundle size. The hand-written notes on each
 * runtime live in docs/runtimes.md.
 */
export function render(input: {
  deno?: TestResult[];
  bun?: TestResult[];
  node?: ClientReport & { node: string };
  chromium?: ClientReport & { chromium: string };
  bundle?: BundleReport;
  versions: { deno?: string; bun?: string; workerd: string };
}): string {
  const { deno, bun, node, chromium, bundle, versions } = input;
  const byFiles = (results: TestResult[] | undefined, files: string[]) =>
    results ? count(results.filter((r) => files.includes(r.file))) : undefined;
  const inWorkerd = (results: TestResult[] | undefined, groups: string[]) =>
    results?.filter((r) =>
      r.file === "workerd.test.ts" &&
      groups.some((g) => (r.path[1] ?? "").startsWith(g))
    ) ?? [];
  const browserCell = (flows: string[] | undefined) =>
    !flows
      ? "—"
      : chromium
      ? nodeCell(chromium.results, flows)
      : "not yet in the test task";

  const out: string[] = [];
  out.push(
    "<!-- Generated by `deno task matrix:docs` (scripts/runtime_matrix.ts) from the logs of a `deno task test` run. Do not edit by hand. -->",
  );
  out.push("");
  out.push("# Runtime matrix");
  out.push("");
  out.push(
    "What one run of `deno task test` measured: every flow under Deno and Bun, the example Worker served by workerd, and a Node client against all of them. A number is how many tests passed in that run. The test task writes this table to `.tmp/runtimes/matrix.md`; `deno task matrix:docs` copies it here. Notes on each runtime: [runtimes.md](runtimes.md).",
  );
  out.push("");
  out.push(
    `Versions: Deno ${versions.deno ?? "?"}, Bun ${
      versions.bun ?? "not run"
    }, workerd ${versions.workerd} (npm \`workerd\`), Node ${
      node?.node ?? "not run"
    }${chromium ? `, Chromium ${chromium.chromium}` : ""}.`,
  );
  out.push("");
  out.push(
    "| flow | Deno (`deno test`) | Bun (`bun test`) | workerd (Deno and Bun clients) | Node client (Node's fetch) | Chromium |",
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
      } | ${browserCell(row.node)} |`,
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
      } | — | — | — |`,
    );
  }
  out.push("");
  out.push(
    "The workerd cells count the tests of `tests/workerd.test.ts` run by both `deno test` and `bun test` (each starts its own workerd). The Node column is `tests/node/clients.ts`, bundled and run by Node against the Worker served by `Deno.serve`, `Bun.serve` and workerd, and native gRPC against `serveHttp2` under Deno and Bun.",
  );
  if (!chromium) {
    out.push("");
    out.push(
      "Chromium is being added to the test task; until then its column is empty. What was measured by hand is in [runtimes.md](runtimes.md#browsers).",
    );
  }

  const nodeDivergence = node?.results.find((r) => r.divergence)?.divergence;
  if (nodeDivergence) {
    out.push("");
    out.push(
      `**${nodeDivergence}** (measured in this run): those checks fail at their first call with \`TypeError: Promise.withResolvers is not a function\`, while \`upload\` and \`openDuplex\` work. Run again with a polyfill installed, every one of them passes, so nothing else is missing. Use Node 22 or later, or install a polyfill.`,
    );
  }

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
  out.push("## Workers bundle size");
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
  return out.join("\n");
}

/** A died run's log up to the file it died in: the files it finished. */
export function finishedPart(log: string): string {
  const lines = log.split("\n");
  let last = lines.length;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (/^running \d+ tests? from /.test(lines[i])) {
      last = i;
      break;
    }
  }
  return lines.slice(0, last).join("\n") + "\n";
}

if (import.meta.main) {
  // A run that died (Deno's node:http2 abort) ran its unfinished files
  // again: the files it had finished are in the first run's log.
  const died = await readOptional(join(RUNS, "deno.log.died"));
  const lastLog = await readOptional(join(RUNS, "deno.log"));
  const denoLog = died && lastLog && !lastLog.startsWith(died)
    ? finishedPart(died) + lastLog
    : lastLog;
  const bunLog = await readOptional(join(RUNS, "bun.log"));
  const nodeJson = await readOptional(join(RUNS, "node.json"));
  const chromiumJson = await readOptional(join(RUNS, "chromium.json"));
  const bundleJson = await readOptional(join(RUNS, "bundle.json"));
  const bunVersion = await readOptional(join(RUNS, "bun.version"));
  if (!denoLog && !bunLog) {
    console.error(
      "Cannot render the runtime matrix: .tmp/runtimes/ has no deno.log or bun.log (run `deno task test` first)",
    );
    process.exit(1);
  }
  const matrix = render({
    deno: denoLog ? parseDenoLog(denoLog) : undefined,
    bun: bunLog ? parseBunLog(bunLog) : undefined,
    node: nodeJson ? JSON.parse(nodeJson) : undefined,
    chromium: chromiumJson ? JSON.parse(chromiumJson) : undefined,
    bundle: bundleJson ? JSON.parse(bundleJson) : undefined,
    versions: {
      deno: (process.versions as Record<string, string | undefined>).deno,
      bun: bunVersion?.trim(),
      workerd: WORKERD_VERSION,
    },
  });
  // Formatted as `deno fmt` formats docs/.
  const fmt = spawnSync(process.execPath, ["fmt", "--ext=md", "-"], {
    input: matrix + "\n",
    encoding: "utf8",
  });
  if (fmt.status !== 0) {
    console.error(`Cannot format the runtime matrix: ${fmt.stderr}`);
    process.exit(1);
  }
  const formatted = fmt.stdout;
  await writeFile(join(RUNS, "matrix.md"), formatted);
  console.log(formatted);
  if (process.argv.includes("--docs")) {
    await writeFile(DOCS, formatted);
    console.log("Wrote docs/runtime-matrix.md from .tmp/runtimes/");
  } else {
    console.log(
      "Wrote .tmp/runtimes/matrix.md (`deno task matrix:docs` copies it into docs/runtime-matrix.md)",
    );
  }
}
