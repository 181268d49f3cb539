// A WebSocket duplex closed with a reason (or its output aborted, or its
// input cancelled with a reason) while its socket is still connecting.
// It closed the socket at once: Deno 2.9.6's client then sends, when the
// 101 comes in at that moment, a close frame with no code, which the
// peer's duplex read as a clean end (1005) of an input whose bytes were
// never sent: a server that commits on the end of input committed an empty
// upload (docs/known-runtime-issues.md (aj)). The socket is now closed once
// it opens, with 1011 (4011 from a client) and the reason.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { createHash } from "node:crypto";
import {
  websocketDuplex,
  type WebSocketLike,
} from "../lib/http/websocket_duplex.ts";
import { upgradeWebSocket } from "../lib/runtime/websocket.ts";
import { deadline, withServer } from "./_helpers.ts";

/** A socket that stays connecting until told to open. */
class ConnectingSocket extends EventTarget implements WebSocketLike {
  readyState = 0;
  binaryType = "blob";
  bufferedAmount = 0;
  readonly closes: { code?: number; reason?: string }[] = [];
  readonly sent: (Uint8Array | string)[] = [];
  /** Resolves at the first close(). */
  readonly #closed = Promise.withResolvers<void>();
  readonly closed = this.#closed.promise;
  send(data: Uint8Array | string): void {
    if (this.readyState !== 1) {
      throw new TypeError("ConnectingSocket: not open");
    }
    this.sent.push(data);
  }
  close(code?: number, reason?: string): void {
    this.closes.push({ code, reason });
    this.#closed.resolve();
    if (this.readyState < 2) this.readyState = 2;
  }
  /** The handshake completes. */
  open(): void {
    this.readyState = 1;
    this.dispatchEvent(new Event("open"));
  }
}

/** Lets pending promise jobs and a timer's turn run. */
const turn = () => new Promise((resolve) => setTimeout(resolve, 10));

/** What a raw WebSocket server read from its one client, frame by frame. */
interface Frames {
  /** Data frames: opcode and payload length. */
  readonly data: { opcode: number; length: number }[];
  /** The close frame's code, or "none" for one without; unset if none came. */
  close?: number | "none";
  reason?: string;
}

/**
 * A raw WebSocket server on 127.0.0.1 that answers the handshake only once
 * `answer` resolves, then records the frames its client sends (each whole
 * in one read: small, on loopback).
 */
async function slowHandshakeServer(answer: Promise<void>) {
  const frames: Frames = { data: [] };
  const done = Promise.withResolvers<void>();
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.once("close", () => done.resolve());
    let head = "";
    let upgraded = false;
    socket.on("data", (data: Uint8Array) => {
      if (!upgraded) {
        head += new TextDecoder("latin1").decode(data);
        if (!head.includes("\r\n\r\n")) return;
        upgraded = true;
        const key = /sec-websocket-key: *(\S+)/i.exec(head)?.[1] ?? "";
        const accept = createHash("sha1")
          .update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
          .digest("base64");
        answer.then(() =>
          socket.write(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
              `Connection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
          )
        );
        return;
      }
      const opcode = data[0] & 0x0f;
      const length = data[1] & 0x7f;
      const mask = data.subarray(2, 6);
      const payload = data.subarray(6, 6 + length).map((byte, i) =>
        byte ^ mask[i % 4]
      );
      if (opcode !== 8) {
        frames.data.push({ opcode, length });
        return;
      }
      frames.close = length >= 2 ? (payload[0] << 8) | payload[1] : "none";
      frames.reason = new TextDecoder().decode(payload.subarray(2));
      socket.end();
    });
  });
  await new Promise<void>((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve())
  );
  const { port } = server.address() as { port: number };
  return {
    port,
    frames,
    /** Resolves once the client's connection has closed. */
    done: done.promise,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe("websocketDuplex closed while its socket connects", () => {
  it("websocketDuplex close(reason) on a connecting socket closes it once it opens, with 1011 and the reason (it closed it at once: a code-less close frame, a clean end to the peer)", async () => {
    const socket = new ConnectingSocket();
    const stream = websocketDuplex(socket);
    const written = stream.write("payload").catch((error) => error);
    await stream.close(new Error("client gave up"));
    await turn();
    assert.deepEqual(socket.closes, [], "closed while connecting");
    socket.open();
    await turn();
    assert.deepEqual(socket.closes, [{ code: 1011, reason: "client gave up" }]);
    assert.deepEqual(socket.sent, [], "nothing sent before the close");
    assert.match(String(await written), /client gave up/);
  });

  it("websocketDuplex readable.cancel(reason) on a connecting socket closes it once it opens, with 1011 and the reason", async () => {
    const socket = new ConnectingSocket();
    const stream = websocketDuplex(socket);
    await stream.readable.cancel(new Error("reader gave up"));
    await turn();
    assert.deepEqual(socket.closes, [], "closed while connecting");
    socket.open();
    await turn();
    assert.deepEqual(socket.closes, [{ code: 1011, reason: "reader gave up" }]);
  });

  it("websocketDuplex aborted while connecting and never opened is closed at openTimeoutMs, once", async () => {
    const socket = new ConnectingSocket();
    const stream = websocketDuplex(socket, { openTimeoutMs: 50 });
    await stream.close(new Error("client gave up"));
    await deadline(socket.closed, 5_000, "the open timeout");
    await turn();
    assert.deepEqual(socket.closes, [
      { code: 1011, reason: "not open after 50 ms" },
    ]);
  });

  it("websocketDuplex aborted while connecting, with no open timeout (0), is closed with its reason within 2 s (it was held connecting for ever)", async () => {
    const socket = new ConnectingSocket();
    const stream = websocketDuplex(socket, { openTimeoutMs: 0 });
    const started = performance.now();
    await stream.close(new Error("client gave up"));
    await deadline(socket.closed, 5_000, "the close of the aborted socket");
    const waited = performance.now() - started;
    assert.ok(waited >= 1_500, `closed after ${waited} ms`);
    await turn();
    assert.deepEqual(socket.closes, [{ code: 1011, reason: "client gave up" }]);
  });

  it("websocketDuplex close(reason) on a client WebSocket still connecting sends the peer a close frame with 4011 (Bun's: 1011) and the reason once the 101 comes, and no data", async () => {
    const answer = Promise.withResolvers<void>();
    const server = await slowHandshakeServer(answer.promise);
    try {
      const socket = new WebSocket(`ws://127.0.0.1:${server.port}/`);
      const stream = websocketDuplex(socket);
      stream.write("payload").catch(() => {});
      assert.equal(socket.readyState, WebSocket.CONNECTING);
      await stream.close(new Error("client gave up"));
      answer.resolve();
      await deadline(server.done, 10_000, "the client's close");
      assert.deepEqual(server.frames.data, []);
      // 4011 from Deno's client, which refuses 1011; Bun's sends 1011.
      assert.ok(
        server.frames.close === 4011 || server.frames.close === 1011,
        `close frame: ${server.frames.close}`,
      );
      assert.equal(server.frames.reason, "client gave up");
    } finally {
      answer.resolve();
      await server.close();
    }
  });

  it("websocketDuplex on the server reads a client's close(reason) made while connecting as a failure with its code, not a clean end", async () => {
    const clientClosed = Promise.withResolvers<void>();
    const read = Promise.withResolvers<string>();
    await withServer(async (request) => {
      // The 101 goes out only once the client has given up.
      await clientClosed.promise;
      const { socket, response } = upgradeWebSocket(request);
      const stream = websocketDuplex(socket, { openTimeoutMs: 5_000 });
      (async () => {
        let bytes = 0;
        for await (const chunk of stream) bytes += chunk.byteLength;
        return `ended cleanly after ${bytes} bytes`;
      })().then(read.resolve, (error) => read.resolve(String(error)));
      return response;
    }, async (server) => {
      const socket = new WebSocket(`ws://127.0.0.1:${server.port}/`);
      const stream = websocketDuplex(socket);
      stream.write("payload").catch(() => {});
      await stream.close(new Error("client gave up"));
      clientClosed.resolve();
      assert.match(
        await deadline(read.promise, 10_000, "the server's read"),
        /^TypeError: Cannot use WebSocket: the connection closed with code (4011|1011) \(client gave up\)$/,
      );
    });
  });
});
