// Fuzzing the HTTP layer's parsers and the duplex stream's readers:
// Content-Digest, Content-Length, Content-Encoding and Accept-Encoding,
// receiveBody's checks as a whole, bounded decompression, client-chosen file
// names, DuplexStream's line and byte readers, multipart/form-data bodies
// (the push decoder, the Content-Type's boundary, a part's header block, and
// encodeMultipart's bodies read back) and
// event streams (against the HTML standard's parser, written out below),
// under arbitrary chunk splits, and the resumable upload handler under
// sequences of honest and spoiled requests. Each gives the right values or its
// documented error (SyntaxError, RangeError, HttpError with a status), the
// same whatever the split, never a hang or an engine error, and never passes
// more bytes than its limit. Counts go to .tmp/fuzz/http.<runtime>.json.

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import fc from "fast-check";
import {
  createEchoHandler,
  createResumableUploadHandler,
  createUploadHandler,
  encodeMultipart,
  fetchEventStream,
  formatDigestHeader,
  HttpError,
  MultipartDecoder,
  type MultipartLimits,
  parseDigestHeader,
  parseMultipart,
  receiveBody,
  resumableUpload,
  type ResumableUploadResult,
  safeFileName,
  SseDecoderStream,
  websocketDuplex,
} from "../lib/http/mod.ts";
import {
  boundaryOf,
  parseHeaderValue,
  parsePartHead,
  RAW_NAMES,
  type RawNames,
} from "../lib/http/_multipart_headers.ts";
import { declaredLength } from "../lib/http/_body_headers.ts";
import {
  decodeBody,
  negotiateCompression,
  parseContentEncoding,
} from "../lib/http/_compression.ts";
import { DuplexStream } from "../lib/streams/duplex_stream.ts";
import { createResumableFileStore } from "../lib/runtime/resumable_file_store.ts";
import {
  createResumableUploadObject,
  createResumableWorkersStore,
} from "../lib/runtime/resumable_workers_store.ts";
import type { ResumableStore } from "../lib/http/resumable/resumable_store.ts";
import { FakeNamespace } from "./_do_fake.ts";
import { FakeWebSocket } from "./_fake_websocket.ts";
import { createFileSink } from "../lib/runtime/fs.ts";
import { createR2Sink } from "../lib/runtime/r2_sink.ts";
import { FakeR2Bucket } from "./_r2_fake.ts";
import { fileStoreUploadIds, makeTempDir, removeDir } from "./_helpers.ts";
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

  it("parseDigestHeader keeps a parameter's quoted string whole, commas and all (RFC 8941 dictionary)", () => {
    const parsed = parseDigestHeader(
      'sha-256=:AQID:;note="a, b=c", sha-512=:BAU=:;x="\\", y"',
    );
    assert.deepEqual(
      Object.fromEntries([...parsed].map(([k, v]) => [k, [...v]])),
      { "sha-256": [1, 2, 3], "sha-512": [4, 5] },
    );
    assert.throws(
      () => parseDigestHeader('sha-256=:AQID:;note="a, b'),
      /Cannot parse digest header: unterminated string/,
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
            const codings = parseContentEncoding(value, ["gzip", "deflate"]);
            for (const c of codings) assert.ok(c === "gzip" || c === "deflate");
            assert.ok(codings.length <= 2);
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
          fc.string({ maxLength: 120, unit: "grapheme" }),
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
            // Fits the file system with the temporary file's 46 bytes.
            assert.ok(enc.encode(safe).byteLength <= 209);
            assert.ok(!safe.startsWith("."));
            assert.doesNotMatch(
              safe,
              /[\u0080-\u009f\u202a-\u202e\u2066-\u2069]/,
            );
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

/** How a fuzzed upload declares its length and digest. */
type LengthKind = "none" | "right" | "wrong" | "garbage";
type DigestKind = "none" | "right" | "wrong" | "malformed";

/**
 * A request carrying `bytes` in chunks cut at `points`, with the
 * Content-Length and Content-Digest `lengthKind` and `digestKind` say;
 * with `drop`, the body fails after its first chunk (a client gone).
 */
function uploadRequest(
  bytes: Uint8Array,
  points: number[],
  lengthKind: LengthKind,
  digestKind: DigestKind,
  drop = false,
): Request {
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
  const chunks = split(bytes, points);
  let i = 0;
  return new Request("http://localhost/", {
    method: "POST",
    headers,
    body: new ReadableStream<Uint8Array>({
      pull(controller) {
        if (drop && i === 1) {
          controller.error(new TypeError("connection reset"));
        } else if (i < chunks.length) controller.enqueue(chunks[i++]);
        else controller.close();
      },
    }),
    duplex: "half",
  } as RequestInit);
}

/**
 * The statuses the faults of a request from {@linkcode uploadRequest} call
 * for, by receiveBody's checks (which one answers depends on which is met
 * first); none for a request to accept.
 */
function uploadFaults(
  request: Request,
  bytes: Uint8Array,
  digestKind: DigestKind,
  maxBytes = Infinity,
  drop = false,
): Set<number> {
  const faults = new Set<number>();
  const declared = request.headers.get("content-length");
  const valid = declared !== null && /^[0-9]+$/.test(declared);
  if (declared !== null && (!valid || Number(declared) !== bytes.byteLength)) {
    faults.add(400);
  }
  if ((valid && Number(declared) > maxBytes) || bytes.byteLength > maxBytes) {
    faults.add(413);
  }
  if (digestKind === "wrong" || digestKind === "malformed") faults.add(400);
  if (drop) faults.add(400);
  return faults;
}

describe("fuzz: receiveBody", () => {
  it("receiveBody stores exactly the body when every check passes, else aborts the sink with HttpError 400 or 413", async () => {
    await record.checkAsync(
      "receiveBody: arbitrary bodies, splits, Content-Length, Content-Digest, maxBytes",
      fc.asyncProperty(
        anyBytes(200),
        cuts,
        fc.nat({ max: 220 }),
        fc.constantFrom<LengthKind>("none", "right", "wrong", "garbage"),
        fc.constantFrom<DigestKind>("none", "right", "wrong", "malformed"),
        async (bytes, points, maxBytes, lengthKind, digestKind) => {
          const request = uploadRequest(bytes, points, lengthKind, digestKind);
          const written: Uint8Array[] = [];
          let closed = false;
          let aborted = false;
          const sink = new WritableStream<Uint8Array>({
            write: (chunk) => void written.push(chunk.slice()),
            close: () => void (closed = true),
            abort: () => void (aborted = true),
          });
          const ok =
            uploadFaults(request, bytes, digestKind, maxBytes).size === 0;
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

// ---------- multipart/form-data ----------

/** What the multipart decoder found: each part with its body joined. */
interface DecodedPart {
  name: string;
  filename: string | undefined;
  contentType: string;
  headers: [string, string][];
  data: Uint8Array;
  /** The plain name parameters as sent, where the parser kept them. */
  raw: RawNames | undefined;
}

/**
 * Runs a MultipartDecoder over `chunks` and ends it: the parts, or the
 * error it threw. Checks the event order on the way (a part, its data,
 * its end; nothing after the closing boundary).
 */
function decodeMultipart(
  chunks: Uint8Array[],
  boundary: string,
  limits: MultipartLimits,
): { parts: DecodedPart[] } | { error: unknown } {
  const decoder = new MultipartDecoder(boundary, limits);
  const parts: DecodedPart[] = [];
  let data: Uint8Array[] | undefined;
  try {
    for (const chunk of chunks) {
      for (const event of decoder.decode(chunk)) {
        if (event.type === "part") {
          assert.equal(data, undefined, "a part inside a part");
          data = [];
          const { name, filename, contentType, headers } = event.part;
          parts.push({
            name,
            filename,
            contentType,
            headers: [...headers],
            data: new Uint8Array(0),
            raw: RAW_NAMES.get(event.part),
          });
        } else if (event.type === "data") {
          assert.ok(data !== undefined, "data outside a part");
          assert.ok(event.bytes.byteLength > 0, "an empty data event");
          data.push(event.bytes.slice());
        } else {
          assert.ok(data !== undefined, "an end outside a part");
          parts[parts.length - 1].data = concat(data);
          data = undefined;
        }
      }
    }
    decoder.end();
  } catch (error) {
    if (error instanceof assert.AssertionError) throw error;
    return { error };
  }
  assert.equal(data, undefined, "ended inside a part");
  assert.ok(decoder.done);
  return { parts };
}

/** Bytes that look like multipart bodies with boundary "B", and garbage. */
const multipartish = fc.array(
  fc.oneof(
    fc.constantFrom(
      "--B",
      "--B--",
      "\r\n--B",
      "\r\n--B\r\n",
      "\r\n--B--\r\n",
      "\r\n",
      "\r\n\r\n",
      "\r",
      "\n",
      "-",
      " ",
      "\t",
      'Content-Disposition: form-data; name="a"',
      "content-disposition:form-data;name=b",
      '; filename="f.txt"',
      "; filename*=UTF-8''%E2%82%AC.txt",
      "; name*=utf-8''%C3%A9",
      "Content-Type: text/plain",
      "X-Other: y",
      ":",
      '"',
      "\\",
      ";",
      "=",
      "é",
    ).map((s) => enc.encode(s)),
    anyBytes(12),
  ),
  { maxLength: 40 },
).map(concat);

/** A well-formed body (boundary "B"), then cut, spliced or corrupted. */
const mutatedMultipart = fc.tuple(
  fc.array(
    fc.record({
      name: fc.string({ maxLength: 6 }).filter((s) => !/["\\\r\n]/.test(s)),
      filename: fc.option(
        fc.string({ maxLength: 6 }).filter((s) => !/["\\\r\n]/.test(s)),
        { nil: undefined },
      ),
      data: anyBytes(24),
    }),
    { maxLength: 4 },
  ),
  fc.array(
    fc.tuple(fc.nat(), fc.nat({ max: 6 }), anyBytes(4)),
    { maxLength: 3 },
  ),
).map(([parts, edits]) => {
  const pieces: Uint8Array[] = [];
  for (const part of parts) {
    const file = part.filename === undefined
      ? ""
      : `; filename="${part.filename}"`;
    pieces.push(
      enc.encode(
        `--B\r\nContent-Disposition: form-data; name="${part.name}"${file}\r\n\r\n`,
      ),
      part.data,
      enc.encode("\r\n"),
    );
  }
  pieces.push(enc.encode("--B--\r\n"));
  let bytes = concat(pieces);
  // Each edit replaces `remove` bytes at `at` by `insert`.
  for (const [at, remove, insert] of edits) {
    const i = bytes.byteLength === 0 ? 0 : at % (bytes.byteLength + 1);
    bytes = concat([bytes.subarray(0, i), insert, bytes.subarray(i + remove)]);
  }
  return bytes;
});

/** Each decoder limit, small enough for the bodies here to reach. */
const smallDecoderLimits = {
  maxParts: fc.nat({ max: 4 }),
  maxHeaderBytes: fc.nat({ max: 120 }),
  maxFieldBytes: fc.nat({ max: 24 }),
  maxFileBytes: fc.nat({ max: 24 }),
  maxTotalBytes: fc.nat({ max: 300 }),
};

/** No limits (the defaults), or some small ones. */
const multipartLimits: fc.Arbitrary<MultipartLimits> = fc.oneof(
  fc.constant({}),
  fc.record(smallDecoderLimits, { requiredKeys: [] }),
);

describe("fuzz: multipart/form-data", () => {
  it("MultipartDecoder gives the same parts under any split, within its limits, or an HttpError 400 or 413", () => {
    record.check(
      "MultipartDecoder: arbitrary and mutated bodies, splits, limits",
      fc.property(
        fc.oneof(multipartish, mutatedMultipart),
        cuts,
        multipartLimits,
        (bytes, points, limits) => {
          const whole = decodeMultipart([bytes], "B", limits);
          const pieces = decodeMultipart(split(bytes, points), "B", limits);
          for (const result of [whole, pieces]) {
            if ("error" in result) {
              assertNotForeign(result.error);
              assert.ok(
                result.error instanceof HttpError,
                String(result.error),
              );
              assert.ok(
                [400, 413].includes(result.error.status),
                String(result.error),
              );
              assert.match(
                result.error.message,
                /^Cannot parse multipart body: /,
              );
            }
          }
          // A body is accepted or refused whatever its chunks (which limit
          // or flaw is met first may depend on them).
          assert.equal("parts" in pieces, "parts" in whole);
          if (!("parts" in whole)) return;
          assert.deepEqual(pieces, whole);
          const {
            maxParts = 1000,
            maxFieldBytes = 1024 * 1024,
            maxFileBytes = 1024 ** 3,
            maxTotalBytes = 1024 ** 3,
          } = limits;
          assert.ok(bytes.byteLength <= maxTotalBytes);
          assert.ok(whole.parts.length <= maxParts);
          for (const part of whole.parts) {
            assert.ok(
              part.data.byteLength <=
                (part.filename === undefined ? maxFieldBytes : maxFileBytes),
            );
          }
        },
      ),
      4000,
    );
  });

  it("a well-formed body decodes to its parts under any split", () => {
    const part = fc.record({
      name: fc.string({ maxLength: 8 }).filter((s) => !/["\\\r\n]/.test(s)),
      filename: fc.option(
        fc.string({ maxLength: 8 }).filter((s) => !/["\\\r\n]/.test(s)),
        { nil: undefined },
      ),
      // Bodies that hold pieces of the delimiter without being one.
      data: fc.array(
        fc.oneof(
          fc.constantFrom("\r\n--", "\r\n-", "--B", "\r\n--b", "\r", "-").map(
            (s) => enc.encode(s),
          ),
          anyBytes(8),
        ),
        { maxLength: 6 },
      ).map(concat).filter((d) => !Buffer.from(d).includes("\r\n--B")),
    });
    record.check(
      "MultipartDecoder: well-formed bodies, splits",
      fc.property(fc.array(part, { maxLength: 5 }), cuts, (parts, points) => {
        const pieces: Uint8Array[] = [];
        for (const { name, filename, data } of parts) {
          const file = filename === undefined ? "" : `; filename="${filename}"`;
          pieces.push(
            enc.encode(
              `--B\r\nContent-Disposition: form-data; name="${name}"${file}\r\n\r\n`,
            ),
            data,
            enc.encode("\r\n"),
          );
        }
        pieces.push(enc.encode("--B--"));
        const result = decodeMultipart(split(concat(pieces), points), "B", {});
        assert.ok(
          "parts" in result,
          String((result as { error: unknown }).error),
        );
        assert.deepEqual(
          result.parts.map(({ name, filename, data }) => ({
            name,
            filename,
            data,
          })),
          parts.map(({ name, filename, data }) => ({
            // Header values are byte strings: names arrive as UTF-8.
            name,
            filename,
            data,
          })),
        );
      }),
      3000,
    );
  });

  it("the Content-Type's boundary and a part's header block parse, or are an HttpError 400 or 415", () => {
    record.check(
      "boundaryOf: arbitrary Content-Type values",
      fc.property(
        fc.oneof(
          headerValue,
          fc.tuple(
            fc.constantFrom(
              "multipart/form-data",
              "Multipart/Form-Data ",
              "multipart/mixed",
              "text/plain",
              "",
            ),
            fc.array(
              fc.oneof(
                fc.constantFrom(
                  "; boundary=B",
                  '; boundary="a b"',
                  '; boundary="x\\"y"',
                  "; boundary=",
                  ";boundary=" + "z".repeat(71),
                  "; charset=utf-8",
                  ";",
                  '"',
                ),
                headerValue,
              ),
              { maxLength: 4 },
            ),
          ).map(([type, params]) => type + params.join("")),
        ),
        (value) => {
          try {
            const boundary = boundaryOf(value);
            assert.match(
              boundary,
              /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/,
            );
          } catch (error) {
            assertNotForeign(error);
            assert.ok(error instanceof HttpError, String(error));
            assert.ok([400, 415].includes(error.status), String(error));
          }
        },
      ),
      5000,
    );
    record.check(
      "parsePartHead: arbitrary header blocks",
      fc.property(
        fc.oneof(
          anyBytes(120),
          fc.array(
            fc.oneof(
              fc.constantFrom(
                "Content-Disposition: form-data",
                "; name=a",
                '; name="a b"',
                "; filename=x",
                "; filename*=UTF-8''%ZZ",
                "; filename*=iso-8859-1''%E9",
                "; name*=''",
                "\r\n",
                "Content-Type: ",
                ":",
                " ",
                '"',
              ).map((s) => enc.encode(s)),
              anyBytes(8),
            ),
            { maxLength: 16 },
          ).map(concat),
        ),
        (block) => {
          try {
            const head = parsePartHead(block, 1);
            assert.equal(typeof head.name, "string");
            assert.ok(
              head.filename === undefined || typeof head.filename === "string",
            );
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

// ---------- text/event-stream ----------

/**
 * The WHATWG HTML standard's event-stream parsing, written from its text
 * over the whole stream decoded at once: the oracle for SseDecoderStream.
 */
function referenceEvents(bytes: Uint8Array): {
  events: { data: string; event: string; id: string }[];
  lastEventId: string;
  retryMs: number | undefined;
} {
  // The decoder drops one leading BOM, and replaces invalid sequences.
  const text = new TextDecoder().decode(bytes);
  const events: { data: string; event: string; id: string }[] = [];
  let data = "";
  let type = "";
  let idBuffer = "";
  let lastEventId = "";
  let retryMs: number | undefined;
  // Only terminated lines count: an unterminated last one is dropped.
  const lines = text.split(/\r\n|\r|\n/);
  lines.pop();
  for (const line of lines) {
    if (line === "") {
      lastEventId = idBuffer;
      if (data !== "") {
        events.push({
          data: data.endsWith("\n") ? data.slice(0, -1) : data,
          event: type || "message",
          id: lastEventId,
        });
      }
      data = "";
      type = "";
      continue;
    }
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") type = value;
    else if (field === "data") data += value + "\n";
    else if (field === "id") {
      if (!value.includes("\0")) idBuffer = value;
    } else if (field === "retry" && /^[0-9]+$/.test(value)) {
      retryMs = Number(value);
    }
  }
  return { events, lastEventId, retryMs };
}

describe("fuzz: encodeMultipart round trips", () => {
  // A field of any kind, with any name, file name and content type; the
  // boundary random (the default) or one chosen by the caller, with values
  // that may hold it.
  const field = fc.record({
    name: fc.oneof(
      fc.string({ maxLength: 8 }),
      fc.string({ unit: "binary", maxLength: 8 }),
      fc.constantFrom('a"b', "a\\b", "a\r\nb", "é", "\u{1F600}", "\ud800", ""),
    ),
    filename: fc.option(
      fc.oneof(
        fc.string({ maxLength: 8 }),
        fc.string({ unit: "binary", maxLength: 8 }),
        fc.constantFrom('f"1.txt', "c:\\x.txt", "../x", "é.txt", "a\rb"),
      ),
      { nil: undefined },
    ),
    contentType: fc.option(
      fc.oneof(
        fc.constantFrom("text/plain", "image/png", "a/b; charset=utf-8"),
        fc.string({ maxLength: 12 }),
        fc.string({ unit: "binary", maxLength: 12 }),
      ),
      { nil: undefined },
    ),
    kind: fc.constantFrom("text", "bytes", "blob", "stream", "sized stream"),
    data: fc.array(
      fc.oneof(
        fc.constantFrom("\r\n--", "--x", "\r\n--x", "\r\n--x--", "x").map(
          (s) => enc.encode(s),
        ),
        anyBytes(12),
      ),
      { maxLength: 5 },
    ),
  });

  it("parseMultipart gives back every part that encodeMultipart encoded", async () => {
    await record.checkAsync(
      "encodeMultipart -> parseMultipart: any fields, boundaries, splits",
      fc.asyncProperty(
        fc.array(field, { maxLength: 4 }),
        fc.option(fc.constantFrom("x", "x-", "----x", "a b"), {
          nil: undefined,
        }),
        cuts,
        async (fields, boundary, points) => {
          const inputs = fields.map((f) => {
            const bytes = concat(f.data);
            const value = f.kind === "text"
              ? new TextDecoder().decode(bytes)
              : f.kind === "bytes"
              ? bytes
              : f.kind === "blob"
              ? new Blob([bytes as Uint8Array<ArrayBuffer>])
              : ReadableStream.from(split(bytes, [3, 7]));
            return {
              name: f.name,
              value,
              filename: f.filename,
              contentType: f.contentType,
              size: f.kind === "sized stream" ? bytes.byteLength : undefined,
            };
          });
          let encoded;
          try {
            encoded = encodeMultipart(inputs, { boundary });
          } catch (error) {
            // Only what cannot be sent: a content type that is not
            // printable ASCII (TypeError), a value of bytes or text that
            // holds the caller's boundary (RangeError).
            assert.ok(
              error instanceof TypeError ||
                (error instanceof RangeError && boundary !== undefined),
              String(error),
            );
            assert.match(error.message, /^Cannot encode multipart body: /);
            return;
          }
          let body: Uint8Array;
          try {
            body = concat(await Array.fromAsync(encoded.body));
          } catch (error) {
            // A value that holds the caller's boundary.
            assert.ok(boundary !== undefined, String(error));
            assert.ok(error instanceof RangeError, String(error));
            assert.match(error.message, /^Cannot encode multipart body: /);
            return;
          }
          if (encoded.contentLength !== undefined) {
            assert.equal(body.byteLength, encoded.contentLength);
          }
          const parts = [];
          for await (
            const part of parseMultipart(
              new Response(ReadableStream.from(split(body, points)), {
                headers: { "content-type": encoded.contentType },
              }),
            )
          ) {
            parts.push({
              name: part.name,
              filename: part.filename,
              contentType: part.contentType,
              data: [...await part.bytes()],
            });
          }
          // Names and file names as browsers send them: UTF-8, with CR, LF
          // and '"' escaped; in a name a lone CR or LF made CR LF first.
          const sent = (s: string) =>
            s.toWellFormed().replace(/\r/g, "%0D").replace(/\n/g, "%0A")
              .replace(/"/g, "%22");
          const sentName = (s: string) =>
            sent(s.replace(/\r(?!\n)|(?<!\r)\n/g, "\r\n"));
          assert.deepEqual(
            parts,
            fields.map((f, i) => {
              const text = f.kind === "text";
              const data = text
                ? enc.encode(new TextDecoder().decode(concat(f.data)))
                : concat(f.data);
              const filename = f.filename ??
                (f.kind === "blob" ? "blob" : undefined);
              return {
                name: sentName(f.name),
                filename: filename === undefined ? undefined : sent(filename),
                contentType: (f.contentType ?? inputs[i].contentType)?.trim() ||
                  (filename === undefined
                    ? "text/plain"
                    : "application/octet-stream"),
                data: [...data],
              };
            }),
          );
        },
      ),
      1000,
    );
  });
});

describe("fuzz: text/event-stream", () => {
  it("SseDecoderStream gives the standard's events for arbitrary bytes under any split", async () => {
    const streamy = fc.array(
      fc.oneof(
        fc.constantFrom(
          "data:",
          "data: x",
          "data",
          "event: e",
          "event",
          "id: 1",
          "id",
          "id: a\u0000b",
          "retry: 10",
          "retry: x1",
          "retry",
          ": comment",
          ":",
          " ",
          "\n",
          "\r",
          "\r\n",
          "\n\n",
          "\uFEFF",
          "é",
        ).map((s) => enc.encode(s)),
        anyBytes(8),
      ),
      { maxLength: 40 },
    ).map(concat);
    await record.checkAsync(
      "SseDecoderStream: arbitrary bytes against the standard's parser",
      fc.asyncProperty(
        fc.oneof(streamy, anyBytes(120)),
        cuts,
        async (bytes, points) => {
          const want = referenceEvents(bytes);
          const decoder = new SseDecoderStream();
          const got = await Array.fromAsync(
            ReadableStream.from(split(bytes, points)).pipeThrough(decoder),
          );
          assert.deepEqual(got, want.events);
          assert.equal(decoder.lastEventId, want.lastEventId);
          assert.equal(decoder.retryMs, want.retryMs);
        },
      ),
      3000,
    );
  });

  it("SseDecoderStream refuses a line over maxLineBytes or data over maxEventBytes with a RangeError, and only then", async () => {
    await record.checkAsync(
      "SseDecoderStream: small limits",
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            fc.constantFrom("data: ", "data: abc", "\n", "\n\n", "\r\n", "é")
              .map((s) => enc.encode(s)),
            anyBytes(6),
          ),
          { maxLength: 30 },
        ).map(concat),
        cuts,
        fc.integer({ min: 1, max: 24 }),
        fc.integer({ min: 1, max: 160 }),
        async (bytes, points, maxLineBytes, maxEventBytes) => {
          const decoder = new SseDecoderStream({ maxLineBytes, maxEventBytes });
          let got: unknown[] | undefined;
          let failure: unknown;
          try {
            got = await Array.fromAsync(
              ReadableStream.from(split(bytes, points)).pipeThrough(decoder),
            );
          } catch (error) {
            failure = error;
          }
          const over = sseOverLimits(bytes, maxLineBytes, maxEventBytes);
          if (failure !== undefined) {
            assertNotForeign(failure);
            assert.ok(failure instanceof RangeError, String(failure));
            assert.ok(over, `refused within limits: ${failure}`);
            return;
          }
          assert.ok(!over, "accepted over its limits");
          assert.deepEqual(got, referenceEvents(bytes).events);
        },
      ),
      3000,
    );
  });
});

/**
 * Whether a stream has a line (its bytes, without the line end; a leading
 * BOM not counted) over `maxLineBytes`, or an event whose data lines (each
 * line's bytes and one more) add up over `maxEventBytes`: the limits as
 * SseDecoderStream documents them. An unterminated last line counts.
 */
function sseOverLimits(
  bytes: Uint8Array,
  maxLineBytes: number,
  maxEventBytes: number,
): boolean {
  let start = 0;
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) start = 3;
  let dataBytes = 0;
  for (let i = start; i <= bytes.length; i++) {
    const end = i === bytes.length;
    if (!end && bytes[i] !== 0x0a && bytes[i] !== 0x0d) continue;
    const line = bytes.subarray(start, i);
    if (line.length > maxLineBytes) return true;
    if (end) break;
    if (line.length === 0) dataBytes = 0;
    else {
      const text = new TextDecoder().decode(line);
      const colon = text.indexOf(":");
      const field = colon === -1 ? text : text.slice(0, colon);
      if (field === "data") {
        // Each data line counts 32 bytes more than its own.
        dataBytes += line.length + 1 + 32;
        if (dataBytes > maxEventBytes) return true;
      }
    }
    if (bytes[i] === 0x0d && bytes[i + 1] === 0x0a) i++;
    start = i + 1;
  }
  return false;
}

// ---------- resumable uploads ----------

/** A header value of Latin-1 characters (what a Headers value may hold). */
const latin1Value = fc.string({
  unit: fc.integer({ min: 0x20, max: 0xff }).map((c) => String.fromCharCode(c)),
  maxLength: 24,
}).map((s) => s.trim());

/** Header values a hostile client may send, by header. */
const hostileHeader = fc.tuple(
  fc.constantFrom(
    "upload-complete",
    "upload-length",
    "upload-offset",
    "content-type",
    "content-length",
    "tus-resumable",
    "upload-defer-length",
    "upload-metadata",
    "upload-checksum",
    "repr-digest",
    "x-http-method-override",
  ),
  fc.oneof(
    fc.constantFrom(
      "",
      "?1",
      "?0",
      "?1;x",
      "0",
      "5",
      "-1",
      "1e3",
      "9".repeat(18),
      "application/partial-upload",
      "application/offset+octet-stream",
      "1.0.0",
      "0.2.2",
      "filename d29ybGQ=",
      "a b c",
      "sha1 x",
      "md5 x",
      "sha-256=:x:",
      "PATCH",
      "DELETE",
      "head",
    ),
    latin1Value,
  ),
);

/**
 * One request to the resumable handler: an honest one of the draft or of
 * tus (create, append, HEAD, DELETE, OPTIONS) for an upload created
 * earlier, at its offset or near it, then perhaps spoiled: headers set to
 * hostile values, another method or path.
 */
const resumableStep = fc.record({
  kind: fc.constantFrom(
    "create",
    "append",
    "append",
    "head",
    "delete",
    "options",
  ),
  tus: fc.boolean(),
  target: fc.nat({ max: 3 }),
  complete: fc.boolean(),
  // The declared Upload-Length: none, the one the body makes, or any.
  length: fc.oneof(
    { arbitrary: fc.constant("none" as const), weight: 3 },
    { arbitrary: fc.constant("exact" as const), weight: 2 },
    { arbitrary: fc.nat({ max: 80 }), weight: 1 },
  ),
  offsetDelta: fc.oneof(
    { arbitrary: fc.constant(0), weight: 4 },
    { arbitrary: fc.integer({ min: -3, max: 3 }), weight: 1 },
  ),
  checksum: fc.constantFrom("none", "good", "bad"),
  body: fc.option(anyBytes(40), { nil: undefined }),
  spoil: fc.oneof(
    { arbitrary: fc.constant([]), weight: 3 },
    {
      arbitrary: fc.array(hostileHeader, { minLength: 1, maxLength: 2 }),
      weight: 2,
    },
  ),
  method: fc.oneof(
    { arbitrary: fc.constant(undefined), weight: 8 },
    {
      arbitrary: fc.constantFrom(
        "POST",
        "HEAD",
        "PATCH",
        "DELETE",
        "GET",
        "PUT",
      ),
      weight: 1,
    },
  ),
  path: fc.oneof(
    { arbitrary: fc.constant(undefined), weight: 8 },
    {
      arbitrary: fc.constantFrom(
        "/uploads/x",
        "/uploads/a/b",
        "/other",
        `/uploads/${"A".repeat(22)}`,
        "/uploads//",
      ),
      weight: 1,
    },
  ),
});

/** An upload the fuzz created: its path, its bytes as the handler kept them. */
interface KnownUpload {
  path: string;
  bytes: Uint8Array;
  gone: boolean;
}

/**
 * Drives createResumableUploadHandler over a fresh store per case with
 * sequences of honest and spoiled requests: only 2xx and 4xx answers,
 * offsets never back, only the request's own upload moves, the store holds
 * exactly the bytes the answers account for; and over the Workers store,
 * with every Durable Object evicted between steps now and then, R2 holds an
 * upload's object exactly when it is complete, and no multipart upload of
 * one complete or gone.
 */
async function fuzzResumableHandler(over: "file" | "workers", runs: number) {
  const dir = await makeTempDir("fuzz-resumable-");
  // A store of its own for each case (over files, in a directory removed
  // with the next case's start, and the last with `dir`).
  let caseDir: string | undefined;
  let store!: ResumableStore;
  let bucket: FakeR2Bucket | undefined;
  let namespace: FakeNamespace | undefined;
  const MAX = 64;
  // The ids of the uploads the store holds: by their files, or by the
  // Durable Objects whose storage holds one.
  const storedIds = async () => {
    if (over === "file") return await fileStoreUploadIds(caseDir!);
    const ids: string[] = [];
    for (const [id, storage] of namespace!.storages) {
      if (storage.values.has("meta")) ids.push(id);
    }
    return ids.sort();
  };
  const stored = async (path: string) => {
    const id = path.slice("/uploads/".length);
    const bytes = await store.read(id);
    if (bytes !== undefined) return concat(await Array.fromAsync(bytes));
    // The Workers store reads an upload only once complete: before, its
    // bytes are the tail its object keeps in storage (these uploads stay
    // far below one R2 part).
    const storage = namespace!.storages.get(id)!;
    const meta = storage.values.get("meta") as {
      partsBytes: number;
      tailChunks: number;
    };
    assert.equal(meta.partsBytes, 0);
    return concat(
      Array.from(
        { length: meta.tailChunks },
        (_, i) => storage.values.get(`tail${i}`) as Uint8Array,
      ),
    );
  };
  try {
    await record.checkAsync(
      `createResumableUploadHandler: request sequences, honest and hostile${
        over === "workers" ? ", over the Workers store" : ""
      }`,
      fc.asyncProperty(
        fc.array(resumableStep, { minLength: 1, maxLength: 8 }),
        fc.array(fc.boolean(), { maxLength: 8 }),
        async (steps, evictions) => {
          if (over === "file") {
            if (caseDir !== undefined) await removeDir(caseDir);
            caseDir = await mkdtemp(join(dir, "case-"));
            store = createResumableFileStore(caseDir);
          } else {
            bucket = new FakeR2Bucket();
            namespace = new FakeNamespace(UploadObject, { BUCKET: bucket });
            store = createResumableWorkersStore(namespace);
          }
          const handler = createResumableUploadHandler({
            store,
            hasher: createHasher,
            maxBytes: MAX,
            maxMetadataBytes: 32,
          });
          const known: KnownUpload[] = [];
          const send = async (
            path: string,
            method: string,
            headers: Record<string, string>,
            body?: Uint8Array,
          ) => {
            const bodyless = method === "GET" || method === "HEAD";
            const response = await handler(
              new Request(`http://fuzz${path}`, {
                method,
                headers,
                body: bodyless || body === undefined ? undefined : body.slice(),
              }),
            );
            await response.arrayBuffer();
            assert.ok(
              response.status >= 200 && response.status < 500,
              `${method} ${path} ${
                JSON.stringify(headers)
              }: ${response.status}`,
            );
            return response;
          };
          // Each upload's offset by the draft's HEAD; undefined once gone.
          const offsetOf = async (upload: KnownUpload) => {
            const head = await send(upload.path, "HEAD", {});
            if (head.status === 404 || head.status === 410) return undefined;
            assert.equal(head.status, 204);
            const offset = Number(head.headers.get("upload-offset"));
            assert.ok(Number.isSafeInteger(offset) && offset >= 0);
            assert.ok(offset <= MAX);
            const length = head.headers.get("upload-length");
            if (length !== null) assert.ok(offset <= Number(length));
            if (head.headers.get("upload-complete") === "?1") {
              assert.equal(String(offset), length);
            }
            return offset;
          };
          for (const [i, step] of steps.entries()) {
            if (evictions[i]) namespace?.evict();
            const target = known.filter((k) => !k.gone)[step.target] ??
              known.findLast((k) => !k.gone);
            // With no upload to send it to, a request creates one.
            const kind = step.kind === "options" || target !== undefined
              ? step.kind
              : "create";
            let path = kind === "create" || kind === "options"
              ? "/uploads"
              : target!.path;
            let method = {
              create: "POST",
              append: "PATCH",
              head: "HEAD",
              delete: "DELETE",
              options: "OPTIONS",
            }[kind];
            const offset = Math.max(
              0,
              (kind === "create" ? 0 : target?.bytes.byteLength ?? 0) +
                step.offsetDelta,
            );
            const declared = step.length === "none"
              ? undefined
              : step.length === "exact"
              ? offset + (step.body?.byteLength ?? 0)
              : step.length;
            const headers: Record<string, string> = {};
            if (step.tus) {
              headers["tus-resumable"] = "1.0.0";
              if (kind === "create") {
                if (declared === undefined) {
                  headers["upload-defer-length"] = "1";
                } else headers["upload-length"] = String(declared);
                headers["upload-metadata"] = "filename d29ybGQ=";
              }
              if (
                kind === "append" ||
                (kind === "create" && step.body !== undefined)
              ) {
                headers["content-type"] = "application/offset+octet-stream";
              }
              if (kind === "append") {
                headers["upload-offset"] = String(offset);
                if (declared !== undefined) {
                  headers["upload-length"] = String(declared);
                }
              }
              if (step.checksum !== "none" && step.body !== undefined) {
                const sha1 = createHash("sha1").update(step.body).digest(
                  "base64",
                );
                headers["upload-checksum"] = step.checksum === "good"
                  ? `sha1 ${sha1}`
                  : "sha1 2jmj7l5rSw0yVb/vlWAYkK/YBwk=";
              }
            } else {
              if (kind === "create" || kind === "append") {
                headers["upload-complete"] = step.complete ? "?1" : "?0";
                if (declared !== undefined) {
                  headers["upload-length"] = String(declared);
                }
              }
              if (kind === "append") {
                headers["content-type"] = "application/partial-upload";
                headers["upload-offset"] = String(offset);
              }
            }
            for (const [name, value] of step.spoil) {
              if (value === "") delete headers[name];
              else headers[name] = value;
            }
            method = step.method ?? method;
            path = step.path ?? path;
            const before = new Map<KnownUpload, number>();
            for (const upload of known) {
              if (!upload.gone) before.set(upload, upload.bytes.byteLength);
            }
            const response = await send(path, method, headers, step.body);
            const location = response.headers.get("location");
            // The upload the request created, or else the one it was for.
            let own = path;
            if (response.status === 201 && location !== null) {
              const created = new URL(location, "http://fuzz").pathname;
              own = created;
              assert.ok(!known.some((k) => k.path === created));
              known.push({
                path: created,
                bytes: new Uint8Array(0),
                gone: false,
              });
            }
            // Only the request's own upload moves, by a prefix of its
            // body; the store holds exactly those bytes.
            for (const upload of known) {
              if (upload.gone) continue;
              const now = await offsetOf(upload);
              if (now === undefined) {
                upload.gone = true;
                continue;
              }
              const was = before.get(upload) ?? 0;
              assert.ok(now >= was, "the offset moved back");
              if (now > was) {
                assert.equal(upload.path, own, "another upload moved");
                assert.ok(step.body !== undefined, "bytes from nowhere");
                upload.bytes = concat([
                  upload.bytes,
                  step.body.subarray(0, now - was),
                ]);
              }
              assert.deepEqual(await stored(upload.path), upload.bytes);
            }
            // No upload but those the answers told of (a creation that
            // failed keeps nothing: its client has no Location for it).
            const live = known.filter((k) => !k.gone).map((k) =>
              k.path.slice("/uploads/".length)
            ).sort();
            assert.deepEqual(await storedIds(), live, "an upload no one knows");
            if (bucket !== undefined) {
              // R2: a complete upload's object, whole; nothing of others.
              const complete = new Set<string>();
              for (const upload of known) {
                const key = `uploads${upload.path.slice("/uploads".length)}`;
                const object = bucket.objects.get(key);
                const done = !upload.gone &&
                  (await send(upload.path, "HEAD", {})).headers.get(
                      "upload-complete",
                    ) === "?1";
                if (done) {
                  complete.add(key);
                  assert.deepEqual(object?.bytes, upload.bytes);
                } else {
                  assert.equal(object, undefined, "an unfinished object");
                }
              }
              for (const { key } of bucket.open.values()) {
                assert.ok(
                  !complete.has(key) &&
                    known.some((k) =>
                      !k.gone && key.endsWith(k.path.slice("/uploads".length))
                    ),
                  `a multipart upload left open for ${key}`,
                );
              }
            }
          }
        },
      ),
      runs,
    );
  } finally {
    await removeDir(dir);
  }
}

/** The upload object class, over the fake bucket bound as BUCKET. */
const UploadObject = createResumableUploadObject({
  bucket: (env) => env.BUCKET as FakeR2Bucket,
});

describe("fuzz: resumable uploads", () => {
  it("createResumableUploadHandler answers any requests with a 2xx or 4xx, and stores exactly the bytes each request's answer accounts for", async () => {
    await fuzzResumableHandler("file", 120);
  });

  it("and over the Workers store (Durable Objects, evicted now and then, and R2): R2 holds an upload's object exactly when it is complete", async () => {
    await fuzzResumableHandler("workers", 120);
  });
});

// ---------- multipart uploads to disk ----------

/**
 * The multipart mode's limits: the decoder's and its own on files and
 * fields; and its charset.
 */
interface FormLimits extends MultipartLimits {
  maxFiles?: number;
  maxFields?: number;
  maxFieldsBytes?: number;
  charset?: string;
}

/**
 * Posts `bytes` (boundary "B", in chunks cut at `points`) to an upload
 * handler in multipart mode whose file parts go to the sinks `open` makes,
 * named part-0, part-1, ...; its status and body.
 */
async function postForm(
  bytes: Uint8Array,
  points: number[],
  open: (storedName: string) => WritableStream<Uint8Array>,
  limits: FormLimits = {},
): Promise<{ status: number; text: string }> {
  let opened = 0;
  const handler = createUploadHandler({
    multipart: {
      ...limits,
      sink: () => {
        const storedName = `part-${opened++}`;
        return { writable: open(storedName), storedName };
      },
    },
  });
  const response = await handler(
    new Request("http://fuzz/", {
      method: "POST",
      headers: { "content-type": "multipart/form-data; boundary=B" },
      body: ReadableStream.from(split(bytes, points)),
    }),
  );
  return { status: response.status, text: await response.text() };
}

describe("fuzz: raw uploads to disk and to R2", () => {
  it("createUploadHandler stores exactly an accepted body, and keeps the previous file or object for a refused one", async () => {
    const dir = await makeTempDir("fuzz-raw-");
    const target = join(dir, "upload.bin");
    const previous = enc.encode("the previous upload");
    try {
      await record.checkAsync(
        "createUploadHandler (raw): arbitrary bodies into a file and into R2",
        fc.asyncProperty(
          anyBytes(200),
          cuts,
          fc.option(fc.nat({ max: 220 }), { nil: undefined }),
          fc.constantFrom<LengthKind>("none", "right", "wrong", "garbage"),
          fc.constantFrom<DigestKind>("none", "right", "wrong", "malformed"),
          fc.oneof(
            { arbitrary: fc.constant(false), weight: 4 },
            { arbitrary: fc.constant(true), weight: 1 },
          ),
          fc.constantFrom("file", "r2", "r2 refusing its put"),
          async (
            bytes,
            points,
            maxBytes,
            lengthKind,
            digestKind,
            drop,
            store,
          ) => {
            await writeFile(target, previous);
            const bucket = new FakeR2Bucket();
            await bucket.put("upload", previous);
            if (store === "r2 refusing its put") bucket.failOn("put");
            const handler = createUploadHandler({
              sink: () =>
                store === "file"
                  ? createFileSink(target)
                  : createR2Sink(bucket, "upload"),
              maxBytes,
              hasher: createHasher,
            });
            const request = uploadRequest(
              bytes,
              points,
              lengthKind,
              digestKind,
              drop,
            );
            const response = await handler(request);
            const text = await response.text();
            const stored = store === "file"
              ? new Uint8Array(await readFile(target))
              : bucket.objects.get("upload")!.bytes;
            // Nothing else left: no temporary file, no open R2 upload.
            assert.deepEqual(await readdir(dir), ["upload.bin"]);
            assert.equal(bucket.open.size, 0, "an R2 upload left open");
            // The statuses the request's faults call for (receiveBody's
            // checks; which one answers depends on which is met first).
            const faults = uploadFaults(
              request,
              bytes,
              digestKind,
              maxBytes,
              drop,
            );
            if (faults.size === 0 && store === "r2 refusing its put") {
              faults.add(500);
            }
            if (faults.size === 0) {
              assert.equal(response.status, 201, text);
              assert.equal(JSON.parse(text).bytes, bytes.byteLength);
              assert.deepEqual(stored, bytes);
              return;
            }
            assert.ok(
              faults.has(response.status) ||
                // The store's refusal, met before a fault found at the end.
                (store === "r2 refusing its put" && response.status === 500),
              `${response.status} ${text} for ${[...faults]}`,
            );
            assert.deepEqual(stored, previous, "a refused upload replaced it");
          },
        ),
        500,
      );
    } finally {
      await removeDir(dir);
    }
  });
});

/** A value or name of a form that names no charset: UTF-8, else windows-1252. */
function utf8OrWindows1252(bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(
      bytes,
    );
  } catch {
    return new TextDecoder("windows-1252").decode(bytes);
  }
}

/** A byte string (one char per byte) as its bytes. */
function byteStringBytes(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

/** Why a form's charsets refuse it (unknown, or bytes not valid in one). */
class CharsetRefusal extends Error {}

/** A label's encoding; a refusal for one TextDecoder does not know. */
function encodingOf(label: string): string {
  try {
    return new TextDecoder(label).encoding;
  } catch {
    throw new CharsetRefusal(`unknown charset ${label}`);
  }
}

/**
 * Text in a charset the form or the handler names: UTF-8, named or not, is
 * read UTF-8, else windows-1252; another strictly, a refusal for bytes not
 * valid in it.
 */
function decodeIn(encoding: string, bytes: Uint8Array): string {
  if (encoding === "utf-8") return utf8OrWindows1252(bytes);
  try {
    return new TextDecoder(encoding, { fatal: true, ignoreBOM: true }).decode(
      bytes,
    );
  } catch {
    throw new CharsetRefusal(`bytes not valid ${encoding}`);
  }
}

/**
 * A part's name or file name in `encoding`, from the parser's reading
 * (`read`: UTF-8, else windows-1252) and the parameter as sent (`raw`).
 * Names in headers cannot be UTF-16: such a form's are read as UTF-8's.
 */
function nameIn(
  encoding: string,
  part: DecodedPart,
  read: string,
  raw: string | undefined,
): string {
  if (raw === undefined) {
    // Only a name that reads alike in every charset, or one from name* or
    // filename* (which names its own), comes without its bytes.
    // deno-lint-ignore no-control-regex
    if (/[\x0e\x0f\x1b\u0080-\uffff]/.test(read)) {
      assert.ok(
        part.headers.some(([header, value]) =>
          header === "content-disposition" && /name\*/i.test(value)
        ),
        `no raw bytes for the name ${JSON.stringify(read)}`,
      );
    }
    return read;
  }
  assert.equal(utf8OrWindows1252(byteStringBytes(raw)), read);
  if (encoding === "utf-16le" || encoding === "utf-16be") return read;
  return decodeIn(encoding, byteStringBytes(raw));
}

/** The names and values a form's parts should be answered with. */
interface ExpectedForm {
  files: { name: string; filename: string }[];
  fields: { name: string; value: string }[];
}

/**
 * What the upload handler should make of a form the decoder takes, by the
 * rule of a browser's form encoding read back (WHATWG HTML): a value in its
 * part's Content-Type charset, else the first `_charset_` field's (that
 * one's own value in its part's charset, else UTF-8), else the handler's
 * `option`; names the same without the part's charset, a file part's with
 * only a `_charset_` field before it. UTF-8 named is UTF-8 unnamed (bytes
 * that are no UTF-8 as windows-1252). A refusal for a charset TextDecoder
 * does not know, or bytes not valid in another named one.
 */
function expectedForm(
  parts: DecodedPart[],
  option: string | undefined,
): ExpectedForm | CharsetRefusal {
  try {
    const optionEncoding = option === undefined ? "utf-8" : encodingOf(option);
    let formEncoding: string | undefined;
    let charsetField: DecodedPart | undefined;
    const files: ExpectedForm["files"] = [];
    const fields: { part: DecodedPart; own: string | undefined }[] = [];
    for (const part of parts) {
      if (part.filename === undefined) {
        const label = parseHeaderValue(part.contentType).params.get("charset");
        const own = label === undefined ? undefined : encodingOf(label);
        fields.push({ part, own });
        if (
          charsetField === undefined && part.name.toLowerCase() === "_charset_"
        ) {
          charsetField = part;
          formEncoding = encodingOf(decodeIn(own ?? "utf-8", part.data));
        }
      } else if (part.filename !== "") {
        const encoding = formEncoding ?? optionEncoding;
        files.push({
          name: nameIn(encoding, part, part.name, part.raw?.name),
          filename: nameIn(
            encoding,
            part,
            part.filename,
            part.raw?.filename,
          ),
        });
      }
    }
    const encoding = formEncoding ?? optionEncoding;
    return {
      files,
      fields: fields.map(({ part, own }) => ({
        name: nameIn(encoding, part, part.name, part.raw?.name),
        value: decodeIn(
          own ?? (part === charsetField ? "utf-8" : encoding),
          part.data,
        ),
      })),
    };
  } catch (error) {
    if (error instanceof CharsetRefusal) return error;
    throw error;
  }
}

/** Byte strings of forms in several charsets, and bytes valid in none. */
const charsetText = fc.oneof(
  fc.constantFrom(
    "a",
    "_charset_",
    "caf\xE9",
    "\xC3\xA9",
    "\x90\x56\x82\xB5\x82\xA2", // 新しい in Shift_JIS
    "\x95\x5C", // 表 in Shift_JIS, its second byte a backslash
    "\x82", // a Shift_JIS lead byte alone
    "\x1B$B\x3F\x37\x24\x37\x1B(B", // 新し in ISO-2022-JP
    "\xEF\xBB\xBFx",
    "",
  ),
  anyBytes(6).map((bytes) => String.fromCharCode(...bytes)),
);

/** Labels a form or a handler may name: known, UTF-8's, and unknown. */
const charsetLabel = fc.constantFrom(
  "UTF-8",
  "utf8",
  "windows-1252",
  "Shift_JIS",
  "euc-jp",
  "iso-2022-jp",
  "utf-16le",
  "x-klingon",
);

/**
 * Forms (boundary "B") whose names, file names and values are in various
 * charsets, some parts naming theirs, with a `_charset_` field somewhere.
 */
const charsetForm = fc.tuple(
  fc.array(
    fc.record({
      name: charsetText.filter((s) => !/["\r\n\0]/.test(s)),
      filename: fc.option(
        charsetText.filter((s) => !/["\r\n\0]/.test(s)),
        { nil: undefined },
      ),
      charset: fc.option(charsetLabel, { nil: undefined }),
      data: charsetText,
    }),
    { maxLength: 4 },
  ),
  fc.option(fc.tuple(fc.nat(), charsetLabel), { nil: undefined }),
).map(([parts, charsetField]) => {
  let text = "";
  const add = (
    name: string,
    filename: string | undefined,
    charset: string | undefined,
    data: string,
  ) => {
    const file = filename === undefined ? "" : `; filename="${filename}"`;
    const type = charset === undefined
      ? ""
      : `\r\nContent-Type: text/plain; charset=${charset}`;
    text +=
      `--B\r\nContent-Disposition: form-data; name="${name}"${file}${type}\r\n\r\n${data}\r\n`;
  };
  parts.forEach(({ name, filename, charset, data }, i) => {
    if (charsetField !== undefined && charsetField[0] % 5 === i) {
      add("_charset_", undefined, undefined, charsetField[1]);
    }
    add(name, filename, charset, data);
  });
  if (charsetField !== undefined && charsetField[0] % 5 >= parts.length) {
    add("_charset_", undefined, undefined, charsetField[1]);
  }
  return byteStringBytes(`${text}--B--\r\n`);
});

describe("fuzz: multipart uploads to disk", () => {
  it("createUploadHandler's multipart mode stores an accepted form's files exactly, and nothing of a refused one", async () => {
    const dir = await makeTempDir("fuzz-form-");
    let cases = 0;
    try {
      await record.checkAsync(
        "createUploadHandler (multipart): arbitrary and mutated forms into files",
        fc.asyncProperty(
          fc.oneof(multipartish, mutatedMultipart, charsetForm),
          cuts,
          fc.oneof(
            fc.constant<FormLimits>({}),
            fc.record<FormLimits>({
              charset: fc.constantFrom("utf-8", "shift_jis", "windows-1252"),
            }),
            fc.record<FormLimits>({
              ...smallDecoderLimits,
              maxFiles: fc.nat({ max: 3 }),
              maxFields: fc.nat({ max: 3 }),
              maxFieldsBytes: fc.nat({ max: 40 }),
              charset: fc.constantFrom("utf-8", "shift_jis", "windows-1252"),
            }, { requiredKeys: [] }),
          ),
          async (bytes, points, limits) => {
            const caseDir = join(dir, String(cases++));
            await mkdir(caseDir);
            const response = await postForm(
              bytes,
              points,
              (name) => createFileSink(join(caseDir, name)),
              limits,
            );
            const text = response.text;
            const stored = (await readdir(caseDir)).sort();
            // The parts as the decoder alone sees them, with the handler's
            // own limits on files and fields applied.
            const {
              maxFiles = 100,
              maxFields = 100,
              maxFieldsBytes = 1024 * 1024,
              charset,
              ...decoderLimits
            } = limits;
            const reference = decodeMultipart([bytes], "B", decoderLimits);
            // The names and values by the form's charsets, or a refusal.
            const expected = "parts" in reference
              ? expectedForm(reference.parts, charset)
              : undefined;
            if (response.status !== 201) {
              assert.ok(
                [400, 413].includes(response.status),
                `${response.status} ${text}`,
              );
              assert.deepEqual(stored, [], "a refused form left files");
              if (!("parts" in reference)) return;
              // Refused though the decoder accepts it: only for the
              // handler's own limits, or what a part's headers ask for
              // (a Content-Length, digest or encoding of its own).
              const files = reference.parts.filter((p) =>
                p.filename !== undefined && p.filename !== ""
              );
              const fields = reference.parts.filter((p) =>
                p.filename === undefined
              );
              const fieldsBytes = fields.reduce(
                (n, p) => n + p.data.byteLength,
                0,
              );
              const plain = reference.parts.every((p) =>
                p.headers.every(([name]) =>
                  name === "content-disposition" || name === "content-type"
                )
              );
              // A part with bytes but no file name (a File named "") is
              // refused too: it was dropped, the form answered 201.
              const unnamed = reference.parts.some((p) =>
                p.filename === "" && p.data.byteLength > 0
              );
              // A charset named (by a part's Content-Type, the form's
              // _charset_) that is unknown, or a name or value not valid in
              // a named one other than UTF-8.
              assert.ok(
                files.length > maxFiles || fields.length > maxFields ||
                  fieldsBytes > maxFieldsBytes || !plain || unnamed ||
                  expected instanceof CharsetRefusal,
                `refused a form the decoder takes: ${text}`,
              );
              return;
            }
            assert.ok(
              "parts" in reference,
              "accepted a form the decoder refuses",
            );
            assert.ok(
              expected !== undefined && !(expected instanceof CharsetRefusal),
              `accepted a form its charsets refuse: ${String(expected)}`,
            );
            const form = JSON.parse(text);
            const files = reference.parts.filter((p) =>
              p.filename !== undefined && p.filename !== ""
            );
            assert.equal(form.files.length, files.length);
            assert.deepEqual(
              form.files.map((f: { name: string; filename: string }) => ({
                name: f.name,
                filename: f.filename,
              })),
              expected.files,
            );
            assert.deepEqual(
              stored,
              form.files.map((f: { storedName: string }) => f.storedName)
                .sort(),
            );
            for (let i = 0; i < files.length; i++) {
              const file = form.files[i];
              assert.equal(file.bytes, files[i].data.byteLength);
              assert.deepEqual(
                new Uint8Array(await readFile(join(caseDir, file.storedName))),
                files[i].data,
              );
            }
            assert.deepEqual(form.fields, expected.fields);
          },
        ),
        200,
      );
    } finally {
      await removeDir(dir);
    }
  });
});

// ---------- multipart uploads to R2 ----------

describe("fuzz: multipart uploads to R2", () => {
  it("createUploadHandler's multipart mode with R2 sinks stores an accepted form's objects exactly, nothing of a refused one, and no object but whole ones when R2 fails", async () => {
    await record.checkAsync(
      "createUploadHandler (multipart): forms into an R2 bucket that may fail",
      fc.asyncProperty(
        fc.oneof(multipartish, mutatedMultipart),
        cuts,
        // The nth put R2 refuses, if any.
        fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
        async (bytes, points, failingPut) => {
          const bucket = new FakeR2Bucket();
          if (failingPut !== undefined) bucket.failOn("put", failingPut);
          const response = await postForm(
            bytes,
            points,
            (name) => createR2Sink(bucket, name),
          );
          const text = response.text;
          assert.equal(bucket.open.size, 0, "a multipart upload left open");
          const reference = decodeMultipart([bytes], "B", {});
          const files = "parts" in reference
            ? reference.parts.filter((p) =>
              p.filename !== undefined && p.filename !== ""
            )
            : [];
          // Every stored object is one part's whole bytes.
          for (const [key, object] of bucket.objects) {
            const index = Number(key.slice("part-".length));
            assert.ok(
              files[index] !== undefined,
              `an object ${key} of no file`,
            );
            assert.deepEqual(object.bytes, files[index].data, key);
          }
          if (response.status === 201) {
            assert.ok("parts" in reference);
            assert.equal(bucket.objects.size, files.length);
            assert.equal(JSON.parse(text).files.length, files.length);
          } else if (response.status === 500) {
            // R2 refused a put while committing: the parts committed before
            // it stay (docs/upload.md, "All or nothing"), none after it.
            assert.ok(failingPut !== undefined, text);
            assert.equal(bucket.objects.size, failingPut - 1);
          } else {
            assert.ok([400, 413].includes(response.status), text);
            assert.equal(bucket.objects.size, 0, "a refused form left objects");
          }
        },
      ),
      300,
    );
  });
});

// ---------- the resumable upload client against a flaky server ----------

/** What the flaky server does to one request, instead of answering right. */
const serverFault = fc.oneof(
  { arbitrary: fc.constant({ kind: "none" as const }), weight: 6 },
  {
    // The connection drops, after the server kept some of the body.
    arbitrary: fc.record({
      kind: fc.constant("cut" as const),
      keep: fc.nat({ max: 40 }),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant("status" as const),
      status: fc.constantFrom(400, 404, 408, 409, 410, 413, 423, 500, 503),
    }),
    weight: 1,
  },
  {
    // The right status with a wrong, missing or malformed Upload-Offset.
    arbitrary: fc.record({
      kind: fc.constant("offset" as const),
      offset: fc.oneof(
        fc.constantFrom(null, "", " ", "x", "-5", "1e3", "1.5", "9".repeat(20)),
        fc.integer({ min: -3, max: 60 }).map(String),
      ),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant("location" as const),
      location: fc.constantFrom(null, "", "http://[::1", "/u/other", "//x"),
    }),
    weight: 1,
  },
);

describe("fuzz: the resumable upload client against a flaky server", () => {
  it("resumableUpload sends each byte at its offset, and completes or fails with an HttpError, never hanging", async () => {
    await record.checkAsync(
      "resumableUpload: a server that drops, refuses and misreports",
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 40 }),
        fc.constantFrom("ietf" as const, "tus" as const),
        fc.boolean(),
        fc.integer({ min: 1, max: 16 }),
        fc.array(serverFault, { maxLength: 30 }),
        async (body, protocol, streamRequests, chunkBytes, faults) => {
          // The server: one upload, at /u/1, holding `stored`.
          let stored: Uint8Array = new Uint8Array(0);
          let created = false;
          let complete = false;
          let overstated = false;
          let requests = 0;
          const flaky: typeof fetch = async (input, init) => {
            const request = new Request(input, init);
            const fault = faults[requests++] ?? { kind: "none" };
            assert.ok(requests <= 200, "no end to the requests");
            const path = new URL(request.url).pathname;
            const sent = new Uint8Array(await request.arrayBuffer());
            const answer = (
              status: number,
              headers: Record<string, string>,
            ) => {
              if (fault.kind === "status") {
                return new Response(null, { status: fault.status });
              }
              if (fault.kind === "offset" && "upload-offset" in headers) {
                if (fault.offset === null) delete headers["upload-offset"];
                else headers["upload-offset"] = fault.offset;
                // A lie the client cannot see through: more bytes than the
                // server holds, within what the client sent.
                if (
                  fault.offset !== null && /^\d+$/.test(fault.offset.trim()) &&
                  Number(fault.offset) > stored.byteLength
                ) overstated = true;
              }
              if (fault.kind === "location" && "location" in headers) {
                if (fault.location === null) delete headers["location"];
                else headers["location"] = fault.location;
              }
              return new Response(null, { status, headers });
            };
            if (request.method === "POST" && path === "/u") {
              if (fault.kind === "cut") throw new TypeError("connection reset");
              created = true;
              if (protocol === "ietf" && body.byteLength === 0) complete = true;
              return answer(201, { location: "/u/1", "upload-offset": "0" });
            }
            if (!created || path !== "/u/1") {
              return new Response(null, { status: 404 });
            }
            if (request.method === "HEAD") {
              if (fault.kind === "cut") throw new TypeError("connection reset");
              return answer(204, {
                "upload-offset": String(stored.byteLength),
                "upload-complete": complete ? "?1" : "?0",
              });
            }
            assert.equal(request.method, "PATCH");
            // The client's own claim: these bytes belong at this offset.
            const declared = Number(request.headers.get("upload-offset"));
            assert.ok(Number.isSafeInteger(declared) && declared >= 0);
            assert.deepEqual(
              sent,
              body.subarray(declared, declared + sent.byteLength),
              "bytes sent at another offset",
            );
            if (declared !== stored.byteLength) {
              return answer(409, {
                "upload-offset": String(stored.byteLength),
              });
            }
            const kept = fault.kind === "cut"
              ? sent.subarray(0, fault.keep)
              : sent;
            stored = concat([stored, kept]);
            if (fault.kind === "cut") throw new TypeError("connection reset");
            if (request.headers.get("upload-complete") === "?1") {
              complete = stored.byteLength === body.byteLength;
            }
            return answer(204, { "upload-offset": String(stored.byteLength) });
          };
          let result: ResumableUploadResult | undefined;
          try {
            result = await resumableUpload("http://flaky/u", body, {
              protocol,
              streamRequests,
              chunkBytes,
              maxRetries: 3,
              retryDelayMs: 0,
              idleTimeoutMs: 0,
              fetch: flaky,
            });
          } catch (error) {
            assertNotForeign(error);
            assert.ok(error instanceof HttpError, String(error));
            return;
          }
          // Done only when the server holds the whole body (or said so).
          assert.equal(result.bytes, body.byteLength);
          if (!overstated) {
            assert.deepEqual(stored, body, "completed without the whole body");
          }
        },
      ),
      1000,
    );
  });
});

// ---------- a WebSocket duplex against any peer ----------

/** What a peer does: a message of some kind, or the close. */
const peerEvent = fc.oneof(
  { arbitrary: fc.record({ binary: anyBytes(24) }), weight: 4 },
  {
    arbitrary: fc.record({ binary: fc.constant(new Uint8Array(0)) }),
    weight: 1,
  },
  { arbitrary: fc.record({ text: fc.string({ maxLength: 12 }) }), weight: 2 },
  { arbitrary: fc.record({ view: anyBytes(12) }), weight: 1 },
  { arbitrary: fc.record({ blob: anyBytes(8) }), weight: 1 },
  {
    arbitrary: fc.record({
      close: fc.constantFrom(1000, 1005, 1001, 1006, 1011, 4000),
      reason: fc.string({ maxLength: 8 }),
    }),
    weight: 1,
  },
);

describe("fuzz: WebSocket duplex", () => {
  it("websocketDuplex reads what any peer sends, ends or fails as documented, and never throws in the socket's events", async () => {
    await record.checkAsync(
      "websocketDuplex: arbitrary messages and closes from the peer",
      fc.asyncProperty(
        fc.array(peerEvent, { maxLength: 12 }),
        fc.nat({ max: 3_000 }),
        async (events, maxBufferedBytes) => {
          // The outcome by the documentation, reading only at the end.
          let bytes: Uint8Array[] = [];
          let queued = 0;
          let outcome: "end" | RegExp | undefined;
          let closeCode: number | undefined;
          for (const event of events) {
            if (outcome !== undefined) break;
            if ("close" in event) {
              outcome = event.close === 1000 || event.close === 1005
                ? "end"
                : new RegExp(`closed with code ${event.close}`);
              continue;
            }
            if ("blob" in event) {
              outcome = /unexpected message type/;
              closeCode = 1011;
              continue;
            }
            const data = "text" in event
              ? enc.encode(event.text)
              : "view" in event
              ? event.view
              : event.binary;
            if (data.byteLength === 0) {
              // An empty text message is nothing; an empty binary one (an
              // ArrayBuffer or a view) is the peer's closeWrite.
              if (!("text" in event)) outcome = "end";
              continue;
            }
            // A message behind others counts 512 bytes more than its own.
            if (
              data.byteLength > maxBufferedBytes - queued ||
              (queued > 0 && queued + data.byteLength + 512 > maxBufferedBytes)
            ) {
              outcome = /more than maxBufferedBytes/;
              closeCode = 1009;
              continue;
            }
            queued += data.byteLength + 512;
            bytes.push(data);
          }
          if (outcome === undefined) outcome = "end"; // closed with 1000 below
          if (outcome !== "end") bytes = [];

          const socket = new FakeWebSocket();
          const stream = websocketDuplex(socket, { maxBufferedBytes });
          for (const event of events) {
            if ("close" in event) socket.end(event.close, event.reason);
            else if ("blob" in event) {
              socket.receive(new Blob([event.blob.slice()]));
            } else if ("text" in event) socket.receive(event.text);
            else if ("view" in event) {
              const copy = event.view.slice();
              socket.receive(new DataView(copy.buffer));
            } else socket.receive(event.binary.slice().buffer);
          }
          socket.end(1000, "");
          const got: Uint8Array[] = [];
          let failure: unknown;
          try {
            for (let chunk; (chunk = await stream.readPartial()) !== null;) {
              got.push(chunk.slice());
            }
          } catch (error) {
            failure = error;
          }
          assert.deepEqual(concat(got), concat(bytes));
          if (outcome === "end") {
            assert.equal(failure, undefined, String(failure));
          } else {
            assertNotForeign(failure);
            assert.ok(
              failure instanceof TypeError || failure instanceof RangeError,
              String(failure),
            );
            assert.match((failure as Error).message, outcome);
          }
          if (closeCode !== undefined) {
            assert.equal(socket.closedWith?.code, closeCode);
          }
          // One reason to close, told once.
          assert.ok(socket.closes <= 1, `closed ${socket.closes} times`);
          await stream.close().catch(() => {});
        },
      ),
      2000,
    );
  });
});

// ---------- the event stream client against a flaky server ----------

/** What the server does with one connection. */
const feedConnection = fc.oneof(
  {
    // Sends `events` events (and maybe half of the next), then drops.
    arbitrary: fc.record({
      kind: fc.constant("drop" as const),
      events: fc.nat({ max: 4 }),
      half: fc.boolean(),
    }),
    weight: 3,
  },
  {
    // Sends `events` events, then ends the response.
    arbitrary: fc.record({
      kind: fc.constant("end" as const),
      events: fc.nat({ max: 4 }),
    }),
    weight: 2,
  },
  { arbitrary: fc.constant({ kind: "refuse" as const }), weight: 1 },
  {
    arbitrary: fc.record({
      kind: fc.constant("status" as const),
      status: fc.constantFrom(200, 204, 404, 500),
      type: fc.constantFrom("text/event-stream", "text/plain"),
    }),
    weight: 1,
  },
);

describe("fuzz: the event stream client against a flaky server", () => {
  it("fetchEventStream delivers each event once and in order across reconnections, and ends or fails as documented", async () => {
    await record.checkAsync(
      "fetchEventStream: a feed that drops, ends, refuses and misanswers",
      fc.asyncProperty(
        fc.integer({ min: 0, max: 12 }),
        fc.array(feedConnection, { maxLength: 10 }),
        async (total, connections) => {
          // Event i (from 1) has id i; a connection resumes after the
          // Last-Event-ID it is sent.
          const event = (i: number) => `id: ${i}\ndata: event ${i}\n\n`;
          let made = 0;
          // A 204 the server sent before the end: the client stops there.
          let stopped = false;
          const feed: typeof fetch = (_input, init) => {
            const headers = new Headers(init?.headers);
            const from = Number(headers.get("last-event-id") ?? 0) + 1;
            const behaviour = connections[made++] ??
              { kind: "end" as const, events: total };
            assert.ok(made <= 100, "no end to the connections");
            if (behaviour.kind === "refuse") {
              return Promise.reject(new TypeError("connection refused"));
            }
            if (from > total && behaviour.kind !== "status") {
              // Everything sent: the server's way to say "do not reconnect".
              return Promise.resolve(new Response(null, { status: 204 }));
            }
            if (behaviour.kind === "status") {
              if (behaviour.status === 204) stopped = true;
              return Promise.resolve(
                new Response(
                  behaviour.status === 204 ? null : "",
                  {
                    status: behaviour.status,
                    headers: { "content-type": behaviour.type },
                  },
                ),
              );
            }
            const last = Math.min(total, from + behaviour.events - 1);
            let text = "";
            for (let i = from; i <= last; i++) text += event(i);
            const drop = behaviour.kind === "drop";
            if (drop && behaviour.half && last < total) {
              text += event(last + 1).slice(0, 9);
            }
            const body = new ReadableStream<Uint8Array>({
              start(controller) {
                controller.enqueue(enc.encode(text));
                if (drop) controller.error(new TypeError("connection reset"));
                else controller.close();
              },
            });
            return Promise.resolve(
              new Response(body, {
                headers: { "content-type": "text/event-stream" },
              }),
            );
          };
          const got: string[] = [];
          let failure: unknown;
          try {
            for await (
              const message of fetchEventStream("http://feed/", {
                fetch: feed,
                retryDelayMs: 0,
                maxRetryDelayMs: 0,
                maxRetries: 3,
              })
            ) {
              got.push(message.id);
              assert.equal(message.data, `event ${message.id}`);
            }
          } catch (error) {
            failure = error;
          }
          // Once each, in order, from the first: never a gap or a repeat.
          assert.deepEqual(got, got.map((_, i) => String(i + 1)));
          if (failure === undefined) {
            if (!stopped) {
              assert.equal(got.length, total, "ended before the last event");
            }
          } else {
            assertNotForeign(failure);
            assert.ok(failure instanceof TypeError, String(failure));
            assert.match(
              (failure as Error).message,
              /^Cannot read event stream: /,
            );
          }
        },
      ),
      300,
    );
  });
});

// ---------- the echo under any request ----------

/** `bytes` compressed with `format` (gzip or deflate). */
async function compressed(
  bytes: Uint8Array,
  format: "gzip" | "deflate",
): Promise<Uint8Array> {
  return concat(
    await Array.fromAsync(
      ReadableStream.from([bytes.slice()]).pipeThrough(
        new CompressionStream(format),
      ),
    ),
  );
}

describe("fuzz: the echo under any request", () => {
  it("createEchoHandler echoes the decoded body exactly, compressed only as accepted, or refuses with 400, 413 or 415", async () => {
    await record.checkAsync(
      "createEchoHandler: bodies, encodings, Accept-Encoding, options",
      fc.asyncProperty(
        anyBytes(200),
        fc.constantFrom("identity", "gzip", "deflate", "garbage-gzip", "br"),
        fc.oneof(
          fc.constant(undefined),
          fc.constantFrom(
            "gzip",
            "deflate",
            "gzip;q=0, deflate",
            "br",
            "identity",
            "*",
            "*;q=0",
            "gzip;q=0.5, deflate;q=0.9",
            ";;,q=",
          ),
        ),
        fc.record({
          compressMinBytes: fc.constantFrom(0, 1024),
          maxDecompressedBytes: fc.constantFrom(64, 67108864),
          readAheadBytes: fc.constantFrom(0, 1048576),
          idleTimeoutMs: fc.constantFrom(0, 30000),
        }),
        fc.boolean(),
        cuts,
        async (bytes, encoding, accept, options, withLength, points) => {
          let sent: Uint8Array = bytes;
          const headers = new Headers();
          if (encoding === "gzip" || encoding === "deflate") {
            sent = await compressed(bytes, encoding);
            headers.set("content-encoding", encoding);
          } else if (encoding === "garbage-gzip") {
            headers.set("content-encoding", "gzip");
          } else if (encoding === "br") {
            headers.set("content-encoding", "br");
          }
          if (accept !== undefined) headers.set("accept-encoding", accept);
          if (withLength) {
            headers.set("content-length", String(sent.byteLength));
          }
          const response = await createEchoHandler(options)(
            new Request("http://echo/", {
              method: "POST",
              headers,
              body: ReadableStream.from(split(sent, points)),
              duplex: "half",
            } as RequestInit),
          );
          // What the echo must refuse (or fail while echoing).
          // (Random bytes, even none, are not a gzip stream.)
          const garbage = encoding === "garbage-gzip";
          const tooBig = (encoding === "gzip" || encoding === "deflate") &&
            bytes.byteLength > options.maxDecompressedBytes;
          if (encoding === "br") {
            assert.equal(response.status, 415);
            await response.body?.cancel();
            return;
          }
          if (response.status !== 200) {
            assert.ok(
              garbage || tooBig,
              `refused a good body: ${response.status}`,
            );
            assert.ok([400, 413].includes(response.status));
            await response.body?.cancel();
            return;
          }
          const coding = response.headers.get("content-encoding");
          if (coding !== null) {
            // Only a coding the client accepted, and the echo offers.
            assert.ok(coding === "gzip" || coding === "deflate", coding);
            assert.ok(
              accept !== undefined && accept.includes(coding) ||
                accept === "*",
              `${coding} for ${accept}`,
            );
          }
          let echoed: Uint8Array;
          try {
            const body = response.body ?? ReadableStream.from([]);
            echoed = concat(
              await Array.fromAsync(
                coding === null
                  ? body
                  : body.pipeThrough(new DecompressionStream(coding)),
              ),
            );
          } catch (error) {
            assertNotForeign(error);
            assert.ok(garbage || tooBig, `a good body failed: ${error}`);
            return;
          }
          // The decoded request, whole.
          assert.ok(!garbage, "garbage echoed as if it decoded");
          assert.deepEqual(echoed, bytes);
        },
      ),
      400,
    );
  });
});
