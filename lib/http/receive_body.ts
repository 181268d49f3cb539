import { messageOf } from "../_internal/message_of.ts";
import { settledWithin } from "../_internal/settled_within.ts";
import {
  checkArgument,
  checkBodyUnused,
  checkDigestBytes,
  checkFunction,
  checkSignal,
} from "../_internal/arguments.ts";
import { emptyStream, heldBytes } from "../_internal/bytes.ts";
import { checkIdleTimeout, PacedReader } from "../_internal/idle_timeout.ts";
import { checkMax, checkTimerMs } from "../_internal/limits.ts";
import { contentDigests, declaredLength } from "./_body_headers.ts";
import { bodyDeadline, bodyPace, checkMinRate } from "./_min_rate.ts";
import { HttpError } from "./http_error.ts";
import { storeFailed } from "./_store_failure.ts";
import { bodyTooLarge } from "./_client_error.ts";
import { refuseContentCoding } from "./_compression.ts";
import { IDLE_TIMEOUT_MS, MAX_BODY_BYTES } from "./_defaults.ts";

/**
 * An incremental hash, such as `node:crypto`'s `createHash("sha256")`. Web
 * Crypto has no incremental digest, so the runtime glue supplies one
 * (`createHasher` in `@sluice/streams/fs` and `@sluice/streams/workers`).
 */
export interface Hasher {
  /** Adds bytes to the hash. */
  update(data: Uint8Array): unknown;
  /** Finishes the hash and returns the digest. */
  digest(): Uint8Array;
}

/** A digest algorithm the receiver can compute and check (RFC 9530 names). */
export type DigestAlgorithm = "sha-256" | "sha-512";

/**
 * Makes a {@linkcode Hasher} for an algorithm, or returns `undefined` for one
 * it does not support. `createHasher` from `@sluice/streams/fs` (or
 * `@sluice/streams/workers`) supports both.
 */
export type HasherFactory = (
  algorithm: DigestAlgorithm,
) => Hasher | undefined;

const READ_AHEAD_BYTES = 4 * 1024 * 1024;
const MIN_BYTES_PER_SECOND = 1024;
const MIN_RATE_WINDOW_MS = 30_000;

/** The limits of {@linkcode ReceiveBodyOptions}, defaults filled in. */
interface ReceiveLimits {
  maxBytes: number;
  readAheadBytes: number;
  idleTimeoutMs: number;
  minBytesPerSecond: number;
  minRateWindowMs: number;
  timeoutMs: number;
}

/**
 * The limits of `options`, defaults filled in and checked (a RangeError
 * naming the first out of range): for receiveBody, and for the handlers
 * that take its options, when they are created. A `maxBytes` that is no
 * number (`Number(env.MAX)` of an unset variable) once turned the limit
 * off.
 */
export function checkReceiveOptions(
  what: string,
  options: ReceiveBodyOptions,
): ReceiveLimits {
  const {
    maxBytes = MAX_BODY_BYTES,
    readAheadBytes = READ_AHEAD_BYTES,
    idleTimeoutMs = IDLE_TIMEOUT_MS,
    minBytesPerSecond = MIN_BYTES_PER_SECOND,
    minRateWindowMs = MIN_RATE_WINDOW_MS,
    timeoutMs = 0,
  } = options;
  checkMax(what, "maxBytes", maxBytes);
  checkMax(what, "readAheadBytes", readAheadBytes);
  checkIdleTimeout(what, idleTimeoutMs);
  checkMinRate(what, minBytesPerSecond, minRateWindowMs);
  checkTimerMs(what, "timeoutMs", timeoutMs);
  return {
    maxBytes,
    readAheadBytes,
    idleTimeoutMs,
    minBytesPerSecond,
    minRateWindowMs,
    timeoutMs,
  };
}

/** Options for {@linkcode receiveBody}. */
export interface ReceiveBodyOptions {
  /**
   * The largest body accepted, in bytes. A declared length over it is
   * refused before the body is read; a streamed body is cut off at the limit
   * and never more than `maxBytes` bytes reach the sink. Both give 413.
   *
   * @default {1073741824} (1 GiB)
   */
  maxBytes?: number;
  /**
   * Makes the hashers. When given, the SHA-256 of the received bytes is
   * computed while streaming and returned, and a `Content-Digest` in
   * `sha-256` or `sha-512` (RFC 9530) is checked: a mismatch gives 400 and
   * nothing is kept. A Content-Digest that names only algorithms the
   * receiver cannot check (`md5`, unknown names) is ignored, as RFC 9530
   * lets a recipient do: the body is accepted unverified and
   * {@linkcode ReceivedBody.unverifiedDigests} lists those names. One in
   * `sha-256` or `sha-512` without a hasher able to check it is refused with
   * 500 (a server configuration error) before a byte is read.
   *
   * @default {undefined} (no hashing)
   */
  hasher?: HasherFactory;
  /**
   * Memory, in bytes, that the body's chunks read ahead of a slow sink may
   * keep alive, each counting its whole buffer. Keeps throughput up under
   * Deno.serve over HTTP/1.1 and bounds memory. `0` reads one chunk at a
   * time.
   *
   * @default {4194304} (4 MiB)
   */
  readAheadBytes?: number;
  /**
   * The longest wait for the next bytes of the body, in milliseconds: a
   * client that sends nothing for this long (a stalled or malicious upload)
   * is refused with 408 and the sink aborted, so it cannot pin the handler
   * and its sink forever. Time the sink takes does not count. `0` disables.
   *
   * @default {30000}
   */
  idleTimeoutMs?: number;
  /**
   * The slowest accepted upload, in bytes per second, measured over each
   * `minRateWindowMs` of time spent waiting for the client (time the sink
   * takes does not count; the first window is the grace period). A client
   * that drips bytes just often enough to beat `idleTimeoutMs` is refused
   * with 408 and the sink aborted. The default, 1 KiB/s (8 kbit/s), is below
   * the uplink of any working mobile data connection (GPRS gives 20-40
   * kbit/s), so it never cuts off a genuine slow upload, yet costs a
   * drip-feeding client real bandwidth per connection it holds. `0`
   * disables.
   *
   * @default {1024}
   */
  minBytesPerSecond?: number;
  /**
   * The window over which `minBytesPerSecond` is measured, in milliseconds
   * of waiting for the client.
   *
   * @default {30000}
   */
  minRateWindowMs?: number;
  /**
   * A deadline for the whole body, in milliseconds from the call: past it
   * the transfer is refused with 408 and the sink aborted. Off by default:
   * any fixed deadline would cut off a large upload on a slow link, and
   * `minBytesPerSecond` already bounds a drip-feeding client; set it when
   * you know how long your largest body may take. `0` disables.
   *
   * @default {0}
   */
  timeoutMs?: number;
  /**
   * The body's expected length, when `input` is a stream (a request gives
   * its `Content-Length`). A body shorter or longer is refused with 400.
   */
  contentLength?: number;
  /**
   * The body's expected SHA-256, when `input` is a stream (a request gives
   * its `Content-Digest`). Checked like a `Content-Digest: sha-256=...`.
   */
  sha256?: Uint8Array;
  /**
   * Headers that came with a stream `input` (such as a multipart part's):
   * their `Content-Length` and `Content-Digest` are checked as a request's
   * would be. Ignored when `input` is a request.
   */
  headers?: HeadersInit;
  /** Aborts the transfer; the sink is aborted and the promise rejects. */
  signal?: AbortSignal;
}

/** What {@linkcode receiveBody} received. */
export interface ReceivedBody {
  /** The number of bytes written to the sink. */
  bytes: number;
  /** The SHA-256 of those bytes, when a hasher was given. */
  sha256?: Uint8Array;
  /** The SHA-512 of those bytes, when a `Content-Digest` asked for one. */
  sha512?: Uint8Array;
  /** The algorithms whose `Content-Digest` was checked and matched. */
  verified?: DigestAlgorithm[];
  /**
   * The algorithms of a `Content-Digest` that named none the receiver can
   * check: the body was accepted without an integrity check.
   */
  unverifiedDigests?: string[];
}

const ALGORITHMS: readonly DigestAlgorithm[] = ["sha-256", "sha-512"];

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/**
 * Whether `input` is a request: a `Request`, or an object standing in for
 * one, as a framework may hand a handler (@whatwg-node/server on Node gives
 * its own `PonyfillRequest`, no `instanceof Request`): `headers.get` is a
 * function, `method` and `url` strings and the body `null` or a stream (it
 * has `getReader`); a `Response` is none.
 */
export function isRequestLike(input: unknown): input is Request {
  if (input instanceof Request) return true;
  if (input instanceof Response) return false;
  const request = input as Partial<Request> | null | undefined;
  if (
    typeof request?.headers?.get !== "function" ||
    typeof request.method !== "string" || typeof request.url !== "string"
  ) return false;
  const body = request.body;
  return body === null ||
    typeof (body as Partial<ReadableStream> | undefined)?.getReader ===
      "function";
}

interface Plan {
  declared: number | undefined;
  /** Expected digests of the algorithms that will be checked. */
  expected: Map<DigestAlgorithm, Uint8Array>;
  hashers: Map<DigestAlgorithm, Hasher>;
  unverified: string[] | undefined;
}

/**
 * Reads the headers (or the options standing in for them) and decides what to
 * check, before a byte is read.
 */
function plan(
  input: Request | ReadableStream<Uint8Array>,
  options: ReceiveBodyOptions,
  maxBytes: number,
): Plan {
  const headers = isRequestLike(input)
    ? input.headers
    : new Headers(options.headers);
  refuseContentCoding(headers.get("content-encoding"), "receive body");
  let declared = declaredLength(headers, maxBytes);
  if (options.contentLength !== undefined) {
    const length = options.contentLength;
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new RangeError(
        `Cannot receive body: contentLength must be a non-negative integer, got ${length}`,
      );
    }
    if (length > maxBytes) {
      throw new HttpError(
        413,
        `Cannot accept body: length ${length} exceeds maxBytes ${maxBytes}`,
      );
    }
    declared = length;
  }
  const digests = contentDigests(headers.get("content-digest"));
  const promised = new Map(digests);
  if (options.sha256) promised.set("sha-256", options.sha256);
  const hashers = new Map<DigestAlgorithm, Hasher>();
  const expected = new Map<DigestAlgorithm, Uint8Array>();
  const make = (algorithm: DigestAlgorithm) =>
    options.hasher && hashing(() => options.hasher!(algorithm));
  const sha256 = make("sha-256");
  if (sha256) hashers.set("sha-256", sha256);
  const supported = ALGORITHMS.filter((a) => promised.has(a));
  for (const algorithm of supported) {
    const hasher = hashers.get(algorithm) ?? make(algorithm);
    if (!hasher) continue;
    hashers.set(algorithm, hasher);
    expected.set(algorithm, promised.get(algorithm)!);
  }
  if (supported.length > 0 && expected.size === 0) {
    // Known before a byte is read: do not stream the body just to fail.
    throw new HttpError(
      500,
      `Cannot check Content-Digest: no ${
        supported.map((a) => a.replace("-", "")).join(" or ")
      } hasher configured (hasher option)`,
    );
  }
  const unverified = promised.size > 0 && supported.length === 0
    ? [...promised.keys()]
    : undefined;
  return { declared, expected, hashers, unverified };
}

/**
 * Streams a body into a sink, block by block with back-pressure, and owns the
 * sink: it is closed only when the whole body arrived intact, and aborted on
 * any failure, so an atomic file sink (see `createFileSink` in
 * `@sluice/streams/fs`) keeps a complete file or nothing. As the Streams
 * standard has it, the abort waits for a write (or the close) the sink has
 * in progress: a sink whose write never settles (a stalled store) should
 * watch its controller's `signal`, which is aborted at once. `timeoutMs`
 * and an aborted `signal` end the call while a write or the close is in
 * progress too, and a failed call waits for the sink's abort at most 10 s,
 * then rejects all the same, the abort left to finish on its own.
 *
 * The input is a request, or a bare stream (a multipart part, one chunk of a
 * resumable upload) with its expected length and digest in the options; the
 * limits, timeouts and digest checks are the same. An object standing in
 * for a request, as some frameworks pass (`headers.get` a function, `method`
 * and `url` strings, a body that is `null` or a stream), is taken as one.
 *
 * Checks, each an {@linkcode HttpError} with the status to answer:
 * - Content-Length malformed → 400; over `maxBytes` → 413 before reading.
 * - More than `maxBytes` bytes → 413, and no byte past the limit is written.
 * - A body shorter or longer than its Content-Length → 400.
 * - A malformed `Content-Digest`, or a SHA-256 or SHA-512 that does not
 *   match → 400 (see `hasher` for algorithms it cannot check).
 * - The body fails (client abort or disconnect) → 400; failed by a
 *   framework's limit on it (srvx's `maxRequestBodySize`, h3's
 *   `bodyLimit()`: an error with `status` 413) → 413, in its words.
 * - No bytes arrive for `idleTimeoutMs`, fewer than `minBytesPerSecond`, or
 *   not done within `timeoutMs` → 408.
 * - The sink fails (a disk error) → 500; its error is the `cause`; out of
 *   space (an error, or its cause, with `code` `ENOSPC` or `EDQUOT`) → 507
 *   Insufficient Storage. A sink that fails with an `HttpError` of its own
 *   (in a write or at its close) answers with it.
 * - The hasher fails (its factory, `update` or `digest` throws) → 500; its
 *   error is the `cause`, its message not in the answer.
 *
 * @param input The request, or the stream, whose body to receive.
 * @param sink Where the bytes go. It is closed on success, aborted on failure.
 * @param options Limits, hashing and cancellation.
 * @returns The number of bytes received and their digests, if hashed.
 * @throws {HttpError} When the body is refused or the transfer fails.
 *
 * @example Receive a body into any WritableStream
 * ```ts
 * import { receiveBody } from "@sluice/streams/http";
 *
 * const request = new Request("http://localhost/", {
 *   method: "POST",
 *   body: "hello",
 * });
 * const chunks: Uint8Array[] = [];
 * const sink = new WritableStream<Uint8Array>({ write: (c) => void chunks.push(c) });
 * const { bytes } = await receiveBody(request, sink, { maxBytes: 1024 });
 * console.log(bytes); // 5
 * ```
 *
 * @example Receive a stream with its expected length
 * ```ts
 * import { receiveBody } from "@sluice/streams/http";
 *
 * const part = ReadableStream.from([new TextEncoder().encode("hello")]);
 * const { bytes } = await receiveBody(part, new WritableStream(), {
 *   contentLength: 5,
 * });
 * console.log(bytes); // 5
 * ```
 */
export async function receiveBody(
  input: Request | ReadableStream<Uint8Array>,
  sink: WritableStream<Uint8Array>,
  options: ReceiveBodyOptions = {},
): Promise<ReceivedBody> {
  const { signal } = options;
  checkArgument(
    typeof (sink as Partial<WritableStream> | null)?.getWriter === "function",
    "receive body",
    "the sink",
    "a WritableStream",
    sink,
  );
  let planned: Plan;
  let source: PacedReader | undefined;
  let writer: WritableStreamDefaultWriter<Uint8Array>;
  let limits: ReceiveLimits;
  try {
    // A request-like object first: a stream has no headers.
    const request = isRequestLike(input);
    checkArgument(
      request ||
        typeof (input as Partial<ReadableStream> | null)?.getReader ===
          "function",
      "receive body",
      "the input",
      "a Request or a ReadableStream",
      input,
    );
    if (request) checkBodyUnused("receive body", input);
    checkSignal("receive body", signal);
    checkDigestBytes("receive body", "sha256", options.sha256);
    checkFunction("receive body", "hasher", options.hasher);
    limits = checkReceiveOptions("receive body", options);
    planned = plan(input, options, limits.maxBytes);
    signal?.throwIfAborted();
    // One read loop from the body into the sink, no stream hop between
    // them: a pipe per hop cost a small upload several times what a read
    // loop costs (docs/performance.md, "One read loop for an upload"). A
    // body or a sink already locked (used) throws its TypeError here.
    source = new PacedReader(
      request ? input.body ?? emptyStream() : input,
      bodyPace(limits),
    );
    writer = sink.getWriter();
  } catch (error) {
    source?.fail(error);
    await sink.abort(error).catch(() => {});
    throw error;
  }
  const { declared, expected, hashers, unverified } = planned;
  const { maxBytes, readAheadBytes, timeoutMs } = limits;

  const deadline = bodyDeadline(timeoutMs);
  const signals = signal ? [signal, deadline.signal] : [deadline.signal];
  const cap = declared ?? maxBytes;
  const all = [...hashers.values()];
  let bytes = 0;
  // The loop reads ahead of a slow sink while the chunks written and not
  // yet taken keep at most `readAheadBytes` alive (one chunk at a time for
  // 0); time spent waiting for the sink is not held against the client's
  // pace (only time in `source.read()` counts).
  let stopped: { error: unknown; sink: boolean } | undefined;
  let held = 0; // bytes of the chunks written and not yet taken by the sink
  // The loop's wait for the sink to take a chunk (or for a failure); the
  // loop checks its condition again after each wake.
  let wake: (() => void) | undefined;
  const fail = (error: unknown, bySink = false) => {
    if (stopped) return;
    stopped = { error, sink: bySink };
    source.fail(error);
    wake?.();
  };
  const aborted = function (this: AbortSignal) {
    fail(this.reason);
  };
  for (const s of signals) s.addEventListener("abort", aborted);
  const taken = () => new Promise<void>((resolve) => (wake = resolve));
  try {
    while (true) {
      const next = await source.read();
      if (next.done) break;
      const chunk = next.value;
      const total = bytes + chunk.byteLength;
      if (total > cap) {
        // No byte past the limit reaches the sink; those up to it do, as
        // from a body cut at the limit, wherever its chunks split (a
        // resumable upload keeps them; other sinks are aborted below). The
        // body is too long whatever the sink then does: 413 all the same,
        // unless the timeout or the signal ends the wait for it first (the
        // sink is then aborted, which a sink that hangs needs to let go).
        if (cap > bytes) {
          const prefix = chunk.subarray(0, cap - bytes);
          bytes = cap;
          let written = false;
          const settled = () => {
            written = true;
            wake?.();
          };
          writer.write(prefix).then(settled, settled);
          while (!written && !stopped) await taken();
        }
        throw tooLong(declared, maxBytes);
      }
      bytes = total;
      try {
        for (const hasher of all) hasher.update(chunk);
      } catch (cause) {
        throw hasherFailed(cause);
      }
      const size = heldBytes(chunk);
      held += size;
      writer.write(chunk).then(() => {
        held -= size;
        wake?.();
      }, (error) => fail(error, true));
      while (held > readAheadBytes && !stopped) await taken();
      if (stopped) throw stopped.error;
    }
    while (held > 0 && !stopped) await taken();
    if (stopped) throw (stopped as { error: unknown }).error;
  } catch (cause) {
    deadline.clear();
    for (const s of signals) s.removeEventListener("abort", aborted);
    const error = classify(
      stopped?.error ?? cause,
      stopped?.sink ?? false,
      signal,
    );
    // The body is cancelled with the error (a no-op when it failed itself).
    source.fail(error);
    await abortSink(writer, error);
    throw error;
  }

  const digests = new Map<DigestAlgorithm, Uint8Array>();
  let failure: HttpError | undefined;
  try {
    for (const [algorithm, hasher] of hashers) {
      digests.set(algorithm, hashing(() => hasher.digest()));
    }
  } catch (error) {
    failure = error as HttpError; // the hasher's 500: the answer
  }
  if (failure === undefined && declared !== undefined && bytes !== declared) {
    failure = new HttpError(
      400,
      `Cannot accept body: received ${bytes} bytes but Content-Length is ${declared}`,
    );
  } else if (failure === undefined) {
    for (const [algorithm, digest] of expected) {
      if (!equalBytes(digest, digests.get(algorithm)!)) {
        failure = new HttpError(
          400,
          `Cannot accept body: ${algorithm.toUpperCase()} does not match Content-Digest`,
        );
        break;
      }
    }
  }
  if (failure) {
    deadline.clear();
    for (const s of signals) s.removeEventListener("abort", aborted);
    await abortSink(writer, failure);
    throw failure;
  }
  // The signal and the deadline still end the wait for a sink that does
  // not finish closing (a store whose last write never lands).
  let closed: { error: unknown } | undefined;
  // Read through a function: the callbacks below set it across awaits.
  const closing = () => closed;
  writer.close().then(() => {
    closed = { error: undefined };
    wake?.();
  }, (error) => {
    closed = { error: error ?? new Error("the sink failed to close") };
    wake?.();
  });
  while (!closed && !stopped) await taken();
  deadline.clear();
  for (const s of signals) s.removeEventListener("abort", aborted);
  if (!closed) {
    const error = classify(stopped!.error, false, signal);
    await abortSink(writer, error);
    // The abort waits for the close in progress: one that committed all
    // the same (a file sink's rename does not watch the signal) is the
    // outcome, the body stored, never reported as failed.
    if (closing()?.error !== undefined || !closing()) throw error;
  }
  const outcome = closing()!;
  if (outcome.error !== undefined) {
    const cause = outcome.error;
    // A sink's own HttpError is its answer (a 409 from a store that lost
    // the chunk to another append), as for its writes.
    throw storeFailed("Cannot store body: the sink failed to close", cause);
  }
  const result: ReceivedBody = { bytes };
  const sha256 = digests.get("sha-256");
  const sha512 = digests.get("sha-512");
  if (sha256) result.sha256 = sha256;
  if (sha512) result.sha512 = sha512;
  if (expected.size > 0) result.verified = [...expected.keys()];
  if (unverified) result.unverifiedDigests = unverified;
  return result;
}

/**
 * How long a failed transfer waits for its sink's abort: a sink that keeps
 * a write (or its close) in flight defers the abort until that settles,
 * and one that never settles (a store that stopped answering) must not
 * hold the caller, and what it holds (a resumable upload's lock), forever.
 */
export const SINK_ABORT_WAIT_MS = 10_000;

/**
 * Aborts the sink and waits for it (a resumable store records the offset
 * its bytes reached), for at most SINK_ABORT_WAIT_MS.
 */
async function abortSink(
  writer: WritableStreamDefaultWriter<Uint8Array>,
  reason: unknown,
): Promise<void> {
  await settledWithin(writer.abort(reason), SINK_ABORT_WAIT_MS);
}

function tooLong(declared: number | undefined, maxBytes: number): HttpError {
  return declared !== undefined
    ? new HttpError(
      400,
      `Cannot accept body: longer than its Content-Length ${declared}`,
    )
    : new HttpError(
      413,
      `Cannot accept body: size exceeds maxBytes ${maxBytes}`,
    );
}

/**
 * Runs a call of the hasher (its factory, `update`, `digest`): what it
 * throws is the server's failure, a 500 that keeps it as the cause, never
 * the client's 400 with the hasher's words sent back.
 */
function hashing<T>(call: () => T): T {
  try {
    return call();
  } catch (cause) {
    throw hasherFailed(cause);
  }
}

function hasherFailed(cause: unknown): HttpError {
  return new HttpError(500, "Cannot receive body: the hasher failed", {
    cause,
  });
}

function classify(
  cause: unknown,
  sinkFailed: boolean,
  signal: AbortSignal | undefined,
): HttpError {
  if (cause instanceof HttpError) return cause;
  if (signal?.aborted && cause === signal.reason) {
    return new HttpError(503, "Cannot receive body: aborted", { cause });
  }
  if (sinkFailed) {
    return storeFailed("Cannot store body: the sink failed", cause);
  }
  // A framework's limit on the body (srvx's maxRequestBodySize, h3's
  // bodyLimit) failed it: 413 in its words, not a failed read's 400.
  const tooLarge = bodyTooLarge("receive body", cause);
  if (tooLarge) return tooLarge;
  return new HttpError(
    400,
    `Cannot receive body: ${messageOf(cause)}`,
    { cause },
  );
}
