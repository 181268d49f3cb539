// Names and text crossing the wire: trailers and metadata past ASCII (gRPC-Web
// trailer frames, Connect's EndStreamResponse), grpc-message's edge spaces,
// file names Windows cannot create or that show as something else, names in
// multipart headers (a leading U+FEFF, NUL, CR and LF in filename*), and the
// close a WebSocket reports after text of invalid UTF-8.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server as NetServer, type Socket } from "node:net";
import { createHash } from "node:crypto";
import {
  Code,
  createClient,
  createConnectTransport,
  createGrpcWebTransport,
  createRpcHandler,
  defineService,
  implementService,
  RpcError,
} from "../lib/rpc/mod.ts";
import {
  HttpError,
  parseMultipart,
  safeFileName,
  websocketDuplex,
} from "../lib/http/mod.ts";
import {
  decodeTrailerBlock,
  encodeTrailerFrame,
} from "../lib/rpc/protocol_grpc_web/trailers.ts";
import { decodeEndStream } from "../lib/rpc/protocol_connect/end_stream.ts";
import { encodeFrame } from "../lib/rpc/wire/_frame.ts";
import {
  decodeMessage,
  encodeMessage,
  readStatus,
  setStatus,
} from "../lib/rpc/protocol_grpc/trailers.ts";
import { fromUtf8Header, toUtf8Header } from "../lib/http/_utf8_header.ts";
import { Bytes, deadline, withServer } from "./_helpers.ts";

const enc = new TextEncoder();

const Meta = defineService("test.Meta", {
  unary: { kind: "unary", input: Bytes, output: Bytes },
  stream: { kind: "server-streaming", input: Bytes, output: Bytes },
});

/** The RpcError a call rejects with. */
async function rejection(promise: Promise<unknown>): Promise<RpcError> {
  const error = await deadline(
    promise.then(() => undefined, (e) => e),
    10_000,
    "call",
  );
  assert.ok(error instanceof RpcError, String(error));
  return error;
}

describe("gRPC-Web trailers past ASCII", () => {
  // What a Go server (connect-go, grpc-go behind Envoy) writes: the bytes
  // of its header values as they are.
  const utf8Block = enc.encode(
    "grpc-status: 5\r\ngrpc-message: not%20found\r\nx-user: 日本\r\nx-fr: voilà \r\n",
  );

  it("decodeTrailerBlock reads a UTF-8 value as its bytes, as HTTP/2 reads the same trailer", () => {
    const trailers = decodeTrailerBlock(utf8Block);
    assert.equal(trailers.get("x-user"), toUtf8Header("日本"));
    assert.equal(fromUtf8Header(trailers.get("x-user")!), "日本");
    // Its UTF-8 ends in the byte 0xA0, which is no space to trim.
    assert.equal(fromUtf8Header(trailers.get("x-fr")!), "voilà");
    const status = readStatus(trailers);
    assert.ok(status instanceof RpcError);
    assert.equal(status.code, Code.NotFound);
    assert.equal(status.rawMessage, "not found");
  });

  it("decodeTrailerBlock keeps the status beside a Latin-1 byte and a raw UTF-8 grpc-message", () => {
    const latin1 = new Uint8Array([
      ...enc.encode("grpc-status: 5\r\nx-user: caf"),
      0xe9,
      ...enc.encode("\r\n"),
    ]);
    const trailers = decodeTrailerBlock(latin1);
    assert.equal(trailers.get("x-user"), "caf\u00e9");
    assert.equal(readStatus(trailers)?.code, Code.NotFound);
    const raw = decodeTrailerBlock(
      enc.encode("grpc-status: 5\r\ngrpc-message: ファイル\r\n"),
    );
    // As native gRPC reads it: the bytes, a character each.
    assert.equal(raw.get("grpc-message"), toUtf8Header("ファイル"));
    assert.equal(readStatus(raw)?.code, Code.NotFound);
  });

  it('decodeTrailerBlock reads a value the same whatever the other trailers of its block (a block-wide choice read "José" as "JosÃ©" beside "東京")', () => {
    const alone = decodeTrailerBlock(enc.encode("x-name: José\r\n"));
    const beside = decodeTrailerBlock(
      enc.encode("x-name: José\r\nx-city: 東京\r\n"),
    );
    assert.equal(alone.get("x-name"), "José");
    assert.equal(beside.get("x-name"), "José");
    assert.equal(beside.get("x-city"), toUtf8Header("東京"));
  });

  it("encodeTrailerFrame writes UTF-8, as Connect-ES and grpc-web read it, and decodeTrailerBlock reads it back", () => {
    const trailers = new Headers({
      "x-latin1": "caf\u00e9",
      "x-user": toUtf8Header("日本"),
    });
    const data = encodeTrailerFrame(trailers).subarray(5);
    const text = new TextDecoder("utf-8", { fatal: true }).decode(data);
    assert.ok(text.includes("x-latin1: caf\u00e9\r\n"), text);
    assert.ok(text.includes(`x-user: ${toUtf8Header("日本")}\r\n`), text);
    assert.deepEqual(
      [...decodeTrailerBlock(data)],
      [["x-latin1", "caf\u00e9"], ["x-user", toUtf8Header("日本")]],
    );
  });

  it("a gRPC-Web client keeps the status of a server whose trailer frame holds UTF-8", async () => {
    await withServer(
      () =>
        new Response(encodeFrame({ flags: 0x80, data: utf8Block }), {
          headers: { "content-type": "application/grpc-web+proto" },
        }),
      async (server) => {
        const client = createClient(
          Meta,
          createGrpcWebTransport({ baseUrl: server.url.origin }),
        );
        const error = await rejection(client.unary(new Uint8Array([1])));
        // Was 13 "Cannot decode gRPC-Web trailers: invalid header "x-user"".
        assert.equal(error.code, Code.NotFound, error.message);
        assert.equal(error.rawMessage, "not found");
        assert.equal(fromUtf8Header(error.metadata.get("x-user")!), "日本");
      },
    );
  });

  it("a gRPC-Web server's trailers past ASCII reach its client unchanged", async () => {
    const handler = createRpcHandler(implementService(Meta, {
      unary: (_input, context) => {
        context.responseTrailers.set("x-user", toUtf8Header("日本"));
        context.responseTrailers.set("x-latin1", "caf\u00e9");
        throw new RpcError(Code.NotFound, "no such file");
      },
      stream: async function* () {},
    }));
    await withServer(handler, async (server) => {
      const client = createClient(
        Meta,
        createGrpcWebTransport({ baseUrl: server.url.origin }),
      );
      const error = await rejection(client.unary(new Uint8Array([1])));
      assert.equal(error.code, Code.NotFound, error.message);
      assert.equal(error.metadata.get("x-user"), toUtf8Header("日本"));
      assert.equal(error.metadata.get("x-latin1"), "caf\u00e9");
    });
  });
});

describe("Connect EndStreamResponse metadata past Latin-1", () => {
  const endStream = (json: unknown) => enc.encode(JSON.stringify(json));

  it("decodeEndStream reads a value past U+00FF as its UTF-8 bytes", () => {
    const { error, trailers } = decodeEndStream(endStream({
      error: { code: "not_found", message: "no such file" },
      metadata: { "x-user": ["日本"], "x-latin1": ["caf\u00e9"] },
    }));
    assert.equal(error?.code, Code.NotFound);
    assert.equal(error?.rawMessage, "no such file");
    assert.equal(trailers.get("x-user"), toUtf8Header("日本"));
    assert.equal(fromUtf8Header(trailers.get("x-user")!), "日本");
    // A value a header's byte string holds is kept as it is.
    assert.equal(trailers.get("x-latin1"), "caf\u00e9");
  });

  it("decodeEndStream names the key of metadata that cannot be a header, not invalid JSON", () => {
    for (
      const [metadata, pattern] of [
        [
          { "x-a": ["a\u0000b"] },
          /metadata key "x-a" has a value that is not a valid header value/,
        ],
        [{ "x-b": ["a\nb"] }, /metadata key "x-b" has a value/],
        [{ "a b": ["x"] }, /metadata key "a b" is not a valid header name/],
        [{ "日本": ["x"] }, /metadata key "日本" is not a valid header name/],
      ] as const
    ) {
      assert.throws(
        () => decodeEndStream(endStream({ metadata })),
        (e: unknown) =>
          e instanceof RpcError && e.code === Code.Internal &&
          /^Cannot decode EndStreamResponse: /.test(e.rawMessage) &&
          pattern.test(e.rawMessage) && !/invalid JSON/.test(e.rawMessage),
        JSON.stringify(metadata),
      );
    }
  });

  it("a Connect client keeps the status of a stream whose EndStreamResponse metadata holds 日本", async () => {
    const body = endStream({
      error: { code: "not_found", message: "no such file" },
      metadata: { "x-user": ["日本"] },
    });
    await withServer(
      () =>
        new Response(encodeFrame({ flags: 0x02, data: body }), {
          headers: { "content-type": "application/connect+proto" },
        }),
      async (server) => {
        const client = createClient(
          Meta,
          createConnectTransport({ baseUrl: server.url.origin }),
        );
        const error = await rejection(
          Array.fromAsync(client.stream(new Uint8Array([1]))),
        );
        // Was 13 "Cannot decode EndStreamResponse: invalid JSON".
        assert.equal(error.code, Code.NotFound, error.message);
        assert.equal(error.rawMessage, "no such file");
        assert.equal(fromUtf8Header(error.metadata.get("x-user")!), "日本");
      },
    );
  });
});

describe("grpc-message spaces", () => {
  it("encodeMessage sends a space at either end as %20, and one inside as it is", () => {
    assert.equal(encodeMessage(" two  words "), "%20two  words%20");
    assert.equal(encodeMessage(" "), "%20");
    assert.equal(encodeMessage("a b"), "a b");
    assert.equal(decodeMessage("%20two  words%20"), " two  words ");
  });

  it("setStatus and readStatus keep a status message's leading and trailing spaces through Headers", () => {
    const headers = setStatus(new Headers(), {
      error: new RpcError(Code.NotFound, "  padded message  "),
      trailers: new Headers(),
    });
    assert.equal(readStatus(headers)?.rawMessage, "  padded message  ");
  });

  it("a gRPC-Web client reads a server's status message with its edge spaces", async () => {
    const handler = createRpcHandler(implementService(Meta, {
      unary: () => {
        throw new RpcError(Code.NotFound, " padded ");
      },
      stream: async function* () {},
    }));
    await withServer(handler, async (server) => {
      const client = createClient(
        Meta,
        createGrpcWebTransport({ baseUrl: server.url.origin }),
      );
      const error = await rejection(client.unary(new Uint8Array([1])));
      assert.equal(error.code, Code.NotFound);
      assert.equal(error.rawMessage, " padded ");
    });
  });
});

function refused(name: string, pattern: RegExp): void {
  assert.throws(
    () => safeFileName(name),
    (error: unknown) =>
      error instanceof HttpError && error.status === 400 &&
      /^Cannot use file name: /.test(error.message) &&
      pattern.test(error.message),
    `name ${JSON.stringify(name)}`,
  );
}

describe("safeFileName and Windows", () => {
  it("safeFileName refuses the characters Windows refuses, naming the character", () => {
    for (
      const [name, char] of [
        ["what?.txt", "?"],
        ["a*b.txt", "*"],
        ["a<b>.txt", "<"],
        ["a|b.txt", "|"],
        ['a"b.txt', '"'],
      ]
    ) {
      refused(
        name,
        new RegExp(`it contains '\\${char}', which Windows refuses`),
      );
    }
  });

  it("safeFileName refuses a colon, which names an alternate data stream", () => {
    refused("report:v2.pdf", /':'.*alternate data stream/);
    refused("a.txt::$DATA", /':'.*alternate data stream/);
    refused("C:x", /drive prefix/);
  });

  it("safeFileName refuses the device names CONIN$, CONOUT$ and CLOCK$, with or without an extension", () => {
    for (
      const name of ["CONIN$", "conout$", "CLOCK$", "CONIN$.txt", "clock$ .log"]
    ) {
      refused(name, /Windows device name/);
    }
    for (const name of ["CONIN$x", "my$.txt", "$clock.txt", "a%22b.txt"]) {
      assert.equal(safeFileName(name), name);
    }
  });
});

describe("safeFileName and invisible characters", () => {
  it("safeFileName refuses format characters and line separators", () => {
    for (
      const name of [
        "\u200B",
        "\uFEFF",
        "\u00AD",
        "\u2028",
        "\u2029",
        "\u200D\u200D",
        "report\u200B.pdf",
        "report.pdf\u200B",
        "\uFEFFa.txt",
        "\u200Eevil.txt",
        "\u200Fevil\u200Fexe.pdf",
        "a\u061Cb.txt",
        "aux\u200B.txt",
        "a\u200Db.txt",
        "a\u200Cb.txt",
      ]
    ) {
      refused(
        name,
        /it contains U\+[0-9A-F]{4,5}, (an invisible format character|a line or paragraph separator)$/,
      );
    }
    // The message names the character.
    refused("report\u200B.pdf", /it contains U\+200B, /);
    refused("\u{E0067}x.txt", /it contains U\+E0067, /);
  });

  it("safeFileName keeps joiners inside emoji sequences and Persian, Malayalam and Indic words, emoji tag sequences and the Arabic signs that are drawn", () => {
    for (
      const name of [
        "\u{1F468}\u200D\u{1F469}\u200D\u{1F467}.png",
        "\u0645\u06CC\u200C\u062E\u0648\u0627\u0647\u0645.txt",
        // A joiner after a virama, before "." or a space: the older
        // spelling of Malayalam's chillu letters ("അവന്‍.jpg").
        "\u0D05\u0D35\u0D28\u0D4D\u200D.jpg",
        "\u0D1E\u0D3E\u0D28\u0D4D\u200D photo.jpg",
        // A non-joiner before an ASCII digit (Persian "فایل‌2").
        "\u0641\u0627\u06CC\u0644\u200C2.txt",
        // The flag of England (U+1F3F4, tags "gbeng", cancel tag).
        "\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F} v Wales.jpg",
        // The end of ayah, drawn as a sign (Cf, yet visible).
        "\u0633\u0648\u0631\u0629 \u06DD\u0661.pdf",
      ]
    ) {
      assert.equal(safeFileName(name), name);
    }
    // At a name's end, or after another joiner, a joiner only hides.
    refused("\u65E5\u200D", /U\+200D/);
    refused("\u65E5\u200D\u200D\u672C.txt", /U\+200D/);
  });

  it("safeFileName refuses names made only of blank characters", () => {
    for (const name of ["\u3164", "\u2800", "\u3000", "\u115F\u1160", " "]) {
      refused(name, /made only of blank characters|ends in a dot or a space/);
    }
    refused("\u3164.txt", /only blank characters before its extension/);
    refused("\u3000 .txt", /only blank characters before its extension/);
  });

  it("safeFileName refuses a name ending in a blank character", () => {
    for (const name of ["a.txt\u3000", "a.txt\u00A0", "x\u2800", "a\u3164"]) {
      refused(name, /ends in a blank character/);
    }
    assert.equal(safeFileName("a\u00A0b.txt"), "a\u00A0b.txt");
    assert.equal(safeFileName("a\u3000b.txt"), "a\u3000b.txt");
  });

  it("safeFileName keeps a name in NFC and in NFD as sent", () => {
    assert.equal(safeFileName("\u00e9.txt"), "\u00e9.txt");
    assert.equal(safeFileName("e\u0301.txt"), "e\u0301.txt");
  });
});

describe("multipart names past ASCII", () => {
  const B = "unicodeNamesBoundary";

  function form(disposition: Uint8Array | string): Request {
    const head = typeof disposition === "string"
      ? enc.encode(disposition)
      : disposition;
    const body = new Uint8Array([
      ...enc.encode(`--${B}\r\nContent-Disposition: `),
      ...head,
      ...enc.encode(`\r\n\r\nx\r\n--${B}--\r\n`),
    ]);
    return new Request("http://localhost/", {
      method: "POST",
      headers: { "content-type": `multipart/form-data; boundary=${B}` },
      body,
    });
  }

  async function heads(request: Request) {
    const out: { name: string; filename: string | undefined }[] = [];
    for await (const part of parseMultipart(request)) {
      out.push({ name: part.name, filename: part.filename });
      await part.body.cancel();
    }
    return out;
  }

  it("parseMultipart keeps a leading U+FEFF of a name and a file name, raw or in filename*", async () => {
    const raw = enc.encode(
      'form-data; name="\uFEFFfield"; filename="\uFEFFa.txt"',
    );
    assert.deepEqual(await heads(form(raw)), [
      { name: "\uFEFFfield", filename: "\uFEFFa.txt" },
    ]);
    assert.deepEqual(
      await heads(
        form(
          "form-data; name*=UTF-8''%EF%BB%BFf; filename*=UTF-8''%EF%BB%BFb.txt",
        ),
      ),
      [{ name: "\uFEFFf", filename: "\uFEFFb.txt" }],
    );
  });

  it("parseMultipart refuses NUL, CR and LF in filename* and name* with a 400 naming the parameter", async () => {
    for (
      const [disposition, param] of [
        [`form-data; name="f"; filename*=utf-8''a%00b`, "filename*"],
        [`form-data; name="f"; filename*=iso-8859-1''a%0Db`, "filename*"],
        [`form-data; name*=utf-8''a%00b%0D%0A`, "name*"],
        [`form-data; name*=us-ascii''a%0Ab`, "name*"],
      ]
    ) {
      await assert.rejects(
        heads(form(disposition)),
        (e: unknown) =>
          e instanceof HttpError && e.status === 400 &&
          e.message.includes(`has NUL, CR or LF in its ${param} parameter`),
        disposition,
      );
    }
  });
});

describe("websocketDuplex and invalid UTF-8", () => {
  /**
   * A WebSocket server on node:net that answers the handshake, then sends
   * one text message of invalid UTF-8 (FF FE) and waits.
   */
  async function invalidUtf8Server(): Promise<
    { url: string; close: () => Promise<void> }
  > {
    const sockets = new Set<Socket>();
    const server: NetServer = createServer((socket) => {
      sockets.add(socket);
      socket.on("error", () => {});
      let head = "";
      const onData = (data: Uint8Array) => {
        head += String.fromCharCode(...data);
        if (!head.includes("\r\n\r\n")) return;
        socket.off("data", onData);
        const key = /sec-websocket-key: *(.*)\r\n/i.exec(head)![1].trim();
        const accept = createHash("sha1")
          .update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
          .digest("base64");
        socket.write(
          `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
        );
        socket.write(new Uint8Array([0x81, 0x02, 0xff, 0xfe]));
      };
      socket.on("data", onData);
    });
    await new Promise<void>((resolve) =>
      server.listen(0, "127.0.0.1", resolve)
    );
    const { port } = server.address() as { port: number };
    return {
      url: `ws://127.0.0.1:${port}/`,
      close: () => {
        for (const socket of sockets) socket.destroy();
        return new Promise((resolve) => server.close(() => resolve()));
      },
    };
  }

  it("websocketDuplex reports a connection dropped over invalid UTF-8 as 1006 with the runtime's reason", async () => {
    const server = await invalidUtf8Server();
    try {
      const stream = websocketDuplex(new WebSocket(server.url));
      const error = await deadline(
        Array.fromAsync(stream).then(() => undefined, (e) => e),
        10_000,
        "read",
      );
      assert.ok(error instanceof TypeError, String(error));
      // Deno: "code 0" and no reason; Bun: "code 1006" and no reason.
      assert.match(
        error.message,
        /^Cannot use WebSocket: the connection closed with code 1006 \(.*invalid UTF-?8.*\)$/i,
      );
    } finally {
      await server.close();
    }
  });
});
