// gRPC-Web's text format (application/grpc-web-text, doc/PROTOCOL-WEB.md)
// on the server: base64 request bodies decoded as they arrive (split
// anywhere, concatenated padded segments), each response chunk encoded at
// once with its own padding, and everything else as the binary format:
// codecs, compression, Trailers-Only, trailer frames, limits and errors.
// Bodies are written and read here by hand, as Google's grpc-web client
// does (it reads what it has received up to a multiple of 4 characters).

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  Code,
  createRpcHandler,
  createUniversalHandler,
  defineService,
  type Frame,
  FrameDecoder,
  implementService,
  Int64Value,
  RpcError,
} from "../lib/rpc/mod.ts";
import type { Server } from "../lib/runtime/serve.ts";
import { Base64Decoder, encodeBase64 } from "../lib/_internal/base64.ts";
import { decodeTrailerBlock } from "../lib/rpc/protocol_grpc_web/trailers.ts";
import { TextDecodeStream } from "../lib/rpc/protocol_grpc_web/text.ts";
import { Bytes, deadline, startServer } from "./_helpers.ts";

const T = 20_000;
const enc = new TextEncoder();
const dec = new TextDecoder();

const TextService = defineService("test.v1.TextService", {
  echo: { kind: "unary", input: Int64Value, output: Int64Value },
  fail: { kind: "unary", input: Int64Value, output: Int64Value },
  count: { kind: "server-streaming", input: Int64Value, output: Int64Value },
  paced: { kind: "server-streaming", input: Int64Value, output: Int64Value },
  failLate: {
    kind: "server-streaming",
    input: Int64Value,
    output: Int64Value,
  },
  sum: { kind: "client-streaming", input: Int64Value, output: Int64Value },
  echoAll: { kind: "bidi", input: Int64Value, output: Int64Value },
  blob: { kind: "bidi", input: Bytes, output: Bytes },
  echoBytes: { kind: "unary", input: Bytes, output: Bytes },
});

/** Calls of each method the server has started. */
const started = new Map<string, number>();
const start = (name: string) => started.set(name, (started.get(name) ?? 0) + 1);
/** Errors told to onError. */
const told: unknown[] = [];
/** `paced` sent its first message: waits for `release` before the next. */
let pacedFirst = Promise.withResolvers<void>();
let release = Promise.withResolvers<void>();
/** Whether `paced` has produced its second message. */
let pacedSecond = false;
/** The error `echoAll`'s requests failed with, if any. */
let echoAllError = Promise.withResolvers<unknown>();

const impl = implementService(TextService, {
  echo: (v) => {
    start("echo");
    return v;
  },
  fail: () => {
    start("fail");
    throw new RpcError(Code.NotFound, "no such number");
  },
  count: async function* (n) {
    start("count");
    for (let i = 1n; i <= n; i++) yield i;
  },
  paced: async function* (n) {
    start("paced");
    yield 1n;
    pacedFirst.resolve();
    await release.promise;
    pacedSecond = true;
    for (let i = 2n; i <= n; i++) yield i;
  },
  failLate: async function* () {
    start("failLate");
    yield 7n;
    throw new RpcError(Code.DataLoss, "lost after 7: ünïcode");
  },
  sum: async (values) => {
    start("sum");
    let total = 0n;
    for await (const v of values) total += v;
    return total;
  },
  echoAll: async function* (values) {
    start("echoAll");
    try {
      for await (const v of values) yield v;
    } catch (error) {
      echoAllError.resolve(error);
      throw error;
    }
  },
  echoBytes: (bytes) => bytes,
  blob: async function* (values) {
    for await (const v of values) yield new Uint8Array([v.byteLength & 0xff]);
  },
});

const MAX_MESSAGE_BYTES = 1024;

/** A frame: flag byte, 4-byte length, data. */
function frame(data: Uint8Array, flags = 0): Uint8Array {
  const bytes = new Uint8Array(5 + data.byteLength);
  bytes[0] = flags;
  new DataView(bytes.buffer).setUint32(1, data.byteLength);
  bytes.set(data, 5);
  return bytes;
}

const int64 = (n: bigint) => Int64Value.proto.encode(n);

/** Text of frames, each frame a padded base64 segment of its own. */
function segments(frames: Uint8Array[]): string {
  return frames.map((f) => encodeBase64(f)).join("");
}

/**
 * A text body decoded segment by segment (each ends at its padding) with
 * atob: a decoder independent of the server's.
 */
function decodeSegments(text: string): Uint8Array {
  const out: number[] = [];
  for (const segment of text.split(/(?<==)(?=[^=])/)) {
    const binary = atob(segment);
    for (let i = 0; i < binary.length; i++) out.push(binary.charCodeAt(i));
  }
  return new Uint8Array(out);
}

/** `bytes` through a CompressionStream. */
async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes.slice()]).stream();
  return new Uint8Array(
    await new Response(stream.pipeThrough(new CompressionStream("gzip")))
      .arrayBuffer(),
  );
}

/** `bytes` through a DecompressionStream. */
async function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes.slice()]).stream();
  return new Uint8Array(
    await new Response(stream.pipeThrough(new DecompressionStream("gzip")))
      .arrayBuffer(),
  );
}

/** Frames of decoded bytes. */
function framesOf(bytes: Uint8Array): Frame[] {
  const decoder = new FrameDecoder({ maxMessageBytes: 1 << 20 });
  const frames = decoder.decode(bytes);
  decoder.finish();
  return frames;
}

/** The messages and the trailers of a whole text response body. */
function parseBody(
  text: string,
): { messages: Uint8Array[]; trailers: Headers } {
  assert.equal(text.length % 4, 0, `text of ${text.length} characters`);
  assert.match(text, /^[A-Za-z0-9+/=]*$/);
  const frames = framesOf(decodeSegments(text));
  const last = frames.at(-1);
  assert.ok(last !== undefined && last.flags === 0x80, "no trailer frame");
  return {
    messages: frames.slice(0, -1).map((f) => {
      assert.equal(f.flags & 0x80, 0);
      return f.data;
    }),
    trailers: decodeTrailerBlock(last.data),
  };
}

/**
 * Reads a text response body as Google's grpc-web does: whatever has
 * arrived, up to a multiple of 4 characters, decoded; frames as they
 * complete.
 */
class TextBodyReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #frames = new FrameDecoder({ maxMessageBytes: 1 << 20 });
  readonly #ready: Frame[] = [];
  #text = "";
  #pos = 0;

  constructor(body: ReadableStream<Uint8Array>) {
    this.#reader = body.getReader();
  }

  /** The next frame, or undefined at the end of the body. */
  async next(): Promise<Frame | undefined> {
    while (this.#ready.length === 0) {
      const { done, value } = await this.#reader.read();
      if (done) {
        assert.equal(this.#pos, this.#text.length, "text left undecoded");
        this.#frames.finish();
        return undefined;
      }
      this.#text += dec.decode(value);
      const end = this.#text.length - this.#text.length % 4;
      const bytes = decodeSegments(this.#text.slice(this.#pos, end));
      this.#pos = end;
      this.#ready.push(...this.#frames.decode(bytes));
    }
    return this.#ready.shift();
  }
}

let server: Server;
let url: string;
before(async () => {
  server = await startServer(createRpcHandler(impl, {
    maxMessageBytes: MAX_MESSAGE_BYTES,
    acceptCompression: ["gzip"],
    compressMinBytes: 0,
    onError: (error) => void told.push(error),
  }));
  url = `${server.url.origin}/test.v1.TextService`;
});
after(async () => {
  if (server) await deadline(server.shutdown(), 30_000, "server shutdown");
});

/**
 * A bidi `echoAll` call in text over full duplex, its first request (1)
 * sent with the head (a fetch waits for a first chunk there): the writer of
 * its request text and the reader of its answers.
 */
async function openEchoAll(): Promise<{
  writer: WritableStreamDefaultWriter<Uint8Array>;
  reader: TextBodyReader;
}> {
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const writer = writable.getWriter();
  writer.write(enc.encode(segments([frame(int64(1n))])));
  const response = await post("echoAll", readable);
  return { writer, reader: new TextBodyReader(response.body!) };
}

/** POSTs a text-format request; `body` a string, or chunks as they go. */
function post(
  method: string,
  body: string | ReadableStream<Uint8Array>,
  headers: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<Response> {
  return deadline(
    fetch(`${url}/${method}`, {
      method: "POST",
      signal,
      headers: {
        "content-type": "application/grpc-web-text",
        "accept": "application/grpc-web-text",
        "x-grpc-web": "1",
        ...headers,
      },
      body,
      duplex: "half",
    } as RequestInit),
    T,
    `${method} response head`,
  );
}

/** Chunks of `text` cut at `cuts` (positions, any order). */
function cut(text: string, cuts: number[]): Uint8Array[] {
  const bytes = enc.encode(text);
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))]
    .sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const to of [...at, bytes.length]) {
    if (to > from) chunks.push(bytes.slice(from, to));
    from = to;
  }
  return chunks;
}

/** A stream of `chunks`, one per pull. */
function streamOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    pull(controller) {
      if (i < chunks.length) controller.enqueue(chunks[i++]);
      else controller.close();
    },
  });
}

describe("Base64Decoder (gRPC-Web text request bodies)", () => {
  it("Base64Decoder gives the same bytes for any split of concatenated padded segments", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 20 }), { maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (parts, cuts) => {
          const text = parts.map((p) => encodeBase64(p)).join("");
          const decoder = new Base64Decoder();
          const out: number[] = [];
          for (const chunk of cut(text, cuts)) out.push(...decoder.push(chunk));
          decoder.finish();
          assert.deepEqual(out, parts.flatMap((p) => [...p]));
        },
      ),
      { numRuns: 500 },
    );
  });

  it("Base64Decoder skips CR and LF anywhere, even inside a group", () => {
    const decoder = new Base64Decoder();
    const out = [
      ...decoder.push(enc.encode("AQ\r\nID")),
      ...decoder.push(enc.encode("\nBA==\r\n")),
    ];
    decoder.finish();
    assert.deepEqual(out, [1, 2, 3, 4]);
  });

  it("Base64Decoder rejects a character outside the alphabet, naming it and its offset", () => {
    const decoder = new Base64Decoder();
    decoder.push(enc.encode("AAAA"));
    assert.throws(() => decoder.push(enc.encode("AA A")), {
      name: "SyntaxError",
      message: "Cannot decode base64: character 0x20 at offset 6 is not base64",
    });
    assert.throws(() => new Base64Decoder().push(enc.encode("AB-_")), {
      message: 'Cannot decode base64: character "-" at offset 2 is not base64',
    });
  });

  it("Base64Decoder rejects `=` that does not end a group of 4", () => {
    assert.throws(() => new Base64Decoder().push(enc.encode("AAAAA=AA")), {
      name: "SyntaxError",
      message:
        'Cannot decode base64: character "=" at offset 5 cannot be the first or second of a group of 4',
    });
    assert.throws(() => new Base64Decoder().push(enc.encode("AA=A")), {
      message:
        'Cannot decode base64: character "A" at offset 3 follows `=` in its group of 4',
    });
  });

  it("Base64Decoder.finish rejects text that ends inside a group", () => {
    const decoder = new Base64Decoder("decode gRPC-Web text request");
    assert.deepEqual([...decoder.push(enc.encode("AQIDBA"))], [1, 2, 3]);
    assert.throws(() => decoder.finish(), {
      name: "SyntaxError",
      message:
        "Cannot decode gRPC-Web text request: the text ends inside a group of 4 characters (2 of them)",
    });
  });

  it("TextDecodeStream decodes each chunk at once and holds under 4 characters, however long the text", async () => {
    // 8 MiB of base64 with no padding and no frame in it, in chunks of an
    // odd size: every chunk's whole groups come out before the next goes in.
    const decoding = new TextDecodeStream();
    const writer = decoding.writable.getWriter();
    const reader = decoding.readable.getReader();
    const chunk = enc.encode("A".repeat(65_537));
    let held = 0;
    let out = 0;
    for (let i = 0; i < 128; i++) {
      const written = writer.write(chunk);
      const { value } = await reader.read();
      await written;
      const expected = Math.floor((held + chunk.byteLength) / 4) * 3;
      assert.equal(value!.byteLength, expected);
      held = (held + chunk.byteLength) % 4;
      assert.ok(held < 4);
      out += value!.byteLength;
    }
    assert.equal(out, Math.floor(128 * 65_537 / 4) * 3);
    await writer.abort(new Error("enough"));
  });

  it("TextDecodeStream fails with InvalidArgument and aborts its signal first", async () => {
    const decoding = new TextDecodeStream();
    const order: string[] = [];
    decoding.signal.addEventListener("abort", () => order.push("signal"));
    const result = streamOf([enc.encode("AAAA"), enc.encode("A*AA")])
      .pipeThrough(decoding);
    const error = await Array.fromAsync(result).then(
      () => assert.fail("decoded"),
      (error) => {
        order.push("stream");
        return error;
      },
    );
    assert.ok(error instanceof RpcError);
    assert.equal(error.code, Code.InvalidArgument);
    assert.equal(
      error.rawMessage,
      'Cannot decode gRPC-Web text request: character "*" at offset 5 is not base64',
    );
    assert.equal(decoding.signal.reason, error);
    assert.deepEqual(order, ["signal", "stream"]);
  });
});

describe("gRPC-Web text format over a real server", () => {
  it("a unary call in text answers in text: application/grpc-web-text+proto, unbuffered", async () => {
    const response = await post("echo", segments([frame(int64(42n))]));
    assert.equal(response.status, 200);
    assert.equal(
      response.headers.get("content-type"),
      "application/grpc-web-text+proto",
    );
    assert.match(response.headers.get("cache-control") ?? "", /no-transform/);
    const { messages, trailers } = parseBody(await response.text());
    assert.deepEqual(messages.map((m) => Int64Value.proto.decode(m)), [42n]);
    assert.equal(trailers.get("grpc-status"), "0");
  });

  it("application/grpc-web-text+json requests and answers the JSON codec in text", async () => {
    const response = await post(
      "echo",
      segments([frame(Int64Value.json!.encode(-9007199254740993n))]),
      { "content-type": "application/grpc-web-text+json" },
    );
    assert.equal(
      response.headers.get("content-type"),
      "application/grpc-web-text+json",
    );
    const { messages, trailers } = parseBody(await response.text());
    assert.equal(dec.decode(messages[0]), '"-9007199254740993"');
    assert.equal(trailers.get("grpc-status"), "0");
  });

  it("a binary request with Accept: application/grpc-web-text is answered in text", async () => {
    const response = await post("echo", streamOf([frame(int64(5n))]), {
      "content-type": "application/grpc-web+proto",
    });
    assert.equal(
      response.headers.get("content-type"),
      "application/grpc-web-text+proto",
    );
    const { messages } = parseBody(await response.text());
    assert.deepEqual(messages.map((m) => Int64Value.proto.decode(m)), [5n]);
  });

  it("a text-format content type of a codec the server does not have is UNIMPLEMENTED, naming it (it was a bare 415, UNKNOWN to grpc-web clients)", async () => {
    const response = await post("echo", segments([frame(int64(5n))]), {
      "content-type": "application/grpc-web-text+thrift",
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("grpc-status"), "12");
    assert.match(
      decodeURIComponent(response.headers.get("grpc-message") ?? ""),
      /^Cannot serve content type "application\/grpc-web-text\+thrift": the codecs served are proto and json$/,
    );
    await response.body?.cancel();
  });

  it("a server-streaming call sends each message in text as it is produced, padded on its own", async () => {
    pacedFirst = Promise.withResolvers();
    release = Promise.withResolvers();
    pacedSecond = false;
    const response = await post("paced", segments([frame(int64(3n))]));
    const reader = new TextBodyReader(response.body!);
    const first = await deadline(reader.next(), T, "first message");
    assert.equal(Int64Value.proto.decode(first!.data), 1n);
    // Read while the handler still waits to produce the second.
    assert.equal(pacedSecond, false);
    release.resolve();
    const rest: Frame[] = [];
    for (let f = await reader.next(); f; f = await reader.next()) rest.push(f);
    assert.deepEqual(
      rest.slice(0, -1).map((f) => Int64Value.proto.decode(f.data)),
      [2n, 3n],
    );
    assert.equal(decodeTrailerBlock(rest.at(-1)!.data).get("grpc-status"), "0");
  });

  it("a text response is padded segments: `=` in the middle, each decodable on its own", async () => {
    // Frames of 7 bytes: the four messages (28 bytes, coalesced or not) end
    // in padding, and the trailer frame is always a chunk of its own.
    const response = await post("count", segments([frame(int64(4n))]));
    const text = await response.text();
    assert.match(text, /=[A-Za-z0-9+/]/, `no padding before the end: ${text}`);
    const { messages, trailers } = parseBody(text);
    assert.deepEqual(
      messages.map((m) => Int64Value.proto.decode(m)),
      [1n, 2n, 3n, 4n],
    );
    assert.equal(trailers.get("grpc-status"), "0");
  });

  for (
    const [name, cuts] of [
      ["every character", Array.from({ length: 200 }, (_, i) => i)],
      ["every 2 characters", Array.from({ length: 100 }, (_, i) => 2 * i)],
      [
        "inside groups (3, 7, 11, ...)",
        Array.from({ length: 50 }, (_, i) => 4 * i + 3),
      ],
    ] as const
  ) {
    it(`a client-streaming text request is decoded across chunks split at ${name}`, async () => {
      const values = [1n, 300n, -5n, 1n << 40n, 0n, 77n];
      const text = segments(values.map((v) => frame(int64(v))));
      assert.match(text, /=[A-Za-z0-9+/]/, "padding inside the body");
      const response = await post("sum", streamOf(cut(text, [...cuts])));
      const { messages, trailers } = parseBody(await response.text());
      assert.equal(trailers.get("grpc-status"), "0");
      assert.deepEqual(
        messages.map((m) => Int64Value.proto.decode(m)),
        [values.reduce((a, b) => a + b)],
      );
    });
  }

  it("a client-streaming text request in one unpadded segment, split at random, decodes the same", async () => {
    const values = Array.from({ length: 40 }, (_, i) => BigInt(i * 1000 + 1));
    const whole = new Uint8Array(
      values.flatMap((v) => [...frame(int64(v))]),
    );
    const text = encodeBase64(whole);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.nat({ max: text.length }), { maxLength: 12 }),
        async (cuts) => {
          const response = await post("sum", streamOf(cut(text, cuts)));
          const { messages } = parseBody(await response.text());
          assert.equal(
            Int64Value.proto.decode(messages[0]),
            values.reduce((a, b) => a + b),
          );
        },
      ),
      { numRuns: 15 },
    );
  });

  it("a bidi text call is full duplex: each answer arrives before the next request is sent", async () => {
    const { writer, reader } = await openEchoAll();
    for (let i = 1n; i <= 5n; i++) {
      const answer = await deadline(reader.next(), T, `answer ${i}`);
      assert.equal(Int64Value.proto.decode(answer!.data), i);
      if (i < 5n) {
        // Split inside a group, the second half after a turn.
        const text = enc.encode(segments([frame(int64(i + 1n))]));
        await writer.write(text.subarray(0, 3));
        await writer.write(text.subarray(3));
      }
    }
    await writer.close();
    const end = await reader.next();
    assert.equal(end!.flags, 0x80);
    assert.equal(decodeTrailerBlock(end!.data).get("grpc-status"), "0");
    assert.equal(await reader.next(), undefined);
  });

  it("compressed text requests and responses: gzip frames inside the base64", async () => {
    const message = new Uint8Array(600).fill(0x61);
    const response = await post(
      "echoBytes",
      segments([frame(await gzip(message), 1)]),
      {
        "grpc-encoding": "gzip",
        "grpc-accept-encoding": "gzip",
      },
    );
    assert.equal(response.headers.get("grpc-encoding"), "gzip");
    const frames = framesOf(decodeSegments(await response.text()));
    assert.equal(frames[0].flags, 1, "the answer is compressed");
    assert.ok(frames[0].data.byteLength < 100);
    assert.deepEqual(await gunzip(frames[0].data), message);
    assert.equal(decodeTrailerBlock(frames[1].data).get("grpc-status"), "0");
  });

  it("an error before the first message is Trailers-Only: the status in the headers, no body", async () => {
    const response = await post("fail", segments([frame(int64(1n))]));
    assert.equal(response.status, 200);
    assert.equal(
      response.headers.get("content-type"),
      "application/grpc-web-text+proto",
    );
    assert.equal(response.headers.get("grpc-status"), String(Code.NotFound));
    assert.equal(response.headers.get("grpc-message"), "no such number");
    assert.equal(await response.text(), "");
  });

  it("an error after the first message ends the text body with a trailer frame in base64", async () => {
    const response = await post("failLate", segments([frame(int64(1n))]));
    assert.equal(response.headers.get("grpc-status"), null);
    const { messages, trailers } = parseBody(await response.text());
    assert.deepEqual(messages.map((m) => Int64Value.proto.decode(m)), [7n]);
    assert.equal(trailers.get("grpc-status"), String(Code.DataLoss));
    assert.equal(
      decodeURIComponent(trailers.get("grpc-message")!),
      "lost after 7: ünïcode",
    );
  });

  it("a text body that is not base64 fails the call with INVALID_ARGUMENT naming the character; the handler is never called, onError never told", async () => {
    const before = started.get("echo") ?? 0;
    told.length = 0;
    const response = await post("echo", "AAAAAAA!AAAA");
    assert.equal(response.status, 200);
    assert.equal(
      response.headers.get("grpc-status"),
      String(Code.InvalidArgument),
    );
    assert.equal(
      decodeURIComponent(response.headers.get("grpc-message")!),
      'Cannot decode gRPC-Web text request: character "!" at offset 7 is not base64',
    );
    assert.equal(await response.text(), "");
    assert.equal(started.get("echo") ?? 0, before);
    assert.deepEqual(told, []);
  });

  it("a text body that ends inside a group of 4 fails with INVALID_ARGUMENT", async () => {
    const text = segments([frame(int64(1n))]);
    const response = await post("echo", text + "QUI");
    assert.equal(
      response.headers.get("grpc-status"),
      String(Code.InvalidArgument),
    );
    assert.equal(
      decodeURIComponent(response.headers.get("grpc-message")!),
      "Cannot decode gRPC-Web text request: the text ends inside a group of 4 characters (3 of them)",
    );
    await response.body?.cancel();
  });

  it("invalid base64 in the middle of a bidi call fails its requests with INVALID_ARGUMENT, in the trailer frame", async () => {
    echoAllError = Promise.withResolvers();
    told.length = 0;
    const { writer, reader } = await openEchoAll();
    assert.equal(Int64Value.proto.decode((await reader.next())!.data), 1n);
    writer.write(enc.encode("AAAA=AAA")).catch(() => {});
    const end = await deadline(reader.next(), T, "trailer frame");
    const trailers = decodeTrailerBlock(end!.data);
    assert.equal(trailers.get("grpc-status"), String(Code.InvalidArgument));
    assert.equal(
      decodeURIComponent(trailers.get("grpc-message")!),
      'Cannot decode gRPC-Web text request: character "=" at offset 16 cannot be the first or second of a group of 4',
    );
    const error = await deadline(echoAllError.promise, T, "handler's error");
    assert.ok(error instanceof RpcError);
    assert.equal(error.code, Code.InvalidArgument);
    assert.deepEqual(told, []);
    await writer.abort(new Error("done")).catch(() => {});
  });

  it("a text message within maxMessageBytes arrives whole, one just over it is RESOURCE_EXHAUSTED", async () => {
    // The limit is the decoded message's (its base64 is a third longer).
    const within = new Uint8Array(MAX_MESSAGE_BYTES).fill(7);
    const over = new Uint8Array(MAX_MESSAGE_BYTES + 1).fill(7);
    const ok = await post("blob", encodeBase64(frame(within)));
    const { messages, trailers } = parseBody(await ok.text());
    assert.equal(trailers.get("grpc-status"), "0");
    assert.deepEqual([...messages[0]], [MAX_MESSAGE_BYTES & 0xff]);
    const refused = await post("blob", encodeBase64(frame(over)));
    const status = refused.headers.get("grpc-status") ??
      parseBody(await refused.text()).trailers.get("grpc-status");
    assert.equal(status, String(Code.ResourceExhausted));
    await refused.body?.cancel().catch(() => {});
  });
});

describe("gRPC-Web text format in process", () => {
  it("createUniversalHandler reads a text request through a body that is no byte stream, and one that is", async () => {
    const handler = createUniversalHandler(impl);
    const text = enc.encode(segments([frame(int64(2n)), frame(int64(3n))]));
    const bodies = [
      streamOf([text.subarray(0, 5), text.subarray(5)]),
      new ReadableStream<Uint8Array>({
        type: "bytes",
        start(controller) {
          controller.enqueue(text.slice(0, 9));
          controller.enqueue(text.slice(9));
          controller.close();
        },
      }),
    ];
    for (const body of bodies) {
      const response = await handler({
        method: "POST",
        url: "http://x/test.v1.TextService/sum",
        headers: new Headers({ "content-type": "application/grpc-web-text" }),
        body,
      });
      const chunks = await Array.fromAsync(response.body!);
      const { messages } = parseBody(
        chunks.map((c) => dec.decode(c)).join(""),
      );
      assert.equal(Int64Value.proto.decode(messages[0]), 5n);
    }
  });

  it("a decoded frame over maxMessageBytes is RESOURCE_EXHAUSTED at its prefix, while the text goes on without end", async () => {
    // In process: over HTTP/1.1, Deno's server waits for the end of an
    // endless upload before it shuts down, whatever the format.
    const handler = createUniversalHandler(impl, {
      maxMessageBytes: MAX_MESSAGE_BYTES,
    });
    // The prefix (one byte over the limit) and a byte of data: 8
    // characters, no padding; then base64 forever.
    const head = frame(new Uint8Array(1));
    new DataView(head.buffer).setUint32(1, MAX_MESSAGE_BYTES + 1);
    let pulls = 0;
    const cancelled = Promise.withResolvers<unknown>();
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(
          pulls++ === 0
            ? enc.encode(encodeBase64(head))
            : enc.encode("A".repeat(4096)),
        );
      },
      cancel: (reason) => cancelled.resolve(reason),
    });
    const response = await deadline(
      handler({
        method: "POST",
        url: "http://x/test.v1.TextService/sum",
        headers: new Headers({ "content-type": "application/grpc-web-text" }),
        body: endless,
      }),
      T,
      "answer",
    );
    assert.equal(
      response.headers.get("grpc-status"),
      String(Code.ResourceExhausted),
    );
    assert.equal(
      decodeURIComponent(response.headers.get("grpc-message")!),
      `Cannot decode frame: length ${
        MAX_MESSAGE_BYTES + 1
      } exceeds maxMessageBytes ${MAX_MESSAGE_BYTES}`,
    );
    assert.equal(response.body, undefined);
    await deadline(cancelled.promise, T, "the body's cancel");
    assert.ok(pulls <= 4, `${pulls} pulls of the request body`);
  });
});
