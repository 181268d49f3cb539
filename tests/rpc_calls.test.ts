// Our RPC servers and clients together, over each protocol: the gRPC streaming guide's
// outputs, every method kind, errors and their codes, deadlines,
// cancellation, compression, limits, malformed input and full duplex.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Code,
  createClient,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  createRpcHandler,
  createUniversalHandler,
  defineService,
  FrameDecoder,
  implementService,
  Int64Value,
  type MessageType,
  RpcError,
  type Transport,
  type UniversalHandler,
} from "../lib/rpc/mod.ts";
import { ScanStream } from "../lib/streams/mod.ts";
import {
  createHttp2Client,
  type Http2Server,
  serveHttp2,
} from "../lib/runtime/grpc_node.ts";
import type { Server } from "../lib/runtime/serve.ts";
import {
  addInt64,
  runIncrementalSum,
  runSum,
  streamingCalc,
  StreamingCalcService,
} from "../examples/streaming_calc.ts";
import {
  Bytes,
  deadline,
  h2cClient,
  runtime,
  startChild,
  startServer,
} from "./_helpers.ts";

const T = 20_000;

const MAX = (1n << 63n) - 1n;

// Raw bytes decoded as views of the bytes they arrived in (as a
// protobuf-es `bytes` field is): what a reader whose buffer is reused by
// the next read (a BYOB read, lib/streams/_chunk_reader.ts) must not
// overwrite.
const View: MessageType<Uint8Array> = {
  typeName: "test.View",
  proto: { encode: (value) => value, decode: (bytes) => bytes },
};

const TestService = defineService("test.v1.TestService", {
  echo: { kind: "unary", input: Int64Value, output: Int64Value },
  count: { kind: "server-streaming", input: Int64Value, output: Int64Value },
  wait: { kind: "client-streaming", input: Int64Value, output: Int64Value },
  blob: { kind: "bidi", input: Bytes, output: Bytes },
  scan: { kind: "bidi", input: Int64Value, output: Int64Value },
  big: { kind: "server-streaming", input: Int64Value, output: Bytes },
  keep: { kind: "bidi", input: View, output: View },
});

let lastWaitSignal: AbortSignal | undefined;
/** Resolves with the signal of the next `wait` call the server starts. */
let waitStarted = Promise.withResolvers<AbortSignal>();
const testImpl = implementService(TestService, {
  echo: (v) => v,
  count: async function* (n) {
    for (let i = 1n; i <= n; i++) yield i;
  },
  wait: (_inputs, context) => {
    lastWaitSignal = context.signal;
    waitStarted.resolve(context.signal);
    return new Promise<bigint>((_, reject) => {
      context.signal.addEventListener(
        "abort",
        () => reject(context.signal.reason),
        { once: true },
      );
    });
  },
  blob: async function* (inputs) {
    for await (const b of inputs) yield b;
  },
  scan: () => new ScanStream(addInt64, 0n),
  big: (n) => [new Uint8Array(Number(n))],
  // Keeps every request (views of the bytes they came in, see View) until
  // the requests end, then answers them all.
  keep: async function* (inputs) {
    const kept: Uint8Array[] = [];
    for await (const message of inputs) kept.push(message);
    yield* kept;
  },
});

const services = [streamingCalc, testImpl];
const handlerOptions = { compressMinBytes: 0 };

type Setup = {
  name: string;
  protocol: "connect" | "grpc-web" | "grpc";
  codec?: "json";
  /**
   * The transport's `fetch` bound to a `Deno.HttpClient` that speaks only
   * HTTP/2, with prior knowledge (h2c): the transports' documented way to
   * HTTP/2 under Deno. Against `Deno.serve` (which answers both) or
   * `serveHttp2` (node:http2, HTTP/2 only: a request that fell back to
   * HTTP/1.1 would fail there).
   */
  h2cFetch?: { server: "Deno.serve" | "serveHttp2" };
};
const setups: Setup[] = [
  { name: "Connect (proto, HTTP/1.1 fetch)", protocol: "connect" },
  {
    name: "Connect (JSON, HTTP/1.1 fetch)",
    protocol: "connect",
    codec: "json",
  },
  { name: "gRPC-Web (HTTP/1.1 fetch)", protocol: "grpc-web" },
  { name: "gRPC (node:http2)", protocol: "grpc" },
  // Only Deno's fetch speaks HTTP/2 without TLS (docs/runtimes.md).
  ...(runtime === "deno"
    ? [
      {
        name: "Connect (proto, h2c fetch → Deno.serve)",
        protocol: "connect",
        h2cFetch: { server: "Deno.serve" },
      },
      {
        name: "gRPC-Web (h2c fetch → serveHttp2)",
        protocol: "grpc-web",
        h2cFetch: { server: "serveHttp2" },
      },
    ] satisfies Setup[]
    : []),
];

function transportFor(
  setup: Setup,
  url: string,
  extra: Record<string, unknown> = {},
): { transport: Transport; close(): Promise<void> } {
  if (setup.protocol === "grpc") {
    const httpClient = createHttp2Client(url);
    return {
      transport: createGrpcTransport({ baseUrl: url, httpClient, ...extra }),
      close: () => httpClient.close(),
    };
  }
  const h2c = setup.h2cFetch ? h2cClient() : undefined;
  const options = {
    baseUrl: url,
    codec: setup.codec,
    fetch: h2c?.fetch,
    ...extra,
  };
  return {
    transport: setup.protocol === "grpc-web"
      ? createGrpcWebTransport(options)
      : createConnectTransport(options),
    close: () => Promise.resolve(h2c?.close()),
  };
}

async function startFor(
  setup: Setup,
  options: Parameters<typeof createUniversalHandler>[1] = handlerOptions,
): Promise<{ url: string; shutdown(): Promise<void> }> {
  if (
    setup.protocol === "grpc" || setup.h2cFetch?.server === "serveHttp2"
  ) {
    const server: Http2Server = await serveHttp2(
      createUniversalHandler(services, options),
    );
    return { url: server.url.origin, shutdown: () => server.shutdown() };
  }
  const server: Server = await startServer(createRpcHandler(services, options));
  return { url: server.url.origin, shutdown: () => server.shutdown() };
}

async function rejection(promise: Promise<unknown>): Promise<RpcError> {
  const error = await deadline(
    promise.then(() => undefined, (e) => e),
    T,
    "call",
  );
  assert.ok(error instanceof RpcError, `expected an RpcError, got ${error}`);
  return error;
}

for (const setup of setups) {
  describe(`our client and server over ${setup.name}`, () => {
    let server: { url: string; shutdown(): Promise<void> };
    let tiny: { url: string; shutdown(): Promise<void> };
    let t: { transport: Transport; close(): Promise<void> };
    before(async () => {
      server = await startFor(setup);
      tiny = await startFor(setup, { maxMessageBytes: 16 });
      t = transportFor(setup, server.url);
    });
    after(async () => {
      await t?.close();
      await server?.shutdown();
      await tiny?.shutdown();
    });

    it("prints the gRPC streaming guide's outputs", async () => {
      const lines: string[] = [];
      await deadline(runSum(t.transport, (l) => lines.push(l)), T);
      await deadline(runIncrementalSum(t.transport, (l) => lines.push(l)), T);
      assert.deepEqual(lines, [
        "Value: 55",
        ...[1, 3, 6, 10, 15, 21, 28, 36, 45, 55].map((v) => `Value: ${v}`),
        "Complete.",
      ]);
    });

    it("unary and server-streaming calls work", async () => {
      const client = createClient(TestService, t.transport);
      assert.equal(await deadline(client.echo(-42n), T), -42n);
      assert.equal(await deadline(client.echo(0n), T), 0n);
      const call = client.count(3n);
      const got = await deadline(Array.fromAsync(call.responses), T);
      assert.deepEqual(got, [1n, 2n, 3n]);
    });

    it("sum of an empty stream is 0", async () => {
      const call = createClient(StreamingCalcService, t.transport).sum();
      await call.complete();
      assert.equal(await deadline(call.receive(), T), 0n);
    });

    it("sum overflow fails with OUT_OF_RANGE, never a wrapped value", async () => {
      const call = createClient(StreamingCalcService, t.transport).sum();
      await call.send(MAX);
      await call.send(1n);
      await call.complete().catch(() => {});
      const error = await rejection(call.receive());
      assert.equal(error.code, Code.OutOfRange);
      assert.equal(
        error.rawMessage,
        "Cannot add 1 to 9223372036854775807: the sum overflows int64",
      );
    });

    it("incrementalSum overflow delivers the sums before it, then OUT_OF_RANGE", async () => {
      const call = createClient(StreamingCalcService, t.transport)
        .incrementalSum();
      await call.send(-5n);
      assert.deepEqual(await deadline(call.receive(), T), {
        done: false,
        value: -5n,
      });
      await call.send(-(MAX - 5n));
      assert.equal((await deadline(call.receive(), T)).value, -MAX);
      await call.send(-2n);
      const error = await rejection(call.receive());
      assert.equal(error.code, Code.OutOfRange);
      await assert.rejects(call.send(1n), RpcError);
    });

    it("bidi is full duplex: lockstep send/receive for 25 rounds", async () => {
      const call = createClient(StreamingCalcService, t.transport)
        .incrementalSum();
      let expected = 0n;
      for (let i = 1n; i <= 25n; i++) {
        await deadline(call.send(i), T, `send ${i}`);
        expected += i;
        const result = await deadline(call.receive(), T, `reply ${i}`);
        assert.deepEqual(result, { done: false, value: expected });
      }
      await call.complete();
      assert.deepEqual(await deadline(call.receive(), T), {
        done: true,
        value: undefined,
      });
    });

    it("a client deadline fails with DEADLINE_EXCEEDED and aborts the handler", async () => {
      const call = createClient(TestService, t.transport).wait({
        timeoutMs: 150,
      });
      await call.send(1n);
      const error = await rejection(call.receive());
      assert.equal(error.code, Code.DeadlineExceeded);
    });

    it("the server enforces the deadline header on its own", async () => {
      const header: Record<string, string> = setup.protocol === "connect"
        ? { "connect-timeout-ms": "100" }
        : { "grpc-timeout": "100m" };
      const call = createClient(TestService, t.transport).wait({
        headers: header,
      });
      await call.send(1n);
      const error = await rejection(call.receive());
      // The client does not enforce this deadline itself, so the status
      // comes from the server, as DEADLINE_EXCEEDED on every protocol.
      assert.equal(error.code, Code.DeadlineExceeded);
      assert.equal(lastWaitSignal?.aborted, true);
      assert.equal(
        (lastWaitSignal?.reason as RpcError).code,
        Code.DeadlineExceeded,
      );
    });

    it("an AbortSignal cancels the call on both sides", async () => {
      const abort = new AbortController();
      waitStarted = Promise.withResolvers();
      const call = createClient(TestService, t.transport).wait({
        signal: abort.signal,
      });
      await call.send(1n);
      // Wait until the handler runs, then cancel.
      const serverSignal = await deadline(
        waitStarted.promise,
        T,
        "handler start",
      );
      abort.abort(new Error("user gave up"));
      const error = await rejection(call.receive());
      assert.equal(error.code, Code.Canceled);
      await deadline(
        new Promise<void>((resolve) => {
          if (serverSignal.aborted) resolve();
          else serverSignal.addEventListener("abort", () => resolve());
        }),
        T,
        "server-side abort",
      );
    });

    it("an unknown method fails with UNIMPLEMENTED", async () => {
      const Other = defineService("test.v1.TestService", {
        missing: { kind: "bidi", input: Int64Value, output: Int64Value },
      });
      const call = createClient(Other, t.transport).missing();
      await call.complete().catch(() => {});
      const error = await rejection(call.receive());
      assert.equal(error.code, Code.Unimplemented);
    });

    it("a request message over the server's limit fails with RESOURCE_EXHAUSTED", async () => {
      if (setup.codec === "json") return; // raw bytes have no JSON codec
      const small = transportFor(setup, tiny.url);
      try {
        const call = createClient(TestService, small.transport).blob();
        await call.send(new Uint8Array(17));
        await call.complete().catch(() => {});
        const error = await rejection(call.receive());
        assert.equal(error.code, Code.ResourceExhausted);
        // The server keeps serving.
        assert.equal(
          await deadline(
            createClient(TestService, small.transport).echo(7n),
            T,
          ),
          7n,
        );
      } finally {
        await small.close();
      }
    });

    if (setup.codec === "json") return; // the tests below use raw bytes

    it("messages kept as views of their bytes stay intact while more are read", async () => {
      // 400 messages of 65-2,064 bytes (about 400 KB each way: many body
      // reads), each filled with its own pattern; the server keeps them all
      // before answering, the client keeps every answer before checking.
      const sent = Array.from({ length: 400 }, (_, i) => {
        const message = new Uint8Array(65 + (i * 997) % 2000);
        for (let j = 0; j < message.length; j++) {
          message[j] = (i + j * 7) & 0xff;
        }
        return message;
      });
      const call = createClient(TestService, t.transport).keep();
      const received = Array.fromAsync(call.responses);
      for (const message of sent) await call.send(message.slice());
      await call.complete();
      const got = await deadline(received, T);
      assert.equal(got.length, sent.length);
      for (let i = 0; i < sent.length; i++) {
        assert.deepEqual(got[i], sent[i], `message ${i}`);
      }
    });

    it("a response message over the client's limit fails with RESOURCE_EXHAUSTED", async () => {
      const small = transportFor(setup, server.url, { maxMessageBytes: 64 });
      try {
        const client = createClient(TestService, small.transport);
        const ok = await deadline(
          Array.fromAsync(client.big(64n).responses),
          T,
        );
        assert.equal(ok[0].byteLength, 64);
        const error = await rejection(
          Array.fromAsync(client.big(65n).responses),
        );
        assert.equal(error.code, Code.ResourceExhausted);
      } finally {
        await small.close();
      }
    });

    it("a message over the client's own limit is refused before sending", async () => {
      const small = transportFor(setup, server.url, { maxMessageBytes: 8 });
      try {
        const call = createClient(TestService, small.transport).blob();
        const error = await rejection(call.send(new Uint8Array(9)));
        assert.equal(error.code, Code.ResourceExhausted);
        call.cancel();
      } finally {
        await small.close();
      }
    });

    {
      it("gzip message compression works both ways", async () => {
        const gz = transportFor(setup, server.url, {
          sendCompression: "gzip",
          compressMinBytes: 0,
        });
        try {
          const payload = new Uint8Array(100_000).fill(42);
          const call = createClient(TestService, gz.transport).blob();
          await call.send(payload);
          await call.complete();
          const [back] = await deadline(Array.fromAsync(call.responses), T);
          assert.deepEqual(back, payload);
          const headers = await call.headers;
          const name = setup.protocol === "connect"
            ? "connect-content-encoding"
            : "grpc-encoding";
          assert.equal(headers.get(name), "gzip");
        } finally {
          await gz.close();
        }
      });
    }
  });
}

// ---------- raw HTTP: malformed input, status mapping, missing ends ----------

function frame(flags: number, data: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(5 + data.byteLength);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.byteLength);
  out.set(data, 5);
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** Posts raw bytes and reads the status the way the protocol carries it. */
async function rawCall(
  url: string,
  protocol: "connect" | "grpc-web",
  body: Uint8Array<ArrayBuffer>,
  headers: Record<string, string> = {},
): Promise<
  { http: number; code: number | string | undefined; message?: string }
> {
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": protocol === "connect"
        ? "application/connect+proto"
        : "application/grpc-web+proto",
      ...headers,
    },
    body,
  });
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (response.status !== 200) {
    return { http: response.status, code: undefined };
  }
  if (response.headers.has("grpc-status")) {
    return {
      http: 200,
      code: Number(response.headers.get("grpc-status")),
      message: response.headers.get("grpc-message") ?? "",
    };
  }
  const frames = new FrameDecoder().decode(bytes);
  const last = frames.at(-1)!;
  const text = new TextDecoder().decode(last.data);
  if (protocol === "connect") {
    assert.equal(last.flags, 2);
    const end = JSON.parse(text);
    return {
      http: 200,
      code: end.error?.code ?? "ok",
      message: end.error?.message,
    };
  }
  assert.equal(last.flags, 0x80);
  const status = /grpc-status: ?(\d+)/.exec(text)![1];
  return {
    http: 200,
    code: Number(status),
    message: /grpc-message: ?(.*)\r\n/.exec(text)?.[1],
  };
}

describe("raw requests to createRpcHandler", () => {
  let server: Server;
  let url: string;
  before(async () => {
    server = await startServer(
      createRpcHandler(services, { maxMessageBytes: 1024 }),
    );
    url = `${server.url.origin}/StreamingCalcService/sum`;
  });
  // Bounded: a call the server never hears the end of fails the hook
  // instead of hanging the run.
  after(async () => {
    if (server) await deadline(server.shutdown(), 30_000, "server shutdown");
  });

  const good = concat(
    frame(0, Int64Value.proto.encode(20n)),
    frame(0, Int64Value.proto.encode(22n)),
  );
  const cases: {
    name: string;
    body: Uint8Array<ArrayBuffer>;
    headers?: Record<string, string>;
    connect: string;
    grpcWeb: number;
  }[] = [
    {
      name: "a truncated body",
      body: concat(
        frame(0, new Uint8Array([8, 1])),
        new Uint8Array([0, 0, 0, 0, 9, 8]),
      ),
      connect: "invalid_argument",
      grpcWeb: Code.InvalidArgument,
    },
    {
      name: "a length over maxMessageBytes",
      body: new Uint8Array([0, 0, 0x89, 0x54, 0x40]),
      connect: "resource_exhausted",
      grpcWeb: Code.ResourceExhausted,
    },
    {
      name: "a malformed varint",
      body: frame(0, new Uint8Array([0x08, ...new Array(10).fill(0xff), 1])),
      connect: "invalid_argument",
      grpcWeb: Code.InvalidArgument,
    },
    {
      // INTERNAL, as grpc-go and Connect-ES answer (it was
      // INVALID_ARGUMENT: the peer broke the protocol, no argument was
      // wrong).
      name: "the compressed flag without an encoding",
      body: frame(1, new Uint8Array([8, 1])),
      connect: "internal",
      grpcWeb: Code.Internal,
    },
    {
      name: "an unsupported message encoding",
      body: good,
      headers: {
        "connect-content-encoding": "snappy",
        "grpc-encoding": "snappy",
      },
      connect: "unimplemented",
      grpcWeb: Code.Unimplemented,
    },
    {
      name: "a malformed timeout",
      body: good,
      headers: { "connect-timeout-ms": "soon", "grpc-timeout": "soon" },
      connect: "invalid_argument",
      grpcWeb: Code.InvalidArgument,
    },
  ];
  for (const c of cases) {
    it(`${c.name} gets the right code and the server keeps serving`, async () => {
      const connect = await deadline(
        rawCall(url, "connect", c.body, c.headers),
        T,
      );
      assert.equal(connect.code, c.connect, connect.message ?? "");
      const grpcWeb = await deadline(
        rawCall(url, "grpc-web", c.body, c.headers),
        T,
      );
      assert.equal(grpcWeb.code, c.grpcWeb, grpcWeb.message ?? "");
      assert.equal((await rawCall(url, "connect", good)).code, "ok");
      assert.equal((await rawCall(url, "grpc-web", good)).code, 0);
    });
  }

  it("a gzip bomb over maxMessageBytes gets RESOURCE_EXHAUSTED", async () => {
    const big = new Uint8Array(1_000_000);
    const gz = new Uint8Array(
      await new Response(
        new Blob([big]).stream().pipeThrough(new CompressionStream("gzip")),
      ).arrayBuffer(),
    );
    assert.ok(gz.byteLength < 1024);
    const result = await rawCall(url, "connect", frame(1, gz), {
      "connect-content-encoding": "gzip",
    });
    assert.equal(result.code, "resource_exhausted");
    assert.match(result.message!, /decompress/);
  });

  it("a wrong content type gets 415", async () => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "hello",
    });
    await response.body?.cancel();
    assert.equal(response.status, 415);
  });

  it("native gRPC over a fetch handler gets UNIMPLEMENTED with a hint, in headers alone (a gRPC client read a text body as a frame)", async () => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/grpc" },
      body: good,
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("grpc-status"), "12");
    assert.match(
      decodeURIComponent(response.headers.get("grpc-message") ?? ""),
      /serveHttp2/,
    );
    assert.equal(await response.text(), "");
  });

  it("GET gets 405", async () => {
    const response = await fetch(url);
    await response.body?.cancel();
    assert.equal(response.status, 405);
  });

  it("Connect unary errors use the HTTP status mapping (an unknown method is 404, as a router answers it)", async () => {
    const base = server.url.origin;
    const response = await fetch(`${base}/test.v1.TestService/nope`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '"1"',
    });
    assert.equal(response.status, 404);
    assert.deepEqual(await response.json(), {
      code: "unimplemented",
      message: 'Cannot find method "/test.v1.TestService/nope"',
    });
    const ok = await fetch(`${base}/test.v1.TestService/echo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '"-9223372036854775808"',
    });
    assert.equal(ok.status, 200);
    assert.equal(await ok.text(), '"-9223372036854775808"');
  });
});

describe("a response without its end-of-stream is an error", () => {
  // A server that sends one message and then ends the body (or the HTTP/2
  // stream) without a trailer frame, EndStreamResponse or grpc-status.
  const truncated: UniversalHandler = (request) => {
    const type = request.headers.get("content-type")!;
    return Promise.resolve({
      status: 200,
      headers: new Headers({ "content-type": type }),
      body: ReadableStream.from([frame(0, Int64Value.proto.encode(55n))]),
    });
  };
  const fetchHandler = async (request: Request) => {
    await request.body?.cancel();
    const r = await truncated({
      method: "POST",
      url: request.url,
      headers: request.headers,
      body: null,
    });
    return new Response(r.body, { headers: r.headers });
  };
  let server: Server;
  let h2: Http2Server;
  before(async () => {
    server = await startServer(fetchHandler);
    h2 = await serveHttp2(truncated);
  });
  after(async () => {
    await server?.shutdown();
    await h2?.shutdown();
  });

  for (const protocol of ["connect", "grpc-web", "grpc"] as const) {
    it(`${protocol}: the client fails with INTERNAL, not a success`, async () => {
      const url = protocol === "grpc" ? h2.url.origin : server.url.origin;
      const t = transportFor({ name: protocol, protocol }, url);
      try {
        const call = createClient(StreamingCalcService, t.transport).sum();
        await call.send(1n).catch(() => {});
        await call.complete().catch(() => {});
        const error = await rejection(call.receive());
        assert.equal(error.code, Code.Internal);
        assert.match(error.rawMessage, /ended without/);
      } finally {
        await t.close();
      }
    });
  }
});

describe("coalescing and memory", () => {
  let server: Server;
  let chunks = 0;
  before(async () => {
    const handler = createRpcHandler(services);
    server = await startServer((request) => {
      // Count the request body chunks the server receives.
      const counted = request.body!.pipeThrough(
        new TransformStream({
          transform(chunk, controller) {
            chunks++;
            controller.enqueue(chunk);
          },
        }),
      );
      return handler(
        new Request(request.url, {
          method: "POST",
          headers: request.headers,
          body: counted,
          duplex: "half",
        } as RequestInit),
      );
    });
  });
  // Bounded: a call the server never hears the end of fails the hook
  // instead of hanging the run.
  after(async () => {
    if (server) await deadline(server.shutdown(), 30_000, "server shutdown");
  });

  it("the client coalesces a burst of sends into few request chunks", async () => {
    chunks = 0;
    const call = createClient(
      StreamingCalcService,
      createConnectTransport({ baseUrl: server.url.origin }),
    ).sum();
    const n = 200_000;
    await ReadableStream.from(
      (function* () {
        for (let i = 1; i <= n; i++) yield BigInt(i);
      })(),
    ).pipeTo(call.requests);
    assert.equal(
      await deadline(call.receive(), T),
      BigInt(n) * BigInt(n + 1) / 2n,
    );
    assert.ok(chunks < n / 20, `${chunks} request chunks for ${n} messages`);
  });

  // gRPC-Web over HTTP/1.1 everywhere; under Deno also Connect over its
  // fetch on h2c (docs/rpc.md), where HTTP/2's flow control holds back a
  // client that sends faster than the server answers.
  const memoryModes = [
    { name: "gRPC-Web over HTTP/1.1", args: [] },
    ...(runtime === "deno"
      ? [{ name: "Connect over h2c fetch", args: ["h2c"] }]
      : []),
  ];
  for (const mode of memoryModes) {
    it(`memory stays flat over many messages both ways, in the client and in the server (${mode.name})`, async () => {
      // The server and the client each run alone in their own process and
      // report their own memory (tests/_memory.ts): measured in the test
      // runner, the figure also held whatever the other tests left behind
      // (Bun once reported 41.5 MiB there, on a loaded machine).
      //
      // After a GC, what each side retains must not grow. Measured here (2-core
      // machine loaded by other builds, 200k messages unless noted; Deno 10
      // runs, two at 50k and 400k; Bun 7 runs; 2 of each with a second copy of
      // the suite running): RSS growth per side -0.2-1.6 MiB under Deno,
      // -3.1-4.9 MiB under Bun; JS heap and external growth -1.8-0.1 MiB. The
      // RSS bound, 16 MiB per process (it was 32 MiB for both sides and the
      // runner together), is three times the highest figure; the heap keeps
      // its 8 MiB. The peak during the run is logged, not bounded: it is
      // garbage not yet collected (Deno: 21-28 MiB for 50k messages, 73-83
      // for 200k, 92-100 for 400k; Bun 10-29 for 200k), gone after the GC.
      const server = await startChild("_memory_peers.ts", ["rpc-server"]);
      try {
        const client = await startChild("_memory_peers.ts", [
          "rpc-client",
          server.first.url,
          ...mode.args,
        ]);
        try {
          // Warm up with as many messages as measured: the runtimes' own
          // buffers (Deno's HTTP/1.1 server reads the request body ahead) reach
          // their high-water mark, after which memory must stay flat.
          const n = 200_000;
          const warm = await client.request({ cmd: "run", n });
          assert.equal(warm.last, String(n));
          const before = {
            server: await server.request({ cmd: "measure" }),
            client: await client.request({ cmd: "measure" }),
          };
          const run = await client.request({ cmd: "run", n });
          assert.equal(run.last, String(n));
          const after = {
            server: await server.request({ cmd: "measure" }),
            client: await client.request({ cmd: "measure" }),
          };
          const mib = (bytes: number) => (bytes / 1048576).toFixed(1);
          const growth = (side: "server" | "client") => ({
            rss: after[side].rss - before[side].rss,
            peak: after[side].peak - before[side].rss,
            heap: after[side].heap - before[side].heap +
              after[side].external - before[side].external,
          });
          const sides = { server: growth("server"), client: growth("client") };
          console.log(
            `incrementalSum, ${mode.name}, ${runtime}: ${n} messages each way in ${
              run.seconds.toFixed(2)
            } s (${Math.round(n / run.seconds)} msg/s); growth ${
              Object.entries(sides).map(([side, g]) =>
                `${side}: RSS ${mib(g.rss)} MiB, peak ${
                  mib(g.peak)
                } MiB, JS heap and external ${mib(g.heap)} MiB`
              ).join("; ")
            } (${after.server.source})`,
          );
          for (const [side, g] of Object.entries(sides)) {
            assert.ok(
              g.heap < 8 * 1048576,
              `the ${side}'s JS heap and external memory grew by ${
                mib(g.heap)
              } MiB`,
            );
            assert.ok(
              g.rss < 16 * 1048576,
              `the ${side}'s RSS grew by ${mib(g.rss)} MiB`,
            );
          }
        } finally {
          await client.stop();
        }
      } finally {
        await server.stop();
      }
    });
  }
});
