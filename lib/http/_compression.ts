// Content-Encoding helpers shared by the echo handler, duplexResponse and
// openDuplex: decoding with a decompressed-size limit, encoding, and
// Accept-Encoding negotiation.

import { HttpError } from "./http_error.ts";
import type { Compression } from "./compression.ts";
import { concatBytes } from "../_internal/bytes.ts";
import { isBrowser, isBun } from "../_internal/user_agent.ts";

const SUPPORTED: readonly Compression[] = ["gzip", "deflate"];

/**
 * Checks a `sendCompression` value, or one of an `acceptCompression` list:
 * a name `CompressionStream` does not know ("br") failed every request
 * that asked for it with a 500, and one in other case ("GZIP") never
 * compressed.
 */
export function checkCompression(
  what: string,
  name: string,
  value: unknown,
): Compression {
  if (!SUPPORTED.includes(value as Compression)) {
    const text = String(value);
    throw new TypeError(
      `Cannot ${what}: ${name} ${
        JSON.stringify(text.length > 64 ? text.slice(0, 64) + "…" : text)
      } is not "gzip" or "deflate"`,
    );
  }
  return value as Compression;
}

/**
 * Checks an `acceptCompression` list (`fallback` when undefined): an
 * array of compressions, without repeats.
 */
export function checkCompressionList(
  what: string,
  value: unknown,
  fallback: readonly Compression[],
): readonly Compression[] {
  if (value === undefined) return fallback;
  if (!Array.isArray(value)) {
    throw new TypeError(
      `Cannot ${what}: acceptCompression must be an array of "gzip" or "deflate"`,
    );
  }
  return [
    ...new Set(
      value.map((v) => checkCompression(what, "acceptCompression", v)),
    ),
  ];
}

/**
 * Compressed input is fed to the decompressor in slices of at most this many
 * bytes. Some decompressors (Deno's) emit everything one input chunk expands
 * to as one chunk, and deflate expands at most about 1032:1, so one decoded
 * chunk stays under about 4 MiB however the peer chunks its body.
 */
export const DECODE_SLICE_BYTES = 4096;

// A Map, not an object: a header token such as "__proto__" or "toString"
// must not find an inherited property.
const FORMATS = new Map<string, Compression>([
  ["gzip", "gzip"],
  ["x-gzip", "gzip"],
  ["deflate", "deflate"],
]);

/**
 * The most content codings a body may carry. Each costs a decompressor (tens
 * of KiB) and a pass over every byte: a header repeating `gzip` thousands of
 * times made one request cost 700 MiB. Two covers every real sender.
 */
export const MAX_CODINGS = 2;

/**
 * A 415 for a request's content coding: its answer says, in
 * `Accept-Encoding`, which would have been taken (RFC 9110, section
 * 15.5.16), `identity` for none.
 */
class UnsupportedEncoding extends HttpError {
  #accepted: readonly Compression[];

  constructor(message: string, accepted: readonly Compression[]) {
    super(415, message);
    this.#accepted = accepted;
  }

  override getResponse(): Response {
    const response = super.getResponse();
    response.headers.set(
      "accept-encoding",
      this.#accepted.length > 0 ? this.#accepted.join(", ") : "identity",
    );
    return response;
  }
}

/**
 * Refuses a request body that carries a content coding where bytes are kept
 * as sent (uploads, resumable appends, form parts): stored encoded, a
 * gzipped upload was a file of gzip bytes, its limits counted on them, and
 * a coding nothing here reads was taken all the same. A 415 whose answer
 * says `Accept-Encoding: identity` (RFC 9110, section 15.5.16).
 *
 * @param header The `Content-Encoding` header's value.
 * @param what What refuses it, as "receive body".
 */
export function refuseContentCoding(header: string | null, what: string): void {
  if (header === null) return;
  const codings = header.split(",").map((token) => token.trim())
    .filter((token) => token !== "" && token.toLowerCase() !== "identity");
  if (codings.length === 0) return;
  const shown = codings.join(", ");
  throw new UnsupportedEncoding(
    `Cannot ${what}: it is encoded (Content-Encoding: ${
      shown.length > 64 ? `${shown.slice(0, 64)}...` : shown
    }), and it is kept as sent, never decoded: send it unencoded`,
    [],
  );
}

/**
 * Parses a request's `Content-Encoding` header into the decoders to apply,
 * in the order to apply them (the reverse of the header's). `identity` and
 * an absent header mean none.
 *
 * @param header The header's value.
 * @param accepted The codings the handler takes (its `acceptCompression`).
 * @throws {HttpError} 415 for a coding not in `accepted` or more than
 *   {@linkcode MAX_CODINGS}, its response naming `accepted` in
 *   `Accept-Encoding`.
 */
export function parseContentEncoding(
  header: string | null,
  accepted: readonly Compression[],
): Compression[] {
  if (header === null) return [];
  const codings: Compression[] = [];
  for (const raw of header.split(",")) {
    const token = raw.trim().toLowerCase();
    if (token === "" || token === "identity") continue;
    const format = FORMATS.get(token);
    if (!format || !accepted.includes(format)) {
      const shown = token.length > 64 ? `${token.slice(0, 64)}...` : token;
      throw new UnsupportedEncoding(
        `Cannot decode body: Content-Encoding "${shown}" is not taken here (acceptCompression: ${
          accepted.length > 0 ? accepted.join(", ") : "none"
        })`,
        accepted,
      );
    }
    if (codings.length === MAX_CODINGS) {
      throw new UnsupportedEncoding(
        `Cannot decode body: Content-Encoding lists more than ${MAX_CODINGS} codings`,
        accepted,
      );
    }
    codings.push(format);
  }
  return codings.reverse();
}

// The content codings each runtime's fetch decodes before handing a
// response body over, measured (a Node server answering each coding):
// Deno 2.9.6 and workerd gzip and br only; Bun 1.4.5 also x-gzip, deflate
// and zstd; none of them a list of codings ("deflate, gzip"), which they
// hand over as received. Browsers send their own Accept-Encoding and
// decode whatever they offered, lists included.
const DECODED_BY_FETCH = new Set(["gzip", "br"]);
const DECODED_BY_BUN = new Set(["gzip", "x-gzip", "deflate", "br", "zstd"]);

/**
 * Whether this runtime's `fetch` hands over a response body whose
 * `Content-Encoding` is `header` decoded (the header stays); false for
 * `identity`, which needs no decoding.
 */
export function fetchDecoded(header: string): boolean {
  const tokens = header.split(",").map((token) => token.trim().toLowerCase())
    .filter((token) => token !== "");
  const codings = tokens.filter((token) => token !== "identity");
  if (codings.length === 0) return false; // nothing to decode
  if (isBrowser()) return codings.every((c) => DECODED_BY_BUN.has(c));
  if (isBun()) return codings.length === 1 && DECODED_BY_BUN.has(codings[0]);
  // Deno's fetch decodes a header of exactly one coding: "gzip, identity"
  // is handed over as received (measured; workerd's, which decodes no
  // list, is taken to do the same).
  return tokens.length === 1 && DECODED_BY_FETCH.has(tokens[0]);
}

/**
 * The init of a response whose body is already in the coding its
 * `Content-Encoding` names (the library encoded it, or passes it on as
 * received). Workers otherwise encode such a body once more (workerd
 * gzips a gzip body a second time: the client decodes one layer and gets
 * gzip bytes), unless `encodeBody` is `"manual"`; other runtimes ignore the
 * field, which the DOM's ResponseInit does not name.
 */
export function encodedResponseInit(init: ResponseInit): ResponseInit {
  return { ...init, encodeBody: "manual" } as ResponseInit;
}

/** Cuts chunks into slices of at most `size` bytes (views, no copies). */
function sliceStream(size: number): TransformStream<Uint8Array, Uint8Array> {
  return new TransformStream({
    transform(chunk, controller) {
      for (let i = 0; i < chunk.byteLength; i += size) {
        controller.enqueue(chunk.subarray(i, i + size));
      }
    },
  });
}

/**
 * Decodes `body` through `codings` (from {@linkcode parseContentEncoding})
 * and errors the result with an {@linkcode HttpError} once more than
 * `maxDecompressedBytes` bytes come out: 413, so a decompression bomb costs
 * at most that many bytes plus one decoded chunk. Corrupt input errors it
 * with a 400.
 */
export function decodeBody(
  body: ReadableStream<Uint8Array>,
  codings: Compression[],
  maxDecompressedBytes: number,
): ReadableStream<Uint8Array> {
  if (codings.length === 0) return body;
  let decoded = body;
  for (const coding of codings) {
    decoded = decoded
      .pipeThrough(sliceStream(DECODE_SLICE_BYTES))
      .pipeThrough(
        new DecompressionStream(coding) as unknown as TransformStream<
          Uint8Array,
          Uint8Array
        >,
      );
  }
  const reader = decoded.getReader();
  let total = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
      } catch (cause) {
        controller.error(
          cause instanceof HttpError ? cause : new HttpError(
            400,
            `Cannot decode body: ${
              codings.join(", ")
            } data is corrupt or truncated`,
            { cause },
          ),
        );
        return;
      }
      if (result.done) {
        controller.close();
        return;
      }
      total += result.value.byteLength;
      if (total > maxDecompressedBytes) {
        const error = new HttpError(
          413,
          `Cannot decode body: decompressed size exceeds maxDecompressedBytes ${maxDecompressedBytes}`,
        );
        controller.error(error);
        await reader.cancel(error).catch(() => {});
        return;
      }
      controller.enqueue(result.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/** What {@linkcode decompressBytes} throws: the caller's own error types. */
export interface DecompressErrors {
  /** The error for output past the limit. */
  tooLarge(): Error;
  /** The error for corrupt or truncated input. */
  corrupt(cause: unknown): Error;
}

/**
 * Decompresses one whole compressed buffer (an RPC message) with `coding`
 * and refuses more than `maxBytes` of output. The input goes to the
 * decompressor in slices of {@linkcode DECODE_SLICE_BYTES}, one at a time,
 * and the output is counted as it comes: a bomb costs at most `maxBytes`
 * plus one slice's expansion (about 4 MiB), never its full size. (Written
 * whole, Deno's DecompressionStream returns everything one input chunk
 * expands to as one chunk: a 1 MiB gzip message took 2 GiB.)
 */
export async function decompressBytes(
  data: Uint8Array,
  coding: Compression,
  maxBytes: number,
  errors: DecompressErrors,
): Promise<Uint8Array> {
  const stream = new DecompressionStream(coding) as unknown as TransformStream<
    Uint8Array,
    Uint8Array
  >;
  const writer = stream.writable.getWriter();
  const reader = stream.readable.getReader();
  // Each write waits until the decompressor took the previous slice, and
  // the decompressor waits for the reader: at most one slice is in flight.
  const writing = (async () => {
    for (let i = 0; i < data.byteLength; i += DECODE_SLICE_BYTES) {
      await writer.write(data.subarray(i, i + DECODE_SLICE_BYTES));
    }
    await writer.close();
  })();
  // Write errors surface again as read errors.
  writing.catch(() => {});
  const chunks: Uint8Array[] = [];
  let total = 0;
  while (true) {
    let result: ReadableStreamReadResult<Uint8Array>;
    try {
      result = await reader.read();
    } catch (cause) {
      throw errors.corrupt(cause);
    }
    if (result.done) break;
    total += result.value.byteLength;
    if (total > maxBytes) {
      const error = errors.tooLarge();
      await reader.cancel(error).catch(() => {});
      await writer.abort(error).catch(() => {});
      throw error;
    }
    chunks.push(result.value);
  }
  return concatBytes(chunks, total);
}

/** Compresses `body` with `coding`, or returns it as is without one. */
export function encodeBody(
  body: ReadableStream<Uint8Array>,
  coding: Compression | undefined,
): ReadableStream<Uint8Array> {
  if (!coding) return body;
  return body.pipeThrough(
    new CompressionStream(coding) as unknown as TransformStream<
      Uint8Array,
      Uint8Array
    >,
  );
}

/**
 * Picks, of `offered` (the server's preference order), the coding an
 * `Accept-Encoding` header gives the highest non-zero q-value (RFC 9110,
 * section 12.5.3; `x-gzip` is `gzip`, `*` any coding it does not name), the
 * server's order breaking ties; `undefined` for identity, also when the
 * header names identity with a q-value above every offered coding's
 * (`identity, gzip;q=0.5`; a tie goes to the coding).
 */
export function negotiateCompression(
  acceptEncoding: string | null,
  offered: readonly Compression[],
): Compression | undefined {
  if (!acceptEncoding || offered.length === 0) return undefined;
  const accepted = new Map<string, number>();
  for (const part of acceptEncoding.split(",")) {
    const [coding, ...params] = part.toLowerCase().split(";");
    const name = coding.trim();
    let q = 1;
    for (const param of params) {
      const [key, value = ""] = param.split("=");
      if (key.trim() === "q") q = Number(value.trim() || NaN);
    }
    if (name === "") continue;
    const weight = Number.isFinite(q) ? q : 0;
    // `x-gzip` stands for `gzip` (section 8.4.1.3) unless `gzip` is named.
    if (name === "x-gzip") {
      if (!accepted.has("gzip")) accepted.set("gzip", weight);
      continue;
    }
    accepted.set(name, weight);
  }
  let best: Compression | undefined;
  let bestQ = 0;
  for (const coding of offered) {
    const q = accepted.get(coding) ?? accepted.get("*") ?? 0;
    if (q > bestQ) {
      best = coding;
      bestQ = q;
    }
  }
  // Named, identity competes: "identity, gzip;q=0.5" wants none. Unnamed,
  // it does not (a header that weighs only codings wants one of them).
  const identity = accepted.get("identity") ?? 0;
  return bestQ >= identity ? best : undefined;
}
