// uploadFile: a file sent with its Content-Length by the runtime's fastest
// means (node:http under Deno, a disk-backed Blob through fetch under Bun),
// against a real server on port 0.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createUploadHandler, parseDigestHeader } from "../mod.ts";
import { createHasher, uploadFile } from "../lib/runtime/fs.ts";
import {
  deadline,
  makeTempDir,
  removeDir,
  runScript,
  withServer,
} from "./_helpers.ts";
import { formatDigestHeader, type ReceivedBody } from "../mod.ts";

/** Answers as Ballerina's example does: 200 "File Received!", with Repr-Digest. */
function fileReceived(result: ReceivedBody): Response {
  return new Response("File Received!", {
    headers: result.sha256
      ? { "repr-digest": formatDigestHeader({ "sha-256": result.sha256 }) }
      : undefined,
  });
}

const MiB = 1024 * 1024;

let dir: string;
let file: string;
let bytes: Uint8Array;
before(async () => {
  dir = await makeTempDir("upload-file-");
  bytes = new Uint8Array(3 * MiB + 123);
  for (let i = 0; i < bytes.length; i += 65536) {
    crypto.getRandomValues(
      bytes.subarray(i, Math.min(bytes.length, i + 65536)),
    );
  }
  file = join(dir, "source.bin");
  await writeFile(file, bytes);
});
after(async () => {
  await removeDir(dir);
});

function sha256(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(data).digest());
}

/** A receiver that hashes what it gets and keeps nothing. */
function hashingReceiver(maxBytes?: number) {
  const seen: Array<{ length: string | null; type: string | null }> = [];
  const receiver = createUploadHandler({
    onComplete: fileReceived,
    sink: () => new WritableStream(),
    hasher: createHasher,
    maxBytes,
  });
  const handler = (request: Request) => {
    seen.push({
      length: request.headers.get("content-length"),
      type: request.headers.get("content-type"),
    });
    return receiver(request);
  };
  return { handler, seen };
}

describe("uploadFile", () => {
  it("sends the file byte for byte with its Content-Length", async () => {
    const { handler, seen } = hashingReceiver();
    await withServer(handler, async (server) => {
      const response = await deadline(
        uploadFile(server.url, file, { contentType: "application/pdf" }),
        30_000,
      );
      assert.equal(response.status, 200);
      assert.equal(await response.text(), "File Received!");
      const digest = parseDigestHeader(response.headers.get("repr-digest")!);
      assert.deepEqual(digest.get("sha-256"), sha256(bytes));
      assert.deepEqual(seen, [{
        length: String(bytes.length),
        type: "application/pdf",
      }]);
    });
  });

  it("rejects with what an onProgress callback throws, and the process goes on", async () => {
    // Before, under Deno the throw came from the file's event, nobody's to
    // catch: uploadFile never settled and the process ended.
    const { handler } = hashingReceiver();
    await withServer(handler, async (server) => {
      await assert.rejects(
        deadline(
          uploadFile(server.url, file, {
            onProgress: () => {
              throw new Error("progress UI crashed");
            },
          }),
          10_000,
          "uploadFile",
        ),
        /progress UI crashed/,
      );
    });
  });

  it("keeps a Content-Type given in headers (contentType still wins), and refuses a path that is no file, naming it", async () => {
    // Before, headers' Content-Type was replaced by application/octet-stream.
    const { handler, seen } = hashingReceiver();
    await withServer(handler, async (server) => {
      for (
        const [options, type] of [
          [{ headers: { "Content-Type": "text/csv" } }, "text/csv"],
          [{
            headers: { "Content-Type": "text/csv" },
            contentType: "text/plain",
          }, "text/plain"],
        ] as const
      ) {
        await (await uploadFile(server.url, file, options)).body?.cancel();
        assert.equal(seen.at(-1)?.type, type);
      }
      await assert.rejects(
        uploadFile(server.url, dir),
        (error: unknown) =>
          error instanceof TypeError &&
          error.message ===
            `Cannot upload file: ${JSON.stringify(dir)} is not a file`,
      );
    });
  });

  it("returns a redirect as it is, on every runtime (it does not send the file again)", async () => {
    // Before, Bun's fetch followed a 308 and sent the disk-backed file again
    // as an empty body: the new location stored an empty file and answered
    // 200; Deno's path returned the 308.
    const { handler, seen } = hashingReceiver();
    await withServer(async (request) => {
      if (new URL(request.url).pathname === "/old") {
        // Read first: a server that answers before it reads leaves Bun's
        // fetch sending, and the connection open.
        await request.arrayBuffer();
        return new Response(null, {
          status: 308,
          headers: { location: "/new" },
        });
      }
      return handler(request);
    }, async (server) => {
      const response = await uploadFile(new URL("/old", server.url), file);
      await response.body?.cancel();
      assert.equal(response.status, 308);
      assert.equal(response.headers.get("location"), "/new");
      assert.equal(seen.length, 0);
    });
  });

  it("reports progress up to the file's size", async () => {
    const { handler } = hashingReceiver();
    const calls: Array<[number, number | undefined]> = [];
    await withServer(handler, async (server) => {
      const response = await uploadFile(server.url, file, {
        onProgress: (sent, total) => calls.push([sent, total]),
        progressIntervalMs: 0,
      });
      await response.body?.cancel();
    });
    assert.ok(calls.length > 1, `${calls.length} progress calls`);
    assert.deepEqual(calls.at(-1), [bytes.length, bytes.length]);
    // Each count is reported once: the end's was twice (a caller that
    // finished at sent === total finished twice).
    for (let i = 1; i < calls.length; i++) {
      assert.ok(
        calls[i][0] > calls[i - 1][0],
        `progress goes forward: ${calls[i - 1][0]}, then ${calls[i][0]}`,
      );
    }
  });

  it("sends Content-Digest from sha256, and a wrong one is refused", async () => {
    const { handler } = hashingReceiver();
    await withServer(handler, async (server) => {
      const good = await uploadFile(server.url, file, {
        sha256: sha256(bytes),
      });
      assert.equal(good.status, 200);
      await good.body?.cancel();
      const bad = await uploadFile(server.url, file, {
        sha256: sha256(new Uint8Array([1])),
      });
      assert.equal(bad.status, 400);
      assert.match(await bad.text(), /does not match Content-Digest/);
    });
  });

  it("resolves with a refusal the server sends before reading the body", async () => {
    // Small enough for the socket buffers: Bun's fetch finishes sending a
    // body before it reads the response.
    const small = join(dir, "small.bin");
    await writeFile(small, bytes.subarray(0, 64 * 1024));
    const { handler } = hashingReceiver(1024);
    await withServer(handler, async (server) => {
      const response = await deadline(uploadFile(server.url, small), 30_000);
      assert.equal(response.status, 413);
      assert.match(await response.text(), /exceeds maxBytes 1024/);
    });
  });

  it("passes the response's status, status text, headers and body on", async () => {
    await withServer(async (request) => {
      for await (const _ of request.body!) { /* drain */ }
      return new Response("created", {
        status: 201,
        statusText: "Made",
        headers: { "x-answer": "42" },
      });
    }, async (server) => {
      const response = await uploadFile(new URL("/put", server.url), file, {
        method: "PUT",
        headers: { "x-question": "?" },
      });
      assert.equal(response.status, 201);
      assert.equal(response.headers.get("x-answer"), "42");
      assert.equal(await response.text(), "created");
    });
  });

  it("cancelling the response's body ends the answer at the server (under Deno it went on arriving, and the connection held the process)", async () => {
    const cancelled = Promise.withResolvers<void>();
    await withServer(async (request) => {
      for await (const _ of request.body!) { /* drain */ }
      // An answer with no end: 16 KiB every 10 ms until cancelled.
      return new Response(
        new ReadableStream<Uint8Array>({
          async pull(controller) {
            await new Promise((resolve) => setTimeout(resolve, 10));
            controller.enqueue(new Uint8Array(16 * 1024));
          },
          cancel() {
            cancelled.resolve();
          },
        }),
      );
    }, async (server) => {
      const response = await deadline(uploadFile(server.url, file), 30_000);
      const reader = response.body!.getReader();
      assert.equal((await reader.read()).done, false);
      await reader.cancel("enough");
      await deadline(cancelled.promise, 10_000, "the server's body cancelled");
    });
  });

  it("a process that leaves an answer unread exits (under Deno over http the connection held it for good)", async () => {
    await withServer(async (request) => {
      for await (const _ of request.body!) { /* drain */ }
      // A first piece, and no end for a while (an event stream, say).
      return new Response(
        new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new Uint8Array(100));
          },
        }),
      );
    }, async (server) => {
      const module = new URL("../lib/runtime/upload_file.ts", import.meta.url);
      const code = `import { uploadFile } from ${
        JSON.stringify(String(module))
      };
        const response = await uploadFile(${
        JSON.stringify(String(server.url))
      }, ${JSON.stringify(file)});
        console.log(response.status);`;
      const { stdout } = await runScript(code, { cwd: dir });
      assert.equal(stdout.trim(), "200");
    });
  });

  it("rejects with the abort reason when aborted mid-upload", async () => {
    const reason = new Error("stop");
    const controller = new AbortController();
    const reached = Promise.withResolvers<void>();
    await withServer(async (request) => {
      const reader = request.body!.getReader();
      await reader.read();
      reached.resolve();
      // Drain until the client goes away.
      try {
        while (!(await reader.read()).done) { /* keep reading */ }
      } catch { /* the client aborted */ }
      return new Response("late");
    }, async (server) => {
      const sending = uploadFile(server.url, file, {
        signal: controller.signal,
      });
      await reached.promise;
      controller.abort(reason);
      await assert.rejects(deadline(sending, 30_000), (error) => {
        assert.equal(error, reason);
        return true;
      });
    });
  });

  it("throws the reason at once when the signal is already aborted", async () => {
    const reason = new Error("never");
    await assert.rejects(
      uploadFile("http://127.0.0.1:1/", file, {
        signal: AbortSignal.abort(reason),
      }),
      (error) => error === reason,
    );
  });
});
