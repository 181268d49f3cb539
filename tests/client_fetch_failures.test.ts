// upload() and openDuplex() when the connection itself fails (a refused
// port, a certificate the client does not trust): the error names the
// reason. Deno's fetch rejected with a bare "fetch failed", the reason only
// in its cause, where fetchEventStream and the RPC transports already
// looked for it.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { openDuplex, upload } from "../lib/http/mod.ts";
import { runtime } from "./_helpers.ts";
import {
  REFUSED,
  refusedUrl,
  rejection,
  UNTRUSTED,
  untrustedServer,
} from "./_network_failures.ts";

/** Asserts a TypeError "Cannot <what>: ..." naming `reason`, with a cause. */
function assertNamed(error: unknown, what: string, reason: RegExp): void {
  assert.ok(error instanceof TypeError, String(error));
  assert.ok(error.message.startsWith(`Cannot ${what}: `), error.message);
  assert.match(error.message, reason);
  assert.ok(error.cause instanceof Error, String(error.cause));
}

describe("client fetch failures name the reason", () => {
  let url: string;
  before(async () => {
    url = await refusedUrl();
  });

  it("upload of a Blob to a refused port rejects with a TypeError naming the refusal", async () => {
    const error = await rejection(upload(url, new Blob(["x"])), "upload");
    assertNamed(error, "upload", REFUSED);
  });

  it("upload of a stream to a refused port rejects with a TypeError naming the refusal", async () => {
    const error = await rejection(
      upload(url, new Blob(["x"]).stream(), { contentLength: 1 }),
      "upload",
    );
    assertNamed(error, "upload", REFUSED);
  });

  it("upload aborted before it connects rejects with the signal's reason, unchanged", async () => {
    const reason = new Error("stop");
    const error = await rejection(
      upload(url, new Blob(["x"]), { signal: AbortSignal.abort(reason) }),
      "upload",
    );
    assert.equal(error, reason);
  });

  it("openDuplex to a refused port fails its response and its reads with a TypeError naming the refusal", async () => {
    const { stream, response } = openDuplex(url);
    const failed = await rejection(response, "the response");
    assertNamed(failed, "open duplex stream", REFUSED);
    const read = await rejection(stream.read(1), "a read");
    assert.equal(read, failed);
    await stream.close().catch(() => {});
  });
});

describe("client fetch failures name an untrusted certificate", () => {
  const server = untrustedServer();
  before(() => server.start());
  after(() => server.stop());

  it("upload to an https server whose CA is not trusted rejects with a TypeError naming the certificate", async () => {
    const error = await rejection(
      upload(server.url, new Blob(["x"])),
      "upload",
    );
    assertNamed(error, "upload", UNTRUSTED);
  });

  it(
    "openDuplex to an https server whose CA is not trusted fails with a TypeError naming the certificate",
    async () => {
      const { stream, response } = openDuplex(server.url);
      const failed = await rejection(response, "the response");
      assertNamed(failed, "open duplex stream", UNTRUSTED);
      await stream.close().catch(() => {});
    },
  );
});

// The runtime's own words stay in the cause (Deno: "fetch failed", its
// reason in the cause's cause).
describe("client fetch failures keep the runtime's error", () => {
  it(
    "upload's TypeError has the runtime's fetch error as its cause",
    async () => {
      const url = await refusedUrl();
      const error = await rejection(upload(url, new Blob(["x"])), "upload");
      assert.ok(error instanceof TypeError);
      assert.ok(error.cause instanceof TypeError, String(error.cause));
      if (runtime === "deno") {
        assert.equal((error.cause as Error).message, "fetch failed");
      }
    },
  );
});
