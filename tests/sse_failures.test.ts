// Server-Sent Events that fail: a source that throws after the 200 head
// (sseResponse, createSseHandler), and fetchEventStream against connections
// that answer 200 and then end or drop before any event.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  createSseHandler,
  fetchEventStream,
  HttpError,
  type SseEvent,
  sseResponse,
} from "../lib/http/mod.ts";
import { deadline, withServer } from "./_helpers.ts";

const T = 20_000;

/** A feed's response, its body given. */
function eventStream(body: BodyInit | null): Response {
  return new Response(body, {
    headers: { "content-type": "text/event-stream" },
  });
}

/** A body that fails at its first read: a connection dropped after its head. */
function dropped(): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      controller.error(new TypeError("connection reset"));
    },
  });
}

/**
 * Reads a feed whose every connection answers `answer(n)` (n from 1), with
 * no delay between attempts, until it errors or `stopAt` connections
 * (stopped with "asked <stopAt> times"): its error and the connections made.
 */
async function readFeed(
  answer: (n: number) => BodyInit | null,
  maxRetries: number,
  stopAt = 21,
): Promise<{ error: unknown; calls: number }> {
  let calls = 0;
  const stop = new AbortController();
  const feed = (() => {
    if (++calls === stopAt) stop.abort(new Error(`asked ${stopAt} times`));
    return Promise.resolve(eventStream(answer(calls)));
  }) as typeof fetch;
  const error = await deadline(
    Array.fromAsync(
      fetchEventStream("http://feed/", {
        fetch: feed,
        signal: stop.signal,
        retryDelayMs: 0,
        maxRetryDelayMs: 1,
        maxRetries,
      }),
    ).then(() => undefined, (e) => e),
    T,
    "the feed's end",
  );
  return { error, calls };
}

describe("fetchEventStream and connections that bring no event", () => {
  it("fetchEventStream counts a connection that drops before an event or ends empty against maxRetries, not a quiet feed that ends, an event resetting the count and Last-Event-ID kept (it reconnected for ever)", async () => {
    const stop = new AbortController();
    const sent: (string | null)[] = [];
    const answers: (() => Response)[] = [
      () => eventStream("id: 1\ndata: one\n\n"),
      () => eventStream(dropped()),
      () => eventStream(""),
      () => eventStream("id: 2\ndata: two\n\n"),
      () => eventStream(dropped()),
      // A quiet feed that ends: no failure.
      () => eventStream(": only a keep-alive\n\n"),
      () => eventStream(dropped()),
      () => eventStream(dropped()),
    ];
    const feed = ((_input: unknown, init?: RequestInit) => {
      sent.push(new Headers(init?.headers).get("last-event-id"));
      // Bounded: without the count, this server is asked again for ever.
      if (sent.length > 20) stop.abort(new Error("reconnected for ever"));
      return Promise.resolve((answers.shift() ?? (() => eventStream("")))());
    }) as typeof fetch;
    const events: string[] = [];
    const error = await deadline(
      (async () => {
        for await (
          const message of fetchEventStream("http://feed/", {
            fetch: feed,
            signal: stop.signal,
            retryDelayMs: 0,
            maxRetryDelayMs: 1,
            maxRetries: 2,
          })
        ) events.push(message.data);
      })().then(() => undefined, (e) => e),
      T,
      "the feed's end",
    );
    assert.ok(error instanceof TypeError, String(error));
    assert.equal(
      error.message,
      "Cannot read event stream: 3 connection attempts failed in a row (maxRetries 2), the last: the response failed before any event: connection reset",
    );
    assert.equal((error.cause as Error).message, "connection reset");
    assert.deepEqual(events, ["one", "two"]);
    // Each reconnection resumes from the last event delivered.
    assert.deepEqual(sent, [null, "1", "1", "1", "2", "2", "2", "2"]);
  });

  it("fetchEventStream counts a 200 without a body, or one that ends at once, naming it", async () => {
    const { error, calls } = await readFeed(
      (n) => n % 2 === 0 ? "" : null,
      1,
    );
    assert.ok(error instanceof TypeError, String(error));
    assert.equal(
      error.message,
      "Cannot read event stream: 2 connection attempts failed in a row (maxRetries 1), the last: the response ended at once, empty",
    );
    assert.equal(calls, 2);
  });

  it("fetchEventStream counts a connection that ends with an unfinished event or line, or with what is no event stream (an error page), against maxRetries: each was asked again for ever", async () => {
    for (
      const body of [
        "data: partial",
        "data: no blank line after it\n",
        "event: x\ndata: one\r\n",
        "<html>Bad gateway</html>\n\n",
        '{"error":"upstream failed"}',
        ": a comment\ndata: unfinished",
      ]
    ) {
      const { error, calls } = await readFeed(() => body, 2);
      assert.ok(
        error instanceof TypeError,
        `${JSON.stringify(body)}: ${error}`,
      );
      assert.equal(
        error.message,
        "Cannot read event stream: 3 connection attempts failed in a row (maxRetries 2), the last: the response ended with an unfinished event or what is no event stream",
        JSON.stringify(body),
      );
      assert.equal(calls, 3, JSON.stringify(body));
    }
  });

  it("fetchEventStream does not count a quiet feed: comments (one left unfinished at its end included), and retry, id or event lines that begin no event (createSseHandler's { retry } first)", async () => {
    for (
      const body of [
        ": keep-alive\n\n",
        ": a\n: b\n\n",
        ": unfinished",
        "retry: 50\n\n: keep-alive\n\n",
        "id: 7\n\n",
        "event: ping\n\n",
        "\uFEFF\n\n",
      ]
    ) {
      const { error, calls } = await readFeed(() => body, 2, 6);
      // Not a failure: asked again until the caller stops it.
      assert.equal((error as Error).message, "asked 6 times", body);
      assert.equal(calls, 6, body);
    }
  });

  it("fetchEventStream errors at once with the refusal of a server whose generator refuses after the 200 head (it reconnected for ever under Deno)", async () => {
    let runs = 0;
    const stop = new AbortController();
    const handler = createSseHandler(async function* (request) {
      // Bounded: without the refusal read, the client comes back for ever.
      if (++runs > 20) stop.abort(new Error("reconnected for ever"));
      // A check at the top of a generator: it runs after the head.
      if (request.headers.get("authorization") !== "Bearer secret") {
        throw new HttpError(401, "Cannot stream: unauthorized");
      }
      yield { data: "secret" };
    }, { keepAliveMs: 0 });
    await withServer(handler, async (server) => {
      const error = await deadline(
        Array.fromAsync(
          fetchEventStream(server.url, {
            signal: stop.signal,
            retryDelayMs: 0,
            maxRetryDelayMs: 1,
          }),
        ).then(() => undefined, (e) => e),
        T,
        "the feed's end",
      );
      assert.ok(error instanceof TypeError, String(error));
      assert.equal(
        error.message,
        "Cannot read event stream: the server refused it after its head: 401 Cannot stream: unauthorized",
      );
      assert.equal(runs, 1);
    });
  });
});

describe("fetchEventStream and a feed's own comments", () => {
  it("reads no refusal in a feed's comment that starts with a status, nor in a refusal a keep-alive follows: it reconnects (': 404 items in queue' ended a feed)", async () => {
    for (
      const body of [
        "data: tick\n\n: 404 items in queue\n\n",
        "data: tick\n\n: refused 404 later\n\n:\n\n",
      ]
    ) {
      let calls = 0;
      const stop = new AbortController();
      const feed = (() => {
        if (++calls === 3) stop.abort(new Error("enough"));
        return Promise.resolve(eventStream(body));
      }) as typeof fetch;
      let events = 0;
      const error = await deadline(
        (async () => {
          for await (
            const _ of fetchEventStream("http://feed/", {
              fetch: feed,
              signal: stop.signal,
              retryDelayMs: 0,
              maxRetryDelayMs: 1,
              maxRetries: 1,
            })
          ) events++;
        })().then(() => undefined, (e) => e),
        T,
        "the feed",
      );
      assert.equal((error as Error).message, "enough", JSON.stringify(body));
      assert.ok(events >= 2, `${events} events`);
    }
  });
});

describe("sseResponse and createSseHandler with a source that fails after the head", () => {
  it("createSseHandler answers an HttpError thrown before the handler returns its generator with its response", async () => {
    const handler = createSseHandler((request) => {
      if (request.headers.get("authorization") !== "Bearer secret") {
        throw new HttpError(401, "Cannot stream: unauthorized");
      }
      return (async function* () {
        yield { data: "secret" };
      })();
    }, { keepAliveMs: 0 });
    const refused = await handler(new Request("http://x/feed"));
    assert.equal(refused.status, 401);
    assert.equal(await refused.text(), "Cannot stream: unauthorized");
    const served = await handler(
      new Request("http://x/feed", {
        headers: { authorization: "Bearer secret" },
      }),
    );
    assert.equal(served.status, 200);
    assert.equal(await served.text(), ":\n\ndata: secret\n\n");
  });

  it("createSseHandler ends the stream with a comment when its generator throws an HttpError 400-499 after the head (the body failed)", async () => {
    const handler = createSseHandler(async function* () {
      yield { id: "1", data: "one" };
      throw new HttpError(401, "Cannot stream: unauthorized");
    }, { keepAliveMs: 0 });
    const response = await handler(new Request("http://x/feed"));
    assert.equal(response.status, 200);
    assert.equal(
      await response.text(),
      ":\n\nid: 1\ndata: one\n\n: refused 401 Cannot stream: unauthorized\n\n",
    );
  });

  it("sseResponse ends the stream with a comment when a ReadableStream source errors with an HttpError 400-499, a message of several lines in several comments", async () => {
    const source = new ReadableStream<SseEvent>({
      pull(controller) {
        controller.error(new HttpError(403, "Cannot stream:\nforbidden"));
      },
    });
    const response = sseResponse(source, { keepAliveMs: 0 });
    assert.equal(
      await response.text(),
      ":\n\n: refused 403 Cannot stream:\n: forbidden\n\n",
    );
  });

  it("sseResponse still cuts the response on any other error, an HttpError of 500 included", async () => {
    for (
      const failure of [
        new Error("database down"),
        new HttpError(503, "Cannot stream: overloaded"),
      ]
    ) {
      const response = sseResponse(
        (async function* () {
          yield { data: "one" };
          throw failure;
        })(),
        { keepAliveMs: 0 },
      );
      await assert.rejects(response.text(), (error) => error === failure);
    }
  });

  it("createSseHandler's refusal after the head reaches a real client as a complete body, not a broken one (Deno: error reading a body; Bun: ECONNRESET)", async () => {
    const handler = createSseHandler(async function* (request) {
      if (request.headers.get("authorization") !== "Bearer secret") {
        throw new HttpError(401, "Cannot stream: unauthorized");
      }
      yield { data: "secret" };
    }, { keepAliveMs: 0 });
    await withServer(handler, async (server) => {
      const response = await deadline(fetch(server.url), T, "the head");
      assert.equal(response.status, 200);
      assert.equal(
        await deadline(response.text(), T, "the body"),
        ":\n\n: refused 401 Cannot stream: unauthorized\n\n",
      );
    });
  });
});

describe("fetchEventStream and an abort with events already parsed", () => {
  it("delivers no event of a burst after its signal aborted, and rejects with the reason (680-999 of 1,000 came first)", async () => {
    const burst = Array.from({ length: 1_000 }, (_, i) => `data: ${i}\n\n`)
      .join("");
    const stop = new AbortController();
    const reason = new Error("stop now");
    const reader = fetchEventStream("http://feed/", {
      fetch: (() => Promise.resolve(eventStream(burst))) as typeof fetch,
      signal: stop.signal,
    }).getReader();
    const first = await deadline(reader.read(), T, "the first event");
    assert.equal(first.value?.data, "0");
    stop.abort(reason);
    await assert.rejects(deadline(reader.read(), T, "the next read"), reason);
  });
});
