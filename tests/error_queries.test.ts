// Errors that quote a runtime's failure: Deno's fetch names the request's
// URL in its error ("error sending request for url (...)"), and the errors
// the clients built on it quoted that URL whole, its query too: an upload
// URL's token (a capability) and a Connect GET's message reached logs.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import {
  HttpError,
  resumableUpload,
  websocketDuplex,
} from "../lib/http/mod.ts";
import {
  createClient,
  createConnectTransport,
  defineService,
  Int64Value,
  RpcError,
} from "../lib/rpc/mod.ts";
import { withoutQueries } from "../lib/_internal/message_of.ts";
import { deadline } from "./_helpers.ts";

/** A port nothing listens on: taken, then given back. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe("errors quoting a runtime's failure leave URLs' queries out", () => {
  it("withoutQueries keeps each URL's origin and path", () => {
    assert.equal(
      withoutQueries(
        "error sending request for url (http://127.0.0.1:1/uploads/abc?token=SECRET): refused; see https://x.example/a#frag.",
      ),
      "error sending request for url (http://127.0.0.1:1/uploads/abc): refused; see https://x.example/a.",
    );
    assert.equal(withoutQueries("no url? here#"), "no url? here#");
    // Parentheses in a path or a query, a URL in quotes, the punctuation
    // after one: the query went on past them, or stopped inside them.
    for (
      const [text, shown] of [
        [
          "url (http://h/files/report_(1).pdf?token=S): refused",
          "url (http://h/files/report_(1).pdf): refused",
        ],
        ["url (http://h/x?q(S)b): refused", "url (http://h/x): refused"],
        [
          "connection to 'ws://h/a_(b)/rpc?token=S' failed",
          "connection to 'ws://h/a_(b)/rpc' failed",
        ],
        ['url "http://h/x?y=S", then', 'url "http://h/x", then'],
        ["http://[::1]:80/x?y=S.", "http://[::1]:80/x."],
        ["http://h/x? Try again", "http://h/x? Try again"],
        // An apostrophe in a path (URLs leave it as it is), or in a query.
        [
          "url (http://h/o'brien/?token=S): refused",
          "url (http://h/o'brien/): refused",
        ],
        [
          "connection to 'ws://h/o'brien?token=S' failed",
          "connection to 'ws://h/o'brien' failed",
        ],
        ["http://h/p?a=O'Brien&token=S.", "http://h/p."],
      ]
    ) assert.equal(withoutQueries(text), shown);
  });

  it("resumableUpload's 'gave up' error after a refused connection", async () => {
    const port = await closedPort();
    const error = await resumableUpload(
      `http://127.0.0.1:${port}/uploads`,
      new Uint8Array(10),
      {
        uploadUrl: `http://127.0.0.1:${port}/uploads/abc?token=SECRET`,
        maxRetries: 1,
        retryDelayMs: 1,
      },
    ).then(() => undefined, (error: unknown) => error);
    assert.ok(error instanceof HttpError, String(error));
    assert.doesNotMatch(error.message, /SECRET/);
    assert.match(error.message, /gave up after 1 retries/);
  });

  it("an RPC call's UNAVAILABLE over Connect GET (the message in the query)", async () => {
    const port = await closedPort();
    const Look = defineService("test.v1.Look", {
      get: {
        kind: "unary",
        input: Int64Value,
        output: Int64Value,
        idempotency: "no-side-effects",
      },
    });
    const client = createClient(
      Look,
      createConnectTransport({
        baseUrl: `http://127.0.0.1:${port}`,
        useHttpGet: true,
      }),
    );
    const error = await client.get(4242n).then(
      () => undefined,
      (error: unknown) => error,
    );
    assert.ok(error instanceof RpcError, String(error));
    assert.doesNotMatch(error.rawMessage, /message=|encoding=/);
  });

  it("a WebSocket that never opened is named by its URL, without its query (Deno's words named no host)", async () => {
    const port = await closedPort();
    const socket = new WebSocket(`ws://127.0.0.1:${port}/rpc-ws?token=SECRET`);
    const error = await websocketDuplex(socket).readPartial().then(
      () => undefined,
      (error: unknown) => error,
    );
    assert.ok(error instanceof TypeError, String(error));
    assert.match(
      error.message,
      new RegExp(
        `^Cannot use WebSocket: the connection to ws://127\\.0\\.0\\.1:${port}/rpc-ws closed with code 1006`,
      ),
    );
    assert.doesNotMatch(error.message, /SECRET/);
  });

  it("a WebSocket closed before it opened with code 1006 and no reason, as a browser tells a page of a refused upgrade, names the likely causes", async () => {
    // Chromium's words for a wrong path, an origin refused, a server down
    // and its 256th socket alike; the runtimes give a reason of their own.
    const socket = new (class extends EventTarget {
      url = "ws://127.0.0.1:9/api/rpc-ws?token=SECRET";
      readyState = 0;
      binaryType = "blob";
      bufferedAmount = 0;
      send() {
        throw new TypeError("not open");
      }
      close() {}
    })();
    const read = websocketDuplex(socket as unknown as WebSocket).readPartial()
      .then(() => undefined, (error: unknown) => error);
    socket.readyState = 3;
    socket.dispatchEvent(new Event("error"));
    socket.dispatchEvent(
      Object.assign(new Event("close"), { code: 1006, reason: "" }),
    );
    const error = await deadline(read, 5_000, "the read");
    assert.ok(error instanceof TypeError, String(error));
    assert.equal(
      error.message,
      "Cannot use WebSocket: the connection to ws://127.0.0.1:9/api/rpc-ws closed with code 1006 before it opened (the server down, or the upgrade refused: a wrong path, an origin not allowed; or too many sockets open, 255 in Chromium)",
    );
  });

  it("a WebSocket whose handshake is never answered is named by its URL in the open timeout's error", async () => {
    const server = createServer((socket) => socket.on("error", () => {}));
    await new Promise<void>((resolve) =>
      server.listen(0, "127.0.0.1", resolve)
    );
    const { port } = server.address() as { port: number };
    try {
      const socket = new WebSocket(`ws://127.0.0.1:${port}/x?token=SECRET`);
      const error = await websocketDuplex(socket, { openTimeoutMs: 300 })
        .readPartial().then(() => undefined, (error: unknown) => error);
      assert.equal(
        (error as Error).message,
        `Cannot open WebSocket to ws://127.0.0.1:${port}/x: not open after 300 ms (openTimeoutMs): the peer went away during the handshake, or never answered it`,
      );
    } finally {
      server.close();
      (server as unknown as { closeAllConnections?: () => void })
        .closeAllConnections?.();
    }
  });
});
