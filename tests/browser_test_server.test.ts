// The browser suite's test server (tests/browser/_test_server.ts): closing it
// must not wait on a connection that carries no request. Chromium opens a
// spare TLS connection ahead of need and keeps it idle, without a byte, for
// 60 s; Deno 2.9.6's `server.shutdown()` waits for it
// (docs/known-runtime-issues.md (h)), which is what made the h2 resumable
// upload test in Chromium time out in 4 runs of 9. Deno only.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { deadline, makeTempDir, removeDir, runtime } from "./_helpers.ts";
import {
  makeCertificates,
  serveForTest,
  type Tls,
} from "./browser/_test_server.ts";

/**
 * A TLS connection that negotiated h2 and then sends nothing, as Chromium's
 * spare preconnected socket does.
 */
async function silentH2Connection(
  port: number,
  ca: string,
): Promise<{ close(): void }> {
  const conn = await Deno.connectTls({
    hostname: "127.0.0.1",
    port,
    caCerts: [ca],
    alpnProtocols: ["h2"],
  });
  const { alpnProtocol } = await conn.handshake();
  assert.equal(alpnProtocol, "h2", "ALPN");
  return {
    close: () => {
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    },
  };
}

describe("browser suite's serveForTest", {
  skip: runtime !== "deno",
}, () => {
  let dir = "";
  let tls: Tls;
  before(async () => {
    dir = await makeTempDir("test-server-");
    tls = await makeCertificates(dir);
  });
  after(async () => {
    await removeDir(dir);
  });

  it("close() returns at once while a client holds a silent TLS connection that negotiated h2, and the server ends when the client closes it", async () => {
    const server = await serveForTest(() => new Response("ok"), tls);
    const client = Deno.createHttpClient({ caCerts: [tls.ca] });
    const silent = await silentH2Connection(server.port, tls.ca);
    try {
      const response = await fetch(`https://127.0.0.1:${server.port}/`, {
        client,
      });
      assert.equal(await response.text(), "ok");
      const started = performance.now();
      await deadline(server.close(), 5_000, "close() with a silent client");
      assert.ok(
        performance.now() - started < 2_000,
        `close() took ${Math.round(performance.now() - started)} ms`,
      );
      silent.close();
      await deadline(server.finished, 5_000, "the server's end");
    } finally {
      silent.close();
      client.close();
    }
  });

  it("close() waits for a request still being answered, then ends the server", async () => {
    const { promise: answered, resolve: answer } = Promise.withResolvers<
      void
    >();
    const server = await serveForTest(async () => {
      await answered;
      return new Response("late");
    });
    const response = fetch(`http://127.0.0.1:${server.port}/`);
    while (server.open() === 0) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const closing = server.close(5_000);
    setTimeout(answer, 100);
    assert.equal(await (await response).text(), "late");
    await deadline(closing, 5_000, "close()");
  });

  it("close() rejects naming the requests left unanswered after waitMs, and ends the server anyway", async () => {
    const server = await serveForTest(() =>
      new Response(new ReadableStream({ start() {} }))
    );
    const response = await fetch(`http://127.0.0.1:${server.port}/`);
    const reading = response.body!.getReader().read().then(
      () => "read",
      () => "cut",
    );
    await assert.rejects(
      deadline(server.close(200), 5_000, "close()"),
      /^Error: 1 request\(s\) still unanswered 200 ms after the test$/,
    );
    assert.equal(await deadline(reading, 5_000, "the cut"), "cut");
  });
});
