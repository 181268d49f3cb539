import {
  closeSync,
  fdatasync,
  fdatasyncSync,
  fstatSync,
  ftruncateSync,
  openSync,
  readSync,
  writeSync,
} from "node:fs";
import {
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  stat,
  unlink,
} from "node:fs/promises";
import { join } from "node:path";
import { checkMax } from "../_internal/limits.ts";
import { decodeBase64, encodeBase64 } from "../_internal/base64.ts";
import type {
  ResumableStore,
  ResumableUpload,
} from "../http/resumable/resumable_store.ts";

/** Options for {@linkcode createResumableFileStore}. */
export interface ResumableFileStoreOptions {
  /**
   * Bytes written between two checkpoints of an append: the bytes are
   * fsynced and then the offset recorded, so a crash loses at most this many
   * bytes of progress (never correctness: bytes past the recorded offset
   * are cut off when the upload is next opened).
   *
   * @default {16777216} (16 MiB)
   */
  syncIntervalBytes?: number;
}

/** A {@linkcode ResumableStore} in a directory, with expiry cleanup. */
export interface ResumableFileStore extends ResumableStore {
  /** The path of a complete upload's file. */
  path(id: string): string;
  /**
   * Deletes the unfinished uploads whose `expiresAt` has passed; call it at
   * start-up and periodically.
   *
   * @returns The ids deleted.
   */
  deleteExpired(): Promise<string[]>;
}

interface Record {
  id: string;
  offset: number;
  length?: number;
  complete: boolean;
  metadata?: string;
  sha256?: string;
  createdAt: number;
  expiresAt?: number;
}

const ID = /^[A-Za-z0-9_-]{22}$/;

/**
 * Creates a resumable-upload store in a directory: an upload `id` keeps its
 * bytes in `.<id>.upload` and its state in `.<id>.json` (written to a
 * temporary file, fsynced and renamed, so it is always whole). An append
 * fsyncs its bytes before it records a larger offset, and when an upload is
 * first opened by a process, bytes past the recorded offset (written but
 * not yet checkpointed when the previous process died) are cut off: after a
 * `kill -9` or a crash, `HEAD` reports an offset whose bytes are all on
 * disk and correct. The complete file appears at `<dir>/<id>` only when the
 * upload completes, by a rename.
 *
 * One process serves a directory: the handler's per-upload lock is in
 * memory.
 *
 * @experimental
 * @param dir The directory (created if missing).
 * @param options The checkpoint interval.
 * @returns The store, for `createResumableUploadHandler`.
 *
 * @example Resumable uploads into ./uploads
 * ```ts ignore
 * import { createResumableUploadHandler } from "@sluice/streams/http";
 * import { createHasher, createResumableFileStore } from "@sluice/streams/fs";
 *
 * const store = createResumableFileStore("./uploads");
 * await store.deleteExpired();
 * const handler = createResumableUploadHandler({ store, hasher: createHasher });
 * Deno.serve((request) => handler(request));
 * ```
 */
export function createResumableFileStore(
  dir: string,
  options: ResumableFileStoreOptions = {},
): ResumableFileStore {
  const { syncIntervalBytes = 16 * 1024 * 1024 } = options;
  checkMax(
    "create resumable file store",
    "syncIntervalBytes",
    syncIntervalBytes,
  );
  const data = (id: string) => join(dir, `.${id}.upload`);
  const state = (id: string) => join(dir, `.${id}.json`);
  const final = (id: string) => join(dir, id);
  /** Uploads whose tail this process has checked against the record. */
  const opened = new Set<string>();
  /** Uploads with an append in progress in this process. */
  const appending = new Set<string>();
  let ready: Promise<unknown> | undefined;

  function check(id: string): void {
    if (!ID.test(id)) {
      throw new TypeError(`Cannot use upload: malformed id`);
    }
  }

  async function prepare(): Promise<void> {
    ready ??= mkdir(dir, { recursive: true });
    await ready;
  }

  /**
   * Writes a record to its temporary file and fsyncs it; renaming the file
   * to the record's name then puts it in place, whole.
   */
  async function prepareRecord(record: Record): Promise<string> {
    const temp = `${state(record.id)}.tmp`;
    const handle = await open(temp, "w", 0o600);
    try {
      await handle.writeFile(JSON.stringify(record));
      await handle.datasync();
    } finally {
      await handle.close();
    }
    return temp;
  }

  async function writeRecord(record: Record): Promise<void> {
    await rename(await prepareRecord(record), state(record.id));
  }

  async function readRecord(id: string): Promise<Record | undefined> {
    try {
      return JSON.parse(await readFile(state(id), "utf8")) as Record;
    } catch (error) {
      if ((error as { code?: string }).code === "ENOENT") return undefined;
      throw error;
    }
  }

  function toUpload(record: Record): ResumableUpload {
    const upload: ResumableUpload = {
      id: record.id,
      offset: record.offset,
      complete: record.complete,
      createdAt: record.createdAt,
    };
    if (record.length !== undefined) upload.length = record.length;
    if (record.metadata !== undefined) upload.metadata = record.metadata;
    if (record.sha256 !== undefined) {
      upload.sha256 = decodeBase64(record.sha256);
    }
    if (record.expiresAt !== undefined) upload.expiresAt = record.expiresAt;
    return upload;
  }

  async function mustRead(id: string): Promise<Record> {
    const record = await readRecord(id);
    if (!record) throw new TypeError(`Cannot use upload: unknown id`);
    return record;
  }

  return {
    path(id) {
      check(id);
      return final(id);
    },

    async create(upload) {
      check(upload.id);
      await prepare();
      const handle = await open(data(upload.id), "wx", 0o600);
      await handle.close();
      const record: Record = {
        id: upload.id,
        offset: 0,
        complete: false,
        createdAt: upload.createdAt,
      };
      if (upload.length !== undefined) record.length = upload.length;
      if (upload.metadata !== undefined) record.metadata = upload.metadata;
      if (upload.sha256) record.sha256 = encodeBase64(upload.sha256);
      if (upload.expiresAt !== undefined) record.expiresAt = upload.expiresAt;
      await writeRecord(record);
      opened.add(upload.id);
    },

    async get(id) {
      if (!ID.test(id)) return undefined;
      const record = await readRecord(id);
      if (!record) return undefined;
      if (!record.complete && !opened.has(id) && !appending.has(id)) {
        // First open by this process: keep only checkpointed bytes.
        opened.add(id);
        try {
          const size = (await stat(data(id))).size;
          if (size !== record.offset) {
            const fd = openSync(data(id), "r+");
            try {
              ftruncateSync(fd, Math.min(size, record.offset));
              fdatasyncSync(fd);
            } finally {
              closeSync(fd);
            }
            if (size < record.offset) {
              record.offset = size;
              await writeRecord(record);
            }
          }
        } catch (error) {
          if ((error as { code?: string }).code !== "ENOENT") throw error;
          // Renamed by a completion the record does not show yet.
          if ((await stat(final(id)).catch(() => undefined))?.isFile()) {
            record.complete = true;
            await writeRecord(record);
          } else return undefined;
        }
      }
      return toUpload(record);
    },

    async setLength(id, length) {
      check(id);
      const record = await mustRead(id);
      record.length = length;
      await writeRecord(record);
    },

    async append(id, offset) {
      check(id);
      const record = await mustRead(id);
      if (record.offset !== offset) {
        throw new RangeError(
          `Cannot append to upload: offset ${offset} is not ${record.offset}`,
        );
      }
      const fd = openSync(data(id), "r+");
      appending.add(id);
      // Bytes past the record (an earlier append that failed before its
      // checkpoint) are not known to be good.
      if (fstatSync(fd).size !== offset) ftruncateSync(fd, offset);
      let position = offset;
      let synced = offset;
      let closed = false;
      /** The checkpoint running while the request's bytes keep coming. */
      let running: Promise<void> | undefined;
      let failure: { error: unknown } | undefined;
      // Asynchronous, so that a checkpoint (an fsync of up to
      // syncIntervalBytes) blocks neither the server's other requests nor
      // this one: the bytes after it are written while it runs. fdatasync
      // covers every byte written before it was called, so the offset it
      // records is durable.
      const checkpoint = async () => {
        if (position === synced) return;
        const at = position;
        // The data's fdatasync and the new record's write (to its temporary
        // file, fsynced) run at once; the record takes the old one's place
        // only after both, so it never names bytes that are not durable.
        const [, temp] = await Promise.all([
          new Promise<void>((resolve, reject) =>
            fdatasync(fd, (error) => error ? reject(error) : resolve())
          ),
          prepareRecord({ ...record, offset: at }),
        ]);
        await rename(temp, state(id));
        record.offset = at;
        synced = at;
      };
      const finish = async () => {
        if (closed) return;
        closed = true;
        try {
          // One record write at a time: wait for the one under way.
          await running;
          if (failure) throw failure.error;
          await checkpoint();
        } finally {
          closeSync(fd);
          appending.delete(id);
        }
      };
      return new WritableStream<Uint8Array>({
        write(chunk) {
          if (failure) throw failure.error;
          // Synchronous writes, as createFileSink does: an asynchronous file
          // operation between two reads of a request body slows Deno.serve
          // down to a few MB/s.
          let done = 0;
          while (done < chunk.byteLength) {
            done += writeSync(
              fd,
              chunk,
              done,
              chunk.byteLength - done,
              position + done,
            );
          }
          position += chunk.byteLength;
          if (!running && position - synced >= syncIntervalBytes) {
            running = checkpoint().catch((error) => {
              failure = { error };
            }).finally(() => {
              running = undefined;
            });
          }
        },
        close: finish,
        abort: finish,
      }, new CountQueuingStrategy({ highWaterMark: 1 }));
    },

    async truncate(id, offset) {
      check(id);
      const record = await mustRead(id);
      const fd = openSync(data(id), "r+");
      try {
        ftruncateSync(fd, offset);
        fdatasyncSync(fd);
      } finally {
        closeSync(fd);
      }
      record.offset = Math.min(record.offset, offset);
      await writeRecord(record);
    },

    async read(id) {
      check(id);
      const record = await mustRead(id);
      const fd = openSync(record.complete ? final(id) : data(id), "r");
      const end = record.offset;
      let position = 0;
      return new ReadableStream<Uint8Array>({
        pull(controller) {
          if (position >= end) {
            closeSync(fd);
            controller.close();
            return;
          }
          const buffer = new Uint8Array(Math.min(1024 * 1024, end - position));
          const read = readSync(fd, buffer, 0, buffer.byteLength, position);
          if (read === 0) {
            closeSync(fd);
            controller.error(
              new RangeError(`Cannot read upload: file ends at ${position}`),
            );
            return;
          }
          position += read;
          controller.enqueue(buffer.subarray(0, read));
        },
        cancel() {
          closeSync(fd);
        },
      });
    },

    async complete(id) {
      check(id);
      const record = await mustRead(id);
      await rename(data(id), final(id));
      try {
        const handle = await open(dir, "r");
        await handle.sync().finally(() => handle.close());
      } catch {
        // Not every platform can fsync a directory; the rename stands.
      }
      record.complete = true;
      await writeRecord(record);
    },

    async delete(id) {
      check(id);
      for (const path of [data(id), final(id), state(id)]) {
        await unlink(path).catch((error) => {
          if (error.code !== "ENOENT") throw error;
        });
      }
      opened.delete(id);
    },

    async deleteExpired() {
      await prepare();
      const now = Date.now();
      const removed: string[] = [];
      for (const name of await readdir(dir)) {
        const match = /^\.([A-Za-z0-9_-]{22})\.json$/.exec(name);
        if (!match) continue;
        const id = match[1];
        const record = await readRecord(id).catch(() => undefined);
        if (
          !record || record.complete || appending.has(id) ||
          record.expiresAt === undefined || record.expiresAt > now
        ) continue;
        await this.delete(id);
        removed.push(id);
      }
      return removed;
    },
  };
}
