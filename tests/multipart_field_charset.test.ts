// The values of a form's fields in the form's encoding. A browser sends a
// form's text in the page's encoding (unless accept-charset says another),
// and a hidden field named _charset_ holding that encoding's name (WHATWG
// HTML, "constructing the entry list"). createUploadHandler decoded every
// value as UTF-8: `café` from a windows-1252 page, the bytes `caf\xE9`, was
// stored as `caf\uFFFD`, and a Shift_JIS page's `新しい` as six U+FFFD or
// worse, the user's text lost behind a 201. A value is now decoded with its
// part's charset, else the one _charset_ names, else the handler's charset
// option; under UTF-8, the default or named (`_charset_=UTF-8` was a 400
// where the same form without it was read), bytes that are no UTF-8 are read
// as windows-1252. Names and file names are in the form's encoding too, and
// were read as UTF-8, else windows-1252, whatever it was: a Shift_JIS form's
// file 新しい.txt was stored as "V‚µ‚¢.txt". They are now read with the
// charset of a _charset_ field (one before a file part, whose sink opens
// before the form's end), else the option.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  createUploadHandler,
  type MultipartUploadOptions,
} from "../lib/http/mod.ts";
import type { Server } from "../lib/runtime/serve.ts";
import { startServer } from "./_helpers.ts";
import { field, file, formBody, utf8Bytes } from "./_byte_forms.ts";

const B = "----WebKitFormBoundaryZ1pQ8sTgC4nLw2Hf";

/** A multipart body with boundary B from byte-string part texts. */
function body(parts: string[]): Uint8Array<ArrayBuffer> {
  return formBody(B, parts);
}

/** 新しい in Shift_JIS (TextEncoder writes only UTF-8): 90 56, 82 B5, 82 A2. */
const ATARASHII_SJIS = "\x90\x56\x82\xB5\x82\xA2";

function post(bytes: Uint8Array<ArrayBuffer>): Request {
  return new Request("http://localhost/upload", {
    method: "POST",
    body: bytes,
    headers: { "content-type": `multipart/form-data; boundary=${B}` },
  });
}

/** What the sinks saw: each file part's bytes, and whether it committed. */
interface Sinks {
  committed: string[];
  aborted: number;
}

function handlerOf(
  options: Partial<MultipartUploadOptions> = {},
  sinks: Sinks = { committed: [], aborted: 0 },
) {
  return createUploadHandler({
    multipart: {
      sink: () => {
        let text = "";
        return new WritableStream<Uint8Array>({
          write: (chunk) => {
            text += String.fromCharCode(...chunk);
          },
          close: () => {
            sinks.committed.push(text);
          },
          abort: () => {
            sinks.aborted++;
          },
        });
      },
      ...options,
    },
  });
}

type Field = { name: string; value: string };

/** The fields of a form the handler answered 201. */
async function fieldsOf(response: Response): Promise<Field[]> {
  assert.equal(response.status, 201, await response.clone().text());
  return ((await response.json()) as { fields: Field[] }).fields;
}

describe("createUploadHandler field values in the form's charset", () => {
  it("reads a windows-1252 form by its _charset_ field, also one after the values", async () => {
    // What Chromium sends from a windows-1252 page, _charset_ moved last:
    // C3 A9, typed as "Ã©" there, is valid UTF-8 for "é" but is no "é" here.
    const response = await handlerOf()(post(body([
      field("x", "caf\xE9"),
      field("price", "\x80 5 \x96 \x93ok\x94"),
      field("typed", "\xC3\xA9"),
      field("_charset_", "windows-1252"),
    ])));
    assert.deepEqual(await fieldsOf(response), [
      { name: "x", value: "café" },
      { name: "price", value: "€ 5 – “ok”" },
      { name: "typed", value: "Ã©" },
      { name: "_charset_", value: "windows-1252" },
    ]);
  });

  it("reads a value that is no UTF-8 as windows-1252 when the form names no charset", async () => {
    // A legacy page without a _charset_ field: each value as names are,
    // one character per byte, nothing turned into U+FFFD.
    const response = await handlerOf()(post(body([
      field("x", "caf\xE9"),
      field("y", "\xC3(\x81"),
      field("utf8", utf8Bytes("naïve 漢字 \uFEFF")),
      field("bom", utf8Bytes("\uFEFFa,b")),
    ])));
    assert.deepEqual(await fieldsOf(response), [
      { name: "x", value: "café" },
      { name: "y", value: "Ã(\u0081" },
      { name: "utf8", value: "naïve 漢字 \uFEFF" },
      { name: "bom", value: "\uFEFFa,b" },
    ]);
  });

  it("reads a Shift_JIS form by _charset_=Shift_JIS", async () => {
    const response = await handlerOf()(post(body([
      field("_charset_", "Shift_JIS"),
      field("title", ATARASHII_SJIS),
      field("ascii", "abc"),
    ])));
    assert.deepEqual(await fieldsOf(response), [
      { name: "_charset_", value: "Shift_JIS" },
      { name: "title", value: "新しい" },
      { name: "ascii", value: "abc" },
    ]);
  });

  it("reports _charset_ as sent when it names a charset ASCII is not part of", async () => {
    // No browser sends UTF-16 (it sends UTF-8 instead), but a client may:
    // the values are UTF-16, the label itself stays "utf-16le".
    const response = await handlerOf()(post(body([
      field("_charset_", "utf-16le"),
      field("x", "\xE9\x00\x22\x6F"),
    ])));
    assert.deepEqual(await fieldsOf(response), [
      { name: "_charset_", value: "utf-16le" },
      { name: "x", value: "é漢" },
    ]);
  });

  it("reads a field by the charset of its own Content-Type before the form's", async () => {
    const response = await handlerOf()(post(body([
      field("_charset_", "windows-1252"),
      field("jp", ATARASHII_SJIS, "text/plain; charset=Shift_JIS"),
      field("u", utf8Bytes("café"), 'text/plain; charset="utf-8"'),
      field("w", "caf\xE9"),
    ])));
    assert.deepEqual(await fieldsOf(response), [
      { name: "_charset_", value: "windows-1252" },
      { name: "jp", value: "新しい" },
      { name: "u", value: "café" },
      { name: "w", value: "café" },
    ]);
  });

  it("reads a form that names no charset with the charset option, _charset_ before it", async () => {
    const handler = handlerOf({ charset: "shift_jis" });
    assert.deepEqual(
      await fieldsOf(await handler(post(body([field("t", ATARASHII_SJIS)])))),
      [{ name: "t", value: "新しい" }],
    );
    assert.deepEqual(
      await fieldsOf(
        await handler(post(body([
          field("t", "caf\xE9"),
          field("_charset_", "windows-1252"),
        ]))),
      ),
      [{ name: "t", value: "café" }, {
        name: "_charset_",
        value: "windows-1252",
      }],
    );
  });

  it("refuses an unknown charset option at creation, naming it", () => {
    assert.throws(
      () => handlerOf({ charset: "x-bogus" }),
      (error) =>
        error instanceof RangeError &&
        error.message ===
          'Cannot create upload handler: charset "x-bogus" is not an encoding TextDecoder knows (a WHATWG Encoding Standard label: "utf-8", "windows-1252", "shift_jis", ...)',
    );
    // The Encoding Standard's "replacement" decodes nothing.
    assert.throws(() => handlerOf({ charset: "iso-2022-kr" }), RangeError);
    assert.throws(
      () => handlerOf({ charset: 1252 as unknown as string }),
      {
        name: "TypeError",
        message:
          "Cannot create upload handler: charset must be an encoding label (a string), got number",
      },
    );
  });

  it("answers 400 naming an unknown charset named by _charset_, and stores no file", async () => {
    const sinks: Sinks = { committed: [], aborted: 0 };
    const response = await handlerOf({}, sinks)(post(body([
      file("f", "a.txt", "1"),
      field("x", "caf\xE9"),
      field("_charset_", "x-klingon"),
      file("g", "b.txt", "2"),
    ])));
    assert.equal(response.status, 400);
    assert.equal(
      await response.text(),
      'Cannot accept form: part 3 (field "_charset_") names an unknown charset "x-klingon"',
    );
    assert.deepEqual(sinks, { committed: [], aborted: 1 });
  });

  it("answers 400 naming an unknown charset in a field's Content-Type", async () => {
    const response = await handlerOf()(post(body([
      field("x", "abc", "text/plain; charset=utf-9"),
    ])));
    assert.equal(response.status, 400);
    assert.equal(
      await response.text(),
      'Cannot accept form: part 1 (field "x") has an unknown charset "utf-9" in its Content-Type',
    );
  });

  it("answers 400 for a value that is not valid in the charset the form names", async () => {
    const sinks: Sinks = { committed: [], aborted: 0 };
    const response = await handlerOf({}, sinks)(post(body([
      field("_charset_", "Shift_JIS"),
      file("f", "a.txt", "1"),
      // A lead byte without its trail byte.
      field("x", "caf\x82"),
    ])));
    assert.equal(response.status, 400);
    assert.equal(
      await response.text(),
      `Cannot accept form: part 3 (field "x") is not valid shift_jis, the charset its form's _charset_ field names`,
    );
    assert.deepEqual(sinks, { committed: [], aborted: 1 });
  });

  it("reads a form that names UTF-8 as one that names none: bytes that are no UTF-8 as windows-1252", async () => {
    // Naming the default is not stricter than the default: _charset_=UTF-8
    // with caf\xE9 was a 400, the same form without it a 201.
    const forms = [
      [field("_charset_", "UTF-8"), field("x", "caf\xE9")],
      [field("x", "caf\xE9", "text/plain; charset=utf-8")],
      [field("_charset_", "utf8"), field("x", "caf\xE9")],
    ];
    for (const handler of [handlerOf(), handlerOf({ charset: "utf-8" })]) {
      for (const parts of forms) {
        const fields = await fieldsOf(await handler(post(body(parts))));
        assert.deepEqual(fields.find((f) => f.name === "x"), {
          name: "x",
          value: "café",
        });
      }
    }
    // A part's charset=utf-8 beats the form's Shift_JIS, leniently too.
    const response = await handlerOf({ charset: "shift_jis" })(post(body([
      field("x", "caf\xE9", "text/plain; charset=utf-8"),
    ])));
    assert.deepEqual(await fieldsOf(response), [{ name: "x", value: "café" }]);
  });

  it("still refuses fields over maxFieldsBytes and maxFieldBytes before _charset_ arrives", async () => {
    const value = "\xE9".repeat(600);
    const overAll = await handlerOf({ maxFieldsBytes: 1000 })(post(body([
      field("a", value),
      field("b", value),
      field("_charset_", "windows-1252"),
    ])));
    assert.equal(overAll.status, 413);
    assert.equal(
      await overAll.text(),
      "Cannot accept multipart body: fields of 1200+ bytes exceeds maxFieldsBytes 1000",
    );
    const overOne = await handlerOf({ maxFieldBytes: 500 })(post(body([
      field("a", value),
      field("_charset_", "windows-1252"),
    ])));
    assert.equal(overOne.status, 413);
    assert.match(await overOne.text(), /exceeds maxFieldBytes 500$/);
  });

  describe("names and file names", () => {
    /** What each sink was opened with, and the form the handler answered. */
    async function namesOf(
      parts: string[],
      options: Partial<MultipartUploadOptions> = {},
    ): Promise<{
      opened: Array<[string, string | undefined]>;
      form: { files: { name: string; filename: string }[]; fields: Field[] };
    }> {
      const opened: Array<[string, string | undefined]> = [];
      const handler = createUploadHandler({
        multipart: {
          sink: (part) => {
            opened.push([part.name, part.filename]);
            return new WritableStream();
          },
          ...options,
        },
      });
      const response = await handler(post(body(parts)));
      assert.equal(response.status, 201, await response.clone().text());
      return { opened, form: await response.json() };
    }

    it("reads Shift_JIS names and file names by the charset option", async () => {
      const { opened, form } = await namesOf([
        field(ATARASHII_SJIS, ATARASHII_SJIS),
        file(ATARASHII_SJIS, `${ATARASHII_SJIS}.txt`, "1"),
      ], { charset: "shift_jis" });
      assert.deepEqual(opened, [["新しい", "新しい.txt"]]);
      assert.deepEqual(form.files.map((f) => [f.name, f.filename]), [
        ["新しい", "新しい.txt"],
      ]);
      assert.deepEqual(form.fields, [{ name: "新しい", value: "新しい" }]);
    });

    it("reads Shift_JIS names and file names by a _charset_ field before them", async () => {
      // 表 is 95 5C in Shift_JIS: its second byte is a backslash.
      const { opened, form } = await namesOf([
        field("_charset_", "Shift_JIS"),
        field(ATARASHII_SJIS, "abc"),
        file("f", `${ATARASHII_SJIS}\x95\x5C.txt`, "1"),
      ]);
      assert.deepEqual(opened, [["f", "新しい表.txt"]]);
      assert.deepEqual(form.files.map((f) => [f.name, f.filename]), [
        ["f", "新しい表.txt"],
      ]);
      assert.deepEqual(form.fields, [
        { name: "_charset_", value: "Shift_JIS" },
        { name: "新しい", value: "abc" },
      ]);
    });

    it("reads a field's name by a _charset_ field after it, a file part's by the default rule", async () => {
      // The sink of a file part before _charset_ opens before it is read:
      // its names are read as a form that names no charset (UTF-8, else
      // windows-1252); a field's name waits for the form's end, as values.
      const { opened, form } = await namesOf([
        file("\xE9", "caf\xE9.txt", "1"),
        field(ATARASHII_SJIS, ATARASHII_SJIS),
        field("_charset_", "Shift_JIS"),
      ]);
      assert.deepEqual(opened, [["é", "café.txt"]]);
      assert.deepEqual(form.files.map((f) => [f.name, f.filename]), [
        ["é", "café.txt"],
      ]);
      assert.deepEqual(form.fields, [
        { name: "新しい", value: "新しい" },
        { name: "_charset_", value: "Shift_JIS" },
      ]);
    });

    it("reads a windows-1252 form's file name C3 A9 as Ã©, not é", async () => {
      // Typed as "Ã©" on a windows-1252 page; valid UTF-8 for "é" though.
      const { opened, form } = await namesOf([
        field("_charset_", "windows-1252"),
        field("\xC3\xA9", "1"),
        file("f", "\xC3\xA9.txt", "1"),
      ]);
      assert.deepEqual(opened, [["f", "Ã©.txt"]]);
      assert.equal(form.files[0].filename, "Ã©.txt");
      assert.equal(form.fields[1].name, "Ã©");
    });

    it("keeps a filename* in the charset it names, and reads a form that names UTF-8 by the default rule", async () => {
      const { opened } = await namesOf([
        field("_charset_", "Shift_JIS"),
        `Content-Disposition: form-data; name="f"; filename="${ATARASHII_SJIS}"; filename*=UTF-8''%C3%A9.txt\r\n\r\n1`,
      ]);
      assert.deepEqual(opened, [["f", "é.txt"]]);
      const utf8 = await namesOf([
        field("_charset_", "UTF-8"),
        file("\xE9", `${utf8Bytes("漢")}\xE9.txt`, "1"),
      ], { charset: "shift_jis" });
      assert.deepEqual(utf8.opened, [["é", "æ¼¢é.txt"]]);
    });

    it("answers 400 for a name or file name not valid in the charset the form names, opening no sink", async () => {
      const opened: string[] = [];
      const handler = createUploadHandler({
        multipart: {
          sink: (part) => {
            opened.push(part.filename!);
            return new WritableStream();
          },
          charset: "shift_jis",
        },
      });
      const badFile = await handler(post(body([
        file("f", "a\x82.txt", "1"),
      ])));
      assert.equal(badFile.status, 400);
      assert.equal(
        await badFile.text(),
        `Cannot accept form: part 1 (field "f") has a file name not valid shift_jis, the handler's charset`,
      );
      const badName = await handler(post(body([
        field("_charset_", "Shift_JIS"),
        field("a\x82", "1"),
      ])));
      assert.equal(badName.status, 400);
      assert.equal(
        await badName.text(),
        `Cannot accept form: part 2 (field "a\u201A") has a name not valid shift_jis, the charset its form's _charset_ field names`,
      );
      assert.deepEqual(opened, []);
    });
  });

  describe("over a server", () => {
    let server: Server;
    before(async () => {
      server = await startServer(handlerOf());
    });
    after(async () => {
      await server.shutdown();
    });

    it("answers a windows-1252 form's fields as sent by fetch", async () => {
      const response = await fetch(server.url, {
        method: "POST",
        body: body([
          field("_charset_", "windows-1252"),
          field("x", "caf\xE9 &#28450;"),
          file("f", "caf\xE9.txt", "1"),
        ]),
        headers: { "content-type": `multipart/form-data; boundary=${B}` },
      });
      assert.deepEqual(await fieldsOf(response), [
        { name: "_charset_", value: "windows-1252" },
        { name: "x", value: "café &#28450;" },
      ]);
    });
  });
});
