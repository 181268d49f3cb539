// A WritableStream into Cloudflare R2 that stores nothing until it is
// closed: bytes are staged through R2's multipart upload (or held for one
// put, when small), committed by close() and discarded by abort().

import { checkArgument } from "../_internal/arguments.ts";
import { ByteAccumulator } from "../_internal/bytes.ts";
import { checkMax } from "../_internal/limits.ts";
import { HttpError } from "../http/http_error.ts";

/** A value R2 accepts for `put` and `uploadPart` (a subset). */
export type R2Value = ArrayBuffer | ArrayBufferView | string | Blob;

/** One uploaded part, as R2's `uploadPart` returns it. */
export interface R2UploadedPartLike {
  /** The part's number, from 1. */
  partNumber: number;
  /** Its ETag. */
  etag: string;
}

/** The part of R2's `R2MultipartUpload` that the sink uses. */
export interface R2MultipartUploadLike {
  /** Uploads part `partNumber` (from 1). */
  uploadPart(partNumber: number, value: R2Value): Promise<R2UploadedPartLike>;
  /** Discards the upload and its parts. */
  abort(): Promise<void>;
  /** Makes the object from the parts, atomically. */
  complete(uploadedParts: R2UploadedPartLike[]): Promise<unknown>;
}

/** What the sink passes to `put` and `createMultipartUpload`. */
export interface R2PutOptionsLike {
  /** Content-Type and the other HTTP metadata stored with the object. */
  httpMetadata?: Record<string, string> | Headers;
  /** Custom metadata stored with the object. */
  customMetadata?: Record<string, string>;
  /** The expected SHA-256 (whole-object put only): R2 refuses others. */
  sha256?: ArrayBuffer | string;
}

/**
 * The part of R2's `R2Bucket` binding that the sink uses, typed
 * structurally so that this module needs no Workers types: pass
 * `env.BUCKET`.
 */
export interface R2BucketLike {
  /** Stores an object whole. */
  put(
    key: string,
    value: R2Value,
    options?: R2PutOptionsLike,
  ): Promise<unknown>;
  /** Starts a multipart upload. */
  createMultipartUpload(
    key: string,
    options?: Omit<R2PutOptionsLike, "sha256">,
  ): Promise<R2MultipartUploadLike>;
}

/** Options for {@linkcode createR2Sink}. */
export interface R2SinkOptions {
  /**
   * The size of each multipart part but the last. R2 needs at least
   * 5 MiB (and at most 5 GiB, 10,000 parts); the sink holds one part in
   * memory (a copy of the written bytes), until `close()` for the last. A
   * body of at most this size is stored with one `put` instead. The largest
   * body is 10,000 parts (78.1 GiB at the default): a write past it fails
   * with a 413 `HttpError` and the multipart upload is aborted.
   *
   * @default {8388608} (8 MiB)
   */
  partBytes?: number;
  /** HTTP metadata stored with the object (`contentType`, ...). */
  httpMetadata?: Record<string, string> | Headers;
  /** Custom metadata stored with the object. */
  customMetadata?: Record<string, string>;
  /**
   * The SHA-256 the body must have (32 bytes), as a Content-Digest gives it.
   * A body stored with one `put` passes it to R2, which refuses a body with
   * another digest; check a multipart body yourself before closing the
   * sink (as `receiveBody` does).
   */
  sha256?: Uint8Array;
}

const MiB = 1024 * 1024;
/** R2's smallest part (all parts but the last). */
const MIN_PART_BYTES = 5 * MiB;
/** The most parts an R2 multipart upload takes (part numbers 1 to 10,000). */
export const R2_MAX_PARTS = 10_000;

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A `WritableStream` that stores its bytes as one R2 object, and only when
 * it is closed: the object (or the previous object at `key`) is untouched
 * until `close()`, so a receiver that rejects an upload (a bad
 * `Content-Digest`, a size over its limit, a client that disconnects) and
 * aborts the sink leaves the previous object in place. Unlike
 * `bucket.put(key, fixedLengthStream.readable)`, which R2 commits as soon
 * as Content-Length bytes arrived, this needs no length in advance, so
 * chunked uploads work too.
 *
 * The bytes are staged through R2's multipart upload: parts of `partBytes`
 * are uploaded as they fill (one in memory at a time, copied from the
 * written chunks; writes wait while a part uploads), `close()` uploads the
 * last part and completes the upload
 * (R2 makes the object atomically), and `abort()` — or any failure —
 * aborts the multipart upload, leaving no orphaned parts. A body no larger
 * than one part is stored with a single `put` at close, with `sha256` if
 * given. Concurrent uploads to one key each end in one whole object; the
 * last to complete wins.
 *
 * @param bucket An R2 bucket binding (`env.BUCKET`) or anything with its
 *   `put` and `createMultipartUpload`.
 * @param key The object's key.
 * @param options Part size, metadata and an expected digest.
 * @returns The sink: close it to store the object, abort it to discard.
 *
 * @example Store an upload in R2 only if it arrived whole
 * ```ts
 * import { createR2Sink, type R2BucketLike } from "@sluice/streams/workers";
 *
 * async function store(request: Request, bucket: R2BucketLike, key: string) {
 *   const sink = createR2Sink(bucket, key, {
 *     httpMetadata: { contentType: "application/octet-stream" },
 *   });
 *   // pipeTo closes the sink when the body ends, aborts it if the body fails.
 *   await request.body!.pipeTo(sink);
 *   return new Response(null, { status: 201 });
 * }
 * ```
 */
export function createR2Sink(
  bucket: R2BucketLike,
  key: string,
  options: R2SinkOptions = {},
): WritableStream<Uint8Array> {
  return _createR2Sink(bucket, key, options, R2_MAX_PARTS);
}

/**
 * {@linkcode createR2Sink} with R2's part limit as a parameter (the tests
 * take a few parts for R2's 10,000). Internal: not exported by the package.
 *
 * @param bucket An R2 bucket binding.
 * @param key The object's key.
 * @param options Part size, metadata and an expected digest.
 * @param maxParts The most parts of a body (R2's 10,000).
 * @returns The sink.
 */
export function _createR2Sink(
  bucket: R2BucketLike,
  key: string,
  options: R2SinkOptions,
  maxParts: number,
): WritableStream<Uint8Array> {
  const what = "create R2 sink";
  checkR2Bucket(what, bucket);
  checkArgument(
    typeof key === "string" && key !== "",
    what,
    "the key",
    "a non-empty string",
    key,
  );
  const partBytes = checkMax(what, "partBytes", options.partBytes ?? 8 * MiB);
  if (partBytes < MIN_PART_BYTES || partBytes > 5 * 1024 * MiB) {
    throw new RangeError(
      `Cannot ${what}: partBytes must be between 5 MiB and 5 GiB (R2's part sizes), got ${partBytes}`,
    );
  }
  if (options.sha256 !== undefined && options.sha256.length !== 32) {
    throw new TypeError(
      `Cannot ${what}: sha256 must be 32 bytes, got ${options.sha256.length}`,
    );
  }
  // R2 takes the digest as hex.
  const sha256 = options.sha256 && hex(options.sha256);
  const metadata = {
    ...(options.httpMetadata && { httpMetadata: options.httpMetadata }),
    ...(options.customMetadata && { customMetadata: options.customMetadata }),
  };

  // The part being filled: the chunks written, copied (workerd's request
  // body chunks view 4 KiB buffers of their own: 1-byte chunks kept as
  // views held 4,096 times their bytes), until they add up to partBytes.
  let pending = new ByteAccumulator(0, partBytes);
  let upload: R2MultipartUploadLike | undefined;
  const parts: R2UploadedPartLike[] = [];

  const take = (): Uint8Array => {
    const bytes = pending.bytes();
    pending = new ByteAccumulator(0, partBytes);
    return bytes;
  };
  const flushPart = async (bytes: Uint8Array) => {
    upload ??= await bucket.createMultipartUpload(key, metadata);
    parts.push(await upload.uploadPart(parts.length + 1, bytes));
  };
  const tooManyParts = () =>
    new HttpError(
      413,
      `Cannot store body in R2: it is larger than ${maxParts} parts of partBytes ${partBytes} (${
        maxParts * partBytes
      } bytes), the most parts R2 takes; raise partBytes (at most 5 GiB)`,
    );
  /** Aborts the multipart upload, if one started, after a failure. */
  const discard = async () => {
    const started = upload;
    upload = undefined;
    pending = new ByteAccumulator(0, partBytes);
    if (started) await started.abort();
  };

  return new WritableStream<Uint8Array>({
    async write(chunk) {
      try {
        let offset = 0;
        while (offset < chunk.length) {
          // A full part is uploaded only once more bytes come: until then
          // it may be the whole body, stored with one put. Bytes past the
          // last part R2 takes fail the body before that part goes up.
          if (pending.byteLength === partBytes) {
            if (parts.length + 1 >= maxParts) throw tooManyParts();
            await flushPart(take());
          }
          const n = Math.min(
            partBytes - pending.byteLength,
            chunk.length - offset,
          );
          pending.push(
            n === chunk.length ? chunk : chunk.subarray(offset, offset + n),
          );
          offset += n;
        }
      } catch (error) {
        await discard().catch(() => {}); // the write's error is reported
        throw error;
      }
    },
    async close() {
      try {
        const last = take();
        if (!upload) {
          await bucket.put(key, last, {
            ...metadata,
            ...(sha256 !== undefined && { sha256 }),
          });
          return;
        }
        if (last.length) await flushPart(last);
        await upload.complete(parts);
        upload = undefined;
      } catch (error) {
        await discard().catch(() => {}); // the close's error is reported
        throw error;
      }
    },
    async abort() {
      await discard();
    },
  }, { highWaterMark: 1 });
}

/**
 * Throws a TypeError naming `what` unless `bucket` is an R2 bucket (has
 * `put` and `createMultipartUpload`, and `more`): a binding misnamed in
 * wrangler.toml is `undefined` in `env`.
 */
export function checkR2Bucket(
  what: string,
  bucket: unknown,
  more: string[] = [],
): void {
  const b = bucket as Record<string, unknown> | null | undefined;
  checkArgument(
    ["put", "createMultipartUpload", ...more].every((name) =>
      typeof b?.[name] === "function"
    ),
    what,
    "the bucket",
    "an R2 bucket",
    bucket,
    bucket === undefined
      ? " (is the binding's name in env the one in the Worker's configuration?)"
      : "",
  );
}
