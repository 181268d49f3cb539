// The connection of a WebSocket the server closed ends, whatever its client
// does. Under Bun 1.4.5 a socket closed with 1009 (its client sent past
// maxBufferedBytes) stayed connected for as long as the client kept
// sending, its messages read and dropped (docs/known-runtime-issues.md
// (ah)): Bun queues the close frame behind what the client has not read,
// and a client that never reads never sees it. The Bun glue now closes
// behind a ping and cuts a connection whose peer reads nothing within
// CLOSE_GRACE_MS; a client that reads still gets the code and reason.
// Deno cuts such connections itself when nothing the server sent still
// waits in Deno and the client goes on sending: the bounds hold under both
// (Deno's close code to a client still sending is a known issue of its
// own). Under Deno 2.9.6 a socket closed while its sends wait for the
// client keeps its connection, reading nothing, for as long as the client
// does not read (as does one whose client neither reads nor sends); every
// wait below is bounded, so that shows as a failure, not a hang.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  websocketDuplex,
  type WebSocketLike,
} from "../lib/http/websocket_duplex.ts";
import type { DuplexStream } from "../lib/streams/duplex_stream.ts";
import { upgradeWebSocket } from "../lib/runtime/websocket.ts";
import { deadline, rawConnection, runtime, withServer } from "./_helpers.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
/** The longest a closed socket's connection may last while its client sends. */
const CUT_WITHIN_MS = 5_000;
/** The longest a client sends before the test gives up on the cut. */
const SEND_FOR_MS = 20_000;

const UPGRADE =
  "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/** One masked binary frame of `size` bytes (mask 0: the bytes as they are). */
function binaryFrame(size: number): Uint8Array {
  const frame = new Uint8Array(14 + size).fill(7);
  frame[0] = 0x82; // FIN, binary
  frame[1] = 0x80 | 127; // masked, 64-bit length
  new DataView(frame.buffer).setBigUint64(2, BigInt(size));
  frame.fill(0, 10, 14); // the masking key
  return frame;
}

/**
 * What a client that never reads sent, and whether the server ended it
 * (when), or when it stopped sending.
 */
interface Sending {
  sent: number;
  cut: boolean;
  endedAt: number;
  stoppedAt: number;
}

/**
 * Upgrades a raw connection to `port`, then never reads from it again (the
 * 101's head aside) and, once `start` resolves, sends 64 KiB binary messages
 * until the server ends the connection or `SEND_FOR_MS` passes (a wait for
 * the socket to drain included).
 */
async function sendWithoutReading(
  port: number,
  start?: Promise<unknown>,
): Promise<Sending> {
  const socket = await rawConnection(port);
  const gone = new Promise<void>((resolve) => socket.once("close", resolve));
  socket.write(UPGRADE);
  await deadline(
    new Promise<void>((resolve, reject) => {
      let head = "";
      const onData = (data: Uint8Array) => {
        head += new TextDecoder("latin1").decode(data);
        if (!head.includes("\r\n\r\n")) return;
        socket.off("data", onData);
        socket.pause();
        if (head.startsWith("HTTP/1.1 101 ")) resolve();
        else reject(new Error(`Upgrade refused: ${head.split("\r\n")[0]}`));
      };
      socket.on("data", onData);
    }),
    10_000,
    "the 101",
  );
  if (start) await deadline(start, 10_000, "the server's start");
  const frame = binaryFrame(64 * KiB);
  const started = performance.now();
  let ended = false;
  let endedAt = 0;
  gone.then(() => {
    ended = true;
    endedAt = performance.now();
  });
  let sent = 0;
  while (!ended && performance.now() - started < SEND_FOR_MS) {
    sent += 64 * KiB;
    if (!socket.write(frame)) {
      // A server that neither reads nor ends the connection never drains
      // it: the wait ends with what is left of SEND_FOR_MS.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onDrain = Promise.withResolvers<void>();
      socket.once("drain", onDrain.resolve);
      await Promise.race([
        onDrain.promise,
        gone,
        new Promise((resolve) => {
          timer = setTimeout(
            resolve,
            Math.max(0, SEND_FOR_MS - (performance.now() - started)),
          );
        }),
      ]);
      clearTimeout(timer);
      socket.off("drain", onDrain.resolve);
    }
  }
  const cut = ended;
  const stoppedAt = performance.now();
  socket.destroy();
  return { sent, cut, endedAt, stoppedAt };
}

/**
 * What {@linkcode sendWithoutReading} gives, waited for at most
 * `SEND_FOR_MS` and a margin (its connect, its 101 and its start are
 * bounded too).
 */
function sendingResult(sending: Promise<Sending>): Promise<Sending> {
  return deadline(sending, SEND_FOR_MS + 30_000, "the client's sending");
}

/**
 * A server whose handler runs `handler` on the duplex stream of each socket
 * (closing the stream with its error, if any), and records the first close
 * the server made of a socket: when, and its code.
 */
function closingServer(
  handler: (stream: DuplexStream, socket: WebSocketLike) => Promise<void>,
  maxBufferedBytes: number,
) {
  const closed = Promise.withResolvers<{ at: number; code?: number }>();
  const fetch = (request: Request) => {
    const { socket, response } = upgradeWebSocket(request);
    const close = socket.close.bind(socket);
    socket.close = (code?: number, reason?: string) => {
      closed.resolve({ at: performance.now(), code });
      close(code, reason);
    };
    const stream = websocketDuplex(socket, { maxBufferedBytes });
    handler(stream, socket).then(
      () => stream.close(),
      (error) => stream.close(error).catch(() => {}),
    );
    return response;
  };
  return { fetch, closed: closed.promise };
}

/** Checks that the connection ended within CUT_WITHIN_MS of the close at `at`. */
function assertCut(at: number, { sent, cut, endedAt, stoppedAt }: Sending) {
  const tookMs = endedAt - at;
  assert.ok(
    cut,
    `still connected after ${
      (stoppedAt - at).toFixed(0)
    } ms from the close, when the client stopped sending (${SEND_FOR_MS} ms, ${
      sent >> 20
    } MiB sent without reading)`,
  );
  assert.ok(
    tookMs < CUT_WITHIN_MS,
    `the connection ended ${tookMs.toFixed(0)} ms after the close (${
      sent >> 20
    } MiB sent)`,
  );
}

describe("a WebSocket the server closed", () => {
  it(
    "upgradeWebSocket's socket closed with 1009 by an echo whose client never reads ends its connection within 5 s while the client sends (under Bun it lasted as long as the client sent)",
    {
      // Both cases the echo can meet under Deno are tests of their own:
      // the one above, the one below (which Deno fails every time).
      skip: runtime === "deno" &&
        "under Deno 2.9.6 whether the echo's sends still wait at the close is a race (1 round in 30 beside a CPU hog; the connection then stays, as in the test of sends that wait, below); the test of a handler that sends nothing covers the cut Deno makes",
    },
    async () => {
      const { fetch, closed } = closingServer(async (stream) => {
        for await (const chunk of stream) await stream.write(chunk);
      }, 4 * MiB);
      await withServer(fetch, async (server) => {
        const done = sendWithoutReading(server.port);
        const { at, code } = await deadline(closed, 30_000, "the 1009");
        assert.equal(code, 1009);
        assertCut(at, await sendingResult(done));
      });
    },
  );

  it("upgradeWebSocket's socket closed with 1009 by a handler that sends nothing ends its connection within 5 s while its client sends without reading", async () => {
    // Nothing waits unsent here: the close frame fits in the kernel's
    // buffers, where a client that never reads leaves it.
    const release = Promise.withResolvers<void>();
    const { fetch, closed } = closingServer(async (stream) => {
      await stream.readPartial();
      await release.promise;
    }, MiB);
    await withServer(fetch, async (server) => {
      try {
        const done = sendWithoutReading(server.port);
        const { at, code } = await deadline(closed, 30_000, "the 1009");
        assert.equal(code, 1009);
        assertCut(at, await sendingResult(done));
      } finally {
        release.resolve();
      }
    });
  });

  it(
    "upgradeWebSocket's socket closed with 1009 while its sends wait for a client that never reads ends its connection within 5 s",
    {
      skip: runtime === "deno" &&
        "Deno 2.9.6 keeps the connection of a socket closed while its sends wait, reading nothing, for as long as the client does not read: it fires close at once, and the sends and the close frame wait for the client",
    },
    async () => {
      // The interleaving the echo above meets under load, made certain: the
      // client starts sending once what the handler sent waits in the
      // runtime (the kernel's buffers full), and the 1009 comes behind it.
      const waiting = Promise.withResolvers<void>();
      const { fetch, closed } = closingServer(async (stream, socket) => {
        const chunk = new Uint8Array(64 * KiB);
        for (;;) {
          await stream.write(chunk);
          if ((socket.bufferedAmount ?? 0) > 0) waiting.resolve();
        }
      }, MiB);
      await withServer(fetch, async (server) => {
        const done = sendWithoutReading(server.port, waiting.promise);
        // Awaited below, after the close; failed before it, not unhandled.
        done.catch(() => {});
        const { at, code } = await deadline(closed, 30_000, "the 1009");
        assert.equal(code, 1009);
        assertCut(at, await sendingResult(done));
      });
    },
  );

  it(
    "upgradeWebSocket's socket closed with 1009 gives a client that reads the code and reason",
    {
      skip: runtime === "deno" &&
        "Deno's close frame to a peer still sending can go unsent: it sees the connection dropped (docs/duplex.md)",
    },
    async () => {
      // The handler reads nothing; the client sends past the bound.
      const release = Promise.withResolvers<void>();
      const { fetch, closed } = closingServer(() => release.promise, MiB);
      await withServer(fetch, async (server) => {
        try {
          const url = new URL(server.url);
          url.protocol = "ws:";
          const client = new WebSocket(url);
          const clientClosed = new Promise<CloseEvent>((resolve) =>
            client.addEventListener("close", resolve, { once: true })
          );
          await deadline(
            new Promise((resolve) =>
              client.addEventListener("open", resolve, { once: true })
            ),
            10_000,
            "the open",
          );
          const message = new Uint8Array(64 * KiB);
          for (let i = 0; i < 32 && client.readyState === WebSocket.OPEN; i++) {
            client.send(message);
          }
          assert.equal((await deadline(closed, 10_000, "the 1009")).code, 1009);
          const event = await deadline(
            clientClosed,
            10_000,
            "the client's close",
          );
          assert.equal(event.code, 1009);
          assert.equal(event.reason, "read queue full");
        } finally {
          release.resolve();
        }
      });
    },
  );

  it("websocketDuplex's close after its handler ended gives a client that reads all the handler sent, then 1000", async () => {
    const size = 4 * MiB;
    const { fetch } = closingServer(async (stream) => {
      for (let sent = 0; sent < size; sent += 256 * KiB) {
        await stream.write(new Uint8Array(256 * KiB).fill(1));
      }
      await stream.closeWrite();
      for await (const _ of stream);
    }, MiB);
    await withServer(fetch, async (server) => {
      const url = new URL(server.url);
      url.protocol = "ws:";
      const client = new WebSocket(url);
      const closed = new Promise<CloseEvent>((resolve) =>
        client.addEventListener("close", resolve, { once: true })
      );
      const stream = websocketDuplex(client);
      await stream.closeWrite();
      let received = 0;
      for await (const chunk of stream) received += chunk.byteLength;
      assert.equal(received, size);
      assert.equal((await deadline(closed, 10_000, "the close")).code, 1000);
    });
  });
});
