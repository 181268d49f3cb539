// sluice's client running the interop cases against peer servers, in its
// own process (run with `deno run` or `bun run` by tests/interop.test.ts).
// Argument: JSON { "grpc-js": { h2 }, "connect-node": { h1, h2 } }. Prints
// one JSON line: [{ server, client, results }].

import process from "node:process";
import { type CaseResult, runCases } from "./cases.ts";
import { sluiceClients } from "./clients.ts";

const targets = JSON.parse(process.argv[2]) as {
  "grpc-js": { h2: string };
  "connect-node": { h1: string; h2: string };
};

const runs: Promise<
  { server: string; client: string; results: CaseResult[] }
>[] = [];
for (const server of ["grpc-js", "connect-node"] as const) {
  for (
    const [client, make] of Object.entries(
      sluiceClients(server, targets[server]),
    )
  ) {
    runs.push((async () => {
      const c = make();
      try {
        return { server, client, results: await runCases(c) };
      } finally {
        // A close that waits on a stuck stream must not hold the run.
        await Promise.race([
          c.close(),
          new Promise((resolve) => setTimeout(resolve, 2000)),
        ]);
      }
    })());
  }
}
console.log(JSON.stringify(await Promise.all(runs)));
process.exit(0);
