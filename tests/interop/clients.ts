// The InteropClient adapters (tests/interop/cases.ts) for sluice's client
// (@sluice/streams/protobuf createClient over its gRPC, gRPC-Web and Connect
// transports), @grpc/grpc-js's client and connect-node's client.

import type { DescService } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  ConnectError,
  createClient as createConnectClient,
  type Transport as ConnectTransport,
} from "@connectrpc/connect";
import {
  createConnectTransport as connectNodeConnect,
  createGrpcTransport as connectNodeGrpc,
  createGrpcWebTransport as connectNodeGrpcWeb,
} from "@connectrpc/connect-node";
import { createClient } from "../../lib/protobuf/mod.ts";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  RpcError,
  type Transport,
} from "../../lib/rpc/mod.ts";
import { createHttp2Client } from "../../lib/runtime/grpc_node.ts";
import {
  TestService,
  UnimplementedService,
} from "../gen/grpc/testing/test_pb.ts";
import {
  CallFailed,
  type CallOptions,
  type InteropClient,
  type Message,
  type Metadata,
  type StreamCall,
} from "./cases.ts";
import { grpcDefinition } from "./test_service.ts";
import { ERROR_METADATA } from "./common.ts";

/** Messages and calls as the three clients' untyped paths see them. */
// deno-lint-ignore no-explicit-any
type Loose = any;

/** Responses pushed by a producer, received one at a time. */
class Inbox<O> {
  #items: O[] = [];
  #done = false;
  #error: unknown;
  #waiting: (() => void) | undefined;
  push(item: O): void {
    this.#items.push(item);
    this.#wake();
  }
  end(error?: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#error = error;
    this.#wake();
  }
  #wake(): void {
    const w = this.#waiting;
    this.#waiting = undefined;
    w?.();
  }
  async receive(): Promise<O | undefined> {
    while (this.#items.length === 0 && !this.#done) {
      await new Promise<void>((resolve) => this.#waiting = resolve);
    }
    if (this.#items.length > 0) return this.#items.shift();
    if (this.#error !== undefined) throw this.#error;
    return undefined;
  }
}

/** Requests pushed by the case, as an async iterable for the client. */
class Outbox<I> implements AsyncIterable<I> {
  #inbox = new Inbox<I>();
  send(item: I): Promise<void> {
    this.#inbox.push(item);
    return Promise.resolve();
  }
  close(): Promise<void> {
    this.#inbox.end();
    return Promise.resolve();
  }
  async *[Symbol.asyncIterator](): AsyncIterator<I> {
    for (let m = await this.#inbox.receive(); m !== undefined;) {
      yield m;
      m = await this.#inbox.receive();
    }
  }
}

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => resolve = r);
  return { promise, resolve };
}

function fromHeaders(headers: Headers | undefined): Metadata {
  const out: Metadata = {};
  headers?.forEach((value, key) => out[key.toLowerCase()] = value);
  return out;
}

// --- sluice ---------------------------------------------------------------

function sluiceFailure(error: unknown): unknown {
  return error instanceof RpcError
    ? new CallFailed(
      error.code,
      error.rawMessage,
      error.metadata.get(ERROR_METADATA),
    )
    : error;
}

/** sluice's client over a transport. */
export function sluiceClient(
  transport: Transport,
  close: () => Promise<void> = () => Promise.resolve(),
): InteropClient {
  const test = createClient(TestService, transport);
  const unimplemented = createClient(UnimplementedService, transport);
  const options = (o: CallOptions = {}) => ({
    headers: o.headers,
    timeoutMs: o.timeoutMs,
  });
  const stream = (call: Loose, sent = false): StreamCall<Loose, Message> => ({
    send: (m) =>
      call.send(m).catch((e: unknown) => Promise.reject(sluiceFailure(e))),
    close: () => sent ? Promise.resolve() : call.complete().catch(() => {}),
    receive: async () => {
      try {
        const r = await call.receive();
        // A client-streaming call's receive() gives the response itself.
        if (r && typeof r === "object" && "done" in r && !("$typeName" in r)) {
          return r.done ? undefined : r.value;
        }
        return r;
      } catch (error) {
        throw sluiceFailure(error);
      }
    },
    cancel: () => call.cancel(),
    headers: async () => fromHeaders(await call.headers),
    trailers: async () => fromHeaders(await call.trailers),
  });
  return {
    async unary(method, request, o = {}) {
      const client = o.service === "UnimplementedService"
        ? unimplemented
        : test;
      let headers: Headers | undefined;
      let trailers: Headers | undefined;
      try {
        const message = await (client as Loose)[method](request, {
          ...options(o),
          onHeader: (h: Headers) => headers = h,
          onTrailer: (t: Headers) => trailers = t,
        });
        return {
          message,
          headers: fromHeaders(headers),
          trailers: fromHeaders(trailers),
        };
      } catch (error) {
        throw sluiceFailure(error);
      }
    },
    serverStreaming: (request, o) =>
      stream(test.streamingOutputCall(request, options(o)), true),
    clientStreaming: (o) => stream(test.streamingInputCall(options(o))),
    bidi: (o) => stream(test.fullDuplexCall(options(o))),
    close,
  };
}

/** The sluice clients the matrix runs, by name, for a server's URLs. */
export function sluiceClients(
  target: "grpc-js" | "connect-node",
  urls: { h1?: string; h2: string },
): Record<string, () => InteropClient> {
  const h2 = (
    make: (
      o: { baseUrl: string; httpClient: ReturnType<typeof createHttp2Client> },
    ) => Transport,
  ) =>
  () => {
    const httpClient = createHttp2Client(urls.h2);
    return sluiceClient(
      make({ baseUrl: urls.h2, httpClient }),
      () => httpClient.close(),
    );
  };
  const clients: Record<string, () => InteropClient> = {
    "gRPC h2c": h2((o) => createGrpcTransport(o)),
  };
  if (target === "grpc-js") return clients;
  const h1 = urls.h1 ?? "";
  return {
    ...clients,
    "gRPC-Web h2c": h2((o) => createGrpcWebTransport(o)),
    "Connect binary h2c": h2((o) => createConnectTransport(o)),
    "Connect JSON h2c": h2((o) =>
      createConnectTransport({ ...o, codec: "json" })
    ),
    "gRPC-Web HTTP/1.1": () =>
      sluiceClient(createGrpcWebTransport({ baseUrl: h1 })),
    "Connect binary HTTP/1.1": () =>
      sluiceClient(createConnectTransport({ baseUrl: h1 })),
    "Connect JSON HTTP/1.1": () =>
      sluiceClient(createConnectTransport({ baseUrl: h1, codec: "json" })),
  };
}

// --- connect-node ---------------------------------------------------------

function connectFailure(error: unknown): unknown {
  return error instanceof ConnectError
    ? new CallFailed(
      error.code,
      error.rawMessage,
      error.metadata.get(ERROR_METADATA),
    )
    : error;
}

/** connect-node's client over one of its transports. */
export function connectClient(transport: ConnectTransport): InteropClient {
  const test = createConnectClient(TestService, transport);
  const unimplemented = createConnectClient(UnimplementedService, transport);
  const options = (o: CallOptions = {}, abort?: AbortController) => {
    const headers = deferred<Metadata>();
    const trailers = deferred<Metadata>();
    return {
      headers,
      trailers,
      options: {
        headers: o.headers,
        timeoutMs: o.timeoutMs,
        signal: abort?.signal,
        onHeader: (h: Headers) => headers.resolve(fromHeaders(h)),
        onTrailer: (t: Headers) => trailers.resolve(fromHeaders(t)),
      },
    };
  };
  const stream = (
    start: (
      requests: AsyncIterable<Loose>,
      o: Loose,
    ) => AsyncIterable<Message> | Promise<Message>,
    o: CallOptions | undefined,
  ): StreamCall<Message, Message> => {
    const abort = new AbortController();
    const { headers, trailers, options: callOptions } = options(o, abort);
    const outbox = new Outbox<Message>();
    const inbox = new Inbox<Message>();
    (async () => {
      const result = start(outbox, callOptions);
      if (result instanceof Promise) inbox.push(await result);
      else for await (const m of result) inbox.push(m);
      inbox.end();
    })().catch((error) => inbox.end(connectFailure(error)));
    return {
      send: (m) => outbox.send(m),
      close: () => outbox.close(),
      receive: () => inbox.receive(),
      cancel: () => abort.abort(),
      headers: () => headers.promise,
      trailers: () => trailers.promise,
    };
  };
  return {
    async unary(method, request, o = {}) {
      const { headers, trailers, options: callOptions } = options(o);
      const client = o.service === "UnimplementedService"
        ? unimplemented
        : test;
      try {
        const message = await (client as Loose)[method](request, callOptions);
        return {
          message,
          headers: await headers.promise,
          trailers: await trailers.promise,
        };
      } catch (error) {
        throw connectFailure(error);
      }
    },
    serverStreaming: (request, o) =>
      stream((_, options) => test.streamingOutputCall(request, options), o),
    clientStreaming: (o) =>
      stream(
        (requests, options) => test.streamingInputCall(requests, options),
        o,
      ),
    bidi: (o) =>
      stream((requests, options) => test.fullDuplexCall(requests, options), o),
    close: () => Promise.resolve(),
  };
}

/** The connect-node clients the matrix runs, by name. */
export function connectClients(
  urls: { h1: string; h2: string },
): Record<string, () => InteropClient> {
  return {
    "gRPC h2c": () => connectClient(connectNodeGrpc({ baseUrl: urls.h2 })),
    "gRPC-Web h2c": () =>
      connectClient(connectNodeGrpcWeb({ baseUrl: urls.h2, httpVersion: "2" })),
    "gRPC-Web HTTP/1.1": () =>
      connectClient(
        connectNodeGrpcWeb({ baseUrl: urls.h1, httpVersion: "1.1" }),
      ),
    "Connect binary h2c": () =>
      connectClient(connectNodeConnect({ baseUrl: urls.h2, httpVersion: "2" })),
    "Connect JSON h2c": () =>
      connectClient(
        connectNodeConnect({
          baseUrl: urls.h2,
          httpVersion: "2",
          useBinaryFormat: false,
        }),
      ),
    "Connect binary HTTP/1.1": () =>
      connectClient(
        connectNodeConnect({ baseUrl: urls.h1, httpVersion: "1.1" }),
      ),
    "Connect JSON HTTP/1.1": () =>
      connectClient(
        connectNodeConnect({
          baseUrl: urls.h1,
          httpVersion: "1.1",
          useBinaryFormat: false,
        }),
      ),
  };
}

// --- @grpc/grpc-js --------------------------------------------------------

function toMetadata(headers: Metadata = {}): grpc.Metadata {
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(headers)) {
    if (key.endsWith("-bin")) metadata.add(key, Buffer.from(value, "base64"));
    else metadata.add(key, value);
  }
  return metadata;
}

function fromMetadata(metadata: grpc.Metadata | undefined): Metadata {
  const out: Metadata = {};
  for (const [key, value] of Object.entries(metadata?.getMap() ?? {})) {
    out[key] = typeof value === "string"
      ? value
      : Buffer.from(value).toString("base64").replace(/=+$/, "");
  }
  return out;
}

/** A failed grpc-js status (or error) as CallFailed. */
function grpcFailed(
  s: { code: number; details?: string; metadata?: grpc.Metadata },
): CallFailed {
  const value = s.metadata?.get(ERROR_METADATA)[0];
  return new CallFailed(
    s.code,
    s.details ?? "",
    value === undefined ? null : String(value),
  );
}

function grpcFailure(error: unknown): unknown {
  const e = error as { code?: number; metadata?: grpc.Metadata };
  return typeof e?.code === "number"
    ? grpcFailed(e as { code: number })
    : error;
}

/** grpc-js's client (native gRPC over h2c). */
export function grpcJsClient(url: string): InteropClient {
  const address = new URL(url).host;
  const credentials = grpc.credentials.createInsecure();
  const make = (service: DescService) =>
    new (grpc.makeGenericClientConstructor(
      grpcDefinition(service),
      service.name,
    ))(
      address,
      credentials,
    ) as Loose;
  const test = make(TestService);
  const unimplemented = make(UnimplementedService);
  const callOptions = (o: CallOptions = {}) =>
    o.timeoutMs === undefined ? {} : { deadline: Date.now() + o.timeoutMs };
  const watch = (
    call: Loose,
    inbox: Inbox<Message>,
    single?: Promise<Message>,
  ) => {
    const headers = deferred<Metadata>();
    const trailers = deferred<Metadata>();
    call.on("metadata", (m: grpc.Metadata) => headers.resolve(fromMetadata(m)));
    call.on("status", (s: grpc.StatusObject) => {
      headers.resolve({});
      trailers.resolve(fromMetadata(s.metadata));
      if (s.code !== grpc.status.OK) {
        inbox.end(grpcFailed(s));
      } else if (!single) inbox.end();
    });
    call.on("error", (e: unknown) => inbox.end(grpcFailure(e)));
    if (single) {
      single.then((m) => {
        inbox.push(m);
        inbox.end();
      }, (e) => inbox.end(grpcFailure(e)));
    } else {
      call.on("data", (m: Message) => inbox.push(m));
    }
    return { headers, trailers };
  };
  const stream = (
    call: Loose,
    inbox: Inbox<Message>,
    single?: Promise<Message>,
  ): StreamCall<Message, Message> => {
    const { headers, trailers } = watch(call, inbox, single);
    return {
      // The write callback does not come once the call has ended: the
      // status settles a pending send too.
      send: (m) =>
        new Promise<void>((resolve, reject) => {
          call.once("status", (s: grpc.StatusObject) =>
            s.code === grpc.status.OK ? resolve() : reject(grpcFailed(s)));
          call.write(m, (e: unknown) =>
            e ? reject(grpcFailure(e)) : resolve());
        }),
      close: () => {
        call.end();
        return Promise.resolve();
      },
      receive: () => inbox.receive(),
      cancel: () => call.cancel(),
      headers: () => headers.promise,
      trailers: () => trailers.promise,
    };
  };
  return {
    unary(method, request, o = {}) {
      const client = o.service === "UnimplementedService"
        ? unimplemented
        : test;
      const name = method[0].toUpperCase() + method.slice(1);
      const headers = deferred<Metadata>();
      const status = deferred<grpc.StatusObject>();
      const result = new Promise<Message>((resolve, reject) => {
        const call = client[name](
          request,
          toMetadata(o.headers),
          callOptions(o),
          (error: unknown, message: Message) =>
            error ? reject(grpcFailure(error)) : resolve(message),
        );
        call.on(
          "metadata",
          (m: grpc.Metadata) => headers.resolve(fromMetadata(m)),
        );
        call.on("status", (s: grpc.StatusObject) => {
          headers.resolve({});
          status.resolve(s);
        });
      });
      return result.then(async (message) => ({
        message,
        headers: await headers.promise,
        trailers: fromMetadata((await status.promise).metadata),
      }));
    },
    serverStreaming(request, o) {
      const call = test.StreamingOutputCall(
        request,
        toMetadata(o?.headers),
        callOptions(o),
      );
      return stream(call, new Inbox());
    },
    clientStreaming(o) {
      const response = deferred<Message>();
      const failure = deferred<unknown>();
      const single = Promise.race([
        response.promise,
        failure.promise.then((e) => Promise.reject(e)),
      ]);
      single.catch(() => {});
      const call = test.StreamingInputCall(
        toMetadata(o?.headers),
        callOptions(o),
        (error: unknown, message: Message) =>
          error ? failure.resolve(error) : response.resolve(message),
      );
      return stream(call, new Inbox(), single);
    },
    bidi(o) {
      const call = test.FullDuplexCall(toMetadata(o?.headers), callOptions(o));
      return stream(call, new Inbox());
    },
    close() {
      test.close();
      unimplemented.close();
      return Promise.resolve();
    },
  };
}
