// The peers, in their own Node process (tests/interop/matrix.ts bundles this
// file with `deno bundle` and runs it with node: grpc-js and connect-node
// are Node libraries, and Deno's node:http2 has aborted the process that
// ran them; see docs/known-runtime-issues.md).
//   node peers.mjs serve       grpc-js's and connect-node's servers; prints
//                              { "grpc-js": { h2 }, "connect-node": { h1, h2 } }
//                              and stops when stdin closes
//   node peers.mjs call URLS   grpc-js's and connect-node's clients against
//                              sluice's server at URLS ({ h1, h2 }); prints
//                              [{ client, protocol, results }]
//   node peers.mjs status TARGETS  the same clients' status cases
//                              (status_cases.ts) against TARGETS
//                              ({ grpcJs: h2, connect: { h1, h2 } }: sluice's
//                              server, or the peers' own); prints
//                              [{ client, protocol, observed }]

import process from "node:process";
import { type CaseResult, type InteropClient, runCases } from "./cases.ts";
import { connectClients, grpcJsClient } from "./clients.ts";
import { startConnectServer, startGrpcServer } from "./test_service.ts";
import { observeStatuses } from "./status_cases.ts";

if (process.argv[2] === "serve") {
  const [grpcServer, h1, h2] = await Promise.all([
    startGrpcServer(),
    startConnectServer("1.1"),
    startConnectServer("2"),
  ]);
  console.log(JSON.stringify({
    "grpc-js": { h2: grpcServer.url },
    "connect-node": { h1: h1.url, h2: h2.url },
  }));
  process.stdin.resume();
  process.stdin.on("end", async () => {
    await Promise.race([
      Promise.all([grpcServer, h1, h2].map((s) => s.shutdown())),
      new Promise((resolve) => setTimeout(resolve, 2000)),
    ]);
    process.exit(0);
  });
} else if (process.argv[2] === "status") {
  const targets = JSON.parse(process.argv[3]) as {
    grpcJs: string;
    connect: { h1: string; h2: string };
  };
  const opened = [
    {
      client: "grpc-js",
      protocol: "gRPC h2c",
      c: grpcJsClient(targets.grpcJs),
    },
    ...Object.entries(connectClients(targets.connect)).map((
      [protocol, make],
    ) => ({ client: "connect-node", protocol, c: make() })),
  ];
  const rows = await Promise.all(
    opened.map(async ({ client, protocol, c }) => ({
      client,
      protocol,
      observed: await observeStatuses(c),
    })),
  );
  console.log(JSON.stringify(rows));
  await Promise.race([
    Promise.all(opened.map(({ c }) => c.close())),
    new Promise((resolve) => setTimeout(resolve, 2000)),
  ]);
  process.exit(0);
} else {
  const urls = JSON.parse(process.argv[3]) as { h1: string; h2: string };
  const clients: [string, string, () => InteropClient][] = [
    ["grpc-js", "gRPC h2c", () => grpcJsClient(urls.h2)],
    ...Object.entries(connectClients(urls)).map((
      [protocol, make],
    ) => ["connect-node", protocol, make] as [string, string, typeof make]),
  ];
  // Every client stays open until all have run: a client that closes its
  // connection early would make the server send GOAWAY while others still
  // run, which is when Deno's node:http2 has aborted the server process.
  const opened = clients.map(([client, protocol, make]) => ({
    client,
    protocol,
    c: make(),
  }));
  const rows: { client: string; protocol: string; results: CaseResult[] }[] =
    await Promise.all(opened.map(async ({ client, protocol, c }) => ({
      client,
      protocol,
      results: await runCases(c),
    })));
  console.log(JSON.stringify(rows));
  await Promise.race([
    Promise.all(opened.map(({ c }) => c.close())),
    new Promise((resolve) => setTimeout(resolve, 2000)),
  ]);
  process.exit(0);
}
