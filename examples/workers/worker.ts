// A Cloudflare Worker serving every sluice flow from one `export default
// { fetch }` module: the streaming upload (Ballerina's HTTP streaming example) into a hashing sink, the
// echo and a line-by-line duplex over HTTP/1.1, the duplex stream over a
// WebSocket from `WebSocketPair`, and StreamingCalcService (Ballerina's gRPC streaming guide) over
// Connect and gRPC-Web.
//
//   npx wrangler dev                 (from examples/workers/; see the README)
//   deno task build:worker           bundles it into .tmp/build/ and prints its size
//
// The test suite runs this module in workerd (tests/workerd.test.ts).
// Streamed responses are application/octet-stream or the RPC protocols' own
// types, none of which Cloudflare's edge compresses (compression would buffer
// them); see README "Runtimes".
//
// Routes:
//   POST /upload                  receive a body: size limit, Content-Digest check, Repr-Digest
//   POST /forward                 stream the body to /upload through the SELF service binding
//                                 and forward the answer (Ballerina's /stream/fileupload)
//   POST /echo                    echo each chunk as it arrives (full duplex)
//   POST /duplex                  answer each line with "echo <line>" (lockstep duplex)
//   GET  /ws                      WebSocket echo over the duplex stream (426 for no upgrade)
//   POST /StreamingCalcService/*  RPC: sum, incrementalSum (Connect, gRPC-Web)
//   GET  /rpc-ws                  RPC over WebSocket (sluice.rpc.v1), the same service

import {
  createDuplexHandler,
  createEchoHandler,
  createUploadHandler,
  formatDigestHeader,
  forwardResponse,
  HttpError,
  upload,
} from "../../lib/http/mod.ts";
import { websocketDuplex } from "../../lib/http/websocket_duplex.ts";
import {
  Code,
  createRpcHandler,
  defineService,
  implementService,
  Int64Value,
  RpcError,
} from "../../lib/rpc/mod.ts";
import { reduce, ScanStream } from "../../lib/streams/mod.ts";
import {
  createWebSocketRpcHandler,
  upgradeWebSocket,
} from "../../lib/runtime/websocket.ts";
import { createHasher } from "../../lib/runtime/workers.ts";

/** The bindings from `wrangler.toml` (or the workerd config of the tests). */
export interface Env {
  /** The largest upload accepted, in bytes (a decimal string). */
  MAX_UPLOAD_BYTES?: string;
  /** This Worker itself, for `/forward`. */
  SELF?: { fetch: typeof fetch };
}

/** Ballerina's gRPC streaming guide's service (as in examples/streaming_calc.proto). */
export const StreamingCalcService = defineService("StreamingCalcService", {
  sum: { kind: "client-streaming", input: Int64Value, output: Int64Value },
  incrementalSum: { kind: "bidi", input: Int64Value, output: Int64Value },
});

function addInt64(a: bigint, b: bigint): bigint {
  const sum = a + b;
  if (BigInt.asIntN(64, sum) !== sum) {
    throw new RpcError(
      Code.OutOfRange,
      `Cannot add ${b} to ${a}: the sum overflows int64`,
    );
  }
  return sum;
}

type Handler = (request: Request) => Promise<Response>;

interface Handlers {
  receiver: Handler;
  echo: Handler;
  duplex: Handler;
  rpc: Handler;
  rpcWebSocket: Handler;
}

// Built on the first request: Workers forbid I/O, and sluice does no work, at
// module top level.
let handlers: Handlers | undefined;

function makeHandlers(env: Env): Handlers {
  const maxBytes = Number(env.MAX_UPLOAD_BYTES ?? 64 * 1024 * 1024);
  const calc = implementService(StreamingCalcService, {
    sum: (values, context) =>
      reduce(values, addInt64, 0n, { signal: context.signal }),
    incrementalSum: () => new ScanStream(addInt64, 0n),
  });
  return {
    receiver: createUploadHandler({
      // Workers have no file system: the body streams into a sink that only
      // counts; put an R2 writer here to keep it. The receiver hashes it.
      sink: () => new WritableStream<Uint8Array>(),
      hasher: createHasher,
      maxBytes,
      // Answer as Ballerina's example does, with the stored bytes' SHA-256.
      onComplete: (result) =>
        new Response("File Received!", {
          headers: {
            "repr-digest": formatDigestHeader({ "sha-256": result.sha256! }),
          },
        }),
    }),
    // POST and PUT; OPTIONS gets 204 and other methods 405, the handler not
    // run.
    echo: createEchoHandler(),
    duplex: createDuplexHandler(async (stream) => {
      for await (const line of stream.lines()) {
        await stream.write(`echo ${line}\n`);
      }
    }),
    rpc: createRpcHandler(calc),
    rpcWebSocket: createWebSocketRpcHandler(calc),
  };
}

function webSocketEcho(request: Request): Response {
  const { socket, response } = upgradeWebSocket(request);
  const stream = websocketDuplex(socket);
  (async () => {
    for await (const chunk of stream) await stream.write(chunk);
    await stream.close();
  })().catch((error) => stream.close(error));
  return response;
}

async function forward(request: Request, env: Env): Promise<Response> {
  if (!env.SELF || !request.body) {
    return new Response("Cannot forward: no SELF binding or no body", {
      status: 400,
    });
  }
  const self = env.SELF;
  const length = request.headers.get("content-length");
  const digest = request.headers.get("content-digest");
  const headers = new Headers();
  if (digest) headers.set("content-digest", digest);
  return forwardResponse(
    await upload(new URL("/upload", request.url), request.body, {
      contentType: request.headers.get("content-type") ?? undefined,
      contentLength: length === null ? undefined : Number(length),
      headers,
      fetch: (input, init) => self.fetch(input, init),
    }),
  );
}

async function route(request: Request, env: Env): Promise<Response> {
  handlers ??= makeHandlers(env);
  const { pathname } = new URL(request.url);
  switch (pathname) {
    case "/upload":
      return await handlers.receiver(request);
    case "/forward":
      return await forward(request, env);
    case "/echo":
      return await handlers.echo(request);
    case "/duplex":
      return await handlers.duplex(request);
    case "/ws":
      return webSocketEcho(request);
    case "/rpc-ws":
      return await handlers.rpcWebSocket(request);
  }
  if (pathname.startsWith(`/${StreamingCalcService.typeName}/`)) {
    return await handlers.rpc(request);
  }
  return new Response("Not Found", {
    status: 404,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    try {
      return await route(request, env);
    } catch (error) {
      // A Worker's fetch has no onError of serve's: an HttpError (a GET of
      // /ws that is no upgrade: 426) is answered here, not thrown to the
      // runtime (a 500, and an "Uncaught exception" in the log).
      if (error instanceof HttpError) return error.getResponse();
      throw error;
    }
  },
};
