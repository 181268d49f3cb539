// The lowest @bufbuild/protobuf that @sluice/streams/protobuf declares
// (deno.json's range, which JSR publishes as the package's dependency) is
// one the suite runs: deno.json's "@bufbuild/protobuf-floor" alias makes
// `deno install` fetch it, and tests/_protobuf_floor_probe.ts type-checks
// and calls the entry point with it alone (a generated and a hand-written
// service). A range floor above what a project already uses gives it a
// second copy of protobuf-es, whose descriptors then fail to type-check
// against ours (TS2769); one below what we need would promise what that
// version lacks (its nesting limit, protobuf-es's recursionLimit, came in
// 2.12.1). The docs and the entry point's JSDoc name the same range.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { type ProcessOutput, runProcess, runtime } from "./_helpers.ts";

const ROOT = join(import.meta.dirname ?? ".", "..");
const PACKAGE = "@bufbuild/protobuf";

/** The floor version and the declared range, from deno.json. */
async function declared(): Promise<{ floor: string; range: string }> {
  const { imports } = JSON.parse(
    await readFile(join(ROOT, "deno.json"), "utf8"),
  ) as { imports: Record<string, string> };
  const alias = imports[`${PACKAGE}-floor`] ?? "";
  const floor = alias.match(/^npm:@bufbuild\/protobuf@(\d+\.\d+\.\d+)$/)?.[1];
  assert.ok(
    floor,
    `deno.json's "${PACKAGE}-floor" must name one exact version: ${
      JSON.stringify(alias)
    }`,
  );
  return { floor, range: imports[PACKAGE] };
}

function run(args: string[]): Promise<ProcessOutput> {
  return runProcess(process.execPath, args, { cwd: ROOT });
}

describe("the declared @bufbuild/protobuf range", () => {
  it("deno.json's range starts at the floor version the suite installs", async () => {
    const { floor, range } = await declared();
    assert.equal(range, `npm:${PACKAGE}@^${floor}`);
  });

  it("docs/protobuf.md and the entry point's JSDoc name that range", async () => {
    const { floor } = await declared();
    const docs = await readFile(join(ROOT, "docs", "protobuf.md"), "utf8");
    const jsdoc = await readFile(
      join(ROOT, "lib", "protobuf", "mod.ts"),
      "utf8",
    );
    for (const [name, text] of [["docs/protobuf.md", docs], ["JSDoc", jsdoc]]) {
      const ranges = [...text.matchAll(/@bufbuild\/protobuf@([^\s`]+)/g)]
        .map((m) => m[1]);
      assert.ok(ranges.length > 0, `${name} names no range`);
      assert.deepEqual(
        [...new Set(ranges)],
        [`^${floor}`],
        `${name} names another range`,
      );
    }
  });

  it(
    "@sluice/streams/protobuf type-checks and serves generated and hand-written services with the floor version alone",
    { skip: runtime !== "deno" && "runs deno with an import map" },
    async () => {
      const { floor } = await declared();
      // Both the package and its subpaths (/wkt, /codegenv2), so that no
      // module reaches another copy.
      const dir = join(ROOT, ".tmp", "protobuf-floor");
      await mkdir(dir, { recursive: true });
      const map = join(dir, "import_map.json");
      await writeFile(
        map,
        JSON.stringify({
          imports: {
            [PACKAGE]: `npm:${PACKAGE}@${floor}`,
            [`${PACKAGE}/`]: `npm:/${PACKAGE}@${floor}/`,
          },
        }),
      );
      // --frozen and --cached-only: the version `deno install` fetched for
      // the alias, and the lockfile left as it is.
      const { code, stdout, stderr } = await run([
        "run",
        "--check",
        "--frozen",
        "--cached-only",
        `--import-map=${map}`,
        "tests/_protobuf_floor_probe.ts",
      ]);
      assert.equal(code, 0, stderr);
      const [resolved, done] = stdout.trim().split("\n");
      assert.match(
        resolved,
        new RegExp(`protobuf[@/]${floor.replaceAll(".", "\\.")}/`),
      );
      assert.equal(done, "ok");
    },
  );
});
