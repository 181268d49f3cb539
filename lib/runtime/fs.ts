/**
 * Runtime glue for files: read a file as a streaming Blob, upload a file,
 * write a body to a file atomically, and hash with the runtime's native
 * incremental SHA-256 and SHA-512.
 * Uses `node:fs/promises` and `node:crypto`, which Deno, Bun and Node all
 * provide; Workers have no file system (use a `WritableStream` sink there).
 *
 * @module
 */

import { checkArgument } from "../_internal/arguments.ts";
import { randomUUID } from "node:crypto";
import { openAsBlob, writeSync } from "node:fs";
import { open, readdir, rename, stat, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { createHasher } from "./_sha256.ts";
import { TEMPORARY_NAME, temporaryName } from "../http/_temporary_file.ts";
import { checkMs } from "../_internal/limits.ts";
import {
  receiveBody,
  type ReceiveBodyOptions,
  type ReceivedBody,
} from "../http/receive_body.ts";

export { uploadFile, type UploadFileOptions } from "./upload_file.ts";
export { createHasher } from "./_sha256.ts";
export {
  createResumableFileStore,
  type ResumableFileStore,
  type ResumableFileStoreOptions,
} from "./resumable_file_store.ts";

/** Options for {@linkcode openFile}. */
export interface OpenFileOptions {
  /** The media type of the Blob. @default {""} */
  type?: string;
}

/**
 * Opens a file as a Blob. Under Bun and Node the Blob is read from disk as
 * it is consumed, never loaded whole into memory; passing it to `fetch` or
 * `upload` sends it with its `Content-Length`. Under Deno (2.9.6, measured)
 * `fs.openAsBlob` reads the whole file into memory, and Deno's `fetch` sends
 * a Blob slowly: to upload a large file use {@linkcode uploadFile}, which is
 * fast and streams on every runtime.
 *
 * @param path The file to open.
 * @param options The Blob's media type.
 * @returns A Blob backed by the file.
 *
 * @example Send a file
 * ```ts ignore
 * import { openFile } from "@sluice/streams/fs";
 * import { upload } from "@sluice/streams/http";
 *
 * const pdf = await openFile("./files/BallerinaLang.pdf", { type: "application/pdf" });
 * await upload("http://127.0.0.1:9090/stream/receiver", pdf);
 * ```
 */
export async function openFile(
  path: string,
  options: OpenFileOptions = {},
): Promise<Blob> {
  return await openAsBlob(path, { type: options.type ?? "" });
}

/** Options for {@linkcode createFileSink}. */
export interface FileSinkOptions {
  /**
   * Write to a temporary file beside the target, fsync it, and rename it over
   * the target on `close()`; on `abort()` (or a failed write) delete it. The
   * target is then either untouched or the complete new file, never partial.
   * With `false`, write the target in place (it is truncated first).
   *
   * @default {true}
   */
  atomic?: boolean;
}

/**
 * Creates a `WritableStream` that writes a file block by block, awaiting each
 * write (back-pressure reaches the network), and by default atomically:
 * the bytes go to a temporary file beside `path` (`.name.<uuid>.partial`),
 * which is fsynced and renamed onto `path` when the stream closes, and
 * deleted when it is aborted or a write fails. Two concurrent writers of the
 * same path leave exactly one of their complete files. A process killed
 * mid-write (`kill -9`, a crash, power loss) leaves its temporary file
 * behind: sweep them with {@linkcode sweepTemporaryFiles}.
 *
 * @param path The target file.
 * @param options Whether to write atomically.
 * @returns A writable stream of bytes.
 *
 * @example Write a stream to a file atomically
 * ```ts ignore
 * import { createFileSink } from "@sluice/streams/fs";
 *
 * await ReadableStream.from([new TextEncoder().encode("hello")])
 *   .pipeTo(createFileSink("./hello.txt"));
 * ```
 */
export function createFileSink(
  path: string,
  options: FileSinkOptions = {},
): WritableStream<Uint8Array> {
  checkArgument(
    typeof path === "string" && path !== "",
    "create file sink",
    "the path",
    "a file's path",
    path,
  );
  const { atomic = true } = options;
  const temp = atomic
    ? join(dirname(path), temporaryName(basename(path), randomUUID()))
    : path;
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  let done = false;
  const discard = async () => {
    if (done) return;
    done = true;
    await handle?.close().catch(() => {});
    if (atomic) await unlink(temp).catch(() => {});
  };
  return new WritableStream<Uint8Array>({
    async start() {
      handle = await open(temp, atomic ? "wx" : "w", 0o644);
    },
    async write(chunk) {
      try {
        // Synchronous writes on purpose: an asynchronous file operation
        // between two reads of a chunked HTTP/1.1 request body sends
        // Deno.serve into a state where the body arrives at a few MB/s
        // (measured: 256 MiB in 27-31 s with async writes, even batched to
        // 4 MiB; 0.8 s with writeSync). One chunk written to the page cache
        // blocks for about as long as hashing it.
        let offset = 0;
        while (offset < chunk.byteLength) {
          offset += writeSync(
            handle!.fd,
            chunk,
            offset,
            chunk.byteLength - offset,
          );
        }
      } catch (error) {
        await discard();
        throw error;
      }
    },
    async close() {
      try {
        await handle!.sync();
        await handle!.close();
        handle = undefined;
        if (atomic) await rename(temp, path);
        done = true;
      } catch (error) {
        await discard();
        throw error;
      }
    },
    async abort() {
      await discard();
    },
  }, new CountQueuingStrategy({ highWaterMark: 1 }));
}

/** Options for {@linkcode receiveFile}. */
export type ReceiveFileOptions = ReceiveBodyOptions;

/**
 * Receives a request body into a file atomically, hashing it with SHA-256 as
 * it streams: {@linkcode createFileSink} plus `receiveBody`. On any failure —
 * client abort, over `maxBytes`, Content-Length or Content-Digest mismatch, a
 * disk error — the temporary file is deleted, the target left untouched, and
 * an `HttpError` with the status to answer is thrown.
 *
 * @param request The request whose body to store.
 * @param path The target file (chosen by the server; see `safeFileName` for
 *   client-supplied names).
 * @param options Limits and cancellation.
 * @returns The number of bytes stored and their SHA-256.
 *
 * @example A receiver endpoint
 * ```ts ignore
 * import { receiveFile } from "@sluice/streams/fs";
 * import { HttpError } from "@sluice/streams/http";
 *
 * Deno.serve(async (request) => {
 *   try {
 *     await receiveFile(request, "./files/ReceivedFile.pdf");
 *     return new Response("File Received!");
 *   } catch (error) {
 *     if (error instanceof HttpError) return error.getResponse();
 *     throw error;
 *   }
 * });
 * ```
 */
export async function receiveFile(
  request: Request,
  path: string,
  options: ReceiveFileOptions = {},
): Promise<ReceivedBody> {
  // `hasher: undefined` keeps the SHA-256 the result promises.
  return await receiveBody(request, createFileSink(path), {
    ...options,
    hasher: options.hasher ?? createHasher,
  });
}

/** Options for {@linkcode sweepTemporaryFiles}. */
export interface SweepTemporaryFilesOptions {
  /**
   * Only temporary files not written for this long, in milliseconds, are
   * deleted. An upload in progress writes its temporary file whenever bytes
   * arrive, and `receiveBody` refuses one that sends nothing for
   * `idleTimeoutMs` (30 s by default) or drips slower than
   * `minBytesPerSecond`, so an hour without a write means its writer is
   * gone. Raise it if you disable those limits. `0` deletes every
   * temporary, even one being written.
   *
   * @default {3600000} (1 hour)
   */
  olderThanMs?: number;
}

/**
 * Deletes the stale temporary files that {@linkcode createFileSink} left in
 * `dir` when its process was killed mid-upload: files named exactly like its
 * temporaries (`.<name>.<uuid>.partial`) and last written more than
 * `olderThanMs` ago. Nothing else is touched: `safeFileName` refuses user
 * names of that shape, and dot files altogether. Call it at start-up and
 * then periodically (the example server in `examples/upload.ts` does).
 *
 * @param dir The upload directory (not searched recursively).
 * @param options How old a temporary file must be to go.
 * @returns The paths deleted.
 *
 * @example Sweep at start-up and every 10 minutes
 * ```ts ignore
 * import { sweepTemporaryFiles } from "@sluice/streams/fs";
 *
 * await sweepTemporaryFiles("./uploads");
 * setInterval(() => sweepTemporaryFiles("./uploads").catch(console.error), 600_000);
 * ```
 */
export async function sweepTemporaryFiles(
  dir: string,
  options: SweepTemporaryFilesOptions = {},
): Promise<string[]> {
  const { olderThanMs = 3_600_000 } = options;
  checkMs("sweep temporary files", "olderThanMs", olderThanMs);
  const cutoff = Date.now() - olderThanMs;
  const removed: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isFile() || !TEMPORARY_NAME.test(entry.name)) continue;
    const path = join(dir, entry.name);
    try {
      // 0 means every temporary, whatever its time: a file written in the
      // same millisecond has an mtime (to the sub-millisecond) above
      // Date.now()'s whole milliseconds.
      if (olderThanMs > 0 && (await stat(path)).mtimeMs > cutoff) continue;
      await unlink(path);
      removed.push(path);
    } catch (error) {
      // Finished (renamed) or swept by another process meanwhile.
      if ((error as { code?: string }).code !== "ENOENT") throw error;
    }
  }
  return removed;
}
