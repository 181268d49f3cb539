// Browser tests of createUploadHandler's multipart mode: a page with an
// <input type=file multiple> whose files Chromium picks (setInputFiles),
// sent with fetch(new FormData(form)) to a Deno.serve test server on
// 127.0.0.1 (port 0) that stores each file part in a directory. The bytes
// and SHA-256 on disk must be the page's; a file over the limit must leave
// nothing on disk. Registered by tests/browser/suite.ts.

import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import type { BrowserContext } from "playwright-core";
import { createUploadHandler } from "../../lib/http/upload_handler.ts";
import { safeFileName } from "../../lib/http/safe_file_name.ts";
import { createFileSink, createHasher } from "../../lib/runtime/fs.ts";

/** What the suite lends these tests. */
export interface FormUploadSuite {
  test(name: string, fn: () => Promise<void>): void;
  context(): BrowserContext;
  assertEqual(actual: unknown, expected: unknown, what: string): void;
  /** A directory for the stored files, under the suite's temporary one. */
  tmp: string;
}

const formPage = `<!doctype html>
<meta charset="utf-8">
<title>sluice form upload</title>
<link rel="icon" href="data:,">
<form id="form">
  <input name="title" value="Quarterly report">
  <input type="file" name="files" id="files" multiple>
  <input type="file" name="empty">
</form>
`;

function randomBytes(size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) {
    crypto.getRandomValues(bytes.subarray(i, Math.min(size, i + 65536)));
  }
  return bytes;
}

const sha256 = (bytes: Uint8Array) =>
  createHash("sha256").update(bytes).digest("base64");

/** Serves the form page and a multipart receiver storing into `dir`. */
function formServer(dir: string, maxFileBytes: number) {
  const receiver = createUploadHandler({
    hasher: createHasher,
    multipart: {
      sink: (part) => {
        const storedName = safeFileName(part.filename!);
        return { writable: createFileSink(join(dir, storedName)), storedName };
      },
      maxFileBytes,
    },
  });
  const { promise: listening, resolve } = Promise.withResolvers<number>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port }) => resolve(port),
  }, async (request) => {
    const { pathname } = new URL(request.url);
    if (pathname === "/") {
      return new Response(formPage, {
        headers: { "content-type": "text/html; charset=utf-8" },
      });
    }
    if (pathname === "/receive") return await receiver(request);
    return new Response("Not Found", { status: 404 });
  });
  return { server, listening };
}

/** Picks `files` in the page's file input and posts the form with fetch. */
async function submit(
  suite: FormUploadSuite,
  dir: string,
  maxFileBytes: number,
  files: { name: string; mimeType: string; buffer: Buffer }[],
): Promise<{ status: number; body: string }> {
  const { server, listening } = formServer(dir, maxFileBytes);
  const page = await suite.context().newPage();
  try {
    await page.goto(`http://127.0.0.1:${await listening}/`);
    await page.setInputFiles("#files", files);
    // A string: this file is type-checked without the DOM library.
    return await page.evaluate<{ status: number; body: string }>(`(async () => {
      const form = document.getElementById("form");
      const response = await fetch("/receive", {
        method: "POST",
        body: new FormData(form),
      });
      return { status: response.status, body: await response.text() };
    })()`);
  } finally {
    await page.close();
    await server.shutdown();
  }
}

/** Registers the form upload tests with the suite. */
export function formUploadTests(suite: FormUploadSuite): void {
  const { test, assertEqual } = suite;

  test("multipart mode: files picked in an <input type=file> and sent with fetch(FormData) are stored byte-identical with their SHA-256", async () => {
    const dir = await mkdtemp(join(suite.tmp, "form-"));
    try {
      const big = randomBytes(6 * 1024 * 1024 + 11);
      const small = new TextEncoder().encode("small\r\n--not a boundary\r\n");
      const { status, body } = await submit(suite, dir, 64 * 1024 * 1024, [
        {
          name: "big data.bin",
          mimeType: "application/octet-stream",
          buffer: Buffer.from(big),
        },
        {
          name: "notes.txt",
          mimeType: "text/plain",
          buffer: Buffer.from(small),
        },
      ]);
      assertEqual(status, 201, `status (${body})`);
      const answer = JSON.parse(body);
      assertEqual(answer.fields, [{
        name: "title",
        value: "Quarterly report",
      }], "fields");
      assertEqual(answer.files, [
        {
          name: "files",
          filename: "big data.bin",
          storedName: "big data.bin",
          contentType: "application/octet-stream",
          bytes: big.length,
          sha256: sha256(big),
        },
        {
          name: "files",
          filename: "notes.txt",
          storedName: "notes.txt",
          contentType: "text/plain",
          bytes: small.length,
          sha256: sha256(small),
        },
      ], "stored files");
      // The empty second input is skipped; only the two files are on disk.
      assertEqual(
        (await readdir(dir)).sort(),
        ["big data.bin", "notes.txt"],
        "directory",
      );
      assertEqual(
        sha256(await readFile(join(dir, "big data.bin"))),
        sha256(big),
        "SHA-256 of big data.bin on disk",
      );
      assertEqual(
        sha256(await readFile(join(dir, "notes.txt"))),
        sha256(small),
        "SHA-256 of notes.txt on disk",
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("multipart mode: a FormData with a file over maxFileBytes gets 413 and leaves nothing on disk", async () => {
    const dir = await mkdtemp(join(suite.tmp, "form-"));
    try {
      const { status, body } = await submit(suite, dir, 1024 * 1024, [
        {
          name: "first.txt",
          mimeType: "text/plain",
          buffer: Buffer.from("first file"),
        },
        {
          name: "too-big.bin",
          mimeType: "application/octet-stream",
          buffer: Buffer.from(randomBytes(2 * 1024 * 1024)),
        },
      ]);
      assertEqual(status, 413, "status");
      assertEqual(/maxFileBytes 1048576/.test(body), true, `message (${body})`);
      assertEqual(await readdir(dir), [], "directory");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}
