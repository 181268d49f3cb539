// Fuzzing the HTTP layer's parsers and the duplex stream's readers:
// Content-Digest, Content-Length, Content-Encoding and Accept-Encoding,
// receiveBody's checks as a whole, bounded decompression, client-chosen file
// names, and DuplexStream's line and byte readers under arbitrary chunk
// splits. Each gives the right values or its documented error (SyntaxError,
// RangeError, HttpError with a status), never a hang or an engine error, and
// never passes more bytes than its limit. Counts go to
// .tmp/fuzz/http.<runtime>.json.

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import {
  formatDigestHeader,
  HttpError,
  parseDigestHeader,
  receiveBody,
  safeFileName,
} from "../lib/http/mod.ts";
import { declaredLength } from "../lib/http/_body_headers.ts";
import {
  decodeBody,
  negotiateCompression,
  parseContentEncoding,
} from "../lib/http/_compression.ts";
import { DuplexStream } from "../lib/streams/duplex_stream.ts";
import {
  anyBytes,
  assertNotForeign,
  concat,
  cuts,
  FuzzRecord,
  split,
} from "./_fuzz.ts";

const record = new FuzzRecord("http");
after(() => record.save());

const enc = new TextEncoder();

/** An incremental SHA-256 hasher for receiveBody's `hasher` option. */
function createHasher(algorithm: string) {
  if (algorithm !== "sha-256") return undefined;
  const hash = createHash("sha256");
  return {
    update: (data: Uint8Array) => void hash.update(data),
    digest: () => new Uint8Array(hash.digest()),
  };
}

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

/** A string a header value can hold (no NUL, CR, LF; trimmed). */
const headerValue = fc.string({ maxLength: 40 }).map((s) =>
  // deno-lint-ignore no-control-regex
  s.replace(/[\u0000\r\n]/g, "").trim()
);

describe("fuzz: header parsers", () => {
  it("parseDigestHeader gives digests or a SyntaxError, and reads back what formatDigestHeader wrote", () => {
    const digestish = fc.array(
      fc.tuple(
        fc.oneof(
          fc.constantFrom("sha-256", "sha-512", "SHA-256", "", "*", "a b"),
          fc.string({ maxLength: 8 }),
        ),
        fc.oneof(
          fc.uint8Array({ maxLength: 40 }).map((b) =>
            `:${btoa(String.fromCharCode(...b))}:`
          ),
          fc.constantFrom(":", "::", ":A:", ":AAA=:", '"x"', "?1", ""),
          fc.string({ maxLength: 10 }),
        ),
        fc.constantFrom("", ";a=1", ";", "="),
      ).map(([k, v, p]) => `${k}=${v}${p}`),
      { maxLength: 4 },
    ).map((members) => members.join(", "));
    record.check(
      "parseDigestHeader: arbitrary header values",
      fc.property(fc.oneof(headerValue, digestish), (value) => {
        try {
          const digests = parseDigestHeader(value);
          for (const [key, bytes] of digests) {
            assert.match(key, /^[a-z*][a-z0-9_\-.*]*$/);
            assert.ok(bytes instanceof Uint8Array);
          }
        } catch (error) {
          assertNotForeign(error);
          assert.ok(error instanceof SyntaxError, String(error));
        }
      }),
      5000,
    );
    record.check(
      "formatDigestHeader -> parseDigestHeader round trip",
      fc.property(
        fc.dictionary(
          fc.stringMatching(/^[a-z][a-z0-9_\-.]{0,10}$/),
          fc.uint8Array({ maxLength: 64 }),
          { maxKeys: 3 },
        ),
        (digests) => {
          const parsed = parseDigestHeader(formatDigestHeader(digests));
          assert.deepEqual(
            Object.fromEntries([...parsed].map(([k, v]) => [k, [...v]])),
            Object.fromEntries(
              Object.entries(digests).map(([k, v]) => [k, [...v]]),
            ),
          );
        },
      ),
      2000,
    );
  });

  it("Content-Length is a number up to maxBytes, else HttpError 400 or 413", () => {
    record.check(
      "Content-Length: arbitrary header values",
      fc.property(
        fc.oneof(
          headerValue,
          fc.bigInt({ min: 0n, max: 10n ** 18n }).map(String),
          fc.stringMatching(/^[0-9 +\-.eExX,]{1,20}$/).map((s) => s.trim()),
        ),
        fc.oneof(fc.nat({ max: 2000 }), fc.constant(2 ** 30)),
        (value, maxBytes) => {
          const request = new Request("http://localhost/", {
            method: "POST",
            headers: { "content-length": value },
          });
          // What the header holds after the Headers object normalized it.
          const held = request.headers.get("content-length")!;
          try {
            const length = declaredLength(request.headers, maxBytes);
            assert.match(held, /^\d{1,16}$/);
            assert.equal(length, Number(held));
            assert.ok(length! <= maxBytes);
          } catch (error) {
            assertNotForeign(error);
            assert.ok(error instanceof HttpError, String(error));
            if (/^\d{1,16}$/.test(held)) {
              assert.equal(error.status, 413);
              assert.ok(Number(held) > maxBytes);
            } else {
              assert.equal(error.status, 400);
            }
          }
        },
      ),
      5000,
    );
  });

  it("Content-Encoding parses to gzip/deflate decoders or HttpError 415", () => {
    const token = fc.oneof(
      fc.constantFrom(
        "gzip",
        "x-gzip",
        "deflate",
        "identity",
        "br",
        "GZIP",
        "",
        " ",
      ),
      fc.string({ maxLength: 6 }),
    );
    record.check(
      "Content-Encoding: arbitrary header values",
      fc.property(
        fc.oneof(
          headerValue,
          fc.array(token, { maxLength: 4 }).map((t) => t.join(",")),
        ),
        (value) => {
          try {
            const codings = parseContentEncoding(value);
            for (const c of codings) assert.ok(c === "gzip" || c === "deflate");
          } catch (error) {
            assertNotForeign(error);
            assert.ok(error instanceof HttpError, String(error));
            assert.equal(error.status, 415);
          }
        },
      ),
      5000,
    );
  });

  it("Accept-Encoding negotiation never throws and picks only an offered, accepted encoding", () => {
    record.check(
      "Accept-Encoding: arbitrary header values",
      fc.property(
        fc.oneof(
          headerValue,
          fc.array(
            fc.tuple(
              fc.constantFrom("gzip", "deflate", "*", "br", "identity", "x"),
              fc.constantFrom(
                "",
                ";q=0",
                ";q=1",
                ";q=0.5",
                ";q=x",
                ";q=",
                ";Q=0",
              ),
            ).map(([a, b]) => a + b),
            { maxLength: 4 },
          ).map((a) => a.join(", ")),
        ),
        fc.subarray(["gzip", "deflate"] as ("gzip" | "deflate")[]),
        (accept, offered) => {
          const chosen = negotiateCompression(accept, offered);
          if (chosen !== undefined) assert.ok(offered.includes(chosen));
        },
      ),
      5000,
    );
  });

  it("safeFileName returns a single safe path segment or throws HttpError 400", () => {
    record.check(
      "safeFileName: arbitrary names",
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 300, unit: "binary" }),
          fc.constantFrom(
            "..",
            ".",
            "a/../b",
            "..\\x",
            "C:x",
            "\u0000",
            "ok.txt",
          ),
          fc.array(fc.constantFrom("..", "/", "\\", ".", "a", ":", "\u0000"), {
            maxLength: 8,
          })
            .map((p) => p.join("")),
        ),
        (name) => {
          try {
            const safe = safeFileName(name);
            assert.equal(safe, name);
            assert.ok(safe !== "" && safe !== "." && safe !== "..");
            assert.doesNotMatch(safe, /[/\\]/);
            // deno-lint-ignore no-control-regex
            assert.doesNotMatch(safe, /[\u0000-\u001f\u007f]/);
            assert.doesNotMatch(safe, /^[A-Za-z]:/);
            assert.ok(safe.length <= 255);
          } catch (error) {
            assertNotForeign(error);
            assert.ok(error instanceof HttpError, String(error));
            assert.equal(error.status, 400);
          }
        },
      ),
      5000,
    );
  });
});

describe("fuzz: receiveBody", () => {
  it("receiveBody stores exactly the body when every check passes, else aborts the sink with HttpError 400 or 413", async () => {
    await record.checkAsync(
      "receiveBody: arbitrary bodies, splits, Content-Length, Content-Digest, maxBytes",
      fc.asyncProperty(
        anyBytes(200),
        cuts,
        fc.nat({ max: 220 }),
        fc.constantFrom("none", "right", "wrong", "garbage"),
        fc.constantFrom("none", "right", "wrong", "malformed"),
        async (bytes, points, maxBytes, lengthKind, digestKind) => {
          const headers = new Headers();
          if (lengthKind === "right") {
            headers.set("content-length", String(bytes.byteLength));
          }
          if (lengthKind === "wrong") {
            headers.set("content-length", String((bytes.byteLength + 7) % 250));
          }
          if (lengthKind === "garbage") headers.set("content-length", "1e3");
          if (digestKind === "right") {
            headers.set(
              "content-digest",
              formatDigestHeader({ "sha-256": sha256(bytes) }),
            );
          }
          if (digestKind === "wrong") {
            headers.set(
              "content-digest",
              formatDigestHeader({
                "sha-256": sha256(concat([bytes, Uint8Array.of(1)])),
              }),
            );
          }
          if (digestKind === "malformed") {
            headers.set("content-digest", "sha 256=:x:");
          }
          const request = new Request("http://localhost/", {
            method: "POST",
            headers,
            body: ReadableStream.from(split(bytes, points)),
            duplex: "half",
          } as RequestInit);
          const written: Uint8Array[] = [];
          let closed = false;
          let aborted = false;
          const sink = new WritableStream<Uint8Array>({
            write: (chunk) => void written.push(chunk.slice()),
            close: () => void (closed = true),
            abort: () => void (aborted = true),
          });
          const declared = headers.get("content-length");
          const ok = lengthKind !== "garbage" &&
            digestKind !== "malformed" &&
            bytes.byteLength <= maxBytes &&
            (declared === null || Number(declared) === bytes.byteLength) &&
            digestKind !== "wrong";
          try {
            const received = await receiveBody(request, sink, {
              maxBytes,
              hasher: createHasher,
            });
            assert.ok(ok, "accepted a body that should fail");
            assert.equal(received.bytes, bytes.byteLength);
            assert.deepEqual(received.sha256, sha256(bytes));
            assert.deepEqual(concat(written), bytes);
            assert.equal(closed, true);
          } catch (error) {
            assertNotForeign(error);
            assert.ok(error instanceof HttpError, String(error));
            assert.ok([400, 413].includes(error.status), String(error.status));
            assert.equal(ok, false, `refused a good body: ${error.message}`);
            assert.equal(closed, false);
            assert.equal(aborted, true);
          }
          const total = written.reduce((n, c) => n + c.byteLength, 0);
          assert.ok(total <= maxBytes, `the sink got ${total} > ${maxBytes}`);
        },
      ),
      1000,
    );
  });

  it("decodeBody decodes valid gzip/deflate under any split, and refuses garbage or bombs with HttpError 400/413", async () => {
    await record.checkAsync(
      "decodeBody: arbitrary compressed bodies and splits",
      fc.asyncProperty(
        fc.constantFrom("gzip" as const, "deflate" as const),
        fc.oneof(
          anyBytes(300).map((b) => ({ raw: b, valid: false })),
          fc.oneof(
            fc.uint8Array({ maxLength: 300 }),
            fc.nat({ max: 20000 }).map((n) => new Uint8Array(n)),
          )
            .map((b) => ({ raw: b, valid: true })),
        ),
        cuts,
        fc.oneof(fc.nat({ max: 400 }), fc.constant(64 * 1024 * 1024)),
        async (coding, input, points, max) => {
          const compressed = input.valid
            ? concat(
              await Array.fromAsync(
                ReadableStream.from([input.raw]).pipeThrough(
                  new CompressionStream(coding) as unknown as TransformStream<
                    Uint8Array,
                    Uint8Array
                  >,
                ),
              ),
            )
            : input.raw;
          const decoded = decodeBody(
            ReadableStream.from(split(compressed, points)),
            [coding],
            max,
          );
          const out: Uint8Array[] = [];
          let failure: unknown;
          try {
            for await (const chunk of decoded) out.push(chunk);
          } catch (error) {
            failure = error;
          }
          const total = out.reduce((n, c) => n + c.byteLength, 0);
          assert.ok(total <= max, `passed ${total} > ${max} bytes`);
          if (failure === undefined) {
            if (input.valid) assert.deepEqual(concat(out), input.raw);
            return;
          }
          assertNotForeign(failure);
          assert.ok(failure instanceof HttpError, String(failure));
          if (input.valid) {
            assert.equal(failure.status, 413);
            assert.ok(input.raw.byteLength > max);
          } else {
            assert.ok([400, 413].includes(failure.status));
          }
        },
      ),
      1000,
    );
  });
});

/** Lines of `bytes` by the book: `\n` ends a line, one `\r` before it goes. */
function referenceLines(bytes: Uint8Array, max: number) {
  const lines: { text: string; start: number }[] = [];
  let start = 0;
  while (start < bytes.byteLength) {
    const nl = bytes.indexOf(0x0a, start);
    const end = nl === -1 ? bytes.byteLength : nl;
    let line = bytes.subarray(start, end);
    if (line.byteLength > 0 && line[line.byteLength - 1] === 0x0d) {
      line = line.subarray(0, line.byteLength - 1);
    }
    if (line.byteLength > max) return { lines, failAt: start };
    lines.push({ text: new TextDecoder().decode(line), start });
    start = nl === -1 ? bytes.byteLength : nl + 1;
  }
  return { lines, failAt: undefined };
}

describe("fuzz: DuplexStream readers", () => {
  it("DuplexStream.readLine gives the lines of the bytes under any split, or a RangeError that consumes nothing", async () => {
    const liney = fc.array(
      fc.oneof(
        fc.constantFrom("\n", "\r\n", "\r", "é", "a", "\u{1F600}"),
        fc.string({ maxLength: 12 }),
      ),
      { maxLength: 12 },
    ).map((parts) => enc.encode(parts.join("")));
    await record.checkAsync(
      "DuplexStream.readLine: arbitrary bytes, splits, maxLineBytes",
      fc.asyncProperty(
        fc.oneof(liney, anyBytes(120)),
        cuts,
        fc.nat({ max: 24 }),
        async (bytes, points, maxLineBytes) => {
          const want = referenceLines(bytes, maxLineBytes);
          const stream = new DuplexStream(
            ReadableStream.from(split(bytes, points)),
            new WritableStream(),
            { maxLineBytes },
          );
          const got: string[] = [];
          for (;;) {
            let line: string | null;
            try {
              line = await stream.readLine();
            } catch (error) {
              assertNotForeign(error);
              assert.ok(error instanceof RangeError, String(error));
              assert.equal(got.length, want.lines.length);
              assert.notEqual(want.failAt, undefined);
              // Nothing consumed: the rest reads from the line's start.
              const rest = bytes.subarray(want.failAt);
              assert.deepEqual(
                await stream.read(rest.byteLength + 1),
                rest.byteLength === 0 ? null : rest,
              );
              break;
            }
            if (line === null) {
              assert.equal(want.failAt, undefined);
              break;
            }
            got.push(line);
          }
          assert.deepEqual(
            got,
            want.lines.slice(0, got.length).map((l) => l.text),
          );
          await stream.close();
        },
      ),
      3000,
    );
  });

  it("DuplexStream.read and readPartial return the bytes in order under any split, refusing bad sizes with RangeError", async () => {
    const size = fc.oneof(
      fc.integer({ min: -2, max: 40 }),
      fc.constantFrom(NaN, 1.5, Infinity, 2 ** 53, 33),
    );
    await record.checkAsync(
      "DuplexStream.read/readPartial: arbitrary sizes and splits",
      fc.asyncProperty(
        anyBytes(120),
        cuts,
        fc.array(fc.tuple(fc.boolean(), size), { maxLength: 20 }),
        async (bytes, points, reads) => {
          const stream = new DuplexStream(
            ReadableStream.from(split(bytes, points)),
            new WritableStream(),
            { maxReadBytes: 32 },
          );
          const got: Uint8Array[] = [];
          for (const [partial, n] of reads) {
            const valid = Number.isSafeInteger(n) &&
              (partial ? n >= 1 : n >= 0 && n <= 32);
            try {
              const chunk = partial
                ? await stream.readPartial(n)
                : await stream.read(n);
              assert.ok(valid, `accepted size ${n}`);
              if (chunk === null) continue;
              assert.ok(chunk.byteLength <= n);
              if (!partial && n > 0) {
                // Exactly n, fewer only at the end.
                const sofar = got.reduce((a, c) => a + c.byteLength, 0);
                assert.equal(
                  chunk.byteLength,
                  Math.min(n, bytes.byteLength - sofar),
                );
              }
              got.push(chunk.slice());
            } catch (error) {
              assertNotForeign(error);
              assert.ok(error instanceof RangeError, String(error));
              assert.equal(valid, false);
            }
          }
          const all = concat(got);
          assert.deepEqual(all, bytes.subarray(0, all.byteLength));
          await stream.close();
        },
      ),
      3000,
    );
  });
});
