// Interop with real third-party peers: @grpc/grpc-js and Connect-ES
// (@connectrpc/connect-node), both directions, for StreamingCalcService.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import {
  Code as ConnectCode,
  ConnectError,
  createClient as createConnectClient,
} from "@connectrpc/connect";
import {
  createConnectTransport as connectNodeConnect,
  createGrpcTransport as connectNodeGrpc,
  createGrpcWebTransport as connectNodeGrpcWeb,
} from "@connectrpc/connect-node";
import type { Transport as ConnectTransport } from "@connectrpc/connect";
import {
  Code,
  createClient,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  createRpcHandler,
  defineService,
  Int64Value,
  RpcError,
  type Transport,
} from "../lib/rpc/mod.ts";
import { createHttp2Client } from "../lib/runtime/grpc_node.ts";
import {
  runIncrementalSum,
  runSum,
  streamingCalc,
  StreamingCalcService,
} from "../examples/streaming_calc.ts";
import { deadline, startH2Child, startServer } from "./_helpers.ts";
import {
  connectEchoService,
  connectService,
  grpcJsClient,
  grpcJsIncrementalSum,
  grpcJsSum,
  int64,
  serveConnectRoutes,
  startConnectNodeServer,
  startGrpcJsServer,
} from "./_calc_peers.ts";

const MAX = (1n << 63n) - 1n;
const ONE_TO_TEN = [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n, 10n];
const RUNNING = ["1", "3", "6", "10", "15", "21", "28", "36", "45", "55"];
const T = 20_000; // per-operation deadline, generous for a noisy machine

async function collectPrints(
  fn: (print: (line: string) => void) => Promise<unknown>,
): Promise<string[]> {
  const lines: string[] = [];
  await deadline(fn((line) => lines.push(line)), T, "seed client");
  return lines;
}

const GUIDE_SUM = ["Value: 55"];
const GUIDE_INCREMENTAL = [...RUNNING.map((v) => `Value: ${v}`), "Complete."];

/**
 * serveHttp2 with StreamingCalcService in a child process
 * (tests/_calc_h2_server.ts, {@linkcode startH2Child}).
 */
function startCalcServer(
  options: Record<string, unknown> = {},
  serveOptions: Record<string, unknown> = {},
): Promise<{ port: number; url: string; stop(): Promise<void> }> {
  return startH2Child("_calc_h2_server.ts", [
    JSON.stringify(options),
    JSON.stringify(serveOptions),
  ]);
}

describe("grpc-js client -> our native gRPC server (serveHttp2)", () => {
  let server: Awaited<ReturnType<typeof startCalcServer>>;
  let tiny: Awaited<ReturnType<typeof startCalcServer>>;
  // deno-lint-ignore no-explicit-any
  let client: any;
  // deno-lint-ignore no-explicit-any
  let tinyClient: any;

  before(async () => {
    server = await startCalcServer();
    tiny = await startCalcServer({ maxMessageBytes: 4 });
    client = grpcJsClient(`127.0.0.1:${server.port}`);
    tinyClient = grpcJsClient(`127.0.0.1:${tiny.port}`);
  });
  after(async () => {
    client?.close();
    tinyClient?.close();
    await server?.stop();
    await tiny?.stop();
  });

  it("sum returns 55", async () => {
    assert.equal(await deadline(grpcJsSum(client, ONE_TO_TEN), T), "55");
  });

  it("incrementalSum streams the running sums", async () => {
    assert.deepEqual(
      await deadline(grpcJsIncrementalSum(client, ONE_TO_TEN), T),
      RUNNING,
    );
  });

  it("sum of the int64 extremes is exact", async () => {
    assert.equal(
      await deadline(grpcJsSum(client, [MAX, -MAX - 1n, -1n, 0n]), T),
      "-2",
    );
  });

  it("sum overflow fails with OUT_OF_RANGE", async () => {
    const error = await deadline(
      grpcJsSum(client, [MAX, 1n]).then(() => undefined, (e) => e),
      T,
    );
    assert.equal(error?.code, grpc.status.OUT_OF_RANGE);
    assert.match(error.details, /overflows int64/);
  });

  it("incrementalSum overflow sends the sums so far, then OUT_OF_RANGE", async () => {
    // Lockstep, so that each sum is received before the next value is sent
    // (grpc-js drops messages it has not delivered when an error arrives).
    const call = client.incrementalSum();
    const received: string[] = [];
    const next = () =>
      new Promise<string>((resolve, reject) => {
        call.once("data", (m: { value: string }) => resolve(m.value));
        call.once("error", reject);
      });
    const failed = new Promise<grpc.ServiceError>((resolve) =>
      call.on("error", resolve)
    );
    call.write({ value: "1" });
    received.push(await deadline(next(), T));
    call.write({ value: "2" });
    received.push(await deadline(next(), T));
    call.write({ value: String(MAX) });
    call.end();
    const error = await deadline(failed, T);
    assert.deepEqual(received, ["1", "3"]);
    assert.equal(error.code, grpc.status.OUT_OF_RANGE);
    assert.match(error.details, /overflows int64/);
  });

  it("a message over maxMessageBytes fails with RESOURCE_EXHAUSTED", async () => {
    const error = await deadline(
      grpcJsSum(tinyClient, [MAX]).then(() => undefined, (e) => e),
      T,
    );
    assert.equal(error?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(await deadline(grpcJsSum(tinyClient, [1n, 2n]), T), "3");
  });

  it("a deadline fails with DEADLINE_EXCEEDED", async () => {
    const error = await deadline(
      new Promise<grpc.ServiceError>((resolve) => {
        const call = client.sum(
          new grpc.Metadata(),
          { deadline: Date.now() + 200 },
          (e: grpc.ServiceError | null) => resolve(e!),
        );
        call.write({ value: "1" }); // and never end the stream
      }),
      T,
    );
    assert.equal(error?.code, grpc.status.DEADLINE_EXCEEDED);
    assert.equal(await deadline(grpcJsSum(client, [2n, 3n]), T), "5");
  });

  it("an unknown method fails with UNIMPLEMENTED", async () => {
    const error = await deadline(
      new Promise<grpc.ServiceError | null>((resolve) => {
        client.makeUnaryRequest(
          "/StreamingCalcService/multiply",
          (x: Uint8Array) => Buffer.from(x),
          (x: Uint8Array) => x,
          new Uint8Array(0),
          (e: grpc.ServiceError | null) => resolve(e),
        );
      }),
      T,
    );
    assert.equal(error?.code, grpc.status.UNIMPLEMENTED);
  });
});

// Connect-ES clients, each transport, against our servers.
type ConnectCase = {
  name: string;
  server: "fetch" | "http2";
  transport: (url: string) => ConnectTransport;
};
const connectCases: ConnectCase[] = [
  {
    name: "Connect over HTTP/1.1 -> createRpcHandler",
    server: "fetch",
    transport: (url) =>
      connectNodeConnect({ baseUrl: url, httpVersion: "1.1" }),
  },
  {
    name: "gRPC-Web over HTTP/1.1 -> createRpcHandler",
    server: "fetch",
    transport: (url) =>
      connectNodeGrpcWeb({ baseUrl: url, httpVersion: "1.1" }),
  },
  {
    name: "Connect over h2c -> serveHttp2",
    server: "http2",
    transport: (url) => connectNodeConnect({ baseUrl: url, httpVersion: "2" }),
  },
  {
    name: "gRPC-Web over h2c -> serveHttp2",
    server: "http2",
    transport: (url) => connectNodeGrpcWeb({ baseUrl: url, httpVersion: "2" }),
  },
  {
    name: "gRPC over h2c -> serveHttp2",
    server: "http2",
    transport: (url) => connectNodeGrpc({ baseUrl: url }),
  },
];

for (const c of connectCases) {
  describe(`Connect-ES client (${c.name})`, () => {
    let shutdown: () => Promise<void>;
    // deno-lint-ignore no-explicit-any
    let client: any;
    before(async () => {
      if (c.server === "fetch") {
        const server = await startServer(createRpcHandler(streamingCalc));
        shutdown = () => server.shutdown();
        client = createConnectClient(
          connectService(),
          c.transport(server.url.origin),
        );
      } else {
        const server = await startCalcServer();
        shutdown = () => server.stop();
        client = createConnectClient(connectService(), c.transport(server.url));
      }
    });
    after(() => shutdown?.());

    async function* values(list: readonly bigint[]) {
      for (const v of list) yield int64(v);
    }

    it("sum returns 55", async () => {
      const result = await deadline(client.sum(values(ONE_TO_TEN)), T);
      assert.equal((result as { value: bigint }).value, 55n);
    });

    it("incrementalSum streams the running sums", async () => {
      const results: string[] = [];
      await deadline(
        (async () => {
          for await (const m of client.incrementalSum(values(ONE_TO_TEN))) {
            results.push(String(m.value));
          }
        })(),
        T,
      );
      assert.deepEqual(results, RUNNING);
    });

    it("overflow fails with OUT_OF_RANGE", async () => {
      const error = await deadline(
        client.sum(values([MAX, MAX])).then(() => undefined, (e: unknown) => e),
        T,
      );
      assert.ok(error instanceof ConnectError, String(error));
      assert.equal(error.code, ConnectCode.OutOfRange);
      assert.match(error.rawMessage, /overflows int64/);
    });

    it("a deadline fails with DEADLINE_EXCEEDED", async () => {
      const never = async function* () {
        yield int64(1n);
        await new Promise(() => {}); // never ends
      };
      const error = await deadline(
        client.sum(never(), { timeoutMs: 200 }).then(
          () => undefined,
          (e: unknown) => e,
        ),
        T,
      );
      assert.ok(error instanceof ConnectError, String(error));
      assert.equal(error.code, ConnectCode.DeadlineExceeded);
    });
  });
}

// Our clients against third-party servers.
describe("grpc-js client -> serveHttp2 shutting down", () => {
  it("a call still open after shutdownTimeoutMs ends UNAVAILABLE (the session was destroyed with it open: INTERNAL)", async () => {
    const server = await startCalcServer({}, { shutdownTimeoutMs: 300 });
    const client = grpcJsClient(`127.0.0.1:${server.port}`);
    try {
      const first = Promise.withResolvers<string>();
      const ended = new Promise<grpc.ServiceError>((resolve) => {
        // An incrementalSum whose requests never end: its handler waits
        // for the next one.
        const call = client.incrementalSum();
        call.on(
          "data",
          (message: { value: string }) => first.resolve(message.value),
        );
        call.on("error", resolve);
        call.on("end", () => first.reject(new Error("the call ended")));
        call.write({ value: "1" });
      });
      // The call is under way before the shutdown begins: its handler
      // answered (a fixed wait of 200 ms was sometimes shorter than the
      // client's connecting, on a loaded machine: ECONNREFUSED instead).
      assert.equal(await deadline(first.promise, T, "the first sum"), "1");
      const stopping = server.stop();
      const error = await deadline(ended, T, "the call's end");
      await stopping;
      assert.equal(error?.code, grpc.status.UNAVAILABLE, String(error));
      assert.match(error.details, /the server is shutting down/);
    } finally {
      client.close();
    }
  });
});

describe("our clients -> Connect-ES server (connect-node)", () => {
  let h1: Awaited<ReturnType<typeof startConnectNodeServer>>;
  let h2: Awaited<ReturnType<typeof startConnectNodeServer>>;
  before(async () => {
    h1 = await startConnectNodeServer("1.1");
    h2 = await startConnectNodeServer("2");
  });
  after(async () => {
    await h1?.shutdown();
    await h2?.shutdown();
  });

  // connect-node refuses bidi over HTTP/1.1 (505, as the Connect spec
  // allows), so the HTTP/1.1 fetch cases run client-streaming `sum` only;
  // bidi runs over h2c with our node:http2 client, for every protocol.
  const cases: {
    name: string;
    bidi: boolean;
    make: () => { transport: Transport; close(): Promise<void> };
  }[] = [
    {
      name: "Connect over HTTP/1.1 fetch",
      bidi: false,
      make: () => ({
        transport: createConnectTransport({ baseUrl: h1.url }),
        close: () => Promise.resolve(),
      }),
    },
    {
      name: "gRPC-Web over HTTP/1.1 fetch",
      bidi: false,
      make: () => ({
        transport: createGrpcWebTransport({ baseUrl: h1.url }),
        close: () => Promise.resolve(),
      }),
    },
    ...(["connect", "grpc-web", "grpc"] as const).map((protocol) => ({
      name: `${protocol} over node:http2`,
      bidi: true,
      make: () => {
        const httpClient = createHttp2Client(h2.url);
        const options = { baseUrl: h2.url, httpClient };
        return {
          transport: protocol === "connect"
            ? createConnectTransport(options)
            : protocol === "grpc-web"
            ? createGrpcWebTransport(options)
            : createGrpcTransport(options),
          close: () => httpClient.close(),
        };
      },
    })),
  ];
  for (const c of cases) {
    it(`${c.name}: the gRPC streaming guide's outputs`, async () => {
      const { transport, close } = c.make();
      try {
        assert.deepEqual(
          await collectPrints((p) => runSum(transport, p)),
          GUIDE_SUM,
        );
        if (c.bidi) {
          assert.deepEqual(
            await collectPrints((p) => runIncrementalSum(transport, p)),
            GUIDE_INCREMENTAL,
          );
        }
      } finally {
        await close();
      }
    });

    it(`${c.name}: overflow is OUT_OF_RANGE`, async () => {
      const { transport, close } = c.make();
      try {
        if (!c.bidi) {
          const call = createClient(StreamingCalcService, transport).sum();
          await call.send(MAX);
          await call.send(1n);
          await call.complete().catch(() => {});
          const error = await deadline(
            call.receive().then(() => undefined, (e) => e),
            T,
          );
          assert.ok(error instanceof RpcError, String(error));
          assert.equal(error.code, Code.OutOfRange);
          return;
        }
        const call = createClient(StreamingCalcService, transport)
          .incrementalSum();
        const received: bigint[] = [];
        const reading = (async () => {
          for await (const v of call.responses) received.push(v);
        })();
        await call.send(5n);
        await call.send(MAX);
        await call.complete().catch(() => {});
        const error = await deadline(
          reading.then(() => undefined, (e) => e),
          T,
        );
        assert.ok(error instanceof RpcError, String(error));
        assert.equal(error.code, Code.OutOfRange);
        assert.match(error.rawMessage, /overflows int64/);
        assert.deepEqual(received, [5n]);
      } finally {
        await close();
      }
    });
  }
});

describe("our gRPC client -> grpc-js server", () => {
  let server: Awaited<ReturnType<typeof startGrpcJsServer>>;
  before(async () => {
    server = await startGrpcJsServer();
  });
  // Bounded: a call the server never hears the end of fails the hook
  // instead of hanging the run.
  after(async () => {
    if (server) await deadline(server.shutdown(), 30_000, "server shutdown");
  });

  it("the gRPC streaming guide's outputs", async () => {
    const url = `http://127.0.0.1:${server.port}`;
    const httpClient = createHttp2Client(url);
    try {
      const transport = createGrpcTransport({ baseUrl: url, httpClient });
      assert.deepEqual(
        await collectPrints((p) => runSum(transport, p)),
        GUIDE_SUM,
      );
      assert.deepEqual(
        await collectPrints((p) => runIncrementalSum(transport, p)),
        GUIDE_INCREMENTAL,
      );
    } finally {
      await httpClient.close();
    }
  });

  it("overflow is OUT_OF_RANGE", async () => {
    const url = `http://127.0.0.1:${server.port}`;
    const httpClient = createHttp2Client(url);
    try {
      const call = createClient(
        StreamingCalcService,
        createGrpcTransport({ baseUrl: url, httpClient }),
      ).sum();
      await call.send(MAX);
      await call.send(MAX);
      await call.complete().catch(() => {});
      const error = await deadline(
        call.receive().then(() => undefined, (e) => e),
        T,
      );
      assert.ok(error instanceof RpcError, String(error));
      assert.equal(error.code, Code.OutOfRange);
      assert.match(error.rawMessage, /overflows int64/);
    } finally {
      await httpClient.close();
    }
  });

  it("an unknown method is UNIMPLEMENTED", async () => {
    const Other = defineService("StreamingCalcService", {
      multiply: { kind: "unary", input: Int64Value, output: Int64Value },
    });
    const url = `http://127.0.0.1:${server.port}`;
    const httpClient = createHttp2Client(url);
    try {
      const client = createClient(
        Other,
        createGrpcTransport({ baseUrl: url, httpClient }),
      );
      const error = await deadline(
        client.multiply(2n).then(() => undefined, (e) => e),
        T,
      );
      assert.ok(error instanceof RpcError, String(error));
      assert.equal(error.code, Code.Unimplemented);
    } finally {
      await httpClient.close();
    }
  });
});

describe("our clients -> a Connect-ES server's unary error with metadata", () => {
  // connect-node sends a unary error's metadata as plain headers (beside
  // `trailer-` ones): before, the Connect client read only the latter, and
  // `retry-after` was lost where Connect-ES's own client and ours over
  // gRPC-Web had it.
  const Echo = defineService("test.v1.EchoService", {
    echo: { kind: "unary", input: Int64Value, output: Int64Value },
  });
  let server: { url: string; shutdown(): Promise<void> };
  before(async () => {
    server = await serveConnectRoutes((router) => {
      // deno-lint-ignore no-explicit-any
      router.service(connectEchoService() as any, {
        echo() {
          throw new ConnectError("busy", ConnectCode.Unavailable, {
            "retry-after": "30",
          });
        },
        async *count() {},
      });
    }, "1.1");
  });
  after(() => server.shutdown());

  for (
    const [name, transport] of [
      ["Connect", () => createConnectTransport({ baseUrl: server.url })],
      ["gRPC-Web", () => createGrpcWebTransport({ baseUrl: server.url })],
    ] as const
  ) {
    it(`${name}: the error's metadata holds retry-after, and no protocol header`, async () => {
      const error = await deadline(
        createClient(Echo, transport()).echo(1n).then(
          () => undefined,
          (e: unknown) => e,
        ),
        T,
      );
      assert.ok(error instanceof RpcError, String(error));
      assert.equal(error.code, Code.Unavailable);
      assert.equal(error.rawMessage, "busy");
      assert.equal(error.metadata.get("retry-after"), "30");
      assert.equal(error.metadata.get("content-type"), null);
    });
  }
});
