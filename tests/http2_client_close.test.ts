// Http2Client.close() under a server that answers calls the client has
// reset. Bun 1.4.5's node:http2 client session, after a response (HEADERS
// with END_STREAM) on a stream it had reset and a call after it, never
// emitted 'close' once closed (closed true, destroyed false, every stream
// closed): close() never resolved and its socket kept the process alive.
// grpc-go does that when its deadline races the client's cancel; the
// server here does it on purpose, from raw frames (no Go in CI).

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import * as http2 from "node:http2";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { createHttp2Client } from "../lib/runtime/grpc_node.ts";
import { createClient, createGrpcTransport } from "../lib/rpc/mod.ts";
import { FRAME, frame, readFrames, responseHeaders } from "./_h2_frames.ts";
import { cancelledThenAnswered, LateService } from "./_h2_close_client.ts";
import { deadline, runProcess, runtime } from "./_helpers.ts";

const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const enc = new TextEncoder();

/** An HPACK literal without indexing, new name, not Huffman-coded. */
function literal(name: string, value: string): number[] {
  const out = [0x00];
  for (const text of [name, value]) {
    const bytes = enc.encode(text);
    out.push(bytes.byteLength, ...bytes); // short strings only
  }
  return out;
}

/** A header block ending `streamId` with `grpc-status`. */
function trailers(streamId: number, status: number, head = false) {
  const block = [
    // :status 200 and content-type application/grpc, for Trailers-Only.
    ...(head ? [0x88, 0x0f, 0x10, 16, ...enc.encode("application/grpc")] : []),
    ...literal("grpc-status", String(status)),
  ];
  return frame(
    FRAME.HEADERS,
    END_STREAM | END_HEADERS,
    streamId,
    new Uint8Array(block),
  );
}

/** The Int64Value of a gRPC request's single message (its varint). */
function requestValue(body: Uint8Array): number {
  let value = 0;
  for (let at = 6, shift = 0; at < body.byteLength; at++, shift += 7) {
    value += (body[at] & 0x7f) * 2 ** shift;
    if (!(body[at] & 0x80)) break;
  }
  return value;
}

/**
 * A bare HTTP/2 server for `t.Late/One` (tests/_h2_close_client.ts): a call
 * with n answers n after n ms; a call with 0 is answered only once the
 * client reset it, with Trailers-Only DEADLINE_EXCEEDED on the closed
 * stream. `requested(n)` resolves when a call with n has come.
 */
async function lateAnswerServer() {
  const sockets = new Set<Socket>();
  // Waiters for a request with a given value, whole.
  const waiters = new Map<number, () => void>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    socket.write(frame(FRAME.SETTINGS, 0, 0));
    const bodies = new Map<number, Uint8Array>();
    const ended = (streamId: number) => {
      const value = requestValue(bodies.get(streamId) ?? new Uint8Array(0));
      bodies.delete(streamId);
      waiters.get(value)?.();
      waiters.delete(value);
      if (value === 0) return; // answered after its reset
      const message = [0x08];
      for (let v = value;; v = Math.floor(v / 128)) {
        if (v < 128) {
          message.push(v);
          break;
        }
        message.push((v % 128) | 0x80);
      }
      const envelope = new Uint8Array([0, 0, 0, 0, message.length, ...message]);
      setTimeout(() => {
        if (socket.destroyed) return;
        socket.write(responseHeaders(streamId, "application/grpc"));
        socket.write(frame(FRAME.DATA, 0, streamId, envelope));
        socket.write(trailers(streamId, 0));
      }, value);
    };
    readFrames(socket, (type, flags, streamId, payload) => {
      if (type === FRAME.SETTINGS && !(flags & 0x1)) {
        socket.write(frame(FRAME.SETTINGS, 0x1, 0));
      } else if (type === FRAME.PING && !(flags & 0x1)) {
        socket.write(frame(FRAME.PING, 0x1, 0, payload));
      } else if (type === FRAME.HEADERS || type === FRAME.DATA) {
        if (type === FRAME.DATA) {
          const body = bodies.get(streamId) ?? new Uint8Array(0);
          const joinedBody = new Uint8Array(
            body.byteLength + payload.byteLength,
          );
          joinedBody.set(body);
          joinedBody.set(payload, body.byteLength);
          bodies.set(streamId, joinedBody);
        }
        if (flags & END_STREAM) ended(streamId);
      } else if (type === FRAME.RST_STREAM) {
        // As grpc-go's deadline racing the client's cancel: an answer on
        // a stream the client has closed.
        socket.write(trailers(streamId, 4, true));
      }
    });
  });
  await new Promise<void>((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve())
  );
  return {
    port: (server.address() as { port: number }).port,
    /** Resolves once a request with `value` has come whole. */
    requested: (value: number) =>
      new Promise<void>((resolve) => waiters.set(value, resolve)),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe("Http2Client.close() after calls the server answered past their reset", () => {
  let server: Awaited<ReturnType<typeof lateAnswerServer>>;
  let url: string;
  before(async () => {
    server = await lateAnswerServer();
    url = `http://127.0.0.1:${server.port}`;
  });
  after(() => server?.close());

  it("Http2Client.close() resolves after two calls cancelled at their deadline and answered late, then one call (Bun: never resolved)", async () => {
    const httpClient = createHttp2Client(url);
    await deadline(cancelledThenAnswered(url, httpClient), 10_000, "calls");
    await deadline(httpClient.close(), 5_000, "close()");
  });

  it("Http2Client.close() lets a call open at close() finish before it resolves", async () => {
    const httpClient = createHttp2Client(url);
    await deadline(cancelledThenAnswered(url, httpClient), 10_000, "calls");
    const client = createClient(
      LateService,
      createGrpcTransport({ baseUrl: url, httpClient }),
    );
    // Open longer than close()'s grace (200 ms after the last call ends).
    const events: string[] = [];
    const requested = server.requested(600);
    const call = client.one(600n).then((value) => {
      events.push(`call ${value}`);
    });
    // Its request sent: the server holds it 600 ms.
    await deadline(requested, 5_000, "the request");
    const closing = httpClient.close().then(() => events.push("closed"));
    await deadline(Promise.all([call, closing]), 5_000, "call and close()");
    assert.deepEqual(events, ["call 600", "closed"]);
  });

  it("a process that makes those calls with createHttp2Client and awaits close() exits by itself", async () => {
    const script = join(import.meta.dirname ?? "tests", "_h2_close_client.ts");
    const args = runtime === "deno"
      ? ["run", "--allow-all", script, String(server.port)]
      : [script, String(server.port)];
    const { code, stdout, stderr } = await runProcess(process.execPath, args, {
      cwd: join(import.meta.dirname ?? "tests", ".."),
      timeoutMs: 20_000,
    });
    assert.equal(
      code,
      0,
      code === null
        ? "it did not exit within 20 s (killed)"
        : `exit code ${code}: ${stderr.slice(-2000)}`,
    );
    assert.match(stdout, /\{"closed":true\}/);
  });
});

describe("Http2Client.close() with a call open on a session a GOAWAY replaced", () => {
  // The server sends GOAWAY naming a slow call's stream as the last it
  // processes, and answers it 600 ms later; the next call goes on a new
  // session. close() resolved once the new session closed, while the slow
  // call still ran on the old one ("open calls finish first").
  let server: http2.Http2Server;
  let url: string;
  let slowArrived: () => void = () => {};
  before(async () => {
    server = http2.createServer();
    server.on("stream", (h2stream, headers) => {
      const stream = h2stream as http2.ServerHttp2Stream;
      stream.resume();
      stream.on("end", () => {
        if (headers[":path"] === "/slow") {
          stream.session?.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id);
          slowArrived();
          setTimeout(() => {
            if (stream.destroyed) return;
            stream.respond({ ":status": 200 });
            stream.end("slow");
          }, 600);
        } else {
          stream.respond({ ":status": 200 });
          stream.end("fast");
        }
      });
    });
    await new Promise<void>((resolve) =>
      server.listen(0, "127.0.0.1", resolve)
    );
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  after(() => new Promise((resolve) => server.close(resolve)));

  it("close() waits for the call on the old session too", async () => {
    const httpClient = createHttp2Client(url);
    const events: string[] = [];
    const call = async (path: string) => {
      const response = await httpClient({
        url: url + path,
        method: "POST",
        headers: new Headers({ "content-type": "application/octet-stream" }),
        body: new Uint8Array([1]),
        signal: new AbortController().signal,
      });
      events.push(`${path}: ${await new Response(response.body).text()}`);
    };
    let goaway!: () => void;
    const gone = new Promise<void>((resolve) => goaway = resolve);
    server.once("session", (session) => session.once("close", goaway));
    const arrived = new Promise<void>((resolve) => slowArrived = resolve);
    const slow = call("/slow");
    // Its GOAWAY sent, the next call goes on a session of its own (or is
    // refused on the old one and sent again there).
    await deadline(arrived, 5_000, "the slow call");
    await deadline(call("/fast"), 5_000, "the call on a new session");
    const closing = httpClient.close().then(() => events.push("closed"));
    await deadline(Promise.all([slow, closing]), 5_000, "slow and close()");
    assert.deepEqual(events, ["/fast: fast", "/slow: slow", "closed"]);
    await deadline(gone, 5_000, "the old session's end");
  });
});
