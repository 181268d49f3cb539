// A call of StreamingCalcService's `sum` from each native gRPC client that
// is expected to be refused, and what it failed with: for the tests of a
// server that does not serve native gRPC (createRpcHandler,
// tests/rpc_native_to_fetch.test.ts; createUniversalHandler without
// "grpc", tests/refuse_native_grpc_universal.test.ts).

import assert from "node:assert/strict";
import type * as grpc from "@grpc/grpc-js";
import { createClient as createConnectClient } from "@connectrpc/connect";
import { createGrpcTransport as connectNodeGrpc } from "@connectrpc/connect-node";
import { createClient, createGrpcTransport } from "../lib/rpc/mod.ts";
import { createHttp2Client } from "../lib/runtime/grpc_node.ts";
import { StreamingCalcService } from "../examples/streaming_calc.ts";
import { deadline } from "./_helpers.ts";
import {
  connectService,
  grpcJsClient,
  grpcJsSum,
  int64,
} from "./_calc_peers.ts";

const T = 20_000;

/** What grpc-js's call to 127.0.0.1:`port` failed with. */
export async function grpcJsRefusal(port: number): Promise<grpc.ServiceError> {
  const client = grpcJsClient(`127.0.0.1:${port}`);
  try {
    return await deadline(
      grpcJsSum(client, [2n]).then(
        (value) => assert.fail(`resolved with ${value}`),
        (error: grpc.ServiceError) => error,
      ),
      T,
      "the grpc-js call",
    );
  } finally {
    client.close();
  }
}

/** What this library's gRPC client's call to `baseUrl` failed with. */
export async function sluiceGrpcRefusal(baseUrl: string): Promise<unknown> {
  const httpClient = createHttp2Client(baseUrl);
  try {
    const client = createClient(
      StreamingCalcService,
      createGrpcTransport({ baseUrl, httpClient }),
    );
    return await deadline(
      (async () => {
        const call = client.sum();
        await call.send(2n);
        await call.complete();
        return await call.receive();
      })().then(
        (value) => assert.fail(`resolved with ${value}`),
        (error: unknown) => error,
      ),
      T,
      "the sluice call",
    );
  } finally {
    await httpClient.close();
  }
}

/** What connect-node's gRPC transport's call to `baseUrl` failed with. */
export async function connectNodeRefusal(
  baseUrl: string,
): Promise<{ code: number; rawMessage: string }> {
  const client = createConnectClient(
    connectService(),
    connectNodeGrpc({ baseUrl }),
  );
  async function* values() {
    yield int64(2n);
  }
  return await deadline(
    // deno-lint-ignore no-explicit-any
    (client as any).sum(values()).then(
      (value: unknown) => assert.fail(`resolved with ${value}`),
      (error: unknown) => error,
    ),
    T,
    "the connect-node call",
  ) as { code: number; rawMessage: string };
}
