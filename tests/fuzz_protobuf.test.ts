// Fuzzing the protobuf-es entry point on the wire: a service built with
// implementService from generated code (tests/proto/fuzz.proto's Rich: every
// scalar encoding, repeated, nested and recursive messages, an enum, maps, a
// oneof, Timestamp, Duration, Any, Struct, Value, FieldMask, a wrapper) gets
// random, mutated and hostile binary payloads and JSON texts over Connect
// (unary and streaming, binary and JSON), gRPC-Web (on a real server on
// 127.0.0.1) and native gRPC framing (the universal handler, in process).
// Every answer is a successful call or INVALID_ARGUMENT naming the message
// type and the problem; never an engine error, an internal or unknown code,
// or a hang; oversized messages are RESOURCE_EXHAUSTED before they are
// buffered; the server still answers afterwards. Then the same bad input case
// by case (unknown fields, invalid UTF-8, recursion bombs, maxMessageBytes,
// unknown JSON fields, 64-bit integers in JSON), compared with Connect-ES's
// server (connect-node) for the same service where they may differ.
// Cases per property: tests/_fuzz.ts (SLUICE_FUZZ_RUNS for a long run);
// the counts go to .tmp/fuzz/protobuf.<runtime>.json.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  create,
  createRegistry,
  fromBinary,
  type MessageInitShape,
  toBinary,
  toJsonString,
} from "@bufbuild/protobuf";
import {
  anyPack,
  DurationSchema,
  TimestampSchema,
} from "@bufbuild/protobuf/wkt";
import { createMessageType, implementService } from "../lib/protobuf/mod.ts";
import {
  createRpcHandler,
  createUniversalHandler,
  type ServiceImplementation,
} from "../lib/rpc/mod.ts";
import {
  FuzzService,
  Kind,
  type Rich,
  Rich_LeafSchema,
  RichSchema,
} from "./gen/fuzz_pb.ts";
import type { ConnectRouter } from "@connectrpc/connect";
import { anyBytes, assertNotForeign, concat, FuzzRecord } from "./_fuzz.ts";
import { deadline, startServer } from "./_helpers.ts";
import { serveConnectRoutes } from "./_calc_peers.ts";

const record = new FuzzRecord("protobuf");
after(() => record.save());

const TYPE = "sluice.test.fuzz.v1.Rich";
const SERVICE = "sluice.test.fuzz.v1.FuzzService";
/** The server's maxMessageBytes: small, so that oversized input is cheap. */
const LIMIT = 64 * 1024;
const T = 20_000;
const enc = new TextEncoder();
const dec = new TextDecoder();

const registry = createRegistry(
  RichSchema,
  Rich_LeafSchema,
  TimestampSchema,
  DurationSchema,
);

const implementation: ServiceImplementation = implementService(FuzzService, {
  echo: (m) => m,
  async *echoStream(messages) {
    for await (const m of messages) yield m;
  },
  async count(messages) {
    let value = 0n;
    for await (const _ of messages) value++;
    return { value };
  },
}, { registry });

/** The same service served by Connect-ES (connect-node), to compare with. */
const connectFuzzRoutes = (router: ConnectRouter) =>
  router.service(FuzzService, {
    echo: (m) => m,
    async *echoStream(messages) {
      for await (const m of messages) yield m;
    },
    async count(messages) {
      let value = 0n;
      for await (const _ of messages) value++;
      return { value };
    },
  });

/** Native gRPC, in process: the universal handler as serveHttp2 runs it. */
const grpcHandler = createUniversalHandler(implementation, {
  protocols: ["grpc"],
  maxMessageBytes: LIMIT,
});

// ---------------------------------------------------------------------------
// Messages

const int64 = fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n });
const uint64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const leaf = fc.record({
  name: fc.string({ maxLength: 8 }),
  weight: fc.integer(),
});

type RichInit = MessageInitShape<typeof RichSchema>;

const richInit: fc.Arbitrary<RichInit> = fc.letrec<{ rich: RichInit }>(
  (tie) => ({
    rich: fc.record({
      text: fc.string({ unit: "grapheme", maxLength: 12 }),
      data: fc.uint8Array({ maxLength: 12 }),
      i32: fc.integer(),
      i64: int64,
      u64: uint64,
      s64: int64,
      f64: uint64,
      sf32: fc.integer(),
      real: fc.double(),
      single: fc.float().map(Math.fround),
      flag: fc.boolean(),
      kind: fc.constantFrom(Kind.UNSPECIFIED, Kind.LEAF, Kind.BRANCH, 7),
      packed: fc.array(int64, { maxLength: 4 }),
      names: fc.array(fc.string({ maxLength: 6 }), { maxLength: 3 }),
      leaves: fc.array(leaf, { maxLength: 3 }),
      byName: fc.dictionary(fc.string({ maxLength: 5 }), leaf, { maxKeys: 3 }),
      byId: fc.array(fc.tuple(int64, fc.string({ maxLength: 5 })), {
        maxLength: 3,
      }).map((entries) =>
        Object.fromEntries(entries.map(([k, v]) => [String(k), v]))
      ),
      choice: fc.oneof(
        fc.constant({ case: undefined }),
        fc.string({ maxLength: 6 }).map((value) => ({
          case: "choiceText" as const,
          value,
        })),
        leaf.map((value) => ({ case: "choiceLeaf" as const, value })),
        fc.nat().map((value) => ({ case: "choiceNumber" as const, value })),
      ),
      child: fc.option(tie("rich"), { freq: 4, nil: undefined }),
      maybe: fc.option(fc.integer(), { nil: undefined }),
      at: fc.option(
        fc.record({
          seconds: fc.bigInt({ min: -62135596800n, max: 253402300799n }),
          nanos: fc.integer({ min: 0, max: 999_999_999 }),
        }),
        { nil: undefined },
      ),
      took: fc.option(
        fc.integer({ min: -1_000_000, max: 1_000_000 }).map((s) => ({
          seconds: BigInt(s),
          nanos: 0,
        })),
        { nil: undefined },
      ),
      extra: fc.option(
        leaf.map((l) => anyPack(Rich_LeafSchema, create(Rich_LeafSchema, l))),
        { nil: undefined },
      ),
      attributes: fc.option(
        fc.dictionary(
          fc.string({ maxLength: 5 }),
          fc.oneof(
            fc.string({ maxLength: 5 }).map((v) => ({
              kind: { case: "stringValue" as const, value: v },
            })),
            fc.boolean().map((v) => ({
              kind: { case: "boolValue" as const, value: v },
            })),
            fc.integer().map((v) => ({
              kind: { case: "numberValue" as const, value: v },
            })),
          ),
          { maxKeys: 3 },
        ).map((fields) => ({ fields })),
        { nil: undefined },
      ),
      mask: fc.option(
        fc.array(fc.constantFrom("text", "leaves.name", "by_name"), {
          maxLength: 3,
        }).map((paths) => ({ paths })),
        { nil: undefined },
      ),
      wrapped: fc.option(int64, { nil: undefined }),
    }, { requiredKeys: [] }) as fc.Arbitrary<RichInit>,
  }),
).rich;

const toBin = (init: RichInit) =>
  toBinary(RichSchema, create(RichSchema, init));
const toJson = (init: RichInit) =>
  toJsonString(RichSchema, create(RichSchema, init), { registry });

// ---------------------------------------------------------------------------
// Hostile inputs

/** A varint. */
function varint(n: number | bigint): number[] {
  let v = BigInt(n);
  const out: number[] = [];
  do {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? b | 0x80 : b);
  } while (v > 0n);
  return out;
}

/** A length-delimited field. */
function field(no: number, body: Uint8Array | number[]): Uint8Array {
  const bytes = body instanceof Uint8Array ? body : Uint8Array.from(body);
  return concat([
    Uint8Array.from([...varint((no << 3) | 2), ...varint(bytes.length)]),
    bytes,
  ]);
}

/** `depth` Rich messages nested in field 21 (child). */
function nestedBomb(depth: number): Uint8Array {
  let inner: Uint8Array = new Uint8Array(0);
  for (let i = 0; i < depth; i++) inner = field(21, inner);
  return inner;
}

/** `depth` unknown groups (field 99) opened and closed. */
function groupBomb(depth: number, closed = true): Uint8Array {
  const open = varint((99 << 3) | 3);
  const close = varint((99 << 3) | 4);
  const bytes: number[] = [];
  for (let i = 0; i < depth; i++) bytes.push(...open);
  if (closed) { for (let i = 0; i < depth; i++) bytes.push(...close); }
  return Uint8Array.from(bytes);
}

/** JSON that nests `depth` levels through a field of the given kind. */
function jsonBomb(depth: number, through: "child" | "struct" | "unknown") {
  switch (through) {
    case "child":
      return '{"child":'.repeat(depth) + "{}" + "}".repeat(depth);
    case "struct":
      return '{"value":' + "[".repeat(depth) + "]".repeat(depth) + "}";
    case "unknown":
      return '{"later":' + "[".repeat(depth) + "]".repeat(depth) + "}";
  }
}

/** Invalid UTF-8 sequences. */
const badUtf8 = fc.constantFrom(
  [0xff],
  [0xc0, 0x80], // overlong NUL
  [0xed, 0xa0, 0x80], // a surrogate
  [0xe2, 0x82], // cut short
  [0xf4, 0x90, 0x80, 0x80], // past U+10FFFF
  [0x80],
);

/** Unknown fields of every wire type, well formed. */
const unknownFields = fc.array(
  fc.oneof(
    fc.tuple(
      fc.integer({ min: 100, max: 5000 }),
      fc.bigInt({
        min: 0n,
        max: (1n << 64n) - 1n,
      }),
    ).map(([no, v]) => Uint8Array.from([...varint(no << 3), ...varint(v)])),
    fc.tuple(
      fc.integer({ min: 100, max: 5000 }),
      fc.uint8Array({
        maxLength: 10,
      }),
    ).map(([no, b]) => field(no, b)),
    fc.tuple(
      fc.integer({ min: 100, max: 5000 }),
      fc.uint8Array({
        minLength: 8,
        maxLength: 8,
      }),
    ).map(([no, b]) => Uint8Array.from([...varint((no << 3) | 1), ...b])),
    fc.tuple(
      fc.integer({ min: 100, max: 5000 }),
      fc.uint8Array({
        minLength: 4,
        maxLength: 4,
      }),
    ).map(([no, b]) => Uint8Array.from([...varint((no << 3) | 5), ...b])),
    fc.integer({ min: 100, max: 5000 }).map((no) =>
      Uint8Array.from([...varint((no << 3) | 3), ...varint((no << 3) | 4)])
    ),
  ),
  { minLength: 1, maxLength: 5 },
).map(concat);

/** Mutations of valid bytes: flips, cuts, insertions, junk. */
function mutate(bytes: Uint8Array): fc.Arbitrary<Uint8Array> {
  const n = Math.max(bytes.length, 1);
  return fc.oneof(
    fc.array(fc.tuple(fc.nat(n - 1), fc.nat(255)), {
      minLength: 1,
      maxLength: 4,
    }).map((flips) => {
      const out = bytes.slice();
      for (const [at, v] of flips) if (at < out.length) out[at] = v;
      return out;
    }),
    fc.nat(n).map((at) => bytes.slice(0, at)),
    fc.tuple(fc.nat(n), anyBytes(8)).map(([at, junk]) =>
      concat([bytes.slice(0, at), junk, bytes.slice(at)])
    ),
    anyBytes(8).map((junk) => concat([bytes, junk])),
  );
}

/** Mutations of valid JSON text. */
function mutateText(text: string): fc.Arbitrary<string> {
  const n = Math.max(text.length, 1);
  return fc.oneof(
    fc.nat(n).map((at) => text.slice(0, at)),
    fc.tuple(
      fc.nat(n),
      fc.constantFrom(
        '"',
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "-",
        "e",
        "\\",
        "null",
      ),
    ).map(([at, s]) => text.slice(0, at) + s + text.slice(at)),
    fc.tuple(fc.nat(n), fc.nat(4)).map(([at, k]) =>
      text.slice(0, at) + text.slice(at + k + 1)
    ),
  );
}

const binaryInput: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 3, arbitrary: richInit.map(toBin) },
  { weight: 4, arbitrary: richInit.map(toBin).chain(mutate) },
  { weight: 2, arbitrary: anyBytes() },
  {
    weight: 2,
    arbitrary: fc.tuple(richInit.map(toBin), unknownFields).map(concat),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(
      fc.constantFrom(1, 14, 16, 18),
      fc.string({ maxLength: 4 }),
      badUtf8,
    ).map(([no, s, bad]) =>
      no === 16
        // A map entry whose key is not UTF-8.
        ? field(16, field(1, [...enc.encode(s), ...bad]))
        : field(no, [...enc.encode(s), ...bad])
    ),
  },
  {
    weight: 1,
    arbitrary: fc.oneof(
      fc.integer({ min: 1, max: 300 }).map(nestedBomb),
      fc.integer({ min: 1, max: 5000 }).map((d) => groupBomb(d)),
      fc.integer({ min: 1, max: 5000 }).map((d) => groupBomb(d, false)),
    ),
  },
  {
    weight: 1,
    // A length prefix far past the end of the message.
    arbitrary: fc.tuple(
      fc.constantFrom(1, 2, 15, 16, 21, 33, 99),
      fc.bigInt({ min: 1n, max: (1n << 64n) - 1n }),
    ).map(([no, length]) =>
      Uint8Array.from([...varint((no << 3) | 2), ...varint(length), 1, 2])
    ),
  },
);

const int64Json = fc.oneof(
  int64.map((v) => `"${v}"`),
  int64.map((v) => String(v)),
  fc.constantFrom(
    "1e3",
    '"1e3"',
    "1.5",
    '"1.5"',
    "9223372036854775808",
    '"9223372036854775808"',
    "-9223372036854775809",
    "18446744073709551616",
    '"0x10"',
    '" 1"',
    '""',
    "true",
    "null",
    "1e400",
  ),
);

const jsonInput: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: richInit.map(toJson) },
  { weight: 4, arbitrary: richInit.map(toJson).chain(mutateText) },
  { weight: 2, arbitrary: fc.json({ maxDepth: 3 }) },
  {
    weight: 2,
    // Unknown fields: ignored by default, as Connect's implementations do.
    arbitrary: fc.tuple(
      richInit.map(toJson),
      fc.string({ minLength: 1, maxLength: 6 }).filter((k) =>
        !(k in create(RichSchema))
      ),
      fc.json({ maxDepth: 2 }),
    ).map(([json, key, value]) =>
      JSON.stringify({ ...JSON.parse(json), [`zz_${key}`]: JSON.parse(value) })
    ),
  },
  {
    weight: 2,
    arbitrary: fc.tuple(
      fc.constantFrom("i64", "u64", "s64", "f64", "packed", "byId", "wrapped"),
      int64Json,
    ).map(([name, value]) =>
      name === "packed"
        ? `{"packed":[${value}]}`
        : name === "byId"
        ? `{"byId":{${value.startsWith('"') ? value : `"${value}"`}:"x"}}`
        : `{"${name}":${value}}`
    ),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(
      fc.integer({ min: 1, max: 5000 }),
      fc.constantFrom("child" as const, "struct" as const, "unknown" as const),
    ).map(([depth, through]) => jsonBomb(depth, through)),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '{"extra":{"@type":"type.googleapis.com/nope.Nope"}}',
      '{"extra":{"@type":"type.googleapis.com/sluice.test.fuzz.v1.Rich","child":{"i64":"1"}}}',
      '{"extra":{"value":1}}',
      '{"at":"1970-01-01T00:00:00Z"}',
      '{"at":"not a time"}',
      '{"took":"1.5s"}',
      '{"took":"1.5"}',
      '{"mask":"text,leaves.name"}',
      '{"choiceText":"a","choiceNumber":1}',
      '{"kind":"KIND_NOPE"}',
      '{"kind":99}',
      '{"text":"a","text":"b"}',
      '{"data":"not base64!"}',
      '{"real":"NaN","single":"-Infinity"}',
      '{"single":1e300}',
      '{"i32":2147483648}',
    ),
  },
);

// ---------------------------------------------------------------------------
// The wire

/** An envelope (5-byte prefix) of `data`. */
function envelope(data: Uint8Array, flags = 0, length = data.length) {
  const out = new Uint8Array(5 + data.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, length);
  out.set(data, 5);
  return out;
}

/** The envelopes of a response body. */
function envelopes(body: Uint8Array): { flags: number; data: Uint8Array }[] {
  const out: { flags: number; data: Uint8Array }[] = [];
  let at = 0;
  while (at + 5 <= body.length) {
    const length = new DataView(body.buffer, body.byteOffset).getUint32(at + 1);
    out.push({ flags: body[at], data: body.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  assert.equal(at, body.length, "response body ends mid-envelope");
  return out;
}

const GRPC_CODES: Record<string, string> = {
  "0": "ok",
  "1": "canceled",
  "2": "unknown",
  "3": "invalid_argument",
  "4": "deadline_exceeded",
  "8": "resource_exhausted",
  "12": "unimplemented",
  "13": "internal",
};

/** How a call came out: its messages, or its error code and message. */
interface Outcome {
  code: string; // "ok" or the Connect name of the code
  message: string;
  messages: Uint8Array[];
}

type Protocol =
  | "connect-unary"
  | "connect-stream"
  | "grpc-web"
  | "grpc";

const PROTOCOLS: Protocol[] = [
  "connect-unary",
  "connect-stream",
  "grpc-web",
  "grpc",
];

let url = "";

/** A copy on its own ArrayBuffer, as fetch and Blob take. */
const own = (bytes: Uint8Array) => new Uint8Array(bytes);

/** Sends one or more messages of `codec` to Echo or EchoStream. */
async function call(
  protocol: Protocol,
  codec: "proto" | "json",
  messages: Uint8Array[],
  base = url,
): Promise<Outcome> {
  if (protocol === "connect-unary") {
    const response = await fetch(`${base}/${SERVICE}/Echo`, {
      method: "POST",
      headers: {
        "content-type": `application/${codec}`,
        "connect-protocol-version": "1",
      },
      body: own(messages[0]),
    });
    const body = new Uint8Array(await response.arrayBuffer());
    if (response.status === 200) {
      return { code: "ok", message: "", messages: [body] };
    }
    const error = JSON.parse(dec.decode(body));
    return { code: error.code, message: error.message ?? "", messages: [] };
  }
  const body = concat(messages.map((m) => envelope(m)));
  if (protocol === "grpc") {
    const response = await grpcHandler({
      method: "POST",
      url: `http://localhost/${SERVICE}/EchoStream`,
      headers: new Headers({
        "content-type": `application/grpc+${codec}`,
        te: "trailers",
      }),
      body: new Blob([own(body)]).stream(),
    });
    const bytes = response.body
      ? new Uint8Array(await new Response(response.body).arrayBuffer())
      : new Uint8Array(0);
    const trailers = await response.trailers ?? new Headers();
    const status = trailers.get("grpc-status") ??
      response.headers.get("grpc-status");
    const message = trailers.get("grpc-message") ??
      response.headers.get("grpc-message") ?? "";
    return {
      code: GRPC_CODES[status ?? ""] ?? `grpc ${status}`,
      message: decodeURIComponent(message),
      messages: envelopes(bytes).map((e) => e.data),
    };
  }
  const connect = protocol === "connect-stream";
  const response = await fetch(`${base}/${SERVICE}/EchoStream`, {
    method: "POST",
    headers: {
      "content-type": connect
        ? `application/connect+${codec}`
        : `application/grpc-web+${codec}`,
      "connect-protocol-version": "1",
    },
    body: own(body),
  });
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (response.status !== 200) {
    return { code: `http ${response.status}`, message: "", messages: [] };
  }
  const all = envelopes(bytes);
  const data = all.filter((e) => e.flags === 0).map((e) => e.data);
  const end = all.find((e) => e.flags !== 0);
  if (connect) {
    assert.ok(end, "Connect stream without its end");
    const json = JSON.parse(dec.decode(end.data));
    return {
      code: json.error?.code ?? "ok",
      message: json.error?.message ?? "",
      messages: data,
    };
  }
  const trailer = end ? dec.decode(end.data) : "";
  const status = /grpc-status:\s*(\d+)/.exec(trailer)?.[1] ??
    response.headers.get("grpc-status");
  const message = /grpc-message:\s*([^\r\n]*)/.exec(trailer)?.[1] ??
    response.headers.get("grpc-message") ?? "";
  return {
    code: GRPC_CODES[status ?? ""] ?? `grpc ${status}`,
    message: decodeURIComponent(message),
    messages: data,
  };
}

/**
 * A call's outcome is success or INVALID_ARGUMENT naming the type and the
 * problem (never the engine's words, never a hidden "malformed message").
 */
function assertOkOrInvalid(outcome: Outcome, what: string): void {
  if (outcome.code === "ok") return;
  assert.equal(
    outcome.code,
    "invalid_argument",
    `${what}: ${outcome.code} ${outcome.message}`,
  );
  assert.match(outcome.message, new RegExp(`^Cannot decode ${TYPE}: `));
  assert.doesNotMatch(outcome.message, /malformed message/, what);
  assertNotForeign(outcome.message);
}

/**
 * The one answer other than the echo and INVALID_ARGUMENT: protobuf-es reads
 * a JSON number past the double range inside a `google.protobuf.Value`
 * (`1e999`) as Infinity, where it refuses one in a double field, and then
 * cannot write the message back to JSON; the echo fails INTERNAL naming the
 * type, as it does from connect-node (a protobuf-es gap, not sluice's).
 */
const VALUE_GAP = new RegExp(
  `^Cannot encode ${TYPE}: google.protobuf.Value cannot be NaN or Infinity$`,
);
const isValueGap = (o: Outcome) =>
  o.code === "internal" && VALUE_GAP.test(o.message);

/** Whether protobuf-es itself accepts the bytes. */
function parsesBinary(bytes: Uint8Array): Rich | undefined {
  try {
    return fromBinary(RichSchema, bytes);
  } catch {
    return undefined;
  }
}

const Codec = createMessageType(RichSchema, { registry });

function parsesJson(text: string): Rich | undefined {
  try {
    return Codec.json.decode(enc.encode(text));
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------

describe("fuzz: protobuf-es messages on the wire", () => {
  let shutdown: () => Promise<void>;
  before(async () => {
    const server = await startServer(
      createRpcHandler(implementation, { maxMessageBytes: LIMIT }),
    );
    url = server.url.origin;
    shutdown = () => server.shutdown();
  });
  after(() => shutdown?.());

  for (const protocol of PROTOCOLS) {
    it(`${protocol} binary: any bytes are echoed as they came or INVALID_ARGUMENT naming ${TYPE}`, async () => {
      await record.checkAsync(
        `${protocol} binary`,
        fc.asyncProperty(binaryInput, async (bytes) => {
          const outcome = await call(protocol, "proto", [bytes]);
          assertOkOrInvalid(outcome, protocol);
          const parsed = parsesBinary(bytes);
          if (outcome.code === "ok") {
            // Unknown fields included: what comes back parses to the same
            // message and is what protobuf-es writes for it.
            assert.ok(parsed, "the server accepted what protobuf-es refuses");
            assert.equal(outcome.messages.length, 1);
            assert.deepEqual(
              outcome.messages[0],
              toBinary(RichSchema, parsed),
            );
          } else {
            assert.equal(
              parsed,
              undefined,
              `refused what protobuf-es reads: ${outcome.message}`,
            );
          }
        }),
        protocol === "grpc" ? 150 : 100,
      );
    });

    it(`${protocol} JSON: any text is echoed or INVALID_ARGUMENT naming ${TYPE}`, async () => {
      await record.checkAsync(
        `${protocol} JSON`,
        fc.asyncProperty(jsonInput, async (text) => {
          const outcome = await call(protocol, "json", [enc.encode(text)]);
          const parsed = parsesJson(text);
          if (isValueGap(outcome)) {
            assert.ok(parsed, text);
            assert.throws(() => Codec.json.encode(parsed), /NaN or Infinity/);
            return;
          }
          assertOkOrInvalid(outcome, protocol);
          if (outcome.code === "ok") {
            assert.ok(parsed, "the server accepted what protobuf-es refuses");
            assert.equal(outcome.messages.length, 1);
            assert.equal(
              dec.decode(outcome.messages[0]),
              toJsonString(RichSchema, parsed, { registry }),
            );
          } else {
            assert.equal(
              parsed,
              undefined,
              `refused what protobuf-es reads: ${outcome.message}`,
            );
          }
        }),
        protocol === "grpc" ? 150 : 100,
      );
    });
  }

  for (const protocol of ["connect-stream", "grpc-web", "grpc"] as const) {
    it(`${protocol}: a stream of messages answers each good one in order and stops at the first bad one`, async () => {
      await record.checkAsync(
        `${protocol} stream of messages`,
        fc.asyncProperty(
          fc.array(binaryInput, { minLength: 1, maxLength: 5 }),
          async (inputs) => {
            const outcome = await call(protocol, "proto", inputs);
            assertOkOrInvalid(outcome, protocol);
            const good = inputs.map(parsesBinary);
            const firstBad = good.findIndex((m) => m === undefined);
            const expected = (firstBad < 0 ? good : good.slice(0, firstBad))
              .map((m) => toBinary(RichSchema, m!));
            assert.equal(
              outcome.code,
              firstBad < 0 ? "ok" : "invalid_argument",
            );
            // The echoes of the messages before the bad one may or may not
            // have been sent when the call failed; those sent are right.
            assert.ok(outcome.messages.length <= expected.length);
            outcome.messages.forEach((m, i) =>
              assert.deepEqual(m, expected[i])
            );
            if (firstBad < 0) {
              assert.equal(outcome.messages.length, expected.length);
            }
          },
        ),
        40,
      );
    });
  }

  it("the server still answers a well-formed call after the fuzzing", async () => {
    const init = { text: "still here", i64: -(1n << 63n), by_id: {} };
    for (const protocol of PROTOCOLS) {
      const outcome = await deadline(
        call(protocol, "proto", [toBin(init)]),
        T,
        protocol,
      );
      assert.equal(outcome.code, "ok", `${protocol}: ${outcome.message}`);
      assert.equal(
        fromBinary(RichSchema, outcome.messages[0]).text,
        "still here",
      );
    }
  });
});

/** A request body that stays open after `first` until `close` is called. */
function openBody(first: Uint8Array) {
  let controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      c.enqueue(first);
    },
  });
  return {
    body,
    close() {
      try {
        controller?.close();
      } catch {
        // Already cancelled by the server or by the fetch implementation.
      }
    },
  };
}

describe("protobuf-es bad input, case by case (sluice and connect-node)", () => {
  let shutdown: () => Promise<void>;
  let connectUrl = "";
  let connectShutdown: () => Promise<void>;
  before(async () => {
    const server = await startServer(
      createRpcHandler(implementation, { maxMessageBytes: LIMIT }),
    );
    url = server.url.origin;
    shutdown = () => server.shutdown();
    const connect = await serveConnectRoutes(connectFuzzRoutes, "1.1", {
      jsonOptions: { registry },
      readMaxBytes: LIMIT,
    });
    connectUrl = connect.url;
    connectShutdown = connect.shutdown;
  });
  after(async () => {
    await shutdown?.();
    await connectShutdown?.();
  });

  const unknown = concat([
    Uint8Array.from([...varint(100 << 3), ...varint(2n ** 64n - 1n)]),
    field(101, enc.encode("later")),
    Uint8Array.from([...varint((102 << 3) | 1), 1, 2, 3, 4, 5, 6, 7, 8]),
    Uint8Array.from([...varint((103 << 3) | 5), 1, 2, 3, 4]),
    Uint8Array.from([...varint((104 << 3) | 3), ...varint(105 << 3), 7]),
    Uint8Array.from(varint((104 << 3) | 4)),
  ]);

  for (const protocol of PROTOCOLS) {
    it(`${protocol}: unknown binary fields of every wire type come back unchanged`, async () => {
      const sent = concat([
        toBin({ text: "known", i64: -1n, leaves: [{ name: "a" }] }),
        unknown,
      ]);
      const outcome = await call(protocol, "proto", [sent]);
      assert.equal(outcome.code, "ok", outcome.message);
      assert.deepEqual(outcome.messages, [sent]);
    });

    it(`${protocol}: invalid UTF-8 in a string field, a repeated string or a map key is INVALID_ARGUMENT`, async () => {
      for (
        const bytes of [
          field(1, [0x61, 0xff]),
          field(14, [0xed, 0xa0, 0x80]),
          field(16, field(1, [0xc0, 0x80])),
          field(19, field(1, [0xf4, 0x90, 0x80, 0x80])),
        ]
      ) {
        const outcome = await call(protocol, "proto", [bytes]);
        assert.equal(outcome.code, "invalid_argument", outcome.message);
        assert.equal(
          outcome.message,
          `Cannot decode ${TYPE}: invalid UTF-8 in a string field`,
        );
      }
      // A bytes field takes any bytes.
      const ok = await call(protocol, "proto", [field(2, [0xff, 0xc0])]);
      assert.equal(ok.code, "ok", ok.message);
    });

    it(`${protocol}: nesting past the recursion limit (100) is INVALID_ARGUMENT, never a stack overflow`, async () => {
      const within = await call(protocol, "proto", [nestedBomb(50)]);
      assert.equal(within.code, "ok", within.message);
      for (
        const [codec, input] of [
          ["proto", nestedBomb(101)],
          ["proto", nestedBomb(5_000)],
          ["proto", groupBomb(101)],
          ["proto", groupBomb(10_000)],
          ["json", enc.encode(jsonBomb(101, "child"))],
          ["json", enc.encode(jsonBomb(101, "struct"))],
          ["json", enc.encode(jsonBomb(20_000, "struct"))],
        ] as const
      ) {
        const outcome = await call(protocol, codec, [input]);
        assert.equal(outcome.code, "invalid_argument", outcome.message);
        assert.match(
          outcome.message,
          new RegExp(`^Cannot decode ${TYPE}: .*maximum recursion depth`),
        );
      }
      // An unknown JSON field is skipped whatever its depth.
      const skipped = await call(protocol, "json", [
        enc.encode(jsonBomb(20_000, "unknown")),
      ]);
      assert.equal(skipped.code, "ok", skipped.message);
    });

    it(`${protocol}: a message over maxMessageBytes is RESOURCE_EXHAUSTED before it is buffered`, async () => {
      if (protocol === "grpc") {
        // In process: the body stays open after a header that claims 1 GiB.
        const open = openBody(envelope(new Uint8Array(0), 0, 1 << 30));
        const response = await grpcHandler({
          method: "POST",
          url: `http://localhost/${SERVICE}/EchoStream`,
          headers: new Headers({
            "content-type": "application/grpc+proto",
            te: "trailers",
          }),
          body: open.body,
        });
        if (response.body) await new Response(response.body).arrayBuffer();
        const trailers = await deadline(
          response.trailers ?? Promise.resolve(response.headers),
          T,
          "trailers",
        );
        open.close();
        assert.equal(trailers.get("grpc-status"), "8");
        assert.match(trailers.get("grpc-message") ?? "", /maxMessageBytes/);
        return;
      }
      // Connect unary has no length prefix: LIMIT + 1 bytes, body open.
      // The others: a frame header claiming 1 GiB, body open.
      const first = protocol === "connect-unary"
        ? new Uint8Array(LIMIT + 1)
        : envelope(new Uint8Array(0), 0, 1 << 30);
      const open = openBody(first);
      const path = protocol === "connect-unary" ? "Echo" : "EchoStream";
      const type = protocol === "connect-unary"
        ? "application/proto"
        : protocol === "connect-stream"
        ? "application/connect+proto"
        : "application/grpc-web+proto";
      try {
        const response = await deadline(
          fetch(`${url}/${SERVICE}/${path}`, {
            method: "POST",
            headers: { "content-type": type },
            body: open.body,
            duplex: "half",
          } as RequestInit),
          T,
          "response",
        );
        const bytes = new Uint8Array(
          await deadline(response.arrayBuffer(), T, "body"),
        );
        let code: string | undefined;
        let message: string;
        if (protocol === "connect-unary") {
          ({ code, message } = JSON.parse(dec.decode(bytes)));
        } else if (protocol === "connect-stream") {
          const end = envelopes(bytes).find((e) => e.flags & 2)!;
          ({ code, message } = JSON.parse(dec.decode(end.data)).error);
        } else {
          const trailer = envelopes(bytes).find((e) => e.flags & 0x80);
          const text = trailer ? dec.decode(trailer.data) : "";
          code = GRPC_CODES[
            /grpc-status:\s*(\d+)/.exec(text)?.[1] ??
              response.headers.get("grpc-status") ?? ""
          ];
          message = decodeURIComponent(
            /grpc-message:\s*([^\r\n]*)/.exec(text)?.[1] ??
              response.headers.get("grpc-message") ?? "",
          );
        }
        assert.equal(code, "resource_exhausted", message);
        assert.match(message, /maxMessageBytes/);
      } finally {
        open.close();
      }
    });
  }

  it("unknown JSON fields are ignored, as connect-node ignores them; refused with ignoreUnknownFields: false", async () => {
    const text = JSON.stringify({
      text: "a",
      later: { deep: [1, { x: null }] },
      i64: "5",
    });
    const sluice = await call("connect-unary", "json", [enc.encode(text)]);
    const connect = await call(
      "connect-unary",
      "json",
      [enc.encode(text)],
      connectUrl,
    );
    assert.equal(sluice.code, "ok", sluice.message);
    assert.equal(connect.code, "ok", connect.message);
    assert.equal(dec.decode(sluice.messages[0]), '{"text":"a","i64":"5"}');
    assert.deepEqual(sluice.messages, connect.messages);

    const strict = createRpcHandler(
      implementService(FuzzService, {
        echo: (m) => m,
        echoStream: (messages) => messages,
        count: () => ({}),
      }, { registry, jsonReadOptions: { ignoreUnknownFields: false } }),
    );
    const response = await strict(
      new Request(`http://localhost/${SERVICE}/Echo`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: text,
      }),
    );
    const error = await response.json();
    assert.equal(error.code, "invalid_argument");
    assert.equal(
      error.message,
      `Cannot decode ${TYPE}: cannot decode message ${TYPE} from JSON: key "later" is unknown`,
    );
  });

  it("a JSON number past the double range in a Value is read as Infinity by protobuf-es, which cannot write it back: INTERNAL naming the type, as from connect-node", async () => {
    for (const text of ['{"value":1e999}', '{"list":[-1e999]}']) {
      for (const protocol of PROTOCOLS) {
        const outcome = await call(protocol, "json", [enc.encode(text)]);
        assert.ok(
          isValueGap(outcome),
          `${protocol}: ${outcome.code} ${outcome.message}`,
        );
      }
      const connect = await call(
        "connect-unary",
        "json",
        [enc.encode(text)],
        connectUrl,
      );
      assert.equal(connect.code, "internal", connect.message);
      assert.match(
        connect.message,
        /google.protobuf.Value cannot be NaN or Infinity/,
      );
    }
    // In a double field, protobuf-es refuses it.
    const refused = await call("connect-unary", "json", [
      enc.encode('{"real":1e999}'),
    ]);
    assert.equal(refused.code, "invalid_argument", refused.message);
  });

  it("64-bit integers in JSON: exact as strings; as numbers, what JSON.parse reads, as connect-node does", async () => {
    const cases: [string, string | undefined][] = [
      ['{"i64":"9223372036854775807"}', "9223372036854775807"],
      ['{"i64":"-9223372036854775808"}', "-9223372036854775808"],
      ['{"u64":"18446744073709551615"}', "18446744073709551615"],
      ['{"i64":-9223372036854775808}', "-9223372036854775808"],
      ['{"i64":9007199254740991}', "9007199254740991"],
      // Past 2^53 a JSON number is already rounded by JSON.parse.
      ['{"i64":9007199254740993}', "9007199254740992"],
      ['{"i64":9223372036854775807}', undefined], // rounds to 2^63
      ['{"i64":"9223372036854775808"}', undefined],
      ['{"i64":1e3}', "1000"],
      ['{"i64":"1e3"}', undefined],
      ['{"i64":1.5}', undefined],
    ];
    for (const [text, want] of cases) {
      const key = text.includes("u64") ? "u64" : "i64";
      const sluice = await call("connect-unary", "json", [enc.encode(text)]);
      const connect = await call(
        "connect-unary",
        "json",
        [enc.encode(text)],
        connectUrl,
      );
      assert.equal(sluice.code, connect.code, `${text}: ${sluice.message}`);
      if (want === undefined) {
        assert.equal(sluice.code, "invalid_argument", text);
        assert.match(sluice.message, new RegExp(`^Cannot decode ${TYPE}: `));
        continue;
      }
      assert.equal(sluice.code, "ok", `${text}: ${sluice.message}`);
      assert.equal(JSON.parse(dec.decode(sluice.messages[0]))[key], want);
      assert.deepEqual(sluice.messages, connect.messages, text);
    }
  });

  it("Connect unary: sluice accepts and answers exactly what connect-node does; refusals differ only in code for binary", async () => {
    const input = fc.oneof(
      binaryInput.map((bytes) => ({ codec: "proto" as const, bytes })),
      jsonInput.map((text) => ({
        codec: "json" as const,
        bytes: enc.encode(text),
      })),
    );
    await record.checkAsync(
      "Connect unary: sluice vs connect-node",
      fc.asyncProperty(input, async ({ codec, bytes }) => {
        const sluice = await call("connect-unary", codec, [bytes]);
        const connect = await call("connect-unary", codec, [bytes], connectUrl);
        if (isValueGap(sluice)) {
          assert.equal(connect.code, "internal", connect.message);
          return;
        }
        assertOkOrInvalid(sluice, "sluice");
        if (connect.code === "ok") {
          assert.equal(sluice.code, "ok", sluice.message);
          assert.deepEqual(sluice.messages, connect.messages);
          return;
        }
        assert.equal(sluice.code, "invalid_argument", connect.message);
        // connect-node answers INTERNAL ("parse binary: ...") to a binary
        // request it cannot parse and INVALID_ARGUMENT to JSON; sluice
        // answers INVALID_ARGUMENT to both (docs/protobuf.md).
        assert.equal(
          connect.code,
          codec === "proto" ? "internal" : "invalid_argument",
          connect.message,
        );
      }),
      100,
    );
  });
});

describe("fuzz regressions: a response the codec cannot write", () => {
  it("fails the call INTERNAL naming the type (it was UNKNOWN), as grpc-js and connect-node answer", async () => {
    // A Value protobuf-es cannot write as JSON.
    const bad = {
      value: { kind: { case: "numberValue" as const, value: NaN } },
    };
    const handler = createRpcHandler(implementService(FuzzService, {
      echo: () => bad,
      async *echoStream(messages) {
        for await (const _ of messages) yield bad;
      },
      count: () => ({}),
    }));
    const want = {
      code: "internal",
      message:
        `Cannot encode ${TYPE}: google.protobuf.Value cannot be NaN or Infinity`,
    };
    for (
      const [path, type, body] of [
        ["Echo", "application/json", enc.encode("{}")],
        ["EchoStream", "application/connect+json", envelope(enc.encode("{}"))],
      ] as const
    ) {
      const response = await handler(
        new Request(`http://localhost/${SERVICE}/${path}`, {
          method: "POST",
          headers: { "content-type": type },
          body: own(body),
        }),
      );
      const bytes = new Uint8Array(await response.arrayBuffer());
      const { code, message } = path === "Echo"
        ? JSON.parse(dec.decode(bytes))
        : JSON.parse(dec.decode(envelopes(bytes).at(-1)!.data)).error;
      assert.deepEqual({ code, message }, want, path);
    }
  });
});

describe("fuzz regressions: createMessageType's decode errors name the problem", () => {
  // Each was "Cannot decode ...: malformed message" on the wire: protobuf-es
  // threw a plain Error, a RangeError or the engine's TypeError, whose text
  // the RPC layer does not pass on.
  const cases: [string, Uint8Array, string][] = [
    [
      "a tag with field number 0",
      Uint8Array.from([10, 1, 1, 2]),
      "illegal tag: field no 0 wire type 2",
    ],
    ["an unclosed group", Uint8Array.from([155, 6]), "premature EOF"],
    [
      "a fixed64 cut short",
      Uint8Array.from([57, 1, 2]),
      "premature EOF (in a fixed-width field)",
    ],
    [
      "a double cut short",
      Uint8Array.from([73]),
      "premature EOF (in a fixed-width field)",
    ],
    [
      "a string that is not UTF-8",
      Uint8Array.from([10, 1, 0xff]),
      "invalid UTF-8 in a string field",
    ],
    [
      "101 nested messages",
      nestedBomb(101),
      "maximum recursion depth of 100 reached",
    ],
  ];
  for (const [what, bytes, reason] of cases) {
    it(`${what}: a SyntaxError saying ${JSON.stringify(reason)}`, () => {
      assert.throws(() => Codec.proto.decode(bytes), (error: unknown) => {
        assert.ok(error instanceof SyntaxError, String(error));
        assert.ok(error.message.includes(reason), error.message);
        return true;
      });
    });
  }
  it("JSON nested past the limit: a SyntaxError naming the limit", () => {
    assert.throws(
      () => Codec.json.decode(enc.encode(jsonBomb(101, "struct"))),
      /SyntaxError: .*maximum recursion depth of 100 reached/,
    );
  });
});
