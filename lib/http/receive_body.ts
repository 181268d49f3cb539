import { ByteLimitStream } from "../streams/byte_limit_stream.ts";
import {
  DEFAULT_READ_AHEAD_BYTES,
  ReadAheadStream,
} from "../streams/read_ahead_stream.ts";
import {
  checkIdleTimeout,
  withIdleTimeout,
} from "../_internal/idle_timeout.ts";
import { declaredLength, expectedDigest } from "./_body_headers.ts";
import { HttpError } from "./http_error.ts";

/**
 * An incremental hash, such as SHA-256 from `node:crypto`'s `createHash`.
 * Web Crypto has no incremental digest, so the runtime glue supplies one
 * (`createSha256` in `@sluice/streams/fs`).
 */
export interface Hasher {
  /** Adds bytes to the hash. */
  update(data: Uint8Array): unknown;
  /** Finishes the hash and returns the digest. */
  digest(): Uint8Array;
}

/** The default {@linkcode ReceiveBodyOptions.maxBytes}: 1 GiB. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024 * 1024;

/**
 * The default {@linkcode ReceiveBodyOptions.idleTimeoutMs} (and that of
 * `echo` and `duplexResponse`): 30 seconds.
 */
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;

/** Options for {@linkcode receiveBody}. */
export interface ReceiveBodyOptions {
  /**
   * The largest body accepted, in bytes. A declared Content-Length over it is
   * refused before the body is read; a streamed body is cut off at the limit
   * and never more than `maxBytes` bytes reach the sink. Both give 413.
   *
   * @default {1073741824} (1 GiB)
   */
  maxBytes?: number;
  /**
   * Makes a SHA-256 hasher. When given, the digest of the received bytes is
   * computed while streaming, returned, and checked against the request's
   * `Content-Digest: sha-256=...` if it has one.
   */
  sha256?: () => Hasher;
  /**
   * Bytes read ahead of a slow sink. Keeps throughput up under Deno.serve
   * over HTTP/1.1 and bounds memory.
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
  /** Aborts the transfer; the sink is aborted and the promise rejects. */
  signal?: AbortSignal;
}

/** What {@linkcode receiveBody} received. */
export interface ReceivedBody {
  /** The number of bytes written to the sink. */
  bytes: number;
  /** The SHA-256 of those bytes, when a hasher was given. */
  sha256?: Uint8Array;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/**
 * Streams a request body into a sink, block by block with back-pressure, and
 * owns the sink: it is closed only when the whole body arrived intact, and
 * aborted on any failure, so an atomic file sink (see `createFileSink` in
 * `@sluice/streams/fs`) keeps a complete file or nothing.
 *
 * Checks, each an {@linkcode HttpError} with the status to answer:
 * - Content-Length malformed → 400; over `maxBytes` → 413 before reading.
 * - More than `maxBytes` bytes → 413, and no byte past the limit is written.
 * - A body shorter or longer than its Content-Length → 400.
 * - A malformed `Content-Digest`, or a SHA-256 that does not match → 400.
 * - The body fails (client abort or disconnect) → 400.
 * - No bytes arrive for `idleTimeoutMs` → 408.
 * - The sink fails (a disk error) → 500; its error is the `cause`.
 *
 * @param request The request whose body to receive.
 * @param sink Where the bytes go. It is closed on success, aborted on failure.
 * @param options Limits, hashing and cancellation.
 * @returns The number of bytes received and their SHA-256, if hashed.
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
 */
export async function receiveBody(
  request: Request,
  sink: WritableStream<Uint8Array>,
  options: ReceiveBodyOptions = {},
): Promise<ReceivedBody> {
  const {
    maxBytes = DEFAULT_MAX_BODY_BYTES,
    sha256,
    readAheadBytes = DEFAULT_READ_AHEAD_BYTES,
    idleTimeoutMs = DEFAULT_IDLE_TIMEOUT_MS,
    signal,
  } = options;
  let declared: number | undefined;
  let expected: Uint8Array | undefined;
  try {
    checkIdleTimeout("receive body", idleTimeoutMs);
    declared = declaredLength(request, maxBytes);
    expected = expectedDigest(request);
    if (expected && !sha256) {
      // Known before a byte is read: do not stream the body just to fail.
      throw new HttpError(
        500,
        "Cannot check Content-Digest: no sha256 hasher configured",
      );
    }
    signal?.throwIfAborted();
  } catch (error) {
    await sink.abort(error).catch(() => {});
    throw error;
  }

  const limit = new ByteLimitStream(declared ?? maxBytes, { name: "body" });
  const hasher = sha256?.();
  let stage: "body" | "sink" = "body";
  const tracked = new WritableStream<Uint8Array>({
    // Distinguishes a sink failure (500) from a body failure (400).
    async write(chunk) {
      stage = "sink";
      await writer.write(chunk);
      stage = "body";
    },
  }, new CountQueuingStrategy({ highWaterMark: 1 }));
  const writer = sink.getWriter();

  try {
    let source = withIdleTimeout(
      request.body ?? emptyStream(),
      idleTimeoutMs,
      () =>
        new HttpError(
          408,
          `Cannot receive body: no bytes arrived for ${idleTimeoutMs} ms (idleTimeoutMs)`,
        ),
    ).pipeThrough(limit);
    if (hasher) {
      source = source.pipeThrough(
        new TransformStream({
          transform(chunk, controller) {
            hasher.update(chunk);
            controller.enqueue(chunk);
          },
        }),
      );
    }
    await source
      .pipeThrough(new ReadAheadStream({ highWaterMark: readAheadBytes }))
      .pipeTo(tracked, { signal, preventClose: true, preventAbort: true });
  } catch (cause) {
    const error = classify(cause, stage, limit, declared, maxBytes, signal);
    await writer.abort(error).catch(() => {});
    throw error;
  }

  const bytes = limit.bytes;
  const digest = hasher?.digest();
  let failure: HttpError | undefined;
  if (declared !== undefined && bytes !== declared) {
    failure = new HttpError(
      400,
      `Cannot accept body: received ${bytes} bytes but Content-Length is ${declared}`,
    );
  } else if (expected && digest && !equalBytes(expected, digest)) {
    failure = new HttpError(
      400,
      "Cannot accept body: SHA-256 does not match Content-Digest",
    );
  }
  if (failure) {
    await writer.abort(failure).catch(() => {});
    throw failure;
  }
  try {
    await writer.close();
  } catch (cause) {
    throw new HttpError(500, "Cannot store body: the sink failed to close", {
      cause,
    });
  }
  return digest ? { bytes, sha256: digest } : { bytes };
}

function classify(
  cause: unknown,
  stage: "body" | "sink",
  limit: ByteLimitStream,
  declared: number | undefined,
  maxBytes: number,
  signal: AbortSignal | undefined,
): HttpError {
  if (cause instanceof HttpError) return cause;
  if (signal?.aborted && cause === signal.reason) {
    return new HttpError(503, "Cannot receive body: aborted", { cause });
  }
  if (limit.exceeded) {
    if (declared !== undefined) {
      return new HttpError(
        400,
        `Cannot accept body: longer than its Content-Length ${declared}`,
        { cause },
      );
    }
    return new HttpError(
      413,
      `Cannot accept body: size exceeds maxBytes ${maxBytes}`,
      { cause },
    );
  }
  if (stage === "sink") {
    return new HttpError(500, "Cannot store body: the sink failed", { cause });
  }
  return new HttpError(
    400,
    `Cannot receive body: ${(cause as Error)?.message ?? String(cause)}`,
    { cause },
  );
}

function emptyStream(): ReadableStream<Uint8Array> {
  return new ReadableStream({ start: (c) => c.close() });
}
