// Starts miniflare (pinned, installed into .tools/miniflare by
// tests/r2_sink_workerd.test.ts) with a bundled Worker and a disk-backed
// R2 bucket `BUCKET`, on 127.0.0.1 port 0. Prints {"url": ...} on stdout
// once ready, and disposes of miniflare when stdin closes.
//
//   node tests/_miniflare_r2.mjs <miniflare module> <worker.js> <persist dir>
//     [<more compatibility flags, comma-separated>]

import process from "node:process";

const [moduleUrl, scriptPath, persist, flags = ""] = process.argv.slice(2);
const { Miniflare } = await import(moduleUrl);
const mf = new Miniflare({
  modules: true,
  scriptPath,
  compatibilityDate: "2026-04-01",
  compatibilityFlags: ["nodejs_compat", ...flags.split(",").filter(Boolean)],
  r2Buckets: ["BUCKET"],
  r2Persist: persist,
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
