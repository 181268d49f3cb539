// fetchDuplex when the connection itself fails (a refused port, a
// certificate the client does not trust): a TypeError naming the reason, the
// runtime's error as its cause, as upload() and openDuplex() answer. Deno's
// fetch rejected with a bare "fetch failed", the reason only in its cause.
// The message stays fetch's (its callers, openDuplex and the RPC fetch
// client, put their own "Cannot <what>: " before it).

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { fetchDuplex, openDuplex } from "../lib/http/mod.ts";
import {
  createClient,
  createConnectTransport,
  RpcError,
} from "../lib/rpc/mod.ts";
import { StreamingCalcService } from "../examples/streaming_calc.ts";
import {
  fetchRejection,
  REFUSED,
  refusedUrl,
  rejection,
  UNTRUSTED,
  untrustedServer,
} from "./_network_failures.ts";

/** A request body that is never written to. */
function body(): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new Uint8Array([120]));
    },
  });
}

/** Asserts a TypeError naming `reason` in its message. */
function assertNamed(error: unknown, reason: RegExp): asserts error is Error {
  assert.ok(error instanceof TypeError, String(error));
  assert.match(error.message, reason);
}

describe("fetchDuplex names a network error's reason", () => {
  let url: string;
  before(async () => {
    url = await refusedUrl();
  });

  it("fetchDuplex to a refused port rejects with a TypeError naming the refusal, the runtime's fetch error as its cause", async () => {
    const error = await rejection(
      fetchDuplex(url, { method: "POST", body: body() }),
      "fetchDuplex",
    );
    assertNamed(error, REFUSED);
    // What the runtime's fetch itself rejects with, to the same port.
    const runtimes = await fetchRejection(url);
    // Bun's fetch names the reason itself: its error is passed on as it
    // is; Deno's says only "fetch failed": wrapped, the error its cause.
    const own = REFUSED.test(runtimes.message) ? error : error.cause;
    assert.ok(own instanceof TypeError, String(own));
    assert.equal(own.constructor, runtimes.constructor);
    assert.equal(own.message, runtimes.message);
  });

  it("openDuplex and the RPC fetch client to a refused port keep the runtime's fetch error as the cause, not a wrapper of it", async () => {
    const runtimes = await fetchRejection(url);
    const { stream, response } = openDuplex(url);
    const error = await rejection(response, "openDuplex's response");
    await stream.close().catch(() => {});
    assertNamed(error, REFUSED);
    assert.match(error.message, /^Cannot open duplex stream: /);
    assert.ok(error.cause instanceof Error, String(error.cause));
    assert.equal(error.cause.constructor, runtimes.constructor);
    assert.equal(error.cause.message, runtimes.message);
    const call = createClient(
      StreamingCalcService,
      createConnectTransport({ baseUrl: url }),
    ).sum();
    const failed = await rejection(
      Promise.all([call.send(1n), call.complete(), call.receive()]),
      "a streaming call",
    );
    assert.ok(failed instanceof RpcError, String(failed));
    assert.equal((failed.cause as Error)?.message, runtimes.message);
  });

  it("fetchDuplex passes on a TypeError that says all there is (a bad URL) and an abort through its Request's own signal, unchanged", async () => {
    const bad = new TypeError("Invalid URL: 'http://[bad/'");
    assert.equal(
      await rejection(
        fetchDuplex("http://x/", {
          method: "POST",
          body: body(),
          fetch: () => Promise.reject(bad),
        }),
        "fetchDuplex",
      ),
      bad,
    );
    // A reason with a cause, which a network error's wrapping would take
    // for its reason: passed on as it is, the signal being the Request's.
    const reason = new TypeError("stopped by the caller", {
      cause: new Error("the user left"),
    });
    const request = new Request(url, {
      method: "POST",
      signal: AbortSignal.abort(reason),
    });
    assert.equal(
      await rejection(
        fetchDuplex(request, {
          body: body(),
          fetch: () => Promise.reject(reason),
        }),
        "fetchDuplex",
      ),
      reason,
    );
  });
});

describe("fetchDuplex names an untrusted certificate", () => {
  const server = untrustedServer();
  before(() => server.start());
  after(() => server.stop());

  it("fetchDuplex to an https server whose CA is not trusted rejects with a TypeError naming the certificate, the runtime's error as its cause", async () => {
    const error = await rejection(
      fetchDuplex(server.url, { method: "POST", body: body() }),
      "fetchDuplex",
    );
    assertNamed(error, UNTRUSTED);
    const runtimes = await fetchRejection(server.url);
    // Bun's names the certificate itself: passed on as it is.
    const own = UNTRUSTED.test(runtimes.message) ? error : error.cause;
    assert.ok(own instanceof TypeError, String(own));
    assert.equal(own.message, runtimes.message);
  });
});
