// Fuzzing the RPC wire layer: arbitrary bytes and arbitrary chunk splits
// through every decoder and parser (the heads of RPC over WebSocket too).
// Each either gives the right values or fails with its documented error
// (RpcError with a code, or SyntaxError): never a hang, never an engine
// error, never a buffer over its limit. And the server as a whole: any
// request of the three protocols gets a whole response of its protocol,
// ending in a status; and its fast paths (fused operators, burst reads)
// answer as plain web streams do, in process and over the loopback.
// Cases per property: tests/_fuzz.ts (SLUICE_FUZZ_RUNS for a long run);
// the counts go to .tmp/fuzz/rpc.<runtime>.json.

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  Code,
  createClient,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  createRpcHandler,
  createUniversalHandler,
  createUniversalHandlerClient,
  createWebSocketTransport,
  defineService,
  FrameDecoder,
  type HandlerContext,
  type HttpClient,
  implementService,
  Int64Value,
  RpcError,
  type UniversalHandler,
} from "../lib/rpc/mod.ts";
import { MapStream, reduce, ScanStream } from "../lib/streams/mod.ts";
import { addInt64 } from "../examples/streaming_calc.ts";
import { MessageDecoderStream } from "../lib/rpc/wire/_message_decoder.ts";
import { compressMessage } from "../lib/rpc/protocol/_compression.ts";
import {
  Base64Decoder,
  decodeBase64,
  encodeBase64,
} from "../lib/_internal/base64.ts";
import { decodeStatus, encodeStatus } from "../lib/rpc/wire/_status_proto.ts";
import { parseTimeout as parseGrpcTimeout } from "../lib/rpc/protocol_grpc/headers.ts";
import { parseTimeout as parseConnectTimeout } from "../lib/rpc/protocol_connect/headers.ts";
import {
  decodeMessage,
  readStatus,
} from "../lib/rpc/protocol_grpc/trailers.ts";
import { decodeTrailerBlock } from "../lib/rpc/protocol_grpc_web/trailers.ts";
import {
  decodeEndStream,
  encodeEndStreamFrame,
} from "../lib/rpc/protocol_connect/end_stream.ts";
import {
  bodyAfterHead,
  encodeRequestHead,
  headersOf,
  MAX_HEAD_BYTES,
  readHead,
} from "../lib/rpc/protocol_websocket/_head.ts";
import { serveWebSocketCall } from "../lib/rpc/protocol_websocket/serve_socket.ts";
import { FakeWebSocket } from "./_fake_websocket.ts";
import { DuplexStream } from "../lib/streams/duplex_stream.ts";
import {
  createHttp2Client,
  type Http2Server,
  serveHttp2,
} from "../lib/runtime/grpc_node.ts";
import { serve, type Server } from "../lib/runtime/serve.ts";
import { createWebSocketRpcHandler } from "../lib/runtime/websocket.ts";
import { compressedBound } from "../lib/_internal/limits.ts";
import {
  anyBytes,
  assertNotForeign,
  concat,
  cuts,
  FuzzRecord,
  split,
} from "./_fuzz.ts";

const record = new FuzzRecord("rpc");
after(() => record.save());

const MIN = -(1n << 63n);
const MAX = (1n << 63n) - 1n;
const enc = new TextEncoder();

function prefix(flags: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + data.byteLength);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.byteLength);
  out.set(data, 5);
  return out;
}

/** The frames of `bytes` by the book, for comparison. */
function reference(bytes: Uint8Array, max: number) {
  const frames: { flags: number; data: number[] }[] = [];
  let at = 0;
  while (bytes.byteLength - at >= 5) {
    const length = new DataView(bytes.buffer, bytes.byteOffset)
      .getUint32(at + 1);
    // A compressed frame's limit is its message's once decompressed: the
    // frame itself may take compression's worst case more.
    const limit = bytes[at] & 1 ? compressedBound(max) : max;
    if (length > limit) return { frames, outcome: "too-long" as const };
    if (bytes.byteLength - at - 5 < length) {
      return { frames, outcome: "partial" as const };
    }
    frames.push({
      flags: bytes[at],
      data: [...bytes.subarray(at + 5, at + 5 + length)],
    });
    at += 5 + length;
  }
  return {
    frames,
    outcome: at === bytes.byteLength ? "ok" as const : "partial" as const,
  };
}

/** Well-formed frames, then arbitrary junk (often none). */
const framedBytes = fc.tuple(
  fc.array(
    fc.record({
      flags: fc.nat({ max: 255 }),
      data: fc.uint8Array({ maxLength: 40 }),
    }),
    { maxLength: 6 },
  ),
  fc.oneof(
    fc.constant(new Uint8Array(0)),
    anyBytes(12),
    // A header that claims more than any limit.
    fc.nat({ max: 255 }).map((f) =>
      Uint8Array.from([f, 0xff, 0xff, 0xff, 0xff])
    ),
  ),
).map(([frames, junk]) =>
  concat([...frames.map((f) => prefix(f.flags, f.data)), junk])
);

const limits = fc.oneof(
  fc.nat({ max: 64 }),
  fc.constant(4 * 1024 * 1024),
);

describe("fuzz: FrameDecoder", () => {
  it("FrameDecoder gives the frames of the whole input under any split, or a documented RpcError", () => {
    record.check(
      "FrameDecoder: arbitrary bytes, arbitrary splits",
      fc.property(
        fc.oneof(anyBytes(), framedBytes),
        cuts,
        limits,
        (bytes, points, max) => {
          const want = reference(bytes, max);
          const decoder = new FrameDecoder({ maxMessageBytes: max });
          const got: { flags: number; data: number[] }[] = [];
          let failure: unknown;
          try {
            for (const chunk of split(bytes, points)) {
              for (const frame of decoder.decode(chunk)) {
                assert.ok(
                  frame.data.byteLength <=
                    (frame.flags & 1 ? compressedBound(max) : max),
                  "frame over the limit",
                );
                got.push({ flags: frame.flags, data: [...frame.data] });
              }
            }
            decoder.finish();
          } catch (error) {
            failure = error;
          }
          if (want.outcome === "ok") {
            assert.deepEqual(got, want.frames);
            assert.equal(failure, undefined);
            return;
          }
          // The frames of the chunk that failed are not returned.
          assert.deepEqual(got, want.frames.slice(0, got.length));
          assertNotForeign(failure);
          assert.ok(failure instanceof RpcError, String(failure));
          assert.equal(
            failure.code,
            want.outcome === "too-long"
              ? Code.ResourceExhausted
              : Code.InvalidArgument,
          );
        },
      ),
      2000,
    );
  });

  it("FrameDecoder refuses a huge length prefix before allocating, whatever the split", () => {
    record.check(
      "FrameDecoder: huge lengths refused before allocating",
      fc.property(
        fc.integer({ min: 4 * 1024 * 1024 + 1, max: 0xffffffff }),
        fc.nat({ max: 4 }),
        (length, cut) => {
          const header = new Uint8Array(5);
          new DataView(header.buffer).setUint32(1, length);
          const decoder = new FrameDecoder();
          const before = process.memoryUsage().arrayBuffers;
          assert.throws(
            () => {
              decoder.decode(header.subarray(0, cut));
              decoder.decode(header.subarray(cut));
            },
            (e: unknown) =>
              e instanceof RpcError && e.code === Code.ResourceExhausted,
          );
          // Nothing near the claimed size was allocated (a margin for
          // unrelated buffers of the runtime).
          const grown = process.memoryUsage().arrayBuffers - before;
          assert.ok(grown < 1024 * 1024, `arrayBuffers grew ${grown} bytes`);
        },
      ),
      300,
    );
  });
});

/** A frame plan: what each frame of a body holds. */
const messagePlan = fc.array(
  fc.oneof(
    fc.record({
      kind: fc.constant("int64" as const),
      value: fc.bigInt({ min: MIN, max: MAX }),
    }),
    fc.record({
      kind: fc.constant("gzip" as const),
      value: fc.bigInt({ min: MIN, max: MAX }),
    }),
    fc.record({
      kind: fc.constant("raw" as const),
      flags: fc.nat({ max: 255 }),
      data: anyBytes(24),
    }),
    fc.record({ kind: fc.constant("end" as const), data: anyBytes(24) }),
    fc.record({
      kind: fc.constant("end-json" as const),
      json: fc.jsonValue({ maxDepth: 3 }),
    }),
    fc.record({ kind: fc.constant("end-ok" as const) }),
  ),
  { maxLength: 6 },
);

type Plan = typeof messagePlan extends fc.Arbitrary<infer T> ? T : never;

interface Flavour {
  name: string;
  codec: "proto" | "json";
  errorCode: Code;
  endFlag?: number;
  onEnd?: (data: Uint8Array) => void;
  endOk: () => Uint8Array;
}

const flavours: Flavour[] = [
  {
    name: "server (gRPC, proto, gzip)",
    codec: "proto",
    errorCode: Code.InvalidArgument,
    endOk: () => new Uint8Array(0),
  },
  {
    name: "Connect client (json, EndStreamResponse)",
    codec: "json",
    errorCode: Code.Internal,
    endFlag: 0x02,
    onEnd: (data) => void decodeEndStream(data),
    endOk: () =>
      encodeEndStreamFrame({ error: undefined, trailers: new Headers() })
        .subarray(5),
  },
  {
    name: "gRPC-Web client (proto, trailer frame)",
    codec: "proto",
    errorCode: Code.Internal,
    endFlag: 0x80,
    onEnd: (data) => {
      const status = readStatus(decodeTrailerBlock(data));
      if (status === null) {
        throw new RpcError(
          Code.Internal,
          "the trailer frame has no grpc-status",
        );
      }
    },
    endOk: () => enc.encode("grpc-status: 0\r\n"),
  },
];

async function planBytes(plan: Plan, flavour: Flavour): Promise<Uint8Array> {
  const codec = flavour.codec === "json" ? Int64Value.json! : Int64Value.proto;
  const parts: Uint8Array[] = [];
  for (const step of plan) {
    switch (step.kind) {
      case "int64":
        parts.push(prefix(0, codec.encode(step.value)));
        break;
      case "gzip":
        parts.push(
          prefix(1, await compressMessage("gzip", codec.encode(step.value))),
        );
        break;
      case "raw":
        parts.push(prefix(step.flags, step.data));
        break;
      case "end":
        parts.push(prefix(flavour.endFlag ?? 0x80, step.data));
        break;
      case "end-json":
        parts.push(
          prefix(
            flavour.endFlag ?? 0x80,
            enc.encode(JSON.stringify(step.json)),
          ),
        );
        break;
      case "end-ok":
        parts.push(prefix(flavour.endFlag ?? 0x80, flavour.endOk()));
        break;
    }
  }
  return concat(parts);
}

async function decodeAll(
  chunks: Uint8Array[],
  flavour: Flavour,
  batchBytes?: number,
) {
  const stream = ReadableStream.from(chunks).pipeThrough(
    new MessageDecoderStream<bigint>({
      batchBytes,
      codec: flavour.codec === "json" ? Int64Value.json! : Int64Value.proto,
      typeName: "google.protobuf.Int64Value",
      maxMessageBytes: 64,
      compression: "gzip",
      errorCode: flavour.errorCode,
      endFlag: flavour.endFlag,
      onEnd: flavour.onEnd,
    }),
  );
  const values: bigint[] = [];
  try {
    for await (const value of stream) {
      assert.equal(typeof value, "bigint");
      assert.ok(value >= MIN && value <= MAX);
      values.push(value);
    }
    return { values, error: undefined };
  } catch (error) {
    return { values, error };
  }
}

describe("fuzz: message decoding (framing, gzip, codec, end of stream)", () => {
  for (const flavour of flavours) {
    it(`MessageDecoderStream ${flavour.name}: any body, any split, values or an RpcError`, async () => {
      await record.checkAsync(
        `MessageDecoderStream ${flavour.name}`,
        fc.asyncProperty(
          fc.oneof(
            { weight: 3, arbitrary: messagePlan.map((p) => ({ plan: p })) },
            { weight: 1, arbitrary: anyBytes(64).map((b) => ({ bytes: b })) },
          ),
          cuts,
          async (input, points) => {
            const bytes = "bytes" in input
              ? input.bytes
              : await planBytes(input.plan, flavour);
            const whole = await decodeAll([bytes], flavour);
            const parts = await decodeAll(split(bytes, points), flavour);
            // Each gzip message handed over alone, the rest of its chunk
            // held back: the same values, and the same error, if any.
            const held = await decodeAll(split(bytes, points), flavour, 1);
            assert.deepEqual(held.values, parts.values);
            assert.equal(
              (held.error as Error | undefined)?.message,
              (parts.error as Error | undefined)?.message,
            );
            for (const outcome of [whole, parts]) {
              if (outcome.error === undefined) continue;
              assertNotForeign(outcome.error);
              assert.ok(
                outcome.error instanceof RpcError,
                `not an RpcError: ${outcome.error}`,
              );
              assert.ok(
                [flavour.errorCode, Code.ResourceExhausted].includes(
                  outcome.error.code,
                ),
                `code ${outcome.error.code}: ${outcome.error.message}`,
              );
            }
            // The split changes where an error is noticed, never whether.
            assert.equal(whole.error === undefined, parts.error === undefined);
            if (whole.error === undefined) {
              assert.deepEqual(parts.values, whole.values);
            }
            if (
              "plan" in input && !input.plan.some((s) => s.kind !== "int64")
            ) {
              // Well-formed: exactly the values sent.
              assert.deepEqual(
                parts.values,
                input.plan.map((s) => (s as { value: bigint }).value),
              );
            }
          },
        ),
        1000,
      );
    });
  }
});

describe("fuzz: Int64Value codecs", () => {
  it("Int64Value.proto.decode of arbitrary bytes gives an int64 or a SyntaxError", () => {
    record.check(
      "Int64Value.proto.decode: arbitrary bytes",
      fc.property(anyBytes(64), (bytes) => {
        try {
          const value = Int64Value.proto.decode(bytes);
          assert.equal(typeof value, "bigint");
          assert.ok(value >= MIN && value <= MAX);
        } catch (error) {
          assertNotForeign(error);
          assert.ok(error instanceof SyntaxError, String(error));
        }
      }),
      5000,
    );
  });

  it("Int64Value.proto.decode finds field 1 among arbitrary well-formed unknown fields", () => {
    const unknown = fc.oneof(
      fc.tuple(
        fc.integer({ min: 2, max: 536870911 }),
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      )
        .map(([f, v]) => ({ field: f, type: 0, v })),
      fc.tuple(
        fc.integer({ min: 2, max: 1000 }),
        fc.uint8Array({ maxLength: 20 }),
      )
        .map(([f, b]) => ({ field: f, type: 2, b })),
      fc.tuple(fc.integer({ min: 2, max: 1000 }), fc.constantFrom(1, 5))
        .map(([f, type]) => ({ field: f, type })),
    );
    record.check(
      "Int64Value.proto.decode: value among unknown fields",
      fc.property(
        fc.array(unknown, { maxLength: 4 }),
        fc.bigInt({ min: MIN, max: MAX }),
        fc.array(unknown, { maxLength: 4 }),
        (before, value, behind) => {
          const field = (
            u: { field: number; type: number; v?: bigint; b?: Uint8Array },
          ) => {
            const tag = varint(BigInt(u.field * 8 + u.type));
            if (u.type === 0) return concat([tag, varint(u.v!)]);
            if (u.type === 2) {
              return concat([tag, varint(BigInt(u.b!.length)), u.b!]);
            }
            return concat([tag, new Uint8Array(u.type === 1 ? 8 : 4)]);
          };
          const bytes = concat([
            ...before.map(field),
            concat([Uint8Array.of(8), varint(BigInt.asUintN(64, value))]),
            ...behind.map(field),
          ]);
          assert.equal(Int64Value.proto.decode(bytes), value);
        },
      ),
      2000,
    );
  });

  it("Int64Value.json.decode of arbitrary text gives an exact int64 or a SyntaxError", () => {
    const text = fc.oneof(
      fc.string({ maxLength: 30 }),
      fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v) ?? ""),
      fc.bigInt({ min: MIN * 4n, max: MAX * 4n }).map((b) => `"${b}"`),
      fc.bigInt({ min: MIN * 4n, max: MAX * 4n }).map((b) => `${b}`),
      fc.double().map((d) => JSON.stringify(d) ?? "null"),
    );
    record.check(
      "Int64Value.json.decode: arbitrary text",
      fc.property(
        fc.oneof(text.map((t) => enc.encode(t)), anyBytes(32)),
        (bytes) => {
          let want: bigint | undefined;
          try {
            const json = JSON.parse(
              new TextDecoder("utf-8", { fatal: true }).decode(bytes),
            );
            if (typeof json === "string" && /^-?[0-9]+$/.test(json)) {
              const b = BigInt(json);
              if (b >= MIN && b <= MAX) want = b;
            } else if (typeof json === "number" && Number.isSafeInteger(json)) {
              want = BigInt(json);
            }
          } catch {
            // not JSON: want stays undefined
          }
          try {
            const value = Int64Value.json!.decode(bytes);
            assert.equal(value, want);
          } catch (error) {
            assertNotForeign(error);
            assert.ok(error instanceof SyntaxError, String(error));
            assert.equal(want, undefined, `refused ${want}`);
          }
        },
      ),
      5000,
    );
  });
});

function varint(value: bigint): Uint8Array {
  const out: number[] = [];
  while (value > 0x7fn) {
    out.push(Number(value & 0x7fn) | 0x80);
    value >>= 7n;
  }
  out.push(Number(value));
  return Uint8Array.from(out);
}

describe("fuzz: end of stream and trailers", () => {
  it("decodeEndStream of arbitrary bytes or JSON gives a status or RpcError Internal", () => {
    const metadata = fc.dictionary(
      fc.oneof(
        fc.string({ maxLength: 8 }),
        fc.constantFrom("x-a", "grpc-status", "a b", "ü"),
      ),
      fc.oneof(
        fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
        fc.jsonValue({ maxDepth: 1 }),
      ),
      { maxKeys: 3 },
    );
    const error = fc.record({
      code: fc.oneof(
        fc.constantFrom(
          "internal",
          "out_of_range",
          "ok",
          "__proto__",
          "toString",
          "",
        ),
        fc.string({ maxLength: 6 }),
        fc.jsonValue({ maxDepth: 0 }),
      ),
      message: fc.oneof(
        fc.string({ maxLength: 10 }),
        fc.jsonValue({ maxDepth: 0 }),
      ),
      details: fc.oneof(
        fc.array(
          fc.record({
            type: fc.string({ maxLength: 6 }),
            value: fc.oneof(
              fc.base64String({ maxLength: 12 }),
              fc.string({ maxLength: 6 }),
            ),
          }),
          { maxLength: 2 },
        ),
        fc.jsonValue({ maxDepth: 1 }),
      ),
    }, { requiredKeys: [] });
    const body = fc.oneof(
      anyBytes(48),
      fc.record({
        metadata,
        error: fc.oneof(error, fc.jsonValue({ maxDepth: 1 })),
      }, { requiredKeys: [] })
        .map((o) => enc.encode(JSON.stringify(o))),
      fc.jsonValue({ maxDepth: 2 }).map((v) =>
        enc.encode(JSON.stringify(v) ?? "")
      ),
    );
    record.check(
      "decodeEndStream: arbitrary bytes and JSON",
      fc.property(body, (bytes) => {
        try {
          const { error, trailers } = decodeEndStream(bytes);
          assert.ok(trailers instanceof Headers);
          if (error !== undefined) {
            assert.ok(error instanceof RpcError);
            assert.ok(error.code >= 1 && error.code <= 16);
          }
        } catch (e) {
          assertNotForeign(e);
          assert.ok(e instanceof RpcError, String(e));
          assert.equal(e.code, Code.Internal);
        }
      }),
      5000,
    );
  });

  it("decodeTrailerBlock of arbitrary bytes gives headers whose status reads, or RpcError Internal", () => {
    const line = fc.oneof(
      fc.tuple(
        fc.oneof(
          fc.constantFrom(
            "grpc-status",
            "grpc-message",
            "grpc-status-details-bin",
            "x-a",
            "a b",
            "",
          ),
          fc.string({ maxLength: 8 }),
        ),
        fc.oneof(
          fc.constantFrom("0", "3", "17", "-1", "99", "%zz", "CAMSAXg", ""),
          fc.string({ maxLength: 12 }),
        ),
      ).map(([k, v]) => `${k}: ${v}`),
      fc.string({ maxLength: 12 }),
    );
    const block = fc.oneof(
      anyBytes(48),
      fc.array(line, { maxLength: 5 }).chain((lines) =>
        fc.constantFrom("\r\n", "\n").map((eol) =>
          enc.encode(lines.join(eol) + eol)
        )
      ),
    );
    record.check(
      "decodeTrailerBlock + readStatus: arbitrary bytes",
      fc.property(block, (bytes) => {
        let headers: Headers;
        try {
          headers = decodeTrailerBlock(bytes);
        } catch (e) {
          assertNotForeign(e);
          assert.ok(e instanceof RpcError, String(e));
          assert.equal(e.code, Code.Internal);
          return;
        }
        const status = readStatus(headers);
        if (status !== null && status !== undefined) {
          assert.ok(status instanceof RpcError);
          assert.ok(status.code >= 1 && status.code <= 16);
        }
      }),
      5000,
    );
  });

  it("readStatus never throws on arbitrary grpc-status, grpc-message and details", () => {
    const value = fc.string({ maxLength: 24 }).map((s) =>
      // What a Headers value can hold: no NUL, CR or LF, trimmed.
      // deno-lint-ignore no-control-regex
      s.replace(/[\u0000\r\n]/g, "").trim()
    );
    record.check(
      "readStatus: arbitrary header values",
      fc.property(
        fc.oneof(value, fc.integer({ min: -5, max: 120 }).map(String)),
        fc.option(value),
        fc.option(
          fc.oneof(value, fc.uint8Array({ maxLength: 40 }).map(encodeBase64)),
        ),
        (status, message, details) => {
          const headers = new Headers({ "grpc-status": status });
          if (message !== null) headers.set("grpc-message", message);
          if (details !== null) headers.set("grpc-status-details-bin", details);
          const result = readStatus(headers);
          if (result === undefined) {
            // OK: grpc-status is 1*DIGIT (gRPC over HTTP/2), so "0" and
            // "00" both read as 0, as grpc-go and grpc-js parse it.
            assert.match(status, /^0{1,2}$/);
            return;
          }
          assert.ok(result instanceof RpcError);
          assert.ok(result.code >= 1 && result.code <= 16);
        },
      ),
      3000,
    );
  });

  it("grpc-message decoding never throws and round-trips any text", () => {
    record.check(
      "decodeMessage: arbitrary text",
      fc.property(fc.string({ maxLength: 40, unit: "grapheme" }), (text) => {
        decodeMessage(text);
        decodeMessage(encodeURIComponent(text).slice(0, 7));
      }),
      3000,
    );
  });

  it("decodeStatus (grpc-status-details-bin) gives a status or a SyntaxError", () => {
    const status = fc.record({
      code: fc.integer({ min: 1, max: 16 }),
      message: fc.string({ maxLength: 12 }),
      details: fc.array(
        fc.record({
          type: fc.stringMatching(/^[a-z.]{1,12}$/),
          value: fc.uint8Array({ maxLength: 12 }),
        }),
        { maxLength: 2 },
      ),
    });
    record.check(
      "decodeStatus: arbitrary bytes and round trips",
      fc.property(
        fc.oneof(
          anyBytes(48).map((bytes) => ({ bytes, want: undefined })),
          status.map((want) => ({ bytes: encodeStatus(want), want })),
        ),
        ({ bytes, want }) => {
          try {
            const got = decodeStatus(bytes);
            if (want) {
              const plain = (s: typeof got) => ({
                code: s.code,
                message: s.message,
                details: s.details.map((d) => [d.type, [...d.value]]),
              });
              assert.deepEqual(plain(got), plain(want));
            }
          } catch (e) {
            assertNotForeign(e);
            assert.ok(e instanceof SyntaxError, String(e));
            assert.equal(want, undefined);
          }
        },
      ),
      3000,
    );
  });

  it("base64 metadata decoding gives the bytes or a SyntaxError", () => {
    record.check(
      "decodeBase64: arbitrary text",
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 24 }),
          fc.uint8Array({ maxLength: 24 }).map(encodeBase64),
        ),
        (text) => {
          try {
            const bytes = decodeBase64(text);
            assert.ok(bytes instanceof Uint8Array);
          } catch (e) {
            assertNotForeign(e);
            assert.ok(e instanceof SyntaxError, String(e));
          }
        },
      ),
      3000,
    );
  });
});

describe("fuzz: timeout headers", () => {
  const grpcUnits: Record<string, number> = {
    H: 3_600_000,
    M: 60_000,
    S: 1_000,
    m: 1,
    u: 0.001,
    n: 0.000_001,
  };

  it("grpc-timeout parses exactly 1-8 digits and a unit, anything else is RpcError InvalidArgument", () => {
    const valid = fc.tuple(
      fc.stringMatching(/^[0-9]{1,8}$/),
      fc.constantFrom(...Object.keys(grpcUnits)),
    );
    record.check(
      "grpc-timeout: arbitrary strings",
      fc.property(
        fc.oneof(
          valid.map(([d, u]) => d + u),
          fc.string({ maxLength: 12 }),
          fc.stringMatching(/^[0-9 +\-.eE]{0,11}[HMSmunx ]?$/),
        ),
        (value) => {
          const match = /^([0-9]{1,8})([HMSmun])$/.exec(value);
          try {
            const ms = parseGrpcTimeout(value);
            assert.ok(match, `accepted ${JSON.stringify(value)}`);
            assert.equal(ms, Number(match[1]) * grpcUnits[match[2]]);
            assert.ok(Number.isFinite(ms) && ms! >= 0);
          } catch (e) {
            assertNotForeign(e);
            assert.ok(e instanceof RpcError, String(e));
            assert.equal(e.code, Code.InvalidArgument);
            assert.equal(match, null, `refused ${JSON.stringify(value)}`);
          }
        },
      ),
      5000,
    );
  });

  it("connect-timeout-ms parses exactly 1-10 digits, anything else is RpcError InvalidArgument", () => {
    record.check(
      "connect-timeout-ms: arbitrary strings",
      fc.property(
        fc.oneof(
          fc.stringMatching(/^[0-9]{1,10}$/),
          fc.string({ maxLength: 12 }),
          fc.stringMatching(/^[0-9 +\-.eExX]{0,12}$/),
        ),
        (value) => {
          const ok = /^[0-9]{1,10}$/.test(value);
          try {
            const ms = parseConnectTimeout(value);
            assert.ok(ok, `accepted ${JSON.stringify(value)}`);
            assert.equal(ms, Number(value));
          } catch (e) {
            assertNotForeign(e);
            assert.ok(e instanceof RpcError, String(e));
            assert.equal(e.code, Code.InvalidArgument);
            assert.equal(ok, false, `refused ${JSON.stringify(value)}`);
          }
        },
      ),
      5000,
    );
  });
});

// Inputs the fuzzers found that once escaped as a TypeError from Headers
// (a foreign error that the client then reported as UNAVAILABLE).
describe("fuzz regressions", () => {
  it("decodeTrailerBlock refuses a header name that is not a token with RpcError Internal", () => {
    for (const text of [";: 0\r\n", '[":"]', "a b: c\r\n"]) {
      assert.throws(
        () => decodeTrailerBlock(enc.encode(text)),
        (e: unknown) => e instanceof RpcError && e.code === Code.Internal,
        text,
      );
    }
  });

  it("decodeEndStream refuses metadata that cannot be a header with RpcError Internal", () => {
    for (
      const text of ['{"metadata":{"":[""]}}', '{"metadata":{"a b":["x"]}}']
    ) {
      assert.throws(
        () => decodeEndStream(enc.encode(text)),
        (e: unknown) => e instanceof RpcError && e.code === Code.Internal,
        text,
      );
    }
  });
});

describe("fuzz: WebSocket RPC heads", () => {
  it("readHead and headersOf give the head of any bytes under any split, or RpcError InvalidArgument or ResourceExhausted", async () => {
    // Heads as a client may send them, broken or not, and plain garbage.
    const json = fc.oneof(
      fc.record({
        path: fc.oneof(fc.constant("/StreamingCalcService/sum"), fc.string()),
        headers: fc.oneof(
          fc.array(
            fc.tuple(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 })),
          ),
          fc.array(
            fc.tuple(
              fc.constantFrom("x-a", "content-type"),
              fc.string({ maxLength: 8 }),
            ),
          ),
          fc.anything(),
        ),
      }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
      fc.json(),
      fc.string({ maxLength: 20 }),
    );
    const head = fc.oneof(
      json.map((text) => prefix(0, enc.encode(text))),
      fc.tuple(fc.nat({ max: 255 }), json).map(([flags, text]) =>
        prefix(flags, enc.encode(text))
      ),
      anyBytes(40),
      // A length past the limit, with nothing after it.
      fc.constant(Uint8Array.from([0, 0, 1, 0, 1])),
    );
    await record.checkAsync(
      "WebSocket RPC readHead/headersOf: arbitrary heads and splits",
      fc.asyncProperty(
        head,
        anyBytes(12),
        cuts,
        async (headBytes, after, points) => {
          const bytes = concat([headBytes, after]);
          const want = referenceHead(bytes);
          const duplex = new DuplexStream(
            ReadableStream.from(split(bytes, points)),
            new WritableStream(),
          );
          let got: { headers: [string, string][]; rest: Uint8Array };
          try {
            const { json, rest } = await readHead(
              duplex,
              "read head",
              Code.InvalidArgument,
            );
            const headers = headersOf(json, "read head", Code.InvalidArgument);
            // What follows the head: what readHead read past it, then the rest.
            const body = bodyAfterHead(duplex, rest);
            got = {
              headers: [...headers],
              rest: concat(await Array.fromAsync(body)),
            };
          } catch (error) {
            assertNotForeign(error);
            assert.ok(error instanceof RpcError, String(error));
            assert.equal(want.error, error.code, error.message);
            return;
          }
          assert.equal(want.error, undefined, "accepted a bad head");
          assert.deepEqual(got.headers, want.headers);
          assert.deepEqual(got.rest, want.rest);
        },
      ),
      3000,
    );
  });
});

/** A WebSocket RPC head read by the book from the whole input. */
function referenceHead(bytes: Uint8Array): {
  error?: Code;
  headers?: [string, string][];
  rest?: Uint8Array;
} {
  if (bytes.byteLength < 5) return { error: Code.InvalidArgument };
  if (bytes[0] !== 0) return { error: Code.InvalidArgument };
  const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(1);
  if (length > MAX_HEAD_BYTES) return { error: Code.ResourceExhausted };
  if (bytes.byteLength < 5 + length) return { error: Code.InvalidArgument };
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes.subarray(5, 5 + length)));
  } catch {
    return { error: Code.InvalidArgument };
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return { error: Code.InvalidArgument };
  }
  const list = (json as { headers?: unknown }).headers ?? [];
  if (!Array.isArray(list)) return { error: Code.InvalidArgument };
  const headers = new Headers();
  for (const pair of list) {
    if (
      !Array.isArray(pair) || pair.length !== 2 ||
      typeof pair[0] !== "string" || typeof pair[1] !== "string"
    ) return { error: Code.InvalidArgument };
    try {
      headers.append(pair[0], pair[1]);
    } catch {
      return { error: Code.InvalidArgument };
    }
  }
  return { headers: [...headers], rest: bytes.slice(5 + length) };
}

// ---------- the RPC server under hostile requests ----------

const FuzzService = defineService("FuzzService", {
  echo: {
    kind: "unary",
    input: Int64Value,
    output: Int64Value,
    idempotency: "no-side-effects",
  },
  sum: { kind: "client-streaming", input: Int64Value, output: Int64Value },
  count: { kind: "server-streaming", input: Int64Value, output: Int64Value },
  incrementalSum: { kind: "bidi", input: Int64Value, output: Int64Value },
});

const fuzzService = implementService(FuzzService, {
  echo: (value) => value,
  sum: (values) => reduce(values, addInt64, 0n),
  async *count(n) {
    for (let i = 0n; i < n && i < 5n; i++) yield i;
  },
  incrementalSum: () => new ScanStream(addInt64, 0n),
});

const fuzzHandler = createUniversalHandler(fuzzService, {
  maxMessageBytes: 64,
  acceptCompression: ["gzip"],
});

/** A message: an Int64Value (encoded with the request's codec), or bytes. */
const messageValue = fc.oneof(
  { arbitrary: fc.bigInt({ min: MIN, max: MAX }), weight: 4 },
  { arbitrary: fc.bigInt({ min: -1000n, max: 1000n }), weight: 4 },
  { arbitrary: anyBytes(16), weight: 1 },
);

/** One request a client, honest or not, may send to the RPC server. */
const rpcRequest = fc.record({
  protocol: fc.constantFrom(
    "grpc",
    "grpc-web",
    "connect",
    "connect-unary",
    "connect-get",
    "grpc",
    "grpc-web",
    "connect",
    "connect-unary",
    "connect-get",
    // gRPC-Web's text format: the body in base64, padded segments.
    "grpc-web-text",
    "grpc-web-text",
  ),
  json: fc.boolean(),
  method: fc.constantFrom("echo", "sum", "count", "incrementalSum", "nope"),
  messages: fc.array(
    fc.tuple(
      fc.oneof(
        { arbitrary: fc.constant(0), weight: 12 },
        { arbitrary: fc.constantFrom(1, 2, 0x80, 0x7f), weight: 1 },
      ),
      messageValue,
    ),
    { maxLength: 4 },
  ),
  // Byte edits of the whole body: [at, remove, insert].
  edits: fc.oneof(
    { arbitrary: fc.constant([]), weight: 3 },
    {
      arbitrary: fc.array(fc.tuple(fc.nat(), fc.nat({ max: 6 }), anyBytes(4)), {
        minLength: 1,
        maxLength: 3,
      }),
      weight: 1,
    },
  ),
  headers: fc.array(
    fc.tuple(
      fc.constantFrom(
        "content-type",
        "grpc-timeout",
        "connect-timeout-ms",
        "grpc-encoding",
        "grpc-accept-encoding",
        "connect-content-encoding",
        "connect-accept-encoding",
        "content-encoding",
        "connect-protocol-version",
        "te",
      ),
      fc.oneof(
        fc.constantFrom(
          "gzip",
          "identity",
          "br",
          "1",
          "2",
          "1S",
          "0m",
          "99999999H",
          "application/grpc",
          "application/grpc-web+json",
          "application/connect+proto",
          "application/json; charset=utf-16",
          "trailers",
        ),
        fc.string({ maxLength: 12 }).map((s) =>
          // deno-lint-ignore no-control-regex
          s.replace(/[\u0000\r\n\u0100-\uffff]/g, "")
        ),
      ),
    ),
    { maxLength: 3 },
  ),
  httpMethod: fc.oneof(
    { arbitrary: fc.constant(undefined), weight: 6 },
    {
      arbitrary: fc.constantFrom("GET", "PUT", "DELETE", "OPTIONS"),
      weight: 1,
    },
  ),
  path: fc.oneof(
    { arbitrary: fc.constant(undefined), weight: 6 },
    {
      arbitrary: fc.constantFrom(
        "/",
        "/FuzzService",
        "/FuzzService/",
        "/x/y/z",
      ),
      weight: 1,
    },
  ),
  points: cuts,
});

/** Frames of a response body, and the bytes after the last whole one. */
function framesOf(bytes: Uint8Array): { flags: number; data: Uint8Array }[] {
  const frames: { flags: number; data: Uint8Array }[] = [];
  let at = 0;
  while (at < bytes.byteLength) {
    assert.ok(
      bytes.byteLength - at >= 5,
      "a response ends in a partial prefix",
    );
    const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(
      at + 1,
    );
    assert.ok(bytes.byteLength - at - 5 >= length, "a response ends mid-frame");
    frames.push({
      flags: bytes[at],
      data: bytes.subarray(at + 5, at + 5 + length),
    });
    at += 5 + length;
  }
  return frames;
}

describe("fuzz: the RPC server under hostile requests", () => {
  it("createUniversalHandler answers any request with a whole response of its protocol, ending in a status", async () => {
    let textAnswers = 0;
    await record.checkAsync(
      "createUniversalHandler: arbitrary requests of the three protocols",
      fc.asyncProperty(rpcRequest, async (r) => {
        const codec = r.json ? "json" : "proto";
        const contentType = {
          "grpc": `application/grpc+${codec}`,
          "grpc-web": `application/grpc-web+${codec}`,
          "grpc-web-text": r.json
            ? "application/grpc-web-text+json"
            : "application/grpc-web-text",
          "connect": `application/connect+${codec}`,
          "connect-unary": `application/${codec}`,
          "connect-get": "",
        }[r.protocol];
        const bare = r.protocol === "connect-unary" ||
          r.protocol === "connect-get";
        const encode = (value: bigint | Uint8Array) =>
          value instanceof Uint8Array
            ? value
            : r.json
            ? Int64Value.json!.encode(value)
            : Int64Value.proto.encode(value);
        const text = r.protocol === "grpc-web-text";
        const frames = r.messages.map(([flags, value]) =>
          prefix(flags, encode(value))
        );
        // In text, each message a padded segment of its own (as a client
        // that flushes each one sends it); the edits then break the text.
        let body = bare
          ? encode(r.messages[0]?.[1] ?? new Uint8Array(0))
          : text
          ? enc.encode(frames.map((f) => encodeBase64(f)).join(""))
          : concat(frames);
        for (const [at, remove, insert] of r.edits) {
          const i = at % (body.byteLength + 1);
          body = concat([
            body.subarray(0, i),
            insert,
            body.subarray(i + remove),
          ]);
        }
        const headers = new Headers();
        if (contentType !== "") headers.set("content-type", contentType);
        if (r.protocol === "grpc") headers.set("te", "trailers");
        if (r.protocol.startsWith("connect")) {
          headers.set("connect-protocol-version", "1");
        }
        for (const [name, value] of r.headers) {
          try {
            headers.set(name, value);
          } catch { /* not a header value: left out */ }
        }
        let url = `http://fuzz${r.path ?? `/FuzzService/${r.method}`}`;
        let method = r.httpMethod ?? "POST";
        if (r.protocol === "connect-get") {
          method = r.httpMethod ?? "GET";
          url += `?connect=v1&encoding=${codec}&base64=1&message=${
            encodeBase64(body).replace(/\+/g, "-").replace(/\//g, "_")
          }`;
        }
        const response = await fuzzHandler({
          method,
          url,
          headers,
          body: method === "GET" || method === "HEAD"
            ? null
            : ReadableStream.from(split(body, r.points)),
        });
        assert.ok(response.status >= 200 && response.status <= 599);
        // The whole body is produced: no hang, no error.
        const bytes = response.body
          ? concat(await Array.fromAsync(response.body))
          : new Uint8Array(0);
        const type = response.headers.get("content-type") ?? "";
        if (response.status !== 200) {
          if (type === "application/json") {
            const error = JSON.parse(new TextDecoder().decode(bytes));
            assert.equal(typeof error.code, "string");
          }
          return;
        }
        const served = headers.get("content-type") ?? "";
        if (/^application\/grpc-web-text(\+proto|\+json)?$/.test(served)) {
          // A text request the server reads is answered in text.
          assert.ok(
            type === "" || type.startsWith("application/grpc-web-text+"),
            `a text request answered in ${type}`,
          );
        }
        if (type.startsWith("application/grpc-web")) {
          let body = bytes;
          if (type.startsWith("application/grpc-web-text")) {
            textAnswers++;
            // Padded segments of base64, each chunk the server sent one.
            assert.equal(bytes.byteLength % 4, 0, "text not in groups of 4");
            const decoder = new Base64Decoder();
            body = decoder.push(bytes);
            decoder.finish();
          }
          const frames = framesOf(body);
          const last = frames.at(-1);
          if (last === undefined) {
            // Trailers-only: the status is in the headers.
            assert.match(
              response.headers.get("grpc-status") ?? "",
              /^\d+$/,
              "no status",
            );
            return;
          }
          assert.equal(last.flags, 0x80, "no trailers");
          assert.ok(frames.slice(0, -1).every((f) => f.flags === 0));
          assert.match(
            decodeTrailerBlock(last.data).get("grpc-status") ?? "",
            /^\d+$/,
          );
        } else if (type.startsWith("application/grpc")) {
          const frames = framesOf(bytes);
          assert.ok(frames.every((f) => f.flags === 0));
          const trailers = await response.trailers;
          const status = trailers?.get("grpc-status") ??
            response.headers.get("grpc-status");
          assert.match(status ?? "", /^\d+$/, "no grpc-status");
        } else if (type.startsWith("application/connect")) {
          const frames = framesOf(bytes);
          const last = frames.at(-1);
          assert.ok(last !== undefined && last.flags === 0x02, "no end");
          assert.ok(frames.slice(0, -1).every((f) => f.flags === 0));
          decodeEndStream(last.data);
        } else {
          // Connect unary: the message itself.
          assert.match(type, /^application\/(proto|json)/);
        }
      }),
      1000,
    );
    // Text requests are served (they were 415 once): answered in text.
    assert.ok(textAnswers > 0, "no answer in gRPC-Web text");
  });
});

// ---------- the RPC server over WebSocket under any peer ----------

/** FuzzService as createWebSocketRpcHandler serves it: Connect only. */
const fuzzSocketHandler = createUniversalHandler(fuzzService, {
  maxMessageBytes: 64,
  protocols: ["connect"],
});

/** What a peer of the RPC server sends after the head, and how it ends. */
const socketCall = fc.record({
  head: fc.oneof(
    {
      arbitrary: fc.record({
        method: fc.constantFrom(
          "echo",
          "sum",
          "count",
          "incrementalSum",
          "nope",
        ),
        type: fc.constantFrom(
          "application/connect+proto",
          "application/connect+json",
          "application/proto",
          "text/plain",
        ),
      }).map(({ method, type }) =>
        encodeRequestHead({
          path: `/FuzzService/${method}`,
          headers: new Headers({
            "content-type": type,
            "connect-protocol-version": "1",
          }),
        })
      ),
      weight: 5,
    },
    { arbitrary: anyBytes(24), weight: 1 },
  ),
  frames: fc.array(
    fc.oneof(
      {
        arbitrary: fc.bigInt({ min: -1000n, max: 1000n }).map((v) =>
          prefix(0, Int64Value.proto.encode(v))
        ),
        weight: 5,
      },
      { arbitrary: anyBytes(12), weight: 1 },
      // A frame past the server's maxMessageBytes.
      { arbitrary: fc.constant(prefix(0, new Uint8Array(65))), weight: 1 },
    ),
    { maxLength: 4 },
  ),
  // Where the bytes are cut into messages, and whether some go as text.
  points: cuts,
  text: fc.boolean(),
  end: fc.oneof(
    {
      arbitrary: fc.constantFrom("closeWrite", "close 1000", "close 1006"),
      weight: 6,
    },
    { arbitrary: fc.constant("nothing"), weight: 1 },
  ),
});

describe("fuzz: the RPC server over WebSocket under any peer", () => {
  it("serveWebSocketCall ends every call with a whole response or a close, and never throws in the socket's events", async () => {
    await record.checkAsync(
      "serveWebSocketCall: arbitrary heads, frames, messages and ends",
      fc.asyncProperty(socketCall, async (r) => {
        const socket = new FakeWebSocket();
        const serving = serveWebSocketCall(socket, fuzzSocketHandler, {
          maxBufferedBytes: 256,
          idleTimeoutMs: 200,
        });
        const bytes = concat([r.head, ...r.frames]);
        for (const [i, chunk] of split(bytes, r.points).entries()) {
          if (chunk.byteLength === 0) continue;
          // Text messages are not the protocol's: the server fails the call.
          if (r.text && i === 1) {
            socket.receive(new TextDecoder().decode(chunk));
          } else socket.receive(chunk.slice().buffer);
        }
        if (r.end === "closeWrite") socket.receive(new ArrayBuffer(0));
        else if (r.end !== "nothing") {
          // The peer goes once the server has had its turns.
          await new Promise((resolve) => setTimeout(resolve, 0));
          socket.end(r.end === "close 1000" ? 1000 : 1006, "");
        }
        // Settles, never rejects: on its own, by the head's idle timeout,
        // or once the peer has gone; else the peer's own wait would end it.
        const settled = await Promise.race([
          serving.then(() => "settled"),
          // Past the head's idle timeout for a peer that sends no end;
          // long enough for any other call to end on its own.
          new Promise((resolve) =>
            setTimeout(resolve, r.end === "nothing" ? 300 : 3000, "waiting")
          ),
        ]);
        if (settled === "waiting") {
          // A call still waiting for its requests (no end sent): the peer
          // goes, and the call ends.
          assert.equal(r.end, "nothing");
          socket.end(1006, "");
          await serving;
        }
        // What the server sent: binary messages only, and once it closed its
        // side, the response as over HTTP: a head (status and headers), then
        // the body, Connect frames ending in an end of stream for a
        // streaming call.
        assert.ok(socket.sent.every((m) => m instanceof Uint8Array));
        const sent = socket.sent as Uint8Array[];
        const ended = sent.findIndex((m) => m.byteLength === 0);
        if (ended < 0) {
          // No answer: the server closed the socket (or the peer had gone).
          assert.ok(
            socket.closes > 0 || r.end.startsWith("close") ||
              settled === "waiting",
            "neither an answer nor a close",
          );
          return;
        }
        const answer = concat(sent.slice(0, ended));
        const length = new DataView(answer.buffer).getUint32(1);
        const head = JSON.parse(
          new TextDecoder().decode(answer.subarray(5, 5 + length)),
        );
        assert.equal(typeof head.status, "number");
        const body = answer.subarray(5 + length);
        const type = new Headers(head.headers).get("content-type") ?? "";
        if (type.startsWith("application/connect+")) {
          assert.equal(head.status, 200);
          const frames = framesOf(body);
          const last = frames.at(-1);
          assert.ok(last !== undefined && last.flags === 0x02, "no end");
          decodeEndStream(last.data);
          assert.ok(frames.slice(0, -1).every((f) => f.flags === 0));
        } else if (type === "application/json") {
          assert.notEqual(head.status, 200);
          assert.equal(
            typeof JSON.parse(new TextDecoder().decode(body)).code,
            "string",
          );
        } else if (head.status === 200) {
          // Connect unary: the bare message.
          assert.equal(type, "application/proto");
          Int64Value.proto.decode(body);
        } else {
          assert.ok(head.status >= 400, `status ${head.status}`);
        }
      }),
      500,
    );
  });
});

// ---------- the RPC client against a hostile server ----------

/** One response a server, honest or not, may give to a call. */
const rpcResponse = fc.record({
  protocol: fc.constantFrom("connect", "grpc-web", "grpc"),
  method: fc.constantFrom("echo", "sum", "count", "incrementalSum"),
  // The messages it sends: values, or bytes that may not decode.
  messages: fc.array(
    fc.oneof(
      { arbitrary: fc.bigInt({ min: MIN, max: MAX }), weight: 6 },
      { arbitrary: anyBytes(12), weight: 1 },
    ),
    { maxLength: 3 },
  ),
  // How it ends: the status it gives (0: OK), or garbage, or nothing.
  end: fc.oneof(
    { arbitrary: fc.constant(0), weight: 6 },
    { arbitrary: fc.constantFrom(3, 11, 13, 16, 99), weight: 2 },
    { arbitrary: fc.constant("garbage" as const), weight: 1 },
    { arbitrary: fc.constant("none" as const), weight: 1 },
  ),
  // What else goes wrong: nothing, mostly.
  fault: fc.oneof(
    { arbitrary: fc.constant("none" as const), weight: 8 },
    {
      arbitrary: fc.constantFrom(
        "status 500",
        "status 404",
        "content-type",
        "compressed flag",
        "encoding",
        "drop",
        "status in headers",
      ),
      weight: 3,
    },
  ),
  points: cuts,
});

describe("fuzz: the RPC client against a hostile server", () => {
  it("every call ends with the server's values or an RpcError with a code, never hanging", async () => {
    const codes = new Set<number>(Object.values(Code));
    await record.checkAsync(
      "createClient: calls of every kind against arbitrary responses",
      fc.asyncProperty(rpcResponse, async (r) => {
        const unaryConnect = r.protocol === "connect" && r.method === "echo";
        const encodeValue = (value: bigint | Uint8Array) =>
          value instanceof Uint8Array ? value : Int64Value.proto.encode(value);
        const headers = new Headers({
          "content-type": unaryConnect
            ? "application/proto"
            : `application/${r.protocol}+proto`,
        });
        let body: Uint8Array;
        let trailers = new Headers();
        let status = 200;
        if (unaryConnect) {
          if (r.end === 0) body = encodeValue(r.messages[0] ?? 0n);
          else {
            status = 400;
            headers.set("content-type", "application/json");
            body = enc.encode(
              r.end === "garbage"
                ? "{not json"
                : r.end === "none"
                ? ""
                : JSON.stringify({ code: "invalid_argument", message: "no" }),
            );
          }
        } else {
          const frames = r.messages.map((m) => prefix(0, encodeValue(m)));
          if (r.protocol === "grpc-web" && r.end !== "none") {
            frames.push(prefix(
              0x80,
              enc.encode(
                r.end === "garbage"
                  ? "grpc-status"
                  : `grpc-status: ${r.end}\r\ngrpc-message: m\r\n`,
              ),
            ));
          } else if (r.protocol === "connect" && r.end !== "none") {
            frames.push(prefix(
              0x02,
              enc.encode(
                r.end === "garbage"
                  ? "{"
                  : r.end === 0
                  ? "{}"
                  : JSON.stringify({
                    error: { code: "out_of_range", message: "m" },
                  }),
              ),
            ));
          } else if (r.protocol === "grpc" && r.end !== "none") {
            trailers = new Headers(
              r.end === "garbage"
                ? { "grpc-status": "x" }
                : { "grpc-status": String(r.end), "grpc-message": "m" },
            );
          }
          body = concat(frames);
        }
        let drop = false;
        // A fault that had nothing to act on.
        let noFault = false;
        switch (r.fault) {
          case "status 500":
            status = 500;
            break;
          case "status 404":
            status = 404;
            break;
          case "content-type":
            headers.set("content-type", "text/html");
            break;
          case "compressed flag":
            // On the first frame, when there is one.
            if (body.byteLength > 0 && !unaryConnect) body[0] |= 1;
            else noFault = true;
            break;
          case "encoding":
            headers.set(
              r.protocol === "grpc" || r.protocol === "grpc-web"
                ? "grpc-encoding"
                : unaryConnect
                ? "content-encoding"
                : "connect-content-encoding",
              "br",
            );
            break;
          case "drop":
            drop = true;
            break;
          case "status in headers":
            headers.set("grpc-status", "7");
            break;
        }
        const httpClient: HttpClient = (request) => {
          // The request body is read (and dropped) as a server would.
          if (request.body instanceof ReadableStream) {
            request.body.pipeTo(new WritableStream()).catch(() => {});
          }
          const chunks = split(body, r.points);
          let i = 0;
          return Promise.resolve({
            status,
            headers,
            body: new ReadableStream<Uint8Array>({
              pull(controller) {
                if (i < chunks.length) {
                  controller.enqueue(chunks[i++]);
                  if (drop && i === chunks.length) {
                    controller.error(new TypeError("connection reset"));
                  }
                } else controller.close();
              },
            }),
            trailers: Promise.resolve(trailers),
          });
        };
        const options = { baseUrl: "http://hostile", httpClient };
        const transport = r.protocol === "connect"
          ? createConnectTransport(options)
          : r.protocol === "grpc-web"
          ? createGrpcWebTransport(options)
          : createGrpcTransport(options);
        const client = createClient(FuzzService, transport);
        const got: bigint[] = [];
        let failure: unknown;
        try {
          if (r.method === "echo") got.push(await client.echo(1n));
          else if (r.method === "sum") {
            const call = client.sum();
            call.headers.catch(() => {});
            call.trailers.catch(() => {});
            await call.send(1n).catch(() => {});
            await call.complete().catch(() => {});
            got.push(await call.receive());
          } else {
            let call;
            if (r.method === "count") call = client.count(3n);
            else {
              const bidi = client.incrementalSum();
              await bidi.send(1n).catch(() => {});
              await bidi.complete().catch(() => {});
              call = bidi;
            }
            call.headers.catch(() => {});
            call.trailers.catch(() => {});
            for (
              let m = await call.receive();
              !m.done;
              m = await call.receive()
            ) {
              got.push(m.value);
            }
          }
        } catch (error) {
          failure = error;
        }
        if (failure !== undefined) {
          assertNotForeign(failure);
          assert.ok(failure instanceof RpcError, String(failure));
          assert.ok(codes.has(failure.code) && failure.code !== Code.OK);
          return;
        }
        // A success only as the server said: its values, an OK status.
        for (const value of got) assert.equal(typeof value, "bigint");
        const single = r.method === "echo" || r.method === "sum";
        // The values the messages hold, where their bytes decode (an empty
        // message is 0).
        const sent = (unaryConnect ? [r.messages[0] ?? 0n] : r.messages).map(
          (m) => {
            if (typeof m === "bigint") return m;
            try {
              return Int64Value.proto.decode(m);
            } catch {
              return undefined;
            }
          },
        );
        // A gRPC status among a Connect response's headers means nothing;
        // an encoding header over messages that are not compressed may be
        // taken or refused.
        const fault = noFault ||
            (r.fault === "status in headers" && r.protocol === "connect")
          ? "none"
          : r.fault;
        const honest = (fault === "none" || fault === "encoding") &&
          r.end === 0 &&
          sent.every((m) => m !== undefined) &&
          (!single || sent.length === 1);
        assert.ok(honest, "a broken answer taken for a success");
        assert.deepEqual(got, sent);
      }),
      1000,
    );
  });
});

// ---------- the server's fast paths against plain streams ----------
//
// A bidi handler that returns one of the library's own operators (a
// ScanStream, a MapStream) runs fused into the server's decode -> encode
// loop, and `reduce` and the client's receive() take decoded messages a
// burst at a time (lib/streams/_fuse.ts). The same step written as an
// async generator, a pipeThrough or a TransformStream of the handler's own
// runs through plain web streams. Whatever the step does (sync or async,
// failing at some message, sync or as a rejection), however the bodies are
// split and the client sends and reads, every path answers as the step
// applied in order: its values, then its error's code and message.

const PathService = defineService("PathService", {
  run: { kind: "bidi", input: Int64Value, output: Int64Value },
  fold: { kind: "client-streaming", input: Int64Value, output: Int64Value },
});

/** What the handler's step does, for one case. */
interface PathStep {
  kind: "scan" | "map";
  /** Promise turns before the step's value: 0 for a synchronous step. */
  delay: number;
  /** The call of the step that fails, if any. */
  failAt: number | undefined;
  failAs: "rpc" | "error";
  failHow: "throw" | "reject";
}

/** A fresh step function (its own call count) for one call. */
function pathFunction(plan: PathStep) {
  let n = 0;
  const failure = (i: number) =>
    plan.failAs === "rpc"
      ? new RpcError(Code.FailedPrecondition, `stopped at ${i}`)
      : new TypeError(`failed at ${i}`);
  const run = <T>(compute: () => T): T | Promise<T> => {
    const i = n++;
    if (i === plan.failAt && plan.failHow === "throw") throw failure(i);
    if (plan.delay === 0 && i !== plan.failAt) return compute();
    let turn: Promise<void> = Promise.resolve();
    for (let d = 1; d < plan.delay; d++) turn = turn.then();
    return turn.then(() => {
      if (i === plan.failAt) throw failure(i);
      return compute();
    });
  };
  return {
    scan: (sum: bigint, value: bigint) => run(() => addInt64(sum, value)),
    map: (value: bigint, index: number) =>
      run(() => BigInt.asIntN(64, value * 3n + BigInt(index))),
  };
}

/** The step applied in order, by hand: its values and how it ended. */
async function pathReference(plan: PathStep, values: bigint[]) {
  const step = pathFunction(plan);
  const out: bigint[] = [];
  let sum = 0n;
  try {
    for (const [i, value] of values.entries()) {
      if (plan.kind === "scan") out.push(sum = await step.scan(sum, value));
      else out.push(await step.map(value, i));
    }
  } catch (error) {
    const e = RpcError.from(error);
    return { out, error: { code: e.code, message: e.message } };
  }
  return { out, error: undefined };
}

/** What a call of `r` answers: its step applied in order, by hand. */
async function pathExpected(r: PathCase) {
  if (r.method === "run") return await pathReference(r.step, r.values);
  // A fold is a scan that answers once, with its last sum (0 for no
  // message).
  const scanned = await pathReference({ ...r.step, kind: "scan" }, r.values);
  return {
    out: scanned.error ? [] : [scanned.out.at(-1) ?? 0n],
    error: scanned.error,
  };
}

const pathVariants = ["fused", "generator", "piped", "pair"] as const;
type PathVariant = typeof pathVariants[number];

let pathPlan: PathStep | undefined;

function pathImplementation(variant: PathVariant) {
  return implementService(PathService, {
    run(requests) {
      const plan = pathPlan!;
      const step = pathFunction(plan);
      const operator = () =>
        plan.kind === "scan"
          ? new ScanStream(step.scan, 0n)
          : new MapStream(step.map);
      switch (variant) {
        case "fused":
          return operator();
        case "piped":
          return requests.pipeThrough(operator());
        case "generator":
          return (async function* () {
            let sum = 0n;
            let i = 0;
            for await (const value of requests) {
              yield plan.kind === "scan"
                ? sum = await step.scan(sum, value)
                : await step.map(value, i++);
            }
          })();
        case "pair": {
          let sum = 0n;
          let i = 0;
          return new TransformStream<bigint, bigint>({
            async transform(value, controller) {
              controller.enqueue(
                plan.kind === "scan"
                  ? sum = await step.scan(sum, value)
                  : await step.map(value, i++),
              );
            },
          });
        }
      }
    },
    async fold(requests) {
      // The fold is the scan's last value; `reduce` reads in bursts, the
      // other variants read the stream.
      const plan = pathPlan!;
      const step = pathFunction(plan);
      if (variant === "fused") return await reduce(requests, step.scan, 0n);
      let sum = 0n;
      for await (const value of requests) sum = await step.scan(sum, value);
      return sum;
    },
  });
}

/**
 * Responses offered to gzip whenever the client accepts it (compressMinBytes
 * 0). Int64Value messages grow compressed, so they go as they are: the
 * compressed decode path is exercised by rpc_direct.test.ts's padded sums
 * and rpc_bomb.test.ts.
 */
// The handlers fail on purpose (TypeError "failed at N"): not logged.
const PATH_SERVER_OPTIONS = { compressMinBytes: 0, onError: () => {} };

const pathHandlers = Object.fromEntries(
  pathVariants.map((v) => [
    v,
    createUniversalHandler(pathImplementation(v), PATH_SERVER_OPTIONS),
  ]),
) as Record<PathVariant, UniversalHandler>;

/** Passes each chunk on in pieces cut at `points` (never holds bytes). */
function rechunk(
  body: ReadableStream<Uint8Array>,
  points: number[],
): ReadableStream<Uint8Array> {
  let n = 0;
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        const at = points.length > 0 ? points.slice(n++ % points.length) : [];
        for (const piece of split(chunk, at.slice(0, 3))) {
          if (piece.byteLength > 0) controller.enqueue(piece);
        }
      },
    }),
  );
}

const pathCase = fc.record({
  protocol: fc.constantFrom("connect", "grpc-web", "grpc"),
  codec: fc.constantFrom("proto", "json"),
  method: fc.oneof(
    { arbitrary: fc.constant("run" as const), weight: 4 },
    { arbitrary: fc.constant("fold" as const), weight: 1 },
  ),
  client: fc.constantFrom("lockstep", "pipelined", "streams"),
  // Which messages go gzipped: compression is async, so the fused loop
  // takes its promise paths.
  gzip: fc.constantFrom("none", "requests", "responses", "both"),
  step: fc.record({
    kind: fc.constantFrom("scan", "map"),
    delay: fc.oneof(
      { arbitrary: fc.constant(0), weight: 2 },
      { arbitrary: fc.integer({ min: 1, max: 3 }), weight: 1 },
    ),
    failAt: fc.oneof(
      { arbitrary: fc.constant(undefined), weight: 2 },
      { arbitrary: fc.nat({ max: 6 }), weight: 1 },
    ),
    failAs: fc.constantFrom("rpc", "error"),
    failHow: fc.constantFrom("throw", "reject"),
  }) as fc.Arbitrary<PathStep>,
  values: fc.array(
    fc.oneof(
      { arbitrary: fc.bigInt({ min: -1000n, max: 1000n }), weight: 3 },
      { arbitrary: fc.bigInt({ min: MIN, max: MAX }), weight: 1 },
    ),
    { maxLength: 8 },
  ),
  requestPoints: cuts,
  responsePoints: cuts,
});

type PathCase = typeof pathCase extends fc.Arbitrary<infer T> ? T : never;

/** The variant's server in process, with both bodies cut as `r` says. */
function inProcess(r: PathCase, variant: PathVariant): HttpClient {
  const handler = pathHandlers[variant];
  return createUniversalHandlerClient(async (request) => {
    const response = await handler({
      ...request,
      body: request.body && rechunk(request.body, r.requestPoints),
    });
    return {
      ...response,
      body: rechunk(
        response.body ?? ReadableStream.from<Uint8Array>([]),
        r.responsePoints,
      ),
    };
  });
}

/**
 * One call of `r` against the variant's server, as the client saw it:
 * in process by default, else over `options` (a server's URL, and its
 * HTTP client for node:http2).
 */
async function pathCall(
  r: PathCase,
  variant: PathVariant,
  over?: { baseUrl: string; httpClient?: HttpClient },
) {
  pathPlan = r.step;
  const options = {
    ...(over ?? {
      baseUrl: "http://paths",
      httpClient: inProcess(r, variant),
    }),
    codec: r.codec,
    ...(r.gzip === "requests" || r.gzip === "both"
      ? { sendCompression: "gzip" as const, compressMinBytes: 0 }
      : {}),
    acceptCompression: r.gzip === "responses" || r.gzip === "both"
      ? ["gzip" as const]
      : [],
  };
  const { httpClient } = options;
  if (r.protocol === "grpc" && httpClient === undefined) {
    throw new TypeError("gRPC needs an HTTP/2 client");
  }
  const client = createClient(
    PathService,
    r.protocol === "connect"
      ? createConnectTransport(options)
      : r.protocol === "grpc-web"
      ? createGrpcWebTransport(options)
      : createGrpcTransport({ ...options, httpClient: httpClient! }),
  );
  const out: bigint[] = [];
  const ended = (error: unknown) => {
    assert.ok(error instanceof RpcError, String(error));
    return { out, error: { code: error.code, message: error.message } };
  };
  if (r.method === "fold") {
    const call = client.fold();
    call.headers.catch(() => {});
    call.trailers.catch(() => {});
    try {
      for (const value of r.values) await call.send(value);
      await call.complete();
    } catch { /* the answer says why */ }
    try {
      out.push(await call.receive());
    } catch (error) {
      return ended(error);
    }
    return { out, error: undefined };
  }
  const call = client.run();
  call.headers.catch(() => {});
  call.trailers.catch(() => {});
  try {
    if (r.client === "lockstep") {
      for (const value of r.values) {
        await call.send(value).catch(() => {});
        const m = await call.receive();
        assert.ok(!m.done, "the answer to a request is missing");
        out.push(m.value);
      }
      await call.complete().catch(() => {});
      const last = await call.receive();
      assert.ok(last.done, "an answer that no request asked for");
    } else if (r.client === "pipelined") {
      for (const value of r.values) await call.send(value).catch(() => {});
      await call.complete().catch(() => {});
      for (let m = await call.receive(); !m.done; m = await call.receive()) {
        out.push(m.value);
      }
    } else {
      ReadableStream.from(r.values).pipeTo(call.requests).catch(() => {});
      for await (const value of call.responses) out.push(value);
    }
  } catch (error) {
    return ended(error);
  }
  return { out, error: undefined };
}

describe("fuzz: the RPC server's fast paths against plain streams", () => {
  it("fused operators, burst reads and plain web streams answer alike", async () => {
    await record.checkAsync(
      "the server's fused and burst paths against plain streams",
      fc.asyncProperty(pathCase, async (r) => {
        const expected = await pathExpected(r);
        for (const variant of pathVariants) {
          const got = await pathCall(r, variant);
          const where = `${variant}, ${r.client}`;
          assert.deepEqual(got, expected, where);
        }
      }),
      300,
    );
  });
});

// Over the loopback, the paths the runtime glue adds: node:http2's push
// source and sink on both sides (serveHttp2, createHttp2Client), and a
// fetch server's request body pumped (serve). Fewer cases: a call each.
describe("fuzz: the RPC server's fast paths over the loopback", () => {
  const servers: (Http2Server | Server)[] = [];
  const h2 = {} as Record<PathVariant, string>;
  const h1 = {} as Record<PathVariant, string>;
  after(() => Promise.all(servers.map((s) => s.shutdown())));

  it("node:http2 and a fetch server answer as the step applied in order", async () => {
    for (const variant of pathVariants) {
      const viaHttp2 = await serveHttp2(pathHandlers[variant]);
      const viaFetch = await serve(
        createRpcHandler(pathImplementation(variant), PATH_SERVER_OPTIONS),
        { port: 0 },
      );
      servers.push(viaHttp2, viaFetch);
      h2[variant] = viaHttp2.url.origin;
      h1[variant] = viaFetch.url.origin;
    }
    const http2Clients = new Map<
      string,
      ReturnType<typeof createHttp2Client>
    >();
    try {
      await record.checkAsync(
        "the server's fused and burst paths over node:http2 and fetch",
        fc.asyncProperty(
          pathCase,
          fc.constantFrom("node:http2", "fetch"),
          async (r, over) => {
            // gRPC needs trailers, which fetch does not read.
            if (over === "fetch" && r.protocol === "grpc") {
              r = { ...r, protocol: "grpc-web" };
            }
            const expected = await pathExpected(r);
            for (const variant of pathVariants) {
              let target;
              if (over === "fetch") target = { baseUrl: h1[variant] };
              else {
                const baseUrl = h2[variant];
                let httpClient = http2Clients.get(baseUrl);
                if (httpClient === undefined) {
                  httpClient = createHttp2Client(baseUrl);
                  http2Clients.set(baseUrl, httpClient);
                }
                target = { baseUrl, httpClient };
              }
              const got = await pathCall(r, variant, target);
              assert.deepEqual(
                got,
                expected,
                `${variant}, ${r.client}, ${over}`,
              );
            }
          },
        ),
        300,
      );
    } finally {
      await Promise.all([...http2Clients.values()].map((c) => c.close()));
    }
  });
});

// ---------- metadata and errors end to end ----------

const MetaService = defineService("MetaService", {
  unary: {
    kind: "unary",
    input: Int64Value,
    output: Int64Value,
    idempotency: "no-side-effects",
  },
  fold: { kind: "client-streaming", input: Int64Value, output: Int64Value },
  list: { kind: "server-streaming", input: Int64Value, output: Int64Value },
  run: { kind: "bidi", input: Int64Value, output: Int64Value },
});

/**
 * Header names the protocols own: planted in a handler's response headers,
 * trailers and error metadata.
 */
const PLANTED = [
  "content-type",
  "grpc-status",
  "grpc-message",
  "grpc-status-details-bin",
  "connect-protocol-version",
  "content-encoding",
  "connect-content-encoding",
  "grpc-encoding",
];

/** A planted header's value: grpc-status "0" (an OK status), else junk. */
function plantedValue(name: string): string {
  return name === "grpc-status" ? "0" : `planted-${name}`;
}

/**
 * Request headers the transports own: planted in a call's headers. (A
 * deadline header goes as given: tests/rpc_calls.test.ts.)
 */
const PLANTED_REQUEST = [
  "content-type",
  "content-length",
  "content-encoding",
  "accept-encoding",
  "connect-content-encoding",
  "connect-accept-encoding",
  "grpc-encoding",
  "grpc-accept-encoding",
];

/**
 * Metadata under a prefix of its own (request, header, trailer, error), so
 * that no name is in two of them: printable ASCII values without spaces at
 * either end, or `-bin` values in base64 (padded or not).
 */
function metaList(prefix: string) {
  return fc.array(
    fc.oneof(
      fc.tuple(
        fc.stringMatching(/^[a-z0-9]{1,6}$/).map((n) => `${prefix}${n}`),
        fc.stringMatching(/^[\x21-\x7e]([\x20-\x7e]{0,24}[\x21-\x7e])?$/),
      ),
      fc.tuple(
        fc.stringMatching(/^[a-z0-9]{1,6}$/).map((n) => `${prefix}${n}-bin`),
        // Not empty: Headers joins a name's values with ", ", and an empty
        // one at the end reads back trimmed.
        fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 12 }), fc.boolean())
          .map(([bytes, padded]) => {
            const text = encodeBase64(bytes);
            return padded ? text : text.replace(/=+$/, "");
          }),
      ),
    ),
    { maxLength: 4 },
  );
}

const metaCase = fc.record({
  transport: fc.constantFrom(
    "connect",
    "connect-get",
    "grpc-web",
    "grpc",
    "websocket",
  ),
  over: fc.constantFrom("in process", "loopback"),
  codec: fc.constantFrom("proto", "json"),
  method: fc.constantFrom("unary", "fold", "list", "run"),
  // Messages answered before the end (streaming responses only).
  answers: fc.nat({ max: 3 }),
  request: metaList("x-r-"),
  plantedRequest: fc.subarray(PLANTED_REQUEST),
  plantedHeaders: fc.subarray(PLANTED),
  plantedTrailers: fc.subarray(PLANTED),
  headers: metaList("x-h-"),
  trailers: metaList("x-t-"),
  failure: fc.option(
    fc.record({
      code: fc.integer({ min: 1, max: 16 }),
      // Any text, lone surrogates and all (the status line is cut past
      // 1,024 characters: not here).
      message: fc.string({ unit: "binary", maxLength: 40 }),
      metadata: metaList("x-e-"),
      planted: fc.subarray(PLANTED),
      // Streaming requests: fail before reading them (the client's sends
      // then go to a server that stopped reading).
      early: fc.boolean(),
      details: fc.array(
        fc.record({
          type: fc.stringMatching(
            /^[a-z][a-z0-9_]{0,8}(\.[A-Z][a-z0-9]{0,8})$/,
          ),
          value: anyBytes(12),
        }),
        { maxLength: 2 },
      ),
    }),
    { freq: 3 },
  ),
});

type MetaCase = typeof metaCase extends fc.Arbitrary<infer T> ? T : never;

let metaPlan: MetaCase | undefined;
let metaSeen: Headers | undefined;

/** The case's response: its metadata, `answers` values, then its end. */
function metaRespond(context: HandlerContext): void {
  const plan = metaPlan!;
  metaSeen = context.requestHeaders;
  for (const [k, v] of plan.headers) context.responseHeaders.append(k, v);
  for (const [k, v] of plan.trailers) context.responseTrailers.append(k, v);
  for (const name of plan.plantedHeaders) {
    context.responseHeaders.set(name, plantedValue(name));
  }
  for (const name of plan.plantedTrailers) {
    context.responseTrailers.set(name, plantedValue(name));
  }
}

function metaFailure(): RpcError | undefined {
  const failure = metaPlan!.failure;
  if (failure === null) return undefined;
  const metadata = new Headers(failure.metadata);
  for (const name of failure.planted) metadata.set(name, plantedValue(name));
  return new RpcError(failure.code as Code, failure.message, {
    metadata,
    details: failure.details,
  });
}

const metaImplementation = implementService(MetaService, {
  unary(value, context) {
    metaRespond(context);
    const error = metaFailure();
    if (error) throw error;
    return value;
  },
  async fold(values, context) {
    metaRespond(context);
    if (metaPlan!.failure?.early) throw metaFailure();
    let n = 0n;
    for await (const _ of values) n++;
    const error = metaFailure();
    if (error) throw error;
    return n;
  },
  async *list(value, context) {
    metaRespond(context);
    for (let i = 0; i < metaPlan!.answers; i++) yield value + BigInt(i);
    const error = metaFailure();
    if (error) throw error;
  },
  async *run(values, context) {
    metaRespond(context);
    if (metaPlan!.failure?.early) throw metaFailure();
    for await (const _ of values) { /* read them all */ }
    for (let i = 0; i < metaPlan!.answers; i++) yield BigInt(i);
    const error = metaFailure();
    if (error) throw error;
  },
});

const metaHandler = createUniversalHandler(metaImplementation);

const metaInProcess = createUniversalHandlerClient(metaHandler);

/** What the client saw of a call. */
interface MetaSeen {
  values: bigint[];
  headers?: Headers;
  trailers?: Headers;
  error?: RpcError;
}

/**
 * A call the server fails before reading: waits for its answer, so that
 * the sends go to a server that has stopped reading.
 */
async function answered(r: MetaCase, call: { headers: Promise<Headers> }) {
  if (r.failure?.early) await call.headers.catch(() => {});
}

async function metaCall(
  r: MetaCase,
  loopback: { h1: string; h2: string; h2Client: HttpClient },
): Promise<MetaSeen> {
  const base = r.over === "in process"
    ? { baseUrl: "http://meta", httpClient: metaInProcess }
    : r.transport === "grpc"
    ? { baseUrl: loopback.h2, httpClient: loopback.h2Client }
    : { baseUrl: loopback.h1 };
  const options = { ...base, codec: r.codec };
  const transport = r.transport === "grpc"
    ? createGrpcTransport({ ...options, httpClient: options.httpClient! })
    : r.transport === "grpc-web"
    ? createGrpcWebTransport(options)
    : r.transport === "websocket"
    ? createWebSocketTransport({ baseUrl: loopback.h1, codec: r.codec })
    : createConnectTransport({
      ...options,
      useHttpGet: r.transport === "connect-get",
    });
  const client = createClient(MetaService, transport);
  const seen: MetaSeen = { values: [] };
  const callOptions = {
    headers: [
      ...r.request,
      ...r.plantedRequest.map((name) => [name, `planted-${name}`]),
    ] as [string, string][],
    onHeader: (h: Headers) => void (seen.headers = h),
    onTrailer: (t: Headers) => void (seen.trailers = t),
  };
  try {
    if (r.method === "unary") {
      seen.values.push(await client.unary(7n, callOptions));
    } else if (r.method === "fold") {
      const call = client.fold(callOptions);
      call.headers.catch(() => {});
      call.trailers.catch(() => {});
      await answered(r, call);
      await call.send(1n);
      await call.send(2n);
      await call.complete();
      seen.values.push(await call.receive());
    } else {
      let call;
      if (r.method === "list") call = client.list(7n, callOptions);
      else {
        const bidi = client.run(callOptions);
        bidi.headers.catch(() => {});
        bidi.trailers.catch(() => {});
        await answered(r, bidi);
        await bidi.send(1n);
        await bidi.complete();
        call = bidi;
      }
      call.headers.catch(() => {});
      call.trailers.catch(() => {});
      for await (const value of call.responses) seen.values.push(value);
    }
  } catch (error) {
    assert.ok(error instanceof RpcError, String(error));
    seen.error = error;
  }
  return seen;
}

/** The case's metadata, as Headers built the same way. */
function headersOfList(list: [string, string][]): Headers {
  const headers = new Headers();
  for (const [k, v] of list) headers.append(k, v);
  return headers;
}

/** Each name of `want` has its value in `got`. */
function assertHas(got: Headers | undefined, want: Headers, what: string) {
  want.forEach((value, name) => {
    assert.equal(got?.get(name), value, `${what}: ${name}`);
  });
}

describe("fuzz: metadata and errors end to end", () => {
  it("request and response metadata, and a handler's error (code, any message, details, metadata), arrive as sent on every transport, protocol headers left to the protocol", async () => {
    const rpc = createRpcHandler(metaImplementation);
    const ws = createWebSocketRpcHandler(metaImplementation);
    const h1 = await serve(
      (request) => request.headers.get("upgrade") ? ws(request) : rpc(request),
      { hostname: "127.0.0.1", port: 0 },
    );
    const h2 = await serveHttp2(metaHandler);
    const h2Client = createHttp2Client(h2.url.origin);
    const loopback = {
      h1: h1.url.origin,
      h2: h2.url.origin,
      h2Client,
    };
    try {
      await record.checkAsync(
        "metadata and errors end to end",
        fc.asyncProperty(metaCase, async (r) => {
          // Connect GET is for unary calls, WebSocket over the loopback.
          if (r.transport === "connect-get") r = { ...r, method: "unary" };
          if (r.transport === "websocket") r = { ...r, over: "loopback" };
          metaPlan = r;
          metaSeen = undefined;
          const seen = await metaCall(r, loopback);
          const where = `${r.transport} ${r.over} ${r.method}`;
          // The request's metadata, as the handler saw it.
          assertHas(metaSeen, headersOfList(r.request), `${where} request`);
          // The transport's own headers are its own: planted ones are not
          // sent (the call goes as if they were not there).
          for (const name of r.plantedRequest) {
            const saw = (metaSeen as Headers | undefined)?.get(name);
            assert.notEqual(saw, `planted-${name}`, where);
          }
          assertHas(seen.headers, headersOfList(r.headers), `${where} header`);
          // The protocol headers a handler set were not sent (grpc-status
          // "0" would have shown as an OK status: the outcome, below).
          for (const name of [...r.plantedHeaders, ...r.plantedTrailers]) {
            if (name === "grpc-status") continue;
            for (const got of [seen.headers, seen.trailers]) {
              assert.notEqual(got?.get(name), plantedValue(name), where);
            }
          }
          const trailers = headersOfList(r.trailers);
          const failure = r.failure;
          if (failure === null) {
            assert.equal(seen.error, undefined, where);
            assertHas(seen.trailers, trailers, `${where} trailer`);
            return;
          }
          const error = seen.error;
          assert.ok(error, `${where}: the call did not fail`);
          assert.equal(error.code, failure.code, where);
          // gRPC's status line is UTF-8 (a lone surrogate becomes U+FFFD);
          // Connect's JSON escapes it.
          assert.equal(
            error.rawMessage,
            r.transport === "grpc" || r.transport === "grpc-web"
              ? failure.message.toWellFormed()
              : failure.message,
            where,
          );
          assert.deepEqual(
            error.details.map((d) => [d.type, [...d.value]]),
            failure.details.map((d) => [d.type, [...d.value]]),
            `${where} details`,
          );
          // The handler's trailers, then its error's metadata; both in the
          // error's metadata and in onTrailer's.
          for (const [k, v] of failure.metadata) trailers.append(k, v);
          assertHas(seen.trailers, trailers, `${where} trailer`);
          assertHas(error.metadata, trailers, `${where} error metadata`);
          // The planted protocol headers were not sent as they were.
          for (const name of failure.planted) {
            if (name === "grpc-status") continue;
            for (const got of [seen.headers, seen.trailers, error.metadata]) {
              assert.notEqual(got?.get(name), plantedValue(name), where);
            }
          }
          // Streaming responses: the values answered before the error.
          if (r.method === "list") {
            assert.deepEqual(
              seen.values,
              Array.from({ length: r.answers }, (_, i) => 7n + BigInt(i)),
              where,
            );
          }
        }),
        300,
      );
    } finally {
      await h2Client.close();
      await h2.shutdown();
      await h1.shutdown();
    }
  });
});
