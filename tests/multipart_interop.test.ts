// parseMultipart against bodies written by real encoders: this runtime's
// Response(FormData), Node's (undici's) Response(FormData), curl -F against
// a server on 127.0.0.1 port 0, and the `form-data` npm package.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { spawn } from "node:child_process";
import { createReadStream } from "node:fs";
import { writeFile } from "node:fs/promises";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import FormDataPackage from "form-data";
import { parseMultipart } from "../lib/http/mod.ts";
import { HttpError } from "../lib/http/http_error.ts";
import { deadline, makeTempDir, removeDir, withServer } from "./_helpers.ts";

interface Seen {
  name: string;
  filename: string | null;
  contentType: string;
  bytes: number;
  sha256: string;
}

function hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Parses `request` with parseMultipart, hashing each body as it streams. */
async function seen(request: Request): Promise<Seen[]> {
  const out: Seen[] = [];
  for await (const part of parseMultipart(request)) {
    const hash = createHash("sha256");
    let bytes = 0;
    for await (const chunk of part.body) {
      hash.update(chunk);
      bytes += chunk.byteLength;
    }
    out.push({
      name: part.name,
      filename: part.filename ?? null,
      contentType: part.contentType,
      bytes,
      sha256: hash.digest("hex"),
    });
  }
  return out;
}

function randomBytes(size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) {
    crypto.getRandomValues(bytes.subarray(i, Math.min(size, i + 65536)));
  }
  return bytes;
}

function run(
  command: string,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => stdout += s);
    child.stderr.setEncoding("utf8").on("data", (s: string) => stderr += s);
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const big = randomBytes(3 * 1024 * 1024 + 17);
const small = new TextEncoder().encode("small file\r\n--not a boundary\r\n");

describe("parseMultipart interop", () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir("multipart-");
    await writeFile(join(dir, "big.bin"), big);
    await writeFile(join(dir, "small.txt"), small);
  });
  after(async () => {
    await removeDir(dir);
  });

  it("parses this runtime's Response(FormData)", async () => {
    const form = new FormData();
    form.append("title", 'héllo "quoted"\r\nline');
    form.append(
      "big",
      new Blob([big], { type: "application/x-big" }),
      "big.bin",
    );
    form.append("small", new Blob([small]), "ünï cødé.txt");
    const response = new Response(form);
    const parts = await seen(
      new Request("http://localhost/", {
        method: "POST",
        body: response.body,
        headers: response.headers,
        duplex: "half",
      } as RequestInit),
    );
    assert.deepEqual(parts.map((p) => [p.name, p.filename, p.bytes]), [
      [
        "title",
        null,
        new TextEncoder().encode(form.get("title") as string).length,
      ],
      ["big", "big.bin", big.length],
      ["small", "ünï cødé.txt", small.length],
    ]);
    assert.equal(parts[1].sha256, hex(big));
    assert.equal(parts[1].contentType, "application/x-big");
    assert.equal(parts[2].sha256, hex(small));
  });

  it("parses Node's (undici's) Response(FormData)", async () => {
    const script = `
      const form = new FormData();
      form.append("field", "välue");
      form.append("a", "1");
      form.append("a", "2");
      const bytes = new Uint8Array(200000).map((_, i) => (i * 7) & 255);
      form.append("file", new Blob([bytes], { type: "image/png" }), "пример.png");
      form.append("empty", new Blob([]), "empty.txt");
      const response = new Response(form);
      const body = new Uint8Array(await response.arrayBuffer());
      process.stdout.write(JSON.stringify({
        type: response.headers.get("content-type"),
        body: Buffer.from(body).toString("base64"),
      }));
    `;
    const result = await deadline(
      run("node", ["--input-type=module", "-e", script]),
      60_000,
      "node",
    );
    assert.equal(result.code, 0, result.stderr);
    const { type, body } = JSON.parse(result.stdout);
    assert.match(type, /^multipart\/form-data; boundary=/);
    const bytes = Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
    const expected = new Uint8Array(200000).map((_, i) => (i * 7) & 255);
    const parts = await seen(
      new Request("http://localhost/", {
        method: "POST",
        body: bytes,
        headers: { "content-type": type },
      }),
    );
    assert.deepEqual(
      parts.map((p) => [p.name, p.filename, p.contentType, p.bytes]),
      [
        ["field", null, "text/plain", 6],
        ["a", null, "text/plain", 1],
        ["a", null, "text/plain", 1],
        ["file", "пример.png", "image/png", 200000],
        ["empty", "empty.txt", "application/octet-stream", 0],
      ],
    );
    assert.equal(parts[3].sha256, hex(expected));
  });

  it("parses curl -F uploads of files and fields over HTTP", async () => {
    const handler = async (request: Request) => {
      try {
        return Response.json(await seen(request));
      } catch (error) {
        if (error instanceof HttpError) {
          return new Response(error.message, { status: error.status });
        }
        throw error;
      }
    };
    await withServer(handler, async (server) => {
      const result = await deadline(
        run("curl", [
          "-sS",
          "--fail-with-body",
          "-F",
          "title=hello world",
          "-F",
          `big=@${join(dir, "big.bin")}`,
          "-F",
          `small=@${join(dir, "small.txt")};type=text/x-small`,
          "-F",
          `renamed=@${join(dir, "small.txt")};filename=résumé.txt`,
          server.url.href,
        ]),
        60_000,
        "curl",
      );
      assert.equal(result.code, 0, result.stderr + result.stdout);
      const parts = JSON.parse(result.stdout) as Seen[];
      assert.deepEqual(
        parts.map((p) => [p.name, p.filename, p.contentType, p.bytes]),
        [
          ["title", null, "text/plain", 11],
          ["big", "big.bin", "application/octet-stream", big.length],
          ["small", "small.txt", "text/x-small", small.length],
          ["renamed", "résumé.txt", "text/plain", small.length],
        ],
      );
      assert.equal(parts[1].sha256, hex(big));
      assert.equal(parts[2].sha256, hex(small));
    });
  });

  it("answers curl's truncated body with 400, never a stored wrapper", async () => {
    const handler = async (request: Request) => {
      try {
        return Response.json(await seen(request));
      } catch (error) {
        if (error instanceof HttpError) {
          return new Response(error.message, { status: error.status });
        }
        throw error;
      }
    };
    await withServer(handler, async (server) => {
      // A body that stops before the closing boundary.
      const result = await deadline(
        run("curl", [
          "-sS",
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          "-H",
          "content-type: multipart/form-data; boundary=xyz",
          "--data-binary",
          '--xyz\r\nContent-Disposition: form-data; name="f"; filename="a"\r\n\r\ndata',
          server.url.href,
        ]),
        60_000,
        "curl",
      );
      assert.equal(result.stdout, "400");
    });
  });

  it("parses the form-data npm package's bodies", async () => {
    const form = new FormDataPackage();
    form.append("field", "value ✓");
    form.append("file", Buffer.from(big), {
      filename: "data.bin",
      contentType: "application/x-data",
    });
    form.append("text", Buffer.from(small), { filename: "notes.txt" });
    // A file stream, as form-data users send files: the body is streamed.
    form.append("stream", createReadStream(join(dir, "big.bin")));
    const chunks: Uint8Array[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      form.on("data", (chunk: Buffer | string) =>
        chunks.push(
          typeof chunk === "string"
            ? new TextEncoder().encode(chunk)
            : new Uint8Array(chunk),
        ));
      form.on("end", () => resolve());
      form.on("error", reject);
    });
    form.resume();
    await deadline(ended, 30_000, "form-data");
    const bytes = new Uint8Array(Buffer.concat(chunks));
    const parts = await seen(
      new Request("http://localhost/", {
        method: "POST",
        body: bytes,
        headers: { "content-type": form.getHeaders()["content-type"] },
      }),
    );
    assert.deepEqual(
      parts.map((p) => [p.name, p.filename, p.contentType, p.bytes]),
      [
        [
          "field",
          null,
          "text/plain",
          new TextEncoder().encode("value ✓").length,
        ],
        ["file", "data.bin", "application/x-data", big.length],
        ["text", "notes.txt", "text/plain", small.length],
        ["stream", "big.bin", "application/octet-stream", big.length],
      ],
    );
    assert.equal(parts[1].sha256, hex(big));
    assert.equal(parts[3].sha256, hex(big));
  });
});
