// A resumable-upload server in its own process, for the kill -9 test:
// `<runtime> tests/_resumable_server.ts <dir> <syncIntervalBytes>` serves
// createResumableUploadHandler over createResumableFileStore(<dir>) on
// 127.0.0.1, port 0, and prints `listening <url>` once it is up.

import process from "node:process";
import { createResumableUploadHandler } from "../lib/http/mod.ts";
import { createHasher, createResumableFileStore } from "../lib/runtime/fs.ts";
import { serve } from "../lib/runtime/serve.ts";

const [dir, interval] = process.argv.slice(2);
const handler = createResumableUploadHandler({
  store: createResumableFileStore(dir, {
    syncIntervalBytes: Number(interval),
  }),
  hasher: createHasher,
  maxBytes: 1024 * 1024 * 1024,
});
const server = await serve(handler, { hostname: "127.0.0.1", port: 0 });
console.log(`listening ${server.url}`);
