// The generated code is committed: `deno task gen` (buf + protoc-gen-es,
// both from npm, pinned in deno.json) run again into .tmp/ must give the
// same files as examples/gen/, tests/gen/ and lib/protobuf/_reflection/gen/
// (the server reflection's messages). And the documentation of
// @sluice/streams/protobuf is complete but for protobuf-es's own types.
// Deno only: it runs `deno` itself (buf from npm ships its binary inside
// the package, so it needs no network once cached).

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readdir, readFile, rm } from "node:fs/promises";
import { join, relative } from "node:path";
import { type ProcessOutput, runProcess, runtime } from "./_helpers.ts";

const ROOT = join(import.meta.dirname ?? ".", "..");
const BUF = "npm:@bufbuild/buf@1.75.0";

function run(args: string[]): Promise<ProcessOutput> {
  return runProcess("deno", args, { cwd: ROOT });
}

async function files(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string) => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) await walk(path);
      else out.set(relative(dir, path), await readFile(path, "utf8"));
    }
  };
  await walk(dir);
  return out;
}

describe("generated code", { skip: runtime !== "deno" && "runs deno" }, () => {
  for (
    const [input, committed] of [
      ["examples", "examples/gen"],
      ["tests/proto", "tests/gen"],
      ["lib/protobuf/_reflection", "lib/protobuf/_reflection/gen"],
    ]
  ) {
    it(`deno task gen gives the committed ${committed}/`, async () => {
      const out = join(".tmp", "gen-check", input);
      await rm(join(ROOT, out), { recursive: true, force: true });
      await mkdir(join(ROOT, out), { recursive: true });
      const { code, stderr } = await run([
        "run",
        "--allow-run",
        "--allow-read",
        "--allow-env",
        BUF,
        "generate",
        input,
        "-o",
        out,
      ]);
      assert.equal(code, 0, stderr);
      const fresh = await files(join(ROOT, out, "gen"));
      const kept = await files(join(ROOT, committed));
      assert.ok(fresh.size > 0, "buf generated nothing");
      assert.deepEqual([...kept.keys()].sort(), [...fresh.keys()].sort());
      for (const [name, text] of fresh) {
        assert.equal(
          kept.get(name),
          text,
          `${committed}/${name} is out of date: run deno task gen`,
        );
      }
    });
  }
});

describe("@sluice/streams/protobuf documentation", {
  skip: runtime !== "deno" && "runs deno",
}, () => {
  it("deno doc --lint finds nothing but references to protobuf-es's own types", async () => {
    // deno doc --lint counts a dependency's types as private; re-exporting
    // them would pull in protobuf-es's whole descriptor API.
    const { stdout, stderr } = await run([
      "doc",
      "--lint",
      "lib/rpc/mod.ts",
      "lib/protobuf/mod.ts",
    ]);
    const errors = (stdout + stderr).split("\n").filter((line) =>
      /^error\[/.test(line)
    );
    const allowed =
      /^error\[private-type-ref\]: public type '[\w.["\]]+' references private type '(DescMessage|DescMethod|DescService|MessageShape|MessageInitShape|Registry|BinaryReadOptions|BinaryWriteOptions|JsonReadOptions|JsonWriteStringOptions)'$/;
    assert.ok(errors.length > 0, stdout + stderr);
    assert.deepEqual(errors.filter((line) => !allowed.test(line)), []);
  });
});
