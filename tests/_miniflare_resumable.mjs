// Starts miniflare (pinned, installed into .tools/miniflare) with the
// resumable-upload Worker (tests/_resumable_worker.ts, bundled), a
// disk-backed R2 bucket `BUCKET` and the Durable Object namespace `UPLOADS`
// (class ResumableUploads), on 127.0.0.1 port 0. Prints {"url": ...} once
// ready and disposes of miniflare when stdin closes.
//
//   node tests/_miniflare_resumable.mjs <miniflare module> <worker.js> <dir>

import process from "node:process";

const [moduleUrl, scriptPath, persist] = process.argv.slice(2);
const { Miniflare } = await import(moduleUrl);
const mf = new Miniflare({
  modules: true,
  scriptPath,
  compatibilityDate: "2026-04-01",
  compatibilityFlags: ["nodejs_compat"],
  r2Buckets: ["BUCKET"],
  r2Persist: `${persist}/r2`,
  durableObjects: { UPLOADS: "ResumableUploads" },
  durableObjectsPersist: `${persist}/do`,
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
