// Run by tests/protobuf_floor.test.ts with `deno run --check` and an import
// map that points "@bufbuild/protobuf" (and its subpaths) at the lowest
// version deno.json's range allows: @sluice/streams/protobuf, a generated
// service (tests/gen/chat_pb.ts) and a hand-written one over
// createMessageType type-check against that version alone, and calls of
// every kind but server streaming over Connect (binary and JSON) and
// gRPC-Web, in process, answer as they do with the version the other tests
// resolve (error details included). It also checks the nesting limit
// (protobuf-es's recursionLimit, first in 2.12.1) that the floor is chosen
// for. Prints the module @bufbuild/protobuf resolved to, then "ok"; a failed
// assertion exits non-zero.

import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import {
  type Timestamp,
  TimestampSchema,
  type Value,
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
  createConnectTransport,
  createGrpcWebTransport,
  createUniversalHandler,
  createUniversalHandlerClient,
  defineService,
  RpcError,
  type Transport,
} from "../lib/rpc/mod.ts";
import { type ChatMessage, ChatService, Mood } from "./gen/chat_pb.ts";

console.log(import.meta.resolve("@bufbuild/protobuf"));

// A generated service: handlers read messages and return init objects.
const chat = implementService(ChatService, {
  async *chat(messages) {
    for await (const m of messages) {
      yield { text: m.text.toUpperCase(), numbers: [m.numbers.length] };
    }
  },
  echo: (m: ChatMessage) => {
    if (m.text === "fail") {
      throw new RpcError(Code.FailedPrecondition, "no", {
        details: [packErrorDetail(TimestampSchema, { seconds: 9n })],
      });
    }
    return m;
  },
});

// A hand-written service over a protobuf-es message type.
const Clock = defineService("sluice.test.floor.Clock", {
  latest: {
    kind: "client-streaming",
    input: createMessageType(TimestampSchema),
    output: createMessageType(TimestampSchema),
  },
});
const clock = implementService(Clock, {
  latest: async (inputs) => {
    let last: Timestamp | undefined;
    for await (const input of inputs) last = input;
    return last ?? { seconds: -1n };
  },
});

const handler = createUniversalHandler([chat, clock]);
const transports: [string, Transport][] = [
  [
    "connect proto",
    createConnectTransport({
      baseUrl: "http://in-process",
      httpClient: createUniversalHandlerClient(handler),
    }),
  ],
  [
    "connect json",
    createConnectTransport({
      baseUrl: "http://in-process",
      httpClient: createUniversalHandlerClient(handler),
      codec: "json",
    }),
  ],
  [
    "grpc-web",
    createGrpcWebTransport({
      baseUrl: "http://in-process",
      httpClient: createUniversalHandlerClient(handler),
    }),
  ],
];
for (const [name, transport] of transports) {
  const chatClient = createClient(ChatService, transport);
  const echoed: ChatMessage = await chatClient.echo({
    text: "hi",
    mood: Mood.HAPPY,
    tags: { a: "b" },
  });
  assert.equal(echoed.$typeName, "sluice.test.chat.v1.ChatMessage", name);
  assert.equal(echoed.mood, Mood.HAPPY, name);
  assert.deepEqual(echoed.tags, { a: "b" }, name);

  const call = chatClient.chat();
  await call.send({ text: "a", numbers: [1, 2] });
  await call.complete();
  const replies: ChatMessage[] = [];
  for await (const reply of call) replies.push(reply);
  assert.deepEqual(replies.map((r) => [r.text, r.numbers]), [["A", [2]]], name);

  await assert.rejects(chatClient.echo({ text: "fail" }), (error) => {
    assert.ok(error instanceof RpcError, name);
    assert.equal(error.code, Code.FailedPrecondition, name);
    const [detail] = unpackErrorDetails(error, TimestampSchema);
    assert.equal(detail?.seconds, 9n, name);
    return true;
  });

  const latest = createClient(Clock, transport).latest();
  await latest.send({ seconds: 1n });
  await latest.send(create(TimestampSchema, { seconds: 2n }));
  await latest.complete();
  const last: Timestamp = await latest.receive();
  assert.equal(last.seconds, 2n, name);
}

// The nesting limit: google.protobuf.Values nested 101 deep (each in a
// ListValue) are refused, in binary and in JSON, by a SyntaxError naming
// the limit (2.12.0 read them).
let deep: Value = create(ValueSchema, {
  kind: { case: "nullValue", value: 0 },
});
for (let i = 0; i < 100; i++) {
  deep = create(ValueSchema, {
    kind: { case: "listValue", value: { values: [deep] } },
  });
}
const Values = createMessageType(ValueSchema);
for (const codec of [Values.proto, Values.json]) {
  assert.throws(
    () => codec.decode(codec.encode(deep)),
    /^SyntaxError: .*maximum recursion depth of 100 reached/,
  );
}
console.log("ok");
