// How a client quotes a server's error answer (quoteBody, used by
// resumableUpload and openDuplex): the start of its body in its charset,
// whitespace made one space and control characters escaped, nothing of an
// HTML or XML page, of a stalled body or of one that failed. Before, the
// body was read as UTF-8 whatever its charset (iso-8859-1 "café" came out
// "caf\uFFFD"), a character cut at 1 KiB left U+FFFD, a peer's escape
// sequences and line breaks went into the message raw, and a page without
// a content type was quoted whole.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { quoteBody } from "../lib/http/_client_error.ts";
import { openDuplex } from "../lib/http/mod.ts";
import { deadline, withServer } from "./_helpers.ts";

/** A 500 answer of `body` (bytes or text) with `type`, if any. */
function answer(body: BodyInit, type?: string): Response {
  const response = new Response(body, { status: 500 });
  if (type === undefined) response.headers.delete("content-type");
  else response.headers.set("content-type", type);
  return response;
}

/** `text` in UTF-16LE. */
function utf16le(text: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(text.length * 2);
  for (let i = 0; i < text.length; i++) {
    bytes[2 * i] = text.charCodeAt(i) & 0xff;
    bytes[2 * i + 1] = text.charCodeAt(i) >> 8;
  }
  return bytes;
}

describe("quoteBody", () => {
  it("decodes the body in its charset (UTF-8 by default, and for an unknown label)", async () => {
    const latin1 = new Uint8Array([
      0x63,
      0x61,
      0x66,
      0xe9,
      0x20,
      0x66,
      0x65,
      0x72,
      0x6d,
      0xe9,
    ]);
    assert.equal(
      await quoteBody(answer(latin1, "text/plain; charset=iso-8859-1")),
      ": café fermé",
    );
    assert.equal(
      await quoteBody(
        answer(utf16le("quota"), 'text/plain; charset="UTF-16LE"'),
      ),
      ": quota",
    );
    assert.equal(await quoteBody(answer("café", "text/plain")), ": café");
    assert.equal(
      await quoteBody(answer("café", "text/plain; charset=no-such")),
      ": café",
    );
  });

  it("quotes at most 1 KiB, leaving out a character cut at its end", async () => {
    const text = `${"a".repeat(1023)}é and more`;
    assert.equal(
      await quoteBody(answer(text, "text/plain")),
      `: ${"a".repeat(1023)}`,
    );
  });

  it("makes whitespace runs one space and escapes other control characters", async () => {
    assert.equal(
      await quoteBody(answer("a\u001b[2Jb\r\n\tc\u0000d\u0085", "text/plain")),
      ": a\\u001b[2Jb c\\u0000d\\u0085",
    );
    // A bidirectional override shows "file\u202Egnp.exe" as "fileexe.png".
    assert.equal(
      await quoteBody(answer("file\u202Egnp.exe\u200B", "text/plain")),
      ": file\\u202egnp.exe\\u200b",
    );
    // Past U+FFFF, braced: "\\ue0001" read as U+E000 and a "1".
    assert.equal(
      await quoteBody(answer("ok\u{E0001}1", "text/plain")),
      ": ok\\u{e0001}1",
    );
  });

  it("quotes nothing of an HTML or XML page, by its type or, without one, by its start", async () => {
    const page =
      "<html><body><h1>413 Request Entity Too Large</h1></body></html>";
    for (
      const [body, type] of [
        [page, "text/html; charset=utf-8"],
        [page, "application/xhtml+xml"],
        [page, undefined],
        [`\n<!DOCTYPE html>${page}`, "text/plain"],
        ['<?xml version="1.0"?><Error/>', undefined],
        [`<!-- nginx -->\n<head><title>502</title></head>`, "text/plain"],
      ] as const
    ) {
      assert.equal(await quoteBody(answer(body, type)), "", body);
    }
  });

  it("quotes nothing of a body that fails after some bytes, or of none", async () => {
    let pulls = 0;
    const failing = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (pulls++ === 0) {
          controller.enqueue(new TextEncoder().encode("partial"));
        } else controller.error(new Error("cut"));
      },
    });
    assert.equal(await quoteBody(answer(failing, "text/plain")), "");
    assert.equal(await quoteBody(new Response(null, { status: 500 })), "");
  });
});

describe("openDuplex and a stalled error answer", () => {
  it("an abort while the body is quoted rejects with the abort's reason, at once (it rejected with the server's 503)", async () => {
    await withServer(
      () =>
        new Response(
          new ReadableStream<Uint8Array>({
            start(controller) {
              controller.enqueue(new TextEncoder().encode("busy, back"));
            },
          }),
          { status: 503, headers: { "content-type": "text/plain" } },
        ),
      async (server) => {
        const started = Date.now();
        const error = await deadline(
          openDuplex(new URL("/duplex", server.url), {
            signal: AbortSignal.timeout(200),
          }).response.then(() => undefined, (error: unknown) => error),
          10_000,
          "openDuplex",
        );
        assert.equal((error as Error).name, "TimeoutError", String(error));
        assert.ok(Date.now() - started < 1_500, `${Date.now() - started} ms`);
      },
    );
  });
});
