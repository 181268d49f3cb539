import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  websocketDuplex,
  type WebSocketDuplexOptions,
  type WebSocketLike,
} from "../lib/http/websocket_duplex.ts";
import type { DuplexStream } from "../lib/streams/duplex_stream.ts";
import { upgradeWebSocket } from "../lib/runtime/websocket.ts";
import { deadline, lockstep, runtime, withServer } from "./_helpers.ts";
import { bunServerFor, openBunSockets } from "../lib/runtime/_websocket_bun.ts";
import type { BunServer } from "../lib/runtime/_bun.ts";

const dec = new TextDecoder();
const MiB = 1024 * 1024;

interface Served {
  /** Settles with what the handler threw, or `undefined`. */
  readonly outcome: Promise<unknown>;
}

/**
 * A server that upgrades every request, runs `handler` on the duplex stream,
 * and closes the stream when the handler settles (with its error, if any).
 */
function wsServer(
  handler: (stream: DuplexStream, socket: WebSocketLike) => Promise<void>,
  options?: WebSocketDuplexOptions,
): { fetch: (request: Request) => Response; served: Served } {
  const outcome = Promise.withResolvers<unknown>();
  const fetch = (request: Request) => {
    const { socket, response } = upgradeWebSocket(request);
    const stream = websocketDuplex(socket, options);
    handler(stream, socket).then(
      async () => {
        await stream.close();
        outcome.resolve(undefined);
      },
      async (error) => {
        await stream.close(error);
        outcome.resolve(error);
      },
    );
    return response;
  };
  return { fetch, served: { outcome: outcome.promise } };
}

/** Opens a client WebSocket to `url` and waits for its close on `done`. */
function connect(url: URL, options?: WebSocketDuplexOptions) {
  const wsUrl = new URL(url);
  wsUrl.protocol = "ws:";
  const socket = new WebSocket(wsUrl);
  const closed = new Promise<CloseEvent>((resolve) => {
    socket.addEventListener("close", (event) => resolve(event), {
      once: true,
    });
  });
  const stream = websocketDuplex(socket, options);
  return {
    socket,
    stream,
    closed: () => deadline(closed, 10_000, "WebSocket close"),
  };
}

async function readAll(stream: DuplexStream): Promise<string> {
  let text = "";
  for await (const chunk of stream) text += dec.decode(chunk, { stream: true });
  return text + dec.decode();
}

async function echoHandler(stream: DuplexStream): Promise<void> {
  for await (const chunk of stream) await stream.write(chunk);
}

describe("websocketDuplex over a real WebSocket", () => {
  it("websocketDuplex sends Hello, World!, closes its write side and reads the echo", async () => {
    const { fetch, served } = wsServer(echoHandler);
    await withServer(fetch, async (server) => {
      const { stream, closed } = connect(server.url);
      await stream.write("Hello, ");
      await stream.write("World!");
      await stream.closeWrite();
      assert.equal(
        await deadline(readAll(stream), 10_000, "echo"),
        "Hello, World!",
      );
      const event = await closed();
      assert.equal(event.code, 1000);
      assert.equal(await served.outcome, undefined);
    });
  });

  it("websocketDuplex completes 100 lockstep round trips", async () => {
    const { fetch } = wsServer(async (stream) => {
      for await (const line of stream.lines()) {
        await stream.write(`echo ${line}\n`);
      }
    });
    await withServer(fetch, async (server) => {
      const { stream, closed } = connect(server.url);
      await deadline(lockstep(stream, 100), 30_000, "100 round trips");
      assert.equal((await closed()).code, 1000);
    });
  });

  it("websocketDuplex half-close lets the server write after the client's closeWrite", async () => {
    const { fetch } = wsServer(async (stream) => {
      const question = await readAll(stream);
      for (let i = 0; i < 3; i++) await stream.write(`${question} ${i};`);
    });
    await withServer(fetch, async (server) => {
      const { stream, closed } = connect(server.url);
      await stream.write("ping");
      await stream.closeWrite();
      assert.equal(
        await deadline(readAll(stream), 10_000, "answers"),
        "ping 0;ping 1;ping 2;",
      );
      assert.equal((await closed()).code, 1000);
    });
  });

  it("websocketDuplex half-close the other way: the server's closeWrite, then it reads what the client sends after", async () => {
    // Under Bun the server's closeWrite failed its own stream ("the
    // connection dropped"): Bun's send() answers 0 for an empty message
    // it sends, as for one it drops.
    const { fetch, served } = wsServer(async (stream) => {
      await stream.write("hi");
      await stream.closeWrite();
      assert.equal(await readAll(stream), "bye");
    });
    await withServer(fetch, async (server) => {
      const { stream, closed } = connect(server.url);
      assert.equal(await deadline(readAll(stream), 10_000, "hi"), "hi");
      await stream.write("bye");
      await stream.closeWrite();
      assert.equal((await closed()).code, 1000);
      assert.equal(await served.outcome, undefined);
    });
  });

  it("websocketDuplex: cancelling the input without a reason keeps the output, as documented (it closed the socket: the next write lost, the peer reading a clean end)", async () => {
    const { fetch, served } = wsServer(async (stream) => {
      const lines: string[] = [];
      for await (const line of stream.lines()) {
        lines.push(line);
        await stream.write(`echo ${line}\n`);
      }
      assert.deepEqual(lines, ["one", "two", "three"]);
    });
    await withServer(fetch, async (server) => {
      const { stream, closed } = connect(server.url);
      await stream.write("one\n");
      assert.equal(
        await deadline(stream.readLine(), 10_000, "echo"),
        "echo one",
      );
      await stream.readable.cancel();
      await stream.write("two\n");
      await stream.write("three\n");
      await stream.closeWrite();
      assert.equal(await deadline(served.outcome, 10_000, "server"), undefined);
      assert.equal((await closed()).code, 1000);
    });
  });

  it("websocketDuplex keeps bufferedAmount under sendHighWaterMark before each send", async () => {
    const { fetch } = wsServer(async (stream) => {
      let total = 0;
      for await (const chunk of stream) total += chunk.byteLength;
      await stream.write(String(total));
    });
    await withServer(fetch, async (server) => {
      const wsUrl = new URL(server.url);
      wsUrl.protocol = "ws:";
      const socket = new WebSocket(wsUrl);
      const closed = new Promise<void>((resolve) =>
        socket.addEventListener("close", () => resolve(), { once: true })
      );
      // Records bufferedAmount as each message is handed to the socket.
      let highest = 0;
      const recording = new Proxy(socket, {
        get(target, key) {
          if (key === "send") {
            return (data: Uint8Array) => {
              highest = Math.max(highest, target.bufferedAmount);
              target.send(data);
            };
          }
          const value = Reflect.get(target, key, target);
          return typeof value === "function" ? value.bind(target) : value;
        },
        set(target, key, value) {
          return Reflect.set(target, key, value, target);
        },
      });
      const sendHighWaterMark = 256 * 1024;
      const stream = websocketDuplex(recording, {
        sendHighWaterMark,
        sendLowWaterMark: 64 * 1024,
      });
      const chunk = 64 * 1024;
      for (let i = 0; i < 256; i++) await stream.write(new Uint8Array(chunk));
      await stream.closeWrite();
      assert.equal(
        await deadline(readAll(stream), 20_000, "count"),
        String(256 * chunk),
      );
      assert.ok(
        highest <= sendHighWaterMark,
        `bufferedAmount reached ${highest} before a send`,
      );
      await deadline(closed, 10_000, "close");
    });
  });

  it("websocketDuplex closes with 1009 when the server's unread queue passes maxBufferedBytes", async () => {
    const stop = Promise.withResolvers<void>();
    const { fetch, served } = wsServer(async () => {
      // Never reads: messages pile up in the bounded queue.
      await stop.promise;
    }, { maxBufferedBytes: MiB });
    await withServer(fetch, async (server) => {
      const { stream, closed } = connect(server.url);
      const reading = stream.readPartial().then(() => undefined, (e) => e);
      // 15 messages of 64 KiB (each counted 512 bytes more) fill the
      // server's 1 MiB queue; the 16th passes it. No more: a server that
      // closes with bytes still in flight towards it resets the connection
      // (Deno.serve does), and the client then sees code 0 instead of the
      // 1009 close frame. Writing 64 messages back to back failed that way
      // in 5 of 6 runs under Deno here.
      for (let i = 0; i < 16; i++) {
        try {
          await stream.write(new Uint8Array(64 * 1024));
        } catch {
          break;
        }
      }
      const event = await closed();
      assert.equal(event.code, 1009);
      const error = await deadline(reading, 10_000, "client read");
      assert.match(String(error), /code 1009/);
      stop.resolve();
      // The server's own stream errored with the bound it enforced.
      assert.ok((await served.outcome) === undefined);
    });
  });

  it("websocketDuplex bounds what a client that stops reading holds, closing with 1009", async () => {
    const { fetch, served } = wsServer(async (stream) => {
      // Until the client's close stops it (at most 1 GiB): 16 MiB could
      // all go into the kernel's and the runtime's buffers before the
      // client's 1009 came back, and the handler then ended cleanly (under
      // Bun, once beside another suite).
      for (let i = 0; i < 16 * 1024; i++) {
        await stream.write(new Uint8Array(64 * 1024));
      }
    });
    await withServer(fetch, async (server) => {
      const { stream, closed } = connect(server.url, { maxBufferedBytes: MiB });
      const event = await closed();
      // Deno's client WebSocket may not send 1009, so it sends 4009.
      assert.ok([1009, 4009].includes(event.code), `code ${event.code}`);
      await assert.rejects(stream.readPartial(), (error: unknown) => {
        assert.ok(error instanceof RangeError);
        assert.match(error.message, /maxBufferedBytes 1048576/);
        return true;
      });
      const serverError = await deadline(served.outcome, 10_000, "server");
      assert.match(String(serverError), /code (1009|4009)/);
    });
  });

  it("websocketDuplex close(reason) on the client errors the server's stream with 1011", async () => {
    const seen = Promise.withResolvers<unknown>();
    const { fetch, served } = wsServer(async (stream) => {
      await stream.write("ready");
      try {
        for await (const _ of stream) { /* read until it fails */ }
        seen.resolve("clean end");
      } catch (error) {
        seen.resolve(error);
        throw error;
      }
    });
    await withServer(fetch, async (server) => {
      const { stream, closed } = connect(server.url);
      assert.equal(dec.decode((await stream.read(5))!), "ready");
      await stream.close(new Error("client gave up"));
      const error = await deadline(seen.promise, 10_000, "server error");
      // Deno's client WebSocket may not send 1011, so it sends 4011.
      assert.match(String(error), /code (1011|4011) \(client gave up\)/);
      const { code } = await closed();
      assert.ok([1011, 4011].includes(code), `code ${code}`);
      assert.ok(await served.outcome);
    });
  });

  it("websocketDuplex rejects the client's pending read when the server handler fails", async () => {
    const { fetch } = wsServer(async (stream) => {
      await stream.write("partial");
      await stream.readPartial();
      throw new Error("handler broke");
    });
    await withServer(fetch, async (server) => {
      const { stream, closed } = connect(server.url);
      assert.equal(dec.decode((await stream.read(7))!), "partial");
      const pending = stream.readPartial();
      await stream.write("go");
      await assert.rejects(
        deadline(pending, 10_000, "read"),
        /closed with code 1011 \(handler broke\)/,
      );
      await assert.rejects(stream.write("x"));
      await closed();
    });
  });

  it("websocketDuplex ends the input cleanly when the peer closes with 1000", async () => {
    const { fetch } = wsServer(async (stream, socket) => {
      await stream.write("bye");
      socket.close(1000, "done");
    });
    await withServer(fetch, async (server) => {
      const { stream, closed } = connect(server.url);
      assert.equal(await deadline(readAll(stream), 10_000, "read"), "bye");
      await closed();
    });
  });

  it("websocketDuplex errors the input when the peer closes with an application code", async () => {
    const { fetch } = wsServer(async (stream, socket) => {
      await stream.readPartial(); // the socket is open once a message came
      socket.close(4001, "custom");
    });
    await withServer(fetch, async (server) => {
      const { stream, closed } = connect(server.url);
      await stream.write("go");
      await assert.rejects(
        deadline(stream.readPartial(), 10_000, "read"),
        /code 4001 \(custom\)/,
      );
      await closed();
    });
  });
});

/** A socket whose network drains only when the test says so. */
class FakeSocket extends EventTarget implements WebSocketLike {
  readyState = 1;
  bufferedAmount = 0;
  binaryType = "blob";
  sent: Uint8Array[] = [];
  closedWith: number | undefined;
  send(data: Uint8Array | string): void {
    const bytes = typeof data === "string"
      ? new TextEncoder().encode(data)
      : data;
    this.sent.push(bytes);
    this.bufferedAmount += bytes.byteLength;
  }
  close(code = 1005): void {
    if (this.readyState >= 2) return;
    this.readyState = 3;
    this.closedWith = code;
    this.dispatchEvent(Object.assign(new Event("close"), { code, reason: "" }));
  }
  /** The network sends `bytes` and says so. */
  flush(bytes: number): void {
    this.bufferedAmount = Math.max(0, this.bufferedAmount - bytes);
    this.dispatchEvent(new Event("drain"));
  }
  receive(data: Uint8Array | string): void {
    const payload = typeof data === "string" ? data : data.slice().buffer;
    this.dispatchEvent(new MessageEvent("message", { data: payload }));
  }
}

describe("websocketDuplex watermarks and framing (fake socket)", () => {
  it("websocketDuplex write waits above sendHighWaterMark until bufferedAmount falls to sendLowWaterMark", async () => {
    const socket = new FakeSocket();
    const stream = websocketDuplex(socket, {
      sendHighWaterMark: 100,
      sendLowWaterMark: 40,
    });
    await stream.write(new Uint8Array(60)); // sent: 60 buffered
    // Sent: 120 buffered, over the high mark, so its send waits to drain...
    await stream.write(new Uint8Array(60));
    // ...and the next write waits behind it.
    let done = false;
    const third = stream.write(new Uint8Array(60)).then(() => done = true);
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(done, false);
    assert.equal(socket.sent.length, 2);
    socket.flush(50); // 70: still above the low mark
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(done, false);
    socket.flush(30); // 40: at the low mark
    await deadline(third, 2000, "drained write");
    assert.equal(socket.binaryType, "arraybuffer");
    await stream.close(new Error("done"));
  });

  it("websocketDuplex errors the input on a message of another type, closes once with 1011, and takes the peer's clean close after it quietly", async () => {
    // A socket whose close() only starts the handshake: the peer's close
    // event comes later, here with 1000. (It used to close an errored
    // input: an uncaught TypeError in the event listener.)
    const closes: number[] = [];
    const socket = new (class extends EventTarget {
      readyState = 1;
      binaryType = "blob";
      send(): void {}
      close(code?: number): void {
        closes.push(code ?? 1005);
        this.readyState = 2;
      }
    })();
    const uncaught: unknown[] = [];
    const onError = (event: Event) => {
      uncaught.push((event as ErrorEvent).error);
      event.preventDefault();
    };
    globalThis.addEventListener("error", onError);
    try {
      const stream = websocketDuplex(socket);
      // A WebSocketLike that ignores binaryType could deliver a Blob.
      socket.dispatchEvent(
        new MessageEvent("message", { data: new Blob(["x"]) }),
      );
      socket.dispatchEvent(
        new MessageEvent("message", { data: new Uint8Array([1]).buffer }),
      );
      socket.dispatchEvent(
        Object.assign(new Event("close"), { code: 1000, reason: "" }),
      );
      await assert.rejects(
        stream.readPartial(),
        (error: unknown) =>
          error instanceof TypeError &&
          error.message ===
            "Cannot read from WebSocket: unexpected message type",
      );
      assert.deepEqual(closes, [1011]);
      assert.deepEqual(uncaught, []);
    } finally {
      globalThis.removeEventListener("error", onError);
    }
  });

  it("websocketDuplex counts each queued message's own cost: 40,000 one-byte messages unread pass the default 16 MiB (1009)", async () => {
    // Counted by their bytes alone, one-byte messages held 28 times the
    // bound (1,000,000 of them: 237 MiB of Deno's heap, 443 MiB of Bun's
    // RSS, and the socket still open).
    const socket = new FakeSocket();
    const stream = websocketDuplex(socket);
    for (let i = 0; i < 40_000 && socket.closedWith === undefined; i++) {
      socket.receive(new Uint8Array([1]));
    }
    assert.equal(socket.closedWith, 1009);
    await assert.rejects(
      stream.read(40_000),
      (error: unknown) =>
        error instanceof RangeError &&
        /maxBufferedBytes 16777216/.test(error.message),
    );
    // A message alone in the queue needs room for its bytes only: with a
    // bound of 256, one of 256 bytes is taken, whether a reader waits or
    // not (counted with the 512 bytes, every message was refused).
    const small = new FakeSocket();
    const smallStream = websocketDuplex(small, { maxBufferedBytes: 256 });
    const waiting = smallStream.readPartial();
    small.receive(new Uint8Array(256));
    assert.equal((await waiting)!.byteLength, 256);
    small.receive(new Uint8Array(200));
    assert.equal(small.closedWith, undefined);
    assert.equal((await smallStream.readPartial())!.byteLength, 200);
    await smallStream.close();
    // Within the bound, every byte is read.
    const quiet = new FakeSocket();
    const read = websocketDuplex(quiet, { maxBufferedBytes: 8192 });
    for (let i = 0; i < 15; i++) quiet.receive(new Uint8Array([i]));
    assert.equal(quiet.closedWith, undefined);
    assert.deepEqual([...(await read.read(15))!], [...Array(15).keys()]);
    await read.close();
  });

  it("websocketDuplex sends an empty binary message for closeWrite and reads one as end of input", async () => {
    const socket = new FakeSocket();
    const stream = websocketDuplex(socket);
    socket.receive(new Uint8Array([1, 2]));
    socket.receive("hi");
    socket.receive(new Uint8Array(0));
    assert.deepEqual([...(await stream.read(4))!], [1, 2, 104, 105]);
    assert.equal(await stream.readPartial(), null);
    assert.equal(socket.closedWith, undefined, "still open: output not ended");
    await stream.closeWrite();
    await deadline(
      new Promise<void>((resolve) => {
        if (socket.closedWith !== undefined) resolve();
        else socket.addEventListener("close", () => resolve());
      }),
      2000,
      "close",
    );
    assert.equal(socket.sent.at(-1)!.byteLength, 0);
    assert.equal(socket.closedWith, 1000);
  });
});

describe("upgradeWebSocket and a router's Proxy of the request", () => {
  it("upgrades a Proxy of the request the server received, as itty-router's AutoRouter hands it (under Bun it was refused as a copy)", async () => {
    const { fetch, served } = wsServer(echoHandler);
    await withServer((request) => {
      // itty-router's withParams: a Proxy whose properties are the
      // request's, functions bound to it, and route params besides.
      const params: Record<string, string> = { room: "a" };
      const proxy = new Proxy(request, {
        get: (target, key) => {
          const value = Reflect.get(target, key, target);
          if (typeof value === "function") return value.bind(target);
          return value ?? params[key as string];
        },
      });
      return fetch(proxy);
    }, async (server) => {
      const { stream, closed } = connect(server.url);
      await stream.write("through a Proxy");
      await stream.closeWrite();
      assert.equal(
        await deadline(readAll(stream), 10_000, "echo"),
        "through a Proxy",
      );
      assert.equal((await closed()).code, 1000);
      assert.equal(await served.outcome, undefined);
    });
  });
});

describe("upgradeWebSocket under Bun", () => {
  it(
    "keeps no socket of an upgrade Bun refused among the server's open ones",
    { skip: runtime !== "bun" && "Bun's server only" },
    async () => {
      // Before, each refused upgrade (here: no Sec-WebSocket-Key) stayed in
      // the server's set of sockets to close at shutdown, for its
      // lifetime: a client could grow it at will.
      let server: BunServer | undefined;
      let refused = 0;
      await withServer((request) => {
        server ??= bunServerFor(request);
        try {
          return upgradeWebSocket(request).response;
        } catch {
          refused++;
          return new Response("refused", { status: 400 });
        }
      }, async (served) => {
        for (let i = 0; i < 20; i++) {
          const response = await fetch(served.url, {
            headers: { upgrade: "websocket", connection: "Upgrade" },
          });
          assert.equal(response.status, 400);
          await response.text();
        }
        assert.equal(refused, 20);
        assert.equal(openBunSockets(server!), 0);
      });
    },
  );

  it(
    "names a copy of the request (a router's rewrite, as Hono's app.mount makes) when it cannot upgrade one (it said to serve with serve(), which the server did)",
    { skip: runtime !== "bun" && "Bun's server only" },
    async () => {
      let message = "";
      await withServer((request) => {
        const copy = new Request(new URL("/ws", request.url), request);
        try {
          return upgradeWebSocket(copy).response;
        } catch (error) {
          message = (error as Error).message;
          return new Response("refused", { status: 500 });
        }
      }, async (served) => {
        const response = await fetch(served.url, {
          headers: {
            upgrade: "websocket",
            connection: "Upgrade",
            "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
            "sec-websocket-version": "13",
          },
        });
        await response.text();
      });
      assert.match(message, /the request the server received, not a copy/);
      assert.match(message, /c\.req\.raw/);
    },
  );
});
