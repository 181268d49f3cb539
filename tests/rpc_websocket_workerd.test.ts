// RPC over WebSocket served by workerd (WebSocketPair): examples/workers/
// worker.ts's /rpc-ws route, called with createWebSocketTransport from the
// test runtime (Deno or Bun).

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Code,
  createClient,
  createWebSocketTransport,
  defineService,
  Int64Value,
  RpcError,
} from "../lib/rpc/mod.ts";
import { StreamingCalcService } from "../examples/workers/worker.ts";
import { startWorkerd, type Workerd } from "./_workerd.ts";
import { deadline } from "./_helpers.ts";

const T = 20_000;

describe("RPC over WebSocket in workerd", () => {
  let workerd: Workerd;
  const client = () =>
    createClient(
      StreamingCalcService,
      createWebSocketTransport({ url: new URL("/rpc-ws", workerd.url) }),
    );

  before(async () => {
    workerd = await startWorkerd();
  });
  after(async () => {
    const stderr = workerd?.stderr().trim();
    await workerd?.stop();
    if (stderr) console.error(`workerd stderr:\n${stderr}`);
  });

  it("sum in workerd over WebSocket returns 55 for 1..10", async () => {
    const call = client().sum();
    for (let i = 1n; i <= 10n; i++) await call.send(i);
    await call.complete();
    assert.equal(await deadline(call.receive(), T), 55n);
  });

  it("incrementalSum in workerd over WebSocket answers each value in lockstep", async () => {
    const call = client().incrementalSum();
    let expected = 0n;
    for (let i = 1n; i <= 10n; i++) {
      await deadline(call.send(i), T, `send ${i}`);
      expected += i;
      assert.deepEqual(await deadline(call.receive(), T, `reply ${i}`), {
        done: false,
        value: expected,
      });
    }
    await call.complete();
    assert.equal((await deadline(call.receive(), T)).done, true);
  });

  it("sum in workerd over WebSocket fails with OUT_OF_RANGE on int64 overflow", async () => {
    const call = client().sum();
    await call.send((1n << 63n) - 1n);
    await call.send(1n);
    await call.complete().catch(() => {});
    await assert.rejects(
      deadline(call.receive(), T),
      (error) =>
        error instanceof RpcError && error.code === Code.OutOfRange &&
        /overflows int64/.test(error.message),
    );
  });

  it("an unknown method in workerd over WebSocket fails with UNIMPLEMENTED", async () => {
    const Other = defineService("StreamingCalcService", {
      nothing: { kind: "bidi", input: Int64Value, output: Int64Value },
    });
    const call = createClient(
      Other,
      createWebSocketTransport({ url: new URL("/rpc-ws", workerd.url) }),
    ).nothing();
    await call.send(1n).catch(() => {});
    await assert.rejects(
      deadline(call.receive(), T),
      (error) => error instanceof RpcError && error.code === Code.Unimplemented,
    );
  });

  it("a cancelled call in workerd over WebSocket fails with CANCELED", async () => {
    const call = client().incrementalSum();
    await call.send(1n);
    assert.deepEqual(await deadline(call.receive(), T), {
      done: false,
      value: 1n,
    });
    call.cancel();
    await assert.rejects(
      deadline(call.receive(), T),
      (error) => error instanceof RpcError && error.code === Code.Canceled,
    );
  });
});
