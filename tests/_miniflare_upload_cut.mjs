// Starts miniflare (pinned, installed into .tools/miniflare by
// tests/_miniflare.ts) with a bundled Worker, a disk-backed R2 bucket
// `BUCKET` and a service binding `SELF` to the Worker itself, on 127.0.0.1
// port 0: a route of the Worker forwards a body to another route through
// the binding, as a Worker forwards to another Worker. Prints {"url": ...}
// on stdout once ready, and disposes of miniflare when stdin closes.
//
//   node tests/_miniflare_upload_cut.mjs <miniflare module> <worker.js>
//     <persist dir> [<more compatibility flags, comma-separated>]

import process from "node:process";

const [moduleUrl, scriptPath, persist, flags = ""] = process.argv.slice(2);
const { Miniflare } = await import(moduleUrl);
const mf = new Miniflare({
  name: "main",
  modules: true,
  scriptPath,
  compatibilityDate: "2026-04-01",
  compatibilityFlags: ["nodejs_compat", ...flags.split(",").filter(Boolean)],
  r2Buckets: ["BUCKET"],
  r2Persist: persist,
  serviceBindings: { SELF: "main" },
  host: "127.0.0.1",
  port: 0,
});
const url = await mf.ready;
process.stdout.write(JSON.stringify({ url: url.href }) + "\n");
process.stdin.resume();
process.stdin.on("end", async () => {
  await mf.dispose();
  process.exit(0);
});
