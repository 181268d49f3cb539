// Every example in examples/ runs to completion under the test runtime:
// `deno run` with the permissions the README gives, or `bun run`. Each is
// started as its own process, as a user would, and its output is checked.
// An example not listed below is still run, with no arguments, and must exit
// with status 0.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { makeTempDir, removeDir, runtime } from "./_helpers.ts";

const ROOT = join(import.meta.dirname ?? ".", "..");
const T = 60_000;

const SEED_002 = [
  "Value: 55",
  ...[1, 3, 6, 10, 15, 21, 28, 36, 45, 55].map((v) => `Value: ${v}`),
  "Complete.",
].join("\n");

interface Example {
  /** Arguments after the file name; `dir` is a fresh temporary directory. */
  args?: (dir: string) => string[];
  /** `deno run` permissions (the README's); Bun takes none. */
  deno: string[];
  check: (stdout: string) => void;
}

const EXAMPLES: Record<string, Example[]> = {
  "upload.ts": [{
    args: (dir) => ["--out", dir],
    deno: ["--allow-net=127.0.0.1", "--allow-read", "--allow-write"],
    check: (out) => {
      assert.match(out, /^Response: 200 File Received!$/m);
      assert.match(out, /^Bytes: 696 sent, 696 received$/m);
      assert.match(out, /^Digests equal: +yes$/m);
    },
  }],
  "streaming_calc.ts": [
    {
      deno: ["--allow-net=127.0.0.1"],
      check: (out) => assert.equal(out.trim(), SEED_002),
    },
    {
      args: () => ["--protocol", "grpc-web"],
      deno: ["--allow-net=127.0.0.1"],
      check: (out) => assert.equal(out.trim(), SEED_002),
    },
    {
      args: () => ["--protocol", "grpc"],
      deno: ["--allow-net=127.0.0.1", "--allow-env"],
      check: (out) => assert.equal(out.trim(), SEED_002),
    },
  ],
  // The same service from generated code (examples/gen/, `deno task gen`).
  "streaming_calc_es.ts": [
    {
      deno: ["--allow-net=127.0.0.1"],
      check: (out) => assert.equal(out.trim(), SEED_002),
    },
    {
      args: () => ["--protocol", "grpc-web"],
      deno: ["--allow-net=127.0.0.1"],
      check: (out) => assert.equal(out.trim(), SEED_002),
    },
    {
      args: () => ["--protocol", "grpc"],
      deno: ["--allow-net=127.0.0.1", "--allow-env"],
      check: (out) => assert.equal(out.trim(), SEED_002),
    },
  ],
  "echo.ts": [{
    deno: ["--allow-net=127.0.0.1"],
    check: (out) => {
      for (const transport of ["over HTTP", "over WebSocket"]) {
        assert.ok(out.includes(transport), transport);
      }
      assert.equal(out.match(/client read "Hello, World!"/g)?.length, 2);
      assert.equal(out.match(/end of input: true/g)?.length, 2);
    },
  }],
};

function run(
  file: string,
  args: string[],
  denoFlags: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const command = process.execPath;
  const argv = runtime === "deno"
    ? ["run", ...denoFlags, file, ...args]
    : ["run", file, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => stdout += s);
    child.stderr.setEncoding("utf8").on("data", (s: string) => stderr += s);
    const timer = setTimeout(() => child.kill("SIGKILL"), T);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const files = (await readdir(join(ROOT, "examples")))
  .filter((name) => name.endsWith(".ts"))
  .sort();

describe(`examples under ${runtime} run`, () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir("examples-");
  });
  after(async () => {
    await removeDir(dir);
  });

  it("examples/ has examples to run", () => {
    assert.ok(files.length > 0);
  });

  for (const file of files) {
    const variants = EXAMPLES[file] ??
      [{ deno: ["--allow-all"], check: () => {} }];
    for (const example of variants) {
      const args = example.args?.("DIR") ?? [];
      const shown = [file, ...args].join(" ");
      it(`examples/${shown} runs under ${runtime} run`, async () => {
        const { code, stdout, stderr } = await run(
          join("examples", file),
          example.args?.(dir) ?? [],
          example.deno,
        );
        assert.equal(code, 0, `exit ${code}\n${stdout}\n${stderr}`);
        example.check(stdout);
      });
    }
  }
});
