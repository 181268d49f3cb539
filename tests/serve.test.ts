// serve: the concurrency cap (503 past maxConcurrentRequests, streaming
// responses counted until sent) and its option checks.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { serve } from "../lib/runtime/serve.ts";
import { upgradeWebSocket } from "../lib/runtime/websocket.ts";
import { deadline } from "./_helpers.ts";

describe("serve", () => {
  it("serve answers 503 with Retry-After past maxConcurrentRequests, counting streaming responses until sent", async () => {
    // Each response streams until the test releases it.
    const release = Promise.withResolvers<void>();
    let calls = 0;
    const server = await serve(() => {
      calls++;
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(new TextEncoder().encode("start "));
          await release.promise;
          controller.enqueue(new TextEncoder().encode("end"));
          controller.close();
        },
      });
      return new Response(body);
    }, { maxConcurrentRequests: 2 });
    try {
      const open = [fetch(server.url), fetch(server.url)];
      const responses = await deadline(Promise.all(open), 10_000, "two in");
      for (const r of responses) assert.equal(r.status, 200);
      // Both still streaming: a third is refused without calling the handler.
      const third = await fetch(server.url);
      assert.equal(third.status, 503);
      assert.equal(third.headers.get("retry-after"), "1");
      assert.match(await third.text(), /maxConcurrentRequests/);
      assert.equal(calls, 2);
      release.resolve();
      for (const r of responses) assert.equal(await r.text(), "start end");
      // The slots are free again once the responses have been sent; the
      // server notices asynchronously (bounded: 50 tries).
      let status = 0;
      for (let i = 0; i < 50 && status !== 200; i++) {
        const again = await fetch(server.url);
        status = again.status;
        await again.text();
      }
      assert.equal(status, 200);
    } finally {
      release.resolve();
      await deadline(server.shutdown(), 10_000, "shutdown");
    }
  });

  it("serve with maxConcurrentRequests 0 has no cap", async () => {
    const server = await serve(() => new Response("ok"), {
      maxConcurrentRequests: 0,
    });
    try {
      const all = await Promise.all(
        Array.from(
          { length: 5 },
          () => fetch(server.url).then((r) => r.text()),
        ),
      );
      assert.deepEqual(all, ["ok", "ok", "ok", "ok", "ok"]);
    } finally {
      await server.shutdown();
    }
  });

  it("serve refuses bad options with a RangeError naming them", async () => {
    await assert.rejects(
      serve(() => new Response(), { maxConcurrentRequests: -1 }),
      /maxConcurrentRequests must be a non-negative integer/,
    );
    await assert.rejects(
      serve(() => new Response(), { idleTimeoutMs: 300_000 }),
      /idleTimeoutMs must be at most 255000/,
    );
    await assert.rejects(
      serve(() => new Response(), { idleTimeoutMs: -5 }),
      /idleTimeoutMs must be a non-negative number/,
    );
  });

  it("upgradeWebSocket refuses a negative idleTimeoutMs with a RangeError", () => {
    const request = new Request("http://localhost/ws", {
      headers: { upgrade: "websocket" },
    });
    assert.throws(
      () => upgradeWebSocket(request, { idleTimeoutMs: -1 }),
      /idleTimeoutMs must be a non-negative number of milliseconds/,
    );
  });
});
