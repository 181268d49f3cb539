// The server's own failures in the HTTP flows, and who is told of them: a
// hasher, a sink opener or an onComplete that throws is a 500 told to the
// upload handler's onError (never a 400 with its words sent back); an
// onError that throws is logged, the answer sent all the same; a duplex
// handler's failure after its response started is logged once, not again
// by serve's default onError; and upload() rejects with what its
// onProgress threw, on every runtime.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  createDuplexHandler,
  createUploadHandler,
  duplexResponse,
  HttpError,
  receiveBody,
  upload,
  type UploadHandlerOptions,
} from "../mod.ts";
import type { Hasher } from "../lib/http/receive_body.ts";
import { deadline, runtime, withServer } from "./_helpers.ts";

const T = 10_000;
const SECRET = "postgres://admin:hunter2@db.internal/prod";

function post(body: BodyInit): Request {
  return new Request("http://localhost/upload", { method: "POST", body });
}

/** A form with one field and one file part. */
function form(): FormData {
  const data = new FormData();
  data.append("title", "a cat");
  data.append("file", new Blob([new Uint8Array(5000)]), "cat.bin");
  return data;
}

/** A hasher whose `update` (or `digest`) throws an error naming a secret. */
function brokenHasher(broken: "update" | "digest"): () => Hasher {
  return () => ({
    update() {
      if (broken === "update") throw new Error(`hasher bug ${SECRET}`);
    },
    digest() {
      if (broken === "digest") throw new Error(`hasher bug ${SECRET}`);
      return new Uint8Array(32);
    },
  });
}

/** A sink that records whether it was closed or aborted. */
function recordingSink() {
  const state = { closed: false, aborted: false };
  const sink = new WritableStream<Uint8Array>({
    close: () => void (state.closed = true),
    abort: () => void (state.aborted = true),
  });
  return { sink, state };
}

/**
 * Records what `console.error` prints; `when(test)` resolves once a call
 * whose arguments pass `test` is printed (or one already was).
 */
function recordErrors() {
  const logged: unknown[][] = [];
  const waiting: { test: (args: unknown[]) => boolean; done: () => void }[] =
    [];
  const original = console.error;
  console.error = (...args: unknown[]) => {
    logged.push(args);
    for (const wait of waiting) if (wait.test(args)) wait.done();
  };
  return {
    logged,
    when(test: (args: unknown[]) => boolean, what: string): Promise<void> {
      const found = new Promise<void>((done) => {
        if (logged.some(test)) done();
        else waiting.push({ test, done });
      });
      return deadline(found, T, what);
    },
    restore(): void {
      console.error = original;
    },
  };
}

/** Whether a console.error call's arguments mention `text`. */
const mentions = (text: string) => (args: unknown[]) =>
  args.some((arg) => String(arg).includes(text));

/** Asserts a 5xx told to onError: its status, message and cause. */
function assertTold(
  seen: unknown[],
  message: string,
  cause: (cause: unknown) => boolean,
) {
  assert.equal(seen.length, 1, `onError calls: ${seen.map(String)}`);
  const error = seen[0];
  assert.ok(error instanceof HttpError, String(error));
  assert.equal(error.status, 500);
  assert.equal(error.message, message);
  assert.ok(cause(error.cause), `cause: ${String(error.cause)}`);
}

/**
 * Sends `body` to an upload handler of `options` and asserts its 500: the
 * answer says `message` (and nothing of the cause), and onError is told of
 * it once, with a cause `cause` accepts.
 */
async function assertAnswered500(
  options: UploadHandlerOptions,
  body: BodyInit,
  message: string,
  cause: (cause: unknown) => boolean,
): Promise<void> {
  const seen: unknown[] = [];
  const handler = createUploadHandler({
    ...options,
    onError: (error) => void seen.push(error),
  });
  const response = await handler(post(body));
  assert.equal(response.status, 500);
  assert.equal(await response.text(), message);
  assertTold(seen, message, cause);
}

describe("a hasher that throws", () => {
  for (const broken of ["update", "digest"] as const) {
    it(`createUploadHandler answers a hasher whose ${broken} throws with 500, its message unsent, and tells onError`, async () => {
      const { sink, state } = recordingSink();
      await assertAnswered500(
        { sink: () => sink, hasher: brokenHasher(broken) },
        new Uint8Array(5000),
        "Cannot receive body: the hasher failed",
        (cause) => cause instanceof Error && cause.message.includes(SECRET),
      );
      assert.deepEqual(state, { closed: false, aborted: true });
    });
  }

  it("createUploadHandler's multipart mode answers a hasher that throws with 500 and tells onError", async () => {
    const seen: unknown[] = [];
    const handler = createUploadHandler({
      hasher: brokenHasher("update"),
      multipart: { sink: () => new WritableStream() },
      onError: (error) => void seen.push(error),
    });
    const response = await handler(post(form()));
    assert.equal(response.status, 500);
    assert.doesNotMatch(await response.text(), /hunter2/);
    assertTold(
      seen,
      "Cannot receive body: the hasher failed",
      (cause) => cause instanceof Error && cause.message.includes(SECRET),
    );
  });

  it("receiveBody rejects with HttpError 500 when the hasher factory throws, and aborts the sink", async () => {
    const bug = new TypeError("no such algorithm");
    const { sink, state } = recordingSink();
    await assert.rejects(
      receiveBody(post("hello"), sink, {
        hasher: () => {
          throw bug;
        },
      }),
      (error: HttpError) =>
        error instanceof HttpError && error.status === 500 &&
        error.message === "Cannot receive body: the hasher failed" &&
        error.cause === bug,
    );
    assert.equal(state.aborted, true);
  });
});

describe("createUploadHandler's onError is told of every 5xx", () => {
  it("createUploadHandler answers a sink opener that throws with 500 without its message and tells onError", async () => {
    for (const thrown of [new Error(`connect ${SECRET} failed`), SECRET]) {
      await assertAnswered500(
        {
          sink: () => {
            throw thrown;
          },
        },
        "hello",
        "Cannot store body: the sink failed to open",
        (cause) => cause === thrown,
      );
    }
  });

  it("createUploadHandler still answers a sink opener's HttpError with it, untold", async () => {
    const seen: unknown[] = [];
    const handler = createUploadHandler({
      sink: () => {
        throw new HttpError(403, "Cannot upload: forbidden");
      },
      onError: (error) => void seen.push(error),
    });
    const response = await handler(post("hello"));
    assert.equal(response.status, 403);
    assert.equal(await response.text(), "Cannot upload: forbidden");
    assert.deepEqual(seen, []);
  });

  it("createUploadHandler answers an onComplete that throws with 500 without its message and tells onError", async () => {
    const bug = new TypeError(`onComplete bug ${SECRET}`);
    await assertAnswered500(
      {
        sink: () => new WritableStream(),
        onComplete: () => {
          throw bug;
        },
      },
      "hello",
      "Cannot answer upload: onComplete failed",
      (cause) => cause === bug,
    );
  });

  it("createUploadHandler's multipart mode answers a part sink opener that throws with 500 and tells onError", async () => {
    const bug = new Error(`part opener ${SECRET}`);
    await assertAnswered500(
      {
        multipart: {
          sink: () => {
            throw bug;
          },
        },
      },
      form(),
      "Cannot store body: the sink of file part 1 failed to open",
      (cause) => cause === bug,
    );
  });

  it("createUploadHandler's multipart mode answers an onComplete that throws with 500 and tells onError", async () => {
    const bug = new Error(`mp onComplete ${SECRET}`);
    await assertAnswered500(
      {
        multipart: {
          sink: () => new WritableStream(),
          onComplete: () => Promise.reject(bug),
        },
      },
      form(),
      "Cannot answer upload: onComplete failed",
      (cause) => cause === bug,
    );
  });

  it("createUploadHandler logs what its onError throws, with the error it was given, and still answers 500", async () => {
    const errors = recordErrors();
    try {
      const handler = createUploadHandler({
        sink: () =>
          new WritableStream({
            write() {
              throw new Error("ENOSPC");
            },
          }),
        onError: () => {
          throw new Error("onError bug");
        },
      });
      const response = await handler(post("hello"));
      assert.equal(response.status, 500);
      assert.equal(await response.text(), "Cannot store body: the sink failed");
      assert.equal(errors.logged.length, 1);
      const [label, reason, , given] = errors.logged[0];
      assert.equal(label, "sluice: onError failed:");
      assert.equal((reason as Error).message, "onError bug");
      assert.equal(
        (given as HttpError).message,
        "Cannot store body: the sink failed",
      );
    } finally {
      errors.restore();
    }
  });
});

describe("a storage with no space left answers 507", () => {
  /** A file system's error, as node:fs throws it: a code, a path. */
  const noSpace = (code: "ENOSPC" | "EDQUOT") =>
    Object.assign(
      new Error(`${code}: no space left on device, write '${SECRET}'`),
      { code },
    );
  /** A sink that fails at `at` with `error`. */
  const failing = (at: "write" | "close", error: unknown) =>
    new WritableStream<Uint8Array>({
      write() {
        if (at === "write") throw error;
      },
      close() {
        if (at === "close") throw error;
      },
    });
  const cases: {
    label: string;
    options: (error: unknown) => UploadHandlerOptions;
    body: () => BodyInit;
    message: string;
  }[] = [
    {
      label: "a sink opener",
      options: (error) => ({
        sink: () => {
          throw error;
        },
      }),
      body: () => "hello",
      message: "Cannot store body: the sink failed to open",
    },
    {
      label: "a sink's write",
      options: (error) => ({ sink: () => failing("write", error) }),
      body: () => "hello",
      message: "Cannot store body: the sink failed",
    },
    {
      label: "a sink's close",
      options: (error) => ({ sink: () => failing("close", error) }),
      body: () => "hello",
      message: "Cannot store body: the sink failed to close",
    },
    {
      label: "a file part's write",
      options: (error) => ({
        multipart: { sink: () => failing("write", error) },
      }),
      body: form,
      message: "Cannot store body: the sink failed",
    },
    {
      label: "a file part's commit",
      options: (error) => ({
        multipart: { sink: () => failing("close", error) },
      }),
      body: form,
      message: "Cannot store body: the sink of file part 1 failed to close",
    },
  ];
  for (const { label, options, body, message } of cases) {
    it(`createUploadHandler answers ${label} failing with ENOSPC or EDQUOT (also as a cause) 507, without the cause's words, and tells onError`, async () => {
      for (
        const error of [
          noSpace("ENOSPC"),
          noSpace("EDQUOT"),
          new Error("the store failed", { cause: noSpace("ENOSPC") }),
        ]
      ) {
        const seen: unknown[] = [];
        const handler = createUploadHandler({
          ...options(error),
          onError: (e) => void seen.push(e),
        });
        const response = await handler(post(body()));
        assert.equal(response.status, 507);
        assert.equal(
          await response.text(),
          `${message}: no space left on the server`,
        );
        assert.equal(seen.length, 1);
        assert.ok(seen[0] instanceof HttpError && seen[0].status === 507);
        assert.equal(seen[0].cause, error);
      }
    });
  }

  it("createUploadHandler answers other file system errors 500, and a sink's own HttpError as it is", async () => {
    for (const code of ["EIO", "EACCES", undefined]) {
      const error = Object.assign(new Error("ENOSPC in words only"), { code });
      const response = await createUploadHandler({
        sink: () => failing("write", error),
        onError: () => {},
      })(post("hello"));
      assert.equal(response.status, 500);
      assert.equal(await response.text(), "Cannot store body: the sink failed");
    }
    const response = await createUploadHandler({
      sink: () =>
        failing("write", new HttpError(409, "Cannot append: moved on")),
    })(post("hello"));
    assert.equal(response.status, 409);
    assert.equal(await response.text(), "Cannot append: moved on");
  });

  it("receiveBody rejects with HttpError 507 when the sink runs out of space", async () => {
    const error = noSpace("ENOSPC");
    await assert.rejects(
      receiveBody(post("hello"), failing("write", error)),
      (e) =>
        e instanceof HttpError && e.status === 507 && e.cause === error &&
        e.message ===
          "Cannot store body: the sink failed: no space left on the server",
    );
  });
});

describe("duplexResponse's onError", () => {
  it("duplexResponse logs what its onError throws after the response started", async () => {
    const errors = recordErrors();
    try {
      const response = await deadline(
        duplexResponse(post("hi\n"), async (stream) => {
          await stream.write("started\n");
          throw new Error("handler broke");
        }, {
          onError: () => {
            throw new Error("onError bug");
          },
        }),
        T,
        "the response",
      );
      assert.equal(response.status, 200);
      await assert.rejects(deadline(response.text(), T, "the body"));
      await errors.when(mentions("onError bug"), "the onError's failure");
      assert.equal(errors.logged.length, 1);
      assert.equal(errors.logged[0][0], "sluice: onError failed:");
      assert.match(String(errors.logged[0][3]), /handler broke/);
    } finally {
      errors.restore();
    }
  });

  it("duplexResponse logs what its onError throws before the response started, and answers 500", async () => {
    const errors = recordErrors();
    try {
      const response = await deadline(
        duplexResponse(post("hi\n"), () => {
          throw new Error("handler broke");
        }, {
          onError: () => {
            throw new Error("onError bug");
          },
        }),
        T,
        "the response",
      );
      assert.equal(response.status, 500);
      assert.equal(await response.text(), "Internal Server Error");
      assert.equal(errors.logged.length, 1);
      assert.equal(errors.logged[0][0], "sluice: onError failed:");
    } finally {
      errors.restore();
    }
  });

  /**
   * Serves `handler` at /duplex beside /control, whose body fails with a
   * plain error; runs a failing duplex exchange, waits until `failed`
   * says it was reported, then a control exchange, and resolves with what was logged
   * once the control's failure was (under Deno; Bun reports no failed body
   * to serve's onError).
   */
  async function loggedAround(
    handler: (request: Request) => Promise<Response>,
    failed: (errors: ReturnType<typeof recordErrors>) => Promise<void>,
  ): Promise<unknown[][]> {
    const errors = recordErrors();
    const clients = new AbortController();
    try {
      await withServer((request) => {
        if (new URL(request.url).pathname === "/duplex") {
          return handler(request);
        }
        return new Response(
          new ReadableStream<Uint8Array>({
            start(controller) {
              controller.enqueue(new TextEncoder().encode("first"));
              controller.error(new Error("control body broke"));
            },
          }),
        );
      }, async (server) => {
        // Deno.serve may keep a failed body's connection open with the
        // client's read pending: the clients are aborted at the end.
        // The first chunk, or the failure that came before it (Bun's fetch
        // may reject: the connection reset before the headers were read).
        const read = async (path: string) => {
          try {
            const response = await fetch(new URL(path, server.url), {
              method: "POST",
              body: "hi\n",
              signal: clients.signal,
            });
            await response.body!.getReader().read();
          } catch {
            // The failure is the server's to report.
          }
        };
        await deadline(read("/duplex"), T, "the duplex response");
        await deadline(failed(errors), T, "the duplex handler's failure");
        await deadline(read("/control"), T, "the control response");
        if (runtime === "deno") {
          await errors.when(mentions("control body broke"), "the control");
        }
        clients.abort();
      });
      return errors.logged;
    } finally {
      clients.abort();
      errors.restore();
    }
  }

  it("createDuplexHandler's failure after the response started is logged once under serve, by its default onError, not again by serve's", async () => {
    const logged = await loggedAround(
      createDuplexHandler(async (stream) => {
        await stream.write("started\n");
        throw new Error("handler broke");
      }),
      (errors) => errors.when(mentions("handler broke"), "the duplex log"),
    );
    const lines = logged.map((args) => `${args[0]} ${String(args[1])}`);
    assert.deepEqual(
      lines.filter((line) => line.includes("handler broke")),
      ["sluice: duplex handler failed: Error: handler broke"],
    );
    if (runtime === "deno") {
      assert.deepEqual(lines.filter((line) => line.includes("control")), [
        "sluice: handler failed: Error: control body broke",
      ]);
    }
  });

  it("createDuplexHandler with a quiet onError: a failure after the response started is not logged by serve's default onError", async () => {
    const failed = Promise.withResolvers<void>();
    const seen: unknown[] = [];
    const logged = await loggedAround(
      createDuplexHandler(async (stream) => {
        await stream.write("started\n");
        throw "a string, thrown";
      }, {
        onError: (error) => {
          seen.push(error);
          failed.resolve();
        },
      }),
      () => failed.promise,
    );
    assert.deepEqual(seen, ["a string, thrown"]);
    assert.deepEqual(
      logged.filter((args) => !mentions("control")(args)).map(String),
      [],
    );
  });
});

describe("upload() with an onProgress that throws", () => {
  for (const kind of ["Blob", "ReadableStream"] as const) {
    it(`upload rejects with what onProgress threw, a ${kind} body (Deno's fetch rejected with "fetch failed")`, async () => {
      const bug = new Error("progress UI bug");
      await withServer(async (request) => {
        await request.arrayBuffer().catch(() => {});
        return new Response("ok");
      }, async (server) => {
        const data = new Blob([new Uint8Array(4 * 1024 * 1024)]);
        let calls = 0;
        await assert.rejects(
          deadline(
            upload(
              new URL("/x", server.url),
              kind === "Blob" ? data : data.stream(),
              {
                progressIntervalMs: 0,
                onProgress: () => {
                  calls++;
                  throw bug;
                },
              },
            ),
            T,
            "the upload",
          ),
          (error) => error === bug,
        );
        assert.equal(calls, 1);
      });
    });
  }
});

describe("upload() refused before its body is sent", () => {
  for (const progress of [false, true]) {
    it(
      `upload stops reading and sending the caller's stream once the server refuses it${
        progress ? ", and onProgress stops" : ""
      } (Deno's fetch read and sent all 512 MiB after resolving with the 413)`,
      async () => {
        let pulled = 0;
        let cancelled = false;
        const chunk = new Uint8Array(64 * 1024);
        const source = new ReadableStream<Uint8Array>({
          pull(controller) {
            pulled += chunk.byteLength;
            controller.enqueue(chunk);
            if (pulled >= 512 * 1024 * 1024) controller.close();
          },
          cancel() {
            cancelled = true;
          },
        });
        let reported = 0;
        await withServer(
          // Its body comes in parts, after the answer: it must stay
          // readable (a request body failed under Deno failed it too).
          () =>
            new Response(
              ReadableStream.from(
                (async function* () {
                  for (const part of ["Cannot accept body: ", "too large"]) {
                    await new Promise((resolve) => setTimeout(resolve, 50));
                    yield new TextEncoder().encode(part);
                  }
                })(),
              ),
              { status: 413 },
            ),
          async (server) => {
            const response = await deadline(
              upload(new URL("/x", server.url), source, {
                contentLength: 512 * 1024 * 1024,
                ...(progress
                  ? {
                    progressIntervalMs: 0,
                    onProgress: (sent) => reported = sent,
                  }
                  : {}),
              }),
              T,
              "the upload",
            );
            assert.equal(response.status, 413);
            // The answer's body is still there.
            assert.equal(
              await response.text(),
              "Cannot accept body: too large",
            );
            const atAnswer = pulled;
            const reportedAtAnswer = reported;
            await new Promise((resolve) => setTimeout(resolve, 500));
            // Its stream cancelled: at most what was in flight more.
            assert.ok(
              pulled - atAnswer <= 4 * 1024 * 1024,
              `${pulled - atAnswer} bytes read after the answer`,
            );
            assert.ok(pulled < 64 * 1024 * 1024, `${pulled} bytes read`);
            assert.ok(cancelled, "the stream was not cancelled");
            if (progress) {
              assert.ok(
                reported - reportedAtAnswer <= 4 * 1024 * 1024,
                `${
                  reported - reportedAtAnswer
                } bytes reported after the answer`,
              );
            }
          },
        );
      },
    );
  }
});
