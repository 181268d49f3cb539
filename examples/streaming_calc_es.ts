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
// grpc-web or grpc (native gRPC needs --allow-env under Deno: node:http2).

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
  makeTransport,
  type ProtocolName,
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
): Promise<{ url: URL; shutdown(): Promise<void> }> {
  if (protocol === "grpc") {
    return await serveHttp2(createUniversalHandler(streamingCalc), { port });
  }
  return await serve(createRpcHandler(streamingCalc), { port });
}

/** The `sum` client: sends 1..10, prints the result. */
export async function runSum(
  transport: Transport,
  print: (line: string) => void = console.log,
): Promise<void> {
  const client = createClient(StreamingCalcService, transport);
  const call = client.sum();
  for (let i = 1n; i <= 10n; i++) await call.send({ value: i });
  await call.complete();
  try {
    print(`Value: ${(await call.receive()).value}`);
  } catch (error) {
    print(`Error: ${(error as Error).message}`);
  }
}

/** The `incrementalSum` client: reads the running totals while it sends. */
export async function runIncrementalSum(
  transport: Transport,
  print: (line: string) => void = console.log,
): Promise<void> {
  const client = createClient(StreamingCalcService, transport);
  const call = client.incrementalSum();
  const reading = (async () => {
    try {
      for await (const total of call.responses) print(`Value: ${total.value}`);
      print("Complete.");
    } catch (error) {
      print(`Error: ${(error as Error).message}`);
    }
  })();
  try {
    for (let i = 1n; i <= 10n; i++) await call.send({ value: i });
    await call.complete();
  } finally {
    await reading;
  }
}

function parseArgs(args: string[]) {
  const options = {
    command: "demo",
    protocol: "connect" as ProtocolName,
    port: 0,
    host: "127.0.0.1",
    method: "both",
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const value = () => {
      const v = args[++i];
      if (v === undefined) throw new TypeError(`Missing value for ${arg}`);
      return v;
    };
    if (arg === "--protocol") {
      const p = value();
      if (p !== "connect" && p !== "grpc-web" && p !== "grpc") {
        throw new TypeError(
          `Unknown protocol "${p}": use connect, grpc-web or grpc`,
        );
      }
      options.protocol = p;
    } else if (arg === "--port") options.port = Number(value());
    else if (arg === "--host") options.host = value();
    else if (arg === "--method") options.method = value();
    else if (!arg.startsWith("-")) options.command = arg;
    else throw new TypeError(`Unknown option ${arg}`);
  }
  return options;
}

async function runClients(
  protocol: ProtocolName,
  url: string | URL,
  method: string,
): Promise<void> {
  const { transport, close } = makeTransport(protocol, url);
  try {
    if (method === "sum" || method === "both") await runSum(transport);
    if (method === "incrementalSum" || method === "both") {
      await runIncrementalSum(transport);
    }
  } finally {
    await close();
  }
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  if (options.command === "server") {
    const server = await startServer(options.protocol, options.port || 9090);
    console.error(
      `StreamingCalcService (${options.protocol}, generated code) listening on ${server.url}`,
    );
    return;
  }
  if (options.command === "client") {
    const url = `http://${options.host}:${options.port || 9090}`;
    await runClients(options.protocol, url, options.method);
    return;
  }
  if (options.command !== "demo") {
    throw new TypeError(
      `Unknown command "${options.command}": use server, client or nothing`,
    );
  }
  const server = await startServer(options.protocol, options.port);
  try {
    await runClients(options.protocol, server.url, options.method);
  } finally {
    await server.shutdown();
  }
}

if (import.meta.main) {
  main().catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
}
