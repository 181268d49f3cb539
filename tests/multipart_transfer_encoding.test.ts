// A multipart part's Content-Transfer-Encoding (RFC 2045, sections 6.7 and
// 6.8): base64 and quoted-printable bodies decoded as they stream, whatever
// the chunk boundaries, by MultipartDecoder, MultipartStream, parseMultipart
// and createUploadHandler's multipart mode (curl -F ";encoder=..." sends
// them; they were stored still encoded, the form answered 201); invalid
// encodings and unknown ones refused with a 400 naming the part, nothing left
// on disk; size limits counting decoded bytes, the total limit those sent.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Buffer } from "node:buffer";
import fc from "fast-check";
import {
  createUploadHandler,
  HttpError,
  MultipartDecoder,
  type MultipartDecoderOptions,
  MultipartStream,
  parseMultipart,
  safeFileName,
} from "../lib/http/mod.ts";
import { createFileSink, createHasher } from "../lib/runtime/fs.ts";
import {
  curlAvailable,
  deadline,
  makeTempDir,
  randomBytes,
  removeDir,
  runProcess,
  sha256Base64,
  splitAt,
  withServer,
} from "./_helpers.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const B = "sluice-cte-boundary";
const hasCurl = await curlAvailable();

function concat(pieces: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const piece of pieces) {
    out.set(piece, offset);
    offset += piece.length;
  }
  return out;
}

/** One part: its header lines (CR LF each) and its body as sent. */
interface RawPart {
  headers: string;
  body: string | Uint8Array;
}

function filePart(
  name: string,
  filename: string,
  encoding: string | undefined,
  body: string | Uint8Array,
): RawPart {
  return {
    headers:
      `Content-Disposition: form-data; name="${name}"; filename="${filename}"\r\n${
        encoding === undefined
          ? ""
          : `Content-Transfer-Encoding: ${encoding}\r\n`
      }`,
    body,
  };
}

function fieldPart(
  name: string,
  encoding: string | undefined,
  body: string,
): RawPart {
  return {
    headers: `Content-Disposition: form-data; name="${name}"\r\n${
      encoding === undefined ? "" : `Content-Transfer-Encoding: ${encoding}\r\n`
    }`,
    body,
  };
}

function form(parts: RawPart[]): Uint8Array<ArrayBuffer> {
  const pieces: Uint8Array[] = [];
  for (const part of parts) {
    pieces.push(enc.encode(`--${B}\r\n${part.headers}\r\n`));
    pieces.push(
      typeof part.body === "string" ? enc.encode(part.body) : part.body,
    );
    pieces.push(enc.encode("\r\n"));
  }
  pieces.push(enc.encode(`--${B}--\r\n`));
  return concat(pieces);
}

/** Base64 in lines of `width` digits, CR LF between them (as mail sends). */
function base64Lines(bytes: Uint8Array, width = 76): string {
  const text = Buffer.from(bytes).toString("base64");
  const lines: string[] = [];
  for (let i = 0; i < text.length; i += width) {
    lines.push(text.slice(i, i + width));
  }
  return lines.join("\r\n");
}

/**
 * Quoted-printable of any bytes: printable ASCII but `=` as itself, the
 * rest as `=XX` (lower case where `lower`), soft line breaks before 76.
 */
function quotedPrintable(bytes: Uint8Array, lower = false): string {
  let out = "";
  let line = 0;
  for (const byte of bytes) {
    const literal = byte > 0x20 && byte < 0x7f && byte !== 0x3d;
    const hex = byte.toString(16).padStart(2, "0");
    const piece = literal
      ? String.fromCharCode(byte)
      : `=${lower ? hex : hex.toUpperCase()}`;
    if (line + piece.length > 75) {
      out += "=\r\n";
      line = 0;
    }
    out += piece;
    line += piece.length;
  }
  return out;
}

/** Each part's name and body, from the push decoder given `chunks`. */
function decodeChunks(
  chunks: Uint8Array[],
  options: MultipartDecoderOptions = {},
): Array<[string, Uint8Array]> {
  const decoder = new MultipartDecoder(B, options);
  const out: Array<[string, Uint8Array]> = [];
  let data: Uint8Array[] = [];
  for (const chunk of chunks) {
    for (const event of decoder.decode(chunk)) {
      if (event.type === "part") {
        out.push([event.part.name, new Uint8Array(0)]);
        data = [];
      } else if (event.type === "data") {
        assert.ok(event.bytes.length > 0, "no empty data events");
        data.push(event.bytes.slice());
      } else {
        out[out.length - 1][1] = concat(data);
      }
    }
  }
  decoder.end();
  return out;
}

function rejects(fn: () => unknown, status: number, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof HttpError, String(error));
    assert.equal(error.status, status);
    assert.match(error.message, /^Cannot parse multipart body: /);
    assert.match(error.message, pattern);
    return true;
  });
}

// A text with what quoted-printable must get right: `=`, non-ASCII, line
// breaks of both kinds, and a line longer than 76 characters.
const TEXT = enc.encode(
  `caf\u00e9 = 1+1\r\nline two\n${"x".repeat(100)}\r\n\u20ac end`,
);

describe("MultipartDecoder Content-Transfer-Encoding", () => {
  it("MultipartDecoder decodes a base64 part split at every byte boundary", () => {
    const content = randomBytes(100);
    const body = form([
      filePart("f", "f.bin", "base64", base64Lines(content, 20)),
      fieldPart("after", undefined, "plain"),
    ]);
    for (let at = 0; at <= body.length; at++) {
      const parts = decodeChunks(splitAt(body, [at]));
      assert.deepEqual(parts[0], ["f", content], `split at ${at}`);
      assert.equal(dec.decode(parts[1][1]), "plain", `split at ${at}`);
    }
    const bytewise = decodeChunks(splitAt(body, [...body.keys()]));
    assert.deepEqual(bytewise[0], ["f", content], "1-byte chunks");
  });

  it("MultipartDecoder decodes every base64 padding and white space between digits", () => {
    const cases: Array<[string, string]> = [
      ["YQ==", "a"],
      ["YWI=", "ab"],
      ["YWJj", "abc"],
      ["Y W\tJ j\r\nZA\n=\r\n=", "abcd"],
      ["", ""],
      ["YWJjZA", "abcd"], // no padding at the end: as if it were there
      ["YWJjZGU", "abcde"],
    ];
    for (const [encoded, text] of cases) {
      const body = form([fieldPart("a", "base64", encoded)]);
      for (let at = 0; at <= body.length; at++) {
        const [[, bytes]] = decodeChunks(splitAt(body, [at]));
        assert.equal(dec.decode(bytes), text, `${encoded} split at ${at}`);
      }
    }
  });

  it("MultipartDecoder decodes a quoted-printable part split at every byte boundary", () => {
    // Hex of either case, soft line breaks after CR LF, a bare LF and
    // padding, trailing white space dropped before a line break and at the
    // end, a final `=` whose CR LF is the delimiter's.
    const encoded = "caf=C3=a9 =3D 1=\r\n+1  \t\r\nline two\t\n" +
      "soft=  \r\nbreak=\nend=E2=82=AC \t=";
    const decoded = "caf\u00e9 = 1+1\r\nline two\nsoftbreakend\u20ac \t";
    const body = form([
      filePart("f", "f.txt", "quoted-printable", encoded),
      fieldPart("after", undefined, "plain"),
    ]);
    for (let at = 0; at <= body.length; at++) {
      const parts = decodeChunks(splitAt(body, [at]));
      assert.equal(dec.decode(parts[0][1]), decoded, `split at ${at}`);
      assert.equal(dec.decode(parts[1][1]), "plain", `split at ${at}`);
    }
    const bytewise = decodeChunks(splitAt(body, [...body.keys()]));
    assert.equal(dec.decode(bytewise[0][1]), decoded, "1-byte chunks");
  });

  it("MultipartDecoder drops the white space that ends a quoted-printable body", () => {
    const body = form([fieldPart("a", "quoted-printable", "end \t ")]);
    for (let at = 0; at <= body.length; at++) {
      const [[, bytes]] = decodeChunks(splitAt(body, [at]));
      assert.equal(dec.decode(bytes), "end", `split at ${at}`);
    }
  });

  it("MultipartDecoder keeps a bare CR and the white space before it in quoted-printable", () => {
    const body = form([fieldPart("a", "quoted-printable", "a \rb \r")]);
    for (let at = 0; at <= body.length; at++) {
      const [[, bytes]] = decodeChunks(splitAt(body, [at]));
      assert.equal(dec.decode(bytes), "a \rb \r", `split at ${at}`);
    }
  });

  it("MultipartDecoder gives any split of base64 and quoted-printable bodies the same bytes", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.integer({ min: 1, max: 80 }),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 8 }),
        (content, width, lower, cuts) => {
          const body = form([
            filePart("b", "b.bin", "base64", base64Lines(content, width)),
            filePart(
              "q",
              "q.bin",
              "quoted-printable",
              quotedPrintable(content, lower),
            ),
          ]);
          const parts = decodeChunks(splitAt(body, cuts));
          assert.deepEqual(parts, [["b", content], ["q", content]]);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("MultipartDecoder reads 7bit, 8bit, binary and the encodings' names in any case", () => {
    const bytes = "aGk=";
    for (const encoding of ["7bit", "8BIT", "Binary"]) {
      const [[, body]] = decodeChunks([form([
        fieldPart("a", encoding, bytes),
      ])]);
      assert.equal(dec.decode(body), bytes, encoding);
    }
    for (const encoding of ["BASE64", "Base64 ", "base64\t"]) {
      const [[, body]] = decodeChunks([form([
        fieldPart("a", encoding, bytes),
      ])]);
      assert.equal(dec.decode(body), "hi", JSON.stringify(encoding));
    }
    const [[, qp]] = decodeChunks([form([
      fieldPart("a", "Quoted-Printable", "h=69"),
    ])]);
    assert.equal(dec.decode(qp), "hi");
  });

  it("MultipartDecoder keeps the Content-Transfer-Encoding header as sent", () => {
    const decoder = new MultipartDecoder(B);
    const events = decoder.decode(form([fieldPart("a", "Base64", "aGk=")]));
    decoder.end();
    assert.equal(events[0].type, "part");
    if (events[0].type !== "part") return;
    assert.equal(
      events[0].part.headers.get("content-transfer-encoding"),
      "Base64",
    );
    assert.deepEqual(
      Object.keys(events[0].part).sort(),
      ["contentType", "filename", "name"],
      "no new property on the part",
    );
  });

  const refusals: Array<[string, RawPart, RegExp]> = [
    [
      "a byte that is no base64",
      filePart("f", "f.bin", "base64", "YWJj!ZA=="),
      /part 2 \(field "f"\) is not valid base64: "!" \(0x21\) at byte 4 of its body is not a base64 digit$/,
    ],
    [
      "base64 digits after the padding",
      filePart("f", "f.bin", "base64", "YQ==YQ=="),
      /part 2 \(field "f"\) is not valid base64: "Y" \(0x59\) at byte 4 of its body follows its padding$/,
    ],
    [
      "base64 padding where none can be",
      filePart("f", "f.bin", "base64", "Y==="),
      /part 2 \(field "f"\) is not valid base64: "=" at byte 1 of its body is padding where none can be$/,
    ],
    [
      "base64 padding past the end of a group",
      filePart("f", "f.bin", "base64", "YWI=="),
      /part 2 \(field "f"\) is not valid base64: "=" at byte 4 of its body is padding where none can be$/,
    ],
    [
      "a base64 body that ends in a single digit of a group",
      filePart("f", "f.bin", "base64", "YWJjZ"),
      /part 2 \(field "f"\) is not valid base64: its body ends in a single digit of a group of 4$/,
    ],
    [
      "a quoted-printable escape that is no hex",
      filePart("f", "f.txt", "quoted-printable", "ab=4Gcd"),
      /part 2 \(field "f"\) is not valid quoted-printable: "=4" and "G" \(0x47\) at byte 4 of its body are no escape/,
    ],
    [
      "a quoted-printable `=` followed by text",
      filePart("f", "f.txt", "quoted-printable", "a = b"),
      /part 2 \(field "f"\) is not valid quoted-printable: "=" and 0x20|"=", spaces or tabs, and "b" \(0x62\) at byte 4/,
    ],
    [
      "a quoted-printable `=` and CR without LF",
      filePart("f", "f.txt", "quoted-printable", "a=\rb"),
      /part 2 \(field "f"\) is not valid quoted-printable: "=", CR and "b" \(0x62\) at byte 3 of its body/,
    ],
    [
      "a quoted-printable body that ends inside an escape",
      filePart("f", "f.txt", "quoted-printable", "abc=4"),
      /part 2 \(field "f"\) is not valid quoted-printable: its body ends inside the escape "=4"$/,
    ],
    [
      "a quoted-printable run of white space over 998 bytes",
      fieldPart("note", "quoted-printable", `a${" ".repeat(999)}b`),
      /part 2 \(field "note"\) is not valid quoted-printable: a run of spaces and tabs at byte 999 of its body exceeds 998 bytes/,
    ],
    [
      "an unknown Content-Transfer-Encoding",
      filePart("f", "f.uu", "x-uuencode", "begin 644 f\r\nend"),
      /part 2 \(field "f"\) has Content-Transfer-Encoding "x-uuencode", not one of 7bit, 8bit, binary, base64 and quoted-printable$/,
    ],
  ];

  for (const [what, part, pattern] of refusals) {
    it(`MultipartDecoder refuses ${what} with 400 naming the part, however split`, () => {
      const body = form([fieldPart("first", undefined, "ok"), part]);
      for (let at = 0; at <= body.length; at += 7) {
        rejects(() => decodeChunks(splitAt(body, [at])), 400, pattern);
      }
      rejects(
        () => decodeChunks(splitAt(body, [...body.keys()])),
        400,
        pattern,
      );
    });
  }

  it("MultipartDecoder counts a base64 file's decoded bytes against maxFileBytes", () => {
    const content = randomBytes(300);
    const encoded = base64Lines(content);
    assert.ok(enc.encode(encoded).length > 400);
    // Sent, 400+ bytes; decoded, exactly the limit.
    const [[, bytes]] = decodeChunks(
      [form([filePart("f", "f.bin", "base64", encoded)])],
      { maxFileBytes: 300 },
    );
    assert.deepEqual(bytes, content);
    rejects(
      () =>
        decodeChunks([form([filePart("f", "f.bin", "base64", encoded)])], {
          maxFileBytes: 299,
        }),
      413,
      /part 1 \(file\) exceeds maxFileBytes 299$/,
    );
  });

  it("MultipartDecoder counts a quoted-printable field's decoded bytes against maxFieldBytes", () => {
    const value = "=C3=A9".repeat(50); // 300 bytes sent, 100 decoded
    const [[, bytes]] = decodeChunks(
      [form([fieldPart("a", "quoted-printable", value)])],
      { maxFieldBytes: 100 },
    );
    assert.equal(dec.decode(bytes), "\u00e9".repeat(50));
    rejects(
      () =>
        decodeChunks([form([fieldPart("a", "quoted-printable", value)])], {
          maxFieldBytes: 99,
        }),
      413,
      /part 1 \(field\) exceeds maxFieldBytes 99$/,
    );
  });

  it("MultipartDecoder counts an encoded body's bytes as sent against maxTotalBytes", () => {
    const content = randomBytes(300);
    const body = form([filePart("f", "f.bin", "base64", base64Lines(content))]);
    assert.deepEqual(
      decodeChunks([body], { maxTotalBytes: body.length })[0][1],
      content,
    );
    rejects(
      () => decodeChunks([body], { maxTotalBytes: body.length - 1 }),
      413,
      /exceeds maxTotalBytes/,
    );
  });

  it("parseMultipart and MultipartStream give decoded bytes", async () => {
    const content = randomBytes(5000);
    const body = form([
      fieldPart("note", "base64", "aGVsbG8="),
      filePart("f", "f.bin", "base64", base64Lines(content)),
      filePart("t", "t.txt", "quoted-printable", quotedPrintable(TEXT)),
    ]);
    const request = new Request("http://localhost/", {
      method: "POST",
      body,
      headers: { "content-type": `multipart/form-data; boundary=${B}` },
    });
    const seen: Array<[string, Uint8Array]> = [];
    for await (const part of parseMultipart(request)) {
      seen.push([part.name, await part.bytes()]);
    }
    assert.deepEqual(seen, [
      ["note", enc.encode("hello")],
      ["f", content],
      ["t", TEXT],
    ]);
    const streamed: Array<[string, string]> = [];
    const parts = ReadableStream.from(splitAt(body, [10, 200, 3000, 7000]))
      .pipeThrough(new MultipartStream(B));
    for await (const part of parts) {
      streamed.push([part.name, sha256Base64(await part.bytes())]);
    }
    assert.deepEqual(streamed, [
      ["note", sha256Base64(enc.encode("hello"))],
      ["f", sha256Base64(content)],
      ["t", sha256Base64(TEXT)],
    ]);
  });

  it("MultipartStream errors the part's body with the 400 of invalid base64", async () => {
    const body = form([filePart("f", "f.bin", "base64", "YWJj*")]);
    // The part comes in the first chunk, the bad byte in the second.
    const at = dec.decode(body).indexOf("*");
    const parts = ReadableStream.from(splitAt(body, [at])).pipeThrough(
      new MultipartStream(B),
    );
    const reader = parts.getReader();
    const { value: part } = await reader.read();
    await assert.rejects(part!.bytes(), (error: unknown) => {
      assert.ok(error instanceof HttpError);
      assert.equal(error.status, 400);
      assert.match(error.message, /part 1 \(field "f"\) is not valid base64/);
      return true;
    });
    await assert.rejects(reader.read(), /is not valid base64/);
  });
});

describe("createUploadHandler multipart mode with Content-Transfer-Encoding", () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir("upload-cte-");
  });
  after(async () => {
    await removeDir(dir);
  });

  /** A handler storing each file part in a directory of its own. */
  async function storing(
    multipart: { maxFileBytes?: number } = {},
    options: { maxBytes?: number } = {},
  ) {
    const out = await mkdtemp(join(dir, "case-"));
    /** The files whose sinks were opened. */
    const opened: string[] = [];
    const handler = createUploadHandler({
      hasher: createHasher,
      ...options,
      multipart: {
        sink: (part) => {
          const storedName = safeFileName(part.filename!);
          opened.push(storedName);
          return {
            writable: createFileSink(join(out, storedName)),
            storedName,
          };
        },
        ...multipart,
      },
    });
    return { out, handler, opened };
  }

  function post(body: Uint8Array<ArrayBuffer>): Request {
    return new Request("http://localhost/upload", {
      method: "POST",
      body,
      headers: { "content-type": `multipart/form-data; boundary=${B}` },
    });
  }

  /** A request whose body comes in chunks of `size` bytes. */
  function chunked(body: Uint8Array, size: number): Request {
    const chunks = splitAt(
      body,
      Array.from({ length: Math.ceil(body.length / size) }, (_, i) => i * size),
    );
    return new Request("http://localhost/upload", {
      method: "POST",
      body: ReadableStream.from(chunks),
      headers: { "content-type": `multipart/form-data; boundary=${B}` },
      duplex: "half",
    } as RequestInit);
  }

  it(
    "createUploadHandler stores curl's base64 and quoted-printable parts decoded",
    { skip: !hasCurl && "needs curl" },
    async () => {
      const csv = enc.encode("a,b\n1,2\n");
      const binary = randomBytes(70_000);
      await writeFile(join(dir, "cte.csv"), csv);
      await writeFile(join(dir, "cte.bin"), binary);
      await writeFile(join(dir, "cte.txt"), TEXT);
      const { out, handler } = await storing();
      await withServer(handler, async (server) => {
        const result = await deadline(
          runProcess("curl", [
            "-sS",
            "--fail-with-body",
            "-F",
            "csv=@cte.csv;encoder=base64;filename=b64.csv",
            "-F",
            "qpcsv=@cte.csv;encoder=quoted-printable;filename=qp.csv",
            "-F",
            "bin=@cte.bin;encoder=base64",
            "-F",
            "text=@cte.txt;encoder=quoted-printable",
            "-F",
            "note=hello;encoder=base64",
            "-F",
            "qpnote=caf\u00e9 = ok;encoder=quoted-printable",
            server.url.href,
          ], { cwd: dir }),
          60_000,
          "curl",
        );
        assert.equal(result.code, 0, result.stderr + result.stdout);
        const answer = JSON.parse(result.stdout);
        assert.deepEqual(answer.fields, [
          { name: "note", value: "hello" },
          { name: "qpnote", value: "caf\u00e9 = ok" },
        ]);
        const expected: Array<[string, Uint8Array]> = [
          ["b64.csv", csv],
          ["qp.csv", csv],
          ["cte.bin", binary],
          ["cte.txt", TEXT],
        ];
        assert.deepEqual(
          answer.files.map((
            file: { storedName: string; bytes: number; sha256: string },
          ) => [file.storedName, file.bytes, file.sha256]),
          expected.map(([name, bytes]) => [
            name,
            bytes.length,
            sha256Base64(bytes),
          ]),
        );
        for (const [name, bytes] of expected) {
          assert.deepEqual(
            new Uint8Array(await readFile(join(out, name))),
            bytes,
            name,
          );
        }
      });
      await removeDir(out);
    },
  );

  /**
   * What, the bad part, the error, and whether its sink opens first (its
   * bytes before the error more than the parser runs ahead, 64 KiB).
   */
  const formRefusals: Array<[string, RawPart, RegExp, boolean]> = [
    [
      "invalid base64",
      filePart("f", "f.bin", "base64", `${base64Lines(randomBytes(300_000))}!`),
      /part 2 \(field "f"\) is not valid base64: "!" \(0x21\)/,
      true,
    ],
    [
      "a malformed quoted-printable escape",
      filePart("f", "f.txt", "quoted-printable", `${"a".repeat(300_000)}=ZZ`),
      /part 2 \(field "f"\) is not valid quoted-printable: "=" and "Z"/,
      true,
    ],
    [
      "an unknown Content-Transfer-Encoding",
      filePart("f", "f.uu", "x-uuencode", "begin 644 f\r\nend"),
      /part 2 \(field "f"\) has Content-Transfer-Encoding "x-uuencode"/,
      false,
    ],
    [
      "invalid base64 in a field",
      fieldPart("note", "base64", "aGVsbG8=!"),
      /part 2 \(field "note"\) is not valid base64/,
      false,
    ],
  ];

  for (const [what, part, pattern, opensSink] of formRefusals) {
    it(`createUploadHandler refuses ${what} with 400 naming the part, leaving no file`, async () => {
      const { out, handler, opened } = await storing();
      const body = form([
        filePart("first", "first.bin", "base64", base64Lines(randomBytes(99))),
        part,
      ]);
      // In chunks: the bad part's sink is open when its error comes.
      const response = await handler(chunked(body, 16 * 1024));
      const text = await response.text();
      assert.equal(response.status, 400, text);
      assert.match(text, /^Cannot parse multipart body: /);
      assert.match(text, pattern);
      if (opensSink) assert.equal(opened.length, 2, `sinks: ${opened}`);
      assert.deepEqual(await readdir(out), [], "nothing left on disk");
      await removeDir(out);
    });
  }

  it("createUploadHandler takes a base64 file of maxFileBytes decoded though more were sent", async () => {
    const content = randomBytes(3000);
    const encoded = base64Lines(content);
    assert.ok(encoded.length > 4000);
    const { out, handler } = await storing({ maxFileBytes: 3000 });
    const response = await handler(
      post(form([filePart("f", "f.bin", "base64", encoded)])),
    );
    const text = await response.text();
    assert.equal(response.status, 201, text);
    const answer = JSON.parse(text);
    assert.equal(answer.files[0].bytes, 3000);
    assert.equal(answer.files[0].sha256, sha256Base64(content));
    assert.deepEqual(
      new Uint8Array(await readFile(join(out, "f.bin"))),
      content,
    );
    await removeDir(out);
  });

  it("createUploadHandler refuses a base64 file one decoded byte over maxFileBytes with 413, leaving no file", async () => {
    const content = randomBytes(3001);
    const { out, handler } = await storing({ maxFileBytes: 3000 });
    const response = await handler(
      post(form([filePart("f", "f.bin", "base64", base64Lines(content))])),
    );
    const text = await response.text();
    assert.equal(response.status, 413, text);
    assert.match(text, /maxFileBytes 3000/);
    assert.deepEqual(await readdir(out), [], "nothing left on disk");
    await removeDir(out);
  });

  it("createUploadHandler counts the bytes sent, not those decoded, against maxBytes", async () => {
    const content = randomBytes(3000);
    const body = form([filePart("f", "f.bin", "base64", base64Lines(content))]);
    const { out, handler } = await storing({}, { maxBytes: body.length - 1 });
    const response = await handler(post(body));
    const text = await response.text();
    assert.equal(response.status, 413, text);
    assert.match(text, new RegExp(`exceeds maxBytes ${body.length - 1}$`));
    assert.deepEqual(await readdir(out), [], "nothing left on disk");
    await removeDir(out);
  });
});
