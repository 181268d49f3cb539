// The runtime glue called with arguments of the wrong type, above all a
// Workers binding misnamed in the Worker's configuration (`env.UPLODS` is
// undefined): each refuses at once with a TypeError naming the argument,
// instead of a server or sink made anyway that fails at its first request
// or write with the engine's words.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createFileSink, createResumableFileStore } from "../lib/runtime/fs.ts";
import { serve } from "../lib/runtime/serve.ts";
import { serveHttp2 } from "../lib/runtime/grpc_node.ts";
import { upgradeWebSocket } from "../lib/runtime/websocket.ts";
import {
  createR2Sink,
  createResumableUploadObject,
  createResumableWorkersStore,
} from "../lib/runtime/workers.ts";
import { defineService, implementService, Int64Value } from "../lib/rpc/mod.ts";
import { FakeR2Bucket } from "./_r2_fake.ts";

/** Asserts that `fn` throws (or rejects with) a TypeError of `message`. */
async function refuses(fn: () => unknown, message: string): Promise<void> {
  await assert.rejects(async () => await fn(), { name: "TypeError", message });
}

const BINDING =
  " (is the binding's name in env the one in the Worker's configuration?)";

describe("runtime glue refuses arguments of the wrong type, naming them", () => {
  it("Workers: a misnamed R2 or Durable Object binding, a key that is none, a bucket without what resumable uploads need", async () => {
    await refuses(
      () => createR2Sink(undefined as never, "k"),
      `Cannot create R2 sink: the bucket must be an R2 bucket, got undefined${BINDING}`,
    );
    await refuses(
      () => createR2Sink(new FakeR2Bucket(), "" as never),
      "Cannot create R2 sink: the key must be a non-empty string, got string",
    );
    await refuses(
      () => createResumableWorkersStore(undefined as never),
      `Cannot create resumable Workers store: the namespace must be a Durable Object namespace, got undefined${BINDING}`,
    );
    await refuses(
      () => createResumableUploadObject({} as never),
      "Cannot create resumable upload object: options.bucket must be a function of env giving the R2 bucket ((env) => env.UPLOADS), got undefined",
    );
    // The bucket comes from env when the object starts.
    const UploadObject = createResumableUploadObject({
      bucket: (env) => env.UPLOADS as never,
    });
    const state = { storage: {} } as never;
    await refuses(
      () => new UploadObject(state, {}),
      `Cannot start resumable upload object: the bucket must be an R2 bucket, got undefined${BINDING}`,
    );
    await refuses(
      () => new UploadObject(state, { UPLOADS: { put() {} } }),
      "Cannot start resumable upload object: the bucket must be an R2 bucket, got object",
    );
  });

  it("serve, serveHttp2 and upgradeWebSocket: a handler that is none, a service implementation where a handler goes, no request", async () => {
    await refuses(
      () => serve(undefined as never),
      "Cannot serve: the handler must be a function of a Request, got undefined",
    );
    const implementation = implementService(
      defineService("t.S", {
        get: { kind: "unary", input: Int64Value, output: Int64Value },
      }),
      { get: (value) => value },
    );
    await refuses(
      () => serveHttp2(implementation as never),
      "Cannot serve HTTP/2: the handler must be a universal handler (createUniversalHandler(services)), got object (a service implementation: wrap it in createUniversalHandler)",
    );
    await refuses(
      () => upgradeWebSocket(undefined as never),
      "Cannot upgrade to WebSocket: the request must be a Request, got undefined",
    );
  });

  it("files: a path that is none", async () => {
    await refuses(
      () => createFileSink(undefined as never),
      "Cannot create file sink: the path must be a file's path, got undefined",
    );
    await refuses(
      () => createResumableFileStore("" as never),
      "Cannot create resumable file store: dir must be a directory's path, got string",
    );
  });
});
