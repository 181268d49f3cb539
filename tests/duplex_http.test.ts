import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { duplexResponse } from "../lib/http/duplex_response.ts";
import type { DuplexResponseOptions } from "../lib/http/duplex_response.ts";
import { echo } from "../lib/http/echo.ts";
import { HttpError } from "../lib/http/http_error.ts";
import { openDuplex, type OpenDuplexOptions } from "../lib/http/open_duplex.ts";
import type { DuplexStream } from "../lib/streams/duplex_stream.ts";
import { collectGarbage } from "./_memory.ts";
import {
  deadline,
  h2cClient,
  lockstep,
  makeTempDir,
  removeDir,
  runtime,
  withServer,
  writeUntilStalled,
} from "./_helpers.ts";

const dec = new TextDecoder();
const MiB = 1024 * 1024;

/** A server running `duplexResponse` with `handler`. */
function duplexServer(
  handler: (stream: DuplexStream, request: Request) => Promise<void>,
  options?: DuplexResponseOptions,
) {
  return (request: Request) => duplexResponse(request, handler, options);
}

/** Echoes each chunk back until the input ends. */
async function echoHandler(stream: DuplexStream): Promise<void> {
  for await (const chunk of stream) await stream.write(chunk);
}

async function readAll(stream: DuplexStream): Promise<string> {
  let text = "";
  for await (const chunk of stream) text += dec.decode(chunk, { stream: true });
  return text + dec.decode();
}

describe("openDuplex and duplexResponse over HTTP/1.1", () => {
  it("openDuplex sends Hello, World! and reads it back after closeWrite", async () => {
    await withServer(duplexServer(echoHandler), async (server) => {
      const { stream, response } = openDuplex(server.url);
      await stream.write("Hello, ");
      await stream.write("World!");
      await stream.closeWrite();
      assert.equal(
        await deadline(readAll(stream), 10_000, "echo"),
        "Hello, World!",
      );
      const res = await response;
      assert.equal(res.headers.get("content-type"), "application/octet-stream");
    });
  });

  it("openDuplex aborted by its signal fails reads and writes with the signal's reason (they blamed the server or the connection)", async () => {
    const lines = duplexServer(async (stream) => {
      for await (const line of stream.lines()) {
        await stream.write(`echo ${line}\n`);
      }
    });
    await withServer(lines, async (server) => {
      for (const readPending of [true, false]) {
        const controller = new AbortController();
        const { stream } = openDuplex(server.url, {
          signal: controller.signal,
        });
        await stream.write("a\n");
        assert.equal(
          await deadline(stream.readLine(), 10_000, "a line"),
          "echo a",
        );
        const read = readPending ? stream.readLine() : undefined;
        read?.catch(() => {});
        controller.abort(new Error("user stop"));
        const stop = { message: "user stop" };
        if (read) await assert.rejects(deadline(read, 10_000, "read"), stop);
        await new Promise((resolve) => setTimeout(resolve, 50));
        await assert.rejects(
          deadline(stream.readLine(), 10_000, "a later read"),
          stop,
        );
        await assert.rejects(
          deadline(stream.write("b\n"), 10_000, "a later write"),
          stop,
        );
      }
    });
  });

  it("openDuplex completes 100 lockstep round trips over HTTP/1.1", async () => {
    await withServer(
      duplexServer(async (stream) => {
        for await (const line of stream.lines()) {
          await stream.write(`echo ${line}\n`);
        }
      }),
      async (server) => {
        const { stream } = openDuplex(server.url);
        await deadline(lockstep(stream, 100), 30_000, "100 round trips");
      },
    );
  });

  it("openDuplex readPartial returns the server's first byte while the server waits", async () => {
    await withServer(
      duplexServer(async (stream) => {
        await stream.write("a");
        // Writes nothing more until the client answers.
        const answer = await stream.readPartial();
        await stream.write(answer!);
      }),
      async (server) => {
        const { stream } = openDuplex(server.url);
        const first = await deadline(
          stream.readPartial(1024),
          10_000,
          "first byte",
        );
        assert.equal(dec.decode(first!), "a");
        await stream.write("b");
        assert.equal(dec.decode((await stream.readPartial())!), "b");
        assert.equal(await stream.readPartial(), null);
        await stream.close();
      },
    );
  });

  it("duplexResponse keeps writing after the client's closeWrite (half-close)", async () => {
    await withServer(
      duplexServer(async (stream) => {
        const question = await readAll(stream);
        // The input has ended; the output is still open.
        for (let i = 0; i < 3; i++) await stream.write(`${question} ${i};`);
      }),
      async (server) => {
        const { stream } = openDuplex(server.url);
        await stream.write("ping");
        await stream.closeWrite();
        assert.equal(
          await deadline(readAll(stream), 10_000, "answers"),
          "ping 0;ping 1;ping 2;",
        );
      },
    );
  });

  it("openDuplex and duplexResponse with writeHighWaterMark 0 write one chunk at a time", async () => {
    // A queue of 0 bytes is never "ready" in a WritableStream: the writes
    // must still go, each after the one before it was taken.
    await withServer(
      duplexServer(echoHandler, { writeHighWaterMark: 0 }),
      async (server) => {
        const { stream } = openDuplex(server.url, { writeHighWaterMark: 0 });
        // 20 round trips, each line echoed back before the next is written,
        // then the end of both sides (lockstep throws on any difference).
        await deadline(
          lockstep(stream, 20, { prefix: "" }),
          10_000,
          "lockstep with writeHighWaterMark 0",
        );
        assert.equal(stream.readableEnded, true);
      },
    );
  });

  it("openDuplex write waits when the server stops reading, with bounded bytes in flight", async () => {
    const resume = Promise.withResolvers<void>();
    let received = 0;
    await withServer(
      duplexServer(async (stream) => {
        await resume.promise;
        for await (const chunk of stream) received += chunk.byteLength;
        await stream.write(String(received));
      }),
      async (server) => {
        const writeHighWaterMark = 64 * 1024;
        const { stream } = openDuplex(server.url, { writeHighWaterMark });
        const limit = 256 * MiB;
        const { accepted, stalled } = await deadline(
          writeUntilStalled((chunk) => stream.write(chunk), limit),
          60_000,
          "stall",
        );
        assert.ok(stalled, `client wrote all ${limit} bytes without waiting`);
        // Our queue, the server's 1 MiB read-ahead, and the runtimes' and
        // kernel's socket buffers: a few MiB, far below what was offered.
        const bound = 16 * MiB;
        assert.ok(
          accepted < bound,
          `client wrote ${accepted} bytes before waiting (bound ${bound})`,
        );
        resume.resolve();
        await deadline(stalled, 60_000, "resumed write");
        await stream.closeWrite();
        const count = await deadline(readAll(stream), 60_000, "drain");
        assert.equal(Number(count), accepted + 64 * 1024);
      },
    );
  });

  it("duplexResponse write waits when the client stops reading, with bounded bytes in flight", async () => {
    const result = Promise.withResolvers<number>();
    await withServer(
      duplexServer(async (stream) => {
        const { accepted, stalled } = await writeUntilStalled(
          (chunk) => stream.write(chunk),
          256 * MiB,
        );
        result.resolve(stalled ? accepted : -1);
        await stalled;
      }),
      async (server) => {
        const { stream } = openDuplex(server.url);
        await stream.closeWrite();
        const accepted = await deadline(result.promise, 60_000, "server stall");
        assert.ok(accepted >= 0, "the server wrote everything without waiting");
        const bound = 16 * MiB;
        assert.ok(
          accepted < bound,
          `server wrote ${accepted} bytes before waiting (bound ${bound})`,
        );
        let read = 0;
        for await (const chunk of stream) read += chunk.byteLength;
        assert.equal(read, accepted + 64 * 1024);
      },
    );
  });
});

describe("openDuplex and duplexResponse errors and aborts", () => {
  it("openDuplex close(reason) errors the server handler's stream and releases it", async () => {
    const serverSaw = Promise.withResolvers<unknown>();
    const released = Promise.withResolvers<void>();
    await withServer(
      duplexServer(async (stream) => {
        try {
          await stream.write("ready");
          for (;;) {
            if (await stream.readPartial() === null) break;
          }
          serverSaw.resolve("clean end");
        } catch (error) {
          serverSaw.resolve(error);
          throw error;
        } finally {
          released.resolve();
        }
      }, { onError: () => {} }),
      async (server) => {
        const { stream } = openDuplex(server.url);
        await stream.write("x");
        assert.equal(dec.decode((await stream.read(5))!), "ready");
        const reason = new Error("client gave up");
        await stream.close(reason);
        await assert.rejects(stream.readPartial(), reason);
        const seen = await deadline(serverSaw.promise, 10_000, "server error");
        assert.ok(seen instanceof Error, `server saw ${String(seen)}`);
        await deadline(released.promise, 10_000, "release");
      },
    );
  });

  it("openDuplex's signal, aborted after the response came, ends the request body at once", async () => {
    // A fetch that answers at once and keeps the request body it was given
    // (as Deno's does): before, nothing ended that body on an abort, so a
    // runtime that kept sending it kept its connection open and the server
    // never heard of the abort.
    let body: ReadableStream<Uint8Array> | undefined;
    const fetch = ((_input: unknown, init: RequestInit) => {
      body = init.body as ReadableStream<Uint8Array>;
      return Promise.resolve(new Response(new ReadableStream()));
    }) as typeof globalThis.fetch;
    const controller = new AbortController();
    const { stream, response } = openDuplex("http://127.0.0.1:9/", {
      fetch,
      signal: controller.signal,
    });
    await response;
    const written = stream.write(new Uint8Array([1]));
    const reader = body!.getReader();
    assert.deepEqual((await reader.read()).value, new Uint8Array([1]));
    await written;
    controller.abort(new Error("gone"));
    await assert.rejects(
      deadline(reader.read(), 5_000, "the request body after the abort"),
      /gone/,
    );
  });

  it("openDuplex close() without a reason delivers every queued byte, the server reads a clean end, and it resolves", async () => {
    // Before, it aborted the fetch: the server got part of the bytes and a
    // failed read (Deno 590 of 1,000 KB, Bun 32 KB), and close() rejected.
    const N = 1_000_000;
    const served = Promise.withResolvers<string>();
    await withServer(
      duplexServer(async (stream) => {
        await stream.write("ready\n");
        let n = 0;
        try {
          for await (const chunk of stream) {
            n += chunk.byteLength;
            await new Promise((r) => setTimeout(r, 1));
          }
          served.resolve(`${n} bytes, a clean end`);
        } catch (error) {
          served.resolve(`${n} bytes, then ${error}`);
        }
      }, { onError: () => {} }),
      async (server) => {
        const { stream } = openDuplex(server.url, {
          writeHighWaterMark: 4 * MiB,
        });
        assert.equal(await stream.readLine(), "ready");
        await stream.write(new Uint8Array(N));
        await deadline(stream.close(), 10_000, "close");
        assert.equal(
          await deadline(served.promise, 10_000, "the server's read"),
          `${N} bytes, a clean end`,
        );
      },
    );
  });

  it("openDuplex: cancelling readable cancels the input only; later writes arrive and the server reads a clean end", async () => {
    // Before, the cancel aborted the fetch and rejected with its reason,
    // and the writes after it resolved while the server got nothing.
    const served = Promise.withResolvers<string>();
    await withServer(
      duplexServer(async (stream) => {
        await stream.write("ready\n");
        for (let i = 0; i < 100; i++) await stream.write(`noise ${i}\n`);
        served.resolve(await readAll(stream));
      }, { onError: () => {} }),
      async (server) => {
        const { stream } = openDuplex(server.url);
        assert.equal(await stream.readLine(), "ready");
        await stream.readable.cancel("not interested");
        await stream.write("after the cancel\n");
        await stream.closeWrite();
        assert.equal(
          await deadline(served.promise, 10_000, "the server's read"),
          "after the cancel\n",
        );
      },
    );
  });

  it("duplexResponse: a handler that throws undefined after writing errors the response, not ends it", async () => {
    // Before, close(undefined) took the graceful path: a truncated 200
    // that looked complete.
    const failed = Promise.withResolvers<unknown>();
    await withServer(
      duplexServer(async (stream) => {
        await stream.write("partial result\n");
        await stream.readPartial();
        throw undefined;
      }, { onError: (error) => failed.resolve(error) }),
      async (server) => {
        const { stream } = openDuplex(server.url);
        assert.equal(await stream.readLine(), "partial result");
        await stream.write("go");
        await assert.rejects(
          deadline(readAll(stream), 10_000, "the rest"),
          /Cannot read duplex response: the response body failed/,
        );
        assert.equal(await failed.promise, undefined);
      },
    );
  });

  it("openDuplex pending read rejects with a clear error when the handler fails mid-stream", async () => {
    const failed = Promise.withResolvers<unknown>();
    await withServer(
      duplexServer(async (stream) => {
        await stream.write("partial");
        await stream.readPartial();
        throw new Error("handler broke");
      }, { onError: (error) => failed.resolve(error) }),
      async (server) => {
        const { stream } = openDuplex(server.url);
        assert.equal(dec.decode((await stream.read(7))!), "partial");
        const pending = stream.readPartial();
        await stream.write("go");
        await assert.rejects(
          deadline(pending, 10_000, "read"),
          /Cannot read duplex response: the response body failed/,
        );
        await assert.rejects(stream.write("more"));
        assert.match(String(await failed.promise), /handler broke/);
      },
    );
  });

  it("duplexResponse answers 500 and openDuplex rejects with an HttpError when the handler fails first", async () => {
    await withServer(
      duplexServer(() => {
        throw new Error("no");
      }, { onError: () => {} }),
      async (server) => {
        const { stream, response } = openDuplex(server.url);
        const error = await deadline(
          stream.readPartial().then(() => undefined, (e) => e),
          10_000,
          "read",
        );
        assert.ok(error instanceof HttpError);
        assert.equal(error.status, 500);
        await assert.rejects(response, HttpError);
        await assert.rejects(stream.write("x"));
      },
    );
  });
});

/** Compresses `bytes` with the web's CompressionStream. */
async function compress(
  bytes: Uint8Array<ArrayBuffer>,
  format: "gzip" | "deflate",
): Promise<Uint8Array<ArrayBuffer>> {
  const compressed = new Blob([bytes]).stream().pipeThrough(
    new CompressionStream(format),
  );
  return new Uint8Array(await new Response(compressed).arrayBuffer());
}

describe("openDuplex lets finished exchanges go", () => {
  it("keeps no exchange alive once it is over, with a caller's long-lived signal or without one", async () => {
    // Before, its abort listener on AbortSignal.any stayed: a dependent
    // signal with listeners is kept while its sources can abort, and with
    // it the whole exchange (10 KB each under Deno with a caller's signal;
    // under Bun always, 30 objects each).
    await withServer((request) => echo(request), async (server) => {
      const caller = new AbortController();
      for (const signal of [caller.signal, undefined]) {
        const refs: WeakRef<object>[] = [];
        for (let i = 0; i < 100; i++) {
          const { stream, response } = openDuplex(server.url, { signal });
          await stream.write("hello\n");
          await stream.closeWrite();
          for await (const _ of stream) { /* drained */ }
          refs.push(new WeakRef(await response));
        }
        // WeakRefs are cleared only after the job that made them.
        for (let i = 0; i < 3; i++) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          collectGarbage();
        }
        const alive = refs.filter((ref) => ref.deref() !== undefined).length;
        assert.ok(
          alive <= 5,
          `${alive} of 100 exchanges still alive (${
            signal ? "with" : "without"
          } a signal)`,
        );
      }
    });
  });

  it("fails a write after a status other than 2xx with the HttpError, not a cancelled body", async () => {
    // Before, a client that wrote first (a sizable body) saw only "the
    // request body was cancelled", from its writes and then its reads.
    await withServer(
      () => new Response("no token", { status: 401 }),
      async (server) => {
        const { stream, response } = openDuplex(server.url);
        response.catch(() => {});
        const chunk = new Uint8Array(64 * 1024);
        const wrote = (async () => {
          for (let i = 0; i < 64; i++) await stream.write(chunk);
        })();
        const isStatus = (error: unknown) =>
          error instanceof HttpError && error.status === 401 &&
          /server answered 401/.test(error.message);
        await assert.rejects(wrote, isStatus);
        await assert.rejects(stream.readPartial(), isStatus);
      },
    );
  });
});

describe("per-direction Content-Encoding", () => {
  const text = "All work and no play makes a dull stream. ".repeat(2000);

  /** Echoes, reporting the request's and response's encodings. */
  function recordingEcho(options: Parameters<typeof echo>[1]) {
    const seen: { request?: string | null; response?: string | null } = {};
    const handler = (request: Request) => {
      seen.request = request.headers.get("content-encoding");
      const response = echo(request, options);
      seen.response = response.headers.get("content-encoding");
      return response;
    };
    return { seen, handler };
  }

  async function exchange(
    server: { url: URL },
    options: OpenDuplexOptions,
  ): Promise<string> {
    const { stream } = openDuplex(server.url, options);
    await stream.write(text.slice(0, 1000));
    await stream.write(text.slice(1000));
    await stream.closeWrite();
    return await deadline(readAll(stream), 20_000, "compressed echo");
  }

  it("openDuplex compresses the request with gzip while the response stays identity", async () => {
    const { seen, handler } = recordingEcho({});
    await withServer(handler, async (server) => {
      assert.equal(await exchange(server, { sendCompression: "gzip" }), text);
    });
    assert.equal(seen.request, "gzip");
    assert.equal(seen.response, null);
  });

  it("echo compresses the response with gzip while the request stays identity", async () => {
    const { seen, handler } = recordingEcho({
      acceptCompression: ["gzip"],
      compressMinBytes: 0, // a streamed request: compress anyway
    });
    await withServer(handler, async (server) => {
      assert.equal(
        await exchange(server, { acceptCompression: ["gzip"] }),
        text,
      );
    });
    assert.equal(seen.request, null);
    assert.equal(seen.response, "gzip");
  });

  it("openDuplex and echo use deflate one way and gzip the other", async () => {
    const { seen, handler } = recordingEcho({
      acceptCompression: ["gzip", "deflate"],
      compressMinBytes: 0, // a streamed request: compress anyway
    });
    await withServer(handler, async (server) => {
      assert.equal(
        await exchange(server, {
          sendCompression: "deflate",
          acceptCompression: ["gzip"],
        }),
        text,
      );
    });
    assert.equal(seen.request, "deflate");
    assert.equal(seen.response, "gzip");
  });

  it("duplexResponse refuses a decompression bomb with 413", async () => {
    // 64 MiB of zeros compress to about 64 KiB.
    const bomb = await compress(new Uint8Array(64 * MiB), "gzip");
    let decoded = 0;
    await withServer(
      duplexServer(async (stream) => {
        for await (const chunk of stream) decoded += chunk.byteLength;
        await stream.write(`got ${decoded}`);
      }, { maxDecompressedBytes: MiB }),
      async (server) => {
        const { stream, response } = openDuplex(server.url, {
          headers: { "content-encoding": "gzip" },
        });
        await stream.write(bomb);
        await stream.closeWrite().catch(() => {});
        const error = await deadline(
          response.then(() => undefined, (e) => e),
          20_000,
          "413",
        );
        assert.ok(error instanceof HttpError, String(error));
        assert.equal(error.status, 413);
        assert.match(error.message, /exceeds maxDecompressedBytes 1048576/);
      },
    );
    // Never more than the limit plus one decoded chunk (at most ~4 MiB).
    assert.ok(decoded <= MiB, `handler saw ${decoded} bytes`);
  });

  it("echo fails its response when a bomb passes maxDecompressedBytes", async () => {
    const bomb = await compress(new Uint8Array(64 * MiB), "gzip");
    await withServer(
      (request) => echo(request, { maxDecompressedBytes: MiB }),
      async (server) => {
        const { stream } = openDuplex(server.url, {
          headers: { "content-encoding": "gzip" },
        });
        await stream.write(bomb);
        await stream.closeWrite().catch(() => {});
        let read = 0;
        await assert.rejects(
          deadline(
            (async () => {
              for await (const chunk of stream) read += chunk.byteLength;
            })(),
            20_000,
            "echo of a bomb",
          ),
        );
        assert.ok(read <= MiB, `client read ${read} bytes`);
      },
    );
  });

  it("openDuplex says a compressed response whose data is corrupt may be corrupt (not only that the connection broke)", async () => {
    for (const coding of ["gzip", "deflate"] as const) {
      const corrupt = await compress(
        new TextEncoder().encode("hello world ".repeat(1000)),
        coding,
      );
      corrupt[20] ^= 0xff;
      corrupt[21] ^= 0xff;
      corrupt[22] ^= 0x55;
      await withServer(
        () =>
          new Response(corrupt, { headers: { "content-encoding": coding } }),
        async (server) => {
          const { stream } = openDuplex(server.url, {
            acceptCompression: ["gzip", "deflate"],
          });
          await stream.closeWrite();
          const error = await deadline(
            (async () => {
              for await (const _ of stream) { /* read to the end */ }
            })().then(() => undefined, (e) => e),
            10_000,
            "reading a corrupt body",
          );
          assert.ok(error instanceof TypeError, `${coding}: ${error}`);
          assert.match(
            error.message,
            /^Cannot read duplex response: .*(data is corrupt or was cut short|its encoded data is corrupt)/,
            coding,
          );
        },
      );
    }
  });

  it("echo answers 415 for an unsupported Content-Encoding", async () => {
    await withServer((request) => echo(request), async (server) => {
      const { response } = openDuplex(server.url, {
        headers: { "content-encoding": "compress" },
      });
      const error = await response.then(() => undefined, (e) => e);
      assert.ok(error instanceof HttpError);
      assert.equal(error.status, 415);
    });
  });

  it("echo answers 415 for a Content-Encoding named like an Object property", async () => {
    await withServer((request) => echo(request), async (server) => {
      for (const coding of ["__proto__", "constructor", "toString"]) {
        const { response } = openDuplex(server.url, {
          headers: { "content-encoding": coding },
        });
        const error = await response.then(() => undefined, (e) => e);
        assert.ok(error instanceof HttpError, coding);
        assert.equal(error.status, 415, coding);
      }
    });
  });
});

describe("openDuplex over h2c", () => {
  it(
    "openDuplex completes 100 lockstep round trips over h2c (Deno)",
    { skip: runtime !== "deno" && "h2c needs Deno.createHttpClient" },
    async () => {
      const h2c = h2cClient();
      try {
        await withServer((request) => {
          return duplexResponse(request, async (stream) => {
            for await (const line of stream.lines()) {
              await stream.write(`echo ${line}\n`);
            }
          });
        }, async (server) => {
          const { stream, response } = openDuplex(server.url, {
            client: h2c.client,
          } as OpenDuplexOptions);
          await deadline(lockstep(stream, 100), 30_000, "h2c round trips");
          // With http1 off, only an h2 exchange can have succeeded.
          assert.equal((await response).status, 200);
        });
      } finally {
        h2c.close();
      }
    },
  );
});

describe("openDuplex with Node's fetch", () => {
  it(
    "openDuplex completes 100 lockstep round trips under Node (bundled by Bun)",
    {
      skip: runtime !== "bun" &&
        "needs Bun.build to bundle for Node and a subprocess (deno test has no --allow-run)",
    },
    async () => {
      const { execFile } = await import("node:child_process");
      const { writeFile } = await import("node:fs/promises");
      const { join } = await import("node:path");
      const dir = await makeTempDir("node-");
      try {
        const lib = join(import.meta.dirname!, "..", "lib", "http");
        const entry = join(dir, "client.ts");
        await writeFile(
          entry,
          `import { openDuplex } from ${
            JSON.stringify(join(lib, "open_duplex.ts"))
          };
const { stream } = openDuplex(process.argv[2]);
for (let i = 0; i < 100; i++) {
  await stream.write("line " + i + "\\n");
  const reply = await stream.readLine();
  if (reply !== "echo line " + i) throw new Error("round trip " + i + ": " + reply);
}
await stream.closeWrite();
if ((await stream.readPartial()) !== null) throw new Error("no end of input");
console.log("node " + process.version + ": 100 round trips");
`,
        );
        // deno-lint-ignore no-explicit-any
        const bun = (globalThis as any).Bun;
        const built = await bun.build({
          entrypoints: [entry],
          outdir: dir,
          target: "node",
        });
        assert.ok(built.success, String(built.logs));
        const bundle = built.outputs[0].path as string;
        await withServer(
          duplexServer(async (stream) => {
            for await (const line of stream.lines()) {
              await stream.write(`echo ${line}\n`);
            }
          }),
          async (server) => {
            const output = await deadline(
              new Promise<string>((resolve, reject) => {
                execFile(
                  "node",
                  [bundle, server.url.href],
                  { timeout: 30_000 },
                  (error, stdout, stderr) =>
                    error
                      ? reject(new Error(stderr || String(error)))
                      : resolve(stdout),
                );
              }),
              40_000,
              "node client",
            );
            assert.match(output, /^node v\d+.*: 100 round trips/);
          },
        );
      } finally {
        await removeDir(dir);
      }
    },
  );
});
