// The pace of request bodies. pipeWithPace, for a body passed on to the
// runtime (the echo): one TransformStream hop for the idle timer, the
// read-ahead and the abort signal. What it must keep: a source that goes
// quiet fails the stream, a consumer that holds the stream back does not
// (and no limit is cut short by it), the read-ahead is bounded, and every
// way out cancels the source and leaves no timer behind. PacedReader, for a
// consumer with a read loop of its own (receiveBody, the multipart parser's
// input): the idle timer and the minimum rate, counting only time inside
// its reads. IdleWatch, the one idle clock all of them (and the RPC
// server's request reads) keep: never early, one timer per body.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  IdleWatch,
  PacedReader,
  pipeWithPace,
  withIdleTimeout,
} from "../lib/_internal/idle_timeout.ts";
import {
  asByteStream,
  byobSource,
  byteChunks,
  probeSource,
  settled,
} from "./_stream_probe.ts";
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

/** What the next read of `reader` rejects with (at most 5 s away). */
function readError(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  what: string,
): Promise<unknown> {
  return deadline(reader.read().then(() => undefined, (e) => e), 5_000, what);
}

for (const kind of ["default", "byte"] as const) {
  describe(`pipeWithPace, ${kind} stream source`, () => {
    // Deno's and workerd's request bodies are byte streams: with
    // maxReadBytes (echo, for a request with a Content-Length) read through
    // a BYOB reader (pumpBytes); others, and without it, piped.
    const from = (stream: ReadableStream<Uint8Array>) =>
      kind === "byte" ? asByteStream(stream) : stream;
    const byob = kind === "byte" ? { maxReadBytes: 64 * 1024 } : {};
    const stalling = (chunks: Uint8Array[]) => {
      const source = stallingSource(chunks);
      return { ...source, stream: from(source.stream) };
    };
    const idle = (idleTimeoutMs: number) => ({
      idleTimeoutMs,
      onIdle: () => new Idle("idle"),
    });

    it("pipeWithPace returns the source itself when there is nothing to do", () => {
      const source = new ReadableStream<Uint8Array>();
      assert.equal(pipeWithPace(source, {}), source);
      assert.equal(pipeWithPace(source, idle(0)), source);
    });

    it("pipeWithPace passes chunks unchanged and in order", async () => {
      const out = await Array.fromAsync(
        pipeWithPace(from(ReadableStream.from(byteChunks(20, 5))), {
          ...byob,
          ...idle(1_000),
          readAheadBytes: 16,
        }),
      );
      assert.deepEqual(out, byteChunks(20, 5));
    });

    it("pipeWithPace fails a source that goes quiet for idleTimeoutMs and cancels it with the same error", async () => {
      const { stream, cancelled } = stalling(byteChunks(2, 4));
      const started = performance.now();
      const reader = pipeWithPace(stream, { ...idle(150), ...byob })
        .getReader();
      assert.equal((await reader.read()).value?.byteLength, 4);
      assert.equal((await reader.read()).value?.byteLength, 4);
      const error = await readError(reader, "idle error");
      assert.ok(error instanceof Idle, `got ${String(error)}`);
      assert.ok(performance.now() - started >= 140, "not before ms");
      assert.equal(await deadline(cancelled, 5_000, "cancel"), error);
    });

    it("pipeWithPace does not count time the consumer holds the stream back", async () => {
      // The source has plenty to give; the consumer reads nothing for three
      // times the timeout, then reads everything: no idle error.
      const chunks = byteChunks(40, 100);
      const reader = pipeWithPace(from(ReadableStream.from(chunks)), {
        ...byob,
        ...idle(100),
        readAheadBytes: 1_000,
      }).getReader();
      await sleep(300);
      let count = 0;
      while (!(await reader.read()).done) count++;
      assert.equal(count, 40);
    });

    it("pipeWithPace still fails a source that goes quiet after the consumer held it back", async () => {
      const { stream, cancelled } = stalling(byteChunks(3, 10));
      const reader = pipeWithPace(stream, {
        ...byob,
        ...idle(100),
        readAheadBytes: 1,
        ...byob,
      })
        .getReader();
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

    it("pipeWithPace looks every eighth of its shortest limit while held back, not more often", async () => {
      // A consumer that reads nothing for 250 ms: with idleTimeoutMs 800 (no
      // minimum rate) the timer looks every 100 ms, so a few timers in all.
      const calls = { count: 0 };
      const real = globalThis.setTimeout;
      const counting = ((...args: Parameters<typeof setTimeout>) => {
        calls.count++;
        return real(...args);
      }) as typeof setTimeout;
      const { stream, cancelled } = stalling(byteChunks(3, 10));
      globalThis.setTimeout = counting;
      let reader: ReadableStreamDefaultReader<Uint8Array>;
      try {
        reader = pipeWithPace(stream, {
          ...byob,
          ...idle(800),
          readAheadBytes: 1,
          ...byob,
        })
          .getReader();
        await new Promise((resolve) => real(resolve, 250));
      } finally {
        globalThis.setTimeout = real;
      }
      assert.ok(calls.count <= 6, `${calls.count} timers in 250 ms`);
      await reader.cancel("done");
      await deadline(cancelled, 5_000, "cancel");
    });

    /**
     * Reads the first chunk of `chunks` through pipeWithPace with
     * `readAheadBytes`, lets the pipe settle and returns how many chunks it
     * pulled from the source, after checking that it pulls no more while the
     * consumer waits.
     */
    async function pullsAhead(
      chunks: Uint8Array[],
      readAheadBytes: number,
    ): Promise<number> {
      // (A byte stream takes each chunk's buffer: the first, copied first.)
      const expected = chunks[0].slice();
      const source = probeSource(chunks);
      const reader = pipeWithPace(from(source.stream), {
        ...byob,
        readAheadBytes,
        ...byob,
      })
        .getReader();
      const first = await reader.read();
      assert.deepEqual(first.value, expected);
      await settled();
      const ahead = source.pulls();
      await settled();
      assert.equal(source.pulls(), ahead, "no pulls past the read-ahead");
      await reader.cancel("done");
      return ahead;
    }

    it("pipeWithPace reads at most readAheadBytes and a chunk ahead of the consumer", async () => {
      const ahead = await pullsAhead(byteChunks(100, 100), 1_000);
      assert.ok(ahead <= 14, `pulled ${ahead} ahead`);
    });

    if (kind === "default") {
      it("pipeWithPace counts each chunk's whole buffer against readAheadBytes", async () => {
        // 100-byte views of 400-byte buffers: 1,000 bytes of read-ahead hold
        // three of them (and a chunk), not ten.
        const chunks = Array.from(
          { length: 100 },
          (_, i) => new Uint8Array(new ArrayBuffer(400), 0, 100).fill(i),
        );
        const ahead = await pullsAhead(chunks, 1_000);
        assert.ok(ahead <= 6, `pulled ${ahead} ahead`);
      });
    } else {
      it("pipeWithPace passes a byte source's small reads as chunks of their own size", async () => {
        // 100-byte views of 400-byte buffers, each read into a 64 KiB buffer:
        // copied out, each keeps alive its 100 bytes and no more.
        const chunks = Array.from(
          { length: 20 },
          (_, i) => new Uint8Array(new ArrayBuffer(400), 0, 100).fill(i),
        );
        const expected = chunks.map((chunk) => chunk.slice());
        const out = await Array.fromAsync(
          pipeWithPace(from(ReadableStream.from(chunks)), {
            ...byob,
            readAheadBytes: 1_000,
          }),
        );
        assert.deepEqual(out, expected);
        for (const chunk of out) assert.equal(chunk.buffer.byteLength, 100);
      });
    }

    it("pipeWithPace fails with onAbort's error when the signal aborts, and cancels the source", async () => {
      const { stream, cancelled } = stalling(byteChunks(1, 4));
      const controller = new AbortController();
      const reader = pipeWithPace(stream, {
        ...byob,
        ...idle(10_000),
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

    it("pipeWithPace fails at once for a signal that already aborted", async () => {
      const { stream, cancelled } = stalling([]);
      const reader = pipeWithPace(stream, {
        ...byob,
        signal: AbortSignal.abort("before"),
      })
        .getReader();
      await assert.rejects(reader.read(), (e) => e === "before");
      assert.equal(await deadline(cancelled, 5_000, "cancel"), "before");
    });

    it("pipeWithPace cancels the source with the consumer's reason and stops its timers", async () => {
      const { stream, cancelled } = stalling(byteChunks(1, 4));
      const controller = new AbortController();
      let failed = false;
      const reader = pipeWithPace(stream, {
        ...byob,
        idleTimeoutMs: 50,
        onIdle: () => (failed = true, new Idle()),
        signal: controller.signal,
      }).getReader();
      await reader.read();
      await reader.cancel("consumer left");
      assert.equal(
        await deadline(cancelled, 5_000, "cancel"),
        "consumer left",
      );
      await sleep(150);
      controller.abort("late");
      assert.equal(failed, false, "no error after the cancel");
    });
  });
}

describe("IdleWatch", () => {
  // Pauses whose timers are not counted by countingTimers.
  const real = globalThis.setTimeout;
  const pause = (ms: number) => new Promise((r) => real(r, ms));

  /** Runs `body` with setTimeout counted; returns how many it set. */
  async function countingTimers(body: () => Promise<void> | void) {
    let count = 0;
    globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
      count++;
      return real(...args);
    }) as typeof setTimeout;
    try {
      await body();
    } finally {
      globalThis.setTimeout = real;
    }
    return count;
  }

  /** A watch of `ms` whose idle calls are counted and awaitable. */
  function watched(ms: number, heldBack?: () => boolean) {
    const fired = Promise.withResolvers<number>();
    let calls = 0;
    const watch = new IdleWatch(ms, () => {
      calls++;
      fired.resolve(performance.now());
    }, heldBack);
    return { watch, fired: fired.promise, calls: () => calls };
  }

  it("IdleWatch calls onIdle once a single wait has lasted ms, never early, and only once", async () => {
    const { watch, fired, calls } = watched(100);
    const began = performance.now();
    watch.begin();
    const at = await deadline(fired, 5_000, "idle");
    assert.ok(at - began >= 99, `fired after ${at - began} ms`);
    watch.begin(); // stopped: no new wait, no new timer
    await sleep(150);
    assert.equal(calls(), 1);
  });

  it("IdleWatch counts only waits: time between end() and begin() is not held against the source", async () => {
    const { watch, fired, calls } = watched(100);
    watch.begin();
    watch.end();
    await sleep(300); // three limits not waiting
    assert.equal(calls(), 0);
    const began = performance.now();
    watch.begin();
    const at = await deadline(fired, 5_000, "idle");
    assert.ok(at - began >= 99, `fired ${at - began} ms into the wait`);
  });

  it("IdleWatch keeps one timer for any number of waits, re-armed only when it fires early", async () => {
    let watch!: IdleWatch;
    let calls = 0;
    const timers = await countingTimers(async () => {
      watch = new IdleWatch(1_000, () => calls++);
      for (let i = 0; i < 10_000; i++) {
        watch.begin();
        watch.end();
      }
      // Waits that begin again every 20 ms, for 200 ms of a 1,000 ms
      // limit: the one timer has not fired yet.
      for (let i = 0; i < 10; i++) {
        watch.begin();
        await pause(20);
      }
      watch.stop();
    });
    assert.equal(calls, 0);
    // (Two if a loaded machine stretched the loop past the limit once.)
    assert.ok(timers <= 2, `${timers} timers`);
  });

  it("IdleWatch with ms 0 or undefined sets no timer and never fires", async () => {
    let calls = 0;
    const timers = await countingTimers(() => {
      for (const ms of [0, undefined]) {
        const watch = new IdleWatch(ms, () => calls++);
        watch.begin();
        watch.end();
        watch.begin();
      }
    });
    assert.equal(timers, 0);
    await sleep(20);
    assert.equal(calls, 0);
  });

  it("IdleWatch.stop ends the limit: a wait under way never fires", async () => {
    const { watch, calls } = watched(50);
    watch.begin();
    watch.stop();
    await sleep(150);
    assert.equal(calls(), 0);
  });

  it("IdleWatch with heldBack looks every eighth of the limit while held, and counts the wait from the look that found room", async () => {
    let held = true;
    const { watch, fired, calls } = watched(200, () => held);
    let released = 0;
    const timers = await countingTimers(async () => {
      watch.begin();
      await pause(500); // held back for 2.5 limits: not a wait
      assert.equal(calls(), 0);
      held = false;
      released = performance.now();
    });
    // The first timer (200 ms), then a look every 25 ms at most.
    assert.ok(timers >= 2 && timers <= 1 + 300 / 25 + 1, `${timers} timers`);
    const at = await deadline(fired, 5_000, "idle");
    assert.ok(at - released >= 199, `fired ${at - released} ms after room`);
  });
});

describe("withIdleTimeout", () => {
  it("withIdleTimeout returns the source itself with no timeout and no maxReadBytes", () => {
    const source = new ReadableStream<Uint8Array>();
    assert.equal(withIdleTimeout(source, 0, () => new Idle()), source);
  });

  it("withIdleTimeout reads a byte stream in reads that grow to maxReadBytes while they come back full", async () => {
    // Five full reads, two of 100 bytes, then the end: reads of 64, 128,
    // 256 and 256 KiB (the most), then 100-byte chunks of their own.
    const source = byobSource((n, asked) =>
      n <= 5 ? asked : n <= 7 ? 100 : null
    );
    const chunks = await Array.fromAsync(
      withIdleTimeout(source.stream, 0, () => new Idle(), 256 * 1024),
    );
    assert.deepEqual(
      source.asked.map((b) => b / 1024),
      [64, 128, 256, 256, 256, 256, 128, 64],
    );
    assert.deepEqual(
      chunks.map((c) => c.byteLength / 1024),
      [64, 128, 256, 256, 256, 100 / 1024, 100 / 1024],
    );
    assert.deepEqual(chunks.map((c) => c[0]), [1, 2, 3, 4, 5, 6, 7]);
    assert.equal(chunks[5].buffer.byteLength, 100, "a small read, copied");
  });

  it("withIdleTimeout fails a byte stream that goes quiet for ms and cancels it with the same error", async () => {
    const source = byobSource((n) => n === 1 ? 10 : undefined);
    const reader = withIdleTimeout(
      source.stream,
      100,
      () => new Idle("idle"),
      64 * 1024,
    ).getReader();
    assert.equal((await reader.read()).value?.byteLength, 10);
    const error = await readError(reader, "idle error");
    assert.ok(error instanceof Idle, `got ${String(error)}`);
    await settled();
    assert.equal(source.cancelled()?.reason, error);
  });
});

describe("PacedReader", () => {
  const idle = (idleTimeoutMs: number) => ({
    idleTimeoutMs,
    onIdle: () => new Idle("idle"),
  });
  class Slow extends Error {}

  it("PacedReader reads every chunk in order, then done, with no limit set", async () => {
    const reader = new PacedReader(ReadableStream.from(byteChunks(5, 3)), {});
    const out: Uint8Array[] = [];
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      out.push(r.value);
    }
    assert.deepEqual(out, byteChunks(5, 3));
  });

  it("PacedReader fails a read that waits idleTimeoutMs, on time, and cancels the source with the same error", async () => {
    const { stream, cancelled } = stallingSource(byteChunks(2, 4));
    const reader = new PacedReader(stream, idle(150));
    await reader.read();
    await reader.read();
    const started = performance.now();
    const error = await deadline(
      reader.read().then(() => undefined, (e) => e),
      5_000,
      "idle error",
    );
    const waited = performance.now() - started;
    assert.ok(error instanceof Idle, `got ${String(error)}`);
    // Not before the limit, and not an eighth late (a timer's slack only).
    assert.ok(waited >= 140 && waited < 1_000, `failed after ${waited} ms`);
    assert.equal(await deadline(cancelled, 5_000, "cancel"), error);
    // Every later read fails the same way.
    assert.equal(await reader.read().catch((e) => e), error);
  });

  it("PacedReader does not count time between reads (a consumer busy for 3x the limit)", async () => {
    const reader = new PacedReader(
      ReadableStream.from(byteChunks(4, 10)),
      { ...idle(100), minBytesPerSecond: 1_000_000, minRateWindowMs: 100 },
    );
    let count = 0;
    while (!(await reader.read()).done) {
      count++;
      await sleep(300); // the consumer (a slow sink) holds the loop
    }
    assert.equal(count, 4);
  });

  it("PacedReader fails a source slower than minBytesPerSecond over a window of reads, with onSlow's error", async () => {
    // 10 bytes every 20 ms is 500 B/s, under the 2,000 asked: the first
    // full window of waiting (200 ms) fails, long before the idle timeout.
    const cancelled = Promise.withResolvers<unknown>();
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        await sleep(20);
        controller.enqueue(new Uint8Array(10));
      },
      cancel: (reason) => cancelled.resolve(reason),
    }, { highWaterMark: 0 });
    const reader = new PacedReader(stream, {
      ...idle(5_000),
      minBytesPerSecond: 2_000,
      minRateWindowMs: 200,
      onSlow: () => new Slow("slow"),
    });
    const started = performance.now();
    let error: unknown;
    while (error === undefined) {
      error = await deadline(
        reader.read().then(() => undefined, (e) => e),
        5_000,
        "slow error",
      );
    }
    const waited = performance.now() - started;
    assert.ok(error instanceof Slow, `got ${String(error)}`);
    assert.ok(waited >= 190 && waited < 2_000, `failed after ${waited} ms`);
    assert.equal(await deadline(cancelled.promise, 5_000, "cancel"), error);
  });

  it("PacedReader fails one read that lasts a whole rate window with too few bytes, during the read", async () => {
    // One byte, then silence: the window (150 ms) ends inside the read,
    // before the idle timeout (5 s); the timer fails it there.
    const { stream, cancelled } = stallingSource([new Uint8Array(1)]);
    const reader = new PacedReader(stream, {
      ...idle(5_000),
      minBytesPerSecond: 1_000,
      minRateWindowMs: 150,
      onSlow: () => new Slow("slow"),
    });
    await reader.read();
    const error = await deadline(
      reader.read().then(() => undefined, (e) => e),
      2_000,
      "slow error",
    );
    assert.ok(error instanceof Slow, `got ${String(error)}`);
    await deadline(cancelled, 5_000, "cancel");
  });

  it("PacedReader starts a new rate window inside a long read when the last one had enough bytes", async () => {
    // 300 bytes at once, then 250 ms of silence, then the rest: the first
    // window (100 ms, 100 bytes needed) had enough; the windows that end
    // during the silence had none, so the read fails with onSlow.
    const { stream } = stallingSource([new Uint8Array(300)]);
    const reader = new PacedReader(stream, {
      minBytesPerSecond: 1_000,
      minRateWindowMs: 100,
      onSlow: () => new Slow("slow"),
    });
    await reader.read();
    const started = performance.now();
    const error = await deadline(
      reader.read().then(() => undefined, (e) => e),
      2_000,
      "slow error",
    );
    const waited = performance.now() - started;
    assert.ok(error instanceof Slow, `got ${String(error)}`);
    // Not at the end of the first window (100 ms: it had enough bytes) but
    // at the end of the next one, empty (200 ms).
    assert.ok(waited >= 190 && waited < 1_000, `failed after ${waited} ms`);
  });

  it("PacedReader passes a source at minBytesPerSecond or above, window after window", async () => {
    // 100 bytes every 10 ms is about 10 kB/s, twenty times the 500 asked
    // (a slow timer on a loaded machine leaves room), for five windows.
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        await sleep(10);
        if (++sent > 50) controller.close();
        else controller.enqueue(new Uint8Array(100));
      },
    }, { highWaterMark: 0 });
    const reader = new PacedReader(stream, {
      minBytesPerSecond: 500,
      minRateWindowMs: 100,
      onSlow: () => new Slow("slow"),
    });
    let count = 0;
    while (!(await reader.read()).done) count++;
    assert.equal(count, 50);
  });

  it("PacedReader.fail rejects the pending read with the error and cancels the source", async () => {
    const { stream, cancelled } = stallingSource([]);
    const reader = new PacedReader(stream, idle(5_000));
    const pending = reader.read().then(() => undefined, (e) => e);
    const error = new Error("stop");
    reader.fail(error);
    reader.fail(new Error("second")); // the first failure wins
    assert.equal(await deadline(pending, 2_000, "pending read"), error);
    assert.equal(await deadline(cancelled, 2_000, "cancel"), error);
  });

  it("PacedReader passes the source's own error, to this read and the next", async () => {
    const failure = new Error("client gone");
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        await sleep(10);
        controller.error(failure);
      },
    }, { highWaterMark: 0 });
    const reader = new PacedReader(stream, idle(60_000));
    assert.equal(await reader.read().catch((e) => e), failure);
    assert.equal(await reader.read().catch((e) => e), failure);
  });
});
