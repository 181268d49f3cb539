// The idle guard of request bodies passed on to the runtime (the echo):
// pipeWithIdleTimeout, one TransformStream hop for the idle timer, the
// read-ahead and the abort signal. What it must keep: a source that goes
// quiet fails the stream, a consumer that holds the stream back does not,
// the read-ahead is bounded, and every way out cancels the source and
// leaves no timer behind.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { pipeWithIdleTimeout } from "../lib/_internal/idle_timeout.ts";
import { byteChunks, probeSource, settled } from "./_stream_probe.ts";
import { deadline } from "./_helpers.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A source that gives `chunks`, then stays silent until cancelled. */
function stallingSource(chunks: Uint8Array[]): {
  stream: ReadableStream<Uint8Array>;
  cancelled: Promise<unknown>;
} {
  const cancelled = Promise.withResolvers<unknown>();
  let index = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (index < chunks.length) {
        controller.enqueue(chunks[index++]);
        return;
      }
      return new Promise<void>(() => {}); // silent from here on
    },
    cancel(reason) {
      cancelled.resolve(reason);
    },
  }, { highWaterMark: 0 });
  return { stream, cancelled: cancelled.promise };
}

class Idle extends Error {}

describe("pipeWithIdleTimeout", () => {
  it("pipeWithIdleTimeout returns the source itself when there is nothing to add", () => {
    const source = new ReadableStream<Uint8Array>();
    assert.equal(pipeWithIdleTimeout(source, 0, () => new Idle()), source);
    assert.equal(
      pipeWithIdleTimeout(source, undefined, () => new Idle(), {}),
      source,
    );
  });

  it("pipeWithIdleTimeout passes chunks unchanged and in order", async () => {
    const out = await Array.fromAsync(
      pipeWithIdleTimeout(
        ReadableStream.from(byteChunks(20, 5)),
        1_000,
        () => new Idle(),
        { readAheadBytes: 16 },
      ),
    );
    assert.deepEqual(out, byteChunks(20, 5));
  });

  it("pipeWithIdleTimeout fails a source that goes quiet for ms and cancels it with the same error", async () => {
    const { stream, cancelled } = stallingSource(byteChunks(2, 4));
    const started = performance.now();
    const reader = pipeWithIdleTimeout(stream, 150, () => new Idle("idle"))
      .getReader();
    assert.equal((await reader.read()).value?.byteLength, 4);
    assert.equal((await reader.read()).value?.byteLength, 4);
    const error = await deadline(
      reader.read().then(() => undefined, (e) => e),
      5_000,
      "idle error",
    );
    assert.ok(error instanceof Idle, `got ${String(error)}`);
    assert.ok(performance.now() - started >= 140, "not before ms");
    assert.equal(await deadline(cancelled, 5_000, "cancel"), error);
  });

  it("pipeWithIdleTimeout does not count time the consumer holds the stream back", async () => {
    // The source has plenty to give; the consumer reads nothing for three
    // times the timeout, then reads everything: no idle error.
    const chunks = byteChunks(40, 100);
    const reader = pipeWithIdleTimeout(
      ReadableStream.from(chunks),
      100,
      () => new Idle("idle"),
      { readAheadBytes: 1_000 },
    ).getReader();
    await sleep(300);
    let count = 0;
    while (!(await reader.read()).done) count++;
    assert.equal(count, 40);
  });

  it("pipeWithIdleTimeout still fails a source that goes quiet after the consumer held it back", async () => {
    const { stream, cancelled } = stallingSource(byteChunks(3, 10));
    const reader = pipeWithIdleTimeout(stream, 100, () => new Idle("idle"), {
      readAheadBytes: 1,
    }).getReader();
    await sleep(250); // held back: the queue is full
    for (let i = 0; i < 3; i++) await reader.read();
    const heldUntil = performance.now();
    const error = await deadline(
      reader.read().then(() => undefined, (e) => e),
      5_000,
      "idle error",
    );
    assert.ok(error instanceof Idle, `got ${String(error)}`);
    // Never early; late by at most one look (ms / 8) plus timer slack.
    const waited = performance.now() - heldUntil;
    assert.ok(waited >= 90, `failed after ${waited} ms`);
    await deadline(cancelled, 5_000, "cancel");
  });

  it("pipeWithIdleTimeout reads at most readAheadBytes and a chunk ahead of the consumer", async () => {
    const source = probeSource(byteChunks(100, 100));
    const reader = pipeWithIdleTimeout(source.stream, 0, () => new Idle(), {
      readAheadBytes: 1_000,
    }).getReader();
    await reader.read();
    await settled();
    const ahead = source.pulls();
    assert.ok(ahead <= 14, `pulled ${ahead} ahead`);
    await settled();
    assert.equal(source.pulls(), ahead, "no pulls past the read-ahead");
    await reader.cancel("done");
  });

  it("pipeWithIdleTimeout fails with onAbort's error when the signal aborts, and cancels the source", async () => {
    const { stream, cancelled } = stallingSource(byteChunks(1, 4));
    const controller = new AbortController();
    const reader = pipeWithIdleTimeout(stream, 10_000, () => new Idle(), {
      signal: controller.signal,
      onAbort: (cause) => new Error("client went away", { cause }),
    }).getReader();
    await reader.read();
    controller.abort("gone");
    const error = await deadline(
      reader.read().then(() => undefined, (e) => e),
      5_000,
      "abort error",
    );
    assert.ok(error instanceof Error);
    assert.equal(error.message, "client went away");
    assert.equal(error.cause, "gone");
    assert.equal(await deadline(cancelled, 5_000, "cancel"), error);
  });

  it("pipeWithIdleTimeout fails at once for a signal that already aborted", async () => {
    const { stream, cancelled } = stallingSource([]);
    const reader = pipeWithIdleTimeout(stream, 0, () => new Idle(), {
      signal: AbortSignal.abort("before"),
    }).getReader();
    await assert.rejects(reader.read(), (e) => e === "before");
    assert.equal(await deadline(cancelled, 5_000, "cancel"), "before");
  });

  it("pipeWithIdleTimeout cancels the source with the consumer's reason and stops its timer", async () => {
    const { stream, cancelled } = stallingSource(byteChunks(1, 4));
    const controller = new AbortController();
    let idled = false;
    const reader = pipeWithIdleTimeout(stream, 50, () => {
      idled = true;
      return new Idle();
    }, { signal: controller.signal }).getReader();
    await reader.read();
    await reader.cancel("consumer left");
    assert.equal(
      await deadline(cancelled, 5_000, "cancel"),
      "consumer left",
    );
    await sleep(150);
    controller.abort("late");
    assert.equal(idled, false, "no idle error after the cancel");
  });
});
