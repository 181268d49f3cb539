// miniflare (npm, pinned, installed into .tools/miniflare on first use) for
// the tests that need Workers bindings workerd alone does not give here: a
// disk-backed R2 bucket and Durable Objects. Each test bundles its Worker,
// and a small Node script (tests/_miniflare_*.mjs) starts miniflare with the
// bindings and prints `{"url": ...}` on its first line.

import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { deadline } from "./_helpers.ts";
import { bundle, ROOT } from "./_workerd.ts";

/** The miniflare release the tests run (the newest that runs on Node 20). */
export const MINIFLARE_VERSION = "4.20260426.0";

function run(command: string, args: string[]): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: "ignore" });
    child.on("error", reject);
    child.on("close", resolve);
  });
}

/** miniflare's entry module URL, installed into .tools/miniflare if needed. */
export async function findMiniflare(): Promise<string> {
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
      throw new Error(
        `Cannot install miniflare@${MINIFLARE_VERSION} from the npm registry`,
      );
    }
  }
  return pathToFileURL(entry).href;
}

/** A running miniflare: its URL, and how to stop it. */
export interface Miniflare {
  url: URL;
  stop(): Promise<void>;
}

/**
 * Bundles `worker` (a path under tests/) and starts `script` (a
 * tests/_miniflare_*.mjs) on it in a new directory under .tmp/ named from
 * `prefix`; `storage(dir)` is the script's third argument (where its bindings
 * keep their data), and `flags` (compatibility flags beside the script's
 * own, comma-separated) its fourth. Stopping ends the process and removes
 * the directory.
 */
export async function startMiniflare(
  script: string,
  worker: string,
  prefix: string,
  storage: (dir: string) => string,
  timeoutMs: number,
  flags: string[] = [],
): Promise<Miniflare> {
  const module = await findMiniflare();
  await mkdir(join(ROOT, ".tmp"), { recursive: true });
  const dir = await mkdtemp(join(ROOT, ".tmp", prefix));
  await bundle(join(ROOT, "tests", worker), join(dir, "worker.js"));
  const child = spawn("node", [
    join(ROOT, "tests", script),
    module,
    join(dir, "worker.js"),
    storage(dir),
    flags.join(","),
  ], {
    cwd: dir, // modules resolve from cwd
    stdio: ["pipe", "pipe", "pipe"],
    // miniflare keeps a directory of its own under the system's temporary
    // directory and removes it without waiting for the removal at dispose
    // (the script exits right after): one left in /tmp per start. Under the
    // test's directory it goes with it.
    env: { ...process.env, TMPDIR: dir },
  });
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (s: string) => stderr += s);
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.on("close", resolve));
      child.stdin!.end();
      await deadline(exited, 30_000, "miniflare exit").catch(() => {
        child.kill("SIGKILL");
      });
    }
    await rm(dir, { recursive: true, force: true });
  };
  const ready = new Promise<URL>((resolve, reject) => {
    let out = "";
    child.stdout!.setEncoding("utf8").on("data", (s: string) => {
      out += s;
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (line) resolve(new URL(JSON.parse(line).url));
    });
    child.on(
      "close",
      (code) =>
        reject(new Error(`Cannot start miniflare (${code}): ${stderr}`)),
    );
  });
  try {
    return { url: await deadline(ready, timeoutMs, "miniflare start"), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * A GET of the test Worker's own routes, sent again once if the connection
 * fails before the answer: Deno's fetch may reuse a pooled connection that
 * workerd is closing as idle ("connection closed before message
 * completed": seen once in a pair of suite runs, after 6 s idle), and the
 * GET is safe to repeat.
 */
export async function getWithOneRetry(url: URL): Promise<Response> {
  try {
    return await fetch(url);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    return await fetch(url);
  }
}
