// serveHttp2 and a request still coming after its response ended: once the
// response's END_STREAM is out (its trailers, or its body's end), the
// stream is reset with RST_STREAM NO_ERROR (RFC 9113, 8.1: the client is
// asked to stop sending, without error), after the whole response. Before,
// a client that kept sending into a finished call had its bytes read and
// thrown away (60-385 MiB in 3 s) and never learnt to stop. Real peers
// (grpc-js, Deno's fetch over h2c, sluice's own gRPC client, curl) still
// see the answer as a success, and a call whose client ended its request
// first gets no reset. Under Bun (and Node): Deno's HTTP/2 server closed
// whole sessions under load after such resets, so there are none there.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { connect, type Socket } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { FRAME, frame, getFrame } from "./_h2_frames.ts";
import {
  Code,
  createClient,
  createGrpcTransport,
  createUniversalHandler,
  defineService,
  implementService,
  Int64Value,
  RpcError,
} from "../lib/rpc/mod.ts";
import { createHttp2Client, serveHttp2 } from "../lib/runtime/grpc_node.ts";
import type { UniversalHandler } from "../lib/rpc/universal.ts";
import { GRPC_JS_OPTIONS } from "./_calc_peers.ts";
import {
  curlAvailable,
  deadline,
  h2cClient,
  makeTempDir,
  removeDir,
  runProcess,
  runtime,
} from "./_helpers.ts";

const T = 20_000;
const MiB = 1024 * 1024;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const ACK = 0x1;
const enc = new TextEncoder();

/** What a raw upload saw of its stream, in order. */
interface RawUpload {
  /**
   * "headers", "data" (one or more DATA frames), "end" (END_STREAM on
   * HEADERS or DATA), "trailers" (a second HEADERS) and "rst <code>".
   */
  events: string[];
  /** Response body bytes received. */
  responseBytes: number;
  /** Request body bytes sent (DATA payloads). */
  sentBytes: number;
}

/** An HPACK literal without indexing, new name (RFC 7541, 6.2.2). */
function literal(name: string, value: string): number[] {
  const n = enc.encode(name);
  const v = enc.encode(value);
  return [0x00, n.byteLength, ...n, v.byteLength, ...v];
}

/** What {@linkcode rawUpload} sends. */
interface RawUploadOptions {
  /** Request headers besides the pseudo-headers. */
  headers?: Record<string, string>;
  /** The payload of each DATA frame (at most 16 KiB). */
  chunk?: Uint8Array;
  /** Ends the request (END_STREAM) once this many bytes are sent. */
  endAfterBytes?: number;
  /** The most bytes sent before giving up. */
  maxBytes?: number;
  /** The longest the upload goes on, in milliseconds. */
  ms?: number;
}

/**
 * A raw HTTP/2 client on 127.0.0.1:`port`: a POST of `path` on stream 1
 * whose body it sends for as long as flow control lets it (each DATA frame
 * `chunk`), until the stream is reset, `maxBytes` are sent or `ms` have
 * passed, or ends it after `endAfterBytes`. It reads the response as a
 * client would (each DATA frame given back in WINDOW_UPDATEs). Resolves
 * once stream 1 is reset, or has ended both ways and a GET on stream 3
 * sent then has been answered whole (a reset of stream 1 would have come
 * by then), or `ms` have passed.
 */
async function rawUpload(
  port: number,
  path: string,
  {
    headers = {},
    chunk = new Uint8Array(16384).fill(7),
    endAfterBytes = Infinity,
    maxBytes = 256 * MiB,
    ms = 5_000,
  }: RawUploadOptions = {},
): Promise<RawUpload> {
  const socket: Socket = connect(port, "127.0.0.1");
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  socket.on("error", () => {});
  const seen: RawUpload = { events: [], responseBytes: 0, sentBytes: 0 };
  let connectionWindow = 65535;
  let streamWindow = 65535;
  let reset = false;
  let requestEnded = false;
  let probing = false;
  const { promise: done, resolve: finish } = Promise.withResolvers<void>();
  const timer = setTimeout(finish, ms);
  socket.once("close", () => finish());
  const pump = () => {
    // At most a few frames ahead of the socket, as a real client.
    while (
      !reset && !requestEnded && seen.sentBytes < maxBytes &&
      socket.writableLength < 65536
    ) {
      const n = Math.min(chunk.byteLength, connectionWindow, streamWindow);
      if (n <= 0) return;
      connectionWindow -= n;
      streamWindow -= n;
      seen.sentBytes += n;
      requestEnded = seen.sentBytes >= endAfterBytes;
      socket.write(
        frame(
          FRAME.DATA,
          requestEnded ? END_STREAM : 0,
          1,
          chunk.subarray(0, n),
        ),
      );
    }
  };
  socket.on("drain", pump);
  const windowUpdate = (streamId: number, n: number) => {
    const payload = new Uint8Array(4);
    new DataView(payload.buffer).setUint32(0, n);
    return frame(FRAME.WINDOW_UPDATE, 0, streamId, payload);
  };
  const onFrame = (
    type: number,
    flags: number,
    streamId: number,
    payload: DataView,
    length: number,
  ) => {
    if (type === FRAME.SETTINGS && !(flags & ACK)) {
      for (let i = 0; i + 6 <= length; i += 6) {
        // SETTINGS_INITIAL_WINDOW_SIZE
        if (payload.getUint16(i) === 4) {
          streamWindow += payload.getUint32(i + 2) - 65535;
        }
      }
      socket.write(frame(FRAME.SETTINGS, ACK, 0));
    } else if (type === FRAME.WINDOW_UPDATE) {
      const n = payload.getUint32(0) & 0x7fffffff;
      if (streamId === 0) connectionWindow += n;
      else if (streamId === 1) streamWindow += n;
    } else if (streamId === 3) {
      // The probe's answer, whole: stream 1 has told all it will.
      if (flags & END_STREAM && type !== FRAME.RST_STREAM) finish();
    } else if (type === FRAME.HEADERS && streamId === 1) {
      const first = !seen.events.includes("headers");
      seen.events.push(first ? "headers" : "trailers");
      if (flags & END_STREAM && first) seen.events.push("end");
    } else if (type === FRAME.DATA && streamId === 1) {
      if (seen.events.at(-1) !== "data") seen.events.push("data");
      seen.responseBytes += length;
      if (flags & END_STREAM) seen.events.push("end");
      if (length > 0) {
        socket.write(windowUpdate(0, length));
        socket.write(windowUpdate(1, length));
      }
    } else if (type === FRAME.RST_STREAM && streamId === 1) {
      seen.events.push(`rst ${payload.getUint32(0)}`);
      reset = true;
      finish();
    } else if (type === FRAME.GOAWAY) {
      seen.events.push(`goaway ${payload.getUint32(4)}`);
    }
    const answered = seen.events.includes("end") ||
      seen.events.includes("trailers");
    if (requestEnded && answered && !reset && !probing) {
      probing = true;
      socket.write(getFrame(3, "/probe"));
    }
  };
  let buffer = new Uint8Array(0);
  socket.on("data", (data: Uint8Array) => {
    const joined = new Uint8Array(buffer.byteLength + data.byteLength);
    joined.set(buffer);
    joined.set(data, buffer.byteLength);
    buffer = joined;
    let at = 0;
    while (buffer.byteLength - at >= 9) {
      const view = new DataView(buffer.buffer, buffer.byteOffset + at);
      const length = view.getUint32(0) >>> 8;
      if (buffer.byteLength - at < 9 + length) break;
      onFrame(
        buffer[at + 3],
        buffer[at + 4],
        view.getUint32(5) & 0x7fffffff,
        new DataView(buffer.buffer, buffer.byteOffset + at + 9),
        length,
      );
      at += 9 + length;
    }
    buffer = buffer.slice(at);
    pump();
  });
  socket.write(enc.encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
  socket.write(frame(FRAME.SETTINGS, 0, 0));
  const block = [
    0x83, // :method POST
    0x86, // :scheme http
    ...literal(":path", path),
    ...literal(":authority", "127.0.0.1"),
    ...Object.entries(headers).flatMap(([name, value]) => literal(name, value)),
  ];
  socket.write(frame(FRAME.HEADERS, END_HEADERS, 1, new Uint8Array(block)));
  pump();
  try {
    await done;
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
  return seen;
}

/** `bytes` zero bytes in chunks of 64 KiB. */
function zeros(bytes: number): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (let at = 0; at < bytes; at += 65536) {
        controller.enqueue(new Uint8Array(Math.min(65536, bytes - at)));
      }
      controller.close();
    },
  });
}

/**
 * The plain handler: `/trailers` answers 1 MiB and a trailer, `/body` a
 * 413 with a body of 1 MiB, `/empty` a 413 with no body, all without
 * reading the request; `/read` reads the whole request first and answers
 * its length and a trailer. Anything else is answered 200 with no body.
 */
const plain: UniversalHandler = async (request) => {
  const path = new URL(request.url).pathname;
  const headers = new Headers({ "content-type": "application/octet-stream" });
  if (path === "/trailers") {
    return {
      status: 200,
      headers,
      body: zeros(MiB),
      trailers: Promise.resolve(new Headers({ "x-done": "yes" })),
    };
  }
  if (path === "/body") return { status: 413, headers, body: zeros(MiB) };
  if (path === "/empty") return { status: 413, headers };
  if (path === "/read") {
    let n = 0;
    for await (const chunk of request.body ?? []) n += chunk.byteLength;
    return {
      status: 200,
      headers,
      body: ReadableStream.from([enc.encode(String(n))]),
      trailers: Promise.resolve(new Headers({ "x-done": "yes" })),
    };
  }
  return { status: 200, headers };
};

/** A client-streaming service whose methods answer before the stream ends. */
const EarlyService = defineService("test.v1.EarlyService", {
  first: { kind: "client-streaming", input: Int64Value, output: Int64Value },
  refuse: { kind: "client-streaming", input: Int64Value, output: Int64Value },
});

/** `first` returns the first value; `refuse` fails before reading any. */
const early = implementService(EarlyService, {
  first: async (values) => {
    for await (const v of values) return v;
    return -1n;
  },
  refuse: () => {
    throw new RpcError(Code.PermissionDenied, "Cannot sum: not allowed");
  },
});

/** Many gRPC messages (Int64Value 1, 7 bytes each) in one DATA payload. */
function grpcMessages(): Uint8Array {
  const message = [0, 0, 0, 0, 2, 0x08, 0x01];
  const out = new Uint8Array(2340 * message.length);
  for (let at = 0; at < out.byteLength; at += message.length) {
    out.set(message, at);
  }
  return out;
}

const GRPC_HEADERS = { "content-type": "application/grpc", te: "trailers" };

// Not under Deno, whose HTTP/2 server closed whole sessions under load
// after such resets (serveHttp2's stopRequest): there the request is read.
const NOT_DENO = {
  skip: runtime === "deno" &&
    "no reset under Deno (lib/runtime/serve_http2.ts)",
};

describe("serveHttp2 stops a request still coming once its response ended (RST_STREAM NO_ERROR)", () => {
  let server: Awaited<ReturnType<typeof serveHttp2>>;
  const faults: unknown[] = [];
  before(async () => {
    const rpc = createUniversalHandler(early, {
      onError: (error) => void faults.push(error),
    });
    server = await serveHttp2((request) =>
      new URL(request.url).pathname.startsWith("/test.v1.")
        ? rpc(request)
        : plain(request)
    );
  });
  after(async () => {
    await server.shutdown();
    assert.deepEqual(faults, [], "nothing is told to onError");
  });

  it(
    "serveHttp2 resets with NO_ERROR after the whole response and its trailers, with the request unread",
    NOT_DENO,
    async () => {
      const seen = await deadline(rawUpload(server.port, "/trailers"), T);
      assert.deepEqual(seen.events, ["headers", "data", "trailers", "rst 0"]);
      assert.equal(seen.responseBytes, MiB);
    },
  );

  it(
    "serveHttp2 resets with NO_ERROR after the whole body of a 413 with no trailers",
    NOT_DENO,
    async () => {
      const seen = await deadline(rawUpload(server.port, "/body"), T);
      assert.deepEqual(seen.events, ["headers", "data", "end", "rst 0"]);
      assert.equal(seen.responseBytes, MiB);
    },
  );

  it(
    "serveHttp2 resets with NO_ERROR after a 413 of headers alone",
    NOT_DENO,
    async () => {
      const seen = await deadline(rawUpload(server.port, "/empty"), T);
      assert.deepEqual(seen.events, ["headers", "end", "rst 0"]);
    },
  );

  it(
    "serveHttp2 resets with NO_ERROR a gRPC client-streaming call answered after its first message, and reads a bounded amount (it read and discarded 60-385 MiB in 3 s)",
    NOT_DENO,
    async () => {
      const seen = await deadline(
        rawUpload(server.port, "/test.v1.EarlyService/first", {
          headers: GRPC_HEADERS,
          chunk: grpcMessages(),
        }),
        T,
      );
      assert.ok(
        seen.sentBytes < 8 * MiB,
        `${seen.sentBytes} bytes sent before the reset`,
      );
      assert.deepEqual(seen.events, ["headers", "data", "trailers", "rst 0"]);
    },
  );

  it(
    "serveHttp2 resets with NO_ERROR a gRPC call refused before it read its request (Trailers-Only)",
    NOT_DENO,
    async () => {
      const seen = await deadline(
        rawUpload(server.port, "/test.v1.EarlyService/refuse", {
          headers: GRPC_HEADERS,
          chunk: grpcMessages(),
        }),
        T,
      );
      assert.deepEqual(seen.events, ["headers", "end", "rst 0"]);
      assert.ok(seen.sentBytes < 8 * MiB, `${seen.sentBytes} bytes sent`);
    },
  );

  it("serveHttp2 sends no RST_STREAM for a call whose client ended its request first", async () => {
    const seen = await deadline(
      rawUpload(server.port, "/read", { endAfterBytes: 200_000 }),
      T,
    );
    assert.deepEqual(seen.events, ["headers", "data", "trailers"]);
    assert.ok(seen.sentBytes >= 200_000);
  });
});

describe("serveHttp2's RST_STREAM NO_ERROR after an early answer: real peers see the answer", () => {
  let server: Awaited<ReturnType<typeof serveHttp2>>;
  const faults: unknown[] = [];
  before(async () => {
    const rpc = createUniversalHandler(early, {
      onError: (error) => void faults.push(error),
    });
    server = await serveHttp2((request) =>
      new URL(request.url).pathname.startsWith("/test.v1.")
        ? rpc(request)
        : plain(request)
    );
  });
  after(async () => {
    await server.shutdown();
    assert.deepEqual(faults, [], "nothing is told to onError");
  });

  it("grpc-js: a client-streaming call answered after its first message succeeds with it", async () => {
    const client = new grpc.Client(
      `127.0.0.1:${server.port}`,
      grpc.credentials.createInsecure(),
      GRPC_JS_OPTIONS,
    );
    try {
      const value = await deadline(
        new Promise<bigint>((resolve, reject) => {
          let answered = false;
          const call = client.makeClientStreamRequest(
            "/test.v1.EarlyService/first",
            (v: bigint) => Buffer.from(Int64Value.proto.encode(v)),
            (b: Buffer) => Int64Value.proto.decode(new Uint8Array(b)),
            (error, v) => {
              answered = true;
              if (error) reject(error);
              else resolve(v!);
            },
          );
          // Sends on until the answer (at most 100,000 messages).
          let sent = 0;
          const write = () => {
            while (!answered && sent < 100_000) {
              if (!call.write(BigInt(++sent))) return;
            }
          };
          call.on("drain", write);
          write();
        }),
        T,
      );
      assert.equal(value, 1n);
    } finally {
      client.close();
    }
  });

  it("sluice's gRPC client over node:http2: a client-streaming call answered after its first message succeeds with it", async () => {
    const httpClient = createHttp2Client(server.url);
    try {
      const call = createClient(
        EarlyService,
        createGrpcTransport({ baseUrl: server.url, httpClient }),
      ).first();
      let answered = false;
      const answer = call.receive().finally(() => answered = true);
      // Sends on until the answer (at most 100,000 messages); a send after
      // it may fail, the call having ended.
      for (let i = 1n; !answered && i <= 100_000n; i++) {
        await call.send(i).catch(() => {});
      }
      assert.equal(await deadline(answer, T), 1n);
    } finally {
      await httpClient.close();
    }
  });

  // Only an answer without HTTP trailers (the ones fetch sees): hyper (Deno
  // 2.9.6's fetch) failed the body of an answer with trailers followed by
  // RST_STREAM NO_ERROR ("http2 error"), as it did against Go's servers,
  // until hyperium/hyper#3998; native gRPC, the one answer with trailers,
  // is no fetch client's.
  it(
    "Deno's fetch over h2c: the whole body of an early 413 arrives while the request body still has data",
    { skip: runtime !== "deno" && "h2c needs Deno.createHttpClient" },
    async () => {
      const h2c = h2cClient();
      try {
        // 256 MiB at most, far more than is sent before the answer.
        let pulls = 0;
        const body = new ReadableStream<Uint8Array>({
          pull(controller) {
            if (++pulls > 4096) return controller.close();
            controller.enqueue(new Uint8Array(65536));
          },
        });
        const response = await deadline(
          h2c.fetch(new URL("/body", server.url), {
            method: "POST",
            body,
            duplex: "half",
          } as RequestInit),
          T,
        );
        assert.equal(response.status, 413);
        const bytes = await deadline(response.bytes(), T);
        assert.equal(bytes.byteLength, MiB);
        assert.ok(pulls < 4096, `${pulls} pulls of the request body`);
      } finally {
        h2c.close();
      }
    },
  );

  it("curl --http2-prior-knowledge: a 64 MiB upload answered 413 early gets the whole answer, exit 0", async (t) => {
    if (!await curlAvailable()) return t.skip("no curl");
    const dir = await makeTempDir("h2rst-");
    try {
      const file = join(dir, "upload.bin");
      await writeFile(file, new Uint8Array(64 * MiB));
      const out = await runProcess("curl", [
        "-sS",
        "--http2-prior-knowledge",
        "--max-time",
        "20",
        "-X",
        "POST",
        "-T",
        file,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{size_download} %{size_upload}",
        new URL("/body", server.url).href,
      ], { cwd: dir, timeoutMs: T });
      assert.equal(out.stderr, "");
      assert.equal(out.code, 0);
      const [status, downloaded, uploaded] = out.stdout.split(" ");
      assert.equal(`${status} ${downloaded}`, `413 ${MiB}`);
      assert.ok(Number(uploaded) < 64 * MiB, `${uploaded} bytes uploaded`);
    } finally {
      await removeDir(dir);
    }
  });
});
