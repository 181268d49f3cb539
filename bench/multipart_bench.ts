// multipart/form-data parsing in memory: sluice's MultipartDecoder (push)
// and MultipartStream (streams, back-pressure) against
// @remix-run/multipart-parser (parseMultipart over chunks, and
// parseMultipartStream) and @fastify/busboy (Node streams), on bodies of
// 1 KiB, 10 MiB, 100 x 1 KiB and 5 x 20 MiB split into 64 KiB chunks, as
// a network delivers them. Every parser reads every part's body; cases
// are interleaved and the median of the samples is reported, with each
// parser's ratio to sluice's push decoder. remix decodes names lazily, so
// it also runs reading each part's name and file name ("+ names"), the
// work the others do up front. Each parser first runs for 3 s
// (WARMUP_MS) so that the samples see the JIT's steady state.
//
//   deno run -A bench/multipart_bench.ts            full sizes (~1 minute)
//   deno run -A bench/multipart_bench.ts --smoke    tiny sizes, one sample
//   bun bench/multipart_bench.ts [--smoke]          the same under Bun
//   ... --only "100 x 1 KiB"                        one body size

import process from "node:process";
import { Buffer } from "node:buffer";
import { Busboy } from "@fastify/busboy";
import {
  parseMultipart as remixParse,
  parseMultipartStream as remixParseStream,
} from "@remix-run/multipart-parser";
import { MultipartDecoder, MultipartStream } from "../lib/http/mod.ts";

const SMOKE = process.argv.includes("--smoke") ||
  process.env.BENCH_SMOKE === "1";
const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 64 * KiB;
const BOUNDARY = "----WebKitFormBoundaryq7MA4YWxkTrZu0gW";
const SAMPLES = SMOKE ? 1 : 5;
/** `--only "100 x 1 KiB"` runs one body size. */
const ONLY = process.argv.includes("--only")
  ? process.argv[process.argv.indexOf("--only") + 1]
  : undefined;
/** Repeat a parse until a sample takes at least this long. */
const SAMPLE_MS = SMOKE ? 0 : 100;
/**
 * Parse for this long with each parser before sampling. The JIT needs it:
 * MultipartStream on 100 x 1 KiB ran at 6-150 parses/s for its first two
 * seconds and at 450-990 after (Deno 2.9.6), so a single warm-up call
 * measured its cold start, not its steady rate.
 */
const WARMUP_MS = SMOKE ? 0 : 3000;

interface Case {
  name: string;
  parts: number;
  partBytes: number;
}

const CASES: Case[] = SMOKE
  ? [
    { name: "1 KiB", parts: 1, partBytes: KiB },
    { name: "64 KiB", parts: 1, partBytes: 64 * KiB },
    { name: "10 x 1 KiB", parts: 10, partBytes: KiB },
    { name: "2 x 128 KiB", parts: 2, partBytes: 128 * KiB },
  ]
  : [
    { name: "1 KiB", parts: 1, partBytes: KiB },
    { name: "10 MiB", parts: 1, partBytes: 10 * MiB },
    { name: "100 x 1 KiB", parts: 100, partBytes: KiB },
    { name: "5 x 20 MiB", parts: 5, partBytes: 20 * MiB },
  ];

function randomBytes(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) {
    crypto.getRandomValues(bytes.subarray(i, Math.min(size, i + 65536)));
  }
  return bytes;
}

/** A body like a browser's: file parts of random bytes. */
function makeBody(c: Case): Uint8Array {
  const enc = new TextEncoder();
  const pieces: Uint8Array[] = [];
  for (let i = 0; i < c.parts; i++) {
    pieces.push(enc.encode(
      `${i ? "\r\n" : ""}--${BOUNDARY}\r\n` +
        `Content-Disposition: form-data; name="file${i}"; filename="f${i}.bin"\r\n` +
        "Content-Type: application/octet-stream\r\n\r\n",
    ));
    pieces.push(randomBytes(c.partBytes));
  }
  pieces.push(enc.encode(`\r\n--${BOUNDARY}--\r\n`));
  const size = pieces.reduce((n, p) => n + p.length, 0);
  const body = new Uint8Array(size);
  let offset = 0;
  for (const p of pieces) {
    body.set(p, offset);
    offset += p.length;
  }
  return body;
}

function chunksOf(body: Uint8Array): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < body.length; i += CHUNK) {
    chunks.push(body.subarray(i, i + CHUNK));
  }
  return chunks;
}

type Parser = (chunks: Uint8Array[]) => Promise<number>;

const LIMITS = { maxTotalBytes: 200 * MiB, maxFileBytes: 200 * MiB };

const PARSERS: Record<string, Parser> = {
  "sluice MultipartDecoder": (chunks) => {
    const decoder = new MultipartDecoder(BOUNDARY, LIMITS);
    let bytes = 0;
    for (const chunk of chunks) {
      for (const event of decoder.decode(chunk)) {
        if (event.type === "data") bytes += event.bytes.length;
      }
    }
    decoder.end();
    return Promise.resolve(bytes);
  },
  "sluice MultipartStream": async (chunks) => {
    let bytes = 0;
    const parts = ReadableStream.from(chunks).pipeThrough(
      new MultipartStream(BOUNDARY, LIMITS),
    );
    for await (const part of parts) {
      for await (const chunk of part.body) bytes += chunk.length;
    }
    return bytes;
  },
  "remix parseMultipart": (chunks) => {
    let bytes = 0;
    const options = {
      boundary: BOUNDARY,
      maxFileSize: 200 * MiB,
      maxTotalSize: 1024 * MiB,
    };
    for (const part of remixParse(chunks, options)) bytes += part.bytes.length;
    return Promise.resolve(bytes);
  },
  "remix parseMultipartStream": async (chunks) => {
    let bytes = 0;
    const options = {
      boundary: BOUNDARY,
      maxFileSize: 200 * MiB,
      maxTotalSize: 1024 * MiB,
    };
    for await (
      const part of remixParseStream(ReadableStream.from(chunks), options)
    ) bytes += part.bytes.length;
    return bytes;
  },
  // remix decodes a part's name and file name only when asked; a handler
  // asks for both (to know where the part goes), as sluice and busboy
  // decode them up front. These rows do the same work.
  "remix parseMultipart + names": (chunks) => {
    let bytes = 0;
    const options = {
      boundary: BOUNDARY,
      maxFileSize: 200 * MiB,
      maxTotalSize: 1024 * MiB,
    };
    for (const part of remixParse(chunks, options)) {
      bytes += part.bytes.length;
      if (part.name === undefined || part.filename === undefined) {
        throw new Error("Cannot benchmark: a part without its names");
      }
    }
    return Promise.resolve(bytes);
  },
  "remix parseMultipartStream + names": async (chunks) => {
    let bytes = 0;
    const options = {
      boundary: BOUNDARY,
      maxFileSize: 200 * MiB,
      maxTotalSize: 1024 * MiB,
    };
    for await (
      const part of remixParseStream(ReadableStream.from(chunks), options)
    ) {
      bytes += part.bytes.length;
      if (part.name === undefined || part.filename === undefined) {
        throw new Error("Cannot benchmark: a part without its names");
      }
    }
    return bytes;
  },
  "@fastify/busboy": (chunks) =>
    new Promise((resolve, reject) => {
      let bytes = 0;
      const busboy = new Busboy({
        headers: {
          "content-type": `multipart/form-data; boundary=${BOUNDARY}`,
        },
      });
      busboy.on("file", (_name: string, file: NodeJS.ReadableStream) => {
        file.on("data", (chunk: Buffer) => bytes += chunk.length);
      });
      busboy.on("finish", () => resolve(bytes));
      busboy.on("error", reject);
      for (const chunk of chunks) {
        busboy.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
      }
      busboy.end();
    }),
};

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Seconds per parse, as one sample: repeats until SAMPLE_MS passed. */
async function sample(parser: Parser, chunks: Uint8Array[], expected: number) {
  let runs = 0;
  const start = performance.now();
  do {
    const bytes = await parser(chunks);
    if (bytes !== expected) {
      throw new Error(
        `Cannot benchmark: parsed ${bytes} bytes, not ${expected}`,
      );
    }
    runs++;
  } while (performance.now() - start < SAMPLE_MS);
  return (performance.now() - start) / 1000 / runs;
}

const runtime = "Bun" in globalThis
  ? `Bun ${process.versions.bun}`
  : `Deno ${process.versions.deno}`;
console.log(
  `multipart parsing in memory, ${runtime}, 64 KiB chunks, median of ${SAMPLES}${
    SMOKE ? " (smoke sizes)" : ""
  }`,
);
console.log(
  "| body | parser | MB/s | parses/s | time vs sluice MultipartDecoder |",
);
console.log("| --- | --- | ---: | ---: | ---: |");
for (const c of CASES.filter((c) => !ONLY || c.name === ONLY)) {
  const body = makeBody(c);
  const chunks = chunksOf(body);
  const expected = c.parts * c.partBytes;
  const times: Record<string, number[]> = {};
  for (const name of Object.keys(PARSERS)) {
    times[name] = [];
    const start = performance.now();
    do await PARSERS[name](chunks); // warm-up
     while (performance.now() - start < WARMUP_MS);
  }
  for (let s = 0; s < SAMPLES; s++) {
    for (const [name, parser] of Object.entries(PARSERS)) {
      times[name].push(await sample(parser, chunks, expected));
    }
  }
  const reference = median(times["sluice MultipartDecoder"]);
  for (const name of Object.keys(PARSERS)) {
    const t = median(times[name]);
    console.log(
      `| ${c.name} | ${name} | ${(body.length / t / 1e6).toFixed(0)} | ${
        (1 / t).toFixed(0)
      } | ${(t / reference).toFixed(2)}x |`,
    );
  }
}
