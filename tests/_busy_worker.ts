// A Worker serving a server-streaming RPC of many small messages produced
// without waiting (tests/workerd_busy_streams.test.ts).
import {
  createRpcHandler,
  defineService,
  implementService,
  Int64Value,
} from "../lib/rpc/mod.ts";

export const Burst = defineService("test.Burst", {
  burst: { kind: "server-streaming", input: Int64Value, output: Int64Value },
});

const handler = createRpcHandler(implementService(Burst, {
  async *burst(count) {
    for (let i = 0n; i < count; i++) yield i;
  },
}));

export default { fetch: (request: Request) => handler(request) };
