// createHealthService: gRPC's standard health service (grpc.health.v1.Health,
// gRPC's doc/health-checking.md) as the peers that call it do: grpc-js with
// the health proto loaded by @grpc/proto-loader, connect-node over h2c and
// over HTTP/1.1 Connect (binary and JSON), this library's client, and buf
// curl with --schema over native gRPC, as a Kubernetes probe calls it. The
// native gRPC server runs in a child process (tests/_health_h2_server.ts).

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import process from "node:process";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { createClient as createConnectClient } from "@connectrpc/connect";
import {
  createConnectTransport as connectNodeConnect,
  createGrpcTransport as connectNodeGrpc,
} from "@connectrpc/connect-node";
import {
  Code,
  createClient,
  createGrpcTransport,
  createHealthService,
  createRpcHandler,
  type HandlerContext,
  type HealthCheckResponse,
  type HealthServingStatus,
  RpcError,
} from "../lib/rpc/mod.ts";
import { createHttp2Client } from "../lib/runtime/grpc_node.ts";
import { streamingCalc } from "../examples/streaming_calc.ts";
import {
  type Child,
  deadline,
  runProcess,
  runtime,
  startH2Child,
  startServer,
} from "./_helpers.ts";
import { createMessageType } from "../lib/protobuf/mod.ts";
import {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
} from "../lib/protobuf/_reflection/gen/grpc/health/v1/health_pb.ts";

const ROOT = join(import.meta.dirname ?? ".", "..");
const PROTO = join(
  ROOT,
  "lib",
  "protobuf",
  "_reflection",
  "grpc",
  "health",
  "v1",
  "health.proto",
);
const T = 20_000; // per-operation deadline, generous for a noisy machine

/** serveHttp2 with the health service beside StreamingCalcService. */
function startHealthServer(): Promise<{
  child: Child;
  port: number;
  url: string;
  stop(): Promise<void>;
}> {
  return startH2Child("_health_h2_server.ts");
}

// ---------- grpc-js ----------

// deno-lint-ignore no-explicit-any
type GrpcJsHealth = any;

function grpcJsHealthClient(port: number): GrpcJsHealth {
  const definition = protoLoader.loadSync(PROTO, {
    enums: String,
    defaults: true,
  });
  // deno-lint-ignore no-explicit-any
  const pkg = grpc.loadPackageDefinition(definition) as any;
  return new pkg.grpc.health.v1.Health(
    `127.0.0.1:${port}`,
    grpc.credentials.createInsecure(),
  );
}

function grpcJsCheck(
  client: GrpcJsHealth,
  service: string,
): Promise<string> {
  return new Promise((resolve, reject) => {
    client.check(
      { service },
      { deadline: Date.now() + T },
      (error: grpc.ServiceError | null, response: { status: string }) => {
        if (error) reject(error);
        else resolve(response.status);
      },
    );
  });
}

/** A grpc-js Watch call: each status in turn, with `next()`. */
function grpcJsWatch(client: GrpcJsHealth, service: string) {
  const call = client.watch({ service });
  const received: string[] = [];
  const waiting: ((status: string) => void)[] = [];
  let failure: grpc.ServiceError | undefined;
  call.on("data", (message: { status: string }) => {
    const waiter = waiting.shift();
    if (waiter) waiter(message.status);
    else received.push(message.status);
  });
  call.on("error", (error: grpc.ServiceError) => failure = error);
  return {
    call,
    next(): Promise<string> {
      if (received.length > 0) return Promise.resolve(received.shift()!);
      if (failure) return Promise.reject(failure);
      return deadline(
        new Promise((resolve) => waiting.push(resolve)),
        T,
        "grpc-js Watch message",
      );
    },
  };
}

describe("createHealthService over serveHttp2 (native gRPC)", () => {
  let server: Awaited<ReturnType<typeof startHealthServer>>;
  let client: GrpcJsHealth;

  before(async () => {
    server = await startHealthServer();
    client = grpcJsHealthClient(server.port);
  });
  after(async () => {
    client?.close();
    await server?.stop();
  });

  it("grpc-js Check answers SERVING for the server and for a registered service", async () => {
    assert.equal(await deadline(grpcJsCheck(client, ""), T), "SERVING");
    assert.equal(
      await deadline(grpcJsCheck(client, "StreamingCalcService"), T),
      "SERVING",
    );
  });

  it("grpc-js Check of an unknown service fails with NOT_FOUND", async () => {
    const error = await deadline(
      grpcJsCheck(client, "example.Missing").then(() => undefined, (e) => e),
      T,
    );
    assert.equal(error?.code, grpc.status.NOT_FOUND);
    assert.match(error.details, /service "example.Missing" is not registered/);
  });

  it("grpc-js Watch of an unknown service sends SERVICE_UNKNOWN, then each change once set", async () => {
    const watch = grpcJsWatch(client, "example.Later");
    try {
      assert.equal(await watch.next(), "SERVICE_UNKNOWN");
      await server.child.request({
        cmd: "set",
        service: "example.Later",
        status: "SERVING",
      });
      assert.equal(await watch.next(), "SERVING");
      await server.child.request({
        cmd: "set",
        service: "example.Later",
        status: "NOT_SERVING",
      });
      assert.equal(await watch.next(), "NOT_SERVING");
      assert.equal(
        await deadline(grpcJsCheck(client, "example.Later"), T),
        "NOT_SERVING",
      );
    } finally {
      watch.call.cancel();
    }
  });

  it("a Watch whose client goes away frees its watcher", async () => {
    const watches = [
      grpcJsWatch(client, ""),
      grpcJsWatch(client, "StreamingCalcService"),
    ];
    for (const watch of watches) assert.equal(await watch.next(), "SERVING");
    assert.deepEqual(
      await server.child.request({ cmd: "watchers", count: 2 }, T),
      { watchers: 2 },
    );
    for (const watch of watches) watch.call.cancel();
    assert.deepEqual(
      await server.child.request({ cmd: "watchers", count: 0 }, T),
      { watchers: 0 },
    );
  });

  it("connect-node's gRPC client over h2c calls Check", async () => {
    const health = createConnectClient(
      Health,
      connectNodeGrpc({ baseUrl: server.url }),
    );
    const response = await deadline(
      health.check({ service: "StreamingCalcService" }, { timeoutMs: T }),
      T,
    );
    assert.equal(response.status, HealthCheckResponse_ServingStatus.SERVING);
  });

  it("this library's gRPC client calls Check and Watch", async () => {
    const httpClient = createHttp2Client(server.url);
    try {
      const health = createClient(
        createHealthService().service,
        createGrpcTransport({ baseUrl: server.url, httpClient }),
      );
      assert.deepEqual(
        await deadline(health.check({ service: "" }, { timeoutMs: T }), T),
        { status: "SERVING" },
      );
      const error = await deadline(
        health.check({ service: "nope" }).then(() => undefined, (e) => e),
        T,
      );
      assert.ok(error instanceof RpcError);
      assert.equal(error.code, Code.NotFound);
      const watch = health.watch({ service: "example.Own" });
      assert.deepEqual(
        (await deadline(watch.receive(), T)).value,
        { status: "SERVICE_UNKNOWN" },
      );
      await server.child.request({
        cmd: "set",
        service: "example.Own",
        status: "SERVING",
      });
      assert.deepEqual(
        (await deadline(watch.receive(), T)).value,
        { status: "SERVING" },
      );
      watch.cancel();
    } finally {
      await httpClient.close();
    }
  });

  it("buf curl --schema --protocol grpc --http2-prior-knowledge calls Check, as a Kubernetes probe would", async () => {
    const { code, stdout, stderr } = await buf([
      "curl",
      "--schema",
      PROTO,
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "-d",
      '{"service":"StreamingCalcService"}',
      `${server.url}/grpc.health.v1.Health/Check`,
    ]);
    assert.equal(code, 0, stderr);
    assert.deepEqual(JSON.parse(stdout), { status: "SERVING" });
  });

  it("buf curl of an unknown service exits with NOT_FOUND", async () => {
    const { code, stderr } = await buf([
      "curl",
      "--schema",
      PROTO,
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "-d",
      '{"service":"example.Missing"}',
      `${server.url}/grpc.health.v1.Health/Check`,
    ]);
    assert.notEqual(code, 0);
    assert.match(stderr, /not_found/);
  });
});

/** Runs buf from npm (its binary ships in the package). */
function buf(args: string[]) {
  return runtime === "deno"
    ? runProcess("deno", [
      "run",
      "--allow-run",
      "--allow-read",
      "--allow-env",
      "npm:@bufbuild/buf@1.75.0",
      ...args,
    ], { cwd: ROOT, timeoutMs: T })
    : runProcess(
      process.execPath,
      [join(ROOT, "node_modules", "@bufbuild", "buf", "bin", "buf"), ...args],
      { cwd: ROOT, timeoutMs: T },
    );
}

describe("HealthService.shutdown over serveHttp2", () => {
  let server: Awaited<ReturnType<typeof startHealthServer>>;
  let client: GrpcJsHealth;

  before(async () => {
    server = await startHealthServer();
    client = grpcJsHealthClient(server.port);
  });
  after(async () => {
    client?.close();
    await server?.stop();
  });

  it("sends NOT_SERVING to watchers, answers it to Check and ignores setStatus after", async () => {
    const watch = grpcJsWatch(client, "");
    try {
      assert.equal(await watch.next(), "SERVING");
      await server.child.request({ cmd: "shutdown" });
      assert.equal(await watch.next(), "NOT_SERVING");
      for (const service of ["", "StreamingCalcService"]) {
        assert.equal(
          await deadline(grpcJsCheck(client, service), T),
          "NOT_SERVING",
        );
      }
      await server.child.request({
        cmd: "set",
        service: "",
        status: "SERVING",
      });
      assert.equal(await deadline(grpcJsCheck(client, ""), T), "NOT_SERVING");
    } finally {
      watch.call.cancel();
    }
  });
});

describe("createHealthService over HTTP/1.1 Connect (createRpcHandler on serve)", () => {
  const health = createHealthService({
    statuses: {
      StreamingCalcService: "SERVING",
      "example.Down": "NOT_SERVING",
    },
  });
  let server: Awaited<ReturnType<typeof startServer>>;
  let url: string;

  before(async () => {
    server = await startServer(
      createRpcHandler([streamingCalc, health.implementation]),
    );
    url = `http://127.0.0.1:${server.port}`;
  });
  after(async () => {
    await server?.shutdown();
  });

  for (const useBinaryFormat of [true, false]) {
    it(`connect-node calls Check (${useBinaryFormat ? "binary" : "JSON"})`, async () => {
      const client = createConnectClient(
        Health,
        connectNodeConnect({
          baseUrl: url,
          httpVersion: "1.1",
          useBinaryFormat,
        }),
      );
      const up = await deadline(
        client.check({ service: "StreamingCalcService" }),
        T,
      );
      assert.equal(up.status, HealthCheckResponse_ServingStatus.SERVING);
      const down = await deadline(client.check({ service: "example.Down" }), T);
      assert.equal(down.status, HealthCheckResponse_ServingStatus.NOT_SERVING);
    });
  }

  it("Check over Connect JSON answers the status by name", async () => {
    const response = await fetch(`${url}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"service":"StreamingCalcService"}',
    });
    assert.equal(response.status, 200);
    assert.equal(await response.text(), '{"status":"SERVING"}');
  });

  it("Check over Connect JSON ignores a field the message lacks, as Connect does", async () => {
    const response = await fetch(`${url}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"service":"StreamingCalcService","extra":{"a":[1]}}',
    });
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal(await response.text(), '{"status":"SERVING"}');
  });

  for (
    const [name, contentType, body, message] of [
      [
        "a service that is not a string",
        "application/json",
        '{"service":1}',
        /service must be a string, got number/,
      ],
      [
        "a JSON array",
        "application/json",
        "[]",
        /expected a JSON object, got an array/,
      ],
      [
        "a service name that is not UTF-8",
        "application/proto",
        new Uint8Array([0x0a, 0x02, 0xc3, 0x28]),
        /field 1 \(service\) is not valid UTF-8/,
      ],
      [
        "field 1 with the wrong wire type",
        "application/proto",
        new Uint8Array([0x08, 0x01]),
        /field 1 has wire type 0, expected 2/,
      ],
    ] as const
  ) {
    it(`Check refuses ${name} with invalid_argument`, async () => {
      const response = await fetch(`${url}/grpc.health.v1.Health/Check`, {
        method: "POST",
        headers: { "content-type": contentType },
        body,
      });
      assert.equal(response.status, 400);
      const error = await response.json();
      assert.equal(error.code, "invalid_argument");
      assert.match(error.message, message);
    });
  }
});

/** The Watch handler of `health`, called as the server calls it. */
function watchHandler(health: ReturnType<typeof createHealthService>) {
  const { handler } = health.implementation.handlers.get(
    "/grpc.health.v1.Health/Watch",
  )!;
  return (service: string, signal: AbortSignal) =>
    handler({ service }, { signal } as HandlerContext) as ReadableStream<
      HealthCheckResponse
    >;
}

describe("createHealthService Watch", () => {
  it("keeps only the latest status for a watcher that does not read: 100,000 changes queue nothing", async () => {
    const health = createHealthService();
    const controller = new AbortController();
    const reader = watchHandler(health)("example.Flip", controller.signal)
      .getReader();
    assert.deepEqual((await reader.read()).value, {
      status: "SERVICE_UNKNOWN",
    });
    // The watcher does not read while the status changes 100,000 times
    // (with the event loop turning every 1,000).
    let status: HealthServingStatus = "SERVING";
    for (let i = 0; i < 100_000; i++) {
      status = i % 2 === 0 ? "SERVING" : "NOT_SERVING";
      health.setStatus("example.Flip", status);
      if (i % 1000 === 999) await new Promise((r) => setTimeout(r, 0));
    }
    assert.equal(status, "NOT_SERVING");
    // Only the latest is there: then the next change, nothing in between.
    assert.deepEqual((await reader.read()).value, { status: "NOT_SERVING" });
    const next = reader.read();
    health.setStatus("example.Flip", "SERVING");
    assert.deepEqual((await deadline(next, T)).value, { status: "SERVING" });
    controller.abort();
    assert.equal(health.watchers, 0);
  });

  it("sends a status only when it differs from the last one sent", async () => {
    const health = createHealthService();
    const controller = new AbortController();
    const reader = watchHandler(health)("", controller.signal).getReader();
    assert.deepEqual((await reader.read()).value, { status: "SERVING" });
    health.setStatus("", "NOT_SERVING");
    health.setStatus("", "SERVING"); // back before the watcher read
    const next = reader.read();
    health.setStatus("", "SERVING"); // unchanged: nothing to send
    health.setStatus("", "NOT_SERVING");
    assert.deepEqual((await deadline(next, T)).value, {
      status: "NOT_SERVING",
    });
    controller.abort();
  });

  it("frees a watcher when its call's signal aborts, and ends its stream", async () => {
    const health = createHealthService();
    const controller = new AbortController();
    const reader = watchHandler(health)("", controller.signal).getReader();
    await reader.read();
    const waiting = reader.read();
    assert.equal(health.watchers, 1);
    controller.abort();
    assert.equal(health.watchers, 0);
    assert.deepEqual(await deadline(waiting, T), {
      done: true,
      value: undefined,
    });
  });

  it("frees a watcher whose stream is cancelled", async () => {
    const health = createHealthService();
    const stream = watchHandler(health)("", new AbortController().signal);
    assert.equal(health.watchers, 1);
    await stream.cancel();
    assert.equal(health.watchers, 0);
  });
});

describe("createHealthService arguments", () => {
  it("starts with the server SERVING and the given statuses", () => {
    const health = createHealthService({ statuses: { a: "NOT_SERVING" } });
    assert.equal(health.getStatus(""), "SERVING");
    assert.equal(health.getStatus("a"), "NOT_SERVING");
    assert.equal(health.getStatus("b"), undefined);
    const down = createHealthService({ statuses: { "": "NOT_SERVING" } });
    assert.equal(down.getStatus(""), "NOT_SERVING");
  });

  it("setStatus refuses a status other than SERVING and NOT_SERVING", () => {
    const health = createHealthService();
    assert.throws(
      () => health.setStatus("a", "SERVICE_UNKNOWN" as HealthServingStatus),
      {
        name: "TypeError",
        message:
          'Cannot set health status: a status must be "SERVING" or "NOT_SERVING", got "SERVICE_UNKNOWN"',
      },
    );
    assert.throws(
      () => health.setStatus(1 as unknown as string, "SERVING"),
      {
        name: "TypeError",
        message:
          "Cannot set health status: the service name must be a string, got number",
      },
    );
    assert.throws(
      () =>
        createHealthService({
          statuses: { a: true as unknown as HealthServingStatus },
        }),
      /Cannot create health service: a status must be "SERVING" or "NOT_SERVING", got boolean/,
    );
  });
});

describe("grpc.health.v1 messages", () => {
  const health = createHealthService();
  const { input, output } = health.service.methods.check;

  it("HealthCheckRequest writes proto3's defaults as nothing, and reads what grpc-js writes", () => {
    assert.deepEqual([...input.proto.encode({ service: "" })], []);
    const bytes = input.proto.encode({ service: "café" });
    assert.deepEqual([...bytes], [0x0a, 5, 0x63, 0x61, 0x66, 0xc3, 0xa9]);
    assert.deepEqual(input.proto.decode(bytes), { service: "café" });
    // An unknown field (2, varint) is skipped.
    assert.deepEqual(
      input.proto.decode(new Uint8Array([0x10, 0x01, ...bytes])),
      { service: "café" },
    );
    assert.deepEqual(input.json!.decode(new TextEncoder().encode("{}")), {
      service: "",
    });
  });

  it("HealthCheckResponse reads an enum number it does not know as UNKNOWN", () => {
    for (
      const [status, bytes] of [["UNKNOWN", []], ["SERVING", [8, 1]], [
        "NOT_SERVING",
        [8, 2],
      ], ["SERVICE_UNKNOWN", [8, 3]]] as const
    ) {
      assert.deepEqual([...output.proto.encode({ status })], bytes);
      assert.deepEqual(output.proto.decode(new Uint8Array(bytes)), { status });
    }
    assert.deepEqual(output.proto.decode(new Uint8Array([8, 9])), {
      status: "UNKNOWN",
    });
    const json = (text: string) =>
      output.json!.decode(new TextEncoder().encode(text));
    assert.deepEqual(json('{"status":2}'), { status: "NOT_SERVING" });
    assert.deepEqual(json('{"status":null}'), { status: "UNKNOWN" });
    assert.equal(
      new TextDecoder().decode(output.json!.encode({ status: "UNKNOWN" })),
      "{}",
    );
  });

  it("HealthCheckResponse reads a ServingStatus name it does not know as UNKNOWN, as protobuf-es does", () => {
    const json = (text: string) =>
      output.json!.decode(new TextEncoder().encode(text));
    const es = createMessageType(HealthCheckResponseSchema);
    for (const name of ["FUTURE_STATUS", "serving", "1", ""]) {
      const text = JSON.stringify({ status: name });
      assert.deepEqual(json(text), { status: "UNKNOWN" }, text);
      // protobuf-es, as createMessageType reads JSON: the zero value.
      assert.equal(
        es.json.decode(new TextEncoder().encode(text)).status,
        HealthCheckResponse_ServingStatus.UNKNOWN,
        text,
      );
    }
  });

  it("HealthCheckRequest and HealthCheckResponse ignore JSON fields they lack, as protobuf-es does", () => {
    const bytes = (text: string) => new TextEncoder().encode(text);
    assert.deepEqual(input.json!.decode(bytes('{"service":"a","extra":1}')), {
      service: "a",
    });
    assert.deepEqual(input.json!.decode(bytes('{"extra":{"service":"b"}}')), {
      service: "",
    });
    assert.deepEqual(
      output.json!.decode(bytes('{"status":"SERVING","next":{"a":[1,null]}}')),
      { status: "SERVING" },
    );
    // protobuf-es, as createMessageType reads JSON, alike.
    assert.equal(
      createMessageType(HealthCheckRequestSchema).json.decode(
        bytes('{"service":"a","extra":1}'),
      ).service,
      "a",
    );
  });

  it("HealthCheckRequest and HealthCheckResponse still refuse a known JSON field of the wrong type", () => {
    const bytes = (text: string) => new TextEncoder().encode(text);
    assert.throws(() => input.json!.decode(bytes('{"service":1,"extra":1}')), {
      name: "SyntaxError",
      message:
        "Cannot decode HealthCheckRequest: service must be a string, got number",
    });
    assert.throws(() => output.json!.decode(bytes('{"status":true}')), {
      name: "SyntaxError",
      message:
        "Cannot decode HealthCheckResponse: status must be a name or an int32, got boolean",
    });
    assert.throws(() => output.json!.decode(bytes('{"status":1.5}')), {
      name: "SyntaxError",
      message:
        'Cannot decode HealthCheckResponse: status must be a name or an int32, got "1.5"',
    });
  });
});
