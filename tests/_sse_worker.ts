// A Worker serving Server-Sent Events, for tests/sse.test.ts: it runs in
// workerd (tests/_workerd.ts, `entry` option) to show that an event stream
// reaches the client event by event, not buffered.
//
//   GET /events   "first" at once, then nothing for a minute (or until the
//                 client goes away), then "second"

import { createSseHandler } from "../lib/http/sse_response.ts";

/** How long the stream stays open after its first event. */
const HOLD_MS = 60_000;

const events = createSseHandler(async function* (_request, { signal }) {
  yield { id: "1", event: "first", data: "sent before the stream ends" };
  // A timer, not a bare promise: workerd cancels a request that waits on
  // nothing but a promise (it would never make progress).
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, HOLD_MS);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
  if (!signal.aborted) yield { id: "2", event: "second", data: "late" };
}, { keepAliveMs: 0 });

export default {
  fetch(request: Request): Promise<Response> | Response {
    if (new URL(request.url).pathname === "/events") return events(request);
    return new Response("Not Found", { status: 404 });
  },
};
