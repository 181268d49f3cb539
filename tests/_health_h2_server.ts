// createHealthService served by serveHttp2 beside StreamingCalcService, in
// its own process, for tests/health.test.ts (under Deno, node:http2 can
// abort the process that closes a session: docs/known-runtime-issues.md
// (e); in a child that takes down this server only).
//
// Usage: <runtime> tests/_health_h2_server.ts
// Prints {"port": N} once listening, then answers one JSON line per
// command line:
//   {"cmd":"set","service":"x","status":"SERVING"}  health.setStatus
//   {"cmd":"shutdown"}                              health.shutdown
//   {"cmd":"watchers","count":0}  once health.watchers is `count` (at once
//                                 if it is), {"watchers": count}
// Closing stdin shuts the server down and exits.

import {
  createHealthService,
  createUniversalHandler,
  type HandlerContext,
  type HealthCheckRequest,
  type HealthServingStatus,
  implementService,
} from "../lib/rpc/mod.ts";
import { serveHttp2 } from "../lib/runtime/serve_http2.ts";
import { streamingCalc } from "../examples/streaming_calc.ts";
import { answerCommands } from "./_memory.ts";

const health = createHealthService({
  statuses: { StreamingCalcService: "SERVING" },
});

// The health service's own handlers, with a hook on each Watch call's end
// (registered after the service's own: it sees the count already lowered),
// so that a "watchers" command waits for an event, not on a timer.
const handler = (name: string) =>
  health.implementation.handlers.get(`/grpc.health.v1.Health/${name}`)!
    .handler;
const waiting = new Set<() => void>();
const observed = implementService(health.service, {
  check: (request, context) => handler("Check")(request, context),
  watch: (request: HealthCheckRequest, context: HandlerContext) => {
    const stream = handler("Watch")(request, context);
    context.signal.addEventListener("abort", () => {
      for (const check of waiting) check();
    });
    return stream;
  },
});

const server = await serveHttp2(
  createUniversalHandler([streamingCalc, observed]),
  { hostname: "127.0.0.1", port: 0 },
);

answerCommands({ port: server.port }, {
  set: ({ service, status }) => {
    health.setStatus(String(service), status as HealthServingStatus);
    return {};
  },
  shutdown: () => {
    health.shutdown();
    return {};
  },
  watchers: ({ count }) =>
    new Promise((resolve) => {
      const check = () => {
        if (health.watchers !== count) return;
        waiting.delete(check);
        resolve({ watchers: health.watchers });
      };
      waiting.add(check);
      check();
    }),
}, () => server.shutdown());
