// Fault injection on RPC calls over Connect and gRPC-Web (HTTP/1.1 fetch)
// and native gRPC (node:http2, h2c): connections cut before the response
// headers, mid-request, mid-frame and after the last message but before the
// end-of-stream message or trailers; stalled and slow clients against
// idleTimeoutMs; deadlines longer than a timer can hold; servers shut down
// with calls open. The client always gets an RpcError within a bound (never
// a success without the status), the handler is released, and the server
// keeps serving.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import http2 from "node:http2";
import { type AddressInfo, createServer, type Socket } from "node:net";
import {
  Code,
  createClient,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  createUniversalHandler,
  defineService,
  implementService,
  Int64Value,
  RpcError,
  type Transport,
  type UniversalHandler,
} from "../lib/rpc/mod.ts";
import { createHttp2Client, serveHttp2 } from "../lib/runtime/grpc_node.ts";
import { serve } from "../lib/runtime/serve.ts";
import { addInt64 } from "../examples/streaming_calc.ts";
import { deadline } from "./_helpers.ts";
import {
  connectionRefused,
  type FaultProxy,
  newRequestRefused,
  settle,
  startFaultProxy,
} from "./_faults.ts";

const T = 10_000;

const CalcService = defineService("StreamingCalcService", {
  sum: { kind: "client-streaming", input: Int64Value, output: Int64Value },
  incrementalSum: { kind: "bidi", input: Int64Value, output: Int64Value },
});

/** Calls whose handler has not finished yet, to prove none is leaked. */
let active = 0;
let drained = Promise.withResolvers<void>();
const enter = () => {
  if (active++ === 0) drained = Promise.withResolvers<void>();
};
const leave = () => {
  if (--active === 0) drained.resolve();
};
const allReleased = () =>
  active === 0 ? Promise.resolve() : deadline(drained.promise, T, "handlers");

const calc = implementService(CalcService, {
  sum: async (values) => {
    enter();
    try {
      let sum = 0n;
      for await (const v of values) sum = addInt64(sum, v);
      return sum;
    } finally {
      leave();
    }
  },
  incrementalSum: async function* (values) {
    enter();
    try {
      let sum = 0n;
      for await (const v of values) {
        sum = addInt64(sum, v);
        yield sum;
      }
    } finally {
      leave();
    }
  },
});

type Protocol = "connect" | "grpc-web" | "grpc";
const protocols: Protocol[] = ["connect", "grpc-web", "grpc"];

interface Running {
  port: number;
  shutdown(): Promise<void>;
}

/** Serves a universal handler: node:http2 for gRPC, else serve(). */
async function serveFor(
  protocol: Protocol,
  handler: UniversalHandler,
): Promise<Running> {
  if (protocol === "grpc") {
    const server = await serveHttp2(handler);
    return { port: server.port, shutdown: () => server.shutdown() };
  }
  const server = await serve(async (request) => {
    const response = await handler({
      method: request.method,
      url: request.url,
      headers: request.headers,
      body: request.body,
    });
    return new Response(response.body ?? null, {
      status: response.status,
      headers: response.headers,
    });
  });
  return { port: server.port, shutdown: () => server.shutdown() };
}

function transportFor(protocol: Protocol, port: number) {
  const baseUrl = `http://127.0.0.1:${port}`;
  if (protocol === "grpc") {
    const httpClient = createHttp2Client(baseUrl);
    return {
      transport: createGrpcTransport({ baseUrl, httpClient }) as Transport,
      close: () => httpClient.close(),
    };
  }
  return {
    transport: protocol === "connect"
      ? createConnectTransport({ baseUrl })
      : createGrpcWebTransport({ baseUrl }),
    close: () => Promise.resolve(),
  };
}

/** A stage at which the connection is cut, server side. */
type Stage = "before-headers" | "mid-frame" | "before-end";

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Wraps a handler so that the proxy's connection is cut at `stage`:
 * before the response starts, halfway through the first response frame, or
 * after the last message frame but before the end-of-stream frame (Connect,
 * gRPC-Web: the body's last chunk) or the trailers (gRPC).
 */
function cutting(
  handler: UniversalHandler,
  stage: () => Stage | undefined,
  proxy: () => FaultProxy,
): UniversalHandler {
  return async (request) => {
    const at = stage();
    if (at === "before-headers") {
      proxy().cut();
      await wait(20);
    }
    const response = await handler(request);
    if (!response.body || at === undefined || at === "before-headers") {
      return response;
    }
    let held: Uint8Array | undefined;
    let first = true;
    const body = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        async transform(chunk, controller) {
          if (at === "mid-frame" && first && chunk.byteLength >= 2) {
            first = false;
            controller.enqueue(chunk.subarray(0, chunk.byteLength >> 1));
            await wait(50);
            proxy().cut();
            return;
          }
          if (at === "before-end") {
            if (held) controller.enqueue(held);
            held = chunk;
          }
        },
        async flush(controller) {
          if (at === "before-end") {
            // gRPC has no end frame in the body: what is held is a message.
            if (
              held &&
              request.headers.get("content-type")?.startsWith(
                "application/grpc+",
              )
            ) {
              controller.enqueue(held);
            }
            await wait(50);
            proxy().cut();
          }
        },
      }),
    );
    return { ...response, body };
  };
}

async function expectRpcError(promise: Promise<unknown>): Promise<RpcError> {
  const outcome = await settle(deadline(promise, T, "call"));
  assert.ok("error" in outcome, "the call succeeded after a cut");
  assert.ok(
    outcome.error instanceof RpcError,
    `expected an RpcError, got ${outcome.error}`,
  );
  assert.notEqual(outcome.error.code, Code.DeadlineExceeded);
  return outcome.error;
}

/** The next `sum` of 1..10 on a fresh connection gives 55. */
async function stillServes(protocol: Protocol, port: number): Promise<void> {
  const t = transportFor(protocol, port);
  try {
    const call = createClient(CalcService, t.transport).sum();
    for (let i = 1n; i <= 10n; i++) await call.send(i);
    await call.complete();
    assert.equal(await deadline(call.receive(), T, "sum after a fault"), 55n);
  } finally {
    await t.close();
  }
}

for (const protocol of protocols) {
  describe(`RPC faults over ${protocol}`, () => {
    let stage: Stage | undefined;
    let proxy: FaultProxy;
    let server: Running;
    before(async () => {
      server = await serveFor(
        protocol,
        cutting(createUniversalHandler(calc), () => stage, () => proxy),
      );
    });
    after(async () => {
      await server?.shutdown();
    });

    const throughProxy = async (
      fn: (transport: Transport) => Promise<void>,
      options: { cutAfterRequestBytes?: number } = {},
    ) => {
      proxy = await startFaultProxy(server.port, options);
      const t = transportFor(protocol, proxy.port);
      try {
        await fn(t.transport);
      } finally {
        await t.close();
        await proxy.close();
        stage = undefined;
      }
      await allReleased();
      await stillServes(protocol, server.port);
    };

    it(`${protocol}: a cut before the response headers fails the call with an RpcError`, async () => {
      stage = "before-headers";
      await throughProxy(async (transport) => {
        const call = createClient(CalcService, transport).incrementalSum();
        await call.send(1n).catch(() => {});
        await call.complete().catch(() => {});
        const error = await expectRpcError(call.receive());
        console.log(`${protocol} cut before headers: ${error.message}`);
      });
    });

    it(`${protocol}: a cut mid-request fails the call and releases the handler`, async () => {
      await throughProxy(async (transport) => {
        const call = createClient(CalcService, transport).incrementalSum();
        const reading = (async () => {
          for (;;) {
            const r = await call.receive();
            if (r.done) return;
          }
        })();
        for (let i = 1n; i <= 2000n; i++) {
          if (!(await call.send(i).then(() => true, () => false))) break;
        }
        const error = await expectRpcError(reading);
        console.log(`${protocol} cut mid-request: ${error.message}`);
      }, { cutAfterRequestBytes: 600 });
    });

    it(`${protocol}: a cut mid-frame fails the call with an RpcError`, async () => {
      stage = "mid-frame";
      await throughProxy(async (transport) => {
        const call = createClient(CalcService, transport).incrementalSum();
        for (let i = 1n; i <= 5n; i++) await call.send(i);
        await call.complete();
        const error = await expectRpcError(
          (async () => {
            for (;;) if ((await call.receive()).done) return;
          })(),
        );
        console.log(`${protocol} cut mid-frame: ${error.message}`);
      });
    });

    it(`${protocol}: a cut after the last message but before the status is an error, never a success`, async () => {
      stage = "before-end";
      await throughProxy(async (transport) => {
        const call = createClient(CalcService, transport).incrementalSum();
        for (let i = 1n; i <= 5n; i++) await call.send(i);
        await call.complete();
        const got: bigint[] = [];
        const error = await expectRpcError(
          (async () => {
            for (;;) {
              const r = await call.receive();
              if (r.done) return;
              got.push(r.value);
            }
          })(),
        );
        assert.deepEqual(got, [1n, 3n, 6n, 10n, 15n].slice(0, got.length));
        console.log(
          `${protocol} cut before the status, after ${got.length} messages: ${error.message}`,
        );
      });
    });
  });
}

describe("RPC slow and stalled clients", () => {
  for (const protocol of protocols) {
    it(`${protocol}: a client that stalls mid-stream fails with DEADLINE_EXCEEDED after idleTimeoutMs`, async () => {
      const server = await serveFor(
        protocol,
        createUniversalHandler(calc, { idleTimeoutMs: 300 }),
      );
      const t = transportFor(protocol, server.port);
      try {
        const call = createClient(CalcService, t.transport).incrementalSum();
        await call.send(1n);
        assert.deepEqual(await deadline(call.receive(), T), {
          done: false,
          value: 1n,
        });
        const outcome = await settle(deadline(call.receive(), T, "idle"));
        assert.ok("error" in outcome && outcome.error instanceof RpcError);
        assert.equal(outcome.error.code, Code.DeadlineExceeded);
        assert.match(outcome.error.message, /idleTimeoutMs|deadline/);
        assert.ok(outcome.ms < 5_000, `took ${outcome.ms} ms`);
        await allReleased();
      } finally {
        await t.close();
        await server.shutdown();
      }
    });

    it(`${protocol}: a slow client that sends within idleTimeoutMs completes`, async () => {
      // Sends every 80 ms against a 2 s idle timeout: the margin holds when
      // a loaded machine stalls this process for a second or more.
      const server = await serveFor(
        protocol,
        createUniversalHandler(calc, { idleTimeoutMs: 2_000 }),
      );
      const t = transportFor(protocol, server.port);
      try {
        const call = createClient(CalcService, t.transport).incrementalSum();
        const got: bigint[] = [];
        for (let i = 1n; i <= 8n; i++) {
          await wait(80);
          await call.send(i);
          const r = await deadline(call.receive(), T);
          if (!r.done) got.push(r.value);
        }
        await call.complete();
        assert.equal((await deadline(call.receive(), T)).done, true);
        assert.deepEqual(got, [1n, 3n, 6n, 10n, 15n, 21n, 28n, 36n]);
      } finally {
        await t.close();
        await server.shutdown();
      }
    });

    it(`${protocol}: a slow reader still gets every response in order`, async () => {
      const server = await serveFor(protocol, createUniversalHandler(calc));
      const t = transportFor(protocol, server.port);
      try {
        const call = createClient(CalcService, t.transport).incrementalSum();
        const n = 300;
        const sending = (async () => {
          for (let i = 1; i <= n; i++) await call.send(BigInt(i));
          await call.complete();
        })();
        let expected = 0n;
        for (let i = 1; i <= n; i++) {
          if (i % 50 === 0) await wait(100);
          const r = await deadline(call.receive(), T);
          expected += BigInt(i);
          assert.deepEqual(r, { done: false, value: expected });
        }
        assert.equal((await deadline(call.receive(), T)).done, true);
        await sending;
      } finally {
        await t.close();
        await server.shutdown();
      }
    });

    it(`${protocol}: a deadline longer than a timer can hold (30 days) does not fire at once`, async () => {
      const server = await serveFor(protocol, createUniversalHandler(calc));
      const t = transportFor(protocol, server.port);
      try {
        // 30 days: setTimeout would fire after 1 ms (regression).
        const call = createClient(CalcService, t.transport).sum({
          timeoutMs: 30 * 24 * 3600 * 1000,
        });
        await call.send(2n);
        await wait(50);
        await call.send(3n);
        await call.complete();
        assert.equal(await deadline(call.receive(), T), 5n);
      } finally {
        await t.close();
        await server.shutdown();
      }
    });
  }
});

describe("RPC server shut down with calls open", () => {
  for (const protocol of protocols) {
    it(`${protocol}: shutdown refuses new requests, and new connections once the open call has ended; the call finishes or fails with an RpcError`, async () => {
      const server = await serveFor(protocol, createUniversalHandler(calc));
      const t = transportFor(protocol, server.port);
      try {
        const call = createClient(CalcService, t.transport).incrementalSum();
        await call.send(1n);
        assert.deepEqual(await deadline(call.receive(), T), {
          done: false,
          value: 1n,
        });
        const stopped = server.shutdown();
        // New requests are refused while the open call goes on: their
        // connections, or (serve under Deno) with 503; and their
        // connections once the open call has ended.
        const refused = await deadline(
          newRequestRefused(server.port, protocol !== "grpc"),
          T,
          "refusal",
        );
        assert.equal(refused, true, "new requests were still taken");
        const rest = settle(
          deadline(
            (async () => {
              await call.send(2n);
              await call.complete();
              const got: bigint[] = [];
              for (;;) {
                const r = await call.receive();
                if (r.done) return got;
                got.push(r.value);
              }
            })(),
            T,
            "open call",
          ),
        );
        const outcome = await rest;
        if ("value" in outcome) {
          assert.deepEqual(outcome.value, [3n]);
        } else {
          assert.ok(
            outcome.error instanceof RpcError,
            `not an RpcError: ${outcome.error}`,
          );
        }
        console.log(
          `${protocol} call open during shutdown: ${
            "value" in outcome ? "finished" : (outcome.error as Error).message
          }`,
        );
        await deadline(stopped, T, "shutdown");
        assert.equal(
          await connectionRefused(server.port),
          true,
          "new connections were still accepted",
        );
        await allReleased();
      } finally {
        await t.close();
        await server.shutdown();
      }
    });
  }
});

/** 64 KiB messages: the streams' flow control paces each handler. */
const Chunk = {
  typeName: "test.v1.Chunk",
  proto: {
    encode: (value: Uint8Array) => value,
    decode: (bytes: Uint8Array) => bytes.slice(),
  },
};
const Flood = defineService("test.v1.Flood", {
  flood: { kind: "server-streaming", input: Int64Value, output: Chunk },
});
const chunk = new Uint8Array(64 * 1024);

describe("RPC over serveHttp2: a client whose connection goes", () => {
  // A Node client in its own process, reading 10 streaming calls, then
  // destroying its session: the way Node's client ends a connection
  // (Deno's in-process client did it so only now and then).
  const CLIENT = `
    const http2 = require("node:http2");
    const session = http2.connect("http://127.0.0.1:" + process.argv[1]);
    session.on("error", () => {});
    let reading = 0;
    for (let i = 0; i < 10; i++) {
      const stream = session.request({
        ":method": "POST",
        ":path": "/test.v1.Flood/flood",
        "content-type": "application/connect+proto",
      });
      stream.on("error", () => {});
      stream.once("data", () => {
        if (++reading === 10) {
          setTimeout(() => {
            session.destroy();
            setTimeout(() => process.exit(0), 100);
          }, 1000);
        }
      });
      stream.on("data", () => {});
      stream.end(Buffer.alloc(5));
    }
    setTimeout(() => process.exit(2), 20000);
  `;

  it("ends every streaming handler when a Node client destroys its session mid-stream (under Deno 9 handlers of 10 ran on, their streams emitting 'aborted' and never 'close', writing gigabytes into them)", async () => {
    let started = 0;
    let running = 0;
    let aborted = 0;
    let sent = 0;
    const server = await serveHttp2(
      createUniversalHandler(implementService(Flood, {
        async *flood(_n, context) {
          started++;
          running++;
          context.signal.addEventListener("abort", () => aborted++, {
            once: true,
          });
          try {
            // Bounded in time, or ended by the signal.
            const stop = Date.now() + 2 * T;
            while (!context.signal.aborted && Date.now() < stop) {
              sent++;
              yield chunk;
            }
          } finally {
            running--;
          }
        },
      })),
      { hostname: "127.0.0.1", port: 0 },
    );
    try {
      const client = spawn("node", ["-e", CLIENT, String(server.port)], {
        stdio: "inherit",
      });
      const code = await deadline(
        new Promise((resolve) => client.once("exit", resolve)),
        T,
        "the Node client",
      );
      assert.equal(code, 0);
      assert.equal(started, 10);
      const at = sent;
      const end = Date.now() + T;
      while (running > 0 && Date.now() < end) await wait(10);
      assert.equal(running, 0, "handlers still running");
      assert.equal(aborted, 10);
      assert.ok(sent - at < 1000, `${sent - at} messages after the cut`);
    } finally {
      await server.shutdown();
    }
  });
});

describe("serveHttp2: a shutdown just after a client destroyed its connection", () => {
  it("resolves, the handler still running told (under Deno the session had no socket before its close: shutdown() rejected with a TypeError, the other sessions left open)", async () => {
    // Three rounds: the window is a macrotask turn under Deno, which the
    // code before the fix met in about a third of the runs of this test.
    for (let round = 0; round < 3; round++) await shutdownAfterDestroy();
  });
});

/**
 * A call whose handler ignores its signal, its client's connection
 * destroyed, then `shutdown()` with another (idle) session open.
 */
async function shutdownAfterDestroy(): Promise<void> {
  let started = 0;
  let abortedWith: unknown;
  const server = await serveHttp2(async (request) => {
    started++;
    const signal = request.signal!;
    signal.addEventListener("abort", () => {
      abortedWith = signal.reason;
    }, { once: true });
    // Does not stop at its signal.
    await wait(500);
    return { status: 200, headers: new Headers(), body: undefined };
  }, { hostname: "127.0.0.1", port: 0 });
  const other = http2.connect(server.url);
  other.on("error", () => {});
  const otherReady = new Promise((resolve) =>
    other.once("remoteSettings", resolve)
  );
  try {
    const session = http2.connect(server.url);
    session.on("error", () => {});
    const stream = session.request({ ":path": "/" }, { endStream: true });
    stream.on("error", () => {});
    const end = Date.now() + T;
    while (started === 0 && Date.now() < end) await wait(5);
    assert.equal(started, 1);
    await deadline(otherReady, T, "the other session");
    const otherClosed = new Promise((resolve) => other.once("close", resolve));
    session.destroy();
    // A macrotask turn: Deno has dropped the session's socket by then,
    // and not yet emitted its 'close'.
    await wait(0);
    await deadline(server.shutdown(), T, "shutdown");
    const told = Date.now() + T;
    while (abortedWith === undefined && Date.now() < told) await wait(5);
    assert.ok(abortedWith !== undefined, "the handler was not told");
    // The other (idle) session was closed too.
    await deadline(otherClosed, T, "the other session's close");
  } finally {
    other.destroy();
  }
}

describe("serveHttp2: streams refused while the handlers of calls a client reset still run", () => {
  it("count against maxStreamResets (a client resetting its calls after 10 ms, uncounted, then opening more, had thousands refused a second for nothing)", async () => {
    const server = await serveHttp2(async () => {
      // Does not stop at its signal: runs on after its stream was reset.
      await wait(1500);
      return { status: 200, headers: new Headers(), body: undefined };
    }, {
      hostname: "127.0.0.1",
      port: 0,
      maxConcurrentStreams: 4,
      maxStreamResets: 20,
    });
    const session = http2.connect(server.url);
    session.on("error", () => {});
    let goaway: number | undefined;
    session.once("goaway", (code: number) => (goaway = code));
    const closed = new Promise((resolve) => session.once("close", resolve));
    try {
      // Four calls, reset once they ran 50 ms: their handlers hold all
      // four places, their streams gone.
      await deadline(
        Promise.all(Array.from({ length: 4 }, async () => {
          const stream = session.request({ ":path": "/" }, {
            endStream: true,
          });
          stream.on("error", () => {});
          await wait(50);
          stream.close(8);
          await new Promise((resolve) => stream.once("close", resolve));
        })),
        T,
        "four reset calls",
      );
      // Each new stream is refused: the 21st refusal closes the session.
      for (let i = 0; i < 40 && !session.closed && !session.destroyed; i++) {
        try {
          const stream = session.request({ ":path": "/" }, {
            endStream: true,
          });
          stream.on("error", () => {});
          await deadline(
            new Promise((resolve) => stream.once("close", resolve)),
            T,
            "a refused stream",
          );
        } catch {
          break;
        }
      }
      await deadline(closed, T, "the session's end");
      assert.equal(goaway, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    } finally {
      session.destroy();
      await server.shutdown();
    }
  });
});

describe("serveHttp2: streams nobody reads at a shutdown, and a handler's own failed body", () => {
  it("cuts a connection whose streams are stalled on flow control when shutdownTimeoutMs has passed (under Deno its session was destroyed first and its socket stayed open: the client was never told)", async () => {
    // A Node client in its own process opens 3 streaming calls it never
    // reads, then reports when its connection closes.
    const CLIENT = `
      const http2 = require("node:http2");
      const session = http2.connect("http://127.0.0.1:" + process.argv[1]);
      session.on("error", () => {});
      for (let i = 0; i < 3; i++) {
        const stream = session.request({
          ":method": "POST",
          ":path": "/test.v1.Flood/flood",
          "content-type": "application/grpc",
          te: "trailers",
        });
        stream.on("error", () => {});
        stream.pause();
        stream.end(Buffer.alloc(5));
      }
      console.log("open");
      session.on("close", () => { console.log("closed"); process.exit(0); });
      setTimeout(() => { console.log("still open"); process.exit(0); }, 15000);
    `;
    let started = 0;
    const server = await serveHttp2(
      createUniversalHandler(implementService(Flood, {
        async *flood(_n, context) {
          started++;
          const stop = Date.now() + 2 * T;
          while (!context.signal.aborted && Date.now() < stop) yield chunk;
        },
      })),
      { hostname: "127.0.0.1", port: 0, shutdownTimeoutMs: 300 },
    );
    const client = spawn("node", ["-e", CLIENT, String(server.port)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const lines: string[] = [];
    client.stdout!.on(
      "data",
      (data) => lines.push(...String(data).split("\n")),
    );
    const exited = new Promise((resolve) => client.once("exit", resolve));
    try {
      const end = Date.now() + T;
      while (started < 3 && Date.now() < end) await wait(10);
      assert.equal(started, 3);
      // The streams fill their windows, then wait for a reader.
      await wait(300);
      await deadline(server.shutdown(), T, "shutdown");
      await deadline(exited, T, "the client's exit");
      assert.deepEqual(lines.filter((line) => line !== ""), [
        "open",
        "closed",
      ]);
    } finally {
      client.kill("SIGKILL");
      await server.shutdown();
    }
  });

  it("resets a stream whose handler's body fails (INTERNAL_ERROR; the client waited for the rest for ever), its signal not aborted as if the client had gone", async () => {
    let reason: unknown = "not aborted";
    const server = await serveHttp2((request) => {
      request.signal?.addEventListener("abort", () => {
        reason = request.signal!.reason;
      });
      let pulls = 0;
      return Promise.resolve({
        status: 200,
        headers: new Headers({ "content-type": "text/plain" }),
        body: new ReadableStream<Uint8Array>({
          pull(controller) {
            if (pulls++ === 0) {
              controller.enqueue(new TextEncoder().encode("hello"));
            } else controller.error(new Error("the handler's own failure"));
          },
        }),
      });
    }, { hostname: "127.0.0.1", port: 0 });
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    session.on("error", () => {});
    try {
      const outcome = await deadline(
        new Promise<string>((resolve) => {
          const stream = session.request({ ":path": "/" });
          let got = "";
          stream.on("data", (data) => got += data);
          stream.on("error", (error) => resolve(`${got}: ${error.message}`));
          stream.on("close", () => resolve(`${got}: closed ${stream.rstCode}`));
          stream.end();
        }),
        T,
        "the answer",
      );
      assert.equal(
        outcome,
        "hello: Stream closed with error code NGHTTP2_INTERNAL_ERROR",
      );
      await wait(50);
      assert.equal(reason, "not aborted");
    } finally {
      session.destroy();
      await server.shutdown();
    }
  });
});

describe("RPC over createHttp2Client: a server that dies mid-answer", () => {
  // A Node server that answers part of a message, then is killed: its
  // connection's end is no end of the answer.
  const SERVER = `
    const http2 = require("node:http2");
    const server = http2.createServer();
    server.on("stream", (stream, headers) => {
      stream.on("error", () => {});
      stream.resume();
      const web = String(headers["content-type"]).startsWith("application/grpc-web");
      stream.respond({
        ":status": 200,
        "content-type": web ? "application/grpc-web+proto" : "application/proto",
      });
      // Int64Value 5, of a message that would have gone on.
      stream.write(web ? Buffer.from([0, 0, 0, 0, 4, 8, 5]) : Buffer.from([8, 5]));
      setTimeout(() => process.kill(process.pid, "SIGKILL"), 200);
    });
    server.listen(0, "127.0.0.1", () => console.log(server.address().port));
  `;
  const Get = defineService("test.v1.Get", {
    get: { kind: "unary", input: Int64Value, output: Int64Value },
  });

  for (const protocol of ["connect", "grpc-web"] as const) {
    it(`${protocol}: fails the call UNAVAILABLE (a Connect unary call succeeded with the half it had; gRPC-Web failed INTERNAL)`, async () => {
      const child = spawn("node", ["-e", SERVER], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      try {
        const port = await deadline(
          new Promise<number>((resolve) =>
            child.stdout!.once("data", (data) => resolve(Number(String(data))))
          ),
          T,
          "the server's port",
        );
        const baseUrl = `http://127.0.0.1:${port}`;
        const httpClient = createHttp2Client(baseUrl);
        try {
          const transport = protocol === "connect"
            ? createConnectTransport({ baseUrl, httpClient })
            : createGrpcWebTransport({ baseUrl, httpClient });
          await assert.rejects(
            deadline(createClient(Get, transport).get(1n), T, "the call"),
            (error: unknown) => {
              assert.ok(error instanceof RpcError, String(error));
              assert.equal(error.code, Code.Unavailable, error.message);
              return true;
            },
          );
        } finally {
          await httpClient.close();
        }
      } finally {
        child.kill("SIGKILL");
      }
    });
  }
});

describe("createHttp2Client: close() after its connection failed", () => {
  // Under Deno a session its error destroyed never called close()'s
  // callback: close() waited for ever (a program awaiting it ended with
  // "Top-level await promise never resolved").
  const Get = defineService("test.v1.Get", {
    get: { kind: "unary", input: Int64Value, output: Int64Value },
  });
  for (
    const [what, answer] of [
      [
        "answers in HTTP/1.1",
        (socket: Socket) => socket.end("HTTP/1.1 400 Bad Request\r\n\r\n"),
      ],
      ["closes the connection", (socket: Socket) => socket.end()],
      ["resets the connection", (socket: Socket) => socket.resetAndDestroy()],
    ] as const
  ) {
    it(`resolves once the call failed UNAVAILABLE against a server that ${what}`, async () => {
      const server = createServer((socket) => {
        socket.on("error", () => {});
        socket.once("data", () => answer(socket));
      });
      await new Promise<void>((resolve) =>
        server.listen(0, "127.0.0.1", resolve)
      );
      try {
        const { port } = server.address() as AddressInfo;
        const baseUrl = `http://127.0.0.1:${port}`;
        const httpClient = createHttp2Client(baseUrl);
        await assert.rejects(
          deadline(
            createClient(Get, createGrpcTransport({ baseUrl, httpClient }))
              .get(1n),
            T,
            "the call",
          ),
          (error: unknown) => {
            assert.ok(error instanceof RpcError, String(error));
            assert.equal(error.code, Code.Unavailable, error.message);
            return true;
          },
        );
        await deadline(httpClient.close(), 5_000, "close()");
      } finally {
        server.close();
      }
    });
  }
});
