// The client of faults_http2.test.ts's idle-GOAWAY test, in its own process
// (the runtime of the test): `count` POSTs to `<url>/ping`, one after
// another, about 50 ms apart, so that the server's idle GOAWAY meets a
// request on its way each time; prints the failures as a JSON list.
//
// In a process of its own because Deno 2.9.6's node:http2 can abort the
// process that holds sessions closed by GOAWAY (docs/known-runtime-issues.md
// (e)): in the test runner's, it ended the whole deno test run.
//
// Usage: <runtime> tests/_h2_idle_client.ts <url> <count>

import process from "node:process";
import { createHttp2Client } from "../lib/runtime/http2_client.ts";

const [url, count] = process.argv.slice(-2);
const httpClient = createHttp2Client(url);
const failures: string[] = [];
try {
  for (let i = 0; i < Number(count); i++) {
    await new Promise((resolve) => setTimeout(resolve, 47 + (i % 7)));
    try {
      const response = await httpClient({
        url: new URL("/ping", url).href,
        // A request with a body, as a unary call sends.
        method: "POST",
        headers: new Headers({ "content-type": "application/grpc" }),
        body: new Uint8Array(10),
        signal: AbortSignal.timeout(10_000),
      });
      const text = await new Response(response.body).text();
      if (text !== "pong") failures.push(`answered ${JSON.stringify(text)}`);
    } catch (error) {
      failures.push(String(error));
    }
  }
} finally {
  await httpClient.close();
}
process.stdout.write(JSON.stringify(failures) + "\n");
