// fetchDuplex when the connection itself fails (a refused port, a
// certificate the client does not trust): a TypeError naming the reason, the
// runtime's error as its cause, as upload() and openDuplex() answer. Deno's
// fetch rejected with a bare "fetch failed", the reason only in its cause.
// The message stays fetch's (its callers, openDuplex and the RPC fetch
// client, put their own "Cannot <what>: " before it).

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { fetchDuplex } from "../lib/http/mod.ts";
import { serve, type Server } from "../lib/runtime/serve.ts";
import { makeCertificates } from "./browser/_test_server.ts";
import { deadline, makeTempDir, removeDir } from "./_helpers.ts";

const T = 20_000;

// Deno: "tcp connect error: Connection refused (os error 111)" in its fetch
// error's cause; Bun: "ECONNREFUSED: Unable to connect. ..." as the message.
const REFUSED = /Connection refused|ECONNREFUSED/;
// Deno: "invalid peer certificate: UnknownIssuer" in its fetch error's cause;
// Bun: "unable to verify the first certificate" as the message.
const UNTRUSTED =
  /invalid peer certificate: UnknownIssuer|unable to verify the first certificate/;

/** A URL on 127.0.0.1 whose port was just closed: connecting is refused. */
async function refusedUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}/`;
}

/** What `promise` rejected with (it must reject, within T). */
function rejection(promise: Promise<unknown>, what: string): Promise<unknown> {
  return deadline(
    promise.then(
      () => assert.fail(`${what} resolved`),
      (error: unknown) => error,
    ),
    T,
    what,
  );
}

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
    const runtimes = await rejection(
      fetch(url, {
        method: "POST",
        body: body(),
        duplex: "half",
      } as RequestInit),
      "fetch",
    ) as Error;
    assert.ok(error.cause instanceof TypeError, String(error.cause));
    assert.equal(error.cause.constructor, runtimes.constructor);
    assert.equal(error.cause.message, runtimes.message);
  });

  it("fetchDuplex keeps the error of the fetch it was given as the cause, its cause's reason in the message once", async () => {
    const thrown = new TypeError("fetch failed", {
      cause: new Error("getaddrinfo ENOTFOUND x"),
    });
    const error = await rejection(
      fetchDuplex("http://x/", {
        method: "POST",
        body: body(),
        fetch: () => Promise.reject(thrown),
      }),
      "fetchDuplex",
    );
    assert.ok(error instanceof TypeError, String(error));
    assert.equal(
      error.message,
      "fetch failed (getaddrinfo ENOTFOUND x)",
    );
    assert.equal(error.cause, thrown);
  });

  it("fetchDuplex aborted before it connects rejects with the signal's reason, unchanged", async () => {
    const reason = new Error("stop");
    const error = await rejection(
      fetchDuplex(url, {
        method: "POST",
        body: body(),
        signal: AbortSignal.abort(reason),
      }),
      "fetchDuplex",
    );
    assert.equal(error, reason);
  });

  it("fetchDuplex passes on an error of its fetch that is not a TypeError, unchanged", async () => {
    const thrown = new RangeError("Cannot send: over a limit");
    const error = await rejection(
      fetchDuplex(url, {
        method: "POST",
        body: body(),
        fetch: () => Promise.reject(thrown),
      }),
      "fetchDuplex",
    );
    assert.equal(error, thrown);
  });
});

describe("fetchDuplex names an untrusted certificate", () => {
  let dir: string;
  let server: Server;
  before(async () => {
    dir = await makeTempDir("tls-");
    const { cert, key } = await makeCertificates(dir);
    server = await serve((request) => new Response(request.body), {
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert, key },
    });
  });
  after(async () => {
    await server?.shutdown();
    await removeDir(dir);
  });

  it("fetchDuplex to an https server whose CA is not trusted rejects with a TypeError naming the certificate, the runtime's error as its cause", async () => {
    const error = await rejection(
      fetchDuplex(server.url, { method: "POST", body: body() }),
      "fetchDuplex",
    );
    assertNamed(error, UNTRUSTED);
    assert.ok(error.cause instanceof TypeError, String(error.cause));
  });
});
