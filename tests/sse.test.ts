// Server-Sent Events: the encoder, the decoder (the WHATWG event-stream
// parsing rules, chunk splits, limits), sseResponse / createSseHandler on a
// real server, the reconnecting fetchEventStream client, and an event
// stream through workerd.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  createSseHandler,
  fetchEventStream,
  type FetchEventStreamOptions,
  SseEncoderStream,
  type SseEvent,
  type SseMessage,
  sseResponse,
} from "../lib/http/mod.ts";
import {
  SseDecoderStream,
  type SseDecoderStreamOptions,
} from "../lib/http/sse_decoder_stream.ts";
import { formatSseEvent } from "../lib/http/sse_encoder_stream.ts";
import { SseParser } from "../lib/http/_sse_parser.ts";
import { collectGarbage } from "./_memory.ts";
import process from "node:process";
import {
  deadline,
  runtime,
  splitAt,
  withServer,
  withTimersAtOnce,
} from "./_helpers.ts";
import { serve } from "../lib/runtime/serve.ts";
import { startWorkerd, type Workerd } from "./_workerd.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const T = 20_000;

function bytes(text: string): Uint8Array {
  return enc.encode(text);
}

async function decode(
  chunks: (string | Uint8Array)[],
  options?: SseDecoderStreamOptions,
): Promise<SseMessage[]> {
  return await Array.fromAsync(
    ReadableStream.from(
      chunks.map((c) => typeof c === "string" ? bytes(c) : c),
    ).pipeThrough(new SseDecoderStream(options)),
  );
}

async function encode(
  events: SseEvent[],
): Promise<string> {
  const stream = ReadableStream.from(events).pipeThrough(
    new SseEncoderStream({ keepAliveMs: 0 }),
  );
  return dec.decode(
    new Uint8Array(await new Response(stream).arrayBuffer()),
  );
}

const msg = (data: string, event = "message", id = ""): SseMessage => ({
  data,
  event,
  id,
});

describe("SseEncoderStream", () => {
  it("SseEncoderStream writes event, id, retry and one data line per line", async () => {
    assert.equal(
      await encode([{ event: "greeting", id: "7", retry: 1500, data: "a" }]),
      "event: greeting\nid: 7\nretry: 1500\ndata: a\n\n",
    );
  });

  it("SseEncoderStream splits data on LF, CR and CRLF into data lines", async () => {
    assert.equal(
      await encode([{ data: "one\ntwo\rthree\r\nfour" }]),
      "data: one\ndata: two\ndata: three\ndata: four\n\n",
    );
  });

  it("SseEncoderStream sends empty data and empty lines of data as bare data fields", async () => {
    assert.equal(await encode([{ data: "" }]), "data\n\n");
    assert.equal(
      await encode([{ data: "a\n\nb" }]),
      "data: a\ndata\ndata: b\n\n",
    );
  });

  it("SseEncoderStream writes comments as lines starting with a colon", async () => {
    assert.equal(
      await encode([{ comment: "hello\nthere" }]),
      ": hello\n: there\n\n",
    );
  });

  it("SseEncoderStream rejects an event type spanning lines", async () => {
    await assert.rejects(encode([{ event: "a\nb", data: "x" }]), {
      name: "TypeError",
      message: /^Cannot encode event: its event must be one line/,
    });
  });

  it("SseEncoderStream rejects an id with a line break or a NUL", async () => {
    await assert.rejects(encode([{ id: "1\r2" }]), TypeError);
    await assert.rejects(encode([{ id: "1\u00002" }]), {
      name: "TypeError",
      message: /NUL/,
    });
  });

  it("SseEncoderStream rejects an id with a control character but a tab, or a space or tab at one end (no Last-Event-ID header could carry it back unchanged)", async () => {
    for (
      const id of [
        "a\u001bb",
        "a\u0001",
        "\u007f",
        "a\u000bb",
        "\t7",
        "8 ",
        " 9",
      ]
    ) {
      await assert.rejects(encode([{ id, data: "x" }]), {
        name: "TypeError",
        message:
          "Cannot encode event: its id contains a control character, or a space or tab at one end, which a client cannot send back unchanged as Last-Event-ID",
      });
    }
    assert.equal(await encode([{ id: "a\tb" }]), "id: a\tb\n\n");
  });

  it("SseEncoderStream rejects a retry that is not a non-negative integer", async () => {
    await assert.rejects(encode([{ retry: -1 }]), {
      name: "RangeError",
      message: /^Cannot encode event: retry must be a non-negative integer/,
    });
    await assert.rejects(encode([{ retry: 1.5 }]), RangeError);
  });

  it("SseEncoderStream rejects an event that is no object, or a field of the wrong type, naming it", async () => {
    // The engine's "event.data.split is not a function" before; a string
    // event was sent as a blank line, its text lost.
    const cases: [unknown, RegExp][] = [
      ["text", /expected an object such as \{ data: "..." \}, got string/],
      [null, /got null/],
      [{ data: { a: 1 } }, /its data must be a string, got object \(send JSON/],
      [{ data: 5 }, /its data must be a string, got number/],
      [{ event: 5, data: "x" }, /its event must be a string, got number/],
      [{ id: 7 }, /its id must be a string, got number/],
      [{ comment: ["a"] }, /its comment must be a string, got object/],
      [
        { retry: "10" },
        /its retry must be a number of milliseconds, got string/,
      ],
    ];
    for (const [event, message] of cases) {
      await assert.rejects(encode([event as SseEvent]), {
        name: "TypeError",
        message,
      });
    }
  });

  it("SseEncoderStream rejects a negative keepAliveMs", () => {
    assert.throws(() => new SseEncoderStream({ keepAliveMs: -1 }), {
      name: "RangeError",
      message: /keepAliveMs/,
    });
  });

  it("SseEncoderStream sends a keep-alive comment when no event comes for keepAliveMs", async () => {
    const encoder = new SseEncoderStream({ keepAliveMs: 10 });
    const reader = encoder.readable.getReader();
    const first = await deadline(reader.read(), T, "keep-alive");
    assert.equal(dec.decode(first.value), ":\n\n");
    const rest = (async () => {
      let text = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return text;
        text += dec.decode(value);
      }
    })();
    const writer = encoder.writable.getWriter();
    await writer.write({ data: "x" });
    await writer.close();
    // Whatever keep-alives came in between, the event follows and the
    // stream ends: the timer is gone with it.
    assert.match(await deadline(rest, T, "end"), /^(:\n\n)*data: x\n\n$/);
  });

  it("SseEncoderStream sends its keep-alive a full keepAliveMs after the last event, none while events come more often", async () => {
    const keepAliveMs = 150;
    const encoder = new SseEncoderStream({ keepAliveMs });
    const reader = encoder.readable.getReader();
    const writer = encoder.writable.getWriter();
    try {
      const chunks: string[] = [];
      // Events every 30 ms for 600 ms: four keep-alive periods without one.
      const started = performance.now();
      let lastEvent = started;
      while (performance.now() - started < 600) {
        const read = reader.read();
        await writer.write({ data: "x" });
        lastEvent = performance.now();
        chunks.push(dec.decode((await deadline(read, T, "the event")).value));
        await new Promise((resolve) => setTimeout(resolve, 30));
      }
      const next = await deadline(reader.read(), T, "the keep-alive");
      const quietMs = performance.now() - lastEvent;
      assert.deepEqual(new Set(chunks), new Set(["data: x\n\n"]));
      assert.equal(dec.decode(next.value), ":\n\n");
      // Timers may fire a millisecond early.
      assert.ok(quietMs >= keepAliveMs - 5, `a keep-alive after ${quietMs} ms`);
    } finally {
      await reader.cancel();
    }
  });

  it("sseResponse encodes in its own body (no transform between): keep-alives while the source is quiet, none queued ahead of a reader that does not read, each event once, then the end", async () => {
    let release!: () => void;
    const quiet = new Promise<void>((resolve) => (release = resolve));
    const response = sseResponse(
      (async function* () {
        yield { id: "1", data: "a" };
        await quiet;
        yield { data: "b\nc" };
      })(),
      { keepAliveMs: 10 },
    );
    const reader = response.body!.getReader();
    // The comment that opens every feed (it makes Bun send the head), then
    // the event.
    assert.equal(
      dec.decode((await deadline(reader.read(), T, "the opening")).value),
      ":\n\n",
    );
    assert.equal(
      dec.decode((await deadline(reader.read(), T, "the event")).value),
      "id: 1\ndata: a\n\n",
    );
    // The source waits: keep-alives come while the reader reads.
    for (let i = 0; i < 3; i++) {
      const next = await deadline(reader.read(), T, "a keep-alive");
      assert.equal(dec.decode(next.value), ":\n\n");
    }
    // Nobody reads for 20 keep-alive periods: at most one waits.
    await new Promise((resolve) => setTimeout(resolve, 200));
    release();
    let rest = "";
    for (;;) {
      const { done, value } = await deadline(reader.read(), T, "the rest");
      if (done) break;
      rest += dec.decode(value);
    }
    assert.match(rest, /^(:\n\n){0,2}data: b\ndata: c\n\n$/);
  });

  it("sseResponse and createSseHandler: an event that cannot be encoded cuts the body with its error and stops the source (its finally runs, the handler's signal aborts)", async () => {
    let finished = false;
    let signal: AbortSignal | undefined;
    const handler = createSseHandler((_request, info) => {
      signal = info.signal;
      return (async function* () {
        try {
          yield { data: "ok" };
          yield { event: "two\nlines" };
          yield { data: "never" };
        } finally {
          finished = true;
        }
      })();
    }, { keepAliveMs: 0 });
    const response = await handler(new Request("http://localhost/"));
    const reader = response.body!.getReader();
    assert.equal(dec.decode((await reader.read()).value), ":\n\n");
    assert.equal(dec.decode((await reader.read()).value), "data: ok\n\n");
    await assert.rejects(reader.read(), {
      name: "TypeError",
      message: /^Cannot encode event: its event must be one line/,
    });
    await deadline(
      (async () => {
        while (!finished) await new Promise((r) => setTimeout(r, 1));
      })(),
      T,
      "the generator's finally",
    );
    assert.equal(signal?.aborted, true);
  });

  it(
    "createSseHandler in Bun.serve with its defaults keeps a quiet feed open: the default keep-alive comes 3 s before the earliest close of Bun's 10 s idle timeout, 8 s in its 4-s ticks (at 15 s the feed was cut after 10-12 s; at 8 s it raced that tick)",
    { skip: runtime !== "bun" && "Bun.serve's idle timeout" },
    async () => {
      const bun = (globalThis as unknown as {
        Bun: {
          serve(options: {
            port: number;
            hostname: string;
            fetch: (request: Request) => Response | Promise<Response>;
          }): { port: number; stop(force?: boolean): Promise<void> };
        };
      }).Bun;
      const server = bun.serve({
        port: 0,
        hostname: "127.0.0.1",
        fetch: createSseHandler(async function* (_request, { signal }) {
          yield { data: "hello" };
          await new Promise((resolve) =>
            signal.addEventListener("abort", resolve, { once: true })
          );
        }),
      });
      try {
        const response = await fetch(`http://127.0.0.1:${server.port}/`);
        const reader = response.body!.getReader();
        let text = "";
        let helloAt = 0;
        while (!text.includes("data: hello\n\n:\n\n")) {
          const { done, value } = await deadline(
            reader.read(),
            15_000,
            "the first keep-alive",
          );
          assert.ok(!done, `the feed ended after ${JSON.stringify(text)}`);
          text += dec.decode(value);
          if (!helloAt && text.includes("data: hello")) {
            helloAt = performance.now();
          }
        }
        assert.equal(text, ":\n\ndata: hello\n\n:\n\n");
        // Bun closes a connection idle for 8 s at the earliest (its 10 s
        // in 4-s ticks, as they fall): the keep-alive leaves 3 s, for a
        // late timer, before it.
        const keptAliveAfter = performance.now() - helloAt;
        assert.ok(
          keptAliveAfter >= 4_900 && keptAliveAfter < 6_500,
          `the keep-alive came ${
            Math.round(keptAliveAfter)
          } ms after the event`,
        );
        await reader.cancel();
      } finally {
        await server.stop(true);
      }
    },
  );

  it("SseEncoderStream stops its keep-alive when the reader cancels", async () => {
    const encoder = new SseEncoderStream({ keepAliveMs: 5 });
    const reader = encoder.readable.getReader();
    await reader.read();
    await reader.cancel("done");
    // The writable side errors with the reason; no timer is left (the Deno
    // test sanitizer would report one).
    await assert.rejects(encoder.writable.getWriter().ready);
  });
});

describe("SseDecoderStream", () => {
  it("SseDecoderStream decodes the HTML standard's example streams", async () => {
    assert.deepEqual(
      await decode([
        "data: YHOO\ndata: +2\ndata: 10\n\n",
        ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
      ]),
      [
        msg("YHOO\n+2\n10"),
        msg("first event", "message", "1"),
        msg("second event", "message", ""),
        msg(" third event", "message", ""),
      ],
    );
  });

  it("SseDecoderStream treats a field without colon as an empty value", async () => {
    assert.deepEqual(await decode(["data\n\ndata\ndata\n\ndata:\n"]), [
      msg(""),
      msg("\n"),
    ]);
  });

  it("SseDecoderStream accepts CR, LF and CRLF line ends, mixed", async () => {
    assert.deepEqual(
      await decode(["data: a\r\ndata: b\rdata: c\n\r\nevent: e\rdata: d\r\r"]),
      [msg("a\nb\nc"), msg("d", "e")],
    );
  });

  it("SseDecoderStream joins a CRLF split between two chunks", async () => {
    assert.deepEqual(
      await decode(["data: a\r", "\ndata: b\r", "\n\r", "\n"]),
      [msg("a\nb")],
    );
  });

  it("SseDecoderStream drops a leading BOM, even split, and only one", async () => {
    assert.deepEqual(
      await decode([
        new Uint8Array([0xef]),
        new Uint8Array([0xbb, 0xbf]),
        "data: x\n\n",
      ]),
      [msg("x")],
    );
    // A second BOM is part of the first line, whose field is then unknown.
    assert.deepEqual(
      await decode([
        new Uint8Array([0xef, 0xbb, 0xbf, 0xef, 0xbb, 0xbf]),
        "data: x\n\ndata: y\n\n",
      ]),
      [msg("y")],
    );
  });

  it("SseDecoderStream keeps bytes that only start like a BOM", async () => {
    assert.deepEqual(
      await decode([new Uint8Array([0xef, 0xbb]), "\ndata: x\n\n"]),
      [msg("x")],
    );
  });

  it("SseDecoderStream ignores comments and unknown fields", async () => {
    assert.deepEqual(
      await decode([":comment\nfoo: bar\ndata: a\n: more\n\n"]),
      [msg("a")],
    );
  });

  it("SseDecoderStream removes one space after the colon, not two", async () => {
    assert.deepEqual(await decode(["data:  a\n\n"]), [msg(" a")]);
  });

  it("SseDecoderStream takes retry only when it is all ASCII digits", async () => {
    const decoder = new SseDecoderStream();
    const writer = decoder.writable.getWriter();
    const done = Array.fromAsync(decoder.readable);
    await writer.write(
      bytes("retry: 1500\n\nretry: 2x\nretry: -1\nretry: \n\n"),
    );
    assert.equal(decoder.retryMs, 1500);
    await writer.write(bytes("retry:42\n\n"));
    await writer.close();
    assert.equal(decoder.retryMs, 42);
    assert.deepEqual(await done, []);
  });

  it("SseDecoderStream ignores an id containing NUL", async () => {
    assert.deepEqual(
      await decode(["id: 1\ndata: a\n\nid: 2\u00003\ndata: b\n\n"]),
      [msg("a", "message", "1"), msg("b", "message", "1")],
    );
  });

  it("SseDecoderStream keeps the last id across events and resets it with an empty id", async () => {
    assert.deepEqual(
      await decode(["id: 5\n\ndata: a\n\nid\ndata: b\n\n"]),
      [msg("a", "message", "5"), msg("b", "message", "")],
    );
  });

  it("SseDecoderStream keeps a given lastEventId until it dispatches, as EventSource does across connections", async () => {
    // Nothing dispatched: the id from before stays.
    let decoder = new SseDecoderStream({ lastEventId: "7" });
    await Array.fromAsync(
      ReadableStream.from([bytes(": hello\ndata: unfinished")]).pipeThrough(
        decoder,
      ),
    );
    assert.equal(decoder.lastEventId, "7");
    // An event without an id field carries the id it started from, as
    // Chromium's EventSource starts a connection's id buffer (it was "":
    // a keep-alive on a resumed connection then lost the id, and the next
    // reconnection replayed the whole feed).
    decoder = new SseDecoderStream({ lastEventId: "7" });
    assert.deepEqual(
      await Array.fromAsync(
        ReadableStream.from([bytes("data: a\n\n")]).pipeThrough(decoder),
      ),
      [msg("a", "message", "7")],
    );
    assert.equal(decoder.lastEventId, "7");
    // An empty id field clears it.
    decoder = new SseDecoderStream({ lastEventId: "7" });
    assert.deepEqual(
      await Array.fromAsync(
        ReadableStream.from([bytes("id\ndata: a\n\n")]).pipeThrough(decoder),
      ),
      [msg("a", "message", "")],
    );
    assert.equal(decoder.lastEventId, "");
  });

  it("SseDecoderStream dispatches nothing for a block without data, but resets the event type", async () => {
    assert.deepEqual(
      await decode(["event: x\n\ndata: a\n\n"]),
      [msg("a")],
    );
  });

  it("SseDecoderStream drops an unfinished event at the end of the stream", async () => {
    assert.deepEqual(await decode(["data: a\n\ndata: b\n"]), [msg("a")]);
    assert.deepEqual(await decode(["data: a\n\ndata: b"]), [msg("a")]);
  });

  it("SseDecoderStream replaces invalid UTF-8 and decodes characters split across chunks", async () => {
    const euro = bytes("data: €\n\n");
    assert.deepEqual(
      await decode([euro.slice(0, 7), euro.slice(7)]),
      [msg("€")],
    );
    assert.deepEqual(
      await decode([
        new Uint8Array([0x64, 0x61, 0x74, 0x61, 0x3a, 0xff, 0x0a, 0x0a]),
      ]),
      [msg("\ufffd")],
    );
  });

  it("SseDecoderStream rejects a line over maxLineBytes", async () => {
    await assert.rejects(
      decode(["data: ", "x".repeat(20), "\n\n"], { maxLineBytes: 16 }),
      {
        name: "RangeError",
        message: "Cannot decode event stream: a line exceeds maxLineBytes 16",
      },
    );
    // Exactly at the limit is fine.
    assert.deepEqual(
      await decode(["data: 0123456789\n\n"], { maxLineBytes: 16 }),
      [msg("0123456789")],
    );
  });

  it("SseDecoderStream rejects an event whose data lines exceed maxEventBytes", async () => {
    await assert.rejects(
      decode(["data: 0123456789\n".repeat(5) + "\n"], { maxEventBytes: 64 }),
      {
        name: "RangeError",
        message:
          "Cannot decode event stream: an event's data exceeds maxEventBytes 64",
      },
    );
  });

  it("SseDecoderStream counts each data line 32 bytes more than its own against maxEventBytes", async () => {
    // Counted by their bytes alone, 15 MiB of empty data lines fitted the
    // 16 MiB default and held 80-120 MiB of Deno's heap (137-159 of
    // Bun's): the data is built a line at a time.
    const lines = (n: number) => "data:\n".repeat(n) + "\n";
    // An empty data line counts its 5 bytes, its end and 32: 1,000 of
    // them 38,000 bytes, 1,100 of them 41,800 (6,600 before).
    const [event] = await decode([lines(1_000)], { maxEventBytes: 40_000 });
    assert.equal(event.data, "\n".repeat(999));
    await assert.rejects(
      decode([lines(1_100)], { maxEventBytes: 40_000 }),
      { name: "RangeError" },
    );
    // The default: 600,000 empty lines (3.6 MB) pass 16 MiB.
    await assert.rejects(decode([lines(600_000)]), { name: "RangeError" });
  });

  it("a line trickled a byte per chunk is kept as its bytes (500,000 one-byte chunks held 100 MiB)", () => {
    // Each piece of an unfinished line was kept as a small array of its
    // own, about 200 bytes a byte: a server trickling a line up to
    // maxLineBytes (1 MiB) made a client hold 200 MiB.
    const memory = () => {
      const { heapUsed, arrayBuffers } = process.memoryUsage();
      return heapUsed + arrayBuffers;
    };
    collectGarbage();
    const before = memory();
    const parser = new SseParser({
      maxLineBytes: 1 << 20,
      maxEventBytes: 16 << 20,
    });
    parser.push(new TextEncoder().encode("data: "));
    for (let i = 0; i < 500_000; i++) parser.push(new Uint8Array([0x61]));
    collectGarbage();
    const held = memory() - before;
    const [event] = parser.push(new TextEncoder().encode("\n\n"));
    assert.equal(event.data, "a".repeat(500_000));
    assert.ok(
      held < 16 * 1024 * 1024,
      `${(held / 2 ** 20).toFixed(1)} MiB held`,
    );
  });

  it("SseDecoderStream reads a CR, an empty chunk and an LF as one line ending", async () => {
    // The empty chunk cleared the CR it followed: the LF became an empty
    // line, and one event came out as two.
    assert.deepEqual(
      await decode(["data: a\r", "", "\ndata: b\r\n\r\n"]),
      [msg("a\nb")],
    );
  });

  it("SseDecoderStream rejects negative limits", () => {
    assert.throws(() => new SseDecoderStream({ maxLineBytes: -1 }), RangeError);
    assert.throws(
      () => new SseDecoderStream({ maxEventBytes: 0.5 }),
      RangeError,
    );
  });

  it("SseDecoderStream gives the same events for one-byte and two-byte chunks", async () => {
    const text = "\ufeffid: 1\r\nevent: a\r\ndata: x\r\ndata: y€\r\n\r\n" +
      ": c\rretry: 9\rdata\r\rdata: z\n\n";
    const all = bytes(text);
    const whole = await decode([all]);
    assert.equal(whole.length, 3);
    for (const size of [1, 2, 3]) {
      const parts: Uint8Array[] = [];
      for (let i = 0; i < all.length; i += size) {
        parts.push(all.slice(i, i + size));
      }
      assert.deepEqual(await decode(parts), whole, `chunks of ${size}`);
    }
  });

  it("SseDecoderStream gives the same events for any split of the same bytes (property)", async () => {
    const piece = fc.constantFrom(
      "data",
      "data:",
      ": ",
      "id",
      "id: 7",
      "event: e",
      "retry: 10",
      "x",
      "€",
      " ",
      ":",
      "\n",
      "\r",
      "\r\n",
      "\u0000",
      "\ufeff",
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(piece, { maxLength: 60 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        async (pieces, cuts) => {
          const all = bytes(pieces.join(""));
          assert.deepEqual(
            await decode(splitAt(all, cuts)),
            await decode([all]),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it("SseDecoderStream decodes what SseEncoderStream encodes, split anywhere (property)", async () => {
    const text = fc.string({ maxLength: 20 });
    const oneLine = text.map((s) =>
      s.replaceAll("\0", "_").replace(/[\r\n]/g, "_")
    );
    const event = fc.record({
      data: fc.option(text, { nil: undefined }),
      event: fc.option(oneLine, { nil: undefined }),
      // An id keeps no space or tab at its ends (the encoder refuses one:
      // a Last-Event-ID header would lose it).
      id: fc.option(oneLine.map((s) => s.replace(/^[ \t]+|[ \t]+$/g, "")), {
        nil: undefined,
      }),
      comment: fc.option(text, { nil: undefined }),
    }, { requiredKeys: [] });
    await fc.assert(
      fc.asyncProperty(
        fc.array(event, { maxLength: 10 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        async (events, cuts) => {
          const expected: SseMessage[] = [];
          let id = "";
          for (const e of events) {
            if (e.id !== undefined) id = e.id;
            if (e.data !== undefined) {
              expected.push({
                data: e.data.replace(/\r\n|\r/g, "\n"),
                event: e.event || "message",
                id,
              });
            }
          }
          const all = bytes(await encode(events));
          assert.deepEqual(await decode(splitAt(all, cuts)), expected);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("formatSseEvent and the decoder agree on the last id of an id-only event", async () => {
    const decoder = new SseDecoderStream();
    const done = Array.fromAsync(decoder.readable);
    const writer = decoder.writable.getWriter();
    await writer.write(bytes(formatSseEvent({ id: "42" })));
    await writer.close();
    assert.deepEqual(await done, []);
    assert.equal(decoder.lastEventId, "42");
  });
});

describe("sseResponse and createSseHandler", () => {
  it("sseResponse sets the event-stream headers and no Content-Length", async () => {
    const response = sseResponse([{ data: "a" }], {
      keepAliveMs: 0,
      headers: { "x-extra": "1", "content-type": "text/plain" },
    });
    assert.equal(
      response.headers.get("content-type"),
      "text/event-stream; charset=utf-8",
    );
    assert.equal(
      response.headers.get("cache-control"),
      "no-cache, no-transform",
    );
    assert.equal(response.headers.get("content-encoding"), "identity");
    assert.equal(response.headers.get("content-length"), null);
    assert.equal(response.headers.get("x-extra"), "1");
    await response.body!.cancel();
  });

  it("sseResponse streams each event to a real client before the stream ends, even with Accept-Encoding: gzip", async () => {
    const release = Promise.withResolvers<void>();
    await withServer(
      () =>
        sseResponse(
          (async function* () {
            yield { data: "first" };
            await release.promise;
            yield { data: "second" };
          })(),
          { keepAliveMs: 0 },
        ),
      async (server) => {
        const response = await fetch(server.url, {
          headers: { "accept-encoding": "gzip, deflate, br" },
        });
        assert.equal(response.headers.get("content-length"), null);
        assert.notEqual(response.headers.get("content-encoding"), "gzip");
        const reader = response.body!.pipeThrough(new SseDecoderStream())
          .getReader();
        const first = await deadline(reader.read(), T, "first event");
        assert.deepEqual(first.value, msg("first"));
        release.resolve();
        assert.deepEqual((await reader.read()).value, msg("second"));
        assert.equal((await reader.read()).done, true);
      },
    );
  });

  it("createSseHandler aborts the handler's signal and ends its generator when the client goes away", async () => {
    const finished = Promise.withResolvers<string>();
    const handler = createSseHandler(async function* (_request, { signal }) {
      try {
        yield { data: "hello" };
        await new Promise((resolve) =>
          signal.addEventListener("abort", resolve, { once: true })
        );
        yield { data: "never read" };
      } finally {
        finished.resolve(signal.aborted ? "aborted" : "not aborted");
      }
    }, { keepAliveMs: 0 });
    await withServer(handler, async (server) => {
      const response = await fetch(server.url);
      const reader = response.body!.pipeThrough(new SseDecoderStream())
        .getReader();
      assert.deepEqual((await reader.read()).value, msg("hello"));
      await reader.cancel();
      assert.equal(
        await deadline(finished.promise, T, "generator end"),
        "aborted",
      );
    });
  });

  it("createSseHandler answers HEAD with the headers and no body, its source never started, OPTIONS (a CORS preflight) 204 and PUT and DELETE 405, with the options' headers, without calling the handler (each ran the feed)", async () => {
    const seen: string[] = [];
    const handle = createSseHandler((request) => {
      seen.push(`handler ${request.method}`);
      return (async function* () {
        seen.push(`source ${request.method}`);
        yield { id: "1", data: "one" };
      })();
    }, {
      keepAliveMs: 0,
      headers: [
        ["x-feed", "a"],
        ["access-control-allow-origin", "*"],
        ["access-control-allow-headers", "last-event-id"],
        ["content-type", "text/event-stream"],
        ["set-cookie", "a=1"],
        ["set-cookie", "b=2"],
      ],
    });
    const url = "http://localhost/events";
    const head = await handle(new Request(url, { method: "HEAD" }));
    assert.equal(head.status, 200);
    assert.equal(head.body, null);
    assert.equal(
      head.headers.get("content-type"),
      "text/event-stream; charset=utf-8",
    );
    assert.equal(head.headers.get("x-feed"), "a");
    // A preflight passes with the feed's own Access-Control-* headers, as
    // it did when it ran the feed.
    const preflight = await handle(
      new Request(url, {
        method: "OPTIONS",
        headers: { "access-control-request-method": "GET" },
      }),
    );
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get("allow"), "GET, HEAD, POST");
    assert.equal(
      preflight.headers.get("access-control-allow-headers"),
      "last-event-id",
    );
    for (const method of ["PUT", "DELETE", "PATCH"]) {
      const response = await handle(new Request(url, { method }));
      assert.equal(response.status, 405, method);
      assert.equal(response.headers.get("allow"), "GET, HEAD, POST");
      assert.equal(response.headers.get("access-control-allow-origin"), "*");
      // The answer's own type wins; each cookie is kept.
      assert.equal(
        response.headers.get("content-type"),
        "text/plain; charset=utf-8",
      );
      assert.deepEqual(response.headers.getSetCookie(), ["a=1", "b=2"]);
      assert.equal(
        await response.text(),
        `Cannot serve event stream: method ${method} is not GET, HEAD or POST`,
      );
    }
    const post = await handle(new Request(url, { method: "POST", body: "{}" }));
    assert.equal(await post.text(), ":\n\nid: 1\ndata: one\n\n");
    assert.deepEqual(seen, ["handler HEAD", "handler POST", "source POST"]);
    // The handler may still refuse a HEAD, as its GET.
    const refusing = createSseHandler(() => {
      throw { getResponse: () => new Response(null, { status: 401 }) };
    });
    const denied = await refusing(new Request(url, { method: "HEAD" }));
    assert.equal(denied.status, 401);
  });

  it("createSseHandler answers a thrown HttpError-like error with its response", async () => {
    const handler = createSseHandler(() => {
      throw Object.assign(new Error("no"), {
        getResponse: () => new Response("no", { status: 403 }),
      });
    });
    const response = await handler(new Request("http://x/"));
    assert.equal(response.status, 403);
    assert.equal(await response.text(), "no");
  });
});

/** A server whose event log clients read and resume. */
function logServer(
  answer: (lastEventId: string, attempt: number) => Response | undefined,
) {
  const seen: string[] = [];
  const handle = createSseHandler(
    (_request, { lastEventId }) => {
      seen.push(lastEventId);
      const custom = answer(lastEventId, seen.length);
      if (custom) {
        throw Object.assign(new Error(), { getResponse: () => custom });
      }
      const from = lastEventId === "" ? 1 : Number(lastEventId) + 1;
      return (async function* () {
        if (seen.length === 1) yield { retry: 5 };
        // Three events per connection, then the server ends the stream.
        for (let i = from; i < from + 3; i++) {
          yield { id: String(i), data: `event ${i}` };
        }
      })();
    },
    { keepAliveMs: 0 },
  );
  return { seen, handle };
}

describe("createSseHandler in Workers (its user agent), a client that leaves while the handler makes its source", () => {
  it("aborts the handler's signal and never starts the source (the abort came before the listener, and the source ran on)", async () => {
    // workerd cancels no body whose client left; with enable_request_signal
    // it aborts request.signal, which may happen while the handler still
    // awaits (an auth or database lookup).
    const navigator = globalThis.navigator as { userAgent: string };
    // Under Bun userAgent is the object's own: put back as it was.
    const own = Object.getOwnPropertyDescriptor(navigator, "userAgent");
    Object.defineProperty(navigator, "userAgent", {
      value: "Cloudflare-Workers",
      configurable: true,
    });
    let handler;
    try {
      handler = createSseHandler(async (_request, { signal }) => {
        seen.signal = signal;
        await new Promise((resolve) => setTimeout(resolve, 50));
        return (async function* () {
          for (let i = 0;; i++) {
            seen.yields++;
            yield { data: String(i) };
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
        })();
      }, { keepAliveMs: 0 });
    } finally {
      if (own) Object.defineProperty(navigator, "userAgent", own);
      else delete (navigator as { userAgent?: string }).userAgent;
    }
    assert.notEqual(navigator.userAgent, "Cloudflare-Workers");
    const seen: { signal?: AbortSignal; yields: number } = { yields: 0 };
    const client = new AbortController();
    const answer = handler(
      new Request("http://localhost/events", { signal: client.signal }),
    );
    setTimeout(() => client.abort(new Error("client left")), 10);
    const response = await answer;
    // The opening comment alone, then the end.
    const reader = response.body!.getReader();
    const opening = await deadline(reader.read(), T, "the opening");
    assert.equal(dec.decode(opening.value), ":\n\n");
    const read = await deadline(reader.read(), T, "the body's end");
    assert.equal(read.done, true);
    assert.equal(seen.signal?.aborted, true);
    assert.equal(seen.yields, 0);
  });
});

describe("fetchEventStream", () => {
  it("fetchEventStream reconnects after the server's retry delay and resumes with Last-Event-ID", async () => {
    const { seen, handle } = logServer((_, attempt) =>
      attempt === 3 ? new Response(null, { status: 204 }) : undefined
    );
    await withServer(handle, async (server) => {
      // retryDelayMs of a minute: only the server's `retry: 5` lets this finish.
      const messages = await deadline(
        Array.fromAsync(fetchEventStream(server.url, { retryDelayMs: 60_000 })),
        T,
        "event stream",
      );
      assert.deepEqual(
        messages.map((m) => m.id),
        ["1", "2", "3", "4", "5", "6"],
      );
      assert.equal(messages[3].data, "event 4");
      assert.deepEqual(seen, ["", "3", "6"]);
    });
  });

  it("fetchEventStream sends lastEventId and headers on the first connection", async () => {
    let headers: Headers | undefined;
    await withServer((request) => {
      headers = request.headers;
      return new Response(null, { status: 204 });
    }, async (server) => {
      const messages = await Array.fromAsync(
        fetchEventStream(server.url, {
          lastEventId: "41",
          headers: { authorization: "Bearer t" },
        }),
      );
      assert.deepEqual(messages, []);
      assert.equal(headers?.get("last-event-id"), "41");
      assert.equal(headers?.get("authorization"), "Bearer t");
      assert.equal(headers?.get("accept"), "text/event-stream");
    });
  });

  it("fetchEventStream takes a last-event-id among headers as the first connection's id (it was dropped), the ids it receives after it", async () => {
    const seen: (string | null)[] = [];
    await withServer((request) => {
      seen.push(request.headers.get("last-event-id"));
      return seen.length === 3
        ? new Response(null, { status: 204 })
        : new Response(`retry: 5\nid: ${seen.length}\ndata: x\n\n`, {
          headers: { "content-type": "text/event-stream" },
        });
    }, async (server) => {
      const messages = await deadline(
        Array.fromAsync(
          fetchEventStream(server.url, {
            headers: { "Last-Event-ID": "41" },
          }),
        ),
        T,
        "event stream",
      );
      assert.deepEqual(messages.map((m) => m.id), ["1", "2"]);
      assert.deepEqual(seen, ["41", "1", "2"]);
    });
    // Sent as given: a Latin-1 value keeps its bytes.
    let raw: string | null = null;
    await withServer((request) => {
      raw = request.headers.get("last-event-id");
      return new Response(null, { status: 204 });
    }, async (server) => {
      await Array.fromAsync(
        fetchEventStream(server.url, {
          headers: { "last-event-id": "caf\u00e9" },
        }),
      );
      assert.equal(raw, "caf\u00e9");
    });
  });

  it("fetchEventStream resumes from the last delivered event after the connection drops", async () => {
    // The server never ends a stream; the client's fetch loses each
    // connection right after its first event (a body that errors as a
    // dropped connection does), which is deterministic on every runtime.
    const seen: string[] = [];
    const handler = createSseHandler((_request, { lastEventId, signal }) => {
      seen.push(lastEventId);
      if (seen.length === 3) {
        throw Object.assign(new Error(), {
          getResponse: () => new Response(null, { status: 204 }),
        });
      }
      return (async function* () {
        yield { retry: 1, id: String(seen.length), data: "x" };
        await new Promise((resolve) =>
          signal.addEventListener("abort", resolve, { once: true })
        );
      })();
    }, { keepAliveMs: 0 });
    const dropping = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const response = await fetch(input, init);
      if (!response.body) return response;
      const reader = response.body.getReader();
      let sent = "";
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (sent.includes("\n\n")) {
            await reader.cancel();
            controller.error(new TypeError("connection lost"));
            return;
          }
          const { done, value } = await reader.read();
          if (done) return controller.close();
          sent += dec.decode(value);
          controller.enqueue(value);
        },
        cancel: (reason) => reader.cancel(reason),
      });
      return new Response(body, response);
    }) as typeof fetch;
    await withServer(handler, async (server) => {
      const messages = await deadline(
        Array.fromAsync(
          fetchEventStream(server.url, {
            retryDelayMs: 60_000,
            fetch: dropping,
          }),
        ),
        T,
        "event stream",
      );
      assert.deepEqual(messages.map((m) => m.id), ["1", "2"]);
      assert.deepEqual(seen, ["", "1", "2"]);
    });
  });

  it("fetchEventStream keeps its Last-Event-ID through a resumed connection that brings only a keep-alive or a retry (it reset it, and the next reconnection replayed the whole feed)", async () => {
    for (const quiet of [": keep-alive\n\n", "retry: 5\n\n"]) {
      const seen: string[] = [];
      const fake = ((_input: string | URL, init?: RequestInit) => {
        const id = new Headers(init?.headers).get("last-event-id") ?? "";
        seen.push(id);
        if (seen.length === 3) {
          return Promise.resolve(new Response(null, { status: 204 }));
        }
        return Promise.resolve(
          new Response(
            seen.length === 1 ? "id: 1\ndata: a\n\nid: 2\ndata: b\n\n" : quiet,
            { headers: { "content-type": "text/event-stream" } },
          ),
        );
      }) as typeof fetch;
      const messages = await deadline(
        Array.fromAsync(
          fetchEventStream("http://127.0.0.1:9/", {
            fetch: fake,
            retryDelayMs: 1,
          }),
        ),
        T,
        "event stream",
      );
      assert.deepEqual(messages.map((m) => m.id), ["1", "2"]);
      assert.deepEqual(seen, ["", "2", "2"], quiet);
    }
    // SseDecoderStream started from an id keeps it through such a block.
    const decoder = new SseDecoderStream({ lastEventId: "7" });
    const writer = decoder.writable.getWriter();
    writer.write(new TextEncoder().encode(": ping\n\ndata: x\n\n"));
    writer.close();
    const [message] = await Array.fromAsync(decoder.readable);
    assert.equal(message.id, "7");
  });

  it("fetchEventStream errors on a status other than 200 without reconnecting", async () => {
    for (const status of [500, 404, 401, 410]) {
      let calls = 0;
      await withServer(() => {
        calls++;
        return new Response("nope", { status });
      }, async (server) => {
        await assert.rejects(
          Array.fromAsync(fetchEventStream(server.url, { retryDelayMs: 1 })),
          {
            name: "TypeError",
            message: `Cannot read event stream: the server answered ${status}`,
          },
        );
        assert.equal(calls, 1);
      });
    }
  });

  it("fetchEventStream waits out serve's 503 (maxConcurrentRequests, Retry-After: 1) and reads the feed (it errored for good: a feed dropped by a server at capacity)", async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => release = resolve);
    const server = await serve((request) => {
      if (new URL(request.url).pathname === "/hold") {
        return held.then(() => new Response("done"));
      }
      return sseResponse(
        ReadableStream.from([{ id: "1", data: "one" }, { data: "two" }]),
      );
    }, { hostname: "127.0.0.1", port: 0, maxConcurrentRequests: 1 });
    try {
      const holding = fetch(new URL("/hold", server.url));
      // The held request is in progress: the feed's first connection is
      // refused with 503; the slot frees 300 ms later.
      for (;;) {
        const probe = await fetch(new URL("/feed", server.url));
        await probe.body?.cancel();
        if (probe.status === 503) {
          assert.equal(probe.headers.get("retry-after"), "1");
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const started = performance.now();
      setTimeout(release, 300);
      const reader = fetchEventStream(new URL("/feed", server.url), {
        retryDelayMs: 10,
      }).getReader();
      const first = await deadline(reader.read(), T, "the first event");
      assert.equal(first.value?.data, "one");
      assert.equal((await reader.read()).value?.data, "two");
      // Retry-After: 1 was waited, though retryDelayMs is 10.
      assert.ok(performance.now() - started >= 990);
      await reader.cancel();
      await (await holding).body?.cancel();
    } finally {
      release();
      await deadline(server.shutdown(), 30_000, "server shutdown");
    }
  });

  it("fetchEventStream retries 429, 502, 503 and 504 as failed connections: Retry-After (seconds or a date) waited up to maxRetryDelayMs, maxRetries counting them", async () => {
    const refusals: Response[] = [
      new Response(null, { status: 503, headers: { "retry-after": "3600" } }),
      new Response(null, {
        status: 429,
        headers: {
          "retry-after": new Date(Date.now() + 3_600_000).toUTCString(),
        },
      }),
      new Response("bad gateway", { status: 502 }),
      new Response(null, { status: 504 }),
    ];
    const times: number[] = [];
    const answers = [...refusals];
    const fake = (() => {
      times.push(performance.now());
      const next = answers.shift();
      return Promise.resolve(
        next ??
          new Response("data: at last\n\n", {
            headers: { "content-type": "text/event-stream" },
          }),
      );
    }) as typeof fetch;
    const reader = fetchEventStream("http://127.0.0.1:9/", {
      fetch: fake,
      retryDelayMs: 10,
      maxRetryDelayMs: 100,
      maxRetries: 4,
    }).getReader();
    const { value } = await deadline(reader.read(), T, "the event");
    assert.equal(value?.data, "at last");
    await reader.cancel();
    assert.equal(times.length, 5);
    // An hour's Retry-After is cut to maxRetryDelayMs (100 ms): each of the
    // first two waits is that at least.
    assert.ok(times[1] - times[0] >= 99, `${times[1] - times[0]} ms`);
    assert.ok(times[2] - times[1] >= 99, `${times[2] - times[1]} ms`);

    // One more refusal than maxRetries allows: the stream errors, its
    // cause the last refusal.
    let calls = 0;
    const refusing = (() => {
      calls++;
      return Promise.resolve(new Response(null, { status: 503 }));
    }) as typeof fetch;
    const error = await Array.fromAsync(
      fetchEventStream("http://127.0.0.1:9/", {
        fetch: refusing,
        retryDelayMs: 1,
        maxRetries: 2,
      }),
    ).then(() => undefined, (e) => e);
    assert.ok(error instanceof TypeError);
    assert.equal(
      error.message,
      "Cannot read event stream: 3 connection attempts failed in a row (maxRetries 2), the last: the server answered 503",
    );
    assert.equal(
      (error.cause as Error).message,
      "Cannot read event stream: the server answered 503",
    );
    assert.equal(calls, 3);
  });

  it("fetchEventStream lengthens each wait by up to half at random, so that clients dropped together come back spread out", async () => {
    /** Reads a feed with Math.random at its highest: waits lengthened most. */
    const readAtMostRandom = async (options: FetchEventStreamOptions) => {
      const random = Math.random;
      Math.random = () => 0.999;
      try {
        return await Array.fromAsync(
          fetchEventStream("http://127.0.0.1:9/", options),
        );
      } finally {
        Math.random = random;
      }
    };
    const times: number[] = [];
    const failing = (() => {
      times.push(performance.now());
      return Promise.reject(new TypeError("connection refused"));
    }) as typeof fetch;
    await readAtMostRandom({
      fetch: failing,
      retryDelayMs: 200,
      maxRetries: 1,
    }).catch(() => undefined);
    assert.equal(times.length, 2);
    // 200 ms and up to half again: 299.8 ms.
    assert.ok(times[1] - times[0] >= 295, `${times[1] - times[0]} ms`);

    // A Retry-After, and a delay at its cap, are lengthened too: clients told
    // the same delay spread (they all came back within milliseconds).
    let calls = 0;
    const refusing = (() =>
      Promise.resolve(
        ++calls > 2 ? new Response(null, { status: 204 }) : new Response(
          null,
          { status: 503, headers: { "retry-after": calls === 1 ? "1" : "60" } },
        ),
      )) as typeof fetch;
    const delays = await withTimersAtOnce(async (delays) => {
      await readAtMostRandom({
        fetch: refusing,
        retryDelayMs: 10,
        maxRetryDelayMs: 2000,
      });
      return delays;
    });
    // 1 s and half again; 60 s cut to 2 s, and half again.
    assert.deepEqual(delays, [1000, 2000].map((ms) => ms * (1 + 0.999 / 2)));
  });

  it("fetchEventStream errors on a response that is not text/event-stream", async () => {
    await withServer(() => Response.json({}), async (server) => {
      await assert.rejects(
        Array.fromAsync(fetchEventStream(server.url)),
        /Cannot read event stream: the response is "application\/json[^"]*", not text\/event-stream/,
      );
    });
  });

  it("fetchEventStream keeps Last-Event-ID across a connection that ends before any event", async () => {
    // The first connection sends event 1 and ends; the second ends at once;
    // the third must still resume after 1, not start again.
    const sent: (string | null)[] = [];
    const bodies = ["id: 1\ndata: one\n\n", "", "id: 2\ndata: two\n\n"];
    const feed = ((_input: unknown, init?: RequestInit) => {
      sent.push(new Headers(init?.headers).get("last-event-id"));
      const body = bodies.shift();
      return Promise.resolve(
        body === undefined
          ? new Response(null, { status: 204 })
          : new Response(body, {
            headers: { "content-type": "text/event-stream" },
          }),
      );
    }) as typeof fetch;
    const events = await Array.fromAsync(
      fetchEventStream("http://feed/", { fetch: feed, retryDelayMs: 0 }),
    );
    assert.deepEqual(events.map((e) => e.data), ["one", "two"]);
    assert.deepEqual(sent, [null, "1", "1", "2"]);
  });

  it("fetchEventStream's signal stops a stream read after a garbage collection (under Deno the abort no longer reached the body, and the connection was held for good)", async () => {
    await withServer(
      () =>
        sseResponse(
          (async function* () {
            for (let i = 0; i < 200; i++) {
              yield { id: String(i), data: "x" };
              await new Promise((resolve) => setTimeout(resolve, 50));
            }
          })(),
          { keepAliveMs: 0 },
        ),
      async (server) => {
        const controller = new AbortController();
        const reader = fetchEventStream(server.url, {
          signal: controller.signal,
        }).getReader();
        assert.equal((await reader.read()).value?.data, "x");
        const next = reader.read();
        next.catch(() => {});
        collectGarbage();
        collectGarbage();
        await new Promise((resolve) => setTimeout(resolve, 100));
        controller.abort(new Error("user stop"));
        // Events already queued may come first; then the abort's reason.
        await assert.rejects(
          deadline(
            (async () => {
              await next;
              for (;;) if ((await reader.read()).done) break;
            })(),
            5_000,
            "the stream's end after the abort",
          ),
          { message: "user stop" },
        );
      },
    );
  });

  it("fetchEventStream backs off on failed connections and gives up after maxRetries", async () => {
    const times: number[] = [];
    const failing = (() => {
      times.push(performance.now());
      return Promise.reject(new TypeError("connection refused"));
    }) as typeof fetch;
    const error = await Array.fromAsync(
      fetchEventStream("http://127.0.0.1:9/", {
        fetch: failing,
        retryDelayMs: 4,
        maxRetryDelayMs: 8,
        maxRetries: 3,
      }),
    ).then(() => undefined, (e) => e);
    assert.ok(error instanceof TypeError);
    assert.match(
      error.message,
      /^Cannot read event stream: 4 connection attempts failed in a row \(maxRetries 3\), the last: connection refused$/,
    );
    assert.equal((error.cause as Error).message, "connection refused");
    assert.equal(times.length, 4);
    // Delays of 4, 8, 8 ms at least (capped at maxRetryDelayMs): lower bounds only.
    assert.ok(times[1] - times[0] >= 3);
    assert.ok(times[3] - times[0] >= 18);
  });

  it("fetchEventStream in a page errors, naming the preflight, when another origin answers plain requests but refuses Last-Event-ID (it retried for ever), and retries as before when the server is down or of the page's origin", async () => {
    // A browser sends Last-Event-ID through fetch only after a CORS
    // preflight allowing it; a server that allows plain requests alone
    // fails each reconnection as a network error would (Chromium:
    // "Failed to fetch").
    const run = async (
      page: string,
      answers: (method: string, lastEventId: string | null) => boolean,
      maxRetries?: number,
    ) => {
      const seen: string[] = [];
      const fake = ((_input: string | URL, init?: RequestInit) => {
        const method = init?.method ?? "GET";
        const id = new Headers(init?.headers).get("last-event-id");
        seen.push(`${method} ${id ?? "-"}`);
        if (!answers(method, id)) {
          return Promise.reject(new TypeError("Failed to fetch"));
        }
        // Events 1 and 2 from the start, 3 after 2, then 204: no more.
        if (id === "3") {
          return Promise.resolve(new Response(null, { status: 204 }));
        }
        const body = method === "HEAD"
          ? ""
          : id === null
          ? "id: 1\ndata: one\n\nid: 2\ndata: two\n\n"
          : "id: 3\ndata: three\n\n";
        return Promise.resolve(
          new Response(body, {
            headers: { "content-type": "text/event-stream" },
          }),
        );
      }) as typeof fetch;
      const navigator = globalThis.navigator as { userAgent: string };
      // Under Bun userAgent is the object's own: put back as it was.
      const own = Object.getOwnPropertyDescriptor(navigator, "userAgent");
      const place = Object.getOwnPropertyDescriptor(globalThis, "location");
      Object.defineProperty(navigator, "userAgent", {
        value: "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0",
        configurable: true,
      });
      Object.defineProperty(globalThis, "location", {
        value: { href: page },
        configurable: true,
        writable: true,
      });
      let feed;
      try {
        feed = fetchEventStream("http://localhost:9/feed", {
          fetch: fake,
          retryDelayMs: 1,
          maxRetryDelayMs: 2,
          maxRetries,
        });
      } finally {
        if (own) Object.defineProperty(navigator, "userAgent", own);
        else delete (navigator as { userAgent?: string }).userAgent;
        if (place) Object.defineProperty(globalThis, "location", place);
        else delete (globalThis as { location?: unknown }).location;
      }
      assert.ok(!navigator.userAgent.startsWith("Mozilla/"));
      const events: string[] = [];
      const error = await (async () => {
        for await (const message of feed) events.push(message.id);
      })().then(() => undefined, (e) => e);
      return { seen, events, error };
    };

    // Another origin, up, refusing Last-Event-ID: a HEAD without it is
    // answered, the request made again at once fails too, three times in
    // a row.
    const refused = await run(
      "http://127.0.0.1:8000/app",
      (_method, id) => id === null,
    );
    assert.deepEqual(refused.events, ["1", "2"]);
    assert.ok(refused.error instanceof TypeError, String(refused.error));
    assert.match(
      refused.error.message,
      /^Cannot read event stream: the stream cannot resume: http:\/\/localhost:9 is another origin, which answers requests without Last-Event-ID but refused one with it \(its CORS preflight must allow the header: list last-event-id in Access-Control-Allow-Headers, as cors.allowedHeaders from @sluice\/streams\/http does\)$/,
    );
    assert.equal((refused.error.cause as Error).message, "Failed to fetch");
    assert.deepEqual(refused.seen, [
      "GET -",
      ...Array(3).fill(["GET 2", "HEAD -", "GET 2"]).flat(),
    ]);

    // Once only (a server at capacity: its 503 without CORS headers reads
    // as a network error too), then answered: the feed goes on (it ended
    // for good).
    let blips = 2;
    const blip = await run("http://127.0.0.1:8000/app", (method, id) => {
      if (method === "GET" && id === "2" && blips > 0) {
        blips--;
        return false;
      }
      return true;
    });
    assert.equal(blip.error, undefined);
    assert.deepEqual(blip.events, ["1", "2", "3"]);

    // Another origin, down: the HEAD goes unanswered too, so the stream
    // retries as before, up to maxRetries.
    let up = true;
    const down = await run("http://127.0.0.1:8000/app", (_method, id) => {
      if (id !== null) up = false;
      return up;
    }, 2);
    assert.deepEqual(down.events, ["1", "2"]);
    assert.match(
      String(down.error),
      /^TypeError: Cannot read event stream: 3 connection attempts failed in a row \(maxRetries 2\), the last: Failed to fetch$/,
    );
    assert.deepEqual(down.seen, [
      "GET -",
      ...Array(3).fill(["GET 2", "HEAD -"]).flat(),
    ]);

    // The server came back between the failure and the HEAD: the request
    // made again at once is answered, and the stream goes on.
    let tries = 0;
    const back = await run("http://127.0.0.1:8000/app", (_method, id) => {
      if (id !== null) tries++;
      return id === null || tries !== 1;
    });
    assert.equal(back.error, undefined);
    assert.deepEqual(back.events, ["1", "2", "3"]);
    assert.deepEqual(back.seen, [
      "GET -",
      "GET 2",
      "HEAD -",
      "GET 2",
      "GET 3",
    ]);

    // The page's own origin needs no preflight: no HEAD, retried as before.
    const same = await run(
      "http://localhost:9/",
      (_method, id) => id === null,
      1,
    );
    assert.match(String(same.error), /2 connection attempts failed in a row/);
    assert.deepEqual(same.seen, ["GET -", "GET 2", "GET 2"]);
  });

  it("fetchEventStream backs off from a server that answers no event, even after retry: 0", async () => {
    // Connection 4 brings an event; the others only `retry: 0` and end.
    // Without the backoff, this server is asked again at once, forever.
    const controller = new AbortController();
    let connections = 0;
    const server = (() => {
      connections++;
      if (connections === 7) controller.abort(new Error("enough"));
      return Promise.resolve(
        new Response(connections === 4 ? "data: hi\n\n" : "retry: 0\n\n", {
          headers: { "content-type": "text/event-stream" },
        }),
      );
    }) as typeof fetch;
    // The delays asked for, from the timers fetchEventStream sets, with no
    // random lengthening (a test of its own).
    const delays: number[] = [];
    const original = globalThis.setTimeout;
    globalThis.setTimeout = ((fn: () => void, ms?: number) => {
      delays.push(ms ?? 0);
      return original(fn, ms);
    }) as typeof setTimeout;
    const random = Math.random;
    Math.random = () => 0;
    const events: string[] = [];
    try {
      await assert.rejects(
        (async () => {
          for await (
            const message of fetchEventStream("http://feed/", {
              fetch: server,
              signal: controller.signal,
              maxRetryDelayMs: 300,
            })
          ) events.push(message.data);
        })(),
        { message: "enough" },
      );
    } finally {
      globalThis.setTimeout = original;
      Math.random = random;
    }
    assert.deepEqual(events, ["hi"]);
    // Before connections 2-7: the server's 0, then doubling from 100 ms
    // (capped at 300); the event resets it.
    assert.deepEqual(delays, [0, 200, 300, 0, 0, 200]);
  });

  it("fetchEventStream sends an id beyond ASCII as UTF-8 in Last-Event-ID, and createSseHandler reads the same text back", async () => {
    // Before, the client's reconnection failed for good (Headers refuses a
    // character above U+00FF), and the handler read UTF-8 as Latin-1.
    const seen: string[] = [];
    const handler = createSseHandler((_request, { lastEventId }) => {
      seen.push(lastEventId);
      if (seen.length === 3) {
        throw Object.assign(new Error(), {
          getResponse: () => new Response(null, { status: 204 }),
        });
      }
      return [{
        retry: 1,
        id: seen.length === 1 ? "日本-1" : "café",
        data: String(seen.length),
      }];
    }, { keepAliveMs: 0 });
    await withServer(handler, async (server) => {
      const messages = await deadline(
        Array.fromAsync(fetchEventStream(server.url)),
        T,
        "event stream",
      );
      assert.deepEqual(messages.map((m) => m.id), ["日本-1", "café"]);
      assert.deepEqual(seen, ["", "日本-1", "café"]);
    });
    // On the wire, the id's UTF-8 bytes (as EventSource sends it).
    let header: string | null = null;
    await Array.fromAsync(fetchEventStream("http://feed/", {
      lastEventId: "é…",
      fetch: ((_input: unknown, init?: RequestInit) => {
        header = new Headers(init?.headers).get("last-event-id");
        return Promise.resolve(new Response(null, { status: 204 }));
      }) as typeof fetch,
    }));
    assert.equal(header, "\xc3\xa9\xe2\x80\xa6");
  });

  it("fetchEventStream delivers every event a dropped connection completed and resumes from its last id, an id-only block's too", async () => {
    // Before, a drop lost the events still queued behind the one delivered,
    // and an id-only block (`id: 3` and a blank line) before it.
    const sent: (string | null)[] = [];
    let connections = 0;
    const feed = ((_input: unknown, init?: RequestInit) => {
      sent.push(new Headers(init?.headers).get("last-event-id"));
      if (++connections > 1) {
        return Promise.resolve(new Response(null, { status: 204 }));
      }
      let pulls = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (pulls++ === 0) {
            controller.enqueue(
              bytes("id: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 3\n\n"),
            );
          } else controller.error(new TypeError("connection lost"));
        },
      });
      return Promise.resolve(
        new Response(body, {
          headers: { "content-type": "text/event-stream" },
        }),
      );
    }) as typeof fetch;
    const events = await deadline(
      Array.fromAsync(
        fetchEventStream("http://feed/", { fetch: feed, retryDelayMs: 0 }),
      ),
      T,
      "event stream",
    );
    assert.deepEqual(events.map((e) => `${e.id}:${e.data}`), ["1:a", "2:b"]);
    assert.deepEqual(sent, [null, "3"]);
  });

  it("fetchEventStream waits at least the server's retry, however its back-off is capped, and a retry longer than a timer takes", async () => {
    // Before, attempts that brought no event waited maxRetryDelayMs (300)
    // after a `retry: 1000`, and a `retry` past 2^31 - 1 ms (30 days)
    // reconnected at once (the timer's overflow).
    // The delays asked for, each run at once.
    const run = (retry: number, connectionsBefore204: number) =>
      withTimersAtOnce(async (delays) => {
        let connections = 0;
        const feed = (() =>
          Promise.resolve(
            ++connections > connectionsBefore204
              ? new Response(null, { status: 204 })
              : new Response(`retry: ${retry}\n\n`, {
                headers: { "content-type": "text/event-stream" },
              }),
          )) as typeof fetch;
        await Array.fromAsync(
          fetchEventStream("http://feed/", {
            fetch: feed,
            maxRetryDelayMs: 300,
          }),
        );
        return delays;
      });
    // No random lengthening (a test of its own).
    const random = Math.random;
    Math.random = () => 0;
    try {
      assert.deepEqual(await run(1000, 4), [1000, 1000, 1000, 1000]);
      assert.deepEqual(await run(2_592_000_000, 1), [
        2 ** 31 - 1,
        2_592_000_000 - (2 ** 31 - 1),
      ]);
    } finally {
      Math.random = random;
    }
  });

  it("fetchEventStream stops with the signal's reason while waiting to reconnect", async () => {
    const controller = new AbortController();
    const failing = (() => {
      queueMicrotask(() => controller.abort(new Error("stop")));
      return Promise.reject(new TypeError("refused"));
    }) as typeof fetch;
    await assert.rejects(
      deadline(
        Array.fromAsync(
          fetchEventStream("http://127.0.0.1:9/", {
            fetch: failing,
            retryDelayMs: 600_000,
            signal: controller.signal,
          }),
        ),
        T,
        "abort",
      ),
      { message: "stop" },
    );
  });

  it("fetchEventStream errors with a RangeError over maxLineBytes and does not reconnect", async () => {
    let calls = 0;
    await withServer(() => {
      calls++;
      return sseResponse([{ data: "x".repeat(100) }], {
        keepAliveMs: 0,
      });
    }, async (server) => {
      await assert.rejects(
        Array.fromAsync(fetchEventStream(server.url, { maxLineBytes: 50 })),
        RangeError,
      );
      assert.equal(calls, 1);
    });
  });

  it("fetchEventStream errors clearly, once, when the last id received holds a control character (it retried for ever under Deno)", async () => {
    // Valid in an event stream (only NUL makes an id ignored), but Deno's
    // fetch refuses to send it as a header and Bun's server answers 400.
    let requests = 0;
    await withServer(() => {
      requests++;
      return new Response("retry: 5\nid: a\u001b[0mb\ndata: first\n\n", {
        headers: { "content-type": "text/event-stream" },
      });
    }, async (server) => {
      const got: string[] = [];
      await assert.rejects(
        deadline(
          (async () => {
            for await (const message of fetchEventStream(server.url)) {
              got.push(message.data);
            }
          })(),
          T,
          "event stream",
        ),
        {
          name: "TypeError",
          message:
            'Cannot read event stream: the last event id received, "a\\u001b[0mb", contains a control character, or a space or tab at one end, which no Last-Event-ID header carries unchanged: the stream cannot resume',
        },
      );
      assert.deepEqual(got, ["first"]);
      assert.equal(requests, 1);
    });
    // A space or tab at one end: fetch would trim it, and the server would
    // read another id.
    await withServer(() =>
      new Response("id: 8 \ndata: x\n\n", {
        headers: { "content-type": "text/event-stream" },
      }), async (server) => {
      await assert.rejects(
        Array.fromAsync(fetchEventStream(server.url, { retryDelayMs: 5 })),
        /the last event id received, "8 ", contains .* the stream cannot resume/,
      );
    });
    // A header value with a control character: refused at once (Deno's
    // fetch refused it on every attempt, retried for ever).
    assert.throws(
      () =>
        fetchEventStream("http://x/", { headers: { "x-trace": "a\u0001" } }),
      {
        name: "TypeError",
        message:
          "Cannot read event stream: the value of header x-trace has a control character, which the runtime's fetch refuses to send",
      },
    );
    // And at a reconnection, where a Headers object the caller changed (a
    // refreshed token) gained one: the stream errors, not a retry for ever.
    const live = new Headers({ "x-trace": "a" });
    let connections = 0;
    const reconnecting = (() => {
      connections++;
      live.set("x-trace", "b\u0001");
      return Promise.resolve(
        new Response("id: 1\ndata: x\n\n", {
          headers: { "content-type": "text/event-stream" },
        }),
      );
    }) as typeof fetch;
    const seen: string[] = [];
    await assert.rejects(
      (async () => {
        for await (
          const event of fetchEventStream("http://x/", {
            headers: live,
            fetch: reconnecting,
            retryDelayMs: 1,
          })
        ) seen.push(event.data);
      })(),
      {
        name: "TypeError",
        message:
          "Cannot read event stream: the value of header x-trace has a control character, which the runtime's fetch refuses to send",
      },
    );
    assert.deepEqual(seen, ["x"]);
    assert.equal(connections, 1);
    assert.throws(
      () => fetchEventStream("http://x/", { lastEventId: "a\u0007" }),
      {
        name: "TypeError",
        message:
          'Cannot read event stream: lastEventId "a\\u0007" contains a control character, or a space or tab at one end, which no Last-Event-ID header carries unchanged',
      },
    );
  });

  it("fetchEventStream rejects bad options", () => {
    assert.throws(
      () => fetchEventStream("http://x/", { retryDelayMs: -1 }),
      RangeError,
    );
    assert.throws(
      () => fetchEventStream("http://x/", { maxRetries: -1 }),
      RangeError,
    );
    assert.throws(
      () => fetchEventStream("http://x/", { maxEventBytes: -1 }),
      RangeError,
    );
  });

  it("fetchEventStream refuses a URL that is none at once (it retried it forever)", () => {
    for (const url of ["not a url", "/relative/outside/a/page"]) {
      assert.throws(
        () => fetchEventStream(url),
        /^TypeError: Cannot read event stream: ".*" is not a URL \(a relative URL needs a page's location\)$/,
      );
    }
  });
});

describe("Server-Sent Events in workerd", () => {
  let workerd: Workerd;
  before(async () => {
    workerd = await startWorkerd({ entry: "tests/_sse_worker.ts" });
  });
  after(async () => {
    const stderr = workerd?.stderr().trim();
    await workerd?.stop();
    if (stderr) console.error(`workerd stderr:\n${stderr}`);
  });

  it("createSseHandler in workerd delivers an event while the stream is still open", async () => {
    const response = await fetch(new URL("/events", workerd.url), {
      headers: { "accept-encoding": "gzip, br" },
    });
    assert.equal(response.status, 200);
    assert.equal(
      response.headers.get("content-type"),
      "text/event-stream; charset=utf-8",
    );
    assert.equal(response.headers.get("content-length"), null);
    assert.notEqual(response.headers.get("content-encoding"), "gzip");
    const reader = response.body!.pipeThrough(new SseDecoderStream())
      .getReader();
    // The Worker holds the stream open for a minute after the first event,
    // far longer than this deadline: the event can only arrive in time if
    // nothing buffers it.
    const first = await deadline(reader.read(), T, "first event");
    assert.deepEqual(
      first.value,
      msg("sent before the stream ends", "first", "1"),
    );
    await reader.cancel();
  });
});
