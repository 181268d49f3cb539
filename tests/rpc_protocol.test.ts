// Unit tests of each protocol's request headers (request_header.ts) and
// response validation (validate_response.ts), side by side, and of
// FrameEncoderStream.push, the encoder's documented fast path.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Code, FrameEncoderStream, RpcError } from "../lib/rpc/mod.ts";
import type { UniversalClientResponse } from "../lib/rpc/universal.ts";
import { requestHeader as connectHeader } from "../lib/rpc/protocol_connect/request_header.ts";
import {
  readUnaryResponse,
  validateResponse as validateConnect,
} from "../lib/rpc/protocol_connect/validate_response.ts";
import { requestHeader as grpcHeader } from "../lib/rpc/protocol_grpc/request_header.ts";
import {
  readTrailers,
  validateResponse as validateGrpc,
} from "../lib/rpc/protocol_grpc/validate_response.ts";
import { requestHeader as grpcWebHeader } from "../lib/rpc/protocol_grpc_web/request_header.ts";
import {
  decodeEnd,
  validateResponse as validateGrpcWeb,
} from "../lib/rpc/protocol_grpc_web/validate_response.ts";

function response(
  status: number,
  headers: HeadersInit,
  body: Uint8Array = new Uint8Array(0),
): UniversalClientResponse {
  return {
    status,
    headers: new Headers(headers),
    body: new Blob([body as Uint8Array<ArrayBuffer>]).stream(),
    trailers: Promise.resolve(new Headers()),
  };
}

function code(fn: () => unknown): Code {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof RpcError, String(error));
    return error.code;
  }
  assert.fail("expected an RpcError");
}

describe("request_header", () => {
  it("Connect streaming: content type, version, timeout, compressions", () => {
    const h = connectHeader(new Headers(), false, "proto", 1500, "gzip", [
      "gzip",
      "deflate",
    ]);
    assert.equal(h.get("content-type"), "application/connect+proto");
    assert.equal(h.get("connect-protocol-version"), "1");
    assert.equal(h.get("connect-timeout-ms"), "1500");
    assert.equal(h.get("connect-content-encoding"), "gzip");
    assert.equal(h.get("connect-accept-encoding"), "gzip,deflate");
  });

  it("Connect unary: content-encoding is left to the body; accept-encoding", () => {
    const h = connectHeader(new Headers(), true, "json", undefined, "gzip", [
      "gzip",
    ]);
    assert.equal(h.get("content-type"), "application/json");
    assert.equal(h.get("content-encoding"), null);
    assert.equal(h.get("connect-content-encoding"), null);
    assert.equal(h.get("accept-encoding"), "gzip");
    assert.equal(h.get("connect-timeout-ms"), null);
  });

  it("gRPC: te trailers, grpc-timeout, grpc-encoding; none when off", () => {
    const h = grpcHeader(new Headers({ "x-user": "1" }), "proto", 2, null, []);
    assert.equal(h.get("content-type"), "application/grpc+proto");
    assert.equal(h.get("te"), "trailers");
    assert.equal(h.get("grpc-timeout"), "2000u");
    assert.equal(h.get("grpc-encoding"), null);
    assert.equal(h.get("grpc-accept-encoding"), null);
    assert.equal(h.get("x-user"), "1");
  });

  it("gRPC-Web: x-grpc-web instead of te", () => {
    const h = grpcWebHeader(new Headers(), "json", undefined, "deflate", [
      "gzip",
    ]);
    assert.equal(h.get("content-type"), "application/grpc-web+json");
    assert.equal(h.get("x-grpc-web"), "1");
    assert.equal(h.get("te"), null);
    assert.equal(h.get("grpc-encoding"), "deflate");
    assert.equal(h.get("grpc-accept-encoding"), "gzip");
  });
});

describe("validate_response", () => {
  const connectOk = { "content-type": "application/connect+proto" };
  it("Connect streaming: 200 with the codec's type and an accepted encoding", () => {
    const ok = validateConnect(
      response(200, { ...connectOk, "connect-content-encoding": "gzip" }),
      "proto",
      ["gzip"],
    );
    assert.equal(ok.compression, "gzip");
    assert.equal(ok.status, undefined);
  });

  it("Connect streaming: wrong status, type or encoding is an error", () => {
    assert.equal(
      code(() => validateConnect(response(404, connectOk), "proto", [])),
      Code.Unimplemented,
    );
    assert.equal(
      code(() =>
        validateConnect(
          response(200, { "content-type": "application/connect+json" }),
          "proto",
          [],
        )
      ),
      Code.Internal,
    );
    assert.equal(
      code(() =>
        validateConnect(
          response(200, { ...connectOk, "connect-content-encoding": "br" }),
          "proto",
          ["gzip"],
        )
      ),
      Code.Internal,
    );
  });

  it("Connect unary: the message, trailers from trailer- headers", async () => {
    const read = await readUnaryResponse(
      response(
        200,
        { "content-type": "application/proto", "trailer-x-t": "v" },
        new Uint8Array([8, 1]),
      ),
      "proto",
      [],
      100,
    );
    assert.deepEqual(read.data, new Uint8Array([8, 1]));
    assert.equal(read.status.error, undefined);
    assert.equal(read.status.trailers.get("x-t"), "v");
  });

  it("Connect unary: an error JSON with a mapped status", async () => {
    const read = await readUnaryResponse(
      response(
        429,
        { "content-type": "application/json" },
        new TextEncoder().encode('{"code":"resource_exhausted","message":"m"}'),
      ),
      "proto",
      [],
      100,
    );
    assert.equal(read.status.error?.code, Code.ResourceExhausted);
    assert.equal(read.status.error?.rawMessage, "m");
  });

  it("Connect unary: a body over maxMessageBytes is RESOURCE_EXHAUSTED", async () => {
    await assert.rejects(
      readUnaryResponse(
        response(
          200,
          { "content-type": "application/proto" },
          new Uint8Array(101),
        ),
        "proto",
        [],
        100,
      ),
      (error: RpcError) => error.code === Code.ResourceExhausted,
    );
  });

  it("gRPC: Trailers-Only carries the status", () => {
    const r = validateGrpc(
      response(200, { "grpc-status": "5", "grpc-message": "gone" }),
      "proto",
      [],
    );
    assert.equal(r.status?.error?.code, Code.NotFound);
  });

  it("gRPC: a content type that is not gRPC's is UNKNOWN (HTTP 200's code), gRPC's of another codec INTERNAL; missing grpc-status in trailers is null", () => {
    assert.equal(
      code(() =>
        validateGrpc(
          response(200, { "content-type": "text/html" }),
          "proto",
          [],
        )
      ),
      Code.Unknown,
    );
    assert.equal(
      code(() =>
        validateGrpc(
          response(200, { "content-type": "application/grpc+json" }),
          "proto",
          [],
        )
      ),
      Code.Internal,
    );
    assert.equal(readTrailers(new Headers()), null);
    assert.equal(
      readTrailers(new Headers({ "grpc-status": "0" }))?.error,
      undefined,
    );
  });

  it("gRPC-Web: HTTP status first, then Trailers-Only, then content type", () => {
    assert.equal(
      code(() =>
        validateGrpcWeb(response(503, { "grpc-status": "0" }), "proto", [])
      ),
      Code.Unavailable,
    );
    const r = validateGrpcWeb(
      response(200, {
        "content-type": "application/grpc-web+proto",
        "grpc-encoding": "gzip",
      }),
      "proto",
      ["gzip"],
    );
    assert.equal(r.compression, "gzip");
  });

  it("gRPC-Web: a trailer frame without grpc-status is INTERNAL", () => {
    assert.equal(
      code(() => decodeEnd(new TextEncoder().encode("x-a: b\r\n"))),
      Code.Internal,
    );
    const ok = decodeEnd(new TextEncoder().encode("grpc-status: 0\r\n"));
    assert.equal(ok.error, undefined);
  });
});

describe("FrameEncoderStream.push", () => {
  it("encodes like the writable, in order with it", async () => {
    const encoder = new FrameEncoderStream();
    const writer = encoder.writable.getWriter();
    encoder.push({ flags: 0, data: new Uint8Array([1]) });
    encoder.push({ flags: 1, data: new Uint8Array([2, 3]) });
    const closed = writer.close();
    const chunks = await Array.fromAsync(encoder.readable);
    await closed;
    const bytes = chunks.flatMap((c) => [...c]);
    assert.deepEqual(bytes, [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 2, 2, 3]);
  });

  it("a frame over maxMessageBytes throws and errors the writable", async () => {
    const encoder = new FrameEncoderStream({ maxMessageBytes: 1 });
    const writer = encoder.writable.getWriter();
    assert.throws(
      () => encoder.push({ flags: 0, data: new Uint8Array(2) }),
      (error: RpcError) => error.code === Code.ResourceExhausted,
    );
    await assert.rejects(writer.closed);
  });

  it("returns a promise under back-pressure that settles once read", async () => {
    const encoder = new FrameEncoderStream({ maxQueueBytes: 10 });
    const writer = encoder.writable.getWriter();
    const waiting = encoder.push({ flags: 0, data: new Uint8Array(20) });
    assert.ok(waiting instanceof Promise);
    const reader = encoder.readable.getReader();
    await reader.read();
    await waiting;
    writer.releaseLock();
    reader.releaseLock();
  });
});
