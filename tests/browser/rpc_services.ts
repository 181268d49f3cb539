// The services the browser suite's RPC tests call: StreamingCalcService
// (client-streaming sum, bidi incrementalSum) and a small service with
// the two call kinds a browser's fetch can always make.

import {
  Code,
  defineService,
  implementService,
  Int64Value,
  RpcError,
} from "../../lib/rpc/mod.ts";
import { reduce, ScanStream } from "../../lib/streams/mod.ts";

/** As in examples/streaming_calc.proto. */
export const StreamingCalcService = defineService("StreamingCalcService", {
  sum: { kind: "client-streaming", input: Int64Value, output: Int64Value },
  incrementalSum: { kind: "bidi", input: Int64Value, output: Int64Value },
});

/**
 * Unary and server-streaming; `square` may be called with Connect GET, and
 * `fail` always fails (an error answered in headers alone over gRPC-Web).
 */
export const BrowserService = defineService("test.v1.BrowserService", {
  square: {
    kind: "unary",
    input: Int64Value,
    output: Int64Value,
    idempotency: "no-side-effects",
  },
  count: { kind: "server-streaming", input: Int64Value, output: Int64Value },
  fail: { kind: "unary", input: Int64Value, output: Int64Value },
  paced: { kind: "server-streaming", input: Int64Value, output: Int64Value },
  release: { kind: "unary", input: Int64Value, output: Int64Value },
});

/**
 * `paced(key)` sends 1, then waits for `release(key)`, then sends 2 (or,
 * after 20 s without it, 99 and ends): a client that reads each message as
 * it comes releases it; one that sees the messages only when the call ends
 * never can.
 */
const waiting = new Map<bigint, () => void>();

/** The implementations. */
export const browserServices = [
  implementService(StreamingCalcService, {
    sum: (values) => reduce(values, (a, b) => a + b, 0n),
    incrementalSum: () => new ScanStream((a: bigint, b: bigint) => a + b, 0n),
  }),
  implementService(BrowserService, {
    square: (value, context) => {
      const tenant = context.requestHeaders.get("x-tenant");
      if (tenant !== null) {
        context.responseHeaders.set("x-served-by", `sluice for ${tenant}`);
      }
      // A session as a server keeps it: a cookie, and the page's origin.
      const session = /(?:^|;\s*)session=([^;]*)/.exec(
        context.requestHeaders.get("cookie") ?? "",
      );
      if (session !== null) {
        context.responseHeaders.set("x-session", session[1]);
        context.responseHeaders.set(
          "x-origin",
          context.requestHeaders.get("origin") ?? "",
        );
      }
      return value * value;
    },
    count: async function* (n) {
      for (let i = 1n; i <= n; i++) yield i;
    },
    fail: () => {
      throw new RpcError(Code.PermissionDenied, "Cannot fail: denied");
    },
    paced: async function* (key) {
      const released = Promise.withResolvers<boolean>();
      waiting.set(key, () => released.resolve(true));
      const timer = setTimeout(() => released.resolve(false), 20_000);
      try {
        yield 1n;
        yield await released.promise ? 2n : 99n;
      } finally {
        clearTimeout(timer);
        waiting.delete(key);
      }
    },
    release: (key) => {
      const release = waiting.get(key);
      if (release === undefined) {
        throw new RpcError(Code.NotFound, `Cannot release: no call ${key}`);
      }
      release();
      return key;
    },
  }),
];
