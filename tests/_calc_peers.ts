// Third-party peers for the StreamingCalcService interop tests: @grpc/grpc-js
// (loading examples/streaming_calc.proto with @grpc/proto-loader) and
// Connect-ES (@connectrpc/connect-node, with the service descriptor built
// from a FileDescriptorProto, as no code generator is available here).

import * as http from "node:http";
import * as http2 from "node:http2";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { create, createFileRegistry } from "@bufbuild/protobuf";
import type { DescService } from "@bufbuild/protobuf";
import {
  file_google_protobuf_wrappers,
  FileDescriptorProtoSchema,
  type Int64Value,
  Int64ValueSchema,
} from "@bufbuild/protobuf/wkt";
import { Code as ConnectCode, ConnectError } from "@connectrpc/connect";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";

const PROTO = join(
  import.meta.dirname ?? ".",
  "..",
  "examples",
  "streaming_calc.proto",
);

const MIN = -(1n << 63n);
const MAX = (1n << 63n) - 1n;

/** Options every grpc-js peer uses (RUNTIMES.md: the retry buffer). */
export const GRPC_JS_OPTIONS = {
  "grpc.per_rpc_retry_buffer_size": 4096,
} as const;

// ---------- grpc-js ----------

// deno-lint-ignore no-explicit-any
type AnyClient = any;

/** The grpc-js client constructor for StreamingCalcService. */
export function grpcJsClientClass(): new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ClientOptions,
) => AnyClient {
  const definition = protoLoader.loadSync(PROTO, {
    longs: String,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(definition);
  return pkg.StreamingCalcService as unknown as new (
    address: string,
    credentials: grpc.ChannelCredentials,
    options?: grpc.ClientOptions,
  ) => AnyClient;
}

/** A grpc-js client connected to `address` (host:port). */
export function grpcJsClient(address: string): AnyClient {
  const Client = grpcJsClientClass();
  return new Client(
    address,
    grpc.credentials.createInsecure(),
    GRPC_JS_OPTIONS,
  );
}

/** grpc-js `sum`: resolves with the result as a string, or the error. */
export function grpcJsSum(
  client: AnyClient,
  values: readonly (bigint | string)[],
  options: { deadlineMs?: number } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const callOptions = options.deadlineMs === undefined
      ? {}
      : { deadline: Date.now() + options.deadlineMs };
    const call = client.sum(
      new grpc.Metadata(),
      callOptions,
      (error: grpc.ServiceError | null, response: { value: string }) => {
        if (error) reject(error);
        else resolve(response.value);
      },
    );
    for (const value of values) call.write({ value: String(value) });
    call.end();
  });
}

/** grpc-js `incrementalSum`: all responses, or the error (with the responses so far). */
export function grpcJsIncrementalSum(
  client: AnyClient,
  values: readonly (bigint | string)[],
): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const call = client.incrementalSum();
    const results: string[] = [];
    call.on(
      "data",
      (message: { value: string }) => results.push(message.value),
    );
    call.on(
      "error",
      (error: grpc.ServiceError) => reject(Object.assign(error, { results })),
    );
    call.on("end", () => resolve(results));
    for (const value of values) call.write({ value: String(value) });
    call.end();
  });
}

/** A grpc-js server for StreamingCalcService on 127.0.0.1:0. */
export async function startGrpcJsServer(): Promise<
  { port: number; shutdown(): Promise<void> }
> {
  const definition = protoLoader.loadSync(PROTO, {
    longs: String,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(definition);
  const service =
    (pkg.StreamingCalcService as unknown as { service: grpc.ServiceDefinition })
      .service;
  const server = new grpc.Server(GRPC_JS_OPTIONS);
  const overflow = (a: bigint, b: bigint) => ({
    code: grpc.status.OUT_OF_RANGE,
    details: `grpc-js: ${a} + ${b} overflows int64`,
  });
  server.addService(service, {
    sum(
      call: grpc.ServerReadableStream<{ value: string }, unknown>,
      callback: grpc.sendUnaryData<{ value: string }>,
    ) {
      let sum = 0n;
      let failed = false;
      call.on("data", (m: { value: string }) => {
        if (failed) return;
        const next = sum + BigInt(m.value);
        if (next < MIN || next > MAX) {
          failed = true;
          callback(overflow(sum, BigInt(m.value)));
          return;
        }
        sum = next;
      });
      call.on("end", () => {
        if (!failed) callback(null, { value: String(sum) });
      });
    },
    incrementalSum(call: grpc.ServerDuplexStream<{ value: string }, unknown>) {
      let sum = 0n;
      let failed = false;
      call.on("data", (m: { value: string }) => {
        if (failed) return;
        const next = sum + BigInt(m.value);
        if (next < MIN || next > MAX) {
          failed = true;
          call.emit("error", overflow(sum, BigInt(m.value)));
          return;
        }
        sum = next;
        call.write({ value: String(sum) });
      });
      call.on("end", () => {
        if (!failed) call.end();
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      "127.0.0.1:0",
      grpc.ServerCredentials.createInsecure(),
      (error, port) => (error ? reject(error) : resolve(port)),
    )
  );
  return {
    port,
    shutdown: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        // Streams a test abandoned must not hold the shutdown.
        setTimeout(() => server.forceShutdown(), 1000).unref?.();
      }),
  };
}

// ---------- Connect-ES ----------

let cachedService: DescService | undefined;

/** StreamingCalcService as a Connect-ES service descriptor. */
export function connectService(): DescService {
  if (cachedService) return cachedService;
  const file = create(FileDescriptorProtoSchema, {
    name: "streaming_calc.proto",
    syntax: "proto3",
    dependency: ["google/protobuf/wrappers.proto"],
    service: [{
      name: "StreamingCalcService",
      method: [
        {
          name: "sum",
          inputType: ".google.protobuf.Int64Value",
          outputType: ".google.protobuf.Int64Value",
          clientStreaming: true,
        },
        {
          name: "incrementalSum",
          inputType: ".google.protobuf.Int64Value",
          outputType: ".google.protobuf.Int64Value",
          clientStreaming: true,
          serverStreaming: true,
        },
      ],
    }],
  });
  const registry = createFileRegistry(
    file,
    (name) =>
      name === "google/protobuf/wrappers.proto"
        ? file_google_protobuf_wrappers
        : undefined,
  );
  cachedService = registry.getService("StreamingCalcService")!;
  return cachedService;
}

let cachedEcho: DescService | undefined;

/**
 * `test.v1.EchoService` with a unary `echo` and a server-streaming `count`
 * (Int64Value in and out), as a Connect-ES service descriptor.
 */
export function connectEchoService(): DescService {
  if (cachedEcho) return cachedEcho;
  const file = create(FileDescriptorProtoSchema, {
    name: "echo.proto",
    package: "test.v1",
    syntax: "proto3",
    dependency: ["google/protobuf/wrappers.proto"],
    service: [{
      name: "EchoService",
      method: [
        {
          name: "echo",
          inputType: ".google.protobuf.Int64Value",
          outputType: ".google.protobuf.Int64Value",
        },
        {
          name: "count",
          inputType: ".google.protobuf.Int64Value",
          outputType: ".google.protobuf.Int64Value",
          serverStreaming: true,
        },
      ],
    }],
  });
  const registry = createFileRegistry(
    file,
    (name) =>
      name === "google/protobuf/wrappers.proto"
        ? file_google_protobuf_wrappers
        : undefined,
  );
  cachedEcho = registry.getService("test.v1.EchoService")!;
  return cachedEcho;
}

/** An Int64Value message for Connect-ES. */
export function int64(value: bigint): Int64Value {
  return create(Int64ValueSchema, { value });
}

/** Connect-ES routes implementing StreamingCalcService. */
export function connectRoutes(router: ConnectRouter): void {
  const check = (a: bigint, b: bigint) => {
    const next = a + b;
    if (next < MIN || next > MAX) {
      throw new ConnectError(
        `connect-es: ${a} + ${b} overflows int64`,
        ConnectCode.OutOfRange,
      );
    }
    return next;
  };
  // deno-lint-ignore no-explicit-any
  router.service(connectService() as any, {
    async sum(requests: AsyncIterable<Int64Value>) {
      let sum = 0n;
      for await (const m of requests) sum = check(sum, m.value);
      return int64(sum);
    },
    async *incrementalSum(requests: AsyncIterable<Int64Value>) {
      let sum = 0n;
      for await (const m of requests) {
        sum = check(sum, m.value);
        yield int64(sum);
      }
    },
    // deno-lint-ignore no-explicit-any
  } as any);
}

/** A Connect-ES server (connect-node adapter) on 127.0.0.1:0. */
export function startConnectNodeServer(
  httpVersion: "1.1" | "2",
): Promise<{ url: string; shutdown(): Promise<void> }> {
  return serveConnectRoutes(connectRoutes, httpVersion);
}

/**
 * Serves Connect-ES routes with its connect-node adapter on 127.0.0.1:0,
 * over HTTP/1.1 or h2c, with the adapter's other options (`jsonOptions`,
 * `readMaxBytes`, ...); shutdown also ends open connections.
 */
export async function serveConnectRoutes(
  routes: Parameters<typeof connectNodeAdapter>[0]["routes"],
  httpVersion: "1.1" | "2",
  options: Omit<Parameters<typeof connectNodeAdapter>[0], "routes"> = {},
): Promise<{ url: string; shutdown(): Promise<void> }> {
  const handler = connectNodeAdapter({ ...options, routes });
  const server = httpVersion === "2"
    ? http2.createServer(handler)
    : http.createServer(handler);
  const sockets = new Set<{ destroy(): void }>();
  server.on(
    "connection",
    (socket: { destroy(): void; once: (e: string, f: () => void) => void }) => {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
    },
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    shutdown: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}
