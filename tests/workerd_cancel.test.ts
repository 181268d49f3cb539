// A client that goes away, seen in workerd (miniflare 4.20260426.0's, as
// `wrangler dev` runs it, with the enable_request_signal compatibility
// flag): it never cancels a response body whose client left, and aborts
// request.signal instead. createRpcHandler (Connect, gRPC-Web) and
// createSseHandler hear it for the whole call or stream (the RPC handler
// heard it only until the response head, the SSE handler not at all: their
// handlers went on after the client had gone).

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createClient,
  createConnectTransport,
  createGrpcWebTransport,
} from "../lib/rpc/mod.ts";
import { type Miniflare, startMiniflare } from "./_miniflare.ts";
import { Ticks } from "./_cancel_worker.ts";

const T = 120_000;

describe("a client that goes away, in workerd", () => {
  let miniflare: Miniflare | undefined;
  let base: URL;

  before(async () => {
    miniflare = await startMiniflare(
      "_miniflare_r2.mjs",
      "_cancel_worker.ts",
      "rpc-workerd-",
      (dir) => join(dir, "r2"),
      T,
      ["enable_request_signal"],
    );
    base = miniflare.url;
  }, { timeout: T + 60_000 });

  after(() => miniflare?.stop());

  /** What the handler of call or stream `n` saw, once `done` says so. */
  async function seen(
    n: bigint,
    done: (call: { aborted: string; ended?: boolean }) => boolean,
  ): Promise<{ sent: number; aborted: string; ended?: boolean } | null> {
    // Bounded: 10 s.
    let call = null;
    for (let i = 0; i < 100 && !(call && done(call)); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      call = await (await fetch(new URL(`/status/${n}`, base))).json();
    }
    return call;
  }

  let n = 0n;
  for (
    const [protocol, transport] of [
      ["Connect", createConnectTransport],
      ["gRPC-Web", createGrpcWebTransport],
    ] as const
  ) {
    it(
      `a client that cancels a server-streaming call mid-stream aborts the handler's signal (${protocol})`,
      {
        timeout: T,
      },
      async () => {
        const id = ++n;
        const client = createClient(Ticks, transport({ baseUrl: base }));
        const cancel = new AbortController();
        let got = 0;
        await assert.rejects(async () => {
          for await (const _ of client.ticks(id, { signal: cancel.signal })) {
            if (++got === 3) cancel.abort();
          }
        });
        const call = await seen(id, (call) => call.aborted !== "");
        assert.match(call?.aborted ?? "", /\[canceled\] .*client/);
        assert.ok(call!.sent < 1_000, `sent ${call!.sent}`);
      },
    );
  }

  it(
    "a client that leaves an event stream aborts createSseHandler's signal and ends its generator",
    {
      timeout: T,
    },
    async () => {
      const id = ++n;
      const leave = new AbortController();
      const response = await fetch(new URL(`/events?n=${id}`, base), {
        signal: leave.signal,
      });
      const reader = response.body!.getReader();
      for (let i = 0; i < 3; i++) await reader.read();
      leave.abort();
      await reader.cancel().catch(() => {});
      const call = await seen(id, (call) => call.ended === true);
      assert.equal(call?.ended, true);
      assert.notEqual(call?.aborted, "");
      assert.ok(call!.sent < 1_000, `sent ${call!.sent}`);
    },
  );
});
