// encodeMultipart: round trips through parseMultipart and through the
// runtime's own request.formData(), Content-Length, escaping, streaming
// and cancellation.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  encodeMultipart,
  type MultipartField,
  parseMultipart,
} from "../lib/http/mod.ts";
import { withServer } from "./_helpers.ts";

const enc = new TextEncoder();

function request(encoded: ReturnType<typeof encodeMultipart>): Request {
  return new Request("http://localhost/", {
    method: "POST",
    body: encoded.body,
    headers: { "content-type": encoded.contentType },
    duplex: "half",
  } as RequestInit);
}

async function bytesOf(stream: ReadableStream<Uint8Array>): Promise<number> {
  let n = 0;
  for await (const chunk of stream) n += chunk.byteLength;
  return n;
}

function streamOf(
  bytes: Uint8Array,
  chunk = 1000,
): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + chunk));
      offset += chunk;
    },
  });
}

const data = new Uint8Array(150_000).map((_, i) => (i * 31) & 255);

function fields(): MultipartField[] {
  return [
    { name: "title", value: "héllo\r\nworld" },
    { name: 'we"ird\nname', value: "1" },
    { name: "blob", value: new Blob([data], { type: "image/png" }) },
    {
      name: "file",
      value: new File([data.subarray(0, 10)], 'ä "q".txt', {
        type: "application/x-note",
      }),
    },
    { name: "bytes", value: data.subarray(0, 5), filename: "b.bin" },
    {
      name: "stream",
      value: streamOf(data),
      filename: "s.bin",
      size: data.length,
    },
    { name: "empty", value: "" },
  ];
}

describe("encodeMultipart", () => {
  it("round-trips through parseMultipart", async () => {
    const encoded = encodeMultipart(fields());
    const parts: Array<[string, string | undefined, string, number]> = [];
    for await (const part of parseMultipart(request(encoded))) {
      parts.push([
        part.name,
        part.filename,
        part.contentType,
        (await part.bytes()).length,
      ]);
    }
    assert.deepEqual(parts, [
      ["title", undefined, "text/plain", 13],
      // A lone LF made CR LF, as browsers do.
      ["we%22ird%0D%0Aname", undefined, "text/plain", 1],
      ["blob", "blob", "image/png", data.length],
      ["file", "ä %22q%22.txt", "application/x-note", 10],
      ["bytes", "b.bin", "application/octet-stream", 5],
      ["stream", "s.bin", "application/octet-stream", data.length],
      ["empty", undefined, "text/plain", 0],
    ]);
  });

  it("round-trips through the runtime's request.formData()", async () => {
    const form = await request(encodeMultipart(fields())).formData();
    assert.equal(form.get("title"), "héllo\r\nworld");
    const blob = form.get("blob") as File;
    assert.equal(blob.size, data.length);
    assert.deepEqual(new Uint8Array(await blob.arrayBuffer()), data);
    const stream = form.get("stream") as File;
    assert.equal(stream.name, "s.bin");
    assert.deepEqual(new Uint8Array(await stream.arrayBuffer()), data);
    assert.equal((form.get("file") as File).size, 10);
    assert.equal(form.get("empty"), "");
  });

  it("encodes a FormData as the runtime would read it back", async () => {
    const source = new FormData();
    source.append("a", "1");
    source.append("a", "2");
    source.append("f", new File(["xyz"], "f.txt", { type: "text/x" }));
    const form = await request(encodeMultipart(source)).formData();
    assert.deepEqual(form.getAll("a"), ["1", "2"]);
    const file = form.get("f") as File;
    assert.equal(file.name, "f.txt");
    assert.equal(await file.text(), "xyz");
  });

  it("gives the exact Content-Length when every size is known", async () => {
    const encoded = encodeMultipart(fields());
    assert.ok(encoded.contentLength !== undefined);
    assert.equal(await bytesOf(encoded.body), encoded.contentLength);
    const empty = encodeMultipart([]);
    assert.equal(await bytesOf(empty.body), empty.contentLength);
  });

  it("gives no Content-Length for a stream of unknown size", async () => {
    const encoded = encodeMultipart([{ name: "s", value: streamOf(data) }]);
    assert.equal(encoded.contentLength, undefined);
    const sizes: number[] = [];
    for await (const part of parseMultipart(request(encoded))) {
      sizes.push((await part.bytes()).length);
    }
    assert.deepEqual(sizes, [data.length]);
  });

  it("errors the body when a stream's length differs from its size", async () => {
    for (const size of [data.length - 1, data.length + 1]) {
      const encoded = encodeMultipart([
        { name: "s", value: streamOf(data), size },
      ]);
      await assert.rejects(
        bytesOf(encoded.body),
        new RegExp(
          `Cannot encode multipart body: part "s" gave .*size ${size}`,
        ),
      );
    }
  });

  it("reads a stream only as the body is read", async () => {
    let pulls = 0;
    const source = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulls++;
        if (pulls > 1000) return controller.close();
        controller.enqueue(new Uint8Array(1024));
      },
    }, { highWaterMark: 0 });
    const { body } = encodeMultipart([{ name: "s", value: source }]);
    const reader = body.getReader();
    await reader.read();
    await reader.read();
    assert.ok(pulls <= 3, `pulled ${pulls} times`);
    await reader.cancel("done");
  });

  it("cancels the stream values when the body is cancelled", async () => {
    const cancelled: unknown[] = [];
    const make = () =>
      new ReadableStream<Uint8Array>({
        pull(controller) {
          controller.enqueue(new Uint8Array(10));
        },
        cancel(reason) {
          cancelled.push(reason);
        },
      });
    const { body } = encodeMultipart([
      { name: "a", value: make() },
      { name: "b", value: make() },
    ]);
    const reader = body.getReader();
    await reader.read();
    await reader.read();
    await reader.cancel("stop");
    assert.deepEqual(cancelled, ["stop", "stop"]);
  });

  it("rejects an invalid boundary and quotes one that is not a token", () => {
    assert.throws(
      () => encodeMultipart([], { boundary: "x".repeat(71) }),
      /Cannot encode multipart body: boundary/,
    );
    assert.equal(
      encodeMultipart([], { boundary: "a b" }).contentType,
      'multipart/form-data; boundary="a b"',
    );
  });

  it("refuses a value of bytes or text that holds the caller's boundary", () => {
    for (
      const value of [
        "a\r\n--xyz",
        "a\r\n--xyz--",
        enc.encode("\r\n--xyzzy"),
        // At the start, after the CR LF that ends the part's head.
        "--xyz",
      ]
    ) {
      assert.throws(
        () =>
          encodeMultipart([{ name: "ok", value: "1" }, { name: "v", value }], {
            boundary: "xyz",
          }),
        (error) =>
          error instanceof RangeError &&
          error.message ===
            'Cannot encode multipart body: the value of part "v" holds the boundary "xyz"; choose another (or leave it to encodeMultipart)',
      );
    }
    // Pieces of it are data.
    const encoded = encodeMultipart(
      [{ name: "v", value: "\r\n--xy\r\n-xyz" }],
      {
        boundary: "xyz",
      },
    );
    assert.equal(encoded.contentType, "multipart/form-data; boundary=xyz");
  });

  it("errors the body where a stream or Blob value holds the caller's boundary, and cancels the rest", async () => {
    const cancelled: unknown[] = [];
    const later = new ReadableStream<Uint8Array>({
      cancel(reason) {
        cancelled.push(reason);
      },
    });
    // The delimiter split across the stream's chunks.
    const { body } = encodeMultipart([
      {
        name: "s",
        value: ReadableStream.from(
          ["ab\r", "\n-", "-xy", "z"].map((t) => enc.encode(t)),
        ),
      },
      { name: "later", value: later },
    ], { boundary: "xyz" });
    await assert.rejects(
      bytesOf(body),
      (error) =>
        error instanceof RangeError &&
        /part "s" holds the boundary "xyz"/.test(error.message),
    );
    assert.equal(cancelled.length, 1);
    assert.ok(cancelled[0] instanceof RangeError);
    const blob = encodeMultipart([
      { name: "b", value: new Blob(["--xyz and more"]) },
    ], { boundary: "xyz" });
    await assert.rejects(bytesOf(blob.body), /part "b" holds the boundary/);
    // The default boundary is not searched for: 128 random bits.
    const random = encodeMultipart([{ name: "v", value: "\r\n--xyz" }]);
    assert.ok((await bytesOf(random.body)) > 0);
  });

  it("refuses a content type that is not printable ASCII, and a name that holds NUL", () => {
    for (const contentType of ["text/plain\r\nX: 1", "a/b\0", "text/é"]) {
      assert.throws(
        () => encodeMultipart([{ name: "f", value: "1", contentType }]),
        (error) =>
          error instanceof TypeError &&
          /^Cannot encode multipart body: the content type of part "f" is not printable ASCII: /
            .test(error.message),
      );
    }
    assert.throws(
      () => encodeMultipart([{ name: "a\0b", value: "1" }]),
      /^TypeError: Cannot encode multipart body: the name of part "a\\u0000b" holds NUL$/,
    );
    assert.throws(
      () => encodeMultipart([{ name: "f", value: "1", filename: "x\0.txt" }]),
      /the file name of part "f" holds NUL/,
    );
  });

  it("sends a content type trimmed, and none for an empty one", async () => {
    const encoded = encodeMultipart([
      { name: "a", value: "1", contentType: " text/csv " },
      { name: "b", value: "2", contentType: "" },
      { name: "c", value: "3", filename: "c.bin", contentType: "  " },
    ]);
    const types = [];
    for await (const part of parseMultipart(request(encoded))) {
      types.push(part.contentType);
      await part.body.cancel();
    }
    assert.deepEqual(types, [
      "text/csv",
      "text/plain",
      "application/octet-stream",
    ]);
  });

  it("posts to a server that reads it with request.formData()", async () => {
    const handler = async (req: Request) => {
      const form = await req.formData();
      const file = form.get("file") as File;
      return Response.json({
        title: form.get("title"),
        name: file.name,
        size: file.size,
      });
    };
    await withServer(handler, async (server) => {
      const { body, contentType } = encodeMultipart([
        { name: "title", value: "t" },
        { name: "file", value: streamOf(data), filename: "d.bin" },
      ]);
      const response = await fetch(server.url, {
        method: "POST",
        body,
        headers: { "content-type": contentType },
        duplex: "half",
      } as RequestInit);
      assert.deepEqual(await response.json(), {
        title: "t",
        name: "d.bin",
        size: data.length,
      });
    });
  });

  it("encodes a FormData as the runtime's own encoder does: a lone CR or LF made CR LF in names and text values, not in file names or files (names and values differed from what the same FormData sent by fetch gave a server)", async () => {
    const form = new FormData();
    form.append("a\nb", "line1\nline2\rend\r\n");
    form.append("c\rd\r\ne", "");
    form.append("f", new File(["x\ny\r"], "n\na\rme.txt"));
    const entries = async (request: Request) =>
      await Promise.all(
        [...await request.formData()].map(async ([name, value]) =>
          typeof value === "string"
            ? [name, value]
            : [name, value.name, await value.text()]
        ),
      );
    const ours = await entries(request(encodeMultipart(form)));
    const native = await entries(
      new Request("http://127.0.0.1/", { method: "POST", body: form }),
    );
    assert.deepEqual(ours, native);
    assert.deepEqual(ours, [
      ["a%0D%0Ab", "line1\r\nline2\r\nend\r\n"],
      ["c%0D%0Ad%0D%0Ae", ""],
      ["f", "n%0Aa%0Dme.txt", "x\ny\r"],
    ]);
  });

  it('errors the body naming the part whose stream gave text, not bytes (it failed deep in fetch, or as "chunk.subarray is not a function")', async () => {
    for (const boundary of [undefined, "my-boundary"]) {
      const encoded = encodeMultipart([
        { name: "f", value: ReadableStream.from(["hello"]) as never },
      ], { boundary });
      await assert.rejects(
        new Response(encoded.body).arrayBuffer(),
        {
          name: "TypeError",
          message:
            'Cannot encode multipart body: the stream of part "f" gave a chunk of type string, not bytes (encode text with TextEncoderStream)',
        },
      );
    }
    // Other binary chunks are bytes (Bun's fetch took an ArrayBuffer).
    const binary = encodeMultipart([{
      name: "f",
      value: ReadableStream.from<unknown>([
        new TextEncoder().encode("he").buffer,
        new DataView(new TextEncoder().encode("llo").buffer),
      ]) as ReadableStream<Uint8Array>,
      filename: "f.txt",
      size: 5,
    }]);
    const form = await new Response(binary.body, {
      headers: { "content-type": binary.contentType },
    }).formData();
    assert.equal(await (form.get("f") as File).text(), "hello");
  });

  it("round-trips any fields (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            // Backslashes are sent as is (as browsers do) and read so.
            name: fc.string({ maxLength: 10 }),
            value: fc.oneof(
              fc.string({ maxLength: 50 }),
              fc.uint8Array({ maxLength: 300 }),
            ),
            filename: fc.option(
              fc.string({ maxLength: 10 }),
              { nil: undefined },
            ),
          }),
          { maxLength: 6 },
        ),
        async (list) => {
          const encoded = encodeMultipart(list.map((f) => ({ ...f })));
          const got = [];
          for await (const part of parseMultipart(request(encoded))) {
            got.push([part.name, part.filename, [...await part.bytes()]]);
          }
          const escape = (s: string) =>
            s.replace(/\r/g, "%0D").replace(/\n/g, "%0A").replace(/"/g, "%22");
          // A name's lone CR or LF is made CR LF first, as browsers do.
          const crlf = (s: string) => s.replace(/\r(?!\n)|(?<!\r)\n/g, "\r\n");
          assert.deepEqual(
            got,
            list.map((f) => [
              escape(crlf(f.name)),
              f.filename === undefined ? undefined : escape(f.filename),
              [
                ...(typeof f.value === "string"
                  ? enc.encode(f.value)
                  : f.value),
              ],
            ]),
          );
        },
      ),
      { numRuns: 100 },
    );
  });
});
