// The calls after which Bun's node:http2 client session never closed
// (docs/known-runtime-issues.md): two unary calls cancelled at their
// deadline that the server answers anyway, after the client's RST_STREAM
// (as grpc-go does when its own deadline races the client's cancel), then
// one ordinary call. Run as a script with a port, it makes them against
// 127.0.0.1:<port> with createHttp2Client, closes the client and prints
// {"closed":true}: it must then exit by itself.

import process from "node:process";
import {
  Code,
  createClient,
  createGrpcTransport,
  defineService,
  Int64Value,
  RpcError,
} from "../lib/rpc/mod.ts";
import {
  createHttp2Client,
  type Http2Client,
} from "../lib/runtime/grpc_node.ts";

/** `one(n)`: answered after n ms with n; `one(0n)` only after a reset. */
export const LateService = defineService("t.Late", {
  one: { kind: "unary", input: Int64Value, output: Int64Value },
});

/**
 * Two calls cancelled at their deadline (`timeoutMs`) and answered late,
 * then `one(1n)`; throws unless they end so.
 */
export async function cancelledThenAnswered(
  url: string,
  httpClient: Http2Client,
  timeoutMs = 100,
): Promise<void> {
  const client = createClient(
    LateService,
    createGrpcTransport({ baseUrl: url, httpClient }),
  );
  for (let i = 0; i < 2; i++) {
    const error = await client.one(0n, { timeoutMs }).then(
      () => undefined,
      (error: unknown) => error,
    );
    if (!(error instanceof RpcError && error.code === Code.DeadlineExceeded)) {
      throw new Error(`Expected DEADLINE_EXCEEDED, got ${error}`);
    }
  }
  const value = await client.one(1n);
  if (value !== 1n) throw new Error(`Expected 1n, got ${value}`);
}

if (import.meta.main) {
  const url = `http://127.0.0.1:${process.argv[2]}`;
  const httpClient = createHttp2Client(url);
  await cancelledThenAnswered(url, httpClient);
  await httpClient.close();
  console.log(JSON.stringify({ closed: true }));
}
