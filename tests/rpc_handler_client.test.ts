// createUniversalHandlerClient: a client and a server in one process, over
// every protocol and call kind, with compression (a gzipped Connect unary
// answer, which a fetch option that calls a handler cannot read),
// metadata, deadlines and cancellation as over a connection.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Code,
  createClient,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  createUniversalHandler,
  createUniversalHandlerClient,
  defineService,
  implementService,
  Int64Value,
  RpcError,
  type Transport,
} from "../lib/rpc/mod.ts";
import { reduce, ScanStream } from "../lib/streams/mod.ts";
import { Bytes, deadline } from "./_helpers.ts";

const T = 20_000;

const Service = defineService("test.v1.InProcess", {
  echo: {
    kind: "unary",
    input: Bytes,
    output: Bytes,
    idempotency: "no-side-effects",
  },
  sum: { kind: "client-streaming", input: Int64Value, output: Int64Value },
  count: { kind: "server-streaming", input: Int64Value, output: Int64Value },
  scan: { kind: "bidi", input: Int64Value, output: Int64Value },
  wait: { kind: "bidi", input: Int64Value, output: Int64Value },
});

let waitSignal: AbortSignal | undefined;
let waiting = Promise.withResolvers<void>();

const handler = createUniversalHandler(
  implementService(Service, {
    echo: (bytes, context) => {
      context.responseHeaders.set("x-method", context.requestMethod);
      context.responseTrailers.set(
        "x-seen",
        context.requestHeaders.get("x-call") ?? "",
      );
      return bytes;
    },
    sum: (values) => reduce(values, (a, b) => a + b, 0n),
    async *count(n) {
      for (let i = 1n; i <= n; i++) yield i;
      throw new RpcError(Code.OutOfRange, "Cannot count further", {
        metadata: { "x-counted": String(n) },
      });
    },
    scan: () => new ScanStream((a: bigint, b: bigint) => a + b, 0n),
    wait: async function* (_, context) {
      waitSignal = context.signal;
      waiting.resolve();
      await new Promise((resolve) =>
        context.signal.addEventListener("abort", resolve)
      );
      yield 0n;
    },
  }),
  { acceptCompression: ["gzip"], compressMinBytes: 0 },
);

const options = {
  baseUrl: "http://in-process",
  httpClient: createUniversalHandlerClient(handler),
  sendCompression: "gzip" as const,
  compressMinBytes: 0,
};

const transports: Record<string, () => Transport> = {
  "Connect": () => createConnectTransport(options),
  "Connect GET": () => createConnectTransport({ ...options, useHttpGet: true }),
  "gRPC-Web": () => createGrpcWebTransport(options),
  "gRPC": () => createGrpcTransport(options),
};

describe("createUniversalHandlerClient", { timeout: T }, () => {
  for (const [name, transport] of Object.entries(transports)) {
    it(`${name}: every call kind, compressed both ways, with metadata`, async () => {
      const client = createClient(Service, transport());
      const payload = new Uint8Array(3000).fill(9);
      let headers: Headers | undefined;
      let trailers: Headers | undefined;
      const echoed = await client.echo(payload, {
        headers: { "x-call": name },
        onHeader: (h) => headers = h,
        onTrailer: (t) => trailers = t,
      });
      assert.deepEqual(echoed, payload);
      assert.equal(
        headers?.get("x-method"),
        name === "Connect GET" ? "GET" : "POST",
      );
      assert.equal(trailers?.get("x-seen"), name);

      const sum = client.sum();
      for (const v of [1n, 2n, 3n]) await sum.send(v);
      await sum.complete();
      assert.equal(await sum.receive(), 6n);

      const counted: bigint[] = [];
      await assert.rejects(
        (async () => {
          for await (const v of client.count(3n).responses) counted.push(v);
        })(),
        (error: RpcError) =>
          error.code === Code.OutOfRange &&
          error.metadata.get("x-counted") === "3",
      );
      assert.deepEqual(counted, [1n, 2n, 3n]);

      // Full duplex: each answer before the next request.
      const scan = client.scan();
      let total = 0n;
      for (const v of [5n, 6n, 7n]) {
        await scan.send(v);
        const r = await scan.receive();
        assert.equal(r.value, total += v);
      }
      await scan.complete();
      assert.equal((await scan.receive()).done, true);
    });

    it(`${name}: cancelling a call aborts the handler's signal`, async () => {
      if (name === "Connect GET") return; // unary only
      waiting = Promise.withResolvers<void>();
      const abort = new AbortController();
      const call = createClient(Service, transport()).wait({
        signal: abort.signal,
      });
      await call.send(1n);
      await deadline(waiting.promise, T, "the handler's start");
      abort.abort();
      await assert.rejects(
        call.receive(),
        (error: RpcError) => error.code === Code.Canceled,
      );
      assert.equal(waitSignal?.aborted, true);
      assert.equal((waitSignal?.reason as RpcError).code, Code.Canceled);
    });
  }
});
