// The burst reads of decoded messages (lib/streams/_fuse.ts's BurstReader):
// the server's requests read a body chunk's messages at a time by `reduce`
// and by the call loop, the client's responses by `receive()`. Same
// messages, order, errors and cancellation as reading the streams one
// message at a time. In process: the client's fetch calls the handler.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Code,
  createClient,
  createConnectTransport,
  createGrpcWebTransport,
  createRpcHandler,
  defineService,
  implementService,
  Int64Value,
  RpcError,
} from "../lib/rpc/mod.ts";
import { reduce, ScanStream } from "../lib/streams/mod.ts";

const Service = defineService("test.v1.BurstService", {
  sum: { kind: "client-streaming", input: Int64Value, output: Int64Value },
  asyncSum: { kind: "client-streaming", input: Int64Value, output: Int64Value },
  failAt: { kind: "client-streaming", input: Int64Value, output: Int64Value },
  abortAt: { kind: "client-streaming", input: Int64Value, output: Int64Value },
  scan: { kind: "bidi", input: Int64Value, output: Int64Value },
  count: { kind: "server-streaming", input: Int64Value, output: Int64Value },
});

const impl = implementService(Service, {
  sum: (values, ctx) =>
    reduce(values, (a: bigint, b: bigint) => a + b, 0n, {
      signal: ctx.signal,
    }),
  asyncSum: (values) =>
    reduce(values, async (a: bigint, b: bigint) => {
      await Promise.resolve();
      return a + b;
    }, 0n),
  // Fails on the message 1000: the requests are cancelled with its error.
  failAt: (values) =>
    reduce(values, (a: bigint, b: bigint) => {
      if (b === 1000n) {
        throw new RpcError(Code.FailedPrecondition, "no 1000");
      }
      return a + b;
    }, 0n),
  // Aborts its own signal in the middle of a burst.
  abortAt: (values) => {
    const abort = new AbortController();
    return reduce(
      values,
      (a: bigint, b: bigint) => {
        if (b === 500n) {
          abort.abort(new RpcError(Code.Aborted, "stopped at 500"));
        }
        return a + b;
      },
      0n,
      { signal: abort.signal },
    );
  },
  scan: () => new ScanStream((a: bigint, b: bigint) => a + b, 0n),
  count: async function* (n) {
    for (let i = 1n; i <= n; i++) yield i;
  },
});

const handler = createRpcHandler(impl);
const transports = {
  connect: createConnectTransport({
    baseUrl: "http://in-process",
    fetch: (input, init) => handler(new Request(input, init)),
  }),
  "grpc-web": createGrpcWebTransport({
    baseUrl: "http://in-process",
    fetch: (input, init) => handler(new Request(input, init)),
  }),
};

const N = 20_000;
const total = BigInt(N) * BigInt(N + 1) / 2n;

for (const [name, transport] of Object.entries(transports)) {
  const client = createClient(Service, transport);
  describe(`burst reads (${name})`, () => {
    it("reduce sums every request, in bursts, sync and async", async () => {
      for (const method of ["sum", "asyncSum"] as const) {
        const call = client[method]();
        for (let i = 1; i <= N; i++) await call.send(BigInt(i));
        await call.complete();
        assert.equal(await call.receive(), total, method);
      }
    });

    it("a reducer that throws mid-burst fails the call with its error", async () => {
      const call = client.failAt();
      for (let i = 1; i <= 2000; i++) {
        await call.send(BigInt(i)).catch(() => {});
      }
      await call.complete().catch(() => {});
      await assert.rejects(call.receive(), (error: RpcError) => {
        assert.equal(error.code, Code.FailedPrecondition);
        assert.match(error.message, /no 1000/);
        return true;
      });
    });

    it("an abort mid-burst stops the reduce with the abort reason", async () => {
      const call = client.abortAt();
      for (let i = 1; i <= 2000; i++) {
        await call.send(BigInt(i)).catch(() => {});
      }
      await call.complete().catch(() => {});
      await assert.rejects(call.receive(), (error: RpcError) => {
        assert.equal(error.code, Code.Aborted);
        return true;
      });
    });

    it("receive() delivers every response in order, also when called concurrently", async () => {
      const call = client.scan();
      const sending = (async () => {
        for (let i = 1; i <= N; i++) await call.send(BigInt(i));
        await call.complete();
      })();
      let sum = 0n;
      let i = 0;
      while (true) {
        // Three receives at once: they settle in order.
        const results = await Promise.all([
          call.receive(),
          call.receive(),
          call.receive(),
        ]);
        let done = false;
        for (const r of results) {
          if (r.done) {
            done = true;
            continue;
          }
          assert.equal(done, false, "a value after the end");
          i++;
          sum += BigInt(i);
          assert.equal(r.value, sum);
        }
        if (done) break;
      }
      await sending;
      assert.equal(i, N);
      assert.deepEqual(await call.receive(), { done: true, value: undefined });
    });

    it("the responses stream still reads one message at a time", async () => {
      const values = await Array.fromAsync(client.count(5000n).responses);
      assert.equal(values.length, 5000);
      assert.equal(values[4999], 5000n);
    });

    it("a server error after some responses reaches receive() after them", async () => {
      const call = client.scan();
      await call.send((1n << 63n) - 1n);
      const first = await call.receive();
      assert.deepEqual(first, { done: false, value: (1n << 63n) - 1n });
      // The sum overflows int64: the server cannot encode its response.
      await call.send(1n);
      await call.complete().catch(() => {});
      await assert.rejects(call.receive(), RpcError);
      // And again: the failure stays.
      await assert.rejects(call.receive(), RpcError);
    });
  });
}
