// A sink that stops answering (a store whose write or close never lands):
// the Streams standard makes an abort wait for a write or a close in
// progress, so receiveBody's signal and timeoutMs must end the call while
// one is, and its wait for the sink's abort is bounded (SINK_ABORT_WAIT_MS).
// The resumable handler holds an upload's lock for as long as its append
// runs: a request that ends the append (a HEAD after a client's stall) must
// answer even when the store's part upload never settles (R2 stalled, on
// the Workers store).

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  createResumableUploadHandler,
  HttpError,
  receiveBody,
} from "../lib/http/mod.ts";
import { SINK_ABORT_WAIT_MS } from "../lib/http/receive_body.ts";
import {
  createHasher,
  createResumableUploadObject,
  createResumableWorkersStore,
} from "../lib/runtime/workers.ts";
import { FakeNamespace } from "./_do_fake.ts";
import { FakeR2Bucket } from "./_r2_fake.ts";
import { deadline } from "./_helpers.ts";

const MiB = 1024 * 1024;

/** A body of `chunks` chunks of 1 KiB. */
function body(chunks: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent++ === chunks) controller.close();
      else controller.enqueue(new Uint8Array(1024));
    },
  });
}

/**
 * A sink whose last write lands only when its store answers, which it does
 * not: its close waits until its controller's signal tells it to stop.
 */
function closeNeverLands() {
  const state: { sink: WritableStream<Uint8Array>; told?: unknown } = {
    sink: undefined!,
  };
  let signal: AbortSignal;
  state.sink = new WritableStream<Uint8Array>({
    start(controller) {
      signal = controller.signal;
    },
    close() {
      return new Promise<void>((_, reject) => {
        signal.addEventListener("abort", () => {
          state.told = signal.reason;
          reject(signal.reason);
        });
      });
    },
  });
  return state;
}

describe("receiveBody and a sink that stops answering", () => {
  it("an aborted signal ends a call whose sink's write never settles (nor heeds its signal), after at most SINK_ABORT_WAIT_MS more", async () => {
    let sinkSignal: AbortSignal | undefined;
    let writes = 0;
    const sink = new WritableStream<Uint8Array>({
      start(controller) {
        sinkSignal = controller.signal;
      },
      write() {
        writes++;
        return new Promise(() => {});
      },
    });
    const controller = new AbortController();
    const received = receiveBody(body(16), sink, {
      signal: controller.signal,
      readAheadBytes: 0,
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(writes, 1);
    const start = performance.now();
    controller.abort(new Error("the client went"));
    const error = await deadline(
      received.then(() => undefined, (error) => error),
      SINK_ABORT_WAIT_MS + 5_000,
      "receiveBody after the abort",
    );
    const waited = performance.now() - start;
    assert.ok(error instanceof HttpError, String(error));
    assert.equal(error.status, 503);
    assert.equal(error.message, "Cannot receive body: aborted");
    // The sink was told at once, through its controller's signal.
    assert.equal(sinkSignal?.aborted, true);
    assert.ok(
      waited >= SINK_ABORT_WAIT_MS - 50,
      `rejected after ${waited} ms, before the sink had its ${SINK_ABORT_WAIT_MS} ms`,
    );
  });

  it("timeoutMs ends a call whose sink's close is in progress, which a sink that heeds its signal ends at once", async () => {
    const stalled = closeNeverLands();
    const start = performance.now();
    const error = await deadline(
      receiveBody(body(4), stalled.sink, { timeoutMs: 300 }).then(
        () => undefined,
        (error) => error,
      ),
      5_000,
      "receiveBody with a close that never lands",
    );
    const waited = performance.now() - start;
    assert.ok(error instanceof HttpError, String(error));
    assert.equal(error.status, 408);
    assert.ok(stalled.told !== undefined, "the sink's close was not told");
    assert.ok(waited < 3_000, `took ${waited} ms`);
  });

  it("a close that commits after timeoutMs passed (one that does not watch its signal, as a file's rename) is a success, never a failure with the body stored", async () => {
    let committed = false;
    const sink = new WritableStream<Uint8Array>({
      async close() {
        await new Promise((resolve) => setTimeout(resolve, 600));
        committed = true;
      },
    });
    const start = performance.now();
    const received = await deadline(
      receiveBody(body(4), sink, { timeoutMs: 200 }),
      5_000,
      "receiveBody with a slow close",
    );
    assert.equal(received.bytes, 4 * 1024);
    assert.ok(committed);
    assert.ok(performance.now() - start >= 500);
  });

  it("an aborted signal ends a call whose sink's close is in progress", async () => {
    const stalled = closeNeverLands();
    const controller = new AbortController();
    const received = receiveBody(body(4), stalled.sink, {
      signal: controller.signal,
    }).then(() => undefined, (error) => error);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const reason = new Error("superseded");
    controller.abort(reason);
    const error = await deadline(received, 5_000, "receiveBody after abort");
    assert.ok(error instanceof HttpError, String(error));
    assert.equal(error.status, 503);
    assert.equal(error.cause, reason);
    assert.equal(stalled.told, error);
  });
});

describe("createResumableUploadHandler over a store that stops answering", () => {
  it("a HEAD ends an append whose R2 part upload never settles (the Workers store), and answers its offset once SINK_ABORT_WAIT_MS has passed", async () => {
    const bucket = new FakeR2Bucket();
    let stalled = 0;
    let stall = false;
    // R2 stops answering: each part upload from now on never settles.
    for (const method of ["createMultipartUpload", "resumeMultipartUpload"]) {
      const opened = Reflect.get(bucket, method).bind(bucket) as (
        ...args: unknown[]
      ) => Promise<Record<string, unknown>>;
      Reflect.set(bucket, method, async (...args: unknown[]) => {
        const upload = await opened(...args);
        const uploadPart = upload.uploadPart as (
          ...args: unknown[]
        ) => Promise<unknown>;
        return Object.assign(Object.create(upload), {
          uploadPart: (...args: unknown[]) => {
            if (!stall) return uploadPart(...args);
            stalled++;
            return new Promise(() => {});
          },
        });
      });
    }
    const handler = createResumableUploadHandler({
      store: createResumableWorkersStore(
        new FakeNamespace(
          createResumableUploadObject({ bucket: () => bucket }),
          {},
        ),
      ),
      hasher: createHasher,
      onError: () => {},
    });
    const base = "http://localhost/uploads";
    const tus = { "tus-resumable": "1.0.0" };
    const created = await handler(
      new Request(base, {
        method: "POST",
        headers: { ...tus, "upload-length": String(24 * MiB) },
      }),
    );
    assert.equal(created.status, 201);
    const location = new URL(created.headers.get("location")!, base);
    stall = true;
    const patch = handler(
      new Request(location, {
        method: "PATCH",
        headers: {
          ...tus,
          "upload-offset": "0",
          "content-type": "application/offset+octet-stream",
        },
        body: new Uint8Array(12 * MiB),
      }),
    );
    const patchAnswer = patch.then((response) => response.status);
    // The first part (8 MiB) went to R2, which never answers.
    const waitStart = performance.now();
    while (stalled === 0 && performance.now() - waitStart < 5_000) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(stalled, 1);
    const start = performance.now();
    const head = await deadline(
      handler(new Request(location, { method: "HEAD", headers: tus })),
      SINK_ABORT_WAIT_MS + 5_000,
      "the HEAD",
    );
    const waited = performance.now() - start;
    assert.equal(head.status, 200);
    // Nothing reached R2: the offset is where the stalled append began.
    assert.equal(head.headers.get("upload-offset"), "0");
    assert.ok(
      waited < SINK_ABORT_WAIT_MS + 5_000,
      `the HEAD took ${waited} ms`,
    );
    // The PATCH it ended has answered too (nobody left to hear it).
    assert.ok(
      await deadline(patchAnswer, 5_000, "the ended PATCH") >= 400,
    );
  });
});
