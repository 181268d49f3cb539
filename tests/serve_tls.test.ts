// serve over HTTPS (its `tls` option): requests and uploads answered over
// TLS, a request body streamed full duplex over HTTP/2 (Deno), WebSockets
// over wss://, a shutdown bounded while a client holds an idle TLS
// connection that negotiated h2 (docs/known-runtime-issues.md (h)), and the
// option's checks.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createServer as createHttpsServer } from "node:https";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { connect, type TLSSocket } from "node:tls";
import { duplexResponse } from "../lib/http/duplex_response.ts";
import { createEchoHandler } from "../lib/http/echo.ts";
import { openDuplex } from "../lib/http/open_duplex.ts";
import { websocketDuplex } from "../lib/http/websocket_duplex.ts";
import { serve } from "../lib/runtime/serve.ts";
import { upgradeWebSocket } from "../lib/runtime/websocket.ts";
import type { DuplexStream } from "../lib/streams/duplex_stream.ts";
import { makeCertificates, type Tls } from "./browser/_test_server.ts";
import {
  deadline,
  lockstep,
  makeTempDir,
  removeDir,
  runScript,
  runtime,
  startChild,
} from "./_helpers.ts";
import { assertPairsChecked } from "./_tls_pairs.ts";

const dec = new TextDecoder();

function hasOpenssl(): boolean {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** A fetch that trusts `ca`: Deno's through a client (h2 only if asked). */
function trustingFetch(ca: string, { h2Only = false } = {}) {
  if (runtime === "deno") {
    const client = Deno.createHttpClient({
      caCerts: [ca],
      ...(h2Only ? { http1: false, http2: true } : {}),
    });
    const fetchWith: typeof fetch = (input, init) =>
      fetch(
        input,
        { ...init, client } as RequestInit & { client: Deno.HttpClient },
      );
    return { fetch: fetchWith, close: () => client.close() };
  }
  const fetchWith: typeof fetch = (input, init) =>
    fetch(input, { ...init, tls: { ca } } as RequestInit & { tls: unknown });
  return { fetch: fetchWith, close: () => {} };
}

/** A TLS connection to `port` offering h2 and http/1.1, once negotiated. */
function connectTls(port: number, ca: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: "127.0.0.1",
      port,
      ca,
      ALPNProtocols: ["h2", "http/1.1"],
    }, () => resolve(socket));
    socket.once("error", reject);
  });
}

/**
 * Sends `text` over a WebSocket to `url` (wss://) trusting `ca`, closes its
 * write side and returns what came back. Bun's WebSocket takes the CA; Deno's
 * takes none but DENO_CERT's, so under Deno the client runs in a child.
 */
async function wssRoundTrip(
  url: string,
  ca: string,
  caFile: string,
  text: string,
): Promise<string> {
  const client = async (socket: WebSocket) => {
    const stream = websocketDuplex(socket);
    await stream.write(text);
    await stream.closeWrite();
    let got = "";
    for await (const chunk of stream) got += dec.decode(chunk);
    return got;
  };
  if (runtime === "bun") {
    return await client(new WebSocket(url, { tls: { ca } } as never));
  }
  const module = new URL("../lib/http/websocket_duplex.ts", import.meta.url);
  const code = `import { websocketDuplex } from ${
    JSON.stringify(String(module))
  };
    const dec = new TextDecoder();
    const stream = websocketDuplex(new WebSocket(${JSON.stringify(url)}));
    await stream.write(${JSON.stringify(text)});
    await stream.closeWrite();
    let got = "";
    for await (const chunk of stream) got += dec.decode(chunk);
    console.log(JSON.stringify(got));`;
  const child = spawn(process.execPath, ["eval", code], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, DENO_CERT: caFile, NO_COLOR: "1" },
  });
  let out = "";
  child.stdout!.setEncoding("utf8").on("data", (s: string) => out += s);
  const exitCode = await deadline(
    new Promise<number | null>((resolve) => child.on("close", resolve)),
    30_000,
    "wss client",
  ).catch((error) => {
    child.kill("SIGKILL");
    throw error;
  });
  assert.equal(exitCode, 0, `wss client exited with ${exitCode}: ${out}`);
  return JSON.parse(out.trim());
}

async function echoStream(stream: DuplexStream): Promise<void> {
  for await (const chunk of stream) await stream.write(chunk);
}

const openssl = hasOpenssl();

describe("serve over HTTPS", {
  skip: !openssl && "needs openssl for the test certificates",
}, () => {
  let dir = "";
  let tls: Tls;
  let caFile = "";
  before(async () => {
    dir = await makeTempDir("serve-tls-");
    tls = await makeCertificates(dir);
    caFile = join(dir, "ca.crt");
    await writeFile(caFile, tls.ca);
  });
  after(async () => {
    await removeDir(dir);
  });

  it("serve with tls answers an echo of a streamed upload over https, and its url is https:", async () => {
    const server = await serve(createEchoHandler(), {
      tls: { cert: tls.cert, key: tls.key },
    });
    const client = trustingFetch(tls.ca);
    try {
      assert.equal(server.url.protocol, "https:");
      const body = ReadableStream.from(["Hello, ", "World!"]).pipeThrough(
        new TextEncoderStream(),
      );
      const response = await deadline(
        client.fetch(server.url, {
          method: "POST",
          body,
          duplex: "half",
        } as RequestInit),
        10_000,
        "https echo",
      );
      assert.equal(response.status, 200);
      assert.equal(await response.text(), "Hello, World!");
    } finally {
      client.close();
      await deadline(server.shutdown(), 10_000, "shutdown");
    }
  });

  it("serve with tls negotiates h2 by ALPN under Deno; under Bun no protocol by ALPN (HTTP/1.1)", async () => {
    const server = await serve(() => new Response("ok"), {
      tls: { cert: tls.cert, key: tls.key },
    });
    try {
      const socket = await deadline(
        connectTls(server.port, tls.ca),
        10_000,
        "TLS handshake",
      );
      socket.destroy();
      assert.equal(
        socket.alpnProtocol,
        // Bun 1.4.5 selects none (openssl s_client: "No ALPN negotiated"):
        // clients then speak HTTP/1.1.
        runtime === "deno" ? "h2" : false,
      );
    } finally {
      await deadline(server.shutdown(), 10_000, "shutdown");
    }
  });

  it(
    "serve with tls streams a request body full duplex over h2: openDuplex completes 20 lockstep round trips",
    { skip: runtime !== "deno" && "h2 needs Deno (Bun.serve speaks HTTP/1.1)" },
    async () => {
      const server = await serve(
        (request) => duplexResponse(request, echoStream),
        { tls: { cert: tls.cert, key: tls.key } },
      );
      const client = trustingFetch(tls.ca, { h2Only: true });
      try {
        assert.equal(server.url.protocol, "https:");
        const { stream } = openDuplex(server.url, { fetch: client.fetch });
        await deadline(
          lockstep(stream, 20, { prefix: "" }),
          30_000,
          "20 round trips over h2",
        );
      } finally {
        client.close();
        await deadline(server.shutdown(), 10_000, "shutdown");
      }
    },
  );

  it("serve with tls upgrades a wss:// request: websocketDuplex echoes over TLS", async () => {
    const server = await serve((request) => {
      const { socket, response } = upgradeWebSocket(request);
      const stream = websocketDuplex(socket);
      echoStream(stream).then(() => stream.close(), (e) => stream.close(e));
      return response;
    }, { tls: { cert: tls.cert, key: tls.key } });
    try {
      const url = new URL(server.url);
      url.protocol = "wss:";
      const got = await wssRoundTrip(String(url), tls.ca, caFile, "over TLS");
      assert.equal(got, "over TLS");
    } finally {
      await deadline(server.shutdown(), 10_000, "shutdown");
    }
  });

  it("serve with tls: shutdown() resolves within shutdownTimeoutMs while a client holds an idle TLS connection that offered h2, and the process exits once that client closes it", async () => {
    const child = await startChild("_serve_tls_server.ts", [dir, "1000"]);
    let idle: TLSSocket | undefined;
    try {
      idle = await deadline(
        connectTls(child.first.port, tls.ca),
        10_000,
        "TLS handshake",
      );
      // Sends nothing, as Chromium's spare preconnected socket does.
      idle.on("error", () => {});
      const { ms } = await child.request({ cmd: "shutdown" }, 10_000);
      assert.ok(ms < 1000 + 2000, `shutdown took ${ms} ms`);
      idle.destroy();
      const started = performance.now();
      const exit = await child.stop();
      assert.deepEqual(exit, { code: 0, signal: null });
      assert.ok(
        performance.now() - started < 10_000,
        "the process exited once the idle client closed",
      );
    } finally {
      idle?.destroy();
      await child.stop();
    }
  });

  it("serve with tls: shutdown() lets an answer made while it waits out whole (closing the connections once no request was left cut a 16 MiB answer at 180 KB)", async () => {
    const size = 16 * 1024 * 1024;
    const handling = Promise.withResolvers<void>();
    const server = await serve(async () => {
      handling.resolve();
      await new Promise((resolve) => setTimeout(resolve, 300));
      return new Response(new Uint8Array(size).fill(7));
    }, { tls: { cert: tls.cert, key: tls.key }, shutdownTimeoutMs: 10_000 });
    const client = trustingFetch(tls.ca);
    try {
      const answer = client.fetch(server.url);
      // The shutdown begins while the request is being answered (a fixed
      // 100 ms was sometimes before a loaded machine's TLS handshake had
      // brought the request in, and the answer was then refused).
      await deadline(handling.promise, 20_000, "the request");
      const stopped = server.shutdown();
      const response = await deadline(answer, 20_000, "the answer's head");
      assert.equal(response.status, 200);
      const body = new Uint8Array(
        await deadline(response.arrayBuffer(), 20_000, "the answer's body"),
      );
      assert.equal(body.byteLength, size);
      assert.ok(body.every((byte) => byte === 7));
      await deadline(stopped, 20_000, "shutdown");
    } finally {
      client.close();
      await deadline(server.shutdown(), 20_000, "shutdown");
    }
  });

  /**
   * Runs `code` in a child of this runtime that trusts the test CA as users
   * tell it to (DENO_CERT under Deno, NODE_EXTRA_CA_CERTS under Bun); fails
   * unless it exits 0 within 30 s.
   */
  function trustingChild(code: string) {
    return runScript(code, {
      cwd: dir,
      env: runtime === "bun"
        ? { NODE_EXTRA_CA_CERTS: caFile }
        : { DENO_CERT: caFile },
    });
  }

  it("uploadFile sends a file to an https server whose CA the runtime was told to trust (DENO_CERT under Deno, whose node:https ignored it: 'unable to verify the first certificate'; NODE_EXTRA_CA_CERTS under Bun), and a process that leaves an answer unread exits", async () => {
    const server = await serve(async (request) => {
      const body = new Uint8Array(await request.arrayBuffer());
      // An answer over the 64 KiB read ahead of the caller.
      if (new URL(request.url).search === "?big") {
        return new Response(new Uint8Array(1024 * 1024));
      }
      const hash = createHash("sha256").update(body).digest("hex");
      return new Response(`${body.length} ${hash}`);
    }, { tls: { cert: tls.cert, key: tls.key } });
    try {
      const bytes = new Uint8Array(3 * 1024 * 1024 + 7);
      for (let i = 0; i < bytes.length; i += 65536) {
        crypto.getRandomValues(bytes.subarray(i, i + 65536));
      }
      const file = join(dir, "upload.bin");
      await writeFile(file, bytes);
      const module = new URL("../lib/runtime/upload_file.ts", import.meta.url);
      const code = `import { uploadFile } from ${
        JSON.stringify(String(module))
      };
        const response = await uploadFile(${
        JSON.stringify(String(server.url))
      }, ${JSON.stringify(file)});
        console.log(response.status, await response.text());
        // Its body never read: the process must still end (a connection
        // kept alive held it for good under Deno).
        const unread = await uploadFile(${
        JSON.stringify(`${server.url}?big`)
      }, ${JSON.stringify(file)});
        console.error("unread", unread.status);`;
      const { stdout, stderr } = await trustingChild(code);
      assert.match(stderr, /unread 200/);
      assert.equal(
        stdout.trim(),
        `200 ${bytes.length} ${
          createHash("sha256").update(bytes).digest("hex")
        }`,
      );
    } finally {
      await deadline(server.shutdown(), 10_000, "shutdown");
    }
  });

  it("uploadFile resolves with an answer an https server sends before the body ends and then closes (Deno: 'write EPIPE'), and takes the server name from a Host header (SNI and the certificate's check)", async () => {
    // node:https's server: it answers a request that says Connection: close
    // and closes the connection, while the client still sends.
    const seen: Array<string | undefined> = [];
    const server = createHttpsServer({ cert: tls.cert, key: tls.key }, (
      request,
      response,
    ) => {
      seen.push((request.socket as TLSSocket).servername || undefined);
      request.resume();
      if (request.url === "/early") {
        response.writeHead(401).end("no");
        return;
      }
      let bytes = 0;
      request.on("data", (chunk: Uint8Array) => bytes += chunk.length);
      request.on("end", () => response.end(String(bytes)));
    });
    await new Promise<void>((resolve) =>
      server.listen(0, "127.0.0.1", resolve)
    );
    const { port } = server.address() as { port: number };
    try {
      const file = join(dir, "early.bin");
      await writeFile(file, new Uint8Array(3 * 1024 * 1024));
      const module = new URL("../lib/runtime/upload_file.ts", import.meta.url);
      const code = `import { uploadFile } from ${
        JSON.stringify(String(module))
      };
        for (const [url, headers] of ${
        JSON.stringify([
          [`https://127.0.0.1:${port}/early`, {}],
          // The certificate names 127.0.0.1 and localhost: a Host header
          // names the server as https.Agent reads it.
          [`https://127.0.0.1:${port}/named`, { host: `localhost:${port}` }],
        ])
      }) {
          const response = await uploadFile(url, ${
        JSON.stringify(file)
      }, { headers });
          console.log(response.status, await response.text());
        }`;
      const { stdout } = await trustingChild(code);
      assert.equal(stdout.trim(), `401 no\n200 ${3 * 1024 * 1024}`);
      // Under Deno, node:https; Bun's fetch sends no SNI for an IP.
      if (runtime === "deno") assert.deepEqual(seen, [undefined, "localhost"]);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("serve refuses a tls option without both PEM strings", async () => {
    const handler = () => new Response("ok");
    await assert.rejects(
      serve(handler, { tls: "cert.pem" as never }),
      {
        name: "TypeError",
        message:
          "Cannot serve: tls must be an object with cert and key (PEM strings), got string",
      },
    );
    await assert.rejects(
      serve(handler, { tls: { cert: tls.cert } as never }),
      {
        name: "TypeError",
        message: "Cannot serve: tls.key must be a PEM string, got undefined",
      },
    );
    await assert.rejects(
      serve(handler, { tls: { cert: "", key: tls.key } }),
      {
        name: "TypeError",
        message:
          "Cannot serve: tls.cert must be a PEM string, got string (empty)",
      },
    );
    // A path where the contents go: the runtime's own words before
    // (Deno: "No certificates found in certificate data").
    await assert.rejects(
      serve(handler, { tls: { cert: tls.cert, key: "./key.pem" } }),
      {
        name: "TypeError",
        message:
          "Cannot serve: tls.key must be a PEM string, got string with no -----BEGIN line (a file's path? pass the file's contents)",
      },
    );
  });

  it("serve refuses a tls key that is not the certificate's, or a PEM that is not the kind named, naming them (a mismatched pair started serveHttp2 under Deno, whose every client then failed with no word on the server)", async () => {
    const handler = () => new Response("ok");
    await assertPairsChecked(
      "serve",
      tls,
      (tls) => serve(handler, { hostname: "127.0.0.1", port: 0, tls }),
    );
  });
});
