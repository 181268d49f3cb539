// An in-memory R2 bucket that models what R2 documents about put and
// multipart uploads: `put` replaces the object atomically when it resolves
// and refuses a body whose SHA-256 differs from `sha256`; parts but the
// last must be at least 5 MiB and all the same size; `complete` makes the
// object atomically from the listed parts; an aborted or completed upload
// takes no more parts; part numbers go from 1 to 10,000 (`maxPartNumber`,
// which a test may lower). It counts uploads still open (orphans), records
// the number of every part uploaded, and can fail chosen calls. It also
// continues multipart uploads, reads and deletes objects, as the resumable
// upload object (lib/runtime/resumable_workers_store.ts) needs.

import { createHash } from "node:crypto";
import type {
  R2BucketLike,
  R2MultipartUploadLike,
  R2PutOptionsLike,
  R2UploadedPartLike,
  R2Value,
} from "../lib/runtime/r2_sink.ts";

const MIN_PART = 5 * 1024 * 1024;

/** A turn of the event loop: R2 calls are network requests. */
function tick(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

async function bytesOf(value: R2Value): Promise<Uint8Array> {
  if (typeof value === "string") return new TextEncoder().encode(value);
  if (value instanceof Blob) return new Uint8Array(await value.arrayBuffer());
  if (value instanceof ArrayBuffer) return new Uint8Array(value.slice(0));
  return new Uint8Array(
    value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength),
  );
}

/** A stored object. */
export interface FakeObject {
  bytes: Uint8Array;
  options: R2PutOptionsLike | undefined;
  version: number;
}

/** Calls the fake can be told to fail. */
export type FakeCall = "put" | "create" | "uploadPart" | "complete" | "abort";

/** The in-memory bucket. */
export class FakeR2Bucket implements R2BucketLike {
  readonly objects = new Map<string, FakeObject>();
  /** Open multipart uploads, by id. */
  readonly open = new Map<string, { key: string }>();
  readonly calls: string[] = [];
  /** The number of every part uploaded (or refused), in order. */
  readonly partNumbers: number[] = [];
  /**
   * The largest part number taken (R2: 10,000); a test of the limit lowers
   * it, as the code under test lowers its own.
   */
  maxPartNumber = 10_000;
  #version = 0;
  #uploads = 0;
  #failures = new Map<FakeCall, number>();

  /** Makes the `nth` (from 1) next call of this kind fail. */
  failOn(call: FakeCall, nth = 1): void {
    this.#failures.set(call, nth);
  }

  #maybeFail(call: FakeCall): void {
    this.calls.push(call);
    const n = this.#failures.get(call);
    if (n === undefined) return;
    if (n > 1) {
      this.#failures.set(call, n - 1);
      return;
    }
    this.#failures.delete(call);
    throw new Error(`R2 fake: ${call} failed`);
  }

  async put(
    key: string,
    value: R2Value,
    options?: R2PutOptionsLike,
  ): Promise<unknown> {
    this.#maybeFail("put");
    const bytes = await bytesOf(value);
    if (options?.sha256 !== undefined) {
      const actual = createHash("sha256").update(bytes).digest("hex");
      if (actual !== String(options.sha256).toLowerCase()) {
        throw new Error(
          "put: The SHA-256 checksum you specified did not match",
        );
      }
    }
    this.objects.set(key, { bytes, options, version: ++this.#version });
    return {};
  }

  async createMultipartUpload(
    key: string,
    options?: R2PutOptionsLike,
  ): Promise<R2MultipartUploadLike> {
    await tick();
    this.#maybeFail("create");
    const id = `upload-${++this.#uploads}`;
    this.open.set(id, { key });
    const upload = this.#upload(key, id, options);
    this.#handles.set(id, upload);
    return upload;
  }

  /** Continues a multipart upload (as R2's binding: no call until used). */
  resumeMultipartUpload(
    key: string,
    uploadId: string,
  ): R2MultipartUploadLike & { uploadId: string } {
    const upload = this.#handles.get(uploadId);
    if (upload === undefined || this.open.get(uploadId)?.key !== key) {
      // R2 says so at the first call on it.
      const gone = () =>
        Promise.reject(
          new Error("The specified multipart upload does not exist"),
        );
      return { uploadId, uploadPart: gone, abort: gone, complete: gone };
    }
    return upload;
  }

  /** Reads an object. */
  async get(
    key: string,
  ): Promise<{ body: ReadableStream<Uint8Array> } | null> {
    await tick();
    const object = this.objects.get(key);
    return object === undefined
      ? null
      : { body: ReadableStream.from([object.bytes.slice()]) };
  }

  /** Deletes an object. */
  async delete(key: string): Promise<void> {
    await tick();
    this.objects.delete(key);
  }

  #handles = new Map<string, R2MultipartUploadLike & { uploadId: string }>();

  #upload(
    key: string,
    id: string,
    options: R2PutOptionsLike | undefined,
  ): R2MultipartUploadLike & { uploadId: string } {
    const parts = new Map<number, { etag: string; bytes: Uint8Array }>();
    const live = () => {
      if (!this.open.has(id)) {
        throw new Error("The specified multipart upload does not exist");
      }
    };
    return {
      uploadId: id,
      uploadPart: async (partNumber: number, value: R2Value) => {
        this.partNumbers.push(partNumber);
        this.#maybeFail("uploadPart");
        live();
        if (
          !Number.isInteger(partNumber) || partNumber < 1 ||
          partNumber > this.maxPartNumber
        ) {
          throw new Error(
            `uploadPart: part number ${partNumber} is not from 1 to ${this.maxPartNumber}`,
          );
        }
        const bytes = await bytesOf(value);
        const etag = `${id}-${partNumber}-${bytes.length}`;
        parts.set(partNumber, { etag, bytes });
        return { partNumber, etag };
      },
      abort: async () => {
        await tick();
        this.#maybeFail("abort");
        this.open.delete(id);
      },
      complete: async (uploaded: R2UploadedPartLike[]) => {
        await tick();
        this.#maybeFail("complete");
        live();
        const list = uploaded.map((p, i) => {
          const part = parts.get(p.partNumber);
          if (!part || part.etag !== p.etag || p.partNumber !== i + 1) {
            throw new Error("complete: invalid part");
          }
          return part.bytes;
        });
        for (let i = 0; i < list.length - 1; i++) {
          if (list[i].length < MIN_PART) {
            throw new Error("complete: EntityTooSmall");
          }
          if (list[i].length !== list[0].length) {
            throw new Error("complete: parts must be the same size");
          }
        }
        const total = list.reduce((n, p) => n + p.length, 0);
        const bytes = new Uint8Array(total);
        let offset = 0;
        for (const p of list) {
          bytes.set(p, offset);
          offset += p.length;
        }
        this.open.delete(id);
        this.objects.set(key, { bytes, options, version: ++this.#version });
        return {};
      },
    };
  }
}
