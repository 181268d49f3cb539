import { describe, it } from "node:test";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import process from "node:process";
import { createInterface } from "node:readline";
import assert from "node:assert/strict";
import { createEchoHandler, echo, type EchoOptions } from "../lib/http/echo.ts";
import {
  createDuplexHandler,
  duplexResponse,
} from "../lib/http/duplex_response.ts";
import { fetchDuplex } from "../lib/http/fetch_duplex.ts";
import { openDuplex } from "../lib/http/open_duplex.ts";
import type { DuplexStream } from "../lib/streams/duplex_stream.ts";
import {
  type Child,
  curlAvailable,
  deadline,
  echoBytes,
  generatedStream,
  lockstep,
  makeTempDir,
  removeDir,
  runtime,
  startChild,
  withServer,
} from "./_helpers.ts";

const hasCurl = await curlAvailable();

const dec = new TextDecoder();
const MiB = 1024 * 1024;

/**
 * Sends `file` to `url` with `curl --http1.1 -T` (a Content-Length, and the
 * echo read back as it is sent), stopping after `maxSeconds`; resolves with
 * the SHA-256 (hex) and size of what came back, and the seconds it took.
 */
function curlEcho(
  url: URL,
  file: string,
  maxSeconds: number,
): Promise<{ sha256: string; bytes: number; seconds: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn("curl", [
      "-sS",
      "--http1.1",
      "-H",
      "Expect:",
      "--max-time",
      String(maxSeconds),
      "-X",
      "POST",
      "-T",
      file,
      "-o",
      "-",
      url.href,
    ], { stdio: ["ignore", "pipe", "pipe"] });
    const hash = createHash("sha256");
    let bytes = 0;
    child.stdout.on("data", (chunk: Uint8Array) => {
      hash.update(chunk);
      bytes += chunk.byteLength;
    });
    child.stderr.resume();
    child.on("error", reject);
    // 28: stopped at --max-time (a capped run).
    child.on("close", (code) =>
      code === 0 || code === 28
        ? resolve({
          sha256: hash.digest("hex"),
          bytes,
          seconds: (performance.now() - started) / 1000,
        })
        : reject(new Error(`curl exited with ${code}`)));
  });
}

function echoServer(options?: EchoOptions) {
  return (request: Request) => echo(request, options);
}

describe("echo", () => {
  it("echo writes Hello, World! back after the client's closeWrite", async () => {
    await withServer(echoServer(), async (server) => {
      const { stream, response } = openDuplex(server.url);
      await stream.write("Hello, ");
      await stream.write("World!");
      await stream.closeWrite();
      let text = "";
      for await (const chunk of stream) text += dec.decode(chunk);
      assert.equal(text, "Hello, World!");
      const res = await response;
      assert.equal(res.headers.get("content-type"), "application/octet-stream");
      assert.equal(res.headers.get("content-encoding"), null);
    });
  });

  it("echo completes 100 lockstep round trips over HTTP/1.1", async () => {
    await withServer(echoServer(), async (server) => {
      const { stream } = openDuplex(server.url);
      await deadline(
        lockstep(stream, 100, { prefix: "" }),
        30_000,
        "100 round trips",
      );
    });
  });

  it("echo answers a plain fetchDuplex client chunk by chunk while its request is open", async () => {
    await withServer(echoServer(), async (server) => {
      const { readable, writable } = new TransformStream<
        Uint8Array,
        Uint8Array
      >();
      const writer = writable.getWriter();
      const pending = fetchDuplex(server.url, {
        method: "POST",
        body: readable,
      });
      // Bun's fetch sends the request only once the body has a first chunk,
      // so a client that awaits the headers first would wait forever there.
      await writer.write(new TextEncoder().encode("zero"));
      const response = await deadline(pending, 10_000, "headers");
      const reader = response.body!.getReader();
      const first = await deadline(reader.read(), 10_000, "zero");
      assert.equal(dec.decode(first.value), "zero");
      for (const word of ["one", "two", "three"]) {
        await writer.write(new TextEncoder().encode(word));
        const { value } = await deadline(reader.read(), 10_000, word);
        assert.equal(dec.decode(value), word);
      }
      await writer.close();
      assert.equal((await reader.read()).done, true);
    });
  });

  it("echo echoes 16 MiB intact both ways at once", async () => {
    await withServer(echoServer(), async (server) => {
      const { sent, received } = await deadline(
        echoBytes(server.url, 16 * MiB),
        60_000,
        "16 MiB echo",
      );
      assert.equal(received, sent);
    });
  });

  it(
    "echo echoes 64 MiB that curl sends with a Content-Length over HTTP/1.1 intact, in reads that grow while they come back full",
    { skip: !hasCurl && "needs curl" },
    async () => {
      // Under Deno 2.9.6 over HTTP/1.1 the runtime buffers a full-duplex
      // request and copies the backlog behind every read of it
      // (known-runtime-issues.md (f)): an echo reading 64 KiB at a time
      // collapsed to 12-25 MB/s here, the echo's growing reads (up to 16
      // MiB) ran at 257-812. Each chunk the echo writes back is one read of
      // the request, so the largest shows whether they grew. Under Bun the
      // request body is no byte stream and is piped: only the bytes count.
      const SIZE = 64 * MiB;
      const dir = await makeTempDir("echo-curl-");
      try {
        const file = join(dir, "body.bin");
        const sent = createHash("sha256");
        const handle = await open(file, "w");
        try {
          for await (const chunk of generatedStream(SIZE, { seed: 11 })) {
            sent.update(chunk);
            await handle.write(chunk);
          }
        } finally {
          await handle.close();
        }
        let largest = 0;
        const handler = (request: Request) => {
          const response = echo(request);
          const body = response.body!.pipeThrough(
            new TransformStream<Uint8Array, Uint8Array>({
              transform(chunk, controller) {
                largest = Math.max(largest, chunk.byteLength);
                controller.enqueue(chunk);
              },
            }),
          );
          return new Response(body, response);
        };
        const run = await withServer(
          handler,
          (server) => curlEcho(server.url, file, 120),
        );
        assert.equal(run.bytes, SIZE, "the whole body came back");
        assert.equal(run.sha256, sent.digest("hex"));
        console.log(
          `64 MiB echo, curl over HTTP/1.1: ${
            (SIZE / 1e6 / run.seconds).toFixed(0)
          } MB/s, largest chunk ${largest} bytes`,
        );
        if (runtime === "deno") {
          assert.ok(
            largest > 64 * 1024,
            `the largest chunk was ${largest} bytes: the reads did not grow`,
          );
        }
      } finally {
        await removeDir(dir);
      }
    },
  );

  it(
    "echo echoes 256 MiB over h2c in bounded memory: each side's RSS peaks under 96 MiB above its start, its JS memory flat (Deno)",
    { skip: runtime !== "deno" && "the 256 MiB echo runs under deno test" },
    async () => {
      // The server and the client each run alone in their own process and
      // report their own memory (tests/_memory.ts): the kernel's peak RSS
      // (VmHWM), so no spike between two samples is missed, and nothing else
      // this runner holds shows up in the figures.
      //
      // Measured here (Deno 2.9.6, 2-core machine loaded by other builds),
      // peak RSS growth per side: 256 MiB echoed 9-50 MiB (8 runs, 10-168
      // MiB/s; over 40 only below 12 MiB/s), 512 MiB 33-58, 1 GiB 54-73 (6
      // runs, 11-24 MiB/s, 42-90 s each: too slow for the test task, so
      // 256 MiB). The JS heap and the ArrayBuffers' external memory grew by
      // 0.0 MiB in every run: the growth is in Deno's own h2 and allocator
      // memory (most of it still resident after a GC), larger in slower
      // runs. A body held whole would be 256 MiB; the RSS bound, 96 MiB, is
      // almost twice the highest peak. The JS memory (what this pipeline
      // itself holds) must stay under 8 MiB.
      const SIZE = 256 * MiB;
      const server = await startChild("_memory_peers.ts", ["echo-server"]);
      try {
        const client = await startChild("_memory_peers.ts", [
          "echo-client",
          server.first.url,
          "h2c",
        ]);
        try {
          // Warm up the connection, the JIT and the allocators first.
          const warm = await client.request({ cmd: "echo", bytes: 16 * MiB });
          assert.equal(warm.received, warm.sent);
          const before = await measureBoth(server, client);
          const run = await client.request(
            { cmd: "echo", bytes: SIZE },
            240_000,
          );
          const after = await measureBoth(server, client);
          assert.equal(run.received, run.sent);
          const mib = (bytes: number) => (bytes / MiB).toFixed(1);
          const sides = (["server", "client"] as const).map((side) => {
            const b = before[side];
            const a = after[side];
            return {
              side,
              peak: a.peak - b.rss,
              retained: a.rss - b.rss,
              js: a.heap - b.heap + a.external - b.external,
            };
          });
          console.log(
            `${SIZE / MiB} MiB echo over h2c: ${run.seconds.toFixed(1)} s, ${
              (SIZE / MiB / run.seconds).toFixed(0)
            } MiB/s; ${
              sides.map((g) =>
                `${g.side}: RSS peak +${mib(g.peak)} MiB, after a GC +${
                  mib(g.retained)
                } MiB, JS heap and external +${mib(g.js)} MiB`
              ).join("; ")
            } (${after.server.source})`,
          );
          for (const g of sides) {
            assert.ok(
              g.peak < 96 * MiB,
              `the ${g.side}'s RSS peaked ${mib(g.peak)} MiB above its start`,
            );
            assert.ok(
              g.js < 8 * MiB,
              `the ${g.side}'s JS heap and external memory grew by ${
                mib(g.js)
              } MiB`,
            );
          }
        } finally {
          await client.stop();
        }
      } finally {
        await server.stop();
      }
    },
  );
});

describe("createEchoHandler, createDuplexHandler and compression options", () => {
  const text = "All work and no play makes a dull stream. ".repeat(100);

  it("the response's coding is the offered one the client weighs highest, none when it weighs identity higher (RFC 9110 Accept-Encoding: OWS before ';', q=0 refuses, x-gzip is gzip); an unsupported request coding's 415 says which it takes", async () => {
    // Before, `gzip ;q=0, *` answered gzip (the name kept its space, so
    // q=0 fell to `*`), `gzip;q=0.1, deflate;q=1` answered gzip (the
    // server's order won over the weights), `x-gzip` got identity, and
    // the 415 had no Accept-Encoding.
    const coding = async (accept: string) => {
      const response = echo(
        new Request("http://localhost/", {
          method: "POST",
          body: text,
          headers: { "accept-encoding": accept },
        }),
        { compressMinBytes: 0 },
      );
      await response.body?.cancel();
      return response.headers.get("content-encoding");
    };
    const cases: [string, string | null][] = [
      ["gzip ;q=0, *", "deflate"],
      ["gzip; q=0 , deflate ; q=0.5", "deflate"],
      ["gzip;q=0.1, deflate;q=1", "deflate"],
      ["deflate;q=0.5, gzip;q=0.5", "gzip"],
      ["x-gzip", "gzip"],
      ["x-gzip;q=0.2, deflate;q=0.4", "deflate"],
      ["gzip;q=0, x-gzip", null],
      ["GZIP", "gzip"],
      ["*;q=0", null],
      ["identity", null],
      ["gzip;q=x", null],
      // Identity weighed above every offered coding: none (they were
      // answered gzip, only a coding's q above 0 counted).
      ["identity, gzip;q=0.5", null],
      ["identity;q=1, gzip;q=0.1, deflate;q=0.1", null],
      ["gzip;q=0.5, *", "deflate"],
      // A tie goes to the coding: browsers name no identity.
      ["gzip, deflate, br", "gzip"],
      ["gzip;q=0.5, identity;q=0.5", "gzip"],
    ];
    for (const [accept, expected] of cases) {
      assert.equal(await coding(accept), expected, accept);
    }
    const refused = echo(
      new Request("http://localhost/", {
        method: "POST",
        body: "x",
        headers: { "content-encoding": "br" },
      }),
    );
    assert.equal(refused.status, 415);
    assert.equal(refused.headers.get("accept-encoding"), "gzip, deflate");
    assert.match(
      await refused.text(),
      /Content-Encoding "br" is not taken here \(acceptCompression: gzip, deflate\)/,
    );
  });

  it("createEchoHandler returns a FetchHandler that echoes", async () => {
    const handler = createEchoHandler();
    const response = await handler(
      new Request("http://localhost/", { method: "POST", body: "hi" }),
    );
    assert.equal(await response.text(), "hi");
  });

  it("echo with no idle timer, no read-ahead and nothing to decode passes the request body through as is", async () => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("pass"));
        controller.enqueue(new TextEncoder().encode("through"));
        controller.close();
      },
    });
    const request = new Request("http://localhost/", {
      method: "POST",
      body,
      duplex: "half",
    } as RequestInit);
    const options = { idleTimeoutMs: 0, readAheadBytes: 0 };
    const response = echo(request, options);
    // The request's own stream, not a copy through JS: the runtime passes
    // it through natively, as it does `new Response(request.body)` (the
    // bench's passthrough rows compare the two).
    assert.equal(response.body, request.body);
    assert.equal(
      response.headers.get("content-type"),
      "application/octet-stream",
    );
    assert.equal(await response.text(), "passthrough");
    // A gzip request still goes through the decoder (and its limit).
    const gzipped = new Request("http://localhost/", {
      method: "POST",
      headers: { "content-encoding": "gzip" },
      body: new Blob(["hello"]).stream().pipeThrough(
        new CompressionStream("gzip"),
      ),
      duplex: "half",
    } as RequestInit);
    assert.equal(await echo(gzipped, options).text(), "hello");
  });

  it("createEchoHandler checks its options once, at creation", () => {
    assert.throws(
      () => createEchoHandler({ compressMinBytes: -1 }),
      /compressMinBytes must be a non-negative integer/,
    );
  });

  it("echo answers 415 for a Content-Encoding outside acceptCompression", async () => {
    const gzipped = await new Response(
      new Blob([text]).stream().pipeThrough(new CompressionStream("gzip")),
    ).arrayBuffer();
    const response = echo(
      new Request("http://localhost/", {
        method: "POST",
        body: gzipped,
        headers: { "content-encoding": "gzip" },
      }),
      { acceptCompression: ["deflate"] },
    );
    assert.equal(response.status, 415);
    // Before, this 415 (a coding the library decodes, not offered here)
    // had no Accept-Encoding, and one refused with acceptCompression []
    // said "gzip, deflate", both refused too (RFC 9110, 15.5.16).
    assert.equal(response.headers.get("accept-encoding"), "deflate");
    assert.match(
      await response.text(),
      /Content-Encoding "gzip" is not taken here \(acceptCompression: deflate\)/,
    );
    const none = echo(
      new Request("http://localhost/", {
        method: "POST",
        body: "x",
        headers: { "content-encoding": "br" },
      }),
      { acceptCompression: [] },
    );
    assert.equal(none.status, 415);
    assert.equal(none.headers.get("accept-encoding"), "identity");
    assert.match(await none.text(), /\(acceptCompression: none\)/);
  });

  it("echo and duplexResponse refuse a body of more than two content codings at once, with a short 415", async () => {
    // Before, each listed coding became a decompressor: a 60 KB header
    // repeating gzip took 6 s and 700 MiB for one request, and the 400
    // for a corrupt body listed every coding.
    const header = Array(5_000).fill("gzip").join(", ");
    const request = () =>
      new Request("http://localhost/", {
        method: "POST",
        body: "x",
        headers: { "content-encoding": header },
      });
    for (
      const response of [
        echo(request()),
        await duplexResponse(request(), () => {}),
      ]
    ) {
      assert.equal(response.status, 415);
      assert.equal(response.headers.get("accept-encoding"), "gzip, deflate");
      assert.equal(
        await response.text(),
        "Cannot decode body: Content-Encoding lists more than 2 codings",
      );
    }
    // Two still work: gzip over deflate.
    const plain = new TextEncoder().encode(text);
    const twice = await new Response(
      new Blob([plain]).stream()
        .pipeThrough(new CompressionStream("deflate"))
        .pipeThrough(new CompressionStream("gzip")),
    ).arrayBuffer();
    const echoed = echo(
      new Request("http://localhost/", {
        method: "POST",
        body: twice,
        headers: { "content-encoding": "deflate, gzip" },
      }),
    );
    assert.equal(await echoed.text(), text);
  });

  it("echo compresses a response whose request declares at least compressMinBytes", async () => {
    const request = (length: number) =>
      new Request("http://localhost/", {
        method: "POST",
        body: text.slice(0, length),
        headers: {
          "accept-encoding": "gzip",
          "content-length": String(length),
        },
      });
    const big = echo(request(2048), { compressMinBytes: 1024 });
    assert.equal(big.headers.get("content-encoding"), "gzip");
    const decoded = big.body!.pipeThrough(new DecompressionStream("gzip"));
    assert.equal(await new Response(decoded).text(), text.slice(0, 2048));
    const small = echo(request(100), { compressMinBytes: 1024 });
    assert.equal(small.headers.get("content-encoding"), null);
    assert.equal(await small.text(), text.slice(0, 100));
  });

  it("echo never compresses a streamed request of unknown length unless compressMinBytes is 0", async () => {
    const streamed = (options: EchoOptions) =>
      echo(
        new Request("http://localhost/", {
          method: "POST",
          body: new Blob([text]).stream(),
          headers: { "accept-encoding": "gzip" },
          duplex: "half",
        } as RequestInit),
        options,
      );
    const plain = streamed({});
    assert.equal(plain.headers.get("content-encoding"), null);
    await plain.body?.cancel();
    const bulk = streamed({ compressMinBytes: 0 });
    assert.equal(bulk.headers.get("content-encoding"), "gzip");
    await bulk.body?.cancel();
  });

  it("createDuplexHandler returns a FetchHandler running the duplex handler", async () => {
    const handler = createDuplexHandler(async (stream) => {
      for await (const line of stream.lines()) {
        await stream.write(line.toUpperCase() + "\n");
      }
    });
    const response = await handler(
      new Request("http://localhost/", { method: "POST", body: "a\nb\n" }),
    );
    assert.equal(await response.text(), "A\nB\n");
  });

  it("duplexResponse answers 415 for a Content-Encoding outside acceptCompression", async () => {
    const response = await duplexResponse(
      new Request("http://localhost/", {
        method: "POST",
        body: "x",
        headers: { "content-encoding": "gzip" },
      }),
      () => {},
      { acceptCompression: [] },
    );
    assert.equal(response.status, 415);
    assert.equal(response.headers.get("accept-encoding"), "identity");
  });

  it("openDuplex reads a deflate response decoded on every runtime (Deno's fetch leaves deflate encoded), within maxDecompressedBytes", async () => {
    // Before, under Deno the stream yielded the raw zlib bytes, and
    // maxDecompressedBytes counted them.
    const payload = "hello deflate ".repeat(500);
    await withServer(
      createEchoHandler({
        acceptCompression: ["deflate"],
        compressMinBytes: 0,
      }),
      async (server) => {
        const { stream, response } = openDuplex(server.url, {
          acceptCompression: ["deflate"],
        });
        await stream.write(payload);
        await stream.closeWrite();
        assert.equal(
          (await response).headers.get("content-encoding"),
          "deflate",
        );
        assert.equal(await textOf(stream), payload);
      },
    );
    const bomb = new Uint8Array(
      await new Response(
        new Blob([new Uint8Array(4 * 1024 * 1024)]).stream()
          .pipeThrough(new CompressionStream("deflate")),
      ).arrayBuffer(),
    );
    await withServer(
      () => new Response(bomb, { headers: { "content-encoding": "deflate" } }),
      async (server) => {
        const { stream } = openDuplex(server.url, {
          acceptCompression: ["deflate"],
          maxDecompressedBytes: 65536,
        });
        await stream.closeWrite();
        await assert.rejects(
          textOf(stream),
          /decompressed size exceeds maxDecompressedBytes 65536/,
        );
      },
    );
  });

  it("openDuplex sends acceptCompression as Accept-Encoding, gzip by default", async () => {
    const seen: (string | null)[] = [];
    await withServer((request) => {
      seen.push(request.headers.get("accept-encoding"));
      return echo(request);
    }, async (server) => {
      for (const options of [{}, { acceptCompression: [] }]) {
        const { stream } = openDuplex(server.url, options);
        await stream.closeWrite();
        for await (const _ of stream) { /* drain */ }
      }
    });
    assert.deepEqual(seen, ["gzip", "identity"]);
  });
});

// Clients that stall and close one after another. Deno 2.9.6 keeps some of
// their sockets whatever the handler (a bare TransformStream echo too, and
// clients that close only once fully stalled:
// docs/known-runtime-issues.md (g) has the figures and a reproduction
// without sluice), so the socket count is no measure of echo. What echo
// controls is that its pipeline ends: a body that never ends fails this
// test (17 of 20 left open in the run that (g) records). The tests before
// it check the request.signal path itself, without a socket.
describe("echo and clients that go away", () => {
  const canCount = runtime === "deno" && process.platform === "linux";

  /** Opens a raw echo request that writes but never reads, then closes. */
  async function stalledClient(port: number): Promise<void> {
    const socket = connect(port, "127.0.0.1");
    socket.on("error", () => {});
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    socket.pause(); // never reads the echo
    socket.write(
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    const chunk = new Uint8Array(64 * 1024);
    // 8 MiB: more than the echo's read-ahead plus both sockets' buffers, so
    // the server's pipeline is stuck on a peer that does not read.
    let flushed = true;
    for (let i = 0; i < 128; i++) {
      socket.write(`${chunk.byteLength.toString(16)}\r\n`);
      flushed = socket.write(chunk);
      socket.write("\r\n");
    }
    if (!flushed) {
      // Bounded: until the client's writes stall (the server stopped
      // reading) or 2 s.
      await Promise.race([
        new Promise((resolve) => socket.once("drain", resolve)),
        new Promise((resolve) => setTimeout(resolve, 2_000)),
      ]);
    }
    socket.destroy();
  }

  /**
   * A request whose body this test feeds and whose signal it aborts, as a
   * runtime does when the client goes away; `cancelled` settles when the
   * echo cancels the body's source.
   */
  function goneRequest() {
    const abort = new AbortController();
    let feed!: ReadableStreamDefaultController<Uint8Array>;
    let cancelled!: (reason: unknown) => void;
    const sourceCancelled = new Promise((resolve) => cancelled = resolve);
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        feed = controller;
      },
      cancel: cancelled,
    });
    const request = new Request("http://127.0.0.1/echo", {
      method: "POST",
      body,
      signal: abort.signal,
      duplex: "half",
    } as RequestInit);
    return { request, abort, feed, sourceCancelled };
  }

  // The library's half of the fix for (g): when the request's signal aborts,
  // echo ends its pipeline at once instead of waiting on a client that will
  // never read or write again. Without the signal listener the response read
  // below stays pending and the source is never cancelled.
  for (
    const [name, options] of [
      ["default options", {}],
      ["no read-ahead", { readAheadBytes: 0 }],
      ["no idle timer", { idleTimeoutMs: 0 }],
    ] as const
  ) {
    it(`echo ends its pipeline when the request's signal aborts mid-transfer (${name})`, async () => {
      const { request, abort, feed, sourceCancelled } = goneRequest();
      const response = await echo(request, options);
      assert.equal(response.status, 200);
      const reader = response.body!.getReader();
      feed.enqueue(new TextEncoder().encode("before"));
      const first = await deadline(reader.read(), 5_000, "first echo chunk");
      assert.equal(dec.decode(first.value), "before");
      const pending = reader.read(); // waits for bytes that will never come
      abort.abort(new Error("client gone"));
      await assert.rejects(
        deadline(pending, 5_000, "the echo's response after the abort"),
        (error: Error) => {
          assert.doesNotMatch(error.message, /timed out|deadline/i);
          return true;
        },
      );
      await deadline(sourceCancelled, 5_000, "the request body's cancel");
    });
  }

  it("echo answers a request whose signal already aborted with a body that fails at once", async () => {
    const { request, abort, sourceCancelled } = goneRequest();
    abort.abort(new Error("client gone"));
    const response = await echo(request);
    await assert.rejects(
      deadline(response.body!.getReader().read(), 5_000, "the echo's body"),
      (error: Error) => {
        assert.doesNotMatch(error.message, /timed out|deadline/i);
        return true;
      },
    );
    await deadline(sourceCancelled, 5_000, "the request body's cancel");
  });

  it(
    "echo ends the exchanges of 20 clients that stop reading and then close (a Deno server in its own process)",
    { skip: !canCount },
    async () => {
      const path = join(import.meta.dirname ?? "tests", "_echo_server.ts");
      const child = spawn(process.execPath, ["run", "--allow-all", path], {
        stdio: ["pipe", "pipe", "inherit"],
      });
      const exited = new Promise<void>((resolve) =>
        child.once("exit", () => resolve())
      );
      const lines = createInterface({ input: child.stdout! })[
        Symbol.asyncIterator
      ]();
      const next = async () => {
        const { value, done } = await lines.next();
        if (done) throw new Error("_echo_server.ts exited early");
        return JSON.parse(value);
      };
      const report = async (): Promise<{ open: number; fds: number }> => {
        child.stdin!.write("report\n");
        return await deadline(next(), 10_000, "the server's report");
      };
      try {
        const { url } = await deadline(next(), 30_000, "echo server start");
        const port = Number(new URL(url).port);
        await (await fetch(url, { method: "POST", body: "x" })).text();
        const before = await report();
        assert.equal(before.open, 0, "the warm-up echo's body ended");
        for (let i = 0; i < 20; i++) await stalledClient(port);
        // The runtime sees each client go away asynchronously; ask again
        // until every echo body has ended (bounded: 100 looks, 100 ms apart).
        let after = await report();
        for (let i = 0; i < 100 && after.open > 0; i++) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          after = await report();
        }
        assert.equal(
          after.open,
          0,
          `${after.open} of 20 echo bodies still open 10 s after their clients closed (open fds: ${before.fds} before, ${after.fds} after)`,
        );
      } finally {
        child.stdin!.end();
        await deadline(exited, 30_000, "echo server exit").catch(() =>
          child.kill("SIGKILL")
        );
      }
    },
  );
});

/** Both processes' memory figures, each starting a new peak. */
async function measureBoth(server: Child, client: Child) {
  return {
    server: await server.request({ cmd: "measure" }),
    client: await client.request({ cmd: "measure" }),
  };
}

/** The rest of a duplex stream's input, as text. */
async function textOf(stream: DuplexStream): Promise<string> {
  let text = "";
  const decoder = new TextDecoder();
  for (let chunk; (chunk = await stream.readPartial()) !== null;) {
    text += decoder.decode(chunk, { stream: true });
  }
  return text + decoder.decode();
}
