// The library where ReadableStream is not async-iterable, as in WebKit
// (Safari; WebKitGTK 2.50.6 has neither
// `ReadableStream.prototype[Symbol.asyncIterator]` nor `values`): each test
// but the last removes both for its duration (Deno's and Bun's own fetch,
// serve, pipeThrough and CompressionStream work without them). RPC calls
// with sendCompression (every one failed "undefined is not a function"),
// the reflection service's bidi stream, and `for await` and
// `Array.fromAsync` (which gave `[]`) over the streams the library hands
// out, with the standard iterator's cancel, preventCancel and lock
// semantics.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  ByteLimitStream,
  DuplexStream,
  MapStream,
  ProgressStream,
  ReadAheadStream,
  ScanStream,
} from "../lib/streams/mod.ts";
import {
  createSseHandler,
  encodeMultipart,
  fetchEventStream,
  MultipartStream,
  parseMultipart,
  SseDecoderStream,
  SseEncoderStream,
} from "../lib/http/mod.ts";
import {
  createClient,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  createUniversalHandler,
  createUniversalHandlerClient,
  defineService,
  FrameDecoderStream,
  FrameEncoderStream,
  type HttpClient,
  implementService,
  Int64Value,
  type MessageType,
  type Transport,
} from "../lib/rpc/mod.ts";
import {
  createClient as createProtobufClient,
  createReflectionService,
  implementService as implementProtobufService,
} from "../lib/protobuf/mod.ts";
import { ServerReflection } from "../lib/protobuf/_reflection/gen/grpc/reflection/v1/reflection_pb.ts";
import { StreamingCalcService } from "../examples/gen/streaming_calc_pb.ts";
import { deadline, withServer } from "./_helpers.ts";
import { concat } from "./_fuzz.ts";

const T = 30_000;

/**
 * Runs `fn` with `ReadableStream.prototype[Symbol.asyncIterator]` and
 * `values` removed, as WebKit lacks them, and puts them back after.
 */
function inWebKit(fn: () => Promise<void>): () => Promise<void> {
  return async () => {
    const proto = ReadableStream.prototype;
    const saved = [Symbol.asyncIterator, "values"].map((key) =>
      [key, Object.getOwnPropertyDescriptor(proto, key)] as const
    );
    for (const [key] of saved) {
      delete (proto as unknown as Record<PropertyKey, unknown>)[key];
    }
    try {
      assert.equal(
        typeof (new ReadableStream() as Partial<AsyncIterable<unknown>>)[
          Symbol.asyncIterator
        ],
        "undefined",
      );
      await fn();
    } finally {
      for (const [key, descriptor] of saved) {
        if (descriptor) Object.defineProperty(proto, key, descriptor);
      }
    }
  };
}

/** Reads `stream` both ways: `for await` on one, `Array.fromAsync` on another. */
async function readBoth<T>(
  make: () => ReadableStream<T>,
): Promise<{ loop: T[]; fromAsync: T[] }> {
  const loop: T[] = [];
  for await (const value of make()) loop.push(value);
  return { loop, fromAsync: await Array.fromAsync(make()) };
}

/** Asserts that both ways of reading `make()` give `expected`. */
async function assertReads<T>(
  make: () => ReadableStream<T>,
  expected: T[],
  what: string,
): Promise<void> {
  const { loop, fromAsync } = await readBoth(make);
  assert.deepEqual(loop, expected, `${what}: for await`);
  assert.deepEqual(fromAsync, expected, `${what}: Array.fromAsync`);
}

/** Asserts that both ways of reading `make()` give the bytes `expected`. */
async function assertReadsBytes(
  make: () => ReadableStream<Uint8Array>,
  expected: Uint8Array,
  what: string,
): Promise<void> {
  const { loop, fromAsync } = await readBoth(make);
  assert.deepEqual(concat(loop), expected, `${what}: for await`);
  assert.deepEqual(concat(fromAsync), expected, `${what}: Array.fromAsync`);
}

/** A message of UTF-8 text. */
const Text: MessageType<string> = {
  typeName: "test.v1.Text",
  proto: {
    encode: (text) => new TextEncoder().encode(text),
    decode: (bytes) => new TextDecoder().decode(bytes),
  },
};

const WebKitService = defineService("test.v1.WebKitService", {
  repeat: { kind: "unary", input: Text, output: Text },
  count: { kind: "server-streaming", input: Int64Value, output: Int64Value },
  total: { kind: "client-streaming", input: Int64Value, output: Int64Value },
});

const webkitService = implementService(WebKitService, {
  repeat: (text) => text.repeat(50),
  async *count(n) {
    for (let i = 1n; i <= n; i++) yield i;
  },
  // Its requests read as the handler types promise, with for await.
  async total(requests) {
    let total = 0n;
    for await (const n of requests) total += n;
    return total;
  },
});

/**
 * An in-process HTTP client for `handler` that records the content codings
 * of the requests and of the answers.
 */
function recording(handler: ReturnType<typeof createUniversalHandler>) {
  const codings: string[] = [];
  const inner = createUniversalHandlerClient(handler);
  const client: HttpClient = async (request) => {
    const coding = (headers: Headers) =>
      headers.get("content-encoding") ?? headers.get("grpc-encoding") ??
        "identity";
    codings.push(`request ${coding(request.headers)}`);
    const response = await inner(request);
    codings.push(`response ${coding(response.headers)}`);
    return response;
  };
  return { client, codings };
}

const TRANSPORTS: [
  string,
  (options: {
    baseUrl: string;
    httpClient: HttpClient;
    sendCompression: "gzip";
    compressMinBytes: number;
  }) => Transport,
][] = [
  ["Connect", createConnectTransport],
  ["gRPC-Web", createGrpcWebTransport],
];

describe("RPC where ReadableStream is not async-iterable", () => {
  for (const [name, transport] of TRANSPORTS) {
    it(
      `createClient over ${name} with sendCompression gzip and compressMinBytes 0 compresses each request and answer (compressMessage read its CompressionStream with for await: every call failed "undefined is not a function" in WebKit)`,
      inWebKit(async () => {
        const { client: httpClient, codings } = recording(
          createUniversalHandler([webkitService], { compressMinBytes: 0 }),
        );
        const client = createClient(
          WebKitService,
          transport({
            baseUrl: "http://in-process",
            httpClient,
            sendCompression: "gzip",
            compressMinBytes: 0,
          }),
        );
        const text = "hello, WebKit ".repeat(20);
        assert.equal(
          await deadline(client.repeat(text), T, "unary call"),
          text.repeat(50),
        );
        assert.deepEqual(codings, ["request gzip", "response gzip"]);
      }),
    );
  }

  it(
    "createReflectionService answers over its bidi stream (it read its requests with for await, which threw in a page running it in process)",
    inWebKit(async () => {
      const calc = implementProtobufService(StreamingCalcService, {
        sum: () => ({ value: 0n }),
        incrementalSum: () => [],
      });
      const client = createProtobufClient(
        ServerReflection,
        createGrpcTransport({
          baseUrl: "http://in-process",
          httpClient: createUniversalHandlerClient(
            createUniversalHandler([
              calc,
              ...createReflectionService([StreamingCalcService]),
            ]),
          ),
        }),
      );
      const call = client.serverReflectionInfo();
      await call.send({ messageRequest: { case: "listServices", value: "" } });
      const first = await deadline(call.receive(), T, "reflection answer");
      assert.ok(!first.done);
      assert.equal(first.value.messageResponse.case, "listServicesResponse");
      assert.deepEqual(
        first.value.messageResponse.value.service.map((s) => s.name),
        [
          StreamingCalcService.typeName,
          "grpc.reflection.v1.ServerReflection",
          "grpc.reflection.v1alpha.ServerReflection",
        ],
      );
      await call.send({
        messageRequest: {
          case: "fileContainingSymbol",
          value: StreamingCalcService.typeName,
        },
      });
      const second = await deadline(call.receive(), T, "reflection answer");
      assert.ok(!second.done);
      assert.equal(second.value.messageResponse.case, "fileDescriptorResponse");
      await call.complete();
      assert.ok((await deadline(call.receive(), T, "end of stream")).done);
    }),
  );

  it(
    "a client-streaming handler reads its requests with for await (a page serving calls in process)",
    inWebKit(async () => {
      const client = createClient(
        WebKitService,
        createConnectTransport({
          baseUrl: "http://in-process",
          httpClient: createUniversalHandlerClient(
            createUniversalHandler([webkitService]),
          ),
        }),
      );
      const call = client.total();
      for (const n of [1n, 2n, 3n]) await call.send(n);
      await call.complete();
      const answer = await deadline(call.receive(), T, "total");
      assert.equal(answer, 6n);
    }),
  );

  it(
    "call.responses of a server-streaming call is read by for await and Array.fromAsync",
    inWebKit(async () => {
      const client = createClient(
        WebKitService,
        createConnectTransport({
          baseUrl: "http://in-process",
          httpClient: createUniversalHandlerClient(
            createUniversalHandler([webkitService]),
          ),
        }),
      );
      await assertReads(
        () => client.count(3n).responses,
        [1n, 2n, 3n],
        "count",
      );
      // The call itself, whose iterator is its own, as before.
      const values: bigint[] = [];
      for await (const value of client.count(2n)) values.push(value);
      assert.deepEqual(values, [1n, 2n]);
    }),
  );
});

describe("HTTP streams where ReadableStream is not async-iterable", () => {
  it(
    "fetchEventStream is read by for await and by Array.fromAsync, against a server (for await threw is not a function; Array.fromAsync gave [] and never connected)",
    inWebKit(async () => {
      const seen: string[] = [];
      const handler = createSseHandler((_request, { lastEventId }) => {
        seen.push(lastEventId);
        if (lastEventId !== "") {
          // The end of the feed: a 204 stops the client for good.
          const done = new Response(null, { status: 204 });
          throw Object.assign(new Error("done"), { getResponse: () => done });
        }
        return (async function* () {
          yield { retry: 5 };
          for (let i = 1; i <= 3; i++) yield { id: String(i), data: `e${i}` };
        })();
      }, { keepAliveMs: 0 });
      await withServer(handler, async (server) => {
        const { loop, fromAsync } = await deadline(
          readBoth(() => fetchEventStream(server.url, { retryDelayMs: 5 })),
          T,
          "event streams",
        );
        const expected = [["1", "e1"], ["2", "e2"], ["3", "e3"]];
        assert.deepEqual(loop.map((m) => [m.id, m.data]), expected);
        assert.deepEqual(fromAsync.map((m) => [m.id, m.data]), expected);
        assert.deepEqual(seen, ["", "3", "", "3"]);
      });
    }),
  );

  it(
    "SseEncoderStream and SseDecoderStream give readables that for await and Array.fromAsync read",
    inWebKit(async () => {
      const events = [{ id: "1", data: "one" }, { event: "x", data: "two" }];
      const encoded = () =>
        ReadableStream.from(events).pipeThrough(
          new SseEncoderStream({ keepAliveMs: 0 }),
        );
      const text = "id: 1\ndata: one\n\nevent: x\ndata: two\n\n";
      const { loop, fromAsync } = await readBoth(encoded);
      const decode = (chunks: Uint8Array[]) =>
        chunks.map((c) => new TextDecoder().decode(c)).join("");
      assert.equal(decode(loop), text);
      assert.equal(decode(fromAsync), text);
      await assertReads(
        () => encoded().pipeThrough(new SseDecoderStream()),
        [
          { id: "1", event: "message", data: "one" },
          { id: "1", event: "x", data: "two" },
        ],
        "SseDecoderStream",
      );
    }),
  );

  it(
    "MultipartStream, parseMultipart and encodeMultipart's body are read by for await and Array.fromAsync",
    inWebKit(async () => {
      const encoded = (fields: [string, string][]) =>
        encodeMultipart(fields.map(([name, value]) => ({ name, value })), {
          boundary: "webkit",
        });
      const fields: [string, string][] = [["a", ""], ["b", "text"]];
      const bytes = new Uint8Array(
        await new Response(encoded(fields).body).arrayBuffer(),
      );
      await assertReadsBytes(
        () => encoded(fields).body,
        bytes,
        "encodeMultipart's body",
      );
      const request = (body: Uint8Array<ArrayBuffer>) =>
        new Request("http://localhost/", {
          method: "POST",
          headers: { "content-type": encoded([]).contentType },
          body,
        });
      // A part's body holds the next part back: each is read in the loop.
      const read: string[] = [];
      for await (const part of parseMultipart(request(bytes))) {
        read.push(`${part.name}=${await part.text()}`);
      }
      assert.deepEqual(read, ["a=", "b=text"]);
      // Parts with empty bodies do not: Array.fromAsync takes them all.
      const empty = new Uint8Array(
        await new Response(encoded([["c", ""], ["d", ""]]).body).arrayBuffer(),
      );
      const parts = await Array.fromAsync(parseMultipart(request(empty)));
      assert.deepEqual(parts.map((p) => p.name), ["c", "d"]);
      const direct = await Array.fromAsync(
        new Response(empty).body!.pipeThrough(new MultipartStream("webkit")),
      );
      assert.deepEqual(direct.map((p) => p.name), ["c", "d"]);
    }),
  );
});

describe("stream operators where ReadableStream is not async-iterable", () => {
  it(
    "MapStream, ScanStream, ByteLimitStream, ProgressStream and ReadAheadStream give readables that for await and Array.fromAsync read",
    inWebKit(async () => {
      const numbers = () => ReadableStream.from([1, 2, 3]);
      await assertReads(
        () => numbers().pipeThrough(new MapStream((n: number) => n * 2)),
        [2, 4, 6],
        "MapStream",
      );
      await assertReads(
        () => numbers().pipeThrough(new ScanStream((a, n: number) => a + n, 0)),
        [1, 3, 6],
        "ScanStream",
      );
      const bytes = () =>
        ReadableStream.from([new Uint8Array([1, 2]), new Uint8Array([3])]);
      const expected = [new Uint8Array([1, 2]), new Uint8Array([3])];
      await assertReads(
        () => bytes().pipeThrough(new ByteLimitStream(3)),
        expected,
        "ByteLimitStream",
      );
      await assertReads(
        () => bytes().pipeThrough(new ProgressStream(() => {})),
        expected,
        "ProgressStream",
      );
      await assertReads(
        () => bytes().pipeThrough(new ReadAheadStream()),
        expected,
        "ReadAheadStream",
      );
    }),
  );

  it(
    "FrameEncoderStream and FrameDecoderStream give readables that for await and Array.fromAsync read",
    inWebKit(async () => {
      const frames = [{ flags: 0, data: new Uint8Array([7, 8]) }];
      const encoded = () => {
        const encoder = new FrameEncoderStream();
        const writer = encoder.writable.getWriter();
        writer.write(frames[0]).catch(() => {});
        writer.close().catch(() => {});
        return encoder.readable;
      };
      const wire = new Uint8Array([0, 0, 0, 0, 2, 7, 8]);
      await assertReadsBytes(encoded, wire, "FrameEncoderStream");
      await assertReads(
        () => encoded().pipeThrough(new FrameDecoderStream()),
        frames,
        "FrameDecoderStream",
      );
    }),
  );

  it(
    "DuplexStream's readable is read by for await and Array.fromAsync",
    inWebKit(async () => {
      const duplex = () =>
        new DuplexStream(
          ReadableStream.from([new Uint8Array([1]), new Uint8Array([2])]),
          new WritableStream(),
        ).readable;
      await assertReads(
        duplex,
        [new Uint8Array([1]), new Uint8Array([2])],
        "DuplexStream.readable",
      );
    }),
  );
});

describe("the async iterator the library gives its streams in WebKit", () => {
  /**
   * A DuplexStream's readable over a source of [1], [2], [3], ... that
   * records its cancel (which the readable passes on at once).
   */
  function source() {
    const cancelled: unknown[] = [];
    let i = 0;
    const input = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(new Uint8Array([++i]));
      },
      cancel(reason) {
        cancelled.push(reason);
      },
    }, { highWaterMark: 0 });
    const stream = new DuplexStream(input, new WritableStream()).readable;
    return { stream, cancelled };
  }

  it(
    "leaving a for await loop early cancels the stream and releases its lock",
    inWebKit(async () => {
      const { stream, cancelled } = source();
      const got: number[] = [];
      for await (const chunk of stream) {
        got.push(chunk[0]);
        if (chunk[0] === 2) break;
      }
      assert.deepEqual(got, [1, 2]);
      assert.equal(stream.locked, false);
      assert.deepEqual(cancelled, [undefined]);
    }),
  );

  it(
    "values({ preventCancel: true }) leaves a stream left early uncancelled and unlocked, to be read on",
    inWebKit(async () => {
      const { stream, cancelled } = source();
      for await (const chunk of stream.values({ preventCancel: true })) {
        if (chunk[0] === 1) break;
      }
      assert.equal(stream.locked, false);
      assert.deepEqual(cancelled, []);
      const reader = stream.getReader();
      assert.deepEqual(await reader.read(), {
        done: false,
        value: new Uint8Array([2]),
      });
      await reader.cancel("done");
      assert.deepEqual(cancelled, ["done"]);
    }),
  );

  it(
    "return() before any read cancels the stream with its value, and values is [Symbol.asyncIterator]",
    inWebKit(async () => {
      const { stream, cancelled } = source();
      assert.equal(stream.values, stream[Symbol.asyncIterator]);
      const iterator = stream[Symbol.asyncIterator]();
      assert.equal(stream.locked, true);
      assert.equal(iterator[Symbol.asyncIterator](), iterator);
      assert.deepEqual(await iterator.return!("why"), {
        done: true,
        value: "why",
      });
      assert.equal(stream.locked, false);
      assert.deepEqual(cancelled, ["why"]);
      assert.deepEqual(await iterator.next(), { done: true, value: undefined });
    }),
  );

  it(
    "return() made while a read waits cancels the stream once that read is done",
    inWebKit(async () => {
      const { stream, cancelled } = source();
      const iterator = stream.values();
      const first = iterator.next();
      const returned = iterator.return!("later");
      assert.deepEqual(await first, {
        done: false,
        value: new Uint8Array([1]),
      });
      assert.deepEqual(await returned, { done: true, value: "later" });
      assert.deepEqual(cancelled, ["later"]);
      assert.equal(stream.locked, false);
    }),
  );

  it(
    "a stream's error is thrown by the loop, and its lock released; a locked stream refuses a second iterator",
    inWebKit(async () => {
      const boom = new RangeError("boom");
      const stream = ReadableStream.from([1, 2]).pipeThrough(
        new MapStream((n: number) => {
          if (n === 2) throw boom;
          return n;
        }),
      );
      const got: number[] = [];
      await assert.rejects(async () => {
        for await (const n of stream) got.push(n);
      }, boom);
      assert.deepEqual(got, [1]);
      assert.equal(stream.locked, false);
      const other = new MapStream((n: number) => n).readable;
      other.getReader();
      assert.throws(() => other[Symbol.asyncIterator](), TypeError);
    }),
  );

  it(
    "a stream read to its end is released, and next() after the end is done",
    inWebKit(async () => {
      const stream = ReadableStream.from([1]).pipeThrough(
        new MapStream((n: number) => n),
      );
      const iterator = stream.values();
      assert.deepEqual(await iterator.next(), { done: false, value: 1 });
      assert.deepEqual(await iterator.next(), { done: true, value: undefined });
      assert.equal(stream.locked, false);
      assert.deepEqual(await iterator.next(), { done: true, value: undefined });
    }),
  );

  it(
    "calls settle in call order, as the standard's (Web IDL's ongoing promise): an error is thrown by one next() only, a next() after return() waits for it; values has length 0, refuses options that are no object, and its iterator is an async iterator",
    inWebKit(async () => {
      const boom = new RangeError("boom");
      const failing = () =>
        ReadableStream.from([1, 2]).pipeThrough(
          new MapStream((n: number) => {
            if (n === 2) throw boom;
            return n;
          }),
        );
      // Three next() at once; the second read fails.
      const iterator = failing().values();
      const settled = await Promise.allSettled([
        iterator.next(),
        iterator.next(),
        iterator.next(),
      ]);
      assert.deepEqual(settled, [
        { status: "fulfilled", value: { done: false, value: 1 } },
        { status: "rejected", reason: boom },
        { status: "fulfilled", value: { done: true, value: undefined } },
      ]);
      // next(), return(), next(): settled in that order.
      const { stream, cancelled } = source();
      const order: string[] = [];
      const it = stream.values();
      await Promise.all([
        it.next().then((r) => order.push(`next ${r.value?.[0]}`)),
        it.return!("r").then((r) => order.push(`return ${r.value}`)),
        it.next().then((r) => order.push(`next done ${r.done}`)),
      ]);
      assert.deepEqual(order, ["next 1", "return r", "next done true"]);
      assert.deepEqual(cancelled, ["r"]);
      assert.equal(stream.values.length, 0);
      assert.throws(
        () => source().stream.values("x" as unknown as undefined),
        TypeError,
      );
      const asyncIteratorPrototype = Object.getPrototypeOf(
        Object.getPrototypeOf(async function* () {}).prototype,
      );
      assert.ok(
        Object.prototype.isPrototypeOf.call(
          asyncIteratorPrototype,
          source().stream.values(),
        ),
      );
    }),
  );

  it("where ReadableStream.prototype has an iterator, the library's streams get none of their own", async () => {
    const readables: ReadableStream<unknown>[] = [
      new MapStream((n: number) => n).readable,
      new SseDecoderStream().readable,
      new FrameEncoderStream().readable,
      fetchEventStream("http://127.0.0.1:9/", { maxRetries: 0 }),
    ];
    for (const readable of readables) {
      assert.ok(!Object.hasOwn(readable, Symbol.asyncIterator));
      assert.ok(!Object.hasOwn(readable, "values"));
      await readable.cancel();
    }
  });
});
