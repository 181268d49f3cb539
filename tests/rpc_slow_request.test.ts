// A client that trickles a request message (a byte every so often) restarts
// the idle timeout at every byte: before, such calls were held for ever, and
// a few hundred of them kept `serve` at its maxConcurrentRequests (503 for
// everyone else). A message begun must now go on arriving at
// minBytesPerSecond over minRateWindowMs of waiting, on every protocol and
// both server paths (a fused handler's and the stream of requests); a stream
// that pauses between whole messages is bounded by idleTimeoutMs alone.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  createUniversalHandler,
  defineService,
  implementService,
  Int64Value,
} from "../lib/rpc/mod.ts";
import { ScanStream } from "../lib/streams/mod.ts";
import { deadline } from "./_helpers.ts";
import { encodeFrame } from "../lib/rpc/wire/_frame.ts";

const Svc = defineService("test.v1.Slow", {
  double: { kind: "unary", input: Int64Value, output: Int64Value },
  echo: { kind: "bidi", input: Int64Value, output: Int64Value },
  scan: { kind: "bidi", input: Int64Value, output: Int64Value },
});

let aborted = 0;
const handler = createUniversalHandler(
  implementService(Svc, {
    double: (value) => value * 2n,
    echo: async function* (values, context) {
      context.signal.addEventListener("abort", () => aborted++);
      for await (const value of values) yield value;
    },
    // A fused handler: its requests take the synchronous path.
    scan: () => new ScanStream((a: bigint, b: bigint) => a + b, 0n),
  }),
  { minBytesPerSecond: 1024, minRateWindowMs: 300, idleTimeoutMs: 5_000 },
);

/** An uncompressed envelope of `data`, by the library's frame encoder. */
const frame = (data: Uint8Array) => encodeFrame({ flags: 0, data });

/** Int64Value { value: n } for a small n. */
const int64 = (n: number) => new Uint8Array([8, n]);

/**
 * A body that sends `pieces`, each `gapMs` after the one before, then
 * stays open (a stream the client has not ended) unless `close`.
 */
function paced(
  pieces: Uint8Array[],
  gapMs: number,
  close = false,
): ReadableStream<Uint8Array> {
  let i = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  return new ReadableStream({
    async pull(controller) {
      if (i === pieces.length) {
        if (close) controller.close();
        return;
      }
      if (i > 0) {
        await new Promise((resolve) => timer = setTimeout(resolve, gapMs));
      }
      controller.enqueue(pieces[i++]);
    },
    cancel() {
      clearTimeout(timer);
    },
  }, { highWaterMark: 0 });
}

/** Each byte of `bytes` as a piece of its own. */
const byteByByte = (bytes: Uint8Array) =>
  [...bytes].map((b) => Uint8Array.of(b));

async function call(
  method: string,
  type: string,
  body: ReadableStream<Uint8Array>,
): Promise<{ status: number; text: string; headers: Headers }> {
  const response = await handler({
    method: "POST",
    url: `http://x/test.v1.Slow/${method}`,
    headers: new Headers({ "content-type": type }),
    body,
  });
  const bytes = response.body
    ? new Uint8Array(await new Response(response.body).arrayBuffer())
    : new Uint8Array();
  return {
    status: response.status,
    text: new TextDecoder().decode(bytes),
    headers: response.headers,
  };
}

const SLOW =
  /fewer than 1024 bytes per second arrived over 300 ms while a message was incomplete \(minBytesPerSecond\)/;

describe("a request message that trickles in", () => {
  for (const method of ["echo", "scan"]) {
    it(`fails DEADLINE_EXCEEDED over gRPC-Web (${method}: ${method === "scan" ? "a fused handler" : "a stream of requests"}), once the message began`, async () => {
      // A whole message, then one that trickles: 1 byte every 40 ms.
      const body = paced(
        [frame(int64(1)), ...byteByByte(frame(new Uint8Array(100)))],
        40,
      );
      const started = performance.now();
      const r = await deadline(
        call(method, "application/grpc-web+proto", body),
        10_000,
        "the call",
      );
      const took = performance.now() - started;
      assert.equal(r.status, 200);
      assert.match(r.text, /grpc-status: ?4\r\n/);
      assert.match(decodeURIComponent(r.text), SLOW);
      // Within a few windows, far before the trickle's 4 s.
      assert.ok(took < 3_000, `took ${took.toFixed(0)} ms`);
      if (method === "echo") assert.ok(aborted > 0, "the handler's signal");
    });
  }

  it("fails a Connect unary body that trickles (the whole body is the message)", async () => {
    const r = await deadline(
      call(
        "double",
        "application/proto",
        paced(byteByByte(new Uint8Array(200)), 40, true),
      ),
      10_000,
      "the call",
    );
    assert.equal(r.status, 504);
    assert.match(JSON.parse(r.text).message, SLOW);
    assert.equal(JSON.parse(r.text).code, "deadline_exceeded");
  });

  it("does not count the wait before a Connect unary body's first byte (the body had not begun)", async () => {
    // A whole body 600 ms after the call began (two windows).
    const late = new ReadableStream<Uint8Array>({
      async pull(controller) {
        await new Promise((resolve) => setTimeout(resolve, 600));
        controller.enqueue(int64(21));
        controller.close();
      },
    }, { highWaterMark: 0 });
    const r = await deadline(
      call("double", "application/proto", late),
      10_000,
      "the call",
    );
    assert.equal(r.status, 200, r.text);
  });

  it("leaves alone a stream that pauses between whole messages, and a slow message above the rate", async () => {
    // Whole messages 500 ms apart (past the window, within idleTimeoutMs).
    const pauses = await deadline(
      call(
        "echo",
        "application/grpc-web+proto",
        paced([frame(int64(1)), frame(int64(2)), frame(int64(3))], 500, true),
      ),
      10_000,
      "pauses",
    );
    assert.match(pauses.text, /grpc-status: ?0\r\n/);
    // 4 KiB in 64-byte pieces every 20 ms: 3,200 B/s, above 1,024.
    const big = frame(new Uint8Array(4096));
    const pieces: Uint8Array[] = [];
    for (let i = 0; i < big.byteLength; i += 64) {
      pieces.push(big.subarray(i, i + 64));
    }
    const steady = await deadline(
      call("echo", "application/grpc-web+proto", paced(pieces, 20, true)),
      10_000,
      "steady",
    );
    // Not a message the codec reads (4 KiB of zeros is no Int64Value), but
    // it arrived: INVALID_ARGUMENT, not DEADLINE_EXCEEDED.
    assert.doesNotMatch(decodeURIComponent(steady.text), SLOW);
  });
});
