// RPC over HTTP (Connect, gRPC-Web) served by createRpcHandler in workerd
// (miniflare, with the enable_request_signal compatibility flag): a client
// that goes away mid-stream aborts the handler's context.signal. workerd
// never cancels a response body whose client left; with the flag it aborts
// request.signal, which the handler hears for the whole call (it was heard
// only until the response head).

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createClient,
  createConnectTransport,
  createGrpcWebTransport,
} from "../lib/rpc/mod.ts";
import { type Miniflare, startMiniflare } from "./_miniflare.ts";
import { Ticks } from "./_rpc_cancel_worker.ts";

const T = 120_000;

describe("RPC over HTTP in workerd", () => {
  let miniflare: Miniflare | undefined;
  let base: URL;

  before(async () => {
    miniflare = await startMiniflare(
      "_miniflare_r2.mjs",
      "_rpc_cancel_worker.ts",
      "rpc-workerd-",
      (dir) => join(dir, "r2"),
      T,
      ["enable_request_signal"],
    );
    base = miniflare.url;
  }, { timeout: T + 60_000 });

  after(() => miniflare?.stop());

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
        // Bounded: 10 s.
        let seen: { sent: number; aborted: string } | null = null;
        for (let i = 0; i < 100 && !seen?.aborted; i++) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          seen = await (await fetch(new URL(`/status/${id}`, base))).json();
        }
        assert.match(seen?.aborted ?? "", /\[canceled\] .*client/);
        assert.ok(seen!.sent < 1_000, `sent ${seen!.sent}`);
      },
    );
  }
});
