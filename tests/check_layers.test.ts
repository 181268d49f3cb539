// The layering check of scripts/check_layers.ts: what it catches, what it
// lets through, and that lib/ passes it.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { checkLayers, checkSource } from "../scripts/check_layers.ts";

function messages(file: string, source: string): string[] {
  return checkSource(file, source).map((v) => `${v.line}: ${v.message}`);
}

describe("checkSource", () => {
  it("checkSource rejects a node: import in a core file", () => {
    const found = messages(
      "lib/http/x.ts",
      `import { createHash } from "node:crypto";\n`,
    );
    assert.equal(found.length, 1);
    assert.match(found[0], /^1: imports node:crypto/);
  });

  it("checkSource rejects built-ins Node 20 lacks, in every layer, but not in comments, strings or as a property (Promise.withResolvers failed fused RPC calls and the resumable handler there)", () => {
    assert.deepEqual(
      messages(
        "lib/runtime/x.ts",
        [
          "const d = Promise.withResolvers<void>();",
          "const all = await Array.fromAsync(stream);",
          "const u = URL.parse(text);",
          "// Promise.withResolvers in a comment",
          'const s = "Promise.try in a string";',
          "const p = my.Promise.withResolvers;",
          "const q = globalThis.Promise.withResolvers();",
          'const r = Promise["withResolvers"]();',
          "const g = Object.groupBy(items, key);",
          "const h = globalThis.Promise['withResolvers']();",
          "const i = Promise?.withResolvers();",
          "const j = (globalThis as any).Promise.withResolvers();",
          "const k = Promise",
          "  .withResolvers();",
        ].join("\n"),
      ),
      [
        "1: uses Promise.withResolvers, which Node 20 lacks (use deferred() from lib/_internal/deferred.ts)",
        "2: uses Array.fromAsync, which Node 20 lacks (use a loop over a reader's read() for a stream, an iterator's next() for other async iterables)",
        "3: uses URL.parse, which Node 20 lacks (use URL.canParse and new URL)",
        "7: uses Promise.withResolvers, which Node 20 lacks (use deferred() from lib/_internal/deferred.ts)",
        "8: uses Promise.withResolvers, which Node 20 lacks (use deferred() from lib/_internal/deferred.ts)",
        "9: uses Object.groupBy, which Node 20 lacks (use a loop into a Map)",
        "10: uses Promise.withResolvers, which Node 20 lacks (use deferred() from lib/_internal/deferred.ts)",
        "11: uses Promise.withResolvers, which Node 20 lacks (use deferred() from lib/_internal/deferred.ts)",
        "12: uses Promise.withResolvers, which Node 20 lacks (use deferred() from lib/_internal/deferred.ts)",
        "13: uses Promise.withResolvers, which Node 20 lacks (use deferred() from lib/_internal/deferred.ts)",
      ],
    );
  });

  it("checkSource rejects ReadableStream.from in core files, which browsers lack (reduce and in-process calls failed in Chromium), and lets lib/runtime use it", () => {
    const source = [
      "const s = ReadableStream.from([1]);",
      "// ReadableStream.from in a comment",
      "const t = globalThis.ReadableStream.from(items);",
    ].join("\n");
    const expected =
      "uses ReadableStream.from, which a browser (Chromium 156) lacks (use streamFrom() from lib/_internal/stream_from.ts)";
    for (const file of ["lib/streams/x.ts", "lib/rpc/protocol/x.ts"]) {
      assert.deepEqual(messages(file, source), [
        `1: ${expected}`,
        `3: ${expected}`,
      ]);
    }
    assert.deepEqual(messages("lib/runtime/x.ts", source), []);
  });

  it("checkSource rejects for await and yield* in core files but over a call of an async generator of the file (WebKit's ReadableStream is not async-iterable: every RPC call with sendCompression failed in WebKit), and lets lib/runtime use them", () => {
    const source = [
      "for await (const chunk of stream.readable) total += chunk.length;",
      "async function* numbers(n: number) { yield n; }",
      "for await (const n of numbers(1)) console.log(n);",
      "class A {",
      "  async *lines(text: string) { yield text; }",
      '  async run() { for await (const l of this.lines("a)")) l; }',
      "}",
      "for await (const [a, b] of numbers(2).values) a;",
      "for await (const { id } of",
      "  requests) id;",
      "// for await (const x of stream) in a comment",
      'const s = "for await (const x of stream) in a string";',
      "for await (const m of fetchEventStream(url)) m;",
      "async function* relay(s: ReadableStream) { yield* s; }",
      "async function* more() { yield* numbers(3); yield*",
      "  numbers(4) }",
      "for await (const x of(stream)) x;",
    ].join("\n");
    const expected = (iterable: string, what = "for await") =>
      `uses ${what} over ${iterable}, which throws in WebKit (Safari's engine) if it is a ReadableStream, one without Symbol.asyncIterator (use a loop over a reader's read(); ${what} only over a call of an async generator of this file)`;
    for (const file of ["lib/rpc/protocol/x.ts", "lib/protobuf/x.ts"]) {
      assert.deepEqual(messages(file, source), [
        `1: ${expected("stream.readable")}`,
        `8: ${expected("numbers(2).values")}`,
        `9: ${expected("requests")}`,
        `13: ${expected("fetchEventStream(url)")}`,
        `14: ${expected("s", "yield*")}`,
        `17: ${expected("(stream)")}`,
      ]);
    }
    assert.deepEqual(messages("lib/runtime/x.ts", source), []);
  });

  it("checkSource rejects a type-only and a dynamic node: import in a core file", () => {
    assert.equal(
      messages(
        "lib/streams/x.ts",
        `import type { Stats } from "node:fs";\nconst m = await import("node:fs");\n`,
      ).length,
      2,
    );
  });

  it("checkSource rejects npm:, jsr: and bare specifiers in a core file", () => {
    assert.equal(
      messages(
        "lib/rpc/x.ts",
        `import a from "npm:fast-check";\nimport b from "jsr:@std/streams";\nimport c from "undici";\n`,
      ).length,
      3,
    );
  });

  it("checkSource rejects Deno, Bun, process and Buffer in core code", () => {
    const found = messages(
      "lib/http/x.ts",
      [
        "const a = Deno.serve;",
        "const b = (globalThis as { Bun?: unknown }).Bun;",
        "const c = process.env;",
        "const d = Buffer.from([]);",
      ].join("\n"),
    );
    assert.deepEqual(found.map((m) => m.split(":")[0]), ["1", "2", "3", "4"]);
  });

  it("checkSource rejects runtime sniffing with a string", () => {
    const found = messages(
      "lib/http/x.ts",
      `const deno = "Deno" in globalThis;`,
    );
    assert.equal(found.length, 1);
    assert.match(found[0], /names the Deno global in a string/);
  });

  it("checkSource rejects a global used inside a template literal", () => {
    assert.equal(
      messages("lib/http/x.ts", "const s = `pid ${Deno.pid}`;").length,
      1,
    );
  });

  it("checkSource allows the runtimes in comments, strings and property names", () => {
    const source = [
      "/** Works with `Deno.serve` and `Bun.serve`. */",
      "// process.env is not read here",
      'const message = "Cannot serve: use Deno.serve or Bun.serve";',
      "const template = `under Bun ${1 + 1}`;",
      "const options = { process: true };",
      "const value = options.process;",
      "const pattern = /['\"]/;",
    ].join("\n");
    assert.deepEqual(messages("lib/http/x.ts", source), []);
  });

  it("checkSource rejects an import from a later layer", () => {
    const found = messages(
      "lib/http/x.ts",
      `import { Code } from "../rpc/code.ts";\nimport type { Server } from "../runtime/serve.ts";\n`,
    );
    assert.equal(found.length, 2);
    assert.match(found[0], /from the later layer lib\/rpc\//);
    assert.match(found[1], /from the later layer lib\/runtime\//);
  });

  it("checkSource allows imports from the same and earlier layers", () => {
    const source = [
      `import { a } from "./a.ts";`,
      `import { b } from "../streams/b.ts";`,
      `import { c } from "../http/c.ts";`,
      `export * from "./protocol_connect/d.ts";`,
    ].join("\n");
    assert.deepEqual(messages("lib/rpc/x.ts", source), []);
  });

  it("checkSource lets every layer use lib/_internal, which imports no layer", () => {
    assert.deepEqual(
      messages("lib/streams/x.ts", `import { a } from "../_internal/a.ts";`),
      [],
    );
    assert.deepEqual(
      messages("lib/rpc/p/x.ts", `import { a } from "../../_internal/a.ts";`),
      [],
    );
    assert.match(
      messages("lib/_internal/x.ts", `import { b } from "../streams/b.ts";`)[0],
      /later layer|streams/,
    );
    assert.match(
      messages("lib/_internal/x.ts", `import { c } from "node:crypto";`)[0],
      /node:/,
    );
  });

  it("checkSource rejects an import from outside lib/", () => {
    assert.match(
      messages(
        "lib/streams/x.ts",
        `import { t } from "../../tests/_helpers.ts";`,
      )[0],
      /outside lib\//,
    );
  });

  it("checkSource lets lib/protobuf import @bufbuild/protobuf, bare or npm:", () => {
    const source = [
      `import { create } from "@bufbuild/protobuf";`,
      `import type { Int64Value } from "@bufbuild/protobuf/wkt";`,
      `import { toBinary } from "npm:@bufbuild/protobuf@^2";`,
      `import { fromBinary } from "npm:@bufbuild/protobuf@2.17.0/wire";`,
      `import { Code } from "../rpc/code.ts";`,
    ].join("\n");
    assert.deepEqual(messages("lib/protobuf/x.ts", source), []);
  });

  it("checkSource rejects node:, Deno, other packages and later layers in lib/protobuf", () => {
    const found = messages(
      "lib/protobuf/x.ts",
      [
        `import { constants } from "node:os";`,
        `const a = Deno.env;`,
        `import x from "npm:@bufbuild/protobuf-extra";`,
        `import y from "@connectrpc/connect";`,
        `import { serve } from "../runtime/serve.ts";`,
      ].join("\n"),
    );
    assert.deepEqual(found.map((m) => m.split(":")[0]), [
      "1",
      "2",
      "3",
      "4",
      "5",
    ]);
    assert.match(found[4], /later layer lib\/runtime\//);
  });

  it("checkSource keeps @bufbuild/protobuf out of the other core layers", () => {
    assert.equal(
      messages("lib/rpc/x.ts", `import { create } from "@bufbuild/protobuf";`)
        .length,
      1,
    );
  });

  it("checkSource lets runtime glue import lib/protobuf", () => {
    assert.deepEqual(
      messages("lib/runtime/x.ts", `import { a } from "../protobuf/a.ts";`),
      [],
    );
  });

  it("checkSource lets runtime glue import node: modules and use Deno", () => {
    const source =
      `import { createHash } from "node:crypto";\nconst d = typeof Deno;\nimport { x } from "../rpc/x.ts";\n`;
    assert.deepEqual(messages("lib/runtime/x.ts", source), []);
  });
});

describe("checkLayers", () => {
  it("checkLayers finds no violation in lib/", async () => {
    const { files, violations } = await checkLayers(
      join(import.meta.dirname ?? ".", ".."),
    );
    assert.ok(files > 10, `checked ${files} files`);
    assert.deepEqual(violations, []);
  });
});
