// serveHttp2 over TLS (its `tls` option): native gRPC from grpc-js with SSL
// credentials, connect-node's gRPC transport over https and our own
// createHttp2Client, the three protocols over it; clients that cannot
// complete a handshake (cleartext h2c, an untrusted certificate, HTTP/1.1
// only, no ALPN, none at all) fail cleanly and free their slot; the limits
// hold over TLS; shutdown ends with TLS sessions and handshakes open; and
// the option's checks.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { execFileSync } from "node:child_process";
import * as http2 from "node:http2";
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { createClient as createConnectClient } from "@connectrpc/connect";
import { createGrpcTransport as connectNodeGrpc } from "@connectrpc/connect-node";
import {
  Code,
  createClient,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  createUniversalHandler,
  defineService,
  implementService,
  Int64Value,
  RpcError,
  type Transport,
} from "../lib/rpc/mod.ts";
import type { UniversalHandler } from "../lib/rpc/universal.ts";
import { createHttp2Client } from "../lib/runtime/grpc_node.ts";
import {
  type Http2Server,
  serveHttp2,
  type ServeHttp2Options,
} from "../lib/runtime/serve_http2.ts";
import { makeCertificates, type Tls } from "./browser/_test_server.ts";
import { connectEchoService, int64 } from "./_calc_peers.ts";
import { deadline, makeTempDir, removeDir } from "./_helpers.ts";
import { assertPairsChecked } from "./_tls_pairs.ts";

const T = 20_000; // per-operation deadline, generous for a noisy machine

const EchoService = defineService("test.v1.EchoService", {
  echo: { kind: "unary", input: Int64Value, output: Int64Value },
  count: { kind: "server-streaming", input: Int64Value, output: Int64Value },
  scan: { kind: "bidi", input: Int64Value, output: Int64Value },
  hold: { kind: "server-streaming", input: Int64Value, output: Int64Value },
});

const impl = implementService(EchoService, {
  echo: (v) => v,
  count: async function* (n) {
    for (let i = 1n; i <= n; i++) yield i;
  },
  scan: async function* (values) {
    let total = 0n;
    for await (const v of values) yield total += v;
  },
  // One message, then open until the call is ended (its signal).
  hold: async function* (n, context) {
    yield n;
    await new Promise((resolve) =>
      context.signal.addEventListener("abort", resolve, { once: true })
    );
  },
});

const universal = createUniversalHandler(impl);

/**
 * The service, and `/stall`, which answers only once its stream is gone: a
 * stream the client resets is then never answered, however late its
 * RST_STREAM comes (a request to the service can be answered first: a
 * server-streaming call whose body ended at the reset).
 */
const stallOrServe: UniversalHandler = (request) =>
  new URL(request.url).pathname === "/stall"
    ? new Promise((resolve) =>
      request.signal!.addEventListener(
        "abort",
        () => resolve({ status: 204, headers: new Headers() }),
        { once: true },
      )
    )
    : universal(request);

function hasOpenssl(): boolean {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * grpc-js's channel options over TLS to 127.0.0.1: the name the certificate
 * is checked against (and sent as SNI), as under Deno a TLS connection to an
 * IP address with it as `servername` throws ("must not be an IP address").
 */
const GRPC_JS_TLS = { "grpc.ssl_target_name_override": "localhost" };

const serialize = (v: bigint) => Buffer.from(Int64Value.proto.encode(v));
const deserialize = (b: Buffer) => Int64Value.proto.decode(new Uint8Array(b));

/** grpc-js unary `echo` over `client`: the value, or the error. */
function grpcJsEcho(client: grpc.Client, value: bigint): Promise<bigint> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      "/test.v1.EchoService/echo",
      serialize,
      deserialize,
      value,
      (error, response) => error ? reject(error) : resolve(response!),
    );
  });
}

/** grpc-js bidi `scan` over `client`: the running sums, or the error. */
function grpcJsScan(
  client: grpc.Client,
  values: readonly bigint[],
): Promise<bigint[]> {
  return new Promise((resolve, reject) => {
    const call = client.makeBidiStreamRequest(
      "/test.v1.EchoService/scan",
      serialize,
      deserialize,
    );
    const results: bigint[] = [];
    call.on("data", (v: bigint) => results.push(v));
    call.on("error", reject);
    call.on("end", () => resolve(results));
    for (const v of values) call.write(v);
    call.end();
  });
}

/** What a call to `echo` over createHttp2Client gives: the value or the error. */
async function sluiceEcho(
  url: URL | string,
  options: Parameters<typeof createHttp2Client>[1] = {},
): Promise<bigint | RpcError> {
  const httpClient = createHttp2Client(url, options);
  try {
    const client = createClient(
      EchoService,
      createGrpcTransport({ baseUrl: url, httpClient }),
    );
    return await deadline(
      client.echo(7n).catch((error: RpcError) => error),
      T,
      "echo",
    );
  } finally {
    httpClient.close();
  }
}

/**
 * How a raw TCP connection to `port` ends: it sends `bytes` (if any) and
 * resolves once the server closed it, with what came back.
 */
function rawUntilClosed(port: number, bytes?: string): Promise<string> {
  return new Promise((resolve) => {
    const socket: Socket = netConnect(port, "127.0.0.1", () => {
      if (bytes !== undefined) socket.write(bytes);
    });
    let got = "";
    socket.on("data", (chunk: Buffer) => got += chunk.toString("latin1"));
    socket.on("error", () => {});
    socket.on("close", () => resolve(got));
  });
}

/**
 * A TLS handshake to `port` offering `alpn` (none if empty): resolves with
 * the error that ended it, or "closed" once the server closed the
 * connection after the handshake.
 */
function tlsUntilClosed(
  port: number,
  ca: string,
  alpn: string[],
): Promise<string> {
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host: "127.0.0.1",
      port,
      ca,
      ...(alpn.length > 0 ? { ALPNProtocols: alpn } : {}),
    });
    let failed = "";
    socket.on("error", (error) => failed ||= error.message);
    socket.on("close", () => resolve(failed || "closed"));
  });
}

/**
 * The server's `https:` URL, written out rather than read from `url`: a
 * server that spoke h2c would serve every client here otherwise.
 */
function httpsUrl(server: Http2Server): URL {
  return new URL(`https://127.0.0.1:${server.port}/`);
}

const openssl = hasOpenssl();

describe("serveHttp2 over TLS", {
  skip: !openssl && "needs openssl for the test certificates",
}, () => {
  let dir = "";
  let tls: Tls;
  let server: Http2Server;
  before(async () => {
    dir = await makeTempDir("serve-h2-tls-");
    tls = await makeCertificates(dir);
    server = await serveHttp2(universal, {
      tls: { cert: tls.cert, key: tls.key },
    });
  });
  after(async () => {
    await server?.shutdown();
    await removeDir(dir);
  });

  /** A server over TLS with `options`, shut down after `fn`. */
  async function withServer(
    options: ServeHttp2Options,
    fn: (server: Http2Server) => Promise<void>,
  ): Promise<void> {
    const own = await serveHttp2(stallOrServe, {
      ...options,
      tls: { cert: tls.cert, key: tls.key },
    });
    try {
      await fn(own);
    } finally {
      await deadline(own.shutdown(), T, "shutdown");
    }
  }

  it("serveHttp2 with tls listens on an https: URL", () => {
    assert.equal(server.url.protocol, "https:");
    assert.equal(server.url.href, httpsUrl(server).href);
  });

  it("serveHttp2 with tls gives its handler an https: request URL, whatever :scheme the client sent (it was http:)", async () => {
    const seen: string[] = [];
    const own = await serveHttp2((request) => {
      seen.push(request.url);
      return Promise.resolve({ status: 204, headers: new Headers() });
    }, { tls: { cert: tls.cert, key: tls.key } });
    const session = http2.connect(httpsUrl(own), {
      ca: tls.ca,
      servername: "localhost",
    });
    session.on("error", () => {});
    try {
      const get = (headers: http2.OutgoingHttpHeaders) =>
        deadline(
          new Promise<unknown>((resolve, reject) => {
            const stream = session.request(headers);
            stream.on("response", (h) => resolve(h[":status"]));
            stream.on("error", reject);
            stream.resume();
            stream.end();
          }),
          T,
          "request",
        );
      assert.equal(await get({ ":path": "/a?b=1" }), 204);
      assert.equal(await get({ ":path": "/c", ":scheme": "http" }), 204);
      // The authority is the client's (`localhost`, its servername, under
      // Deno's client): the scheme and the path are the point.
      assert.deepEqual(
        seen.map((url) => new URL(url)).map((u) =>
          u.protocol + u.pathname + u.search
        ),
        ["https:/a?b=1", "https:/c"],
      );
    } finally {
      session.close();
      await deadline(own.shutdown(), T, "shutdown");
    }
  });

  it("serveHttp2 with tls serves grpc-js with SSL credentials (the test's CA): unary and bidi", async () => {
    const client = new grpc.Client(
      `127.0.0.1:${server.port}`,
      grpc.credentials.createSsl(Buffer.from(tls.ca)),
      GRPC_JS_TLS,
    );
    try {
      assert.equal(await deadline(grpcJsEcho(client, 42n), T, "echo"), 42n);
      assert.deepEqual(
        await deadline(grpcJsScan(client, [1n, 2n, 3n, 4n]), T, "scan"),
        [1n, 3n, 6n, 10n],
      );
    } finally {
      client.close();
    }
  });

  it("serveHttp2 with tls serves connect-node's gRPC transport over https (nodeOptions.ca)", async () => {
    // deno-lint-ignore no-explicit-any
    const client: any = createConnectClient(
      connectEchoService(),
      connectNodeGrpc({
        baseUrl: httpsUrl(server).origin,
        nodeOptions: { ca: tls.ca },
      }),
    );
    const result = await deadline(client.echo(int64(9n)), T, "echo");
    assert.equal((result as { value: bigint }).value, 9n);
  });

  const transports: {
    name: string;
    make(options: Parameters<typeof createGrpcTransport>[0]): Transport;
  }[] = [
    { name: "gRPC", make: createGrpcTransport },
    { name: "gRPC-Web", make: createGrpcWebTransport },
    { name: "Connect", make: createConnectTransport },
  ];
  for (const { name, make } of transports) {
    it(`serveHttp2 with tls serves createHttp2Client over https (connectOptions.ca), ${name}: unary, server-streaming and bidi`, async () => {
      const httpClient = createHttp2Client(httpsUrl(server), {
        connectOptions: { ca: tls.ca },
      });
      try {
        const client = createClient(
          EchoService,
          make({ baseUrl: httpsUrl(server), httpClient }),
        );
        assert.equal(await deadline(client.echo(5n), T, "echo"), 5n);
        assert.deepEqual(
          await deadline(
            Array.fromAsync(client.count(3n).responses),
            T,
            "count",
          ),
          [1n, 2n, 3n],
        );
        const scan = client.scan();
        await scan.send(1n);
        await scan.send(2n);
        await scan.complete();
        assert.deepEqual(
          await deadline(Array.fromAsync(scan.responses), T, "scan"),
          [1n, 3n],
        );
      } finally {
        httpClient.close();
      }
    });
  }

  it("serveHttp2 with tls fails a cleartext h2c client cleanly and serves the next call", async () => {
    const h2c = `http://127.0.0.1:${server.port}`;
    const error = await sluiceEcho(h2c);
    assert.ok(error instanceof RpcError, String(error));
    assert.equal(error.code, Code.Unavailable, String(error));
    const grpcJs = new grpc.Client(
      `127.0.0.1:${server.port}`,
      grpc.credentials.createInsecure(),
    );
    try {
      const grpcError = await deadline(
        grpcJsEcho(grpcJs, 1n).then(() => undefined, (e) => e),
        T,
        "grpc-js over h2c",
      );
      assert.equal(grpcError?.code, grpc.status.UNAVAILABLE, String(grpcError));
    } finally {
      grpcJs.close();
    }
    assert.equal(
      await sluiceEcho(httpsUrl(server), { connectOptions: { ca: tls.ca } }),
      7n,
    );
  });

  it("serveHttp2 with tls fails a client that does not trust its certificate with a certificate error, and serves the next call", async () => {
    const error = await sluiceEcho(httpsUrl(server));
    assert.ok(error instanceof RpcError, String(error));
    assert.equal(error.code, Code.Unavailable, String(error));
    assert.match(error.message, /certificate/i);
    // grpc-js with the system's roots (which lack the test's CA).
    const grpcJs = new grpc.Client(
      `127.0.0.1:${server.port}`,
      grpc.credentials.createSsl(),
      GRPC_JS_TLS,
    );
    try {
      const grpcError = await deadline(
        grpcJsEcho(grpcJs, 1n).then(() => undefined, (e) => e),
        T,
        "grpc-js with the wrong roots",
      );
      assert.equal(grpcError?.code, grpc.status.UNAVAILABLE, String(grpcError));
      assert.match(grpcError.details, /certificate/i);
    } finally {
      grpcJs.close();
    }
    assert.equal(
      await sluiceEcho(httpsUrl(server), { connectOptions: { ca: tls.ca } }),
      7n,
    );
  });

  it("serveHttp2 with tls and maxSessions 1 frees the slot of each connection that completes no handshake or offers no h2 (cleartext HTTP/1.1 and h2c, http/1.1 by ALPN, no ALPN)", async () => {
    await withServer({ maxSessions: 1 }, async (own) => {
      const trusted = { connectOptions: { ca: tls.ca } };
      // The slot is taken by a live session: a second one is refused.
      const holder = createHttp2Client(httpsUrl(own), trusted);
      try {
        const client = createClient(
          EchoService,
          createGrpcTransport({ baseUrl: httpsUrl(own), httpClient: holder }),
        );
        assert.equal(await deadline(client.echo(1n), T, "echo"), 1n);
        const refused = await sluiceEcho(httpsUrl(own), trusted);
        assert.ok(refused instanceof RpcError, String(refused));
      } finally {
        holder.close();
      }
      await deadline(
        rawUntilClosed(own.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        T,
        "cleartext HTTP/1.1",
      );
      await deadline(
        rawUntilClosed(own.port, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        T,
        "cleartext h2c preface",
      );
      assert.match(
        await deadline(
          tlsUntilClosed(own.port, tls.ca, ["http/1.1"]),
          T,
          "http/1.1 by ALPN",
        ),
        /application.?protocol/i,
      );
      assert.equal(
        await deadline(tlsUntilClosed(own.port, tls.ca, []), T, "no ALPN"),
        "closed",
      );
      // Each of them was closed by the server: the slot is free.
      assert.equal(await sluiceEcho(httpsUrl(own), trusted), 7n);
    });
  });

  it("serveHttp2 with tls closes a connection that completes no TLS handshake within headersTimeoutMs", async () => {
    await withServer({ headersTimeoutMs: 300 }, async (own) => {
      const started = performance.now();
      await deadline(rawUntilClosed(own.port), T, "the silent connection");
      const ms = performance.now() - started;
      assert.ok(ms >= 250, `closed after ${Math.round(ms)} ms`);
      assert.equal(
        await sluiceEcho(httpsUrl(own), { connectOptions: { ca: tls.ca } }),
        7n,
      );
    });
  });

  it("serveHttp2 with tls closes a session whose client resets more than maxStreamResets streams (rapid reset)", async () => {
    await withServer({ maxStreamResets: 5 }, async (own) => {
      const session = http2.connect(httpsUrl(own), { ca: tls.ca });
      session.on("error", () => {});
      try {
        const closed = new Promise((resolve) => session.once("close", resolve));
        let goaway: number | undefined;
        session.once("goaway", (code: number) => (goaway = code));
        await deadline(
          new Promise((resolve, reject) => {
            session.once("connect", resolve);
            session.once("error", reject);
          }),
          T,
          "connect",
        );
        for (let i = 0; i < 20 && !session.closed && !session.destroyed; i++) {
          const stream = session.request({
            ":method": "POST",
            ":path": "/stall",
          });
          stream.on("error", () => {});
          stream.close(http2.constants.NGHTTP2_CANCEL);
        }
        // Closed by the server: without the guard it stayed open for
        // idleTimeoutMs (120 s), its 20 streams well under
        // maxStreamsPerSession.
        await deadline(closed, T, "the session's end");
        // ENHANCE_YOUR_CALM (11), as RFC 9113 and nginx answer a flood (it
        // said NO_ERROR, 0).
        assert.equal(goaway, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      } finally {
        session.destroy();
      }
      assert.equal(
        await sluiceEcho(httpsUrl(own), { connectOptions: { ca: tls.ca } }),
        7n,
      );
    });
  });

  it("serveHttp2 with tls shuts down with an idle TLS session, a handshake never begun and a streaming call open (UNAVAILABLE past shutdownTimeoutMs)", async () => {
    const own = await serveHttp2(universal, {
      tls: { cert: tls.cert, key: tls.key },
      shutdownTimeoutMs: 300,
    });
    const trusted = { connectOptions: { ca: tls.ca } };
    const idle = createHttp2Client(httpsUrl(own), trusted);
    const busy = createHttp2Client(httpsUrl(own), trusted);
    const silent = rawUntilClosed(own.port);
    try {
      const idleClient = createClient(
        EchoService,
        createGrpcTransport({ baseUrl: httpsUrl(own), httpClient: idle }),
      );
      assert.equal(await deadline(idleClient.echo(2n), T, "echo"), 2n);
      const client = createClient(
        EchoService,
        createGrpcTransport({ baseUrl: httpsUrl(own), httpClient: busy }),
      );
      const call = client.hold(3n);
      const responses = call.responses[Symbol.asyncIterator]();
      assert.deepEqual(
        await deadline(responses.next(), T, "the first message"),
        { value: 3n, done: false },
      );
      const ended = responses.next().then(() => undefined, (e) => e);
      await deadline(own.shutdown(), T, "shutdown");
      const error = await deadline(ended, T, "the call's end");
      assert.ok(error instanceof RpcError, String(error));
      assert.equal(error.code, Code.Unavailable, String(error));
      assert.match(error.message, /the server is shutting down/);
      await deadline(silent, T, "the connection with no handshake");
    } finally {
      idle.close();
      busy.close();
      await own.shutdown();
    }
  });

  it("serveHttp2 rejects a tls that is not two PEM strings, naming it", async () => {
    const handler = universal;
    await assert.rejects(
      serveHttp2(handler, { tls: { cert: "./cert.pem", key: tls.key } }),
      {
        name: "TypeError",
        message:
          "Cannot serve HTTP/2: tls.cert must be a PEM string, got string with no -----BEGIN line (a file's path? pass the file's contents)",
      },
    );
    await assert.rejects(
      serveHttp2(handler, { tls: { cert: tls.cert, key: "" } }),
      {
        name: "TypeError",
        message:
          "Cannot serve HTTP/2: tls.key must be a PEM string, got string (empty)",
      },
    );
    await assert.rejects(
      serveHttp2(handler, { tls: "cert.pem" as never }),
      {
        name: "TypeError",
        message:
          "Cannot serve HTTP/2: tls must be an object with cert and key (PEM strings), got string",
      },
    );
  });

  it("serveHttp2 refuses a tls key that is not the certificate's, or a PEM that is not the kind named, naming them (a mismatched pair started serveHttp2 under Deno, whose every client then failed with no word on the server)", async () => {
    await assertPairsChecked(
      "serve HTTP/2",
      tls,
      (tls) => serveHttp2(universal, { tls }),
    );
  });
});
