// A receiver in its own process, for the upload memory test: the RSS it
// reports is the server's alone, whatever else the test runner holds.
//
//   deno run --allow-net=127.0.0.1 --allow-read --allow-write=DIR tests/_upload_server.ts TARGET MAX_BYTES
//   bun tests/_upload_server.ts TARGET MAX_BYTES
//
// Prints {"url": ...} once listening, then for each request a JSON line
// {"status", "growth"}: the peak RSS during the request minus the RSS when it
// arrived, sampled every 10 ms. Exits when its standard input closes.

import process from "node:process";
import { createUploadHandler } from "../mod.ts";
import { createFileSink, createHasher } from "../lib/runtime/fs.ts";
import { serve } from "../lib/runtime/serve.ts";
import { formatDigestHeader as fmtDigest, type ReceivedBody } from "../mod.ts";

/** Answers as Ballerina's example does: 200 "File Received!", with Repr-Digest. */
function fileReceived(result: ReceivedBody): Response {
  return new Response("File Received!", {
    headers: result.sha256
      ? { "repr-digest": fmtDigest({ "sha-256": result.sha256 }) }
      : undefined,
  });
}

const [target, maxBytes] = process.argv.slice(2);
const receiver = createUploadHandler({
  onComplete: fileReceived,
  sink: () => createFileSink(target),
  hasher: createHasher,
  maxBytes: Number(maxBytes),
});
const rss = () => process.memoryUsage().rss;
const server = await serve(async (request) => {
  const before = rss();
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rss());
  }, 10);
  try {
    const response = await receiver(request);
    peak = Math.max(peak, rss());
    console.log(
      JSON.stringify({ status: response.status, growth: peak - before }),
    );
    return response;
  } finally {
    clearInterval(sampler);
  }
});
console.log(JSON.stringify({ url: server.url.href }));
process.stdin.resume();
process.stdin.on("end", () => {
  server.shutdown().then(() => process.exit(0));
});
