// A framework's own limit on a request body, as the handlers meet it when
// mounted under one: srvx's `serve({ maxRequestBodySize })` and h3's
// `bodyLimit()` fail the body stream with an error carrying `status: 413`
// (srvx's BodyTooLargeError, code ERR_BODY_TOO_LARGE). The upload
// handlers answered it 400 as a client gone ("Cannot receive body: Request
// body exceeds ..."), the RPC server CANCELED "the request body failed (the
// client went away)": now 413 and RESOURCE_EXHAUSTED, in its words. Any
// other status on a stream's error is no convention to trust: still 400.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createUploadHandler } from "../lib/http/mod.ts";
import { createResumableUploadHandler } from "../lib/http/mod.ts";
import {
  createRpcHandler,
  defineService,
  FrameDecoder,
  implementService,
  Int64Value,
} from "../lib/rpc/mod.ts";
import { createResumableFileStore } from "../lib/runtime/fs.ts";
import { streamingCalc } from "../examples/streaming_calc.ts";
import { makeTempDir, removeDir } from "./_helpers.ts";

const LIMIT_MESSAGE =
  "Request body exceeds the maximum allowed size of 1048576 bytes.";

/** The error srvx's maxRequestBodySize fails a request body with. */
function srvxLimitError(): Error {
  return Object.assign(new Error(LIMIT_MESSAGE), {
    status: 413,
    code: "ERR_BODY_TOO_LARGE",
  });
}

/**
 * A body that gives `chunks` (one a pull), then fails with `error`, as a
 * framework's limit cuts a body after the bytes up to it.
 */
function failingBody(
  chunks: Uint8Array[],
  error: unknown,
): ReadableStream<Uint8Array> {
  let next = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (next < chunks.length) controller.enqueue(chunks[next++]);
      else controller.error(error);
    },
  });
}

function request(
  url: string,
  method: string,
  body: ReadableStream<Uint8Array>,
  headers: Record<string, string> = {},
): Request {
  return new Request(url, {
    method,
    headers,
    body,
    duplex: "half",
  } as RequestInit);
}

/** A sink that records whether it was closed or aborted. */
function recordingSink() {
  const seen = { bytes: 0, closed: false, aborted: undefined as unknown };
  const writable = new WritableStream<Uint8Array>({
    write: (chunk) => void (seen.bytes += chunk.byteLength),
    close: () => void (seen.closed = true),
    abort: (reason) => void (seen.aborted = reason),
  });
  return { seen, writable };
}

describe("createUploadHandler under a framework's body limit", () => {
  it("createUploadHandler answers 413 in the limit's words for a body failed with status 413 (srvx's maxRequestBodySize gave 400)", async () => {
    const { seen, writable } = recordingSink();
    const upload = createUploadHandler({ sink: () => writable });
    const response = await upload(
      request(
        "http://localhost/files/a.bin",
        "PUT",
        failingBody([new Uint8Array(64 * 1024)], srvxLimitError()),
      ),
    );
    assert.equal(response.status, 413);
    assert.equal(
      await response.text(),
      `Cannot receive body: ${LIMIT_MESSAGE}`,
    );
    assert.equal(seen.closed, false);
    assert.ok(seen.aborted !== undefined, "the sink was not aborted");
  });

  it("createUploadHandler answers 413 for an error with statusCode 413 alone (h3's HTTPError carries both)", async () => {
    const upload = createUploadHandler({ sink: () => new WritableStream() });
    const error = Object.assign(new Error("Request Entity Too Large"), {
      statusCode: 413,
    });
    const response = await upload(
      request(
        "http://localhost/files/a.bin",
        "PUT",
        failingBody([new Uint8Array(10)], error),
      ),
    );
    assert.equal(response.status, 413);
    assert.equal(
      await response.text(),
      "Cannot receive body: Request Entity Too Large",
    );
  });

  it("createUploadHandler still answers 400 for a body failed with another status, or 413 as a string", async () => {
    const upload = createUploadHandler({ sink: () => new WritableStream() });
    for (
      const error of [
        Object.assign(new Error("bad gateway"), { status: 502 }),
        Object.assign(new Error("too large?"), { status: "413" }),
      ]
    ) {
      const response = await upload(
        request(
          "http://localhost/files/a.bin",
          "PUT",
          failingBody([new Uint8Array(10)], error),
        ),
      );
      assert.equal(response.status, 400, error.message);
      await response.body?.cancel();
    }
  });

  it("createResumableUploadHandler answers a tus PATCH whose body is failed with status 413 with 413 in the limit's words (it gave 400)", async () => {
    const dir = await makeTempDir("fw-limit-");
    try {
      const handler = createResumableUploadHandler({
        store: createResumableFileStore(dir),
      });
      const created = await handler(
        new Request("http://localhost/uploads", {
          method: "POST",
          headers: { "tus-resumable": "1.0.0", "upload-length": "3000000" },
        }),
      );
      assert.equal(created.status, 201);
      const location = new URL(
        created.headers.get("location")!,
        "http://localhost/",
      ).href;
      const response = await handler(
        request(
          location,
          "PATCH",
          failingBody([new Uint8Array(1000)], srvxLimitError()),
          {
            "tus-resumable": "1.0.0",
            "upload-offset": "0",
            "content-type": "application/offset+octet-stream",
          },
        ),
      );
      assert.equal(response.status, 413);
      // In the limit's words, not the handler's own for the room left
      // ("the body goes past its length").
      assert.equal(
        await response.text(),
        `Cannot receive body: ${LIMIT_MESSAGE}`,
      );
    } finally {
      await removeDir(dir);
    }
  });
});

/** Connect or gRPC-Web frames of `count` Int64Value messages of 1. */
function ones(count: number): Uint8Array[] {
  const frame = [0, 0, 0, 0, 2, 0x08, 0x01];
  const bytes = new Uint8Array(frame.length * count);
  for (let i = 0; i < count; i++) bytes.set(frame, i * frame.length);
  return [bytes.subarray(0, 700), bytes.subarray(700)];
}

/**
 * The status of a Connect or gRPC-Web streaming response: in its headers
 * (gRPC-Web's Trailers-Only) or its last frame.
 */
async function endStatus(
  response: Response,
): Promise<{ code: string; message: string }> {
  const status = response.headers.get("grpc-status");
  if (status !== null) {
    await response.body?.cancel();
    return {
      code: status,
      message: decodeURIComponent(response.headers.get("grpc-message") ?? ""),
    };
  }
  const bytes = new Uint8Array(await response.arrayBuffer());
  const last = new FrameDecoder().decode(bytes).at(-1)!;
  const text = new TextDecoder().decode(last.data);
  if (last.flags === 2) {
    const end = JSON.parse(text);
    return { code: end.error?.code ?? "ok", message: end.error?.message };
  }
  assert.equal(last.flags, 0x80);
  return {
    code: /grpc-status: ?(\d+)/.exec(text)![1],
    message: decodeURIComponent(/grpc-message: ?(.*)\r\n/.exec(text)![1]),
  };
}

describe("createRpcHandler under a framework's body limit", () => {
  const rpc = createRpcHandler(streamingCalc);
  const url = "http://localhost/StreamingCalcService/sum";

  it("createRpcHandler ends a Connect client-streaming call whose body is failed with status 413 RESOURCE_EXHAUSTED in the limit's words (it ended CANCELED, the client gone)", async () => {
    const response = await rpc(
      request(url, "POST", failingBody(ones(1000), srvxLimitError()), {
        "content-type": "application/connect+proto",
      }),
    );
    assert.equal(response.status, 200);
    assert.deepEqual(await endStatus(response), {
      code: "resource_exhausted",
      message: `Cannot read request: ${LIMIT_MESSAGE}`,
    });
  });

  it("createRpcHandler ends a gRPC-Web client-streaming call whose body is failed with status 413 with grpc-status 8 (it gave 1)", async () => {
    const response = await rpc(
      request(url, "POST", failingBody(ones(1000), srvxLimitError()), {
        "content-type": "application/grpc-web+proto",
      }),
    );
    assert.equal(response.status, 200);
    assert.deepEqual(await endStatus(response), {
      code: "8",
      message: `Cannot read request: ${LIMIT_MESSAGE}`,
    });
  });

  it("createRpcHandler ends a Connect client-streaming call whose body fails without status 413 CANCELED, as a client gone", async () => {
    const response = await rpc(
      request(
        url,
        "POST",
        failingBody(
          ones(1000),
          Object.assign(new Error("connection reset"), { status: 500 }),
        ),
        { "content-type": "application/connect+proto" },
      ),
    );
    assert.equal((await endStatus(response)).code, "canceled");
  });

  it("createRpcHandler answers a Connect unary call whose body is failed with status 413 RESOURCE_EXHAUSTED (429)", async () => {
    const Echo = defineService("test.v1.Echo", {
      echo: { kind: "unary", input: Int64Value, output: Int64Value },
    });
    const unary = createRpcHandler(
      implementService(Echo, { echo: (value) => value }),
    );
    const response = await unary(
      request(
        "http://localhost/test.v1.Echo/echo",
        "POST",
        failingBody([new Uint8Array([0x08])], srvxLimitError()),
        { "content-type": "application/proto" },
      ),
    );
    assert.equal(response.status, 429);
    assert.deepEqual(await response.json(), {
      code: "resource_exhausted",
      message: `Cannot read request: ${LIMIT_MESSAGE}`,
    });
  });
});
