// Loopback HTTP benchmark, one side per process (run by bench/run.ts under
// Deno or Bun):
//
//   _loopback.ts server <mode> <dir>            prints "READY <port>"
//                                               (LOOPBACK_GC_MS: a forced GC that often;
//                                               LOOPBACK_IDLE_MS: echo-pass's idle
//                                               timeout under Bun, serve's native one)
//   _loopback.ts client <mode> <port> <arg>     prints one JSON result line
//
// Server modes: echo-ours (the library's `echo`), echo-pass (the same with
// idleTimeoutMs 0 and readAheadBytes 0: the native passthrough), echo-raw
// (`new Response(request.body)`), echo-pipe (the same through one bare
// TransformStream: the floor for an echo in JS), upload-ours (`createUploadHandler` into
// `createFileSink`), upload-raw (`request.body.pipeTo(file)`, then fsync, as
// the library's sink fsyncs too), drain (a raw handler that only reads the
// body: the runtime's own floor). Each server is started for one request, so
// its peak RSS belongs to that request.
//
// Client modes: upload-ours (the library's client for a file:
// `uploadFile`), upload-blob (`upload` of `openFile`'s Blob), upload-stream
// (`upload` of the file as a stream), upload-raw (the runtime's own fetch
// with the runtime's own file body). The last line printed is the result.
// The echo's client is curl, run by bench/run.ts.

import process from "node:process";
import { closeSync, fsyncSync, openSync } from "node:fs";
import { open, stat } from "node:fs/promises";
import { echo } from "../lib/http/echo.ts";
import { createUploadHandler } from "../lib/http/upload_handler.ts";
import { upload } from "../lib/http/upload.ts";
import { createFileSink, openFile, uploadFile } from "../lib/runtime/fs.ts";
import { serve } from "../lib/runtime/serve.ts";

// deno-lint-ignore no-explicit-any
const Bun = (globalThis as any).Bun;

type Handler = (request: Request) => Response | Promise<Response>;

/** The runtime's own server, without the library's glue. */
export function serveRaw(handler: Handler): Promise<number> {
  if (Bun) {
    const server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      idleTimeout: 0,
      maxRequestBodySize: Number.MAX_SAFE_INTEGER,
      fetch: handler,
    });
    return Promise.resolve(server.port);
  }
  const { promise, resolve } = Promise.withResolvers<number>();
  Deno.serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen: (addr) => resolve(addr.port),
  }, handler);
  return promise;
}

function fsyncPath(path: string): void {
  const fd = openSync(path, "r+");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** `request.body.pipeTo(file)` with the runtime's own file writer. */
async function rawUpload(request: Request, path: string): Promise<Response> {
  if (Bun) {
    const sink = Bun.file(path).writer();
    await request.body!.pipeTo(
      new WritableStream<Uint8Array>({
        write: (chunk) => sink.write(chunk),
        close: () => sink.end(),
      }),
    );
  } else {
    const file = await Deno.open(path, {
      write: true,
      create: true,
      truncate: true,
    });
    await request.body!.pipeTo(file.writable);
  }
  fsyncPath(path);
  return new Response("ok");
}

async function startServer(mode: string, dir: string): Promise<number> {
  const target = `${dir}/received.bin`;
  switch (mode) {
    case "echo-ours":
      return (await serve((request) => echo(request))).port;
    case "echo-pass":
      // The library's echo with the options that allow the runtime's
      // native passthrough (no idle timer, no read-ahead). Under Bun,
      // `serve`'s idleTimeoutMs (LOOPBACK_IDLE_MS) can bound an idle client
      // natively instead (docs/duplex.md's recipe); Deno.serve has no such
      // setting.
      return (await serve(
        (request) => echo(request, { idleTimeoutMs: 0, readAheadBytes: 0 }),
        { idleTimeoutMs: Bun ? Number(process.env.LOOPBACK_IDLE_MS ?? 0) : 0 },
      )).port;
    case "echo-raw":
      return await serveRaw((request) => new Response(request.body));
    case "echo-pipe":
      return await serveRaw((request) =>
        new Response(request.body!.pipeThrough(new TransformStream()))
      );
    case "upload-ours":
      return (await serve(createUploadHandler({
        sink: () => createFileSink(target),
        maxBytes: Number.MAX_SAFE_INTEGER,
      }))).port;
    case "upload-raw":
      return await serveRaw((request) => rawUpload(request, target));
    case "drain":
      return await serveRaw(async (request) => {
        let bytes = 0;
        for await (const chunk of request.body!) bytes += chunk.byteLength;
        return new Response(String(bytes));
      });
  }
  throw new TypeError(`Unknown server mode ${mode}`);
}

async function runClient(
  mode: string,
  port: number,
  arg: string,
): Promise<Record<string, unknown>> {
  const url = `http://127.0.0.1:${port}/`;
  const start = performance.now();
  const path = arg;
  const size = (await stat(path)).size;
  let response: Response;
  if (mode === "upload-ours") {
    response = await uploadFile(url, path);
  } else if (mode === "upload-blob") {
    response = await upload(url, await openFile(path));
  } else if (mode === "upload-stream") {
    const file = await open(path);
    response = await upload(
      url,
      file.readableWebStream() as ReadableStream<Uint8Array>,
      { contentLength: size },
    );
  } else if (mode === "upload-raw") {
    const body = Bun ? Bun.file(path) : (await Deno.open(path)).readable;
    response = await fetch(url, {
      method: "POST",
      body,
      duplex: "half",
    } as RequestInit);
  } else throw new TypeError(`Unknown client mode ${mode}`);
  const text = await response.text();
  const ms = performance.now() - start;
  if (!response.ok) throw new Error(`Upload: ${response.status} ${text}`);
  return { ms, bytes: size };
}

if (import.meta.main) {
  const [side, mode, a, b] = process.argv.slice(2);
  if (side === "server") {
    // LOOPBACK_GC_MS: a full collection that often, so that the peak RSS is
    // what the server holds, not garbage awaiting the collector (Deno needs
    // --v8-flags=--expose-gc for it).
    const gcMs = Number(process.env.LOOPBACK_GC_MS ?? 0);
    if (gcMs > 0) {
      const collect: (() => void) | undefined = Bun
        ? () => Bun.gc(true)
        : (globalThis as { gc?: () => void }).gc;
      if (!collect) {
        throw new Error("LOOPBACK_GC_MS needs --v8-flags=--expose-gc");
      }
      setInterval(collect, gcMs);
    }
    console.log(`READY ${await startServer(mode, a)}`);
  } else if (side === "client") {
    console.log(JSON.stringify(await runClient(mode, Number(a), b)));
    process.exit(0);
  } else {
    console.error(
      "Usage: _loopback.ts server <mode> <dir> | client <mode> <port> <arg>",
    );
    process.exit(2);
  }
}
