// A client call's deadline and cancellation against when its response is
// read: a call whose status has been received is past its deadline's reach
// (its messages and OK however late they are read, and its timer stopped,
// read or not), a call cancelled or past its deadline before its first read
// fails with that (before, over native gRPC, it read as an empty success),
// complete() after either gives the call's own error, and a timeout of zero
// or less fails a streaming call through its methods, as it does a unary
// one. Over Connect and gRPC-Web (fetch) and gRPC (createHttp2Client and
// serveHttp2). Deadlines pass when the test fires their timers (captured by
// withDeadlineTimers), not after sleeps.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import {
  Code,
  createClient,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  createRpcHandler,
  createUniversalHandler,
  defineService,
  type HttpClient,
  implementService,
  Int64Value,
  RpcError,
  type Transport,
} from "../lib/rpc/mod.ts";
import {
  createHttp2Client,
  type Http2Server,
  serveHttp2,
} from "../lib/runtime/grpc_node.ts";
import type { Server } from "../lib/runtime/serve.ts";
import { Bytes, deadline, startServer } from "./_helpers.ts";

const T = 20_000;

/** The timeout the tests give: its timers are captured (see below). */
const TIMEOUT_MS = 3_600_000;

const Service = defineService("test.v1.ClientDeadlines", {
  three: { kind: "server-streaming", input: Int64Value, output: Int64Value },
  endless: { kind: "server-streaming", input: Int64Value, output: Int64Value },
  large: { kind: "server-streaming", input: Int64Value, output: Bytes },
  flood: { kind: "server-streaming", input: Int64Value, output: Bytes },
  picky: { kind: "server-streaming", input: Int64Value, output: Bytes },
  sum: { kind: "client-streaming", input: Int64Value, output: Int64Value },
  echo: { kind: "bidi", input: Int64Value, output: Int64Value },
});

const implementation = implementService(Service, {
  async *three() {
    yield 1n;
    yield 2n;
    yield 3n;
  },
  // One message, then waits until the call ends.
  async *endless(_, context) {
    yield 1n;
    await new Promise((resolve) => {
      context.signal.addEventListener("abort", resolve, { once: true });
    });
  },
  // 4 MiB in 64 KiB messages: more than a reader that has not read takes.
  async *large() {
    for (let i = 0; i < 64; i++) yield new Uint8Array(65536);
  },
  // 1 KiB messages until the call ends; floodEnded resolves then.
  async *flood(_, context) {
    try {
      while (!context.signal.aborted) yield new Uint8Array(1024);
    } finally {
      floodEnded.resolve();
    }
  },
  // Two messages, one the picky client cannot take, one more.
  async *picky() {
    for (const first of [1, 2, 0xff, 3]) yield new Uint8Array([first]);
  },
  sum: async (values) => {
    let total = 0n;
    for await (const v of values) total += v;
    return total;
  },
  async *echo(values) {
    for await (const v of values) yield v;
  },
});

/** The client's view of `picky`: a message starting 0xff does not decode. */
const PickyService = defineService("test.v1.ClientDeadlines", {
  picky: {
    kind: "server-streaming",
    input: Int64Value,
    output: {
      typeName: "test.v1.Picky",
      proto: {
        encode: (value: Uint8Array) => value,
        decode: (bytes: Uint8Array) => {
          if (bytes[0] === 0xff) throw new SyntaxError("picky: byte 0xff");
          return bytes.slice();
        },
      },
    },
  },
});

/** Resolved when the last `flood` handler has ended. */
let floodEnded = Promise.withResolvers<void>();

/**
 * Runs `fn` with the timers of TIMEOUT_MS (the clients' and, in process,
 * the servers' deadlines) held instead of armed: `fire` runs those still
 * armed, in the order they were set; `cleared` resolves once none is.
 */
async function withDeadlineTimers<R>(
  fn: (timers: { fire(): void; cleared(): Promise<void> }) => Promise<R>,
): Promise<R> {
  const held = new Map<object, () => void>();
  let onCleared: (() => void) | undefined;
  const realSet = globalThis.setTimeout;
  const realClear = globalThis.clearTimeout;
  const isDeadline = (ms: number | undefined) =>
    ms !== undefined && ms > TIMEOUT_MS - 100_000 && ms <= TIMEOUT_MS;
  globalThis.setTimeout = ((callback: () => void, ms?: number) => {
    if (!isDeadline(ms)) return realSet(callback, ms);
    const id = {};
    held.set(id, callback);
    return id;
  }) as typeof setTimeout;
  globalThis.clearTimeout = ((id: unknown) => {
    if (typeof id === "object" && id !== null && held.has(id)) {
      held.delete(id);
      if (held.size === 0) onCleared?.();
    } else realClear(id as number);
  }) as typeof clearTimeout;
  try {
    return await fn({
      fire() {
        for (const [id, callback] of [...held]) {
          held.delete(id);
          callback();
        }
      },
      cleared: () =>
        held.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => {
          onCleared = resolve;
        }),
    });
  } finally {
    globalThis.setTimeout = realSet;
    globalThis.clearTimeout = realClear;
  }
}

/** Asserts that `promise` rejects with an RpcError of `code` (and `message`). */
async function rejectsWith(
  promise: Promise<unknown>,
  code: Code,
  message?: string,
): Promise<void> {
  const error = await deadline(
    promise.then(() => undefined, (e) => e),
    T,
    "the call's outcome",
  );
  assert.ok(error instanceof RpcError, `expected an RpcError, got ${error}`);
  assert.equal(error.code, code, error.message);
  if (message !== undefined) assert.equal(error.rawMessage, message);
}

/** The messages of a streaming call, read to its end. */
async function readAll<O>(call: AsyncIterable<O>): Promise<O[]> {
  return await deadline(Array.fromAsync(call), T, "the responses");
}

let fetchServer: Server;
let h2Server: Http2Server;
let h2Client: ReturnType<typeof createHttp2Client>;
/** Resolved when the trailers of the last gRPC call have arrived. */
let trailersIn = Promise.withResolvers<void>();
type Limits = { maxMessageBytes?: number };
const transports: [string, (limits?: Limits) => Transport][] = [
  [
    "Connect",
    (limits) =>
      createConnectTransport({ baseUrl: fetchServer.url.origin, ...limits }),
  ],
  [
    "gRPC-Web",
    (limits) =>
      createGrpcWebTransport({ baseUrl: fetchServer.url.origin, ...limits }),
  ],
  ["gRPC", (limits) => {
    const httpClient: HttpClient = async (request) => {
      const response = await h2Client(request);
      response.trailers.then(() => trailersIn.resolve(), () => {});
      return response;
    };
    return createGrpcTransport({
      baseUrl: h2Server.url.origin,
      httpClient,
      ...limits,
    });
  }],
];

before(async () => {
  fetchServer = await startServer(createRpcHandler(implementation));
  h2Server = await serveHttp2(createUniversalHandler(implementation));
  h2Client = createHttp2Client(h2Server.url.origin);
});

after(async () => {
  await h2Client?.close();
  await h2Server?.shutdown();
  await fetchServer?.shutdown();
});

/**
 * Waits until the response of the call just started has arrived, status
 * included where the test can see it (gRPC's trailers); over fetch, its
 * headers.
 */
async function arrived(name: string, headers: Promise<Headers>) {
  await deadline(headers, T, "the response headers");
  if (name === "gRPC") await deadline(trailersIn.promise, T, "the trailers");
}

for (const [name, make] of transports) {
  describe(`a call over ${name} cancelled before its first read`, () => {
    it("fails CANCELED when its signal aborted after the response (server-streaming)", async () => {
      const client = createClient(Service, make());
      trailersIn = Promise.withResolvers();
      const controller = new AbortController();
      const call = client.three(0n, { signal: controller.signal });
      await arrived(name, call.headers);
      controller.abort();
      await rejectsWith(readAll(call), Code.Canceled);
    });

    it("fails CANCELED when its signal aborted after the response (client-streaming)", async () => {
      const client = createClient(Service, make());
      trailersIn = Promise.withResolvers();
      const controller = new AbortController();
      const call = client.sum({ signal: controller.signal });
      await call.send(5n);
      await call.complete();
      await arrived(name, call.headers);
      controller.abort();
      await rejectsWith(
        call.receive(),
        Code.Canceled,
        "Cannot finish call: cancelled by the caller",
      );
    });

    it("fails CANCELED when its signal aborted after the response (bidi)", async () => {
      const client = createClient(Service, make());
      trailersIn = Promise.withResolvers();
      const controller = new AbortController();
      const call = client.echo({ signal: controller.signal });
      await call.send(5n);
      await call.complete();
      await arrived(name, call.headers);
      controller.abort();
      await rejectsWith(readAll(call), Code.Canceled);
    });
  });

  describe(`a call over ${name} whose status arrived before its deadline`, () => {
    it("stops its deadline timer unread, and gives its messages and OK after the deadline (server-streaming)", async () => {
      const client = createClient(Service, make());
      await withDeadlineTimers(async (timers) => {
        const call = client.three(0n, { timeoutMs: TIMEOUT_MS });
        // Before, the timer ran until the caller read the end (an unread
        // call kept the process alive until its deadline).
        await deadline(timers.cleared(), 10_000, "the deadline timers' stop");
        timers.fire();
        assert.deepEqual(await readAll(call), [1n, 2n, 3n]);
      });
    });

    it("gives its response after the deadline (client-streaming)", async () => {
      const client = createClient(Service, make());
      await withDeadlineTimers(async (timers) => {
        const call = client.sum({ timeoutMs: TIMEOUT_MS });
        await call.send(5n);
        await call.complete();
        await deadline(timers.cleared(), 10_000, "the deadline timers' stop");
        timers.fire();
        assert.equal(await deadline(call.receive(), T, "receive"), 5n);
      });
    });

    it("gives the rest of its messages after the deadline, read slowly (bidi)", async () => {
      const client = createClient(Service, make());
      await withDeadlineTimers(async (timers) => {
        const call = client.echo({ timeoutMs: TIMEOUT_MS });
        for (const v of [1n, 2n, 3n]) await call.send(v);
        await call.complete();
        const first = await deadline(call.receive(), T, "the first message");
        assert.deepEqual(first, { done: false, value: 1n });
        await deadline(timers.cleared(), 10_000, "the deadline timers' stop");
        timers.fire();
        assert.deepEqual(await readAll(call), [2n, 3n]);
      });
    });
  });

  describe(`a call over ${name} whose deadline passes before its status`, () => {
    it("fails DEADLINE_EXCEEDED at its first read after it", async () => {
      const client = createClient(Service, make());
      await withDeadlineTimers(async (timers) => {
        const call = client.endless(0n, { timeoutMs: TIMEOUT_MS });
        await deadline(call.headers, T, "the response headers");
        timers.fire();
        await rejectsWith(
          readAll(call),
          Code.DeadlineExceeded,
          `Cannot finish call: deadline of ${TIMEOUT_MS} ms exceeded`,
        );
      });
    });

    // Over fetch only: node:http2 (Deno's) may take a whole response in
    // before it is read, and a status received is past the deadline.
    it(
      "fails DEADLINE_EXCEEDED when its status was still on the wire behind unread messages",
      {
        skip: name === "gRPC",
      },
      async () => {
        const client = createClient(Service, make());
        await withDeadlineTimers(async (timers) => {
          const call = client.large(0n, { timeoutMs: TIMEOUT_MS });
          await deadline(call.headers, T, "the response headers");
          // The first message read: the rest, and the status, wait on the
          // wire for the reader.
          await deadline(call.receive(), T, "the first message");
          timers.fire();
          await rejectsWith(readAll(call), Code.DeadlineExceeded);
        });
      },
    );
  });

  describe(`a call over ${name} whose response is taken in before it is read`, () => {
    it("stops reading at a message it cannot take, unread (it read an endless stream on and threw it away), and fails with it when read", async () => {
      const client = createClient(Service, make({ maxMessageBytes: 100 }));
      floodEnded = Promise.withResolvers();
      const call = client.flood(0n);
      // The server's handler ends: the client cancelled the body.
      await deadline(floodEnded.promise, T, "the server handler's end");
      await rejectsWith(readAll(call), Code.ResourceExhausted);
    });

    it("gives the messages before one it cannot take, then fails with it (under Deno over gRPC they were lost: the abort closed the stream under its own replay)", async () => {
      const client = createClient(PickyService, make());
      const call = client.picky(0n);
      // (Not its trailers: the stream may be reset before they come.)
      await deadline(call.headers, T, "the response headers");
      const got: number[] = [];
      const error = await deadline(
        (async () => {
          for await (const message of call) got.push(message[0]);
        })().then(() => undefined, (e) => e),
        T,
        "the call's outcome",
      );
      assert.deepEqual(got, [1, 2]);
      assert.ok(error instanceof RpcError, String(error));
      assert.equal(error.code, Code.Internal);
      assert.match(error.rawMessage, /picky: byte 0xff/);
    });

    it("fails CANCELED at the first read after a cancel, not with the messages that wait", async () => {
      const client = createClient(Service, make());
      await withDeadlineTimers(async (timers) => {
        const call = client.three(0n, { timeoutMs: TIMEOUT_MS });
        // Its status received: all three messages wait in the client.
        await deadline(timers.cleared(), 10_000, "the deadline timers' stop");
        call.cancel();
        await rejectsWith(
          call.receive(),
          Code.Canceled,
          "Cannot finish call: cancelled by the caller",
        );
      });
    });
  });

  describe(`complete() over ${name} after the call ended early`, () => {
    for (const kind of ["sum", "echo"] as const) {
      it(`rejects with the deadline's error after the deadline (${kind})`, async () => {
        const client = createClient(Service, make());
        await withDeadlineTimers(async (timers) => {
          const call = client[kind]({ timeoutMs: TIMEOUT_MS });
          await call.send(1n);
          timers.fire();
          const expected =
            `Cannot finish call: deadline of ${TIMEOUT_MS} ms exceeded`;
          await rejectsWith(call.complete(), Code.DeadlineExceeded, expected);
          await rejectsWith(call.send(2n), Code.DeadlineExceeded, expected);
        });
      });

      it(`rejects with the cancel's error after the signal aborted (${kind})`, async () => {
        const client = createClient(Service, make());
        const controller = new AbortController();
        const call = client[kind]({ signal: controller.signal });
        await call.send(1n);
        controller.abort();
        await rejectsWith(
          call.complete(),
          Code.Canceled,
          "Cannot finish call: cancelled by the caller",
        );
      });
    }
  });
}

describe("a refused response that arrived before the deadline", () => {
  // One message (Int64Value 1), and no end-of-stream message after it.
  const unended = new Uint8Array([0, 0, 0, 0, 2, 8, 1]);
  const gzipped = gzipSync(new Uint8Array([8, 2]));
  const unendedCompressed = new Uint8Array([
    ...unended,
    1,
    ...new Uint8Array(new Uint32Array([gzipped.byteLength]).buffer).reverse(),
    ...gzipped,
  ]);
  for (
    const [what, answer] of [
      ["HTTP 503", () => new Response("busy", { status: 503 })],
      [
        "another content type",
        () =>
          new Response("<html>", { headers: { "content-type": "text/html" } }),
      ],
      [
        "a body ended without its status",
        (request: Request) =>
          new Response(unended, {
            headers: {
              "content-type": request.headers.get("content-type")!,
            },
          }),
      ],
      [
        "a body ended without its status, its last message compressed (under Bun its end came during the decompression)",
        (request: Request) =>
          new Response(unendedCompressed, {
            headers: {
              "content-type": request.headers.get("content-type")!,
              "grpc-encoding": "gzip",
              "connect-content-encoding": "gzip",
            },
          }),
      ],
    ] as const
  ) {
    for (
      const [name, make] of [
        ["Connect", createConnectTransport],
        ["gRPC-Web", createGrpcWebTransport],
      ] as const
    ) {
      it(`gives its own error when read after the deadline, its timer stopped unread (${what}, ${name}; it read DEADLINE_EXCEEDED, the timer holding the process)`, async () => {
        const server = await startServer(answer);
        try {
          const client = createClient(
            Service,
            make({ baseUrl: server.url.origin }),
          );
          await withDeadlineTimers(async (timers) => {
            const call = client.three(0n, { timeoutMs: TIMEOUT_MS });
            await deadline(
              timers.cleared(),
              10_000,
              "the deadline timers' stop",
            );
            timers.fire();
            const error = await deadline(
              readAll(call).then(() => undefined, (e) => e),
              T,
              "the call's outcome",
            );
            assert.ok(error instanceof RpcError, String(error));
            assert.notEqual(error.code, Code.DeadlineExceeded, error.message);
          });
        } finally {
          await server.shutdown();
        }
      });
    }
  }
});

describe("a streaming call with a timeout of zero or less", () => {
  /** An HTTP client that counts the requests it is given, and fails them. */
  let requests = 0;
  const httpClient: HttpClient = () => {
    requests++;
    return Promise.reject(new Error("no request expected"));
  };
  const makers: [string, () => Transport][] = [
    [
      "Connect",
      () => createConnectTransport({ baseUrl: "http://x", httpClient }),
    ],
    [
      "gRPC-Web",
      () => createGrpcWebTransport({ baseUrl: "http://x", httpClient }),
    ],
    ["gRPC", () => createGrpcTransport({ baseUrl: "http://x", httpClient })],
  ];
  for (const [name, make] of makers) {
    for (const timeoutMs of [0, -5]) {
      it(`fails DEADLINE_EXCEEDED through its methods, not a throw, over ${name} (timeoutMs ${timeoutMs})`, async () => {
        const client = createClient(Service, make());
        const expected =
          `Cannot start call: timeout ${timeoutMs} ms has already passed`;
        requests = 0;
        const server = client.three(1n, { timeoutMs });
        await rejectsWith(server.receive(), Code.DeadlineExceeded, expected);
        const sum = client.sum({ timeoutMs });
        await rejectsWith(sum.send(1n), Code.DeadlineExceeded, expected);
        await rejectsWith(sum.complete(), Code.DeadlineExceeded, expected);
        await rejectsWith(sum.receive(), Code.DeadlineExceeded, expected);
        const echo = client.echo({ timeoutMs });
        await rejectsWith(echo.receive(), Code.DeadlineExceeded, expected);
        await rejectsWith(echo.complete(), Code.DeadlineExceeded, expected);
        assert.equal(requests, 0, "requests sent");
      });
    }
  }
});

describe("the deadline error of a call", () => {
  for (
    const [header, shown] of [["1n", "under 1"], ["1500u", "1.5"]] as const
  ) {
    it(`shows grpc-timeout ${header} rounded, as ${shown} ms`, async () => {
      const client = createClient(
        Service,
        createGrpcWebTransport({ baseUrl: fetchServer.url.origin }),
      );
      const call = client.endless(0n, { headers: { "grpc-timeout": header } });
      await rejectsWith(
        readAll(call),
        Code.DeadlineExceeded,
        `Cannot finish call: deadline of ${shown} ms exceeded`,
      );
    });
  }
});
