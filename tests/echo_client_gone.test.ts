// Echo clients that write without reading: every echo pipeline must end
// within a bound of its client's not reading, whatever the runtime reports.
// Under Bun 1.4.5, of 40 clients that wrote without reading and then went
// away, 2-12 in three runs were never told to the handler (no abort of
// `request.signal`, no cancel of the response body; no TCP connection
// left), and their pipelines lived for good, each with a timer looking at
// the full queue every idleTimeoutMs/8. A client that stays connected and
// reads nothing is the same to the echo, on every runtime: before, its
// pipeline lived for as long as the connection did. And a client that reads
// a little, often enough, is not cut.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { createEchoHandler } from "../lib/http/echo.ts";
import { rawConnection, withServer } from "./_helpers.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const IDLE_MS = 1_000;
/** Clients per test: the Bun defect caught a few of 40. */
const CLIENTS = 40;
const CHUNK = new Uint8Array(64 * 1024);

/**
 * The echo handler, with the echo pipelines still live counted: the echo
 * reads the request body through a stream that notes its end (closed,
 * errored, or cancelled by the echo's pipe, which it is when the pipeline
 * fails).
 */
function countedEcho(options: { idleTimeoutMs: number }) {
  const echo = createEchoHandler(options);
  const counts = { started: 0, live: 0 };
  const handler = (request: Request): Promise<Response> => {
    if (request.body === null) return echo(request);
    counts.started++;
    counts.live++;
    let ended = false;
    const end = () => {
      if (!ended) {
        ended = true;
        counts.live--;
      }
    };
    const reader = request.body.getReader();
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const { value, done } = await reader.read();
          if (done) {
            end();
            controller.close();
          } else {
            controller.enqueue(value);
          }
        } catch (error) {
          end();
          throw error;
        }
      },
      cancel: (reason) => reader.cancel(reason).finally(end),
    }, { highWaterMark: 0 });
    return echo(
      new Request(request.url, {
        method: request.method,
        headers: request.headers,
        body,
        signal: request.signal,
        duplex: "half",
      } as RequestInit),
    );
  };
  return { handler, counts };
}

/** Resolves once `done()` holds, polling; rejects after `ms`. */
async function until(done: () => boolean, ms: number, what: string) {
  const end = performance.now() + ms;
  while (!done()) {
    if (performance.now() > end) {
      throw new Error(`Deadline: ${what} took more than ${ms} ms`);
    }
    await sleep(50);
  }
}

/**
 * A chunked echo request on a raw connection that writes 64 KiB chunks and
 * reads nothing, until its writes have stalled (the server's buffers and
 * the echo's read-ahead are full) or 2 s have passed.
 */
async function writeWithoutReading(port: number): Promise<Socket> {
  const socket = await rawConnection(port);
  socket.write(
    "POST /echo HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\n\r\n",
  );
  const until = performance.now() + 2_000;
  const size = `${CHUNK.byteLength.toString(16)}\r\n`;
  while (performance.now() < until && !socket.destroyed) {
    socket.write(size);
    socket.write(CHUNK);
    if (!socket.write("\r\n")) {
      const drained = new Promise((resolve) => socket.once("drain", resolve));
      if (await Promise.race([drained.then(() => false), sleep(300)])) break;
      if (socket.writableNeedDrain) break;
    }
  }
  return socket;
}

describe("createEchoHandler with clients that read none of the echo", () => {
  it(`ends the pipelines of ${CLIENTS} clients that wrote without reading and left, within 2 x idleTimeoutMs`, async () => {
    const { handler, counts } = countedEcho({ idleTimeoutMs: IDLE_MS });
    await withServer(handler, async (server) => {
      const sockets = await Promise.all(
        Array.from({ length: CLIENTS }, () => writeWithoutReading(server.port)),
      );
      await until(() => counts.started === CLIENTS, 5_000, "requests");
      const left = performance.now();
      for (const socket of sockets) socket.destroy();
      await until(
        () => counts.live === 0,
        2 * IDLE_MS + 2_000,
        `the end of ${counts.live} of ${CLIENTS} pipelines`,
      ).catch((error) => {
        throw new Error(`${counts.live} of ${CLIENTS} pipelines live`, {
          cause: error,
        });
      });
      assert.ok(performance.now() - left < 2 * IDLE_MS + 2_000);
    });
  });

  it("ends the pipeline of a client that stays connected reading nothing, after idleTimeoutMs", async () => {
    const { handler, counts } = countedEcho({ idleTimeoutMs: IDLE_MS });
    await withServer(handler, async (server) => {
      const sockets = await Promise.all(
        Array.from({ length: 4 }, () => writeWithoutReading(server.port)),
      );
      try {
        await until(
          () => counts.live === 0,
          2 * IDLE_MS + 4_000,
          "the end of the pipelines",
        );
      } finally {
        for (const socket of sockets) socket.destroy();
      }
    });
  });

  it("does not cut a client that reads its echo a little at a time, less than idleTimeoutMs apart", async () => {
    const { handler, counts } = countedEcho({ idleTimeoutMs: IDLE_MS });
    await withServer(handler, async (server) => {
      const socket = await rawConnection(server.port);
      try {
        socket.write(
          "POST /echo HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\n\r\n",
        );
        // 5 x the limit: 16 KiB written and what came back read every
        // 300 ms, with 2 MiB sent ahead (more than the echo reads ahead),
        // so the echo is held back between reads.
        const ahead = new Uint8Array(2 * 1024 * 1024);
        socket.write(`${ahead.byteLength.toString(16)}\r\n`);
        socket.write(ahead);
        socket.write("\r\n");
        let read = 0;
        for (let i = 0; i < (5 * IDLE_MS) / 300; i++) {
          await sleep(300);
          for (let chunk; (chunk = socket.read()) !== null;) {
            read += chunk.byteLength;
          }
          socket.write("4000\r\n");
          socket.write(new Uint8Array(16 * 1024));
          socket.write("\r\n");
          assert.equal(counts.live, 1, `cut after ${read} bytes read`);
        }
        assert.ok(read > 0);
        socket.write("0\r\n\r\n");
        socket.resume();
        await until(() => counts.live === 0, 10_000, "the echo's end");
      } finally {
        socket.destroy();
      }
    });
  });
});
