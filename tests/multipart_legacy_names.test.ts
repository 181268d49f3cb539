// Part names and file names from a form on a legacy page: Chromium sends a
// form on a windows-1252 page in the page's encoding (`café.txt` as the
// bytes `caf\xE9.txt`, `_charset_` as "windows-1252"). They were decoded as
// UTF-8 with U+FFFD for each byte that is no UTF-8, so `café.txt` and
// `cafè.txt` read alike and, stored under their names, one file replaced the
// other. Valid UTF-8 names (a UTF-8 page's) stay as they were. Also the
// limit a form over createUploadHandler's maxBytes is refused with: it named
// multipart.maxTotalBytes, which the user never set.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile, unlink } from "node:fs/promises";
import { join } from "node:path";
import {
  createUploadHandler,
  MultipartDecoder,
  type MultipartPartInfo,
  parseMultipart,
  safeFileName,
} from "../lib/http/mod.ts";
import { createFileSink, createHasher } from "../lib/runtime/fs.ts";
import { makeTempDir, removeDir } from "./_helpers.ts";
import { field, file, formBody, utf8Bytes } from "./_byte_forms.ts";

const B = "----WebKitFormBoundaryvgsugOFzYUJs6QLB";

/** A multipart body with boundary B from byte-string part texts. */
function body(parts: string[]): Uint8Array<ArrayBuffer> {
  return formBody(B, parts);
}

/**
 * The body Chromium sends for a form on a page served as windows-1252 with
 * a text input holding "café 漢" and the files café.txt, cafè.txt and 漢.txt
 * (what it cannot encode it writes as a character reference).
 */
const CHROMIUM_WINDOWS_1252 = body([
  field("_charset_", "windows-1252"),
  field("x", "caf\xE9 &#28450;"),
  file("f", "caf\xE9.txt", "1"),
  file("f", "caf\xE8.txt", "2"),
  file("f", "&#28450;.txt", "3"),
]);

function post(
  bytes: Uint8Array<ArrayBuffer>,
  headers: Record<string, string> = {},
): Request {
  return new Request("http://localhost/upload", {
    method: "POST",
    body: bytes,
    headers: {
      "content-type": `multipart/form-data; boundary=${B}`,
      ...headers,
    },
  });
}

/** The name and file name of each part the push decoder finds. */
function heads(chunks: Uint8Array[]): [string, string | undefined][] {
  const decoder = new MultipartDecoder(B);
  const found: MultipartPartInfo[] = [];
  for (const chunk of chunks) {
    for (const event of decoder.decode(chunk)) {
      if (event.type === "part") found.push(event.part);
    }
  }
  decoder.end();
  return found.map((part) => [part.name, part.filename]);
}

describe("multipart names from a windows-1252 page", () => {
  it("parseMultipart reads caf\\xE9.txt and caf\\xE8.txt as café.txt and cafè.txt", async () => {
    const parts: [string, string | undefined, Uint8Array][] = [];
    for await (const part of parseMultipart(post(CHROMIUM_WINDOWS_1252))) {
      parts.push([part.name, part.filename, await part.bytes()]);
    }
    assert.deepEqual(parts.map(([name, filename]) => [name, filename]), [
      ["_charset_", undefined],
      ["x", undefined],
      ["f", "café.txt"],
      ["f", "cafè.txt"],
      ["f", "&#28450;.txt"],
    ]);
    // The values are the bytes as sent, in the encoding _charset_ names.
    assert.deepEqual(
      parts.map(([, , bytes]) => new TextDecoder("windows-1252").decode(bytes)),
      ["windows-1252", "café &#28450;", "1", "2", "3"],
    );
  });

  it("MultipartDecoder reads a windows-1252 field name, at every split of the body", () => {
    const bytes = body([field("r\xE9sum\xE9", "1"), field("na\xEFve", "2")]);
    const expected = [["résumé", undefined], ["naïve", undefined]];
    assert.deepEqual(heads([bytes]), expected);
    assert.deepEqual(
      heads([...bytes].map((byte) => Uint8Array.of(byte))),
      expected,
    );
    for (let cut = 0; cut <= bytes.length; cut++) {
      assert.deepEqual(
        heads([bytes.subarray(0, cut), bytes.subarray(cut)]),
        expected,
        `split at ${cut}`,
      );
    }
  });

  it("MultipartDecoder maps 0x80-0x9F through windows-1252's table, each byte to a character of its own", () => {
    // 0x80 €, 0x93 “, 0x9F Ÿ; 0x81 and 0x9D, unassigned, stay C1 controls.
    assert.deepEqual(
      heads([body([file("\x80", "\x93a\x94 \x81\x9D\x9F.txt", "x")])]),
      [["€", "“a” \u0081\u009DŸ.txt"]],
    );
    // Bytes that start UTF-8 but do not finish it: the whole name is read
    // as windows-1252 (C3 28 is not "é(").
    assert.deepEqual(
      heads([body([file("f", "\xC3(\xE9.txt", "x")])]),
      [["f", "Ã(é.txt"]],
    );
  });

  it("MultipartDecoder keeps valid UTF-8 names, also those whose bytes are windows-1252 text", () => {
    const names = ["é", "café.txt", "€ rates.txt", "漢字.txt", "\uFEFFbom.txt"];
    assert.deepEqual(
      heads([
        body(names.map((name) => file(utf8Bytes(name), utf8Bytes(name), "x"))),
      ]),
      names.map((name) => [name, name]),
    );
  });

  it("MultipartDecoder lets filename* in UTF-8 win over a windows-1252 filename", () => {
    assert.deepEqual(
      heads([
        body([
          `Content-Disposition: form-data; name="f"; filename="caf\xE9.txt"; filename*=UTF-8''caf%C3%A8.txt\r\n\r\nx`,
        ]),
      ]),
      [["f", "cafè.txt"]],
    );
  });

  describe("createUploadHandler with the docs' safeFileName sink", () => {
    let dir: string;
    before(async () => {
      dir = await makeTempDir("legacy-names-");
    });
    after(async () => {
      await removeDir(dir);
    });

    it("stores café.txt and cafè.txt as two files", async () => {
      const handler = createUploadHandler({
        hasher: createHasher,
        multipart: {
          sink: (part) => {
            const storedName = safeFileName(part.filename!);
            const path = join(dir, storedName);
            return {
              writable: createFileSink(path),
              storedName,
              remove: () => unlink(path),
            };
          },
        },
      });
      const response = await handler(post(CHROMIUM_WINDOWS_1252));
      assert.equal(response.status, 201, await response.clone().text());
      const { files } = await response.json() as {
        files: { filename: string; storedName: string; bytes: number }[];
      };
      assert.deepEqual(
        files.map(({ filename, storedName, bytes }) => [
          filename,
          storedName,
          bytes,
        ]),
        [
          ["café.txt", "café.txt", 1],
          ["cafè.txt", "cafè.txt", 1],
          ["&#28450;.txt", "&#28450;.txt", 1],
        ],
      );
      const stored: [string, string][] = [];
      for (const name of (await readdir(dir)).sort()) {
        stored.push([name, await readFile(join(dir, name), "utf8")]);
      }
      assert.deepEqual(stored, [
        ["&#28450;.txt", "3"],
        ["cafè.txt", "2"],
        ["café.txt", "1"],
      ]);
    });
  });
});

describe("createUploadHandler names the limit a form is over", () => {
  const big = body([file("f", "b.bin", "x".repeat(6000))]);
  const handler = (multipart: { maxTotalBytes?: number } = {}) =>
    createUploadHandler({
      maxBytes: 5000,
      multipart: { sink: () => new WritableStream(), ...multipart },
    });

  /** `big` in chunks of 1000 bytes, with no Content-Length. */
  function streamed(): Request {
    return new Request("http://localhost/upload", {
      method: "POST",
      body: ReadableStream.from(
        Array.from(
          { length: Math.ceil(big.length / 1000) },
          (_, i) => big.slice(i * 1000, (i + 1) * 1000),
        ),
      ),
      headers: { "content-type": `multipart/form-data; boundary=${B}` },
      duplex: "half",
    } as RequestInit);
  }

  it("names maxBytes for a Content-Length over it when maxTotalBytes is not set", async () => {
    const response = await handler()(
      post(big, { "content-length": String(big.length) }),
    );
    assert.equal(response.status, 413);
    assert.equal(
      await response.text(),
      `Cannot accept body: Content-Length ${big.length} exceeds maxBytes 5000`,
    );
  });

  it("names maxBytes for a body without a Content-Length past it when maxTotalBytes is not set", async () => {
    const response = await handler()(streamed());
    assert.equal(response.status, 413);
    assert.equal(
      await response.text(),
      "Cannot parse multipart body: body of 6000+ bytes exceeds maxBytes 5000",
    );
  });

  it("names maxTotalBytes when it was set", async () => {
    const withLength = await handler({ maxTotalBytes: 4000 })(
      post(big, { "content-length": String(big.length) }),
    );
    assert.equal(withLength.status, 413);
    assert.equal(
      await withLength.text(),
      `Cannot accept body: Content-Length ${big.length} exceeds maxTotalBytes 4000`,
    );
    const without = await handler({ maxTotalBytes: 4000 })(streamed());
    assert.equal(without.status, 413);
    assert.equal(
      await without.text(),
      "Cannot parse multipart body: body of 5000+ bytes exceeds maxTotalBytes 4000",
    );
  });
});
