// Starts miniflare (pinned, installed into .tools/miniflare) with the
// resumable-upload Worker (tests/_resumable_worker.ts, bundled), a
// disk-backed R2 bucket `BUCKET` and the Durable Object namespace `UPLOADS`
// (class ResumableUploads), on 127.0.0.1 port 0, twice: as two services `a`
// and `b` (two isolates, each with its own module state) bound to the same
// bucket and the same namespace (`b`'s binding names `a`'s class through
// scriptName), each also on a socket of its own; `a` can call `b` through
// its service binding B. Writes {"a": url, "b":
// url} (those sockets) to instances.json in its working directory, prints
// {"url": ...} (miniflare's entry, which serves `a`) once ready, and
// disposes of miniflare when stdin closes. State persists under <dir>.
//
//   node tests/_miniflare_resumable.mjs <miniflare module> <worker.js> <dir>

import { writeFile } from "node:fs/promises";
import process from "node:process";

const [moduleUrl, scriptPath, persist] = process.argv.slice(2);
const { Miniflare } = await import(moduleUrl);
const worker = {
  modules: true,
  scriptPath,
  compatibilityDate: "2026-04-01",
  compatibilityFlags: ["nodejs_compat"],
  r2Buckets: ["BUCKET"],
};
const socket = [{ host: "127.0.0.1", port: 0 }];
const mf = new Miniflare({
  r2Persist: `${persist}/r2`,
  durableObjectsPersist: `${persist}/do`,
  host: "127.0.0.1",
  port: 0,
  workers: [
    {
      ...worker,
      name: "a",
      durableObjects: { UPLOADS: "ResumableUploads" },
      serviceBindings: { B: "b" },
      unsafeDirectSockets: socket,
    },
    {
      ...worker,
      name: "b",
      durableObjects: {
        UPLOADS: { className: "ResumableUploads", scriptName: "a" },
      },
      unsafeDirectSockets: socket,
    },
  ],
});
const url = await mf.ready;
const a = await mf.unsafeGetDirectURL("a");
const b = await mf.unsafeGetDirectURL("b");
await writeFile("instances.json", JSON.stringify({ a: a.href, b: b.href }));
process.stdout.write(JSON.stringify({ url: url.href }) + "\n");
process.stdin.resume();
process.stdin.on("end", async () => {
  await mf.dispose();
  process.exit(0);
});
