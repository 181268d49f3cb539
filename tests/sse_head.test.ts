// The head of an event stream: sseResponse and createSseHandler open the
// body with a comment, so that the `200` head goes out at once on every
// runtime. Bun 1.4.5 sends a response's head with its first body chunk: a
// feed whose first event came after 5 s got its head after 5 s, a quiet one
// at its first keep-alive (8 s by default then), and EventSource fired `open` only then.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  createSseHandler,
  fetchEventStream,
  SseDecoderStream,
  type SseEvent,
  sseResponse,
} from "../lib/http/mod.ts";
import { aborted, deadline, withServer } from "./_helpers.ts";

const dec = new TextDecoder();
const T = 20_000;

/** When a source that waits for the head gives up on it and sends anyway. */
const FIRST_EVENT_MS = 3_000;

/** Resolves with "late" after `ms`, or with "stopped" once `signal` aborts. */
function later(ms: number, signal: AbortSignal): Promise<"late" | "stopped"> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve("late"), ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve("stopped");
    }, { once: true });
  });
}

describe("the head of an event stream", () => {
  it("sseResponse's body gives its opening comment at once, while the source has no event yet", async () => {
    const release = Promise.withResolvers<void>();
    const response = sseResponse(
      (async function* (): AsyncGenerator<SseEvent> {
        await release.promise;
        yield { data: "first" };
      })(),
      { keepAliveMs: 0 },
    );
    const reader = response.body!.getReader();
    // In process nothing delays the read but the source: without the
    // comment it waited for the first event.
    const opening = await deadline(reader.read(), 2_000, "the first chunk");
    assert.equal(dec.decode(opening.value), ":\n\n");
    release.resolve();
    const first = await deadline(reader.read(), T, "the event");
    assert.equal(dec.decode(first.value), "data: first\n\n");
    assert.equal((await reader.read()).done, true);
  });

  it("createSseHandler on a real server sends its 200 head while the first event is 3 s away, with Accept-Encoding: gzip (Bun sent it with the event)", async () => {
    const head = Promise.withResolvers<"head">();
    let cause: string | undefined;
    await withServer(
      createSseHandler((_request, { signal }) =>
        (async function* () {
          // The first event waits for the client to see the head, or 3 s.
          const waited = new AbortController();
          cause = await Promise.race([
            head.promise,
            later(FIRST_EVENT_MS, AbortSignal.any([signal, waited.signal])),
          ]);
          waited.abort();
          yield { id: "1", data: "first" };
        })()
      ),
      async (server) => {
        const started = performance.now();
        const response = await deadline(
          fetch(server.url, {
            headers: { "accept-encoding": "gzip, deflate, br" },
          }),
          T,
          "the head",
        );
        const headMs = performance.now() - started;
        head.resolve("head");
        assert.equal(response.status, 200);
        assert.notEqual(response.headers.get("content-encoding"), "gzip");
        const messages = await deadline(
          Array.fromAsync(response.body!.pipeThrough(new SseDecoderStream())),
          T,
          "the event",
        );
        assert.equal(
          cause,
          "head",
          `the head came after ${
            Math.round(headMs)
          } ms, once the first event went out`,
        );
        assert.ok(headMs < FIRST_EVENT_MS / 3, `head after ${headMs} ms`);
        assert.deepEqual(messages, [{
          data: "first",
          event: "message",
          id: "1",
        }]);
      },
    );
  });

  it("a quiet createSseHandler feed with the default keep-alive (5 s) sends its head and opening comment at once (Bun sent them with the first keep-alive)", async () => {
    const finished = Promise.withResolvers<void>();
    await withServer(
      createSseHandler(async function* (_request, { signal }) {
        try {
          await aborted(signal);
          if (!signal.aborted) yield { data: "never sent" };
        } finally {
          finished.resolve();
        }
      }),
      async (server) => {
        const client = new AbortController();
        try {
          // Under the 5 s of the first keep-alive, well over what a head
          // takes.
          const response = await deadline(
            fetch(server.url, { signal: client.signal }),
            3_000,
            "the head",
          );
          assert.equal(response.status, 200);
          const reader = response.body!.getReader();
          const opening = await deadline(reader.read(), 3_000, "the comment");
          assert.equal(dec.decode(opening.value), ":\n\n");
        } finally {
          // Failed, the feed would hold the server's shutdown.
          client.abort();
        }
        await deadline(finished.promise, T, "the generator's end");
      },
    );
  });

  it("sseResponse on a real server answers HEAD with the head alone, at once", async () => {
    const stop = new AbortController();
    await withServer(
      () =>
        sseResponse(
          (async function* (): AsyncGenerator<SseEvent> {
            await later(FIRST_EVENT_MS, stop.signal);
            yield { data: "never sent" };
          })(),
        ),
      async (server) => {
        const response = await deadline(
          fetch(server.url, { method: "HEAD" }),
          FIRST_EVENT_MS / 3,
          "the head",
        );
        assert.equal(response.status, 200);
        assert.equal(
          response.headers.get("content-type"),
          "text/event-stream; charset=utf-8",
        );
        assert.equal(await response.text(), "");
      },
    ).finally(() => stop.abort());
  });

  it("fetchEventStream resumes a createSseHandler feed across its opening comments: Last-Event-ID is the last event's, also after a connection that brought the comment alone, which counts as an empty one (a failed attempt)", async () => {
    const log = ["a", "b", "c"];
    const seen: string[] = [];
    let connections = 0;
    await withServer(
      createSseHandler((_request, { lastEventId }) => {
        seen.push(lastEventId);
        if (++connections === 5) {
          throw { getResponse: () => new Response(null, { status: 204 }) };
        }
        const next = lastEventId === "" ? 0 : Number(lastEventId) + 1;
        return (async function* () {
          // The third connection is up to date: its comment alone, then
          // the end.
          if (connections !== 3 && next < log.length) {
            yield { id: String(next), data: log[next] };
          }
        })();
      }, { keepAliveMs: 0 }),
      async (server) => {
        const messages = await deadline(
          Array.fromAsync(
            fetchEventStream(server.url, {
              retryDelayMs: 1,
              maxRetryDelayMs: 10,
              maxRetries: 1,
            }),
          ),
          T,
          "the feed",
        );
        assert.deepEqual(
          messages.map((m) => `${m.id}:${m.data}`),
          ["0:a", "1:b", "2:c"],
        );
        assert.deepEqual(seen, ["", "0", "1", "1", "2"]);
      },
    );
  });

  it("fetchEventStream gives up, after maxRetries, on a createSseHandler feed that ends at once each time (its opening comment alone): it was asked again for ever", async () => {
    let connections = 0;
    await withServer(
      createSseHandler(() => {
        connections++;
        return (async function* () {})();
      }, { keepAliveMs: 0 }),
      async (server) => {
        const error = await deadline(
          Array.fromAsync(
            fetchEventStream(server.url, {
              retryDelayMs: 1,
              maxRetryDelayMs: 10,
              maxRetries: 2,
            }),
          ).then(() => undefined, (error: unknown) => error),
          T,
          "the feed",
        );
        assert.match(
          String(error),
          /3 connection attempts failed in a row \(maxRetries 2\), the last: the response ended at once, empty/,
        );
        assert.equal(connections, 3);
      },
    );
  });

  it("fetchEventStream takes a createSseHandler feed that waits 1.5 s and ends without an event (its opening comment alone) for a quiet feed, not a failed attempt", async () => {
    let connections = 0;
    await withServer(
      createSseHandler(() => {
        connections++;
        if (connections === 3) {
          throw { getResponse: () => new Response(null, { status: 204 }) };
        }
        return (async function* () {
          // Waits for news that does not come (less than a keep-alive).
          if (connections === 1) {
            await new Promise((resolve) => setTimeout(resolve, 1_500));
          } else yield { id: "1", data: "news" };
        })();
      }),
      async (server) => {
        const messages = await deadline(
          Array.fromAsync(
            fetchEventStream(server.url, {
              retryDelayMs: 1,
              maxRetryDelayMs: 10,
              maxRetries: 0,
            }),
          ),
          T,
          "the feed",
        );
        assert.deepEqual(messages.map((m) => m.data), ["news"]);
        assert.equal(connections, 3);
      },
    );
  });
});
