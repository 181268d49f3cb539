// safeFileName against hostile names (issue 16): byte-counted length with
// room for the temporary file, dot files, bidi overrides, C0/C1 controls and
// names shaped like the receiver's temporaries; and end to end, that such a
// name is a 400 from the upload handler, never a 500 from the file sink.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import {
  createUploadHandler,
  HttpError,
  safeFileName,
  upload,
} from "../mod.ts";
import { createFileSink } from "../lib/runtime/fs.ts";
import { makeTempDir, removeDir, withServer } from "./_helpers.ts";

function refused(name: string, pattern: RegExp): void {
  assert.throws(
    () => safeFileName(name),
    (error: unknown) =>
      error instanceof HttpError && error.status === 400 &&
      pattern.test(error.message),
    `name ${JSON.stringify(name)}`,
  );
}

describe("safeFileName", () => {
  it("safeFileName counts UTF-8 bytes, not UTF-16 units", () => {
    // 60 emoji: 120 UTF-16 units but 240 UTF-8 bytes.
    refused("😀".repeat(60), /name too long \(240 UTF-8 bytes; at most 209\)/);
    // 150 "é": 150 units, 300 bytes.
    refused("é".repeat(150), /name too long/);
    assert.equal(safeFileName("é".repeat(104)), "é".repeat(104)); // 208 bytes
  });

  it("safeFileName leaves room for the temporary file's suffix", () => {
    assert.equal(safeFileName("x".repeat(209)), "x".repeat(209));
    refused("x".repeat(210), /name too long/);
    refused("x".repeat(250), /name too long/);
  });

  it("safeFileName refuses Windows device names and names ending in a dot or a space", () => {
    for (
      const name of [
        "CON",
        "con.txt",
        "Nul",
        "aux.tar.gz",
        "COM1",
        "lpt9.log",
        "PRN .txt",
        "com¹",
      ]
    ) {
      refused(name, /Windows device name/);
    }
    refused("report.pdf.", /ends in a dot or a space/);
    refused("report.pdf ", /ends in a dot or a space/);
    for (
      const name of ["console.txt", "nullable", "com10", "a.con", "icon.png"]
    ) {
      assert.equal(safeFileName(name), name);
    }
  });

  it("safeFileName refuses dot files", () => {
    refused(".htaccess", /starts with a dot/);
    refused(".", /starts with a dot/);
    refused("..", /starts with a dot/);
  });

  it("safeFileName refuses bidirectional overrides and isolates", () => {
    for (const c of ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e"]) {
      refused(`invoice${c}fdp.exe`, /bidirectional override/);
    }
    for (const c of ["\u2066", "\u2067", "\u2068", "\u2069"]) {
      refused(`a${c}b`, /bidirectional override/);
    }
  });

  it("safeFileName refuses C0 and C1 controls and DEL", () => {
    for (
      const c of [
        "\u0000",
        "\u0009",
        "\u001f",
        "\u007f",
        "\u0080",
        "\u0085",
        "\u009f",
      ]
    ) {
      refused(`a${c}b`, /control character/);
    }
    assert.equal(safeFileName("a\u00a0b"), "a\u00a0b"); // NBSP is printable
  });

  it("safeFileName refuses unpaired surrogates", () => {
    refused("a\ud800b", /unpaired surrogate/);
    refused("a\udc00", /unpaired surrogate/);
    assert.equal(safeFileName("😀.txt"), "😀.txt");
  });

  it("safeFileName refuses names shaped like the file sink's temporary files", () => {
    refused(
      "report.pdf.0f8fad5b-d9cb-469f-a165-70867728950e.partial",
      /temporary upload file/,
    );
    assert.equal(safeFileName("report.partial"), "report.partial");
  });
});

describe("safeFileName in an upload handler", () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir("names-");
  });
  after(async () => {
    await removeDir(dir);
  });

  it("an over-long name is a 400 name too long, never a 500 from the sink", async () => {
    const handler = createUploadHandler({
      sink: (request) =>
        createFileSink(
          join(
            dir,
            safeFileName(new URL(request.url).searchParams.get("name") ?? ""),
          ),
        ),
    });
    await withServer(handler, async (server) => {
      // Each passed the old check (at most 255 UTF-16 units) and then failed
      // in the file system (ENAMETOOLONG): 500.
      for (const name of ["😀".repeat(60), "x".repeat(230)]) {
        const url = new URL(server.url);
        url.searchParams.set("name", name);
        const response = await upload(url, new Uint8Array([1]));
        assert.equal(response.status, 400);
        assert.match(await response.text(), /name too long/);
      }
      const url = new URL(server.url);
      url.searchParams.set("name", "x".repeat(209));
      const ok = await upload(url, new Uint8Array([1]));
      assert.equal(ok.status, 201, await ok.clone().text());
      await ok.body?.cancel();
    });
    assert.deepEqual(await readdir(dir), ["x".repeat(209)]);
  });
});
