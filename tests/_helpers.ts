import assert from "node:assert/strict";
import { createHash } from "node:crypto";
// Shared test helpers. Tests use node:test and node:assert/strict so the same
// files run under `deno test` and `bun test`; runtime differences are decided
// here, not in the tests.

import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { createInterface } from "node:readline";
import { connect, type Socket } from "node:net";
import { openDuplex, type OpenDuplexOptions } from "../lib/http/open_duplex.ts";
import { serve, type Server } from "../lib/runtime/serve.ts";
import {
  createConnectTransport,
  type MessageType,
  type Transport,
} from "../lib/rpc/mod.ts";

export { h2cClient } from "./_h2c_client.ts";

/**
 * `body` read through a pull-based stream that calls `onEnd` once, when the
 * body ends: closed, errored, or cancelled by its reader (once the cancel
 * of `body` itself has settled). For servers that count the response
 * bodies still open (tests/_echo_server.ts, scripts/_stress_server.ts).
 */
export function watchBody(
  body: ReadableStream<Uint8Array>,
  onEnd: () => void,
): ReadableStream<Uint8Array> {
  let ended = false;
  const end = () => {
    if (!ended) {
      ended = true;
      onEnd();
    }
  };
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { value, done } = await reader.read();
        if (done) {
          end();
          controller.close();
        } else {
          controller.enqueue(value);
        }
      } catch (error) {
        end();
        throw error;
      }
    },
    cancel: (reason) => reader.cancel(reason).finally(end),
  }, { highWaterMark: 0 });
}

/**
 * Records what the named console methods print instead of printing it:
 * `logged` holds each call's arguments, `whenLogged()` waits until there is
 * one (at most `ms`), `restore()` puts the methods back.
 */
export function captureConsole(...methods: ("error" | "warn")[]) {
  const logged: unknown[][] = [];
  const originals = methods.map((method) => [method, console[method]] as const);
  for (const method of methods) {
    console[method] = (...args: unknown[]) => void logged.push(args);
  }
  return {
    logged,
    async whenLogged(ms = 2_000): Promise<void> {
      const until = performance.now() + ms;
      while (logged.length === 0 && performance.now() < until) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    restore(): void {
      for (const [method, original] of originals) console[method] = original;
    },
  };
}

/** Raw bytes as a message type, for size, compression and flow tests. */
export const Bytes: MessageType<Uint8Array> = {
  typeName: "test.Bytes",
  proto: { encode: (v) => v, decode: (b) => b.slice() },
};

/**
 * Text as a message type whose encoder refuses anything but a string
 * ("not a string"): for a message its codec cannot write.
 */
export const StrictText: MessageType<string> = {
  typeName: "test.Text",
  proto: {
    encode: (s) => {
      if (typeof s !== "string") throw new TypeError("not a string");
      return new TextEncoder().encode(s);
    },
    decode: (b) => new TextDecoder().decode(b),
  },
};

/** What `serve` accepts: a handler that may answer synchronously. */
type FetchHandler = Parameters<typeof serve>[0];

/** Which runtime runs the tests. */
export const runtime: "deno" | "bun" | "node" = "Bun" in globalThis
  ? "bun"
  : "Deno" in globalThis
  ? "deno"
  : "node";

/** Serves a handler on 127.0.0.1, port 0, with the current runtime. */
export function startServer(handler: FetchHandler): Promise<Server> {
  return serve(handler, { hostname: "127.0.0.1", port: 0 });
}

/**
 * Runs `fn` against a server for `handler`, and always shuts the server down.
 */
/**
 * Runs `fn` with `navigator.userAgent` set to `agent` (a page's, say),
 * then puts the runtime's back.
 */
export async function withUserAgent<T>(
  agent: string,
  fn: () => T | Promise<T>,
): Promise<T> {
  const navigator = globalThis.navigator as { userAgent: string };
  const own = Object.getOwnPropertyDescriptor(navigator, "userAgent");
  Object.defineProperty(navigator, "userAgent", {
    value: agent,
    configurable: true,
  });
  try {
    return await fn();
  } finally {
    if (own) Object.defineProperty(navigator, "userAgent", own);
    else delete (navigator as { userAgent?: string }).userAgent;
  }
}

/**
 * Runs `fn` with `setTimeout` recording the delay each timer asks for (in
 * `delays`) and running it at once, then puts the runtime's back.
 */
export async function withTimersAtOnce<T>(
  fn: (delays: number[]) => Promise<T>,
): Promise<T> {
  const delays: number[] = [];
  const original = globalThis.setTimeout;
  globalThis.setTimeout = ((callback: () => void, ms?: number) => {
    delays.push(ms ?? 0);
    return original(callback, 0);
  }) as typeof setTimeout;
  try {
    return await fn(delays);
  } finally {
    globalThis.setTimeout = original;
  }
}

/** A browser's user agent, for {@linkcode withUserAgent}. */
export const BROWSER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0.0.0";

export async function withServer<T>(
  handler: FetchHandler,
  fn: (server: Server) => Promise<T>,
): Promise<T> {
  const server = await startServer(handler);
  try {
    return await fn(server);
  } finally {
    await deadline(server.shutdown(), 30_000, "server shutdown");
  }
}

/**
 * Resolves like `promise`, or rejects with a clear error after `ms`
 * milliseconds, so that no test can hang.
 */
export async function deadline<T>(
  promise: Promise<T>,
  ms: number,
  what = "operation",
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Deadline: ${what} took more than ${ms} ms`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves once `signal` has aborted (at once if it has). */
export function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/** A test helper running in its own process: see {@linkcode startChild}. */
export interface Child {
  /** The first line it printed, parsed (its URL, or that it is ready). */
  // deno-lint-ignore no-explicit-any
  first: any;
  /** Sends one command and resolves with the next line it prints, parsed. */
  // deno-lint-ignore no-explicit-any
  request(command: Record<string, unknown>, ms?: number): Promise<any>;
  /**
   * Closes its standard input and waits for it to exit (or kills it);
   * resolves with how it exited.
   */
  stop(): Promise<ChildExit>;
}

/** How a child process exited: its exit code, or the signal that ended it. */
export interface ChildExit {
  code: number | null;
  signal: string | null;
}

/**
 * Starts `tests/<script>` in its own process with the current runtime (Deno
 * with --allow-all: it reads /proc/self, see tests/_memory.ts), and talks to
 * it in JSON lines: it prints one line when it is ready (its `first`), then
 * one line for each command it is sent; a line with `error` rejects. It exits
 * when its standard input closes. Its standard error is this process's.
 */
export async function startChild(
  script: string,
  args: string[] = [],
): Promise<Child> {
  const path = join(import.meta.dirname ?? "tests", script);
  const command = runtime === "deno"
    ? ["run", "--allow-all", path, ...args]
    : [path, ...args];
  const child = spawn(process.execPath, command, {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout! })[
    Symbol.asyncIterator
  ]();
  const exited = new Promise<ChildExit>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal }))
  );
  const next = async () => {
    const { value, done } = await lines.next();
    if (done) throw new Error(`${script} exited early`);
    const reply = JSON.parse(value);
    if (reply?.error) throw new Error(`${script}: ${reply.error}`);
    return reply;
  };
  let first;
  try {
    first = await deadline(next(), 30_000, `${script} start`);
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  return {
    first,
    request(command, ms = 120_000) {
      child.stdin!.write(JSON.stringify(command) + "\n");
      return deadline(next(), ms, `${script} ${command.cmd}`);
    },
    async stop() {
      child.stdin!.end();
      return await deadline(exited, 30_000, `${script} exit`).catch(() => {
        child.kill("SIGKILL");
        return exited;
      });
    },
  };
}

/**
 * A serveHttp2 test server in a child process (`script`, which prints its
 * port first): under Deno, node:http2 can abort the process that closes a
 * session (docs/known-runtime-issues.md (e)), which must not take the test
 * runner with it. `stop` shuts it down; an abnormal exit fails the test,
 * except Deno's known abort after the cases passed, which is reported.
 */
export async function startH2Child(
  script: string,
  args: string[] = [],
): Promise<{ child: Child; port: number; url: string; stop(): Promise<void> }> {
  const child = await startChild(script, args);
  const port = Number(child.first.port);
  return {
    child,
    port,
    url: `http://127.0.0.1:${port}`,
    async stop() {
      const { code, signal } = await child.stop();
      if (code === 0) return;
      const how = signal ?? `exit code ${code}`;
      assert.equal(
        runtime,
        "deno",
        `serveHttp2's process ended with ${how} at shutdown`,
      );
      console.warn(
        `serveHttp2's process ended with ${how} at shutdown: Deno's node:http2 (docs/known-runtime-issues.md (e))`,
      );
    },
  };
}

/** The process's resident set size in bytes. */
export function rss(): number {
  return process.memoryUsage().rss;
}

/**
 * Makes a fresh directory under `./.tmp` (the only place the Deno test task
 * may write) and returns its path.
 */
export async function makeTempDir(prefix = "t-"): Promise<string> {
  const base = join(import.meta.dirname ?? ".", "..", ".tmp");
  await mkdir(base, { recursive: true });
  return await mkdtemp(join(base, prefix));
}

/**
 * The ids of the uploads a resumable file store holds in `dir`, sorted:
 * by their files' names (`<id>`, `.<id>.upload`, ...).
 */
export async function fileStoreUploadIds(dir: string): Promise<string[]> {
  const ids = new Set<string>();
  for (const name of await readdir(dir)) {
    const id = /^\.?([A-Za-z0-9_-]{22})(\.|$)/.exec(name)?.[1];
    if (id !== undefined) ids.add(id);
  }
  return [...ids].sort();
}

/** Removes a directory made by {@linkcode makeTempDir}. */
export async function removeDir(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}

/**
 * A stream of `total` pseudo-random bytes in `chunkSize` chunks, generated on
 * demand (never held in memory), identical for the same `seed`.
 */
export function generatedStream(
  total: number,
  { chunkSize = 64 * 1024, seed = 1 } = {},
): ReadableStream<Uint8Array> {
  let sent = 0;
  let state = seed >>> 0 || 1;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= total) {
        controller.close();
        return;
      }
      const size = Math.min(chunkSize, total - sent);
      const chunk = new Uint8Array(size);
      const words = new Uint32Array(chunk.buffer, 0, size >>> 2);
      for (let i = 0; i < words.length; i++) {
        // xorshift32
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        words[i] = state >>> 0;
      }
      for (let i = words.length * 4; i < size; i++) chunk[i] = i & 0xff;
      sent += size;
      controller.enqueue(chunk);
    },
  }, { highWaterMark: 0 });
}

/**
 * Writes `lines` lines through a duplex stream, reading each reply (the
 * line with `prefix` before it) before writing the next, then half-closes and
 * expects the end of input. Works only if replies arrive while the request is
 * still open.
 */
export async function lockstep(
  stream: {
    write(chunk: string): Promise<void>;
    readLine(): Promise<string | null>;
    closeWrite(): Promise<void>;
    readPartial(): Promise<Uint8Array | null>;
  },
  lines: number,
  { prefix = "echo " } = {},
): Promise<void> {
  for (let i = 0; i < lines; i++) {
    await stream.write(`line ${i}\n`);
    const reply = await stream.readLine();
    if (reply !== `${prefix}line ${i}`) {
      throw new Error(`Lockstep: round trip ${i} got ${JSON.stringify(reply)}`);
    }
  }
  await stream.closeWrite();
  const end = await stream.readPartial();
  if (end !== null) throw new Error("Lockstep: expected the end of input");
}

/**
 * Writes fresh `chunkSize`-byte chunks until a write has not resolved for
 * `idleMs` (the peer stopped reading and back-pressure holds the writer), or
 * `limit` bytes were accepted. Returns the bytes accepted before the stall and
 * the stalled write, which resolves once the peer reads again.
 */
export async function writeUntilStalled(
  write: (chunk: Uint8Array) => Promise<void>,
  limit: number,
  { chunkSize = 64 * 1024, idleMs = 500 } = {},
): Promise<{ accepted: number; stalled: Promise<void> | undefined }> {
  let accepted = 0;
  while (accepted < limit) {
    const pending = write(new Uint8Array(chunkSize));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const idle = new Promise<"idle">((resolve) => {
      timer = setTimeout(() => resolve("idle"), idleMs);
    });
    const outcome = await Promise.race([pending.then(() => "written"), idle]);
    clearTimeout(timer);
    if (outcome === "idle") return { accepted, stalled: pending };
    accepted += chunkSize;
  }
  return { accepted, stalled: undefined };
}

/** An order-sensitive checksum (Adler-32 without the modulus per byte). */
export class Checksum {
  a = 1;
  b = 0;
  bytes = 0;
  update(chunk: Uint8Array): void {
    let { a, b } = this;
    for (let i = 0; i < chunk.length; i++) {
      a = (a + chunk[i]) % 65521;
      b = (b + a) % 65521;
    }
    this.a = a;
    this.b = b;
    this.bytes += chunk.length;
  }
  get value(): string {
    return `${this.bytes}:${this.a}:${this.b}`;
  }
}

/**
 * Echoes `total` generated bytes through `url` with openDuplex, writing and
 * reading at once, and returns the checksums of what was sent and received.
 */
export async function echoBytes(
  url: URL,
  total: number,
  options: OpenDuplexOptions = {},
): Promise<{ sent: string; received: string }> {
  const { stream } = openDuplex(url, options);
  const sent = new Checksum();
  const received = new Checksum();
  const writing = (async () => {
    for await (const chunk of generatedStream(total, { seed: 7 })) {
      sent.update(chunk);
      await stream.write(chunk);
    }
    await stream.closeWrite();
  })();
  for await (const chunk of stream) received.update(chunk);
  await writing;
  return { sent: sent.value, received: received.value };
}

let curlProbe: Promise<boolean> | undefined;
/**
 * Resolves true if curl runs here (tests that drive it skip otherwise);
 * probed once, on the first call.
 */
export function curlAvailable(): Promise<boolean> {
  return curlProbe ??= new Promise<boolean>((resolve) => {
    const child = spawn("curl", ["--version"], { stdio: "ignore" });
    child.on("error", () => resolve(false));
    child.on("close", (code) => resolve(code === 0));
  });
}

/** `n` random bytes (getRandomValues fills at most 64 KiB per call). */
export function randomBytes(n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  }
  return out;
}

/** The SHA-256 of `data`, base64 (as in Repr-Digest and Content-Digest). */
export function sha256Base64(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("base64");
}

/** Microtask turns until `promise` settles (at most 1,000). */
export async function turnsUntil(promise: Promise<unknown>): Promise<number> {
  let settled = false;
  promise.then(() => settled = true, () => settled = true);
  let turns = 0;
  while (!settled && turns < 1000) {
    await undefined;
    turns++;
  }
  return turns;
}

/**
 * A Connect transport whose streaming call is answered `body`, a
 * gzip-encoded Connect stream (whatever the request).
 */
export function answeringGzip(body: ReadableStream<Uint8Array>): Transport {
  return createConnectTransport({
    baseUrl: "http://x",
    acceptCompression: ["gzip"],
    httpClient: () =>
      Promise.resolve({
        status: 200,
        headers: new Headers({
          "content-type": "application/connect+proto",
          "connect-content-encoding": "gzip",
        }),
        body,
        trailers: Promise.resolve(new Headers()),
      }),
  });
}

/**
 * A raw TCP connection to `port` on 127.0.0.1, connected (errors ignored:
 * the tests cut it on purpose); it reads nothing unless told to.
 */
export async function rawConnection(port: number): Promise<Socket> {
  const socket = connect(port, "127.0.0.1");
  socket.on("error", () => {});
  await deadline(
    new Promise((resolve) => socket.once("connect", resolve)),
    5_000,
    "connect",
  );
  return socket;
}

/** What {@linkcode runProcess} gives: the exit code and the output. */
export interface ProcessOutput {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `command` with `args` in `cwd` (no colours, `env` added to this
 * process's environment), its output collected; killed after `timeoutMs`.
 */
export function runProcess(
  command: string,
  args: string[],
  { cwd, timeoutMs = 120_000, env = {} }: {
    cwd: string;
    timeoutMs?: number;
    env?: Record<string, string>;
  },
): Promise<ProcessOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1", ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8").on("data", (s: string) => stdout += s);
    child.stderr!.setEncoding("utf8").on("data", (s: string) => stderr += s);
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Runs `code` as a script in a child of this runtime (`deno eval`, `bun
 * -e`) in `cwd`, `env` added to its environment; fails unless it exits 0
 * within 30 s (killed then).
 */
export async function runScript(
  code: string,
  { cwd, env = {} }: { cwd: string; env?: Record<string, string> },
): Promise<ProcessOutput> {
  const output = await runProcess(
    process.execPath,
    runtime === "bun" ? ["-e", code] : ["eval", code],
    { cwd, timeoutMs: 30_000, env },
  );
  assert.equal(
    output.code,
    0,
    output.code === null
      ? `the child did not exit within 30 s (killed): ${output.stderr}`
      : `the child failed: ${output.stderr}`,
  );
  return output;
}

/**
 * `bytes` cut at each of `cuts` (each taken modulo the length + 1, so any
 * number is a cut; duplicates once): the chunks a parser gets when a body
 * arrives split there, empty ones included.
 */
export function splitAt(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))]
    .sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let last = 0;
  for (const point of points) {
    chunks.push(bytes.slice(last, point));
    last = point;
  }
  chunks.push(bytes.slice(last));
  return chunks;
}
