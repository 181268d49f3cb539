import { checkArgument } from "../_internal/arguments.ts";
import {
  closeSync,
  fdatasync,
  fdatasyncSync,
  fstatSync,
  ftruncateSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  unlinkSync,
  writeFileSync,
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
   * fsynced and then the offset recorded, so a power cut loses at most this
   * many bytes of progress, plus the last append's (never correctness: bytes
   * past the recorded offset are cut off when the upload is next opened).
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
   * Deletes the unfinished uploads whose `expiresAt` has passed, and the
   * temporary files a stopped process left, an hour old or more; call it at
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

/** An upload appended to by this process. */
interface Live {
  /** The offset of the bytes written and acknowledged. */
  written: number;
  /** Its checkpoints, in order; settles when the last queued one ran. */
  queue: Promise<void>;
  /** The first checkpoint that failed. */
  error?: { error: unknown };
}

const ID = /^[A-Za-z0-9_-]{22}$/;
const BOOT_ID = "/proc/sys/kernel/random/boot_id";
let boot: string | null | undefined;

/**
 * This boot's id (Linux), or `null` where there is none to read (or, under
 * Deno, no read permission for it: it is not asked for).
 */
function currentBoot(): string | null {
  if (boot !== undefined) return boot;
  boot = null;
  try {
    const permissions = (globalThis as {
      Deno?: {
        permissions: {
          querySync(descriptor: { name: "read"; path: string }): {
            state: string;
          };
        };
      };
    }).Deno?.permissions;
    if (
      permissions &&
      permissions.querySync({ name: "read", path: BOOT_ID }).state !==
        "granted"
    ) return boot;
    const id = readFileSync(BOOT_ID, "utf8").trim();
    if (/^[0-9a-f-]{36}$/.test(id)) boot = id;
  } catch {
    // Not Linux.
  }
  return boot;
}

/**
 * Creates a resumable-upload store in a directory: an upload `id` keeps its
 * bytes in `.<id>.upload` and its state in `.<id>.json` (written to a
 * temporary file, fsynced and renamed, so it is always whole). A checkpoint
 * fsyncs the bytes before it records a larger offset; checkpoints run in
 * the background, every `syncIntervalBytes` and after each append.
 *
 * Where the kernel's boot id can be read (Linux; under Deno with
 * `--allow-all`, which /proc needs), an append is acknowledged as soon as
 * its bytes are written, and its offset goes to `.<id>.tail` (with the boot
 * id, no fsync): the bytes and that file are in the page cache, so after a
 * `kill -9` or a crash of the process the upload resumes from the
 * acknowledged offset; after a power cut or an OS crash (another boot) it
 * resumes from its last checkpoint. Elsewhere an append is acknowledged
 * after its checkpoint. Either way, when an upload is first opened by a
 * process, bytes past the offset it can vouch for are cut off: `HEAD`
 * reports an offset whose bytes are all in the file and correct, never
 * ahead of them. A completion waits for the last checkpoint before the
 * complete file appears at `<dir>/<id>`, by a rename.
 *
 * One process serves a directory, with one store object: the handler's
 * per-upload lock, the offsets and the records are in memory. An isolate
 * counts as a process (`deno serve --parallel`, Bun's `reusePort`): route
 * each upload's requests to one instance (docs/resumable.md).
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
  checkArgument(
    typeof dir === "string" && dir !== "",
    "create resumable file store",
    "dir",
    "a directory's path",
    dir,
  );
  const { syncIntervalBytes = 16 * 1024 * 1024 } = options;
  checkMax(
    "create resumable file store",
    "syncIntervalBytes",
    syncIntervalBytes,
  );
  const data = (id: string) => join(dir, `.${id}.upload`);
  const state = (id: string) => join(dir, `.${id}.json`);
  const tail = (id: string) => join(dir, `.${id}.tail`);
  const final = (id: string) => join(dir, id);
  /** Uploads whose tail this process has checked against the record. */
  const opened = new Set<string>();
  /** Uploads with an append in progress in this process. */
  const appending = new Set<string>();
  /** The records, as last written or read (one process serves a directory). */
  const records = new Map<string, Record>();
  /**
   * Uploads appended to by this process: the offset of the bytes written
   * and acknowledged, and the queue of their checkpoints (one at a time, in
   * order), which may still run after the append that queued them ended.
   */
  const live = new Map<string, Live>();
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
    records.set(record.id, { ...record });
  }

  async function readRecord(id: string): Promise<Record | undefined> {
    const cached = records.get(id);
    if (cached) return { ...cached };
    const record = await readRecordFile(id);
    if (record !== undefined && !record.complete) {
      records.set(id, { ...record });
    }
    return record;
  }

  /** The record on disk, whatever this process last knew of it. */
  async function readRecordFile(id: string): Promise<Record | undefined> {
    try {
      return JSON.parse(await readFile(state(id), "utf8")) as Record;
    } catch (error) {
      if ((error as { code?: string }).code === "ENOENT") return undefined;
      throw error;
    }
  }

  /**
   * Records the acknowledged offset of an upload in its tail file, without
   * an fsync: the file's bytes and this record, written in that order, are
   * in the kernel's page cache, so both survive the end of this process
   * (kill -9, a crash) but not of the machine's boot (a power cut); the
   * file names its boot, and is trusted only within it.
   */
  function writeTail(id: string, offset: number, boot: string): void {
    const temp = `${tail(id)}.tmp`;
    writeFileSync(temp, JSON.stringify({ offset, boot }), { mode: 0o600 });
    renameSync(temp, tail(id));
  }

  /** The offset in an upload's tail file, if it was written in this boot. */
  function readTail(id: string): number | undefined {
    const boot = currentBoot();
    if (!boot) return undefined;
    try {
      const { offset, boot: written } = JSON.parse(
        readFileSync(tail(id), "utf8"),
      ) as { offset?: unknown; boot?: unknown };
      return written === boot && Number.isSafeInteger(offset) &&
          (offset as number) >= 0
        ? offset as number
        : undefined;
    } catch {
      return undefined;
    }
  }

  function dropTail(id: string): void {
    try {
      unlinkSync(tail(id));
    } catch {
      // Not there.
    }
  }

  /**
   * Runs `task` after the upload's queued checkpoints. A failed checkpoint
   * leaves the record at the last durable offset; the upload's next append
   * reports the error and rolls the upload back to that offset.
   */
  function enqueue(
    id: string,
    upload: Live,
    task: () => Promise<void> | void,
  ): Promise<void> {
    const run = upload.queue.then(task);
    upload.queue = run.catch((error) => {
      upload.error ??= { error };
      dropTail(id);
    });
    return run;
  }

  /**
   * After a checkpoint that failed (a full disk; the request it belonged to
   * was answered): back to the last durable offset, which `get` then finds
   * as on a first open (the bytes past it cut off). The error is not thrown
   * on: it failed the first request after the space was freed with a bare
   * 500, and `get` reported an offset no append could continue from. Not
   * while an append runs (a `get` takes no lock): its state would be
   * dropped under it, and the `get` after it race its last checkpoint
   * (an upload reported unknown); the next call recovers.
   */
  async function recover(id: string): Promise<void> {
    if (!live.get(id)?.error || appending.has(id)) return;
    await settle(id);
    live.delete(id);
    opened.delete(id);
    dropTail(id);
  }

  /** Waits until the upload's checkpoints ran: its record is current. */
  async function settle(id: string): Promise<void> {
    await live.get(id)?.queue;
  }

  function toUpload(record: Record): ResumableUpload {
    const upload: ResumableUpload = {
      id: record.id,
      offset: live.get(record.id)?.written ?? record.offset,
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

  const store: ResumableFileStore = {
    wholeAppends: true,
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
      try {
        await writeRecord(record);
      } catch (error) {
        // No record, no upload (a full disk): its files go now, not at the
        // next sweep.
        await unlink(data(upload.id)).catch(() => {});
        await unlink(`${state(upload.id)}.tmp`).catch(() => {});
        throw error;
      }
      opened.add(upload.id);
    },

    async get(id) {
      if (!ID.test(id)) return undefined;
      await recover(id);
      const record = await readRecord(id);
      if (!record) return undefined;
      if (
        !record.complete && !opened.has(id) && !appending.has(id) &&
        !live.has(id)
      ) {
        // First open by this process: keep the bytes the record or, within
        // this boot, the tail file vouches for; cut off the rest.
        opened.add(id);
        try {
          const size = (await stat(data(id))).size;
          const acknowledged = readTail(id);
          const keep = Math.min(
            size,
            acknowledged !== undefined && acknowledged > record.offset
              ? acknowledged
              : record.offset,
          );
          if (size !== record.offset) {
            const fd = openSync(data(id), "r+");
            try {
              if (size > keep) ftruncateSync(fd, keep);
              fdatasyncSync(fd);
            } finally {
              closeSync(fd);
            }
          }
          if (keep !== record.offset) {
            record.offset = keep;
            await writeRecord(record);
          }
          dropTail(id);
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
      await settle(id);
      const record = await mustRead(id);
      record.length = length;
      await writeRecord(record);
    },

    async append(id, offset, options = {}) {
      check(id);
      const whole = options.whole === true;
      await recover(id);
      const record = await mustRead(id);
      let upload = live.get(id);
      const current = upload?.written ?? record.offset;
      if (current !== offset) {
        throw new RangeError(
          `Cannot append to upload: offset ${offset} is not ${current}`,
        );
      }
      if (!upload) {
        upload = { written: offset, queue: Promise.resolve() };
        live.set(id, upload);
      }
      const self = upload;
      const fd = openSync(data(id), "r+");
      appending.add(id);
      // Bytes past the offset (an earlier append that failed before its
      // checkpoint) are not known to be good.
      if (fstatSync(fd).size !== offset) ftruncateSync(fd, offset);
      let position = offset;
      /** Bytes written when the last checkpoint was queued. */
      let queuedAt = offset;
      let queued = false;
      let closed = false;
      let failure: { error: unknown } | undefined;
      // Asynchronous, so that a checkpoint (an fsync of up to
      // syncIntervalBytes) blocks neither the server's other requests nor
      // this one: the bytes after it are written while it runs. fdatasync
      // covers every byte written before it was called, so the offset it
      // records is durable. The data's fdatasync and the new record's write
      // (to its temporary file, fsynced) run at once; the record takes the
      // old one's place only after both, so it never names bytes that are
      // not durable.
      const checkpoint = async () => {
        const at = position;
        const before = records.get(id);
        if (!before || at <= before.offset) return;
        const [, temp] = await Promise.all([
          new Promise<void>((resolve, reject) =>
            fdatasync(fd, (error) => error ? reject(error) : resolve())
          ),
          prepareRecord({ ...before, offset: at }),
        ]);
        await rename(temp, state(id));
        records.set(id, { ...before, offset: at });
      };
      const finish = async () => {
        if (closed) return;
        closed = true;
        appending.delete(id);
        const boot = failure ? null : currentBoot();
        // The last checkpoint, then the file's close, after the queued ones.
        const last = enqueue(id, self, async () => {
          try {
            if (!failure) await checkpoint();
          } finally {
            closeSync(fd);
          }
        });
        if (failure) {
          last.catch(() => {});
          throw failure.error;
        }
        if (boot) {
          // Acknowledged at once; durable on disk when `last` has run. A
          // tail that cannot be written (the disk full) waits for `last`.
          last.catch(() => {});
          try {
            writeTail(id, position, boot);
          } catch {
            await last;
          }
        } else await last;
        self.written = position;
      };
      // A whole chunk aborted: its bytes go, and the offset stays (no
      // checkpoint or tail named them).
      const discard = async () => {
        if (closed) return;
        closed = true;
        appending.delete(id);
        await enqueue(id, self, () => {
          try {
            ftruncateSync(fd, offset);
          } finally {
            closeSync(fd);
          }
        });
        self.written = offset;
      };
      // A write that throws errors the stream, which then calls neither
      // close nor abort: the file is closed here, as an abort would (the
      // bytes written before it kept, a whole chunk's dropped), or its
      // descriptor, its disk space after a DELETE, and the upload's place
      // among the appending (which expiry skips) were held for good.
      const fail = async (error: unknown): Promise<never> => {
        await (whole ? discard() : finish()).catch(() => {});
        throw error;
      };
      return new WritableStream<Uint8Array>({
        write(chunk) {
          if (failure) return fail(failure.error);
          // Synchronous writes, as createFileSink does: an asynchronous file
          // operation between two reads of a request body slows Deno.serve
          // down to a few MB/s.
          let done = 0;
          try {
            while (done < chunk.byteLength) {
              done += writeSync(
                fd,
                chunk,
                done,
                chunk.byteLength - done,
                position + done,
              );
            }
          } catch (error) {
            // A full disk (ENOSPC): the chunk's bytes are not counted.
            return fail(error);
          }
          position += chunk.byteLength;
          // A whole chunk records no offset before its close.
          if (
            !whole && !queued && position - queuedAt >= syncIntervalBytes
          ) {
            queued = true;
            queuedAt = position;
            enqueue(id, self, checkpoint).catch((error) => {
              failure ??= { error };
            }).finally(() => {
              queued = false;
            });
          }
        },
        close: finish,
        abort: whole ? discard : finish,
      }, new CountQueuingStrategy({ highWaterMark: 1 }));
    },

    async truncate(id, offset) {
      check(id);
      await settle(id);
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
      dropTail(id);
      const upload = live.get(id);
      if (upload) upload.written = Math.min(upload.written, offset);
    },

    async read(id) {
      check(id);
      await settle(id);
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
      await settle(id);
      const failed = live.get(id)?.error;
      if (failed) throw failed.error;
      const record = await mustRead(id);
      // The completed record is written first (the step that needs space:
      // a full disk fails it with nothing moved), the data renamed to its
      // name, then the record put in place. A failure between the two
      // renames puts the data back: the upload stays as it was, to be
      // completed again. (The data renamed first and the record's write
      // failing left a published file whose record said unfinished: every
      // retry failed, and its expiry deleted the published file.)
      const completed = { ...record, complete: true };
      const temp = await prepareRecord(completed).catch(async (error) => {
        await unlink(`${state(id)}.tmp`).catch(() => {});
        throw error;
      });
      try {
        await rename(data(id), final(id));
      } catch (error) {
        await unlink(temp).catch(() => {});
        throw error;
      }
      try {
        const handle = await open(dir, "r");
        await handle.sync().finally(() => handle.close());
      } catch {
        // Not every platform can fsync a directory; the rename stands.
      }
      try {
        await rename(temp, state(id));
      } catch (error) {
        await rename(final(id), data(id)).catch(() => {});
        await unlink(temp).catch(() => {});
        throw error;
      }
      // Unfinished uploads only stay in memory (their number is bounded by
      // the handler's maxUploads, and deleteExpired removes them).
      records.delete(id);
      live.delete(id);
      opened.delete(id);
      dropTail(id);
    },

    async delete(id) {
      check(id);
      await settle(id);
      // With the temporary files a process stopped mid-write left.
      for (
        const path of [
          data(id),
          final(id),
          state(id),
          tail(id),
          `${state(id)}.tmp`,
          `${tail(id)}.tmp`,
        ]
      ) {
        await unlink(path).catch((error) => {
          if (error.code !== "ENOENT") throw error;
        });
      }
      opened.delete(id);
      records.delete(id);
      live.delete(id);
    },

    // `store.`, not `this.`: it may be called unbound
    // (`setInterval(store.deleteExpired, ...)`).
    async deleteExpired() {
      await prepare();
      const now = Date.now();
      const removed: string[] = [];
      const names = await readdir(dir);
      const records = new Set<string>();
      for (const name of names) {
        const match = /^\.([A-Za-z0-9_-]{22})\.json$/.exec(name);
        if (!match) continue;
        const id = match[1];
        records.add(id);
        // From disk, not as this process last knew it: an upload completed
        // by another process (one misconfigured to serve this directory
        // too) was deleted, its published file with it.
        const record = await readRecordFile(id).catch(() => undefined);
        if (
          !record || record.complete || appending.has(id) ||
          record.expiresAt === undefined || record.expiresAt > now
        ) continue;
        // Published, its record not yet complete (a completion under way
        // elsewhere): never removed as expired.
        if (await stat(final(id)).then(() => true, () => false)) continue;
        await store.delete(id);
        removed.push(id);
      }
      // What a process that stopped mid-write left, an hour old or more: a
      // record's or a tail's temporary file (beside its record or not: this
      // process renames its own within moments), or an upload's bytes
      // without its record (a creation cut before the record was written).
      for (const name of names) {
        const match =
          /^\.([A-Za-z0-9_-]{22})\.(?:json\.tmp|tail\.tmp|upload|tail)$/
            .exec(name);
        if (!match) continue;
        const id = match[1];
        if (live.has(id) || appending.has(id)) continue;
        if (!name.endsWith(".tmp") && (records.has(id) || opened.has(id))) {
          continue;
        }
        const path = join(dir, name);
        const info = await stat(path).catch(() => undefined);
        if (info === undefined || now - info.mtimeMs < LEFTOVER_AGE_MS) {
          continue;
        }
        await unlink(path).catch(() => {});
      }
      return removed;
    },
  };
  return store;
}

/** How old a file a stopped process left must be before deleteExpired removes it. */
const LEFTOVER_AGE_MS = 60 * 60 * 1000;
