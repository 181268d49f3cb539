// Type-checks the JSDoc examples marked `ts ignore` in mod.ts and lib/: those
// that need a network server, a file or a second runtime, so that `deno test
// --doc` (which runs every other example) skips them. Deno's `ignore` skips
// type-checking too, so without this step such an example could name an API
// that no longer exists. Run by `deno task test:doc`, after `deno test --doc`:
//
//   deno run --allow-read --allow-write=./.tmp --allow-run --allow-env tests/doc_examples.ts
//
// Each example becomes a module under .tmp/doc_examples/ (inside the
// package, so `@sluice/streams/...` resolves to this code). A name that an
// example uses without defining it (a service defined in an earlier example,
// a user's own fetch) is declared first, from the list below.

import { spawnSync } from "node:child_process";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import process from "node:process";

const ROOT = resolve(import.meta.dirname ?? ".", "..");
const OUT = join(ROOT, ".tmp", "doc_examples");

/** Names the examples use as if the reader had them, and where from. */
const GIVEN: Record<string, string> = {
  StreamingCalcService:
    `import { StreamingCalcService } from "../../examples/streaming_calc.ts";`,
  implementation:
    `import { streamingCalc as implementation } from "../../examples/streaming_calc.ts";`,
  services:
    `import { streamingCalc as services } from "../../examples/streaming_calc.ts";`,
  myFetch: `declare const myFetch: typeof fetch;`,
};

/**
 * Examples import a user's generated code as `./gen/…` (what
 * `deno task gen` writes beside them); here that is examples/gen/.
 */
function resolveGenerated(code: string): string {
  return code.replaceAll(`"./gen/`, `"../../examples/gen/`);
}

async function sources(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...await sources(path));
    else if (entry.name.endsWith(".ts")) found.push(path);
  }
  return found.sort();
}

/** The `ts ignore` examples of one file: their first line and their code. */
export function ignoredExamples(
  text: string,
): { line: number; code: string }[] {
  const lines = text.split("\n");
  const examples = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^\s*\* ```ts ignore\s*$/.test(lines[i])) continue;
    const start = i;
    const body = [];
    for (i++; i < lines.length && !/^\s*\* ```\s*$/.test(lines[i]); i++) {
      body.push(lines[i].replace(/^\s*\* ?/, ""));
    }
    examples.push({ line: start + 1, code: body.join("\n") });
  }
  return examples;
}

/** The declarations an example needs: names it uses but does not define. */
export function prelude(code: string): string[] {
  return Object.entries(GIVEN).filter(([name]) => {
    const used = new RegExp(`\\b${name}\\b`).test(code);
    const defined = new RegExp(
      `(const|let|var|function|class)\\s+${name}\\b|import[^;]*\\b${name}\\b`,
    ).test(code);
    return used && !defined;
  }).map(([, declaration]) => declaration);
}

if (import.meta.main) {
  await rm(OUT, { recursive: true, force: true });
  await mkdir(OUT, { recursive: true });
  const files = [join(ROOT, "mod.ts"), ...await sources(join(ROOT, "lib"))];
  const written: string[] = [];
  for (const file of files) {
    const name = relative(ROOT, file).replace(/\.ts$/, "").replaceAll("/", "_");
    for (
      const { line, code } of ignoredExamples(await readFile(file, "utf8"))
    ) {
      const path = join(OUT, `${name}_${line}.ts`);
      await writeFile(
        path,
        [
          `// ${relative(ROOT, file)}:${line}, a \`ts ignore\` example.`,
          ...prelude(code),
          resolveGenerated(code),
          "export {};",
          "",
        ].join("\n"),
      );
      written.push(path);
    }
  }
  if (written.length === 0) {
    console.log("doc examples (ts ignore): none found");
    process.exit(0);
  }
  const check = spawnSync(
    process.execPath,
    ["check", "--quiet", ...written.map((p) => relative(ROOT, p))],
    { cwd: ROOT, stdio: "inherit" },
  );
  console.log(
    `doc examples (ts ignore): ${written.length} type-checked, ${
      check.status === 0 ? "all passed" : "FAILED"
    }`,
  );
  process.exit(check.status ?? 1);
}
