// A Worker for tests/workerd_cancel.test.ts, run by miniflare with the
// enable_request_signal compatibility flag: createRpcHandler (Connect and
// gRPC-Web) serves a server-streaming `ticks`, and GET /events is a
// createSseHandler stream of an event every 10 ms; each handler records
// when its signal aborts and whether it ended, and GET /status/<n> reports
// what the call or stream numbered n saw.

import { createSseHandler } from "../lib/http/sse_response.ts";
import {
  createRpcHandler,
  defineService,
  implementService,
  Int64Value,
} from "../lib/rpc/mod.ts";

export const Ticks = defineService("Ticks", {
  ticks: { kind: "server-streaming", input: Int64Value, output: Int64Value },
});

const calls = new Map<
  string,
  { sent: number; aborted: string; ended?: boolean }
>();

const handler = createRpcHandler(implementService(Ticks, {
  async *ticks(n, context) {
    const call = { sent: 0, aborted: "" };
    calls.set(String(n), call);
    context.signal.addEventListener("abort", () => {
      call.aborted = String(context.signal.reason);
    });
    for (let i = 0; i < 3_000 && !context.signal.aborted; i++) {
      yield BigInt(i);
      call.sent++;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  },
}));

const events = createSseHandler(async function* (request, { signal }) {
  const call = { sent: 0, aborted: "", ended: false };
  calls.set(new URL(request.url).searchParams.get("n")!, call);
  signal.addEventListener("abort", () => {
    call.aborted = String(signal.reason);
  });
  try {
    for (let i = 0; i < 3_000 && !signal.aborted; i++) {
      yield { data: "x".repeat(100) };
      call.sent++;
      // Woken by the signal too, as sse.md advises: a request whose client
      // left may see no more timers.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 10);
        signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
    }
  } finally {
    call.ended = true;
  }
}, { keepAliveMs: 0 });

export default {
  fetch(request: Request): Promise<Response> | Response {
    const [, route, n] = new URL(request.url).pathname.split("/");
    if (route === "status") return Response.json(calls.get(n) ?? null);
    if (route === "events") return events(request);
    return handler(request);
  },
};
