// Answers the library compresses itself, served by workerd: each reaches a
// fetch client (which decodes one layer of gzip) as the bytes sent. Before,
// workerd gzipped such a body a second time (it encodes a response body
// whose Content-Encoding it supports unless the response says the body is
// encoded already): the client got 49 gzip bytes for 4 KiB echoed, and a
// Connect unary answer that could not be decoded.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startWorkerd, type Workerd } from "./_workerd.ts";
import { createClient, createConnectTransport } from "../lib/rpc/mod.ts";
import { repeated, RepeatService } from "./_compression_worker.ts";

const T = 30_000;

describe("workerd: answers the library compresses", () => {
  let workerd: Workerd;
  const url = (path: string) => new URL(path, workerd.url);

  before(async () => {
    workerd = await startWorkerd({ entry: "tests/_compression_worker.ts" });
  });
  after(async () => {
    const stderr = workerd?.stderr().trim();
    await workerd?.stop();
    if (stderr) console.error(`workerd stderr:\n${stderr}`);
  });

  // Compressible and over echo's compressMinBytes (1 KiB).
  const sent = new TextEncoder().encode("hello, workerd ".repeat(300));

  for (const path of ["/echo", "/duplex"]) {
    it(`${path} in workerd: a gzip answer is gzipped once (the client gets the bytes sent)`, async () => {
      const response = await fetch(url(path), {
        method: "POST",
        headers: { "accept-encoding": "gzip" },
        body: sent,
        signal: AbortSignal.timeout(T),
      });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-encoding"), "gzip");
      const got = new Uint8Array(await response.arrayBuffer());
      assert.equal(got.byteLength, sent.byteLength);
      assert.deepEqual(got, sent);
    });
  }

  it("a Connect unary answer compressed in workerd decodes to its message", async () => {
    // On the wire: gzip once (fetch decodes it, the header stays).
    const response = await fetch(url("/rpc/test.v1.RepeatService/repeat"), {
      method: "POST",
      headers: {
        "content-type": "application/proto",
        "accept-encoding": "gzip",
      },
      body: new Uint8Array([8, 21]), // Int64Value { value: 21 }
      signal: AbortSignal.timeout(T),
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-encoding"), "gzip");
    assert.equal(await response.text(), repeated(21n));
    // And through the library's client.
    const client = createClient(
      RepeatService,
      createConnectTransport({ baseUrl: url("/rpc").href }),
    );
    assert.equal(await client.repeat(21n, { timeoutMs: T }), repeated(21n));
  });
});
