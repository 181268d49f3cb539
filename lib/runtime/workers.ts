/**
 * Cloudflare Workers glue: the runtime's native incremental SHA-256 and
 * SHA-512 for the `hasher` option of `createUploadHandler` and
 * `receiveBody`, without the file system that `@sluice/streams/fs` needs
 * (Workers have none; the sink there is any `WritableStream`, such as an R2
 * upload or a hash).
 *
 * It imports `node:crypto`, which Workers provide under the `nodejs_compat`
 * compatibility flag (on by default from compatibility date 2026-08-04).
 * Deno, Bun and Node have it too. Nothing runs at module top level.
 *
 * @module
 */

export { createHasher } from "./_sha256.ts";
export {
  createR2Sink,
  type R2BucketLike,
  type R2MultipartUploadLike,
  type R2PutOptionsLike,
  type R2SinkOptions,
  type R2UploadedPartLike,
  type R2Value,
} from "./r2_sink.ts";
export {
  createResumableUploadObject,
  createResumableWorkersStore,
  type DurableObjectNamespaceLike,
  type DurableObjectStateLike,
  type DurableObjectStorageLike,
  type ResumableR2BucketLike,
  type ResumableUploadObjectOptions,
} from "./resumable_workers_store.ts";
