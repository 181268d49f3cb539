// URLs and Host headers: handlers answer a request whose Host makes its URL
// unparseable (Deno passes `http://::1/...` on, Bun a relative "/ws") as
// any other, instead of throwing (500, a stack trace logged per request);
// paths compare with their unreserved characters percent-encoded or not;
// clients refuse at once a URL they cannot send to, naming the mistake.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import {
  createResumableUploadHandler,
  fetchEventStream,
  openDuplex,
  upload,
} from "../lib/http/mod.ts";
import { createResumableFileStore } from "../lib/runtime/fs.ts";
import {
  createClient,
  createRpcHandler,
  createWebSocketTransport,
  defineService,
  implementService,
  Int64Value,
} from "../lib/rpc/mod.ts";
import { createWebSocketRpcHandler } from "../lib/runtime/websocket_rpc.ts";
import { serve, type Server } from "../lib/runtime/serve.ts";
import { serveHttp2 } from "../lib/runtime/serve_http2.ts";
import { deadline, makeTempDir, rawConnection, removeDir } from "./_helpers.ts";

const Svc = defineService("pkg.Svc", {
  one: { kind: "unary", input: Int64Value, output: Int64Value },
});
const impl = implementService(Svc, { one: (n: bigint) => n + 1n });

/** Host headers no URL takes: IPv6 unbracketed or cut, a space, a port past 65535, a zone. */
const BAD_HOSTS = ["::1", "[::1", "a b", "x:99999", "[fe80::1%25eth0]:1", ""];

/** The status line of the answer to `head` sent raw to `port`. */
async function rawStatus(port: number, head: string): Promise<string> {
  const socket = await rawConnection(port);
  try {
    let received = "";
    await deadline(
      new Promise<void>((resolve, reject) => {
        socket.on("data", (chunk) => {
          received += chunk;
          if (received.includes("\r\n\r\n")) resolve();
        });
        socket.on("close", () => resolve());
        socket.on("error", reject);
        socket.write(head);
      }),
      10_000,
      "raw response head",
    );
    return received.split("\r\n")[0];
  } finally {
    socket.destroy();
  }
}

/** The handlers of these tests, routed by the raw path (the URL may not parse). */
function routes(dir: string): (request: Request) => Promise<Response> {
  const rpc = createRpcHandler(impl);
  const uploads = createResumableUploadHandler({
    store: createResumableFileStore(dir),
  });
  const ws = createWebSocketRpcHandler(impl);
  return async (request) => {
    const path = /^(?:[a-z]+:\/\/[^/]*)?(\/[^?#]*)/.exec(request.url)?.[1];
    if (path?.startsWith("/uploads")) return await uploads(request);
    if (path === "/ws") return await ws(request);
    return await rpc(request);
  };
}

/** The runtime's own server (Deno.serve, Bun.serve), no serve() around it. */
function runtimeServer(
  handler: (request: Request) => Promise<Response>,
  failures: unknown[],
): Promise<{ port: number; shutdown(): Promise<void> }> {
  const guarded = async (request: Request) => {
    try {
      return await handler(request);
    } catch (error) {
      failures.push(error);
      return new Response(null, { status: 500 });
    }
  };
  const bun = (globalThis as {
    Bun?: {
      serve(options: object): {
        port: number;
        stop(force: boolean): Promise<void>;
      };
    };
  }).Bun;
  if (bun) {
    const server = bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: guarded,
    });
    return Promise.resolve({
      port: server.port,
      shutdown: () => server.stop(true),
    });
  }
  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen: ({ port }) =>
        resolve({ port, shutdown: () => server.shutdown() }),
    }, guarded);
  });
}

describe("handlers on the runtime's own server answer a request whose Host makes its URL unparseable", () => {
  const failures: unknown[] = [];
  let dir: string;
  let server: { port: number; shutdown(): Promise<void> };
  before(async () => {
    dir = await makeTempDir("urls-");
    server = await runtimeServer(routes(dir), failures);
  });
  after(async () => {
    await server.shutdown();
    await removeDir(dir);
  });

  it("createRpcHandler answers the call", async () => {
    for (const host of BAD_HOSTS) {
      const status = await rawStatus(
        server.port,
        `POST /pkg.Svc/one HTTP/1.1\r\nHost: ${host}\r\ncontent-type: application/proto\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`,
      );
      assert.equal(status, "HTTP/1.1 200 OK", `Host: ${host}`);
    }
    assert.deepEqual(failures, []);
  });

  it("createResumableUploadHandler creates the upload", async () => {
    for (const host of BAD_HOSTS) {
      const status = await rawStatus(
        server.port,
        `POST /uploads HTTP/1.1\r\nHost: ${host}\r\nupload-complete: ?1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`,
      );
      assert.equal(status, "HTTP/1.1 201 Created", `Host: ${host}`);
    }
    assert.deepEqual(failures, []);
  });

  it("createWebSocketRpcHandler refuses a page's origin with 403: no host to compare", async () => {
    for (const host of BAD_HOSTS) {
      const status = await rawStatus(
        server.port,
        `GET /ws HTTP/1.1\r\nHost: ${host}\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\nsec-websocket-protocol: sluice.rpc.v1\r\norigin: http://127.0.0.1:${server.port}\r\n\r\n`,
      );
      assert.equal(status, "HTTP/1.1 403 Forbidden", `Host: ${host}`);
    }
    assert.deepEqual(failures, []);
  });

  it("createRpcHandler routes a relative request URL by its path, not as a network-path reference (Bun's for an empty Host: //evil/rpc/... was routed to /rpc/...)", async () => {
    const prefixed = await runtimeServer(
      createRpcHandler(impl, { requestPathPrefix: "/rpc" }),
      failures,
    );
    try {
      const status = await rawStatus(
        prefixed.port,
        `POST //evil/rpc/pkg.Svc/one HTTP/1.1\r\nHost: \r\ncontent-type: application/proto\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`,
      );
      assert.equal(status, "HTTP/1.1 404 Not Found");
    } finally {
      await prefixed.shutdown();
    }
  });
});

describe("serve answers 400 to a Host that is no host and port (RFC 9112)", () => {
  const failures: unknown[] = [];
  let dir: string;
  let server: Server;
  before(async () => {
    dir = await makeTempDir("urls-");
    server = await serve(routes(dir), {
      onError: (error) => {
        failures.push(error);
        return new Response(null, { status: 500 });
      },
    });
  });
  after(async () => {
    await server.shutdown();
    await removeDir(dir);
  });

  it("serve refuses each such Host with 400, before the handler, and logs nothing", async () => {
    for (
      const host of [
        ...BAD_HOSTS.filter((h) => h !== ""),
        "h/pkg.Svc/one?",
        "h#x",
        "a\\b",
        // An empty name before a port (a URL of it does not parse), a user.
        ":80",
        "x@y",
      ]
    ) {
      const status = await rawStatus(
        server.port,
        `POST /pkg.Svc/one HTTP/1.1\r\nHost: ${host}\r\ncontent-type: application/proto\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`,
      );
      assert.equal(status, "HTTP/1.1 400 Bad Request", `Host: ${host}`);
    }
    assert.deepEqual(failures, []);
  });

  it(
    "serve refuses an HTTP/2 :authority that makes no URL or names a user, with no Host header to check (Deno's h2c)",
    {
      skip: "Bun" in globalThis, // Bun.serve speaks no h2c
    },
    async () => {
      const session = http2.connect(`http://127.0.0.1:${server.port}`);
      try {
        for (const authority of ["host:65536", "x@y"]) {
          const stream = session.request({
            ":method": "POST",
            ":path": "/pkg.Svc/one",
            ":authority": authority,
            "content-type": "application/proto",
          });
          stream.end();
          const status = await deadline(
            new Promise<unknown>((resolve, reject) => {
              stream.once("response", (headers) => resolve(headers[":status"]));
              stream.once("error", reject);
            }),
            10_000,
            "the response",
          );
          stream.resume();
          assert.equal(status, 400, `:authority ${authority}`);
        }
      } finally {
        session.close();
      }
      assert.deepEqual(failures, []);
    },
  );

  it("serve takes the hosts that are ones: a name, an address, an IP literal, a port, none", async () => {
    for (
      const host of [
        "a.example",
        "127.0.0.1:8080",
        "[::1]:9090",
        "xn--bcher-kva.example",
        // A port with leading zeros is a port (RFC 3986: *DIGIT).
        "a.example.:000443",
        "",
      ]
    ) {
      const status = await rawStatus(
        server.port,
        `POST /pkg.Svc/one HTTP/1.1\r\nHost: ${host}\r\ncontent-type: application/proto\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`,
      );
      assert.equal(status, "HTTP/1.1 200 OK", `Host: ${host}`);
    }
    assert.deepEqual(failures, []);
  });
});

describe("serveHttp2 and the Host header (RFC 9113, 8.3.1)", () => {
  it("a request with Host and no :authority gets its URL from Host; one whose Host names another authority is 400, naming both, before the handler", async () => {
    const urls: string[] = [];
    const server = await serveHttp2((request) => {
      urls.push(request.url);
      return Promise.resolve({ status: 204, headers: new Headers() });
    });
    const session = http2.connect(server.url);
    session.on("error", () => {});
    /** The status and body of a GET of /x with `headers`. */
    const get = (headers: Record<string, string>) =>
      deadline(
        new Promise<{ status: unknown; body: string }>((resolve, reject) => {
          const stream = session.request(
            { ":method": "GET", ":path": "/x", ...headers },
            { endStream: true },
          );
          let status: unknown;
          let body = "";
          stream.on("response", (head) => status = head[":status"]);
          stream.setEncoding("utf8");
          stream.on("data", (chunk: string) => body += chunk);
          stream.on("end", () => resolve({ status, body }));
          stream.on("error", reject);
        }),
        10_000,
        JSON.stringify(headers),
      );
    try {
      // Before, the URL was http://localhost/x.
      assert.deepEqual(await get({ host: "b.example:8080" }), {
        status: 204,
        body: "",
      });
      assert.equal(urls.pop(), "http://b.example:8080/x");
      // The same entity written two ways: case and the scheme's default
      // port do not count (RFC 3986, 6.2).
      for (
        const [authority, host] of [
          ["A.example", "a.example:80"],
          ["127.0.0.1:8080", "127.0.0.1:8080"],
        ]
      ) {
        const answer = await get({ ":authority": authority, host });
        assert.equal(answer.status, 204, `${authority} and ${host}`);
        assert.equal(
          new URL(urls.pop()!).host,
          new URL(`http://${host}/`).host,
        );
      }
      // Before, served with the URL of one and the Host of the other.
      for (
        const [authority, host] of [
          ["a.example", "b.example"],
          ["a.example", "a.example:8080"],
          ["a.example", "[::1"],
        ]
      ) {
        const answer = await get({ ":authority": authority, host });
        assert.equal(answer.status, 400, `${authority} and ${host}`);
        assert.match(answer.body, /Host header .* another authority/);
        assert.ok(
          answer.body.includes(JSON.stringify(host)) &&
            answer.body.includes(JSON.stringify(authority)),
          answer.body,
        );
      }
      assert.deepEqual(urls, []);
    } finally {
      session.close();
      await server.shutdown();
    }
  });
});

/** A Connect unary call of pkg.Svc/one to `url`, its message 0 (no bytes). */
function call(url: string): Request {
  return new Request(url, {
    method: "POST",
    headers: { "content-type": "application/proto" },
    body: new Uint8Array(0),
  });
}

describe("paths compare with unreserved characters percent-encoded or not", () => {
  it("createRpcHandler serves /%61pi/v1/pkg.Svc/one under requestPathPrefix /api/v1", async () => {
    const handler = createRpcHandler(impl, { requestPathPrefix: "/api/v1" });
    const response = await handler(call("http://h/%61pi/v1/pkg.Svc/one"));
    assert.equal(response.status, 200);
    await response.body?.cancel();
  });

  it("createRpcHandler serves /api/v1/pkg.Svc/one under requestPathPrefix /%61pi/v1", async () => {
    const handler = createRpcHandler(impl, { requestPathPrefix: "/%61pi/v1" });
    const response = await handler(call("http://h/api/v1/pkg.Svc/one"));
    assert.equal(response.status, 200);
    await response.body?.cancel();
  });

  it("createRpcHandler serves a method path with unreserved characters encoded", async () => {
    const handler = createRpcHandler(impl);
    const response = await handler(call("http://h/pkg%2ESvc/%6F%6e%65"));
    assert.equal(response.status, 200);
    await response.body?.cancel();
  });

  it("createRpcHandler does not decode %2F: /api%2Fv1 is not /api/v1", async () => {
    const handler = createRpcHandler(impl, { requestPathPrefix: "/api/v1" });
    const response = await handler(call("http://h/api%2Fv1/pkg.Svc/one"));
    assert.equal(response.status, 404);
    assert.match(
      await response.text(),
      /^Cannot serve "\/api%2Fv1\/pkg\.Svc\/one": not under \/api\/v1\/$/,
    );
  });

  it("createResumableUploadHandler creates an upload posted to /api/v1/%75ploads", async () => {
    const dir = await makeTempDir("urls-");
    try {
      const handler = createResumableUploadHandler({
        store: createResumableFileStore(dir),
        requestPathPrefix: "/api/v1/uploads",
      });
      const response = await handler(
        new Request("http://h/api/v1/%75ploads", {
          method: "POST",
          headers: { "upload-complete": "?1" },
          body: new Uint8Array(0),
        }),
      );
      assert.equal(response.status, 201);
      assert.match(
        response.headers.get("location") ?? "",
        /^\/api\/v1\/uploads\/[A-Za-z0-9_-]{22}$/,
      );
      await response.body?.cancel();
    } finally {
      await removeDir(dir);
    }
  });
});

/** A fetch that must not be reached. */
const unreachable: typeof fetch = () => {
  throw new Error("fetch was called");
};

describe("clients refuse a URL fetch cannot send to, at the call", () => {
  it("fetchEventStream refuses a scheme other than http: and https: instead of retrying forever", () => {
    for (
      const [url, message] of [
        [
          "ftp://x/feed",
          'Cannot read event stream: url must be an http: or https: URL, got "ftp://x/feed"',
        ],
        [
          "ws://127.0.0.1:1/feed",
          'Cannot read event stream: url must be an http: or https: URL, got "ws://127.0.0.1:1/feed"',
        ],
        [
          "file:///etc/hostname",
          'Cannot read event stream: url must be an http: or https: URL, got "file:///etc/hostname"',
        ],
        [
          "localhost:1/feed",
          'Cannot read event stream: "localhost:1/feed" has no scheme (write "http://localhost:1/feed")',
        ],
      ]
    ) {
      assert.throws(() => fetchEventStream(url, { fetch: unreachable }), {
        name: "TypeError",
        message,
      });
    }
  });

  it("upload refuses a scheme other than http: and https:", async () => {
    await assert.rejects(
      upload("ftp://x/", new Uint8Array(1), { fetch: unreachable }),
      {
        name: "TypeError",
        message:
          'Cannot upload: url must be an http: or https: URL, got "ftp://x/"',
      },
    );
  });

  it("upload refuses a host and port with no scheme (Bun sent it to http://localhost:8080)", async () => {
    await assert.rejects(
      upload("localhost:8080/x", new Uint8Array(1), { fetch: unreachable }),
      {
        name: "TypeError",
        message:
          'Cannot upload: "localhost:8080/x" has no scheme (write "http://localhost:8080/x")',
      },
    );
  });

  it("upload says an IPv6 host with no scheme has none", async () => {
    await assert.rejects(
      upload("[::1]:8080/x", new Uint8Array(1), { fetch: unreachable }),
      {
        name: "TypeError",
        message:
          'Cannot upload: "[::1]:8080/x" has no scheme (write "http://[::1]:8080/x")',
      },
    );
  });

  it("upload says a URL with an IPv6 host out of its brackets is not valid", async () => {
    await assert.rejects(
      upload("http://[::1:8080/x", new Uint8Array(1), { fetch: unreachable }),
      {
        name: "TypeError",
        message:
          'Cannot upload: "http://[::1:8080/x" is not a valid URL (an IPv6 host goes in brackets, the port after them: http://[::1]:8080/)',
      },
    );
  });

  it("openDuplex refuses a scheme other than http: and https:", () => {
    for (
      const [url, message] of [
        [
          "ftp://x/feed",
          'Cannot open duplex stream: url must be an http: or https: URL, got "ftp://x/feed"',
        ],
        [
          "localhost:1/feed",
          'Cannot open duplex stream: "localhost:1/feed" has no scheme (write "http://localhost:1/feed")',
        ],
      ]
    ) {
      assert.throws(() => openDuplex(url, { fetch: unreachable }), {
        name: "TypeError",
        message,
      });
    }
  });
});

/** A WebSocket constructor that records the URL it is given and fails. */
function recordingSocket(urls: string[]) {
  return class {
    constructor(url: string) {
      urls.push(url);
      throw new Error("no socket in this test");
    }
  } as never;
}

describe("createWebSocketTransport checks its URL at creation", () => {
  for (
    const [label, options, message] of [
      [
        "another scheme",
        { baseUrl: "ftp://x" },
        'Cannot create WebSocket transport: baseUrl must be a ws:, wss:, http: or https: URL, got "ftp://x"',
      ],
      [
        "a relative URL outside a page",
        { baseUrl: "/rpc" },
        'Cannot create WebSocket transport: baseUrl must be a ws:, wss:, http: or https: URL (or, in a page, relative to it), got "/rpc"',
      ],
      [
        "an unbalanced IPv6 bracket",
        { baseUrl: "ws://[::1:8080" },
        'Cannot create WebSocket transport: baseUrl must be a ws:, wss:, http: or https: URL (or, in a page, relative to it), got "ws://[::1:8080"',
      ],
      [
        "a query in baseUrl",
        { baseUrl: "ws://127.0.0.1:9/?x=1" },
        'Cannot create WebSocket transport: baseUrl must have no query or fragment (the method path is appended to it; send values in headers), got "ws://127.0.0.1:9/?x=1"',
      ],
      [
        "a fragment in baseUrl",
        { baseUrl: "ws://127.0.0.1:9/#f" },
        'Cannot create WebSocket transport: baseUrl must have no query or fragment (the method path is appended to it; send values in headers), got "ws://127.0.0.1:9/#f"',
      ],
      [
        "a fragment in url",
        { url: "ws://127.0.0.1:9/rpc-ws#" },
        'Cannot create WebSocket transport: url must have no fragment (a WebSocket URL has none), got "ws://127.0.0.1:9/rpc-ws#"',
      ],
      [
        "another scheme in url",
        { url: new URL("ftp://x/rpc-ws") },
        'Cannot create WebSocket transport: url must be a ws:, wss:, http: or https: URL, got "ftp://x/rpc-ws"',
      ],
    ] as const
  ) {
    it(`createWebSocketTransport refuses ${label}`, () => {
      const urls: string[] = [];
      assert.throws(
        () =>
          createWebSocketTransport({
            ...options,
            WebSocket: recordingSocket(urls),
          }),
        { name: "TypeError", message },
      );
    });
  }

  it("createWebSocketTransport opens an http: baseUrl as ws: plus the method path", async () => {
    const urls: string[] = [];
    const client = createClient(
      Svc,
      createWebSocketTransport({
        baseUrl: "HTTP://127.0.0.1:9/base/",
        WebSocket: recordingSocket(urls),
      }),
    );
    await assert.rejects(client.one(1n));
    assert.deepEqual(urls, ["ws://127.0.0.1:9/base/pkg.Svc/one"]);
  });

  it("createWebSocketTransport keeps a query in url", async () => {
    const urls: string[] = [];
    const client = createClient(
      Svc,
      createWebSocketTransport({
        url: "https://127.0.0.1:9/rpc-ws?token=a",
        WebSocket: recordingSocket(urls),
      }),
    );
    await assert.rejects(client.one(1n));
    assert.deepEqual(urls, ["wss://127.0.0.1:9/rpc-ws?token=a"]);
  });
});
