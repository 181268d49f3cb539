// The resumable-upload store of Cloudflare Workers: each upload's state
// lives in its own Durable Object, which appends the bytes through R2's
// multipart upload (parts of partBytes) and keeps the tail below one part
// in its storage, so any Worker instance can continue an upload another
// started, and the object appears in R2 only when the upload completes.
// R2 takes at most 10,000 parts, so an upload holds at most 10,000 ×
// partBytes: a longer declared length is refused (413), and an append
// stops there.
// The part list is kept in values of PARTS_PER_VALUE parts: the state's
// own value holds the parts after the last full one, so no value grows
// with the upload (a key-value backed object takes values of 128 KiB, a
// list of 10,000 parts is about 580 KB) and a save rewrites at most 100
// parts, not the whole list.
// The SHA-256 of the bytes in R2 parts is kept in the object's storage as
// a resumable JavaScript hash state, saved with each part, so the digest
// survives the object's eviction and is checked before anything is
// published.

import { checkArgument } from "../_internal/arguments.ts";
import {
  ByteAccumulator,
  concatBytes as concatInto,
} from "../_internal/bytes.ts";
import { checkMax } from "../_internal/limits.ts";
import { decodeBase64, encodeBase64 } from "../_internal/base64.ts";
import { HttpError } from "../http/http_error.ts";
import type {
  ResumableStore,
  ResumableUpload,
} from "../http/resumable/resumable_store.ts";
import {
  checkR2Bucket,
  R2_MAX_PARTS,
  type R2BucketLike,
  type R2MultipartUploadLike,
  type R2UploadedPartLike,
} from "./r2_sink.ts";
import { Sha256, type Sha256State } from "./_sha256.ts";

/** The part of a Durable Object's storage the upload object uses. */
export interface DurableObjectStorageLike {
  /** Reads one value. */
  get<T = unknown>(key: string): Promise<T | undefined>;
  /** Writes several values atomically. */
  put(entries: Record<string, unknown>): Promise<void>;
  /** Deletes keys. */
  delete(keys: string[]): Promise<number>;
  /** Deletes everything. */
  deleteAll(): Promise<void>;
  /**
   * Schedules the object's `alarm()` at a time (ms since the epoch): the
   * upload object deletes an unfinished upload when it expires. Without
   * it, an abandoned upload stays until a request for it finds it expired.
   */
  setAlarm?(scheduledTime: number): Promise<void>;
}

/** A chunk its upload object could not store (R2 refused a part). */
const STORE_FAILED =
  "Cannot append to upload: its object failed to store the chunk";

/** The part of a Durable Object's state the upload object uses. */
export interface DurableObjectStateLike {
  /** The object's storage. */
  storage: DurableObjectStorageLike;
}

/** The part of a Durable Object namespace binding the store uses. */
export interface DurableObjectNamespaceLike {
  /** The id of the object for a name. */
  idFromName(name: string): unknown;
  /** A stub to send requests to an object. */
  get(id: never): { fetch(request: Request): Promise<Response> };
}

/** An R2 bucket with what the upload object needs besides the sink's part. */
export interface ResumableR2BucketLike extends R2BucketLike {
  /** Continues a multipart upload started earlier. */
  resumeMultipartUpload(key: string, uploadId: string): R2MultipartUploadLike;
  /** Reads an object. */
  get(key: string): Promise<{ body: ReadableStream<Uint8Array> } | null>;
  /** Deletes an object. */
  delete(key: string): Promise<void>;
}

/** Options for {@linkcode createResumableUploadObject}. */
export interface ResumableUploadObjectOptions {
  /** The R2 bucket, from the object's `env` (`(env) => env.UPLOADS`). */
  bucket: (env: Record<string, unknown>) => ResumableR2BucketLike;
  /**
   * The R2 key of an upload's object.
   *
   * @default {(id) => `uploads/${id}`}
   */
  key?: (id: string) => string;
  /**
   * The size of each R2 part but the last (R2 needs at least 5 MiB): the
   * object buffers up to one part in memory and keeps the tail of an
   * interrupted append in its storage. At most 127 × 96 KiB (11.9 MiB): the
   * tail, below one part, is saved with the upload's state in one write,
   * and a Durable Object writes at most 128 keys at once.
   *
   * An upload holds at most 10,000 parts (R2's limit) of this size: 78.1 GiB
   * at the default, 116.3 GiB at the largest. A longer declared length is
   * refused with 413 at creation; an append past it keeps the bytes up to
   * it and is refused with 413.
   *
   * @default {8388608} (8 MiB)
   */
  partBytes?: number;
}

interface Meta {
  upload: Omit<ResumableUpload, "sha256"> & { sha256?: string };
  multipart?: string;
  /**
   * The parts after those in the `parts<i>` values (all of them in uploads
   * created by older versions, which had no such values).
   */
  parts: R2UploadedPartLike[];
  /** How many `parts<i>` values hold the first parts, partsPerValue each. */
  partValues?: number;
  partsBytes: number;
  tailChunks: number;
  /**
   * The SHA-256 state over the bytes in `parts` (`partsBytes` of them),
   * saved with them; missing in uploads created by older versions.
   */
  hash?: Sha256State;
}

const MiB = 1024 * 1024;

function concatBytes(chunks: Uint8Array[]): Uint8Array {
  return concatInto(chunks, chunks.reduce((n, c) => n + c.byteLength, 0));
}

/** Tail bytes per storage value (Durable Object values are limited). */
const TAIL_CHUNK = 96 * 1024;
/**
 * The largest part: a tail (below one part) in at most 127 values, saved
 * with the state in one put of at most 128 keys (Durable Objects' limit).
 */
const MAX_PART_BYTES = 127 * TAIL_CHUNK;
/**
 * Parts per storage value of the part list: about 58 bytes a part, 5.8 KB
 * a value, far below the key-value backend's 128 KiB.
 */
const PARTS_PER_VALUE = 100;

/**
 * Makes the Durable Object class that holds resumable uploads for
 * {@linkcode createResumableWorkersStore}: export it from your Worker under
 * the class name bound in `wrangler.toml`. One object per upload keeps its
 * state, appends its bytes through an R2 multipart upload (one append at a
 * time; a second is refused with 409), keeps the tail below one part in
 * its storage so an interrupted append loses nothing it acknowledged, and
 * completes the multipart upload, so the R2 object appears whole, only when
 * the upload is complete. It hashes the bytes as they go into R2 parts
 * (SHA-256 in JavaScript, about a tenth of native speed) and saves the hash
 * state with each part, so the digest survives the object's eviction: the
 * digest and the declared length are checked before the multipart upload
 * is completed, and an upload that fails them is never visible in R2.
 * An upload holds at most 10,000 parts (R2's limit) of `partBytes`: a
 * longer declared length is refused with 413, and an append past it keeps
 * the bytes up to it and is refused with 413.
 *
 * @experimental
 * @param options The bucket, the object keys and the part size.
 * @returns A Durable Object class.
 *
 * @example A Worker with resumable uploads into R2
 * ```ts ignore
 * import { createResumableUploadHandler } from "@sluice/streams/http";
 * import {
 *   createHasher,
 *   createResumableUploadObject,
 *   createResumableWorkersStore,
 * } from "@sluice/streams/workers";
 *
 * export const ResumableUploads = createResumableUploadObject({
 *   bucket: (env) => env.BUCKET as never,
 * });
 * export default {
 *   fetch(request: Request, env: { UPLOADS: never }) {
 *     const store = createResumableWorkersStore(env.UPLOADS);
 *     return createResumableUploadHandler({ store, hasher: createHasher })(request);
 *   },
 * };
 * ```
 */
export function createResumableUploadObject(
  options: ResumableUploadObjectOptions,
): new (
  state: DurableObjectStateLike,
  env: Record<string, unknown>,
) => { fetch(request: Request): Promise<Response> } {
  return _createResumableUploadObject(options, R2_MAX_PARTS, PARTS_PER_VALUE);
}

/**
 * {@linkcode createResumableUploadObject} with R2's part limit as a
 * parameter (the tests take a few parts for R2's 10,000). Internal: not
 * exported by the package.
 *
 * @param options The bucket, the object keys and the part size.
 * @param maxParts The most parts of an upload (R2's 10,000).
 * @param partsPerValue The parts in each storage value of the part list.
 * @returns A Durable Object class.
 */
export function _createResumableUploadObject(
  options: ResumableUploadObjectOptions,
  maxParts: number,
  partsPerValue: number,
): new (
  state: DurableObjectStateLike,
  env: Record<string, unknown>,
) => { fetch(request: Request): Promise<Response> } {
  const what = "create resumable upload object";
  checkArgument(
    typeof (options as Partial<ResumableUploadObjectOptions> | null)
      ?.bucket === "function",
    what,
    "options.bucket",
    "a function of env giving the R2 bucket ((env) => env.UPLOADS)",
    options?.bucket,
  );
  const partBytes = checkMax(what, "partBytes", options.partBytes ?? 8 * MiB);
  if (partBytes < 5 * MiB) {
    throw new RangeError(
      `Cannot ${what}: partBytes must be at least 5 MiB (R2's smallest part), got ${partBytes}`,
    );
  }
  if (partBytes > MAX_PART_BYTES) {
    throw new RangeError(
      `Cannot ${what}: partBytes must be at most ${MAX_PART_BYTES} (127 storage values of ${TAIL_CHUNK} bytes: a Durable Object writes at most 128 keys at once), got ${partBytes}`,
    );
  }
  const keyOf = options.key ?? ((id: string) => `uploads/${id}`);
  // The most bytes an upload holds: R2 takes maxParts parts at most. What
  // goes past it is refused (413) with this, which names the way out.
  const capacity = maxParts * partBytes;
  const limit =
    `at most ${maxParts} R2 parts of ${partBytes} bytes (${capacity} bytes); ${
      partBytes < MAX_PART_BYTES
        ? `raise createResumableUploadObject's partBytes (at most ${MAX_PART_BYTES}: ${
          maxParts * MAX_PART_BYTES
        } bytes), or `
        : ""
    }set the handler's maxBytes to at most ${capacity}`;
  /** The parts of an upload, in its part list's values and its state. */
  const partCount = (meta: Meta) =>
    (meta.partValues ?? 0) * partsPerValue + meta.parts.length;
  const tooLong = (length: number) =>
    new Response(
      `its length ${length} is more than an upload holds: ${limit}`,
      { status: 413 },
    );

  return class ResumableUploadObject {
    #storage: DurableObjectStorageLike;
    #bucket: ResumableR2BucketLike;
    #appending = false;
    /**
     * Counts deletions: an append that sees it change (the upload deleted
     * by a request through another Worker instance, which cannot end the
     * append itself) stops and saves nothing.
     */
    #deletions = 0;
    /** The digest at an offset, from `digest`, for `complete` to reuse. */
    #digest: { offset: number; sha256: Uint8Array } | undefined;
    /** Counts the changes of the bytes (a digest made across one is stale). */
    #changes = 0;
    /** The state before the last append, for a truncation back to it. */
    #before: { meta: Meta; tail: Uint8Array } | undefined;
    /**
     * A whole chunk read to its end, its parts in R2, not saved until the
     * handler commits it (its checksum matched); lost if the object goes.
     */
    #pending:
      | { token: number; meta: Meta; tail: Uint8Array; multipart?: string }
      | undefined;
    #tokens = 0;

    constructor(state: DurableObjectStateLike, env: Record<string, unknown>) {
      this.#storage = state.storage;
      this.#bucket = options.bucket(env);
      checkR2Bucket("start resumable upload object", this.#bucket, [
        "resumeMultipartUpload",
      ]);
    }

    async fetch(request: Request): Promise<Response> {
      const url = new URL(request.url);
      const op = url.pathname.slice(1);
      const meta = await this.#storage.get<Meta>("meta");
      if (op === "create") {
        if (meta) return new Response("exists", { status: 409 });
        const upload = await request.json() as Meta["upload"];
        // Refused before anything is kept: R2 would refuse its last parts.
        if (upload.length !== undefined && upload.length > capacity) {
          return tooLong(upload.length);
        }
        // Its expiry deletes it (its bytes here and its parts in R2) even if
        // no request for it ever comes again.
        if (upload.expiresAt !== undefined) {
          await this.#storage.setAlarm?.(upload.expiresAt);
        }
        await this.#storage.put({
          meta: {
            upload,
            parts: [],
            partsBytes: 0,
            tailChunks: 0,
            hash: new Sha256().state(),
          },
        });
        return new Response(null, { status: 201 });
      }
      if (!meta) return new Response("unknown upload", { status: 404 });
      switch (op) {
        case "get":
          return Response.json(meta.upload);
        case "length": {
          const length = Number(url.searchParams.get("value"));
          if (length > capacity) return tooLong(length);
          meta.upload.length = length;
          await this.#storage.put({ meta });
          return new Response(null, { status: 204 });
        }
        case "append":
          return this.#append(
            meta,
            Number(url.searchParams.get("offset")),
            request.body!,
            url.searchParams.get("whole") === "1",
          );
        case "commit":
          return await this.#commit(Number(url.searchParams.get("token")));
        case "drop":
          // A whole chunk its handler refused (its checksum did not match)
          // or that was cut: workerd ends an aborted request body here as
          // if it were whole, so the handler's side says so.
          if (this.#pending?.token === Number(url.searchParams.get("token"))) {
            await this.#dropPending();
          }
          return new Response(null, { status: 204 });
        case "truncate":
          return await this.#truncate(
            meta,
            Number(url.searchParams.get("offset")),
          );
        case "digest": {
          const sha256 = await this.#sha256(meta);
          if (!sha256) return new Response(null, { status: 204 });
          return new Response(sha256 as Uint8Array<ArrayBuffer>);
        }
        case "complete":
          return await this.#complete(meta);
        case "read": {
          if (!meta.upload.complete) return new Response(null, { status: 204 });
          const object = await this.#bucket.get(keyOf(meta.upload.id));
          if (!object) return new Response("no object", { status: 404 });
          return new Response(object.body);
        }
        case "delete":
          await this.#delete(meta);
          return new Response(null, { status: 204 });
      }
      return new Response("unknown operation", { status: 400 });
    }

    /**
     * The alarm set at creation: an upload still unfinished at its expiry
     * is deleted (a running append moves it a minute on).
     */
    async alarm(): Promise<void> {
      const meta = await this.#storage.get<Meta>("meta");
      const expiresAt = meta?.upload.expiresAt;
      if (!meta || meta.upload.complete || expiresAt === undefined) return;
      if (this.#appending) {
        await this.#storage.setAlarm?.(Date.now() + 60_000);
        return;
      }
      if (expiresAt > Date.now()) {
        await this.#storage.setAlarm?.(expiresAt);
        return;
      }
      await this.#delete(meta);
    }

    async #tail(meta: Meta): Promise<Uint8Array[]> {
      const chunks: Uint8Array[] = [];
      for (let i = 0; i < meta.tailChunks; i++) {
        const chunk = await this.#storage.get<Uint8Array>(`tail${i}`);
        if (!chunk) throw new Error(`Cannot read upload: tail ${i} is missing`);
        chunks.push(new Uint8Array(chunk));
      }
      return chunks;
    }

    /**
     * The SHA-256 of the upload's bytes: the saved state over its parts
     * continued over its tail (undefined for an upload without a state).
     */
    async #sha256(meta: Meta): Promise<Uint8Array | undefined> {
      const offset = meta.upload.offset;
      if (this.#digest?.offset === offset) return this.#digest.sha256;
      if (!meta.hash) return undefined;
      const changes = this.#changes;
      const hasher = Sha256.from(meta.hash);
      for (const chunk of await this.#tail(meta)) hasher.update(chunk);
      const sha256 = hasher.digest();
      if (changes === this.#changes) this.#digest = { offset, sha256 };
      return sha256;
    }

    async #multipart(meta: Meta): Promise<R2MultipartUploadLike> {
      const key = keyOf(meta.upload.id);
      if (meta.multipart) {
        return this.#bucket.resumeMultipartUpload(key, meta.multipart);
      }
      const upload = await this.#bucket.createMultipartUpload(key) as
        & R2MultipartUploadLike
        & { uploadId: string };
      meta.multipart = upload.uploadId;
      return upload;
    }

    /**
     * Stores the tail and the offset in one atomic write, after any full
     * values of parts the state's list now holds (written first, and read
     * only once the state that counts them is saved, so a write cut
     * between the two leaves the state before them whole).
     */
    async #save(meta: Meta, tail: Uint8Array): Promise<void> {
      if (meta.parts.length >= partsPerValue) {
        const values: Record<string, unknown> = {};
        let index = meta.partValues ?? 0;
        let at = 0;
        for (; meta.parts.length - at >= partsPerValue; at += partsPerValue) {
          values[`parts${index++}`] = meta.parts.slice(at, at + partsPerValue);
        }
        // At most 100 values (10,000 parts), below the 128 keys of a put.
        await this.#storage.put(values);
        meta.parts = meta.parts.slice(at);
        meta.partValues = index;
      }
      const entries: Record<string, unknown> = {};
      const count = Math.ceil(tail.byteLength / TAIL_CHUNK);
      for (let i = 0; i < count; i++) {
        entries[`tail${i}`] = tail.slice(i * TAIL_CHUNK, (i + 1) * TAIL_CHUNK);
      }
      const stale = meta.tailChunks;
      meta.tailChunks = count;
      meta.upload.offset = meta.partsBytes + tail.byteLength;
      entries.meta = meta;
      await this.#storage.put(entries);
      if (stale > count) {
        const keys: string[] = [];
        for (let i = count; i < stale; i++) keys.push(`tail${i}`);
        await this.#storage.delete(keys);
      }
    }

    #append(
      meta: Meta,
      offset: number,
      body: ReadableStream<Uint8Array>,
      whole: boolean,
    ): Response {
      if (this.#appending) {
        return new Response("another append is running", { status: 409 });
      }
      if (meta.upload.complete || offset !== meta.upload.offset) {
        return new Response("offset mismatch", { status: 409 });
      }
      this.#appending = true;
      this.#changes++;
      this.#digest = undefined;
      const result = new TransformStream<Uint8Array, Uint8Array>();
      const deletions = this.#deletions;
      const deleted = () => this.#deletions !== deletions;
      const run = async () => {
        // A whole chunk never committed (its handler went, or another
        // append came first) is dropped.
        await this.#dropPending();
        const tail = await this.#tail(meta);
        this.#before = {
          meta: structuredClone(meta),
          tail: concatBytes(tail),
        };
        // The bytes not yet in a part, copied: workerd's request body
        // chunks view 4 KiB buffers of their own, so one-byte chunks kept
        // as views held 4,096 times their bytes.
        let pending = new ByteAccumulator();
        for (const chunk of tail) pending.push(chunk);
        let failure: unknown;
        // Set when the body goes past the capacity: the bytes up to it are
        // taken, and the append stops there.
        let full = false;
        const multipartBefore = meta.multipart;
        const reader = body.getReader();
        try {
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            if (deleted()) {
              // Not awaited: the request's side may take its time to hear.
              reader.cancel().catch(() => {});
              break;
            }
            let chunk = value;
            const room = capacity - meta.partsBytes - pending.byteLength;
            if (chunk.byteLength > room) {
              chunk = chunk.subarray(0, Math.max(room, 0));
              full = true;
            }
            pending.push(chunk);
            while (pending.byteLength >= partBytes && !deleted()) {
              const number = partCount(meta) + 1;
              if (number > maxParts) {
                // The room above keeps this from happening: R2 would
                // refuse the part (an uploaded part is never lost here).
                throw new RangeError(
                  `Cannot append to upload: part ${number} is past ${maxParts}`,
                );
              }
              const all = pending.bytes();
              const part = all.subarray(0, partBytes);
              // The hash state moves with the part, in the same write.
              const hasher = meta.hash ? Sha256.from(meta.hash) : undefined;
              hasher?.update(part);
              const multipart = await this.#multipart(meta);
              const uploaded = await multipart.uploadPart(number, part);
              if (deleted()) break;
              meta.parts.push(uploaded);
              meta.partsBytes += partBytes;
              if (hasher) meta.hash = hasher.state();
              pending = new ByteAccumulator();
              pending.push(all.subarray(partBytes));
              // A whole chunk saves nothing before its commit.
              if (!whole) await this.#save(meta, new Uint8Array(0));
            }
            if (full) {
              // Not awaited, as for a deletion: the answer says why.
              reader.cancel().catch(() => {});
              break;
            }
          }
        } catch (error) {
          failure = error; // a cut request: keep what arrived
        }
        if (deleted()) {
          // Nothing saved (the upload is gone), and a multipart upload this
          // append began after the deletion aborted its parts too.
          if (meta.multipart && meta.multipart !== multipartBefore) {
            await this.#bucket.resumeMultipartUpload(
              keyOf(meta.upload.id),
              meta.multipart,
            ).abort().catch(() => {});
          }
          return { deleted: true };
        }
        if (whole) {
          const started = multipartBefore === undefined
            ? meta.multipart
            : undefined;
          if (failure !== undefined) {
            // Cut or refused: none of it counts.
            await this.#abortMultipart(meta, started);
            return { offset, failed: true };
          }
          if (full) {
            // Refused, as a whole chunk past its length: none of it counts.
            await this.#abortMultipart(meta, started);
            return { offset, full: limit };
          }
          const tail = pending.bytes();
          meta.upload.offset = meta.partsBytes + tail.byteLength;
          const token = ++this.#tokens;
          this.#pending = { token, meta, tail, multipart: started };
          return { offset: meta.upload.offset, pending: token };
        }
        await this.#save(meta, pending.bytes());
        if (full && failure === undefined) {
          return { offset: meta.upload.offset, full: limit };
        }
        return { offset: meta.upload.offset, failed: failure !== undefined };
      };
      const writer = result.writable.getWriter();
      run().then(
        (outcome) =>
          writer.write(new TextEncoder().encode(JSON.stringify(outcome))),
        (error) =>
          writer.write(
            new TextEncoder().encode(JSON.stringify({ error: String(error) })),
          ),
      ).finally(() => {
        this.#appending = false;
        return writer.close();
      }).catch(() => {});
      return new Response(result.readable, { status: 200 });
    }

    /** Saves the whole chunk read last, once its handler verified it. */
    async #commit(token: number): Promise<Response> {
      const pending = this.#pending;
      if (pending?.token !== token) {
        return new Response(
          "it is no longer pending (the object restarted, or another append came)",
          { status: 409 },
        );
      }
      this.#pending = undefined;
      this.#changes++;
      this.#digest = undefined;
      await this.#save(pending.meta, pending.tail);
      return new Response(null, { status: 204 });
    }

    /** Drops the whole chunk left uncommitted, if any. */
    async #dropPending(): Promise<void> {
      const pending = this.#pending;
      this.#pending = undefined;
      if (pending) await this.#abortMultipart(pending.meta, pending.multipart);
    }

    /** Aborts the R2 multipart upload `started` (by an append), if any. */
    async #abortMultipart(meta: Meta, started: string | undefined) {
      if (started === undefined) return;
      await this.#bucket.resumeMultipartUpload(keyOf(meta.upload.id), started)
        .abort().catch(() => {});
    }

    async #truncate(meta: Meta, offset: number): Promise<Response> {
      // Nothing past `offset` (a whole chunk that was not committed).
      if (meta.upload.offset === offset) {
        return new Response(null, { status: 204 });
      }
      if (meta.upload.complete) {
        return new Response("it is complete", { status: 409 });
      }
      const before = this.#before;
      if (!before || before.meta.upload.offset !== offset) {
        return new Response(
          "Cannot truncate upload: only back to the start of its last append",
          { status: 500 },
        );
      }
      // Parts uploaded since are left out of the completion (and replaced
      // by the next uploads of their numbers).
      meta.parts = before.meta.parts;
      meta.partValues = before.meta.partValues;
      meta.partsBytes = before.meta.partsBytes;
      meta.hash = before.meta.hash;
      this.#changes++;
      this.#digest = undefined;
      await this.#save(meta, before.tail);
      return new Response(null, { status: 204 });
    }

    async #complete(meta: Meta): Promise<Response> {
      const { upload } = meta;
      if (upload.complete) return new Response(null, { status: 204 });
      if (upload.length !== undefined && upload.offset !== upload.length) {
        return new Response(
          `its ${upload.offset} bytes are not its length ${upload.length}`,
          { status: 409 },
        );
      }
      // The handler checked the digest already; checking it here too keeps
      // an upload that fails it out of R2 whoever calls complete.
      if (upload.sha256 && meta.hash) {
        const sha256 = encodeBase64((await this.#sha256(meta))!);
        if (sha256 !== upload.sha256) {
          return new Response(
            `its SHA-256 ${sha256} does not match Repr-Digest ${upload.sha256}`,
            { status: 409 },
          );
        }
      }
      const tail = concatBytes(await this.#tail(meta));
      const key = keyOf(meta.upload.id);
      if (!meta.multipart) {
        await this.#bucket.put(key, tail);
      } else {
        const count = partCount(meta);
        if (tail.byteLength > 0 && count >= maxParts) {
          // Appends stop at the capacity, so this takes an upload stored
          // otherwise (a partBytes changed under it): R2 would refuse it.
          return new Response(
            `its tail would be part ${count + 1}: ${limit}`,
            { status: 413 },
          );
        }
        const parts = await this.#parts(meta);
        const multipart = await this.#multipart(meta);
        if (tail.byteLength > 0 || count === 0) {
          parts.push(await multipart.uploadPart(count + 1, tail));
        }
        await multipart.complete(parts);
      }
      // The part list is of no more use: the object is in R2.
      const values = meta.partValues ?? 0;
      meta.upload.complete = true;
      meta.multipart = undefined;
      meta.parts = [];
      meta.partValues = 0;
      meta.partsBytes += tail.byteLength;
      await this.#save(meta, new Uint8Array(0));
      if (values > 0) {
        await this.#storage.delete(
          Array.from({ length: values }, (_, i) => `parts${i}`),
        );
      }
      return new Response(null, { status: 204 });
    }

    /** Every part of the upload, in order: its list's values, then its own. */
    async #parts(meta: Meta): Promise<R2UploadedPartLike[]> {
      const parts: R2UploadedPartLike[] = [];
      for (let i = 0; i < (meta.partValues ?? 0); i++) {
        const value = await this.#storage.get<R2UploadedPartLike[]>(
          `parts${i}`,
        );
        if (!value) {
          throw new Error(`Cannot complete upload: parts ${i} are missing`);
        }
        parts.push(...value);
      }
      parts.push(...meta.parts);
      return parts;
    }

    async #delete(meta: Meta): Promise<void> {
      this.#deletions++;
      await this.#dropPending();
      const key = keyOf(meta.upload.id);
      if (meta.multipart) {
        await this.#bucket.resumeMultipartUpload(key, meta.multipart).abort()
          .catch(() => {});
      }
      if (meta.upload.complete) await this.#bucket.delete(key);
      await this.#storage.deleteAll();
      this.#changes++;
      this.#digest = undefined;
    }
  };
}

/**
 * Creates the resumable-upload store of Cloudflare Workers, for
 * `createResumableUploadHandler`: each upload is one Durable Object of the
 * class made by {@linkcode createResumableUploadObject} (addressed by the
 * upload's id), so any Worker instance can serve any request of any
 * upload. Bytes go to R2 through the object; the R2 object appears only
 * when the upload completes.
 *
 * @experimental
 * @param namespace The Durable Object namespace binding (`env.UPLOADS`).
 * @returns The store.
 *
 * @example The store of a Worker
 * ```ts ignore
 * import { createResumableWorkersStore } from "@sluice/streams/workers";
 *
 * export default {
 *   fetch(_request: Request, env: { UPLOADS: never }) {
 *     const store = createResumableWorkersStore(env.UPLOADS);
 *     return new Response(typeof store.get);
 *   },
 * };
 * ```
 */
export function createResumableWorkersStore(
  namespace: DurableObjectNamespaceLike,
): ResumableStore {
  const n = namespace as Partial<DurableObjectNamespaceLike> | null;
  checkArgument(
    typeof n?.idFromName === "function" && typeof n.get === "function",
    "create resumable Workers store",
    "the namespace",
    "a Durable Object namespace",
    namespace,
    namespace === undefined
      ? " (is the binding's name in env the one in the Worker's configuration?)"
      : "",
  );
  const call = async (
    id: string,
    op: string,
    init: RequestInit & { query?: Record<string, string> } = {},
  ): Promise<Response> => {
    const url = new URL(`https://upload/${op}`);
    for (const [k, v] of Object.entries(init.query ?? {})) {
      url.searchParams.set(k, v);
    }
    const stub = namespace.get(namespace.idFromName(id) as never);
    return await stub.fetch(new Request(url, { method: "POST", ...init }));
  };
  const expect = async (response: Response, what: string) => {
    if (!response.ok) {
      // 409 (another append, an offset that moved) and 413 (more than R2's
      // parts hold) are the client's to hear; the rest is a failure.
      const status = response.status;
      throw new HttpError(
        status === 409 || status === 413 ? status : 500,
        `Cannot ${what}: ${await response.text()}`,
      );
    }
    return response;
  };
  return {
    wholeAppends: true,
    async create(upload) {
      const record: Meta["upload"] = { ...upload, sha256: undefined };
      if (upload.sha256) record.sha256 = encodeBase64(upload.sha256);
      await expect(
        await call(upload.id, "create", { body: JSON.stringify(record) }),
        "create upload",
      );
    },
    async get(id) {
      const response = await call(id, "get");
      if (response.status === 404) {
        await response.body?.cancel();
        return undefined;
      }
      const record = await (await expect(response, "read upload"))
        .json() as Meta["upload"];
      const { sha256, ...rest } = record;
      const upload: ResumableUpload = rest;
      if (sha256) upload.sha256 = decodeBase64(sha256);
      return upload;
    },
    async setLength(id, length) {
      await expect(
        await call(id, "length", { query: { value: String(length) } }),
        "set upload length",
      );
    },
    async append(id, offset, options = {}) {
      const whole = options.whole === true;
      const { readable, writable } = new TransformStream<
        Uint8Array,
        Uint8Array
      >();
      const response = await expect(
        await call(id, "append", {
          query: whole
            ? { offset: String(offset), whole: "1" }
            : { offset: String(offset) },
          body: readable,
          duplex: "half",
        } as RequestInit),
        "append to upload",
      );
      const outcome = response.text();
      const writer = writable.getWriter();
      const settle = async () => {
        const result = JSON.parse(await outcome) as {
          error?: string;
          deleted?: boolean;
          pending?: number;
          full?: string;
          failed?: boolean;
        };
        if (result.deleted) {
          throw new HttpError(404, "Cannot append to upload: it was deleted");
        }
        if (result.full !== undefined) {
          throw new HttpError(
            413,
            `Cannot append to upload: its bytes would be more than an upload holds: ${result.full}`,
          );
        }
        if (result.error) {
          throw new Error(`Cannot append to upload: ${result.error}`);
        }
        return result;
      };
      // Settles (false) once the object has answered: made once, raced by
      // every write.
      const answered = outcome.then(() => false, () => false);
      return new WritableStream<Uint8Array>({
        async write(chunk) {
          // The object may stop reading before the end (the upload was
          // deleted, or is full): its outcome then comes first, or the
          // write fails as the object cancels the body, and the write ends
          // with what the outcome says.
          const written = await Promise.race([
            writer.write(chunk).then(() => true, () => false),
            answered,
          ]);
          if (written) return;
          writer.abort().catch(() => {});
          const { failed } = await settle();
          throw new Error(
            failed
              ? STORE_FAILED
              : "Cannot append to upload: its object stopped reading",
          );
        },
        async close() {
          // The object may have stopped at the last chunk (the upload is
          // full) and cancelled the body: its outcome says why first.
          const closed = writer.close().then(() => undefined, (error) => ({
            error,
          }));
          const { pending, failed: dropped } = await settle();
          const failed = await closed;
          if (failed) throw failed.error;
          // The object kept none of a whole chunk it failed to store (R2
          // refused a part): a failure of the store's, not a commit to try
          // (it was answered 409, "no longer pending", as for a conflict).
          if (whole && dropped) throw new Error(STORE_FAILED);
          // A whole chunk counts once committed: the handler closes its
          // sink only when its checksum matched.
          if (whole) {
            await expect(
              await call(id, "commit", { query: { token: String(pending) } }),
              "commit append",
            );
          }
        },
        async abort(reason) {
          // The object keeps what it received and records its offset; a
          // whole chunk's goes. Under workerd the object reads the aborted
          // body as ended, and holds the chunk (its multipart upload open)
          // for a commit: it is told to drop it.
          await writer.abort(reason).catch(() => {});
          const result = await settle().catch(() => undefined);
          if (whole && result?.pending !== undefined) {
            const dropped = await call(id, "drop", {
              query: { token: String(result.pending) },
            }).catch(() => undefined);
            await dropped?.body?.cancel();
          }
        },
      }, new CountQueuingStrategy({ highWaterMark: 1 }));
    },
    async truncate(id, offset) {
      await expect(
        await call(id, "truncate", { query: { offset: String(offset) } }),
        "truncate upload",
      );
    },
    async read(id) {
      const response = await expect(await call(id, "read"), "read upload");
      return response.status === 204 ? undefined : response.body ?? undefined;
    },
    async digest(id) {
      const response = await expect(await call(id, "digest"), "read digest");
      if (response.status === 204) return undefined;
      return new Uint8Array(await response.arrayBuffer());
    },
    async complete(id) {
      await expect(await call(id, "complete"), "complete upload");
    },
    async delete(id) {
      const response = await call(id, "delete");
      await response.body?.cancel();
    },
  };
}
