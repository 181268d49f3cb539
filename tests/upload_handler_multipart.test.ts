// createUploadHandler's multipart mode: each file part received by
// receiveBody into its own atomic file sink with a SHA-256, the fields
// collected, the 201 answer; every limit and malformed body answered with its
// named error and nothing left on disk (not even a temporary file); the raw
// receiver's 415 for a form and its acceptMultipartAsRaw; real clients (curl
// -F, Node's fetch with FormData, the form-data package) through a server.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { spawn } from "node:child_process";
import {
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  unlink,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { Buffer } from "node:buffer";
import FormDataPackage from "form-data";
import {
  createUploadHandler,
  type MultipartUploadOptions,
  safeFileName,
  type UploadHandlerOptions,
} from "../lib/http/mod.ts";
import { createFileSink, createHasher } from "../lib/runtime/fs.ts";
import { deadline, makeTempDir, removeDir, withServer } from "./_helpers.ts";

const enc = new TextEncoder();
const B = "sluice-test-boundary";

function b64sha(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("base64");
}

function randomBytes(size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) {
    crypto.getRandomValues(bytes.subarray(i, Math.min(size, i + 65536)));
  }
  return bytes;
}

/** A multipart body from raw part texts (headers CRLF CRLF body). */
function rawBody(
  parts: (string | Uint8Array)[],
  close = true,
): Uint8Array<ArrayBuffer> {
  const pieces: Uint8Array[] = [];
  for (const part of parts) {
    pieces.push(enc.encode(`--${B}\r\n`));
    pieces.push(typeof part === "string" ? enc.encode(part) : part);
    pieces.push(enc.encode("\r\n"));
  }
  if (close) pieces.push(enc.encode(`--${B}--\r\n`));
  const out = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of pieces) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

function filePart(name: string, filename: string, body: string): string {
  return `Content-Disposition: form-data; name="${name}"; filename="${filename}"\r\n\r\n${body}`;
}

function fieldPart(name: string, value: string): string {
  return `Content-Disposition: form-data; name="${name}"\r\n\r\n${value}`;
}

function post(
  body: BodyInit,
  type = `multipart/form-data; boundary=${B}`,
): Request {
  return new Request("http://localhost/upload", {
    method: "POST",
    body,
    headers: { "content-type": type },
  });
}

/** A form posted with its Content-Length, as curl and browsers send one. */
function postWithLength(body: Uint8Array<ArrayBuffer>): Request {
  return new Request("http://localhost/upload", {
    method: "POST",
    body,
    headers: {
      "content-type": `multipart/form-data; boundary=${B}`,
      "content-length": String(body.length),
    },
  });
}

/** A form posted as a stream (as a client sends it while it uploads). */
function streamed(body: ReadableStream<Uint8Array>): Request {
  return new Request("http://localhost/", {
    method: "POST",
    body,
    headers: { "content-type": `multipart/form-data; boundary=${B}` },
    duplex: "half",
  } as RequestInit);
}

/** A handler storing each file part in `dir` under its sanitised name. */
function storing(
  dir: string,
  multipart: Partial<MultipartUploadOptions> = {},
  options: Partial<UploadHandlerOptions> = {},
) {
  return createUploadHandler({
    hasher: createHasher,
    ...options,
    multipart: {
      sink: (part) => {
        const storedName = safeFileName(part.filename!);
        return {
          writable: createFileSink(join(dir, storedName)),
          storedName,
        };
      },
      ...multipart,
    },
  });
}

interface StoredFile {
  name: string;
  filename: string;
  storedName?: string;
  contentType: string;
  bytes: number;
  sha256?: string;
}

describe("createUploadHandler multipart mode", () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir("upload-multipart-");
  });
  after(async () => {
    await removeDir(dir);
  });

  /** A directory of its own for one case, inside `dir` (removed after all). */
  async function fresh(): Promise<string> {
    return await mkdtemp(join(dir, "case-"));
  }

  async function assertEmpty(path: string): Promise<void> {
    assert.deepEqual(await readdir(path), [], "nothing left on disk");
    await removeDir(path);
  }

  it("stores each file part and answers 201 with files and fields, as application/json", async () => {
    const out = await fresh();
    const big = randomBytes(2 * 1024 * 1024 + 3);
    const small = enc.encode("small\r\n--not-the-boundary\r\n");
    const form = new FormData();
    form.append("title", "héllo");
    form.append("a", new Blob([big], { type: "application/x-big" }), "big.bin");
    form.append("b", new Blob([small]), "small.txt");
    form.append("note", "2");
    const response = await storing(out)(
      new Request("http://localhost/", { method: "POST", body: form }),
    );
    assert.equal(response.status, 201, await response.clone().text());
    // The same type under every runtime (Bun's Response.json adds a charset).
    assert.equal(response.headers.get("content-type"), "application/json");
    const answer = await response.json() as {
      files: StoredFile[];
      fields: { name: string; value: string }[];
    };
    assert.deepEqual(answer.fields, [
      { name: "title", value: "héllo" },
      { name: "note", value: "2" },
    ]);
    assert.deepEqual(answer.files, [
      {
        name: "a",
        filename: "big.bin",
        storedName: "big.bin",
        contentType: "application/x-big",
        bytes: big.length,
        sha256: b64sha(big),
      },
      {
        name: "b",
        filename: "small.txt",
        storedName: "small.txt",
        contentType: "application/octet-stream",
        bytes: small.length,
        sha256: b64sha(small),
      },
    ]);
    assert.deepEqual(await readFile(join(out, "big.bin")), Buffer.from(big));
    assert.deepEqual(
      await readFile(join(out, "small.txt")),
      Buffer.from(small),
    );
    assert.deepEqual((await readdir(out)).sort(), ["big.bin", "small.txt"]);
    await removeDir(out);
  });

  it("commits no part before the whole body parsed", async () => {
    const events: string[] = [];
    let secondWrite!: () => void;
    const writing = new Promise<void>((resolve) => secondWrite = resolve);
    const handler = createUploadHandler({
      multipart: {
        sink: (part) =>
          new WritableStream({
            write: () => {
              if (part.filename === "two.txt") secondWrite();
            },
            close: () => void events.push(`close ${part.filename}`),
          }),
      },
    });
    let sendRest!: () => void;
    const rest = new Promise<void>((resolve) => sendRest = resolve);
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        // Part one complete, part two begun.
        controller.enqueue(
          enc.encode(
            `--${B}\r\n${filePart("f", "one.txt", "1")}\r\n--${B}\r\n${
              filePart("g", "two.txt", "2")
            }`,
          ),
        );
        await rest;
        controller.enqueue(enc.encode(`22\r\n--${B}--\r\n`));
        controller.close();
      },
    });
    const answer = handler(
      streamed(body),
    );
    await deadline(writing, 10_000, "part two's first write");
    assert.deepEqual(events, [], "part one not committed mid-body");
    sendRest();
    assert.equal((await deadline(answer, 10_000, "answer")).status, 201);
    assert.deepEqual(events, ["close one.txt", "close two.txt"]);
  });

  it("removes a stored part when a later part fails", async () => {
    const out = await fresh();
    const response = await storing(out, { maxFileBytes: 10 })(post(rawBody([
      filePart("a", "ok.txt", "fine"),
      fieldPart("t", "x"),
      filePart("b", "big.txt", "x".repeat(11)),
    ])));
    assert.equal(response.status, 413);
    assert.match(await response.text(), /maxFileBytes 10/);
    await assertEmpty(out);
  });

  // Each case: the handler's options, the body, the status and the message.
  const refusals: {
    what: string;
    multipart?: Partial<MultipartUploadOptions>;
    options?: Partial<UploadHandlerOptions>;
    body: () => Request;
    status: number;
    message: RegExp;
  }[] = [
    {
      what: "a file over maxFileBytes",
      multipart: { maxFileBytes: 4 },
      body: () => post(rawBody([filePart("a", "a.txt", "12345")])),
      status: 413,
      message: /maxFileBytes 4/,
    },
    {
      what: "more files than maxFiles",
      multipart: { maxFiles: 1 },
      body: () =>
        post(rawBody([
          filePart("a", "a.txt", "1"),
          filePart("b", "b.txt", "2"),
        ])),
      status: 413,
      message: /maxFiles 1/,
    },
    {
      what: "more fields than maxFields",
      multipart: { maxFields: 1 },
      body: () =>
        post(rawBody([
          filePart("a", "a.txt", "1"),
          fieldPart("x", "1"),
          fieldPart("y", "2"),
        ])),
      status: 413,
      message: /maxFields 1/,
    },
    {
      what: "fields over maxFieldsBytes",
      multipart: { maxFieldsBytes: 5 },
      body: () =>
        post(rawBody([
          filePart("a", "a.txt", "1"),
          fieldPart("x", "123"),
          fieldPart("y", "456"),
        ])),
      status: 413,
      message: /maxFieldsBytes 5/,
    },
    {
      what: "a field over maxFieldBytes",
      multipart: { maxFieldBytes: 2 },
      body: () =>
        post(rawBody([filePart("a", "a.txt", "1"), fieldPart("x", "123")])),
      status: 413,
      message: /maxFieldBytes 2/,
    },
    {
      what: "more parts than maxParts",
      multipart: { maxParts: 1 },
      body: () =>
        post(rawBody([filePart("a", "a.txt", "1"), fieldPart("x", "1")])),
      status: 413,
      message: /maxParts 1/,
    },
    {
      what: "a header block over maxHeaderBytes",
      multipart: { maxHeaderBytes: 100 },
      body: () =>
        post(rawBody([
          filePart("a", "a.txt", "1"),
          `X-Pad: ${"p".repeat(200)}\r\n${filePart("b", "b.txt", "2")}`,
        ])),
      status: 413,
      message: /maxHeaderBytes 100/,
    },
    {
      what: "a streamed body over maxBytes",
      options: { maxBytes: 200 },
      body: () =>
        post(
          ReadableStream.from([
            rawBody([filePart("a", "a.txt", "x".repeat(300))]),
          ]),
        ),
      status: 413,
      // The form's limit, maxTotalBytes, defaults to maxBytes, and is
      // named so: the option set.
      message: /exceeds maxBytes 200$/,
    },
    {
      what: "a Content-Length over maxBytes",
      options: { maxBytes: 10 },
      body: () => postWithLength(rawBody([filePart("a", "a.txt", "1")])),
      status: 413,
      message: /Content-Length \d+ exceeds maxBytes 10$/,
    },
    {
      what: "a Content-Length over maxTotalBytes",
      options: { maxBytes: 100_000 },
      multipart: { maxTotalBytes: 10 },
      body: () => postWithLength(rawBody([filePart("a", "a.txt", "1")])),
      status: 413,
      message: /Content-Length \d+ exceeds maxTotalBytes 10/,
    },
    {
      what: "a truncated body",
      body: () =>
        post(
          rawBody([filePart("a", "a.txt", "1"), filePart("b", "b.txt", "2")])
            .subarray(0, 150),
        ),
      status: 400,
      message: /without the closing boundary/,
    },
    {
      what: "a body without the closing boundary",
      body: () => post(rawBody([filePart("a", "a.txt", "1")], false)),
      status: 400,
      message: /without the closing boundary/,
    },
    {
      what: "a bare LF in a part's headers",
      body: () =>
        post(rawBody([
          filePart("a", "a.txt", "1"),
          'Content-Disposition: form-data; name="b"; filename="b.txt"\n\n2',
        ])),
      status: 400,
      message: /bare LF/,
    },
    {
      what: "a part without Content-Disposition",
      body: () =>
        post(rawBody([filePart("a", "a.txt", "1"), "X-A: 1\r\n\r\n2"])),
      status: 400,
      message: /Content-Disposition/,
    },
    {
      what: "no boundary in the Content-Type",
      body: () =>
        post(rawBody([filePart("a", "a.txt", "1")]), "multipart/form-data"),
      status: 400,
      message: /no boundary/,
    },
    {
      what: "a file name safeFileName refuses",
      body: () =>
        post(rawBody([
          filePart("a", "a.txt", "1"),
          filePart("b", "../etc/passwd", "2"),
        ])),
      status: 400,
      message: /Cannot/,
    },
    {
      what: "a part whose Content-Digest does not match",
      body: () =>
        post(rawBody([
          filePart("a", "a.txt", "1"),
          `Content-Digest: sha-256=:${b64sha(enc.encode("other"))}:\r\n${
            filePart("b", "b.txt", "2")
          }`,
        ])),
      status: 400,
      message: /SHA-256 does not match/,
    },
  ];

  for (const refusal of refusals) {
    it(`refuses ${refusal.what} and leaves nothing on disk`, async () => {
      const out = await fresh();
      const response = await storing(out, refusal.multipart, refusal.options)(
        refusal.body(),
      );
      const text = await response.text();
      assert.equal(response.status, refusal.status, text);
      assert.match(text, refusal.message);
      assert.match(text, /^Cannot /);
      await assertEmpty(out);
    });
  }

  it("takes a form with a Content-Length over maxBytes but within multipart.maxTotalBytes", async () => {
    // Before, a form's Content-Length was checked against maxBytes: the
    // same body was refused with a length (curl, browsers) and taken
    // without one.
    const out = await fresh();
    const response = await storing(out, { maxTotalBytes: 100_000 }, {
      maxBytes: 1_000,
    })(postWithLength(rawBody([filePart("a", "a.txt", "x".repeat(5_000))])));
    assert.equal(response.status, 201, await response.clone().text());
    const { files } = await response.json() as { files: StoredFile[] };
    assert.equal(files[0].bytes, 5_000);
  });

  it("takes the multipart option as a class instance: its sink and onComplete called on it, a limit it defines as a getter kept (its sink lost `this`, every form a 500, and the getter was dropped)", async () => {
    class FormStore {
      readonly received: string[] = [];
      get maxFileBytes() {
        return 4;
      }
      sink(part: { filename?: string }) {
        this.received.push(part.filename ?? "");
        return new WritableStream<Uint8Array>();
      }
      onComplete() {
        return new Response(this.received.join(","), { status: 201 });
      }
    }
    const store = new FormStore();
    const handler = createUploadHandler({ multipart: store as never });
    const taken = await handler(post(rawBody([filePart("a", "a.txt", "abc")])));
    assert.equal(taken.status, 201, await taken.clone().text());
    assert.equal(await taken.text(), "a.txt");
    const refused = await handler(
      post(rawBody([filePart("a", "b.txt", "abcdefgh")])),
    );
    assert.equal(refused.status, 413, await refused.clone().text());
    assert.match(await refused.text(), /maxFileBytes 4\b/);
  });

  it("answers 500 when a part's sink fails, and removes the others", async () => {
    const out = await fresh();
    let n = 0;
    const handler = createUploadHandler({
      multipart: {
        sink: (part) => {
          if (++n === 2) {
            return new WritableStream({
              write: () => {
                throw new Error("disk full");
              },
            });
          }
          return createFileSink(join(out, safeFileName(part.filename!)));
        },
      },
    });
    const response = await handler(
      post(rawBody([filePart("a", "a.txt", "1"), filePart("b", "b.txt", "2")])),
    );
    assert.equal(response.status, 500);
    assert.match(await response.text(), /Cannot store body: the sink failed/);
    await assertEmpty(out);
  });

  it("a part whose sink fails to commit: the parts committed before it are removed by their PartSink's remove, or named as left", async () => {
    // The third part's target is a directory: its atomic file sink cannot
    // be renamed into place at commit (EISDIR), after parts 1 and 2 were.
    const form = rawBody([
      filePart("a", "a.txt", "1"),
      filePart("b", "b.txt", "2"),
      filePart("c", "c.txt", "3"),
    ]);
    for (const withRemove of [true, false, "failing"]) {
      const out = await fresh();
      await mkdir(join(out, "c.txt"));
      const removed: string[] = [];
      const handler = createUploadHandler({
        multipart: {
          sink: (part) => {
            const path = join(out, safeFileName(part.filename!));
            return {
              writable: createFileSink(path),
              remove: withRemove === false ? undefined : async () => {
                removed.push(part.filename!);
                if (withRemove === "failing" && part.filename === "b.txt") {
                  throw new Error(`EACCES: permission denied, ${path}`);
                }
                await unlink(path);
              },
            };
          },
        },
      });
      const response = await handler(post(form));
      assert.equal(response.status, 500);
      const text = await response.text();
      if (withRemove === "failing") {
        // The remove's own words (a path) stay on the server.
        assert.equal(
          text,
          "Cannot store body: the sink of file part 3 failed to close; committed before it and left: file part 2 (its remove failed)",
        );
        assert.deepEqual((await readdir(out)).sort(), ["b.txt", "c.txt"]);
      } else if (withRemove) {
        assert.equal(
          text,
          "Cannot store body: the sink of file part 3 failed to close; the parts committed before it were removed",
        );
        assert.deepEqual(removed.sort(), ["a.txt", "b.txt"]);
        assert.deepEqual(await readdir(out), ["c.txt"]);
      } else {
        // Without remove they stay, and the answer says so.
        assert.equal(
          text,
          "Cannot store body: the sink of file part 3 failed to close; committed before it and left: file part 1 (no remove), file part 2 (no remove)",
        );
        assert.deepEqual((await readdir(out)).sort(), [
          "a.txt",
          "b.txt",
          "c.txt",
        ]);
      }
      await removeDir(out);
    }
  });

  it("answers 408 to a stalled form and leaves nothing on disk", async () => {
    const out = await fresh();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(
          rawBody([filePart("a", "a.txt", "1"), fieldPart("t", "x")], false),
        );
        // ...and nothing more.
      },
    });
    const response = await deadline(
      storing(out, {}, { idleTimeoutMs: 200 })(
        streamed(body),
      ),
      10_000,
      "stalled upload",
    );
    assert.equal(response.status, 408);
    assert.match(await response.text(), /idleTimeoutMs/);
    await assertEmpty(out);
  });

  it("answers 408 past timeoutMs while waiting between parts", async () => {
    const out = await fresh();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(rawBody([filePart("a", "a.txt", "1")], false));
      },
    });
    const response = await deadline(
      storing(out, {}, { timeoutMs: 200 })(
        streamed(body),
      ),
      10_000,
      "slow upload",
    );
    assert.equal(response.status, 408);
    assert.match(await response.text(), /timeoutMs/);
    await assertEmpty(out);
  });

  it("answers 408 to a form dripped under minBytesPerSecond, naming the option", async () => {
    const out = await fresh();
    // The form's first part, then one byte every 20 ms (50 B/s) of a second
    // file: under the 1,000 asked over 200 ms windows, far from the idle
    // timeout (30 s).
    const head = rawBody([filePart("a", "a.txt", "1")], false);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent++ === 0) {
          controller.enqueue(head);
          controller.enqueue(
            enc.encode(`--${B}\r\n${filePart("b", "b.txt", "")}`),
          );
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
        controller.enqueue(enc.encode("x"));
      },
    }, { highWaterMark: 0 });
    const response = await deadline(
      storing(out, {}, { minBytesPerSecond: 1_000, minRateWindowMs: 200 })(
        streamed(body),
      ),
      10_000,
      "dripped form",
    );
    assert.equal(response.status, 408);
    assert.match(await response.text(), /minBytesPerSecond/);
    await assertEmpty(out);
  });

  it("does not count a slow part sink against idleTimeoutMs", async () => {
    // The whole form is there at once; the part's sink takes 3x the idle
    // timeout for each write: the client is never waited for that long.
    const kept: Uint8Array[] = [];
    const handler = createUploadHandler({
      idleTimeoutMs: 50,
      multipart: {
        sink: () =>
          new WritableStream<Uint8Array>({
            async write(chunk) {
              await new Promise((resolve) => setTimeout(resolve, 150));
              kept.push(chunk.slice());
            },
          }),
      },
    });
    const file = randomBytes(3 * 1024);
    const chunks = [
      rawBody([enc.encode(
        `Content-Disposition: form-data; name="f"; filename="f.bin"\r\n\r\n`,
      )], false).subarray(0, -2),
      file.subarray(0, 1024),
      file.subarray(1024, 2048),
      file.subarray(2048),
      enc.encode(`\r\n--${B}--\r\n`),
    ];
    const response = await deadline(
      handler(
        streamed(ReadableStream.from(chunks)),
      ),
      10_000,
      "slow part sink",
    );
    assert.equal(response.status, 201, await response.clone().text());
    const stored = new Uint8Array(kept.reduce((n, c) => n + c.length, 0));
    let offset = 0;
    for (const c of kept) {
      stored.set(c, offset);
      offset += c.length;
    }
    assert.deepEqual(stored, file);
  });

  it("cancels the request body when it refuses a form the client is still sending", async () => {
    const out = await fresh();
    // Two files with maxFiles 1, then the client stays silent: the 413
    // comes from the second part's headers, and the body is cancelled then,
    // not at the idle timeout.
    let cancelled: unknown;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(
          rawBody(
            [filePart("a", "a.txt", "1"), filePart("b", "b.txt", "2")],
            false,
          ),
        );
      },
      cancel: (reason) => void (cancelled = reason ?? "cancelled"),
    });
    const started = performance.now();
    const response = await deadline(
      storing(out, { maxFiles: 1 })(
        streamed(body),
      ),
      10_000,
      "refused form",
    );
    assert.equal(response.status, 413);
    assert.match(await response.text(), /maxFiles/);
    assert.ok(performance.now() - started < 5_000, "before the idle timeout");
    await deadline(
      (async () => {
        while (cancelled === undefined) {
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      })(),
      2_000,
      "body cancelled",
    );
    await assertEmpty(out);
  });

  it("refuses a form whose body was already read with its TypeError at once", async () => {
    // It used to wait forever (the pipe never started).
    const out = await fresh();
    const request = post(rawBody([filePart("a", "a.txt", "1")]));
    await request.arrayBuffer();
    const error = await deadline(
      storing(out, {}, { timeoutMs: 60_000 })(request)
        .then(() => undefined, (e) => e),
      2_000,
      "used body",
    );
    assert.ok(error instanceof TypeError, String(error));
    await assertEmpty(out);
  });

  it("skips a file input left empty (no file name)", async () => {
    const out = await fresh();
    const response = await storing(out)(post(rawBody([
      filePart("a", "", ""),
      fieldPart("t", "x"),
    ])));
    assert.equal(response.status, 201);
    assert.deepEqual(await response.json(), {
      files: [],
      fields: [{ name: "t", value: "x" }],
    });
    await assertEmpty(out);
  });

  it("refuses a part with bytes but an empty file name with 400, storing nothing (it was dropped, the form answered 201)", async () => {
    // A File named "" (FormData), curl's `-F 'f=@file;filename='`.
    const out = await fresh();
    const response = await storing(out)(post(rawBody([
      filePart("a", "b.txt", "kept?"),
      fieldPart("note", "see attachment"),
      filePart("doc", "", "the attachment's bytes"),
    ])));
    assert.equal(response.status, 400);
    assert.equal(
      await response.text(),
      'Cannot accept form: part 3 (field "doc") has bytes but an empty file name (a Blob appended to FormData needs one under Bun: append(name, blob, fileName))',
    );
    await assertEmpty(out);
  });

  it("refuses a file part whose file name cannot be read with 400 (it was taken for a field, its bytes decoded as text)", async () => {
    for (
      const disposition of [
        `form-data; name="pic"; filename*=UTF-8''photo%2.png`,
        `form-data; name="pic"; filename*=Shift_JIS''%82%A0.png`,
        `form-data; name="pic"; filename*0*=UTF-8''long%20na; filename*1=me.png`,
        // Bytes that are no UTF-8 (two such names read alike).
        `form-data; name="pic"; filename*=UTF-8''%FF%FE.png`,
      ]
    ) {
      const out = await fresh();
      const response = await storing(out)(post(rawBody([
        `Content-Disposition: ${disposition}\r\n\r\n\x89PNG`,
      ])));
      assert.equal(response.status, 400, disposition);
      assert.match(
        await response.text(),
        /^Cannot parse multipart body: part 1 has a file name that cannot be read \(filename\*/,
      );
      await assertEmpty(out);
    }
    // US-ASCII, a subset of UTF-8, is read.
    const ascii = await fresh();
    const named = await storing(ascii)(post(rawBody([
      `Content-Disposition: form-data; name="pic"; filename*=us-ascii''a%2Etxt\r\n\r\nA`,
    ])));
    assert.equal(named.status, 201);
    assert.equal((await named.json()).files[0].filename, "a.txt");
    await removeDir(ascii);
    // An empty filename* hides no plain filename beside it.
    const empty = await fresh();
    const plain = await storing(empty)(post(rawBody([
      `Content-Disposition: form-data; name="pic"; filename="x.txt"; filename*=UTF-8''\r\n\r\nX`,
    ])));
    assert.equal(plain.status, 201);
    assert.equal((await plain.json()).files[0].filename, "x.txt");
    await removeDir(empty);
    // A plain filename beside an unreadable filename* is the name.
    const out = await fresh();
    const response = await storing(out)(post(rawBody([
      `Content-Disposition: form-data; name="pic"; filename*=Shift_JIS''%82%A0.png; filename="pic.png"\r\n\r\nPNG`,
    ])));
    assert.equal(response.status, 201);
    assert.equal((await response.json()).files[0].filename, "pic.png");
    await removeDir(out);
  });

  it("names the part and maxFileBytes when a part's own Content-Length or body is refused (it named maxBytes and the request's body)", async () => {
    const out = await fresh();
    const handler = storing(out, { maxFileBytes: 1024 });
    const declared = await handler(post(rawBody([
      filePart("a", "a.txt", "1"),
      `Content-Disposition: form-data; name="b"; filename="b.txt"\r\nContent-Length: 2000\r\n\r\nxy`,
    ])));
    assert.equal(declared.status, 413);
    assert.equal(
      await declared.text(),
      "Cannot accept form: file part 2: Content-Length 2000 exceeds maxFileBytes 1024",
    );
    const malformed = await handler(post(rawBody([
      `Content-Disposition: form-data; name="b"; filename="b.txt"\r\nContent-Length: abc\r\n\r\nxy`,
    ])));
    assert.equal(malformed.status, 400);
    assert.equal(
      await malformed.text(),
      'Cannot accept form: file part 1: bad Content-Length "abc"',
    );
    const digest = await handler(post(rawBody([
      `Content-Disposition: form-data; name="b"; filename="b.txt"\r\nContent-Digest: sha-256=nope\r\n\r\nxy`,
    ])));
    assert.equal(digest.status, 400);
    assert.match(
      await digest.text(),
      /^Cannot accept form: file part 1: its Content-Digest: /,
    );
    const longer = await handler(post(rawBody([
      `Content-Disposition: form-data; name="b"; filename="b.txt"\r\nContent-Length: 3\r\n\r\nxyzzy`,
    ])));
    assert.equal(longer.status, 400);
    assert.equal(
      await longer.text(),
      "Cannot accept form: file part 1: longer than its Content-Length 3",
    );
    await assertEmpty(out);
  });

  it("keeps a field's leading byte order mark (TextDecoder dropped it)", async () => {
    const out = await fresh();
    const response = await storing(out)(post(rawBody([
      fieldPart("csv", "\uFEFFa,b\r\n1,2"),
    ])));
    assert.equal(response.status, 201);
    assert.deepEqual((await response.json()).fields, [
      { name: "csv", value: "\uFEFFa,b\r\n1,2" },
    ]);
    await assertEmpty(out);
  });

  it("refuses a form at the raw receiver with 415 naming the option", async () => {
    const out = await fresh();
    const handler = createUploadHandler({
      sink: () => createFileSink(join(out, "raw.bin")),
    });
    const response = await handler(
      post(rawBody([filePart("a", "a.txt", "1")])),
    );
    assert.equal(response.status, 415);
    const text = await response.text();
    assert.match(text, /multipart option/);
    assert.match(text, /acceptMultipartAsRaw/);
    await assertEmpty(out);
  });

  it("stores a form as it is with acceptMultipartAsRaw", async () => {
    const out = await fresh();
    const body = rawBody([filePart("a", "a.txt", "1")]);
    const handler = createUploadHandler({
      sink: () => createFileSink(join(out, "raw.bin")),
      acceptMultipartAsRaw: true,
    });
    const response = await handler(post(body));
    assert.equal(response.status, 201);
    assert.deepEqual(await readFile(join(out, "raw.bin")), Buffer.from(body));
    await removeDir(out);
  });

  it("takes raw bodies and forms when given both sink and multipart", async () => {
    const out = await fresh();
    const handler = createUploadHandler({
      sink: () => createFileSink(join(out, "raw.bin")),
      multipart: {
        sink: (part) => createFileSink(join(out, safeFileName(part.filename!))),
      },
    });
    assert.equal(
      (await handler(post("raw bytes", "application/octet-stream"))).status,
      201,
    );
    assert.equal(
      (await handler(post(rawBody([filePart("a", "a.txt", "1")])))).status,
      201,
    );
    assert.deepEqual((await readdir(out)).sort(), ["a.txt", "raw.bin"]);
    await removeDir(out);
  });

  it("refuses a raw body with 415 when only multipart is set", async () => {
    const handler = createUploadHandler({
      multipart: { sink: () => new WritableStream() },
    });
    const response = await handler(post("x", "application/octet-stream"));
    assert.equal(response.status, 415);
    assert.match(await response.text(), /not multipart\/form-data/);
  });

  it("refuses a handler with neither sink nor multipart", () => {
    assert.throws(
      () => createUploadHandler({}),
      /Cannot create upload handler: give a sink/,
    );
    assert.throws(
      () =>
        createUploadHandler({
          multipart: { sink: () => new WritableStream(), maxFiles: -1 },
        }),
      /maxFiles must be a non-negative integer/,
    );
    // The parser's limits too, at creation: they were checked at each
    // form, which then failed with 500 (a number given as text, from the
    // environment).
    for (
      const [name, value] of [
        ["maxFileBytes", "10485760"],
        ["maxParts", 1.5],
        ["maxHeaderBytes", -1],
        ["maxTotalBytes", "10"],
        ["maxFieldBytes", NaN],
      ] as const
    ) {
      assert.throws(
        () =>
          createUploadHandler({
            multipart: { sink: () => new WritableStream(), [name]: value },
          }),
        new RegExp(`^\\w+Error: Cannot create upload handler: ${name} must be`),
        name,
      );
    }
  });

  describe("real clients through a server", () => {
    const big = randomBytes(3 * 1024 * 1024 + 5);
    const small = enc.encode("small file\r\n--not a boundary\r\n");
    before(async () => {
      await writeFile(join(dir, "big-src.bin"), big);
      await writeFile(join(dir, "small-src.txt"), small);
    });

    async function checkStored(out: string, answer: { files: StoredFile[] }) {
      for (const file of answer.files) {
        const stored = await readFile(join(out, file.storedName!));
        assert.equal(stored.length, file.bytes);
        assert.equal(b64sha(stored), file.sha256);
      }
    }

    it("curl -F stores files and fields byte-identical", async () => {
      const out = await fresh();
      await withServer(storing(out), async (server) => {
        const result = await deadline(
          run("curl", [
            "-sS",
            "--fail-with-body",
            "-F",
            "title=hello world",
            "-F",
            `big=@${join(dir, "big-src.bin")}`,
            "-F",
            `small=@${join(dir, "small-src.txt")};type=text/x-small`,
            server.url.href,
          ]),
          60_000,
          "curl",
        );
        assert.equal(result.code, 0, result.stderr + result.stdout);
        const answer = JSON.parse(result.stdout);
        assert.deepEqual(answer.fields, [
          { name: "title", value: "hello world" },
        ]);
        assert.deepEqual(
          answer.files.map((f: StoredFile) => [f.name, f.filename, f.bytes]),
          [["big", "big-src.bin", big.length], [
            "small",
            "small-src.txt",
            small.length,
          ]],
        );
        assert.equal(answer.files[0].sha256, b64sha(big));
        assert.equal(answer.files[1].contentType, "text/x-small");
        await checkStored(out, answer);
      });
      await removeDir(out);
    });

    it("Node's fetch with FormData (undici) stores files and fields", async () => {
      const out = await fresh();
      await withServer(storing(out), async (server) => {
        const script = `
          const bytes = new Uint8Array(300000).map((_, i) => (i * 13) & 255);
          const form = new FormData();
          form.append("field", "välue");
          form.append("file", new Blob([bytes], { type: "image/png" }), "пример.png");
          const response = await fetch(process.argv[1], { method: "POST", body: form });
          process.stdout.write(JSON.stringify({ status: response.status, body: await response.json() }));
        `;
        const result = await deadline(
          run("node", ["--input-type=module", "-e", script, server.url.href]),
          60_000,
          "node",
        );
        assert.equal(result.code, 0, result.stderr);
        const { status, body } = JSON.parse(result.stdout);
        assert.equal(status, 201);
        const expected = new Uint8Array(300000).map((_, i) => (i * 13) & 255);
        assert.deepEqual(body.fields, [{ name: "field", value: "välue" }]);
        assert.equal(body.files[0].filename, "пример.png");
        assert.equal(body.files[0].contentType, "image/png");
        assert.equal(body.files[0].sha256, b64sha(expected));
        await checkStored(out, body);
      });
      await removeDir(out);
    });

    it("the form-data package stores files and fields", async () => {
      const out = await fresh();
      await withServer(storing(out), async (server) => {
        const form = new FormDataPackage();
        form.append("title", "from form-data");
        form.append("big", Buffer.from(big), {
          filename: "big.bin",
          contentType: "application/octet-stream",
        });
        form.append("small", Buffer.from(small), { filename: "small.txt" });
        const response = await fetch(server.url, {
          method: "POST",
          headers: form.getHeaders(),
          body: new Uint8Array(form.getBuffer()),
        });
        assert.equal(response.status, 201, await response.clone().text());
        const answer = await response.json();
        assert.deepEqual(answer.fields, [
          { name: "title", value: "from form-data" },
        ]);
        assert.equal(answer.files[0].sha256, b64sha(big));
        assert.equal(answer.files[1].sha256, b64sha(small));
        await checkStored(out, answer);
      });
      await removeDir(out);
    });
  });
});

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
