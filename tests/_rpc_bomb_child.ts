// Child process of tests/rpc_bomb.test.ts: serves one Connect call whose
// single message is a gzip bomb (argv: the bomb's path) in process, and
// prints {"code", "baseline", "peak"} as JSON: the EndStreamResponse's code
// and the process's peak RSS (VmHWM) before and after, in bytes.

import { readFile } from "node:fs/promises";
import process from "node:process";
import {
  createRpcHandler,
  defineService,
  implementService,
  type MessageType,
} from "../lib/rpc/mod.ts";
import { encodeFrame } from "../lib/rpc/wire/_frame.ts";

const Bytes: MessageType<Uint8Array> = {
  typeName: "test.Bytes",
  proto: { encode: (v) => v, decode: (b) => b },
};
const BombService = defineService("test.v1.BombService", {
  take: { kind: "client-streaming", input: Bytes, output: Bytes },
});
const handler = createRpcHandler(
  implementService(BombService, {
    take: async (inputs) => {
      for await (const _ of inputs) { /* drain */ }
      return new Uint8Array(0);
    },
  }),
);

async function peakRss(): Promise<number> {
  const status = await readFile("/proc/self/status", "utf8");
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  if (!match) throw new Error("Cannot read VmHWM from /proc/self/status");
  return Number(match[1]) * 1024;
}

async function call(message: Uint8Array, compressed: boolean) {
  const frame = encodeFrame({ flags: compressed ? 1 : 0, data: message });
  const response = await handler(
    new Request("http://x/test.v1.BombService/take", {
      method: "POST",
      headers: {
        "content-type": "application/connect+proto",
        "connect-content-encoding": "gzip",
      },
      body: frame,
    }),
  );
  const body = new Uint8Array(await response.arrayBuffer());
  // The last frame is the EndStreamResponse.
  let at = 0;
  let end: unknown = undefined;
  while (at + 5 <= body.byteLength) {
    const length = new DataView(body.buffer, body.byteOffset + at + 1)
      .getUint32(0);
    if (body[at] & 2) {
      end = JSON.parse(
        new TextDecoder().decode(body.subarray(at + 5, at + 5 + length)),
      );
    }
    at += 5 + length;
  }
  return (end as { error?: { code: string } }).error?.code ?? "ok";
}

const bomb = new Uint8Array(await readFile(process.argv[2]));
// Warm up the same path with a small message, so the baseline includes it.
await call(new Uint8Array(100), false);
const baseline = await peakRss();
const code = await call(bomb, true);
const peak = await peakRss();
console.log(JSON.stringify({ code, baseline, peak }));
