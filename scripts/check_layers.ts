// Keeps the core portable and the layers in order:
//
// - core files (lib/_internal, lib/streams, lib/http, lib/rpc) import no
//   `node:`, `bun:`, `npm:`, `jsr:` or URL modules, and do not touch `Deno`,
//   `Bun` or Node's `process` / `Buffer` globals (not even `"Deno" in
//   globalThis`): they run in Workers and browsers as they are;
// - no file under lib/ imports from a later layer, in the order
//   _internal ← streams ← http ← rpc ← protobuf ← runtime, or from outside
//   lib/;
// - no file under lib/ uses a built-in Node 20 lacks (NEWER_APIS), and no
//   core file one a browser lacks (BROWSER_MISSING_APIS);
// - no core file uses `for await`, which throws over a ReadableStream in
//   WebKit, except over a call of an async generator of the same file
//   (checkForAwait);
// - lib/protobuf is core too, with one dependency: it may import
//   `@bufbuild/protobuf` (bare, mapped in deno.json, or `npm:`), and nothing
//   else from outside lib/: it runs in browsers and Workers as well.
//
// Comments and the text of strings are ignored, so docs and messages may
// name the runtimes.
//
//   deno task check:layers        (part of `deno task test`)
//
// Uses node: APIs only; `checkSource` is exported for tests.

import { readdir, readFile } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import process from "node:process";

/** The layers under lib/, in order: a layer imports only from earlier ones. */
export const LAYERS = [
  "_internal",
  "streams",
  "http",
  "rpc",
  "protobuf",
  "runtime",
] as const;
/**
 * Layers that must use web standards only. `_internal` holds the private
 * helpers every layer shares (deferred, idle timeout, limits, bytes,
 * base64); it comes first, so it imports from no layer.
 */
export const CORE_LAYERS = new Set([
  "_internal",
  "streams",
  "http",
  "rpc",
  "protobuf",
]);

/**
 * The packages a core layer may import, by layer: lib/protobuf is the
 * protobuf-es integration, with `@bufbuild/protobuf` (and its subpaths) as
 * a bare specifier or an `npm:` one.
 */
export const LAYER_PACKAGES: Readonly<Record<string, RegExp>> = {
  protobuf: /^(npm:)?@bufbuild\/protobuf(@[^/]+)?(\/[\w./-]+)?$/,
};

const FORBIDDEN_GLOBALS = ["Deno", "Bun", "process", "Buffer"];

/**
 * Built-ins newer than Node 20, where the library's clients and
 * `serveHttp2` run too (each was a TypeError there, found late: "is not a
 * function"), with what to use instead.
 */
export const NEWER_APIS: Readonly<Record<string, string>> = {
  "Promise.withResolvers": "deferred() from lib/_internal/deferred.ts",
  "Promise.try": "an async function",
  "Array.fromAsync":
    "a loop over a reader's read() for a stream, an iterator's next() for other async iterables",
  "URL.parse": "URL.canParse and new URL",
  "Object.groupBy": "a loop into a Map",
  "Map.groupBy": "a loop into a Map",
  "Iterator.from": "a generator",
  "Uint8Array.fromBase64": "decodeBase64 from lib/_internal/base64.ts",
  "Uint8Array.fromHex": "a loop",
};
/**
 * Built-ins a browser lacks, which core files (code a page can load) must
 * not use, with what to use instead: `ReadableStream.from` is missing in
 * Chromium 156 (`reduce` and in-process calls failed "is not a function").
 */
export const BROWSER_MISSING_APIS: Readonly<Record<string, string>> = {
  "ReadableStream.from": "streamFrom() from lib/_internal/stream_from.ts",
};

/**
 * `for await` and `yield*` in a core file, where the iterable may be a
 * ReadableStream: WebKit's (Safari's engine) has no `Symbol.asyncIterator`,
 * so both throw "undefined is not a function" there (every RPC call with
 * `sendCompression` failed so in WebKitGTK 2.50). The one iterable allowed
 * is a call of an async generator declared in the same file (`async
 * function* name` or an `async *name()` method), which is never a stream.
 */
function checkForAwait(file: string, tokens: Token[]): Violation[] {
  // The code with each string as an empty one, its lines kept: the lines
  // of tokens are counted from the start of the file.
  const code = tokens.map((t) =>
    t.kind === "code"
      ? t.text
      : `"${"\n".repeat(t.text.split("\n").length - 1)}"`
  ).join("");
  const generators = new Set<string>();
  for (
    const match of code.matchAll(
      /\basync\s+function\s*\*\s*([\w$]+)|\basync\s*\*\s*([\w$]+)\s*\(/g,
    )
  ) {
    generators.add(match[1] ?? match[2]);
  }
  const violations: Violation[] = [];
  for (
    const match of code.matchAll(/\bfor\s+await\s*\(|\byield\s*\*/g)
  ) {
    const start = match.index! + match[0].length;
    const loop = match[0].startsWith("for");
    const iterable = loop ? iterableOf(code, start) : delegatedOf(code, start);
    if (iterable !== undefined && isGeneratorCall(iterable, generators)) {
      continue;
    }
    violations.push({
      file,
      line: code.slice(0, match.index).split("\n").length,
      message: `uses ${loop ? "for await" : "yield*"} over ${
        (iterable ?? "?").replace(/\s+/g, " ")
      }, which throws in WebKit (Safari's engine) if it is a ReadableStream, one without Symbol.asyncIterator (use a loop over a reader's read(); ${
        loop ? "for await" : "yield*"
      } only over a call of an async generator of this file)`,
    });
  }
  return violations;
}

/**
 * The expression a `yield*` at `start` (after its star) delegates to: up
 * to the end of its statement, a `;`, a line's end or a closing bracket at
 * its own depth.
 */
function delegatedOf(code: string, start: number): string | undefined {
  let depth = 0;
  for (let i = start; i < code.length; i++) {
    const c = code[i];
    if (c === "(" || c === "[" || c === "{") depth++;
    else if (c === ")" || c === "]" || c === "}") {
      if (depth === 0) return code.slice(start, i).trim() || undefined;
      depth--;
    } else if (depth === 0 && (c === ";" || c === "\n" || c === ",")) {
      const expression = code.slice(start, i).trim();
      // A line's end inside the expression (`yield*\n  gen()`) goes on.
      if (c === "\n" && expression === "") continue;
      return expression || undefined;
    }
  }
  return code.slice(start).trim() || undefined;
}

/**
 * The iterable of a `for await (... of iterable)` whose header starts at
 * `start` (after its parenthesis), or undefined if there is no `of`.
 */
function iterableOf(code: string, start: number): string | undefined {
  let depth = 0;
  let of = -1;
  for (let i = start; i < code.length; i++) {
    const c = code[i];
    if (c === "(" || c === "[" || c === "{") depth++;
    else if (c === ")" || c === "]" || c === "}") {
      if (depth === 0) return of === -1 ? undefined : code.slice(of, i).trim();
      depth--;
    } else if (
      depth === 0 && of === -1 &&
      /[\s\])}]of[\s([]/y.test(code.slice(i - 1, i + 3))
    ) {
      of = i + 2;
    }
  }
  return undefined;
}

/** Whether `iterable` is one call of a generator of `generators`, nothing more. */
function isGeneratorCall(iterable: string, generators: Set<string>): boolean {
  const call = /^(?:this\s*\.\s*)?([\w$]+)\s*\(/.exec(iterable);
  if (call === null || !generators.has(call[1])) return false;
  // The call's parenthesis closes at the end: `gen(x)`, not `gen(x).y`.
  let depth = 0;
  for (let i = call[0].length - 1; i < iterable.length; i++) {
    const c = iterable[i];
    if (c === "(" || c === "[" || c === "{") depth++;
    else if (c === ")" || c === "]" || c === "}") {
      if (--depth === 0) return i === iterable.length - 1;
    }
  }
  return false;
}

/** The built-ins a file must not use, by whether it is core: `[api, lacking, instead]`. */
function missingApis(core: boolean): [string, string, string][] {
  const apis: [string, string, string][] = Object.entries(NEWER_APIS).map((
    [api, instead],
  ) => [api, "Node 20", instead]);
  if (core) {
    for (const [api, instead] of Object.entries(BROWSER_MISSING_APIS)) {
      apis.push([api, "a browser (Chromium 156)", instead]);
    }
  }
  return apis;
}
const FORBIDDEN_SCHEMES = /^(node|bun|npm|jsr|https?):/;

/** One broken rule. */
export interface Violation {
  /** The file, relative to the repository root. */
  file: string;
  /** 1-based line. */
  line: number;
  message: string;
}

interface Token {
  kind: "code" | "string";
  text: string;
  line: number;
}

/**
 * Splits TypeScript source into code and string tokens, dropping comments.
 * Template literals count as strings, with their `${...}` parts as code.
 * Regular expression literals are kept as code.
 */
export function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  let code = "";
  let codeLine = 1;
  const flush = () => {
    if (code) tokens.push({ kind: "code", text: code, line: codeLine });
    code = "";
  };
  // Braces opened inside `${`, per nesting level of template literals.
  const templateDepth: number[] = [];
  let i = 0;
  const n = source.length;
  const readString = (quote: string): void => {
    const start = line;
    let text = "";
    i++;
    while (i < n) {
      const c = source[i];
      if (c === "\\") {
        text += source.slice(i, i + 2);
        if (source[i + 1] === "\n") line++;
        i += 2;
        continue;
      }
      if (quote === "`" && c === "$" && source[i + 1] === "{") {
        tokens.push({ kind: "string", text, line: start });
        templateDepth.push(0);
        i += 2;
        return;
      }
      if (c === quote) {
        i++;
        tokens.push({ kind: "string", text, line: start });
        return;
      }
      if (c === "\n") line++;
      text += c;
      i++;
    }
    tokens.push({ kind: "string", text, line: start });
  };
  const regexAllowed = () => {
    const before = code.trimEnd();
    if (before === "") {
      const last = tokens.at(-1);
      return !last || last.kind === "string" ? !last : true;
    }
    return /[(,=:[!&|?{};+\-*%<>~^]$|\b(return|typeof|case|do|else|in|of|void|yield|await)$/
      .test(before);
  };
  while (i < n) {
    const c = source[i];
    const next = source[i + 1];
    if (c === "\n") {
      line++;
      code += c;
      i++;
      continue;
    }
    if (c === "/" && next === "/") {
      while (i < n && source[i] !== "\n") i++;
      continue;
    }
    if (c === "/" && next === "*") {
      i += 2;
      while (i < n && !(source[i] === "*" && source[i + 1] === "/")) {
        if (source[i] === "\n") {
          line++;
          code += "\n";
        }
        i++;
      }
      i += 2;
      continue;
    }
    if (c === '"' || c === "'" || c === "`") {
      flush();
      readString(c);
      codeLine = line;
      continue;
    }
    if (templateDepth.length > 0) {
      if (c === "{") templateDepth[templateDepth.length - 1]++;
      if (c === "}") {
        if (templateDepth[templateDepth.length - 1] === 0) {
          templateDepth.pop();
          flush();
          readString("`");
          codeLine = line;
          continue;
        }
        templateDepth[templateDepth.length - 1]--;
      }
    }
    if (c === "/" && regexAllowed()) {
      // A regular expression literal: skip to its closing slash.
      let j = i + 1;
      let inClass = false;
      while (j < n && source[j] !== "\n") {
        const d = source[j];
        if (d === "\\") {
          j += 2;
          continue;
        }
        if (d === "[") inClass = true;
        else if (d === "]") inClass = false;
        else if (d === "/" && !inClass) break;
        j++;
      }
      if (source[j] === "/") {
        code += source.slice(i, j + 1);
        i = j + 1;
        continue;
      }
    }
    if (code === "") codeLine = line;
    code += c;
    i++;
  }
  flush();
  return tokens;
}

/** The layer of a path relative to the repository root, if under lib/. */
export function layerOf(file: string): string | undefined {
  const parts = file.split(/[\\/]/);
  return parts[0] === "lib" ? parts[1] : undefined;
}

/**
 * Checks one file's source. `file` is relative to the repository root
 * (`lib/http/echo.ts`).
 */
export function checkSource(file: string, source: string): Violation[] {
  const layer = layerOf(file);
  const violations: Violation[] = [];
  if (!layer) return violations;
  const rank = LAYERS.indexOf(layer as typeof LAYERS[number]);
  const core = CORE_LAYERS.has(layer);
  if (rank === -1) {
    violations.push({
      file,
      line: 1,
      message: `lib/${layer}/ is not a known layer (${LAYERS.join(", ")})`,
    });
    return violations;
  }
  const apis = missingApis(core);
  const tokens = tokenize(source);
  if (core) violations.push(...checkForAwait(file, tokens));
  for (let t = 0; t < tokens.length; t++) {
    const token = tokens[t];
    if (token.kind === "string") {
      const before = tokens[t - 1];
      const isSpecifier = before?.kind === "code" &&
        /(\bfrom|\bimport|\bimport\s*\(|\bexport\s*\*\s*from)\s*$/.test(
          before.text,
        );
      // `Promise["withResolvers"]`: the name is a string after `Promise[`.
      for (const [api, lacking, instead] of apis) {
        const [object, name] = api.split(".");
        if (
          token.text === name && before?.kind === "code" &&
          new RegExp(
            `(^|[^.\\w$]|globalThis\\s*\\??\\.\\s*)${object}\\s*(\\?\\.)?\\s*\\[\\s*$`,
          ).test(before.text)
        ) {
          violations.push({
            file,
            line: token.line,
            message: `uses ${api}, which ${lacking} lacks (use ${instead})`,
          });
        }
      }
      if (isSpecifier) {
        violations.push(...checkSpecifier(file, token, rank, core));
      } else if (core && FORBIDDEN_GLOBALS.includes(token.text)) {
        violations.push({
          file,
          line: token.line,
          message:
            `names the ${token.text} global in a string (runtime sniffing belongs in lib/runtime/)`,
        });
      }
      continue;
    }
    // Over the whole token, so that a call split across lines counts; the
    // object may follow `globalThis.` or a cast's `)`.
    for (const [api, lacking, instead] of apis) {
      const pattern = new RegExp(
        `(^|[^.\\w$]|globalThis\\s*\\??\\.\\s*|\\)\\s*\\??\\.\\s*)${
          api.replace(".", "\\s*\\??\\.\\s*")
        }(?![\\w$])`,
        "g",
      );
      for (const match of token.text.matchAll(pattern)) {
        violations.push({
          file,
          line: token.line +
            token.text.slice(0, match.index! + match[1].length).split("\n")
              .length -
            1,
          message: `uses ${api}, which ${lacking} lacks (use ${instead})`,
        });
      }
    }
    const lines = token.text.split("\n");
    if (!core) continue;
    for (let l = 0; l < lines.length; l++) {
      for (const name of FORBIDDEN_GLOBALS) {
        // A property (`.process`) or an object key (`process:`) is fine.
        const pattern = new RegExp(`(^|[^.\\w$])${name}(?![\\w$])(?!\\s*:)`);
        if (pattern.test(lines[l])) {
          violations.push({
            file,
            line: token.line + l,
            message: `uses ${name} (core files use web standards only)`,
          });
        }
      }
    }
  }
  return violations;
}

function checkSpecifier(
  file: string,
  token: Token,
  rank: number,
  core: boolean,
): Violation[] {
  const specifier = token.text;
  const layer = LAYERS[rank];
  if (LAYER_PACKAGES[layer]?.test(specifier)) return [];
  if (FORBIDDEN_SCHEMES.test(specifier)) {
    return core
      ? [{
        file,
        line: token.line,
        message:
          `imports ${specifier} (core files use web standards only; runtime glue goes in lib/runtime/)`,
      }]
      : [];
  }
  if (!specifier.startsWith(".")) {
    return core
      ? [{
        file,
        line: token.line,
        message: `imports the bare specifier ${specifier} (no dependencies)`,
      }]
      : [];
  }
  const target = relative(
    ".",
    join(dirname(file), specifier),
  ).split(sep).join("/");
  const targetLayer = layerOf(target);
  if (!targetLayer) {
    return [{
      file,
      line: token.line,
      message: `imports ${specifier}, outside lib/`,
    }];
  }
  const targetRank = LAYERS.indexOf(targetLayer as typeof LAYERS[number]);
  if (targetRank > rank) {
    return [{
      file,
      line: token.line,
      message:
        `imports ${specifier} from the later layer lib/${targetLayer}/ (order: ${
          LAYERS.join(" ← ")
        })`,
    }];
  }
  return [];
}

async function* sourceFiles(dir: string): AsyncGenerator<string> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sourceFiles(path);
    else if (/\.(ts|tsx|js|mjs)$/.test(entry.name)) yield path;
  }
}

/** Checks every file under `<root>/lib`. */
export async function checkLayers(root: string): Promise<{
  files: number;
  violations: Violation[];
}> {
  const violations: Violation[] = [];
  let files = 0;
  for await (const path of sourceFiles(join(root, "lib"))) {
    files++;
    const file = relative(root, path).split(sep).join("/");
    violations.push(...checkSource(file, await readFile(path, "utf8")));
  }
  return { files, violations };
}

if (import.meta.main) {
  const root = resolve(import.meta.dirname ?? ".", "..");
  const { files, violations } = await checkLayers(root);
  for (const v of violations) {
    console.error(`${v.file}:${v.line}: ${v.message}`);
  }
  if (violations.length > 0) {
    console.error(`${violations.length} layering violations`);
    process.exit(1);
  }
  console.log(
    `${files} files under lib/: core (${
      [...CORE_LAYERS].join(", ")
    }) uses no node:, Deno, Bun, process or Buffer; imports follow ${
      LAYERS.join(" ← ")
    }`,
  );
}
