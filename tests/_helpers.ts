// Shared test helpers. Tests use node:test and node:assert/strict so the same
// files run under `deno test` and `bun test`; runtime differences are decided
// here, not in the tests.

import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { serve, type Server } from "../lib/runtime/serve.ts";

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
