import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { echo, type EchoOptions } from "../lib/http/echo.ts";
import { fetchDuplex } from "../lib/http/fetch_duplex.ts";
import { openDuplex } from "../lib/http/open_duplex.ts";
import {
  type Child,
  deadline,
  echoBytes,
  lockstep,
  runtime,
  startChild,
  withServer,
} from "./_helpers.ts";

const dec = new TextDecoder();
const MiB = 1024 * 1024;

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

/** Both processes' memory figures, each starting a new peak. */
async function measureBoth(server: Child, client: Child) {
  return {
    server: await server.request({ cmd: "measure" }),
    client: await client.request({ cmd: "measure" }),
  };
}
