// Every flow in Cloudflare's workerd: examples/workers/worker.ts bundled by
// `deno bundle`, served by workerd on 127.0.0.1 and driven with real fetch
// and WebSocket clients from the test runtime (Deno or Bun).

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { connect } from "node:net";
import {
  formatDigestHeader,
  openDuplex,
  parseDigestHeader,
  upload,
  websocketDuplex,
} from "../lib/http/mod.ts";
import {
  Code,
  createClient,
  createConnectTransport,
  createGrpcWebTransport,
  defineService,
  FrameDecoder,
  Int64Value,
  RpcError,
  type Transport,
} from "../lib/rpc/mod.ts";
import { StreamingCalcService } from "../examples/workers/worker.ts";
import { deadline, generatedStream, lockstep } from "./_helpers.ts";
import { compressedAtTheEdge, startWorkerd, type Workerd } from "./_workerd.ts";

const MiB = 1024 * 1024;
const MAX_UPLOAD_BYTES = 8 * MiB;
const T = 30_000;
const dec = new TextDecoder();
const MAX = (1n << 63n) - 1n;

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

async function sha256OfStream(
  stream: AsyncIterable<Uint8Array>,
): Promise<{ digest: Uint8Array; bytes: number }> {
  const hash = createHash("sha256");
  let bytes = 0;
  for await (const chunk of stream) {
    hash.update(chunk);
    bytes += chunk.byteLength;
  }
  return { digest: new Uint8Array(hash.digest()), bytes };
}

function randomBytes(size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) {
    crypto.getRandomValues(bytes.subarray(i, Math.min(size, i + 65536)));
  }
  return bytes;
}

/**
 * Sends a raw HTTP/1.1 request head on a new connection, then calls
 * `body(write)` whenever the socket can take more until it returns false or
 * the answer starts, and resolves with everything the server sent until it
 * closed the connection or `Content-Length` bytes of body arrived.
 */
function rawRequest(
  base: URL,
  head: string,
  body?: (write: (data: string) => boolean) => boolean,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(base.port), base.hostname);
    let answer = "";
    let writing = true;
    const finish = () => {
      socket.destroy();
      resolve(answer);
    };
    const pump = () => {
      try {
        while (writing && body && answer === "") {
          if (!body((data) => socket.write(data))) return;
        }
      } catch {
        // The server closed its side; what it answered is still readable.
        writing = false;
      }
    };
    socket.setEncoding("latin1");
    socket.on("connect", () => {
      socket.write(head);
      pump();
    });
    socket.on("drain", pump);
    socket.on("data", (data: string) => {
      answer += data;
      const split = answer.indexOf("\r\n\r\n");
      const length = /\r\ncontent-length: *(\d+)/i.exec(answer)?.[1];
      if (
        split !== -1 && length !== undefined &&
        answer.length - split - 4 >= Number(length)
      ) {
        finish();
      }
    });
    socket.on("close", finish);
    // A write into a closed connection (EPIPE, ECONNRESET) ends the writing;
    // the answer, if any, arrived before it.
    socket.on("error", (error) => {
      writing = false;
      if (answer === "") reject(error);
    });
  });
}

function reprDigest(response: Response): Uint8Array | undefined {
  const header = response.headers.get("repr-digest");
  return header ? parseDigestHeader(header).get("sha-256") : undefined;
}

describe("workerd", () => {
  let workerd: Workerd;
  const url = (path: string) => new URL(path, workerd.url);

  before(async () => {
    workerd = await startWorkerd({
      vars: { MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES) },
    });
  });
  after(async () => {
    const stderr = workerd?.stderr().trim();
    await workerd?.stop();
    if (stderr) console.error(`workerd stderr:\n${stderr}`);
  });

  describe("upload", () => {
    it("createUploadHandler in workerd stores a streamed upload and answers its SHA-256 as Repr-Digest", async () => {
      const expected = await sha256OfStream(generatedStream(6 * MiB));
      const response = await deadline(
        upload(url("/upload"), generatedStream(6 * MiB)),
        T,
        "upload",
      );
      assert.equal(response.status, 200);
      assert.equal(await response.text(), "File Received!");
      assert.deepEqual(reprDigest(response), expected.digest);
    });

    it("createUploadHandler in workerd accepts a Blob with Content-Length and a matching Content-Digest", async () => {
      const bytes = randomBytes(MiB + 17);
      const response = await upload(url("/upload"), new Blob([bytes]), {
        sha256: sha256(bytes),
      });
      assert.equal(response.status, 200);
      assert.equal(await response.text(), "File Received!");
      assert.deepEqual(reprDigest(response), sha256(bytes));
    });

    it("createUploadHandler in workerd refuses a Content-Digest mismatch with 400", async () => {
      const bytes = randomBytes(64 * 1024);
      const response = await upload(url("/upload"), bytes, {
        sha256: sha256(new Uint8Array(1)),
      });
      assert.equal(response.status, 400);
      assert.equal(
        await response.text(),
        "Cannot accept body: SHA-256 does not match Content-Digest",
      );
    });

    it("createUploadHandler in workerd refuses a malformed Content-Digest with 400", async () => {
      const response = await fetch(url("/upload"), {
        method: "POST",
        body: "hello",
        headers: { "content-digest": "SHA-256 is :nope:" },
      });
      assert.equal(response.status, 400);
      assert.match(await response.text(), /Cannot parse digest header/);
    });

    it("createUploadHandler in workerd refuses a declared Content-Length over maxBytes with 413 before reading", async () => {
      // No body is sent at all: the answer must come from the headers.
      const answer = await deadline(
        rawRequest(
          workerd.url,
          `POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${
            MAX_UPLOAD_BYTES + 1
          }\r\n\r\n`,
        ),
        T,
        "413",
      );
      assert.match(answer, /^HTTP\/1\.1 413 /);
      assert.ok(
        answer.endsWith(
          `Cannot accept body: Content-Length ${
            MAX_UPLOAD_BYTES + 1
          } exceeds maxBytes ${MAX_UPLOAD_BYTES}`,
        ),
        answer,
      );
    });

    it("createUploadHandler in workerd cuts a chunked body at maxBytes with 413", async () => {
      // Sends 64 KiB chunks up to maxBytes, then one byte more, and waits
      // for the answer with the body unfinished: nothing is written after
      // the limit, so no write races workerd's close (writing on until the
      // answer arrived failed with EPIPE before the 413 was read, now and
      // then under Bun), and workerd has read all that was sent.
      let sent = 0;
      const answer = await deadline(
        rawRequest(
          workerd.url,
          "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
          (write) => {
            if (sent > MAX_UPLOAD_BYTES) return false;
            const size = Math.min(0x10000, MAX_UPLOAD_BYTES + 1 - sent);
            sent += size;
            return write(`${size.toString(16)}\r\n${"x".repeat(size)}\r\n`);
          },
        ),
        T,
        "413",
      );
      assert.match(answer, /^HTTP\/1\.1 413 /);
      assert.ok(
        answer.endsWith(
          `Cannot accept body: size exceeds maxBytes ${MAX_UPLOAD_BYTES}`,
        ),
        answer,
      );
      assert.ok(sent > MAX_UPLOAD_BYTES, `answered after ${sent} bytes`);
    });

    it("createUploadHandler in workerd answers 405 with Allow for a GET", async () => {
      const response = await fetch(url("/upload"));
      assert.equal(response.status, 405);
      assert.equal(response.headers.get("allow"), "POST, PUT");
      await response.body?.cancel();
    });

    it("the example Worker answers a method its echo and duplex do not serve 405 (OPTIONS 204), and a GET of /ws that is no upgrade 426, without an uncaught exception (a 500 and a log line; the handlers ran for GET, HEAD and OPTIONS)", async () => {
      const logged = workerd.stderr().length;
      for (const path of ["/echo", "/duplex"]) {
        for (const method of ["GET", "HEAD", "OPTIONS"]) {
          const response = await fetch(url(path), { method });
          assert.equal(
            response.status,
            method === "OPTIONS" ? 204 : 405,
            `${method} ${path}`,
          );
          assert.equal(response.headers.get("allow"), "POST, PUT");
          await response.body?.cancel();
        }
      }
      const ws = await fetch(url("/ws"));
      // (Its Upgrade header, hop-by-hop, does not come through.)
      assert.equal(ws.status, 426);
      await ws.body?.cancel();
      assert.doesNotMatch(
        workerd.stderr().slice(logged),
        /Uncaught|HttpError/,
      );
    });

    it("upload and forwardResponse in workerd stream a body through a service binding and forward the answer", async () => {
      const bytes = randomBytes(2 * MiB);
      const response = await upload(url("/forward"), new Blob([bytes]), {
        sha256: sha256(bytes),
      });
      assert.equal(response.status, 200);
      assert.equal(await response.text(), "File Received!");
      assert.equal(
        response.headers.get("repr-digest"),
        formatDigestHeader({ "sha-256": sha256(bytes) }),
      );
    });
  });

  describe("echo and duplex over HTTP/1.1", () => {
    it("echo in workerd writes Hello, World! back after closeWrite, as application/octet-stream", async () => {
      const { stream, response } = openDuplex(url("/echo"));
      await stream.write("Hello, ");
      await stream.write("World!");
      await stream.closeWrite();
      let text = "";
      for await (const chunk of stream) text += dec.decode(chunk);
      assert.equal(text, "Hello, World!");
      const res = await response;
      assert.equal(res.headers.get("content-type"), "application/octet-stream");
      assert.equal(compressedAtTheEdge(res.headers.get("content-type")), false);
    });

    it("echo in workerd completes 100 lockstep round trips (full duplex)", async () => {
      const { stream } = openDuplex(url("/echo"));
      await deadline(lockstep(stream, 100, { prefix: "" }), T, "lockstep");
    });

    it("duplexResponse in workerd completes 100 lockstep line round trips", async () => {
      const { stream, response } = openDuplex(url("/duplex"));
      await deadline(lockstep(stream, 100), T, "lockstep");
      const res = await response;
      assert.equal(compressedAtTheEdge(res.headers.get("content-type")), false);
    });

    it("echo in workerd echoes 16 MiB intact while sending", async () => {
      const { stream } = openDuplex(url("/echo"));
      const size = 16 * MiB;
      const writing = (async () => {
        for await (const chunk of generatedStream(size)) {
          await stream.write(chunk);
        }
        await stream.closeWrite();
      })();
      const [received, sent] = await deadline(
        Promise.all([
          sha256OfStream(stream),
          sha256OfStream(generatedStream(size)),
        ]),
        T,
        "16 MiB echo",
      );
      await writing;
      assert.equal(received.bytes, size);
      assert.deepEqual(received.digest, sent.digest);
    });

    it("echo in workerd decodes a gzip request body", async () => {
      const { stream } = openDuplex(url("/echo"), { sendCompression: "gzip" });
      const bytes = randomBytes(256 * 1024);
      await stream.write(bytes);
      await stream.closeWrite();
      const got = await sha256OfStream(stream);
      assert.equal(got.bytes, bytes.byteLength);
      assert.deepEqual(got.digest, sha256(bytes));
    });
  });

  describe("WebSocket", () => {
    function connect() {
      const wsUrl = url("/ws");
      wsUrl.protocol = "ws:";
      return websocketDuplex(new WebSocket(wsUrl));
    }

    it("websocketDuplex over WebSocketPair in workerd echoes Hello, World! after closeWrite", async () => {
      const stream = connect();
      await stream.write("Hello, ");
      await stream.write("World!");
      await stream.closeWrite();
      let text = "";
      for await (const chunk of stream) text += dec.decode(chunk);
      assert.equal(text, "Hello, World!");
    });

    it("websocketDuplex over WebSocketPair in workerd completes 100 lockstep round trips", async () => {
      const stream = connect();
      await deadline(lockstep(stream, 100, { prefix: "" }), T, "lockstep");
    });

    it("websocketDuplex over WebSocketPair in workerd echoes 4 MiB intact", async () => {
      const stream = connect();
      const size = 4 * MiB;
      const writing = (async () => {
        for await (const chunk of generatedStream(size)) {
          await stream.write(chunk);
        }
        await stream.closeWrite();
      })();
      const [received, sent] = await deadline(
        Promise.all([
          sha256OfStream(stream),
          sha256OfStream(generatedStream(size)),
        ]),
        T,
        "4 MiB over WebSocket",
      );
      await writing;
      assert.equal(received.bytes, size);
      assert.deepEqual(received.digest, sent.digest);
    });
  });

  for (
    const [name, make] of [
      ["Connect", (baseUrl: URL) => createConnectTransport({ baseUrl })],
      ["gRPC-Web", (baseUrl: URL) => createGrpcWebTransport({ baseUrl })],
    ] as const
  ) {
    describe(`RPC over ${name}`, () => {
      let transport: Transport;
      before(() => {
        transport = make(workerd.url);
      });

      it(`sum in workerd over ${name} returns 55 for 1..10`, async () => {
        const call = createClient(StreamingCalcService, transport).sum();
        for (let i = 1n; i <= 10n; i++) await call.send(i);
        await call.complete();
        assert.equal(await deadline(call.receive(), T), 55n);
      });

      it(`incrementalSum in workerd over ${name} answers each value in lockstep (full duplex)`, async () => {
        const call = createClient(StreamingCalcService, transport)
          .incrementalSum();
        let expected = 0n;
        for (let i = 1n; i <= 10n; i++) {
          await deadline(call.send(i), T, `send ${i}`);
          expected += i;
          assert.deepEqual(await deadline(call.receive(), T, `reply ${i}`), {
            done: false,
            value: expected,
          });
        }
        await call.complete();
        assert.equal((await deadline(call.receive(), T)).done, true);
      });

      it(`sum in workerd over ${name} fails with OUT_OF_RANGE on int64 overflow`, async () => {
        const call = createClient(StreamingCalcService, transport).sum();
        await call.send(MAX);
        await call.send(1n);
        await call.complete().catch(() => {});
        const error = await call.receive().then(
          () => assert.fail("expected OUT_OF_RANGE"),
          (error) => error,
        );
        assert.ok(error instanceof RpcError, String(error));
        assert.equal(error.code, Code.OutOfRange);
        assert.equal(
          error.rawMessage,
          "Cannot add 1 to 9223372036854775807: the sum overflows int64",
        );
      });

      it(`an unknown method in workerd over ${name} fails with UNIMPLEMENTED`, async () => {
        const Other = defineService(StreamingCalcService.typeName, {
          missing: { kind: "bidi", input: Int64Value, output: Int64Value },
        });
        const call = createClient(Other, transport).missing();
        await call.complete().catch(() => {});
        const error = await call.receive().then(
          () => assert.fail("expected UNIMPLEMENTED"),
          (error) => error,
        );
        assert.ok(error instanceof RpcError, String(error));
        assert.equal(error.code, Code.Unimplemented);
      });
    });
  }

  describe("gRPC-Web's text format in workerd", () => {
    /** Frames of Int64Values, in base64 as padded segments, one per frame. */
    function textBody(values: bigint[]): string {
      return values.map((value) => {
        const data = Int64Value.proto.encode(value);
        const frame = new Uint8Array(5 + data.byteLength);
        new DataView(frame.buffer).setUint32(1, data.byteLength);
        frame.set(data, 5);
        return btoa(String.fromCharCode(...frame));
      }).join("");
    }

    /** The messages and the trailer frame's text of a text answer. */
    function readText(text: string): { values: bigint[]; trailer: string } {
      // Padded segments: decoded group by group, as grpc-web does.
      let binary = "";
      for (let i = 0; i < text.length; i += 4) {
        binary += atob(text.slice(i, i + 4));
      }
      const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
      const values: bigint[] = [];
      let trailer = "";
      for (const frame of new FrameDecoder().decode(bytes)) {
        if (frame.flags & 0x80) trailer = new TextDecoder().decode(frame.data);
        else values.push(Int64Value.proto.decode(frame.data));
      }
      return { values, trailer };
    }

    for (
      const [method, expected] of [
        ["sum", [6n]],
        ["incrementalSum", [1n, 3n, 6n]],
      ] as const
    ) {
      it(`createRpcHandler in workerd answers ${method} sent as application/grpc-web-text (Google's grpc-web in text mode) in text`, async () => {
        const response = await fetch(
          url(`/StreamingCalcService/${method}`),
          {
            method: "POST",
            headers: {
              "content-type": "application/grpc-web-text",
              accept: "application/grpc-web-text",
              "x-grpc-web": "1",
            },
            body: textBody([1n, 2n, 3n]),
          },
        );
        assert.equal(response.status, 200);
        assert.equal(
          response.headers.get("content-type"),
          "application/grpc-web-text+proto",
        );
        const text = await response.text();
        assert.equal(text.length % 4, 0, text);
        const { values, trailer } = readText(text);
        assert.deepEqual(values, expected);
        assert.match(trailer, /grpc-status: ?0\r\n/);
      });
    }
  });

  describe("RPC protocol limits", () => {
    it("createRpcHandler in workerd answers native gRPC UNIMPLEMENTED with a hint, in headers alone (no HTTP trailers in Workers)", async () => {
      const response = await fetch(url("/StreamingCalcService/sum"), {
        method: "POST",
        headers: { "content-type": "application/grpc+proto" },
        body: new Uint8Array(5),
      });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("grpc-status"), "12");
      assert.match(
        decodeURIComponent(response.headers.get("grpc-message") ?? ""),
        /needs HTTP trailers/,
      );
      assert.equal(await response.text(), "");
    });

    it("the RPC streaming content types are not compressed at Cloudflare's edge", async () => {
      for (
        const type of [
          "application/connect+proto",
          "application/connect+json",
          "application/grpc-web+proto",
          "application/grpc-web+json",
        ]
      ) {
        const response = await fetch(url("/StreamingCalcService/sum"), {
          method: "POST",
          headers: { "content-type": type },
          body: new Uint8Array(0),
        });
        assert.equal(response.headers.get("content-type"), type);
        assert.equal(compressedAtTheEdge(type), false, type);
        await response.body?.cancel();
      }
    });
  });
});
