// The RPC server's onError: told once of each call that fails by the
// server's fault (a handler's own error, a response its codec cannot
// encode), with the call's context, over Connect, gRPC-Web, native gRPC
// (serveHttp2) and WebSocket; never of a handler's RpcError or of a call
// the client ended; console.error by default; an onError that throws does
// not break the call.

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
  createWebSocketTransport,
  defineService,
  type HandlerContext,
  implementService,
  Int64Value,
  RpcError,
  type Transport,
  type UniversalHandlerOptions,
} from "../lib/rpc/mod.ts";
import { createHttp2Client, serveHttp2 } from "../lib/runtime/grpc_node.ts";
import { createWebSocketRpcHandler } from "../lib/runtime/websocket.ts";
import { deferred } from "../lib/_internal/deferred.ts";
import { aborted, captureConsole, deadline, startServer } from "./_helpers.ts";

const T = 10_000;

const FaultService = defineService("test.FaultService", {
  unary: { kind: "unary", input: Int64Value, output: Int64Value },
  server: { kind: "server-streaming", input: Int64Value, output: Int64Value },
  client: { kind: "client-streaming", input: Int64Value, output: Int64Value },
  bidi: { kind: "bidi", input: Int64Value, output: Int64Value },
  badOutput: { kind: "unary", input: Int64Value, output: Int64Value },
  wait: { kind: "unary", input: Int64Value, output: Int64Value },
  big: { kind: "unary", input: Int64Value, output: Int64Value },
  bigStream: {
    kind: "server-streaming",
    input: Int64Value,
    output: Int64Value,
  },
});

/** What a handler throws for each request value. */
const faults: Record<string, () => unknown> = {
  1: () => new TypeError("boom"),
  2: () => "a string",
  3: () => undefined,
  4: () => ({ message: "an object" }),
  5: () => new RpcError(Code.PermissionDenied, "denied"),
};
const fault = (value: bigint) => faults[String(value)]();

const implementation = implementService(FaultService, {
  unary: async (value) => {
    await 0;
    throw fault(value);
  },
  // After a response: the head is out when it fails.
  async *server(value) {
    yield value;
    throw fault(value);
  },
  client: async (values) => {
    let first: bigint | undefined;
    for await (const value of values) first ??= value;
    throw fault(first!);
  },
  async *bidi(values) {
    for await (const value of values) {
      yield value;
      throw fault(value);
    }
  },
  // A value Int64Value cannot encode.
  badOutput: () => "not a bigint" as unknown as bigint,
  // Answers 6 bytes (the tests' server allows 2).
  big: () => 123456789n,
  async *bigStream() {
    yield 123456789n;
  },
  // Fails with its own error once the call's deadline has passed.
  wait: async (_, context) => {
    await aborted(context.signal);
    throw new TypeError("too late");
  },
});

interface Reported {
  error: unknown;
  context: HandlerContext;
}

interface Setup {
  name: string;
  start(options: UniversalHandlerOptions): Promise<{
    transport: Transport;
    close(): Promise<void>;
  }>;
}

const overFetch = (
  create: typeof createConnectTransport,
): Setup["start"] =>
async (options) => {
  const server = await startServer(createRpcHandler(implementation, options));
  return {
    transport: create({ baseUrl: server.url.origin }),
    close: () => server.shutdown(),
  };
};

const setups: Setup[] = [
  { name: "Connect", start: overFetch(createConnectTransport) },
  { name: "gRPC-Web", start: overFetch(createGrpcWebTransport) },
  {
    name: "gRPC over serveHttp2",
    start: async (options) => {
      const server = await serveHttp2(
        createUniversalHandler(implementation, options),
      );
      const httpClient = createHttp2Client(server.url.origin);
      return {
        transport: createGrpcTransport({
          baseUrl: server.url.origin,
          httpClient,
        }),
        close: async () => {
          await httpClient.close();
          await server.shutdown();
        },
      };
    },
  },
  {
    name: "WebSocket",
    start: async (options) => {
      const server = await startServer(
        createWebSocketRpcHandler(implementation, options),
      );
      return {
        transport: createWebSocketTransport({ baseUrl: server.url.origin }),
        close: () => server.shutdown(),
      };
    },
  },
];

type Kind = "unary" | "server" | "client" | "bidi";
const kinds: Kind[] = ["unary", "server", "client", "bidi"];

/** Makes a call of `kind` that sends `value`; resolves with its error. */
async function failure(
  transport: Transport,
  kind: Kind | "badOutput" | "wait" | "big" | "bigStream",
  value: bigint,
): Promise<RpcError> {
  const client = createClient(FaultService, transport);
  const run = async () => {
    switch (kind) {
      case "unary":
      case "badOutput":
      case "wait":
      case "big":
        await client[kind](value);
        return;
      case "bigStream":
        for await (const _ of client.bigStream(value)) { /* until it fails */ }
        return;
      case "server":
        for await (const _ of client.server(value)) { /* until it fails */ }
        return;
      case "client": {
        const call = client.client();
        await call.send(value);
        await call.complete();
        await call.receive();
        return;
      }
      case "bidi": {
        const call = client.bidi();
        await call.send(value);
        await call.complete().catch(() => {});
        while (!(await call.receive()).done) { /* until it fails */ }
        return;
      }
    }
  };
  const error = await deadline(
    run().then(() => undefined, (e) => e),
    T,
    `${kind} call`,
  );
  assert.ok(error instanceof RpcError, `${kind}: expected an RpcError`);
  return error;
}

for (const setup of setups) {
  describe(`UniversalHandlerOptions.onError over ${setup.name}`, () => {
    const reported: Reported[] = [];
    let served: Awaited<ReturnType<Setup["start"]>>;
    before(async () => {
      served = await setup.start({
        onError: (error, context) => void reported.push({ error, context }),
      });
    });
    after(async () => {
      await served?.close();
    });

    it("onError gets a handler's TypeError once per call, with the method's path", async () => {
      for (const kind of kinds) {
        reported.length = 0;
        const error = await failure(served.transport, kind, 1n);
        // The client still gets the message (docs/rpc.md, Errors).
        assert.equal(error.code, Code.Unknown, kind);
        assert.equal(error.rawMessage, "boom", kind);
        assert.equal(reported.length, 1, kind);
        assert.ok(reported[0].error instanceof TypeError, kind);
        assert.equal((reported[0].error as Error).message, "boom");
        assert.equal(
          reported[0].context.method.path,
          `/test.FaultService/${kind}`,
        );
      }
    });

    it("onError gets a thrown string, undefined or object as it is", async () => {
      for (const kind of kinds) {
        for (const [value, expected] of [[2n, "a string"], [3n, undefined]]) {
          reported.length = 0;
          const error = await failure(served.transport, kind, value as bigint);
          assert.equal(error.code, Code.Unknown, kind);
          assert.deepEqual(reported.map((r) => r.error), [expected], kind);
        }
        reported.length = 0;
        await failure(served.transport, kind, 4n);
        assert.deepEqual(
          reported.map((r) => r.error),
          [{ message: "an object" }],
          kind,
        );
      }
    });

    it("onError is not called for an RpcError the handler throws", async () => {
      reported.length = 0;
      for (const kind of kinds) {
        const error = await failure(served.transport, kind, 5n);
        assert.equal(error.code, Code.PermissionDenied, kind);
      }
      assert.deepEqual(reported, []);
    });

    it("onError gets a response its codec cannot encode (Internal)", async () => {
      reported.length = 0;
      const error = await failure(served.transport, "badOutput", 1n);
      assert.equal(error.code, Code.Internal);
      assert.equal(reported.length, 1);
      assert.ok(reported[0].error instanceof RpcError);
      assert.equal((reported[0].error as RpcError).code, Code.Internal);
      assert.equal(
        reported[0].context.method.path,
        "/test.FaultService/badOutput",
      );
    });

    it("onError gets a response over the server's own maxMessageBytes (ResourceExhausted), unary and streamed", async () => {
      const reports: Reported[] = [];
      const small = await setup.start({
        maxMessageBytes: 2,
        onError: (error, context) => void reports.push({ error, context }),
      });
      try {
        for (const kind of ["big", "bigStream"] as const) {
          const error = await failure(small.transport, kind, 1n);
          assert.equal(error.code, Code.ResourceExhausted, kind);
        }
        assert.deepEqual(
          reports.map(({ error, context }) => [
            (error as RpcError).code,
            context.method.path,
          ]),
          [
            [Code.ResourceExhausted, "/test.FaultService/big"],
            [Code.ResourceExhausted, "/test.FaultService/bigStream"],
          ],
        );
      } finally {
        await small.close();
      }
    });

    it("onError is not called for a call past its deadline", async () => {
      // The server's deadline: the client's error is the status the
      // server sent once the call had failed.
      const reports: Reported[] = [];
      const short = await setup.start({
        maxTimeoutMs: 50,
        onError: (error, context) => void reports.push({ error, context }),
      });
      try {
        const error = await failure(short.transport, "wait", 1n);
        assert.equal(error.code, Code.DeadlineExceeded);
        assert.deepEqual(reports, []);
      } finally {
        await short.close();
      }
    });
  });
}

describe("UniversalHandlerOptions.onError", () => {
  it("createRpcHandler logs a handler's failure once with console.error by default, naming the method", async () => {
    const { transport, close } = await setups[0].start({});
    const console = captureConsole("error");
    try {
      const error = await failure(transport, "unary", 1n);
      assert.equal(error.code, Code.Unknown);
      assert.equal(console.logged.length, 1);
      const [prefix, logged] = console.logged[0];
      assert.equal(prefix, "sluice: RPC /test.FaultService/unary failed:");
      assert.ok(logged instanceof TypeError);
      // A handler's RpcError is its answer: not logged.
      await failure(transport, "bidi", 5n);
      assert.equal(console.logged.length, 1);
    } finally {
      console.restore();
      await close();
    }
  });

  it("an onError that throws is logged, and the call still ends with the handler's error", async () => {
    const thrown = new Error("onError broke");
    const { transport, close } = await setups[0].start({
      onError: () => {
        throw thrown;
      },
    });
    const console = captureConsole("error");
    try {
      const error = await failure(transport, "server", 1n);
      assert.equal(error.code, Code.Unknown);
      assert.equal(error.rawMessage, "boom");
      // Once, with the error it was given (the handler's).
      assert.equal(console.logged.length, 1);
      const [head, reason, given, original] = console.logged[0];
      assert.deepEqual([head, reason, given], [
        "sluice: onError failed:",
        thrown,
        "\nsluice: the error it was given:",
      ]);
      assert.equal((original as Error).message, "boom");
    } finally {
      console.restore();
      await close();
    }
  });

  it("an onError that rejects is logged, not left unhandled", async () => {
    const rejected = new Error("onError rejected");
    const { transport, close } = await setups[0].start({
      // deno-lint-ignore require-await
      onError: async () => {
        throw rejected;
      },
    });
    const console = captureConsole("error");
    try {
      const error = await failure(transport, "unary", 1n);
      assert.equal(error.code, Code.Unknown);
      await console.whenLogged();
      // Once, with the error it was given (the handler's).
      assert.equal(console.logged.length, 1);
      const [head, reason, given, original] = console.logged[0];
      assert.deepEqual([head, reason, given], [
        "sluice: onError failed:",
        rejected,
        "\nsluice: the error it was given:",
      ]);
      assert.equal((original as Error).message, "boom");
    } finally {
      console.restore();
      await close();
    }
  });

  it("onError is not called for a Connect unary call whose client leaves mid-request", async () => {
    const reports: unknown[] = [];
    const rpc = createRpcHandler(implementation, {
      onError: (error) => void reports.push(error),
    });
    const arrived = deferred<void>();
    // Settles once the call has ended (a unary call answers at its end).
    const answered = deferred<void>();
    const server = await startServer(async (request) => {
      arrived.resolve();
      try {
        return await rpc(request);
      } finally {
        answered.resolve();
      }
    });
    try {
      // The first byte of a message whose rest never comes.
      const body = new ReadableStream<Uint8Array>({
        start: (controller) => controller.enqueue(new Uint8Array([8])),
      });
      const leave = new AbortController();
      const response = fetch(
        `${server.url.origin}/test.FaultService/unary`,
        {
          method: "POST",
          headers: { "content-type": "application/proto" },
          body,
          duplex: "half",
          signal: leave.signal,
        } as RequestInit,
      ).catch(() => {});
      await deadline(arrived.promise, T, "request arrived");
      leave.abort();
      await response;
      await deadline(answered.promise, T, "call ended");
      assert.deepEqual(reports, []);
    } finally {
      await server.shutdown();
    }
  });

  it("createUniversalHandler refuses an onError that is not a function", () => {
    assert.throws(
      () =>
        createUniversalHandler(implementation, {
          onError: "log" as unknown as () => void,
        }),
      (error: Error) =>
        error instanceof TypeError && /onError/.test(error.message),
    );
  });
});
