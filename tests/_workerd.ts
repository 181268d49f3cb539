// Runs examples/workers/worker.ts in workerd, the open-source Workers
// runtime: installs workerd from the npm registry (pinned) into .tools/,
// bundles the worker with `deno bundle`, writes a Cap'n Proto config into a
// temporary directory and starts workerd on 127.0.0.1, port 0 (it reports
// the port it bound on its control descriptor). Uses node: APIs only, so it
// works under Deno, Bun and Node (the Node client script bundles it).

import { spawn } from "node:child_process";
import {
  mkdir,
  mkdtemp,
  readFile,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { join, resolve } from "node:path";
import process from "node:process";

/** The workerd release the suite runs on (npm `workerd`). */
export const WORKERD_VERSION = "1.20261117.1";

/** The repository root. */
export const ROOT = resolve(import.meta.dirname ?? ".", "..");

/**
 * Media types Cloudflare's edge compresses (gzip or brotli) when the client
 * accepts it; compression buffers a streamed body. A response without a
 * type counts as text/plain. The list is Cloudflare's ("Content
 * compression", developers.cloudflare.com/speed/optimization/content/
 * compression/), which miniflare also uses to emulate the edge.
 */
const COMPRESSED_AT_THE_EDGE = new Set([
  "text/html",
  "text/richtext",
  "text/plain",
  "text/css",
  "text/x-script",
  "text/x-component",
  "text/x-java-source",
  "text/x-markdown",
  "application/javascript",
  "application/x-javascript",
  "text/javascript",
  "text/js",
  "image/x-icon",
  "image/vnd.microsoft.icon",
  "application/x-perl",
  "application/x-httpd-cgi",
  "text/xml",
  "application/xml",
  "application/rss+xml",
  "application/vnd.api+json",
  "application/x-protobuf",
  "application/json",
  "multipart/bag",
  "multipart/mixed",
  "application/xhtml+xml",
  "font/ttf",
  "font/otf",
  "font/x-woff",
  "image/svg+xml",
  "application/vnd.ms-fontobject",
  "application/ttf",
  "application/x-ttf",
  "application/otf",
  "application/x-otf",
  "application/truetype",
  "application/opentype",
  "application/x-opentype",
  "application/font-woff",
  "application/eot",
  "application/font",
  "application/font-sfnt",
  "application/wasm",
  "application/javascript-binast",
  "application/manifest+json",
  "application/ld+json",
  "application/graphql+json",
  "application/geo+json",
]);

/** Whether Cloudflare's edge would compress (and so buffer) this type. */
export function compressedAtTheEdge(contentType: string | null): boolean {
  if (!contentType) return true;
  const type = contentType.split(";")[0].trim().toLowerCase();
  return COMPRESSED_AT_THE_EDGE.has(type);
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(
  command: string,
  args: string[],
  options: { cwd?: string } = {},
): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => stdout += s);
    child.stderr.setEncoding("utf8").on("data", (s: string) => stderr += s);
    child.on("error", fail);
    child.on("close", (code) => done({ code, stdout, stderr }));
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

function platformPackage(): string {
  const os = process.platform === "win32" ? "windows" : process.platform;
  const arch = process.arch === "x64" ? "64" : process.arch;
  return `@cloudflare/workerd-${os}-${arch}`;
}

async function installedVersion(tools: string): Promise<string | undefined> {
  try {
    const json = await readFile(
      join(tools, "node_modules", "workerd", "package.json"),
      "utf8",
    );
    return (JSON.parse(json) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

/**
 * The workerd binary: `$WORKERD` if set, else the pinned release in
 * `.tools/`, installed there with npm on first use.
 */
export async function findWorkerd(root = ROOT): Promise<string> {
  if (process.env.WORKERD) return process.env.WORKERD;
  const tools = join(root, ".tools");
  const exe = process.platform === "win32" ? "workerd.exe" : "workerd";
  const binary = join(tools, "node_modules", platformPackage(), "bin", exe);
  if (
    (await installedVersion(tools)) !== WORKERD_VERSION ||
    !(await exists(binary))
  ) {
    // npm creates .tools/ (the Deno tests may write only to .tmp/).
    const npm = process.platform === "win32" ? "npm.cmd" : "npm";
    const installed = await run(npm, [
      "install",
      "--silent",
      "--no-audit",
      "--no-fund",
      "--save-exact",
      "--prefix",
      tools,
      `workerd@${WORKERD_VERSION}`,
    ]);
    if (installed.code !== 0 || !(await exists(binary))) {
      throw new Error(
        `Cannot install workerd@${WORKERD_VERSION} from the npm registry: ${installed.stderr.trim()}`,
      );
    }
  }
  return binary;
}

/** The Deno executable: this process under Deno, else `$DENO` or `deno`. */
export function denoExecutable(): string {
  if ("Deno" in globalThis) return process.execPath;
  return process.env.DENO ?? "deno";
}

/** Options for {@linkcode bundle}. */
export interface BundleOptions {
  /** Minify the output. @default {false} */
  minify?: boolean;
  /** `browser` (Workers: node: imports stay imports) or `deno`. */
  platform?: "browser" | "deno";
  /** Where to run `deno bundle` (its deno.json applies). @default {ROOT} */
  cwd?: string;
}

/**
 * Bundles a TypeScript entry point and everything it imports into one ES
 * module with `deno bundle` (esbuild inside Deno; `node:` imports are left
 * to the runtime).
 */
export async function bundle(
  entry: string,
  output: string,
  options: BundleOptions = {},
): Promise<void> {
  const args = [
    "bundle",
    "--quiet",
    `--platform=${options.platform ?? "browser"}`,
    "--output",
    output,
  ];
  if (options.minify) args.push("--minify");
  args.push(entry);
  const result = await run(denoExecutable(), args, {
    cwd: options.cwd ?? ROOT,
  });
  if (result.code !== 0) {
    throw new Error(
      `Cannot bundle ${entry}: deno bundle exited with ${result.code}: ${result.stderr.trim()}`,
    );
  }
}

/** `compatibility_date` and `compatibility_flags` from a wrangler.toml. */
export async function wranglerCompatibility(
  path = join(ROOT, "examples", "workers", "wrangler.toml"),
): Promise<{ date: string; flags: string[] }> {
  const toml = await readFile(path, "utf8");
  const date = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml)?.[1];
  if (!date) throw new Error(`Cannot read compatibility_date from ${path}`);
  const flags = /^compatibility_flags\s*=\s*\[([^\]]*)\]/m.exec(toml)?.[1];
  return {
    date,
    flags: flags ? [...flags.matchAll(/"([^"]+)"/g)].map((m) => m[1]) : [],
  };
}

/** Options for {@linkcode startWorkerd}. */
export interface StartWorkerdOptions {
  /** The worker's entry point. @default {"examples/workers/worker.ts"} */
  entry?: string;
  /** Text bindings (`env.NAME`). A `SELF` service binding is always added. */
  vars?: Record<string, string>;
  /** The repository root (for `.tools/` and `.tmp/`). */
  root?: string;
}

/** A running workerd. */
export interface Workerd {
  /** `http://127.0.0.1:<port>/`. */
  readonly url: URL;
  /** The workerd process's id. */
  readonly pid: number;
  /** What workerd wrote to stderr so far. */
  stderr(): string;
  /** Kills workerd (SIGKILL) and removes its temporary directory. */
  stop(): Promise<void>;
}

function capnpString(value: string): string {
  return JSON.stringify(value);
}

/**
 * Bundles the worker, writes a workerd config into a temporary directory
 * under `.tmp/` and starts workerd on 127.0.0.1 on a free port.
 *
 * workerd keeps running on SIGTERM while it serves a WebSocket, so `stop`
 * kills it with SIGKILL, by its process id.
 */
export async function startWorkerd(
  options: StartWorkerdOptions = {},
): Promise<Workerd> {
  const root = options.root ?? ROOT;
  const binary = await findWorkerd(root);
  await mkdir(join(root, ".tmp"), { recursive: true });
  const dir = await mkdtemp(join(root, ".tmp", "workerd-"));
  try {
    await bundle(
      resolve(root, options.entry ?? "examples/workers/worker.ts"),
      join(dir, "worker.js"),
      { cwd: root },
    );
    const { date, flags } = await wranglerCompatibility(
      join(root, "examples", "workers", "wrangler.toml"),
    );
    const bindings = Object.entries(options.vars ?? {}).map(
      ([name, text]) =>
        `(name = ${capnpString(name)}, text = ${capnpString(text)})`,
    );
    bindings.push(`(name = "SELF", service = "main")`);
    await writeFile(
      join(dir, "config.capnp"),
      `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [(name = "main", worker = .worker)],
  sockets = [(name = "http", address = "127.0.0.1:0", http = (), service = "main")],
);

const worker :Workerd.Worker = (
  modules = [(name = "worker.js", esModule = embed "worker.js")],
  compatibilityDate = ${capnpString(date)},
  compatibilityFlags = [${flags.map(capnpString).join(", ")}],
  bindings = [${bindings.join(", ")}],
);
`,
    );
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }

  // The control messages ({"event":"listen",...}) go to stdout, with the
  // worker's console output.
  const child = spawn(binary, ["serve", "config.capnp", "--control-fd=1"], {
    cwd: dir,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  let stdout = "";
  const exited = new Promise<void>((done) => child.on("close", () => done()));
  // Not Promise.withResolvers: Node 20 (the Node client script) lacks it.
  let onPort!: (port: number) => void;
  let onFailure!: (error: unknown) => void;
  const listening = {
    promise: new Promise<number>((resolve, reject) => {
      onPort = resolve;
      onFailure = reject;
    }),
    resolve: (port: number) => onPort(port),
    reject: (error: unknown) => onFailure(error),
  };
  child.stderr.setEncoding("utf8").on("data", (s: string) => stderr += s);
  child.stdout.setEncoding("utf8").on("data", (s: string) => {
    stdout += s;
    const port = /\{"event":"listen","socket":"http","port":(\d+)\}/.exec(
      stdout,
    )?.[1];
    if (port) listening.resolve(Number(port));
  });
  child.on("error", (error) => listening.reject(error));
  child.on("close", (code, signal) =>
    listening.reject(
      new Error(
        `Cannot start workerd: it exited (${code ?? signal}): ${stderr.trim()}`,
      ),
    ));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
    }
    await exited;
    await rm(dir, { recursive: true, force: true });
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const port = await Promise.race([
      listening.promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error("Cannot start workerd: no port in 30 s")),
          30_000,
        );
      }),
    ]);
    return {
      url: new URL(`http://127.0.0.1:${port}/`),
      pid: child.pid!,
      stderr: () => stderr,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
