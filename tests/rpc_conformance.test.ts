// Cases of the Connect conformance suite (connectrpc/conformance's test
// suites: client and server "unexpected" responses, error and end-of-stream
// JSON) and of gRPC's status codes ("cardinality violation"), replayed
// without the suite's runner, which cannot be installed here: the client
// against canned responses, the server with raw requests. Where a case has
// a peer, Connect-ES answers the same.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Code,
  createClient,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  createRpcHandler,
  createUniversalHandler,
  defineService,
  implementService,
  Int64Value,
  RpcError,
} from "../lib/rpc/mod.ts";
import { concat as concatAll } from "./_fuzz.ts";
import { encodeFrame } from "../lib/rpc/wire/_frame.ts";
import { createHttp2Client, serveHttp2 } from "../lib/runtime/grpc_node.ts";

const Svc = defineService("conformance.v1.Svc", {
  unary: { kind: "unary", input: Int64Value, output: Int64Value },
  server: { kind: "server-streaming", input: Int64Value, output: Int64Value },
  client: { kind: "client-streaming", input: Int64Value, output: Int64Value },
});

const encoder = new TextEncoder();
const concat = (...parts: Uint8Array[]) => concatAll(parts);
/** An envelope of `data` (text as UTF-8), by the library's frame encoder. */
const frame = (flags: number, data: Uint8Array | string) =>
  encodeFrame({
    flags,
    data: typeof data === "string" ? encoder.encode(data) : data,
  });
/** Int64Value { value: 7 }. */
const SEVEN = new Uint8Array([8, 7]);

/**
 * A client whose every call gets the same canned response (with the
 * transport's `maxMessageBytes`, if given).
 */
function cannedClient(
  status: number,
  headers: Record<string, string>,
  body: Uint8Array | string,
  protocol: "connect" | "grpc-web" = "connect",
  maxMessageBytes?: number,
) {
  const fetch = async (_input: RequestInfo | URL, init?: RequestInit) => {
    const sent = init?.body;
    if (sent instanceof ReadableStream) await sent.cancel().catch(() => {});
    const bytes = typeof body === "string" ? encoder.encode(body) : body;
    return new Response(bytes as Uint8Array<ArrayBuffer>, { status, headers });
  };
  const options = { baseUrl: "http://canned.invalid", fetch, maxMessageBytes };
  return createClient(
    Svc,
    protocol === "connect"
      ? createConnectTransport(options)
      : createGrpcWebTransport(options),
  );
}

async function rejectsWith(
  promise: Promise<unknown>,
  code: Code,
  message: RegExp,
): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof RpcError, String(error));
    assert.equal(error.code, code, error.message);
    assert.match(error.rawMessage, message);
    return true;
  });
}

async function collect(iterable: AsyncIterable<bigint>): Promise<bigint[]> {
  const values: bigint[] = [];
  for await (const value of iterable) values.push(value);
  return values;
}

const json = { "content-type": "application/json" };
const streamProto = { "content-type": "application/connect+proto" };

describe("Connect conformance: the client", () => {
  it("an error JSON whose code is missing or null takes the HTTP status's code and keeps its message", async () => {
    for (
      const body of ['{"message":"oops"}', '{"code":null,"message":"oops"}']
    ) {
      await rejectsWith(
        cannedClient(401, json, body).unary(1n),
        Code.Unauthenticated,
        /^oops$/,
      );
    }
    // Without a message either: the HTTP status's error.
    await rejectsWith(
      cannedClient(403, json, "{}").unary(1n),
      Code.PermissionDenied,
      /HTTP status 403/,
    );
  });

  it("an error JSON with an unknown code takes the HTTP status's code (429: UNAVAILABLE)", async () => {
    await rejectsWith(
      cannedClient(429, json, '{"code":"fancy","message":"oops"}').unary(1n),
      Code.Unavailable,
      /^oops$/,
    );
  });

  it("an end-of-stream error whose code is missing, null or unknown is UNKNOWN with its message", async () => {
    for (
      const error of [
        '{"message":"oops"}',
        '{"code":null,"message":"oops"}',
        '{"code":"fancy","message":"oops"}',
      ]
    ) {
      const body = concat(frame(0, SEVEN), frame(2, `{"error":${error}}`));
      await rejectsWith(
        collect(cannedClient(200, streamProto, body).server(1n)),
        Code.Unknown,
        /^oops$/,
      );
    }
  });

  it("a unary response in a Content-Encoding fetch did not decode is INTERNAL naming it, never read as the message", async () => {
    for (const coding of ["foo", "x-snappy"]) {
      await rejectsWith(
        cannedClient(200, {
          "content-type": "application/proto",
          "content-encoding": coding,
        }, SEVEN).unary(1n),
        Code.Internal,
        new RegExp(`unsupported content-encoding "${coding}"`),
      );
    }
  });

  it("a response of no Connect type is UNKNOWN; a Connect type of another codec is INTERNAL", async () => {
    await rejectsWith(
      cannedClient(200, { "content-type": "image/jpeg" }, SEVEN).unary(1n),
      Code.Unknown,
      /unexpected content type "image\/jpeg"/,
    );
    await rejectsWith(
      cannedClient(200, json, '{"value":"1"}').unary(1n),
      Code.Internal,
      /unexpected content type "application\/json"/,
    );
    await rejectsWith(
      collect(
        cannedClient(200, { "content-type": "text/html" }, "<p>").server(1n),
      ),
      Code.Unknown,
      /unexpected content type "text\/html"/,
    );
    await rejectsWith(
      collect(
        cannedClient(200, { "content-type": "application/connect+json" }, "")
          .server(1n),
      ),
      Code.Internal,
      /unexpected content type "application\/connect\+json"/,
    );
  });

  it("a client-streaming response with no message or more than one is UNIMPLEMENTED (response cardinality)", async () => {
    const cases: [Uint8Array, RegExp][] = [
      [frame(2, "{}"), /completed without a message/],
      [
        concat(frame(0, SEVEN), frame(0, SEVEN), frame(2, "{}")),
        /more than one message/,
      ],
    ];
    for (const [body, message] of cases) {
      const call = cannedClient(200, streamProto, body).client();
      await call.send(1n);
      await call.complete();
      await rejectsWith(call.receive(), Code.Unimplemented, message);
    }
    // The same over gRPC-Web: a unary answer with two messages.
    const grpcWeb = concat(
      frame(0, SEVEN),
      frame(0, SEVEN),
      frame(0x80, "grpc-status: 0\r\n"),
    );
    await rejectsWith(
      cannedClient(
        200,
        { "content-type": "application/grpc-web+proto" },
        grpcWeb,
        "grpc-web",
      )
        .unary(1n),
      Code.Unimplemented,
      /more than one message/,
    );
  });
});

describe("gRPC's HTTP status mapping (http-grpc-status-mapping.md)", () => {
  it("a response with no gRPC status infers its code from the HTTP status: 431 is UNKNOWN, as gRPC's http-grpc-status-mapping.md and Connect's protocol say (client_http_to_rpc_code: request-header-fields-too-large)", async () => {
    const cases: [number, Code][] = [
      [400, Code.Internal],
      [431, Code.Unknown],
      [401, Code.Unauthenticated],
      [403, Code.PermissionDenied],
      [404, Code.Unimplemented],
      [429, Code.Unavailable],
      [502, Code.Unavailable],
      [503, Code.Unavailable],
      [504, Code.Unavailable],
      [418, Code.Unknown],
    ];
    for (const protocol of ["grpc-web", "connect"] as const) {
      for (const [status, code] of cases) {
        await rejectsWith(
          cannedClient(status, { "content-type": "text/plain" }, "no", protocol)
            .unary(1n),
          code,
          new RegExp(`HTTP status ${status}`),
        );
      }
    }
  });
});

describe("Connect conformance: a 200 of another content type to the gRPC-Web and gRPC clients (grpc_web_client_unexpected, grpc_client_unexpected)", () => {
  const page = "<html>maintenance</html>";

  it("createGrpcWebTransport over fetch: a type that is not gRPC-Web (text/html, image/jpeg) is UNKNOWN, from the HTTP status 200; gRPC-Web of another codec is INTERNAL", async () => {
    for (const type of ["text/html", "image/jpeg"]) {
      await rejectsWith(
        cannedClient(200, { "content-type": type }, page, "grpc-web").unary(1n),
        Code.Unknown,
        new RegExp(`unexpected content type "${type}"`),
      );
    }
    const json = concat(
      frame(0, '{"value":"7"}'),
      frame(0x80, "grpc-status: 0\r\n"),
    );
    await rejectsWith(
      cannedClient(
        200,
        { "content-type": "application/grpc-web+json" },
        json,
        "grpc-web",
      ).unary(1n),
      Code.Internal,
      /unexpected content type "application\/grpc-web\+json"/,
    );
  });

  describe("createGrpcTransport over createHttp2Client", () => {
    let h2: Awaited<ReturnType<typeof serveHttp2>>;
    let httpClient: ReturnType<typeof createHttp2Client>;
    before(async () => {
      // Answers 200 with the content type the call names in x-answer-type.
      h2 = await serveHttp2((request) =>
        Promise.resolve({
          status: 200,
          headers: new Headers({
            "content-type": request.headers.get("x-answer-type") ?? "",
          }),
          body: ReadableStream.from([encoder.encode(page)]),
        })
      );
      httpClient = createHttp2Client(h2.url);
    });
    after(async () => {
      await httpClient.close();
      await h2.shutdown();
    });

    it("a type that is not gRPC (text/html, image/jpeg) is UNKNOWN, from the HTTP status 200; gRPC of another codec is INTERNAL", async () => {
      const client = createClient(
        Svc,
        createGrpcTransport({ baseUrl: h2.url, httpClient }),
      );
      const cases: [string, Code][] = [
        ["text/html", Code.Unknown],
        ["image/jpeg", Code.Unknown],
        ["application/grpc+json", Code.Internal],
      ];
      for (const [type, code] of cases) {
        await rejectsWith(
          client.unary(1n, { headers: { "x-answer-type": type } }),
          code,
          new RegExp(`unexpected content type "${type.replace("+", "\\+")}"`),
        );
      }
    });
  });
});

describe("Connect conformance: error JSON and end of stream", () => {
  const invalid = JSON.stringify({
    code: "invalid_argument",
    message: "x".repeat(100),
  });

  it("readUnaryResponse reads a unary error JSON over the client's maxMessageBytes within 64 KiB: its code and message arrive", async () => {
    await rejectsWith(
      cannedClient(400, json, invalid, "connect", 4).unary(1n),
      Code.InvalidArgument,
      /^x{100}$/,
    );
  });

  it("readUnaryResponse fails an error JSON over 64 KiB with the HTTP status's code, naming the bound", async () => {
    const big = JSON.stringify({
      code: "invalid_argument",
      message: "x".repeat(64 * 1024),
    });
    await rejectsWith(
      cannedClient(400, json, big).unary(1n),
      Code.Internal,
      /^Cannot read response: HTTP status 400 with an error body over 65536 bytes$/,
    );
  });

  it("readUnaryResponse still holds a unary success and an end-of-stream error to maxMessageBytes", async () => {
    await rejectsWith(
      // Int64Value { value: 2 ** 31 - 1 }: 6 bytes.
      cannedClient(
        200,
        { "content-type": "application/proto" },
        new Uint8Array([8, 0xff, 0xff, 0xff, 0xff, 0x07]),
        "connect",
        4,
      )
        .unary(1n),
      Code.ResourceExhausted,
      /maxMessageBytes 4/,
    );
    await rejectsWith(
      collect(
        cannedClient(
          200,
          streamProto,
          frame(2, `{"error":${invalid}}`),
          "connect",
          4,
        )
          .server(1n),
      ),
      Code.ResourceExhausted,
      /maxMessageBytes 4/,
    );
  });

  it("decodeEndStream says what is wrong in valid JSON of another shape, INTERNAL", async () => {
    const cases: [string, RegExp][] = [
      [
        '{"metadata":{"x-a":"str"}}',
        /metadata "x-a" is not an array of strings$/,
      ],
      [
        '{"metadata":{"x-a":["a",1]}}',
        /metadata "x-a" is not an array of strings$/,
      ],
      ['{"metadata":["x-a"]}', /metadata is not an object$/],
      ["[]", /not a JSON object$/],
      ['{"error":"boom"}', /error is not an object$/],
      ["{", /invalid JSON$/],
    ];
    for (const [end, message] of cases) {
      await rejectsWith(
        collect(
          cannedClient(200, streamProto, concat(frame(0, SEVEN), frame(2, end)))
            .server(1n),
        ),
        Code.Internal,
        new RegExp(`^Cannot decode EndStreamResponse: ${message.source}`),
      );
    }
  });
});

describe("Connect conformance: the server", () => {
  const handler = createRpcHandler(implementService(Svc, {
    unary: (value) => value,
    server: async function* (value) {
      yield value;
    },
    client: async (values) => {
      let sum = 0n;
      for await (const value of values) sum += value;
      return sum;
    },
  }));
  const post = (path: string, type: string, body: Uint8Array) =>
    handler(
      new Request(`http://x${path}`, {
        method: "POST",
        headers: { "content-type": type },
        body: body as Uint8Array<ArrayBuffer>,
      }),
    );

  it("a server-streaming request with no message or more than one is UNIMPLEMENTED (request cardinality), on Connect and gRPC-Web", async () => {
    const bodies: [Uint8Array, RegExp][] = [
      [frame(0, new Uint8Array()).subarray(0, 0), /has no message/],
      [concat(frame(0, SEVEN), frame(0, SEVEN)), /more than one message/],
    ];
    for (const [body, message] of bodies) {
      const connect = await post(
        "/conformance.v1.Svc/server",
        "application/connect+proto",
        body,
      );
      assert.equal(connect.status, 200);
      const text = new TextDecoder().decode(await connect.arrayBuffer());
      assert.match(text, /"code":"unimplemented"/);
      assert.match(text, message);
      const grpcWeb = await post(
        "/conformance.v1.Svc/server",
        "application/grpc-web+proto",
        body,
      );
      // Trailers-Only: the status in the headers.
      await grpcWeb.body?.cancel();
      assert.equal(grpcWeb.headers.get("grpc-status"), "12");
      assert.match(
        decodeURIComponent(grpcWeb.headers.get("grpc-message") ?? ""),
        message,
      );
    }
  });

  it("a unary request in frames with no message or more than one is UNIMPLEMENTED (request cardinality), on gRPC-Web and gRPC, a second message refused before the body ends", async () => {
    const universal = createUniversalHandler(implementService(Svc, {
      unary: (value) => value,
      server: async function* (value) {
        yield value;
      },
      client: () => 0n,
    }));
    /** The status a unary call with `chunks` (then `end`, if given) ends with. */
    const grpcStatus = async (
      type: string,
      chunks: Uint8Array[],
      end: boolean,
    ) => {
      const response = await universal({
        method: "POST",
        url: "http://x/conformance.v1.Svc/unary",
        headers: new Headers({ "content-type": type, te: "trailers" }),
        body: new ReadableStream({
          start(controller) {
            for (const chunk of chunks) controller.enqueue(chunk);
            if (end) controller.close();
          },
        }),
        signal: new AbortController().signal,
      });
      // Trailers-Only: the status in the headers.
      await response.body?.cancel();
      return [
        response.headers.get("grpc-status") ?? "",
        decodeURIComponent(response.headers.get("grpc-message") ?? ""),
      ];
    };
    const cases: [Uint8Array[], boolean, RegExp][] = [
      [[], true, /the request has no message/],
      [[concat(frame(0, SEVEN), frame(0, SEVEN))], true, /more than one/],
      // Split inside the second frame's header.
      [
        [
          frame(0, SEVEN).subarray(0, 6),
          concat(
            frame(0, SEVEN).subarray(6),
            frame(0, SEVEN),
          ),
        ],
        true,
        /more than one/,
      ],
      // The body never ends: the second message is enough.
      [[frame(0, SEVEN), frame(0, SEVEN)], false, /more than one/],
    ];
    for (const type of ["application/grpc-web+proto", "application/grpc"]) {
      for (const [chunks, end, message] of cases) {
        const [code, text] = await grpcStatus(type, chunks, end);
        assert.equal(code, "12", `${type}: ${text}`);
        assert.match(text, message, type);
      }
      // One message, then the body ends: the call is answered.
      const answered = await universal({
        method: "POST",
        url: "http://x/conformance.v1.Svc/unary",
        headers: new Headers({ "content-type": type, te: "trailers" }),
        body: new Response(frame(0, SEVEN)).body!,
        signal: new AbortController().signal,
      });
      const bytes = new Uint8Array(
        await new Response(answered.body).arrayBuffer(),
      );
      if (type === "application/grpc") {
        assert.deepEqual(bytes, frame(0, SEVEN));
        assert.equal((await answered.trailers)?.get("grpc-status"), "0");
      } else {
        // The message's frame, then the trailer frame.
        assert.deepEqual(bytes.subarray(0, 7), frame(0, SEVEN));
        assert.equal(bytes[7], 0x80);
        assert.match(
          new TextDecoder().decode(bytes.subarray(12)),
          /grpc-status: ?0/,
        );
      }
    }
  });

  it("a unary POST to an unknown method is HTTP 404 with the UNIMPLEMENTED error JSON, as a router answers it", async () => {
    const response = await post(
      "/conformance.v1.Svc/nope",
      "application/proto",
      SEVEN,
    );
    assert.equal(response.status, 404);
    assert.deepEqual(await response.json(), {
      code: "unimplemented",
      message: 'Cannot find method "/conformance.v1.Svc/nope"',
    });
  });
});
