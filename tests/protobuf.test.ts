// @sluice/streams/protobuf: message types from protobuf-es descriptors
// (binary and proto3 JSON, unknown fields), services served and called
// straight from generated code (tests/gen/chat_pb.ts) over Connect (binary
// and JSON), gRPC-Web and native gRPC, malformed and oversized messages, and
// typed error details.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  DurationSchema,
  type Timestamp,
  TimestampSchema,
  ValueSchema,
} from "@bufbuild/protobuf/wkt";
import {
  createClient,
  createMessageType,
  implementService,
  packErrorDetail,
  unpackErrorDetails,
} from "../lib/protobuf/mod.ts";
import {
  Code,
  createClient as rpcCreateClient,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  createRpcHandler,
  createUniversalHandler,
  createUniversalHandlerClient,
  defineService,
  implementService as rpcImplementService,
  Int64Value,
  RpcError,
  type ServiceImplementation,
  type Transport,
} from "../lib/rpc/mod.ts";
import { createHttp2Client, serveHttp2 } from "../lib/runtime/grpc_node.ts";
import {
  type ChatMessage,
  ChatMessageSchema,
  ChatService,
  Mood,
} from "./gen/chat_pb.ts";
import { RetryInfoSchema } from "./gen/google/rpc/retry_info_pb.ts";
import { reply, sluiceChat } from "./_chat_peers.ts";
import { deadline, startServer } from "./_helpers.ts";

const T = 20_000;
const TYPE = "sluice.test.chat.v1.ChatMessage";

const SAMPLE = {
  text: "hello",
  numbers: [1, 2, 3, -4],
  author: { name: "ada", id: 7 },
  mood: Mood.GRUMPY,
  tags: { lang: "en", topic: "rpc" },
  payload: new Uint8Array([1, 2, 255]),
};

/** Field 99 (length-delimited "later"), unknown to chat.proto. */
const UNKNOWN_FIELD = new Uint8Array([
  0x9a,
  0x06,
  5,
  ...new TextEncoder().encode("later"),
]);

/** A ChatMessage as a newer schema would write it: with field 99. */
function withUnknownField(init = SAMPLE): Uint8Array {
  const known = toBinary(ChatMessageSchema, create(ChatMessageSchema, init));
  const bytes = new Uint8Array(known.length + UNKNOWN_FIELD.length);
  bytes.set(known);
  bytes.set(UNKNOWN_FIELD, known.length);
  return bytes;
}

function endsWith(bytes: Uint8Array, tail: Uint8Array): boolean {
  if (bytes.length < tail.length) return false;
  const start = bytes.length - tail.length;
  return tail.every((b, i) => bytes[start + i] === b);
}

const Chat = createMessageType(ChatMessageSchema);
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

describe("createMessageType", () => {
  it("createMessageType round-trips every field kind in binary", () => {
    const message = Chat.proto.decode(Chat.proto.encode(SAMPLE));
    assert.equal(message.$typeName, TYPE);
    assert.equal(message.text, "hello");
    assert.deepEqual(message.numbers, [1, 2, 3, -4]);
    assert.equal(message.author?.name, "ada");
    assert.equal(message.author?.id, 7);
    assert.equal(message.mood, Mood.GRUMPY);
    assert.deepEqual(message.tags, { lang: "en", topic: "rpc" });
    assert.deepEqual([...message.payload], [1, 2, 255]);
  });

  it("createMessageType encodes a plain init object like the message it makes", () => {
    assert.deepEqual(
      Chat.proto.encode(SAMPLE),
      toBinary(ChatMessageSchema, create(ChatMessageSchema, SAMPLE)),
    );
  });

  it("createMessageType keeps unknown binary fields and writes them back", () => {
    const message = Chat.proto.decode(withUnknownField());
    assert.equal(message.$unknown?.length, 1);
    assert.equal(message.$unknown?.[0].no, 99);
    assert.ok(endsWith(Chat.proto.encode(message), UNKNOWN_FIELD));
  });

  it("createMessageType writes proto3 JSON", () => {
    assert.deepEqual(JSON.parse(text(Chat.json.encode(SAMPLE))), {
      text: "hello",
      numbers: [1, 2, 3, -4],
      author: { name: "ada", id: 7 },
      mood: "MOOD_GRUMPY",
      tags: { lang: "en", topic: "rpc" },
      payload: "AQL/",
    });
  });

  it("createMessageType writes well-known types in their JSON forms", () => {
    const Duration = createMessageType(DurationSchema);
    assert.equal(text(Duration.json.encode({ seconds: 3n })), '"3s"');
    assert.equal(
      Duration.json.decode(Duration.json.encode({ seconds: 3n })).seconds,
      3n,
    );
  });

  it("createMessageType ignores unknown JSON fields by default, as Connect does", () => {
    const json = new TextEncoder().encode('{"text":"hi","newField":1}');
    assert.equal(Chat.json.decode(json).text, "hi");
  });

  it("createMessageType refuses unknown JSON fields with ignoreUnknownFields: false", () => {
    const strict = createMessageType(ChatMessageSchema, {
      jsonReadOptions: { ignoreUnknownFields: false },
    });
    const json = new TextEncoder().encode('{"text":"hi","newField":1}');
    assert.throws(() => strict.json.decode(json), /newField/);
  });

  it("createMessageType keeps its defaults for options given as undefined (they replaced them: unknown fields refused, and no recursion limit, a deep value overflowing the stack)", () => {
    const json = new TextEncoder().encode('{"text":"hi","newField":1}');
    const loose = createMessageType(ChatMessageSchema, {
      jsonReadOptions: { ignoreUnknownFields: undefined },
      binaryReadOptions: { readUnknownFields: undefined },
    });
    assert.equal(loose.json.decode(json).text, "hi");
    const bytes = toBinary(
      ChatMessageSchema,
      create(ChatMessageSchema, SAMPLE),
    );
    const withUnknown = new Uint8Array([...bytes, 0xa0, 0x06, 0x01]);
    assert.equal(loose.proto.decode(withUnknown).$unknown?.length, 1);
    const Value = createMessageType(ValueSchema, {
      jsonReadOptions: { recursionLimit: undefined },
    });
    const deep = new TextEncoder().encode("[".repeat(150) + "]".repeat(150));
    assert.throws(
      () => Value.json.decode(deep),
      /maximum recursion depth of 100/,
    );
  });

  it("createMessageType throws on a truncated binary message", () => {
    const bytes = Chat.proto.encode(SAMPLE);
    assert.throws(() => Chat.proto.decode(bytes.subarray(0, 3)));
  });

  it("createMessageType refuses JSON that is not UTF-8", () => {
    assert.throws(
      () => Chat.json.decode(new Uint8Array([0x22, 0xff, 0x22])),
      SyntaxError,
    );
  });
});

describe("implementService and createClient with a protobuf-es service", () => {
  it("implementService takes wire names from the descriptor and keys by ECMAScript name", () => {
    const implementation = implementService(ChatService, {
      chat: (messages) => messages.pipeThrough(new TransformStream()),
      echo: (m) => m,
    });
    assert.deepEqual([...implementation.handlers.keys()].sort(), [
      "/sluice.test.chat.v1.ChatService/Chat",
      "/sluice.test.chat.v1.ChatService/Echo",
    ]);
    assert.equal(implementation.service.methods.chat.kind, "bidi");
    assert.equal(implementation.service.methods.echo.kind, "unary");
    assert.equal(implementation.service.methods.echo.input.typeName, TYPE);
  });

  it("implementService refuses a service with a method left out", () => {
    assert.throws(
      () =>
        implementService(
          ChatService,
          { echo: (m: ChatMessage) => m } as never,
        ),
      /Cannot implement sluice\.test\.chat\.v1\.ChatService: no handler for method chat/,
    );
  });

  it("implementService names a handler the service lacks when one is missing: a misspelt or renamed method", () => {
    assert.throws(
      () =>
        implementService(
          ChatService,
          { echo: (m: ChatMessage) => m, Chat: () => {} } as never,
        ),
      {
        name: "TypeError",
        message:
          "Cannot implement sluice.test.chat.v1.ChatService: no handler for method chat (the handlers have Chat, which the service lacks)",
      },
    );
  });

  it("@sluice/streams/rpc's implementService and createClient, given a protobuf-es service descriptor, point to this entry point", () => {
    assert.throws(() => rpcImplementService(ChatService as never, {}), {
      name: "TypeError",
      message:
        "Cannot implement service: sluice.test.chat.v1.ChatService is a protobuf-es service descriptor; use implementService from @sluice/streams/protobuf",
    });
    assert.throws(
      () =>
        rpcCreateClient(
          ChatService as never,
          createConnectTransport({ baseUrl: "http://127.0.0.1:1" }),
        ),
      {
        name: "TypeError",
        message:
          "Cannot create client: sluice.test.chat.v1.ChatService is a protobuf-es service descriptor; use createClient from @sluice/streams/protobuf",
      },
    );
  });

  it("implementService and createClient still take a hand-written definition", async () => {
    const Calc = defineService("Calc", {
      double: { kind: "unary", input: Int64Value, output: Int64Value },
    });
    const implementation = implementService(Calc, { double: (v) => v * 2n });
    const server = await startServer(createRpcHandler(implementation));
    try {
      const client = createClient(
        Calc,
        createConnectTransport({ baseUrl: server.url.origin }),
      );
      assert.equal(await deadline(client.double(21n), T), 42n);
    } finally {
      await server.shutdown();
    }
  });
});

describe("a hand-written service over createMessageType", () => {
  // Types: what a handler receives and a client reads is a decoded message
  // (MessageShape, with $typeName, its fields set); what a handler returns
  // and a client sends may be a plain init object. They were both typed
  // `MessageShape | MessageInit` (the codec writes the wider type), so a
  // handler could not pass its request to a function taking the message,
  // and a client's result had every field possibly undefined: this file
  // failed to type-check.
  const Timestamp = createMessageType(TimestampSchema);
  const Clock = defineService("example.Clock", {
    shift: { kind: "unary", input: Timestamp, output: Timestamp },
    latest: { kind: "client-streaming", input: Timestamp, output: Timestamp },
    ticks: { kind: "server-streaming", input: Timestamp, output: Timestamp },
    echo: { kind: "bidi", input: Timestamp, output: Timestamp },
  });
  /** Takes a decoded message only (not an init object). */
  const secondsOf = (message: Timestamp): bigint => message.seconds;
  const implementation = rpcImplementService(Clock, {
    shift: (input) => ({ seconds: secondsOf(input) + 60n, nanos: input.nanos }),
    latest: async (inputs) => {
      let last: Timestamp | undefined;
      for await (const input of inputs) last = input;
      return last ?? { seconds: -1n };
    },
    async *ticks(input) {
      for (let i = 1n; i <= 3n; i++) yield { seconds: secondsOf(input) + i };
    },
    echo: async function* (inputs) {
      for await (const input of inputs) {
        yield create(TimestampSchema, { seconds: secondsOf(input) * 2n });
      }
    },
  });

  it("its handlers read messages and return init objects, its client sends init objects and reads messages, over every kind", async () => {
    const client = rpcCreateClient(
      Clock,
      createConnectTransport({
        baseUrl: "http://in-process",
        httpClient: createUniversalHandlerClient(
          createUniversalHandler(implementation),
        ),
      }),
    );
    const shifted = await deadline(client.shift({ seconds: 1n, nanos: 5 }), T);
    assert.equal(shifted.$typeName, "google.protobuf.Timestamp");
    assert.equal(secondsOf(shifted), 61n);
    assert.equal(shifted.nanos.toFixed(), "5");

    const latest = client.latest();
    await latest.send({ seconds: 7n });
    await latest.send(create(TimestampSchema, { seconds: 8n }));
    await latest.complete();
    assert.equal(secondsOf(await deadline(latest.receive(), T)), 8n);

    const ticks: bigint[] = [];
    for await (const tick of client.ticks({ seconds: 10n })) {
      ticks.push(secondsOf(tick));
    }
    assert.deepEqual(ticks, [11n, 12n, 13n]);

    const echo = client.echo();
    await echo.send({ seconds: 4n });
    await echo.complete();
    const echoed: bigint[] = [];
    for await (const message of echo) echoed.push(secondsOf(message));
    assert.deepEqual(echoed, [8n]);
  });

  it("its types still refuse what is not the message's shape", () => {
    const typed: typeof implementation = rpcImplementService(Clock, {
      // @ts-expect-error: seconds is a bigint, not a string
      shift: () => ({ seconds: "1" }),
      latest: () => ({}),
      ticks: () => [],
      echo: (inputs) => inputs,
    });
    assert.equal(typed.service, Clock);
    const client = rpcCreateClient(
      Clock,
      createConnectTransport({ baseUrl: "http://127.0.0.1:1" }),
    );
    // @ts-expect-error: an unknown field
    const call = () => client.shift({ minutes: 1 });
    assert.equal(typeof call, "function");
  });
});

describe("implementService and createClient with handlers and services as users write them", () => {
  const Calc = defineService("Calc", {
    double: { kind: "unary", input: Int64Value, output: Int64Value },
  });

  it("calls a class's methods with their object as `this` (this.factor was read from undefined), as Connect-ES binds them", async () => {
    class CalcImpl {
      factor = 2n;
      double(value: bigint) {
        return value * this.factor;
      }
    }
    const server = await startServer(
      createRpcHandler(rpcImplementService(Calc, new CalcImpl())),
    );
    try {
      const client = rpcCreateClient(
        Calc,
        createConnectTransport({ baseUrl: server.url.origin }),
      );
      assert.equal(await deadline(client.double(21n), T), 42n);
    } finally {
      await server.shutdown();
    }
  });

  it('refuses a service generated by protoc-gen-connect-es v1, naming the fix (it was served at "undefined", and its client had no methods)', () => {
    const v1 = {
      typeName: "connectrpc.eliza.v1.ElizaService",
      methods: {
        say: { name: "Say", I: class {}, O: class {}, kind: 0 },
      },
    };
    const fix =
      "method say of connectrpc.eliza.v1.ElizaService is not one of defineService's (it is code generated by protoc-gen-connect-es v1: generate with @bufbuild/protoc-gen-es v2, and pass its service to";
    assert.throws(() => rpcImplementService(v1 as never, {} as never), {
      name: "TypeError",
      message:
        `Cannot implement service: ${fix} implementService from @sluice/streams/protobuf)`,
    });
    assert.throws(
      () =>
        rpcCreateClient(
          v1 as never,
          createConnectTransport({ baseUrl: "http://127.0.0.1:1" }),
        ),
      {
        name: "TypeError",
        message:
          `Cannot create client: ${fix} createClient from @sluice/streams/protobuf)`,
      },
    );
  });

  it("takes no method of Object for a handler (a method named hasOwnProperty without one answered {}), and keeps a method named __proto__ (dropped under Bun)", () => {
    const Odd = defineService("Odd", {
      hasOwnProperty: { kind: "unary", input: Int64Value, output: Int64Value },
      ["__proto__"]: { kind: "unary", input: Int64Value, output: Int64Value },
    });
    assert.deepEqual(Object.keys(Odd.methods).sort(), [
      "__proto__",
      "hasOwnProperty",
    ]);
    assert.throws(
      () =>
        rpcImplementService(Odd, {
          ["__proto__"]: (v: bigint) => v,
        } as never),
      {
        name: "TypeError",
        message: "Cannot implement Odd: no handler for method hasOwnProperty",
      },
    );
    // Nor a class for its instance's `constructor` (called, it threw).
    const Ctor = defineService("Ctor", {
      constructor: { kind: "unary", input: Int64Value, output: Int64Value },
    });
    class Impl {}
    assert.throws(() => rpcImplementService(Ctor, new Impl() as never), {
      name: "TypeError",
      message: "Cannot implement Ctor: no handler for method constructor",
    });
    const implementation = rpcImplementService(Odd, {
      hasOwnProperty: (v: bigint) => v,
      ["__proto__"]: (v: bigint) => v,
    } as never);
    assert.deepEqual([...implementation.handlers.keys()].sort(), [
      "/Odd/__proto__",
      "/Odd/hasOwnProperty",
    ]);
  });
});

type Case = {
  name: string;
  binary: boolean;
  transport: (url: string) => { transport: Transport; close(): Promise<void> };
  http2: boolean;
};

const none = () => Promise.resolve();
const cases: Case[] = [
  {
    name: "Connect (binary)",
    binary: true,
    http2: false,
    transport: (baseUrl) => ({
      transport: createConnectTransport({ baseUrl }),
      close: none,
    }),
  },
  {
    name: "Connect (JSON)",
    binary: false,
    http2: false,
    transport: (baseUrl) => ({
      transport: createConnectTransport({ baseUrl, codec: "json" }),
      close: none,
    }),
  },
  {
    name: "gRPC-Web",
    binary: true,
    http2: false,
    transport: (baseUrl) => ({
      transport: createGrpcWebTransport({ baseUrl }),
      close: none,
    }),
  },
  {
    name: "gRPC",
    binary: true,
    http2: true,
    transport: (baseUrl) => {
      const httpClient = createHttp2Client(baseUrl);
      return {
        transport: createGrpcTransport({ baseUrl, httpClient }),
        close: () => httpClient.close(),
      };
    },
  },
];

/** ChatService plus a method that fails with a typed detail. */
const failing: ServiceImplementation = implementService(ChatService, {
  chat: () => {
    throw new RpcError(Code.Unavailable, "Cannot chat: try again later", {
      details: [
        packErrorDetail(RetryInfoSchema, { retryDelay: { seconds: 3n } }),
      ],
    });
  },
  echo: () => {
    throw new RpcError(Code.ResourceExhausted, "Cannot echo: quota", {
      details: [
        packErrorDetail(RetryInfoSchema, {
          retryDelay: { seconds: 1n, nanos: 500_000_000 },
        }),
      ],
    });
  },
});

for (const c of cases) {
  describe(`ChatService from the descriptor over ${c.name}`, () => {
    const servers: { url: string; shutdown(): Promise<void> }[] = [];
    let url: string;
    let failingUrl: string;
    let tinyUrl: string;
    const start = async (
      implementation: ServiceImplementation | null,
      maxMessageBytes?: number,
    ) => {
      if (c.http2) {
        const server = await serveHttp2(
          createUniversalHandler(
            implementation ?? implementService(ChatService, {
              async *chat(messages) {
                for await (const m of messages) yield reply(m);
              },
              echo: (m) => m,
            }),
            { maxMessageBytes },
          ),
        );
        servers.push({
          url: server.url.origin,
          shutdown: () => server.shutdown(),
        });
        return server.url.origin;
      }
      const server = await startServer(
        implementation === null && maxMessageBytes === undefined
          ? sluiceChat
          : createRpcHandler(
            implementation ?? implementService(ChatService, {
              async *chat(messages) {
                for await (const m of messages) yield reply(m);
              },
              echo: (m) => m,
            }),
            { maxMessageBytes },
          ),
      );
      servers.push({
        url: server.url.origin,
        shutdown: () => server.shutdown(),
      });
      return server.url.origin;
    };
    before(async () => {
      url = await start(null);
      failingUrl = await start(failing);
      tinyUrl = await start(null, 1024);
    });
    after(async () => {
      for (const server of servers) await server.shutdown();
    });

    it(`chat (bidi) answers each message in order over ${c.name}`, async () => {
      const { transport, close } = c.transport(url);
      try {
        const call = createClient(ChatService, transport).chat();
        const received = (async () => {
          const out: ChatMessage[] = [];
          for await (const m of call.responses) out.push(m);
          return out;
        })();
        await call.send(SAMPLE);
        await call.send({
          text: "second",
          numbers: [10, 20],
          mood: Mood.HAPPY,
        });
        await call.complete();
        const [first, second] = await deadline(received, T);
        assert.equal(first.text, "HELLO");
        assert.deepEqual(first.numbers, [2]);
        assert.deepEqual(
          { name: first.author?.name, id: first.author?.id },
          { name: "re: ada", id: 8 },
        );
        assert.equal(first.mood, Mood.HAPPY);
        assert.deepEqual(first.tags, { lang: "en", topic: "rpc", seen: "yes" });
        assert.equal(second.text, "SECOND");
        assert.deepEqual(second.numbers, [30]);
        assert.equal(second.author?.name, "re: ");
      } finally {
        await close();
      }
    });

    it(
      c.binary
        ? `echo keeps unknown fields through a round trip over ${c.name}`
        : `echo drops unknown fields, which JSON cannot carry, over ${c.name}`,
      async () => {
        const { transport, close } = c.transport(url);
        try {
          const sent = fromBinary(ChatMessageSchema, withUnknownField());
          const back = await deadline(
            createClient(ChatService, transport).echo(sent),
            T,
          );
          assert.equal(back.text, "hello");
          assert.deepEqual(back.tags, SAMPLE.tags);
          const bytes = toBinary(ChatMessageSchema, back);
          assert.equal(endsWith(bytes, UNKNOWN_FIELD), c.binary);
        } finally {
          await close();
        }
      },
    );

    it(`a typed error detail reaches the client over ${c.name}`, async () => {
      const { transport, close } = c.transport(failingUrl);
      try {
        const client = createClient(ChatService, transport);
        const error = await deadline(
          client.echo({ text: "x" }).then(() => undefined, (e) => e),
          T,
        );
        assert.ok(error instanceof RpcError, String(error));
        assert.equal(error.code, Code.ResourceExhausted);
        const [retry] = unpackErrorDetails(error, RetryInfoSchema);
        assert.equal(retry.retryDelay?.seconds, 1n);
        assert.equal(retry.retryDelay?.nanos, 500_000_000);

        const call = client.chat();
        await call.complete().catch(() => {});
        const streamed = await deadline(
          call.receive().then(() => undefined, (e) => e),
          T,
        );
        assert.ok(streamed instanceof RpcError, String(streamed));
        assert.equal(streamed.code, Code.Unavailable);
        assert.equal(
          unpackErrorDetails(streamed, RetryInfoSchema)[0].retryDelay?.seconds,
          3n,
        );
      } finally {
        await close();
      }
    });

    it(`a message over maxMessageBytes fails with RESOURCE_EXHAUSTED over ${c.name}`, async () => {
      const { transport, close } = c.transport(tinyUrl);
      try {
        const error = await deadline(
          createClient(ChatService, transport)
            .echo({ payload: new Uint8Array(4096) })
            .then(() => undefined, (e) => e),
          T,
        );
        assert.ok(error instanceof RpcError, String(error));
        assert.equal(error.code, Code.ResourceExhausted);
        assert.match(error.rawMessage, /maxMessageBytes 1024/);
      } finally {
        await close();
      }
    });
  });
}

describe("malformed and oversized protobuf-es messages on the wire", () => {
  let url: string;
  let shutdown: () => Promise<void>;
  before(async () => {
    const server = await startServer(sluiceChat);
    url = server.url.origin;
    shutdown = () => server.shutdown();
  });
  after(() => shutdown?.());

  /**
   * The status and message of a gRPC-Web answer: from its trailer frame, or
   * from the headers of a Trailers-Only answer (an error before any message).
   */
  const grpcWebStatus = (response: Response, body: string) => {
    const status = /grpc-status:\s*(\d+)/.exec(body)?.[1] ??
      response.headers.get("grpc-status");
    const message = /grpc-message:\s*([^\r\n]*)/.exec(body)?.[1] ??
      response.headers.get("grpc-message") ?? "";
    return { status, message: decodeURIComponent(message) };
  };

  /** A gRPC-Web frame of `data` (flags 0). */
  const frame = (data: Uint8Array, length = data.length) => {
    const out = new Uint8Array(5 + data.length);
    new DataView(out.buffer).setUint32(1, length);
    out.set(data, 5);
    return out;
  };

  it("a unary Connect request that does not parse is INVALID_ARGUMENT naming its type", async () => {
    const response = await fetch(
      `${url}/sluice.test.chat.v1.ChatService/Echo`,
      {
        method: "POST",
        headers: { "content-type": "application/proto" },
        // Field 1, length-delimited, claims 100 bytes; 1 follows.
        body: new Uint8Array([0x0a, 100, 0x41]),
      },
    );
    const body = await response.json();
    assert.equal(body.code, "invalid_argument");
    assert.match(body.message, new RegExp(`Cannot decode ${TYPE}`));
  });

  it("a unary Connect JSON request with a wrong field type is INVALID_ARGUMENT naming its type", async () => {
    const response = await fetch(
      `${url}/sluice.test.chat.v1.ChatService/Echo`,
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ numbers: "not a list" }),
      },
    );
    const body = await response.json();
    assert.equal(body.code, "invalid_argument");
    assert.match(body.message, new RegExp(`Cannot decode ${TYPE}`));
  });

  it("a streamed message that does not parse is INVALID_ARGUMENT naming its type", async () => {
    const response = await fetch(
      `${url}/sluice.test.chat.v1.ChatService/Chat`,
      {
        method: "POST",
        headers: { "content-type": "application/grpc-web+proto" },
        body: frame(new Uint8Array([0x0a, 100, 0x41])),
      },
    );
    const { status, message } = grpcWebStatus(
      response,
      text(new Uint8Array(await response.arrayBuffer())),
    );
    assert.equal(status, String(Code.InvalidArgument), message);
    assert.match(message, new RegExp(`Cannot decode ${TYPE}`));
  });

  it("a frame that claims 1 GiB is RESOURCE_EXHAUSTED before its bytes arrive", async () => {
    // Only the 5-byte header is sent and the body stays open: the answer
    // cannot wait for (or allocate) the message.
    let open: ReadableStreamDefaultController<Uint8Array> | undefined;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        open = controller;
        controller.enqueue(frame(new Uint8Array(0), 1 << 30));
      },
    });
    const response = await deadline(
      fetch(`${url}/sluice.test.chat.v1.ChatService/Chat`, {
        method: "POST",
        headers: { "content-type": "application/grpc-web+proto" },
        body,
        duplex: "half",
      } as RequestInit),
      T,
      "response",
    );
    try {
      const { status, message } = grpcWebStatus(
        response,
        text(
          new Uint8Array(await deadline(response.arrayBuffer(), T, "body")),
        ),
      );
      assert.equal(status, String(Code.ResourceExhausted), message);
      assert.match(message, /maxMessageBytes/);
    } finally {
      // End the request (also when an assertion failed, or the server's
      // shutdown waits for it); Bun's fetch has already cancelled it once
      // the response was complete, which is fine too.
      try {
        open?.close();
      } catch (error) {
        assert.match(String(error), /already closed|invalid state/i);
      }
    }
  });
});
