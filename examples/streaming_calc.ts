// StreamingCalcService (Ballerina's gRPC streaming guide): client-streaming `sum` and bidi
// `incrementalSum` over google.protobuf.Int64Value, served and called over
// Connect, gRPC-Web or native gRPC.
//
//   deno run --allow-net=127.0.0.1 examples/streaming_calc.ts
//       runs a server on a free port and both clients against it
//   deno run --allow-net=127.0.0.1 examples/streaming_calc.ts server --port 9090 [--protocol grpc]
//   deno run --allow-net=127.0.0.1 examples/streaming_calc.ts client --port 9090 [--protocol grpc-web] [--method sum]
//
// --host (127.0.0.1 by default) is where the server listens and the client
// connects: `--host ::1` for IPv6 (with --allow-net=[::1]).
//
// The same commands work with `bun run`. --protocol is connect (default),
// grpc-web or grpc; a gRPC server (node:http2) also answers the other two
// over h2c, but this client sends them over HTTP/1.1, which it refuses
// (call it with --protocol grpc); a Connect/gRPC-Web server (Deno.serve /
// Bun.serve) speaks HTTP/1.1.

import process from "node:process";
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
  type Transport,
} from "../lib/rpc/mod.ts";
import { reduce, ScanStream } from "../lib/streams/mod.ts";
import { createHttp2Client, serveHttp2 } from "../lib/runtime/grpc_node.ts";
import { serve } from "../lib/runtime/serve.ts";

/** The service, as in examples/streaming_calc.proto. */
export const StreamingCalcService = defineService("StreamingCalcService", {
  sum: { kind: "client-streaming", input: Int64Value, output: Int64Value },
  incrementalSum: { kind: "bidi", input: Int64Value, output: Int64Value },
});

const MIN_INT64 = -(1n << 63n);
const MAX_INT64 = (1n << 63n) - 1n;

/** Adds two int64 values; an overflow is OUT_OF_RANGE, never a wrapped value. */
export function addInt64(a: bigint, b: bigint): bigint {
  const sum = a + b;
  if (sum < MIN_INT64 || sum > MAX_INT64) {
    throw new RpcError(
      Code.OutOfRange,
      `Cannot add ${b} to ${a}: the sum overflows int64`,
    );
  }
  return sum;
}

/** The implementation: `sum` is a reduction, `incrementalSum` a scan. */
export const streamingCalc = implementService(StreamingCalcService, {
  sum: (values, context) =>
    reduce(values, addInt64, 0n, { signal: context.signal }),
  incrementalSum: () => new ScanStream(addInt64, 0n),
});

export type ProtocolName = "connect" | "grpc-web" | "grpc";

/**
 * Safe server settings, spelled out (the first three are the defaults): a
 * message at most 4 MiB (decompressed), a client that sends nothing for
 * 60 s fails its call, and no call runs longer than 10 minutes whatever
 * deadline its client asks for (or without one).
 */
export const serverOptions = {
  maxMessageBytes: 4 * 1024 * 1024,
  idleTimeoutMs: 60_000,
  acceptCompression: ["gzip"],
  maxTimeoutMs: 10 * 60_000,
} as const;

/** Starts a server for the protocol; returns its URL and a stop function. */
export async function startServer(
  protocol: ProtocolName,
  port = 0,
  hostname = "127.0.0.1",
): Promise<{ url: URL; shutdown(): Promise<void> }> {
  if (protocol === "grpc") {
    return await serveHttp2(
      createUniversalHandler(streamingCalc, serverOptions),
      { port, hostname },
    );
  }
  return await serve(createRpcHandler(streamingCalc, serverOptions), {
    port,
    hostname,
  });
}

/** Makes a transport for the protocol; `close` releases its connection. */
export function makeTransport(
  protocol: ProtocolName,
  baseUrl: string | URL,
): { transport: Transport; close(): Promise<void> } {
  if (protocol === "grpc") {
    const httpClient = createHttp2Client(baseUrl);
    return {
      transport: createGrpcTransport({ baseUrl, httpClient }),
      close: () => httpClient.close(),
    };
  }
  const transport = protocol === "grpc-web"
    ? createGrpcWebTransport({ baseUrl })
    : createConnectTransport({ baseUrl });
  return { transport, close: () => Promise.resolve() };
}

/**
 * The guide's `sum` client: sends 1..10, prints the result (or the error, as
 * the guide does). Resolves to whether the call succeeded.
 */
export async function runSum(
  transport: Transport,
  print: (line: string) => void = console.log,
): Promise<boolean> {
  const client = createClient(StreamingCalcService, transport);
  const call = client.sum();
  for (let i = 1n; i <= 10n; i++) await call.send(i);
  await call.complete();
  try {
    print(`Value: ${await call.receive()}`);
  } catch (error) {
    print(`Error: ${(error as Error).message}`);
    return false;
  }
  return true;
}

/**
 * The guide's `incrementalSum` client: reads while it sends 1..10, printing
 * each total. Resolves to whether the call succeeded.
 */
export async function runIncrementalSum(
  transport: Transport,
  print: (line: string) => void = console.log,
): Promise<boolean> {
  const client = createClient(StreamingCalcService, transport);
  const call = client.incrementalSum();
  const reading = (async () => {
    while (true) {
      try {
        const result = await call.receive();
        if (result.done) {
          print("Complete.");
          return true;
        }
        print(`Value: ${result.value}`);
      } catch (error) {
        print(`Error: ${(error as Error).message}`);
        return false;
      }
    }
  })();
  try {
    for (let i = 1n; i <= 10n; i++) await call.send(i);
    await call.complete();
  } finally {
    await reading;
  }
  return await reading;
}

function parseArgs(args: string[]) {
  const options = {
    command: "demo",
    protocol: "connect" as ProtocolName,
    // 9090 unless --port says otherwise (--port 0: a free port).
    port: undefined as number | undefined,
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
    else if (arg === "--method") {
      const m = value();
      if (m !== "sum" && m !== "incrementalSum" && m !== "both") {
        throw new TypeError(
          `Unknown method "${m}": use sum, incrementalSum or both`,
        );
      }
      options.method = m;
    } else if (!arg.startsWith("-")) options.command = arg;
    else throw new TypeError(`Unknown option ${arg}`);
  }
  return options;
}

/** What one StreamingCalcService example brings to the command line. */
export interface CalcExample {
  /** Shown after the protocol when the server starts (", generated code"). */
  label: string;
  startServer: typeof startServer;
  runSum: typeof runSum;
  runIncrementalSum: typeof runIncrementalSum;
}

async function runClients(
  example: CalcExample,
  protocol: ProtocolName,
  url: string | URL,
  method: string,
): Promise<void> {
  const { transport, close } = makeTransport(protocol, url);
  let ok = true;
  try {
    if (method === "sum" || method === "both") {
      ok = await example.runSum(transport) && ok;
    }
    if (method === "incrementalSum" || method === "both") {
      ok = await example.runIncrementalSum(transport) && ok;
    }
  } finally {
    await close();
  }
  // The errors are printed as the guide prints them; the exit says so.
  if (!ok) process.exitCode = 1;
}

/**
 * The command line of the StreamingCalcService examples: `server`, `client`
 * or, with no command, a server on a free port and both clients against it.
 */
export async function runCommandLine(
  example: CalcExample,
  args: string[],
): Promise<void> {
  const options = parseArgs(args);
  const { startServer } = example;
  if (options.command === "server") {
    const server = await startServer(
      options.protocol,
      options.port ?? 9090,
      options.host,
    );
    console.error(
      `StreamingCalcService (${options.protocol}${example.label}) listening on ${server.url}`,
    );
    return;
  }
  if (options.command === "client") {
    // An IPv6 address goes in brackets in a URL (--host ::1).
    const host = options.host.includes(":") && !options.host.startsWith("[")
      ? `[${options.host}]`
      : options.host;
    const url = `http://${host}:${options.port ?? 9090}`;
    await runClients(example, options.protocol, url, options.method);
    return;
  }
  if (options.command !== "demo") {
    throw new TypeError(
      `Unknown command "${options.command}": use server, client or nothing`,
    );
  }
  const server = await startServer(
    options.protocol,
    options.port,
    options.host,
  );
  try {
    await runClients(example, options.protocol, server.url, options.method);
  } finally {
    await server.shutdown();
  }
}

if (import.meta.main) {
  runCommandLine(
    { label: "", startServer, runSum, runIncrementalSum },
    process.argv.slice(2),
  ).catch((error) => {
    // A wrong command line is one line; anything else with its stack.
    console.error(error instanceof TypeError ? error.message : error);
    process.exitCode = 1;
  });
}
