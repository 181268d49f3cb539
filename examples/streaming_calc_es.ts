// StreamingCalcService from generated code: examples/streaming_calc.proto,
// compiled by `deno task gen` (buf + protoc-gen-es) into
// examples/gen/streaming_calc_pb.ts, served and called with
// @sluice/streams/protobuf. No hand-written descriptor: method names, kinds
// and message types come from the .proto file. It speaks the same wire as
// examples/streaming_calc.ts (the hand-written descriptor), so either side
// of one can talk to the other.
//
//   deno run --allow-net=127.0.0.1 examples/streaming_calc_es.ts
//       runs a server on a free port and both clients against it
//   deno run --allow-net=127.0.0.1 examples/streaming_calc_es.ts server --port 9090 [--protocol grpc]
//   deno run --allow-net=127.0.0.1 examples/streaming_calc_es.ts client --port 9090 [--protocol grpc-web] [--method sum]
//
// The same commands work with `bun run`. --protocol is connect (default),
// grpc-web or grpc (native gRPC over node:http2).

import process from "node:process";
import { createClient, implementService } from "../lib/protobuf/mod.ts";
import {
  createRpcHandler,
  createUniversalHandler,
  type Transport,
} from "../lib/rpc/mod.ts";
import { reduce } from "../lib/streams/mod.ts";
import { serveHttp2 } from "../lib/runtime/grpc_node.ts";
import { serve } from "../lib/runtime/serve.ts";
import { StreamingCalcService } from "./gen/streaming_calc_pb.ts";
import {
  addInt64,
  type ProtocolName,
  runCommandLine,
} from "./streaming_calc.ts";

/** The implementation: handlers take messages and return plain objects. */
export const streamingCalc = implementService(StreamingCalcService, {
  sum: async (values, context) => ({
    value: await reduce(values, (total, v) => addInt64(total, v.value), 0n, {
      signal: context.signal,
    }),
  }),
  async *incrementalSum(values) {
    let total = 0n;
    for await (const v of values) {
      yield { value: total = addInt64(total, v.value) };
    }
  },
});

/** Starts a server for the protocol; returns its URL and a stop function. */
export async function startServer(
  protocol: ProtocolName,
  port = 0,
  hostname = "127.0.0.1",
): Promise<{ url: URL; shutdown(): Promise<void> }> {
  if (protocol === "grpc") {
    return await serveHttp2(createUniversalHandler(streamingCalc), {
      port,
      hostname,
    });
  }
  return await serve(createRpcHandler(streamingCalc), { port, hostname });
}

/**
 * The `sum` client: sends 1..10, prints the result (or the error). Resolves
 * to whether the call succeeded.
 */
export async function runSum(
  transport: Transport,
  print: (line: string) => void = console.log,
): Promise<boolean> {
  const client = createClient(StreamingCalcService, transport);
  const call = client.sum();
  for (let i = 1n; i <= 10n; i++) await call.send({ value: i });
  await call.complete();
  try {
    print(`Value: ${(await call.receive()).value}`);
  } catch (error) {
    print(`Error: ${(error as Error).message}`);
    return false;
  }
  return true;
}

/**
 * The `incrementalSum` client: reads the running totals while it sends.
 * Resolves to whether the call succeeded.
 */
export async function runIncrementalSum(
  transport: Transport,
  print: (line: string) => void = console.log,
): Promise<boolean> {
  const client = createClient(StreamingCalcService, transport);
  const call = client.incrementalSum();
  const reading = (async () => {
    try {
      for await (const total of call.responses) print(`Value: ${total.value}`);
      print("Complete.");
      return true;
    } catch (error) {
      print(`Error: ${(error as Error).message}`);
      return false;
    }
  })();
  try {
    for (let i = 1n; i <= 10n; i++) await call.send({ value: i });
    await call.complete();
  } finally {
    await reading;
  }
  return await reading;
}

if (import.meta.main) {
  runCommandLine(
    { label: ", generated code", startServer, runSum, runIncrementalSum },
    process.argv.slice(2),
  ).catch((error) => {
    // A wrong command line is one line; anything else with its stack.
    console.error(error instanceof TypeError ? error.message : error);
    process.exitCode = 1;
  });
}
