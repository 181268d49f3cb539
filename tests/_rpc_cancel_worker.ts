// A Worker for tests/rpc_workerd.test.ts, run by miniflare with the
// enable_request_signal compatibility flag: createRpcHandler (Connect and
// gRPC-Web) serves a server-streaming `ticks` whose handler records when
// its context.signal aborts, and GET /status/<n> reports what the call
// numbered n saw.

import {
  createRpcHandler,
  defineService,
  implementService,
  Int64Value,
} from "../lib/rpc/mod.ts";

export const Ticks = defineService("Ticks", {
  ticks: { kind: "server-streaming", input: Int64Value, output: Int64Value },
});

const calls = new Map<string, { sent: number; aborted: string }>();

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

export default {
  fetch(request: Request): Promise<Response> | Response {
    const [, route, n] = new URL(request.url).pathname.split("/");
    if (route === "status") return Response.json(calls.get(n) ?? null);
    return handler(request);
  },
};
