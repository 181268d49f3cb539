// Runs the whole interop matrix (tests/interop.test.ts): sluice's server
// under Deno and under Bun, each in a child process, against grpc-js's and
// connect-node's clients (run here); and sluice's client under Deno and
// under Bun, each in a child process, against grpc-js's and connect-node's
// servers (run here). Every client runs its cases in parallel.

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import type { CaseResult } from "./cases.ts";
import type { Observed } from "./status_cases.ts";

/** One row of the table: who served, who called, how, under what. */
export interface Row {
  server: string;
  client: string;
  protocol: string;
  runtime: "Deno" | "Bun";
  results: CaseResult[];
  /**
   * Set when sluice's server process was aborted by the runtime during the
   * run: the runtime's own message.
   */
  serverAborted?: string;
}

const ROOT = join(import.meta.dirname ?? ".", "..", "..");
const CHILD_MS = 60_000;

/** Deno's and Bun's executables (Bun installed by scripts/_find_bun.sh). */
export async function executables(): Promise<{ deno: string; bun: string }> {
  const deno = process.env.DENO ??
    ("Deno" in globalThis ? process.execPath : "deno");
  if (process.env.BUN) return { deno, bun: process.env.BUN };
  if ("Bun" in globalThis) return { deno, bun: process.execPath };
  const local = join(ROOT, ".tools/node_modules/bun/bin/bun.exe");
  if (existsSync(local)) return { deno, bun: local };
  const bun = await new Promise<string>((resolve, reject) =>
    execFile(
      "bash",
      ["-c", "source scripts/_find_bun.sh && find_bun"],
      { cwd: ROOT, timeout: 120_000 },
      (error, stdout) => error ? reject(error) : resolve(stdout.trim()),
    )
  );
  return { deno, bun };
}

function command(runtime: "Deno" | "Bun", exe: string, file: string) {
  return runtime === "Deno"
    ? [exe, [
      "run",
      "--allow-net=127.0.0.1",
      "--allow-read",
      "--allow-env",
      file,
    ]]
    : [exe, ["run", file]];
}

/** Starts a child, resolves with its first stdout line. */
function firstLine(
  exe: string,
  args: string[],
): { child: ChildProcess; line: Promise<string>; stderr(): string } {
  const child = spawn(exe, args, {
    cwd: ROOT,
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  let out = "";
  let err = "";
  const line = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${args.at(-1)}: no answer in ${CHILD_MS} ms: ${err}`));
    }, CHILD_MS);
    child.stdout!.setEncoding("utf8").on("data", (s: string) => {
      out += s;
      const end = out.indexOf("\n");
      if (end >= 0) {
        clearTimeout(timer);
        resolve(out.slice(0, end));
      }
    });
    child.stderr!.setEncoding("utf8").on("data", (s: string) => {
      err += s;
      if (process.env.INTEROP_DEBUG) process.stderr.write(s);
    });
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      reject(new Error(`${args.at(-1)} exited (${code}): ${err.slice(-2000)}`));
    });
  });
  return { child, line, stderr: () => err };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const closed = new Promise((resolve) => child.once("close", resolve));
  child.stdin?.end();
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await closed;
  clearTimeout(timer);
}

/** What one client reported for every status case, from one server. */
export interface StatusRow {
  /** "sluice (Deno)", "sluice (Bun)", or "own": the client's own library's. */
  server: string;
  client: string;
  protocol: string;
  observed: Record<string, Observed>;
}

/**
 * The status cases (status_cases.ts) run by grpc-js's and connect-node's
 * clients against `targets`: sluice's server, or their own libraries'
 * (grpc-js's client against grpc-js's server, connect-node's against
 * connect-node's).
 */
async function statusRows(
  peers: string,
  server: string,
  targets: { grpcJs: string; connect: { h1: string; h2: string } },
): Promise<StatusRow[]> {
  const call = firstLine("node", [peers, "status", JSON.stringify(targets)]);
  try {
    const rows = JSON.parse(await call.line) as Omit<StatusRow, "server">[];
    return rows.map((r) => ({ server, ...r }));
  } finally {
    await stop(call.child);
  }
}

/**
 * sluice's server under one runtime, called by the peers' clients: the
 * interop cases, then, once `called` (the interop cases of every runtime
 * have run, so that the two do not load the machine at once), the status
 * cases.
 */
async function sluiceServerRows(
  runtime: "Deno" | "Bun",
  exe: string,
  peers: string,
  called: { done(): void; all: Promise<void> },
): Promise<{ rows: Row[]; statuses: StatusRow[] }> {
  const [cmd, args] = command(runtime, exe, "tests/interop/sluice_server.ts");
  const server = firstLine(cmd as string, args as string[]);
  let rows: Row[];
  let statuses: StatusRow[];
  // Once only, and also when the server never started: the other runtime
  // waits for it.
  let reported = false;
  const report = () => {
    if (!reported) called.done();
    reported = true;
  };
  try {
    const urls = await server.line;
    const call = firstLine("node", [peers, "call", urls]);
    try {
      const found = JSON.parse(await call.line) as {
        client: string;
        protocol: string;
        results: CaseResult[];
      }[];
      rows = found.map((r) => ({ server: "sluice", runtime, ...r }));
    } finally {
      await stop(call.child);
      report();
    }
    await called.all;
    const parsed = JSON.parse(urls) as { h1: string; h2: string };
    statuses = await statusRows(peers, `sluice (${runtime})`, {
      grpcJs: parsed.h2,
      connect: parsed,
    });
  } finally {
    report();
    await stop(server.child);
  }
  // Deno's node:http2 aborts the process now and then (an nghttp2
  // assertion: docs/known-runtime-issues.md (e)); the table says so.
  const abort = server.stderr().match(/^.*nghttp2.*Assertion.*$/m)?.[0];
  if (abort) { for (const row of rows) row.serverAborted = abort.trim(); }
  return { rows, statuses };
}

/** sluice's client under one runtime, against the peers' servers. */
async function sluiceClientRows(
  runtime: "Deno" | "Bun",
  exe: string,
  targets: unknown,
): Promise<Row[]> {
  const [cmd, args] = command(runtime, exe, "tests/interop/sluice_client.ts");
  const { child, line } = firstLine(cmd as string, [
    ...args as string[],
    JSON.stringify(targets),
  ]);
  try {
    const runs = JSON.parse(await line) as {
      server: string;
      client: string;
      results: CaseResult[];
    }[];
    return runs.map((r) => ({
      server: r.server,
      client: "sluice",
      protocol: r.client,
      runtime,
      results: r.results,
    }));
  } finally {
    await stop(child);
  }
}

/** Bundles tests/interop/peers.ts for Node; returns the bundle's path. */
async function bundlePeers(deno: string): Promise<string> {
  const out = join(ROOT, ".tmp/interop/peers.mjs");
  await new Promise<void>((resolve, reject) =>
    execFile(
      deno,
      [
        "bundle",
        "--quiet",
        "--platform=deno",
        "--output",
        out,
        "tests/interop/peers.ts",
      ],
      { cwd: ROOT, timeout: 120_000 },
      (error) => error ? reject(error) : resolve(),
    )
  );
  return out;
}

/**
 * The whole matrix, and the status cases run by the peers' clients against
 * sluice's server and against their own libraries' servers.
 */
export async function runMatrix(): Promise<
  { rows: Row[]; statuses: StatusRow[] }
> {
  const { deno, bun } = await executables();
  const peers = await bundlePeers(deno);
  const servers = firstLine("node", [peers, "serve"]);
  try {
    const targets = JSON.parse(await servers.line);
    // sluice as the server, then as the client: the two halves at once
    // overload a 2-core machine into timeouts.
    let pending = 2;
    let allCalled = () => {};
    const called = {
      all: new Promise<void>((resolve) => allCalled = resolve),
      done: () => --pending === 0 && allCalled(),
    };
    const serverRows = await Promise.all([
      sluiceServerRows("Deno", deno, peers, called),
      sluiceServerRows("Bun", bun, peers, called),
    ]);
    const clientRows = await Promise.all([
      sluiceClientRows("Deno", deno, targets),
      sluiceClientRows("Bun", bun, targets),
    ]);
    // The peers' clients against their own servers, last: beside the rows
    // above, the one Node process serving them falls behind into timeouts.
    const own = await statusRows(peers, "own", {
      grpcJs: targets["grpc-js"].h2,
      connect: targets["connect-node"],
    });
    return {
      rows: [...serverRows.map((r) => r.rows), ...clientRows].flat(),
      statuses: [...own, ...serverRows.flatMap((r) => r.statuses)],
    };
  } finally {
    await stop(servers.child);
  }
}
