// Objects standing in for a request, as a framework hands a handler:
// @whatwg-node/server on Node gives its own PonyfillRequest, no
// `instanceof Request`. The multipart, echo, SSE and RPC handlers took
// one (they duck-type, as upgradeWebSocket and parseMultipart do); the
// raw upload mode and the resumable PATCH answered 500 "Cannot receive
// body: the input must be a Request or a ReadableStream, got
// PonyfillRequest", after the sink was opened (then aborted).

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  createResumableUploadHandler,
  createUploadHandler,
  receiveBody,
} from "../lib/http/mod.ts";
import { createResumableFileStore } from "../lib/runtime/fs.ts";
import { makeTempDir, removeDir } from "./_helpers.ts";

/**
 * A request of a framework's own class: what a handler reads of a
 * request (method, url, headers, body, bodyUsed, signal), no `Request`.
 */
class PonyfillRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: Headers;
  readonly body: ReadableStream<Uint8Array> | null;
  readonly bodyUsed = false;
  readonly signal = new AbortController().signal;

  constructor(
    url: string,
    init: {
      method: string;
      headers?: Record<string, string>;
      body?: Uint8Array;
    },
  ) {
    this.url = url;
    this.method = init.method;
    this.headers = new Headers(init.headers);
    const body = init.body;
    this.body = body === undefined ? null : new ReadableStream({
      start(controller) {
        controller.enqueue(body);
        controller.close();
      },
    });
  }
}

/** What a handler is typed to take: the stand-in, as a framework passes it. */
function asRequest(request: PonyfillRequest): Request {
  return request as unknown as Request;
}

/** A sink that counts what it takes and whether it was closed or aborted. */
function countingSink() {
  const seen = { opened: 0, bytes: 0, closed: false, aborted: false };
  const open = () => {
    seen.opened++;
    return new WritableStream<Uint8Array>({
      write: (chunk) => void (seen.bytes += chunk.byteLength),
      close: () => void (seen.closed = true),
      abort: () => void (seen.aborted = true),
    });
  };
  return { seen, open };
}

describe("handlers given an object standing in for a request", () => {
  it("receiveBody receives the body of a request-like object (it refused one that is no instanceof Request)", async () => {
    const { seen, open } = countingSink();
    const received = await receiveBody(
      asRequest(
        new PonyfillRequest("http://localhost/", {
          method: "PUT",
          headers: { "content-length": "5" },
          body: new TextEncoder().encode("hello"),
        }),
      ),
      open(),
    );
    assert.equal(received.bytes, 5);
    assert.deepEqual(seen, {
      opened: 1,
      bytes: 5,
      closed: true,
      aborted: false,
    });
  });

  it("receiveBody checks a request-like object's Content-Length (its headers are read, not the options')", async () => {
    await assert.rejects(
      receiveBody(
        asRequest(
          new PonyfillRequest("http://localhost/", {
            method: "PUT",
            headers: { "content-length": "6" },
            body: new TextEncoder().encode("hello"),
          }),
        ),
        new WritableStream(),
      ),
      { status: 400, message: /received 5 bytes but Content-Length is 6/ },
    );
  });

  it("createUploadHandler (raw mode) stores the body of a request-like object, 201 (it threw a TypeError, a 500, after opening the sink)", async () => {
    const { seen, open } = countingSink();
    const upload = createUploadHandler({ sink: open });
    const response = await upload(
      asRequest(
        new PonyfillRequest("http://localhost/files/a.bin", {
          method: "PUT",
          body: new Uint8Array(1000),
        }),
      ),
    );
    assert.equal(response.status, 201);
    assert.equal((await response.json()).bytes, 1000);
    assert.deepEqual(seen, {
      opened: 1,
      bytes: 1000,
      closed: true,
      aborted: false,
    });
  });

  it("createUploadHandler refuses what is no request before opening a sink (the sink was opened, then aborted)", async () => {
    const { seen, open } = countingSink();
    const upload = createUploadHandler({ sink: open });
    // Headers, but a body that is no stream (text a framework read).
    const notRequest = {
      method: "PUT",
      url: "http://localhost/files/a.bin",
      headers: new Headers(),
      body: "hello",
    };
    await assert.rejects(
      upload(notRequest as unknown as Request),
      {
        name: "TypeError",
        message:
          "Cannot receive upload: the request must be a Request, got object",
      },
    );
    // A Response, and headers and a body with no method or URL, are none
    // either (they passed, then failed inside: "Cannot read properties of
    // undefined (reading 'slice')").
    for (
      const other of [
        new Response("abc"),
        { headers: new Headers(), body: null },
      ]
    ) {
      await assert.rejects(
        upload(other as unknown as Request),
        {
          name: "TypeError",
          message:
            /^Cannot receive upload: the request must be a Request, got /,
        },
      );
    }
    assert.equal(seen.opened, 0);
  });

  it("createResumableUploadHandler appends the body of a request-like tus PATCH (it threw a TypeError, a 500)", async () => {
    const dir = await makeTempDir("request-like-");
    try {
      const handler = createResumableUploadHandler({
        store: createResumableFileStore(dir),
      });
      const created = await handler(
        new Request("http://localhost/uploads", {
          method: "POST",
          headers: { "tus-resumable": "1.0.0", "upload-length": "10" },
        }),
      );
      assert.equal(created.status, 201);
      const location = new URL(
        created.headers.get("location")!,
        "http://localhost/",
      ).href;
      const response = await handler(
        asRequest(
          new PonyfillRequest(location, {
            method: "PATCH",
            headers: {
              "tus-resumable": "1.0.0",
              "upload-offset": "0",
              "content-type": "application/offset+octet-stream",
            },
            body: new Uint8Array(10),
          }),
        ),
      );
      assert.equal(response.status, 204, await response.clone().text());
      assert.equal(response.headers.get("upload-offset"), "10");
    } finally {
      await removeDir(dir);
    }
  });
});
