// Streaming RPC calls of many small messages in workerd, some cancelled
// mid-stream, then fresh ones. The response loop that waits for a turn of
// the event loop once shared one timer's promise between calls: in workerd
// that promise belonged to the request that made it, and once that request
// was cancelled it never settled — every later streaming call in the
// isolate got one message, then failed ("This promise was created by a
// request that has since ended").

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createClient, createConnectTransport } from "../lib/rpc/mod.ts";
import { startWorkerd, type Workerd } from "./_workerd.ts";
import { deadline } from "./_helpers.ts";
import { Burst } from "./_busy_worker.ts";

const T = 60_000;
const COUNT = 20_000;

describe("streaming RPC calls that never wait, in workerd", () => {
  let workerd: Workerd;

  before(async () => {
    workerd = await startWorkerd({ entry: "tests/_busy_worker.ts" });
  });
  after(async () => {
    const stderr = workerd?.stderr().trim();
    await workerd?.stop();
    if (stderr) console.error(`workerd stderr:\n${stderr}`);
  });

  /** Reads a call of `COUNT` messages, cancelled after `cancelAfter`. */
  async function run(cancelAfter?: number): Promise<number> {
    const client = createClient(
      Burst,
      createConnectTransport({ baseUrl: workerd.url.origin }),
    );
    const abort = new AbortController();
    let received = 0;
    try {
      for await (
        const _ of client.burst(BigInt(COUNT), { signal: abort.signal })
      ) {
        if (++received === cancelAfter) abort.abort(new Error("enough"));
      }
    } catch (error) {
      if (cancelAfter === undefined) throw error;
    }
    return received;
  }

  it("calls cancelled mid-stream leave the next calls whole (every later call failed after one message)", async () => {
    assert.equal(await deadline(run(), T, "a first call"), COUNT);
    for (let round = 0; round < 3; round++) {
      const cut = await deadline(
        Promise.all([50, 350, 650, 950].map((after) => run(after))),
        T,
        "the cancelled calls",
      );
      assert.deepEqual(cut, [50, 350, 650, 950]);
    }
    const fresh = await deadline(
      Promise.all([run(), run()]),
      T,
      "the calls after them",
    );
    assert.deepEqual(fresh, [COUNT, COUNT]);
  });
});
