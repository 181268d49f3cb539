// The HTTP flows' functions called from JavaScript with arguments of the
// wrong type: each refuses at once with a TypeError that names the argument,
// what it must be and what it got (with a hint at the usual mistake),
// instead of the engine's words about a property it could not read, a body
// sent as text, or an upload retried until maxRetries ran out.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  createUploadHandler,
  encodeMultipart,
  forwardResponse,
  openDuplex,
  parseMultipart,
  receiveBody,
  resumableUpload,
  sseResponse,
  upload,
  websocketDuplex,
} from "../lib/http/mod.ts";
import {
  createDuplexHandler,
  duplexResponse,
} from "../lib/http/duplex_response.ts";
import {
  createEchoHandler,
  createResumableUploadHandler,
  createSseHandler,
  fetchEventStream,
  formatDigestHeader,
  HttpError,
  MultipartDecoder,
  MultipartStream,
} from "../lib/http/mod.ts";
import { reduce } from "../lib/streams/mod.ts";
import { createResumableFileStore, uploadFile } from "../lib/runtime/fs.ts";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A fetch that must not be reached. */
const unreachable: typeof fetch = () => {
  throw new Error("fetch was called");
};

/** Asserts that `fn` throws (or rejects with) a TypeError of `message`. */
async function refuses(fn: () => unknown, message: string): Promise<void> {
  await assert.rejects(async () => await fn(), { name: "TypeError", message });
}

describe("HTTP flows refuse arguments of the wrong type, naming them", () => {
  it("upload and resumableUpload: a URL that is none and a body that is no bytes, before any request", async () => {
    const url = "http://127.0.0.1:9/up";
    await refuses(
      () => upload(undefined as never, new Uint8Array(1)),
      'Cannot upload: "undefined" is not a URL (a relative URL needs a page\'s location)',
    );
    // Before, a number or text went out as text; an ArrayBuffer too.
    for (
      const [body, hint] of [
        [5, ""],
        ["text", " (encode text with new TextEncoder().encode(text))"],
        [new ArrayBuffer(4), " (view it with new Uint8Array(buffer))"],
        [undefined, ""],
      ] as const
    ) {
      const got = body === undefined
        ? "undefined"
        : typeof body === "object"
        ? "ArrayBuffer"
        : typeof body;
      await refuses(
        () => upload(url, body as never, { fetch: unreachable }),
        `Cannot upload: the body must be a ReadableStream, Blob or Uint8Array, got ${got}${hint}`,
      );
      // Before, resumableUpload retried this until maxRetries ran out.
      await refuses(
        () => resumableUpload(url, body as never, { fetch: unreachable }),
        `Cannot upload: the body must be a Blob or Uint8Array, got ${got}${hint}`,
      );
    }
  });

  it("openDuplex and websocketDuplex: a URL that is none, a socket that is none", async () => {
    await refuses(
      () => openDuplex("not a url", { fetch: unreachable }),
      'Cannot open duplex stream: "not a url" is not a URL (a relative URL needs a page\'s location)',
    );
    await refuses(
      () => websocketDuplex(undefined as never),
      "Cannot open WebSocket duplex: socket must be a WebSocket, got undefined",
    );
    await refuses(
      () => websocketDuplex("ws://127.0.0.1:9/" as never),
      "Cannot open WebSocket duplex: socket must be a WebSocket, got string (open one first: new WebSocket(url))",
    );
  });

  it("encodeMultipart: fields that are no list of parts, a part that is no { name, value }, a value that is no body", async () => {
    await refuses(
      () => encodeMultipart({ a: "1" } as never),
      "Cannot encode multipart body: the fields must be a FormData or an iterable of { name, value } parts, got object (for an object of fields: Object.entries(fields).map(([name, value]) => ({ name, value })))",
    );
    await refuses(
      () => encodeMultipart(undefined as never),
      "Cannot encode multipart body: the fields must be a FormData or an iterable of { name, value } parts, got undefined",
    );
    // Before: "the value of part undefined is not ...".
    await refuses(
      () => encodeMultipart([["a", "1"]] as never),
      "Cannot encode multipart body: part 0 must be a { name, value } object with a string name, got Array (a [name, value] pair: write { name, value })",
    );
    await refuses(
      () => encodeMultipart([{ name: "a", value: "1" }, { name: 2 }] as never),
      "Cannot encode multipart body: part 1 must be a { name, value } object with a string name, got object",
    );
    await refuses(
      () => encodeMultipart([{ name: "a", value: 5 }] as never),
      'Cannot encode multipart body: the value of part "a" is not a string, Blob, Uint8Array or ReadableStream, got number',
    );
  });

  it("parseMultipart, receiveBody, sseResponse, duplexResponse, forwardResponse and createUploadHandler: what they read from or write to", async () => {
    await refuses(
      () => parseMultipart(undefined as never),
      "Cannot parse multipart body: the request must be a Request or a Response, got undefined",
    );
    await refuses(
      () => receiveBody(new Request("http://x/"), undefined as never),
      "Cannot receive body: the sink must be a WritableStream, got undefined",
    );
    // The sink it was given is aborted, so a file sink leaves nothing.
    let aborted: unknown;
    await refuses(
      () =>
        receiveBody(
          "body" as never,
          new WritableStream({ abort: (reason) => void (aborted = reason) }),
        ),
      "Cannot receive body: the input must be a Request or a ReadableStream, got string",
    );
    assert.ok(aborted instanceof TypeError, "the sink was not aborted");
    await refuses(
      () => sseResponse(undefined as never),
      "Cannot send events: the source must be a ReadableStream or an (async) iterable of events, got undefined",
    );
    await refuses(
      () => sseResponse(async function* () {} as never),
      "Cannot send events: the source must be a ReadableStream or an (async) iterable of events, got function (call the generator function)",
    );
    await refuses(
      () =>
        duplexResponse(
          new Request("http://x/", { method: "POST" }),
          undefined as never,
        ),
      "Cannot answer duplex: the handler must be a function, got undefined",
    );
    await refuses(
      () => forwardResponse(Promise.resolve(new Response()) as never),
      "Cannot forward response: the upstream response must be a Response, got Promise (await the fetch first)",
    );
    await refuses(
      () => createUploadHandler(undefined as never),
      "Cannot create upload handler: the options must be an object with a sink, the multipart option, or both, got undefined",
    );
    // The multipart option without its sink: each was taken, and every form
    // then answered 500 "the sink of file part 1 failed to open".
    const hint = " (write multipart: { sink: (part) => createFileSink(...) })";
    await refuses(
      () => createUploadHandler({ multipart: true as never }),
      `Cannot create upload handler: multipart must be an object of options with a sink, got boolean${hint}`,
    );
    for (
      const [multipart, got] of [[{}, "undefined"], [{ sink: "x" }, "string"]]
    ) {
      await refuses(
        () => createUploadHandler({ multipart: multipart as never }),
        `Cannot create upload handler: multipart.sink must be a function opening the sink of a file part, got ${got}${hint}`,
      );
    }
  });
});

describe("HTTP flows check their limits when created", () => {
  // Before, a maxBytes that is no number (Number() of an unset variable)
  // turned the limit off: 100 MiB went through a handler of maxBytes NaN.
  // The other limits of a raw-mode handler were checked at each request,
  // after its sink was opened (a 500), and a multipart handler's
  // readAheadBytes -1 answered every form 400, blaming the client.
  const sink = () => new WritableStream<Uint8Array>();
  for (
    const [name, value, message] of [
      ["maxBytes", NaN, /maxBytes must be a non-negative integer, got NaN/],
      ["maxBytes", -1, /maxBytes must be a non-negative integer, got -1/],
      ["readAheadBytes", -1, /readAheadBytes must be a non-negative integer/],
      ["idleTimeoutMs", -1, /idleTimeoutMs must be a non-negative number/],
      // Of another type: a TypeError showing it (docs/api.md, "Errors").
      ["timeoutMs", "5s", /timeoutMs must be a number, got string "5s"/],
      ["minBytesPerSecond", NaN, /minBytesPerSecond must be a non-negative/],
    ] as const
  ) {
    it(`createUploadHandler (raw and multipart) and receiveBody refuse ${name} ${String(value)} at once`, async () => {
      for (
        const options of [{ sink }, { multipart: { sink: () => sink() } }]
      ) {
        assert.throws(
          () =>
            createUploadHandler(
              {
                ...options,
                [name]: value,
              } as unknown as Parameters<typeof createUploadHandler>[0],
            ),
          (error: unknown) =>
            error instanceof
              (typeof value === "string" ? TypeError : RangeError) &&
            /^Cannot create upload handler: /.test(error.message) &&
            message.test(error.message),
        );
      }
      await assert.rejects(
        receiveBody(
          new Request("http://x/", { method: "POST", body: "abc" }),
          new WritableStream(),
          { [name]: value } as unknown as Parameters<typeof receiveBody>[2],
        ),
        (error: unknown) =>
          error instanceof
            (typeof value === "string" ? TypeError : RangeError) &&
          message.test(error.message),
      );
    });
  }
});

describe("a server's answer that is no success, carried to the caller", () => {
  it("openDuplex and resumableUpload fail with an HttpError of a 3xx they did not follow, and 502 for a page's opaque redirect (status 0), not a RangeError (resumableUpload retried it as a cut connection)", async () => {
    for (
      const [answer, status] of [
        [() => new Response("moved", { status: 302 }), 302],
        [() => new Response(null, { status: 300 }), 300],
        [() => Response.error(), 502],
        [() => new Response(null, { status: 304 }), 304],
      ] as const
    ) {
      let calls = 0;
      const fake = (() => {
        calls++;
        return Promise.resolve(answer());
      }) as typeof fetch;
      const { stream, response } = openDuplex("http://127.0.0.1:9/", {
        fetch: fake,
      });
      stream.readPartial().catch(() => {});
      await assert.rejects(response, (error: Error) => {
        assert.ok(error instanceof HttpError, String(error));
        assert.equal(error.status, status);
        return true;
      });
      await stream.close().catch(() => {});
      calls = 0;
      await assert.rejects(
        resumableUpload("http://127.0.0.1:9/up", new Uint8Array(10), {
          fetch: fake,
        }),
        (error: Error) => {
          assert.ok(error instanceof HttpError, String(error));
          assert.equal(error.status, status);
          return true;
        },
      );
      assert.equal(calls, 1, "resumableUpload's requests");
      // Its answer, if a server passes it on: a 304 has no body (its
      // getResponse() threw "null body status cannot have body").
      const passed = new HttpError(status, "x").getResponse();
      assert.equal(passed.status, status);
      assert.equal(await passed.text(), status === 304 ? "" : "x");
    }
  });
});

describe("HTTP flows check what they take at the call, not at first use or never", () => {
  it("a signal that is no AbortSignal, a fetch that is no function, a compression no runtime makes, a digest as text, callbacks, limits and a status: each a TypeError or RangeError naming it, before any request (a controller for its signal crashed the process from a timer resumableUpload left armed; a bad fetch was retried as a network failure; `br` failed every request with a 500; a handler took bad options and failed every request)", async () => {
    const bad = new AbortController() as never;
    const store = createResumableFileStore(join(tmpdir(), "sluice-never-made"));
    const u = "http://127.0.0.1:9/";
    const un = unreachable as never;
    const cases: [() => unknown, string, string][] = [
      [
        () => upload(u, new Uint8Array(1), { signal: bad, fetch: un }),
        "TypeError",
        "Cannot upload: signal must be an AbortSignal, got AbortController (pass controller.signal)",
      ],
      [
        () => resumableUpload(u, new Uint8Array(1), { signal: bad, fetch: un }),
        "TypeError",
        "Cannot upload: signal must be an AbortSignal, got AbortController (pass controller.signal)",
      ],
      [
        () => fetchEventStream(u, { signal: bad, fetch: un }),
        "TypeError",
        "Cannot read event stream: signal must be an AbortSignal, got AbortController (pass controller.signal)",
      ],
      [
        () =>
          receiveBody(new ReadableStream(), new WritableStream(), {
            signal: bad,
          }),
        "TypeError",
        "Cannot receive body: signal must be an AbortSignal, got AbortController (pass controller.signal)",
      ],
      [
        () => openDuplex(u, { signal: bad, fetch: un }),
        "TypeError",
        "Cannot open duplex: signal must be an AbortSignal, got AbortController (pass controller.signal)",
      ],
      [
        () => reduce([1], (a: number) => a, 0, { signal: bad }),
        "TypeError",
        "Cannot reduce: signal must be an AbortSignal, got AbortController (pass controller.signal)",
      ],
      [
        () => uploadFile(u, "deno.json", { signal: bad }),
        "TypeError",
        "Cannot upload file: signal must be an AbortSignal, got AbortController (pass controller.signal)",
      ],
      [
        () => upload(u, new Uint8Array(1), { fetch: "x" as never }),
        "TypeError",
        "Cannot upload: fetch must be a function, got string",
      ],
      [
        () =>
          resumableUpload(u, new Uint8Array(1), {
            fetch: Promise.resolve(fetch) as never,
          }),
        "TypeError",
        "Cannot upload: fetch must be a function, got Promise (await it first)",
      ],
      [
        () => fetchEventStream(u, { fetch: "x" as never }),
        "TypeError",
        "Cannot read event stream: fetch must be a function, got string",
      ],
      [
        () => openDuplex(u, { fetch: "x" as never }),
        "TypeError",
        "Cannot open duplex: fetch must be a function, got string",
      ],
      [
        () => createEchoHandler({ acceptCompression: ["br" as never] }),
        "TypeError",
        'Cannot create echo handler: acceptCompression "br" is not "gzip" or "deflate"',
      ],
      [
        () => createEchoHandler({ acceptCompression: ["GZIP" as never] }),
        "TypeError",
        'Cannot create echo handler: acceptCompression "GZIP" is not "gzip" or "deflate"',
      ],
      [
        () => createEchoHandler({ acceptCompression: "gzip" as never }),
        "TypeError",
        'Cannot create echo handler: acceptCompression must be an array of "gzip" or "deflate"',
      ],
      [
        () =>
          createDuplexHandler(() => {}, { acceptCompression: ["br" as never] }),
        "TypeError",
        'Cannot create duplex handler: acceptCompression "br" is not "gzip" or "deflate"',
      ],
      [
        () => openDuplex(u, { sendCompression: "br" as never, fetch: un }),
        "TypeError",
        'Cannot open duplex: sendCompression "br" is not "gzip" or "deflate"',
      ],
      [
        () => createDuplexHandler(() => {}, { idleTimeoutMs: -1 }),
        "RangeError",
        "Cannot create duplex handler: idleTimeoutMs must be a non-negative number of milliseconds, got -1",
      ],
      [
        () => createDuplexHandler(() => {}, { writeHighWaterMark: NaN }),
        "RangeError",
        "Cannot create duplex handler: writeHighWaterMark must be a non-negative integer, got NaN",
      ],
      [
        () => createDuplexHandler(() => {}, { sendHeaders: "now" as never }),
        "TypeError",
        'Cannot create duplex handler: sendHeaders must be "first-write", "immediately", got "now"',
      ],
      [
        () => createDuplexHandler(() => {}, { onError: "x" as never }),
        "TypeError",
        "Cannot create duplex handler: onError must be a function, got string",
      ],
      [
        () => createDuplexHandler(() => {}, { maxLineBytes: -1 }),
        "RangeError",
        "Cannot create duplex handler: maxLineBytes must be a non-negative integer, got -1",
      ],
      [
        () => createSseHandler(() => [], { keepAliveMs: -1 }),
        "RangeError",
        "Cannot create SSE handler: keepAliveMs must be a non-negative number of milliseconds, got -1",
      ],
      [
        () => createResumableUploadHandler({ store, idleTimeoutMs: -1 }),
        "RangeError",
        "Cannot create resumable upload handler: idleTimeoutMs must be a non-negative number of milliseconds, got -1",
      ],
      [
        () => createResumableUploadHandler({ store, onComplete: "x" as never }),
        "TypeError",
        "Cannot create resumable upload handler: onComplete must be a function, got string",
      ],
      [
        () => createResumableUploadHandler({ store, hasher: "x" as never }),
        "TypeError",
        "Cannot create resumable upload handler: hasher must be a function, got string",
      ],
      [
        () => createResumableUploadHandler({ store, expiresInMs: 1e16 }),
        "RangeError",
        "Cannot create resumable upload handler: expiresInMs must be at most 3153600000000 (100 years; 0: never), got 10000000000000000",
      ],
      [
        () =>
          createUploadHandler({
            sink: () => new WritableStream(),
            hasher: "x" as never,
          }),
        "TypeError",
        "Cannot create upload handler: hasher must be a function, got string",
      ],
      [
        () =>
          upload(u, new Uint8Array(1), { sha256: "ab" as never, fetch: un }),
        "TypeError",
        "Cannot upload: sha256 must be a Uint8Array (the digest's bytes), got string (decode hex or base64 text first)",
      ],
      [
        () =>
          receiveBody(new ReadableStream(), new WritableStream(), {
            sha256: "ab" as never,
          }),
        "TypeError",
        "Cannot receive body: sha256 must be a Uint8Array (the digest's bytes), got string (decode hex or base64 text first)",
      ],
      [
        () => formatDigestHeader({ "sha-256": "ab" as never }),
        "TypeError",
        "Cannot format digest header: sha-256 must be a Uint8Array (the digest's bytes), got string (decode hex or base64 text first)",
      ],
      [
        () => uploadFile(u, "deno.json", { sha256: "ab" as never }),
        "TypeError",
        "Cannot upload file: sha256 must be a Uint8Array (the digest's bytes), got string (decode hex or base64 text first)",
      ],
      [
        () => upload(u, new ReadableStream(), { contentLength: -1, fetch: un }),
        "RangeError",
        "Cannot upload: contentLength must be a non-negative integer, got -1",
      ],
      [
        () =>
          upload(u, new ReadableStream(), {
            contentLength: "10" as never,
            fetch: un,
          }),
        "TypeError",
        'Cannot upload: contentLength must be a number, got string "10"',
      ],
      [
        () => uploadFile(u, "deno.json", { onProgress: "log" as never }),
        "TypeError",
        "Cannot report progress: onProgress must be a function, got string",
      ],
      [
        () =>
          uploadFile(u, "deno.json", {
            onProgress: () => {},
            progressIntervalMs: NaN,
          }),
        "RangeError",
        "Cannot report progress: progressIntervalMs must be a non-negative number of milliseconds, got NaN",
      ],
      [
        () =>
          upload(u, new ReadableStream(), {
            onProgress: () => {},
            progressIntervalMs: -5,
            fetch: un,
          }),
        "RangeError",
        "Cannot report progress: progressIntervalMs must be a non-negative number of milliseconds, got -5",
      ],
      [
        () => new HttpError(4030, "x"),
        "RangeError",
        "Cannot create HttpError: status must be an integer from 300 to 599, got 4030",
      ],
      [
        () => new HttpError(204, "x"),
        "RangeError",
        "Cannot create HttpError: status must be an integer from 300 to 599, got 204",
      ],
      [
        () => reduce(null as never, (a: number) => a, 0),
        "TypeError",
        "Cannot reduce: the source must be a ReadableStream or an (async) iterable, got null",
      ],
      [
        () => reduce([], undefined as never, 0),
        "TypeError",
        "Cannot reduce: fn must be a function, got undefined",
      ],
      [
        () => new MultipartStream(undefined as never),
        "TypeError",
        "Cannot parse multipart body: the boundary must be a string, got undefined",
      ],
      [
        () => new MultipartDecoder(undefined as never),
        "TypeError",
        "Cannot parse multipart body: the boundary must be a string, got undefined",
      ],
    ];
    // Headers no Headers takes failed every request when given (the duplex
    // handler threw from each, for any method).
    assert.throws(
      () => createDuplexHandler(() => {}, { headers: { x: "a\nb" } }),
      {
        name: "TypeError",
        message: /^Cannot create duplex handler: headers must be a Headers/,
      },
    );
    assert.throws(
      () => createSseHandler(() => [], { headers: { x: "a\nb" } }),
      {
        name: "TypeError",
        message: /^Cannot create SSE handler: headers must be a Headers/,
      },
    );
    // The runtime's words, or none (Deno sent a request of method "5").
    cases.push(
      [
        () => upload(u, new Uint8Array(1), { method: 5 as never, fetch: un }),
        "TypeError",
        "Cannot upload: method must be a string, got number",
      ],
      [
        () => uploadFile(u, "deno.json", { credentials: "bogus" as never }),
        "TypeError",
        'Cannot upload file: credentials must be "omit", "same-origin", "include", got "bogus"',
      ],
      [
        () => new HttpError("404" as never, "x"),
        "TypeError",
        'Cannot create HttpError: status must be a number, got string "404"',
      ],
      [
        () => encodeMultipart([], { boundary: {} as never }),
        "TypeError",
        "Cannot encode multipart body: boundary must be a string, got object",
      ],
    );
    await assert.rejects(
      async () =>
        await upload(u, new Uint8Array(1), { headers: 5 as never, fetch: un }),
      {
        name: "TypeError",
        message: /^Cannot upload: headers must be a Headers/,
      },
    );
    // A look-alike passed the first check, then met the runtime's own.
    cases.push([
      () =>
        openDuplex(u, {
          signal: { aborted: false, addEventListener() {} } as never,
          fetch: un,
        }),
      "TypeError",
      "Cannot open duplex: signal must be an AbortSignal, got object",
    ]);
    // Under Bun (and Node) uploadFile goes through fetch, which named no
    // protocol.
    cases.push([
      () => uploadFile("not a url", "deno.json"),
      "TypeError",
      'Cannot upload file: "not a url" is not a URL (a relative URL needs a page\'s location)',
    ]);
    cases.push([
      () => uploadFile("ftp://127.0.0.1/", "deno.json"),
      "TypeError",
      'Cannot upload file: url must be an http: or https: URL, got "ftp://127.0.0.1/"',
    ]);
    for (const [fn, name, message] of cases) {
      await assert.rejects(async () => await fn(), { name, message });
    }
  });
});
