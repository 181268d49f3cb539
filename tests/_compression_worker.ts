// A Worker whose answers the library compresses itself, for
// tests/workerd_compression.test.ts: workerd encodes a response body whose
// Content-Encoding it supports once more unless told the body is encoded
// already, and a client would decode one layer and get gzip bytes.
//
//   POST /echo      echo (gzip when the client accepts it, 1 KiB and up)
//   POST /duplex    duplexResponse writing its request back, compressed
//                   whatever its size (compressMinBytes 0)
//   POST /rpc/...   createRpcHandler: a unary Connect answer, compressed
//                   whatever its size (compressMinBytes 0) when gzip makes
//                   it smaller (a text repeated)

import { duplexResponse } from "../lib/http/duplex_response.ts";
import { echo } from "../lib/http/echo.ts";
import {
  createRpcHandler,
  defineService,
  implementService,
  Int64Value,
  type MessageType,
} from "../lib/rpc/mod.ts";

/** A message of UTF-8 text. */
const Text: MessageType<string> = {
  typeName: "test.v1.Text",
  proto: {
    encode: (text) => new TextEncoder().encode(text),
    decode: (bytes) => new TextDecoder().decode(bytes),
  },
};

/** The text repeated: "hello, workerd " `value` times. */
export function repeated(value: bigint): string {
  return "hello, workerd ".repeat(Number(value));
}

/** A unary service whose answers compress. */
export const RepeatService = defineService("test.v1.RepeatService", {
  repeat: { kind: "unary", input: Int64Value, output: Text },
});

const rpc = createRpcHandler(
  implementService(RepeatService, { repeat: repeated }),
  { requestPathPrefix: "/rpc", compressMinBytes: 0 },
);

export default {
  async fetch(request: Request): Promise<Response> {
    const { pathname } = new URL(request.url);
    if (pathname === "/echo") return echo(request);
    if (pathname === "/duplex") {
      return await duplexResponse(request, async (stream) => {
        for await (const chunk of stream) await stream.write(chunk);
      }, { compressMinBytes: 0 });
    }
    if (pathname.startsWith("/rpc/")) return await rpc(request);
    return new Response("Not Found", { status: 404 });
  },
};
