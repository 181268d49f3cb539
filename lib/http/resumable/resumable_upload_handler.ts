import { refuseContentCoding } from "../_compression.ts";
import { pathPrefix, requestPath } from "../_url.ts";
import { emptyStream } from "../../_internal/bytes.ts";
import { checkMax, checkMs } from "../../_internal/limits.ts";
import { decodeBase64, encodeBase64 } from "../../_internal/base64.ts";
import { formatDigestHeader } from "../digest_header.ts";
import { HttpError } from "../http_error.ts";
import { storeFailed } from "../_store_failure.ts";
import {
  checkReceiveOptions,
  type Hasher,
  receiveBody,
  type ReceiveBodyOptions,
} from "../receive_body.ts";
import { checkBodyUnused, checkFunction } from "../../_internal/arguments.ts";
import { deferred } from "../../_internal/deferred.ts";
import { contentDigests } from "../_body_headers.ts";
import { MAX_BODY_BYTES } from "../_defaults.ts";
import type { ResumableStore, ResumableUpload } from "./resumable_store.ts";
import { createSha1 } from "./_sha1.ts";
import { callOnError } from "../../_internal/reported.ts";
import { bodyTooLargeMessage } from "../../_internal/body_too_large.ts";
import {
  isUploadId,
  newUploadId,
  OFFSET_OCTET_STREAM,
  parseBoolean,
  parseLength,
  parseTusLength,
  PARTIAL_UPLOAD,
  ProblemError,
  quote,
  readInteger,
  TUS_VERSION,
} from "./_headers.ts";

// The last Upload-Draft-Interop-Version whose PATCH carried no media type.
const LAST_UNTYPED_INTEROP_VERSION = 5;
// The Upload-Draft-Interop-Version of the draft's -01 (iOS 17's
// URLSession), the last to say `Upload-Incomplete` (the inverse of the later
// `Upload-Complete`; absent: complete).
const INCOMPLETE_INTEROP_VERSION = 3;

/** A finished upload, as `onComplete` sees it. */
export interface CompletedResumableUpload {
  /** The upload's id (the last segment of its URL). */
  id: string;
  /** Its size in bytes. */
  bytes: number;
  /** Its SHA-256, when a hasher is configured. */
  sha256?: Uint8Array;
  /** tus `Upload-Metadata`, as the client sent it. */
  metadata?: string;
}

/** Options for {@linkcode createResumableUploadHandler}. */
export interface ResumableUploadHandlerOptions extends
  Pick<
    ReceiveBodyOptions,
    | "idleTimeoutMs"
    | "minBytesPerSecond"
    | "minRateWindowMs"
    | "readAheadBytes"
    | "timeoutMs"
  > {
  /** Where uploads keep their state and bytes. */
  store: ResumableStore;
  /**
   * The path the handler is mounted at: `POST` to it creates an upload,
   * which lives at `<requestPathPrefix>/<id>`. A path, not a router's
   * pattern: a `*`, `?`, `#` or a leading `//` is a TypeError (so for
   * `locationPrefix`).
   *
   * @default {"/uploads"}
   */
  requestPathPrefix?: string;
  /**
   * The path clients reach the handler at, where a router or a proxy hands
   * it requests with its mount path stripped (Hono's `app.mount("/files",
   * handler)` with `requestPathPrefix` `"/uploads"`: `"/files/uploads"`):
   * each upload's `Location` is `<locationPrefix>/<id>`, where a client can
   * reach it.
   *
   * @default {requestPathPrefix}
   */
  locationPrefix?: string;
  /**
   * The largest upload, in bytes: a declared length over it, or bytes past
   * it, are refused with 413. Announced as `Upload-Limit: max-size` and
   * `Tus-Max-Size`.
   *
   * @default {1073741824} (1 GiB)
   */
  maxBytes?: number;
  /**
   * The bytes all unfinished uploads of this handler may reserve together
   * (the declared length of each, or `maxBytes` while unknown): a creation
   * that would go past it is refused with 413. Counted per process.
   *
   * @default {17179869184} (16 GiB)
   */
  maxTotalBytes?: number;
  /**
   * The unfinished uploads this handler keeps at once (counted per
   * process, as `maxTotalBytes`): a creation past it is refused with 503
   * and `Retry-After`, until uploads complete, are cancelled or expire.
   * Each costs the store a record (a few KiB of memory in the file store's,
   * and its files), and a small declared length reserves little of
   * `maxTotalBytes`: without it, clients creating uploads of one byte were
   * bounded by nothing until their expiry.
   *
   * @default {10000}
   */
  maxUploads?: number;
  /**
   * How long an unfinished upload lives after its creation, in
   * milliseconds (tus `Upload-Expires`): past it, requests get 410 and its
   * bytes are deleted. `0`: never; at most 100 years. Appends do not extend
   * it: an upload still sending when it passes fails on its next request
   * (410, or 404 once swept) however active it is, so keep it above the
   * longest an upload may take (100 GiB at 5 MB/s, about 6 hours).
   *
   * @default {86400000} (24 hours)
   */
  expiresInMs?: number;
  /**
   * The largest tus `Upload-Metadata` header, in bytes (400 past it).
   *
   * @default {4096}
   */
  maxMetadataBytes?: number;
  /**
   * Makes the hashers (`createHasher` from `@sluice/streams/fs` or
   * `@sluice/streams/workers`). With one, every completed upload is hashed
   * with SHA-256 and checked against the `Repr-Digest` given at creation;
   * a request's `Content-Digest` and tus `Upload-Checksum` (`sha256`,
   * `sha512`) are checked. Without one, digests cannot be checked and are
   * refused with 500 (`Content-Digest`) or 400 (`Upload-Checksum`). tus
   * `Upload-Checksum: sha1`, which tus requires every server to support, is
   * checked with or without one (an incremental SHA-1 in JavaScript).
   *
   * @default {undefined}
   */
  hasher?: ReceiveBodyOptions["hasher"];
  /**
   * Called once an upload is complete and its object published. What it
   * throws is the answer (an `HttpError`'s own, with `Upload-Complete: ?1`
   * for a client of the draft: the final answer of its complete upload,
   * which resuming would not change; any other error is thrown on, to the
   * server), and the upload stays complete.
   */
  onComplete?: (
    upload: CompletedResumableUpload,
    request: Request,
  ) => void | Promise<void>;
  /**
   * Called with the error of a request the handler answers with a status of
   * 500 or more: a store that failed (a creation or an append on a full
   * disk, answered 507; a completion the store could not publish), an
   * `onComplete` that threw an `HttpError` of that kind. The client gets
   * only the status and a message without the server's details; the cause
   * (the file system's error, its path) is in the error. The default logs
   * it with `console.error`; 4xx answers, the client's side, are not
   * passed, and an error the handler does not answer (a store's `get` that
   * throws) is thrown on, for the server to log and answer.
   *
   * @default {console.error}
   */
  onError?: (error: unknown) => void;
}

function defaultOnError(error: unknown): void {
  console.error("sluice: resumable upload failed:", error);
}

const EXPIRES_IN_MS = 86_400_000;
/** Running hashes kept at most (one per upload in progress). */
const MAX_RUNNING = 1024;
const MAX_TOTAL_BYTES = 16 * 1024 * 1024 * 1024;
const MAX_UPLOADS = 10_000;
/** Seconds a creation refused for maxUploads is told to wait. */
const FULL_RETRY_AFTER = "60";
/**
 * A tus `Upload-Checksum`: SHA-256 and SHA-512 as a `Content-Digest` for
 * receiveBody (with the configured hasher), SHA-1 checked here.
 */
type TusChecksum = { contentDigest: string } | { sha1: Uint8Array };
const TUS_EXTENSIONS =
  "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration";

/** The longest `expiresInMs`: 100 years (a Date goes only so far). */
const MAX_EXPIRES_IN_MS = 100 * 365 * 86_400_000;

/**
 * Creates a fetch handler for resumable uploads that speaks both "Resumable
 * Uploads for HTTP" (draft-ietf-httpbis-resumable-upload) and tus 1.0 over
 * one {@linkcode ResumableStore}: a request with `Tus-Resumable` (and every
 * `OPTIONS`) is answered as tus, any other as the draft.
 *
 * The draft: `POST` with `Upload-Complete` (and `Upload-Length`) creates an
 * upload, `HEAD` reports its `Upload-Offset`, `PATCH` with
 * `application/partial-upload` appends, `DELETE` cancels; a wrong offset is
 * a 409 `mismatching-upload-offset` problem, an append to a complete upload
 * a 400 `completed-upload` problem (`application/problem+json`, with
 * `Upload-Complete: ?0`). An error answered once the request completed the
 * upload (`onComplete`'s refusal) says `Upload-Complete: ?1`. A client of
 * interop version 3 (the draft's -01, iOS 17's URLSession) is read and
 * answered in its `Upload-Incomplete`, and `X-HTTP-Method-Override` on a
 * `POST` is honoured as in tus. A fetch
 * handler cannot send the draft's `104 Upload Resumption Supported` interim
 * response: the upload's `Location` comes with the final response, and a
 * client that wants it early creates the upload with an empty `POST` first
 * (as `resumableUpload` does).
 *
 * tus 1.0: core, creation (with `Upload-Defer-Length` and
 * `Upload-Metadata`), creation-with-upload, termination, checksum
 * (`sha1`, and `sha256`, `sha512` with a hasher; 460 on mismatch) and
 * expiration.
 *
 * Bytes of an interrupted request are kept (the store makes them durable)
 * and the client resumes from the offset `HEAD` reports. One request at a
 * time appends to an upload: a second gets 409 while the first runs. Upload
 * ids are 128 random bits: anyone who has the URL can append to or cancel
 * the upload, so treat it as a secret.
 *
 * @experimental
 * @param options The store, the mount path and the limits.
 * @returns A fetch handler for `Deno.serve`, `Bun.serve`, Workers or a router.
 * @throws {TypeError} Without a `store`.
 *
 * @example Resumable uploads into a directory
 * ```ts ignore
 * import { createResumableUploadHandler } from "@sluice/streams/http";
 * import { createHasher, createResumableFileStore } from "@sluice/streams/fs";
 *
 * const handler = createResumableUploadHandler({
 *   store: createResumableFileStore("./uploads"),
 *   hasher: createHasher,
 *   maxBytes: 16 * 1024 * 1024 * 1024,
 * });
 * Deno.serve((request) => handler(request));
 * ```
 */
export function createResumableUploadHandler(
  options: ResumableUploadHandlerOptions,
): (request: Request) => Promise<Response> {
  const {
    store,
    requestPathPrefix = "/uploads",
    locationPrefix: givenLocationPrefix,
    maxBytes = MAX_BODY_BYTES,
    maxTotalBytes = MAX_TOTAL_BYTES,
    maxUploads = MAX_UPLOADS,
    expiresInMs = EXPIRES_IN_MS,
    maxMetadataBytes = 4096,
    hasher,
    onComplete,
    onError = defaultOnError,
    ...limits
  } = options;
  if (typeof store?.create !== "function") {
    throw new TypeError(
      "Cannot create resumable upload handler: give a store, such as createResumableFileStore(...) or createResumableWorkersStore(...)",
    );
  }
  checkMax("create resumable upload handler", "maxBytes", maxBytes);
  checkMax("create resumable upload handler", "maxTotalBytes", maxTotalBytes);
  checkMax("create resumable upload handler", "maxUploads", maxUploads);
  checkMax(
    "create resumable upload handler",
    "maxMetadataBytes",
    maxMetadataBytes,
  );
  checkMs("create resumable upload handler", "expiresInMs", expiresInMs);
  if (expiresInMs > MAX_EXPIRES_IN_MS) {
    // Past a Date's range, Upload-Expires read "Invalid Date".
    throw new RangeError(
      `Cannot create resumable upload handler: expiresInMs must be at most ${MAX_EXPIRES_IN_MS} (100 years; 0: never), got ${expiresInMs}`,
    );
  }
  checkFunction("create resumable upload handler", "hasher", hasher);
  checkFunction("create resumable upload handler", "onComplete", onComplete);
  checkFunction("create resumable upload handler", "onError", onError);
  // Once, here: each request passed them on and failed with them (the
  // upload stored, then the request refused).
  checkReceiveOptions("create resumable upload handler", limits);
  const prefix = pathPrefix(
    "create resumable upload handler",
    requestPathPrefix,
  );
  const locationPrefix = givenLocationPrefix === undefined
    ? prefix
    : pathPrefix(
      "create resumable upload handler",
      givenLocationPrefix,
      "locationPrefix",
    );
  const checksumAlgorithms = ["sha1", "sha256", "sha512"].filter((name) =>
    name === "sha1" || hasher?.(name === "sha256" ? "sha-256" : "sha-512")
  ).join(",");

  /**
   * The request appending to each upload, to cancel it on DELETE: one table
   * per store, shared by every handler over it (two handlers mounted under
   * two paths over one store ran two appends to one upload at once: one
   * client's bytes were published, another's SHA-256 answered).
   */
  const locks = LOCKS.get(store) ?? new Map();
  LOCKS.set(store, locks);
  /**
   * Bytes reserved by each unfinished upload (maxTotalBytes), until it
   * completes, is cancelled or expires.
   */
  const reserved = new Map<string, { bytes: number; expiresAt: number }>();
  let reservedTotal = 0;
  /**
   * A running SHA-256 per upload while its appends are contiguous; at most
   * MAX_RUNNING (the oldest go: such uploads are hashed on completion from
   * the store instead).
   */
  const running = new Map<string, { offset: number; hasher: Hasher }>();

  /**
   * Reserves `bytes` for a new upload (refused past maxUploads or
   * maxTotalBytes), or, `declared`, sets a reserved upload's to its length
   * once declared: never more than the maxBytes it held, and nothing for an
   * upload this handler did not create (another process's, or one from
   * before a restart), which a PATCH declaring its length once found
   * "Cannot create upload" with its length set already.
   */
  function reserve(id: string, bytes: number, declared = false): void {
    if (declared && !reserved.has(id)) return;
    const now = Date.now();
    // Insertion order is expiry order: drop the abandoned ones in front.
    for (const [other, { expiresAt }] of reserved) {
      if (expiresAt > now) break;
      release(other);
    }
    if (!reserved.has(id) && reserved.size >= maxUploads) {
      const full = new HttpError(
        503,
        `Cannot create upload: ${maxUploads} unfinished uploads already (maxUploads)`,
      );
      CAPACITY_REFUSALS.add(full);
      throw full;
    }
    const before = reserved.get(id)?.bytes ?? 0;
    if (reservedTotal - before + bytes > maxTotalBytes) {
      throw new HttpError(
        413,
        `Cannot create upload: the unfinished uploads would exceed maxTotalBytes ${maxTotalBytes}`,
      );
    }
    reservedTotal += bytes - before;
    reserved.set(id, {
      bytes,
      expiresAt: reserved.get(id)?.expiresAt ??
        (expiresInMs > 0 ? now + expiresInMs : Infinity),
    });
  }

  function release(id: string): void {
    reservedTotal -= reserved.get(id)?.bytes ?? 0;
    reserved.delete(id);
    running.delete(id);
  }

  /** Deletes an upload (its bytes and record) and frees what it reserved. */
  async function discard(id: string): Promise<void> {
    await store.delete(id);
    release(id);
  }

  /**
   * Runs the body of the request that creates `upload`, and its
   * publication when that request completes it; if either fails (a dropped
   * connection, a body past its length, a bad checksum, a complete body
   * short of its length, a store that cannot publish it), the upload is
   * discarded: the failure's answer carries no Location, so its client
   * could never resume it (the draft's 104 interim response, which would
   * have told it, cannot be sent from a fetch handler).
   */
  async function receiveOrDiscard<T>(
    upload: ResumableUpload,
    receive: () => Promise<T>,
  ): Promise<T> {
    try {
      return await receive();
    } catch (error) {
      // Its reservation goes even if the store cannot delete it: no client
      // can come back to it (what the store keeps of it then stays until
      // it expires, if it does). The answer is the first failure's.
      await store.delete(upload.id).catch(() => {});
      release(upload.id);
      throw error;
    }
  }

  function checkLength(length: number): void {
    if (length > maxBytes) {
      throw new HttpError(
        413,
        `Cannot create upload: length ${length} exceeds maxBytes ${maxBytes}`,
      );
    }
  }

  /**
   * The upload's state (404 unknown, 410 expired). `own`: the caller holds
   * the upload's lock, so no other append runs and an expired upload can
   * be deleted.
   */
  async function load(id: string, own = false): Promise<ResumableUpload> {
    const upload = isUploadId(id) ? await store.get(id) : undefined;
    if (!upload) {
      throw new HttpError(404, "Cannot find upload: unknown id");
    }
    if (
      !upload.complete && upload.expiresAt !== undefined &&
      upload.expiresAt <= Date.now()
    ) {
      if (own || !locks.has(id)) {
        await discard(id);
      }
      throw new HttpError(410, "Cannot use upload: it expired");
    }
    return upload;
  }

  /**
   * Ends the request appending to an upload, if any, and waits until its
   * bytes are stored: a newer request for an upload means the client gave
   * up on the older one (the draft's recommended handling of concurrency),
   * so a cut request whose connection the server has not yet seen close
   * cannot hold the upload, and an offset answered afterwards is current.
   */
  async function supersede(id: string): Promise<void> {
    for (let current = locks.get(id); current; current = locks.get(id)) {
      current.supersede();
      await current.done.catch(() => {});
    }
  }

  /**
   * Runs an append under the upload's lock, after ending an older one: the
   * bytes of two requests are never interleaved. The request holds its
   * place from the moment it arrives (before any await), so a `HEAD` that
   * arrives after it ends it too, even before it has written a byte: the
   * offset that `HEAD` reports is not moved afterwards by an append that
   * was already on its way (a cut request's; the client's next `PATCH`
   * would then get 409).
   */
  async function locked<T>(
    id: string,
    fn: (signal: AbortSignal) => Promise<T>,
    final = false,
  ): Promise<T> {
    const previous = locks.get(id);
    const controller = new AbortController();
    const settled = deferred<void>();
    // A newer request ends this one through a promise whose reaction was
    // set here: on Workers the abort then runs in this request's own
    // context (its listeners cancel this request's streams, which another
    // request may not touch: "Cannot perform I/O on behalf of a different
    // request").
    const ended = deferred<void>();
    ended.promise.then(() => controller.abort(superseded()));
    // A final holder (a DELETE) is not ended by a newer request: that one
    // waits for it, then finds the upload gone.
    const lock = {
      supersede: final ? () => {} : ended.resolve,
      done: settled.promise,
    };
    locks.set(id, lock);
    try {
      if (previous) {
        previous.supersede();
        await previous.done.catch(() => {});
      }
      controller.signal.throwIfAborted();
      return await fn(controller.signal);
    } catch (error) {
      // An append ended by a newer request answers with the reason; the
      // final answer of the upload it completed stays.
      if (
        controller.signal.aborted &&
        !(error instanceof HttpError && FINAL_ANSWERS.has(error))
      ) {
        throw controller.signal.reason;
      }
      throw error;
    } finally {
      settled.resolve();
      if (locks.get(id) === lock) locks.delete(id);
    }
  }

  async function create(
    length: number | undefined,
    metadata: string | undefined,
    sha256: Uint8Array | undefined,
  ): Promise<ResumableUpload> {
    if (length !== undefined) checkLength(length);
    const id = newUploadId();
    reserve(id, length ?? maxBytes);
    const now = Date.now();
    const upload: ResumableUpload = {
      id,
      offset: 0,
      complete: false,
      createdAt: now,
      expiresAt: expiresInMs > 0 ? now + expiresInMs : undefined,
    };
    if (length !== undefined) upload.length = length;
    if (metadata !== undefined) upload.metadata = metadata;
    if (sha256) upload.sha256 = sha256;
    try {
      await store.create(upload);
    } catch (error) {
      release(id);
      // A store that failed (a full disk: 507) is the server's failure,
      // told to onError, as an append's is.
      throw storeFailed("Cannot create upload: the store failed", error);
    }
    return upload;
  }

  /**
   * Appends a request's body at the upload's offset through receiveBody and
   * returns the new offset; on failure the bytes that arrived are kept,
   * except for a chunk whose checksum failed.
   */
  async function append(
    upload: ResumableUpload,
    request: Request,
    signal: AbortSignal,
    checksum?: TusChecksum,
  ): Promise<number> {
    const { id, offset } = upload;
    const room = (upload.length ?? maxBytes) - offset;
    let run = running.get(id);
    if (hasher && offset === 0) {
      const fresh = hasher("sha-256");
      run = fresh ? { offset: 0, hasher: fresh } : undefined;
      if (run) {
        running.set(id, run);
        if (running.size > MAX_RUNNING) {
          running.delete(running.keys().next().value!);
        }
      }
    }
    if (run && run.offset !== offset) {
      running.delete(id);
      run = undefined;
    }
    const sha1 = checksum && "sha1" in checksum ? createSha1() : undefined;
    const digest = checksum && "contentDigest" in checksum
      ? checksum.contentDigest
      : undefined;
    const needsHasher = digest !== undefined ||
      request.headers.has("content-digest");
    // A chunk with a checksum counts whole and verified, or not at all: its
    // sink is closed only once its checksum matched (receiveBody checks a
    // Content-Digest before it closes), and the store keeps none of its
    // bytes before the close, so that a crash cannot keep them either.
    const whole = checksum !== undefined || needsHasher;
    const sink = (await store.append(id, offset, whole ? { whole } : {}))
      .getWriter();
    let mismatch: HttpError | undefined;
    // What the store's sink threw: its own answer (a 413 of a store whose
    // uploads hold less than maxBytes), never taken for receiveBody's.
    let stored: unknown;
    const storing = (done: Promise<void>) =>
      done.catch((error) => {
        stored = error;
        throw error;
      });
    const counted = new WritableStream<Uint8Array>({
      async write(chunk) {
        sha1?.update(chunk);
        await storing(sink.write(chunk));
        if (run) {
          run.hasher.update(chunk);
          run.offset += chunk.byteLength;
        }
      },
      async close() {
        if (
          sha1 && checksum && "sha1" in checksum &&
          !sameBytes(sha1.digest(), checksum.sha1)
        ) {
          mismatch = new HttpError(
            460,
            "Cannot append to upload: Upload-Checksum does not match",
          );
          await sink.abort(mismatch);
          throw mismatch;
        }
        await storing(sink.close());
      },
      abort: (reason) => sink.abort(reason),
    }, new CountQueuingStrategy({ highWaterMark: 1 }));
    const receive: ReceiveBodyOptions = {
      ...limits,
      maxBytes: room,
      signal,
      hasher: needsHasher ? hasher : undefined,
    };
    try {
      if (digest === undefined) {
        await receiveBody(request, counted, receive);
      } else {
        const declared = request.headers.get("content-length");
        await receiveBody(request.body ?? emptyStream(), counted, {
          ...receive,
          headers: declared === null
            ? { "content-digest": digest }
            : { "content-digest": digest, "content-length": declared },
        });
      }
    } catch (error) {
      // A chunk with a checksum or a Content-Digest is kept whole and
      // verified, or not at all: the bytes of a cut or refused one (a
      // mismatch, or past the length with its bytes up to it stored) cannot
      // be trusted. A store that appends whole kept none of them; another,
      // until they are dropped here.
      if (whole) {
        running.delete(id);
        if (!store.wholeAppends) await store.truncate(id, offset);
      }
      if (checksum !== undefined) {
        if (mismatch) throw mismatch;
        if (
          error instanceof HttpError && error.status === 400 &&
          /does not match Content-Digest/.test(error.message)
        ) {
          throw new HttpError(
            460,
            "Cannot append to upload: Upload-Checksum does not match",
          );
        }
      }
      // receiveBody's limit was the room left: the message names the
      // upload's length, or the limit the room came from.
      if (
        error instanceof HttpError && error.status === 413 &&
        error !== stored &&
        // A framework's own limit on the body says its own words.
        bodyTooLargeMessage(error.cause) === undefined
      ) {
        throw new HttpError(
          413,
          upload.length !== undefined
            ? `Cannot append to upload: the body goes past its length ${upload.length}`
            : `Cannot append to upload: it would exceed maxBytes ${maxBytes}`,
        );
      }
      throw error;
    }
    return (await store.get(id))?.offset ?? offset;
  }

  /** Hashes stored bytes, checking the size and the expected digest. */
  async function hashStored(
    upload: ResumableUpload,
    stream: ReadableStream<Uint8Array>,
  ): Promise<Uint8Array | undefined> {
    try {
      const { sha256 } = await receiveBody(stream, new WritableStream(), {
        hasher,
        contentLength: upload.offset,
        maxBytes: upload.offset,
        sha256: upload.sha256,
        idleTimeoutMs: 0,
        minBytesPerSecond: 0,
      });
      return sha256;
    } catch (error) {
      await discard(upload.id);
      throw deletedFinal(
        new HttpError(
          400,
          "Cannot complete upload: its bytes do not match Repr-Digest; the upload was deleted",
          { cause: error },
        ),
      );
    }
  }

  /**
   * Records the length of an upload that completes without a declared one
   * (the draft lets a client end with Upload-Complete: ?1 and no length):
   * its offset, so that HEAD reports it as for any complete upload.
   */
  async function settleLength(upload: ResumableUpload): Promise<void> {
    if (upload.length !== undefined) return;
    await store.setLength(upload.id, upload.offset);
    upload.length = upload.offset;
  }

  /**
   * Verifies a fully received upload and publishes it. A store that fails
   * to publish it is a 500; the upload stays as it was, every byte stored,
   * for a later request to complete.
   */
  async function publish(
    upload: ResumableUpload,
  ): Promise<CompletedResumableUpload> {
    const { id, offset } = upload;
    let sha256: Uint8Array | undefined;
    let late = false;
    if (hasher) {
      const run = running.get(id);
      // A hasher gives its digest once: a completion tried again (after a
      // store that failed to publish) hashes the stored bytes.
      running.delete(id);
      sha256 = run && run.offset === offset
        ? run.hasher.digest()
        : await store.digest?.(id);
      if (sha256 && upload.sha256 && !sameBytes(upload.sha256, sha256)) {
        await discard(id);
        throw deletedFinal(
          new HttpError(
            400,
            "Cannot complete upload: its SHA-256 does not match Repr-Digest; the upload was deleted",
          ),
        );
      }
      if (!sha256) {
        // The running hash was lost (a restart, another instance, a
        // truncation): hash the stored bytes, checking size and digest as
        // every received body is checked.
        const stream = await store.read(id);
        if (stream) sha256 = await hashStored(upload, stream);
        else late = true;
      }
    }
    try {
      await store.complete(id);
    } catch (error) {
      if (error instanceof HttpError) throw error;
      throw new HttpError(
        500,
        "Cannot complete upload: the store failed to publish it",
        { cause: error },
      );
    }
    // From here on, what fails is the complete upload's final answer.
    upload.complete = true;
    if (late) {
      const stream = await store.read(id);
      if (!stream) {
        throw new HttpError(
          500,
          "Cannot complete upload: the store cannot read it",
        );
      }
      sha256 = await hashStored(upload, stream);
    }
    release(id);
    const done: CompletedResumableUpload = { id, bytes: offset };
    if (sha256) done.sha256 = sha256;
    if (upload.metadata !== undefined) done.metadata = upload.metadata;
    return done;
  }

  /** Publishes a fully received upload and tells `onComplete`. */
  async function finish(
    upload: ResumableUpload,
    request: Request,
  ): Promise<CompletedResumableUpload> {
    const done = await publish(upload);
    await onComplete?.(done, request);
    return done;
  }

  /**
   * The draft: runs what follows the last byte of a request that completes
   * `upload` (its publication, `onComplete`). An `HttpError` thrown once the
   * upload is complete (`publish` marks it) is the final answer of the
   * upload, answered with `Upload-Complete: ?1` (the draft requires it on a
   * completing append's final answer): the client, which a refusal without
   * it sends to ask the offset, then finds the upload complete and cannot
   * tell the refusal from a lost success.
   */
  async function completing<T>(
    upload: ResumableUpload,
    fn: () => Promise<T>,
  ): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      if (upload.complete && error instanceof HttpError) {
        FINAL_ANSWERS.add(error);
      }
      throw error;
    }
  }

  /**
   * tus: an upload whose offset has reached its length is complete, however
   * the request that brought its last bytes ended (cut after them, a body
   * past the length, a server that stopped before finishing), as clients
   * take it to be; finished here, under the upload's lock.
   */
  async function finishWhole(id: string, request: Request): Promise<void> {
    await locked(id, async () => {
      const upload = await load(id, true);
      if (!upload.complete && upload.offset === upload.length) {
        await finish(upload, request);
      }
    });
  }

  async function cancel(id: string): Promise<Response> {
    // Under the upload's lock, which ends a request in flight first (the
    // draft asks for that before answering): one that arrives meanwhile
    // waits, then finds the upload gone (404). Before, a PATCH arriving
    // during the deletion was stored (204, its record left behind) or
    // failed on the vanished file (500). The lock is taken before any
    // await, so requests keep the order they came in.
    await locked(id, async () => {
      await load(id, true);
      await discard(id);
    }, true);
    return new Response(null, { status: 204 });
  }

  /**
   * `Upload-Limit`: `max-size`, and `max-age`, the remaining lifetime in
   * seconds (of an upload, or of a new one).
   */
  function limitHeader(upload?: ResumableUpload): string {
    const parts = [`max-size=${maxBytes}`];
    const expiresAt = upload ? upload.expiresAt : undefined;
    if (upload && !upload.complete && expiresAt !== undefined) {
      parts.push(
        `max-age=${Math.max(0, Math.floor((expiresAt - Date.now()) / 1000))}`,
      );
    } else if (!upload && expiresInMs > 0) {
      parts.push(`max-age=${Math.floor(expiresInMs / 1000)}`);
    }
    return parts.join(", ");
  }

  // --- the IETF draft ----------------------------------------------------

  async function ietf(
    request: Request,
    id: string | undefined,
    method: string,
  ): Promise<Response> {
    if (id === undefined) {
      if (method !== "POST") throw notAllowed(method, "POST, OPTIONS");
      const complete = requestComplete(request);
      if (complete === undefined) {
        throw new HttpError(
          400,
          "Cannot create upload: Upload-Complete is missing",
        );
      }
      let length = parseLength(
        "Upload-Length",
        request.headers.get("upload-length"),
      );
      const contentLength = parseLength(
        "Content-Length",
        request.headers.get("content-length"),
      );
      if (complete && contentLength !== undefined) {
        if (length !== undefined && length !== contentLength) {
          throw inconsistent(length, contentLength);
        }
        length = contentLength;
      }
      const upload = await create(
        length,
        undefined,
        reprDigest(request.headers.get("repr-digest")),
      );
      const location = `${locationPrefix}/${upload.id}`;
      return await locked(upload.id, async (signal) => {
        const done = await receiveOrDiscard(upload, async () => {
          upload.offset = await append(upload, request, signal);
          if (!complete) return undefined;
          if (
            upload.length !== undefined && upload.offset !== upload.length
          ) {
            // Complete, yet shorter than its declared length: refused, and
            // so not kept either.
            throw inconsistent(upload.length, upload.offset);
          }
          await settleLength(upload);
          return await completing(upload, () => publish(upload));
        });
        if (done) {
          await completing(upload, async () => {
            await onComplete?.(done, request);
          });
          return completed(done, 201, location);
        }
        return new Response(null, {
          status: 201,
          headers: {
            location,
            "upload-complete": "?0",
            "upload-offset": String(upload.offset),
            "upload-limit": limitHeader(upload),
          },
        });
      });
    }
    if (method === "HEAD") {
      await supersede(id);
      const upload = await load(id);
      const headers = new Headers({
        "upload-offset": String(upload.offset),
        "upload-complete": upload.complete ? "?1" : "?0",
        "upload-limit": limitHeader(upload),
        "cache-control": "no-store",
      });
      if (upload.length !== undefined) {
        headers.set("upload-length", String(upload.length));
      }
      return new Response(null, { status: 204, headers });
    }
    if (method === "DELETE") return await cancel(id);
    if (method !== "PATCH") {
      throw notAllowed(method, "HEAD, PATCH, DELETE, OPTIONS");
    }
    const type = request.headers.get("content-type")?.split(";")[0].trim()
      .toLowerCase();
    if (type !== PARTIAL_UPLOAD && !(type === undefined && untyped(request))) {
      throw new HttpError(
        415,
        `Cannot append to upload: Content-Type must be ${PARTIAL_UPLOAD}, got ${
          quote(type ?? "none")
        }`,
      );
    }
    const provided = parseLength(
      "Upload-Offset",
      request.headers.get("upload-offset"),
    );
    const complete = requestComplete(request);
    if (provided === undefined || complete === undefined) {
      throw new HttpError(
        400,
        "Cannot append to upload: Upload-Offset and Upload-Complete are required",
      );
    }
    return await locked(id, async (signal) => {
      const current = await load(id, true);
      if (current.complete) {
        // The draft: content for a complete upload is a length conflict;
        // an empty append learns that it is complete.
        if (request.headers.get("content-length") === "0") {
          throw new ProblemError(
            400,
            "completed-upload",
            "Cannot append to upload: it is already complete",
          );
        }
        throw new ProblemError(
          400,
          "inconsistent-upload-length",
          "Cannot append to upload: it is already complete at its length",
        );
      }
      if (provided !== current.offset) {
        throw new ProblemError(
          409,
          "mismatching-upload-offset",
          `Cannot append to upload: Upload-Offset ${provided} is not the upload's offset ${current.offset}`,
          { "expected-offset": current.offset, "provided-offset": provided },
          { "upload-offset": String(current.offset) },
        );
      }
      const length = parseLength(
        "Upload-Length",
        request.headers.get("upload-length"),
      );
      const contentLength = parseLength(
        "Content-Length",
        request.headers.get("content-length"),
      );
      let total = length;
      if (complete && contentLength !== undefined) {
        if (total !== undefined && total !== provided + contentLength) {
          throw inconsistent(total, provided + contentLength);
        }
        total = provided + contentLength;
      }
      if (total !== undefined) {
        if (current.length !== undefined && current.length !== total) {
          throw inconsistent(current.length, total);
        }
        if (current.length === undefined) {
          if (total < current.offset) {
            throw new ProblemError(
              400,
              "inconsistent-upload-length",
              `Cannot append to upload: Upload-Length ${total} is below its offset ${current.offset}`,
            );
          }
          checkLength(total);
          await store.setLength(id, total);
          current.length = total;
          reserve(id, total, true);
        }
      }
      current.offset = await append(current, request, signal);
      if (complete) {
        if (current.length !== undefined && current.offset !== current.length) {
          throw inconsistent(current.length, current.offset);
        }
        await settleLength(current);
        const done = await completing(current, () => finish(current, request));
        return completed(done, 200);
      }
      return new Response(null, {
        // Interop version 3 acknowledged an append short of the end with
        // 201 (the draft's -01).
        status: saysIncomplete(request) ? 201 : 204,
        headers: {
          "upload-complete": "?0",
          "upload-offset": String(current.offset),
        },
      });
    });
  }

  // --- tus 1.0 -----------------------------------------------------------

  async function tus(
    request: Request,
    id: string | undefined,
    method: string,
  ): Promise<Response> {
    if (method === "OPTIONS") {
      return new Response(null, {
        status: 204,
        headers: {
          "tus-version": TUS_VERSION,
          "tus-max-size": String(maxBytes),
          "tus-extension": TUS_EXTENSIONS,
          "tus-checksum-algorithm": checksumAlgorithms,
          "accept-patch": PARTIAL_UPLOAD,
          "upload-limit": limitHeader(),
        },
      });
    }
    const version = request.headers.get("tus-resumable");
    if (version !== TUS_VERSION) {
      const error = new HttpError(
        412,
        `Cannot serve tus request: version ${
          quote(version ?? "none")
        } is not ${TUS_VERSION}`,
      );
      const response = error.getResponse();
      response.headers.set("tus-version", TUS_VERSION);
      return response;
    }
    if (id === undefined) {
      if (method !== "POST") throw notAllowed(method, "POST, OPTIONS");
      // A partial upload taken as a whole one would complete as a file of
      // part of the bytes.
      if (request.headers.has("upload-concat")) {
        throw new HttpError(
          400,
          "Cannot create upload: tus's concatenation extension (Upload-Concat) is not supported (see Tus-Extension); send the upload whole (tus-js-client: parallelUploads 1)",
        );
      }
      const length = parseTusLength(
        "Upload-Length",
        request.headers.get("upload-length"),
      );
      const defer = request.headers.get("upload-defer-length");
      if (defer !== null && defer.trim() !== "1") {
        throw new HttpError(
          400,
          `Cannot create upload: Upload-Defer-Length must be 1, got ${
            quote(defer)
          }`,
        );
      }
      if ((length === undefined) === (defer === null)) {
        throw new HttpError(
          400,
          "Cannot create upload: send exactly one of Upload-Length and Upload-Defer-Length",
        );
      }
      const metadata = request.headers.get("upload-metadata") ?? undefined;
      if (metadata !== undefined) checkMetadata(metadata);
      const upload = await create(length, metadata, undefined);
      const headers = new Headers({
        location: `${locationPrefix}/${upload.id}`,
      });
      if (upload.expiresAt !== undefined) {
        headers.set("upload-expires", new Date(upload.expiresAt).toUTCString());
      }
      const type = request.headers.get("content-type")?.split(";")[0].trim()
        .toLowerCase();
      if (type === OFFSET_OCTET_STREAM) {
        // creation-with-upload
        await locked(upload.id, async (signal) => {
          const done = await receiveOrDiscard(upload, async () => {
            upload.offset = await append(
              upload,
              request,
              signal,
              tusChecksum(request),
            );
            return upload.length === upload.offset
              ? await publish(upload)
              : undefined;
          });
          if (done) await onComplete?.(done, request);
        });
        headers.set("upload-offset", String(upload.offset));
      } else if (upload.length === 0) {
        // Nothing to send: tus clients send no PATCH for an empty file.
        await locked(upload.id, async () => {
          const done = await receiveOrDiscard(upload, () => publish(upload));
          await onComplete?.(done, request);
        });
        headers.delete("upload-expires");
      }
      return new Response(null, { status: 201, headers });
    }
    if (method === "HEAD") {
      await supersede(id);
      let upload = await load(id);
      if (!upload.complete && upload.offset === upload.length) {
        await finishWhole(id, request);
        upload = await load(id);
      }
      const headers = new Headers({
        "upload-offset": String(upload.offset),
        "cache-control": "no-store",
      });
      if (upload.length !== undefined) {
        headers.set("upload-length", String(upload.length));
      } else headers.set("upload-defer-length", "1");
      if (upload.metadata !== undefined) {
        headers.set("upload-metadata", upload.metadata);
      }
      if (upload.expiresAt !== undefined && !upload.complete) {
        headers.set("upload-expires", new Date(upload.expiresAt).toUTCString());
      }
      return new Response(null, { status: 200, headers });
    }
    if (method === "DELETE") return await cancel(id);
    if (method !== "PATCH") {
      throw notAllowed(method, "HEAD, PATCH, DELETE, OPTIONS");
    }
    const type = request.headers.get("content-type")?.split(";")[0].trim()
      .toLowerCase();
    if (type !== OFFSET_OCTET_STREAM) {
      throw new HttpError(
        415,
        `Cannot append to upload: Content-Type must be ${OFFSET_OCTET_STREAM}, got ${
          quote(type ?? "none")
        }`,
      );
    }
    const provided = parseTusLength(
      "Upload-Offset",
      request.headers.get("upload-offset"),
    );
    if (provided === undefined) {
      throw new HttpError(
        400,
        "Cannot append to upload: Upload-Offset is missing",
      );
    }
    const checksum = tusChecksum(request);
    return await locked(id, async (signal) => {
      const current = await load(id, true);
      if (provided !== current.offset) {
        throw new ProblemError(
          409,
          undefined,
          `Cannot append to upload: Upload-Offset ${provided} is not the upload's offset ${current.offset}`,
          {},
          { "upload-offset": String(current.offset) },
        );
      }
      if (current.complete) {
        // Nothing more for a complete upload: an empty append at its end
        // (a client that sends one for an empty file) changes nothing.
        if (
          request.body === null || request.headers.get("content-length") === "0"
        ) {
          return new Response(null, {
            status: 204,
            headers: { "upload-offset": String(current.offset) },
          });
        }
        throw new HttpError(
          400,
          "Cannot append to upload: it is already complete",
        );
      }
      const length = parseTusLength(
        "Upload-Length",
        request.headers.get("upload-length"),
      );
      if (length !== undefined) {
        if (current.length !== undefined && current.length !== length) {
          throw new HttpError(
            400,
            `Cannot append to upload: Upload-Length ${length} differs from ${current.length}`,
          );
        }
        if (current.length === undefined) {
          if (length < current.offset) {
            throw new HttpError(
              400,
              `Cannot append to upload: Upload-Length ${length} is below its offset ${current.offset}`,
            );
          }
          checkLength(length);
          await store.setLength(id, length);
          current.length = length;
          reserve(id, length, true);
        }
      }
      try {
        current.offset = await append(current, request, signal, checksum);
      } catch (error) {
        // The bytes it stored count; with them all, the upload is complete
        // (a newer request for it, which ended this one, sees to that).
        if (!signal.aborted && current.length !== undefined) {
          const stored = await store.get(id).catch(() => undefined);
          if (stored?.offset === current.length) {
            await finish({ ...current, offset: stored.offset }, request);
          }
        }
        throw error;
      }
      if (current.length === current.offset) await finish(current, request);
      const headers = new Headers({ "upload-offset": String(current.offset) });
      if (
        current.expiresAt !== undefined && current.length !== current.offset
      ) {
        headers.set(
          "upload-expires",
          new Date(current.expiresAt).toUTCString(),
        );
      }
      return new Response(null, { status: 204, headers });
    });
  }

  function checkMetadata(metadata: string): void {
    if (new TextEncoder().encode(metadata).byteLength > maxMetadataBytes) {
      throw new HttpError(
        400,
        `Cannot create upload: Upload-Metadata exceeds maxMetadataBytes ${maxMetadataBytes}`,
      );
    }
    // tus: pairs of a key (unique, no space or comma) and, optionally, a
    // value in base64.
    const keys = new Set<string>();
    for (const pair of metadata.split(",")) {
      const [key, value, extra] = pair.trim().split(" ");
      if (
        !key || extra !== undefined ||
        (value !== undefined && !isBase64(value))
      ) {
        throw new HttpError(
          400,
          `Cannot create upload: malformed Upload-Metadata ${quote(metadata)}`,
        );
      }
      if (keys.has(key)) {
        throw new HttpError(
          400,
          `Cannot create upload: Upload-Metadata has the key ${
            quote(key)
          } twice (keys are unique)`,
        );
      }
      keys.add(key);
    }
  }

  /**
   * tus `Upload-Checksum`: SHA-1 to check here, SHA-256 and SHA-512 as a
   * Content-Digest for receiveBody.
   */
  function tusChecksum(request: Request): TusChecksum | undefined {
    const value = request.headers.get("upload-checksum");
    if (value === null) return undefined;
    const [name, digest, extra] = value.trim().split(" ");
    const algorithm = name === "sha256"
      ? "sha-256"
      : name === "sha512"
      ? "sha-512"
      : undefined;
    if (name !== "sha1" && (!algorithm || !hasher?.(algorithm))) {
      throw new HttpError(
        400,
        `Cannot check Upload-Checksum: algorithm ${
          quote(name ?? "")
        } is not supported (${checksumAlgorithms})`,
      );
    }
    let bytes: Uint8Array | undefined;
    try {
      bytes = extra === undefined ? decodeBase64(digest ?? "") : undefined;
    } catch {
      bytes = undefined;
    }
    const size = name === "sha1" ? 20 : algorithm === "sha-256" ? 32 : 64;
    if (bytes?.byteLength !== size) {
      throw new HttpError(
        400,
        `Cannot check Upload-Checksum: malformed ${quote(value)}`,
      );
    }
    return algorithm
      ? { contentDigest: `${algorithm}=:${encodeBase64(bytes)}:` }
      : { sha1: bytes };
  }

  return async (request) => {
    checkBodyUnused("serve resumable upload", request);
    // Decided before the path: tus 1.0 puts Tus-Resumable on every response
    // (a 404 for a path outside the prefix went without it).
    const isTus = request.headers.has("tus-resumable") ||
      request.method === "OPTIONS";
    try {
      const path = requestPath(request.url);
      let id: string | undefined;
      if (path === prefix || path === prefix + "/") id = undefined;
      else if (
        path.startsWith(prefix + "/") &&
        !path.slice(prefix.length + 1).includes("/")
      ) {
        id = path.slice(prefix.length + 1);
      } else throw new HttpError(404, "Cannot find upload: unknown path");
      // The override tunnels PATCH and DELETE through POST (tus-js-client's
      // overridePatchMethod); on a safe method it deleted or created
      // uploads (a HEAD with "DELETE"), so it counts on POST alone, and
      // for those two alone (a POST said OPTIONS got a 405 naming OPTIONS
      // as allowed; one said HEAD was answered as a HEAD, its body unread).
      const override = request.method === "POST"
        ? request.headers.get("x-http-method-override")?.toUpperCase()
        : undefined;
      const method = override === "PATCH" || override === "DELETE"
        ? override
        : request.method.toUpperCase();
      // Bytes are kept as sent: an encoded creation or append is refused
      // before anything is created or read (a tus chunk with a checksum,
      // received on its own path, was appended as its gzip bytes).
      if (method === "POST" || method === "PATCH") {
        refuseContentCoding(
          request.headers.get("content-encoding"),
          "receive body",
        );
      }
      const response = isTus
        ? await tus(request, id, method)
        : await ietf(request, id, method);
      if (isTus) response.headers.set("tus-resumable", TUS_VERSION);
      else if (saysIncomplete(request)) sayIncomplete(response.headers);
      return response;
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      // A refusal for maxUploads is the limit working, not a failure.
      const capacity = CAPACITY_REFUSALS.has(error);
      if (error.status >= 500 && !capacity) callOnError(onError, error);
      // A refused append's body is not wanted: cancelled (Deno and Bun
      // still read what the client sends of it, and serve the next request
      // on the connection; known-runtime-issues.md (q)).
      if (!request.bodyUsed) await request.body?.cancel().catch(() => {});
      const response = error.getResponse();
      if (capacity) response.headers.set("retry-after", FULL_RETRY_AFTER);
      if (isTus) response.headers.set("tus-resumable", TUS_VERSION);
      else {
        if (error.status === 413) {
          response.headers.set("upload-limit", limitHeader());
        }
        if (FINAL_ANSWERS.has(error)) {
          response.headers.set("upload-complete", "?1");
        }
        if (saysIncomplete(request)) sayIncomplete(response.headers);
      }
      return response;
    }
  };
}

/** The upload locks of each store (see `locks` in the handler). */
const LOCKS = new WeakMap<
  ResumableStore,
  Map<string, { supersede: () => void; done: Promise<unknown> }>
>();

/** Creations refused for maxUploads (503 with Retry-After, not onError's). */
const CAPACITY_REFUSALS = new WeakSet<HttpError>();

/**
 * The errors answered as a complete upload's final answer (see
 * `completing` in the handler).
 */
const FINAL_ANSWERS = new WeakSet<HttpError>();

/**
 * A refusal of a completing request that deleted its upload (a digest that
 * did not match): final too, resuming cannot change it. Without
 * `Upload-Complete: ?1` the client asked for the offset, got 404, and
 * reported that instead of the mismatch.
 */
function deletedFinal(error: HttpError): HttpError {
  FINAL_ANSWERS.add(error);
  return error;
}

function superseded(): HttpError {
  return new HttpError(
    409,
    "Cannot append to upload: a newer request for it took over",
  );
}

/** The request's `Upload-Draft-Interop-Version`, if any. */
function interopVersion(request: Request): number | undefined {
  return readInteger(
    request.headers.get("upload-draft-interop-version") ?? "",
  );
}

/**
 * Whether a PATCH may come without a media type: the draft's revisions up
 * to -03 (`Upload-Draft-Interop-Version` 5 and below, as tus-js-client's
 * `ietf-draft-03` mode sends) gave appended bytes none; from -05 (6) on,
 * they are `application/partial-upload`.
 */
function untyped(request: Request): boolean {
  const version = interopVersion(request);
  return version !== undefined && version <= LAST_UNTYPED_INTEROP_VERSION;
}

/**
 * Whether the request speaks interop version 3 (the draft's -01, iOS 17's
 * URLSession): `Upload-Incomplete: ?1` for a request short of the end, and
 * none (or `?0`) for one that completes the upload, in requests and answers.
 */
function saysIncomplete(request: Request): boolean {
  return interopVersion(request) === INCOMPLETE_INTEROP_VERSION;
}

/**
 * Whether a creation or an append completes the upload: its
 * `Upload-Complete`, or for interop version 3 the inverse of its
 * `Upload-Incomplete` (absent: complete); `undefined` when it does not say.
 */
function requestComplete(request: Request): boolean | undefined {
  if (saysIncomplete(request)) {
    const incomplete = parseBoolean(
      "Upload-Incomplete",
      request.headers.get("upload-incomplete"),
    );
    return incomplete !== true;
  }
  return parseBoolean(
    "Upload-Complete",
    request.headers.get("upload-complete"),
  );
}

/**
 * Turns an answer's `Upload-Complete` into the `Upload-Incomplete` that
 * interop version 3 reads (its inverse), for `HEAD` and every answer to a
 * creation or an append.
 */
function sayIncomplete(headers: Headers): void {
  const complete = headers.get("upload-complete");
  if (complete === null) return;
  headers.delete("upload-complete");
  headers.set("upload-incomplete", complete === "?1" ? "?0" : "?1");
}

/** Whether `value` is base64 that decodes: whole groups of 4, padded. */
function isBase64(value: string): boolean {
  return value.length % 4 === 0 &&
    /^[A-Za-z0-9+/]*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(value);
}

/** 405, with the `Allow` header RFC 9110 (section 15.5.6) requires. */
function notAllowed(method: string, allow: string): HttpError {
  return new ProblemError(
    405,
    undefined,
    `Cannot serve upload: method ${quote(method)} is not ${allow}`,
    {},
    { allow },
  );
}

function inconsistent(expected: number, got: number): ProblemError {
  return new ProblemError(
    400,
    "inconsistent-upload-length",
    `Cannot accept upload: length ${got} is inconsistent with ${expected}`,
  );
}

function reprDigest(value: string | null): Uint8Array | undefined {
  return contentDigests(value)?.get("sha-256");
}

function completed(
  done: CompletedResumableUpload,
  status: number,
  location?: string,
): Response {
  const headers = new Headers({
    "content-type": "application/json",
    "upload-complete": "?1",
    "upload-offset": String(done.bytes),
  });
  if (location) headers.set("location", location);
  const body: { bytes: number; sha256?: string } = { bytes: done.bytes };
  if (done.sha256) {
    body.sha256 = encodeBase64(done.sha256);
    headers.set("repr-digest", formatDigestHeader({ "sha-256": done.sha256 }));
  }
  return new Response(JSON.stringify(body), { status, headers });
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  let diff = 0;
  for (let i = 0; i < a.byteLength; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
