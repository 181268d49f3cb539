// serveHttp2 under HTTP/2 attacks, with the server in its own process
// (tests/_h2_server.ts) reporting its own RSS (/proc/self/status) and open
// descriptors (/proc/self/fd): rapid reset over several connections, more
// streams than SETTINGS_MAX_CONCURRENT_STREAMS on one connection, an HPACK
// bomb (header lists over maxHeaderListBytes that weigh a few bytes on the
// wire), a session that sends nothing, and the option checks. Each attack
// checks that the server still answers a normal request, that its RSS
// stays within a bound and that its descriptors return to where they were.
//
// The bounds come from measurements on this project's 2-core machine (Deno
// 2.9.6, server baseline RSS about 53 MiB); the figures before and after the
// limits are in docs/known-runtime-issues.md.

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  type ChildServer,
  connect,
  MiB,
  ping,
  type ServerStats,
  silentSession,
  startChildServer,
} from "./_h2_attacks.ts";
import {
  bombBlock,
  FRAME,
  frame,
  getFrame,
  headerFrames,
  openRawH2,
  requestBlock,
  resetFrame,
} from "./_h2_frames.ts";
import type * as http2 from "node:http2";
import { spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { serveHttp2 } from "../lib/runtime/serve_http2.ts";
import { deadline, runtime } from "./_helpers.ts";

/**
 * RSS over the server's own baseline that an attack may cause, at its peak
 * and after it (with a full GC). Measured under Deno: rapid reset 78 MiB
 * (peak and after), streams over the limit 9-15 MiB, HPACK bomb 20 MiB.
 */
const RESET_GROWTH = 128 * MiB;
const STREAMS_GROWTH = 48 * MiB;
const BOMB_GROWTH = 64 * MiB;
/** Descriptors over the baseline once the attacker has gone. */
const FD_MARGIN = 2;

const children: ChildServer[] = [];
after(async () => {
  for (const child of children) {
    await deadline(child.stop(), 10_000, "server process exit");
  }
});

async function start(
  options: Parameters<typeof startChildServer>[0] = {},
): Promise<{ server: ChildServer; base: ServerStats }> {
  const server = await startChildServer(options);
  children.push(server);
  assert.equal(await ping(server.url), "200 pong");
  const base = await server.stats("gc");
  await server.stats("reset");
  return { server, base };
}

/**
 * One request on `session` (a GET, or a POST of `requestBody`): its status and
 * body, as "200 pong".
 */
function get(
  session: http2.ClientHttp2Session,
  path: string,
  requestBody?: Uint8Array,
): Promise<string> {
  return deadline(
    new Promise<string>((resolve, reject) => {
      const stream = session.request({
        ":path": path,
        ":method": requestBody ? "POST" : "GET",
      });
      let status = 0;
      let body = "";
      stream.on("response", (headers) => status = Number(headers[":status"]));
      stream.setEncoding("utf8");
      stream.on("data", (data: string) => body += data);
      stream.once("end", () => resolve(`${status} ${body}`));
      stream.once("error", reject);
      stream.end(requestBody);
    }),
    10_000,
    `GET ${path}`,
  );
}

/**
 * Node (the `node` on PATH) as a client: `n` gRPC-like POSTs of a small
 * body to a path the server answers 404 (its headers alone), one after another, on one connection (a new one after a GOAWAY),
 * then the connection closed; resolves with what it printed, the number
 * answered 404.
 */
function runNodeClient(port: number, n: number): Promise<string> {
  const script = `
    const http2 = require("node:http2");
    const url = "http://127.0.0.1:${port}";
    let session, ok = 0;
    const open = () => {
      if (!session || session.closed || session.destroyed) {
        session = http2.connect(url);
        session.on("error", () => {});
        session.on("goaway", () => session.close());
      }
      return session;
    };
    (async () => {
      for (let i = 0; i < ${n}; i++) {
        await new Promise((resolve) => {
          const stream = open().request({
            ":method": "POST",
            ":path": "/test.Svc/echo",
            "content-type": "application/grpc",
            te: "trailers",
          });
          stream.on("error", () => {});
          stream.on("response", (h) => { if (h[":status"] === 404) ok++; });
          stream.on("close", resolve);
          stream.resume();
          stream.end(Buffer.from([0, 0, 0, 0, 1, 7]));
        });
      }
      session.close();
      process.stdout.write(String(ok));
      // Alive while the close completes (exiting at once cuts it short).
      await new Promise((resolve) => setTimeout(resolve, 1000));
    })();
  `;
  return new Promise((resolve, reject) => {
    const child = spawn("node", ["-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => out += d);
    child.once("error", reject);
    child.once("close", () => resolve(out));
  });
}

/**
 * Runs tests/_h2_idle_client.ts against `url` in a process of this runtime:
 * what it printed (its failures as JSON), and its exit code or signal.
 */
function runIdleClient(
  url: string,
  count: number,
): Promise<{ out: string; exit: number | string | null }> {
  const script = fileURLToPath(
    new URL("./_h2_idle_client.ts", import.meta.url),
  );
  const args = "Bun" in globalThis
    ? [script, url, String(count)]
    : ["run", "--allow-net=127.0.0.1", script, url, String(count)];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => out += d);
    child.once("error", reject);
    child.once(
      "close",
      (code, signal) => resolve({ out, exit: code ?? signal }),
    );
  });
}

/** Waits (bounded) until the server's descriptors are back to `base`. */
async function fdsSettle(server: ChildServer, base: ServerStats) {
  const until = performance.now() + 10_000;
  let now = await server.stats("gc");
  while (now.fds > base.fds + FD_MARGIN && performance.now() < until) {
    // Across a process boundary there is no promise to wait for: the
    // server closes sockets on its own schedule.
    await new Promise((resolve) => setTimeout(resolve, 100));
    now = await server.stats("gc");
  }
  return now;
}

function checkMemory(
  label: string,
  base: ServerStats,
  peak: number,
  after: ServerStats,
  bound: number,
) {
  const mb = (n: number) => (n / MiB).toFixed(0);
  console.log(
    `${label}: server RSS ${mb(base.rss)} -> peak ${mb(peak)} -> ${
      mb(after.rss)
    } MiB, fds ${base.fds} -> ${after.fds}`,
  );
  assert.ok(
    peak - base.rss < bound,
    `${label}: peak RSS grew by ${mb(peak - base.rss)} MiB`,
  );
  assert.ok(
    after.rss - base.rss < bound,
    `${label}: RSS still ${mb(after.rss - base.rss)} MiB over the baseline`,
  );
  assert.ok(
    after.fds <= base.fds + FD_MARGIN,
    `${label}: descriptors ${base.fds} -> ${after.fds}`,
  );
  assert.equal(after.handlers, 0, `${label}: handlers still running`);
}

/**
 * Under Deno 2.9.6 the server process itself aborts now and then after a
 * flood of reset or refused streams, with or without these limits (nghttp2
 * assertion `find_stream_on_goaway_func`, or `free(): invalid pointer`):
 * measured in 1-3 runs of 6 for both attacks, the same with the code before
 * the limits, and 1 run in 3 with these tests as they are. A bare
 * `node:http2` server with no sluice code aborts the same way (2 runs of 6;
 * the script is in docs/known-runtime-issues.md (e)): a Deno defect that no
 * guard in serveHttp2 avoids (it already writes nothing to a stream that is
 * closed, destroyed or aborted). An abort there would fail the test, not the
 * runner (the server is a child process), but one run in three would fail:
 * these two attacks run under Bun here and under Deno in
 * `deno task stress --h2`.
 */
const denoAborts = runtime === "deno";

describe("serveHttp2 under HTTP/2 attacks (server in its own process)", () => {
  (denoAborts ? it.skip : it)(
    "serveHttp2 closes sessions that reset streams in a flood (rapid reset) and keeps answering",
    async () => {
      const { server, base } = await start();
      const connections = 10;
      const streams = 500;
      // HEADERS then RST_STREAM for each stream, all in one write per
      // connection (CVE-2023-44487). Raw frames: the attacker never sends a
      // GOAWAY (see docs/known-runtime-issues.md for what one does to Deno).
      const raws = await Promise.all(
        Array.from({ length: connections }, () => openRawH2(server.port)),
      );
      for (const raw of raws) {
        const frames: Uint8Array[] = [];
        for (let i = 0; i < streams; i++) {
          frames.push(getFrame(2 * i + 1, "/hold"), resetFrame(2 * i + 1));
        }
        raw.write(...frames);
      }
      const during = deadline(ping(server.url, 30_000), 40_000, "ping");
      await deadline(
        Promise.all(raws.map((raw) => raw.closed)),
        30_000,
        "the server closing every attacking session",
      );
      assert.equal(await during, "200 pong");
      assert.equal(await ping(server.url), "200 pong");
      // Each closed with GOAWAY ENHANCE_YOUR_CALM (11), as RFC 9113 and
      // nginx answer a flood (it said NO_ERROR, 0).
      assert.deepEqual(
        raws.map((raw) => raw.outcome.goaway),
        raws.map(() => 11),
      );
      const stats = await server.stats();
      // No handler ran for a stream that was reset before its dispatch.
      assert.ok(
        stats.started <= base.started + 2 + 128,
        `${stats.started - base.started} handlers started`,
      );
      const after = await fdsSettle(server, base);
      checkMemory(
        "rapid reset",
        base,
        Math.max(stats.peak, after.peak),
        after,
        RESET_GROWTH,
      );
    },
  );

  (denoAborts ? it.skip : it)(
    "serveHttp2 refuses streams over maxConcurrentStreams with REFUSED_STREAM and keeps answering",
    async () => {
      const { server, base } = await start();
      const raw = await openRawH2(server.port);
      const n = 1000;
      // All HEADERS in one write, ahead of the server's SETTINGS: a client
      // that ignores SETTINGS_MAX_CONCURRENT_STREAMS (128).
      raw.write(
        ...Array.from({ length: n }, (_, i) => getFrame(2 * i + 1, "/hold")),
      );
      await deadline(raw.settled(n), 20_000, "answers or resets");
      const during = await ping(server.url);
      raw.destroy();
      console.log(`streams over the limit: ${JSON.stringify(raw.outcome)}`);
      assert.equal(during, "200 pong");
      assert.ok(
        raw.outcome.answered <= 128,
        `${raw.outcome.answered} answered`,
      );
      // The extra streams are refused with REFUSED_STREAM (7); Bun's
      // node:http2 refuses about 100 and then closes the session with GOAWAY
      // ENHANCE_YOUR_CALM (11), as Node does past maxSessionRejectedStreams.
      const refused = raw.outcome.resets["7"] ?? 0;
      assert.ok(refused > 0, `resets ${JSON.stringify(raw.outcome.resets)}`);
      assert.ok(
        raw.outcome.answered + refused >= n - 1 || raw.outcome.goaway === 11,
        `outcome ${JSON.stringify(raw.outcome)}`,
      );
      const stats = await server.stats();
      assert.ok(stats.started <= 128 + 2, `${stats.started} handlers started`);
      const after = await fdsSettle(server, base);
      checkMemory(
        "over the limit",
        base,
        Math.max(stats.peak, after.peak),
        after,
        STREAMS_GROWTH,
      );
    },
  );

  it("serveHttp2 runs no handler for header lists over maxHeaderListBytes (HPACK bomb)", async () => {
    const { server, base } = await start();
    const raw = await openRawH2(server.port);
    // 60 KB decoded per request, from one 4,000-byte dynamic-table entry
    // referenced 15 times: 18 MB decoded from about 1.3 MB sent. Batches
    // of 100 stay under SETTINGS_MAX_CONCURRENT_STREAMS.
    let id = 1;
    let sent = 0;
    for (let batch = 0; batch < 3 && !raw.outcome.closed; batch++) {
      const frames: Uint8Array[] = [];
      for (let i = 0; i < 100; i++, id += 2, sent++) {
        frames.push(...headerFrames(id, bombBlock("/ping", 4000, 15)));
      }
      raw.write(...frames);
      await deadline(raw.settled(sent), 20_000, "bomb answers");
    }
    const during = await ping(server.url);
    raw.destroy();
    console.log(`HPACK bomb: ${JSON.stringify(raw.outcome)}`);
    assert.equal(during, "200 pong");
    const stats = await server.stats();
    // Each request was answered 431 by serveHttp2 or reset by node:http2,
    // and no handler ran.
    assert.equal(stats.started, base.started + 1);
    const after = await fdsSettle(server, base);
    checkMemory(
      "HPACK bomb",
      base,
      Math.max(stats.peak, after.peak),
      after,
      BOMB_GROWTH,
    );
  });

  it("serveHttp2 takes a request of many small fields within maxHeaderListBytes (node:http2 alone resets past 128)", async () => {
    // 200 fields of 5-7 bytes (7.6 KB as HTTP/2 counts them) were reset
    // ENHANCE_YOUR_CALM by node:http2's own bound on the number of fields,
    // under the byte bound the server announces.
    const server = await serveHttp2((request) =>
      Promise.resolve({
        status: 200,
        headers: new Headers({
          "x-fields": String([...request.headers.keys()].length),
        }),
      }), { port: 0 });
    const session = await deadline(
      connect(server.url.href),
      10_000,
      "connect",
    );
    const answer = (fields: number) =>
      deadline(
        new Promise<string>((resolve) => {
          const headers: http2.OutgoingHttpHeaders = { ":path": "/" };
          for (let i = 0; i < fields; i++) headers[`x-m${i}`] = "v";
          const stream = session.request(headers, { endStream: true });
          let head = "";
          stream.on("response", (h) => {
            head = `${h[":status"]} ${h["x-fields"] ?? ""}`;
          });
          stream.on("error", () => {});
          stream.on("close", () => resolve(head || `reset ${stream.rstCode}`));
          stream.resume();
        }),
        10_000,
        `a request of ${fields} fields`,
      );
    try {
      assert.equal(await answer(200), "200 200");
      // Past 32,768 bytes: refused (431 here, or reset by node:http2).
      assert.match(await answer(1_000), /^(431 |reset )/);
      assert.equal(await answer(3), "200 3");
    } finally {
      session.close();
      await server.shutdown();
    }
  });

  it("serveHttp2 closes a session that sends no request within headersTimeoutMs", async () => {
    const { server, base } = await start({
      headersTimeoutMs: 500,
      idleTimeoutMs: 500,
    });
    const closedAfter = await silentSession(server.url, 10_000);
    assert.ok(closedAfter >= 400, `closed after ${closedAfter} ms`);
    assert.equal(await ping(server.url), "200 pong");
    const after = await fdsSettle(server, base);
    assert.ok(after.fds <= base.fds + FD_MARGIN);
  });

  it("serveHttp2 closes a session idle for idleTimeoutMs after its last request", async () => {
    const { server, base } = await start({ idleTimeoutMs: 500 });
    const session = await deadline(connect(server.url), 10_000, "connect");
    const closed = new Promise<number>((resolve) =>
      session.once("close", () => resolve(performance.now()))
    );
    const stream = session.request({ ":path": "/ping" }, { endStream: true });
    stream.resume();
    await new Promise((resolve) => stream.once("close", resolve));
    const answered = performance.now();
    const closedAt = await deadline(closed, 10_000, "the idle session close");
    session.destroy();
    assert.ok(closedAt - answered >= 400, `${closedAt - answered} ms`);
    const after = await fdsSettle(server, base);
    assert.ok(after.fds <= base.fds + FD_MARGIN);
  });

  it("serveHttp2 does not count as rapid reset the calls a client cancels after they ran (deadlines missed en masse closed an honest grpc-js connection with ENHANCE_YOUR_CALM)", async () => {
    const { server } = await start({ maxStreamResets: 5 });
    const session = await deadline(connect(server.url), 10_000, "connect");
    let goaway: number | undefined;
    session.once("goaway", (code: number) => (goaway = code));
    try {
      // 20 calls, 10 at a time, each cancelled 50 ms after it opened, as a
      // client's deadline does: four times maxStreamResets.
      for (let round = 0; round < 2 && !session.destroyed; round++) {
        await deadline(
          Promise.all(Array.from({ length: 10 }, async () => {
            const stream = session.request({ ":path": "/hold" }, {
              endStream: true,
            });
            stream.on("error", () => {});
            await new Promise((resolve) => setTimeout(resolve, 50));
            stream.close(8);
            await new Promise((resolve) => stream.once("close", resolve));
          })),
          10_000,
          "ten cancelled calls",
        );
      }
      assert.equal(await get(session, "/ping"), "200 pong");
      assert.equal(goaway, undefined);
      assert.equal(session.closed || session.destroyed, false);
    } finally {
      session.destroy();
    }
  });

  it("serveHttp2 closes an idle session whose client began a header block and never ended it (under Bun the graceful close waited for it for good, the session holding its place in maxSessions)", async () => {
    const { server, base } = await start({
      idleTimeoutMs: 500,
      headersTimeoutMs: 500,
    });
    const raw = await openRawH2(server.port);
    try {
      raw.write(getFrame(1, "/ping"));
      await deadline(raw.settled(1), 10_000, "the first answer");
      // HEADERS without END_HEADERS, and no CONTINUATION ever.
      raw.write(
        frame(FRAME.HEADERS, 0x1, 3, new Uint8Array(requestBlock("/ping"))),
      );
      const started = performance.now();
      await deadline(raw.closed, 10_000, "the session's close");
      // The idle timeout, then at least 1 s for the unfinished block.
      const took = performance.now() - started;
      assert.ok(took >= 400, `closed after ${took} ms`);
    } finally {
      raw.destroy();
    }
    assert.equal(await ping(server.url), "200 pong");
    const after = await fdsSettle(server, base);
    assert.ok(after.fds <= base.fds + FD_MARGIN);
  });

  it("serveHttp2 resets a stream whose client takes none of its response for sendTimeoutMs, and its session then closes when idle (a client that opened no window held maxOpenStreams and its sessions for good)", async () => {
    // 20 endless bodies and a ping hold every slot.
    // sendTimeoutMs leaves time to see the 20 bodies held before their
    // resets, on a loaded machine too.
    const { server, base } = await start({
      maxOpenStreams: 21,
      sendTimeoutMs: 1500,
      idleTimeoutMs: 500,
    });
    // SETTINGS_INITIAL_WINDOW_SIZE 0, and no WINDOW_UPDATE ever: the
    // server may send headers, never a byte of a body.
    const closedWindow = frame(
      FRAME.SETTINGS,
      0,
      0,
      new Uint8Array([0, 4, 0, 0, 0, 0]),
    );
    // One client holds every slot with endless bodies; another has a
    // finished handler whose 4 bytes (and end) cannot be sent.
    const holder = await openRawH2(server.port);
    holder.write(
      closedWindow,
      ...Array.from({ length: 20 }, (_, i) => getFrame(2 * i + 1, "/stream")),
    );
    const pinger = await openRawH2(server.port);
    try {
      await deadline(holder.settled(20), 10_000, "the streams' headers");
      // All 20 held at once (a peak: the count now would race the resets).
      assert.equal(holder.outcome.answered, 20);
      assert.equal((await server.stats()).peakStreaming, 20);
      pinger.write(closedWindow, getFrame(1, "/ping"));
      await deadline(
        (async () => {
          while ((await server.stats()).started < 21) {
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
        })(),
        10_000,
        "the ping's handler",
      );
      // Each is reset with CANCEL, its handler's body ended.
      await deadline(holder.settled(40), 10_000, "the streams' resets");
      assert.deepEqual(holder.outcome.resets, { "8": 20 });
      assert.equal((await server.stats()).streaming, 0);
      assert.equal(await ping(server.url), "200 pong");
      // With no stream left open, both sessions are idle, and closed.
      await deadline(holder.closed, 10_000, "the holder's session close");
      await deadline(pinger.closed, 10_000, "the pinger's session close");
    } finally {
      holder.destroy();
      pinger.destroy();
    }
    const after = await fdsSettle(server, base);
    assert.ok(after.fds <= base.fds + FD_MARGIN);
  });

  it("serveHttp2 keeps a stream whose client reads slowly past sendTimeoutMs (only a client that takes nothing is reset)", async () => {
    // A timeout well above a loaded machine's pauses: the reads come 20
    // times as often.
    const { server } = await start({ sendTimeoutMs: 2000 });
    const session = await deadline(connect(server.url), 10_000, "connect");
    try {
      const stream = session.request({ ":path": "/stream" }, {
        endStream: true,
      });
      stream.pause();
      let read = 0;
      let late = 0;
      // 4.5 s, a read every 100 ms: past sendTimeoutMs, never idle for it.
      for (let i = 0; i < 45; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        let chunk: Buffer | null;
        while ((chunk = stream.read() as Buffer | null) !== null) {
          read += chunk.byteLength;
          if (i >= 25) late += chunk.byteLength;
        }
      }
      // Open (Deno's client says rstCode 0 of an open stream).
      assert.equal(stream.closed || stream.destroyed, false, "reset");
      assert.ok(late > 0, `${read} bytes read, none in the last 2 s`);
      assert.equal((await server.stats()).streaming, 1);
      stream.close();
    } finally {
      session.destroy();
    }
  });

  it("serveHttp2 sends a large chunk in writes of 64 KiB, so that a client taking 128 KiB/s keeps a stream whose one chunk it needs 4 s for, past sendTimeoutMs (the chunk was one write, seen sent only whole: reset)", async () => {
    const { server } = await start({ sendTimeoutMs: 1500 });
    const session = await deadline(connect(server.url), 10_000, "connect");
    try {
      const stream = session.request({ ":path": "/big" }, { endStream: true });
      stream.pause();
      let read = 0;
      const ended = new Promise<string>((resolve) => {
        stream.once("end", () => resolve("end"));
        stream.once("close", () => resolve(`closed ${stream.rstCode}`));
      });
      const until = performance.now() + 20_000;
      while (read < 512 * 1024 && performance.now() < until) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        let chunk: Buffer | null;
        let taken = 0;
        while (taken < 32 * 1024 && (chunk = stream.read() as Buffer | null)) {
          read += chunk.byteLength;
          taken += chunk.byteLength;
        }
      }
      stream.resume();
      assert.equal(read >= 512 * 1024 ? "whole" : `${read} bytes`, "whole");
      assert.equal(await deadline(ended, 10_000, "the end"), "end");
    } finally {
      session.destroy();
    }
  });

  it("serveHttp2 closes connections over maxSessions at once and keeps the others", async () => {
    const { server, base } = await start({ maxSessions: 2 });
    // Raw connections: Deno's node:http2 client throws an uncaught
    // ECONNRESET when the server drops a connection it just opened, and its
    // GOAWAY on close has aborted Deno's server now and then (see
    // denoAborts).
    // Connections one at a time, each with one request, until one is
    // closed unanswered. The ping of start() may still count for a moment,
    // so one or two are kept.
    const kept: Awaited<ReturnType<typeof openRawH2>>[] = [];
    let refused = false;
    for (let i = 0; i < 4 && !refused; i++) {
      const raw = await openRawH2(server.port);
      raw.write(getFrame(1, "/ping"));
      await deadline(raw.settled(1), 10_000, "an answer or a close");
      if (raw.outcome.answered === 1 && !raw.outcome.closed) kept.push(raw);
      else refused = true;
    }
    assert.ok(refused, "no connection over maxSessions was closed");
    assert.ok(kept.length >= 1 && kept.length <= 2, `${kept.length} kept`);
    // The kept ones still work.
    for (const raw of kept) {
      raw.write(getFrame(3, "/ping"));
      await deadline(raw.settled(2), 10_000, "a second answer");
      assert.equal(raw.outcome.answered, 2);
      raw.destroy();
    }
    assert.equal(await ping(server.url), "200 pong");
    const after = await fdsSettle(server, base);
    assert.ok(after.fds <= base.fds + FD_MARGIN);
  });

  it("serveHttp2 closes a session with GOAWAY once it has opened maxStreamsPerSession streams", async () => {
    const { server } = await start({ maxStreamsPerSession: 3 });
    const session = await deadline(connect(server.url), 10_000, "connect");
    const goaway = new Promise<void>((resolve) =>
      session.once("goaway", () => resolve())
    );
    try {
      for (let i = 0; i < 3; i++) {
        assert.equal(await get(session, "/ping"), "200 pong");
      }
      await deadline(goaway, 10_000, "the GOAWAY after the third stream");
      // Bun's session refuses new streams, Deno's is gone.
      assert.throws(() => session.request({ ":path": "/ping" }), {
        code: /^ERR_HTTP2_(GOAWAY|INVALID)_SESSION$/,
      });
    } finally {
      session.destroy();
    }
    assert.equal(await ping(server.url), "200 pong");
  });

  it("serveHttp2 outlives a Node client that closes its connection after 300 requests (Deno's node:http2 aborted the process)", async () => {
    // Deno 2.9.6: a bare node:http2 server aborts (SIGABRT, "free():
    // invalid pointer" or an nghttp2 assertion) in most runs when a Node
    // client closes a connection that carried about a hundred requests
    // with bodies (2 runs of 3 with this test before; a Deno client does
    // not set it off). serveHttp2 answers the client's GOAWAY on the next
    // turn of the event loop (it closed its sessions itself every 50
    // streams by default under Deno before that was found).
    // The abort comes in about half the runs, and only to a server that
    // has not outlived such a close yet: three servers, one client each.
    for (let round = 1; round <= 3; round++) {
      const server = await startChildServer();
      children.push(server);
      const answered = await runNodeClient(server.port, 300);
      assert.equal(answered, "300", `round ${round}`);
      const outcome = await Promise.race([
        server.exited.then((code) => `exited (${code})`),
        new Promise((resolve) => setTimeout(() => resolve("alive"), 500)),
      ]);
      assert.equal(outcome, "alive", `round ${round}`);
      assert.equal(await ping(server.url), "200 pong");
    }
  });

  it("serveHttp2 closes an idle session with GOAWAY, so that a request on its way is refused unprocessed and sent again: 150 requests at the idle limit all answered", async () => {
    // Before, the idle timer destroyed the session: a request whose
    // HEADERS were in flight met a cut socket (EPIPE, a reset), and the
    // call failed UNAVAILABLE though never run (5% of 200 under Deno).
    const server = await startChildServer({ idleTimeoutMs: 50 });
    children.push(server);
    // The client (createHttp2Client) in a process of its own: under Deno
    // its 150 sessions, each closed by the server's GOAWAY, can abort the
    // process that holds them (known-runtime-issues (e)), and in the test
    // runner's that ended the whole run. A run that dies so (SIGABRT, or
    // SIGSEGV, before printing) is run once more, as the test task does
    // for a whole deno test run.
    let failures: string[] | undefined;
    let started = 0;
    for (let attempt = 1; attempt <= 2 && failures === undefined; attempt++) {
      const before = (await server.stats()).started;
      const { out, exit } = await runIdleClient(server.url, 150);
      started = (await server.stats()).started - before;
      if (out.trim() !== "") failures = JSON.parse(out) as string[];
      else if (exit !== "SIGABRT" && exit !== "SIGSEGV") {
        assert.fail(`the client exited (${exit}) printing nothing`);
      } else console.log(`the client died (${exit}), (e): once more`);
    }
    assert.deepEqual(failures, []);
    // Each request handled once: those refused at a GOAWAY were sent again
    // unprocessed, never twice processed.
    assert.equal(started, 150);
  });

  it("serveHttp2 rejects limits that are not non-negative integers", async () => {
    await assert.rejects(
      serveHttp2(
        () => Promise.resolve({ status: 200, headers: new Headers() }),
        {
          maxConcurrentStreams: -1,
        },
      ),
      {
        name: "RangeError",
        message:
          "Cannot serve HTTP/2: maxConcurrentStreams must be a non-negative integer, got -1",
      },
    );
    await assert.rejects(
      serveHttp2(
        () => Promise.resolve({ status: 200, headers: new Headers() }),
        {
          idleTimeoutMs: Number.NaN,
        },
      ),
      /Cannot serve HTTP\/2: idleTimeoutMs must be a non-negative number of milliseconds/,
    );
    await assert.rejects(
      serveHttp2(
        () => Promise.resolve({ status: 200, headers: new Headers() }),
        { sendTimeoutMs: -5 },
      ),
      /Cannot serve HTTP\/2: sendTimeoutMs must be a non-negative number of milliseconds/,
    );
    await assert.rejects(
      serveHttp2(
        () => Promise.resolve({ status: 200, headers: new Headers() }),
        { maxStreamsPerSession: -1 },
      ),
      /Cannot serve HTTP\/2: maxStreamsPerSession must be a non-negative integer, got -1/,
    );
    await assert.rejects(
      serveHttp2(
        () => Promise.resolve({ status: 200, headers: new Headers() }),
        { shutdownTimeoutMs: Number.NaN },
      ),
      /Cannot serve HTTP\/2: shutdownTimeoutMs must be a non-negative number of milliseconds/,
    );
  });
});
