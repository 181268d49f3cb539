// Node 20 as the client: the upload, duplex and RPC clients on Node's own
// fetch (undici, HTTP/1.1, `duplex: "half"`), WebSocket (behind
// --experimental-websocket in Node 20) and node:http2, against the Worker of
// examples/workers/ served by Deno.serve, Bun.serve and workerd; and
// resumable uploads from Node (tus-js-client's Node build on node:http, and
// resumableUpload on Node's fetch) to a resumable-upload server on the file
// store under Deno.serve and Bun.serve.
//
// Node 20 cannot run TypeScript, so the test task bundles this file with
// `deno bundle` and runs the result (`deno task test:node`):
//
//   deno bundle --platform=deno -o .tmp/build/node_clients.mjs tests/node/clients.ts
//   node --experimental-websocket .tmp/build/node_clients.mjs
//
// Environment: DENO and BUN (executables; BUN unset skips the Bun server),
// WORKERD (else .tools/ is used), SLUICE_RESULTS (where to write the JSON
// results; default .tmp/runtimes/node.json). Run it from the repository
// root.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import process from "node:process";
import * as tus from "tus-js-client";
import {
  createResumableUploadHandler,
  openDuplex,
  parseDigestHeader,
  resumableUpload,
  upload,
  websocketDuplex,
} from "../../lib/http/mod.ts";
import { createResumableFileStore } from "../../lib/runtime/fs.ts";
import {
  Code,
  createClient,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  createUniversalHandler,
  createUniversalHandlerClient,
  createWebSocketTransport,
  RpcError,
  type Transport,
} from "../../lib/rpc/mod.ts";
import { serverOptions, streamingCalc } from "../../examples/streaming_calc.ts";
import { createHttp2Client } from "../../lib/runtime/grpc_node.ts";
import { StreamingCalcService } from "../../examples/workers/worker.ts";
import { deadline, generatedStream, lockstep } from "../_helpers.ts";
import { denoExecutable, startWorkerd } from "../_workerd.ts";

const ROOT = process.cwd();
const RESULTS = process.env.SLUICE_RESULTS ??
  join(ROOT, ".tmp", "runtimes", "node.json");
const MiB = 1024 * 1024;
/** The servers' upload limit (MAX_UPLOAD_BYTES). */
const MAX_UPLOAD_BYTES = 8 * MiB;
const T = 30_000;
const MAX = (1n << 63n) - 1n;

type Flow =
  | "upload"
  | "duplex-http"
  | "websocket"
  | "rpc-web"
  | "rpc-grpc"
  | "resumable";

interface Result {
  flow: Flow;
  server: string;
  name: string;
  ok: boolean;
  /** Run with a Promise.withResolvers polyfill (see NEEDS_WITH_RESOLVERS). */
  polyfilled: boolean;
  /** A known divergence: why this check fails on this Node. */
  divergence?: string;
  skipped?: string;
  error?: string;
}

const results: Result[] = [];

interface Target {
  name: string;
  url?: URL;
  grpcUrl?: URL;
  /** Where resumable uploads are created, and the file store's directory. */
  resumableUrl?: URL;
  resumableDir?: string;
  skip?: string;
}

/**
 * The flows whose clients would need `Promise.withResolvers`, which Node 20
 * lacks (it arrived in Node 22). None now: the library uses its own
 * `deferred()`. Were a flow listed, its checks would be expected to fail on
 * such a Node — recorded as a divergence, not a pass — and run again with a
 * polyfill; should one pass unpolyfilled, the run fails so that this list is
 * corrected.
 */
const NEEDS_WITH_RESOLVERS = new Set<Flow>([]);
const NATIVE_WITH_RESOLVERS = typeof Promise.withResolvers === "function";
const WITH_RESOLVERS_DIVERGENCE =
  "Node 20 has no Promise.withResolvers (Node 22+), used by websocketDuplex and the RPC clients";

function installWithResolvers(): () => void {
  const promise = Promise as unknown as Record<string, unknown>;
  promise.withResolvers = function <T>() {
    let resolve!: (value: T) => void;
    let reject!: (reason: unknown) => void;
    const promise = new Promise<T>((a, b) => {
      resolve = a;
      reject = b;
    });
    return { promise, resolve, reject };
  };
  return () => delete promise.withResolvers;
}

/** Records the outcome of one check for the runtime matrix. */
function checkOne(
  target: Target,
  flow: Flow,
  name: string,
  fn: (signal: AbortSignal) => Promise<void>,
  { polyfilled = false } = {},
): void {
  const expectFailure = !polyfilled && !NATIVE_WITH_RESOLVERS &&
    NEEDS_WITH_RESOLVERS.has(flow);
  const title = `${name} (Node client → ${target.name}${
    polyfilled ? ", Promise.withResolvers polyfilled" : ""
  })`;
  it(title, async (t) => {
    const base = { flow, server: target.name, name, polyfilled };
    if (expectFailure && flow === "rpc-grpc") {
      // Same cause as the Connect and gRPC-Web clients, which are run; this
      // one would leave an orphaned node:http2 stream behind that fails the
      // process later.
      const skipped = "not run without the polyfill (same cause as Connect)";
      results.push({
        ...base,
        ok: false,
        divergence: WITH_RESOLVERS_DIVERGENCE,
        skipped,
      });
      t.skip(skipped);
      return;
    }
    if (target.skip) {
      results.push({ ...base, ok: false, skipped: target.skip });
      t.skip(target.skip);
      return;
    }
    // Ends whatever the check left open (a failed call's request).
    const done = new AbortController();
    try {
      await fn(done.signal);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (expectFailure) {
        results.push({
          ...base,
          ok: false,
          divergence: WITH_RESOLVERS_DIVERGENCE,
          error: message,
        });
        t.diagnostic(
          `expected failure (${WITH_RESOLVERS_DIVERGENCE}): ${message}`,
        );
        return;
      }
      results.push({ ...base, ok: false, error: message });
      throw error;
    } finally {
      done.abort();
    }
    if (expectFailure) {
      results.push({ ...base, ok: false, error: "unexpected pass" });
      throw new Error(
        `Expected a failure (${WITH_RESOLVERS_DIVERGENCE}) but it passed: update NEEDS_WITH_RESOLVERS`,
      );
    }
    results.push({ ...base, ok: true });
  });
}

/** Starts tests/node/server.ts under Deno or Bun; resolves with its URLs. */
async function startServer(
  command: string,
  args: string[],
): Promise<{
  url: URL;
  grpcUrl: URL;
  resumableUrl: URL;
  resumableDir: string;
  child: ChildProcess;
}> {
  const child = spawn(command, [...args, "tests/node/server.ts"], {
    cwd: ROOT,
    stdio: ["pipe", "pipe", "inherit"],
  });
  const line = await deadline(
    new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout!.setEncoding("utf8").on("data", (s: string) => {
        out += s;
        const end = out.indexOf("\n");
        if (end !== -1) resolve(out.slice(0, end));
      });
      child.on("error", reject);
      child.on(
        "close",
        (code) =>
          reject(new Error(`Cannot start ${command}: exited with ${code}`)),
      );
    }),
    60_000,
    `${command} server start`,
  );
  const { url, grpcUrl, resumableUrl, resumableDir } = JSON.parse(line);
  return {
    url: new URL(url),
    grpcUrl: new URL(grpcUrl),
    resumableUrl: new URL(resumableUrl),
    resumableDir,
    child,
  };
}

function stopServer(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve();
  }
  const closed = new Promise<void>((resolve) => child.on("close", resolve));
  child.kill("SIGKILL");
  return closed;
}

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

async function sha256OfStream(
  stream: AsyncIterable<Uint8Array>,
): Promise<{ digest: Uint8Array; bytes: number }> {
  const hash = createHash("sha256");
  let bytes = 0;
  for await (const chunk of stream) {
    hash.update(chunk);
    bytes += chunk.byteLength;
  }
  return { digest: new Uint8Array(hash.digest()), bytes };
}

function randomBytes(size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) {
    crypto.getRandomValues(bytes.subarray(i, Math.min(size, i + 65536)));
  }
  return bytes;
}

function reprDigest(response: Response): Uint8Array | undefined {
  const header = response.headers.get("repr-digest");
  return header ? parseDigestHeader(header).get("sha-256") : undefined;
}

async function rpcFlow(
  transport: Transport,
  signal: AbortSignal,
): Promise<void> {
  const client = createClient(StreamingCalcService, transport);
  const sum = client.sum({ signal });
  for (let i = 1n; i <= 10n; i++) await sum.send(i);
  await sum.complete();
  assert.equal(await deadline(sum.receive(), T, "sum"), 55n);

  const running = client.incrementalSum({ signal });
  let expected = 0n;
  for (let i = 1n; i <= 10n; i++) {
    await deadline(running.send(i), T, `send ${i}`);
    expected += i;
    assert.deepEqual(await deadline(running.receive(), T, `reply ${i}`), {
      done: false,
      value: expected,
    });
  }
  await running.complete();
  assert.equal((await deadline(running.receive(), T)).done, true);

  const overflow = client.sum({ signal });
  await overflow.send(MAX);
  await overflow.send(1n);
  await overflow.complete().catch(() => {});
  const error = await overflow.receive().then(
    () => assert.fail("expected OUT_OF_RANGE"),
    (error) => error,
  );
  assert.ok(error instanceof RpcError, String(error));
  assert.equal(error.code, Code.OutOfRange);
}

/** The bytes the file store holds for an upload URL. */
async function storedSha256(target: Target, uploadUrl: string) {
  const id = new URL(uploadUrl).pathname.split("/").pop()!;
  const path = createResumableFileStore(target.resumableDir!).path(id);
  return sha256(new Uint8Array(await readFile(path)));
}

/** Runs one tus-js-client upload to its end; the upload URL. */
function tusUpload(
  options: tus.UploadOptions & { file: Uint8Array },
  onStart?: (upload: tus.Upload) => void,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(
      // tus-js-client's Node build reads a Buffer (or a Node stream).
      Buffer.from(options.file) as never,
      {
        ...options,
        onError: reject,
        onSuccess: () => resolve(upload.url!),
      },
    );
    onStart?.(upload);
    upload.start();
  });
}

/**
 * Resumable uploads from Node: each client is interrupted after its first
 * acknowledged chunk and resumed from the upload URL it was given, as after
 * a process restart; the stored file's SHA-256 is checked.
 */
function resumableChecks(
  target: Target,
  check: (
    flow: Flow,
    name: string,
    fn: (signal: AbortSignal) => Promise<void>,
  ) => void,
): void {
  check(
    "resumable",
    "tus-js-client (node:http) uploads 6 MiB in 1 MiB chunks, stopped after the first and resumed from its URL",
    async () => {
      const data = randomBytes(6 * MiB + 11);
      const endpoint = target.resumableUrl!.href;
      let firstUrl = "";
      await deadline(
        new Promise<void>((resolve, reject) => {
          const upload = new tus.Upload(Buffer.from(data) as never, {
            endpoint,
            chunkSize: MiB,
            onError: reject,
            onSuccess: () => reject(new Error("not stopped")),
            onChunkComplete: () => {
              firstUrl = upload.url!;
              // Stops the upload as a process exit would; its bytes so far
              // stay on the server.
              upload.abort().then(resolve, reject);
            },
          });
          upload.start();
        }),
        T,
        "first tus-js-client upload",
      );
      assert.match(firstUrl, /^http:\/\/127\.0\.0\.1:\d+\/uploads\//);
      const head = await fetch(firstUrl, {
        method: "HEAD",
        headers: { "tus-resumable": "1.0.0" },
      });
      const offset = Number(head.headers.get("upload-offset"));
      assert.ok(offset >= MiB && offset < data.byteLength, `offset ${offset}`);
      const url = await deadline(
        tusUpload({ uploadUrl: firstUrl, chunkSize: MiB, file: data }),
        T,
        "resumed tus-js-client upload",
      );
      assert.equal(url, firstUrl);
      assert.deepEqual(await storedSha256(target, url), sha256(data));
    },
  );

  for (const protocol of ["ietf", "tus"] as const) {
    check(
      "resumable",
      `resumableUpload (Node's fetch, ${protocol}) is aborted after its first 1 MiB and resumed from its upload URL`,
      async (signal) => {
        const data = randomBytes(5 * MiB + 3);
        const url = target.resumableUrl!.href;
        const stop = new AbortController();
        let uploadUrl = "";
        const first = await resumableUpload(url, data, {
          protocol,
          chunkBytes: MiB,
          signal: AbortSignal.any([signal, stop.signal]),
          onUploadUrl: (created) => {
            uploadUrl = created;
          },
          onProgress: (acknowledged) => {
            if (acknowledged >= MiB) stop.abort(new Error("stopped"));
          },
        }).then(() => "completed", (error) => error);
        assert.notEqual(first, "completed");
        assert.ok(uploadUrl, "no upload URL before the abort");
        const acknowledged: number[] = [];
        const result = await deadline(
          resumableUpload(url, data, {
            protocol,
            chunkBytes: MiB,
            uploadUrl,
            signal,
            onProgress: (bytes) => acknowledged.push(bytes),
          }),
          T,
          "resumed resumableUpload",
        );
        assert.equal(result.uploadUrl, uploadUrl);
        assert.equal(result.bytes, data.byteLength);
        // Resumed, not restarted: the first progress report is past 1 MiB.
        assert.ok(acknowledged[0] >= MiB, `progress ${acknowledged}`);
        assert.deepEqual(await storedSha256(target, uploadUrl), sha256(data));
      },
    );
  }
}

const deno: Target = { name: "Deno.serve" };
const bun: Target = { name: "Bun.serve" };
const workerd: Target = { name: "workerd" };
let denoChild: ChildProcess | undefined;
let bunChild: ChildProcess | undefined;
let stopWorkerd: (() => Promise<void>) | undefined;

before(async () => {
  const denoServer = await startServer(denoExecutable(), [
    "run",
    "--allow-net=127.0.0.1",
    "--allow-env",
    "--allow-read",
    "--allow-write=./.tmp",
  ]);
  denoChild = denoServer.child;
  Object.assign(deno, denoServer);
  if (process.env.BUN) {
    const bunServer = await startServer(process.env.BUN, ["run"]);
    bunChild = bunServer.child;
    Object.assign(bun, bunServer);
  } else {
    bun.skip = "BUN is not set";
  }
  const running = await startWorkerd({
    root: ROOT,
    vars: { MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES) },
  });
  workerd.url = running.url;
  workerd.skip = undefined;
  stopWorkerd = running.stop;
});

after(async () => {
  await Promise.all([stopServer(denoChild), stopServer(bunChild)]);
  // The servers are killed, so their stores' directories are removed here.
  for (const target of [deno, bun]) {
    if (target.resumableDir) {
      await rm(target.resumableDir, { recursive: true, force: true });
    }
  }
  await stopWorkerd?.();
  await mkdir(dirname(RESULTS), { recursive: true });
  await writeFile(
    RESULTS,
    JSON.stringify(
      { node: process.version, results },
      null,
      2,
    ) + "\n",
  );
});

function checks(target: Target, flows: Set<Flow>, polyfilled: boolean): void {
  const check = (
    flow: Flow,
    name: string,
    fn: (signal: AbortSignal) => Promise<void>,
  ) => {
    if (flows.has(flow)) checkOne(target, flow, name, fn, { polyfilled });
  };
  check(
    "upload",
    "upload sends a Blob with Content-Length and Content-Digest",
    async () => {
      const bytes = randomBytes(MiB + 3);
      const response = await upload(
        new URL("/upload", target.url),
        new Blob([bytes]),
        {
          sha256: sha256(bytes),
        },
      );
      assert.equal(response.status, 200);
      assert.equal(await response.text(), "File Received!");
      assert.deepEqual(reprDigest(response), sha256(bytes));
    },
  );

  check(
    "upload",
    "upload streams a ReadableStream body (duplex: half)",
    async () => {
      const size = 4 * MiB;
      const expected = await sha256OfStream(generatedStream(size));
      const response = await deadline(
        upload(new URL("/upload", target.url), generatedStream(size)),
        T,
        "upload",
      );
      assert.equal(response.status, 200);
      await response.body?.cancel();
      assert.deepEqual(reprDigest(response), expected.digest);
    },
  );

  check(
    "upload",
    "upload of a stream with contentLength sends Content-Length",
    async () => {
      const size = 256 * 1024;
      const response = await upload(
        new URL("/upload", target.url),
        generatedStream(size),
        {
          contentLength: size,
        },
      );
      assert.equal(response.status, 200);
      await response.body?.cancel();
      // A stream that sends one byte and then waits, declared over the
      // server's limit: the 413 can only come from the Content-Length header.
      // (Node's fetch holds the headers back until the first body chunk.)
      const declared = MAX_UPLOAD_BYTES + 1;
      const stop = new AbortController();
      let first = true;
      const silent = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (first) {
            first = false;
            controller.enqueue(new Uint8Array(1));
            return;
          }
          return new Promise<void>((resolve) =>
            stop.signal.addEventListener("abort", () => resolve())
          );
        },
      });
      try {
        const refused = await deadline(
          upload(new URL("/upload", target.url), silent, {
            contentLength: declared,
            signal: stop.signal,
          }),
          T,
          "413",
        );
        assert.equal(refused.status, 413);
        assert.equal(
          await refused.text(),
          `Cannot accept body: Content-Length ${declared} exceeds maxBytes ${MAX_UPLOAD_BYTES}`,
        );
      } finally {
        stop.abort();
      }
    },
  );

  check(
    "upload",
    "upload through /forward comes back forwarded (forwardResponse)",
    async () => {
      const bytes = randomBytes(512 * 1024);
      const response = await upload(
        new URL("/forward", target.url),
        new Blob([bytes]),
        {
          sha256: sha256(bytes),
        },
      );
      assert.equal(response.status, 200);
      assert.equal(await response.text(), "File Received!");
      assert.deepEqual(reprDigest(response), sha256(bytes));
    },
  );

  check(
    "duplex-http",
    "openDuplex echoes Hello, World! after closeWrite",
    async () => {
      const { stream } = openDuplex(new URL("/echo", target.url));
      await stream.write("Hello, ");
      await stream.write("World!");
      await stream.closeWrite();
      let text = "";
      for await (const chunk of stream) {
        text += new TextDecoder().decode(chunk);
      }
      assert.equal(text, "Hello, World!");
    },
  );

  check(
    "duplex-http",
    "openDuplex completes 100 lockstep round trips over HTTP/1.1",
    async () => {
      const { stream } = openDuplex(new URL("/duplex", target.url));
      await deadline(lockstep(stream, 100), T, "lockstep");
    },
  );

  check(
    "duplex-http",
    "openDuplex echoes 8 MiB intact while sending",
    async () => {
      const { stream } = openDuplex(new URL("/echo", target.url));
      const size = 8 * MiB;
      const writing = (async () => {
        for await (const chunk of generatedStream(size)) {
          await stream.write(chunk);
        }
        await stream.closeWrite();
      })();
      const [got, sent] = await deadline(
        Promise.all([
          sha256OfStream(stream),
          sha256OfStream(generatedStream(size)),
        ]),
        T,
        "8 MiB echo",
      );
      await writing;
      assert.equal(got.bytes, size);
      assert.deepEqual(got.digest, sent.digest);
    },
  );

  check(
    "websocket",
    "websocketDuplex completes 50 lockstep round trips over WebSocket",
    async (signal) => {
      const wsUrl = new URL("/ws", target.url);
      wsUrl.protocol = "ws:";
      const socket = new WebSocket(wsUrl);
      signal.addEventListener("abort", () => socket.close());
      const stream = websocketDuplex(socket);
      await deadline(lockstep(stream, 50, { prefix: "" }), T, "lockstep");
    },
  );

  check(
    "rpc-web",
    "Connect: sum, lockstep incrementalSum, OUT_OF_RANGE",
    (signal) =>
      rpcFlow(createConnectTransport({ baseUrl: target.url! }), signal),
  );

  check(
    "rpc-web",
    "gRPC-Web: sum, lockstep incrementalSum, OUT_OF_RANGE",
    (signal) =>
      rpcFlow(createGrpcWebTransport({ baseUrl: target.url! }), signal),
  );

  if (target !== workerd) {
    resumableChecks(target, check);
    check(
      "rpc-grpc",
      "native gRPC over node:http2: sum, lockstep incrementalSum, OUT_OF_RANGE",
      async (signal) => {
        const httpClient = createHttp2Client(target.grpcUrl!);
        try {
          await rpcFlow(
            createGrpcTransport({ baseUrl: target.grpcUrl!, httpClient }),
            signal,
          );
        } finally {
          await httpClient.close();
        }
      },
    );
  }
}

const ALL_FLOWS = new Set<Flow>([
  "upload",
  "duplex-http",
  "websocket",
  "rpc-web",
  "rpc-grpc",
  "resumable",
]);

for (const target of [deno, bun, workerd]) {
  describe(`Node client → ${target.name}`, () => {
    checks(target, ALL_FLOWS, false);
  });
}

if (!NATIVE_WITH_RESOLVERS) {
  describe("Node client with a Promise.withResolvers polyfill", () => {
    let uninstall: (() => void) | undefined;
    before(() => {
      uninstall = installWithResolvers();
    });
    after(() => uninstall?.());
    for (const target of [deno, bun, workerd]) {
      describe(`Node client (polyfilled) → ${target.name}`, () => {
        checks(target, NEEDS_WITH_RESOLVERS, true);
      });
    }
  });
}

// The server side on Node, in process: serveHttp2 runs there too
// (docs/runtimes.md), and a Node test suite calls a handler through
// createUniversalHandlerClient. Both failed on Node 20, which has no
// Promise.withResolvers (scripts/check_layers.ts now refuses it in lib/).
describe("Node 20 running the handlers in process", () => {
  it("a fused bidi call in lockstep (incrementalSum's ScanStream) through createUniversalHandlerClient", async () => {
    const client = createClient(
      StreamingCalcService,
      createGrpcTransport({
        baseUrl: "http://in-process",
        httpClient: createUniversalHandlerClient(
          createUniversalHandler(streamingCalc, serverOptions),
        ),
      }),
    );
    const call = client.incrementalSum();
    const sums: bigint[] = [];
    for (let i = 1n; i <= 5n; i++) {
      await call.send(i);
      const reply = await deadline(call.receive(), 10_000, "a reply");
      assert.equal(reply.done, false);
      sums.push(reply.value!);
    }
    await call.complete();
    assert.equal((await call.receive()).done, true);
    assert.deepEqual(sums, [1n, 3n, 6n, 10n, 15n]);
  });

  it("createResumableUploadHandler on a file store, called by resumableUpload through a fetch in process", async () => {
    const dir = join(process.cwd(), ".tmp", `node-resumable-${process.pid}`);
    await mkdir(dir, { recursive: true });
    try {
      const handler = createResumableUploadHandler({
        store: createResumableFileStore(dir),
        requestPathPrefix: "/uploads",
      });
      const body = new Uint8Array(300_000).map((_, i) => i % 251);
      const result = await resumableUpload(
        "http://in-process/uploads",
        body,
        {
          chunkBytes: 100_000,
          maxRetries: 0,
          fetch: ((input: RequestInfo | URL, init?: RequestInit) =>
            handler(new Request(input, init))) as typeof fetch,
        },
      );
      assert.equal(result.bytes, body.byteLength);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("Node 20's fetch and a stream body", () => {
  it("upload() aborted by its signal cancels the caller's stream (undici read it to its end, 256 MiB, never cancelled)", async () => {
    const { createServer } = await import("node:http");
    // Reads and never answers: the upload goes on until the abort.
    const server = createServer((request) => void request.resume());
    await new Promise<void>((ready) =>
      server.listen(0, "127.0.0.1", () => ready())
    );
    const { port } = server.address() as { port: number };
    try {
      for (const onProgress of [undefined, () => {}]) {
        const controller = new AbortController();
        let pulled = 0;
        let cancelled: unknown;
        const body = new ReadableStream<Uint8Array>({
          pull(c) {
            if (pulled >= 256 * 2 ** 20) return c.close();
            pulled += 65_536;
            c.enqueue(new Uint8Array(65_536));
          },
          cancel(reason) {
            cancelled = reason;
          },
        }, { highWaterMark: 0 });
        const sent = upload(`http://127.0.0.1:${port}/`, body, {
          signal: controller.signal,
          onProgress,
        });
        setTimeout(() => controller.abort(new Error("user stop")), 200);
        await assert.rejects(sent, { message: "user stop" });
        const atAbort = pulled;
        await new Promise((resolve) => setTimeout(resolve, 500));
        assert.equal((cancelled as Error)?.message, "user stop");
        assert.ok(
          pulled <= atAbort + 65_536,
          `pulled ${pulled} bytes after the abort, from ${atAbort}`,
        );
      }
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe("Node 20's WebSocket and a connection that fails", () => {
  // Node 20's WebSocket (undici 6) fires `error` and never `close` when its
  // connection fails (refused, or an HTTP answer instead of 101), its
  // readyState left CONNECTING: a websocketDuplex read and a call over
  // createWebSocketTransport waited for good (a call with a timeout failed
  // DEADLINE_EXCEEDED instead of UNAVAILABLE).
  const refusingServer = async () => {
    const { createServer } = await import("node:http");
    const server = createServer((_request, response) => {
      response.writeHead(404).end("no WebSocket here");
    });
    await new Promise<void>((ready) =>
      server.listen(0, "127.0.0.1", () => ready())
    );
    return server;
  };

  it("websocketDuplex fails its read and write with 1006 and the runtime's words", async () => {
    const server = await refusingServer();
    const { port } = server.address() as { port: number };
    try {
      const stream = websocketDuplex(
        new WebSocket(`ws://127.0.0.1:${port}/socket`),
      );
      await assert.rejects(
        deadline(stream.readPartial(), T),
        (error: Error) => {
          assert.match(error.message, /1006/);
          assert.match(error.message, /101|network error/);
          return true;
        },
      );
      await assert.rejects(deadline(stream.write("late"), T), /1006/);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it("a call over createWebSocketTransport fails UNAVAILABLE, refused or answered 404", async () => {
    const server = await refusingServer();
    const { port } = server.address() as { port: number };
    // A port nobody listens on: one bound and closed again.
    const closed = await refusingServer();
    const closedPort = (closed.address() as { port: number }).port;
    await new Promise((done) => closed.close(done));
    try {
      for (
        const url of [`ws://127.0.0.1:${port}`, `ws://127.0.0.1:${closedPort}`]
      ) {
        const client = createClient(
          StreamingCalcService,
          createWebSocketTransport({ baseUrl: url }),
        );
        const call = client.sum({ timeoutMs: T });
        await assert.rejects(deadline(call.receive(), T), (error: RpcError) => {
          assert.equal(
            error.code,
            Code.Unavailable,
            `${url}: ${error.message}`,
          );
          return true;
        });
      }
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
