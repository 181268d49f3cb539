// grpc.testing.TestService as grpc/grpc's interop test descriptions specify
// the server (tests/proto/grpc/testing/test.proto, generated into
// tests/gen/): the behaviour once, over protobuf-es messages, then served
// three ways: by sluice (@sluice/streams/protobuf), by @grpc/grpc-js and by
// Connect-ES (connect-node). UnimplementedService is served by none, and
// TestService.UnimplementedCall fails with UNIMPLEMENTED.

import * as http from "node:http";
import * as http2 from "node:http2";
import {
  create,
  type DescMessage,
  type DescService,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  type Code as ConnectCode,
  ConnectError,
  type ConnectRouter,
  type HandlerContext as ConnectContext,
} from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { implementService } from "../../lib/protobuf/mod.ts";
import { Code, type HandlerContext, RpcError } from "../../lib/rpc/mod.ts";
import type {
  EchoStatus,
  SimpleRequest,
  SimpleResponseSchema,
  StreamingInputCallRequest,
  StreamingInputCallResponseSchema,
  StreamingOutputCallRequest,
  StreamingOutputCallResponseSchema,
} from "../gen/grpc/testing/messages_pb.ts";
import { TestService } from "../gen/grpc/testing/test_pb.ts";
import {
  ECHO_INITIAL,
  ECHO_TRAILING,
  ERROR_METADATA,
  THROW_PLAIN_ERROR,
  zeros,
} from "./common.ts";

export { ECHO_INITIAL, ECHO_TRAILING, zeros };

type Fail = (code: number, message: string) => Error;
type Init<D extends DescMessage> = MessageInitShape<D>;

function checkStatus(status: EchoStatus | undefined, fail: Fail): void {
  if (status?.code === THROW_PLAIN_ERROR) throw new Error(status.message);
  if (status && status.code !== 0) throw fail(status.code, status.message);
}

function wait(intervalUs: number): Promise<void> | undefined {
  if (intervalUs <= 0) return undefined;
  return new Promise((resolve) => setTimeout(resolve, intervalUs / 1000));
}

async function* answer(
  request: StreamingOutputCallRequest,
  fail: Fail,
): AsyncGenerator<Init<typeof StreamingOutputCallResponseSchema>> {
  checkStatus(request.responseStatus, fail);
  for (const p of request.responseParameters) {
    await wait(p.intervalUs);
    yield { payload: zeros(p.size) };
  }
}

/** The server behaviour, independent of who serves it. */
export const behaviour = {
  unaryCall(
    request: SimpleRequest,
    fail: Fail,
  ): Init<typeof SimpleResponseSchema> {
    checkStatus(request.responseStatus, fail);
    return { payload: zeros(request.responseSize) };
  },
  streamingOutputCall: answer,
  async streamingInputCall(
    requests: AsyncIterable<StreamingInputCallRequest>,
  ): Promise<Init<typeof StreamingInputCallResponseSchema>> {
    let aggregatedPayloadSize = 0;
    for await (const r of requests) {
      aggregatedPayloadSize += r.payload?.body.length ?? 0;
    }
    return { aggregatedPayloadSize };
  },
  async *fullDuplexCall(
    requests: AsyncIterable<StreamingOutputCallRequest>,
    fail: Fail,
  ): AsyncGenerator<Init<typeof StreamingOutputCallResponseSchema>> {
    for await (const r of requests) yield* answer(r, fail);
  },
  async *halfDuplexCall(
    requests: AsyncIterable<StreamingOutputCallRequest>,
    fail: Fail,
  ): AsyncGenerator<Init<typeof StreamingOutputCallResponseSchema>> {
    const all: StreamingOutputCallRequest[] = [];
    for await (const r of requests) all.push(r);
    for (const r of all) yield* answer(r, fail);
  },
};

const UNIMPLEMENTED = "Cannot call UnimplementedCall: not implemented";

// --- sluice ---------------------------------------------------------------

/** A failure with the request's ERROR_METADATA (if any) as its metadata. */
const rpcFail = (context: HandlerContext): Fail => (code, message) => {
  const value = context.requestHeaders.get(ERROR_METADATA);
  return new RpcError(code as Code, message, {
    metadata: value === null ? {} : { [ERROR_METADATA]: value },
  });
};

function echoSluice(context: HandlerContext): void {
  const initial = context.requestHeaders.get(ECHO_INITIAL);
  if (initial !== null) context.responseHeaders.set(ECHO_INITIAL, initial);
  const trailing = context.requestHeaders.get(ECHO_TRAILING);
  if (trailing !== null) context.responseTrailers.set(ECHO_TRAILING, trailing);
}

/** TestService served by sluice, from the protobuf-es descriptor. */
export const sluiceTestService = implementService(TestService, {
  emptyCall: () => ({}),
  unaryCall(request, context) {
    echoSluice(context);
    return behaviour.unaryCall(request, rpcFail(context));
  },
  streamingOutputCall(request, context) {
    echoSluice(context);
    return behaviour.streamingOutputCall(request, rpcFail(context));
  },
  streamingInputCall(requests, context) {
    echoSluice(context);
    return behaviour.streamingInputCall(requests);
  },
  fullDuplexCall(requests, context) {
    echoSluice(context);
    return behaviour.fullDuplexCall(requests, rpcFail(context));
  },
  halfDuplexCall(requests, context) {
    echoSluice(context);
    return behaviour.halfDuplexCall(requests, rpcFail(context));
  },
  unimplementedCall() {
    throw new RpcError(Code.Unimplemented, UNIMPLEMENTED);
  },
});

// --- Connect-ES (connect-node) --------------------------------------------

const connectFail = (context: ConnectContext): Fail => (code, message) => {
  const value = context.requestHeader.get(ERROR_METADATA);
  return new ConnectError(
    message,
    code as ConnectCode,
    value === null ? undefined : { [ERROR_METADATA]: value },
  );
};

function echoConnect(context: ConnectContext): void {
  const initial = context.requestHeader.get(ECHO_INITIAL);
  if (initial !== null) context.responseHeader.set(ECHO_INITIAL, initial);
  const trailing = context.requestHeader.get(ECHO_TRAILING);
  if (trailing !== null) context.responseTrailer.set(ECHO_TRAILING, trailing);
}

/** TestService's routes for Connect-ES. */
export function connectTestRoutes(router: ConnectRouter): void {
  router.service(TestService, {
    emptyCall: () => ({}),
    unaryCall(request, context) {
      echoConnect(context);
      return behaviour.unaryCall(request, connectFail(context));
    },
    streamingOutputCall(request, context) {
      echoConnect(context);
      return behaviour.streamingOutputCall(request, connectFail(context));
    },
    streamingInputCall(requests, context) {
      echoConnect(context);
      return behaviour.streamingInputCall(requests);
    },
    fullDuplexCall(requests, context) {
      echoConnect(context);
      return behaviour.fullDuplexCall(requests, connectFail(context));
    },
    halfDuplexCall(requests, context) {
      echoConnect(context);
      return behaviour.halfDuplexCall(requests, connectFail(context));
    },
    unimplementedCall() {
      throw new ConnectError(UNIMPLEMENTED, 12 as ConnectCode);
    },
  });
}

/** A running peer server. */
export interface PeerServer {
  url: string;
  shutdown(): Promise<void>;
}

async function listen(
  server: http.Server | http2.Http2Server,
): Promise<PeerServer> {
  const sockets = new Set<{ destroy(): void }>();
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
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

/** A Connect-ES server for TestService (HTTP/1.1 or h2c) on port 0. */
export function startConnectServer(
  httpVersion: "1.1" | "2",
): Promise<PeerServer> {
  const handler = connectNodeAdapter({ routes: connectTestRoutes });
  return listen(
    httpVersion === "2"
      ? http2.createServer(handler)
      : http.createServer(handler),
  );
}

// --- @grpc/grpc-js --------------------------------------------------------

/**
 * A grpc-js service definition from a protobuf-es descriptor: messages are
 * protobuf-es messages on both sides, read and written by protobuf-es.
 */
export function grpcDefinition(service: DescService): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> =
    {};
  const serialize = (schema: DescMessage) => (value: unknown) =>
    Buffer.from(
      toBinary(schema, create(schema, value as Init<typeof schema>)),
    );
  const deserialize = (schema: DescMessage) => (bytes: Buffer) =>
    fromBinary(schema, new Uint8Array(bytes));
  for (const method of service.methods) {
    definition[method.name] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" ||
        method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" ||
        method.methodKind === "bidi_streaming",
      requestSerialize: serialize(method.input),
      requestDeserialize: deserialize(method.input),
      responseSerialize: serialize(method.output),
      responseDeserialize: deserialize(method.output),
      originalName: method.localName,
    };
  }
  return definition as grpc.ServiceDefinition;
}

/** A failure as grpc-js takes it, with the request's ERROR_METADATA. */
const grpcFail = (call: AnyCall): Fail => (code, message) => {
  const metadata = new grpc.Metadata();
  for (const v of (call.metadata as grpc.Metadata).get(ERROR_METADATA)) {
    metadata.add(ERROR_METADATA, v);
  }
  return Object.assign(new Error(message), {
    code,
    details: message,
    metadata,
  });
};

/** The response metadata grpc-js sends: the echoed initial, and trailers. */
function echoGrpc(
  call: { metadata: grpc.Metadata; sendMetadata(m: grpc.Metadata): void },
) {
  const initial = call.metadata.get(ECHO_INITIAL);
  if (initial.length > 0) {
    const headers = new grpc.Metadata();
    for (const v of initial) headers.add(ECHO_INITIAL, v);
    call.sendMetadata(headers);
  }
  const trailers = new grpc.Metadata();
  for (const v of call.metadata.get(ECHO_TRAILING)) {
    trailers.add(ECHO_TRAILING, v);
  }
  return trailers;
}

type Msg<D extends DescMessage> = MessageShape<D>;

// deno-lint-ignore no-explicit-any
type AnyCall = any;

function grpcError(error: unknown, trailers: grpc.Metadata) {
  const e = error as {
    code?: number;
    details?: string;
    message?: string;
    metadata?: grpc.Metadata;
  };
  // The error's metadata goes with the status, as grpc-js sends a
  // handler's error metadata.
  if (e.metadata) trailers.merge(e.metadata);
  return {
    code: e.code ?? grpc.status.UNKNOWN,
    details: e.details ?? e.message ?? "",
    metadata: trailers,
  };
}

/** The requests of a grpc-js call, from its events. */
async function* requestsOf(call: AnyCall): AsyncGenerator<never> {
  const items: never[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  call.on("data", (m: never) => {
    items.push(m);
    notify();
  });
  call.on("end", () => {
    ended = true;
    notify();
  });
  call.on("error", () => {
    ended = true;
    notify();
  });
  while (true) {
    if (items.length > 0) yield items.shift()!;
    else if (ended) return;
    else await new Promise<void>((resolve) => wake = resolve);
  }
}

async function writeAll(
  call: AnyCall,
  messages: AsyncIterable<unknown>,
  trailers: grpc.Metadata,
): Promise<void> {
  try {
    for await (const m of messages) {
      if (!call.write(m)) {
        await new Promise((resolve) => call.once("drain", resolve));
      }
    }
    call.end(trailers);
  } catch (error) {
    call.emit("error", grpcError(error, trailers));
  }
}

const grpcHandlers: grpc.UntypedServiceImplementation = {
  EmptyCall: (_call: AnyCall, callback: AnyCall) => callback(null, {}),
  UnaryCall(call: AnyCall, callback: AnyCall) {
    const trailers = echoGrpc(call);
    try {
      callback(
        null,
        behaviour.unaryCall(call.request as SimpleRequest, grpcFail(call)),
        trailers,
      );
    } catch (error) {
      callback(grpcError(error, trailers));
    }
  },
  StreamingOutputCall(call: AnyCall) {
    const trailers = echoGrpc(call);
    writeAll(
      call,
      behaviour.streamingOutputCall(
        call.request as Msg<
          typeof TestService.method.streamingOutputCall.input
        >,
        grpcFail(call),
      ),
      trailers,
    );
  },
  StreamingInputCall(call: AnyCall, callback: AnyCall) {
    const trailers = echoGrpc(call);
    behaviour.streamingInputCall(requestsOf(call)).then(
      (response) => callback(null, response, trailers),
      (error) => callback(grpcError(error, trailers)),
    );
  },
  FullDuplexCall(call: AnyCall) {
    const trailers = echoGrpc(call);
    writeAll(
      call,
      behaviour.fullDuplexCall(requestsOf(call), grpcFail(call)),
      trailers,
    );
  },
  HalfDuplexCall(call: AnyCall) {
    const trailers = echoGrpc(call);
    writeAll(
      call,
      behaviour.halfDuplexCall(requestsOf(call), grpcFail(call)),
      trailers,
    );
  },
  UnimplementedCall: (_call: AnyCall, callback: AnyCall) =>
    callback({ code: grpc.status.UNIMPLEMENTED, details: UNIMPLEMENTED }),
};

/** A grpc-js server for TestService (h2c) on port 0. */
export async function startGrpcServer(): Promise<PeerServer> {
  const server = new grpc.Server();
  server.addService(grpcDefinition(TestService), grpcHandlers);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      "127.0.0.1:0",
      grpc.ServerCredentials.createInsecure(),
      (error, port) => error ? reject(error) : resolve(port),
    )
  );
  return {
    url: `http://127.0.0.1:${port}`,
    shutdown: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        setTimeout(() => server.forceShutdown(), 2000).unref?.();
      }),
  };
}
