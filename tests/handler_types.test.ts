// Every mountable handler is a FetchHandler that Deno.serve, Bun.serve's
// fetch and a router accept as it is: checked by the type checker
// (`deno check tests/`), and at run time that each returns a Response; and
// each refuses at creation what it cannot serve with.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  createDuplexHandler,
  createEchoHandler,
  createResumableUploadHandler,
  createSseHandler,
  createUploadHandler,
  type FetchHandler,
} from "../lib/http/mod.ts";
import {
  createRpcHandler,
  defineService,
  implementService,
  Int64Value,
} from "../lib/rpc/mod.ts";

/** What Deno.serve passes as its handler's second argument. */
interface DenoInfo {
  remoteAddr: { transport: "tcp"; hostname: string; port: number };
  completed: Promise<void>;
}
/** What Bun.serve passes as fetch's second argument (a Server). */
interface BunServer {
  upgrade(request: Request): boolean;
  port: number;
}
type DenoHandler = (
  request: Request,
  info: DenoInfo,
) => Response | Promise<Response>;
type BunFetch = (
  request: Request,
  server: BunServer,
) => Response | Promise<Response> | undefined;

const Calc = defineService("StreamingCalcService", {
  sum: { kind: "client-streaming", input: Int64Value, output: Int64Value },
});

const handlers = {
  upload: createUploadHandler({ sink: () => new WritableStream() }),
  echo: createEchoHandler(),
  duplex: createDuplexHandler(async (stream) => {
    await stream.close();
  }),
  sse: createSseHandler(() => ReadableStream.from([{ data: "hi" }])),
  rpc: createRpcHandler(implementService(Calc, { sum: () => 0n })),
};

describe("mountable handlers", () => {
  it("every create*Handler is a FetchHandler, a Deno.serve handler and a Bun fetch", async () => {
    for (const [name, handler] of Object.entries(handlers)) {
      const fetchHandler: FetchHandler = handler;
      const deno: DenoHandler = handler;
      const bun: BunFetch = handler;
      const info: DenoInfo = {
        remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
        completed: Promise.resolve(),
      };
      const response = await deno(
        new Request("http://localhost/x", { method: "PATCH" }),
        info,
      );
      assert.ok(response instanceof Response, name);
      await response.body?.cancel();
      assert.equal(typeof fetchHandler, "function");
      assert.equal(typeof bun, "function");
    }
  });
});

// Handlers given what they cannot serve with failed at their first request
// (createSseHandler with the engine's "handler is not a function",
// createDuplexHandler with a bare 500, createResumableUploadHandler without
// a store with 404 for every request).
describe("handlers refuse at creation what they cannot serve with", () => {
  it("createSseHandler, createDuplexHandler and createResumableUploadHandler name what is missing", () => {
    assert.throws(
      () => createSseHandler(5 as never),
      /^TypeError: Cannot create SSE handler: the handler must be a function, got number$/,
    );
    assert.throws(
      () => createDuplexHandler(undefined as never),
      /^TypeError: Cannot create duplex handler: the handler must be a function, got undefined$/,
    );
    assert.throws(
      () => createResumableUploadHandler({} as never),
      /^TypeError: Cannot create resumable upload handler: give a store/,
    );
  });
});
