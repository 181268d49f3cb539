// Server-streaming responses that never wait: a handler whose stream or
// generator produces at once, read by a client that takes each message at
// once. Its loop was a chain of microtasks: the event loop did not turn
// until the call ended (with 250 Connect calls whose clients had stopped
// reading, a Deno server stalled 5-30 s, new calls waiting for their
// heads). And each message of 1 KiB or more went through a new gzip
// stream, also when gzip did not shrink it (random bytes): 5-13 MB/s.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  createClient,
  createConnectTransport,
  createGrpcWebTransport,
  createUniversalHandler,
  createUniversalHandlerClient,
  defineService,
  implementService,
  type MessageType,
} from "../lib/rpc/mod.ts";

const Raw: MessageType<Uint8Array> = {
  typeName: "test.Raw",
  proto: { encode: (value) => value, decode: (bytes) => bytes.slice() },
};
const Flood = defineService("test.Flood", {
  stream: { kind: "server-streaming", input: Raw, output: Raw },
  generate: { kind: "server-streaming", input: Raw, output: Raw },
});

/** A flood of `count` random 1 KiB messages (gzip does not shrink them). */
function flood(count: number) {
  const message = crypto.getRandomValues(new Uint8Array(1024));
  return implementService(Flood, {
    stream: () => {
      let sent = 0;
      return new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent++ < count) controller.enqueue(message);
          else controller.close();
        },
      });
    },
    async *generate() {
      for (let sent = 0; sent < count; sent++) yield message;
    },
  });
}

const transports = {
  connect: createConnectTransport,
  "grpc-web": createGrpcWebTransport,
};

/** A client of `flood(count)` in process, over `create`'s protocol. */
function floodClient(
  count: number,
  create: (typeof transports)[keyof typeof transports],
) {
  return createClient(
    Flood,
    create({
      baseUrl: "http://in-process",
      httpClient: createUniversalHandlerClient(
        createUniversalHandler(flood(count)),
      ),
    }),
  );
}

describe("server-streaming responses that never wait", () => {
  for (const method of ["stream", "generate"] as const) {
    for (const [protocol, create] of Object.entries(transports)) {
      it(`a ${method === "stream" ? "ReadableStream" : "generator"} handler's call over ${protocol} lets the event loop turn (a timer waited for the call's end)`, async () => {
        const count = 20_000;
        const client = floodClient(count, create);
        let received = 0;
        let atTimer = -1;
        const timer = setTimeout(() => atTimer = received, 0);
        try {
          for await (const _ of client[method](new Uint8Array(0))) received++;
        } finally {
          clearTimeout(timer);
        }
        assert.equal(received, count);
        assert.ok(
          atTimer >= 0 && atTimer < count,
          `the timer fired after ${atTimer} of ${count} messages`,
        );
      });
    }
  }

  it("a call whose messages gzip does not shrink stops compressing most of them (a new gzip stream per 1 KiB message)", async () => {
    const count = 1_000;
    const Original = globalThis.CompressionStream;
    let made = 0;
    globalThis.CompressionStream = class extends Original {
      constructor(format: CompressionFormat) {
        super(format);
        made++;
      }
    };
    try {
      const client = floodClient(count, createConnectTransport);
      let received = 0;
      for await (const _ of client.stream(new Uint8Array(0))) received++;
      assert.equal(received, count);
      // One try every 64 messages at most once it keeps missing.
      assert.ok(made < count / 10, `${made} gzip streams for ${count}`);
      assert.ok(made > 0, "gzip was never tried");
    } finally {
      globalThis.CompressionStream = Original;
    }
  });
});
