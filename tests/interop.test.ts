// The standard gRPC interop cases (grpc/grpc doc/interop-test-descriptions.md,
// every non-auth case) between sluice and @grpc/grpc-js and connect-node,
// both ways: sluice's server under Deno and under Bun against grpc-js's
// client (gRPC) and connect-node's (gRPC h2c; gRPC-Web and Connect binary
// and JSON over HTTP/1.1 and h2c); sluice's client under Deno and under Bun
// against grpc-js's and connect-node's servers. See tests/interop/ and
// docs/interop.md. The matrix runs once, from `deno test` (Bun runs in its
// child processes); it writes .tmp/interop/results.json and prints the
// table (`deno task interop:docs` copies it into docs/interop.md).

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CASES } from "./interop/cases.ts";
import { type Row, runMatrix } from "./interop/matrix.ts";
import { renderTable, unexpected } from "./interop/table.ts";
import { STATUS_CASES, statusDifferences } from "./interop/status_cases.ts";
import type { StatusRow } from "./interop/matrix.ts";
import { runtime } from "./_helpers.ts";

const RESULTS = join(
  import.meta.dirname ?? ".",
  "..",
  ".tmp",
  "interop",
  "results.json",
);

describe("gRPC interop cases", () => {
  it("cover every non-auth case of the interop test descriptions", () => {
    assert.deepEqual(Object.keys(CASES).sort(), [
      "cancel_after_begin",
      "cancel_after_first_response",
      "client_streaming",
      "custom_metadata",
      "empty_stream",
      "empty_unary",
      "large_unary",
      "ping_pong",
      "server_streaming",
      "special_status_message",
      "status_code_and_message",
      "timeout_on_sleeping_server",
      "unimplemented_method",
      "unimplemented_service",
    ]);
  });

  if (runtime !== "deno") return;

  let statuses: StatusRow[] | undefined;

  it("sluice (Deno, Bun) against grpc-js and connect-node, both ways: every case passes or fails only for a listed peer limitation", async () => {
    const result = await runMatrix();
    const rows: Row[] = result.rows;
    statuses = result.statuses;
    await mkdir(join(RESULTS, ".."), { recursive: true });
    await writeFile(
      RESULTS,
      JSON.stringify({ rows, statuses }, null, 2) + "\n",
    );
    console.log(renderTable(rows));
    // 2 runtimes x (8 clients of sluice's server + 8 sluice clients).
    assert.equal(rows.length, 32);
    assert.deepEqual(unexpected(rows), []);
  });

  it("grpc-js's and connect-node's clients report the same status codes and thrown messages from sluice's server (Deno, Bun) as from their own library's server", () => {
    assert.ok(statuses, "the matrix did not run");
    // 8 clients x (own server + sluice under Deno + sluice under Bun).
    assert.equal(statuses.length, 24);
    assert.ok(Object.keys(STATUS_CASES).length >= 37);
    assert.deepEqual(statusDifferences(statuses), []);
  });
});
