// `deno doc --lint` over every entry point in deno.json's exports, which the
// test task runs. One kind of finding is allowed, and only for the
// protobuf entry point: `private-type-ref` to a type of protobuf-es
// (`DescMessage`, `MessageShape`, ...). Those are the npm package's own
// types, documented by it; re-exporting them would pull protobuf-es's
// internal types into this package's lint. Any other finding fails.

const PROTOBUF_ES_TYPES = new Set([
  "BinaryReadOptions",
  "BinaryWriteOptions",
  "DescMessage",
  "DescMethod",
  "DescService",
  "JsonReadOptions",
  "JsonWriteStringOptions",
  "MessageInitShape",
  "MessageShape",
  "Registry",
]);

const config = JSON.parse(await Deno.readTextFile("deno.json"));
const entries = Object.values(config.exports as Record<string, string>);
const { stdout, stderr, code } = await new Deno.Command(Deno.execPath(), {
  args: ["doc", "--lint", ...entries],
  env: { NO_COLOR: "1" },
}).output();
const text = new TextDecoder().decode(stdout) +
  new TextDecoder().decode(stderr);

const findings = [...text.matchAll(
  /^error\[([a-z-]+)\]: (.*)\n\s*--> (\S+)/gm,
)].map(([, rule, message, where]) => ({ rule, message, where }));
const allowed = (f: (typeof findings)[number]) =>
  f.rule === "private-type-ref" && f.where.includes("/lib/protobuf/") &&
  PROTOBUF_ES_TYPES.has(
    /references private type '(\w+)'/.exec(f.message)?.[1]!,
  );
const rest = findings.filter((f) => !allowed(f));

console.log(
  `deno doc --lint ${entries.length} entry points: ${findings.length} findings, ${
    findings.length - rest.length
  } of them protobuf-es types referenced by the protobuf entry point`,
);
if (rest.length > 0 || (code !== 0 && findings.length === 0)) {
  console.log(text);
  console.error(`${rest.length} documentation lint findings`);
  Deno.exit(1);
}
